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

/// `c += z^T z` on the upper triangle of `c` (BLAS `dsyrk`, `k n^2` flops for a `k x n` block);
/// `z` must be in standard layout.
pub(crate) fn syrk_add(z: ArrayView2<f64>, c: &mut Array2<f64>) {
    syrk(z, c, true);
}

/// The Gram matrix `z z^T` of the rows of `z` (`k x k` for a `k x n` block, `k^2 n` flops by
/// BLAS `dsyrk`), symmetric.
pub(crate) fn row_gram(z: ArrayView2<f64>) -> Array2<f64> {
    let mut gram = Array2::<f64>::zeros((z.nrows(), z.nrows()));
    syrk(z, &mut gram, false);
    symmetrize(&mut gram);
    gram
}

/// Rows of the left factor per task of [`parallel_product`].
const PRODUCT_BLOCK_ROWS: usize = 128;

/// `a b` (`m x k` by `k x n`, f64) by GEMMs of fixed blocks of [`PRODUCT_BLOCK_ROWS`] rows
/// of `a`, in parallel: the same bits for any thread count (`2 m n k` flops).
pub(crate) fn parallel_product(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    single_threaded_blas();
    let blocks: Vec<Array2<f64>> = (0..a.nrows().div_ceil(PRODUCT_BLOCK_ROWS))
        .into_par_iter()
        .map(|block| {
            let start = block * PRODUCT_BLOCK_ROWS;
            let end = (start + PRODUCT_BLOCK_ROWS).min(a.nrows());
            a.slice(ndarray::s![start..end, ..]).dot(&b)
        })
        .collect();
    let mut product = Array2::<f64>::zeros((a.nrows(), b.ncols()));
    for (block, part) in blocks.into_iter().enumerate() {
        let start = block * PRODUCT_BLOCK_ROWS;
        product
            .slice_mut(ndarray::s![start..start + part.nrows(), ..])
            .assign(&part);
    }
    product
}

