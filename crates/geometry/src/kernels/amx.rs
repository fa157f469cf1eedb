//! Products of f32 rows in Intel AMX tiles (`TDPBF16PS`): both sides rounded to bfloat16, the
//! products summed in f32. A screen, not a result: every product it gives is within
//! [`bf16_error`] of the exact dot product, and the kNN search rescores in f64 every pair the
//! screen cannot rule out.
//!
//! Layouts (`D` padded with zeros to a multiple of 32, rows to a multiple of 32):
//! - queries, row-major: a tile `A` is 16 rows x 32 coordinates (64 bytes a row);
//! - references in panels of 16 rows, each stored pair-interleaved: `[k / 2][row][k % 2]`, so
//!   a tile `B` of 32 coordinates is 1 KB in a row (the VNNI layout `TDPBF16PS` reads).
//!
//! `C[m][n] += sum_k A[m][k] B[k][n]` over a 16 x 16 tile of f32 per instruction; a
//! micro-tile is 32 queries x 32 references in four such tiles.

use crate::kernels::real::Element;
use crate::kernels::rows::contiguous;
use ndarray::ArrayView2;

/// Rows and coordinates are padded to multiples of this (two tiles of 16 rows; 32 bfloat16
/// coordinates a tile row).
pub(crate) const STEP: usize = 32;

