//! How two representations of the same rows relate: the moment-based similarity family, each
//! from the centred moments `S_xx`, `S_yy`, `S_xy` of X (N x D1) and Y (N x D2), any widths
//! (see [`crate::metrics::similarity_state`]; they merge across shards). With
//! `r_i = ||x_i - mean||^2` and `s_i` alike:
//!
//! - Linear CKA (Kornblith et al. 2019): `||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F)`.
//! - Debiased linear CKA (Kornblith et al.'s notebook, after Song et al. 2012's unbiased
//!   HSIC): with `h(p, u.v, sum u sum v) = p - N/(N - 2) u.v + sum u sum v / ((N - 1)(N - 2))`,
//!   `h(||S_xy||_F^2, r.s, ..) / sqrt(h(||S_xx||_F^2, r.r, ..) h(||S_yy||_F^2, s.s, ..))`; it can
//!   be negative.
//! - Procrustes (Ding et al. 2021, `sim_metric`): `2 - 2 ||S_xy||_* / sqrt(tr S_xx tr S_yy)`
//!   (the rows scaled to unit Frobenius norm; the squared distance left after the best
//!   rotation; 0 = the same up to rotation, translation and scale).
//! - Angular Procrustes (Williams et al. 2021, `netrep`): `arccos` of the same nuclear norm, in
//!   radians (a metric; 0 = the same).
//! - Mean CCA (Ding et al.'s `cca_decomp`): the canonical correlations `rho` are the singular
//!   values of `S_xx^(-1/2) S_xy S_yy^(-1/2)` (eigenvalues at or below
//!   [`CCA_EIGENVALUE_FLOOR`] times the largest are dropped, as `sim_metric` drops zero ones),
//!   `mean_cca = sum rho / min(D1, D2)`; it needs `N > max(D1, D2)`.
//! - SVCCA (Raghu et al. 2017): mean CCA between the projections of X and of Y onto their
//!   leading principal directions that keep [`SVCCA_VARIANCE`] of the variance.
//! - PWCCA (Morcos et al. 2018, in Ding et al.'s form): with `U` the left singular vectors of
//!   the whitened cross-covariance, weights `w_j = sum_k |(U^T S_xx^(-1/2) S_xx)_jk|` normalised
//!   to sum 1 over all D1 directions, `pwcca = sum_(j < min(D1, D2)) w_j rho_j`.
//!
//! `sim_metric` reports `1 - mean_cca`, `1 - pwcca` as distances; here every CCA measure is a
//! similarity (1 = the same up to an invertible linear map).

use crate::error::{GeometryError, Result};
use crate::metrics::real::Real;
use crate::metrics::similarity_state::{CentredMoments, SimilarityState};
use crate::metrics::spectrum::symmetric_eigenpairs;
use ndarray::{s, Array1, Array2, ArrayView2};
use ndarray_linalg::{JobSvd, SVDDC};
use serde::{Deserialize, Serialize};

/// The share of each representation's variance SVCCA keeps (Raghu et al.'s 99%).
pub const SVCCA_VARIANCE: f64 = 0.99;

/// Covariance eigenvalues at or below this fraction of the largest count as zero in the CCA
/// family (their directions are constant columns or linear dependences).
pub const CCA_EIGENVALUE_FLOOR: f64 = 1e-12;

/// The similarity family between two representations of the same rows: the moment-based
/// measures always, the sampled ones (RBF CKA, mutual kNN, CKNNA; see
/// [`crate::SampledRepresentation`]) where they were computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// Linear CKA `||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F)`.
    pub linear_cka: f64,
    /// Debiased linear CKA (unbiased HSIC); `None` below 4 rows.
    pub debiased_cka: Option<f64>,
    /// `2 - 2 ||S_xy||_* / sqrt(tr S_xx tr S_yy)`.
    pub procrustes: f64,
    /// `arccos(||S_xy||_* / sqrt(tr S_xx tr S_yy))`, radians.
    pub procrustes_angular: f64,
    /// Mean canonical correlation over `min(D1, D2)`; `None` unless `N > max(D1, D2)`.
    pub mean_cca: Option<f64>,
    /// Mean canonical correlation of the 99%-variance principal subspaces.
    pub svcca: Option<f64>,
    /// Projection-weighted mean canonical correlation (Ding et al.'s weights).
    pub pwcca: Option<f64>,
    /// RBF CKA on the sampled rows (median bandwidth), where computed.
    #[serde(default)]
    pub rbf_cka: Option<f64>,
    /// Mutual kNN alignment on the sampled rows, where computed.
    #[serde(default)]
    pub mutual_knn: Option<f64>,
    /// CKNNA on the sampled rows, where computed.
    #[serde(default)]
    pub cknna: Option<f64>,
    /// Why a measure is missing or what it left out (constant columns, too few rows).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Song et al.'s unbiased HSIC numerator (see the module documentation).
