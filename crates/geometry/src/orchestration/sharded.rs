//! The analysis of rows split into shards, as tasks whose results merge exactly: any engine
//! (a loop over files, Ray, Dask, Spark) runs them and merges their results in any order.
//!
//! 1. [`summarize`] each shard into a [`Summary`]: a mergeable [`State`] (second moments
//!    about a fixed shift, per-class sums), the rows of the seeded kNN queries that fall in the
//!    shard, and the shard's bottom-k random keys of the uniformity sample. Merge them all
//!    ([`Summary::merge`]) and take the [`Context`] ([`Summary::context`]): the class order,
//!    the class means, the query rows, the sampled row indices.
//! 2. [`second_pass`] over each shard with the context: nearest-class-mean (and classifier)
//!    predictions, the top-k neighbours of every query among the shard's rows, and the
//!    shard's rows of the uniformity sample. Merge with [`SecondPass::merge`] (top-k of
//!    top-k is the top-k).
//! 3. Exact uniformity (N <= `max_exact`): [`uniformity_block`] for every shard pair
//!    `(a, b)`, `a <= b`, giving log-sum-exp parts of all pairs and of each class's pairs;
//!    merge with [`UniformityBlock::merge`]. Above `max_exact` the uniformity is computed on the
//!    sample at the end.
//! 4. [`finalize`] into the same [`Analysis`] as the single-pass analysis.
//!
//! Every metric equals the single-pass value up to rounding (relative 1e-12 in f64), except
//! the sampled uniformity (a sample of rows rather than of pairs) and the per-class effective
//! ranks (not computed: they need a D x D scatter per class).

use crate::error::{GeometryError, Result};
use crate::kernels::logsumexp::UniformityPart;
use crate::kernels::merge::{decode, encode, Merge};
use crate::kernels::rows::all_unit_norm;
use crate::kernels::sampling::stratified_rows;
use crate::kernels::timings::Timings;
use crate::metrics::alignment::Alignment;
use crate::metrics::collapse::{collapse_from_stats, predictions, Classifier, Collapse};
use crate::metrics::knn::{check_options, top_neighbours, vote, KnnAccuracy, References, TopK};
use crate::metrics::lidar::class_scatter;
use crate::metrics::partition_isotropy::{
    add_log_sums, moment_eigen, of_log_sums, projection_log_sums,
};
use crate::metrics::real::Real;
use crate::metrics::spectrum::UncentredMoment;
use crate::metrics::state::{LabelKey, State};
use crate::metrics::stats::ClassStats;
use crate::metrics::uniformity::{uniformity_part, Method, Uniformity};
use crate::orchestration::analysis::{
    add_neighbour_metrics, Analysis, AnalysisOptions, ClassResults, Queries, MLE_NEIGHBOURS,
};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Version of the serialised task results; results of another version are refused.
pub const SHARDED_VERSION: u32 = 4;

/// Rows in the seeded sample of the sampled uniformity (all pairs among them: about 5 * 10^7).
pub const DEFAULT_SAMPLE_ROWS: usize = 10_000;

/// Groups of the delete-a-group jackknife of the sampled uniformity's standard error.
const JACKKNIFE_GROUPS: usize = 16;

/// The serialisable parameters of a sharded analysis (the subset of [`AnalysisOptions`] that
/// applies, and the sample size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardOptions {
    /// Alignment exponent; label-positive alignment merges for alpha = 2 only.
    pub alpha: f64,
    /// Uniformity parameter t.
    pub t: f64,
    /// Largest N whose uniformity is exact (over shard pairs).
    pub max_exact: usize,
    /// Sample the uniformity whatever N (`--pairs` was given).
    pub force_sample: bool,
    /// Rows of the uniformity sample.
    pub sample_rows: usize,
    /// Seed of the sample.
    pub seed: u64,
    /// Gram tile side.
    pub tile: usize,
    /// kNN neighbours, temperature, query cap and seed.
    pub knn_k: usize,
    pub knn_temperature: f64,
    pub knn_queries: usize,
    pub knn_seed: u64,
    /// Compute uniformity, and kNN accuracy.
    pub uniformity: bool,
    pub knn: bool,
    /// The shrinkage of IsoScore*.
    #[serde(default = "default_isoscore_zeta")]
    pub isoscore_zeta: f64,
}

/// IsoScore*'s default shrinkage, for plans written before it was an option.
fn default_isoscore_zeta() -> f64 {
    crate::metrics::spectrum::DEFAULT_ISOSCORE_ZETA
}

