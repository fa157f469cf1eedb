//! The `analyze` pipeline: which metrics apply to which inputs, and which estimator each uses.

use crate::error::{GeometryError, MemoryDriver, Result};
use crate::kernels::classes::{ClassSums, Classes};
use crate::kernels::rows::all_unit_norm;
use crate::kernels::sampling::stratified_rows;
use crate::kernels::tiles::DEFAULT_TILE;
use crate::kernels::timings::{gather_work, gemm_work, Timings, Work};
use crate::metrics::alignment::{alignment, class_alignment_with_sums, Alignment};
use crate::metrics::collapse::{collapse_timed, Classifier, Collapse};
use crate::metrics::hard_negatives::{hard_negatives, HardNegatives, HARD_NEGATIVE_K};
use crate::metrics::hubness::{
    hubness_of, k_occurrence, subsample_hubness, Hubness, HUBNESS_K, HUBNESS_SUBSAMPLE_ROWS,
};
pub(crate) use crate::metrics::intrinsic::MLE_NEIGHBOURS;
use crate::metrics::intrinsic::{intrinsic_dimension, IntrinsicDimension};
use crate::metrics::knn::{
    accuracy_of, knn_accuracy, knn_screen, neighbour_distances, query_neighbours, top_neighbours,
    KnnAccuracy, KnnOptions, KnnScreen, KnnSplit, QueryNeighbours, References, TopK,
};
use crate::metrics::lidar::{class_scatter, lidar, lidar_work, views_scatter, GroupScatter, Lidar};
use crate::metrics::partition_isotropy::{
    moment_eigen, partition_isotropy, MomentEigen, PartitionIsotropy,
};
use crate::metrics::per_class::{subclass_structure, PerClass, Subclasses};
use crate::metrics::real::Real;
use crate::metrics::simplex::{simplex_angles, vertex_distances, SimplexAngles};
use crate::metrics::spectral_loss::{spectral_loss, spectral_loss_work, SpectralLoss};
use crate::metrics::spectrum::{
    spectrum_with_moment, Spectrum, UncentredMoment, DEFAULT_ISOSCORE_ZETA,
};
use crate::metrics::stats::{class_means, class_stats_of_means, means_of_sums, ClassStats};
use crate::metrics::uniformity::{uniformity, Estimator, Uniformity, MAX_SAMPLED_PAIRS};
use crate::progress::Progress;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Pairs drawn by the sampled uniformity when N exceeds `max_exact` and no count is given.
pub const DEFAULT_SAMPLED_PAIRS: u64 = 10_000_000;

/// Largest N computed exactly by default (about 45 s at D = 128 on two cores).
pub const DEFAULT_MAX_EXACT: usize = 200_000;

/// Parameters of [`crate::analyze`].
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
    /// kNN accuracy parameters.
    pub knn: KnnOptions,
    /// Refuse an analysis whose working memory ([`memory_estimate`]) exceeds this many bytes;
    /// `None`: three quarters of the machine's memory. It changes no result.
    pub memory_limit: Option<u64>,
    /// Which of the costly parts to compute (all by default).
    pub parts: Parts,
    /// The shrinkage `zeta` in [0, 1] of IsoScore* ([`crate::metrics::spectrum::Isotropy::isoscore_star`]).
    pub isoscore_zeta: f64,
}

/// The costly parts of an analysis, each skippable when only other metrics are wanted (a
/// skipped part leaves its metrics absent and changes no other value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Uniformity: of the embeddings, of each view and within each class (O(N^2 D) exact).
    pub uniformity: bool,
    /// kNN accuracy and the subclass structure (O(N Q D)).
    pub knn: bool,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            uniformity: true,
            knn: true,
        }
    }
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
            knn: KnnOptions::default(),
            memory_limit: None,
            parts: Parts::default(),
            isoscore_zeta: DEFAULT_ISOSCORE_ZETA,
        }
    }
}

fn out_of_range(name: &'static str, value: f64, reason: &'static str) -> GeometryError {
    GeometryError::InvalidParameter {
        name,
        value,
        reason,
    }
}

/// The working memory of an analysis, estimated from its shape before any allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    /// Bytes of the C x C class-pair matrices (CDNV, mean Gram and cosines, simplex angles):
    /// about 230 C^2 as measured.
    pub class_pairs: u64,
    /// Bytes of the second-moment matrices and their eigendecompositions, whose side is
    /// `min(N, D)` (the spectrum's scatters or Gram matrices, the class statistics' blocks, Gram
    /// matrices and sums), at their largest stage.
    pub dimension_pairs: u64,
    /// Bytes of the per-row work: a few values per row, and blocks of rows x C distances to
    /// the class means per thread.
    pub rows: u64,
}

impl MemoryEstimate {
    /// Which part is largest (ties go to the classes, then the dimensions).
    pub fn driver(&self) -> MemoryDriver {
        if self.class_pairs >= self.dimension_pairs && self.class_pairs >= self.rows {
            MemoryDriver::Classes
        } else if self.dimension_pairs >= self.rows {
            MemoryDriver::Dimensions
        } else {
            MemoryDriver::Rows
        }
    }

    /// The total in bytes.
    pub fn total(&self) -> u64 {
        self.class_pairs
            .saturating_add(self.dimension_pairs)
            .saturating_add(self.rows)
    }
}

