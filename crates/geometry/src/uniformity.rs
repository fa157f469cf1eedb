//! Uniformity of Wang & Isola (ICML 2020, "Understanding contrastive representation learning
//! through alignment and uniformity on the hypersphere"):
//!
//! `L_unif = log( 2/(N(N-1)) * sum_{i<j} exp(-t ||x_i - x_j||^2) )`
//!
//! computed exactly from tiles of the Gram matrix (never an N x N matrix) with a stable f64
//! log-sum-exp, or estimated from K uniformly drawn pairs with a delta-method standard error.

use crate::error::{GeometryError, Result};
use crate::gram_exp::block_side;
use crate::progress::Progress;
use crate::real::Real;
use crate::rows::{
    prefetch_first_line, prefetch_row_l2, squared_distances, PAIRS_AHEAD, TRANSLATE_AHEAD,
};
use crate::sampling::PairSampler;
use crate::tiles::{gram_tile_count, map_gram_tiles, GramTile};
use ndarray::ArrayView2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How uniformity is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// Every pair `i < j`, from Gram tiles of side `tile`.
    Exact { tile: usize },
    /// `pairs` pairs `i != j` drawn uniformly with a seeded generator.
    Sampled { pairs: u64, seed: u64 },
}

/// Which estimator produced a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// All pairs.
    Exact,
    /// A uniform sample of pairs.
    Sampled,
    /// Every pair among a seeded sample of rows (sharded datasets).
    #[serde(rename = "sampled rows")]
    SampledRows,
}

impl Method {
    /// `"exact"`, `"sampled"` or `"sampled rows"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Sampled => "sampled",
            Method::SampledRows => "sampled rows",
        }
    }
}

/// A uniformity value `L_unif` with the parameters that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uniformity {
    /// `L_unif` (natural log; lower is more uniform).
    pub value: f64,
    /// The temperature-like parameter `t`.
    pub t: f64,
    /// Exact or sampled.
    pub method: Method,
    /// Pairs summed (exact: `N(N-1)/2`) or drawn (sampled: K).
    pub pairs: u64,
    /// Standard error of a sampled value (delta method on the log of the mean); `None` if exact.
    pub stderr: Option<f64>,
}

/// A running `log(sum exp(e_k))` kept as `(shift, sum exp(e_k - shift))`, plus the sum of
/// squares for the sampled estimator's variance, merged in a fixed order.
#[derive(Debug, Clone, Copy)]
struct LogSumExp {
    shift: f64,
    sum: f64,
    sum_sq: f64,
    count: u64,
}

impl LogSumExp {
    const EMPTY: LogSumExp = LogSumExp {
        shift: f64::NEG_INFINITY,
        sum: 0.0,
        sum_sq: 0.0,
        count: 0,
    };

    fn merge(self, other: LogSumExp) -> LogSumExp {
        if other.count == 0 {
            return self;
        }
        if self.count == 0 {
            return other;
        }
        let shift = self.shift.max(other.shift);
        let (a, b) = ((self.shift - shift).exp(), (other.shift - shift).exp());
        LogSumExp {
            shift,
            sum: self.sum * a + other.sum * b,
            sum_sq: self.sum_sq * a * a + other.sum_sq * b * b,
            count: self.count + other.count,
        }
    }

    /// `log( (1/count) sum exp(e_k) )`.
    fn log_mean(&self) -> f64 {
        self.shift + (self.sum / self.count as f64).ln()
    }
}

/// Squared distances of rows this large, or exponents `-t ||x_i - x_j||^2` this large, overflow
/// the element type (the Gram products are in f32 for f32 input): an error rather than a wrong
/// value. Unit rows are always in range for every `t` below `1e37`. A row that is not finite is
/// an error naming its first non-finite entry.
fn check_magnitude<F: Real>(x: ArrayView2<F>, t: f64) -> Result<()> {
    check_norms(x, &crate::rows::row_norms(x), t)
}