impl ShardOptions {
    /// The options of a sharded analysis from those of a single-pass one.
    pub fn of(options: &AnalysisOptions, sample_rows: usize) -> Result<ShardOptions> {
        options.validate()?;
        if sample_rows < 2 {
            return Err(GeometryError::InvalidParameter {
                name: "sample-rows",
                value: sample_rows as f64,
                reason: "must be at least 2",
            });
        }
        Ok(ShardOptions {
            alpha: options.alpha,
            t: options.t,
            max_exact: options.max_exact,
            force_sample: options.pairs.is_some(),
            sample_rows,
            seed: options.seed,
            tile: options.tile,
            knn_k: options.knn.k,
            knn_temperature: options.knn.temperature,
            knn_queries: options.knn.max_queries,
            knn_seed: options.knn.seed,
            uniformity: options.parts.uniformity,
            knn: options.parts.knn,
            isoscore_zeta: options.isoscore_zeta,
        })
    }
}

/// What every task needs: the rows per shard (in order) and the options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// Rows of each shard.
    pub rows: Vec<u64>,
    /// The options.
    pub options: ShardOptions,
}

impl ShardPlan {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.rows.iter().sum()
    }

    /// Global index of the first row of `shard`.
    pub fn offset(&self, shard: usize) -> u64 {
        self.rows[..shard.min(self.rows.len())].iter().sum()
    }

    /// Uniformity over every pair (shard-pair blocks) rather than over a sample.
    pub fn exact(&self) -> bool {
        !self.options.force_sample && self.total() <= self.options.max_exact as u64
    }

    /// The shard pairs `(a, b)`, `a <= b`, of the exact uniformity (none when it is sampled
    /// or not asked for).
    pub fn blocks(&self) -> Vec<(usize, usize)> {
        if !(self.options.uniformity && self.exact()) {
            return Vec::new();
        }
        let s = self.rows.len();
        (0..s).flat_map(|a| (a..s).map(move |b| (a, b))).collect()
    }

    /// Neighbours searched for every kNN query: the kNN's k or the intrinsic dimension's, the
    /// larger, at most the other rows.
    pub fn neighbours(&self) -> usize {
        self.options
            .knn_k
            .max(MLE_NEIGHBOURS)
            .min(self.total().saturating_sub(1) as usize)
            .max(1)
    }

    /// Global indices of the kNN queries: the same seeded subset as the single-pass analysis.
    pub fn queries(&self) -> Vec<u64> {
        if !self.options.knn {
            return Vec::new();
        }
        let n = self.total() as usize;
        stratified_rows(n, None, self.options.knn_queries, self.options.knn_seed)
            .into_iter()
            .map(|i| i as u64)
            .collect()
    }

    fn check_shard(&self, shard: usize, rows: usize) -> Result<()> {
        match self.rows.get(shard) {
            Some(&expected) if expected == rows as u64 => Ok(()),
            Some(&expected) => Err(GeometryError::ShapeMismatch {
                what: format!("shard {shard} has {rows} rows, the plan says {expected}"),
            }),
            None => Err(GeometryError::ShapeMismatch {
                what: format!("shard {shard} of a plan of {} shards", self.rows.len()),
            }),
        }
    }

    /// The plan as bytes (versioned).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(b"EMBGPLAN", SHARDED_VERSION, self)
    }

    /// A plan from [`ShardPlan::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ShardPlan> {
        decode(bytes, b"EMBGPLAN", SHARDED_VERSION, "an embgeom shard plan")
    }
}

/// `splitmix64` of the seed and a row index: the row's random key in the uniformity sample.
fn row_key(seed: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0xd1b5_4a32_d192_ed03)
        .wrapping_add(index)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `k` smallest `(key, index)` of `a` and `b` (both sorted), sorted.
fn bottom_k(a: &[(u64, u64)], b: &[(u64, u64)], k: usize) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all.truncate(k);
    all
}

/// A row carried between tasks: its global index, values (f64, exact for f32 rows) and label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CarriedRow {
    index: u64,
    values: Vec<f64>,
    label: Option<LabelKey>,
}

/// The rows a shard contributes whose global index is in `wanted` (sorted).
fn carried_rows<F: Real>(
    unit: ArrayView2<F>,
    offset: u64,
    labels: Option<&[LabelKey]>,
    wanted: &[u64],
) -> Vec<CarriedRow> {
    let end = offset + unit.nrows() as u64;
    let from = wanted.partition_point(|&i| i < offset);
    let to = wanted.partition_point(|&i| i < end);
    wanted[from..to]
        .iter()
        .map(|&index| {
            let local = (index - offset) as usize;
            CarriedRow {
                index,
                values: unit.row(local).iter().map(|v| v.as_f64()).collect(),
                label: labels.map(|l| l[local].clone()),
            }
        })
        .collect()
}