/// Working memory of [`crate::analyze`] on `n` rows of `d` dimensions in `c` classes (0 without
/// labels), beyond the input rows: C x C matrices (~230 bytes per class pair), the
/// second-moment matrices of the larger of the spectrum and the class statistics (they run one
/// after the other), and per-row work (32 bytes a row, and a block of rows x C distances per
/// thread).
///
/// The spectrum holds, with `N >= D`, about `12 + threads` D x D matrices (f64); with `N < D`,
/// its N x N Gram matrices: four, one partial sum per column stripe and an N x 256 block per
/// stripe. The class statistics hold per thread one class's centred rows (fewer than D of
/// them) and their Gram matrix, at most `min(N, D) x D + min(N, D)^2`, plus their sums: C x C
/// when the projected route is the cheaper (`2 C D + C^2 < D^2`), else D x D ones as the
/// spectrum's.
pub fn memory_estimate(n: usize, d: usize, c: usize) -> MemoryEstimate {
    let (n, d, c) = (n as u64, d as u64, c as u64);
    let threads = rayon::current_num_threads() as u64;
    let side = n.min(d);
    let square = d.saturating_mul(d).saturating_mul(8 * (12 + threads));
    let spectrum = match n < d {
        true => {
            let gram = n.saturating_mul(n).saturating_mul(8);
            let stripes = ((128u64 << 20) / gram.max(1)).clamp(1, 16);
            gram.saturating_mul(6 + stripes)
                .saturating_add(stripes.saturating_mul(n).saturating_mul(256 * 8))
        }
        false => square,
    };
    let classes = match c {
        0 => 0,
        _ => {
            let per_thread = side
                .saturating_mul(d)
                .saturating_add(side.saturating_mul(side))
                .saturating_mul(8 * threads);
            let projected = 2 * c * d + c * c < d.saturating_mul(d);
            let sums = match projected {
                true => c.saturating_mul(c).saturating_mul(8 * (16 + 2)),
                false => square,
            };
            per_thread.saturating_add(sums)
        }
    };
    MemoryEstimate {
        class_pairs: c.saturating_mul(c).saturating_mul(230),
        dimension_pairs: spectrum.max(classes),
        rows: n.saturating_mul(32).saturating_add(
            threads
                .saturating_mul(crate::kernels::tiles::ROW_CHUNK as u64)
                .saturating_mul(c.max(1))
                .saturating_mul(8),
        ),
    }
}

/// The memory of LiDAR on rows of `d` dimensions: the within and between scatters and each
/// thread's partial pair, the regularised copy, eigenvectors, inverse square root, two
/// products and reptrix's centred copy and Gram matrix, D x D f64 each.
fn lidar_bytes(d: usize) -> u64 {
    let threads = rayon::current_num_threads() as u64;
    (d as u64)
        .saturating_mul(d as u64)
        .saturating_mul(8 * (10 + 2 * threads))
}

/// Three quarters of the machine's memory (`MemTotal` of `/proc/meminfo`), if known.
pub fn default_memory_limit() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024 / 4 * 3)
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Refuse at once an analysis that would need more than the memory limit.
fn check_memory(n: usize, d: usize, c: usize, limit: Option<u64>) -> Result<()> {
    let (limit, whose) = match limit {
        Some(limit) => (limit, "--memory-limit"),
        None => match default_memory_limit() {
            Some(limit) => (limit, "3/4 of this machine's memory"),
            None => return Ok(()),
        },
    };
    let estimate = memory_estimate(n, d, c);
    if estimate.total() <= limit {
        return Ok(());
    }
    let driver = estimate.driver();
    let advice = match driver {
        MemoryDriver::Classes => {
            "the C x C class pairs are the largest part: use fewer classes (coarser labels)"
        }
        MemoryDriver::Dimensions => {
            "the second-moment matrices (side min(N, D)) are the largest part: use fewer dimensions or rows"
        }
        MemoryDriver::Rows => {
            "the per-row work is the largest part: analyse fewer rows (a sample, or shards)"
        }
    };
    Err(GeometryError::MemoryLimit {
        what: format!(
            "N = {n}, D = {d}, C = {c} needs about {} ({} for the C x C class pairs, {} for the scatters, Gram matrices and eigendecompositions, {} for the per-row work), more than the limit of {} ({whose}); {advice}, or raise --memory-limit",
            gigabytes(estimate.total()),
            gigabytes(estimate.class_pairs),
            gigabytes(estimate.dimension_pairs),
            gigabytes(estimate.rows),
            gigabytes(limit),
        ),
        driver,
    })
}

