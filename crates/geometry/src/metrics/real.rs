//! The element types the metrics compute on: [`Element`] with its exact uniformity kernel.

use crate::error::Result;
use crate::kernels::logsumexp::UniformityPart;
use crate::kernels::real::Element;
use crate::progress::Progress;
use ndarray::ArrayView2;

/// [`Real::UNIFORMITY_BLOCKS`]: `(x, y, t, tile, progress)` to the part of every block, or
/// the error of a row that is not finite or too large.
pub type UniformityBlocks<F> = fn(
    ArrayView2<F>,
    Option<ArrayView2<F>>,
    f64,
    usize,
    &dyn Progress,
) -> Result<Vec<UniformityPart>>;

/// An embedding element type (`f32` or `f64`) with its exact uniformity kernel.
///
/// Gram products are computed in this type (BLAS `sgemm` or `dgemm`, or the fused f32
/// uniformity kernel); every sum over rows or pairs is accumulated in `f64`.
pub trait Real: Element {
    /// The exact uniformity part, `log sum exp(-t ||x_i - x_j||^2)` kept as `(shift, sum,
    /// pairs)`, of every Gram block of side `tile`: the pairs `i < j` within `x` (`y = None`,
    /// blocks `I <= J`) or every pair of a row of `x` and a row of `y`, in row-major block
    /// order. f32 rows take the fused kernel of [`crate::kernel`]; f64 rows take
    /// `dgemm` tiles (`kernels::logsumexp`).
    const UNIFORMITY_BLOCKS: UniformityBlocks<Self>;

    /// `sum_i exp((v_i - top) scale)` over `values`, every `v_i <= top`: in f64 for f64 rows;
    /// for f32 rows each term in f32 (floored at `e^-87`) and summed in f64, by the uniformity
    /// kernel's exponential (`kernels::gram_exp`).
    fn sum_exp_below(values: &[Self], top: Self, scale: f64) -> f64;

    /// `sum_i log(1 + e^(scale v_i + bias))`: in f64 for f64 rows; for f32 rows each term in
    /// f32 by the uniformity kernel's exponential and a series (`kernels::gram_exp`), summed in
    /// f64.
    fn sum_softplus(values: &[Self], scale: f64, bias: f64) -> f64;
}

impl Real for f64 {
    const UNIFORMITY_BLOCKS: UniformityBlocks<f64> = crate::kernels::logsumexp::gram_tile_parts;

    fn sum_exp_below(values: &[f64], top: f64, scale: f64) -> f64 {
        values.iter().map(|v| ((v - top) * scale).exp()).sum()
    }

    fn sum_softplus(values: &[f64], scale: f64, bias: f64) -> f64 {
        values
            .iter()
            .map(|v| crate::kernels::logsumexp::softplus(scale * v + bias))
            .sum()
    }
}

impl Real for f32 {
    const UNIFORMITY_BLOCKS: UniformityBlocks<f32> = crate::kernels::gram_exp::block_parts;

    fn sum_exp_below(values: &[f32], top: f32, scale: f64) -> f64 {
        crate::kernels::gram_exp::sum_exp_below(values, top, scale as f32)
    }

    fn sum_softplus(values: &[f32], scale: f64, bias: f64) -> f64 {
        crate::kernels::gram_exp::sum_softplus(values, scale as f32, bias as f32)
    }
}
