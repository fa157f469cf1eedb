//! Row-wise preparation: finiteness checks, L2 normalisation and squared norms.

use crate::error::{GeometryError, Result};
use crate::real::Real;
use crate::tiles::{map_row_chunks, ROW_CHUNK};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

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

/// The power of two `2^e` with `m / 2^e` in `[1, 2)` for `m > 0` finite (for subnormal `m`,
/// the smallest subnormal); dividing by it is exact, so scaling by it changes no bit of a
/// result unless the unscaled computation would have overflowed or underflowed.
pub(crate) fn power_of_two_below(m: f64) -> f64 {
    if m < f64::MIN_POSITIVE {
        return f64::from_bits(1);
    }
    f64::from_bits(m.to_bits() & 0x7ff0_0000_0000_0000)
}

/// `(s, ||x / s||)` for a row: `s` a power of two near its largest entry (1 for a zero row),
/// so that the sum of squares neither overflows nor underflows for any finite row.
fn scaled_norm<F: Real>(row: ndarray::ArrayView1<F>) -> (f64, f64) {
    let largest = row.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
    if largest == 0.0 || !largest.is_finite() {
        return (1.0, largest);
    }
    let scale = power_of_two_below(largest);
    let sum: f64 = row.iter().map(|v| (v.as_f64() / scale).powi(2)).sum();
    (scale, sum.sqrt())
}

/// L2 norm of every row, accumulated in f64 with a power-of-two scaling (exact for every
/// row whose squares stay in range; no overflow or underflow for any finite row).
pub fn row_norms<F: Real>(x: ArrayView2<F>) -> Vec<f64> {
    map_row_chunks(x.nrows(), |range| {
        range
            .map(|i| {
                let (scale, norm) = scaled_norm(x.row(i));
                norm * scale
            })
            .collect::<Vec<f64>>()
    })
    .concat()
}

/// `x_i / ||x_i||_2` for every row (Wang & Isola 2020 define alignment and uniformity on the
/// unit hypersphere). A row of norm 0 or with a non-finite entry is an error naming the row.
/// Rows are divided as `(x_i / s) / ||x_i / s||` with `s` a power of two, so rows of any
/// finite scale (1e-300 or 1e300) normalise.
pub fn normalize_rows<F: Real>(x: ArrayView2<F>) -> Result<Array2<F>> {
    check_finite(x)?;
    let scaled: Vec<(f64, f64)> = map_row_chunks(x.nrows(), |range| {
        range.map(|i| scaled_norm(x.row(i))).collect::<Vec<_>>()
    })
    .concat();
    if let Some(row) = scaled.iter().position(|&(_, n)| n == 0.0 || !n.is_finite()) {
        return Err(GeometryError::ZeroNorm { row });
    }
    // Each row written once, in parallel over fixed blocks of rows (elementwise: the same
    // bits whatever the thread count).
    let (n, d) = x.dim();
    let mut values = vec![F::zero(); n * d];
    values
        .par_chunks_mut((ROW_CHUNK * d).max(1))
        .enumerate()
        .for_each(|(c, block)| {
            for (r, out) in block.chunks_mut(d.max(1)).enumerate() {
                let i = c * ROW_CHUNK + r;
                let (scale, norm) = scaled[i];
                for (o, v) in out.iter_mut().zip(x.row(i)) {
                    *o = F::from_f64(v.as_f64() / scale / norm);
                }
            }
        });
    Ok(Array2::from_shape_vec((n, d), values).expect("n x d values"))
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