fn debiased(product: f64, cross: f64, sums: f64, n: f64) -> f64 {
    product - n / (n - 2.0) * cross + sums / ((n - 1.0) * (n - 2.0))
}

/// `||a||_F^2`.
fn frobenius_sq(a: &Array2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum()
}

/// A covariance's eigendecomposition for the CCA family: eigenvalues descending, those at or
/// below [`CCA_EIGENVALUE_FLOOR`] times the largest set to zero, with how many were. Computed
/// once per input when many are compared.
#[derive(Debug, Clone)]
pub struct CovarianceEigen {
    values: Array1<f64>,
    vectors: Array2<f64>,
    dropped: usize,
}

impl CovarianceEigen {
    /// The decomposition of the symmetric `s` scaled to unit trace (LAPACK `dsyevd`), as
    /// [`CentredMoments::unit_trace`] scales the moments the measures read (a zero `s`, a
    /// constant representation, as it is: the measures then say why they are undefined).
    pub fn of(s: &Array2<f64>) -> Result<CovarianceEigen> {
        let trace = s.diag().sum();
        if !trace.is_finite() {
            return Err(GeometryError::Numerical {
                what: "the similarity of representations: a representation's second moments overflow f64 (values of magnitude 1e154 or more)".into(),
            });
        }
        let scale = if trace > 0.0 { trace } else { 1.0 };
        let (values, vectors) = symmetric_eigenpairs(&(s / scale))?;
        let d = values.len();
        let order: Vec<usize> = (0..d).rev().collect();
        let largest = values.iter().cloned().fold(0.0f64, f64::max);
        let floor = largest * CCA_EIGENVALUE_FLOOR;
        let values: Array1<f64> = order
            .iter()
            .map(|&i| if values[i] > floor { values[i] } else { 0.0 })
            .collect();
        let dropped = values.iter().filter(|v| **v == 0.0).count();
        Ok(CovarianceEigen {
            vectors: vectors.select(ndarray::Axis(1), &order),
            values,
            dropped,
        })
    }

    /// `V diag(1/sqrt(lambda), 0 where dropped) V^T`.
    fn inverse_sqrt(&self) -> Array2<f64> {
        let scale = self
            .values
            .mapv(|v| if v > 0.0 { 1.0 / v.sqrt() } else { 0.0 });
        (&self.vectors * &scale).dot(&self.vectors.t())
    }

    /// The leading directions that keep `share` of the variance (at least one).
    fn leading(&self, share: f64) -> usize {
        let total = self.values.sum();
        let mut kept = 0.0;
        for (i, v) in self.values.iter().enumerate() {
            kept += v;
            if kept >= share * total {
                return i + 1;
            }
        }
        self.values.len()
    }
}

/// Singular values (and, with `left`, all left singular vectors) by LAPACK `dgesdd`.
fn singular_values(
    m: &Array2<f64>,
    left: bool,
    what: &str,
) -> Result<(Option<Array2<f64>>, Array1<f64>)> {
    let job = if left { JobSvd::All } else { JobSvd::None };
    let (u, sigma, _) = m.svddc(job).map_err(|e| GeometryError::Numerical {
        what: format!("singular values of {what}: {e}"),
    })?;
    Ok((u, sigma))
}

