//! Dimensional collapse: the covariance spectrum of normalised embeddings (Jing et al., ICLR
//! 2022), effective rank (Roy & Vetterli 2007), RankMe (Garrido et al., ICML 2023), alpha-ReQ
//! (Agrawal et al., NeurIPS 2022) and the std of normalised outputs (Chen & He, SimSiam 2021).

use crate::error::{GeometryError, Result};
use crate::kernels::scatter::{all_rows, column_block_gram, scatter};
use crate::kernels::tiles::map_row_chunks;
use crate::kernels::tiles::single_threaded_blas;
use crate::kernels::timings::{eigen_flops, Timings, Work};
use crate::metrics::real::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// `epsilon` added to the normalised singular values in RankMe.
pub const RANKME_EPSILON: f64 = 1e-7;

/// The round-off level of a D x D second-moment matrix whose data have squared scale
/// `scale` (e.g. the mean squared row norm): `D eps max(lambda_max, scale)`.
fn round_off(d: usize, top: f64, scale: f64) -> f64 {
    d as f64 * f64::EPSILON * top.max(scale)
}

/// Eigenvalues of a symmetric matrix (its lower triangle) by LAPACK `dsyevd`, ascending.
///
/// `dsyevd` (divide and conquer) is called directly because the `dsyev` behind
/// ndarray-linalg's `eigvalsh` is 5x (n = 200) to 14x (n = 512) slower with this OpenBLAS.
fn syevd_values(a: &Array2<f64>) -> Result<Vec<f64>> {
    Ok(syevd(a, false)?.0)
}

/// Eigenvalues (ascending) and unit eigenvectors (column k for value k) of a symmetric matrix
/// (its lower triangle) by LAPACK `dsyevd`, the divide-and-conquer driver (ndarray-linalg's
/// `eigh` calls `dsyev`).
pub(crate) fn symmetric_eigenpairs(a: &Array2<f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let (values, vectors) = syevd(a, true)?;
    Ok((values, vectors.expect("asked for the vectors")))
}

/// `dsyevd` on `a`, with its eigenvectors when `vectors`.
fn syevd(a: &Array2<f64>, vectors: bool) -> Result<(Vec<f64>, Option<Array2<f64>>)> {
    syevd_in::<f64>(a, vectors)
}

/// A LAPACK precision with its divide-and-conquer symmetric eigensolver.
trait Syevd: Copy + Default {
    /// `?syevd` with LAPACK's arguments (a length of -1 is a workspace query).
    ///
    /// # Safety
    /// `a` is `n x n`, `w` holds n values, the workspaces at least their lengths.
    #[allow(clippy::too_many_arguments)]
    unsafe fn call(
        job: u8,
        n: i32,
        a: *mut Self,
        w: *mut Self,
        work: *mut Self,
        lwork: i32,
        iwork: *mut i32,
        liwork: i32,
    ) -> i32;
    fn of(v: f64) -> Self;
    fn to(self) -> f64;
}

macro_rules! syevd_for {
    ($t:ty, $f:path) => {
        impl Syevd for $t {
            unsafe fn call(
                job: u8,
                n: i32,
                a: *mut $t,
                w: *mut $t,
                work: *mut $t,
                lwork: i32,
                iwork: *mut i32,
                liwork: i32,
            ) -> i32 {
                let (jobz, uplo) = (job as std::os::raw::c_char, b'U' as std::os::raw::c_char);
                let mut info = 0i32;
                // SAFETY: the caller's contract.
                unsafe {
                    $f(
                        &jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &mut info,
                    )
                };
                info
            }
            fn of(v: f64) -> $t {
                v as $t
            }
            fn to(self) -> f64 {
                self as f64
            }
        }
    };
}
syevd_for!(f64, lapack_sys::dsyevd_);
syevd_for!(f32, lapack_sys::ssyevd_);

