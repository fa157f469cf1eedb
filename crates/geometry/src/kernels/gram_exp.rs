//! The exact uniformity kernel for f32 rows: `sum exp(-t ||x_i - x_j||^2)` over the pairs of
//! each Gram tile, every inner product computed by a register-blocked micro-kernel and
//! exponentiated while it is still in registers. No Gram tile is stored: the only memory
//! beyond the input is one packed copy of the rows.
//!
//! Each pair is computed the same way by every kernel:
//! - `g = x_i . x_j` accumulated coordinate by coordinate with fused multiply-adds,
//!   `g <- x_ik x_jk + g` for `k = 0..D` in order, in f32;
//! - the exponent `e = min(0, fma(g, 2t, u_i + u_j))` with `u_i = -t ||x_i||^2` (the norm
//!   accumulated in f64, the product rounded once to f32): that is
//!   `-t max(0, ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j)` in one rounding less;
//! - `exp(e - s)` in f32 ([`exp_nonpositive`], at most 8.8e-8 relative error) relative to a reference exponent
//!   `s`: `s = 0` when the norms bound every exponent of the tile from below by -80 (unit rows
//!   with `t <= 20`: no term can underflow), otherwise the tile's largest exponent, found by a
//!   first pass over the tile;
//! - the exponentials of columns `c` and `c + 16` of a micro-tile row added in f32 (one
//!   rounding), then accumulated into eight f64 lanes in a fixed order, the lanes added in
//!   order at the end of the tile.
//!
//! The AVX-512, AVX2 (with FMA) and portable kernels perform these operations in the same order
//! and return the same bits; tiles are summed in a fixed order, so the result does not depend
//! on the thread count either.

use crate::error::Result;
use crate::kernels::logsumexp::{check_norms, UniformityPart};
use crate::progress::Progress;
use ndarray::ArrayView2;
use rayon::prelude::*;
use std::ops::Range;

/// Rows per packed panel, and columns of a micro-tile.
const PANEL: usize = 32;
/// Rows of a micro-tile.
const GROUP: usize = 8;
/// Micro-tiles (row groups) per panel.
const GROUPS: usize = PANEL / GROUP;
/// Coordinates per chunk of the AVX-512 kernel: the chunks of an A and a B panel (2 x 16 KiB)
/// stay in the first-level cache while the panel's four row groups run over them.
const CHUNK: usize = 128;
/// Coordinates per chunk of the AVX2 kernel: the chunks of an A and a B panel (2 x 8 KiB) and
/// the micro-tiles' carried products (4 KiB) stay in a 32 KiB first-level cache (64 measured
/// faster than 128 at D = 16,384 on a 2-core AMD EPYC, the same at D = 2,048).
const AVX2_CHUNK: usize = 64;
/// Pairs of a micro-tile, `GROUP x PANEL`.
const MICRO: usize = GROUP * PANEL;
/// Columns of a micro-tile summed pairwise in f32 (`c` with `c + HALF`) before the f64 lanes.
const HALF: usize = PANEL / 2;
/// f64 accumulator lanes of a tile.
const LANES: usize = 8;
/// A tile whose norms bound every exponent from below by this is summed relative to 0.
const SAFE_EXPONENT: f64 = -80.0;

/// The micro-tile kernels; all return the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Sixteen lanes (AVX-512F).
    Avx512,
    /// Eight lanes (AVX2 and FMA).
    Avx2,
    /// Plain Rust (`f32::mul_add`).
    Portable,
}

/// The kernel in use: the widest the CPU supports, or the one `EMBGEOM_KERNEL` (`avx512`,
/// `avx2`, `portable`) names when the CPU supports it (for benchmarks); chosen once.
pub fn kernel() -> Kernel {
    static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let supported = supported_kernels();
        let named = match std::env::var("EMBGEOM_KERNEL").as_deref() {
            Ok("portable") => Some(Kernel::Portable),
            Ok("avx2") => Some(Kernel::Avx2),
            Ok("avx512") => Some(Kernel::Avx512),
            _ => None,
        };
        named
            .filter(|k| supported.contains(k))
            .unwrap_or(supported[0])
    })
}

/// The kernels this CPU can run, widest first (the portable one always last).
pub fn supported_kernels() -> Vec<Kernel> {
    let mut kernels = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            kernels.push(Kernel::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            kernels.push(Kernel::Avx2);
        }
    }
    kernels.push(Kernel::Portable);
    kernels
}

/// Rows packed for the micro-kernel: panels of [`PANEL`] rows stored coordinate-major
/// (`panel[k * PANEL + c]` is coordinate `k` of row `c` of the panel), zero rows past the
/// end, the panels 64-byte aligned; with each row's norm and `u_i = -t ||x_i||^2`.
struct PackedRows {
    storage: Vec<f32>,
    /// Index in `storage` of the first panel (64-byte aligned).
    start: usize,
    dim: usize,
    /// `-t ||x_i||^2` rounded to f32, zero past the last row up to whole panels.
    offsets: Vec<f32>,
    /// `||x_i||`, accumulated in f64.
    norms: Vec<f64>,
}

impl PackedRows {
    /// Pack `x`, after checking its norms ([`check_norms`]).
    fn new(x: ArrayView2<f32>, t: f64) -> Result<PackedRows> {
        let norms = crate::kernels::rows::row_norms(x);
        check_norms(x, &norms, t)?;
        let (rows, dim) = x.dim();
        let panels = rows.div_ceil(PANEL);
        let panel_len = dim * PANEL;
        // Sixteen spare values, so that the panels can start on a 64-byte boundary.
        let mut storage = vec![0.0f32; panels * panel_len + 16];
        let start = storage.as_ptr().align_offset(64).min(16);
        if panel_len > 0 {
            storage[start..start + panels * panel_len]
                .par_chunks_mut(panel_len)
                .enumerate()
                .for_each(|(p, panel)| pack_panel(x, p * PANEL, panel));
        }
        let mut offsets: Vec<f32> = norms.iter().map(|&n| (-t * n * n) as f32).collect();
        offsets.resize(panels * PANEL, 0.0);
        Ok(PackedRows {
            storage,
            start,
            dim,
            offsets,
            norms,
        })
    }

