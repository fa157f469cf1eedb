//! How two representations of the same rows relate, beyond linear CKA: debiased CKA and the
//! orthogonal Procrustes distance in its two published forms. All on the column-centred rows
//! X (N x D1) and Y (N x D2), any widths.
//!
//! - Debiased linear CKA (Kornblith et al. 2019's notebook, after Song et al. 2012's unbiased
//!   HSIC): with `h(a, r, s) = a - N/(N - 2) r.s + (sum r)(sum s) / ((N - 1)(N - 2))` and
//!   `r_i = ||x_i||^2`, `s_i = ||y_i||^2`,
//!   `h(||X^T Y||_F^2, r, s) / sqrt(h(||X^T X||_F^2, r, r) h(||Y^T Y||_F^2, s, s))`.
//! - Procrustes (Ding et al. 2021, `sim_metric`): `2 - 2 ||X^T Y||_*` with X and Y scaled to
//!   unit Frobenius norm (the squared distance after the best rotation; 0 = the same up to
//!   rotation, translation and scale).
//! - Angular Procrustes (Williams et al. 2021, `netrep`): `arccos ||X^T Y||_*` on the same
//!   scaled rows, in radians (a metric; 0 = the same).

use crate::error::{GeometryError, Result};
use crate::kernels::tiles::{map_row_chunks, single_threaded_blas};
use crate::metrics::real::Real;
use crate::metrics::spectrum::column_means;
use ndarray::{s, Array1, Array2, ArrayView2};
use ndarray_linalg::SVD;
use serde::{Deserialize, Serialize};

/// The similarity family between two representations of the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// Linear CKA `||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)`.
    pub linear_cka: f64,
    /// Debiased linear CKA (unbiased HSIC); `None` below 4 rows.
    pub debiased_cka: Option<f64>,
    /// `2 - 2 ||X^T Y||_*` of the unit-Frobenius centred rows.
    pub procrustes: f64,
    /// `arccos ||X^T Y||_*` of the unit-Frobenius centred rows, radians.
    pub procrustes_angular: f64,
}

/// The moments of the centred rows that every measure (and [`crate::linear_cka`]) reads:
/// `X^T X`, `Y^T Y`, `X^T Y` and the rows' squared norms.
pub(crate) struct Moments {
    pub(crate) xx: Array2<f64>,
    pub(crate) yy: Array2<f64>,
    pub(crate) xy: Array2<f64>,
    row_x: Array1<f64>,
    row_y: Array1<f64>,
}

/// The [`Moments`] of the column-centred `x` and `y` (rows corresponding), in f64.
pub(crate) fn centred_moments<F: Real, G: Real>(x: ArrayView2<F>, y: ArrayView2<G>) -> Moments {
    let (mx, my) = (column_means(x), column_means(y));
    let partials = map_row_chunks(x.nrows(), |range| {
        let cx = x.slice(s![range.clone(), ..]).mapv(F::as_f64) - &mx;
        let cy = y.slice(s![range, ..]).mapv(G::as_f64) - &my;
        let norms = |c: &Array2<f64>| {
            c.rows()
                .into_iter()
                .map(|r| r.dot(&r))
                .collect::<Vec<f64>>()
        };
        (
            cx.t().dot(&cx),
            cy.t().dot(&cy),
            cx.t().dot(&cy),
            norms(&cx),
            norms(&cy),
        )
    });
    let mut out = Moments {
        xx: Array2::zeros((x.ncols(), x.ncols())),
        yy: Array2::zeros((y.ncols(), y.ncols())),
        xy: Array2::zeros((x.ncols(), y.ncols())),
        row_x: Array1::zeros(0),
        row_y: Array1::zeros(0),
    };
    let (mut row_x, mut row_y) = (Vec::with_capacity(x.nrows()), Vec::with_capacity(x.nrows()));
    for (xx, yy, xy, rx, ry) in partials {
        out.xx += &xx;
        out.yy += &yy;
        out.xy += &xy;
        row_x.extend(rx);
        row_y.extend(ry);
    }
    out.row_x = Array1::from(row_x);
    out.row_y = Array1::from(row_y);
    out
}

/// `||a||_F^2`.
pub(crate) fn frobenius_sq(a: &Array2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum()
}