/// `?syevd` on `a` computed in precision `T` (values ascending), with its eigenvectors when
/// `vectors`.
fn syevd_in<T: Syevd>(a: &Array2<f64>, vectors: bool) -> Result<(Vec<f64>, Option<Array2<f64>>)> {
    let n = a.nrows();
    if n == 0 {
        return Ok((Vec::new(), vectors.then(|| Array2::zeros((0, 0)))));
    }
    let failed = |info: i32| GeometryError::Numerical {
        what: format!("LAPACK ?syevd failed (info = {info})"),
    };
    // Row-major symmetric = column-major symmetric, and LAPACK's 'U' is our lower.
    let mut matrix: Vec<T> = a.iter().map(|&v| T::of(v)).collect();
    let mut values = vec![T::default(); n];
    let job = if vectors { b'V' } else { b'N' };
    let mut call = |work: &mut [T], lwork: i32, iwork: &mut [i32], liwork: i32| {
        // SAFETY: an n x n matrix, n eigenvalues, and workspaces of at least the lengths
        // passed (a length of -1 is LAPACK's workspace query, which writes one element).
        let info = unsafe {
            T::call(
                job,
                n as i32,
                matrix.as_mut_ptr(),
                values.as_mut_ptr(),
                work.as_mut_ptr(),
                lwork,
                iwork.as_mut_ptr(),
                liwork,
            )
        };
        match info {
            0 => Ok(()),
            _ => Err(failed(info)),
        }
    };
    let (mut work_size, mut iwork_size) = ([T::default()], [0i32]);
    call(&mut work_size, -1, &mut iwork_size, -1)?;
    // LAPACK's minimum sizes as well: an f32 query rounds `1 + 6n + 2n^2` down above 2^24.
    let (least_work, least_iwork) = match vectors {
        true => (1 + 6 * n + 2 * n * n, 3 + 5 * n),
        false => (2 * n + 1, 1),
    };
    let lwork = (work_size[0].to() as usize).max(least_work) as i32;
    let liwork = (iwork_size[0].max(0) as usize).max(least_iwork) as i32;
    call(
        &mut vec![T::default(); lwork as usize],
        lwork,
        &mut vec![0; liwork as usize],
        liwork,
    )?;
    // Column-major eigenvectors read row-major are their transpose.
    let vectors = vectors.then(|| {
        Array2::from_shape_vec((n, n), matrix.iter().map(|v| v.to()).collect())
            .expect("n x n values")
            .reversed_axes()
    });
    Ok((values.iter().map(|v| v.to()).collect(), vectors))
}

/// [`symmetric_eigenpairs`] computed in f32 (`ssyevd`): about twice as fast with vectors,
/// eigenvectors to f32 precision (for directions applied to f32 rows).
pub(crate) fn symmetric_eigenpairs_f32(a: &Array2<f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let (values, vectors) = syevd_in::<f32>(a, true)?;
    Ok((values, vectors.expect("asked for the vectors")))
}

/// Eigenvalues of a symmetric positive semi-definite matrix in decreasing order; values at or
/// below the round-off level `D eps max(lambda_max, scale)` (and negative round-off) are set to
/// 0, so that a constant input has an all-zero centred spectrum.
pub fn symmetric_eigenvalues(a: &Array2<f64>, scale: f64) -> Result<Vec<f64>> {
    eigenvalues_above_round_off(a, scale, a.nrows())
}

/// [`symmetric_eigenvalues`] with the round-off level of a `dim x dim` second-moment matrix:
/// an `N x N` Gram matrix stands for the `D x D` scatter with the same nonzero eigenvalues,
/// so it takes the scatter's level `D eps max(lambda_max, scale)`.
fn eigenvalues_above_round_off(a: &Array2<f64>, scale: f64, dim: usize) -> Result<Vec<f64>> {
    single_threaded_blas();
    let values = syevd_values(a)?;
    let top = values.iter().cloned().fold(0.0f64, f64::max);
    let floor = round_off(dim, top, scale);
    let mut values: Vec<f64> = values
        .iter()
        .map(|&v| if v > floor { v } else { 0.0 })
        .collect();
    values.sort_by(|a, b| b.total_cmp(a));
    Ok(values)
}

/// Column means of `x` in f64.
pub fn column_means<F: Real>(x: ArrayView2<F>) -> Array1<f64> {
    let partials = map_row_chunks(x.nrows(), |range| {
        let mut sums = vec![0.0f64; x.ncols()];
        for i in range {
            crate::kernels::rows::add_row(&mut sums, &crate::kernels::rows::contiguous(&x.row(i)));
        }
        Array1::from(sums)
    });
    let mut total = Array1::<f64>::zeros(x.ncols());
    for partial in partials {
        total += &partial;
    }
    total / x.nrows() as f64
}

/// Centred covariance with `N - 1` in the denominator, D x D.
pub fn covariance<F: Real>(x: ArrayView2<F>) -> Result<Array2<f64>> {
    let (centred, _) = centred_scatter(x)?;
    Ok(centred / (x.nrows() as f64 - 1.0))
}

/// A covariance needs two rows.
fn at_least_two_rows(n: usize) -> Result<()> {
    match n < 2 {
        true => Err(GeometryError::TooFewRows {
            metric: "covariance",
            needed: 2,
            got: n,
        }),
        false => Ok(()),
    }
}

/// The scatter `sum_i (x_i - m)(x_i - m)^T` about the column means `m`, and `m`; at least two
/// rows.
fn centred_scatter<F: Real>(x: ArrayView2<F>) -> Result<(Array2<f64>, Array1<f64>)> {
    let n = x.nrows();
    at_least_two_rows(n)?;
    let mean = column_means(x);
    Ok((scatter(x, &all_rows(n), mean.view()), mean))
}

/// `sum_i ||x_i||^2` of `n` rows from the trace of their scatter about their mean `m`: `tr(scatter) +
/// n ||m||^2` (a sum of positive terms; a round-off reference without a pass over the rows).
pub(crate) fn total_squared_norm(scatter_trace: f64, mean: ArrayView1<f64>, n: usize) -> f64 {
    scatter_trace + n as f64 * mean.dot(&mean)
}