/// Whether this CPU has AMX tiles with bfloat16 products and the kernel lets this process use
/// them (Linux asks each process to request the tile state once, `ARCH_REQ_XCOMP_PERM`);
/// decided once.
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    if std::arch::x86_64::__cpuid(0).eax < 7 {
        return false;
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes which state the kernel saves for
    // this process; it fails cleanly where the kernel does not support it.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// `v` rounded to the nearest bfloat16 (ties to even), in the upper 16 bits; finite `v` of
/// magnitude below 2^127 stay finite.
#[inline(always)]
fn bf16_high(v: f32) -> u32 {
    let bits = v.to_bits();
    (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000
}

/// Two coordinates `(a, b)` in bfloat16, `a` in the lower half (the pair order of the tiles).
#[inline(always)]
fn bf16_pair(a: f32, b: f32) -> u32 {
    (bf16_high(a) >> 16) | bf16_high(b)
}

crate::kernels::rows::widened! {
    /// The coordinate pairs of `row` in bfloat16 into `out` (`out[p]` = coordinates `2p`,
    /// `2p + 1`; a last odd coordinate paired with 0).
    fn pairs_of<F: Element>(row: &[F], out: &mut [u32]) -> () {
        let (pairs, odd) = row.as_chunks::<2>();
        for (o, &[a, b]) in out.iter_mut().zip(pairs) {
            *o = bf16_pair(a.as_f64() as f32, b.as_f64() as f32);
        }
        if let [last] = odd {
            out[pairs.len()] = bf16_pair(last.as_f64() as f32, 0.0);
        }
    }
}

crate::kernels::rows::widened! {
    /// `panel[p][lane] = rows[lane][p]` for the 16 rows of `half` pairs each in `rows`: the
    /// pair-interleaved panel the tiles read.
    fn interleave(rows: &[u32], panel: &mut [u32], half: usize) -> () {
        for (p, out) in panel.chunks_exact_mut(16).enumerate().take(half) {
            for (lane, o) in out.iter_mut().enumerate() {
                *o = rows[lane * half + p];
            }
        }
    }
}

/// A bound of the form `product a b + sum (a + b) + constant` on an error, for rows of norms
/// `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ErrorBound {
    pub(crate) product: f64,
    pub(crate) sum: f64,
    pub(crate) constant: f64,
}

impl ErrorBound {
    /// The bound for rows of norms `a` and `b`.
    pub(crate) fn at(&self, a: f64, b: f64) -> f64 {
        self.product * a * b + self.sum * (a + b) + self.constant
    }

    /// Both bounds added, times `factor`.
    pub(crate) fn plus(&self, other: &ErrorBound, factor: f64) -> ErrorBound {
        ErrorBound {
            product: factor * (self.product + other.product),
            sum: factor * (self.sum + other.sum),
            constant: factor * (self.constant + other.constant),
        }
    }
}

/// `|bf16 product - exact dot|` for rows of norms `a` and `b` with `depth` coordinates: each
/// side rounded to 8 significant bits (relative `2^-8` per coordinate, so `(2^-7 + 2^-16)
/// sum |a_k b_k|` for the products, with `sum |a_k b_k| <= a b`), the f32 sums (`gamma_depth`
/// of the rounded products), and an absolute term for subnormals, which the tiles flush to 0
/// (at most `2^-126` per input and per step): `2^-120 (depth + sqrt(depth) (a + b))`.
pub(crate) fn bf16_error(depth: usize) -> ErrorBound {
    let k = depth as f64;
    let u32 = f64::from(f32::EPSILON) / 2.0;
    let gamma = k * u32 / (1.0 - k * u32);
    let rounded = (1.0 + 2f64.powi(-8)).powi(2);
    ErrorBound {
        product: 2f64.powi(-7) + 2f64.powi(-16) + gamma * rounded,
        sum: 2f64.powi(-120) * k.sqrt(),
        constant: 2f64.powi(-120) * k,
    }
}

/// Rows rounded to bfloat16, padded, in one of the two layouts, as pairs of coordinates.
pub(crate) struct Bf16Rows {
    pairs: Vec<u32>,
    /// Rows, a multiple of [`STEP`].
    rows: usize,
    /// Coordinates, a multiple of [`STEP`].
    depth: usize,
}

impl Bf16Rows {
    /// Queries, row-major.
    pub(crate) fn queries<F: Element>(x: ArrayView2<F>) -> Bf16Rows {
        let (rows, depth) = (
            x.nrows().next_multiple_of(STEP),
            x.ncols().next_multiple_of(STEP),
        );
        let mut pairs = vec![0u32; rows * depth / 2];
        for (row, out) in x.outer_iter().zip(pairs.chunks_exact_mut(depth / 2)) {
            pairs_of(&contiguous(&row), out);
        }
        Bf16Rows { pairs, rows, depth }
    }

    /// Empty reference panels, to be filled by [`Bf16Rows::fill_references`].
    pub(crate) fn reference_buffer() -> Bf16Rows {
        Bf16Rows {
            pairs: Vec::new(),
            rows: 0,
            depth: 0,
        }
    }

    /// References in panels of 16 rows, pair-interleaved (`panel[p][row]`), reusing the
    /// buffer.
    pub(crate) fn fill_references<F: Element>(&mut self, x: ArrayView2<F>) {
        let (rows, depth) = (
            x.nrows().next_multiple_of(STEP),
            x.ncols().next_multiple_of(STEP),
        );
        self.pairs.clear();
        self.pairs.resize(rows * depth / 2, 0);
        (self.rows, self.depth) = (rows, depth);
        let half = depth / 2;
        // Sixteen rows' pairs side by side, then interleaved into their panel.
        let mut panel_rows = vec![0u32; 16 * half];
        for (first, panel) in (0..x.nrows())
            .step_by(16)
            .zip(self.pairs.chunks_exact_mut(16 * half))
        {
            let lanes = (x.nrows() - first).min(16);
            panel_rows[lanes * half..].fill(0);
            for (lane, out) in panel_rows.chunks_exact_mut(half).take(lanes).enumerate() {
                pairs_of(&contiguous(&x.row(first + lane)), out);
            }
            interleave(&panel_rows, panel, half);
        }
    }

    /// Rows (padded).
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
}

/// The tile configuration of this thread, loaded while the value lives (`LDTILECFG`, then
/// `TILERELEASE` on drop): eight tiles of 16 rows x 64 bytes. The tiles are per-thread state:
/// while a value lives, its thread must not run other work that uses tiles (no rayon call
/// that could run another task on this thread).
pub(crate) struct Tiles(std::marker::PhantomData<*const ()>);

#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

impl Tiles {
    /// Configure the tiles; only where [`available`].
    pub(crate) fn configure() -> Tiles {
        assert!(available(), "AMX tiles used where the CPU or OS has none");
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        config.bytes_per_row[..8].fill(64);
        config.rows[..8].fill(16);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AMX is available and this process may use it; the configuration is valid
        // (palette 1, eight tiles of 16 x 64 bytes).
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) &config as *const TileConfig);
        }
        // Not Send: the configuration belongs to this thread.
        Tiles(std::marker::PhantomData)
    }

    /// `out[m][n] = a_(first + m) . b_n` for 32 queries from `first` (a multiple of 32) and
    /// every reference row of `references`; `out` is 32 x `references.rows()`, row-major.
    pub(crate) fn products(
        &self,
        queries: &Bf16Rows,
        first: usize,
        references: &Bf16Rows,
        out: &mut [f32],
    ) {
        let (depth, width) = (queries.depth, references.rows);
        assert!(
            first.is_multiple_of(STEP)
                && first + STEP <= queries.rows
                && references.depth == depth
                && out.len() == STEP * width
        );
        let query_stride = depth * 2;
        let panel_bytes = 16 * depth * 2;
        let out_stride = width * 4;
        let a0 = queries.pairs[first * depth / 2..].as_ptr().cast::<u8>();
        // SAFETY: every tile read lies inside `queries` (rows first..first + 32, `depth`
        // coordinates) or `references` (panels j / 16 and j / 16 + 1, 1 KB per chunk of 32
        // coordinates), every tile written inside `out` (32 rows of `width` f32, columns
        // j..j + 32); the tiles are configured by `self`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            let a1 = a0.add(16 * query_stride);
            for j in (0..width).step_by(STEP) {
                let b0 = references
                    .pairs
                    .as_ptr()
                    .cast::<u8>()
                    .add((j / 16) * panel_bytes);
                let b1 = b0.add(panel_bytes);
                std::arch::asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3"
                );
                for chunk in 0..depth / STEP {
                    std::arch::asm!(
                        "tileloadd tmm4, [{a0} + {qs}*1]",
                        "tileloadd tmm5, [{a1} + {qs}*1]",
                        "tileloadd tmm6, [{b0} + {bs}*1]",
                        "tileloadd tmm7, [{b1} + {bs}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) a0.add(chunk * 64),
                        a1 = in(reg) a1.add(chunk * 64),
                        b0 = in(reg) b0.add(chunk * 1024),
                        b1 = in(reg) b1.add(chunk * 1024),
                        qs = in(reg) query_stride,
                        bs = in(reg) 64usize,
                        options(nostack),
                    );
                }
                let o = out.as_mut_ptr().cast::<u8>().add(j * 4);
                std::arch::asm!(
                    "tilestored [{o0} + {os}*1], tmm0",
                    "tilestored [{o1} + {os}*1], tmm1",
                    "tilestored [{o2} + {os}*1], tmm2",
                    "tilestored [{o3} + {os}*1], tmm3",
                    o0 = in(reg) o,
                    o1 = in(reg) o.add(64),
                    o2 = in(reg) o.add(16 * out_stride),
                    o3 = in(reg) o.add(16 * out_stride + 64),
                    os = in(reg) out_stride,
                    options(nostack),
                );
            }
        }
    }
}