/// [`check_magnitude`] from the rows' norms.
pub(crate) fn check_norms<F: Real>(x: ArrayView2<F>, norms: &[f64], t: f64) -> Result<()> {
    if norms.iter().any(|n| !n.is_finite()) {
        crate::rows::check_finite(x)?;
    }
    let largest = norms.iter().cloned().fold(0.0f64, f64::max);
    let limit = F::max_value().as_f64() / 8.0;
    let reach = 4.0 * largest * largest;
    match largest <= limit.sqrt() && t * reach <= limit {
        true => Ok(()),
        false => Err(GeometryError::NonFiniteResult {
            metric: "uniformity",
            value: f64::INFINITY,
        }),
    }
}

fn check_parameters(n: usize, t: f64) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        return Err(GeometryError::InvalidParameter {
            name: "t",
            value: t,
            reason: "must be a positive finite number",
        });
    }
    if n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "uniformity",
            needed: 2,
            got: n,
        });
    }
    Ok(())
}

/// Uniformity of the rows of `x` (pass L2-normalised rows for Wang & Isola's definition) with
/// the chosen estimator.
pub fn uniformity<F: Real>(
    x: ArrayView2<F>,
    t: f64,
    estimator: Estimator,
    progress: &dyn Progress,
) -> Result<Uniformity> {
    match estimator {
        Estimator::Exact { tile } => uniformity_exact(x, t, tile, progress),
        Estimator::Sampled { pairs, seed } => uniformity_sampled(x, t, pairs, seed),
    }
}

/// `(m, sum_c exp(e_c - m))` of one f64 Gram tile row, `e_c = minus_t * max(0, row_sq +
/// col_sq[c] - 2 gram[c])` and `m = max_c e_c` (`(-inf, 0)` when empty). `gram` is scratch.
fn row_exp_sum(gram: &mut [f64], row_sq: f64, col_sq: &[f64], minus_t: f64) -> (f64, f64) {
    let mut shift = f64::NEG_INFINITY;
    for (g, &sq) in gram.iter_mut().zip(col_sq) {
        let d2 = row_sq + sq - 2.0 * *g;
        *g = minus_t * if d2 > 0.0 { d2 } else { 0.0 };
        shift = if *g > shift { *g } else { shift };
    }
    (shift, gram.iter().map(|&e| (e - shift).exp()).sum())
}

/// `(shift, sum exp(e - shift), count)` of one f64 Gram tile's pair exponents
/// `e = -t ||x_i - x_j||^2` (on a diagonal tile, the pairs above it only).
fn tile_log_sum_exp(mut block: GramTile<f64>, minus_t: f64) -> LogSumExp {
    let diagonal = block.diagonal;
    block
        .gram
        .rows_mut()
        .into_iter()
        .enumerate()
        .map(|(r, row)| {
            let row = row.into_slice().expect("Gram tile rows are contiguous");
            let start = if diagonal { (r + 1).min(row.len()) } else { 0 };
            let (shift, sum) = row_exp_sum(
                &mut row[start..],
                block.row_sq[r],
                &block.col_sq[start..],
                minus_t,
            );
            LogSumExp {
                shift,
                sum,
                sum_sq: 0.0,
                count: (row.len() - start) as u64,
            }
        })
        .fold(LogSumExp::EMPTY, LogSumExp::merge)
}

/// [`Real::UNIFORMITY_BLOCKS`] for f64 rows: `dgemm` tiles of the Gram matrix (in a buffer per
/// thread), each tile's `sum exp(-t d^2)` accumulated relative to the largest exponent of each
/// of its rows.
pub(crate) fn gram_tile_parts(
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    t: f64,
    tile: usize,
    progress: &dyn Progress,
) -> Result<Vec<UniformityPart>> {
    let checked_squares = |rows: ArrayView2<f64>| -> Result<Vec<f64>> {
        let norms = crate::rows::row_norms(rows);
        check_norms(rows, &norms, t)?;
        Ok(norms.into_iter().map(|n| n * n).collect())
    };
    let x_sq = checked_squares(x)?;
    let y_sq = y.map(checked_squares).transpose()?;
    let other = y.zip(y_sq.as_deref());
    Ok(map_gram_tiles(x, &x_sq, other, tile, progress, |block| {
        tile_log_sum_exp(block, -t)
    })
    .into_iter()
    .map(UniformityPart::from)
    .collect())
}