/// `exp(-sum_k p_k log p_k)` with `0 log 0 = 0`.
pub(crate) fn entropy_exp(p: impl Iterator<Item = f64>) -> f64 {
    (-p.filter(|&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>()).exp()
}

/// Effective rank (Roy & Vetterli 2007) from singular values `s`: `exp(-sum p_k log p_k)`,
/// `p_k = s_k / sum s`. All-zero singular values (a constant input) give 0.
pub fn effective_rank(singular_values: &[f64]) -> f64 {
    let total: f64 = singular_values.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    entropy_exp(singular_values.iter().map(|s| s / total))
}

/// RankMe (Garrido et al. 2023) from the singular values of the raw N x D matrix:
/// `p_k = s_k / sum s + 1e-7`, `exp(-sum p_k log p_k)`.
pub fn rankme(singular_values: &[f64]) -> f64 {
    let total: f64 = singular_values.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    entropy_exp(singular_values.iter().map(|s| s / total + RANKME_EPSILON))
}

/// alpha-ReQ fit (Agrawal et al. 2022).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlphaReq {
    /// The decay exponent alpha of `lambda_k ~ k^-alpha`.
    pub alpha: f64,
    /// Weighted coefficient of determination of the fit.
    pub r_squared: f64,
    /// First and last rank fitted (1-based).
    pub ranks: (usize, usize),
}

/// First and last rank of the alpha-ReQ fit window.
pub const ALPHA_REQ_RANKS: (usize, usize) = (11, 100);

