//! The numbers behind the diagnostic figures: pair-distance samples, a 2-D PCA projection of
//! the normalised rows, class-mean cosines, distances to class means, and the analytic
//! reference values of the alignment-uniformity plane. No plotting here.

use crate::error::{GeometryError, Result};
use crate::kernels::classes::Classes;
use crate::kernels::rows::squared_distance;
use crate::kernels::sampling::{stratified_rows, PairSampler};
use crate::kernels::scatter::column_block_gram;
use crate::kernels::tiles::single_threaded_blas;
use crate::metrics::real::Real;
use crate::metrics::spectrum::{column_means, covariance, symmetric_eigenpairs};
use crate::metrics::stats::class_means;
use ndarray::{Array2, ArrayView2, Axis};
use ndarray_linalg::{Eigh, UPLO};

/// `lim L_unif` for points uniform on `S^{D-1}` (Wang & Isola's uniformity of the uniform
/// distribution): `log E exp(-t ||x - y||^2)` with
/// `E = e^{-2t} sum_{k>=0} t^{2k} / (k! (D/2)_k)` (`(a)_k` the rising factorial), summed in
/// log space until the terms stop mattering.
pub fn uniform_sphere_uniformity(d: usize, t: f64) -> f64 {
    let half = d as f64 / 2.0;
    let mut log_term = 0.0f64; // k = 0
    let mut terms = vec![0.0f64];
    for k in 1..100_000 {
        let kf = k as f64;
        log_term += 2.0 * t.ln() - kf.ln() - (half + kf - 1.0).ln();
        terms.push(log_term);
        if log_term < terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - 40.0 && kf > t * t {
            break;
        }
    }
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    -2.0 * t + max + terms.iter().map(|l| (l - max).exp()).sum::<f64>().ln()
}

/// Pair distances for the histograms, on the rows as given (unit rows: distances in [0, 2]).
#[derive(Debug, Clone, PartialEq)]
pub struct PairDistances {
    /// `||x_i - x_j||` over all pairs `i < j`, or a uniform sample of them.
    pub all: Vec<f64>,
    /// Same-class pairs (with labels), all or sampled.
    pub same_class: Vec<f64>,
    /// `||x_i - y_i||` of row-matched views 0 and 1 (with views).
    pub positive: Vec<f64>,
    /// The `all` and `same_class` lists hold every pair (no sampling).
    pub exact: bool,
}

/// Distances of all pairs, same-class pairs and positive (view) pairs; pair lists larger than
/// `max_pairs` are replaced by `max_pairs` uniform draws from a seeded generator.
pub fn pair_distances<F: Real>(
    x: ArrayView2<F>,
    views: Option<(ArrayView2<F>, ArrayView2<F>)>,
    classes: Option<&Classes>,
    max_pairs: usize,
    seed: u64,
) -> PairDistances {
    let n = x.nrows();
    let distance = |i: usize, j: usize| squared_distance(x.row(i), x.row(j)).sqrt();
    let total = n * n.saturating_sub(1) / 2;
    let same_total: usize = classes.map_or(0, |c| {
        c.counts()
            .iter()
            .map(|&m| m * m.saturating_sub(1) / 2)
            .sum()
    });
    let exact = total <= max_pairs && same_total <= max_pairs;
    let mut sampler = PairSampler::new(seed, 0, n.max(2));
    let all = if exact {
        (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| distance(i, j))
            .collect()
    } else {
        (0..max_pairs.min(total))
            .map(|_| {
                let (i, j) = sampler.next_pair();
                distance(i, j)
            })
            .collect()
    };
    let same_class = match classes {
        None => Vec::new(),
        Some(classes) if exact => (0..classes.num_classes())
            .flat_map(|c| {
                let m = classes.members(c);
                (0..m.len()).flat_map(move |a| (a + 1..m.len()).map(move |b| (m[a], m[b])))
            })
            .map(|(i, j)| distance(i, j))
            .collect(),
        Some(classes) => {
            // Draw a class with probability proportional to its pair count, then a pair in it.
            let cumulative: Vec<usize> = classes
                .counts()
                .iter()
                .scan(0, |acc, &m| {
                    *acc += m * m.saturating_sub(1) / 2;
                    Some(*acc)
                })
                .collect();
            (0..max_pairs.min(same_total))
                .map(|_| {
                    let r = sampler.below(same_total as u64) as usize;
                    let c = cumulative.partition_point(|&v| v <= r);
                    let m = classes.members(c);
                    let a = sampler.below(m.len() as u64) as usize;
                    let mut b = sampler.below(m.len() as u64 - 1) as usize;
                    if b >= a {
                        b += 1;
                    }
                    distance(m[a], m[b])
                })
                .collect()
        }
    };
    let positive = views.map_or_else(Vec::new, |(a, b)| {
        (0..a.nrows())
            .map(|i| squared_distance(a.row(i), b.row(i)).sqrt())
            .collect()
    });
    PairDistances {
        all,
        same_class,
        positive,
        exact,
    }
}