impl AnalysisOptions {
    /// Check every parameter once, before any work; the error names the parameter and its
    /// allowed range.
    ///
    /// alpha in (0, 64]; t in (0, 10^4] (beyond, `exp(-t d^2)` underflows for every pair
    /// that is not a duplicate); pairs in [2, 10^11]; max_exact >= 2; kNN k in [1, 10^5],
    /// temperature in [10^-4, 10^4], queries >= 1; tile >= 1.
    pub fn validate(&self) -> Result<()> {
        let within = |v: f64, low: f64, high: f64| v.is_finite() && v > low && v <= high;
        if !within(self.alpha, 0.0, 64.0) {
            return Err(out_of_range("alpha", self.alpha, "must be in (0, 64]"));
        }
        if !within(self.t, 0.0, 1e4) {
            return Err(out_of_range("t", self.t, "must be in (0, 10000]"));
        }
        if let Some(pairs) = self.pairs {
            if !(2..=MAX_SAMPLED_PAIRS).contains(&pairs) {
                return Err(out_of_range("pairs", pairs as f64, "must be in [2, 10^11]"));
            }
        }
        if self.max_exact < 2 {
            return Err(out_of_range(
                "max-exact",
                self.max_exact as f64,
                "must be at least 2",
            ));
        }
        if self.tile == 0 {
            return Err(out_of_range("tile", 0.0, "must be at least 1"));
        }
        let knn = &self.knn;
        if !(1..=100_000).contains(&knn.k) {
            return Err(out_of_range(
                "knn-k",
                knn.k as f64,
                "must be in [1, 100000]",
            ));
        }
        if !(knn.temperature.is_finite() && (1e-4..=1e4).contains(&knn.temperature)) {
            return Err(out_of_range(
                "knn-temperature",
                knn.temperature,
                "must be in [0.0001, 10000]",
            ));
        }
        if !(0.0..=1.0).contains(&self.isoscore_zeta) {
            return Err(out_of_range(
                "isoscore-zeta",
                self.isoscore_zeta,
                "must be in [0, 1]",
            ));
        }
        if knn.max_queries == 0 {
            return Err(out_of_range("knn-queries", 0.0, "must be at least 1"));
        }
        Ok(())
    }

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
#[derive(Default)]
pub struct AnalysisInput<'a, F> {
    /// One embedding per item (the clean view), if given.
    pub embeddings: Option<ArrayView2<'a, F>>,
    /// Row-matched views of the same items (two or more), or none.
    pub views: Vec<ArrayView2<'a, F>>,
    /// The labelled rows (the embeddings, else the first view) before L2 normalisation; `None`
    /// when they were not normalised. Class-collapse statistics and the raw spectrum use them.
    pub raw: Option<ArrayView2<'a, F>>,
    /// Class labels of the items, if given.
    pub classes: Option<&'a Classes>,
    /// A linear classifier (C x D) for NC2 (classifier), NC3 and NC4.
    pub classifier: Option<&'a Classifier>,
    /// Train/test rows for the kNN accuracy; `None` is leave-one-out.
    pub knn_split: Option<&'a KnnSplit>,
    /// Fine labels under the classes (subclasses).
    pub subclasses: Option<&'a Classes>,
}

/// Everything `analyze` measured; a metric that does not apply is `None` (never 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Items (rows per view).
    pub n: usize,
    /// Embedding dimension D.
    pub dim: usize,
    /// C, when labels are given.
    pub num_classes: Option<usize>,
    /// View alignment (needs views).
    pub alignment: Option<Alignment>,
    /// HaoChen et al.'s spectral contrastive loss over all rows (needs views).
    #[serde(default)]
    pub spectral_loss: Option<SpectralLoss>,
    /// Uniformity: of the embeddings, or the mean of the per-view values when views are given.
    pub uniformity: Option<Uniformity>,
    /// Uniformity of each view, when views are given.
    pub uniformity_views: Vec<Uniformity>,
    /// Label-positive alignment (needs labels).
    pub class_alignment: Option<Alignment>,
    /// Uniformity within each class (class name, value; `None` for a class of one row).
    pub uniformity_per_class: Vec<(String, Option<Uniformity>)>,
    /// Dimensional collapse of the labelled rows.
    pub spectrum: Spectrum,
    /// The shrinkage `zeta` of IsoScore* ([`crate::metrics::spectrum::Isotropy::isoscore_star`]).
    #[serde(default = "default_isoscore_zeta")]
    pub isoscore_zeta: f64,
    /// Mu & Viswanath's partition isotropy of the analysed rows (absent for a sharded input).
    #[serde(default)]
    pub partition_isotropy: Option<PartitionIsotropy>,
    /// LiDAR of the views (each item an object, its rows in the views its samples).
    #[serde(default)]
    pub lidar: Option<Lidar>,
    /// The same effective rank with the classes as the groups (the LDA rank).
    #[serde(default)]
    pub lda_rank: Option<Lidar>,
    /// Neural-collapse metrics (needs labels).
    pub collapse: Option<Collapse>,
    /// Graf et al.'s simplex angles (needs 2 or more classes).
    pub simplex_angles: Option<SimplexAngles>,
    /// kNN accuracy (needs labels).
    pub knn: Option<KnnAccuracy>,
    /// Intrinsic dimension from the kNN queries' neighbours (absent when the kNN part is
    /// skipped or with fewer than 3 rows).
    #[serde(default)]
    pub intrinsic_dimension: Option<IntrinsicDimension>,
    /// Hubness of the kNN graph (absent as the intrinsic dimension).
    #[serde(default)]
    pub hubness: Option<Hubness>,
    /// The kNN queries' hardest negatives (absent as the intrinsic dimension).
    #[serde(default)]
    pub hard_negatives: Option<HardNegatives>,
    /// Wang & Liu's tolerance: the mean cosine over the same-class ordered pairs `i != j` of
    /// the labelled rows (needs labels and a class of two rows).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// The per-class table (needs labels).
    pub per_class: Vec<PerClass>,
    /// Subclass structure (needs labels and subclasses).
    pub subclasses: Option<Subclasses>,
    /// What limits the meaning of the results, or why a metric is absent.
    pub warnings: Vec<String>,
}

impl Analysis {
    /// An analysis of `n` rows of `dim` dimensions holding only their spectrum; every other
    /// metric absent (with a warning when the pseudo-condition number is undefined).
    pub fn of_spectrum(n: usize, dim: usize, spectrum: Spectrum) -> Analysis {
        let warnings = match spectrum.isotropy.pseudo_condition_number {
            None if n >= 2 => vec![format!(
                "pseudo-condition number: the centred raw rows are rank deficient (the smallest of their min(N - 1, D) = {} singular values is at round-off), so it is undefined",
                (n - 1).min(dim)
            )],
            _ => Vec::new(),
        };
        Analysis {
            n,
            dim,
            num_classes: None,
            alignment: None,
            spectral_loss: None,
            uniformity: None,
            uniformity_views: Vec::new(),
            class_alignment: None,
            uniformity_per_class: Vec::new(),
            spectrum,
            isoscore_zeta: DEFAULT_ISOSCORE_ZETA,
            partition_isotropy: None,
            lidar: None,
            lda_rank: None,
            collapse: None,
            simplex_angles: None,
            knn: None,
            intrinsic_dimension: None,
            hubness: None,
            hard_negatives: None,
            tolerance: None,
            per_class: Vec::new(),
            subclasses: None,
            warnings,
        }
    }
}

