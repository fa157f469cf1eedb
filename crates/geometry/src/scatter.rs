//! Second-moment (scatter) matrices `sum_i (x_i - o_i)(x_i - o_i)^T`, accumulated in f64 with
//! BLAS `dgemm` over a fixed partition of the rows: memory O(D^2) per stripe, whatever N, and
//! the same bits whatever the thread count.

use crate::real::Real;
use crate::tiles::single_threaded_blas;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

/// What is subtracted from each row before the outer product.
pub(crate) enum Offset<'a> {
    /// Nothing: the uncentred second moment `X^T X`.
    Zero,
    /// One vector for every row (e.g. the mean).
    Shared(ArrayView1<'a, f64>),
    /// The mean of each row's class: `means[labels[i]]`.
    PerClass {
        means: ArrayView2<'a, f64>,
        labels: &'a [u32],
    },
}

/// Rows converted to f64 per GEMM call.
const CHUNK_ROWS: usize = 256;
/// Upper bound of the memory held by the stripes' partial sums.
const STRIPE_BYTES: usize = 256 << 20;

/// `sum_{i in rows} (x_i - o_i)(x_i - o_i)^T` (D x D), `rows` in the given order.
pub(crate) fn scatter<F: Real>(x: ArrayView2<F>, rows: &[usize], offset: &Offset) -> Array2<f64> {
    single_threaded_blas();
    let d = x.ncols();
    let stripes = (STRIPE_BYTES / (8 * d * d).max(1)).clamp(1, 16);
    let per_stripe = rows.len().div_ceil(stripes).max(1);
    let partials: Vec<Array2<f64>> = rows
        .par_chunks(per_stripe)
        .map(|stripe| {
            let mut sum = Array2::<f64>::zeros((d, d));
            let mut z = Array2::<f64>::zeros((CHUNK_ROWS, d));
            for chunk in stripe.chunks(CHUNK_ROWS) {
                for (r, &i) in chunk.iter().enumerate() {
                    let mut out = z.row_mut(r);
                    match offset {
                        Offset::Zero => out.zip_mut_with(&x.row(i), |o, v| *o = v.as_f64()),
                        Offset::Shared(o) => {
                            for ((dst, v), m) in out.iter_mut().zip(x.row(i)).zip(o.iter()) {
                                *dst = v.as_f64() - m;
                            }
                        }
                        Offset::PerClass { means, labels } => {
                            let m = means.row(labels[i] as usize);
                            for ((dst, v), m) in out.iter_mut().zip(x.row(i)).zip(m.iter()) {
                                *dst = v.as_f64() - m;
                            }
                        }
                    }
                }
                let block = z.slice(ndarray::s![..chunk.len(), ..]);
                general_mat_mul(1.0, &block.t(), &block, 1.0, &mut sum);
            }
            sum
        })
        .collect();
    let mut total = Array2::<f64>::zeros((d, d));
    for partial in partials {
        total += &partial;
    }
    total
}

/// `0..n` as row indices.
pub(crate) fn all_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}