/// The first pass over one shard (mergeable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    state: State,
    /// Bottom-k `(key, index)` of the uniformity sample, sorted.
    keys: Vec<(u64, u64)>,
    /// The kNN query rows found so far, by global index.
    queries: Vec<CarriedRow>,
    /// Shards summarised.
    shards: u64,
    /// Rows kept in the uniformity sample (the bottom-k keys), from the plan.
    sample_rows: usize,
    /// Whether every shard's rows are f32 (or narrower): the partition isotropy's directions
    /// are then computed in f32, as the single-pass analysis does.
    single: bool,
}

/// Summarise shard `shard` of `plan`: `unit` are the rows the sphere metrics use (normalised
/// unless the analysis does not normalise), `raw` the rows before normalisation.
pub fn summarize<F: Real>(
    plan: &ShardPlan,
    shard: usize,
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
    labels: Option<&[LabelKey]>,
) -> Result<Summary> {
    plan.check_shard(shard, unit.nrows())?;
    let mut state = State::new(unit.ncols());
    state.update_prepared(unit, raw, labels)?;
    let offset = plan.offset(shard);
    let keys = match plan.options.uniformity && !plan.exact() {
        true => {
            let mut keys: Vec<(u64, u64)> = (0..unit.nrows() as u64)
                .map(|i| (row_key(plan.options.seed, offset + i), offset + i))
                .collect();
            keys.sort_unstable();
            keys.truncate(plan.options.sample_rows);
            keys
        }
        false => Vec::new(),
    };
    Ok(Summary {
        state,
        keys,
        queries: carried_rows(unit, offset, labels, &plan.queries()),
        shards: 1,
        sample_rows: plan.options.sample_rows,
        single: std::mem::size_of::<F>() == 4,
    })
}

impl Summary {
    /// The merged state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// What the second pass needs, from the summary of every shard; `classifier` (C x D, with
    /// an optional bias) adds NC2 (classifier), NC3 and NC4.
    pub fn context(&self, plan: &ShardPlan, classifier: Option<&Classifier>) -> Result<Context> {
        if self.shards != plan.rows.len() as u64 || self.state.rows() != plan.total() {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "the summary covers {} shards and {} rows, the plan {} shards and {} rows",
                    self.shards,
                    self.state.rows(),
                    plan.rows.len(),
                    plan.total()
                ),
            });
        }
        let classes = self.state.class_keys();
        let dim = self.state.dim();
        let means = match self.state.class_stats() {
            Some((_, stats)) => stats.means,
            None => Array2::zeros((0, dim)),
        };
        if let Some(w) = classifier {
            let c = classes.len();
            if w.weights.dim() != (c, dim) || w.bias.as_ref().is_some_and(|b| b.len() != c) {
                return Err(GeometryError::ShapeMismatch {
                    what: format!(
                        "classifier weights of shape {:?} for C = {c} classes of D = {dim}",
                        w.weights.dim()
                    ),
                });
            }
        }
        let index: HashMap<&LabelKey, u32> = classes
            .iter()
            .enumerate()
            .map(|(i, k)| (k, i as u32))
            .collect();
        let query_labels = self
            .queries
            .iter()
            .map(|q| q.label.as_ref().and_then(|l| index.get(l).copied()))
            .collect::<Option<Vec<u32>>>()
            .unwrap_or_default();
        let mut sample: Vec<u64> = self.keys.iter().map(|&(_, i)| i).collect();
        sample.sort_unstable();
        Ok(Context {
            dim,
            classes,
            means: means.iter().copied().collect(),
            classifier: classifier.map(|w| {
                (
                    w.weights.iter().copied().collect(),
                    w.bias.as_ref().map(|b| b.to_vec()),
                )
            }),
            query_index: self.queries.iter().map(|q| q.index).collect(),
            query_rows: self
                .queries
                .iter()
                .flat_map(|q| q.values.iter().copied())
                .collect(),
            query_labels,
            sample,
            directions: self.directions()?,
        })
    }

    /// The eigenvectors (D x D, row-major) of the merged `U^T U` of the normalised rows:
    /// the directions of the partition isotropy.
    fn directions(&self) -> Result<Vec<f64>> {
        let dim = self.state.dim();
        let moment = UncentredMoment::Scatter(self.state.unit_uncentred());
        let eigen = moment_eigen(&moment, dim, self.single)?;
        Ok(eigen.vectors.iter().copied().collect())
    }
}

impl Merge for Summary {
    const MAGIC: [u8; 8] = *b"EMBGSUMM";
    const VERSION: u32 = SHARDED_VERSION;
    const WHAT: &'static str = "an embgeom shard summary";