/// [`DEFAULT_ISOSCORE_ZETA`], for analyses saved before IsoScore* was added.
fn default_isoscore_zeta() -> f64 {
    DEFAULT_ISOSCORE_ZETA
}

/// The work of the uniformity of `n` rows of `d` dimensions with `estimator`: the half Gram
/// matrix when exact; when sampled, the two rows each pair reads.
fn uniformity_work<F: Real>(n: usize, d: usize, estimator: Estimator) -> Work {
    match estimator {
        Estimator::Exact { .. } => gemm_work::<F>(n as f64 * (n as f64 - 1.0) / 2.0, 1.0, d as f64),
        Estimator::Sampled { pairs, .. } => {
            gather_work::<F>(2.0 * pairs as f64, d as f64, 2.0 * pairs as f64 * d as f64)
        }
    }
}

/// [`crate::orchestration::entry::analyze_timed`] before its check that every value is
/// finite.
pub(crate) fn analyze_unchecked<F: Real>(
    input: &AnalysisInput<F>,
    options: &AnalysisOptions,
    progress: &dyn Progress,
    timings: &Timings,
) -> Result<Analysis> {
    options.validate()?;
    let labelled = input.embeddings.or_else(|| input.views.first().copied());
    let Some(labelled) = labelled else {
        return Err(GeometryError::TooFewRows {
            metric: "analysis (no embeddings and no views)",
            needed: 1,
            got: 0,
        });
    };
    let (n, dim) = labelled.dim();
    check_memory(
        n,
        dim,
        input.classes.map_or(0, Classes::num_classes),
        options.memory_limit,
    )?;
    if let Some(view) = input.views.iter().find(|v| v.dim() != (n, dim)) {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "views have shape {:?} but the embeddings have shape {:?}",
                view.dim(),
                (n, dim)
            ),
        });
    }

    let with_uniformity = options.parts.uniformity;
    let element = std::mem::size_of::<F>() as f64;
    let timed_uniformity = |rows: ArrayView2<F>, stream: u64| {
        let estimator = options.estimator(n, stream);
        timings.time(
            "uniformity",
            uniformity_work::<F>(n, dim, estimator),
            || uniformity(rows, options.t, estimator, progress),
        )
    };
    let mut spectral = None;
    let (alignment, mean_uniform, uniformity_views) = if input.views.is_empty() {
        let value = with_uniformity
            .then(|| timed_uniformity(labelled, 0))
            .transpose()?;
        (None, value, Vec::new())
    } else {
        let bytes = (input.views.len() * n * dim) as f64 * element;
        let aligned = timings.time("alignment", Work::Bytes(bytes), || {
            alignment(&input.views, options.alpha)
        })?;
        let work = spectral_loss_work(input.views.len(), n, dim);
        spectral = Some(timings.time("spectral contrastive loss", work, || {
            spectral_loss(&input.views)
        })?);
        let per_view = match with_uniformity {
            true => input
                .views
                .iter()
                .enumerate()
                .map(|(v, view)| timed_uniformity(*view, v as u64))
                .collect::<Result<Vec<_>>>()?,
            false => Vec::new(),
        };
        let mean = (!per_view.is_empty()).then(|| mean_uniformity(&per_view));
        (Some(aligned), mean, per_view)
    };

    let raw = input.raw.unwrap_or(labelled);
    if raw.dim() != (n, dim) {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "raw rows have shape {:?}, expected {:?}",
                raw.dim(),
                (n, dim)
            ),
        });
    }
    let (spectrum, moment) = spectrum_with_moment(labelled, raw, timings)?;
    let eigen = timings.time(
        "second-moment eigenvectors",
        moment_eigen_work::<F>(n, dim),
        || moment_eigen(&moment, dim, std::mem::size_of::<F>() == 4),
    )?;
    let partition = timings.time(
        "partition isotropy",
        partition_isotropy_work::<F>(&eigen, n, dim),
        || partition_isotropy(labelled, &eigen),
    );
    let mut analysis = Analysis {
        alignment,
        spectral_loss: spectral,
        uniformity: mean_uniform,
        uniformity_views,
        isoscore_zeta: options.isoscore_zeta,
        partition_isotropy: Some(partition),
        ..Analysis::of_spectrum(n, dim, spectrum)
    };
    if input.views.len() >= 2 {
        let bytes = lidar_bytes(dim);
        let limit = options.memory_limit.or_else(default_memory_limit);
        match limit.filter(|&limit| bytes > limit) {
            Some(limit) => analysis.warnings.push(format!(
                "LiDAR is not computed: its D x D matrices would need {} (D = {dim}), over the memory limit of {}",
                gigabytes(bytes),
                gigabytes(limit)
            )),
            None => {
                let work = lidar_work((input.views.len() + 1) * n, dim, None, true);
                match timings.time("LiDAR", work, || lidar(&views_scatter(&input.views), true)) {
                    Ok(value) => analysis.lidar = Some(value),
                    Err(e) => analysis.warnings.push(format!("LiDAR: {e}")),
                }
            }
        }
    }
    if let Some(classes) = input.classes {
        classes.check_rows(n)?;
    }
    let neighbours = match options.parts.knn && n >= 2 {
        true => {
            let labels = input.classes.map(Classes::labels);
            let k = options.knn.k.max(MLE_NEIGHBOURS);
            let found = timings.time("kNN", knn_work::<F>(n, n, dim, options), || {
                query_neighbours(labelled, labels, &KnnSplit::LeaveOneOut, k, &options.knn)
            })?;
            let on_sphere = input.raw.is_some() || all_unit_norm(labelled);
            let query_index: Vec<u64> = found.queries.iter().map(|&q| q as u64).collect();
            let queries = Queries {
                rows: (found.queries.len() < n).then_some((labelled, &found.queries[..])),
                index: &query_index,
                labels: labels.map(|l| found.queries.iter().map(|&q| l[q]).collect()),
                positives: positive_view(input).map(|view| {
                    found
                        .queries
                        .iter()
                        .map(|&q| cosine(labelled.row(q), view.row(q)))
                        .collect()
                }),
            };
            let searched = (&found.tops[..], found.k);
            add_neighbour_metrics(&mut analysis, searched, queries, on_sphere, timings)?;
            Some(found)
        }
        false => None,
    };
    if let Some(classes) = input.classes {
        let labelled_means = class_metrics(
            &mut analysis,
            input,
            (labelled, raw),
            classes,
            neighbours.as_ref(),
            options,
            (progress, timings),
        )?;
        let scatter = lda_scatter(&moment, &eigen, labelled_means, classes, dim);
        analysis.add_lda_rank(scatter, classes.num_classes(), timings);
    }
    Ok(analysis)
}

