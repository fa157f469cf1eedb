//! The `analyze` pipeline: which metrics apply to which inputs, and which estimator each uses.

use crate::alignment::{alignment, class_alignment, Alignment};
use crate::classes::Classes;
use crate::error::{GeometryError, Result};
use crate::progress::Progress;
use crate::real::Real;
use crate::tiles::DEFAULT_TILE;
use crate::uniformity::{uniformity, Estimator, Uniformity};
use ndarray::{ArrayView2, Axis};

/// Pairs drawn by the sampled uniformity when N exceeds `max_exact` and no count is given.
pub const DEFAULT_SAMPLED_PAIRS: u64 = 10_000_000;

/// Largest N computed exactly by default (about 45 s at D = 128 on two cores).
pub const DEFAULT_MAX_EXACT: usize = 200_000;

/// Parameters of [`analyze`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisOptions {
    /// Alignment exponent alpha (Wang & Isola default 2).
    pub alpha: f64,
    /// Uniformity parameter t (Wang & Isola default 2).
    pub t: f64,
    /// Force the sampled uniformity with this many pairs.
    pub pairs: Option<u64>,
    /// Above this many rows uniformity is sampled rather than exact.
    pub max_exact: usize,
    /// Seed of the pair sampler.
    pub seed: u64,
    /// Side of the Gram tiles of the exact uniformity.
    pub tile: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            alpha: 2.0,
            t: 2.0,
            pairs: None,
            max_exact: DEFAULT_MAX_EXACT,
            seed: 0,
            tile: DEFAULT_TILE,
        }
    }
}

impl AnalysisOptions {
    /// The uniformity estimator for `n` rows: sampled when pairs are given or `n > max_exact`.
    pub fn estimator(&self, n: usize, stream: u64) -> Estimator {
        let seed = self.seed.wrapping_add(stream);
        match self.pairs {
            Some(pairs) => Estimator::Sampled { pairs, seed },
            None if n > self.max_exact => Estimator::Sampled {
                pairs: DEFAULT_SAMPLED_PAIRS,
                seed,
            },
            None => Estimator::Exact { tile: self.tile },
        }
    }
}

/// The rows an analysis reads, already prepared (L2-normalised unless the caller chose not to).
pub struct AnalysisInput<'a, F> {
    /// One embedding per item (the clean view), if given.
    pub embeddings: Option<ArrayView2<'a, F>>,
    /// Row-matched views of the same items (two or more), or none.
    pub views: Vec<ArrayView2<'a, F>>,
    /// Class labels of the items, if given.
    pub classes: Option<&'a Classes>,
}

/// Everything `analyze` measured; a metric that does not apply is `None` (never 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Items (rows per view).
    pub n: usize,
    /// Embedding dimension D.
    pub dim: usize,
    /// C, when labels are given.
    pub num_classes: Option<usize>,
    /// View alignment (needs views).
    pub alignment: Option<Alignment>,
    /// Uniformity: of the embeddings, or the mean of the per-view values when views are given.
    pub uniformity: Option<Uniformity>,
    /// Uniformity of each view, when views are given.
    pub uniformity_views: Vec<Uniformity>,
    /// Label-positive alignment (needs labels).
    pub class_alignment: Option<Alignment>,
    /// Uniformity within each class (class name, value; `None` for a class of one row).
    pub uniformity_per_class: Vec<(String, Option<Uniformity>)>,
}

/// Run every metric that applies to `input`.
///
/// Uniformity is taken on the views when they are given (the per-view average, as Wang &
/// Isola's reference code reports it), else on the embeddings. Label metrics use the
/// embeddings when given, else the first view.
pub fn analyze<F: Real>(
    input: &AnalysisInput<F>,
    options: &AnalysisOptions,
    progress: &dyn Progress,
) -> Result<Analysis> {
    let labelled = input.embeddings.or_else(|| input.views.first().copied());
    let Some(labelled) = labelled else {
        return Err(GeometryError::TooFewRows {
            metric: "analysis (no embeddings and no views)",
            needed: 1,
            got: 0,
        });
    };
    let (n, dim) = labelled.dim();
    if let Some(view) = input.views.iter().find(|v| v.dim() != (n, dim)) {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "views have shape {:?} but the embeddings have shape {:?}",
                view.dim(),
                (n, dim)
            ),
        });
    }

    let (alignment, mean_uniform, uniformity_views) = if input.views.is_empty() {
        let value = uniformity(labelled, options.t, options.estimator(n, 0), progress)?;
        (None, Some(value), Vec::new())
    } else {
        let aligned = alignment(&input.views, options.alpha)?;
        let per_view = input
            .views
            .iter()
            .enumerate()
            .map(|(v, view)| uniformity(*view, options.t, options.estimator(n, v as u64), progress))
            .collect::<Result<Vec<_>>>()?;
        (Some(aligned), Some(mean_uniformity(&per_view)), per_view)
    };

    let (num_classes, class_alignment, uniformity_per_class) = match input.classes {
        None => (None, None, Vec::new()),
        Some(classes) => {
            classes.check_rows(n)?;
            let positive = class_alignment(labelled, classes, options.alpha, progress)?;
            let per_class = (0..classes.num_classes())
                .map(|c| {
                    let members = classes.members(c);
                    let name = classes.names()[c].clone();
                    if members.len() < 2 {
                        return Ok((name, None));
                    }
                    let rows = labelled.select(Axis(0), members);
                    let estimator = options.estimator(members.len(), c as u64);
                    let value = uniformity(rows.view(), options.t, estimator, &crate::NoProgress)?;
                    Ok((name, Some(value)))
                })
                .collect::<Result<Vec<_>>>()?;
            (Some(classes.num_classes()), Some(positive), per_class)
        }
    };

    Ok(Analysis {
        n,
        dim,
        num_classes,
        alignment,
        uniformity: mean_uniform,
        uniformity_views,
        class_alignment,
        uniformity_per_class,
    })
}

/// `(1/V) sum_v L_unif(view v)`; a sampled standard error combines as `sqrt(sum se^2) / V`.
fn mean_uniformity(per_view: &[Uniformity]) -> Uniformity {
    let v = per_view.len() as f64;
    let stderr = per_view
        .iter()
        .map(|u| u.stderr.map(|s| s * s))
        .sum::<Option<f64>>()
        .map(|s| s.sqrt() / v);
    Uniformity {
        value: per_view.iter().map(|u| u.value).sum::<f64>() / v,
        t: per_view[0].t,
        method: per_view[0].method,
        pairs: per_view[0].pairs,
        stderr,
    }
}
