//! Uniformity of Wang & Isola (ICML 2020, "Understanding contrastive representation learning
//! through alignment and uniformity on the hypersphere"):
//!
//! `L_unif = log( 2/(N(N-1)) * sum_{i<j} exp(-t ||x_i - x_j||^2) )`
//!
//! computed exactly from tiles of the Gram matrix (never an N x N matrix) with a stable f64
//! log-sum-exp, or estimated from K uniformly drawn pairs with a delta-method standard error.

use crate::error::{GeometryError, Result};
use crate::kernels::gram_exp::block_side;
use crate::kernels::logsumexp::{check_norms, LogSumExp, UniformityPart};
use crate::kernels::rows::{
    prefetch_first_line, prefetch_row_l2, squared_distances, PAIRS_AHEAD, TRANSLATE_AHEAD,
};
use crate::kernels::sampling::PairSampler;
use crate::kernels::tiles::gram_tile_count;
use crate::metrics::real::Real;
use crate::progress::Progress;
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

/// Squared distances of rows this large, or exponents `-t ||x_i - x_j||^2` this large, overflow
/// the element type (the Gram products are in f32 for f32 input): an error rather than a wrong
/// value. Unit rows are always in range for every `t` below `1e37`. A row that is not finite is
/// an error naming its first non-finite entry.
fn check_magnitude<F: Real>(x: ArrayView2<F>, t: f64) -> Result<()> {
    check_norms(x, &crate::kernels::rows::row_norms(x), t)
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
    Ok(
        (F::UNIFORMITY_BLOCKS)(a, b, t, tile, &crate::progress::NoProgress)?
            .into_iter()
            .fold(UniformityPart::EMPTY, UniformityPart::merge),
    )
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

/// Most pairs the sampled uniformity draws (`--pairs`): about an hour of work on two cores.
pub const MAX_SAMPLED_PAIRS: u64 = 100_000_000_000;

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
    if !(2..=MAX_SAMPLED_PAIRS).contains(&pairs) {
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