    /// Panel `p`: `dim x PANEL` values.
    fn panel(&self, p: usize) -> &[f32] {
        let len = self.dim * PANEL;
        &self.storage[self.start + p * len..self.start + (p + 1) * len]
    }

    /// The largest norm of the rows in `range`.
    fn largest_norm(&self, range: Range<usize>) -> f64 {
        self.norms[range].iter().cloned().fold(0.0, f64::max)
    }
}

/// Write rows `first..first + PANEL` of `x` (those that exist) into `panel`, coordinate-major,
/// sixteen coordinates at a time so that the 2 KiB of the panel they fill stay in cache.
fn pack_panel(x: ArrayView2<f32>, first: usize, panel: &mut [f32]) {
    const STEP: usize = 16;
    let rows: Vec<std::borrow::Cow<[f32]>> = (first..x.nrows().min(first + PANEL))
        .map(|i| {
            let row = x.row(i);
            match row.to_slice() {
                Some(values) => values.into(),
                None => row.to_vec().into(),
            }
        })
        .collect();
    for k0 in (0..x.ncols()).step_by(STEP) {
        let k1 = (k0 + STEP).min(x.ncols());
        for (c, row) in rows.iter().enumerate() {
            for (k, &value) in (k0..k1).zip(&row[k0..k1]) {
                panel[k * PANEL + c] = value;
            }
        }
    }
}

/// One micro-tile: the [`GROUP`] rows from lane `lane` of panel `a` against the [`PANEL`] rows
/// of panel `b`, with their `u` offsets.
#[derive(Clone, Copy)]
struct MicroTile<'a> {
    a: &'a [f32],
    lane: usize,
    b: &'a [f32],
    a_offsets: &'a [f32],
    b_offsets: &'a [f32],
    dim: usize,
    two_t: f32,
}

/// A panel of `a`'s rows against a panel of `b`'s: the micro-tiles of its row groups that
/// hold pairs to count (`groups[g]`: `None` if group `g` has none, else its masks).
struct PanelPair<'a> {
    a: &'a [f32],
    b: &'a [f32],
    a_offsets: &'a [f32],
    b_offsets: &'a [f32],
    dim: usize,
    two_t: f32,
    groups: [Option<Masks>; GROUPS],
}

impl PanelPair<'_> {
    /// The micro-tile of row group `g`.
    fn micro_tile(&self, g: usize) -> MicroTile<'_> {
        MicroTile {
            a: self.a,
            lane: g * GROUP,
            b: self.b,
            a_offsets: &self.a_offsets[g * GROUP..(g + 1) * GROUP],
            b_offsets: self.b_offsets,
            dim: self.dim,
            two_t: self.two_t,
        }
    }
}

/// The exponents of a micro-tile, row-major: `e[r * PANEL + c]`.
type Exponents = [f32; MICRO];

/// Which pairs of a micro-tile count: bit `c` of `masks[r]` for row `r`, column `c`. `None`:
/// all of them.
type Masks = Option<[u32; GROUP]>;

impl Kernel {
    /// The exponents of every pair of the micro-tile.
    fn exponents(self, tile: &MicroTile, e: &mut Exponents) {
        match self {
            // SAFETY: `kernel` and `supported_kernels` name a SIMD kernel only where the CPU
            // supports it, and `MicroTile` holds whole panels (checked in `exponents_*`).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { x86::exponents_avx512(tile, e) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { x86::exponents_avx2(tile, e) },
            _ => exponents_portable(tile, e),
        }
    }

    /// Add `exp(e - shift)` over the pairs the panel pair counts to `sums`, group by group
    /// (`SHIFTED = false`: `shift` is 0 and every exponent is at least -87).
    fn add_exponentials<const SHIFTED: bool>(
        self,
        pair: &PanelPair,
        shift: f32,
        sums: &mut [f64; LANES],
    ) {
        match self {
            // SAFETY: as in `exponents`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { x86::add_exponentials_avx512::<SHIFTED>(pair, shift, sums) },
            // SAFETY: as in `exponents`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { x86::add_exponentials_avx2::<SHIFTED>(pair, shift, sums) },
            _ => {
                let mut e = [0.0; MICRO];
                for (g, masks) in pair.groups.iter().enumerate() {
                    if let Some(masks) = masks {
                        self.exponents(&pair.micro_tile(g), &mut e);
                        self.sum_exponentials::<SHIFTED>(&e, shift, masks, sums);
                    }
                }
            }
        }
    }

    /// Add `exp(e - shift)` over the pairs `masks` counts to `sums`.
    fn sum_exponentials<const SHIFTED: bool>(
        self,
        e: &Exponents,
        shift: f32,
        masks: &Masks,
        sums: &mut [f64; LANES],
    ) {
        match self {
            // SAFETY: as in `exponents`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { x86::sum_exponentials_avx2::<SHIFTED>(e, shift, masks, sums) },
            _ => sum_exponentials_portable::<SHIFTED>(e, shift, masks, sums),
        }
    }
}

/// `min(0, fma(g, 2t, u_a + u_b))`, the exponent of one pair (`min` as the SIMD `min`
/// instructions: the second operand unless the first is smaller).
#[inline(always)]
fn pair_exponent(g: f32, two_t: f32, u_a: f32, u_b: f32) -> f32 {
    let e = g.mul_add(two_t, u_a + u_b);
    if e < 0.0 {
        e
    } else {
        0.0
    }
}

