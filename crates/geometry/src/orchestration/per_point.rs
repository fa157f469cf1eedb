//! Per-point diagnostics: for every described row (a seeded sample of at most `max_rows` rows,
//! all rows below that), the numbers that single out hubs, outliers, collapsed neighbourhoods
//! and rows whose neighbours disagree with their label, with a 2-D projection and the exact
//! neighbours in the form an explorer (Apple's embedding-atlas) reads.
//!
//! Neighbours are searched among the described rows only (cosine on the rows as analysed, the
//! row itself excluded, exact), so every neighbour a row lists is itself described and the
//! k-occurrence counts every described row's list. With `R_j` the distance to the j-th
//! neighbour and `c` the row's class:
//!
//! - `class_mean_distance = ||x_i - mu_c||`, `mu_c` the mean of all rows of class c;
//! - `k_occurrence`: how many described rows hold row i among their [`HUBNESS_K`] nearest;
//! - `nearest_same_class`, `nearest_other_class`: the cosine to the nearest described row of
//!   the same class and of another class, among the row's `max(k, 20)` nearest (`None` when
//!   none of them is);
//! - `knn_prediction`: the weighted vote of the k nearest (`exp((s - s_1)/tau)`, as the kNN
//!   accuracy), and whether it differs from the label;
//! - `lid`: Levina-Bickel's estimate `(K - 1) / sum_(j < K) ln(R_K / R_j)` from the
//!   `K =` [`MLE_NEIGHBOURS`] nearest (`None` when a distance is 0);
//! - `projection`: the row on the top two principal axes of all rows (centred);
//! - `neighbours`: the k nearest as (position among the described rows, cosine distance
//!   `1 - s`), embedding-atlas's `{ids, distances}` (without the row itself, which UMAP's lists
//!   put first).

use crate::error::{GeometryError, Result};
use crate::kernels::classes::Classes;
use crate::kernels::sampling::stratified_rows;
use crate::metrics::hubness::HUBNESS_K;
use crate::metrics::intrinsic::MLE_NEIGHBOURS;
use crate::metrics::knn::{query_neighbours, vote, KnnOptions, KnnSplit};
use crate::metrics::real::Real;
use crate::metrics::spectrum::column_means;
use crate::metrics::stats::class_means;
use crate::orchestration::figure_data::principal_axes;
use ndarray::{Array2, ArrayView2, Axis};

/// Rows described by default (as `analyze`'s kNN queries).
pub const DEFAULT_PER_POINT_ROWS: usize = 10_000;

/// The per-point diagnostics of the described rows (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct PerPoint {
    /// Row index of each described row in the input.
    pub rows: Vec<usize>,
    /// Rows in the input.
    pub total: usize,
    /// Neighbours k of the vote and of `neighbours`.
    pub k: usize,
    /// Class index of each row (with labels).
    pub labels: Option<Vec<u32>>,
    /// `||x_i - mu_c||` (with labels).
    pub class_mean_distance: Option<Vec<f64>>,
    /// Occurrences among the described rows' [`HUBNESS_K`] nearest.
    pub k_occurrence: Vec<u64>,
    /// Cosine to the nearest row of the same class (with labels).
    pub nearest_same_class: Option<Vec<Option<f64>>>,
    /// Cosine to the nearest row of another class (with labels).
    pub nearest_other_class: Option<Vec<Option<f64>>>,
    /// The kNN vote's class (with labels).
    pub knn_prediction: Option<Vec<u32>>,
    /// Levina-Bickel local intrinsic dimension.
    pub lid: Vec<Option<f64>>,
    /// The row on the top two principal axes (rows x 2).
    pub projection: Array2<f64>,
    /// Each row's k nearest: (position among the described rows, `1 - cosine`).
    pub neighbours: Vec<Vec<(u64, f64)>>,
}

