//! Neural-collapse metrics (Papyan, Han & Donoho, PNAS 2020, "Prevalence of neural collapse
//! during the terminal phase of deep learning training") and the class-distance normalised
//! variance (Galanti, Gyorgy & Hutter, ICLR 2022), with the conventions of
//! `docs/src/reference/metrics.md` (the unweighted global mean, two-pass variances, NC3 squared).

use crate::error::{GeometryError, Result};
use crate::kernels::classes::Classes;
use crate::kernels::tiles::{single_threaded_blas, ROW_CHUNK};
use crate::kernels::timings::{gemm_work, Timings, Work};
use crate::metrics::real::Real;
use crate::metrics::spectrum::symmetric_eigenpairs;
use crate::metrics::stats::ClassStats;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A linear classifier `argmax_c (w_c . h + b_c)`: weights C x D and optional biases.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// `W`, C x D.
    pub weights: Array2<f64>,
    /// `b`, C (zero when absent).
    pub bias: Option<Array1<f64>>,
}

/// The neural-collapse family; a value that is undefined for the input is `None` and the
/// reason is in `warnings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Collapse {
    /// NC1 `tr(Sigma_W Sigma_B^+) / C`.
    pub nc1: Option<f64>,
    /// Rank of `Sigma_B^+` (eigenvalues kept by the cut-off).
    pub nc1_rank: usize,
    /// `tr(Sigma_W) / tr(Sigma_B)`.
    pub nc1_quotient: Option<f64>,
    /// `std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||` (std with C - 1).
    pub nc2_equinorm: Option<f64>,
    /// The same for the classifier rows `w_c`.
    pub nc2_equinorm_classifier: Option<f64>,
    /// Std of the cosines between centred means over the C(C-1) ordered pairs.
    pub nc2_equiangularity: Option<f64>,
    /// `mean_{c != c'} |cos(M_c, M_c') + 1/(C-1)|`.
    pub nc2_max_angle: Option<f64>,
    /// `|| G/||G||_F - (I - 11^T/C)/sqrt(C-1) ||_F`, `G = M M^T`.
    pub etf_distance: Option<f64>,
    /// `|| W/||W||_F - M/||M||_F ||_F^2`.
    pub nc3: Option<f64>,
    /// Fraction of rows whose classifier prediction differs from the nearest class mean.
    pub nc4: Option<f64>,
    /// Fraction of rows whose nearest class mean is their own class (`None` where the rows
    /// were not read again: a mergeable state).
    pub ncc_accuracy: Option<f64>,
    /// Class-distance normalised variance.
    pub cdnv: Option<Cdnv>,
    /// Why a value is absent, or what limits its meaning.
    pub warnings: Vec<String>,
}

/// CDNV `V(c, c') = (Var_c + Var_c') / (2 ||mu_c - mu_c'||^2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdnv {
    /// Mean over pairs `c < c'`.
    #[serde(rename = "value")]
    pub mean: f64,
    /// The C x C matrix (0 on the diagonal), serialised as a list of rows.
    #[serde(with = "crate::kernels::serde_rows")]
    pub matrix: Array2<f64>,
}

fn std_over_mean(values: &[f64]) -> Option<f64> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 || mean == 0.0 {
        return None;
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(var.sqrt() / mean)
}

