//! Alignment of Wang & Isola (ICML 2020): `L_align = mean ||x_i - y_i||^alpha` over positive
//! pairs, either row-matched views or, from labels, all same-class pairs ("label-positive"
//! alignment).

use crate::error::{GeometryError, Result};
use crate::kernels::classes::{ClassSums, Classes};
use crate::kernels::rows::{squared_distance, squared_norms};
use crate::kernels::tiles::{gram_tile_count, map_gram_tiles, sum_row_chunks, DEFAULT_TILE};
use crate::metrics::real::Real;
use crate::progress::Progress;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// An alignment value with the parameters that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// `L_align` (lower is better aligned).
    pub value: f64,
    /// The exponent alpha.
    pub alpha: f64,
    /// Number of positive pairs averaged.
    pub pairs: u64,
}

fn check_alpha(alpha: f64) -> Result<()> {
    if alpha.is_finite() && alpha > 0.0 {
        Ok(())
    } else {
        Err(GeometryError::InvalidParameter {
            name: "alpha",
            value: alpha,
            reason: "must be a positive finite number",
        })
    }
}

/// A mergeable part of the view alignment: `sum ||x_i - y_i||^alpha` over some rows (a
/// shard, a batch) and every view pair, and the pairs summed. Parts of disjoint rows merge
/// into the alignment of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlignmentPart {
    /// `sum ||x_i - y_i||^alpha`.
    pub sum: f64,
    /// Positive pairs summed.
    pub pairs: u64,
    /// The exponent alpha.
    pub alpha: f64,
}

impl AlignmentPart {
    /// Both parts together; their alphas must agree.
    pub fn merge(self, other: AlignmentPart) -> Result<AlignmentPart> {
        if self.alpha != other.alpha {
            return Err(GeometryError::InvalidParameter {
                name: "alpha",
                value: other.alpha,
                reason: "alignment parts of different alphas do not merge",
            });
        }
        Ok(AlignmentPart {
            sum: self.sum + other.sum,
            pairs: self.pairs + other.pairs,
            alpha: self.alpha,
        })
    }

    /// The alignment of the pairs summed (`None` without pairs).
    pub fn value(&self) -> Option<Alignment> {
        (self.pairs > 0).then(|| Alignment {
            value: self.sum / self.pairs as f64,
            alpha: self.alpha,
            pairs: self.pairs,
        })
    }
}

/// The alignment part of row-matched views (every view pair `v < w`, N pairs each).
pub fn alignment_part<F: Real>(views: &[ArrayView2<F>], alpha: f64) -> Result<AlignmentPart> {
    check_alpha(alpha)?;
    if views.len() < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "alignment (views)",
            needed: 2,
            got: views.len(),
        });
    }
    let shape = views[0].dim();
    if let Some((v, other)) = views.iter().enumerate().find(|(_, v)| v.dim() != shape) {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "view {v} has shape {:?} but view 0 has shape {shape:?}",
                other.dim()
            ),
        });
    }
    let n = shape.0;
    let half_alpha = alpha / 2.0;
    let mut sum = 0.0;
    let mut pairs = 0u64;
    for (v, a) in views.iter().enumerate() {
        for b in &views[v + 1..] {
            sum += sum_row_chunks(n, |rows| {
                rows.map(|i| squared_distance(a.row(i), b.row(i)).powf(half_alpha))
                    .sum()
            });
            pairs += n as u64;
        }
    }
    Ok(AlignmentPart { sum, pairs, alpha })
}

/// `L_align = mean_i ||x_i - y_i||^alpha` over row-matched views; with V > 2 views the mean
/// over all view pairs `v < w` (each view pair contributes N pairs).
pub fn alignment<F: Real>(views: &[ArrayView2<F>], alpha: f64) -> Result<Alignment> {
    alignment_part(views, alpha)?
        .value()
        .ok_or(GeometryError::TooFewRows {
            metric: "alignment",
            needed: 1,
            got: 0,
        })
}

/// Label-positive alignment: mean of `||x_i - x_j||^alpha` over all same-class pairs `i < j`.
///
/// For `alpha = 2` this is exact in O(N D) from class sums:
/// `sum_{i<j in c} ||x_i - x_j||^2 = n_c sum_{i in c} ||x_i||^2 - ||S_c||^2`,
/// `S_c = sum_{i in c} x_i` (for unit rows: `n_c^2 - ||S_c||^2`). Other alpha use Gram tiles
/// within each class.
pub fn class_alignment<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    alpha: f64,
    progress: &dyn Progress,
) -> Result<Alignment> {
    class_alignment_with_sums(x, classes, alpha, None, progress)
}

/// [`class_alignment`], given the classes' sums of `x` ([`Classes::class_sums`]) when they are
/// already computed: alpha = 2 needs nothing else.
pub(crate) fn class_alignment_with_sums<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    alpha: f64,
    sums: Option<&ClassSums>,
    progress: &dyn Progress,
) -> Result<Alignment> {
    check_alpha(alpha)?;
    classes.check_rows(x.nrows())?;
    let counts = classes.counts();
    let pairs: u64 = counts
        .iter()
        .map(|&n| (n * n.saturating_sub(1) / 2) as u64)
        .sum();
    if pairs == 0 {
        return Err(GeometryError::Labels {
            what: "label-positive alignment needs a class with at least 2 rows".into(),
        });
    }
    let total = if alpha == 2.0 {
        let computed;
        let (sums, sums_sq) = match sums {
            Some(sums) => sums,
            None => {
                computed = classes.class_sums(x);
                &computed
            }
        };
        counts
            .iter()
            .enumerate()
            .map(|(c, &n)| {
                let s2: f64 = sums.row(c).iter().map(|v| v * v).sum();
                (n as f64 * sums_sq[c] - s2).max(0.0)
            })
            .sum()
    } else {
        let half_alpha = F::from_f64(alpha / 2.0);
        let total_tiles = (0..classes.num_classes())
            .map(|c| gram_tile_count(counts[c], DEFAULT_TILE))
            .sum();
        progress.start("label-positive alignment", total_tiles);
        let mut total = 0.0;
        for c in 0..classes.num_classes() {
            let rows = crate::kernels::rows::gather_rows(x, classes.members(c));
            let sq = squared_norms(rows.view());
            let tiles = map_gram_tiles(
                rows.view(),
                &sq,
                None,
                DEFAULT_TILE,
                progress,
                |mut block| {
                    block
                        .map_squared_distances(|d2| d2.powf(half_alpha))
                        .iter()
                        .map(|row| row.iter().map(|v| v.as_f64()).sum::<f64>())
                        .sum::<f64>()
                },
            );
            total += tiles.into_iter().sum::<f64>();
        }
        progress.finish();
        total
    };
    Ok(Alignment {
        value: total / pairs as f64,
        alpha,
        pairs,
    })
}
