//! HaoChen, Wei, Gaidon & Ma's spectral contrastive loss (NeurIPS 2021, "Provable guarantees
//! for self-supervised deep learning with spectral contrastive loss") over all rows of two
//! row-matched views, exactly, as their reference code computes it on a batch:
//!
//! `L(Z1, Z2) = -(2/N) sum_i z1_i . z2_i + 1/(N(N-1)) sum_{i != j} (z1_i . z2_j)^2`
//!
//! after each row of norm at least `sqrt(mu)` is rescaled to norm `sqrt(mu)` (`mu = 1`: rows
//! inside the unit ball are kept, the others projected onto the sphere), divided by `mu`. The
//! sum over all pairs never forms the N x N matrix: `sum_{i,j} (z1_i . z2_j)^2 =
//! tr((Z1^T Z1)(Z2^T Z2))` from the views' D x D second moments when `N >= D`, else
//! `||Z1 Z2^T||_F^2` from the N x N cross products (both in f64). With more than two views,
//! the mean over the view pairs `a < b`.

use crate::error::{GeometryError, Result};
use crate::kernels::rows::{contiguous, lane_dot, row_norms};
use crate::kernels::scatter::{all_rows, parallel_product, scatter};
use crate::kernels::timings::Work;
use crate::metrics::real::Real;
use ndarray::{Array1, Array2, ArrayView2, CowArray};
use serde::{Deserialize, Serialize};

/// The reference code's `mu` (its CIFAR configuration): rows are clipped to the unit ball.
pub const SPECTRAL_MU: f64 = 1.0;

/// The spectral contrastive loss of row-matched views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectralLoss {
    /// `L`, the mean over view pairs (lower is better).
    pub value: f64,
    /// Its first term, `-(2/N) sum_i z1_i . z2_i` (the positive pairs' pull).
    pub attraction: f64,
    /// Its second term, `1/(N(N-1)) sum_{i != j} (z1_i . z2_j)^2` (the push of every other
    /// pair).
    pub repulsion: f64,
    /// `mu`.
    pub mu: f64,
    /// View pairs averaged.
    pub view_pairs: usize,
}

/// The work of [`spectral_loss`] for `v` views of `n` rows in `d` dimensions: per view its
/// D x D second moment (`N D^2` by `dsyrk`) and per pair a D x D product sum, or per pair the
/// N x N cross products (`2 N^2 D`) when `N < D`.
pub fn spectral_loss_work(v: usize, n: usize, d: usize) -> Work {
    let (v, n, d) = (v as f64, n as f64, d as f64);
    let pairs = v * (v - 1.0) / 2.0;
    Work::DoubleFlops(match n >= d {
        true => v * n * d * d + pairs * 2.0 * d * d,
        false => pairs * 2.0 * n * n * d,
    })
}

/// The rows of `x` with every row of norm at least `sqrt(mu)` rescaled to norm `sqrt(mu)`
/// (borrowed when no row is).
fn clipped<F: Real>(x: ArrayView2<F>, mu: f64) -> CowArray<F, ndarray::Ix2> {
    let radius = mu.sqrt();
    let norms = row_norms(x);
    if norms.iter().all(|&r| r < radius) {
        return CowArray::from(x);
    }
    let mut out = x.to_owned();
    for (mut row, &r) in out.rows_mut().into_iter().zip(&norms) {
        if r >= radius {
            row.mapv_inplace(|v| F::from_f64(v.as_f64() * radius / r));
        }
    }
    CowArray::from(out)
}

/// The rows of `x` in f64.
fn widened<F: Real>(x: ArrayView2<F>) -> Array2<f64> {
    x.mapv(|v| v.as_f64())
}