/// Mean CCA, SVCCA and PWCCA from the centred moments and both covariances' decompositions
/// (see the module documentation).
fn cca_family(
    m: &CentredMoments,
    eigen: (&CovarianceEigen, &CovarianceEigen),
    notes: &mut Vec<String>,
) -> Result<[Option<f64>; 3]> {
    let (ex, ey) = eigen;
    for (which, e) in [("first", ex), ("second", ey)] {
        if e.dropped > 0 {
            notes.push(format!(
                "the {which} representation has {} direction(s) of zero variance (constant columns or linearly dependent ones): the CCA measures leave them out",
                e.dropped
            ));
        }
    }
    let (wx, wy) = (ex.inverse_sqrt(), ey.inverse_sqrt());
    let whitened = wx.dot(&m.xy).dot(&wy);
    let (u, rho) = singular_values(&whitened, true, "the whitened cross-covariance")?;
    let mean_cca = rho.sum() / rho.len() as f64;
    let pwcca = u.map(|u| {
        let projections = u.t().dot(&wx).dot(&m.xx);
        let weights: Array1<f64> = projections
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|v| v.abs()).sum())
            .collect();
        let total = weights.sum();
        (total > 0.0).then(|| {
            rho.iter()
                .zip(&weights)
                .map(|(r, w)| r * w / total)
                .sum::<f64>()
        })
    });
    let (kx, ky) = (ex.leading(SVCCA_VARIANCE), ey.leading(SVCCA_VARIANCE));
    let projected = ex
        .vectors
        .slice(s![.., ..kx])
        .t()
        .dot(&m.xy)
        .dot(&ey.vectors.slice(s![.., ..ky]));
    let scaled = Array2::from_shape_fn((kx, ky), |(i, j)| {
        projected[[i, j]] / (ex.values[i] * ey.values[j]).sqrt()
    });
    let (_, rho_sv) = singular_values(&scaled, false, "the principal subspaces' cross-covariance")?;
    let svcca = rho_sv.sum() / rho_sv.len() as f64;
    Ok([Some(mean_cca), Some(svcca), pwcca.flatten()])
}

impl Similarity {
    /// The moment-based family from the centred moments; the sampled measures `None`.
    pub fn from_moments(m: &CentredMoments) -> Result<Similarity> {
        Similarity::from_moments_with(m, None)
    }

    /// [`Similarity::from_moments`] with both covariances' decompositions computed before
    /// (once per input when many are compared; [`CovarianceEigen::of`]); `None` computes them
    /// here. The measures are computed from the moments scaled to unit trace
    /// ([`CentredMoments::unit_trace`]), so that rows of any finite scale give finite values.
    pub fn from_moments_with(
        m: &CentredMoments,
        eigen: Option<(&CovarianceEigen, &CovarianceEigen)>,
    ) -> Result<Similarity> {
        let fourth_exact = m.fourth_order_exact();
        let m = &m.unit_trace()?;
        let (xx, yy, xy) = (
            frobenius_sq(&m.xx),
            frobenius_sq(&m.yy),
            frobenius_sq(&m.xy),
        );
        if xx == 0.0 || yy == 0.0 {
            return Err(GeometryError::Labels {
                what: "the similarity of a constant representation is undefined".into(),
            });
        }
        let mut notes = Vec::new();
        let n = m.n as f64;
        if m.n >= 4 && !fourth_exact {
            notes.push(
                "debiased CKA needs the rows' fourth-order sums, which leave f64's range here (values of magnitude above about 1e77 or below 1e-70)".to_string(),
            );
        }
        let debiased_cka = (m.n >= 4 && fourth_exact).then(|| {
            // Both traces are 1 (unit_trace).
            let numerator = debiased(xy, m.rs, 1.0, n);
            let denominator = debiased(xx, m.rr, 1.0, n) * debiased(yy, m.ss, 1.0, n);
            (denominator > 0.0).then(|| numerator / denominator.sqrt())
        });
        // ||X^T Y||_* of the rows scaled to unit Frobenius norm (||X||_F^2 = tr S_xx = 1).
        let (_, singular) = singular_values(&m.xy, false, "the cross-covariance")?;
        let nuclear = singular.sum();
        let (dx, dy) = (m.xx.nrows(), m.yy.nrows());
        let [mean_cca, svcca, pwcca] = match m.n as usize > dx.max(dy) {
            true => match eigen {
                Some(pair) => cca_family(m, pair, &mut notes)?,
                None => {
                    let (ex, ey) = (CovarianceEigen::of(&m.xx)?, CovarianceEigen::of(&m.yy)?);
                    cca_family(m, (&ex, &ey), &mut notes)?
                }
            },
            false => {
                notes.push(format!(
                    "the CCA measures need more rows than columns: N = {} with D = {dx} and {dy}",
                    m.n
                ));
                [None; 3]
            }
        };
        Ok(Similarity {
            linear_cka: xy / (xx.sqrt() * yy.sqrt()),
            debiased_cka: debiased_cka.flatten(),
            procrustes: (2.0 - 2.0 * nuclear).max(0.0),
            procrustes_angular: nuclear.min(1.0).acos(),
            mean_cca,
            svcca,
            pwcca,
            rbf_cka: None,
            mutual_knn: None,
            cknna: None,
            notes,
        })
    }
}