/// A 2-D principal-component projection of (a stratified subset of) the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Projected rows (shown x 2), centred.
    pub points: Array2<f64>,
    /// Row index of each projected row in the input.
    pub rows: Vec<usize>,
    /// Fraction of the variance along each of the two axes.
    pub explained: [f64; 2],
    /// Rows in the input.
    pub total: usize,
}

/// Project `x` onto its top two principal components (eigenvectors of the covariance), for at
/// most `max_points` rows: every row, or a per-class stratified subset that keeps each class's
/// share (at least one row per class), chosen by a seeded generator.
pub fn pca_projection<F: Real>(
    x: ArrayView2<F>,
    classes: Option<&Classes>,
    max_points: usize,
    seed: u64,
) -> Result<Projection> {
    single_threaded_blas();
    let n = x.nrows();
    if x.ncols() < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "2-D projection (dimensions)",
            needed: 2,
            got: x.ncols(),
        });
    }
    let (axes, explained) = principal_axes(x)?;
    let rows = stratified_rows(n, classes, max_points, seed);
    let mean = column_means(x);
    let selected = x.select(Axis(0), &rows).mapv(F::as_f64) - &mean;
    Ok(Projection {
        points: selected.dot(&axes),
        rows,
        explained,
        total: n,
    })
}

/// The top two principal axes of the rows (D x 2, largest first) and the share of the variance
/// each explains: eigenvectors of the D x D covariance with at least as many rows as
/// dimensions; with fewer, of the N x N Gram matrix `Z Z^T` of the centred rows `Z`, whose
/// eigenvector `w` gives the axis `Z^T w / ||Z^T w||` (the same nonzero eigenvalues), so a wide
/// input never forms a D x D matrix.
pub(crate) fn principal_axes<F: Real>(x: ArrayView2<F>) -> Result<(Array2<f64>, [f64; 2])> {
    let (n, d) = x.dim();
    let (values, axes) = match n < d {
        false => {
            let (values, vectors) =
                covariance(x)?
                    .eigh(UPLO::Lower)
                    .map_err(|e| GeometryError::Numerical {
                        what: format!("eigendecomposition of the covariance failed: {e}"),
                    })?;
            let axes = vectors.select(Axis(1), &[d - 1, d - 2]);
            (values.to_vec(), axes)
        }
        true => {
            let mean = column_means(x).to_vec();
            let (values, vectors) = symmetric_eigenpairs(&column_block_gram(x, Some(&mean)).0)?;
            let top = vectors.select(Axis(1), &[n - 1, n - 2]);
            let mut axes = Array2::<f64>::zeros((d, 2));
            let mut centred = vec![0.0f64; d];
            for (i, weights) in top.outer_iter().enumerate() {
                crate::kernels::rows::centre_row(
                    &mut centred,
                    &crate::kernels::rows::contiguous(&x.row(i)),
                    &mean,
                );
                for (k, &w) in weights.iter().enumerate() {
                    axes.column_mut(k)
                        .iter_mut()
                        .zip(&centred)
                        .for_each(|(a, z)| *a += w * z);
                }
            }
            for mut axis in axes.columns_mut() {
                let norm = axis.dot(&axis).sqrt();
                if norm > 0.0 {
                    axis.mapv_inplace(|v| v / norm);
                }
            }
            (values, axes)
        }
    };
    let m = values.len();
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    let explained = match total > 0.0 && m >= 2 {
        true => [
            values[m - 1].max(0.0) / total,
            values[m - 2].max(0.0) / total,
        ],
        false => [0.0, 0.0],
    };
    Ok((axes, explained))
}

