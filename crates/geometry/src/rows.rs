//! Row-wise preparation: finiteness checks, L2 normalisation and squared norms.

use crate::error::{GeometryError, Result};
use crate::real::Real;
use crate::tiles::map_row_chunks;
use ndarray::{Array2, ArrayView2, Axis};

/// Check that every entry is finite; the error names the first bad row and column.
pub fn check_finite<F: Real>(x: ArrayView2<F>) -> Result<()> {
    let first_bad = map_row_chunks(x.nrows(), |range| {
        range.into_iter().find_map(|i| {
            x.row(i).iter().enumerate().find_map(|(j, v)| {
                let v = v.as_f64();
                (!v.is_finite()).then_some(GeometryError::NonFinite {
                    row: i,
                    column: j,
                    value: v,
                })
            })
        })
    });
    match first_bad.into_iter().flatten().next() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// L2 norm of every row, accumulated in f64.
pub fn row_norms<F: Real>(x: ArrayView2<F>) -> Vec<f64> {
    map_row_chunks(x.nrows(), |range| {
        range
            .map(|i| {
                x.row(i)
                    .iter()
                    .map(|v| v.as_f64().powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect::<Vec<f64>>()
    })
    .concat()
}

/// `x_i / ||x_i||_2` for every row (Wang & Isola 2020 define alignment and uniformity on the
/// unit hypersphere). A row of norm 0 or with a non-finite entry is an error naming the row.
pub fn normalize_rows<F: Real>(x: ArrayView2<F>) -> Result<Array2<F>> {
    check_finite(x)?;
    let norms = row_norms(x);
    if let Some(row) = norms.iter().position(|&n| n == 0.0 || !n.is_finite()) {
        return Err(GeometryError::ZeroNorm { row });
    }
    let mut out = x.to_owned();
    for (mut row, &norm) in out.axis_iter_mut(Axis(0)).zip(&norms) {
        row.mapv_inplace(|v| F::from_f64(v.as_f64() / norm));
    }
    Ok(out)
}

/// `||x_i||^2` of every row, accumulated in f64 and stored in the element type.
pub(crate) fn squared_norms<F: Real>(x: ArrayView2<F>) -> Vec<F> {
    row_norms(x)
        .into_iter()
        .map(|n| F::from_f64(n * n))
        .collect()
}

/// `||a - b||^2` accumulated in f64.
pub(crate) fn squared_distance<F: Real>(
    a: ndarray::ArrayView1<F>,
    b: ndarray::ArrayView1<F>,
) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(&u, &v)| (u.as_f64() - v.as_f64()).powi(2))
        .sum()
}
