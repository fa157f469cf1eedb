//! The floating-point element types embeddings are stored in (f32 and f64), and the fast
//! shifted exponential sum used by the uniformity kernel.

use ndarray::LinalgScalar;
use num_traits::Float;
use std::fmt::Debug;

/// An embedding element type: `f32` or `f64`.
///
/// Gram tiles are computed in this type (BLAS `sgemm` or `dgemm`); every sum over rows or
/// pairs is accumulated in `f64`.
pub trait Real: LinalgScalar + Float + Debug + Send + Sync + 'static {
    /// Widen to `f64`.
    fn as_f64(self) -> f64;
    /// Narrow from `f64` (rounding to nearest for `f32`).
    fn from_f64(value: f64) -> Self;
    /// `sum_k exp(x_k - shift)` accumulated in `f64`, for `x_k <= shift`.
    ///
    /// Terms below `exp(-87)` relative to the largest may be flushed to zero (they are below
    /// the f32 resolution of the sum).
    fn exp_shifted_sum(values: &[Self], shift: Self) -> f64;
}

impl Real for f64 {
    fn as_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    fn exp_shifted_sum(values: &[f64], shift: f64) -> f64 {
        let mut lanes = [0.0f64; 4];
        let mut chunks = values.chunks_exact(4);
        for chunk in &mut chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane += (v - shift).exp();
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| (v - shift).exp()).sum();
        lanes.iter().sum::<f64>() + tail
    }
}

impl Real for f32 {
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn exp_shifted_sum(values: &[f32], shift: f32) -> f64 {
        const LANES: usize = 8;
        let mut lanes = [0.0f64; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            let mut e = [0.0f32; LANES];
            for (out, &v) in e.iter_mut().zip(chunk) {
                *out = exp_f32_nonpositive(v - shift);
            }
            for (lane, &v) in lanes.iter_mut().zip(&e) {
                *lane += f64::from(v);
            }
        }
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&v| f64::from(exp_f32_nonpositive(v - shift)))
            .sum();
        lanes.iter().sum::<f64>() + tail
    }
}

/// `exp(x)` for `x <= 0` in f32, branch-free so that it vectorises: Cody-Waite range reduction
/// `x = n ln2 + r`, the Cephes `expf` minimax polynomial on `|r| <= ln2/2` (about 1 ulp), and
/// `2^n` assembled in the exponent bits. Inputs below -87 are clamped to -87 (`1.6e-38`).
#[inline(always)]
pub fn exp_f32_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * r2 + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_std_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for k in 0..=870_000 {
            let x = -(k as f32) * 1e-4;
            let got = f64::from(exp_f32_nonpositive(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_f32_nonpositive(0.0), 1.0);
    }

    #[test]
    fn shifted_sums_agree_between_types() {
        let v64: Vec<f64> = (0..1001).map(|k| -(k as f64) * 0.013).collect();
        let v32: Vec<f32> = v64.iter().map(|&v| v as f32).collect();
        let a = f64::exp_shifted_sum(&v64, 0.0);
        let b = f32::exp_shifted_sum(&v32, 0.0);
        assert!(((a - b) / a).abs() < 1e-6, "{a} vs {b}");
    }
}