fn frobenius(a: &Array2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn row_norms(a: &Array2<f64>) -> Vec<f64> {
    a.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect()
}

/// `tr(Sigma_W Sigma_B^+) / C` with the pseudo-inverse from a symmetric eigendecomposition,
/// keeping eigenvalues above `max(D, C) eps lambda_max`; returns the value and the rank kept.
///
/// `Sigma_B = (1/C) M^T M` has rank at most C - 1, so with fewer classes than dimensions its
/// eigenpairs come from the C x C matrix `G = (1/C) M M^T` (`G w = lambda w` gives the unit
/// eigenvector `u = M^T w / sqrt(C lambda)` of `Sigma_B`, with the same eigenvalue), and
/// `u^T Sigma_W u = w^T (M Sigma_W M^T) w / (C lambda)` needs only the projection
/// [`ClassStats::within_projected`]: C^3 + C^2 D work and no D x D matrix. Otherwise the D x D
/// `Sigma_B` is decomposed and `Sigma_W` is used as it is.
pub fn nc1(stats: &ClassStats) -> Result<(f64, usize)> {
    let m = stats.centred_means();
    nc1_with_gram(stats, &m, &m.dot(&m.t()))
}

/// [`nc1`] given the centred means `m` and their Gram matrix `M M^T`.
fn nc1_with_gram(stats: &ClassStats, m: &Array2<f64>, gram: &Array2<f64>) -> Result<(f64, usize)> {
    let c = stats.num_classes();
    let d = m.ncols();
    let in_span = stats.within_in_mean_span();
    let (values, vectors) = match in_span {
        true => symmetric_eigenpairs(&(gram / c as f64)),
        false => symmetric_eigenpairs(&stats.between_covariance()),
    }?;
    let lambda_max = values.iter().cloned().fold(0.0f64, f64::max);
    let cut = d.max(c) as f64 * f64::EPSILON * lambda_max;
    // Every `v_k^T W v_k` at once: the column sums of `V o (W V)`.
    let weighted = stats.within_projected.dot(&vectors);
    let mut total = 0.0;
    let mut rank = 0;
    for (k, &lambda) in values.iter().enumerate() {
        if lambda > cut && lambda > 0.0 {
            let quadratic = vectors.column(k).dot(&weighted.column(k));
            let within = match in_span {
                true => quadratic / (c as f64 * lambda),
                false => quadratic,
            };
            total += within / lambda;
            rank += 1;
        }
    }
    Ok((total / c as f64, rank))
}

/// Cosines between the rows of a matrix from their Gram matrix (C x C); `None` if a row is zero.
fn cosines(gram: &Array2<f64>) -> Option<Array2<f64>> {
    let norms: Vec<f64> = gram.diag().iter().map(|v| v.sqrt()).collect();
    if norms.contains(&0.0) {
        return None;
    }
    Some(Array2::from_shape_fn(gram.dim(), |(i, j)| {
        gram[[i, j]] / (norms[i] * norms[j])
    }))
}

/// Nearest class mean of every row (`argmin_c ||h - mu_c||`, ties to the lower index) and,
/// with a classifier, its prediction `argmax_c (w_c . h + b_c)`.
///
/// The scores `||mu_c||^2 - 2 h.mu_c` are f64 products of the rows and the means. For f32
/// rows they are first taken in f32 (half the time of f64 products): a row whose f32 nearest
/// mean beats the second nearest by more than twice [`F32ScoreBound`] (the largest difference
/// between an f32 and an f64 score, whatever the order of the sums) has the same nearest mean
/// in f64; the others, near-ties, are multiplied again in f64.
pub(crate) fn predictions<F: Real>(
    x: ArrayView2<F>,
    means: &Array2<f64>,
    classifier: Option<&Classifier>,
) -> (Vec<u32>, Option<Vec<u32>>) {
    let mean_sq: Array1<f64> = means.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mean_sq = mean_sq.as_slice().expect("a new vector is contiguous");
    let (n, d) = x.dim();
    let screen = F::SINGLE.then(|| F32Screen::new(means, mean_sq)).flatten();
    // Each thread widens (or copies) its chunks of rows into one buffer and multiplies them
    // into one buffer of scores: no new memory per chunk. The chunks are those of
    // `map_row_chunks`, so are the bits.
    let outputs = classifier.map_or(0, |w| w.weights.nrows());
    let c = means.nrows();
    let chunks: Vec<(Vec<u32>, Option<Vec<u32>>)> = (0..n.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .map_init(
            || ScoreBuffers::new(ROW_CHUNK.min(n), d, c, outputs, screen.is_some()),
            |buffers, chunk| {
                let rows: Vec<usize> =
                    (chunk * ROW_CHUNK..((chunk + 1) * ROW_CHUNK).min(n)).collect();
                let ScoreBuffers {
                    rows64,
                    scores64,
                    logits,
                    rows32,
                    scores32,
                } = buffers;
                // Every row in f64 when a product in f64 needs them all.
                if classifier.is_some() || screen.is_none() {
                    widen_into(rows64, x, &rows);
                }
                let predicted = classifier.map(|w| {
                    let block = rows64.slice(ndarray::s![..rows.len(), ..]);
                    let mut logits = logits.slice_mut(ndarray::s![..rows.len(), ..]);
                    general_mat_mul(1.0, &block, &w.weights.t(), 0.0, &mut logits);
                    logits
                        .rows()
                        .into_iter()
                        .map(|row| match &w.bias {
                            Some(b) => argmin(row.iter().zip(b.iter()).map(|(l, b)| -(l + b))),
                            None => argmin(row.iter().map(|l| -l)),
                        })
                        .collect::<Vec<u32>>()
                });
                let nearest = match &screen {
                    Some(screen) => {
                        let (mut nearest, near_ties) = screen.nearest(x, &rows, rows32, scores32);
                        if !near_ties.is_empty() {
                            let tied: Vec<usize> = near_ties.iter().map(|&r| rows[r]).collect();
                            widen_into(rows64, x, &tied);
                            let again =
                                nearest_of_widened(rows64, tied.len(), means, mean_sq, scores64);
                            for (&r, best) in near_ties.iter().zip(again) {
                                nearest[r] = best;
                            }
                        }
                        nearest
                    }
                    None => nearest_of_widened(rows64, rows.len(), means, mean_sq, scores64),
                };
                (nearest, predicted)
            },
        )
        .collect();
    let nearest = chunks.iter().flat_map(|(n, _)| n.iter().cloned()).collect();
    let predicted = classifier.map(|_| {
        chunks
            .iter()
            .flat_map(|(_, p)| p.as_ref().expect("classifier given").iter().cloned())
            .collect()
    });
    (nearest, predicted)
}

/// One thread's buffers of [`predictions`], reused from chunk to chunk.
struct ScoreBuffers {
    /// Rows widened to f64 (up to a chunk).
    rows64: Array2<f64>,
    /// f64 scores of those rows.
    scores64: Array2<f64>,
    /// Classifier logits of a chunk.
    logits: Array2<f64>,
    /// A chunk's rows in f32 (none without the f32 screen).
    rows32: Array2<f32>,
    /// Their f32 products with the means.
    scores32: Array2<f32>,
}

impl ScoreBuffers {
    /// With the f32 screen, the f64 buffers start empty and grow to the rows that need them
    /// (the near-ties, or every row for a classifier).
    fn new(rows: usize, d: usize, c: usize, outputs: usize, screen: bool) -> Self {
        let (screened, widened) = if screen { (rows, 0) } else { (0, rows) };
        ScoreBuffers {
            rows64: Array2::zeros((widened, d)),
            scores64: Array2::zeros((widened, c)),
            logits: Array2::zeros((rows, outputs)),
            rows32: Array2::zeros((screened, d)),
            scores32: Array2::zeros((screened, c)),
        }
    }
}

/// Grow `buffer` to at least `rows` rows (its contents are overwritten before use).
fn at_least_rows(buffer: &mut Array2<f64>, rows: usize) {
    if buffer.nrows() < rows {
        *buffer = Array2::zeros((rows, buffer.ncols()));
    }
}

/// Widen the rows `rows` of `x` to f64 into the first rows of `buffer`.
fn widen_into<F: Real>(buffer: &mut Array2<f64>, x: ArrayView2<F>, rows: &[usize]) {
    at_least_rows(buffer, rows.len());
    for (out, &i) in buffer.outer_iter_mut().zip(rows) {
        let out = out
            .into_slice()
            .expect("rows of a new matrix are contiguous");
        crate::kernels::rows::widen_row(out, &crate::kernels::rows::contiguous(&x.row(i)));
    }
}

/// [`nearest_mean`] of the first `rows` rows of `widened` from their f64 products with the
/// means (into `scores`).
fn nearest_of_widened(
    widened: &Array2<f64>,
    rows: usize,
    means: &Array2<f64>,
    mean_sq: &[f64],
    scores: &mut Array2<f64>,
) -> Vec<u32> {
    let block = widened.slice(ndarray::s![..rows, ..]);
    at_least_rows(scores, rows);
    let mut scores = scores.slice_mut(ndarray::s![..rows, ..]);
    general_mat_mul(1.0, &block, &means.t(), 0.0, &mut scores);
    scores
        .rows()
        .into_iter()
        .map(|s| nearest_mean(s.as_slice().expect("rows of a buffer"), mean_sq))
        .collect()
}

/// The f32 screen of [`predictions`]: the means and their squared norms rounded to f32, and
/// the bound on the f32 scores' error.
struct F32Screen {
    bound: F32ScoreBound,
    means: Array2<f32>,
    mean_sq: Vec<f32>,
}

impl F32Screen {
    /// `None` when the means are too large for f32 products ([`F32ScoreBound::new`]).
    fn new(means: &Array2<f64>, mean_sq: &[f64]) -> Option<Self> {
        Some(F32Screen {
            bound: F32ScoreBound::new(means, mean_sq)?,
            means: means.mapv(|v| v as f32),
            mean_sq: mean_sq.iter().map(|&v| v as f32).collect(),
        })
    }

    /// The f32 nearest mean of each of the rows `rows` of `x` (copied into `rows32`, scored
    /// into `scores32`), and the positions in `rows` of the near-ties, whose lead over the
    /// second nearest is not more than twice the bound (or NaN): their f64 nearest mean may
    /// differ.
    fn nearest<F: Real>(
        &self,
        x: ArrayView2<F>,
        rows: &[usize],
        rows32: &mut Array2<f32>,
        scores32: &mut Array2<f32>,
    ) -> (Vec<u32>, Vec<usize>) {
        let mut block = rows32.slice_mut(ndarray::s![..rows.len(), ..]);
        let mut norms = Vec::with_capacity(rows.len());
        for (out, &i) in block.outer_iter_mut().zip(rows) {
            let row = x.row(i);
            let row = crate::kernels::rows::contiguous(&row);
            norms.push(crate::kernels::rows::sum_of_squares(&row).sqrt());
            for (o, v) in out.into_iter().zip(row.iter()) {
                *o = v.as_f64() as f32;
            }
        }
        let mut scores = scores32.slice_mut(ndarray::s![..rows.len(), ..]);
        general_mat_mul(1.0, &block, &self.means.t(), 0.0, &mut scores);
        let mut nearest = Vec::with_capacity(rows.len());
        let mut near_ties = Vec::new();
        for (r, (s, &norm)) in scores.rows().into_iter().zip(&norms).enumerate() {
            let s = s.as_slice().expect("rows of a buffer");
            let (best, lead) = screened_nearest_mean(s, &self.mean_sq);
            let decided = lead > 2.0 * self.bound.of_row(norm);
            if !decided {
                near_ties.push(r);
            }
            nearest.push(best);
        }
        (nearest, near_ties)
    }
}

/// A bound on `|s32_c - s_c|` for every class `c` of one row `h`, where `s_c = ||mu_c||^2 -
/// 2 h.mu_c` exactly and `s32_c` is computed in f32 from f32 rows, the means rounded to f32
/// and `||mu_c||^2` rounded to f32, with the sum over the D coordinates in any order; plus the
/// same bound for the f64 computation. With `A = ||h|| max_c ||mu_c||` (Cauchy-Schwarz bounds
/// `sum_k |h_k mu_ck|` by it), `u = 2^-24`, `gamma_D = D u / (1 - D u)`:
/// `2 (u + gamma_D (1 + u)) A + (4 D + 4)(1 + ||h||) 2^-149` (the products, their sums and
/// the means' rounding, an absolute term for subnormal values) `+ u ||mu||^2 + u (||mu||^2 + 2 A)` (rounding the squared
/// norm and the difference), plus `(D + 4) 2^-53 (||mu||^2 + 2 A)` for the f64 scores; all
/// times 1.01.
#[derive(Debug, Clone, Copy)]
struct F32ScoreBound {
    /// `max_c ||mu_c||`.
    largest_mean: f64,
    /// `max_c ||mu_c||^2`.
    largest_sq: f64,
    d: f64,
}

impl F32ScoreBound {
    /// The bound for these means, or `None` when f32 products could overflow (means or rows
    /// beyond 1e18 in norm are scored in f64 only).
    fn new(means: &Array2<f64>, mean_sq: &[f64]) -> Option<Self> {
        let largest_sq = mean_sq.iter().cloned().fold(0.0f64, f64::max);
        let d = means.ncols() as f64;
        let unit = 2f64.powi(-24);
        (largest_sq <= 1e36 && d * unit < 0.01).then_some(F32ScoreBound {
            largest_mean: largest_sq.sqrt(),
            largest_sq,
            d,
        })
    }

    /// The bound for a row of norm `norm` (infinite for rows whose products could overflow).
    fn of_row(&self, norm: f64) -> f64 {
        let in_range = norm <= 1e18;
        if !in_range {
            return f64::INFINITY;
        }
        let u = 2f64.powi(-24);
        let gamma = self.d * u / (1.0 - self.d * u);
        let a = norm * self.largest_mean;
        // Subnormal f32 products, means and scores: absolute errors of at most 2^-149 each.
        let underflow = (4.0 * self.d + 4.0) * (1.0 + norm) * 2f64.powi(-149);
        let products = 2.0 * (u + gamma * (1.0 + u)) * a + underflow;
        let rounding = u * self.largest_sq + u * (self.largest_sq + 2.0 * a);
        let f64_scores = (self.d + 4.0) * 2f64.powi(-53) * (self.largest_sq + 2.0 * a);
        1.01 * (products + rounding + f64_scores)
    }
}

/// `offer(lane, c, sq_c - two * p_c)` for every class `c` in lane `c mod LANES`: blocks of
/// `LANES` classes (so that the lanes vectorise), then the tail.
#[inline(always)]
fn scan_scores<T, const LANES: usize>(
    products: &[T],
    mean_sq: &[T],
    two: T,
    mut offer: impl FnMut(usize, usize, T),
) where
    T: Copy + std::ops::Sub<Output = T> + std::ops::Mul<Output = T>,
{
    let ((product_blocks, product_tail), (sq_blocks, sq_tail)) =
        (products.as_chunks::<LANES>(), mean_sq.as_chunks::<LANES>());
    for (block, (p, sq)) in product_blocks.iter().zip(sq_blocks).enumerate() {
        for lane in 0..LANES {
            offer(lane, block * LANES + lane, sq[lane] - two * p[lane]);
        }
    }
    let start = product_blocks.len() * LANES;
    for (lane, (&p, &sq)) in product_tail.iter().zip(sq_tail).enumerate() {
        offer(lane, start + lane, sq - two * p);
    }
}

crate::kernels::rows::widened! {
    /// The f32 nearest mean `argmin_c (sq_c - 2 s_c)` of one row's f32 products `s` and its
    /// lead over the second nearest (0 on a tie), found in sixteen lanes.
    fn screened_nearest_mean(products: &[f32], mean_sq: &[f32]) -> (u32, f64) {
        const LANES: usize = 16;
        let mut best = [f32::INFINITY; LANES];
        let mut second = [f32::INFINITY; LANES];
        let mut index = [0u32; LANES];
        scan_scores::<f32, LANES>(products, mean_sq, 2.0, |lane, c, value| {
            let better = value < best[lane];
            let runner_up = if value < second[lane] { value } else { second[lane] };
            second[lane] = if better { best[lane] } else { runner_up };
            best[lane] = if better { value } else { best[lane] };
            index[lane] = if better { c as u32 } else { index[lane] };
        });
        let lane = (0..LANES).fold(0, |b, l| if best[l] < best[b] { l } else { b });
        let runner_up = (0..LANES)
            .filter(|&l| l != lane)
            .map(|l| best[l])
            .fold(second[lane], f32::min);
        (index[lane], f64::from(runner_up) - f64::from(best[lane]))
    }
}

crate::kernels::rows::widened! {
    /// `argmin_c (||mu_c||^2 - 2 h.mu_c)` from the products `dots[c] = h.mu_c` and the squared
    /// norms `mean_sq`: [`argmin`]'s answer (the first index on ties), found in eight lanes
    /// (lane `l` keeps the first smallest of the indices `l mod 8`, then the smallest value
    /// with the smallest index wins), so that it vectorises.
    fn nearest_mean(dots: &[f64], mean_sq: &[f64]) -> u32 {
        const LANES: usize = 8;
        let (mut values, mut indices) = ([f64::INFINITY; LANES], [0u32; LANES]);
        scan_scores::<f64, LANES>(dots, mean_sq, 2.0, |lane, c, value| {
            let better = value < values[lane];
            values[lane] = if better { value } else { values[lane] };
            indices[lane] = if better { c as u32 } else { indices[lane] };
        });
        let mut winner = (0u32, f64::INFINITY);
        for (&c, &value) in indices.iter().zip(&values) {
            if value < winner.1 || (value == winner.1 && c < winner.0) {
                winner = (c, value);
            }
        }
        winner.0
    }
}

/// Index of the smallest value, the first one on ties.
fn argmin(values: impl Iterator<Item = f64>) -> u32 {
    let mut best = (0u32, f64::INFINITY);
    for (i, v) in values.enumerate() {
        if v < best.1 {
            best = (i as u32, v);
        }
    }
    best.0
}

/// The CDNV matrix and its mean over `c < c'` from class means and variances; `None` when two
/// class means coincide.
pub fn cdnv(means: ArrayView2<f64>, variances: &[f64]) -> Option<Cdnv> {
    let centred = &means
        - &means
            .mean_axis(ndarray::Axis(0))?
            .insert_axis(ndarray::Axis(0));
    cdnv_with_gram(means, &centred.dot(&centred.t()), variances)
}

/// [`cdnv`] with the Gram matrix `G = M M^T` of the means about any common point: each squared
/// distance is `G_ii + G_jj - 2 G_ij` (one GEMM for all pairs), and taken again from the two
/// means directly where that sum could have lost more than 1e-9 of its value to cancellation
/// (`G_ii + G_jj - 2 G_ij <= 2 gamma_D (G_ii + G_jj) 10^9`, `gamma_D = D eps / (1 - D eps)`
/// the error bound of a D-term dot product), so the value is as accurate as the direct
/// differences and coinciding means are found exactly.
pub(crate) fn cdnv_with_gram(
    means: ArrayView2<f64>,
    gram: &Array2<f64>,
    variances: &[f64],
) -> Option<Cdnv> {
    let (c, d) = means.dim();
    let unit = d as f64 * f64::EPSILON;
    let guard = 2.0 * unit / (1.0 - unit).max(f64::EPSILON) * 1e9;
    let mut matrix = Array2::<f64>::zeros((c, c));
    let mut total = 0.0;
    for i in 0..c {
        for j in i + 1..c {
            let magnitude = gram[[i, i]] + gram[[j, j]];
            let mut gap = magnitude - 2.0 * gram[[i, j]];
            if gap <= guard * magnitude {
                gap = distance_sq(means.row(i), means.row(j));
            }
            if gap == 0.0 {
                return None;
            }
            let v = (variances[i] + variances[j]) / (2.0 * gap);
            matrix[[i, j]] = v;
            matrix[[j, i]] = v;
            total += v;
        }
    }
    let pairs = (c * (c - 1) / 2) as f64;
    (c >= 2).then(|| Cdnv {
        mean: total / pairs,
        matrix,
    })
}

fn distance_sq(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(u, v)| (u - v).powi(2)).sum()
}

/// Every neural-collapse metric of raw features `x` with labels `classes` (statistics from
/// [`crate::class_stats`]) and an optional classifier.
pub fn collapse<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    stats: &ClassStats,
    classifier: Option<&Classifier>,
) -> Result<Collapse> {
    collapse_timed(x, classes, stats, classifier, &Timings::default())
}

