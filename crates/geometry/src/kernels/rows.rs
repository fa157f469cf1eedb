//! Row-wise preparation: finiteness checks, L2 normalisation and squared norms.

use crate::error::{GeometryError, Result};
use crate::kernels::real::Element;
use crate::kernels::tiles::{map_row_chunks, ROW_CHUNK};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Check that every entry is finite; the error names the first bad row and column.
pub fn check_finite<F: Element>(x: ArrayView2<F>) -> Result<()> {
    let first_bad = map_row_chunks(x.nrows(), |range| {
        range.into_iter().find_map(|i| {
            let row = x.row(i);
            // A branch-free test of the whole row first; the column is searched only when
            // the row holds a bad entry.
            let all_finite = match row.as_slice() {
                Some(values) => values.iter().fold(true, |ok, v| ok & v.is_finite()),
                None => row.iter().all(|v| v.is_finite()),
            };
            if all_finite {
                return None;
            }
            row.iter().enumerate().find_map(|(j, v)| {
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

/// Accumulators of [`lane_sum`]: as many as an AVX-512 register holds f64s.
const LANES: usize = 8;

/// `sum_k term(a_k, b_k)` over two slices of equal length, accumulated in f64 in [`LANES`]
/// interleaved partial sums (term `k` into sum `k mod LANES`) added in a fixed order at the
/// end: independent additions the compiler vectorises, and the same bits on every machine and
/// thread count.
#[inline(always)]
pub(crate) fn lane_sum<F: Copy>(a: &[F], b: &[F], term: impl Fn(F, F) -> f64) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let ((blocks_a, tail_a), (blocks_b, tail_b)) = (a.as_chunks::<LANES>(), b.as_chunks::<LANES>());
    for (block_a, block_b) in blocks_a.iter().zip(blocks_b) {
        add_block(&mut lanes, block_a, block_b, &term);
    }
    finish_lanes(lanes, tail_a, tail_b, &term)
}

/// [`lane_sum`] of four pairs of slices at once (every slice of one length), each sum with
/// the same operations in the same order as alone, so the same bits: the four chains of
/// additions are independent, and a core overlaps them where one chain waits on its last
/// addition.
#[inline(always)]
pub(crate) fn four_lane_sums<F: Copy>(
    a: [&[F]; 4],
    b: [&[F]; 4],
    term: impl Fn(F, F) -> f64,
) -> [f64; 4] {
    let mut lanes = [[0.0f64; LANES]; 4];
    let ([a0, a1, a2, a3], [b0, b1, b2, b3]) = (
        a.map(|a| a.as_chunks::<LANES>()),
        b.map(|b| b.as_chunks::<LANES>()),
    );
    let blocks = a0.0.iter().zip(b0.0).zip(a1.0.iter().zip(b1.0));
    let blocks = blocks.zip(a2.0.iter().zip(b2.0).zip(a3.0.iter().zip(b3.0)));
    for (((p, q), (r, s)), ((u, v), (w, z))) in blocks {
        let [first, second, third, fourth] = &mut lanes;
        add_block(first, p, q, &term);
        add_block(second, r, s, &term);
        add_block(third, u, v, &term);
        add_block(fourth, w, z, &term);
    }
    let tails = [(a0.1, b0.1), (a1.1, b1.1), (a2.1, b2.1), (a3.1, b3.1)];
    std::array::from_fn(|p| finish_lanes(lanes[p], tails[p].0, tails[p].1, &term))
}

/// One block of [`LANES`] terms into the partial sums.
#[inline(always)]
fn add_block<F: Copy>(
    lanes: &mut [f64; LANES],
    a: &[F; LANES],
    b: &[F; LANES],
    term: &impl Fn(F, F) -> f64,
) {
    for lane in 0..LANES {
        lanes[lane] += term(a[lane], b[lane]);
    }
}

/// The last terms (fewer than [`LANES`]) into the first partial sums, then the partial sums
/// added in a fixed order.
#[inline(always)]
fn finish_lanes<F: Copy>(
    mut lanes: [f64; LANES],
    tail_a: &[F],
    tail_b: &[F],
    term: &impl Fn(F, F) -> f64,
) -> f64 {
    for ((sum, &u), &v) in lanes.iter_mut().zip(tail_a).zip(tail_b) {
        *sum += term(u, v);
    }
    let ((p, q), (r, s)) = (
        (lanes[0] + lanes[4], lanes[1] + lanes[5]),
        (lanes[2] + lanes[6], lanes[3] + lanes[7]),
    );
    (p + r) + (q + s)
}

/// Define a function whose body is compiled twice, for the baseline x86-64 the crate targets
/// (two f64 lanes per instruction) and for AVX-512 (eight), the second run where the CPU has
/// it: the same operations in the same order, so the same bits. The body must call only
/// `#[inline(always)]` code (as [`lane_sum`]) to be widened.
macro_rules! widened {
    (
        $(#[$doc:meta])*
        $vis:vis fn $name:ident$(<$f:ident: $bound:path>)?($($arg:ident: $ty:ty),*) -> $ret:ty
        $body:block
    ) => {
        $(#[$doc])*
        $vis fn $name$(<$f: $bound>)?($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body$(<$f: $bound>)?($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                #[target_feature(enable = "avx512f")]
                unsafe fn wide$(<$f: $bound>)?($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                // SAFETY: AVX-512F is present.
                return unsafe { wide($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

pub(crate) use widened;

widened! {
    /// `sum_k (a_k - b_k)^2` in f64 ([`lane_sum`]).
    pub(crate) fn slice_squared_distance<F: Element>(a: &[F], b: &[F]) -> f64 {
        lane_sum(a, b, |u, v| (u.as_f64() - v.as_f64()).powi(2))
    }
}

widened! {
    /// [`slice_squared_distance`] of four pairs of slices at once, the same bits as each alone
    /// ([`four_lane_sums`]).
    pub(crate) fn four_squared_distances<F: Element>(a: [&[F]; 4], b: [&[F]; 4]) -> [f64; 4] {
        four_lane_sums(a, b, |u, v| (u.as_f64() - v.as_f64()).powi(2))
    }
}

widened! {
    /// `sum_k a_k b_k` in f64 ([`lane_sum`]; for f32 rows every product is exact).
    pub(crate) fn lane_dot<F: Element>(a: &[F], b: &[F]) -> f64 {
        lane_sum(a, b, |u, v| u.as_f64() * v.as_f64())
    }
}

widened! {
    /// `sum_k (v_k * inverse)^2` in f64 ([`lane_sum`]; `inverse` a power of two, or 1).
    fn scaled_squares<F: Element>(row: &[F], inverse: f64) -> f64 {
        lane_sum(row, row, |v, _| (v.as_f64() * inverse).powi(2))
    }
}

widened! {
    /// `sum_k += row_k` in f64.
    pub(crate) fn add_row<F: Element>(sum: &mut [f64], row: &[F]) -> () {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v.as_f64();
        }
    }
}

widened! {
    /// `out_k = row_k - mean_k` in f64.
    pub(crate) fn centre_row<F: Element>(out: &mut [f64], row: &[F], mean: &[f64]) -> () {
        for ((o, v), m) in out.iter_mut().zip(row).zip(mean) {
            *o = v.as_f64() - m;
        }
    }
}

widened! {
    /// `out_k = row_k` in f64.
    pub(crate) fn widen_row<F: Element>(out: &mut [f64], row: &[F]) -> () {
        for (o, v) in out.iter_mut().zip(row) {
            *o = v.as_f64();
        }
    }
}

/// `sum_k row_k^2` in f64 ([`lane_sum`]).
pub(crate) fn sum_of_squares<F: Element>(row: &[F]) -> f64 {
    scaled_squares(row, 1.0)
}

/// `max_k |a_k|` in f64 (0 for no element), vectorised; exact in any order (a NaN is
/// skipped: check finiteness first).
pub fn largest_magnitude<F: Element>(a: &[F]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let (blocks, tail) = a.as_chunks::<LANES>();
    for block in blocks {
        for lane in 0..LANES {
            let v = block[lane].as_f64().abs();
            lanes[lane] = if v > lanes[lane] { v } else { lanes[lane] };
        }
    }
    for (m, v) in lanes.iter_mut().zip(tail) {
        *m = m.max(v.as_f64().abs());
    }
    lanes.into_iter().fold(0.0f64, f64::max)
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
///
/// For f32 rows `s` is 1: their squares can neither overflow nor underflow in f64, and scaling
/// by a power of two commutes with every rounding then, so the norm has the same bits without
/// the pass for the largest entry.
fn scaled_norm<F: Element>(row: &[F]) -> (f64, f64) {
    if F::SINGLE {
        return (1.0, sum_of_squares(row).sqrt());
    }
    let largest = largest_magnitude(row);
    if largest == 0.0 || !largest.is_finite() {
        return (1.0, largest);
    }
    let scale = power_of_two_below(largest);
    let inverse = exact_inverse(scale);
    let sum = match inverse {
        Some(inverse) => scaled_squares(row, inverse),
        None => lane_sum(row, row, |v, _| (v.as_f64() / scale).powi(2)),
    };
    (scale, sum.sqrt())
}

/// `1 / s` for a power of two `s` whose inverse is a normal f64: `v * (1 / s)` then equals
/// `v / s` bit for bit (both are the correctly rounded `v / s`), at the cost of a product.
fn exact_inverse(s: f64) -> Option<f64> {
    let inverse = 1.0 / s;
    (s >= f64::MIN_POSITIVE && inverse.is_normal()).then_some(inverse)
}

/// The row's elements as one slice: borrowed when contiguous, else copied.
pub(crate) fn contiguous<'a, F: Element>(
    row: &'a ndarray::ArrayView1<'a, F>,
) -> std::borrow::Cow<'a, [F]> {
    match row.as_slice() {
        Some(values) => std::borrow::Cow::Borrowed(values),
        None => std::borrow::Cow::Owned(row.to_vec()),
    }
}

/// L2 norm of every row, accumulated in f64 with a power-of-two scaling (exact for every
/// row whose squares stay in range; no overflow or underflow for any finite row).
pub fn row_norms<F: Element>(x: ArrayView2<F>) -> Vec<f64> {
    map_row_chunks(x.nrows(), |range| {
        range
            .map(|i| {
                let (scale, norm) = scaled_norm(&contiguous(&x.row(i)));
                norm * scale
            })
            .collect::<Vec<f64>>()
    })
    .concat()
}

/// Whether every row has norm 1 to within `1e-4` (rows L2-normalised in f32 or f64, as the
/// distances on the unit sphere need).
pub(crate) fn all_unit_norm<F: Element>(x: ArrayView2<F>) -> bool {
    row_norms(x).iter().all(|n| (n - 1.0).abs() <= 1e-4)
}

/// `x_i / ||x_i||_2` for every row (Wang & Isola 2020 define alignment and uniformity on the
/// unit hypersphere). A row of norm 0 or with a non-finite entry is an error naming the row.
/// Rows are divided as `(x_i / s) / ||x_i / s||` with `s` a power of two, so rows of any
/// finite scale (1e-300 or 1e300) normalise.
///
/// One pass: each row is checked, its norm taken and its scaled copy written while it is in
/// the first-level cache, in parallel over fixed blocks of rows (elementwise: the same bits
/// whatever the thread count). When a block meets a bad row, the whole input is checked
/// again in order, so the error is the one [`check_finite`] and then the first zero row give.
///
/// The copy goes into ordinary pages, not pages advised for huge pages: on this project's
/// virtual machine the first write to huge pages ran at 0.7-2 GB/s, nearly all of it the
/// kernel zeroing them (`clear_page_erms` under `do_huge_pmd_anonymous_page`, memory its host
/// had to back again), against 3.5-4.2 GB/s in 4 KiB pages. 1M x 512 f32: 2.3-3.9 s in huge
/// pages, 0.6-0.8 s in 4 KiB pages (while the sampled uniformity's random reads of its rows
/// took 2.9 s in huge pages and 3.3 s in 4 KiB pages, with more TLB misses).
pub fn normalize_rows<F: Element>(x: ArrayView2<F>) -> Result<Array2<F>> {
    let (n, d) = x.dim();
    let mut values = vec![F::zero(); n * d];
    let all_good = values
        .par_chunks_mut((ROW_CHUNK * d).max(1))
        .enumerate()
        .map(|(c, block)| {
            block.chunks_mut(d.max(1)).enumerate().all(|(r, out)| {
                let row = x.row(c * ROW_CHUNK + r);
                let row = contiguous(&row);
                let (scale, norm) = scaled_norm(&row);
                // For f32 rows a finite norm means finite entries (their squares cannot
                // overflow f64); wider rows are checked entry by entry.
                let finite = norm.is_finite() && (F::SINGLE || all_finite(&row));
                if !finite || norm == 0.0 {
                    return false;
                }
                match exact_inverse(scale) {
                    Some(inverse) => scale_row(out, &row, inverse, norm),
                    None => divide_row(out, &row, scale, norm),
                }
                true
            })
        })
        .collect::<Vec<bool>>();
    if all_good.iter().all(|&good| good) {
        return Ok(Array2::from_shape_vec((n, d), values).expect("n x d values"));
    }
    check_finite(x)?;
    let row = (0..n)
        .find(|&i| scaled_norm(&contiguous(&x.row(i))).1 == 0.0)
        .expect("a block stopped at a zero row");
    Err(GeometryError::ZeroNorm { row })
}

/// Whether every entry is finite (branch-free).
fn all_finite<F: Element>(row: &[F]) -> bool {
    row.iter().fold(true, |ok, v| ok & v.is_finite())
}

widened! {
    /// `out_k = (row_k * inverse) / norm`, rounded to the element type.
    ///
    /// For f32 rows the quotient is first taken as a product by `1 / norm` (a division costs
    /// a quarter of this pass): that product is within 3 f64 ulps of the f64 quotient, so
    /// both round to the same f32 unless the product lies within 8 ulps of the midpoint
    /// between two f32s (or below 2^-125, where f32 drops more bits). A row with such an
    /// entry, about one in 10^5 at D = 512, is divided instead: the same bits either way.
    fn scale_row<F: Element>(out: &mut [F], row: &[F], inverse: f64, norm: f64) -> () {
        if F::SINGLE {
            let reciprocal = 1.0 / norm;
            let mut ambiguous = false;
            for (o, v) in out.iter_mut().zip(row) {
                let quotient = v.as_f64() * inverse * reciprocal;
                ambiguous |= near_f32_rounding_midpoint(quotient);
                *o = F::from_f64(quotient);
            }
            if !ambiguous {
                return;
            }
        }
        for (o, v) in out.iter_mut().zip(row) {
            *o = F::from_f64(v.as_f64() * inverse / norm);
        }
    }
}

/// Whether rounding `q` (finite) to f32 could change when `q` moves by up to 8 f64 ulps: its
/// 29 bits below f32's precision lie within 8 of the midpoint pattern `1 << 28`, or `q` is
/// nonzero and below 2^-125 in magnitude (f32's subnormal range, where more bits drop).
#[inline(always)]
fn near_f32_rounding_midpoint(q: f64) -> bool {
    const DROPPED: u64 = (1 << 29) - 1;
    const MIDPOINT: u64 = 1 << 28;
    const WINDOW: u64 = 8;
    /// The bits of 2^-125.
    const SMALLEST_SAFE: u64 = 0x3820_0000_0000_0000;
    let magnitude = q.to_bits() & !(1 << 63);
    let near_midpoint = (magnitude & DROPPED).wrapping_sub(MIDPOINT - WINDOW) <= 2 * WINDOW;
    near_midpoint | ((magnitude != 0) & (magnitude < SMALLEST_SAFE))
}

/// `out_k = (row_k / scale) / norm` (a scale whose inverse is not a normal f64).
fn divide_row<F: Element>(out: &mut [F], row: &[F], scale: f64, norm: f64) {
    for (o, v) in out.iter_mut().zip(row) {
        *o = F::from_f64(v.as_f64() / scale / norm);
    }
}

/// `||x_i||^2` of every row, accumulated in f64 and stored in the element type.
pub(crate) fn squared_norms<F: Element>(x: ArrayView2<F>) -> Vec<F> {
    row_norms(x)
        .into_iter()
        .map(|n| F::from_f64(n * n))
        .collect()
}

/// How many rows ahead the gathers of a class's rows (far apart in memory) fetch.
pub(crate) const FETCH_AHEAD: usize = 4;

/// How many rows ahead of its use the sampled uniformity fetches the first line of a row
/// ([`prefetch_first_line`]), so that its page's address is translated (a TLB miss and a page
/// walk) before the whole row is fetched. 10^7 random 2 KB rows of a 2 GB matrix read at
/// 15 -> 17 GB/s in 2 MiB pages, 12 -> 14.5-15 GB/s in 4 KiB pages; 64 to 256 ahead alike.
pub(crate) const TRANSLATE_AHEAD: usize = 128;

/// How many pairs ahead the sampled uniformity fetches its rows, into the second-level cache:
/// 10^7 pairs of 1M x 512 rows took 3.4 s fetched 4 ahead into the first-level cache, 3.0 s
/// 12 ahead into the second (more misses in flight). The gathers, which use each row at once,
/// are faster with [`prefetch_row`] 4 ahead.
pub(crate) const PAIRS_AHEAD: usize = 12;

/// Ask the CPU to bring a contiguous row into its first-level cache (a hint: no effect on any
/// value).
pub(crate) fn prefetch_row<F: Element>(row: ndarray::ArrayView1<F>) {
    prefetch::<3, F>(row)
}

/// [`prefetch_row`] into the second-level cache.
pub(crate) fn prefetch_row_l2<F: Element>(row: ndarray::ArrayView1<F>) {
    prefetch::<1, F>(row)
}

/// `_mm_prefetch` of every cache line of a contiguous row with hint `HINT` (3: first-level
/// cache, 1: second-level).
fn prefetch<const HINT: i32, F: Element>(row: ndarray::ArrayView1<F>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(values) = row.as_slice() {
        let bytes = std::mem::size_of_val(values);
        let start = values.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // Safety: a prefetch never faults and reads nothing architecturally; the address
            // lies inside the row.
            unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Before a gather uses row `rows[r]` of `x`: fetch the row [`FETCH_AHEAD`] ahead into the
/// first-level cache (a hint: no effect on any value).
pub(crate) fn fetch_ahead<F: Element>(x: ArrayView2<F>, rows: &[usize], r: usize) {
    if let Some(&ahead) = rows.get(r + FETCH_AHEAD) {
        prefetch_row(x.row(ahead));
    }
}

/// Fetch the first cache line of a row into the second-level cache, which translates its
/// page's address (a hint: no effect on any value).
pub(crate) fn prefetch_first_line<F: Element>(row: ndarray::ArrayView1<F>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = row.as_slice().and_then(|values| values.first()) {
        // Safety: a prefetch never faults and reads nothing architecturally.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T2 }>(
                (first as *const F).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// The rows `rows` of `x`, in that order, as a new matrix (`x.select(Axis(0), rows)`, with
/// the rows a few ahead fetched while one is copied: they may lie far apart in memory).
pub(crate) fn gather_rows<F: Element>(x: ArrayView2<F>, rows: &[usize]) -> Array2<F> {
    let d = x.ncols();
    let mut out = Vec::with_capacity(rows.len() * d);
    for (r, &i) in rows.iter().enumerate() {
        fetch_ahead(x, rows, r);
        out.extend(x.row(i).iter().copied());
    }
    Array2::from_shape_vec((rows.len(), d), out).expect("rows x d values")
}

/// `||a - b||^2` accumulated in f64 ([`lane_sum`]).
pub(crate) fn squared_distance<F: Element>(
    a: ndarray::ArrayView1<F>,
    b: ndarray::ArrayView1<F>,
) -> f64 {
    let (a, b) = (contiguous(&a), contiguous(&b));
    slice_squared_distance(&a, &b)
}

/// `||x_i - x_j||^2` of the pairs (`out` as long as `pairs`), each accumulated in f64 as by
/// [`squared_distance`] (the same bits), four at once where the rows are contiguous.
pub(crate) fn squared_distances<F: Element>(
    x: ArrayView2<F>,
    pairs: &[(usize, usize)],
    out: &mut [f64],
) {
    for (four, out) in pairs.chunks(4).zip(out.chunks_mut(4)) {
        let slices = |pick: fn(&(usize, usize)) -> usize| -> Option<[&[F]; 4]> {
            let mut rows: [&[F]; 4] = [&[]; 4];
            if four.len() != 4 {
                return None;
            }
            for (row, pair) in rows.iter_mut().zip(four) {
                *row = x.row(pick(pair)).to_slice()?;
            }
            Some(rows)
        };
        match (slices(|p| p.0), slices(|p| p.1)) {
            (Some(a), Some(b)) => out.copy_from_slice(&four_squared_distances(a, b)),
            _ => {
                for (d, &(i, j)) in out.iter_mut().zip(four) {
                    *d = squared_distance(x.row(i), x.row(j));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of values of mixed sign and magnitude.
    fn values(seed: u64, len: usize) -> Vec<f64> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                unit * 10f64.powi((state % 7) as i32 - 3)
            })
            .collect()
    }

    #[test]
    fn lane_sums_agree_with_a_plain_sum_for_every_length() {
        for len in 0..70 {
            let (a, b) = (values(len as u64, len), values(1000 + len as u64, len));
            let plain: f64 = a.iter().zip(&b).map(|(u, v)| (u - v) * (u - v)).sum();
            let lanes = lane_sum(&a, &b, |u, v| (u - v) * (u - v));
            assert!((lanes - plain).abs() <= 1e-14 * plain.max(1e-300), "{len}");
            // The partial sums are combined in one fixed order.
            assert_eq!(
                lanes.to_bits(),
                lane_sum(&a, &b, |u, v| (u - v) * (u - v)).to_bits()
            );
        }
    }

    #[test]
    fn four_sums_at_once_give_the_bits_of_each_alone() {
        for len in 0..70 {
            let a: Vec<Vec<f64>> = (0..4).map(|p| values(10 * len as u64 + p, len)).collect();
            let b: Vec<Vec<f64>> = (0..4).map(|p| values(5000 + p + len as u64, len)).collect();
            let term = |u: f64, v: f64| (u - v) * (u - v);
            let four = four_lane_sums(
                [&a[0], &a[1], &a[2], &a[3]],
                [&b[0], &b[1], &b[2], &b[3]],
                term,
            );
            for p in 0..4 {
                assert_eq!(
                    four[p].to_bits(),
                    lane_sum(&a[p], &b[p], term).to_bits(),
                    "{len} {p}"
                );
            }
        }
    }

    #[test]
    fn squared_distances_of_pairs_are_those_of_each_pair() {
        // f32 rows of a ragged width; pairs in groups of four and a remainder, and a view
        // whose rows are not contiguous (every other column), which takes one pair at a time.
        let (n, d) = (23, 37);
        let numbers: Vec<f32> = values(3, n * d).iter().map(|&v| v as f32).collect();
        let x = ndarray::Array2::from_shape_vec((n, d), numbers).unwrap();
        let pairs: Vec<(usize, usize)> = (0..11).map(|k| (k * 7 % n, (k * 5 + 3) % n)).collect();
        for view in [x.view(), x.slice(ndarray::s![.., ..;2])] {
            let mut out = vec![0.0; pairs.len()];
            squared_distances(view, &pairs, &mut out);
            for (&(i, j), d) in pairs.iter().zip(&out) {
                assert_eq!(
                    d.to_bits(),
                    squared_distance(view.row(i), view.row(j)).to_bits()
                );
            }
        }
    }

    #[test]
    fn largest_magnitude_is_the_maximum_absolute_value() {
        for len in 0..40 {
            let a: Vec<f32> = values(7 + len as u64, len)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let plain = a.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
            assert_eq!(largest_magnitude(&a), plain, "{len}");
        }
    }

    #[test]
    fn scaled_f32_rows_round_as_the_f64_quotient_even_next_to_a_midpoint() {
        // Quotients 7 / norm aimed at the f32 midpoint 1 + 2^-24 and the f64 values around
        // it: the product by 1 / norm rounds to the other f32 for some of them, which the
        // check must catch.
        let midpoint = 1.0 + 2f64.powi(-24);
        let aimed = 7.0 / midpoint;
        let mut product_would_differ = 0;
        for step in -40i64..=40 {
            let norm = f64::from_bits((aimed.to_bits() as i64 + step) as u64);
            let quotient = (7.0 / norm) as f32;
            if (7.0 * (1.0 / norm)) as f32 != quotient {
                product_would_differ += 1;
            }
            let mut out = [0.0f32; 9];
            scale_row(&mut out, &[7.0f32; 9], 1.0, norm);
            assert!(out.iter().all(|&o| o == quotient), "step {step}");
        }
        assert!(product_would_differ > 0);
        // Random rows: the same bits as the division.
        let numbers = values(17, 200_000);
        for (k, row) in numbers.chunks(100).enumerate() {
            let row: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            let norm = (sum_of_squares(&row).sqrt()) * (1.0 + k as f64 * 1e-3);
            let mut out = vec![0.0f32; row.len()];
            scale_row(&mut out, &row, 1.0, norm);
            for (o, v) in out.iter().zip(&row) {
                assert_eq!(o.to_bits(), ((f64::from(*v) / norm) as f32).to_bits());
            }
        }
        // Zeros are exact, tiny quotients go through the division.
        assert!(!near_f32_rounding_midpoint(0.0) && !near_f32_rounding_midpoint(-0.0));
        assert!(near_f32_rounding_midpoint(1e-40) && !near_f32_rounding_midpoint(0.75));
    }

    #[test]
    fn multiplying_by_an_exact_inverse_is_dividing() {
        let numbers = values(3, 2000);
        for exponent in -1074..=1023 {
            let s = 2f64.powi(exponent);
            let Some(inverse) = exact_inverse(s) else {
                continue;
            };
            for &v in &numbers {
                for v in [v, v * 1e-300, v * 1e300] {
                    assert_eq!(
                        (v * inverse).to_bits(),
                        (v / s).to_bits(),
                        "{v} / 2^{exponent}"
                    );
                }
            }
        }
    }
}
