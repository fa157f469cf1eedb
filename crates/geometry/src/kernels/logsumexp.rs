//! The log-sum-exp accumulation of the exact uniformity: [`LogSumExp`] (a running
//! `log sum exp(e_k)` kept as a shift and a scaled sum), its mergeable public form
//! [`UniformityPart`], the range check of the rows' norms, and the kernel for f64 rows
//! (`dgemm` Gram tiles, each exponentiated in f64). The fused f32 kernel is
//! [`crate::kernels::gram_exp`].

use crate::error::{GeometryError, Result};
use crate::kernels::real::Element;
use crate::kernels::tiles::{map_gram_tiles, GramTile};
use crate::progress::Progress;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// A running `log(sum exp(e_k))` kept as `(shift, sum exp(e_k - shift))`, plus the sum of
/// squares for the sampled estimator's variance, merged in a fixed order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogSumExp {
    pub(crate) shift: f64,
    pub(crate) sum: f64,
    pub(crate) sum_sq: f64,
    pub(crate) count: u64,
}

impl LogSumExp {
    pub(crate) const EMPTY: LogSumExp = LogSumExp {
        shift: f64::NEG_INFINITY,
        sum: 0.0,
        sum_sq: 0.0,
        count: 0,
    };

    pub(crate) fn merge(self, other: LogSumExp) -> LogSumExp {
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
    pub(crate) fn log_mean(&self) -> f64 {
        self.shift + (self.sum / self.count as f64).ln()
    }
}

/// `log(e^a + e^b)`, exact for `-inf` terms.
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    match low == f64::NEG_INFINITY {
        true => high,
        false => high + (low - high).exp().ln_1p(),
    }
}

/// `log(1 + e^x) = max(x, 0) + log(1 + e^-|x|)`, the logarithm by its series when `e^-|x| <
/// 2^-10` (five terms: a relative error below 2^-60), else `ln_1p`.
pub(crate) fn softplus(x: f64) -> f64 {
    let y = (-x.abs()).exp();
    let tail = match y < 1.0 / 1024.0 {
        true => y * (1.0 - y * (0.5 - y * (1.0 / 3.0 - y * (0.25 - y * 0.2)))),
        false => y.ln_1p(),
    };
    x.max(0.0) + tail
}

/// Squared distances of rows with these norms, or exponents `-t ||x_i - x_j||^2` this large,
/// overflow the element type (the Gram products are in f32 for f32 input): an error rather
/// than a wrong value. Unit rows are always in range for every `t` below `1e37`. A row that is
/// not finite is an error naming its first non-finite entry.
pub(crate) fn check_norms<F: Element>(x: ArrayView2<F>, norms: &[f64], t: f64) -> Result<()> {
    if norms.iter().any(|n| !n.is_finite()) {
        crate::kernels::rows::check_finite(x)?;
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

/// The exact uniformity blocks of f64 rows: `dgemm` tiles of the Gram matrix (in a buffer per
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
        let norms = crate::kernels::rows::row_norms(rows);
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

    pub(crate) fn log_sum_exp(&self) -> LogSumExp {
        LogSumExp {
            shift: self.shift,
            sum: self.sum,
            sum_sq: 0.0,
            count: self.pairs,
        }
    }
}