/// [`collapse`], recorded in `timings` as two stages: `collapse (nearest class mean)`, the
/// N x C x D products of the rows with the class means (and the classifier), and `collapse
/// (class means)`, the metrics of the class statistics ([`class_means_work`]).
pub fn collapse_timed<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    stats: &ClassStats,
    classifier: Option<&Classifier>,
    timings: &Timings,
) -> Result<Collapse> {
    let (n, d, c) = (
        x.nrows() as f64,
        x.ncols() as f64,
        stats.num_classes() as f64,
    );
    // The rows against the C means, and against the C classifier rows when there are some.
    let outputs = c * if classifier.is_some() { 2.0 } else { 1.0 };
    let out = timings.time(
        "collapse (nearest class mean)",
        gemm_work::<F>(n, outputs, d),
        || nearest_class_means(x, classes, stats, classifier),
    )?;
    timings.time(
        "collapse (class means)",
        class_means_work(stats.num_classes(), stats.means.ncols()),
        || collapse_from_stats(out, stats, classes.names(), classifier),
    )
}

/// The work of [`collapse_from_stats`] for C classes in D dimensions: the C x C Gram matrix of
/// the centred means (`2 C^2 D`; it serves NC1, the angles, the ETF distance and the CDNV's
/// distances), and the NC1 eigendecomposition with its vectors (about `3 m^3` by `dsyevd`,
/// m = C, or D when `C >= D`, where `Sigma_B` is D x D: `2 C D^2` more) and `W V` (`2 m^3`).
pub fn class_means_work(c: usize, d: usize) -> Work {
    let (cf, df) = (c as f64, d as f64);
    let side = c.min(d) as f64;
    let between = match c < d {
        true => 0.0,
        false => 2.0 * cf * df * df,
    };
    Work::Decomposition {
        products: 2.0 * cf * cf * df + between + 2.0 * side.powi(3),
        eigen: 3.0 * side.powi(3),
    }
}

