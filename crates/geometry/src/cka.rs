//! Linear centred kernel alignment (Kornblith et al., ICML 2019, "Similarity of neural network
//! representations revisited") between two representations of the same rows:
//! `CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)` on column-centred X and Y.

use crate::error::{GeometryError, Result};
use crate::real::Real;
use crate::scatter::{all_rows, scatter};
use crate::spectrum::column_means;
use crate::tiles::{map_row_chunks, single_threaded_blas};
use ndarray::{s, Array2, ArrayView2};

/// Linear CKA between `x` (N x D1) and `y` (N x D2), rows corresponding; 1 for the same
/// representation up to rotation, isotropic scaling and translation.
pub fn linear_cka<F: Real, G: Real>(x: ArrayView2<F>, y: ArrayView2<G>) -> Result<f64> {
    single_threaded_blas();
    let n = x.nrows();
    if y.nrows() != n {
        return Err(GeometryError::ShapeMismatch {
            what: format!("CKA needs the same rows: {n} vs {}", y.nrows()),
        });
    }
    if n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "CKA",
            needed: 2,
            got: n,
        });
    }
    let (mx, my) = (column_means(x), column_means(y));
    let rows = all_rows(n);
    let sxx = scatter(x, &rows, mx.view());
    let syy = scatter(y, &rows, my.view());
    let partials = map_row_chunks(n, |range| {
        let cx = x.slice(s![range.clone(), ..]).mapv(Real::as_f64) - &mx;
        let cy = y.slice(s![range, ..]).mapv(Real::as_f64) - &my;
        cx.t().dot(&cy)
    });
    let mut cross = Array2::<f64>::zeros((x.ncols(), y.ncols()));
    for partial in partials {
        cross += &partial;
    }
    let frobenius_sq = |a: &Array2<f64>| a.iter().map(|v| v * v).sum::<f64>();
    let denominator = frobenius_sq(&sxx).sqrt() * frobenius_sq(&syy).sqrt();
    if denominator == 0.0 {
        return Err(GeometryError::Labels {
            what: "CKA is undefined for a constant representation".into(),
        });
    }
    Ok(frobenius_sq(&cross) / denominator)
}