/// The work of [`moment_eigen`] on `n` rows of `d` dimensions: a decomposition with vectors of
/// side `m = min(N, D)`, about `3 m^3` flops of `dsyevd`; `ssyevd` (f32 rows) is counted as
/// half of that, its measured speed-up with vectors at m = 2,048.
fn moment_eigen_work<F: Real>(n: usize, d: usize) -> Work {
    let m = n.min(d) as f64;
    let single = std::mem::size_of::<F>() == 4;
    Work::EigenFlops(3.0 * m.powi(3) * if single { 0.5 } else { 1.0 })
}

/// The class scatter of the LDA rank from the analysed rows' uncentred second moment and
/// class means (`means`): `U^T U` itself, or `U U^T`'s row coordinates in the rows' span (r x
/// r) with the class means in the same coordinates.
fn lda_scatter(
    moment: &UncentredMoment,
    eigen: &MomentEigen,
    means: Array2<f64>,
    classes: &Classes,
    dim: usize,
) -> GroupScatter {
    let counts = classes.counts();
    match (moment, eigen.row_coordinates()) {
        (_, Some(z)) => {
            let (sums, _) = classes.class_sums(z.view());
            let moment = z.t().dot(&z);
            class_scatter(&moment, &means_of_sums(&sums, classes), &counts, dim)
        }
        (UncentredMoment::Scatter(m), None) => class_scatter(m, &means, &counts, dim),
        (UncentredMoment::Gram(_), None) => unreachable!("a Gram moment has row coordinates"),
    }
}

/// The work of [`partition_isotropy`] of `n` rows in `d` dimensions: from `U^T U`'s
/// eigenvectors, the projections `U V` (`2 N D^2` in the rows' precision); from `U U^T`'s,
/// the coordinates (`N^2` values); the `2 N min(N, D)` exponentials are not modelled.
fn partition_isotropy_work<F: Real>(eigen: &MomentEigen, n: usize, d: usize) -> Work {
    let (nf, df) = (n as f64, d as f64);
    match eigen.gram {
        false => gemm_work::<F>(nf, df, df),
        true => Work::Bytes(16.0 * nf * nf),
    }
}

/// The work of a kNN search of at most `options.knn.max_queries` of `candidates` queries
/// against `references` rows of `d` dimensions, by the screen of rows of type `F`.
fn knn_work<F: Real>(
    candidates: usize,
    references: usize,
    d: usize,
    options: &AnalysisOptions,
) -> Work {
    search_work::<F>(candidates.min(options.knn.max_queries), references, d)
}

/// The work of a nearest-neighbour search of `queries` queries against `references` rows of
/// `d` dimensions (`2 Q N D`), by the screen of rows of type `F`.
pub fn search_work<F: Real>(queries: usize, references: usize, d: usize) -> Work {
    let (queries, references, d) = (queries as f64, references as f64, d as f64);
    match knn_screen::<F>() {
        KnnScreen::Amx => Work::TileFlops(2.0 * queries * references * d),
        KnnScreen::Gemm => gemm_work::<F>(queries, references, d),
    }
}

/// The kNN's queries: their global row indices and, when they are a subsample of the rows,
/// where to read them (hubness then searches a subsample of them among themselves).
pub(crate) struct Queries<'a, F> {
    /// When fewer than all rows: rows holding the queries, and the row of each query in them.
    pub rows: Option<(ArrayView2<'a, F>, &'a [usize])>,
    /// Global row index of each query.
    pub index: &'a [u64],
    /// Each query's class, with labels.
    pub labels: Option<Vec<u32>>,
    /// Each query's cosine to its positive (its row in another view), with views.
    pub positives: Option<Vec<f64>>,
}

/// The view holding each analysed row's positive: the first view when embeddings are given
/// besides the views, else the second view (the analysed rows are the first).
fn positive_view<'a, F>(input: &AnalysisInput<'a, F>) -> Option<ArrayView2<'a, F>> {
    match input.embeddings {
        Some(_) => input.views.first().copied(),
        None => input.views.get(1).copied(),
    }
}

/// `a . b / (||a|| ||b||)` in f64 (0 for a zero row).
fn cosine<F: Real>(a: ndarray::ArrayView1<F>, b: ndarray::ArrayView1<F>) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b.iter()) {
        let (x, y) = (x.as_f64(), y.as_f64());
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match aa * bb > 0.0 {
        true => ab / (aa * bb).sqrt(),
        false => 0.0,
    }
}