    /// Merge another shard's (or merged) summary into this one.
    fn merge(&mut self, other: &Summary) -> Result<()> {
        self.state.merge(&other.state)?;
        self.keys = bottom_k(&self.keys, &other.keys, self.sample_rows);
        self.queries.extend(other.queries.iter().cloned());
        self.queries.sort_by_key(|q| q.index);
        self.shards += other.shards;
        self.single &= other.single;
        Ok(())
    }
}

/// What the second pass and the uniformity blocks need from the first pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    dim: usize,
    /// The classes in class order (empty without labels).
    classes: Vec<LabelKey>,
    /// Raw class means, C x D row-major.
    means: Vec<f64>,
    /// Classifier weights (C x D) and bias.
    classifier: Option<(Vec<f64>, Option<Vec<f64>>)>,
    query_index: Vec<u64>,
    /// Query rows, Q x D row-major.
    query_rows: Vec<f64>,
    /// Query classes (empty without labels).
    query_labels: Vec<u32>,
    /// Global indices of the uniformity sample, sorted.
    sample: Vec<u64>,
    /// The partition isotropy's directions: eigenvectors of `U^T U`, D x D row-major.
    directions: Vec<f64>,
}

impl Context {
    /// The context as bytes (versioned).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(b"EMBGCTXT", SHARDED_VERSION, self)
    }

    /// A context from [`Context::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Context> {
        decode(
            bytes,
            b"EMBGCTXT",
            SHARDED_VERSION,
            "an embgeom shard context",
        )
    }

    /// Class indices of `labels` in the context's class order; a label the first pass did
    /// not see is an error.
    pub fn class_indices(&self, labels: &[LabelKey]) -> Result<Vec<u32>> {
        let index: HashMap<&LabelKey, u32> = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, k)| (k, i as u32))
            .collect();
        labels
            .iter()
            .enumerate()
            .map(|(row, l)| {
                index.get(l).copied().ok_or_else(|| GeometryError::Labels {
                    what: format!("row {row}: label {l} was not seen by the first pass"),
                })
            })
            .collect()
    }

    /// C (0 without labels).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Class indices of a shard's labels for [`uniformity_block`] (empty without labels).
    pub fn shard_classes(&self, labels: Option<&[LabelKey]>) -> Result<Vec<u32>> {
        match labels {
            Some(labels) if !self.classes.is_empty() => self.class_indices(labels),
            _ => Ok(Vec::new()),
        }
    }

    fn means(&self) -> Array2<f64> {
        let c = self.classes.len();
        Array2::from_shape_vec((c, self.dim), self.means.clone())
            .unwrap_or_else(|_| Array2::zeros((c, self.dim)))
    }

    fn classifier(&self) -> Option<Classifier> {
        self.classifier.as_ref().map(|(w, b)| Classifier {
            weights: Array2::from_shape_vec((self.classes.len(), self.dim), w.clone())
                .unwrap_or_else(|_| Array2::zeros((self.classes.len(), self.dim))),
            bias: b.as_ref().map(|b| Array1::from(b.clone())),
        })
    }
}

/// The second pass over one shard (mergeable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondPass {
    /// Rows whose nearest class mean is their class.
    ncc_correct: u64,
    /// Rows whose classifier prediction differs from the nearest class mean.
    nc4_disagree: u64,
    /// Top-k neighbours of every query (empty without kNN).
    tops: Vec<TopK>,
    /// Whether some shard's rows searched are not unit rows (no intrinsic dimension then).
    off_sphere: bool,
    /// The shard's rows of the uniformity sample.
    sample: Vec<CarriedRow>,
    /// Per shard, `(log Z(v_k), log Z(-v_k))` over its rows for the context's directions
    /// (added in shard order at the end, so the result does not depend on the merge order).
    partition: BTreeMap<usize, Vec<(f64, f64)>>,
}

impl Merge for SecondPass {
    const MAGIC: [u8; 8] = *b"EMBGPAS2";
    const VERSION: u32 = SHARDED_VERSION;
    const WHAT: &'static str = "an embgeom second pass";

    /// Merge another shard's (or merged) second pass into this one.
    fn merge(&mut self, other: &SecondPass) -> Result<()> {
        if self.tops.len() != other.tops.len() {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "second passes of {} and {} queries",
                    self.tops.len(),
                    other.tops.len()
                ),
            });
        }
        self.ncc_correct += other.ncc_correct;
        self.nc4_disagree += other.nc4_disagree;
        self.off_sphere |= other.off_sphere;
        for (mine, theirs) in self.tops.iter_mut().zip(&other.tops) {
            mine.merge(theirs);
        }
        self.sample.extend(other.sample.iter().cloned());
        self.sample.sort_by_key(|r| r.index);
        for (shard, sums) in &other.partition {
            self.partition.insert(*shard, sums.clone());
        }
        Ok(())
    }
}