/// Cosines between the centred class means `mu_c - mu_G` (C x C).
pub fn class_mean_cosines<F: Real>(x: ArrayView2<F>, classes: &Classes) -> Array2<f64> {
    let means = class_means(x, classes);
    let centred = &means
        - &means
            .mean_axis(Axis(0))
            .expect("a class")
            .insert_axis(Axis(0));
    let norms: Vec<f64> = centred
        .rows()
        .into_iter()
        .map(|r| r.dot(&r).sqrt())
        .collect();
    let gram = centred.dot(&centred.t());
    Array2::from_shape_fn(gram.dim(), |(i, j)| {
        let scale = norms[i] * norms[j];
        if scale > 0.0 {
            gram[[i, j]] / scale
        } else {
            0.0
        }
    })
}

/// `||h_i - mu_c||` for the rows of each class (at most `max_per_class` rows per class, a
/// seeded subset beyond).
pub fn distances_to_class_means<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    max_per_class: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let means = class_means(x, classes);
    (0..classes.num_classes())
        .map(|c| {
            let members = classes.members(c);
            let rows = if members.len() > max_per_class {
                let picked = stratified_rows(members.len(), None, max_per_class, seed ^ c as u64);
                picked.into_iter().map(|i| members[i]).collect()
            } else {
                members.to_vec()
            };
            let mean = means.row(c);
            rows.iter()
                .map(|&i| {
                    x.row(i)
                        .iter()
                        .zip(mean.iter())
                        .map(|(v, m)| (v.as_f64() - m).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect()
        })
        .collect()
}

/// Everything the report's figures need besides the [`crate::Analysis`].
#[derive(Debug, Clone, PartialEq)]
pub struct FigureData {
    /// Analytic uniformity of the uniform sphere of the same D and t.
    pub sphere_uniformity: f64,
    /// The uniformity floor `-2tN/(N-1)` (regular simplex).
    pub simplex_floor: f64,
    /// Pair distances for the histograms.
    pub distances: PairDistances,
    /// 2-D PCA projection of the normalised rows.
    pub projection: Projection,
    /// Class index of each projected row (empty without labels).
    pub projection_labels: Vec<u32>,
    /// Cosines between centred class means (with labels).
    pub mean_cosines: Option<Array2<f64>>,
    /// Distances of rows to their class mean, per class (with labels).
    pub distances_to_means: Vec<Vec<f64>>,
}

/// Pairs kept for each distance histogram.
pub const FIGURE_MAX_PAIRS: usize = 1_000_000;
/// Rows kept in the projections.
pub const FIGURE_MAX_POINTS: usize = 5_000;
/// Rows per class kept for the distance-to-mean box plots.
pub const FIGURE_MAX_PER_CLASS: usize = 20_000;

/// Compute [`FigureData`] from the normalised rows `unit`, the raw rows `raw`, the first two
/// views and the classes.
pub fn figure_data<F: Real>(
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
    views: Option<(ArrayView2<F>, ArrayView2<F>)>,
    classes: Option<&Classes>,
    t: f64,
    seed: u64,
) -> Result<FigureData> {
    let (n, d) = unit.dim();
    let projection = pca_projection(unit, classes, FIGURE_MAX_POINTS, seed)?;
    let projection_labels = classes.map_or_else(Vec::new, |c| {
        projection.rows.iter().map(|&i| c.labels()[i]).collect()
    });
    Ok(FigureData {
        sphere_uniformity: uniform_sphere_uniformity(d, t),
        simplex_floor: -2.0 * t * n as f64 / (n as f64 - 1.0).max(1.0),
        distances: pair_distances(unit, views, classes, FIGURE_MAX_PAIRS, seed),
        projection,
        projection_labels,
        mean_cosines: classes.map(|c| class_mean_cosines(raw, c)),
        distances_to_means: classes.map_or_else(Vec::new, |c| {
            distances_to_class_means(raw, c, FIGURE_MAX_PER_CLASS, seed)
        }),
    })
}

/// Rows of each modality kept in the joint projection.
pub const CROSS_FIGURE_POINTS: usize = 2_500;
/// Matched (and as many unmatched) pairs kept for the similarity histograms.
pub const CROSS_FIGURE_PAIRS: usize = 200_000;

/// The numbers behind the figures of two modalities measured together (Liang et al.'s
/// Figure 1 and the similarity histograms); the gap's components and the R@k curves come with
/// the measurement itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossFigureData {
    /// A seeded subset of each modality's rows (at most [`CROSS_FIGURE_POINTS`] each) in one
    /// 2-D PCA of both subsets together, centred on their joint mean.
    pub points: (Array2<f64>, Array2<f64>),
    /// Each modality's centroid (of all its rows) in the same plane.
    pub centroids: ([f64; 2], [f64; 2]),
    /// Share of the joint subset's variance along each axis.
    pub explained: [f64; 2],
    /// Cosines of the matched pairs `(a_pi(j), b_j)` (a seeded subset beyond
    /// [`CROSS_FIGURE_PAIRS`]).
    pub matched: Vec<f64>,
    /// Cosines of as many seeded unmatched pairs `(a_i, b_j)`, `i != pi(j)`.
    pub unmatched: Vec<f64>,
}

/// Cosine of two rows (0 when one is zero).
fn cosine<F: Real>(a: ndarray::ArrayView1<F>, b: ndarray::ArrayView1<F>) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b.iter()) {
        let (x, y) = (x.as_f64(), y.as_f64());
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match aa > 0.0 && bb > 0.0 {
        true => ab / (aa * bb).sqrt(),
        false => 0.0,
    }
}

