//! Class statistics (Papyan, Han & Donoho, PNAS 2020): class counts and means, the global
//! mean, the within-class covariance `Sigma_W` and the per-class variances.

use crate::classes::Classes;
use crate::real::Real;
use crate::scatter::{all_rows, scatter, Offset};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Per-class statistics of raw (unnormalised) features `h_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    /// `n_c`.
    pub counts: Vec<usize>,
    /// `mu_c`, C x D.
    pub means: Array2<f64>,
    /// `mu_G`: the unweighted mean of the class means.
    pub global_mean: Array1<f64>,
    /// `Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`, D x D.
    pub within_covariance: Array2<f64>,
    /// `Var_c = (1/n_c) sum_{i in c} ||h_i - mu_c||^2` (a second pass over the rows).
    pub within_variance: Vec<f64>,
}

impl ClassStats {
    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// `M`: the centred class means `mu_c - mu_G`, C x D.
    pub fn centred_means(&self) -> Array2<f64> {
        &self.means - &self.global_mean.view().insert_axis(Axis(0))
    }

    /// `Sigma_B = (1/C) M^T M`, D x D.
    pub fn between_covariance(&self) -> Array2<f64> {
        let m = self.centred_means();
        m.t().dot(&m) / self.num_classes() as f64
    }
}

/// Compute [`ClassStats`] of `x` (rows as given) in O(C D + D^2) memory beyond the input:
/// class sums, then `Sigma_W` by GEMM over centred chunks and `Var_c` in a second pass.
pub fn class_stats<F: Real>(x: ArrayView2<F>, classes: &Classes) -> ClassStats {
    let counts = classes.counts();
    let means = class_means(x, classes);
    let global_mean = means.mean_axis(Axis(0)).expect("at least one class");
    let n = x.nrows() as f64;
    let within_covariance = scatter(
        x,
        &all_rows(x.nrows()),
        &Offset::PerClass {
            means: means.view(),
            labels: classes.labels(),
        },
    ) / n;
    let within_variance = (0..classes.num_classes())
        .into_par_iter()
        .map(|c| {
            let mean = means.row(c);
            let members = classes.members(c);
            let total: f64 = members
                .iter()
                .map(|&i| {
                    x.row(i)
                        .iter()
                        .zip(mean.iter())
                        .map(|(v, m)| (v.as_f64() - m).powi(2))
                        .sum::<f64>()
                })
                .sum();
            total / members.len() as f64
        })
        .collect();
    ClassStats {
        counts,
        means,
        global_mean,
        within_covariance,
        within_variance,
    }
}

/// Means of the rows of each class: `(1/n_c) sum_{i in c} x_i` (C x D).
pub fn class_means<F: Real>(x: ArrayView2<F>, classes: &Classes) -> Array2<f64> {
    let (sums, _) = classes.class_sums(x);
    let counts = Array1::from_iter(classes.counts().into_iter().map(|n| n as f64));
    sums / &counts.insert_axis(Axis(1))
}