/// The exponents in plain Rust: the coordinate loop outermost, so that the compiler can
/// vectorise the 32 columns (each product still accumulated over `k` in order).
fn exponents_portable(tile: &MicroTile, e: &mut Exponents) {
    let mut gram = [[0.0f32; PANEL]; GROUP];
    for k in 0..tile.dim {
        let a = &tile.a[k * PANEL + tile.lane..k * PANEL + tile.lane + GROUP];
        let b = &tile.b[k * PANEL..(k + 1) * PANEL];
        for (row, &a) in gram.iter_mut().zip(a) {
            for (g, &b) in row.iter_mut().zip(b) {
                *g = a.mul_add(b, *g);
            }
        }
    }
    for (r, row) in gram.iter().enumerate() {
        for (c, &g) in row.iter().enumerate() {
            e[r * PANEL + c] = pair_exponent(g, tile.two_t, tile.a_offsets[r], tile.b_offsets[c]);
        }
    }
}

/// `max(e - shift, -87)` for a shifted sum, `e` itself otherwise.
#[inline(always)]
fn reduced_exponent<const SHIFTED: bool>(e: f32, shift: f32) -> f32 {
    match SHIFTED {
        true => {
            let x = e - shift;
            if x > EXP_MIN {
                x
            } else {
                EXP_MIN
            }
        }
        false => e,
    }
}

fn sum_exponentials_portable<const SHIFTED: bool>(
    e: &Exponents,
    shift: f32,
    masks: &Masks,
    sums: &mut [f64; LANES],
) {
    for r in 0..GROUP {
        let mask = masks.map_or(u32::MAX, |m| m[r]);
        let term = |c: usize| match mask >> c & 1 {
            1 => exp_nonpositive(reduced_exponent::<SHIFTED>(e[r * PANEL + c], shift)),
            _ => 0.0,
        };
        let pairs: [f32; HALF] = std::array::from_fn(|c| term(c) + term(c + HALF));
        for (lane, sum) in sums.iter_mut().enumerate() {
            *sum += f64::from(pairs[lane]);
        }
        for (lane, sum) in sums.iter_mut().enumerate() {
            *sum += f64::from(pairs[LANES + lane]);
        }
    }
}

const EXP_MIN: f32 = -87.0;
const EXP_LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two: the high part has few enough bits that `n * EXP_LN2_HI` is exact.
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// Adding 1.5 * 2^23 rounds to an integer.
const EXP_ROUND: f32 = 12_582_912.0;
/// `exp(r) = 1 + r p(r)` on `|r| <= ln2 / 2`: the coefficients of `p`, highest degree first
/// (a minimax fit of the relative error, 2e-9 in exact arithmetic, 7.4e-8 evaluated in f32
/// with fused multiply-adds, mean error 1e-9).
const EXP_POLY: [f32; 6] = [
    1.384_61e-3,
    8.374_159e-3,
    4.166_796_4e-2,
    1.666_643_2e-1,
    0.499_999_94,
    1.0,
];

/// `exp(x)` in f32 for `-87 <= x <= 0`, with fused multiply-adds: `x = n ln2 + r` (Cody-Waite,
/// `n` the nearest integer to `x log2(e)`), `exp(r) = 1 + r p(r)` by Horner, times `2^n`.
/// At most 8.8e-8 relative error over [-87, 0] (measured by the test below, which bounds it by 2e-7).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let n = x.mul_add(EXP_LOG2E, EXP_ROUND) - EXP_ROUND;
    let r = (-n).mul_add(EXP_LN2_HI, x);
    let r = (-n).mul_add(EXP_LN2_LO, r);
    let p = EXP_POLY[1..]
        .iter()
        .fold(EXP_POLY[0], |p, &k| p.mul_add(r, k))
        .mul_add(r, 1.0);
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `sum_i exp((v_i - top) s)` over `values` (every `v_i <= top`, `s > 0`): each exponent
/// `(v_i - top) s` in f32, floored at -87, exponentiated by [`exp_nonpositive`] (eight lanes at
/// once with AVX2), and added in f64 in eight lane sums (element i to lane `i mod 8`) that are
/// added in lane order at the end: the same bits with every kernel.
pub(crate) fn sum_exp_below(values: &[f32], top: f32, scale: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if kernel() != Kernel::Portable {
        // SAFETY: the AVX2 and FMA features are present (the kernel is not portable).
        return unsafe { x86::sum_exp_below_avx2(values, top, scale) };
    }
    sum_exp_below_portable(values, top, scale)
}

/// One term of [`sum_exp_below`].
#[inline(always)]
fn exp_below(v: f32, top: f32, scale: f32) -> f32 {
    exp_nonpositive(((v - top) * scale).clamp(EXP_MIN, 0.0))
}

/// [`sum_exp_below`] in plain Rust.
fn sum_exp_below_portable(values: &[f32], top: f32, scale: f32) -> f64 {
    let mut lanes = [0.0f64; 8];
    for (i, &v) in values.iter().enumerate() {
        lanes[i % 8] += f64::from(exp_below(v, top, scale));
    }
    lanes.iter().sum()
}

/// Below this `e^-|x|`, [`softplus_term`] takes `log(1 + y)` from its series.
const SOFTPLUS_SERIES_BELOW: f32 = 1.0 / 16.0;

/// `log(1 + y)` for `0 <= y < 1/16` by its series to `y^7 / 7` in f32 with fused
/// multiply-adds (the truncation below `y^8 / 8 < 2^-33 y`, under f32's rounding).
#[inline(always)]
fn log1p_series(y: f32) -> f32 {
    const C: [f32; 7] = [1.0 / 7.0, -1.0 / 6.0, 0.2, -0.25, 1.0 / 3.0, -0.5, 1.0];
    C[1..].iter().fold(C[0], |p, &k| p.mul_add(y, k)) * y
}

/// One term `log(1 + e^x)`, `x = scale v + bias`: `max(x, 0) + log(1 + e^-|x|)`, the
/// exponential by [`exp_nonpositive`] and the logarithm by [`log1p_series`] below
/// [`SOFTPLUS_SERIES_BELOW`], else by `ln_1p` in f64.
#[inline(always)]
fn softplus_term(v: f32, scale: f32, bias: f32) -> f64 {
    let x = v.mul_add(scale, bias);
    let y = exp_nonpositive((-x.abs()).max(EXP_MIN));
    let tail = match y < SOFTPLUS_SERIES_BELOW {
        true => f64::from(log1p_series(y)),
        false => f64::from(y).ln_1p(),
    };
    f64::from(x.max(0.0)) + tail
}