/// A mergeable part of the exact uniformity: `log sum exp(-t ||x_i - x_j||^2)` over some of
/// the pairs, kept as `(shift, sum exp(e - shift), pairs)`. Parts of disjoint pair sets (the
/// pairs within each shard, and between each two shards) merge into the exact value of all
/// of them, in any order up to rounding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UniformityPart {
    /// The reference exponent `s` of `sum` (the largest exponent seen, or 0 where the fused
    /// f32 kernel proved that no term can underflow).
    pub shift: f64,
    /// `sum exp(e - shift)`.
    pub sum: f64,
    /// Pairs summed.
    pub pairs: u64,
}

impl From<LogSumExp> for UniformityPart {
    fn from(sum: LogSumExp) -> UniformityPart {
        UniformityPart {
            shift: sum.shift,
            sum: sum.sum,
            pairs: sum.count,
        }
    }
}

impl UniformityPart {
    /// No pair.
    pub const EMPTY: UniformityPart = UniformityPart {
        shift: f64::NEG_INFINITY,
        sum: 0.0,
        pairs: 0,
    };

    /// Both parts together.
    pub fn merge(self, other: UniformityPart) -> UniformityPart {
        UniformityPart::from(self.log_sum_exp().merge(other.log_sum_exp()))
    }

    /// `L_unif` over the pairs summed (`None` without pairs).
    pub fn value(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.log_sum_exp().log_mean())
    }

    fn log_sum_exp(&self) -> LogSumExp {
        LogSumExp {
            shift: self.shift,
            sum: self.sum,
            sum_sq: 0.0,
            count: self.pairs,
        }
    }
}

/// The uniformity part of the pairs within `a` (`b = None`: pairs `i < j`) or between `a` and
/// `b` (every pair), from Gram blocks of side `tile` as in [`uniformity_exact`].
pub fn uniformity_part<F: Real>(
    a: ArrayView2<F>,
    b: Option<ArrayView2<F>>,
    t: f64,
    tile: usize,
) -> Result<UniformityPart> {
    check_parameters(2, t)?;
    if let Some(b) = b {
        if b.ncols() != a.ncols() {
            return Err(GeometryError::ShapeMismatch {
                what: format!("shards of {} and {} dimensions", a.ncols(), b.ncols()),
            });
        }
    }
    let tile = block_side(tile);
    Ok((F::UNIFORMITY_BLOCKS)(a, b, t, tile, &crate::NoProgress)?
        .into_iter()
        .fold(UniformityPart::EMPTY, UniformityPart::merge))
}

/// Exact `L_unif` over all `N(N-1)/2` pairs.
///
/// `||x_i - x_j||^2 = ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j` is formed from the Gram products of
/// blocks of `tile x tile` pairs (`tile` rounded up to a multiple of 32), in the element type;
/// each block's `sum exp(-t d^2)` is accumulated in f64 relative to a reference exponent, and
/// the blocks are merged in a fixed order with a stable log-sum-exp. f32 rows take the fused
/// kernel ([`crate::kernel`]: products exponentiated in registers, no Gram tile stored; memory
/// beyond the input: one packed copy of the rows); f64 rows take `dgemm` tiles (one
/// `tile x tile` buffer per thread).
pub fn uniformity_exact<F: Real>(
    x: ArrayView2<F>,
    t: f64,
    tile: usize,
    progress: &dyn Progress,
) -> Result<Uniformity> {
    let n = x.nrows();
    check_parameters(n, t)?;
    let tile = block_side(tile);
    progress.start("uniformity (exact)", gram_tile_count(n, tile));
    let partials = (F::UNIFORMITY_BLOCKS)(x, None, t, tile, progress)?;
    progress.finish();
    let total = partials
        .into_iter()
        .fold(UniformityPart::EMPTY, UniformityPart::merge);
    Ok(Uniformity {
        value: total.log_sum_exp().log_mean(),
        t,
        method: Method::Exact,
        pairs: total.pairs,
        stderr: None,
    })
}

