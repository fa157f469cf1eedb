//! Neural-collapse metrics (Papyan, Han & Donoho, PNAS 2020, "Prevalence of neural collapse
//! during the terminal phase of deep learning training") and the class-distance normalised
//! variance (Galanti, Gyorgy & Hutter, ICLR 2022), with the conventions of
//! `docs/metrics.md` (the unweighted global mean, two-pass variances, NC3 squared).

use crate::classes::Classes;
use crate::error::{GeometryError, Result};
use crate::real::Real;
use crate::stats::ClassStats;
use crate::tiles::{single_threaded_blas, ROW_CHUNK};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use ndarray_linalg::{Eigh, UPLO};
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
    /// Fraction of rows whose nearest class mean is their own class.
    pub ncc_accuracy: f64,
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
    #[serde(with = "crate::serde_rows")]
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
pub fn nc1(stats: &ClassStats) -> Result<(f64, usize)> {
    let c = stats.num_classes();
    let sigma_b = stats.between_covariance();
    let d = sigma_b.nrows();
    let (values, vectors) = sigma_b
        .eigh(UPLO::Lower)
        .map_err(|e| GeometryError::Numerical {
            what: format!("eigendecomposition of Sigma_B failed: {e}"),
        })?;
    let lambda_max = values.iter().cloned().fold(0.0f64, f64::max);
    let cut = d.max(c) as f64 * f64::EPSILON * lambda_max;
    let mut total = 0.0;
    let mut rank = 0;
    for (k, &lambda) in values.iter().enumerate() {
        if lambda > cut && lambda > 0.0 {
            let v = vectors.column(k);
            total += v.dot(&stats.within_covariance.dot(&v)) / lambda;
            rank += 1;
        }
    }
    Ok((total / c as f64, rank))
}

/// Cosines between the rows of `m` (C x C); `None` if a row is zero.
fn cosines(m: &Array2<f64>) -> Option<Array2<f64>> {
    let norms = row_norms(m);
    if norms.contains(&0.0) {
        return None;
    }
    let gram = m.dot(&m.t());
    Some(Array2::from_shape_fn(gram.dim(), |(i, j)| {
        gram[[i, j]] / (norms[i] * norms[j])
    }))
}

/// Nearest class mean of every row (`argmin_c ||h - mu_c||`, ties to the lower index) and,
/// with a classifier, its prediction `argmax_c (w_c . h + b_c)`.
pub(crate) fn predictions<F: Real>(
    x: ArrayView2<F>,
    means: &Array2<f64>,
    classifier: Option<&Classifier>,
) -> (Vec<u32>, Option<Vec<u32>>) {
    let mean_sq: Array1<f64> = means.rows().into_iter().map(|r| r.dot(&r)).collect();
    let (n, d) = x.dim();
    // Each thread widens its chunks of rows into one f64 buffer and multiplies them into one
    // buffer of scores: no new memory per chunk. The chunks and their products are those of
    // `map_row_chunks`, so are the bits.
    let outputs = classifier.map_or(0, |w| w.weights.nrows());
    let chunks: Vec<(Vec<u32>, Option<Vec<u32>>)> = (0..n.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .map_init(
            || {
                let rows = ROW_CHUNK.min(n);
                (
                    Array2::<f64>::zeros((rows, d)),
                    Array2::<f64>::zeros((rows, means.nrows())),
                    Array2::<f64>::zeros((rows, outputs)),
                )
            },
            |(block, scores, logits), chunk| {
                let range = chunk * ROW_CHUNK..((chunk + 1) * ROW_CHUNK).min(n);
                let rows = range.len();
                let mut block = block.slice_mut(ndarray::s![..rows, ..]);
                for (out, i) in block.outer_iter_mut().zip(range) {
                    let out = out
                        .into_slice()
                        .expect("rows of a new matrix are contiguous");
                    crate::rows::widen_row(out, &crate::rows::contiguous(&x.row(i)));
                }
                let mut scores = scores.slice_mut(ndarray::s![..rows, ..]);
                general_mat_mul(1.0, &block, &means.t(), 0.0, &mut scores);
                let mean_sq = mean_sq.as_slice().expect("a new vector is contiguous");
                let nearest: Vec<u32> = scores
                    .rows()
                    .into_iter()
                    .map(|s| nearest_mean(s.as_slice().expect("rows of a buffer"), mean_sq))
                    .collect();
                let predicted = classifier.map(|w| {
                    let mut logits = logits.slice_mut(ndarray::s![..rows, ..]);
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

crate::rows::widened! {
    /// `argmin_c (||mu_c||^2 - 2 h.mu_c)` from the products `dots[c] = h.mu_c` and the squared
    /// norms `mean_sq`: [`argmin`]'s answer (the first index on ties), found in eight lanes
    /// (lane `l` keeps the first smallest of the indices `l mod 8`, then the smallest value
    /// with the smallest index wins), so that it vectorises.
    fn nearest_mean(dots: &[f64], mean_sq: &[f64]) -> u32 {
        const LANES: usize = 8;
        let (mut values, mut indices) = ([f64::INFINITY; LANES], [0u32; LANES]);
        let mut offer = |lane: usize, c: usize, value: f64| {
            let better = value < values[lane];
            values[lane] = if better { value } else { values[lane] };
            indices[lane] = if better { c as u32 } else { indices[lane] };
        };
        let ((dot_blocks, dot_tail), (sq_blocks, sq_tail)) =
            (dots.as_chunks::<LANES>(), mean_sq.as_chunks::<LANES>());
        for (block, (dot, sq)) in dot_blocks.iter().zip(sq_blocks).enumerate() {
            for lane in 0..LANES {
                offer(lane, block * LANES + lane, sq[lane] - 2.0 * dot[lane]);
            }
        }
        let start = dot_blocks.len() * LANES;
        for (lane, (dot, sq)) in dot_tail.iter().zip(sq_tail).enumerate() {
            offer(lane, start + lane, sq - 2.0 * dot);
        }
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
    let c = means.nrows();
    let mut matrix = Array2::<f64>::zeros((c, c));
    let mut total = 0.0;
    for i in 0..c {
        for j in i + 1..c {
            let gap: f64 = distance_sq(means.row(i), means.row(j));
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
    let out = Collapse {
        ncc_accuracy,
        nc4,
        ..Collapse::default()
    };
    collapse_from_stats(out, stats, classes.names(), classifier)
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
    let trace_w: f64 = stats.within_covariance.diag().sum();
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
    let (nc1, rank) = nc1(stats)?;
    out.nc1 = Some(nc1);
    out.nc1_rank = rank;
    out.nc1_quotient = Some(trace_w / trace_b);
    if stats.within_covariance.diag().iter().all(|&v| v == 0.0) {
        out.warnings
            .push("Sigma_W = 0: every row equals its class mean (full class collapse)".into());
    }
    out.nc2_equinorm = std_over_mean(&row_norms(&m));
    match cosines(&m) {
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
    let gram = m.dot(&m.t());
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
    out.cdnv = cdnv(stats.means.view(), &stats.within_variance);
    if out.cdnv.is_none() {
        out.warnings
            .push("two class means coincide: CDNV is undefined".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