/// A matrix of `rows` rows from row-major f64 values, in the element type.
fn typed_rows<F: Real>(values: &[f64], dim: usize) -> Array2<F> {
    let rows = values.len() / dim.max(1);
    Array2::from_shape_fn((rows, dim), |(i, j)| F::from_f64(values[i * dim + j]))
}

/// The second pass over shard `shard` (the rows and labels given to [`summarize`]).
pub fn second_pass<F: Real>(
    plan: &ShardPlan,
    context: &Context,
    shard: usize,
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
    labels: Option<&[LabelKey]>,
) -> Result<SecondPass> {
    plan.check_shard(shard, unit.nrows())?;
    let offset = plan.offset(shard);
    let mut out = SecondPass {
        ncc_correct: 0,
        nc4_disagree: 0,
        tops: Vec::new(),
        off_sphere: false,
        sample: carried_rows(unit, offset, labels, &context.sample),
        partition: BTreeMap::from([(shard, partition_log_sums(unit, context))]),
    };
    let classes = match (labels, context.classes.is_empty()) {
        (Some(labels), false) => Some(context.class_indices(labels)?),
        _ => None,
    };
    // The queries' neighbours: for the kNN accuracy (with labels) and the intrinsic dimension.
    if plan.options.knn && !context.query_index.is_empty() {
        let queries = typed_rows::<F>(&context.query_rows, context.dim);
        let index = |j: usize| offset + j as u64;
        let label = |j: usize| classes.as_ref().map_or(0, |classes| classes[j]);
        let position = |i: u64| {
            i.checked_sub(offset)
                .map(|j| j as usize)
                .filter(|&j| j < unit.nrows())
        };
        out.tops = top_neighbours(
            queries.view(),
            &context.query_index,
            &References {
                rows: unit,
                index: &index,
                label: &label,
                position: &position,
            },
            plan.neighbours(),
        );
        out.off_sphere = !all_unit_norm(unit);
    }
    let Some(classes) = classes else {
        return Ok(out);
    };
    let classifier = context.classifier();
    let (nearest, predicted) = predictions(raw, &context.means(), classifier.as_ref());
    out.ncc_correct = nearest.iter().zip(&classes).filter(|(a, b)| a == b).count() as u64;
    if let Some(predicted) = predicted {
        out.nc4_disagree = predicted
            .iter()
            .zip(&nearest)
            .filter(|(a, b)| a != b)
            .count() as u64;
    }
    Ok(out)
}

/// A shard's `(log Z(v), log Z(-v))` for the context's directions.
fn partition_log_sums<F: Real>(unit: ArrayView2<F>, context: &Context) -> Vec<(f64, f64)> {
    let d = context.dim;
    let directions = Array2::from_shape_vec((d, d), context.directions.clone())
        .expect("the context's D x D directions");
    projection_log_sums(unit, &directions)
}

/// Log-sum-exp parts of the uniformity over some pairs: of all of them, and of each class's
/// (in class order; empty without labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UniformityBlock {
    /// All pairs of the block.
    pub all: UniformityPart,
    /// The same-class pairs of each class.
    pub classes: Vec<UniformityPart>,
}

impl Merge for UniformityBlock {
    const MAGIC: [u8; 8] = *b"EMBGUNIF";
    const VERSION: u32 = SHARDED_VERSION;
    const WHAT: &'static str = "an embgeom uniformity block";

    /// Both blocks together (exact, in any order up to rounding).
    fn merge(&mut self, other: &UniformityBlock) -> Result<()> {
        let classes = match (self.classes.is_empty(), other.classes.is_empty()) {
            (true, _) => other.classes.clone(),
            (_, true) => self.classes.clone(),
            _ => self
                .classes
                .iter()
                .zip(&other.classes)
                .map(|(a, b)| a.merge(*b))
                .collect(),
        };
        *self = UniformityBlock {
            all: self.all.merge(other.all),
            classes,
        };
        Ok(())
    }
}

/// Rows with their class indices (empty without labels).
pub struct LabelledRows<'a, F> {
    /// The unit rows.
    pub rows: ArrayView2<'a, F>,
    /// Class index of each row, or empty.
    pub classes: &'a [u32],
}