/// `sum_i log(1 + e^(scale v_i + bias))` (SigLIP's loss over negatives), each term by
/// [`softplus_term`] (eight lanes at once with AVX2 where every lane takes the series), added
/// in f64 in eight lane sums (element i to lane `i mod 8`), then in lane order: the same bits
/// with every kernel.
pub(crate) fn sum_softplus(values: &[f32], scale: f32, bias: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if kernel() != Kernel::Portable {
        // SAFETY: the AVX2 and FMA features are present (the kernel is not portable).
        return unsafe { x86::sum_softplus_avx2(values, scale, bias) };
    }
    let mut lanes = [0.0f64; 8];
    for (i, &v) in values.iter().enumerate() {
        lanes[i % 8] += softplus_term(v, scale, bias);
    }
    lanes.iter().sum()
}

/// Visit every panel pair of the block `rows x cols` of `a` against `b` (on a diagonal block,
/// `a` is `b` and only the pairs `row < col` count), with the masks of the micro-tiles that
/// count only some of their pairs. A panels outermost, so each stays in cache while the B
/// panels pass.
fn for_each_panel_pair(
    a: &PackedRows,
    b: &PackedRows,
    rows: Range<usize>,
    cols: Range<usize>,
    diagonal: bool,
    two_t: f32,
    mut visit: impl FnMut(&PanelPair),
) {
    for a_panel in rows.start / PANEL..rows.end.div_ceil(PANEL) {
        for b_panel in cols.start / PANEL..cols.end.div_ceil(PANEL) {
            let c0 = b_panel * PANEL;
            let groups = std::array::from_fn(|g| {
                let r0 = a_panel * PANEL + g * GROUP;
                if r0 >= rows.end || (diagonal && r0 + 1 >= c0 + PANEL) {
                    return None;
                }
                let whole = r0 + GROUP <= rows.end
                    && c0 + PANEL <= cols.end
                    && !(diagonal && c0 < r0 + GROUP);
                Some((!whole).then(|| {
                    std::array::from_fn(|r| {
                        let row = r0 + r;
                        (0..PANEL)
                            .map(|c| (c, c0 + c))
                            .filter(|&(_, col)| {
                                row < rows.end && col < cols.end && (!diagonal || col > row)
                            })
                            .fold(0u32, |m, (c, _)| m | 1 << c)
                    })
                }))
            });
            let r0 = a_panel * PANEL;
            visit(&PanelPair {
                a: a.panel(a_panel),
                b: b.panel(b_panel),
                a_offsets: &a.offsets[r0..r0 + PANEL],
                b_offsets: &b.offsets[c0..c0 + PANEL],
                dim: a.dim,
                two_t,
                groups,
            });
        }
    }
}

/// The side of the blocks for a requested `tile`: rounded up to a whole number of panels.
pub(crate) fn block_side(tile: usize) -> usize {
    tile.max(1).div_ceil(PANEL) * PANEL
}

/// The uniformity part of the block `rows x cols`.
fn block_part(
    kernel: Kernel,
    a: &PackedRows,
    b: &PackedRows,
    rows: Range<usize>,
    cols: Range<usize>,
    diagonal: bool,
    t: f64,
) -> UniformityPart {
    let pairs = match diagonal {
        true => rows.len() * rows.len().saturating_sub(1) / 2,
        false => rows.len() * cols.len(),
    } as u64;
    if pairs == 0 {
        return UniformityPart::EMPTY;
    }
    let two_t = (2.0 * t) as f32;
    let reach = a.largest_norm(rows.clone()) + b.largest_norm(cols.clone());
    let mut sums = [0.0f64; LANES];
    let shift = if -t * reach * reach >= SAFE_EXPONENT {
        for_each_panel_pair(a, b, rows, cols, diagonal, two_t, |pair| {
            kernel.add_exponentials::<false>(pair, 0.0, &mut sums)
        });
        0.0
    } else {
        let mut largest = f32::NEG_INFINITY;
        let mut e = [0.0; MICRO];
        for_each_panel_pair(a, b, rows.clone(), cols.clone(), diagonal, two_t, |pair| {
            for (g, masks) in pair.groups.iter().enumerate() {
                let Some(masks) = masks else { continue };
                kernel.exponents(&pair.micro_tile(g), &mut e);
                for (r, row) in e.chunks_exact(PANEL).enumerate() {
                    let mask = masks.map_or(u32::MAX, |m| m[r]);
                    for (c, &value) in row.iter().enumerate() {
                        if mask >> c & 1 == 1 && value > largest {
                            largest = value;
                        }
                    }
                }
            }
        });
        for_each_panel_pair(a, b, rows, cols, diagonal, two_t, |pair| {
            kernel.add_exponentials::<true>(pair, largest, &mut sums)
        });
        largest
    };
    UniformityPart {
        shift: f64::from(shift),
        sum: sums.iter().sum(),
        pairs,
    }
}