/// The metrics of the kNN graph, from the queries' leave-one-out neighbours (`tops`, `k`
/// searched each): the intrinsic dimension and hubness. Only `on_sphere` (unit rows): the
/// kNN's neighbours are those of the largest dot product, the Euclidean (and cosine) nearest
/// only on the unit sphere.
pub(crate) fn add_neighbour_metrics<F: Real>(
    analysis: &mut Analysis,
    (tops, k): (&[TopK], usize),
    queries: Queries<F>,
    on_sphere: bool,
    timings: &Timings,
) -> Result<()> {
    if !on_sphere {
        analysis.warnings.push(
            "intrinsic dimension, hubness and the hard-negative profile are not computed: the rows are not L2-normalised (--no-normalize), and the kNN's neighbours by dot product are the Euclidean nearest only on the unit sphere".into(),
        );
        return Ok(());
    }
    add_intrinsic_dimension(analysis, (tops, k), timings)?;
    let work = Work::Bytes((tops.len() * HARD_NEGATIVE_K * 24) as f64);
    analysis.hard_negatives = timings.time("hard negatives", work, || {
        hard_negatives(
            tops,
            queries.positives.as_deref(),
            queries.labels.as_deref(),
        )
    });
    add_hubness(analysis, tops, queries, timings);
    if analysis.hubness.is_some()
        && analysis
            .intrinsic_dimension
            .as_ref()
            .is_some_and(|id| id.duplicates > 0)
    {
        analysis.warnings.push(
            "hubness: duplicate rows tie as one another's neighbours; ties go to the lower row index (scikit-hubness shuffles them), so the lower copies gain occurrences".into(),
        );
    }
    Ok(())
}

/// Hubness (scikit-hubness's k = 10): exact from the queries' neighbours when every row is a
/// query; else of a seeded subsample of [`HUBNESS_SUBSAMPLE_ROWS`] of the query rows among
/// themselves (a search of its own, `2k` neighbours each for the jackknife), with its
/// jackknife errors.
fn add_hubness<F: Real>(
    analysis: &mut Analysis,
    tops: &[TopK],
    queries: Queries<F>,
    timings: &Timings,
) {
    let n = analysis.n;
    let k = HUBNESS_K.min(n.saturating_sub(1));
    if k == 0 || tops.is_empty() {
        return;
    }
    let hubness = match queries.rows {
        None => {
            let lists: Vec<Vec<u64>> = tops
                .iter()
                .map(|top| top.items().iter().map(|m| m.index).collect())
                .collect();
            let bytes = (n * (k + 1) * 8) as f64;
            timings.time("hubness", Work::Bytes(bytes), || {
                hubness_of(&k_occurrence(&lists, n, k, |j| Some(j as usize)), k, n)
            })
        }
        Some((source, positions)) => {
            let picked = stratified_rows(positions.len(), None, HUBNESS_SUBSAMPLE_ROWS, 0);
            let chosen: Vec<usize> = picked.iter().map(|&p| positions[p]).collect();
            let rows = source.select(ndarray::Axis(0), &chosen);
            let rows = rows.view();
            let index: Vec<u64> = picked.iter().map(|&p| queries.index[p]).collect();
            let q = rows.nrows();
            let work = search_work::<F>(q, q, rows.ncols());
            let hubness = timings.time("hubness (subsample)", work, || {
                let global = |j: usize| index[j];
                let label = |_: usize| 0;
                let place: std::collections::HashMap<u64, usize> =
                    index.iter().enumerate().map(|(p, &i)| (i, p)).collect();
                let position = |i: u64| place.get(&i).copied();
                let references = References {
                    rows,
                    index: &global,
                    label: &label,
                    position: &position,
                };
                let searched = (2 * k).min(q.saturating_sub(1));
                let lists: Vec<Vec<usize>> = top_neighbours(rows, &index, &references, searched)
                    .iter()
                    .map(|top| top.items().iter().map(|m| place[&m.index]).collect())
                    .collect();
                subsample_hubness(&lists, k.min(searched))
            });
            analysis.warnings.push(format!(
                "hubness is of a seeded subsample of {q} of {n} rows among themselves (exact with every row a kNN query, up to --knn-queries rows); the skewness grows with the rows, the Robin Hood and Gini indices barely do"
            ));
            hubness
        }
    };
    analysis.hubness = Some(hubness);
}

/// The intrinsic dimension of the rows from their queries' leave-one-out neighbours (a stage
/// of its own: the sort and the fits over the queries' distances), with a warning for
/// duplicate rows or too few rows.
fn add_intrinsic_dimension(
    analysis: &mut Analysis,
    (tops, k): (&[TopK], usize),
    timings: &Timings,
) -> Result<()> {
    if k < 2 || tops.is_empty() {
        analysis
            .warnings
            .push("intrinsic dimension needs at least 3 rows".into());
        return Ok(());
    }
    let bytes = (tops.len() * k * 2 * 8) as f64;
    let id = timings.time("intrinsic dimension", Work::Bytes(bytes), || {
        intrinsic_dimension(&neighbour_distances(tops))
    })?;
    if id.duplicates > 0 {
        analysis.warnings.push(format!(
            "intrinsic dimension: {} of {} measured rows have an exact duplicate (nearest neighbour at distance 0) and are left out",
            id.duplicates, id.points
        ));
    }
    if id.twonn.is_none() {
        analysis.warnings.push(format!(
            "intrinsic dimension (TwoNN): too few distinct neighbour distances among {} measured rows",
            id.points
        ));
    }
    analysis.intrinsic_dimension = Some(id);
    Ok(())
}