/// [`CrossFigureData`] of the rows `a` and `b` (as analysed) paired by `pairs` (for each row
/// of `b`, its row of `a`); both of the same D.
pub fn cross_figure_data<F: Real>(
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    pairs: &[usize],
    seed: u64,
) -> Result<CrossFigureData> {
    single_threaded_blas();
    let (rows_a, rows_b) = (
        stratified_rows(a.nrows(), None, CROSS_FIGURE_POINTS, seed),
        stratified_rows(b.nrows(), None, CROSS_FIGURE_POINTS, seed ^ 1),
    );
    let joint = ndarray::concatenate(
        Axis(0),
        &[
            a.select(Axis(0), &rows_a).mapv(F::as_f64).view(),
            b.select(Axis(0), &rows_b).mapv(F::as_f64).view(),
        ],
    )
    .expect("the same D");
    let (axes, explained) = principal_axes(joint.view())?;
    let mean = column_means(joint.view());
    let centred = &joint - &mean;
    let projected = centred.dot(&axes);
    let (shown_a, shown_b) = projected.view().split_at(Axis(0), rows_a.len());
    let centroid = |x: ArrayView2<F>| {
        let c = (column_means(x) - &mean).dot(&axes);
        [c[0], c[1]]
    };
    let matched_rows = stratified_rows(pairs.len(), None, CROSS_FIGURE_PAIRS, seed ^ 2);
    let matched = matched_rows
        .iter()
        .map(|&j| cosine(a.row(pairs[j]), b.row(j)))
        .collect();
    let mut sampler = PairSampler::new(seed, 3, 2);
    let unmatched = match a.nrows() > 1 {
        false => Vec::new(),
        true => (0..matched_rows.len())
            .map(|_| {
                let j = sampler.below(b.nrows() as u64) as usize;
                let mut i = sampler.below(a.nrows() as u64 - 1) as usize;
                if i >= pairs[j] {
                    i += 1;
                }
                cosine(a.row(i), b.row(j))
            })
            .collect(),
    };
    Ok(CrossFigureData {
        points: (shown_a.to_owned(), shown_b.to_owned()),
        centroids: (centroid(a), centroid(b)),
        explained,
        matched,
        unmatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_principal_axes_are_those_of_the_covariance() {
        let mut x = crate::kernels::test_data::pseudo_random(30, 200, 4);
        for (j, mut column) in x.axis_iter_mut(Axis(1)).enumerate() {
            column.mapv_inplace(|v| v / (1.0 + j as f64));
        }
        let (axes, explained) = principal_axes(x.view()).unwrap();
        let (values, vectors) = covariance(x.view()).unwrap().eigh(UPLO::Lower).unwrap();
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        for k in 0..2 {
            let want = vectors.column(199 - k);
            assert!(
                (axes.column(k).dot(&want).abs() - 1.0).abs() < 1e-9,
                "axis {k}"
            );
            assert!((explained[k] - values[199 - k] / total).abs() < 1e-9);
        }
    }

    /// Two modalities: b is a translated copy of a (renormalised), paired in reverse order.
    #[test]
    fn cross_figure_data_pairs_and_centroids() {
        let (n, d) = (40, 6);
        let a = crate::normalize_rows(crate::kernels::test_data::pseudo_random(n, d, 9).view())
            .unwrap();
        let mut shifted = a.clone();
        shifted.column_mut(2).mapv_inplace(|v| v + 1.5);
        let b = crate::normalize_rows(shifted.view()).unwrap();
        // Row j of `reversed` is row n-1-j of b; it pairs with row n-1-j of a.
        let reversed = b.slice(ndarray::s![..;-1, ..]).to_owned();
        let pairs: Vec<usize> = (0..n).map(|j| n - 1 - j).collect();
        let data = cross_figure_data(a.view(), reversed.view(), &pairs, 5).unwrap();
        assert_eq!(data.points.0.nrows(), n);
        assert_eq!(data.matched.len(), n);
        assert_eq!(data.unmatched.len(), n);
        for (j, &c) in data.matched.iter().enumerate() {
            let want = cosine(a.row(n - 1 - j), b.row(n - 1 - j));
            assert!((c - want).abs() < 1e-12);
        }
        // Every unmatched cosine is one of a non-matched pair.
        for &c in &data.unmatched {
            let found = (0..n).any(|j| {
                (0..n)
                    .any(|i| i != pairs[j] && (cosine(a.row(i), reversed.row(j)) - c).abs() < 1e-12)
            });
            assert!(found, "{c}");
        }
        // The centroids' projections differ by the projected gap vector; with all rows shown,
        // the points' means are the centroids.
        let mean_a = data.points.0.mean_axis(Axis(0)).unwrap();
        assert!((mean_a[0] - data.centroids.0[0]).abs() < 1e-12);
        assert!((mean_a[1] - data.centroids.0[1]).abs() < 1e-12);
        let gap = (data.centroids.0[0] - data.centroids.1[0])
            .hypot(data.centroids.0[1] - data.centroids.1[1]);
        let full = (column_means(a.view()) - column_means(b.view()))
            .mapv(|v| v * v)
            .sum()
            .sqrt();
        assert!(gap <= full + 1e-12 && gap > 0.5 * full, "{gap} {full}");
    }
}
