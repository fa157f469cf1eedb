//! The lowest layer: element types, rows, Gram tiles and their kernels (the fused f32
//! uniformity kernel, AMX tiles, log-sum-exp), class indices, seeded sampling and the timing
//! records. Nothing here imports [`crate::metrics`] or [`crate::orchestration`].

pub(crate) mod amx;
pub(crate) mod classes;
pub(crate) mod gram_exp;
pub(crate) mod logsumexp;
pub(crate) mod merge;
pub(crate) mod real;
pub(crate) mod rows;
pub(crate) mod sampling;
pub(crate) mod scatter;
pub(crate) mod serde_rows;
#[cfg(test)]
pub(crate) mod test_data;
pub(crate) mod tiles;
pub mod timings;