/// The metrics that need labels.
fn class_metrics<F: Real>(
    analysis: &mut Analysis,
    input: &AnalysisInput<F>,
    (labelled, raw): (ArrayView2<F>, ArrayView2<F>),
    classes: &Classes,
    neighbours: Option<&QueryNeighbours>,
    options: &AnalysisOptions,
    (progress, timings): (&dyn Progress, &Timings),
) -> Result<Array2<f64>> {
    let c = classes.num_classes();
    let (n, d) = (analysis.n as f64, analysis.dim as f64);
    let counts = classes.counts();
    let same_class_pairs: f64 = counts
        .iter()
        .map(|&k| k as f64 * (k as f64 - 1.0) / 2.0)
        .sum();
    let alignment_work = match options.alpha == 2.0 {
        true => gather_work::<F>(n, d, n * d),
        false => gemm_work::<F>(same_class_pairs, 1.0, d),
    };
    // The class sums of the labelled rows serve the label alignment (alpha = 2), the simplex
    // angles' class means and, when the labelled rows are the raw ones, the class statistics.
    let (aligned, labelled_sums) = timings.time("class alignment", alignment_work, || {
        let sums = (options.alpha == 2.0).then(|| classes.class_sums(labelled));
        let aligned =
            class_alignment_with_sums(labelled, classes, options.alpha, sums.as_ref(), progress);
        (aligned, sums)
    });
    let labelled_means = |sums: &Option<ClassSums>| match sums {
        Some((sums, _)) => means_of_sums(sums, classes),
        None => class_means(labelled, classes),
    };
    analysis.class_alignment = match aligned {
        Ok(value) => Some(value),
        Err(GeometryError::Labels { what }) => {
            analysis.warnings.push(what);
            None
        }
        Err(other) => return Err(other),
    };
    // Each class's rows gathered, then its half Gram matrix (exact), or its sampled pairs'
    // two rows each.
    let (gathered, per_class_flops) = (0..c)
        .filter(|&k| counts[k] >= 2)
        .map(|k| match options.estimator(counts[k], k as u64) {
            Estimator::Exact { .. } => {
                let n_c = counts[k] as f64;
                (n_c, n_c * (n_c - 1.0) * d)
            }
            Estimator::Sampled { pairs, .. } => (2.0 * pairs as f64, 2.0 * pairs as f64 * d),
        })
        .fold((0.0, 0.0), |(r, f), (rows, flops)| (r + rows, f + flops));
    let per_class_work = gather_work::<F>(gathered, d, per_class_flops);
    let started = std::time::Instant::now();
    // Classes in parallel (each value is computed as alone: the same bits), so that many
    // small classes keep every thread busy.
    let uniformity_per_class = (0..c)
        .into_par_iter()
        .map(|k| {
            let members = classes.members(k);
            if members.len() < 2 || !options.parts.uniformity {
                return Ok(None);
            }
            let rows = crate::kernels::rows::gather_rows(labelled, members);
            let estimator = options.estimator(members.len(), k as u64);
            let value = uniformity(
                rows.view(),
                options.t,
                estimator,
                &crate::progress::NoProgress,
            )?;
            Ok(Some(value))
        })
        .collect::<Result<Vec<_>>>()?;

    if options.parts.uniformity {
        timings.record(
            "per-class uniformity",
            started.elapsed().as_secs_f64(),
            per_class_work,
        );
    }
    // Class means (one pass), each class's scatter (dsyrk, N D^2 in all) and eigenvalues.
    let raw_is_labelled = input.raw.is_none();
    let known_means =
        (raw_is_labelled && labelled_sums.is_some()).then(|| labelled_means(&labelled_sums));
    let stats = class_stats_of_means(raw, classes, known_means, timings)?;
    // Distances of every row to every class mean: an N x C x D product, in f32 for f32 rows
    // (near-ties multiplied again in f64), else in f64; then the class means' metrics.
    let collapsed = collapse_timed(raw, classes, &stats, input.classifier, timings)?;
    // The leave-one-out accuracy votes among the neighbours already searched; a train/test
    // split searches the train rows for its test rows.
    let knn = match (input.knn_split, neighbours) {
        (None, Some(found)) => Some(accuracy_of(found, classes.labels(), c, &options.knn)),
        (Some(KnnSplit::TrainTest { train, test }), _) if options.parts.knn => {
            let work = knn_work::<F>(test.len(), train.len(), analysis.dim, options);
            let split = KnnSplit::TrainTest {
                train: train.clone(),
                test: test.clone(),
            };
            Some(timings.time("kNN (train/test)", work, || {
                knn_accuracy(labelled, classes.labels(), c, &split, &options.knn)
            })?)
        }
        (Some(KnnSplit::LeaveOneOut), Some(found)) => {
            Some(accuracy_of(found, classes.labels(), c, &options.knn))
        }
        _ => None,
    };
    // The labelled rows' class sums (already taken for alpha = 2): the simplex angles' means
    // and the self-similarities.
    let (labelled_sums, labelled_squares) =
        labelled_sums.unwrap_or_else(|| classes.class_sums(labelled));
    let labelled_means = means_of_sums(&labelled_sums, classes);
    analysis.add_classes(
        ClassResults {
            names: classes.names(),
            stats: &stats,
            collapse: collapsed,
            simplex_means: labelled_means.clone(),
            labelled_squares: labelled_squares.to_vec(),
            uniformity_per_class,
            knn,
        },
        timings,
    );
    if let (Some(fine), true) = (input.subclasses, options.parts.knn) {
        analysis.subclasses = Some(timings.time("subclasses", Work::Unmodelled, || {
            subclass_structure(labelled, raw, classes, fine, &options.knn)
        })?);
    }
    Ok(labelled_means)
}