/// The rate of this thread's tiles, in GFLOP/s: the products of `m` queries and `n`
/// references of `depth` coordinates (all multiples of 32, values 1/2), `sweeps` times, timed
/// without the packing.
pub(crate) fn tile_rate(m: usize, n: usize, depth: usize, sweeps: usize) -> f64 {
    let x = ndarray::Array2::<f32>::from_elem((m.max(n), depth), 0.5);
    let queries = Bf16Rows::queries(x.slice(ndarray::s![..m, ..]));
    let mut references = Bf16Rows::reference_buffer();
    references.fill_references(x.slice(ndarray::s![..n, ..]));
    let mut panel = vec![0.0f32; STEP * references.rows()];
    let tiles = Tiles::configure();
    let started = std::time::Instant::now();
    for _ in 0..sweeps {
        for first in (0..queries.rows()).step_by(STEP) {
            tiles.products(&queries, first, &references, &mut panel);
        }
    }
    std::hint::black_box(&panel);
    2.0 * (sweeps * m * n * depth) as f64 / started.elapsed().as_secs_f64() / 1e9
}

impl Drop for Tiles {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the tiles were configured by this value.
        unsafe {
            std::arch::asm!("tilerelease", options(nostack));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_fn((n, d), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        })
    }

    #[test]
    fn rounding_to_bfloat16_is_to_nearest_even() {
        let bf = |v: f32| f32::from_bits(bf16_high(v));
        assert_eq!(bf16_pair(1.0, -2.0), 0xC000_3F80);
        assert_eq!(bf(1.0), 1.0);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: to even (1).
        assert_eq!(bf(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(bf(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(bf(-0.3), -0.30078125);
        for v in [1e-3f32, 0.7, -123.456, 3e30] {
            assert!(((bf(v) - v) / v).abs() <= 2f32.powi(-8));
        }
    }

    /// The tiles' products of ragged shapes are within the bound of the f64 dot products.
    #[test]
    fn tile_products_are_within_their_bound() {
        if !available() {
            println!("no AMX tiles on this CPU: the tile products were not tested");
            return;
        }
        for (m, n, d) in [(40, 70, 100), (32, 32, 32), (5, 3, 7), (64, 130, 513)] {
            let (q, x) = (rows(m, d, 1), rows(n, d, 2));
            let packed_q = Bf16Rows::queries(q.view());
            let mut packed_x = Bf16Rows::reference_buffer();
            packed_x.fill_references(x.view());
            let tiles = Tiles::configure();
            let mut out = vec![0.0f32; STEP * packed_x.rows()];
            for first in (0..packed_q.rows).step_by(STEP) {
                tiles.products(&packed_q, first, &packed_x, &mut out);
                for a in first..(first + STEP).min(m) {
                    for b in 0..n {
                        let exact: f64 = q
                            .row(a)
                            .iter()
                            .zip(x.row(b))
                            .map(|(&u, &v)| f64::from(u) * f64::from(v))
                            .sum();
                        let norm = |r: ndarray::ArrayView1<f32>| {
                            r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()
                        };
                        let bound = bf16_error(packed_x.depth).at(norm(q.row(a)), norm(x.row(b)));
                        let got = f64::from(out[(a - first) * packed_x.rows() + b]);
                        assert!(
                            (got - exact).abs() <= bound,
                            "{m} {n} {d}: {a} {b}: {got} {exact} {bound}"
                        );
                    }
                }
            }
        }
    }
}