/// Song et al.'s unbiased HSIC numerator in feature space (see the module documentation).
fn debiased(product: f64, r: &Array1<f64>, s: &Array1<f64>, n: f64) -> f64 {
    product - n / (n - 2.0) * r.dot(s) + r.sum() * s.sum() / ((n - 1.0) * (n - 2.0))
}

/// The similarity family between `x` (N x D1) and `y` (N x D2), rows corresponding.
pub fn similarity<F: Real, G: Real>(x: ArrayView2<F>, y: ArrayView2<G>) -> Result<Similarity> {
    single_threaded_blas();
    let n = x.nrows();
    if y.nrows() != n {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "the similarity family needs the same rows: {n} vs {}",
                y.nrows()
            ),
        });
    }
    if n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "similarity of representations",
            needed: 2,
            got: n,
        });
    }
    let m = centred_moments(x, y);
    let (xx, yy, xy) = (
        frobenius_sq(&m.xx),
        frobenius_sq(&m.yy),
        frobenius_sq(&m.xy),
    );
    let (trace_x, trace_y) = (m.row_x.sum(), m.row_y.sum());
    if xx == 0.0 || yy == 0.0 || trace_x == 0.0 || trace_y == 0.0 {
        return Err(GeometryError::Labels {
            what: "the similarity of a constant representation is undefined".into(),
        });
    }
    let nf = n as f64;
    let debiased_cka = (n >= 4).then(|| {
        let numerator = debiased(xy, &m.row_x, &m.row_y, nf);
        let denominator =
            debiased(xx, &m.row_x, &m.row_x, nf) * debiased(yy, &m.row_y, &m.row_y, nf);
        (denominator > 0.0).then(|| numerator / denominator.sqrt())
    });
    // ||X^T Y||_* of the rows scaled to unit Frobenius norm (||X||_F^2 = tr X^T X).
    let scaled = &m.xy / (trace_x * trace_y).sqrt();
    let (_, singular, _) = scaled
        .svd(false, false)
        .map_err(|e| GeometryError::Numerical {
            what: format!("singular values of the cross-covariance: {e}"),
        })?;
    let nuclear = singular.sum();
    Ok(Similarity {
        linear_cka: xy / (xx.sqrt() * yy.sqrt()),
        debiased_cka: debiased_cka.flatten(),
        procrustes: (2.0 - 2.0 * nuclear).max(0.0),
        procrustes_angular: nuclear.min(1.0).acos(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;
    use crate::linear_cka;

    /// A rotation, a scale and a translation leave every measure at its ideal; linear CKA
    /// equals `linear_cka`.
    #[test]
    fn invariances_and_the_ideal() {
        let x = pseudo_random(60, 5, 3);
        let q = {
            // An orthogonal 5 x 5 matrix from Gram-Schmidt.
            let mut m = pseudo_random(5, 5, 4);
            for i in 0..5 {
                for j in 0..i {
                    let p = m.row(i).dot(&m.row(j));
                    let r = m.row(j).to_owned();
                    m.row_mut(i).scaled_add(-p, &r);
                }
                let norm = m.row(i).dot(&m.row(i)).sqrt();
                m.row_mut(i).mapv_inplace(|v| v / norm);
            }
            m
        };
        let y = x.dot(&q) * 3.0 + 1.5;
        let got = similarity(x.view(), y.view()).unwrap();
        assert!((got.linear_cka - 1.0).abs() < 1e-12);
        assert!((got.debiased_cka.unwrap() - 1.0).abs() < 1e-12);
        assert!(got.procrustes < 1e-12 && got.procrustes_angular < 1e-6);
        let other = pseudo_random(60, 3, 9);
        let unrelated = similarity(x.view(), other.view()).unwrap();
        let linear = linear_cka(x.view(), other.view()).unwrap();
        assert!((unrelated.linear_cka - linear).abs() < 1e-12);
        assert!(unrelated.debiased_cka.unwrap() < unrelated.linear_cka);
        assert!(unrelated.procrustes > 0.5 && unrelated.procrustes_angular > 0.5);
        assert!(similarity(x.view(), other.slice(s![..10, ..])).is_err());
    }
}
