//! The floating-point element types embeddings are stored in (f32 and f64).

use ndarray::LinalgScalar;
use num_traits::Float;
use std::fmt::Debug;

/// An embedding element type, `f32` or `f64`, as the kernels see it: numbers only (the
/// metrics add their kernels to it in [`crate::metrics::real::Real`]).
///
/// Gram products are computed in this type (BLAS `sgemm` or `dgemm`, or the fused f32
/// uniformity kernel); every sum over rows or pairs is accumulated in `f64`.
pub trait Element: LinalgScalar + Float + Debug + Send + Sync + 'static {
    /// Widen to `f64`.
    fn as_f64(self) -> f64;
    /// Narrow from `f64` (rounding to nearest for `f32`).
    fn from_f64(value: f64) -> Self;
    /// Whether this is `f32`: its squares and products of up to 2^24 terms cannot overflow or
    /// underflow an `f64` sum, and its magnitudes lie in `[2^-149, 2^128)`.
    const SINGLE: bool;
    /// `C = A A^T` on and above the diagonal of `C` (BLAS `ssyrk`/`dsyrk`: half the products
    /// of a GEMM, equal to its upper triangle up to the order of the sums), both row-major:
    /// `A` is `n x k` with rows `lda` apart, `C` is `n x n` with rows `ldc` apart.
    ///
    /// # Safety
    /// `a` must be valid for reads of `n` rows of `k` elements `lda` apart, `c` for writes of
    /// `n` rows of `n` elements `ldc` apart, and every size must fit in an `i32`.
    unsafe fn gram_upper(n: usize, k: usize, a: *const Self, lda: usize, c: *mut Self, ldc: usize);
}

/// The arguments of `cblas_?syrk` for `C = A A^T` on the upper triangle, row-major.
macro_rules! syrk_upper {
    ($f:ident, $n:expr, $k:expr, $a:expr, $lda:expr, $c:expr, $ldc:expr) => {
        cblas_sys::$f(
            cblas_sys::CblasRowMajor,
            cblas_sys::CblasUpper,
            cblas_sys::CblasNoTrans,
            $n as i32,
            $k as i32,
            1.0,
            $a,
            $lda as i32,
            0.0,
            $c,
            $ldc as i32,
        )
    };
}

impl Element for f64 {
    const SINGLE: bool = false;
    fn as_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    unsafe fn gram_upper(n: usize, k: usize, a: *const f64, lda: usize, c: *mut f64, ldc: usize) {
        // SAFETY: the caller's contract.
        unsafe { syrk_upper!(cblas_dsyrk, n, k, a, lda, c, ldc) }
    }
}

impl Element for f32 {
    const SINGLE: bool = true;
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    unsafe fn gram_upper(n: usize, k: usize, a: *const f32, lda: usize, c: *mut f32, ldc: usize) {
        // SAFETY: the caller's contract.
        unsafe { syrk_upper!(cblas_ssyrk, n, k, a, lda, c, ldc) }
    }
}