/// What either driver (one matrix, or the merged shards) computed for the labelled classes.
pub(crate) struct ClassResults<'a> {
    /// The class names, in class order.
    pub names: &'a [String],
    /// Counts, means and within-class variances of the raw rows.
    pub stats: &'a ClassStats,
    /// NC1-NC4, CDNV and the nearest-class-mean accuracy.
    pub collapse: Collapse,
    /// The class means the simplex angles are taken between (of the labelled rows).
    pub simplex_means: Array2<f64>,
    /// Per class `sum_{i in c} ||u_i||^2` of the labelled rows (for the self-similarity).
    pub labelled_squares: Vec<f64>,
    /// Each class's uniformity (`None` for a class of one row, or not computed).
    pub uniformity_per_class: Vec<Option<Uniformity>>,
    /// The kNN accuracy, when computed.
    pub knn: Option<KnnAccuracy>,
}

impl Analysis {
    /// Add the LDA rank of the classes' `scatter` (a warning when undefined).
    pub(crate) fn add_lda_rank(&mut self, scatter: GroupScatter, c: usize, timings: &Timings) {
        if c < 2 || scatter.rows <= c {
            self.warnings.push(format!(
                "LDA rank: needs 2 or more classes and more rows than classes ({} rows, {c} classes)",
                scatter.rows
            ));
            return;
        }
        let work = lidar_work(0, scatter.within.nrows(), Some(c), false);
        match timings.time("LDA rank", work, || lidar(&scatter, false)) {
            Ok(value) => self.lda_rank = Some(value),
            Err(e) => self.warnings.push(format!("LDA rank: {e}")),
        }
    }

    /// Add the class metrics, their warnings and the per-class table: the one assembly of
    /// the single-matrix analysis and of the sharded one.
    pub(crate) fn add_classes(&mut self, results: ClassResults, timings: &Timings) {
        let ClassResults {
            names,
            stats,
            collapse,
            simplex_means,
            labelled_squares,
            uniformity_per_class,
            knn,
        } = results;
        let c = names.len();
        self.num_classes = Some(c);
        self.warnings.extend(collapse.warnings.iter().cloned());
        self.collapse = Some(collapse);
        let d = simplex_means.ncols();
        let (angles, vertices) = match c >= 2 {
            true => timings.time("simplex", simplex_work(c, d), || {
                let (angles, vertices) = rayon::join(
                    || simplex_angles(simplex_means.view()),
                    || vertex_distances(stats.centred_means().view()).ok(),
                );
                (Some(angles), vertices)
            }),
            false => (None, None),
        };
        match angles {
            Some(Ok(angles)) => self.simplex_angles = Some(angles),
            Some(Err(e)) => self.warnings.push(format!("simplex angles: {e}")),
            None => {}
        }
        if let Some(knn) = &knn {
            if knn.queries < knn.candidates {
                self.warnings.push(format!(
                    "kNN accuracy uses a seeded subset of {} of {} queries (exact neighbours among all references)",
                    knn.queries, knn.candidates
                ));
            }
        }
        self.knn = knn;
        self.per_class = (0..c)
            .map(|k| PerClass {
                name: names[k].clone(),
                count: stats.counts[k],
                within_variance: stats.within_variance[k],
                vertex_distance: vertices.as_ref().map(|(d, _)| d[k]),
                nearest_vertex: vertices.as_ref().map(|(_, v)| names[v[k]].clone()),
                effective_rank: stats.effective_ranks[k],
                uniformity: uniformity_per_class[k].as_ref().map(|u| u.value),
                self_similarity: self_similarity(
                    simplex_means.row(k),
                    labelled_squares[k],
                    stats.counts[k],
                ),
            })
            .collect();
        self.uniformity_per_class = names.iter().cloned().zip(uniformity_per_class).collect();
        self.tolerance = tolerance(&simplex_means, &labelled_squares, &stats.counts);
    }
}

/// Wang & Liu's tolerance from the labelled rows' class means `m_c`, their `sum ||u_i||^2`
/// and the class sizes: `sum_c (n_c^2 ||m_c||^2 - sum_{i in c} ||u_i||^2) / sum_c n_c (n_c -
/// 1)`, the mean of `u_i . u_j` over the same-class ordered pairs `i != j`; `None` without such
/// a pair.
fn tolerance(means: &Array2<f64>, squares: &[f64], counts: &[usize]) -> Option<f64> {
    let (sum, pairs) = means.rows().into_iter().zip(squares).zip(counts).fold(
        (0.0, 0.0),
        |(sum, pairs), ((mean, &square), &n)| {
            let n = n as f64;
            (
                sum + n * n * mean.dot(&mean) - square,
                pairs + n * (n - 1.0),
            )
        },
    );
    (pairs > 0.0).then(|| sum / pairs)
}

/// A class's mean cosine over ordered pairs `i != j` from the mean `m` of its `n` labelled
/// rows and their `sum ||u_i||^2`: `(n^2 ||m||^2 - sum ||u_i||^2) / (n (n - 1))`; `None` for
/// one row.
fn self_similarity(mean: ndarray::ArrayView1<f64>, squares: f64, n: usize) -> Option<f64> {
    let n = n as f64;
    (n >= 2.0).then(|| (n * n * mean.dot(&mean) - squares) / (n * (n - 1.0)))
}

/// The work of the simplex stage for C classes in D dimensions: the angles' C x C Gram matrix
/// (`C^2 D`), and the vertex distances' products (the Gram matrix of `S^T M`, the rotated
/// vertices and their scores against the means: `5 C^2 D`; the whitening `2 C^3`) and C x C
/// eigendecomposition with its vectors (about `3 C^3`).
fn simplex_work(c: usize, d: usize) -> Work {
    let (c, d) = (c as f64, d as f64);
    Work::Decomposition {
        products: 6.0 * c * c * d + 2.0 * c * c * c,
        eigen: 3.0 * c * c * c,
    }
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