/// The state of all rows of `x` and `y` (rows corresponding), checked.
fn state_of<F: Real, G: Real>(
    x: ArrayView2<F>,
    y: ArrayView2<G>,
    what: &'static str,
) -> Result<SimilarityState> {
    let n = x.nrows();
    if y.nrows() != n {
        return Err(GeometryError::ShapeMismatch {
            what: format!("{what} needs the same rows: {n} vs {}", y.nrows()),
        });
    }
    if n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: what,
            needed: 2,
            got: n,
        });
    }
    let mut state = SimilarityState::new(x.ncols(), y.ncols());
    state.update(x, y)?;
    Ok(state)
}

/// The moment-based similarity family between `x` (N x D1) and `y` (N x D2), rows
/// corresponding.
pub fn similarity<F: Real, G: Real>(x: ArrayView2<F>, y: ArrayView2<G>) -> Result<Similarity> {
    Similarity::from_moments(&state_of(x, y, "the similarity of representations")?.centred()?)
}

/// Linear CKA between `x` (N x D1) and `y` (N x D2), rows corresponding; 1 for the same
/// representation up to rotation, isotropic scaling and translation.
pub fn linear_cka<F: Real, G: Real>(x: ArrayView2<F>, y: ArrayView2<G>) -> Result<f64> {
    let m = state_of(x, y, "CKA")?.centred()?.unit_trace()?;
    let denominator = frobenius_sq(&m.xx).sqrt() * frobenius_sq(&m.yy).sqrt();
    if denominator == 0.0 {
        return Err(GeometryError::Labels {
            what: "CKA is undefined for a constant representation".into(),
        });
    }
    Ok(frobenius_sq(&m.xy) / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    fn orthogonal(d: usize, seed: u64) -> Array2<f64> {
        let mut m = pseudo_random(d, d, seed);
        for i in 0..d {
            for j in 0..i {
                let p = m.row(i).dot(&m.row(j));
                let r = m.row(j).to_owned();
                m.row_mut(i).scaled_add(-p, &r);
            }
            let norm = m.row(i).dot(&m.row(i)).sqrt();
            m.row_mut(i).mapv_inplace(|v| v / norm);
        }
        m
    }

    /// A rotation, a scale and a translation leave every measure at its ideal.
    #[test]
    fn invariances_and_the_ideal() {
        let x = pseudo_random(60, 5, 3);
        let y = x.dot(&orthogonal(5, 4)) * 3.0 + 1.5;
        let got = similarity(x.view(), y.view()).unwrap();
        assert!((got.linear_cka - 1.0).abs() < 1e-12);
        assert!((got.debiased_cka.unwrap() - 1.0).abs() < 1e-12);
        assert!(got.procrustes < 1e-12 && got.procrustes_angular < 1e-6);
        for v in [got.mean_cca, got.svcca, got.pwcca] {
            assert!((v.unwrap() - 1.0).abs() < 1e-9, "{v:?}");
        }
        // CCA is invariant to any invertible linear map, not only rotations.
        let stretched = x.dot(&pseudo_random(5, 5, 8));
        let cca = similarity(x.view(), stretched.view()).unwrap();
        assert!((cca.mean_cca.unwrap() - 1.0).abs() < 1e-9);
        let other = pseudo_random(60, 3, 9);
        let unrelated = similarity(x.view(), other.view()).unwrap();
        let linear = linear_cka(x.view(), other.view()).unwrap();
        assert!((unrelated.linear_cka - linear).abs() < 1e-12);
        assert!(unrelated.debiased_cka.unwrap() < unrelated.linear_cka);
        assert!(unrelated.procrustes > 0.5 && unrelated.procrustes_angular > 0.5);
        assert!(unrelated.mean_cca.unwrap() < 0.5);
        assert!(similarity(x.view(), other.slice(s![..10, ..])).is_err());
        // Too few rows for CCA: said so, the rest measured.
        let narrow = similarity(x.slice(s![..4, ..]), other.slice(s![..4, ..])).unwrap();
        assert!(narrow.mean_cca.is_none() && narrow.notes[0].contains("more rows"));
    }

    /// Rows of any scale whose second moments are finite give the measures of the unscaled
    /// rows (they are computed from the moments scaled to unit trace); where the fourth-order
    /// sums overflow, debiased CKA is left out with a note; where the second moments do, the
    /// error says so (never a NaN).
    #[test]
    fn extreme_scales_give_the_same_values_or_say_why_not() {
        let (x, y) = (pseudo_random(40, 4, 5), pseudo_random(40, 3, 6));
        let want = similarity(x.view(), y.view()).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
        for scale in [1e-120, 1e60, 1e100, 1e140] {
            let got = similarity((&x * scale).view(), (&y * scale).view()).unwrap();
            assert!(close(got.linear_cka, want.linear_cka), "{scale}");
            assert!(close(got.procrustes, want.procrustes), "{scale}");
            assert!(
                close(got.procrustes_angular, want.procrustes_angular),
                "{scale}"
            );
            for (g, w) in [(got.mean_cca, want.mean_cca), (got.svcca, want.svcca)]
                .into_iter()
                .chain([(got.pwcca, want.pwcca)])
            {
                assert!(close(g.unwrap(), w.unwrap()), "{scale}: {g:?} {w:?}");
            }
            match scale == 1e60 {
                true => assert!(close(got.debiased_cka.unwrap(), want.debiased_cka.unwrap())),
                false => {
                    assert!(got.debiased_cka.is_none());
                    assert!(got.notes.iter().any(|n| n.contains("fourth-order")));
                }
            }
            let linear = linear_cka((&x * scale).view(), (&y * scale).view()).unwrap();
            assert!(close(linear, want.linear_cka));
        }
        let error = similarity((&x * 1e160).view(), y.view()).unwrap_err();
        assert!(error.to_string().contains("overflow"), "{error}");
        let mut moments = SimilarityState::new(4, 3);
        moments.update((&x * 1e160).view(), y.view()).unwrap();
        let covariance = moments.centred().unwrap().xx;
        let error = CovarianceEigen::of(&covariance).unwrap_err();
        assert!(error.to_string().contains("overflow"), "{error}");
        let constant = Array2::<f64>::ones((40, 4));
        let error = similarity(constant.view(), y.view()).unwrap_err();
        assert!(error.to_string().contains("constant"), "{error}");
        assert!(CovarianceEigen::of(&Array2::zeros((4, 4))).is_ok());
        let error = similarity(x.view(), (&y * 1e-150).view()).unwrap_err();
        assert!(error.to_string().contains("too small"), "{error}");
    }

    /// A constant column is a direction of zero variance: CCA leaves it out and says so.
    #[test]
    fn constant_columns_are_left_out_of_cca_with_a_note() {
        let mut x = pseudo_random(50, 4, 1);
        x.column_mut(2).fill(3.0);
        let y = pseudo_random(50, 3, 2);
        let got = similarity(x.view(), y.view()).unwrap();
        assert!(got.mean_cca.unwrap().is_finite());
        assert!(got.notes.iter().any(|n| n.contains("1 direction(s)")));
    }
}