/// Pairs drawn per independent generator stream in [`uniformity_sampled`].
const PAIRS_PER_STREAM: u64 = 1 << 16;

/// Sampled `L_unif`: the log of the mean of `exp(-t ||x_i - x_j||^2)` over `pairs` pairs
/// `i != j` drawn uniformly (with replacement), with the delta-method standard error
/// `se = s / (m sqrt(K))`, `m` and `s` the sample mean and standard deviation.
///
/// The draws come from fixed streams of a seeded generator, so the value depends on the seed
/// only, not on the thread count.
pub fn uniformity_sampled<F: Real>(
    x: ArrayView2<F>,
    t: f64,
    pairs: u64,
    seed: u64,
) -> Result<Uniformity> {
    let n = x.nrows();
    check_parameters(n, t)?;
    check_magnitude(x, t)?;
    if !(2..=crate::analysis::MAX_SAMPLED_PAIRS).contains(&pairs) {
        return Err(GeometryError::InvalidParameter {
            name: "pairs",
            value: pairs as f64,
            reason: "the sampled estimator takes between 2 and 10^11 pairs",
        });
    }
    let streams = pairs.div_ceil(PAIRS_PER_STREAM);
    let partials: Vec<LogSumExp> = (0..streams)
        .into_par_iter()
        .map(|stream| {
            let draws = PAIRS_PER_STREAM.min(pairs - stream * PAIRS_PER_STREAM);
            let mut sampler = PairSampler::new(seed, stream, n);
            let pairs: Vec<(usize, usize)> = (0..draws).map(|_| sampler.next_pair()).collect();
            // The rows of a pair a few pairs ahead are fetched while this one is computed:
            // the rows are far apart in memory, and their latency, not their bytes, limits.
            // The first lines of pairs further ahead are fetched first (their pages'
            // addresses translated). Four pairs at a time: four independent chains of sums.
            let mut exponents = vec![0.0f64; pairs.len()];
            for (group, (four, out)) in pairs.chunks(4).zip(exponents.chunks_mut(4)).enumerate() {
                for k in 4 * group..4 * group + four.len() {
                    if let Some(&(a, b)) = pairs.get(k + PAIRS_AHEAD) {
                        prefetch_row_l2(x.row(a));
                        prefetch_row_l2(x.row(b));
                    }
                    if let Some(&(a, b)) = pairs.get(k + TRANSLATE_AHEAD / 2) {
                        prefetch_first_line(x.row(a));
                        prefetch_first_line(x.row(b));
                    }
                }
                squared_distances(x, four, out);
                for e in out.iter_mut() {
                    *e *= -t;
                }
            }
            let shift = exponents.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let (sum, sum_sq) = exponents.iter().fold((0.0, 0.0), |(s, s2), &e| {
                let v = (e - shift).exp();
                (s + v, s2 + v * v)
            });
            LogSumExp {
                shift,
                sum,
                sum_sq,
                count: draws,
            }
        })
        .collect();
    let total = partials
        .into_iter()
        .fold(LogSumExp::EMPTY, LogSumExp::merge);
    let k = total.count as f64;
    let mean = total.sum / k;
    let variance = ((total.sum_sq / k - mean * mean) * k / (k - 1.0)).max(0.0);
    Ok(Uniformity {
        value: total.log_mean(),
        t,
        method: Method::Sampled,
        pairs: total.count,
        stderr: Some((variance / k).sqrt() / mean),
    })
}
