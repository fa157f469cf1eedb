//! Deterministic parallel building blocks: sums over row chunks and over tiles of the Gram
//! matrix `X X^T`, never materialising more than one `tile x tile` block per thread.
//!
//! Work is split into a fixed list of pieces whose results are combined in a fixed order, so
//! results do not depend on the number of threads.

use crate::kernels::real::Element;
use crate::progress::Progress;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Once;

/// Default side of a Gram tile (rows x rows).
pub const DEFAULT_TILE: usize = 512;

/// Rows per piece in [`map_row_chunks`].
pub(crate) const ROW_CHUNK: usize = 4096;

/// One block of the Gram matrix: `gram[r][c] = x_{row_start + r} . x_{col_start + c}`.
pub(crate) struct GramTile<'a, F> {
    /// The block, `rows.len() x cols.len()`, each row contiguous.
    pub gram: ndarray::ArrayViewMut2<'a, F>,
    /// Squared norms of the block's rows.
    pub row_sq: &'a [F],
    /// Squared norms of the block's columns.
    pub col_sq: &'a [F],
    /// The block lies on the diagonal: only entries with `c > r` are distinct pairs.
    pub diagonal: bool,
}

impl<F: Element> GramTile<'_, F> {
    /// Replace every pair entry by `f(d2)`, with the squared distance
    /// `d2 = max(0, |x_i|^2 + |x_j|^2 - 2 x_i.x_j)`, and return the rows as slices over the
    /// pairs `i < j` only.
    pub fn map_squared_distances(&mut self, f: impl Fn(F) -> F) -> Vec<&mut [F]> {
        let two = F::one() + F::one();
        let row_sq = self.row_sq;
        let col_sq = self.col_sq;
        let diagonal = self.diagonal;
        self.gram
            .rows_mut()
            .into_iter()
            .enumerate()
            .map(|(r, row)| {
                let first = if diagonal { r + 1 } else { 0 };
                let row = row.into_slice().expect("Gram tile rows are contiguous");
                let row = &mut row[first.min(col_sq.len())..];
                let cols = &col_sq[first.min(col_sq.len())..];
                for (g, &sq) in row.iter_mut().zip(cols) {
                    let d2 = row_sq[r] + sq - two * *g;
                    *g = f(if d2 > F::zero() { d2 } else { F::zero() });
                }
                row
            })
            .collect()
    }
}

/// Make OpenBLAS single-threaded: parallelism comes from rayon over tiles, rows and classes,
/// and a single-threaded BLAS or LAPACK call gives the same bits whatever the thread count.
/// Every public entry point that calls BLAS calls this first.
pub(crate) fn single_threaded_blas() {
    static ONCE: Once = Once::new();
    extern "C" {
        fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
    }
    // SAFETY: a plain setter of OpenBLAS, which this crate links through blas-src.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}

/// Apply `kernel` to every block `(I, J)`, `I <= J`, of the Gram matrix `x x^T`
/// (`other = None`), or to every block of the cross Gram matrix `x y^T` (`other = Some((y,
/// y_sq))`, no block on a diagonal): each a GEMM into a per-thread buffer, in parallel,
/// results in row-major block order. `x_sq` (`y_sq`) hold the squared row norms.
pub(crate) fn map_gram_tiles<F, T, K>(
    x: ArrayView2<F>,
    x_sq: &[F],
    other: Option<(ArrayView2<F>, &[F])>,
    tile: usize,
    progress: &dyn Progress,
    kernel: K,
) -> Vec<T>
where
    F: Element,
    T: Send,
    K: Fn(GramTile<F>) -> T + Sync,
{
    single_threaded_blas();
    let same = other.is_none();
    let (y, y_sq) = other.unwrap_or((x, x_sq));
    let (nx, ny) = (x.nrows(), y.nrows());
    let tile = tile.max(1);
    let (blocks_x, blocks_y) = (nx.div_ceil(tile), ny.div_ceil(tile));
    let pieces: Vec<(usize, usize)> = (0..blocks_x)
        .flat_map(|i| (if same { i } else { 0 }..blocks_y).map(move |j| (i, j)))
        .collect();
    let block_range = |b: usize, n: usize| b * tile..((b + 1) * tile).min(n);
    let out = pieces
        .par_iter()
        .map_init(
            || Array2::<F>::zeros((tile, tile)),
            |buffer, &(bi, bj)| {
                progress.begin_unit();
                let (rows, cols) = (block_range(bi, nx), block_range(bj, ny));
                let mut gram = buffer.slice_mut(s![..rows.len(), ..cols.len()]);
                let a = x.slice(s![rows.clone(), ..]);
                let b = y.slice(s![cols.clone(), ..]);
                match same && bi == bj {
                    true => diagonal_block(a, &mut gram),
                    false => general_mat_mul(F::one(), &a, &b.t(), F::zero(), &mut gram),
                }
                let result = kernel(GramTile {
                    gram,
                    row_sq: &x_sq[rows],
                    col_sq: &y_sq[cols],
                    diagonal: same && bi == bj,
                });
                progress.advance(1);
                result
            },
        )
        .collect();
    out
}

/// The upper triangle (the diagonal included) of the Gram block `a a^T` of a block on the
/// diagonal, by `syrk`: half the products of a GEMM (the kernels read only the pairs above the
/// diagonal). Rows that are not contiguous take a GEMM. Single-threaded like every BLAS call
/// here, so the bits do not depend on the thread count.
fn diagonal_block<F: Element>(a: ArrayView2<F>, gram: &mut ndarray::ArrayViewMut2<F>) {
    let (n, k) = a.dim();
    let rows_contiguous = a.strides()[1] == 1 && a.strides()[0] >= k as isize;
    let gram_rows_contiguous = gram.strides()[1] == 1 && gram.strides()[0] >= n as isize;
    let fits = i32::try_from(a.strides()[0].max(gram.strides()[0]).max(k as isize)).is_ok();
    if n == 0
        || k == 0
        || !rows_contiguous
        || !gram_rows_contiguous
        || !fits
        || gram.dim() != (n, n)
    {
        general_mat_mul(F::one(), &a, &a.t(), F::zero(), gram);
        return;
    }
    let (lda, ldc) = (a.strides()[0] as usize, gram.strides()[0] as usize);
    // SAFETY: `a` holds n rows of k elements lda apart and `gram` n rows of n elements ldc
    // apart (checked above), and the sizes fit in an i32.
    unsafe { F::gram_upper(n, k, a.as_ptr(), lda, gram.as_mut_ptr(), ldc) };
}

/// Number of blocks [`map_gram_tiles`] visits for the `n` rows of one matrix.
pub(crate) fn gram_tile_count(n: usize, tile: usize) -> u64 {
    let blocks = n.div_ceil(tile.max(1)) as u64;
    blocks * (blocks + 1) / 2
}

/// Apply `f` to consecutive row ranges of fixed size [`ROW_CHUNK`] in parallel and return the
/// results in order.
pub(crate) fn map_row_chunks<T, G>(n: usize, f: G) -> Vec<T>
where
    T: Send,
    G: Fn(Range<usize>) -> T + Sync,
{
    let chunks = n.div_ceil(ROW_CHUNK);
    (0..chunks)
        .into_par_iter()
        .map(|c| f(c * ROW_CHUNK..((c + 1) * ROW_CHUNK).min(n)))
        .collect()
}

/// Sum of `f` over fixed row chunks, added in order (thread-count independent).
pub(crate) fn sum_row_chunks<G>(n: usize, f: G) -> f64
where
    G: Fn(Range<usize>) -> f64 + Sync,
{
    map_row_chunks(n, f).into_iter().sum()
}