/// The spectral contrastive loss of two or more row-matched views (the same N x D each).
pub fn spectral_loss<F: Real>(views: &[ArrayView2<F>]) -> Result<SpectralLoss> {
    let (n, d) = views.first().map_or((0, 0), |v| v.dim());
    if views.len() < 2 || n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "spectral contrastive loss (two views of two rows)",
            needed: 2,
            got: n.min(views.len()),
        });
    }
    let views: Vec<CowArray<F, ndarray::Ix2>> =
        views.iter().map(|v| clipped(*v, SPECTRAL_MU)).collect();
    let moments: Option<Vec<Array2<f64>>> = (n >= d).then(|| {
        let zero = Array1::<f64>::zeros(d);
        views
            .iter()
            .map(|v| scatter(v.view(), &all_rows(n), zero.view()))
            .collect()
    });
    let wide: Option<Vec<Array2<f64>>> =
        (n < d).then(|| views.iter().map(|v| widened(v.view())).collect());
    let (nf, mut attraction, mut repulsion, mut pairs) = (n as f64, 0.0, 0.0, 0usize);
    for a in 0..views.len() {
        for b in a + 1..views.len() {
            let (mut matched, mut matched_sq) = (0.0, 0.0);
            for (x, y) in views[a].rows().into_iter().zip(views[b].rows()) {
                let dot = lane_dot(&contiguous(&x), &contiguous(&y));
                matched += dot;
                matched_sq += dot * dot;
            }
            let all_pairs = match (&moments, &wide) {
                (Some(m), _) => m[a]
                    .iter()
                    .zip(m[b].iter())
                    .map(|(p, q)| p * q)
                    .sum::<f64>(),
                (_, Some(w)) => parallel_product(w[a].view(), w[b].t())
                    .iter()
                    .map(|v| v * v)
                    .sum::<f64>(),
                _ => unreachable!("one route is taken"),
            };
            attraction += -2.0 * matched / nf;
            repulsion += (all_pairs - matched_sq) / (nf * (nf - 1.0));
            pairs += 1;
        }
    }
    let (attraction, repulsion) = (
        attraction / pairs as f64 / SPECTRAL_MU,
        repulsion / pairs as f64 / SPECTRAL_MU,
    );
    Ok(SpectralLoss {
        value: attraction + repulsion,
        attraction,
        repulsion,
        mu: SPECTRAL_MU,
        view_pairs: pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    /// The reference code's batch formula, every pair written out.
    fn plain(z1: &Array2<f64>, z2: &Array2<f64>) -> f64 {
        let clip = |z: &Array2<f64>| {
            let mut z = z.clone();
            for mut row in z.rows_mut() {
                let r = row.dot(&row).sqrt();
                if r >= 1.0 {
                    row /= r;
                }
            }
            z
        };
        let (z1, z2) = (clip(z1), clip(z2));
        let n = z1.nrows() as f64;
        let part1 = -2.0 * (&z1 * &z2).sum() / n;
        let products = z1.dot(&z2.t());
        let mut off = 0.0;
        for ((i, j), v) in products.indexed_iter() {
            if i != j {
                off += v * v;
            }
        }
        part1 + off / (n * (n - 1.0))
    }

    #[test]
    fn both_routes_equal_every_pair_written_out() {
        // N >= D (second moments) and N < D (cross products); rows inside and outside the ball.
        for (n, d) in [(60, 7), (9, 40)] {
            let z1 = pseudo_random(n, d, 1) * 0.4;
            let z2 = &z1 + &(pseudo_random(n, d, 2) * 0.1);
            let got = spectral_loss(&[z1.view(), z2.view()]).unwrap();
            let want = plain(&z1, &z2);
            assert!(
                (got.value - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{n} x {d}: {} vs {want}",
                got.value
            );
            assert!((got.attraction + got.repulsion - got.value).abs() < 1e-15);
        }
    }

    #[test]
    fn three_views_average_their_pairs() {
        let z: Vec<Array2<f64>> = (0..3).map(|s| pseudo_random(30, 5, s)).collect();
        let got = spectral_loss(&[z[0].view(), z[1].view(), z[2].view()]).unwrap();
        let want = (plain(&z[0], &z[1]) + plain(&z[0], &z[2]) + plain(&z[1], &z[2])) / 3.0;
        assert!(
            (got.value - want).abs() <= 1e-12 * want.abs(),
            "{} vs {want}",
            got.value
        );
        assert_eq!(got.view_pairs, 3);
    }

    #[test]
    fn one_view_or_one_row_is_refused() {
        let z = pseudo_random(5, 3, 1);
        assert!(spectral_loss(&[z.view()]).is_err());
        let one = pseudo_random(1, 3, 1);
        assert!(spectral_loss(&[one.view(), one.view()]).is_err());
    }
}