/// The nearest-class-mean accuracy and NC4 of the rows (the rest of [`Collapse`] empty).
fn nearest_class_means<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    stats: &ClassStats,
    classifier: Option<&Classifier>,
) -> Result<Collapse> {
    single_threaded_blas();
    let c = stats.num_classes();
    let d = x.ncols();
    if let Some(w) = classifier {
        if w.weights.dim() != (c, d) {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "classifier weights have shape {:?}, expected (C, D) = {:?}",
                    w.weights.dim(),
                    (c, d)
                ),
            });
        }
        if let Some(b) = &w.bias {
            if b.len() != c {
                return Err(GeometryError::ShapeMismatch {
                    what: format!("classifier bias has {} entries for {c} classes", b.len()),
                });
            }
        }
    }
    let (nearest, predicted) = predictions(x, &stats.means, classifier);
    let n = x.nrows() as f64;
    let ncc_accuracy = nearest
        .iter()
        .zip(classes.labels())
        .filter(|(a, b)| a == b)
        .count() as f64
        / n;
    let nc4 = predicted.map(|p| p.iter().zip(&nearest).filter(|(a, b)| a != b).count() as f64 / n);
    Ok(Collapse {
        ncc_accuracy: Some(ncc_accuracy),
        nc4,
        ..Collapse::default()
    })
}

