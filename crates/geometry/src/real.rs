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
    /// One row of the uniformity kernel: with `e_c = minus_t * max(0, row_sq + col_sq[c] -
    /// 2 gram[c])`, return `(m, sum_c exp(e_c - m))` for `m = max_c e_c`, the sum in f64.
    ///
    /// `gram` is scratch: it is overwritten. An empty row returns `(-inf, 0)`.
    fn row_exp_sum(gram: &mut [Self], row_sq: Self, col_sq: &[Self], minus_t: Self) -> (f64, f64);
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

impl Real for f64 {
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
    fn row_exp_sum(gram: &mut [f64], row_sq: f64, col_sq: &[f64], minus_t: f64) -> (f64, f64) {
        let mut shift = f64::NEG_INFINITY;
        for (g, &sq) in gram.iter_mut().zip(col_sq) {
            let d2 = row_sq + sq - 2.0 * *g;
            *g = minus_t * if d2 > 0.0 { d2 } else { 0.0 };
            shift = if *g > shift { *g } else { shift };
        }
        (shift, gram.iter().map(|&e| (e - shift).exp()).sum())
    }
}

impl Real for f32 {
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
    fn row_exp_sum(gram: &mut [f32], row_sq: f32, col_sq: &[f32], minus_t: f32) -> (f64, f64) {
        match kernel() {
            // SAFETY: `kernel` picks a SIMD kernel only where the CPU supports it.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { row_exp_sum_f32_avx512(gram, row_sq, col_sq, minus_t) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { row_exp_sum_f32_avx2(gram, row_sq, col_sq, minus_t) },
            _ => row_exp_sum_f32(gram, row_sq, col_sq, minus_t),
        }
    }
}

/// The f32 uniformity row kernels; all return the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Sixteen lanes (AVX-512F).
    Avx512,
    /// Eight lanes (AVX2).
    Avx2,
    /// Plain Rust in 8-lane blocks.
    Portable,
}

/// The kernel in use: the widest the CPU supports, or the one `EMBGEOM_KERNEL`
/// (`avx512`, `avx2`, `portable`) names when the CPU supports it (for benchmarks); chosen once.
pub fn kernel() -> Kernel {
    static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let (avx512, avx2) = (
            std::is_x86_feature_detected!("avx512f"),
            std::is_x86_feature_detected!("avx2"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx512, avx2) = (false, false);
        let best = match (avx512, avx2) {
            (true, _) => Kernel::Avx512,
            (false, true) => Kernel::Avx2,
            _ => Kernel::Portable,
        };
        match std::env::var("EMBGEOM_KERNEL").as_deref() {
            Ok("portable") => Kernel::Portable,
            Ok("avx2") if avx2 => Kernel::Avx2,
            Ok("avx512") if avx512 => Kernel::Avx512,
            _ => best,
        }
    })
}

/// [`row_exp_sum_f32`] with AVX2 intrinsics: the same IEEE operations in the same order on
/// eight lanes at once (no FMA), so it returns the same bits as the portable version.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_exp_sum_f32_avx2(
    gram: &mut [f32],
    row_sq: f32,
    col_sq: &[f32],
    minus_t: f32,
) -> (f64, f64) {
    use std::arch::x86_64::*;
    let len = gram.len().min(col_sq.len());
    if len == 0 {
        return (f64::NEG_INFINITY, 0.0);
    }
    let blocks = len / LANES * LANES;
    let (vrow, vminus_t, two, zero) = (
        _mm256_set1_ps(row_sq),
        _mm256_set1_ps(minus_t),
        _mm256_set1_ps(2.0),
        _mm256_setzero_ps(),
    );
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    let g = gram.as_mut_ptr();
    let sq = col_sq.as_ptr();
    let mut i = 0;
    while i < blocks {
        // SAFETY: i + 8 <= len for both slices.
        let d2 = _mm256_sub_ps(
            _mm256_add_ps(vrow, _mm256_loadu_ps(sq.add(i))),
            _mm256_mul_ps(two, _mm256_loadu_ps(g.add(i))),
        );
        let e = _mm256_mul_ps(vminus_t, _mm256_max_ps(d2, zero));
        _mm256_storeu_ps(g.add(i), e);
        vmax = _mm256_max_ps(e, vmax);
        i += LANES;
    }
    let mut max_lanes = [0.0f32; LANES];
    _mm256_storeu_ps(max_lanes.as_mut_ptr(), vmax);
    let mut shift = max_lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    // Every access to `gram` below goes through `g`, so no slice borrow invalidates it.
    for k in blocks..len {
        // SAFETY: k < len for both slices.
        let e = row_exponent(*g.add(k), row_sq, *sq.add(k), minus_t);
        *g.add(k) = e;
        shift = if e > shift { e } else { shift };
    }
    let vshift = _mm256_set1_ps(shift);
    let (mut low, mut high) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut i = 0;
    while i < blocks {
        let e = exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(g.add(i)), vshift));
        low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        i += LANES;
    }
    let mut sums = [0.0f64; LANES];
    _mm256_storeu_pd(sums.as_mut_ptr(), low);
    _mm256_storeu_pd(sums.as_mut_ptr().add(4), high);
    // SAFETY: k < len.
    let tail: f64 = (blocks..len)
        .map(|k| f64::from(exp_f32_nonpositive(*g.add(k) - shift)))
        .sum();
    (f64::from(shift), sums.iter().sum::<f64>() + tail)
}

