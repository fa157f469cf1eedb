//! Intrinsic dimension from nearest-neighbour distances: TwoNN (Facco, d'Errico, Rodriguez &
//! Laio, Sci. Rep. 2017) and the Levina-Bickel maximum-likelihood estimator (NeurIPS 2004),
//! with scikit-dimension's conventions.
//!
//! - TwoNN: `mu_i = r_2 / r_1` (second over first neighbour distance) for each measured
//!   point; the smallest `floor(M (1 - f))` ratios (`f = 0.1` discarded) of the M points,
//!   sorted, with `F_i = i / M` (`i = 1 ..`), give the slope through the origin of
//!   `-log(1 - F_i)` against `log mu_(i)`: `d = sum x_i y_i / sum x_i^2` (`method="linear"`).
//!   The maximum-likelihood form of the same censored sample (`method="mle"`) is
//!   `d = (m - 1) / (sum_{i <= m} log mu_(i) + (M - m) log mu_(m))`, `m` the kept count.
//! - MLE: per point `m_i = (k - 1) / sum_{j=1}^{k} log(R_k / R_j)` over its `k = 20` nearest
//!   distances `R_1 <= ... <= R_k`, combined by the harmonic mean `1 / mean(1 / m_i)`
//!   (MacKay & Ghahramani's correction; scikit-dimension's `comb="mle"`).
//!
//! Duplicates: a point whose nearest neighbour is at distance 0 has no ratio (the published
//! code divides by zero and returns NaN or 0); such points are left out of both estimators and
//! counted in [`IntrinsicDimension::duplicates`].

use crate::error::{GeometryError, Result};
use serde::{Deserialize, Serialize};

/// Fraction of the largest TwoNN ratios discarded (Facco et al.'s heuristic, scikit-dimension's
/// default).
pub const TWONN_DISCARD: f64 = 0.1;
/// Neighbours of the Levina-Bickel estimator (scikit-dimension's default).
pub const MLE_NEIGHBOURS: usize = 20;
/// Points of the TwoNN fit kept for its figure (evenly spaced in rank).
const FIGURE_POINTS: usize = 200;

/// Intrinsic-dimension estimates of one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntrinsicDimension {
    /// TwoNN, least-squares slope through the origin (`None` with fewer than 3 usable points).
    pub twonn: Option<f64>,
    /// TwoNN, maximum likelihood of the same censored ratios.
    pub twonn_ml: Option<f64>,
    /// Levina-Bickel MLE, harmonic mean over the points (`None` when fewer than 2 neighbours).
    pub mle: Option<f64>,
    /// Neighbours of the MLE (k, or fewer when there are fewer other rows).
    pub mle_k: usize,
    /// Discarded fraction of the TwoNN ratios.
    pub discard: f64,
    /// Points measured (queries), duplicates included.
    pub points: usize,
    /// Points left out because their nearest neighbour is at distance 0.
    pub duplicates: usize,
    /// `(log mu_(i), -log(1 - F_i))` of the kept ratios at up to 200 evenly spaced ranks, for
    /// the figure of the fit.
    pub fit: Vec<(f64, f64)>,
}

/// The estimates from each point's nearest distances, ascending (at least 2 per point; the
/// MLE uses the first [`MLE_NEIGHBOURS`]).
pub fn intrinsic_dimension(distances: &[Vec<f64>]) -> Result<IntrinsicDimension> {
    if let Some(bad) = distances
        .iter()
        .find(|d| d.len() < 2 || d.iter().any(|v| !(v.is_finite() && *v >= 0.0)))
    {
        return Err(GeometryError::InvalidParameter {
            name: "intrinsic dimension: neighbour distances",
            value: bad.len() as f64,
            reason: if bad.len() < 2 {
                "needs two neighbours of every point (at least 3 rows)"
            } else {
                "a neighbour distance is negative or not finite"
            },
        });
    }
    let usable: Vec<&Vec<f64>> = distances.iter().filter(|d| d[0] > 0.0).collect();
    let duplicates = distances.len() - usable.len();
    let mut log_ratios: Vec<f64> = usable.iter().map(|d| (d[1] / d[0]).ln()).collect();
    log_ratios.sort_by(f64::total_cmp);
    let (twonn, twonn_ml, fit) = two_nn(&log_ratios, TWONN_DISCARD);
    let mle_k = distances
        .iter()
        .map(Vec::len)
        .min()
        .unwrap_or(0)
        .min(MLE_NEIGHBOURS);
    let mle = levina_bickel(&usable, mle_k);
    Ok(IntrinsicDimension {
        twonn,
        twonn_ml,
        mle,
        mle_k,
        discard: TWONN_DISCARD,
        points: distances.len(),
        duplicates,
        fit,
    })
}

/// TwoNN from the sorted `log mu` of M points: the slope through the origin and the censored
/// maximum likelihood over the smallest `floor(M (1 - discard))`, and the fit's points.
fn two_nn(log_mu: &[f64], discard: f64) -> (Option<f64>, Option<f64>, Vec<(f64, f64)>) {
    let total = log_mu.len();
    let kept = (total as f64 * (1.0 - discard)) as usize;
    if kept < 3 {
        return (None, None, Vec::new());
    }
    let points: Vec<(f64, f64)> = log_mu[..kept]
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, -(1.0 - (i + 1) as f64 / total as f64).ln()))
        .collect();
    let (xy, xx) = points
        .iter()
        .fold((0.0, 0.0), |(xy, xx), &(x, y)| (xy + x * y, xx + x * x));
    let linear = (xx > 0.0).then(|| xy / xx);
    let log_sum: f64 =
        log_mu[..kept].iter().sum::<f64>() + (total - kept) as f64 * log_mu[kept - 1];
    let ml = (log_sum > 0.0).then(|| (kept as f64 - 1.0) / log_sum);
    let step = kept.div_ceil(FIGURE_POINTS).max(1);
    let mut fit: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
    if !(kept - 1).is_multiple_of(step) {
        fit.push(points[kept - 1]);
    }
    (linear, ml, fit)
}

