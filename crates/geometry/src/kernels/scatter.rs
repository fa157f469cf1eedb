//! Scatter matrices `sum_i (x_i - m)(x_i - m)^T`, accumulated in f64 with
//! BLAS `dsyrk` over a fixed partition of the rows: memory O(D^2) per stripe, whatever N, and
//! the same bits whatever the thread count.

use crate::kernels::real::Element;
use crate::kernels::tiles::single_threaded_blas;
use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Rows converted to f64 per GEMM call.
const CHUNK_ROWS: usize = 1024;
/// Upper bound of the memory held by the stripes' partial sums.
const STRIPE_BYTES: usize = 256 << 20;

/// `c += z^T z` on the upper triangle of `c` (BLAS `dsyrk`); `z` must be in standard layout.
pub(crate) fn syrk_add(z: ArrayView2<f64>, c: &mut Array2<f64>) {
    let (k, n) = z.dim();
    assert!(z.is_standard_layout() && c.is_standard_layout() && c.dim() == (n, n));
    if k == 0 || n == 0 {
        return;
    }
    // SAFETY: z is k x n row-major with lda = n, c is n x n row-major with ldc = n.
    unsafe {
        cblas_sys::cblas_dsyrk(
            cblas_sys::CblasRowMajor,
            cblas_sys::CblasUpper,
            cblas_sys::CblasTrans,
            n as i32,
            k as i32,
            1.0,
            z.as_ptr(),
            n as i32,
            1.0,
            c.as_mut_ptr(),
            n as i32,
        );
    }
}

/// Copy the upper triangle of a square matrix onto its lower triangle (in square blocks, so
/// that the column reads stay in cache).
pub(crate) fn symmetrize(c: &mut Array2<f64>) {
    const BLOCK: usize = 64;
    let n = c.nrows();
    for bi in (0..n).step_by(BLOCK) {
        for bj in (0..=bi).step_by(BLOCK) {
            for i in bi..(bi + BLOCK).min(n) {
                for j in bj..(bj + BLOCK).min(i) {
                    c[[i, j]] = c[[j, i]];
                }
            }
        }
    }
}

/// Stripes of rows (each with its own D x D accumulator) for D columns: at most 16, and no more
/// than [`STRIPE_BYTES`] of accumulators. Depends on D only, never on the thread count.
pub(crate) fn stripe_count(d: usize) -> usize {
    (STRIPE_BYTES / (8 * d * d).max(1)).clamp(1, 16)
}

/// `sum_{i in rows} (x_i - m)(x_i - m)^T` (D x D, symmetric), `rows` in the given order.
pub(crate) fn scatter<F: Element>(
    x: ArrayView2<F>,
    rows: &[usize],
    mean: ArrayView1<f64>,
) -> Array2<f64> {
    single_threaded_blas();
    let d = x.ncols();
    let per_stripe = rows.len().div_ceil(stripe_count(d)).max(1);
    let partials: Vec<Array2<f64>> = rows
        .par_chunks(per_stripe)
        .map(|stripe| upper_scatter(x, stripe, mean))
        .collect();
    let mut total = Array2::<f64>::zeros((d, d));
    for partial in partials {
        total += &partial;
    }
    symmetrize(&mut total);
    total
}

/// The upper triangle of `sum_{i in rows} (x_i - m)(x_i - m)^T` on this thread: the centred
/// rows in chunks of [`CHUNK_ROWS`], each added by `dsyrk` into one accumulator. Callers that
/// are already parallel (one class per task) use it directly, without stripes.
pub(crate) fn upper_scatter<F: Element>(
    x: ArrayView2<F>,
    rows: &[usize],
    mean: ArrayView1<f64>,
) -> Array2<f64> {
    let d = x.ncols();
    let mut sum = Array2::<f64>::zeros((d, d));
    let mut z = Array2::<f64>::zeros((CHUNK_ROWS.min(rows.len()).max(1), d));
    let mean = mean.to_vec();
    for chunk in rows.chunks(CHUNK_ROWS) {
        centre_rows_into(&mut z, x, chunk, &mean);
        syrk_add(z.slice(ndarray::s![..chunk.len(), ..]), &mut sum);
    }
    sum
}

/// Rows `rows` of `x` minus `mean`, in f64, into the first `rows.len()` rows of `z` (standard
/// layout, D columns), fetching rows a few ahead (the rows of a class lie all over the input).
pub(crate) fn centre_rows_into<F: Element>(
    z: &mut Array2<f64>,
    x: ArrayView2<F>,
    rows: &[usize],
    mean: &[f64],
) {
    for (r, (out, &i)) in z.outer_iter_mut().zip(rows).enumerate() {
        crate::kernels::rows::fetch_ahead(x, rows, r);
        let out = out
            .into_slice()
            .expect("rows of a new matrix are contiguous");
        crate::kernels::rows::centre_row(out, &crate::kernels::rows::contiguous(&x.row(i)), mean);
    }
}

/// `0..n` as row indices.
pub(crate) fn all_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}