/// The exact uniformity part of every block `(I, J)`, `I <= J`, of side `tile` (rounded up
/// to a multiple of 32) of the pairs within `x` (`y = None`, pairs `i < j`), or of every block
/// of the pairs between `x` and `y`: in parallel, in row-major block order.
pub(crate) fn block_parts(
    x: ArrayView2<f32>,
    y: Option<ArrayView2<f32>>,
    t: f64,
    tile: usize,
    progress: &dyn Progress,
) -> Result<Vec<UniformityPart>> {
    let kernel = kernel();
    let tile = block_side(tile);
    let a = PackedRows::new(x, t)?;
    let other = y.map(|y| PackedRows::new(y, t)).transpose()?;
    let (b, nb) = match (&other, y) {
        (Some(packed), Some(y)) => (packed, y.nrows()),
        _ => (&a, x.nrows()),
    };
    let same = other.is_none();
    let na = x.nrows();
    let (blocks_a, blocks_b) = (na.div_ceil(tile), nb.div_ceil(tile));
    let pieces: Vec<(usize, usize)> = (0..blocks_a)
        .flat_map(|i| (if same { i } else { 0 }..blocks_b).map(move |j| (i, j)))
        .collect();
    let range = |block: usize, n: usize| block * tile..((block + 1) * tile).min(n);
    Ok(pieces
        .par_iter()
        .map(|&(i, j)| {
            progress.begin_unit();
            let part = block_part(kernel, &a, b, range(i, na), range(j, nb), same && i == j, t);
            progress.advance(1);
            part
        })
        .collect())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// Sixteen-lane accumulators of a micro-tile: `[r][h]` holds row `r` against columns
    /// `16 h .. 16 h + 16`.
    type Accumulators = [[__m512; 2]; GROUP];

    /// `acc` plus the products of coordinates `ks` of the micro-tile's rows (by value: through
    /// a reference the accumulators would be stored to memory at every coordinate).
    #[inline(always)]
    unsafe fn gram_avx512(
        tile: &MicroTile,
        ks: Range<usize>,
        mut acc: Accumulators,
    ) -> Accumulators {
        let (a, b) = (tile.a.as_ptr().add(tile.lane), tile.b.as_ptr());
        for k in ks {
            // SAFETY (callers, `check`): both panels hold `dim * PANEL` values.
            let b0 = _mm512_loadu_ps(b.add(k * PANEL));
            let b1 = _mm512_loadu_ps(b.add(k * PANEL + HALF));
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*a.add(k * PANEL + r));
                acc[0] = _mm512_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(a, b1, acc[1]);
            }
        }
        acc
    }

    /// [`pair_exponent`] on sixteen lanes, in place of the products. (Loops rather than
    /// closures, which would not inherit the caller's target features.)
    #[inline(always)]
    unsafe fn exponents_in_registers(tile: &MicroTile, mut acc: Accumulators) -> Accumulators {
        let two_t = _mm512_set1_ps(tile.two_t);
        let zero = _mm512_setzero_ps();
        let ub = [
            _mm512_loadu_ps(tile.b_offsets.as_ptr()),
            _mm512_loadu_ps(tile.b_offsets.as_ptr().add(HALF)),
        ];
        for (r, row) in acc.iter_mut().enumerate() {
            let ua = _mm512_set1_ps(tile.a_offsets[r]);
            for (h, value) in row.iter_mut().enumerate() {
                let u = _mm512_add_ps(ua, ub[h]);
                *value = _mm512_min_ps(_mm512_fmadd_ps(*value, two_t, u), zero);
            }
        }
        acc
    }

    fn check(tile: &MicroTile) {
        assert!(
            tile.a.len() >= tile.dim * PANEL
                && tile.b.len() >= tile.dim * PANEL
                && tile.lane + GROUP <= PANEL
                && tile.a_offsets.len() >= GROUP
                && tile.b_offsets.len() >= PANEL
        );
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exponents_avx512(tile: &MicroTile, e: &mut Exponents) {
        check(tile);
        let gram = gram_avx512(tile, 0..tile.dim, [[_mm512_setzero_ps(); 2]; GROUP]);
        let acc = exponents_in_registers(tile, gram);
        for (r, row) in acc.iter().enumerate() {
            for (h, &value) in row.iter().enumerate() {
                _mm512_storeu_ps(e.as_mut_ptr().add(r * PANEL + h * HALF), value);
            }
        }
    }

    /// The steps of [`exp_nonpositive`] shared by the SIMD kernels, operation for operation:
    /// `(n, p)` with `exp(x) = p 2^n`, from the width's `set1`, `fmadd`, `fnmadd` and `sub`.
    macro_rules! exp_parts {
        ($x:expr, $set1:ident, $fmadd:ident, $fnmadd:ident, $sub:ident) => {{
            let x = $x;
            let n = $sub(
                $fmadd(x, $set1(EXP_LOG2E), $set1(EXP_ROUND)),
                $set1(EXP_ROUND),
            );
            let r = $fnmadd(n, $set1(EXP_LN2_HI), x);
            let r = $fnmadd(n, $set1(EXP_LN2_LO), r);
            let mut p = $set1(EXP_POLY[0]);
            for &k in &EXP_POLY[1..] {
                p = $fmadd(p, r, $set1(k));
            }
            (n, $fmadd(p, r, $set1(1.0)))
        }};
    }

    /// [`exp_nonpositive`] on sixteen lanes (`2^n` by `scalef`).
    #[inline(always)]
    unsafe fn exp16(x: __m512) -> __m512 {
        let (n, p) = exp_parts!(
            x,
            _mm512_set1_ps,
            _mm512_fmadd_ps,
            _mm512_fnmadd_ps,
            _mm512_sub_ps
        );
        _mm512_scalef_ps(p, n)
    }

    /// The panel pair's exponentials, its coordinates in chunks of [`CHUNK`]: every row group
    /// accumulates one chunk (its products carried over in memory between chunks, the same
    /// bits) before the next chunk is read, and after the last the exponents are taken in
    /// registers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_exponentials_avx512<const SHIFTED: bool>(
        pair: &PanelPair,
        shift: f32,
        sums: &mut [f64; LANES],
    ) {
        let chunks = pair.dim.div_ceil(CHUNK).max(1);
        let mut partial = [[[_mm512_setzero_ps(); 2]; GROUP]; GROUPS];
        for chunk in 0..chunks {
            let ks = chunk * CHUNK..((chunk + 1) * CHUNK).min(pair.dim);
            for (g, masks) in pair.groups.iter().enumerate() {
                let Some(masks) = masks else { continue };
                let tile = pair.micro_tile(g);
                check(&tile);
                let start = match chunk {
                    0 => [[_mm512_setzero_ps(); 2]; GROUP],
                    _ => partial[g],
                };
                let acc = gram_avx512(&tile, ks.clone(), start);
                match chunk + 1 < chunks {
                    true => partial[g] = acc,
                    false => {
                        let exponents = exponents_in_registers(&tile, acc);
                        add_rows::<SHIFTED>(exponents, shift, masks, sums);
                    }
                }
            }
        }
    }

    /// Add the exponentials of a micro-tile's exponents to `sums` in the order of
    /// [`sum_exponentials_portable`].
    #[inline(always)]
    unsafe fn add_rows<const SHIFTED: bool>(
        exponents: Accumulators,
        shift: f32,
        masks: &Masks,
        sums: &mut [f64; LANES],
    ) {
        let (vshift, floor) = (_mm512_set1_ps(shift), _mm512_set1_ps(EXP_MIN));
        // Every row's exponentials first (independent work, unrolled), then the sums in order.
        let mut pairs = [_mm512_setzero_ps(); GROUP];
        macro_rules! row_pairs {
            ($($r:literal)*) => {$(
                let mut terms = exponents[$r];
                for term in terms.iter_mut() {
                    if SHIFTED {
                        *term = _mm512_max_ps(_mm512_sub_ps(*term, vshift), floor);
                    }
                    *term = exp16(*term);
                }
                if let Some(masks) = masks {
                    terms[0] = _mm512_maskz_mov_ps(masks[$r] as u16, terms[0]);
                    terms[1] = _mm512_maskz_mov_ps((masks[$r] >> HALF) as u16, terms[1]);
                }
                pairs[$r] = _mm512_add_ps(terms[0], terms[1]);
            )*};
        }
        row_pairs!(0 1 2 3 4 5 6 7);
        let mut total = _mm512_loadu_pd(sums.as_ptr());
        for pair in pairs {
            let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(pair));
            total = _mm512_add_pd(total, _mm512_cvtps_pd(_mm512_castps512_ps256(pair)));
            total = _mm512_add_pd(total, _mm512_cvtps_pd(_mm256_castpd_ps(high)));
        }
        _mm512_storeu_pd(sums.as_mut_ptr(), total);
    }

    /// The eight 8-lane accumulators of one of the micro-tile's four blocks (rows
    /// `4 row_half..`, columns `16 col_half..`): four rows by sixteen columns.
    type BlockAccumulators = [[__m256; 2]; 4];

    /// Add coordinates `ks` of block `block` (`2 row_half + col_half`) of the micro-tile's Gram
    /// products to `acc`, one coordinate after the other (the order of every kernel).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gram_block_avx2(
        tile: &MicroTile,
        block: usize,
        ks: Range<usize>,
        mut acc: BlockAccumulators,
    ) -> BlockAccumulators {
        let (row_half, col_half) = (block / 2, block % 2);
        let a = tile.a.as_ptr().add(tile.lane + row_half * 4);
        let b = tile.b.as_ptr().add(col_half * HALF);
        for k in ks {
            let b0 = _mm256_loadu_ps(b.add(k * PANEL));
            let b1 = _mm256_loadu_ps(b.add(k * PANEL + 8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_set1_ps(*a.add(k * PANEL + r));
                acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
            }
        }
        acc
    }

    /// The exponents of the micro-tile from the Gram products of its four blocks.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exponents_of_blocks_avx2(
        tile: &MicroTile,
        blocks: &[BlockAccumulators; 4],
        e: &mut Exponents,
    ) {
        let two_t = _mm256_set1_ps(tile.two_t);
        let zero = _mm256_setzero_ps();
        for (block, acc) in blocks.iter().enumerate() {
            let (row_half, col_half) = (block / 2, block % 2);
            for (r, acc) in acc.iter().enumerate() {
                let row = row_half * 4 + r;
                let ua = _mm256_set1_ps(tile.a_offsets[row]);
                for (h, &g) in acc.iter().enumerate() {
                    let col = col_half * HALF + h * 8;
                    let u = _mm256_add_ps(ua, _mm256_loadu_ps(tile.b_offsets.as_ptr().add(col)));
                    let value = _mm256_min_ps(_mm256_fmadd_ps(g, two_t, u), zero);
                    _mm256_storeu_ps(e.as_mut_ptr().add(row * PANEL + col), value);
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exponents_avx2(tile: &MicroTile, e: &mut Exponents) {
        check(tile);
        let zero = [[_mm256_setzero_ps(); 2]; 4];
        let blocks: [BlockAccumulators; 4] =
            std::array::from_fn(|block| gram_block_avx2(tile, block, 0..tile.dim, zero));
        exponents_of_blocks_avx2(tile, &blocks, e);
    }

    /// The panel pair's exponentials, its coordinates in chunks of [`AVX2_CHUNK`] as in
    /// [`add_exponentials_avx512`]: every row group's blocks accumulate one chunk (their
    /// products carried over in memory between chunks: the same bits) before the next chunk is
    /// read, so that at any D the chunks of the two panels stay in the first-level cache; after
    /// the last chunk the groups' exponentials are added in group order.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn add_exponentials_avx2<const SHIFTED: bool>(
        pair: &PanelPair,
        shift: f32,
        sums: &mut [f64; LANES],
    ) {
        let chunks = pair.dim.div_ceil(AVX2_CHUNK).max(1);
        let zero = [[_mm256_setzero_ps(); 2]; 4];
        let mut partial = [[zero; 4]; GROUPS];
        let mut e = [0.0; MICRO];
        for chunk in 0..chunks {
            let ks = chunk * AVX2_CHUNK..((chunk + 1) * AVX2_CHUNK).min(pair.dim);
            for (g, masks) in pair.groups.iter().enumerate() {
                let Some(masks) = masks else { continue };
                let tile = pair.micro_tile(g);
                check(&tile);
                for (block, acc) in partial[g].iter_mut().enumerate() {
                    let start = match chunk {
                        0 => zero,
                        _ => *acc,
                    };
                    *acc = gram_block_avx2(&tile, block, ks.clone(), start);
                }
                if chunk + 1 == chunks {
                    exponents_of_blocks_avx2(&tile, &partial[g], &mut e);
                    sum_exponentials_avx2::<SHIFTED>(&e, shift, masks, sums);
                }
            }
        }
    }

    /// [`exp_nonpositive`] on eight lanes.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let (n, p) = exp_parts!(
            x,
            _mm256_set1_ps,
            _mm256_fmadd_ps,
            _mm256_fnmadd_ps,
            _mm256_sub_ps
        );
        let bits = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)))
    }

    /// [`super::sum_softplus`] with eight lanes; a group of eight with a lane outside the
    /// series takes [`super::softplus_term`] lane by lane.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_softplus_avx2(values: &[f32], scale: f32, bias: f32) -> f64 {
        let (vscale, vbias) = (_mm256_set1_ps(scale), _mm256_set1_ps(bias));
        let (floor, zero) = (_mm256_set1_ps(EXP_MIN), _mm256_setzero_ps());
        let sign = _mm256_set1_ps(-0.0);
        let limit = _mm256_set1_ps(super::SOFTPLUS_SERIES_BELOW);
        let mut lanes = [0.0f64; 8];
        let whole = values.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            let v = _mm256_loadu_ps(values.as_ptr().add(i));
            let x = _mm256_fmadd_ps(v, vscale, vbias);
            let negative_abs = _mm256_or_ps(x, sign);
            let y = exp8(_mm256_max_ps(negative_abs, floor));
            if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(y, limit)) != 0xff {
                for (lane, sum) in lanes.iter_mut().enumerate() {
                    *sum += super::softplus_term(values[i + lane], scale, bias);
                }
                continue;
            }
            // log1p_series by Horner with fused multiply-adds, as the scalar one.
            const C: [f32; 7] = [1.0 / 7.0, -1.0 / 6.0, 0.2, -0.25, 1.0 / 3.0, -0.5, 1.0];
            let mut p = _mm256_set1_ps(C[0]);
            for &k in &C[1..] {
                p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(k));
            }
            let tail = _mm256_mul_ps(p, y);
            let positive = _mm256_max_ps(x, zero);
            let (tl, th) = (
                _mm256_castps256_ps128(tail),
                _mm256_extractf128_ps::<1>(tail),
            );
            let (pl, ph) = (
                _mm256_castps256_ps128(positive),
                _mm256_extractf128_ps::<1>(positive),
            );
            // The terms added to the lane sums one group after the other, as the scalar loop.
            let mut terms = [0.0f64; 8];
            _mm256_storeu_pd(
                terms.as_mut_ptr(),
                _mm256_add_pd(_mm256_cvtps_pd(pl), _mm256_cvtps_pd(tl)),
            );
            _mm256_storeu_pd(
                terms.as_mut_ptr().add(4),
                _mm256_add_pd(_mm256_cvtps_pd(ph), _mm256_cvtps_pd(th)),
            );
            for (sum, term) in lanes.iter_mut().zip(terms) {
                *sum += term;
            }
        }
        for (i, &v) in values.iter().enumerate().skip(whole) {
            lanes[i % 8] += super::softplus_term(v, scale, bias);
        }
        lanes.iter().sum()
    }

    /// [`super::sum_exp_below`] with eight lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_exp_below_avx2(values: &[f32], top: f32, scale: f32) -> f64 {
        let (vtop, vscale) = (_mm256_set1_ps(top), _mm256_set1_ps(scale));
        let (floor, zero) = (_mm256_set1_ps(EXP_MIN), _mm256_setzero_ps());
        let mut low = _mm256_setzero_pd();
        let mut high = _mm256_setzero_pd();
        let whole = values.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            let v = _mm256_loadu_ps(values.as_ptr().add(i));
            let x = _mm256_mul_ps(_mm256_sub_ps(v, vtop), vscale);
            let e = exp8(_mm256_min_ps(_mm256_max_ps(x, floor), zero));
            low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
        }
        let mut lanes = [0.0f64; 8];
        _mm256_storeu_pd(lanes.as_mut_ptr(), low);
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4), high);
        for (i, &v) in values.iter().enumerate().skip(whole) {
            lanes[i % 8] += f64::from(super::exp_below(v, top, scale));
        }
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_exponentials_avx2<const SHIFTED: bool>(
        e: &Exponents,
        shift: f32,
        masks: &Masks,
        sums: &mut [f64; LANES],
    ) {
        let (vshift, floor) = (_mm256_set1_ps(shift), _mm256_set1_ps(EXP_MIN));
        let bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let mut low = _mm256_loadu_pd(sums.as_ptr());
        let mut high = _mm256_loadu_pd(sums.as_ptr().add(4));
        for r in 0..GROUP {
            let mut terms = [_mm256_setzero_ps(); 4];
            for (q, term) in terms.iter_mut().enumerate() {
                let mut x = _mm256_loadu_ps(e.as_ptr().add(r * PANEL + q * 8));
                if SHIFTED {
                    x = _mm256_max_ps(_mm256_sub_ps(x, vshift), floor);
                }
                *term = exp8(x);
                if let Some(masks) = masks {
                    let bits = _mm256_set1_epi32((masks[r] >> (8 * q) & 0xFF) as i32);
                    let keep = _mm256_cmpeq_epi32(_mm256_and_si256(bits, bit), bit);
                    *term = _mm256_and_ps(*term, _mm256_castsi256_ps(keep));
                }
            }
            for pairs in [
                _mm256_add_ps(terms[0], terms[2]),
                _mm256_add_ps(terms[1], terms[3]),
            ] {
                low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(pairs)));
                high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(pairs)));
            }
        }
        _mm256_storeu_pd(sums.as_mut_ptr(), low);
        _mm256_storeu_pd(sums.as_mut_ptr().add(4), high);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use ndarray::Array2;

    fn rows(n: usize, d: usize, seed: u64, scale: f32) -> Array2<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_simple_fn((n, d), || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            scale * ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        })
    }

    /// `log sum exp(-t d^2)` over every pair `i < j` (or every pair of `x` and `y`) in f64.
    fn plain(x: &Array2<f32>, y: Option<&Array2<f32>>, t: f64) -> f64 {
        let mut exponents = Vec::new();
        let other = y.unwrap_or(x);
        for i in 0..x.nrows() {
            let first = if y.is_some() { 0 } else { i + 1 };
            for j in first..other.nrows() {
                let d2: f64 = x
                    .row(i)
                    .iter()
                    .zip(other.row(j))
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum();
                exponents.push(-t * d2);
            }
        }
        let top = exponents.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        top + exponents.iter().map(|e| (e - top).exp()).sum::<f64>().ln()
    }

    fn log_sum(parts: &[UniformityPart]) -> f64 {
        let total = parts
            .iter()
            .fold(UniformityPart::EMPTY, |acc, &p| acc.merge(p));
        total.shift + total.sum.ln()
    }

    #[test]
    fn the_sum_below_the_top_is_the_same_with_every_kernel() {
        let values: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 60.0)
            .collect();
        let top = values.iter().cloned().fold(f32::MIN, f32::max);
        let portable = sum_exp_below_portable(&values, top, 7.5);
        assert_eq!(sum_exp_below(&values, top, 7.5), portable);
        let plain: f64 = values
            .iter()
            .map(|&v| (f64::from(v - top) * 7.5).exp())
            .sum();
        assert!(
            (portable - plain).abs() < 1e-6 * plain,
            "{portable} vs {plain}"
        );
    }

    #[test]
    fn the_softplus_sum_is_the_same_with_every_kernel_and_near_its_definition() {
        let values: Vec<f32> = (0..2003)
            .map(|i| ((i * 37 % 211) as f32 - 105.0) / 100.0)
            .collect();
        for (scale, bias) in [(10.0f32, -10.0f32), (3.0, 1.0), (30.0, -5.0)] {
            let mut lanes = [0.0f64; 8];
            for (i, &v) in values.iter().enumerate() {
                lanes[i % 8] += softplus_term(v, scale, bias);
            }
            let portable: f64 = lanes.iter().sum();
            assert_eq!(sum_softplus(&values, scale, bias), portable);
            let plain: f64 = values
                .iter()
                .map(|&v| {
                    let x = f64::from(v) * f64::from(scale) + f64::from(bias);
                    x.max(0.0) + (-x.abs()).exp().ln_1p()
                })
                .sum();
            assert!(
                (portable - plain).abs() < 1e-6 * plain,
                "{portable} vs {plain}"
            );
        }
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_std() {
        let mut worst = 0.0f64;
        for k in 0..=870_000 {
            let x = -(k as f32) * 1e-4;
            let got = f64::from(exp_nonpositive(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    /// Every kernel the CPU has returns the portable kernel's bits, on blocks with diagonal
    /// micro-tiles, ragged edges, cross blocks, the shifted (large-norm) path and more than
    /// one chunk of coordinates (D = 257 and 300 against chunks of 128); and the
    /// blocks of the kernel in use agree with a plain f64 sum.
    #[test]
    fn every_kernel_returns_the_portable_bits() {
        let kernels = supported_kernels();
        if !kernels.contains(&Kernel::Avx512) {
            println!("AVX-512 not on this CPU: its kernel was not compared");
        }
        for (n, m, d, scale, t) in [
            (70, 0, 5, 1.0, 2.0),
            (131, 45, 17, 1.0, 2.0),
            (200, 0, 64, 0.3, 1.0),
            (97, 33, 9, 12.0, 2.0),
            (65, 0, 3, 40.0, 0.5),
            (70, 0, 300, 0.2, 2.0),
            (40, 50, 257, 0.2, 2.0),
        ] {
            let x = rows(n, d, n as u64, scale);
            let y = rows(m, d, 7, scale);
            let (a, b) = (
                PackedRows::new(x.view(), t).unwrap(),
                PackedRows::new(y.view(), t).unwrap(),
            );
            let block = |kernel| match m {
                0 => block_part(kernel, &a, &a, 0..n, 0..n, true, t),
                _ => block_part(kernel, &a, &b, 0..n, 0..m, false, t),
            };
            let want = block(Kernel::Portable);
            for &kernel in &kernels {
                assert_eq!(block(kernel), want, "{kernel:?}, n = {n}, m = {m}, d = {d}");
            }
            let other = (m > 0).then(|| y.view());
            let parts = block_parts(x.view(), other, t, 64, &NoProgress).unwrap();
            let expected = plain(&x, (m > 0).then_some(&y), t);
            for got in [log_sum(&[want]), log_sum(&parts)] {
                assert!(
                    (got - expected).abs() <= 1e-5 * expected.abs().max(1.0),
                    "n = {n}, m = {m}: {got} against {expected}"
                );
            }
        }
    }

    /// Rows far apart (on a sphere of radius 3 in 64 dimensions, `t = 20`: every exponent
    /// below -87) take the shifted path and keep their value.
    #[test]
    fn far_apart_rows_are_summed_relative_to_the_largest_exponent() {
        let mut x = rows(90, 64, 3, 1.0);
        for mut row in x.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row.mapv_inplace(|v| 3.0 * v / norm);
        }
        let parts = block_parts(x.view(), None, 20.0, 32, &NoProgress).unwrap();
        assert!(parts.iter().all(|p| p.shift < -87.0 || p.pairs == 0));
        let expected = plain(&x, None, 20.0);
        let got = log_sum(&parts);
        assert!(
            ((got - expected) / expected).abs() < 1e-6,
            "{got} against {expected}"
        );
    }

    #[test]
    fn pairs_are_counted_once() {
        let x = rows(100, 3, 1, 1.0);
        let y = rows(37, 3, 2, 1.0);
        let within: u64 = block_parts(x.view(), None, 2.0, 32, &NoProgress)
            .unwrap()
            .iter()
            .map(|p| p.pairs)
            .sum();
        let between: u64 = block_parts(x.view(), Some(y.view()), 2.0, 32, &NoProgress)
            .unwrap()
            .iter()
            .map(|p| p.pairs)
            .sum();
        assert_eq!((within, between), (100 * 99 / 2, 100 * 37));
    }
}