/// Levina-Bickel over the first `k` distances of each point: the harmonic mean of
/// `(k - 1) / sum_j log(R_k / R_j)`, that is `(k - 1) / mean_i sum_j log(R_k / R_j)`; `None`
/// with `k < 2`, no point, or every point's k distances equal.
fn levina_bickel(points: &[&Vec<f64>], k: usize) -> Option<f64> {
    if k < 2 || points.is_empty() {
        return None;
    }
    let inverse_sum: f64 = points
        .iter()
        .map(|d| {
            let far = d[k - 1];
            d[..k].iter().map(|r| (far / r).ln()).sum::<f64>()
        })
        .sum();
    let mean = inverse_sum / points.len() as f64;
    (mean > 0.0).then(|| (k as f64 - 1.0) / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points of a `dim`-dimensional standard normal cloud (a deterministic generator), and
    /// every point's sorted distances to all the others.
    fn cloud_distances(n: usize, dim: usize, seed: u64) -> Vec<Vec<f64>> {
        let x = crate::kernels::test_data::pseudo_random(n, dim, seed);
        (0..n)
            .map(|i| {
                let mut d: Vec<f64> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (&x.row(i) - &x.row(j)).mapv(|v| v * v).sum().sqrt())
                    .collect();
                d.sort_by(f64::total_cmp);
                d
            })
            .collect()
    }

    #[test]
    fn both_estimators_follow_their_formulas() {
        let distances = cloud_distances(60, 3, 1);
        let id = intrinsic_dimension(&distances).unwrap();
        // TwoNN by the formula, written out.
        let mut mu: Vec<f64> = distances.iter().map(|d| d[1] / d[0]).collect();
        mu.sort_by(f64::total_cmp);
        let kept = 54; // floor(60 * 0.9)
        let (mut xy, mut xx) = (0.0, 0.0);
        for (i, m) in mu[..kept].iter().enumerate() {
            let (x, y) = (m.ln(), -(1.0 - (i + 1) as f64 / 60.0).ln());
            xy += x * y;
            xx += x * x;
        }
        assert!((id.twonn.unwrap() - xy / xx).abs() <= 1e-12 * xy / xx);
        let logs: f64 = mu[..kept].iter().map(|m| m.ln()).sum::<f64>() + 6.0 * mu[kept - 1].ln();
        assert!((id.twonn_ml.unwrap() - 53.0 / logs).abs() <= 1e-12 * 53.0 / logs);
        // MLE: the harmonic mean of the pointwise estimates.
        let pointwise: Vec<f64> = distances
            .iter()
            .map(|d| 19.0 / d[..20].iter().map(|r| (d[19] / r).ln()).sum::<f64>())
            .collect();
        let harmonic = 60.0 / pointwise.iter().map(|m| 1.0 / m).sum::<f64>();
        assert!((id.mle.unwrap() - harmonic).abs() <= 1e-12 * harmonic);
        assert_eq!((id.points, id.duplicates, id.mle_k), (60, 0, 20));
    }

    #[test]
    fn a_cloud_of_dimension_d_measures_about_d() {
        for dim in [2, 5] {
            let id = intrinsic_dimension(&cloud_distances(1_500, dim, 7)).unwrap();
            for (name, value) in [
                ("TwoNN", id.twonn),
                ("TwoNN ML", id.twonn_ml),
                ("MLE", id.mle),
            ] {
                let value = value.unwrap();
                assert!(
                    (value - dim as f64).abs() < 0.2 * dim as f64,
                    "{name} of a {dim}-dimensional cloud: {value}"
                );
            }
        }
    }

    #[test]
    fn duplicate_points_are_counted_and_left_out() {
        let mut distances = cloud_distances(40, 2, 3);
        let clean = intrinsic_dimension(&distances).unwrap();
        distances.push(vec![0.0, 0.5, 0.7]);
        distances.push(vec![0.0, 0.0, 0.1]);
        let id = intrinsic_dimension(&distances).unwrap();
        assert_eq!((id.points, id.duplicates), (42, 2));
        assert_eq!(id.twonn, clean.twonn);
        assert!(id.mle.unwrap().is_finite());
        assert_eq!(id.mle_k, 3);
    }

    #[test]
    fn too_few_points_give_none_and_bad_distances_an_error() {
        let id = intrinsic_dimension(&[vec![1.0, 2.0], vec![1.0, 3.0]]).unwrap();
        assert_eq!((id.twonn, id.twonn_ml), (None, None));
        assert!(intrinsic_dimension(&[vec![1.0]]).is_err());
        assert!(intrinsic_dimension(&[vec![1.0, f64::NAN]]).is_err());
        // Every point's neighbours at one distance: no dimension, not NaN.
        let flat = vec![vec![1.0; 20]; 30];
        let id = intrinsic_dimension(&flat).unwrap();
        assert_eq!((id.twonn, id.mle), (None, None));
    }
}