/// The per-point diagnostics of `x` (the rows as analysed: unit rows unless the analysis keeps
/// them as stored), of at most `max_rows` seeded rows; `knn` gives k, the vote's temperature
/// and the seed.
pub fn per_point<F: Real>(
    x: ArrayView2<F>,
    classes: Option<&Classes>,
    max_rows: usize,
    knn: &KnnOptions,
) -> Result<PerPoint> {
    let n = x.nrows();
    if n < 3 || x.ncols() < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "per-point diagnostics (at least 3 rows of 2 or more dimensions)",
            needed: 3,
            got: n,
        });
    }
    if let Some(classes) = classes {
        classes.check_rows(n)?;
    }
    let rows = stratified_rows(n, classes, max_rows, knn.seed);
    let m = rows.len();
    let sample = x.select(Axis(0), &rows);
    let labels: Option<Vec<u32>> = classes.map(|c| rows.iter().map(|&i| c.labels()[i]).collect());
    let k = knn.k.min(m - 1);
    let searched = knn.k.max(MLE_NEIGHBOURS).max(HUBNESS_K).min(m - 1);
    let found = query_neighbours(
        sample.view(),
        labels.as_deref(),
        &KnnSplit::LeaveOneOut,
        searched,
        &KnnOptions {
            max_queries: m,
            ..knn.clone()
        },
    )?;
    let tops = &found.tops;
    let mut k_occurrence = vec![0u64; m];
    for top in tops {
        for item in top.items().iter().take(HUBNESS_K.min(m - 1)) {
            k_occurrence[item.index as usize] += 1;
        }
    }
    let lid = tops
        .iter()
        .map(|top| {
            let distances: Vec<f64> = top
                .items()
                .iter()
                .take(MLE_NEIGHBOURS)
                .map(|nb| nb.squared_distance.sqrt())
                .collect();
            let far = *distances.last()?;
            let sum: f64 = distances.iter().map(|r| (far / r).ln()).sum();
            (distances.len() == MLE_NEIGHBOURS && distances[0] > 0.0 && sum > 0.0)
                .then(|| (MLE_NEIGHBOURS as f64 - 1.0) / sum)
        })
        .collect();
    let neighbours = tops
        .iter()
        .map(|top| {
            top.items()
                .iter()
                .take(k)
                .map(|nb| (nb.index, 1.0 - nb.sim))
                .collect()
        })
        .collect();
    let (axes, _) = principal_axes(x)?;
    let projection = (sample.mapv(F::as_f64) - &column_means(x)).dot(&axes);
    let mut out = PerPoint {
        rows: rows.clone(),
        total: n,
        k,
        labels: None,
        class_mean_distance: None,
        k_occurrence,
        nearest_same_class: None,
        nearest_other_class: None,
        knn_prediction: None,
        lid,
        projection,
        neighbours,
    };
    if let (Some(classes), Some(labels)) = (classes, labels) {
        let means = class_means(x, classes);
        out.class_mean_distance = Some(
            rows.iter()
                .zip(&labels)
                .map(|(&i, &c)| {
                    x.row(i)
                        .iter()
                        .zip(means.row(c as usize))
                        .map(|(v, mu)| (v.as_f64() - mu).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect(),
        );
        let nearest = |same: bool| -> Vec<Option<f64>> {
            tops.iter()
                .zip(&labels)
                .map(|(top, &c)| {
                    top.items()
                        .iter()
                        .find(|nb| (nb.label == c) == same)
                        .map(|nb| nb.sim)
                })
                .collect()
        };
        out.nearest_same_class = Some(nearest(true));
        out.nearest_other_class = Some(nearest(false));
        out.knn_prediction = Some(
            tops.iter()
                .map(|top| vote(top, k, classes.num_classes(), knn.temperature))
                .collect(),
        );
        out.labels = Some(labels);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::rows::normalize_rows;
    use crate::kernels::test_data::pseudo_random;

    /// Every column against a plain computation on a small set: brute-force neighbours by
    /// cosine, their counts, the class means, the vote and the LID formula.
    #[test]
    fn every_column_equals_a_plain_computation() {
        let x = normalize_rows(pseudo_random(60, 5, 2).view()).unwrap();
        let labels: Vec<u32> = (0..60).map(|i| (i % 3) as u32).collect();
        let classes =
            Classes::new(labels.clone(), vec!["a".into(), "b".into(), "c".into()]).unwrap();
        let knn = KnnOptions {
            k: 5,
            ..KnnOptions::default()
        };
        let p = per_point(x.view(), Some(&classes), 1_000, &knn).unwrap();
        assert_eq!(p.rows, (0..60).collect::<Vec<_>>());
        let cos = |i: usize, j: usize| x.row(i).dot(&x.row(j));
        let order = |i: usize| {
            let mut others: Vec<usize> = (0..60).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| cos(i, b).total_cmp(&cos(i, a)));
            others
        };
        let mut occurrence = vec![0u64; 60];
        for i in 0..60 {
            let o = order(i);
            for &j in &o[..HUBNESS_K] {
                occurrence[j] += 1;
            }
            let ids: Vec<u64> = p.neighbours[i].iter().map(|n| n.0).collect();
            assert_eq!(ids, o[..5].iter().map(|&j| j as u64).collect::<Vec<_>>());
            assert!((p.neighbours[i][0].1 - (1.0 - cos(i, o[0]))).abs() < 1e-12);
            let same = o.iter().find(|&&j| labels[j] == labels[i]).unwrap();
            let other = o.iter().find(|&&j| labels[j] != labels[i]).unwrap();
            assert!(
                (p.nearest_same_class.as_ref().unwrap()[i].unwrap() - cos(i, *same)).abs() < 1e-12
            );
            assert!(
                (p.nearest_other_class.as_ref().unwrap()[i].unwrap() - cos(i, *other)).abs()
                    < 1e-12
            );
            let r: Vec<f64> = o[..MLE_NEIGHBOURS]
                .iter()
                .map(|&j| (2.0 - 2.0 * cos(i, j)).max(0.0).sqrt())
                .collect();
            let want = 19.0 / r.iter().map(|v| (r[19] / v).ln()).sum::<f64>();
            assert!((p.lid[i].unwrap() - want).abs() < 1e-6 * want);
        }
        assert_eq!(p.k_occurrence, occurrence);
        let means = class_means(x.view(), &classes);
        let d0 = (&x.row(0) - &means.row(0)).mapv(|v| v * v).sum().sqrt();
        assert!((p.class_mean_distance.unwrap()[0] - d0).abs() < 1e-12);
        // A sample: the same seed gives the same rows; neighbours are positions in it.
        // Each class keeps its share: 3 x 6 rows.
        let s = per_point(x.view(), Some(&classes), 20, &knn).unwrap();
        assert_eq!(s.rows.len(), 18);
        assert!(s
            .neighbours
            .iter()
            .flatten()
            .all(|(j, _)| (*j as usize) < 18));
        assert!(per_point(x.slice(ndarray::s![..2, ..]), None, 10, &knn).is_err());
    }
}