/// Fit `log lambda_k = -alpha log k + c` over ranks 11..=100 (clipped to the positive
/// eigenvalues that exist) by least squares with weights `1/k`. `eigenvalues` in decreasing
/// order. `None` with fewer than 3 ranks in the window.
pub fn alpha_req(eigenvalues: &[f64]) -> Option<AlphaReq> {
    let (first, last) = ALPHA_REQ_RANKS;
    let points: Vec<(f64, f64, f64)> = (first..=last.min(eigenvalues.len()))
        .filter(|&k| eigenvalues[k - 1] > 0.0)
        .map(|k| ((k as f64).ln(), eigenvalues[k - 1].ln(), 1.0 / k as f64))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let w: f64 = points.iter().map(|p| p.2).sum();
    let mx = points.iter().map(|p| p.2 * p.0).sum::<f64>() / w;
    let my = points.iter().map(|p| p.2 * p.1).sum::<f64>() / w;
    let sxx: f64 = points.iter().map(|p| p.2 * (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| p.2 * (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_res: f64 = points
        .iter()
        .map(|p| p.2 * (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let ss_tot: f64 = points.iter().map(|p| p.2 * (p.1 - my).powi(2)).sum();
    let last_rank = first + points.len() - 1;
    Some(AlphaReq {
        alpha: -slope,
        r_squared: if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else {
            1.0
        },
        ranks: (first, last_rank),
    })
}

/// The uncentred second moment of the rows `W`, on the smaller side: `W^T W` (D x D) when
/// `N >= D`, else the Gram matrix `W W^T` (N x N, the same nonzero eigenvalues).
#[derive(Debug, Clone, PartialEq)]
pub enum UncentredMoment {
    /// `W^T W`, D x D.
    Scatter(Array2<f64>),
    /// `W W^T`, N x N.
    Gram(Array2<f64>),
}

/// Dimensional-collapse metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spectrum {
    /// Eigenvalues of the centred covariance (N - 1) of the normalised rows, decreasing.
    pub eigenvalues: Vec<f64>,
    /// Effective rank of the centred raw embedding matrix.
    pub effective_rank: f64,
    /// RankMe of the raw (uncentred) embedding matrix.
    pub rankme: f64,
    /// alpha-ReQ on `eigenvalues`, when 3 or more ranks fall in 11..100.
    pub alpha_req: Option<AlphaReq>,
    /// Mean over dimensions of the std (N - 1) of the normalised rows.
    pub normalized_std: f64,
    /// `1/sqrt(D)`: the value of `normalized_std` for well-spread embeddings.
    pub normalized_std_reference: f64,
    /// Isotropy readings from the same second moments.
    pub isotropy: Isotropy,
}

/// Isotropy of the rows, every reading from second moments the spectrum already forms (so it
/// merges across shards like the spectrum); `None` where a reading is undefined for the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotropy {
    /// Exact mean cosine similarity over ordered pairs `i != j` of the normalised rows
    /// `u_i`: `(||sum_i u_i||^2 - sum_i ||u_i||^2) / (N (N - 1))` (Ethayarajh 2019's
    /// anisotropy, without sampling); 0 for isotropic rows.
    pub mean_cosine: f64,
    /// IsoScore (Rudman et al. 2022) of the raw rows' covariance: `(PR - 1) / (D - 1)`, the
    /// closed form of the package's steps; 1 = isotropic, 0 = one direction.
    pub isoscore: Option<f64>,
    /// Participation ratio `(sum lambda)^2 / sum lambda^2` of the raw rows' covariance
    /// eigenvalues (Gao et al. 2017); D = isotropic, 1 = one direction.
    pub participation_ratio: Option<f64>,
    /// NESum (He & Ozay 2022): `sum lambda / lambda_1` of the normalised rows' covariance.
    pub nesum: Option<f64>,
    /// Numerical rank `||X||_F^2 / sigma_1^2` of the raw, uncentred rows (Tsitsulin et al.
    /// 2023).
    pub numerical_rank: Option<f64>,
    /// Pseudo-condition number `sigma_1 / sigma_min` of the centred raw rows over the
    /// `min(N - 1, D)` singular values they can have (Tsitsulin et al. 2023); `None` when the
    /// smallest is 0 (rank deficient).
    pub pseudo_condition_number: Option<f64>,
    /// Self-clustering (Tsitsulin et al. 2023): `(A - E) / (N^2 - E)` with
    /// `A = sum_{i,j} (u_i . u_j)^2` over all pairs of normalised rows (the diagonal included)
    /// and `E = N + N (N - 1) / D` its value for rows uniform on the sphere; 1 = collapsed.
    pub self_clustering: Option<f64>,
    /// `sum lambda` and `sum lambda^2` over the raw rows' centred scatter eigenvalues (any
    /// common scale): what [`Isotropy::isoscore_star`] needs for any shrinkage.
    #[serde(default)]
    pub raw_eigenvalue_sums: (f64, f64),
}

/// The default shrinkage `zeta` of IsoScore* ([`Isotropy::isoscore_star`]).
pub const DEFAULT_ISOSCORE_ZETA: f64 = 0.2;

impl Isotropy {
    /// IsoScore* (Rudman & Eickhoff, ICLR 2024): IsoScore of the shrunk covariance
    /// `(1 - zeta) C + zeta (tr C / D) I` of the raw rows, in closed form
    /// `(PR_zeta - 1) / (D - 1)` with `PR_zeta = (sum lambda)^2 / sum_k ((1 - zeta) lambda_k +
    /// zeta m)^2` over the D eigenvalues, `m = tr C / D` (the target shares C's eigenvectors).
    /// The target's scale `tr C / D` makes it scale-invariant; the I-STAR code shrinks toward
    /// `I`, which is the same for rows with `tr C = D`. `None` for `D = 1` or a constant input.
    pub fn isoscore_star(&self, zeta: f64, dim: usize) -> Option<f64> {
        let (sum, sum_sq) = self.raw_eigenvalue_sums;
        let d = dim as f64;
        let mean = sum / d;
        let shrunk_sq = (1.0 - zeta).powi(2) * sum_sq
            + 2.0 * zeta * (1.0 - zeta) * mean * sum
            + d * (zeta * mean).powi(2);
        (dim > 1 && shrunk_sq > 0.0).then(|| (sum * sum / shrunk_sq - 1.0) / (d - 1.0))
    }
}

/// What the spectrum and the isotropy readings are computed from, on either route.
struct Moments {
    /// Rows N and dimensions D.
    n: usize,
    d: usize,
    /// Eigenvalues of the normalised rows' covariance (N - 1), decreasing, D of them.
    unit_eigenvalues: Vec<f64>,
    /// The normalised rows' per-dimension variances (N - 1).
    unit_variances: Vec<f64>,
    /// Their mean squared norm `(1/N) sum ||u_i||^2` and column means.
    unit_scale: f64,
    unit_mean: Array1<f64>,
    /// `||U^T U||_F^2 = sum_{i,j} (u_i . u_j)^2`.
    unit_products_sq: f64,
    /// Singular values of the centred and of the uncentred raw rows, decreasing, `min(N, D)`.
    centred_singular: Vec<f64>,
    uncentred_singular: Vec<f64>,
}

impl Moments {
    /// The metrics.
    fn spectrum(self) -> Spectrum {
        let isotropy = self.isotropy();
        Spectrum {
            alpha_req: alpha_req(&self.unit_eigenvalues),
            effective_rank: effective_rank(&self.centred_singular),
            rankme: rankme(&self.uncentred_singular),
            normalized_std: normalized_std(&self.unit_variances, self.unit_scale),
            normalized_std_reference: 1.0 / (self.d as f64).sqrt(),
            eigenvalues: self.unit_eigenvalues,
            isotropy,
        }
    }

    fn isotropy(&self) -> Isotropy {
        let (n, d) = (self.n as f64, self.d as f64);
        let squares = |s: &[f64]| s.iter().map(|v| v * v).collect::<Vec<f64>>();
        let raw_lambda = squares(&self.centred_singular);
        let total: f64 = raw_lambda.iter().sum();
        let total_sq: f64 = raw_lambda.iter().map(|l| l * l).sum();
        let participation_ratio = (total_sq > 0.0).then(|| total * total / total_sq);
        let unit_top = self.unit_eigenvalues.first().copied().unwrap_or(0.0);
        let uncentred_top = self.uncentred_singular.first().copied().unwrap_or(0.0);
        let attainable = self.centred_singular.len().min(self.n - 1);
        let smallest = self.centred_singular[..attainable].last().copied();
        let expected = n + n * (n - 1.0) / d;
        Isotropy {
            mean_cosine: (n * n * self.unit_mean.dot(&self.unit_mean) - n * self.unit_scale)
                / (n * (n - 1.0)),
            isoscore: participation_ratio
                .filter(|_| self.d > 1)
                .map(|pr| (pr - 1.0) / (d - 1.0)),
            participation_ratio,
            nesum: (unit_top > 0.0).then(|| self.unit_eigenvalues.iter().sum::<f64>() / unit_top),
            numerical_rank: (uncentred_top > 0.0).then(|| {
                squares(&self.uncentred_singular).iter().sum::<f64>()
                    / (uncentred_top * uncentred_top)
            }),
            pseudo_condition_number: smallest
                .filter(|&s| s > 0.0)
                .map(|s| self.centred_singular[0] / s),
            self_clustering: (n * n > expected)
                .then(|| (self.unit_products_sq - expected) / (n * n - expected)),
            raw_eigenvalue_sums: (total, total_sq),
        }
    }
}

/// All dimensional-collapse metrics from the normalised rows `unit` and the raw rows `raw`
/// (the same rows before normalisation).
pub fn spectrum<F: Real>(unit: ArrayView2<F>, raw: ArrayView2<F>) -> Result<Spectrum> {
    spectrum_timed(unit, raw, &Timings::default())
}

/// [`spectrum`], recorded in `timings` as the stage `spectrum` with the work of the route
/// taken ([`spectrum_work`]): with at least as many rows as dimensions, the D x D scatters of
/// the normalised and the raw rows (`X^T X` for RankMe is the raw scatter plus `N m m^T`);
/// with fewer, the N x N Gram matrices of the normalised rows about their mean, of the raw rows
/// about theirs and (from that one, by the mean shift) of the raw rows, which have the same
/// nonzero eigenvalues (`Z^T Z` and `Z Z^T`), padded with zeros to D.
pub fn spectrum_timed<F: Real>(
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
    timings: &Timings,
) -> Result<Spectrum> {
    Ok(spectrum_with_moment(unit, raw, timings)?.0)
}

/// [`spectrum_timed`], with the uncentred second moment of the normalised rows on the route's
/// side (`U^T U` or `U U^T`), which partition isotropy decomposes.
pub(crate) fn spectrum_with_moment<F: Real>(
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
    timings: &Timings,
) -> Result<(Spectrum, UncentredMoment)> {
    let (n, d) = raw.dim();
    timings.time("spectrum", spectrum_work(n, d), || match n < d {
        true => spectrum_of_grams(unit, raw),
        false => spectrum_of_scatters(unit, raw),
    })
}

/// The work of [`spectrum_timed`] on `n` rows of `d` dimensions: two D x D scatters (`2 N
/// D^2` flops by `dsyrk`) and three eigendecompositions of side D when `n >= d`; else two
/// N x N Gram products (`2 N^2 D`) and three eigendecompositions of side N.
pub fn spectrum_work(n: usize, d: usize) -> Work {
    let (nf, df) = (n as f64, d as f64);
    match n < d {
        true => Work::Decomposition {
            products: 2.0 * nf * nf * df,
            eigen: eigen_flops([n; 3]),
        },
        false => Work::Decomposition {
            products: 2.0 * nf * df * df,
            eigen: eigen_flops([d; 3]),
        },
    }
}

/// The D x D route of [`spectrum_timed`], with `U^T U`.
fn spectrum_of_scatters<F: Real>(
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
) -> Result<(Spectrum, UncentredMoment)> {
    single_threaded_blas();
    let n = raw.nrows();
    let (unit_centred, unit_mean) = centred_scatter(unit)?;
    let unit_scale = total_squared_norm(unit_centred.diag().sum(), unit_mean.view(), n) / n as f64;
    let unit_m = unit_mean.view().insert_axis(ndarray::Axis(1));
    let unit_uncentred = &unit_centred + &(unit_m.dot(&unit_m.t()) * n as f64);
    let cov = unit_centred / (n as f64 - 1.0);
    let unit_products_sq = uncentred_frobenius_sq(&cov, unit_mean.view(), n);
    let (raw_centred, raw_mean) = centred_scatter(raw)?;
    // X^T X = centred scatter + N m m^T: a sum of positive terms, no cancellation.
    let m = raw_mean.view().insert_axis(ndarray::Axis(1));
    let uncentred = &raw_centred + &(m.dot(&m.t()) * n as f64);
    let raw_scale = total_squared_norm(raw_centred.diag().sum(), raw_mean.view(), n);
    let unit = UnitMoments {
        cov: &cov,
        scale: unit_scale,
        mean: unit_mean,
        products_sq: unit_products_sq,
    };
    let spectrum = spectrum_of(n, unit, &raw_centred, &uncentred, raw_scale)?;
    Ok((spectrum, UncentredMoment::Scatter(unit_uncentred)))
}

/// `||U^T U||_F^2` of N rows from their covariance `cov` (N - 1) and column means `m`:
/// `U^T U = (N - 1) cov + N m m^T`.
pub(crate) fn uncentred_frobenius_sq(cov: &Array2<f64>, m: ArrayView1<f64>, n: usize) -> f64 {
    let (scale, nf) = (n as f64 - 1.0, n as f64);
    let mut total = 0.0;
    for ((i, j), c) in cov.indexed_iter() {
        let v = scale * c + nf * m[i] * m[j];
        total += v * v;
    }
    total
}

/// The normalised rows' second moments, as [`spectrum_of`] takes them.
pub(crate) struct UnitMoments<'a> {
    /// Covariance (N - 1), D x D.
    pub cov: &'a Array2<f64>,
    /// Mean squared norm `(1/N) sum ||u_i||^2`.
    pub scale: f64,
    /// Column means.
    pub mean: Array1<f64>,
    /// `||U^T U||_F^2`.
    pub products_sq: f64,
}

/// The N x N route of [`spectrum_timed`] (`N < D`), with `U U^T`.
fn spectrum_of_grams<F: Real>(
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
) -> Result<(Spectrum, UncentredMoment)> {
    let (n, d) = raw.dim();
    at_least_two_rows(n)?;
    let unit_mean = column_means(unit);
    let unit_mean_values = unit_mean.to_vec();
    let (unit_gram, unit_squares) = column_block_gram(unit, Some(&unit_mean_values));
    let unit_scale = total_squared_norm(unit_gram.diag().sum(), unit_mean.view(), n) / n as f64;
    let unit_uncentred = uncentred_gram(unit, &unit_gram, unit_mean.view());
    let unit_products_sq = unit_uncentred.iter().map(|v| v * v).sum();
    let denominator = n as f64 - 1.0;
    let unit_variances: Vec<f64> = unit_squares.iter().map(|s| s / denominator).collect();
    let unit_cov = unit_gram / denominator;
    let raw_mean = column_means(raw);
    let raw_mean_values = raw_mean.to_vec();
    let (raw_centred, _) = column_block_gram(raw, Some(&raw_mean_values));
    let raw_scale = total_squared_norm(raw_centred.diag().sum(), raw_mean.view(), n);
    let uncentred = uncentred_gram(raw, &raw_centred, raw_mean.view());
    let (mut unit_eigenvalues, centred_singular, uncentred_singular) = three_decompositions(
        (&unit_cov, unit_scale),
        (&raw_centred, &uncentred, raw_scale),
        d,
        n,
    )?;
    unit_eigenvalues.resize(d, 0.0);
    let spectrum = Moments {
        n,
        d,
        unit_eigenvalues,
        unit_variances,
        unit_scale,
        unit_mean,
        unit_products_sq,
        centred_singular,
        uncentred_singular,
    }
    .spectrum();
    Ok((spectrum, UncentredMoment::Gram(unit_uncentred)))
}

/// The Gram matrix `X X^T` of the rows from their Gram matrix `G` about their mean `m`:
/// `x_i . x_j = G_ij + a_i + a_j + ||m||^2` with `a_i = x_i . m - ||m||^2` (one O(N D) pass
/// instead of a second `N^2 D` product, as the D x D route takes `X^T X` from the centred
/// scatter plus `N m m^T`; an entry's rounding is relative to the largest of its terms, below
/// the eigenvalues' round-off level).
fn uncentred_gram<F: Real>(
    rows: ArrayView2<F>,
    centred_gram: &Array2<f64>,
    m: ArrayView1<f64>,
) -> Array2<f64> {
    let norm_sq = m.dot(&m);
    let shifts: Vec<f64> = rows
        .rows()
        .into_iter()
        .map(|row| {
            let row = crate::kernels::rows::contiguous(&row);
            row.iter()
                .zip(m.iter())
                .map(|(v, w)| v.as_f64() * w)
                .sum::<f64>()
                - norm_sq
        })
        .collect();
    Array2::from_shape_fn(centred_gram.dim(), |(i, j)| {
        centred_gram[[i, j]] + shifts[i] + shifts[j] + norm_sq
    })
}

/// Mean over dimensions of the std of the normalised rows, from their variances; a variance at
/// the round-off level `D eps scale` counts as 0.
fn normalized_std(variances: &[f64], scale: f64) -> f64 {
    let d = variances.len();
    let floor = round_off(d, 0.0, scale);
    variances
        .iter()
        .map(|&v| if v > floor { v.sqrt() } else { 0.0 })
        .sum::<f64>()
        / d as f64
}

/// The dimensional-collapse metrics of `n` rows from second moments: the normalised rows'
/// covariance, scale, means and `||U^T U||_F^2` (`unit`), and the raw rows' centred scatter and
/// uncentred Gram `X^T X` (their total squared norm `raw_scale`); the scales set the round-off
/// levels below which an eigenvalue is 0. RankMe takes the `min(N, D)` singular values an SVD
/// of the N x D matrix has (the `D - N` further eigenvalues of a D x D matrix are zeros that its
/// `+ 1e-7` would count).
pub(crate) fn spectrum_of(
    n: usize,
    unit: UnitMoments,
    raw_centred: &Array2<f64>,
    raw_uncentred: &Array2<f64>,
    raw_scale: f64,
) -> Result<Spectrum> {
    let d = unit.cov.nrows();
    let (unit_eigenvalues, centred_singular, uncentred_singular) = three_decompositions(
        (unit.cov, unit.scale),
        (raw_centred, raw_uncentred, raw_scale),
        d,
        n.min(d),
    )?;
    Ok(Moments {
        n,
        d,
        unit_eigenvalues,
        unit_variances: unit.cov.diag().to_vec(),
        unit_scale: unit.scale,
        unit_mean: unit.mean,
        unit_products_sq: unit.products_sq,
        centred_singular,
        uncentred_singular,
    }
    .spectrum())
}

/// The spectrum's three eigendecompositions, in parallel (each one single-threaded LAPACK
/// call, so they use up to three threads; each result is that of the call alone): the
/// eigenvalues of the normalised rows' second-moment matrix `unit` (with its scale), and the
/// first `keep` singular values of the raw rows from their centred and uncentred second-moment
/// matrices (with the raw scale); every value at or below the round-off level of a
/// `dim x dim` matrix is 0.
fn three_decompositions(
    (unit, unit_scale): (&Array2<f64>, f64),
    (centred, uncentred, raw_scale): (&Array2<f64>, &Array2<f64>, f64),
    dim: usize,
    keep: usize,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let singular = |m: &Array2<f64>| -> Result<Vec<f64>> {
        Ok(eigenvalues_above_round_off(m, raw_scale, dim)?
            .into_iter()
            .take(keep)
            .map(f64::sqrt)
            .collect())
    };
    let (unit, (centred, uncentred)) = rayon::join(
        || eigenvalues_above_round_off(unit, unit_scale, dim),
        || rayon::join(|| singular(centred), || singular(uncentred)),
    );
    Ok((unit?, centred?, uncentred?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;
    use ndarray::Axis;

    /// Rows with a common offset and a decaying spectrum (column j scaled by 1/(1 + j/8)), and
    /// their L2-normalised copy.
    fn rows(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
        let mut x = pseudo_random(n, d, seed);
        for (j, mut column) in x.axis_iter_mut(Axis(1)).enumerate() {
            column.mapv_inplace(|v| v / (1.0 + j as f64 / 8.0) + 0.3);
        }
        let mut unit = x.clone();
        for mut row in unit.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row.mapv_inplace(|v| v / norm);
        }
        (x, unit)
    }

    fn assert_same(a: &Spectrum, b: &Spectrum, what: &str) {
        let top = a.eigenvalues[0];
        assert_eq!(a.eigenvalues.len(), b.eigenvalues.len(), "{what}");
        for (k, (u, v)) in a.eigenvalues.iter().zip(&b.eigenvalues).enumerate() {
            assert!(
                (u - v).abs() <= 1e-9 * top,
                "{what}: eigenvalue {k}: {u} vs {v}"
            );
        }
        for (name, u, v) in [
            ("effective rank", a.effective_rank, b.effective_rank),
            ("rankme", a.rankme, b.rankme),
            ("normalized std", a.normalized_std, b.normalized_std),
            (
                "alpha",
                a.alpha_req.as_ref().map_or(0.0, |f| f.alpha),
                b.alpha_req.as_ref().map_or(0.0, |f| f.alpha),
            ),
        ] {
            assert!(
                (u - v).abs() <= 1e-9 * u.abs(),
                "{what}: {name}: {u} vs {v}"
            );
        }
    }

    #[test]
    fn the_gram_route_equals_the_scatter_route_with_fewer_rows_than_dimensions() {
        for (n, d) in [(40, 300), (120, 700), (2, 9), (299, 300)] {
            let (x, unit) = rows(n, d, n as u64);
            let (grams, gram) = spectrum_of_grams(unit.view(), x.view()).unwrap();
            let (scatters, scatter) = spectrum_of_scatters(unit.view(), x.view()).unwrap();
            assert_same(&grams, &scatters, &format!("{n} x {d}"));
            // The uncentred moments are U U^T and U^T U.
            let (UncentredMoment::Gram(g), UncentredMoment::Scatter(s)) = (gram, scatter) else {
                panic!("the routes' moments");
            };
            let close = |a: &Array2<f64>, b: &Array2<f64>| {
                a.iter()
                    .zip(b.iter())
                    .all(|(u, v)| (u - v).abs() <= 1e-12 * (1.0 + u.abs()))
            };
            assert!(close(&g, &unit.dot(&unit.t())) && close(&s, &unit.t().dot(&unit)));
            // Rank at most N - 1 after centring: the rest are zeros.
            assert!(grams.eigenvalues[n - 1..].iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn both_sides_of_the_switch_equal_the_singular_values() {
        use ndarray_linalg::SVD;
        // N < D (Gram matrices), N = D and N > D (scatters).
        for (n, d) in [(63, 64), (64, 64), (65, 64), (300, 40)] {
            let (x, unit) = rows(n, d, 3);
            let got = spectrum(unit.view(), x.view()).unwrap();
            let singular = |m: &Array2<f64>| m.svd(false, false).unwrap().1.to_vec();
            let centred = &x - &x.mean_axis(Axis(0)).unwrap();
            let unit_centred = &unit - &unit.mean_axis(Axis(0)).unwrap();
            let want_rankme = rankme(&singular(&x));
            assert_eq!(singular(&x).len(), n.min(d));
            assert!(
                (got.rankme - want_rankme).abs() <= 1e-9 * want_rankme,
                "{n} x {d}"
            );
            let want_rank = effective_rank(&singular(&centred));
            assert!((got.effective_rank - want_rank).abs() <= 1e-9 * want_rank);
            let want: Vec<f64> = singular(&unit_centred)
                .iter()
                .map(|s| s * s / (n as f64 - 1.0))
                .collect();
            for (k, w) in want.iter().enumerate() {
                assert!(
                    (got.eigenvalues[k] - w).abs() <= 1e-9 * want[0],
                    "{n} x {d}: {k}"
                );
            }
            assert_eq!(got.eigenvalues.len(), d);
        }
    }

    /// The isotropy readings by their definitions, from the rows themselves (double loops and an
    /// SVD), on both routes.
    #[test]
    fn isotropy_readings_equal_their_definitions_on_both_routes() {
        use ndarray_linalg::SVD;
        for (n, d) in [(40, 120), (150, 12), (30, 30)] {
            let (x, unit) = rows(n, d, 11);
            let got = spectrum(unit.view(), x.view()).unwrap().isotropy;
            let (nf, df) = (n as f64, d as f64);
            let mut cosines = 0.0;
            let mut products_sq = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let dot = unit.row(i).dot(&unit.row(j));
                    products_sq += dot * dot;
                    if i != j {
                        cosines += dot;
                    }
                }
            }
            let close = |a: f64, b: f64, what: &str| {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1e-12),
                    "{n} x {d} {what}: {a} vs {b}"
                )
            };
            close(got.mean_cosine, cosines / (nf * (nf - 1.0)), "mean cosine");
            let expected = nf + nf * (nf - 1.0) / df;
            close(
                got.self_clustering.unwrap(),
                (products_sq - expected) / (nf * nf - expected),
                "self-clustering",
            );
            let centred = &x - &x.mean_axis(Axis(0)).unwrap();
            let s = centred.svd(false, false).unwrap().1.to_vec();
            let lambda: Vec<f64> = s.iter().map(|v| v * v / (nf - 1.0)).collect();
            let pr = lambda.iter().sum::<f64>().powi(2) / lambda.iter().map(|l| l * l).sum::<f64>();
            close(got.participation_ratio.unwrap(), pr, "participation ratio");
            close(got.isoscore.unwrap(), (pr - 1.0) / (df - 1.0), "isoscore");
            let attainable = s.len().min(n - 1);
            close(
                got.pseudo_condition_number.unwrap(),
                s[0] / s[attainable - 1],
                "pseudo-condition number",
            );
            let raw = x.svd(false, false).unwrap().1.to_vec();
            let frobenius: f64 = x.iter().map(|v| v * v).sum();
            close(
                got.numerical_rank.unwrap(),
                frobenius / (raw[0] * raw[0]),
                "numerical rank",
            );
            let unit_centred = &unit - &unit.mean_axis(Axis(0)).unwrap();
            let su = unit_centred.svd(false, false).unwrap().1.to_vec();
            close(
                got.nesum.unwrap(),
                su.iter().map(|v| v * v).sum::<f64>() / (su[0] * su[0]),
                "nesum",
            );
        }
    }

    #[test]
    fn isotropy_of_degenerate_rows_is_undefined_not_nan() {
        // Every row the same: no variance, mean cosine 1, fully self-clustered.
        let x = Array2::from_shape_fn((20, 8), |(_, j)| 1.0 + j as f64);
        let mut unit = x.clone();
        for mut row in unit.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row.mapv_inplace(|v| v / norm);
        }
        let got = spectrum(unit.view(), x.view()).unwrap().isotropy;
        assert!((got.mean_cosine - 1.0).abs() < 1e-12);
        assert!((got.self_clustering.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(got.isoscore, None);
        assert_eq!(got.participation_ratio, None);
        assert_eq!(got.nesum, None);
        assert_eq!(got.pseudo_condition_number, None);
        assert!((got.numerical_rank.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_gram_route_does_not_depend_on_the_thread_count() {
        let (x, unit) = rows(50, 1100, 5);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| spectrum(unit.view(), x.view()).unwrap())
        };
        let one = run(1);
        assert_eq!(run(2), one);
        assert_eq!(run(3), one);
    }
}
