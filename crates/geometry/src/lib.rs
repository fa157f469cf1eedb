//! Geometry metrics of learned embeddings, following `shared/reference/metrics.md`:
//! Wang & Isola's alignment and uniformity (exact, tiled and parallel, or sampled),
//! label-positive alignment and per-class uniformity.
//!
//! All sums are accumulated in f64 over a fixed partition of the work, so results do not
//! depend on the number of threads. No file I/O, no printing.

// Links OpenBLAS as the BLAS behind ndarray's GEMM.
extern crate blas_src;

mod alignment;
mod analysis;
mod classes;
mod error;
mod progress;
mod real;
mod rows;
mod sampling;
mod tiles;
mod uniformity;

pub use alignment::{alignment, class_alignment, Alignment};
pub use analysis::{
    analyze, Analysis, AnalysisInput, AnalysisOptions, DEFAULT_MAX_EXACT, DEFAULT_SAMPLED_PAIRS,
};
pub use classes::Classes;
pub use error::{GeometryError, Result};
pub use progress::{NoProgress, Progress};
pub use real::Real;
pub use rows::{check_finite, normalize_rows, row_norms};
pub use tiles::DEFAULT_TILE;
pub use uniformity::{
    uniformity, uniformity_exact, uniformity_sampled, Estimator, Method, Uniformity,
};