/// The collapse metrics that need only the class statistics (NC1-NC3, ETF distance, CDNV),
/// added to `out`; `names` name the classes in warnings.
pub fn collapse_from_stats(
    mut out: Collapse,
    stats: &ClassStats,
    names: &[String],
    classifier: Option<&Classifier>,
) -> Result<Collapse> {
    let c = stats.num_classes();
    let d = stats.means.ncols();
    if c < 2 {
        out.warnings.push(
            "one class: the collapse metrics (NC1-NC3, ETF distance, CDNV) need at least 2 classes"
                .into(),
        );
        return Ok(out);
    }
    if c > d + 1 {
        out.warnings.push(format!(
            "C = {c} > D + 1 = {}: a regular simplex of {c} points cannot exist in {d} dimensions, so equiangularity, max-angle and ETF distance cannot reach 0",
            d + 1
        ));
    }
    if let Some(single) = stats.counts.iter().position(|&n| n == 1) {
        out.warnings.push(format!(
            "class {:?} has a single row: its within-class variance is 0 by construction",
            names[single]
        ));
    }
    let m = stats.centred_means();
    let trace_w = stats.within_trace;
    // tr(Sigma_B) = ||M||_F^2 / C, without forming the D x D matrix.
    let trace_b: f64 = m.iter().map(|v| v * v).sum::<f64>() / c as f64;
    if trace_b == 0.0 {
        out.warnings.push(if trace_w == 0.0 {
            "constant input: every row is the same (full collapse); class means coincide, so the between-class metrics are undefined".into()
        } else {
            "all class means coincide (Sigma_B = 0): NC1, NC2, NC3, ETF distance and CDNV are undefined".into()
        });
        out.nc1 = (trace_w == 0.0).then_some(0.0);
        return Ok(out);
    }
    let gram = m.dot(&m.t());
    let (nc1, rank) = nc1_with_gram(stats, &m, &gram)?;
    out.nc1 = Some(nc1);
    out.nc1_rank = rank;
    out.nc1_quotient = Some(trace_w / trace_b);
    if trace_w == 0.0 {
        out.warnings
            .push("Sigma_W = 0: every row equals its class mean (full class collapse)".into());
    }
    out.nc2_equinorm = std_over_mean(&row_norms(&m));
    match cosines(&gram) {
        Some(cos) => {
            let off: Vec<f64> = (0..c)
                .flat_map(|i| (0..c).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| cos[[i, j]])
                .collect();
            let count = off.len() as f64;
            let mean = off.iter().sum::<f64>() / count;
            out.nc2_equiangularity = (off.len() > 1).then(|| {
                (off.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0)).sqrt()
            });
            let ideal = 1.0 / (c as f64 - 1.0);
            out.nc2_max_angle = Some(off.iter().map(|v| (v + ideal).abs()).sum::<f64>() / count);
        }
        None => out.warnings.push(
            "a class mean equals the global mean: its angle is undefined (NC2 equiangularity, max-angle)".into(),
        ),
    }
    let ideal = (Array2::<f64>::eye(c) - 1.0 / c as f64) / (c as f64 - 1.0).sqrt();
    out.etf_distance = Some(frobenius(&(&gram / frobenius(&gram) - &ideal)));
    if let Some(w) = classifier {
        out.nc2_equinorm_classifier = std_over_mean(&row_norms(&w.weights));
        let (nw, nm) = (frobenius(&w.weights), frobenius(&m));
        out.nc3 = (nw > 0.0).then(|| {
            let diff = &w.weights / nw - &m / nm;
            diff.iter().map(|v| v * v).sum()
        });
    }
    out.cdnv = cdnv_with_gram(stats.means.view(), &gram, &stats.within_variance);
    if out.cdnv.is_none() {
        out.warnings
            .push("two class means coincide: CDNV is undefined".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CDNV from one Gram matrix equals the direct differences, also for means so close
    /// (next to a large common offset) that the Gram sum would cancel, and coinciding means
    /// are found.
    #[test]
    fn cdnv_from_the_gram_matrix_equals_the_direct_distances() {
        let mut means = crate::kernels::test_data::pseudo_random(6, 300, 1);
        let offset = crate::kernels::test_data::pseudo_random(1, 300, 2) * 1e4;
        means += &offset;
        let close = &means.row(0)
            + &(crate::kernels::test_data::pseudo_random(1, 300, 3)
                .row(0)
                .to_owned()
                * 1e-6);
        means.row_mut(1).assign(&close);
        let variances = [1.0, 2.0, 0.5, 3.0, 1.5, 0.25];
        let got = cdnv(means.view(), &variances).unwrap();
        for i in 0..6 {
            for j in 0..6 {
                if i != j {
                    let gap = distance_sq(means.row(i), means.row(j));
                    let want = (variances[i] + variances[j]) / (2.0 * gap);
                    let value = got.matrix[[i, j]];
                    assert!(
                        (value - want).abs() <= 1e-9 * want,
                        "{i} {j}: {value} vs {want}"
                    );
                }
            }
        }
        let row = means.row(2).to_owned();
        means.row_mut(4).assign(&row);
        assert!(cdnv(means.view(), &variances).is_none());
    }

    /// The eight-lane search returns the sequential first minimum for every length, with ties
    /// (within and across lanes), infinities and NaNs.
    #[test]
    fn nearest_mean_is_the_first_smallest() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut draw = |levels: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % levels) as f64
        };
        for len in 0..70 {
            for trial in 0..20 {
                let levels = if trial % 2 == 0 { 3 } else { 1000 };
                let dots: Vec<f64> = (0..len).map(|_| draw(levels) - 1.0).collect();
                let mut mean_sq: Vec<f64> = (0..len).map(|_| draw(levels)).collect();
                if trial % 5 == 4 && len > 2 {
                    mean_sq[len / 2] = f64::INFINITY;
                    mean_sq[len / 3] = f64::NAN;
                }
                let want = argmin(dots.iter().zip(&mean_sq).map(|(d, sq)| sq - 2.0 * d));
                assert_eq!(
                    nearest_mean(&dots, &mean_sq),
                    want,
                    "len {len}, trial {trial}"
                );
            }
        }
        let infinite = [f64::INFINITY; 11];
        assert_eq!(nearest_mean(&[0.0; 11], &infinite), 0);
    }

    /// The sixteen-lane f32 search returns the first smallest score and its lead over the
    /// next one (0 on a tie), for every length.
    #[test]
    fn screened_nearest_mean_is_the_smallest_and_its_lead() {
        for len in 1..70usize {
            let products: Vec<f32> = (0..len).map(|c| ((c * 37) % 23) as f32 * 0.25).collect();
            let mean_sq: Vec<f32> = (0..len).map(|c| ((c * 11) % 7) as f32).collect();
            let scores: Vec<f64> = products
                .iter()
                .zip(&mean_sq)
                .map(|(p, sq)| f64::from(sq - 2.0 * p))
                .collect();
            let best = argmin(scores.iter().cloned());
            let runner_up = scores
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != best as usize)
                .map(|(_, &v)| v)
                .fold(f64::INFINITY, f64::min);
            let (got, lead) = screened_nearest_mean(&products, &mean_sq);
            assert_eq!(lead, runner_up - scores[best as usize], "len {len}");
            if lead > 0.0 {
                assert_eq!(got, best, "len {len}");
            }
        }
    }

    /// Rows a hair from the midpoint of two class means, on both sides (f32 rows, so the f32
    /// screen runs): every nearest mean is the one of the f64 scores, the near-ties among
    /// them decided again in f64; and the bound holds on every f32 score.
    #[test]
    fn f32_screened_nearest_means_are_those_of_the_f64_scores() {
        let (d, c) = (64, 5);
        let wave = |i: usize, k: usize| ((i * 7 + k * 13) % 17) as f64 / 17.0 - 0.5;
        let means = Array2::from_shape_fn((c, d), |(i, k)| wave(i, k) * (1.0 + i as f64));
        let mut rows = Vec::new();
        for step in 0..400 {
            let (a, b) = (step % c, (step + 1 + step / c) % c);
            let (a, b) = if a == b { (a, (b + 1) % c) } else { (a, b) };
            // From the midpoint towards a (even steps) or b, by 1e-9 to 1e-5 of the gap.
            let towards = 10f64.powf(-9.0 + (step % 9) as f64 * 0.5);
            let sign = if step % 2 == 0 { 1.0 } else { -1.0 };
            for k in 0..d {
                let mid = 0.5 * (means[[a, k]] + means[[b, k]]);
                let pull = sign * towards * (means[[a, k]] - means[[b, k]]);
                rows.push((mid + pull) as f32);
            }
        }
        let x32 = Array2::from_shape_vec((rows.len() / d, d), rows).unwrap();
        let x64 = x32.mapv(f64::from);
        let (screened, _) = predictions(x32.view(), &means, None);
        let (exact, _) = predictions(x64.view(), &means, None);
        assert_eq!(screened, exact);
        // With a classifier too (its logits in f64 from every row).
        let classifier = Classifier {
            weights: means.mapv(|v| v * 0.5 + 0.01),
            bias: Some(Array1::from_shape_fn(c, |k| k as f64 * 0.1)),
        };
        let screened = predictions(x32.view(), &means, Some(&classifier));
        let exact = predictions(x64.view(), &means, Some(&classifier));
        assert_eq!(screened, exact);
        // The f32 scores stay within the bound of the f64 ones, and some rows are near-ties.
        let mean_sq: Vec<f64> = means.rows().into_iter().map(|r| r.dot(&r)).collect();
        let bound = F32ScoreBound::new(&means, &mean_sq).unwrap();
        let means32 = means.mapv(|v| v as f32);
        let mut near_ties = 0;
        for (row32, row64) in x32.rows().into_iter().zip(x64.rows()) {
            let norm = row64.dot(&row64).sqrt();
            for (k, &sq) in mean_sq.iter().enumerate() {
                let s32 = (sq as f32) - 2.0 * row32.dot(&means32.row(k));
                let s64 = sq - 2.0 * row64.dot(&means.row(k));
                assert!((f64::from(s32) - s64).abs() <= bound.of_row(norm));
            }
            let products: Vec<f32> = (0..c).map(|k| row32.dot(&means32.row(k))).collect();
            let sq32: Vec<f32> = mean_sq.iter().map(|&v| v as f32).collect();
            if screened_nearest_mean(&products, &sq32).1 <= 2.0 * bound.of_row(norm) {
                near_ties += 1;
            }
        }
        assert!(near_ties >= 50, "{near_ties} near-ties");
    }
}