/// [`row_exp_sum_f32`] with AVX-512 intrinsics on sixteen lanes: the same IEEE operations in
/// the same order (no FMA), and the exponentials of each 16-lane block added to the same eight
/// f64 accumulators as two 8-lane blocks in turn, so it returns the same bits as the portable
/// and AVX2 versions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_exp_sum_f32_avx512(
    gram: &mut [f32],
    row_sq: f32,
    col_sq: &[f32],
    minus_t: f32,
) -> (f64, f64) {
    use std::arch::x86_64::*;
    const WIDE: usize = 2 * LANES;
    let len = gram.len().min(col_sq.len());
    if len == 0 {
        return (f64::NEG_INFINITY, 0.0);
    }
    let (wide, blocks) = (len / WIDE * WIDE, len / LANES * LANES);
    let (vrow, vminus_t, two, zero) = (
        _mm512_set1_ps(row_sq),
        _mm512_set1_ps(minus_t),
        _mm512_set1_ps(2.0),
        _mm512_setzero_ps(),
    );
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let g = gram.as_mut_ptr();
    let sq = col_sq.as_ptr();
    let mut i = 0;
    while i < wide {
        // SAFETY: i + 16 <= len for both slices.
        let d2 = _mm512_sub_ps(
            _mm512_add_ps(vrow, _mm512_loadu_ps(sq.add(i))),
            _mm512_mul_ps(two, _mm512_loadu_ps(g.add(i))),
        );
        let e = _mm512_mul_ps(vminus_t, _mm512_max_ps(d2, zero));
        _mm512_storeu_ps(g.add(i), e);
        vmax = _mm512_max_ps(e, vmax);
        i += WIDE;
    }
    let mut max_lanes = [0.0f32; WIDE];
    _mm512_storeu_ps(max_lanes.as_mut_ptr(), vmax);
    let mut shift = max_lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    // Every access to `gram` below goes through `g`, so no slice borrow invalidates it.
    for k in wide..len {
        // SAFETY: k < len for both slices.
        let e = row_exponent(*g.add(k), row_sq, *sq.add(k), minus_t);
        *g.add(k) = e;
        shift = if e > shift { e } else { shift };
    }
    let vshift = _mm512_set1_ps(shift);
    let mut sums = _mm512_setzero_pd();
    let mut i = 0;
    while i < wide {
        let e = exp16_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(g.add(i)), vshift));
        let low = _mm512_castps512_ps256(e);
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)));
        sums = _mm512_add_pd(sums, _mm512_cvtps_pd(low));
        sums = _mm512_add_pd(sums, _mm512_cvtps_pd(high));
        i += WIDE;
    }
    let mut lanes = [0.0f64; LANES];
    _mm512_storeu_pd(lanes.as_mut_ptr(), sums);
    // A last 8-lane block, as the portable version takes it.
    if blocks > wide {
        for (k, lane) in lanes.iter_mut().enumerate() {
            *lane += f64::from(exp_f32_nonpositive(*g.add(wide + k) - shift));
        }
    }
    // SAFETY: k < len.
    let tail: f64 = (blocks..len)
        .map(|k| f64::from(exp_f32_nonpositive(*g.add(k) - shift)))
        .sum();
    (f64::from(shift), lanes.iter().sum::<f64>() + tail)
}