/// `c += z^T z` (`transposed`) or `c += z z^T` on the upper triangle of `c` by `dsyrk`.
fn syrk(z: ArrayView2<f64>, c: &mut Array2<f64>, transposed: bool) {
    let (rows, cols) = z.dim();
    let (side, depth) = match transposed {
        true => (cols, rows),
        false => (rows, cols),
    };
    assert!(z.is_standard_layout() && c.is_standard_layout() && c.dim() == (side, side));
    if side == 0 || depth == 0 {
        return;
    }
    let trans = match transposed {
        true => cblas_sys::CblasTrans,
        false => cblas_sys::CblasNoTrans,
    };
    // SAFETY: z is rows x cols row-major with lda = cols, c is side x side row-major with
    // ldc = side; the product's inner dimension is depth.
    unsafe {
        cblas_sys::cblas_dsyrk(
            cblas_sys::CblasRowMajor,
            cblas_sys::CblasUpper,
            trans,
            side as i32,
            depth as i32,
            1.0,
            z.as_ptr(),
            cols as i32,
            1.0,
            c.as_mut_ptr(),
            side as i32,
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

/// Rows a stripe holds at least: each stripe's D x D sum costs its fresh memory (page faults
/// and, on release, TLB shootdowns, slow in a virtual machine) and one more addition of D x D
/// terms, which the stripe's `rows D^2` flops must outweigh (20,000 x 2,048: 2 stripes of
/// 10,000 rows took 1.2 s a scatter where 8 of 2,500 took 1.75 s).
const MIN_STRIPE_ROWS: usize = 8192;

/// Parallel tasks with a `side x side` accumulator each: at most 16, and no more than
/// [`STRIPE_BYTES`] of accumulators. Depends on `side` only, never on the thread count.
pub(crate) fn accumulator_count(side: usize) -> usize {
    (STRIPE_BYTES / (8 * side * side).max(1)).clamp(1, 16)
}

/// Stripes of `rows` rows, each with its own `side x side` accumulator: at most
/// [`accumulator_count`], and at least [`MIN_STRIPE_ROWS`] rows each (at least one stripe).
/// Depends on the shape only, never on the thread count.
pub(crate) fn stripe_count(rows: usize, side: usize) -> usize {
    accumulator_count(side).min(rows / MIN_STRIPE_ROWS).max(1)
}

/// `sum_{i in rows} (x_i - m)(x_i - m)^T` (D x D, symmetric), `rows` in the given order.
pub(crate) fn scatter<F: Element>(
    x: ArrayView2<F>,
    rows: &[usize],
    mean: ArrayView1<f64>,
) -> Array2<f64> {
    single_threaded_blas();
    let d = x.ncols();
    let per_stripe = rows.len().div_ceil(stripe_count(rows.len(), d)).max(1);
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

/// Columns centred and widened per block of [`column_block_gram`].
const GRAM_BLOCK_COLUMNS: usize = 256;
/// Upper bound of the memory held by the column stripes' N x N partial Gram matrices.
const GRAM_STRIPE_BYTES: usize = 128 << 20;

/// The Gram matrix `Z Z^T` (N x N, symmetric) of the rows of `x` about `mean` (`Z = x - 1
/// mean^T`; about the origin when `mean` is `None`), and the column sums of squares `sum_i
/// Z_ij^2`, accumulated in f64.
///
/// The columns are cut into blocks of [`GRAM_BLOCK_COLUMNS`], each centred into an `N x 256`
/// f64 block and added by `dsyrk` (`N^2 256` flops) into the partial sum of its stripe; the
/// stripes (a fixed partition of the blocks that depends on N and D only) run in parallel and
/// are added in order, so the bits do not depend on the thread count. Memory: an N x N sum and
/// an N x 256 block per stripe, never an N x D copy.
pub(crate) fn column_block_gram<F: Element>(
    x: ArrayView2<F>,
    mean: Option<&[f64]>,
) -> (Array2<f64>, Vec<f64>) {
    single_threaded_blas();
    let (n, d) = x.dim();
    let blocks = d.div_ceil(GRAM_BLOCK_COLUMNS);
    let stripes = (GRAM_STRIPE_BYTES / (8 * n * n).max(1))
        .clamp(1, 16)
        .min(blocks.max(1));
    let per_stripe = blocks.div_ceil(stripes).max(1);
    let stripe_ranges: Vec<std::ops::Range<usize>> = (0..blocks)
        .step_by(per_stripe)
        .map(|b| b..(b + per_stripe).min(blocks))
        .collect();
    let partials: Vec<(Array2<f64>, Vec<f64>)> = stripe_ranges
        .into_par_iter()
        .map(|range| {
            let mut gram = Array2::<f64>::zeros((n, n));
            let mut squares = Vec::new();
            let mut z = Array2::<f64>::zeros((n, GRAM_BLOCK_COLUMNS.min(d)));
            for block in range {
                let start = block * GRAM_BLOCK_COLUMNS;
                let end = (start + GRAM_BLOCK_COLUMNS).min(d);
                let width = end - start;
                if z.ncols() != width {
                    z = Array2::<f64>::zeros((n, width));
                }
                for (i, out) in z.outer_iter_mut().enumerate() {
                    let out = out
                        .into_slice()
                        .expect("rows of a new matrix are contiguous");
                    let row = x.row(i);
                    let row = row.slice(ndarray::s![start..end]);
                    let row = crate::kernels::rows::contiguous(&row);
                    match mean {
                        Some(mean) => {
                            crate::kernels::rows::centre_row(out, &row, &mean[start..end])
                        }
                        None => crate::kernels::rows::widen_row(out, &row),
                    }
                }
                let mut block_squares = vec![0.0f64; width];
                for row in z.outer_iter() {
                    for (s, v) in block_squares.iter_mut().zip(row.iter()) {
                        *s += v * v;
                    }
                }
                squares.extend(block_squares);
                syrk(z.view(), &mut gram, false);
            }
            (gram, squares)
        })
        .collect();
    let mut total = Array2::<f64>::zeros((n, n));
    let mut squares = Vec::with_capacity(d);
    for (gram, stripe_squares) in partials {
        total += &gram;
        squares.extend(stripe_squares);
    }
    symmetrize(&mut total);
    (total, squares)
}

/// `0..n` as row indices.
pub(crate) fn all_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    #[test]
    fn stripes_hold_enough_rows_and_bounded_sums() {
        assert_eq!(stripe_count(20_000, 2_048), 2);
        assert_eq!(stripe_count(1_000, 16), 1);
        assert_eq!(stripe_count(1_000_000, 512), 16);
        assert_eq!(stripe_count(100_000, 8_192), 1);
        assert_eq!(accumulator_count(1_000), 16);
    }

    #[test]
    fn the_scatter_of_several_stripes_is_the_plain_sum_whatever_the_thread_count() {
        let x = pseudo_random(3 * MIN_STRIPE_ROWS + 5, 7, 4);
        assert_eq!(stripe_count(x.nrows(), 7), 3);
        let mean = x.mean_axis(ndarray::Axis(0)).unwrap();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| scatter(x.view(), &all_rows(x.nrows()), mean.view()))
        };
        let one = run(1);
        assert_eq!(run(2), one);
        assert_eq!(run(3), one);
        let centred = &x - &mean.view().insert_axis(ndarray::Axis(0));
        let plain = centred.t().dot(&centred);
        for (a, b) in one.iter().zip(plain.iter()) {
            assert!((a - b).abs() <= 1e-12 * plain[[0, 0]], "{a} vs {b}");
        }
    }
}