/// The uniformity block of the pairs within `a` (`b = None`) or between `a` and `b`, overall
/// and within each of `num_classes` classes.
pub fn uniformity_block<F: Real>(
    t: f64,
    tile: usize,
    num_classes: usize,
    a: &LabelledRows<F>,
    b: Option<&LabelledRows<F>>,
) -> Result<UniformityBlock> {
    let all = uniformity_part(a.rows, b.map(|b| b.rows), t, tile)?;
    let members = |rows: &LabelledRows<F>| {
        let mut out = vec![Vec::new(); num_classes];
        for (i, &c) in rows.classes.iter().enumerate() {
            out[c as usize].push(i);
        }
        out
    };
    let labelled = !a.classes.is_empty() && b.is_none_or(|b| !b.classes.is_empty());
    let classes = match labelled {
        false => Vec::new(),
        true => {
            let (in_a, in_b) = (members(a), b.map(members));
            (0..num_classes)
                .into_par_iter()
                .map(|c| {
                    let rows_a = a.rows.select(Axis(0), &in_a[c]);
                    match (b, &in_b) {
                        (Some(b), Some(in_b)) => {
                            if in_a[c].is_empty() || in_b[c].is_empty() {
                                return Ok(UniformityPart::EMPTY);
                            }
                            let rows_b = b.rows.select(Axis(0), &in_b[c]);
                            uniformity_part(rows_a.view(), Some(rows_b.view()), t, tile)
                        }
                        _ if in_a[c].len() < 2 => Ok(UniformityPart::EMPTY),
                        _ => uniformity_part(rows_a.view(), None, t, tile),
                    }
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(UniformityBlock { all, classes })
}

fn uniformity_value(
    part: &UniformityPart,
    t: f64,
    method: Method,
    stderr: Option<f64>,
) -> Option<Uniformity> {
    part.value().map(|value| Uniformity {
        value,
        t,
        method,
        pairs: part.pairs,
        stderr,
    })
}

/// Uniformity (overall and per class) of the sample rows: every pair among them, in
/// [`JACKKNIFE_GROUPS`] groups (by key rank) whose pair blocks also give a delete-a-group
/// jackknife standard error, `se^2 = (G-1)/G sum_g (L_{-g} - mean L_{-g})^2`.
fn sample_uniformity<F: Real>(
    plan: &ShardPlan,
    context: &Context,
    sample: &[CarriedRow],
) -> Result<(Option<Uniformity>, Vec<Option<Uniformity>>)> {
    let t = plan.options.t;
    let c = context.num_classes();
    let mut ranked: Vec<(u64, &CarriedRow)> = sample
        .iter()
        .map(|r| (row_key(plan.options.seed, r.index), r))
        .collect();
    ranked.sort_by_key(|&(key, r)| (key, r.index));
    let g = JACKKNIFE_GROUPS.min(ranked.len()).max(1);
    let groups: Vec<(Array2<F>, Vec<u32>)> = (0..g)
        .map(|group| {
            let members: Vec<&CarriedRow> = ranked
                .iter()
                .skip(group)
                .step_by(g)
                .map(|&(_, r)| r)
                .collect();
            let values: Vec<f64> = members
                .iter()
                .flat_map(|r| r.values.iter().copied())
                .collect();
            let labels: Vec<LabelKey> = members.iter().filter_map(|r| r.label.clone()).collect();
            let classes = match labels.len() == members.len() && c > 0 {
                true => context.class_indices(&labels)?,
                false => Vec::new(),
            };
            Ok((typed_rows::<F>(&values, context.dim), classes))
        })
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<LabelledRows<F>> = groups
        .iter()
        .map(|(rows, classes)| LabelledRows {
            rows: rows.view(),
            classes,
        })
        .collect();
    let mut blocks = Vec::new();
    for i in 0..g {
        for j in i..g {
            let other = (j > i).then(|| &rows[j]);
            blocks.push((
                (i, j),
                uniformity_block(t, plan.options.tile, c, &rows[i], other)?,
            ));
        }
    }
    let merge = |skip: Option<usize>| -> Result<Option<UniformityBlock>> {
        let mut merged: Option<UniformityBlock> = None;
        let kept = blocks
            .iter()
            .filter(|((i, j), _)| skip.is_none_or(|s| *i != s && *j != s));
        for (_, block) in kept {
            match merged.as_mut() {
                None => merged = Some(block.clone()),
                Some(all) => all.merge(block)?,
            }
        }
        Ok(merged)
    };
    let Some(total) = merge(None)? else {
        return Ok((None, vec![None; c]));
    };
    let leave_out: Vec<UniformityBlock> = (0..g)
        .map(|s| merge(Some(s)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let jackknife = |values: Vec<Option<f64>>| -> Option<f64> {
        let values: Vec<f64> = values.into_iter().collect::<Option<Vec<f64>>>()?;
        if values.len() < 2 {
            return None;
        }
        let k = values.len() as f64;
        let mean = values.iter().sum::<f64>() / k;
        Some(((k - 1.0) / k * values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()).sqrt())
    };
    let stderr = jackknife(leave_out.iter().map(|b| b.all.value()).collect());
    let overall = uniformity_value(&total.all, t, Method::SampledRows, stderr);
    let per_class = (0..total.classes.len().max(c))
        .map(|k| {
            let part = total.classes.get(k)?;
            let stderr = jackknife(
                leave_out
                    .iter()
                    .map(|b| b.classes.get(k).and_then(UniformityPart::value))
                    .collect(),
            );
            uniformity_value(part, t, Method::SampledRows, stderr)
        })
        .collect();
    Ok((overall, per_class))
}

/// Label-positive alignment (alpha = 2) from a state's class sums, with its same-class pair
/// count; `None`, with a warning, when no class has two rows.
fn state_class_alignment(
    state: &State,
    stats: &ClassStats,
    warnings: &mut Vec<String>,
) -> Option<Alignment> {
    let value = state.class_alignment();
    if value.is_none() {
        warnings.push("label-positive alignment needs a class with at least two rows".into());
    }
    value.map(|value| Alignment {
        value,
        alpha: 2.0,
        pairs: stats
            .counts
            .iter()
            .map(|&n| (n as u64) * (n as u64).saturating_sub(1) / 2)
            .sum(),
    })
}

/// The LDA rank of a state's classes, from its `U^T U` and class means of the normalised rows.
fn add_state_lda_rank(analysis: &mut Analysis, state: &State, stats: &ClassStats) {
    let scatter = class_scatter(
        &state.unit_uncentred(),
        &state.unit_class_means(),
        &stats.counts,
        state.dim(),
    );
    analysis.add_lda_rank(scatter, stats.counts.len(), &Timings::default());
}

/// The analysis of what a mergeable [`State`] holds, without reading the rows again: the
/// spectrum and, with labels, label-positive alignment (alpha = 2), NC1-NC2, the ETF distance,
/// CDNV, the simplex angles and the per-class table (counts, within-class variances, vertex
/// distances). Uniformity, kNN and nearest-class-mean accuracy, and per-class effective ranks
/// need the rows: they are absent.
pub fn state_analysis(state: &State) -> Result<Analysis> {
    let mut analysis = Analysis::of_spectrum(state.rows() as usize, state.dim(), state.spectrum()?);
    let Some((names, stats)) = state.class_stats() else {
        return Ok(analysis);
    };
    analysis.class_alignment = state_class_alignment(state, &stats, &mut analysis.warnings);
    let collapse = collapse_from_stats(Collapse::default(), &stats, &names, None)?;
    analysis.add_classes(
        ClassResults {
            names: &names,
            stats: &stats,
            collapse,
            simplex_means: state.unit_class_means(),
            labelled_squares: state.unit_class_squares(),
            uniformity_per_class: vec![None; names.len()],
            knn: None,
        },
        &Timings::default(),
    );
    add_state_lda_rank(&mut analysis, state, &stats);
    Ok(analysis)
}

/// The analysis of all shards from the merged first pass, second pass and (exact mode)
/// uniformity blocks: the same [`Analysis`] as the single-pass analysis of the concatenated
/// rows. Rows stored as f32 (or narrower) compute in f32 like the single pass (`F`).
pub fn finalize<F: Real>(
    plan: &ShardPlan,
    summary: &Summary,
    context: &Context,
    second: &SecondPass,
    blocks: Option<&UniformityBlock>,
) -> Result<Analysis> {
    let state = &summary.state;
    let n = plan.total();
    let t = plan.options.t;
    let (uniformity, per_class_uniformity) = match (plan.options.uniformity, plan.exact()) {
        (false, _) => (None, Vec::new()),
        (true, true) => {
            let block = blocks.ok_or(GeometryError::TooFewRows {
                metric: "exact uniformity (no shard-pair block was given)",
                needed: 1,
                got: 0,
            })?;
            (
                uniformity_value(&block.all, t, Method::Exact, None),
                block
                    .classes
                    .iter()
                    .map(|p| uniformity_value(p, t, Method::Exact, None))
                    .collect(),
            )
        }
        (true, false) => sample_uniformity::<F>(plan, context, &second.sample)?,
    };
    let mut analysis = Analysis {
        uniformity,
        isoscore_zeta: plan.options.isoscore_zeta,
        ..Analysis::of_spectrum(n as usize, state.dim(), state.spectrum()?)
    };
    if let Some(first) = second.partition.values().next() {
        let mut sums = vec![(f64::NEG_INFINITY, f64::NEG_INFINITY); first.len()];
        for part in second.partition.values() {
            add_log_sums(&mut sums, part);
        }
        analysis.partition_isotropy = Some(of_log_sums(&sums, state.dim()));
    }
    if let Some(u) = analysis
        .uniformity
        .as_ref()
        .filter(|u| u.method == Method::SampledRows)
    {
        analysis.warnings.push(format!(
            "uniformity is sampled: every pair among a seeded sample of {} of {n} rows (above --max-exact), standard error {:.2e} (jackknife over {} groups)",
            second.sample.len(),
            u.stderr.unwrap_or(f64::NAN),
            JACKKNIFE_GROUPS.min(second.sample.len())
        ));
    }
    if plan.options.knn && !second.tops.is_empty() {
        // Every carried query row, when they are a subsample of the rows.
        let subsample = context.query_index.len() < n as usize;
        let query_rows = subsample.then(|| typed_rows::<F>(&context.query_rows, context.dim));
        let positions: Vec<usize> = (0..context.query_index.len()).collect();
        let queries = Queries {
            rows: query_rows
                .as_ref()
                .map(|rows| (rows.view(), &positions[..])),
            index: &context.query_index,
            labels: (!context.classes.is_empty()
                && context.query_labels.len() == context.query_index.len())
            .then(|| context.query_labels.clone()),
            positives: None,
        };
        let searched = (&second.tops[..], plan.neighbours());
        let on_sphere = !second.off_sphere;
        add_neighbour_metrics(
            &mut analysis,
            searched,
            queries,
            on_sphere,
            &Timings::default(),
        )?;
    }
    let Some((names, stats)) = state.class_stats() else {
        return Ok(analysis);
    };
    let c = names.len();
    analysis.class_alignment = match plan.options.alpha == 2.0 {
        true => state_class_alignment(state, &stats, &mut analysis.warnings),
        false => {
            analysis.warnings.push(format!(
                "label-positive alignment of a sharded dataset merges for alpha = 2 only (alpha = {} was asked)",
                plan.options.alpha
            ));
            None
        }
    };
    let classifier = context.classifier();
    let collapsed = collapse_from_stats(
        Collapse {
            ncc_accuracy: Some(second.ncc_correct as f64 / n as f64),
            nc4: classifier
                .as_ref()
                .map(|_| second.nc4_disagree as f64 / n as f64),
            ..Collapse::default()
        },
        &stats,
        &names,
        classifier.as_ref(),
    )?;
    let knn = match plan.options.knn && !second.tops.is_empty() {
        false => None,
        true => {
            check_options(&crate::metrics::knn::KnnOptions {
                k: plan.options.knn_k,
                temperature: plan.options.knn_temperature,
                max_queries: plan.options.knn_queries,
                seed: plan.options.knn_seed,
            })?;
            let k = plan.options.knn_k.min(n.saturating_sub(1) as usize).max(1);
            let correct = second
                .tops
                .iter()
                .zip(&context.query_labels)
                .filter(|(top, &label)| vote(top, k, c, plan.options.knn_temperature) == label)
                .count();
            let queries = second.tops.len();
            Some(KnnAccuracy {
                value: correct as f64 / queries as f64,
                k,
                temperature: plan.options.knn_temperature,
                queries,
                candidates: n as usize,
                split: "leave-one-out".into(),
            })
        }
    };
    analysis.add_classes(
        ClassResults {
            names: &names,
            stats: &stats,
            collapse: collapsed,
            simplex_means: state.unit_class_means(),
            labelled_squares: state.unit_class_squares(),
            uniformity_per_class: (0..c)
                .map(|k| per_class_uniformity.get(k).cloned().flatten())
                .collect(),
            knn,
        },
        &Timings::default(),
    );
    add_state_lda_rank(&mut analysis, state, &stats);
    analysis
        .warnings
        .push("per-class effective ranks are not computed for sharded datasets (they need a D x D scatter per class)".into());
    Ok(analysis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottom_k_keeps_the_smallest_keys_whatever_the_split() {
        let keys: Vec<(u64, u64)> = (0..1000).map(|i| (row_key(7, i), i)).collect();
        let mut whole = keys.clone();
        whole.sort_unstable();
        whole.truncate(50);
        let mut left = keys[..300].to_vec();
        left.sort_unstable();
        left.truncate(50);
        let mut right = keys[300..].to_vec();
        right.sort_unstable();
        right.truncate(50);
        assert_eq!(bottom_k(&right, &left, 50), whole);
        assert_ne!(row_key(7, 1), row_key(8, 1));
    }
}
