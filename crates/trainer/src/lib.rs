//! Train small encoders with the losses whose geometry embgeom measures (SimCLR, SupCon,
//! cross-entropy, align-uniform, SupCon-spread) through tch (libtorch), and write embedding
//! checkpoints that `embgeom analyze`, `report` and `track` read directly.

pub mod augment;
pub mod data;
pub mod losses;
pub mod model;
pub mod optim;
pub mod train;

/// Load `libtorch_cuda.so` so that libtorch registers its CUDA backend (the linker drops it
/// because no symbol of it is used); `None` where it is absent (no CUDA).
pub fn load_cuda() -> Option<libloading::Library> {
    // SAFETY: loading libtorch's own CUDA library, which only registers its backend.
    unsafe { libloading::Library::new("libtorch_cuda.so").ok() }
}