/// Sixteen lanes of [`exp_f32_nonpositive`], operation for operation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp16_nonpositive(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    let x = _mm512_max_ps(_mm512_min_ps(x, c(0.0)), c(EXP_MIN));
    let shifted = _mm512_add_ps(_mm512_mul_ps(x, c(EXP_LOG2E)), c(EXP_ROUND));
    let n = _mm512_sub_ps(shifted, c(EXP_ROUND));
    let r = _mm512_sub_ps(
        _mm512_sub_ps(x, _mm512_mul_ps(n, c(EXP_LN2_HI))),
        _mm512_mul_ps(n, c(EXP_LN2_LO)),
    );
    let r2 = _mm512_mul_ps(r, r);
    let mut p = c(EXP_POLY[0]);
    for &coefficient in &EXP_POLY[1..] {
        p = _mm512_add_ps(_mm512_mul_ps(p, r), c(coefficient));
    }
    let y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, r2), r), c(1.0));
    let n_int = _mm512_sub_epi32(
        _mm512_castps_si512(shifted),
        _mm512_set1_epi32(EXP_ROUND_BITS),
    );
    let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n_int, _mm512_set1_epi32(127)));
    _mm512_mul_ps(y, _mm512_castsi512_ps(scale))
}

/// Eight lanes of [`exp_f32_nonpositive`], operation for operation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp8_nonpositive(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let c = _mm256_set1_ps;
    let x = _mm256_max_ps(_mm256_min_ps(x, c(0.0)), c(EXP_MIN));
    let shifted = _mm256_add_ps(_mm256_mul_ps(x, c(EXP_LOG2E)), c(EXP_ROUND));
    let n = _mm256_sub_ps(shifted, c(EXP_ROUND));
    let r = _mm256_sub_ps(
        _mm256_sub_ps(x, _mm256_mul_ps(n, c(EXP_LN2_HI))),
        _mm256_mul_ps(n, c(EXP_LN2_LO)),
    );
    let r2 = _mm256_mul_ps(r, r);
    let mut p = c(EXP_POLY[0]);
    for &coefficient in &EXP_POLY[1..] {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), c(coefficient));
    }
    let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, r2), r), c(1.0));
    let n_int = _mm256_sub_epi32(
        _mm256_castps_si256(shifted),
        _mm256_set1_epi32(EXP_ROUND_BITS),
    );
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n_int, _mm256_set1_epi32(127)));
    _mm256_mul_ps(y, _mm256_castsi256_ps(scale))
}

/// `minus_t * max(0, row_sq + sq - 2 g)`, the exponent of one pair.
#[inline(always)]
fn row_exponent(g: f32, row_sq: f32, sq: f32, minus_t: f32) -> f32 {
    let d2 = row_sq + sq - 2.0 * g;
    minus_t * if d2 > 0.0 { d2 } else { 0.0 }
}

const LANES: usize = 8;

/// The f32 uniformity row kernel in fixed 8-lane blocks that the compiler vectorises: one
/// pass for the exponents and their maximum, one for `exp` (f32, [`exp_f32_nonpositive`])
/// summed into eight f64 accumulators.
fn row_exp_sum_f32(gram: &mut [f32], row_sq: f32, col_sq: &[f32], minus_t: f32) -> (f64, f64) {
    let len = gram.len().min(col_sq.len());
    let (gram, col_sq) = (&mut gram[..len], &col_sq[..len]);
    let mut max_lanes = [f32::NEG_INFINITY; LANES];
    let mut blocks = gram.chunks_exact_mut(LANES);
    let mut sq_blocks = col_sq.chunks_exact(LANES);
    for (g, sq) in (&mut blocks).zip(&mut sq_blocks) {
        for k in 0..LANES {
            g[k] = row_exponent(g[k], row_sq, sq[k], minus_t);
            max_lanes[k] = if g[k] > max_lanes[k] {
                g[k]
            } else {
                max_lanes[k]
            };
        }
    }
    let mut shift = max_lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for (g, &sq) in blocks
        .into_remainder()
        .iter_mut()
        .zip(sq_blocks.remainder())
    {
        *g = row_exponent(*g, row_sq, sq, minus_t);
        shift = if *g > shift { *g } else { shift };
    }
    if len == 0 {
        return (f64::NEG_INFINITY, 0.0);
    }
    let mut sums = [0.0f64; LANES];
    let mut blocks = gram.chunks_exact(LANES);
    for g in &mut blocks {
        let mut e = [0.0f32; LANES];
        for k in 0..LANES {
            e[k] = exp_f32_nonpositive(g[k] - shift);
        }
        for k in 0..LANES {
            sums[k] += f64::from(e[k]);
        }
    }
    let tail: f64 = blocks
        .remainder()
        .iter()
        .map(|&g| f64::from(exp_f32_nonpositive(g - shift)))
        .sum();
    (f64::from(shift), sums.iter().sum::<f64>() + tail)
}

const EXP_MIN: f32 = -87.0;
const EXP_LOG2E: f32 = std::f32::consts::LOG2_E;
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// Adding 1.5 * 2^23 rounds to an integer n held in the low mantissa bits.
const EXP_ROUND: f32 = 12_582_912.0;
const EXP_ROUND_BITS: i32 = 0x4B40_0000;
/// Cephes `expf` polynomial, highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// `exp(x)` for `x <= 0` in f32, branch-free so that it vectorises: Cody-Waite range reduction
/// `x = n ln2 + r`, the Cephes `expf` minimax polynomial on `|r| <= ln2/2` (about 1 ulp), and
/// `2^n` assembled in the exponent bits. Inputs below -87 are clamped to -87 (`1.6e-38`).
#[inline(always)]
pub fn exp_f32_nonpositive(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, 0.0);
    let shifted = x * EXP_LOG2E + EXP_ROUND;
    let n = shifted - EXP_ROUND;
    let r = x - n * EXP_LN2_HI - n * EXP_LN2_LO;
    let r2 = r * r;
    let mut p = EXP_POLY[0];
    for &coefficient in &EXP_POLY[1..] {
        p = p * r + coefficient;
    }
    let y = p * r2 + r + 1.0;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(EXP_ROUND_BITS);
    y * f32::from_bits(((n_int + 127) << 23) as u32)
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
    fn row_kernels_agree_between_types_and_with_a_plain_loop() {
        let n = 1001;
        let g64: Vec<f64> = (0..n)
            .map(|k| ((k * 37 % 101) as f64 / 50.0) - 1.0)
            .collect();
        let sq64: Vec<f64> = (0..n).map(|k| 1.0 + (k % 3) as f64 * 0.1).collect();
        let want: Vec<f64> = g64
            .iter()
            .zip(&sq64)
            .map(|(g, sq)| -3.0 * (1.05 + sq - 2.0 * g).max(0.0))
            .collect();
        let max = want.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let want_sum: f64 = want.iter().map(|e| (e - max).exp()).sum();
        let (s64, sum64) = f64::row_exp_sum(&mut g64.clone(), 1.05, &sq64, -3.0);
        assert!((s64 - max).abs() < 1e-12 && ((sum64 - want_sum) / want_sum).abs() < 1e-12);
        let mut g32: Vec<f32> = g64.iter().map(|&v| v as f32).collect();
        let sq32: Vec<f32> = sq64.iter().map(|&v| v as f32).collect();
        let (s32, sum32) = f32::row_exp_sum(&mut g32, 1.05, &sq32, -3.0);
        let total = |s: f64, sum: f64| s + sum.ln();
        assert!((total(s32, sum32) - total(max, want_sum)).abs() < 1e-5);
        let mut portable = g64.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        assert_eq!(
            row_exp_sum_f32(&mut portable, 1.05, &sq32, -3.0),
            (s32, sum32),
            "same bits"
        );
        let (empty_shift, empty_sum) = f32::row_exp_sum(&mut [], 1.0, &[], -2.0);
        assert_eq!((empty_shift, empty_sum), (f64::NEG_INFINITY, 0.0));
    }

    /// The AVX-512, AVX2 and portable kernels return the same bits for every length (16-lane
    /// blocks, a last 8-lane block, a scalar tail), where the CPU has them.
    #[test]
    fn the_simd_kernels_return_the_portable_bits() {
        for n in (0..70).chain([255, 256, 257, 1000, 1001, 4099]) {
            let gram: Vec<f32> = (0..n)
                .map(|k| ((k * 37 % 101) as f32 / 50.0) - 1.0)
                .collect();
            let sq: Vec<f32> = (0..n).map(|k| 1.0 + (k % 7) as f32 * 0.03).collect();
            let want = row_exp_sum_f32(&mut gram.clone(), 1.02, &sq, -2.0);
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present.
                    let got = unsafe { row_exp_sum_f32_avx2(&mut gram.clone(), 1.02, &sq, -2.0) };
                    assert_eq!(got, want, "AVX2, n = {n}");
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present.
                    let got = unsafe { row_exp_sum_f32_avx512(&mut gram.clone(), 1.02, &sq, -2.0) };
                    assert_eq!(got, want, "AVX-512, n = {n}");
                } else {
                    println!("AVX-512 not on this CPU: its kernel was not compared");
                }
            }
        }
    }
}
