//! Sharded datasets: a directory of numbered embedding shards, analysed one shard at a time
//! (or as tasks of a distributed engine) with [`embgeom_geometry::sharded`].
//!
//! Layouts found by [`ShardedDataset::discover`]:
//! - LAION's: `DIR/img_emb/img_emb_N.npy` with `DIR/metadata/metadata_N.parquet`, labels from
//!   the metadata column named by `--label-key`;
//! - flat: `DIR/<name>_N.<ext>` (any readable format, e.g. `emb_000.npy` or `part-3.parquet`)
//!   with label shards `DIR/labels_N.<ext>` (or `DIR/labels/…`), or the labels in a column
//!   (`--label-key`) or key of each shard.
//!
//! Shards are ordered by their number N; a label shard must exist for every embedding shard.

use crate::error::{PipelineError, Result};
use crate::inputs::{load_inputs, InputSpec, InputSummary, Inputs, Source, Values};
use crate::run::{extreme_scale, prepare, Run};
use embgeom_geometry::sharded::{
    finalize, second_pass, summarize, uniformity_block, Context, LabelledRows, SecondPass,
    ShardOptions, ShardPlan, Summary, UniformityBlock,
};
use embgeom_geometry::state::LabelKey;
use embgeom_geometry::Merge;
use embgeom_geometry::{AnalysisOptions, Classifier, Progress, Real};
use embgeom_io::{count_rows, load_array, LabelValues, Labels, CLASSIFIER_KEY};
use ndarray::{Array1, ArrayView2, CowArray, Ix2};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File extensions of shards.
const SHARD_EXTENSIONS: [&str; 13] = [
    "npy",
    "npz",
    "safetensors",
    "parquet",
    "pq",
    "csv",
    "arrow",
    "feather",
    "ipc",
    "jsonl",
    "ndjson",
    "pt",
    "txt",
];

/// One shard: its number, embeddings file and labels file (if the labels are not inside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// The number in its file name.
    pub number: u64,
    /// The embeddings file.
    pub embeddings: PathBuf,
    /// A labels (or metadata) file of its own.
    pub labels: Option<PathBuf>,
}

/// A directory of numbered shards and how to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardedDataset {
    /// The directory given.
    pub root: PathBuf,
    /// The shards in order.
    pub shards: Vec<Shard>,
    /// Key or column of the embeddings in each shard.
    pub key: Option<String>,
    /// Numeric columns forming the embeddings (tables).
    pub columns: Option<Vec<String>>,
    /// Key or column of the labels (in the label, metadata or embedding shards).
    pub label_key: Option<String>,
    /// CSV shards have no header row.
    pub no_header: bool,
    /// L2-normalise the rows.
    pub normalize: bool,
    /// Classifier weights (C x D) file.
    pub classifier: Option<PathBuf>,
    /// Classifier bias file.
    pub bias: Option<PathBuf>,
}

/// `(prefix, number)` of a file stem ending in digits, e.g. `img_emb_12` -> `("img_emb", 12)`.
fn numbered_stem(stem: &str) -> Option<(String, u64)> {
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 18 {
        return None;
    }
    let (prefix, number) = stem.split_at(stem.len() - digits);
    let prefix = prefix.trim_end_matches(['_', '-', '.']).to_string();
    Some((prefix, number.parse().ok()?))
}

/// The numbered shard files of `dir`, grouped by prefix: `prefix -> number -> path`.
fn numbered_files(dir: &Path) -> Result<BTreeMap<String, BTreeMap<u64, PathBuf>>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        PipelineError::Inputs(format!("{}: cannot list the directory: {e}", dir.display()))
    })?;
    let mut groups: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if !path.is_file() || !SHARD_EXTENSIONS.contains(&extension.as_str()) {
            continue;
        }
        let Some((prefix, number)) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(numbered_stem)
        else {
            continue;
        };
        let group = groups.entry(prefix.clone()).or_default();
        if let Some(other) = group.insert(number, path.clone()) {
            return Err(PipelineError::Inputs(format!(
                "{} and {} are both shard {number} of {prefix:?}",
                other.display(),
                path.display()
            )));
        }
    }
    Ok(groups)
}

fn is_label_prefix(prefix: &str) -> bool {
    let p = prefix.to_ascii_lowercase();
    p.contains("label") || p.contains("meta")
}

impl ShardedDataset {
    /// Whether `path` is a directory to analyse as shards (not a Hugging Face
    /// `save_to_disk` folder, which is read as one table).
    pub fn is_sharded(path: &Path) -> bool {
        path.is_dir() && !embgeom_io::Table::is_saved_dataset(path)
    }

    /// Find the shards of `dir` (see the module documentation), with the keys, columns,
    /// classifier and normalisation of `spec` (whose embeddings path is ignored). Views,
    /// train/test splits and subclasses are refused: they are not analysed for shards.
    pub fn discover(dir: &Path, spec: &InputSpec) -> Result<ShardedDataset> {
        let refuse = |what: &str| {
            Err(PipelineError::Inputs(format!(
                "{}: {what} are not supported for sharded datasets",
                dir.display()
            )))
        };
        if !spec.views.is_empty() || spec.views_key.is_some() {
            return refuse("views");
        }
        if spec.split.is_some() {
            return refuse("train/test splits");
        }
        if spec.subclasses.is_some() {
            return refuse("subclasses");
        }
        let file_of = |source: &Option<Source>, what: &str| match source {
            None => Ok(None),
            Some(Source::File(path)) => Ok(Some(path.clone())),
            Some(Source::Key(key)) => Err(PipelineError::Inputs(format!(
                "{}: the {what} of a sharded dataset must be a file ({key:?} is not one)",
                dir.display()
            ))),
        };
        // A training run's folder holds checkpoints of the same rows, not shards of one set.
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap_or_default();
        let is_run = serde_json::from_str::<serde_json::Value>(&manifest)
            .is_ok_and(|m| m.get("checkpoints").is_some());
        if is_run {
            return Err(PipelineError::Inputs(format!(
                "{}: a training run (its manifest.json lists checkpoints), not a sharded dataset: follow it with embgeom track, or analyze one checkpoint",
                dir.display()
            )));
        }
        let classifier = file_of(&spec.classifier, "classifier")?;
        let bias = file_of(&spec.bias, "classifier bias")?;
        let embedding_dir = ["img_emb", "embeddings", "emb"]
            .iter()
            .map(|name| dir.join(name))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| dir.to_path_buf());
        let groups = numbered_files(&embedding_dir)?;
        let candidates: Vec<&String> = groups.keys().filter(|p| !is_label_prefix(p)).collect();
        let prefix = match candidates.as_slice() {
            [] => {
                return Err(PipelineError::Inputs(format!(
                    "{}: no numbered shards (files such as emb_0.npy, emb_1.npy or img_emb/img_emb_0.npy)",
                    dir.display()
                )))
            }
            [only] if ["ckpt", "checkpoint", "epoch", "step"]
                .iter()
                .any(|w| only.to_ascii_lowercase().contains(w)) =>
            {
                return Err(PipelineError::Inputs(format!(
                    "{}: the numbered files are named like checkpoints ({only}_N), not shards: follow them with embgeom track, or analyze one",
                    dir.display()
                )))
            }
            [only] => (*only).clone(),
            several => match several.iter().find(|p| p.to_ascii_lowercase().contains("emb")) {
                Some(p) => (*p).clone(),
                None => {
                    return Err(PipelineError::Inputs(format!(
                        "{}: several series of numbered files ({}): name the embedding shards *emb*",
                        dir.display(),
                        several.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                    )))
                }
            },
        };
        let labels = Self::label_files(dir, &embedding_dir, spec.label_key.is_some())?;
        let shards = groups[&prefix]
            .iter()
            .map(|(&number, path)| {
                let labels = match &labels {
                    None => Ok(None),
                    Some((kind, files)) => files.get(&number).cloned().map(Some).ok_or_else(|| {
                        PipelineError::Inputs(format!(
                            "{}: shard {number} has no {kind} file (found {} {kind} files for {} shards)",
                            path.display(),
                            files.len(),
                            groups[&prefix].len()
                        ))
                    }),
                }?;
                Ok(Shard {
                    number,
                    embeddings: path.clone(),
                    labels,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardedDataset {
            root: dir.to_path_buf(),
            shards,
            key: spec.key.clone(),
            columns: spec.columns.clone(),
            label_key: spec.label_key.clone(),
            no_header: spec.no_header,
            normalize: spec.normalize,
            classifier,
            bias,
        })
    }

    /// Label shards (`labels_N`, in the shard directory, the root or `labels/`), else, with
    /// a label column, metadata shards (`metadata_N`, in the root or `metadata/`).
    #[allow(clippy::type_complexity)]
    fn label_files(
        dir: &Path,
        embedding_dir: &Path,
        label_column: bool,
    ) -> Result<Option<(&'static str, BTreeMap<u64, PathBuf>)>> {
        let mut places = vec![embedding_dir.to_path_buf(), dir.join("labels")];
        if embedding_dir != dir {
            places.push(dir.to_path_buf());
        }
        for place in places.iter().filter(|p| p.is_dir()) {
            for (prefix, files) in numbered_files(place)? {
                if prefix.to_ascii_lowercase().contains("label") {
                    return Ok(Some(("labels", files)));
                }
            }
        }
        if !label_column {
            return Ok(None);
        }
        for place in [
            dir.join("metadata"),
            dir.to_path_buf(),
            embedding_dir.to_path_buf(),
        ] {
            if !place.is_dir() {
                continue;
            }
            for (prefix, files) in numbered_files(&place)? {
                if prefix.to_ascii_lowercase().contains("meta") {
                    return Ok(Some(("metadata", files)));
                }
            }
        }
        Ok(None)
    }

    /// What to read for shard `shard`.
    fn spec(&self, shard: &Shard) -> InputSpec {
        InputSpec {
            embeddings: Some(shard.embeddings.clone()),
            labels: shard.labels.clone(),
            key: self.key.clone(),
            columns: self.columns.clone(),
            label_key: self.label_key.clone(),
            no_header: self.no_header,
            normalize: self.normalize,
            ..InputSpec::default()
        }
    }

    /// Where the labels come from, for the input summary.
    fn labels_summary(&self) -> Option<String> {
        let first = self.shards.first()?;
        let column = self
            .label_key
            .as_ref()
            .map_or_else(String::new, |k| format!(" (column {k:?})"));
        match &first.labels {
            Some(path) => Some(format!(
                "{}{column}, one per shard",
                path.parent().unwrap_or(Path::new("")).join("*").display()
            )),
            None => self
                .label_key
                .as_ref()
                .map(|k| format!("column {k:?} of each shard")),
        }
    }
}

/// One shard read and checked: the rows the sphere metrics use, the raw rows, the labels.
struct ShardRows<F: Real> {
    unit: CowArray<'static, F, Ix2>,
    raw: Option<CowArray<'static, F, Ix2>>,
    labels: Option<Vec<LabelKey>>,
}

impl<F: Real> ShardRows<F> {
    fn raw(&self) -> ArrayView2<'_, F> {
        self.raw.as_ref().unwrap_or(&self.unit).view()
    }

    fn labels(&self) -> Option<&[LabelKey]> {
        self.labels.as_deref()
    }
}

/// Label values as the keys of a state.
fn label_keys(labels: &Labels) -> Vec<LabelKey> {
    match &labels.values {
        LabelValues::Int(v) => v.iter().map(|&l| LabelKey::Int(l)).collect(),
        LabelValues::Text(v) => v.iter().map(|l| LabelKey::Text(l.clone())).collect(),
    }
}

/// One shard's rows in the dataset's precision.
enum LoadedShard {
    /// Stored in f32 or narrower.
    Single(ShardRows<f32>),
    /// Stored in f64 (or integers), or f32 in a dataset with f64 shards.
    Double(ShardRows<f64>),
}

/// Evaluate `$body` with `$rows` bound to the shard's rows, whatever their precision.
macro_rules! with_rows {
    ($loaded:expr, $rows:ident => $body:expr) => {
        match $loaded {
            LoadedShard::Single($rows) => $body,
            LoadedShard::Double($rows) => $body,
        }
    };
}

/// The uniformity block of a shard with itself (`b = None`) or with another shard.
fn shard_block<F: Real>(
    plan: &ShardPlan,
    context: &Context,
    a: &ShardRows<F>,
    b: Option<&ShardRows<F>>,
) -> embgeom_geometry::Result<UniformityBlock> {
    let classes_a = context.shard_classes(a.labels())?;
    let classes_b = b.map(|b| context.shard_classes(b.labels())).transpose()?;
    let first = LabelledRows {
        rows: a.unit.view(),
        classes: &classes_a,
    };
    let second = b.zip(classes_b.as_ref()).map(|(b, classes)| LabelledRows {
        rows: b.unit.view(),
        classes,
    });
    let o = &plan.options;
    uniformity_block(o.t, o.tile, context.num_classes(), &first, second.as_ref())
}

/// A sharded analysis: the dataset, the plan of its tasks, and the precision of its rows. It
/// serialises (JSON) so that the tasks can run anywhere the shards can be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardJob {
    /// The shards.
    pub dataset: ShardedDataset,
    /// Rows per shard and the options.
    pub plan: ShardPlan,
    /// The rows are stored in f32 or narrower (computed in f32, as the single pass does).
    pub single_precision: bool,
    /// The stored dtype of the first shard.
    pub dtype: String,
}

impl ShardJob {
    /// Plan the analysis of `dataset`: count the rows of every shard (from the `.npy` header
    /// or the Parquet footer where possible) and read the first shard for its dtype.
    pub fn new(
        dataset: ShardedDataset,
        options: &AnalysisOptions,
        sample_rows: usize,
    ) -> Result<ShardJob> {
        let shard_options = ShardOptions::of(options, sample_rows)?;
        let Some(first) = dataset.shards.first() else {
            return Err(PipelineError::Inputs(format!(
                "{}: no shards",
                dataset.root.display()
            )));
        };
        let selection = dataset.spec(first).selection();
        let rows = dataset
            .shards
            .iter()
            .map(|s| Ok(count_rows(&s.embeddings, &selection)? as u64))
            .collect::<Result<Vec<_>>>()?;
        let loaded =
            Inputs::from_loaded(load_inputs(&dataset.spec(first))?, Some(&first.embeddings))?;
        let (single_precision, dtype) = match &loaded.embeddings {
            Some(e) => (e.values.f32_view().is_some(), e.dtype.clone()),
            None => {
                return Err(PipelineError::Inputs(format!(
                    "{}: holds no embeddings",
                    first.embeddings.display()
                )))
            }
        };
        Ok(ShardJob {
            dataset,
            plan: ShardPlan {
                rows,
                options: shard_options,
            },
            single_precision,
            dtype,
        })
    }

    /// The job as JSON (for the tasks of a distributed engine).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A job from [`ShardJob::to_json`].
    pub fn from_json(json: &str) -> Result<ShardJob> {
        serde_json::from_str(json)
            .map_err(|e| PipelineError::Inputs(format!("not an embgeom shard job: {e}")))
    }

    fn shard(&self, shard: usize) -> Result<&Shard> {
        self.dataset.shards.get(shard).ok_or_else(|| {
            PipelineError::Inputs(format!(
                "shard {shard} of a dataset of {} shards",
                self.dataset.shards.len()
            ))
        })
    }

    /// Read, check and prepare shard `shard`; every error names the shard's file.
    fn load_shard(&self, shard: usize) -> Result<LoadedShard> {
        let file = &self.shard(shard)?.embeddings;
        let source = file.display().to_string();
        let spec = self.dataset.spec(self.shard(shard)?);
        let inputs = Inputs::from_loaded(load_inputs(&spec)?, Some(file))?;
        inputs.check()?;
        let labels = inputs.labels.as_ref().map(label_keys);
        let Some(rows) = inputs.embeddings else {
            return Err(PipelineError::Inputs(format!(
                "{source}: holds no embeddings"
            )));
        };
        // A shard is one of many and held briefly: mapped rows are copied into memory (and
        // checked unchanged once copied).
        let single = match rows.values {
            Values::F64(_) if self.single_precision => {
                return Err(PipelineError::Inputs(format!(
                    "{source}: stores {} but the first shard stores {}: every shard must store f32 (or narrower), or every shard f64",
                    rows.dtype, self.dtype
                )))
            }
            Values::F64(a) => return Ok(LoadedShard::Double(self.prepared(a, &source, labels)?)),
            Values::F32(a) => a,
            Values::Mapped(m) => {
                let copied = m.view().to_owned();
                m.check_unchanged()?;
                CowArray::from(copied)
            }
        };
        Ok(match self.single_precision {
            true => LoadedShard::Single(self.prepared(single, &source, labels)?),
            false => LoadedShard::Double(self.prepared(
                CowArray::from(single.mapv(f64::from)),
                &source,
                labels,
            )?),
        })
    }

    /// Shard `shard`'s rows as analysed (unit unless not normalised) and as given (`None`:
    /// the same), in `F` (f32 only for a dataset stored in f32 or narrower).
    pub(crate) fn unit_and_raw<F: Real>(
        &self,
        shard: usize,
    ) -> Result<(ndarray::Array2<F>, Option<ndarray::Array2<F>>)> {
        fn convert<F: Real, G: Real>(
            rows: ShardRows<G>,
        ) -> (ndarray::Array2<F>, Option<ndarray::Array2<F>>) {
            let to = |x: &CowArray<'static, G, Ix2>| x.mapv(|v| F::from_f64(v.as_f64()));
            (to(&rows.unit), rows.raw.as_ref().map(to))
        }
        Ok(match self.load_shard(shard)? {
            LoadedShard::Single(rows) => convert(rows),
            LoadedShard::Double(rows) => convert(rows),
        })
    }

    /// The error of a task on shard `shard`, named by its file.
    fn of(&self, shard: usize) -> impl FnOnce(embgeom_geometry::GeometryError) -> PipelineError {
        PipelineError::of(
            self.dataset
                .shards
                .get(shard)
                .map_or_else(String::new, |s| s.embeddings.display().to_string()),
        )
    }

    fn prepared<F: Real>(
        &self,
        matrix: CowArray<'static, F, Ix2>,
        source: &str,
        labels: Option<Vec<LabelKey>>,
    ) -> Result<ShardRows<F>> {
        let (unit, raw) = prepare(matrix, source, self.dataset.normalize)?;
        if extreme_scale(raw.as_ref().unwrap_or(&unit)).is_some() {
            return Err(PipelineError::Inputs(format!(
                "{source}: entries beyond 2^200 or below 2^-200 in magnitude: rescale the shards (sharded datasets are not rescaled)"
            )));
        }
        Ok(ShardRows { unit, raw, labels })
    }

    /// The first pass over shard `shard`.
    pub fn summarize(&self, shard: usize) -> Result<Summary> {
        with_rows!(self.load_shard(shard)?, rows => {
            summarize(&self.plan, shard, rows.unit.view(), rows.raw(), rows.labels())
        })
        .map_err(self.of(shard))
    }

    /// The context of the second pass from the merged summary (reads the classifier).
    pub fn context(&self, summary: &Summary) -> Result<Context> {
        let selection = embgeom_io::Selection::default();
        let classifier = match &self.dataset.classifier {
            None => None,
            Some(path) => Some(Classifier {
                weights: load_array(path, None, &[CLASSIFIER_KEY], &selection)?
                    .into_embeddings()?
                    .matrix
                    .into_f64()?,
                bias: match &self.dataset.bias {
                    None => None,
                    Some(bias) => Some(Array1::from(
                        load_array(bias, None, &[embgeom_io::BIAS_KEY], &selection)?
                            .into_vector()?,
                    )),
                },
            }),
        };
        summary
            .context(&self.plan, classifier.as_ref())
            .map_err(PipelineError::of(self.dataset.root.display().to_string()))
    }

    /// The second pass over shard `shard`.
    pub fn second_pass(&self, context: &Context, shard: usize) -> Result<SecondPass> {
        with_rows!(self.load_shard(shard)?, rows => {
            second_pass(&self.plan, context, shard, rows.unit.view(), rows.raw(), rows.labels())
        })
        .map_err(self.of(shard))
    }

    /// The exact-uniformity block of shards `a` and `b` (`a == b`: the pairs within `a`);
    /// both shards are in memory.
    pub fn uniformity_block(
        &self,
        context: &Context,
        a: usize,
        b: usize,
    ) -> Result<UniformityBlock> {
        let first = self.load_shard(a)?;
        if a == b {
            return with_rows!(first, rows => shard_block(&self.plan, context, &rows, None))
                .map_err(self.of(a));
        }
        match (first, self.load_shard(b)?) {
            (LoadedShard::Single(x), LoadedShard::Single(y)) => {
                shard_block(&self.plan, context, &x, Some(&y))
            }
            (LoadedShard::Double(x), LoadedShard::Double(y)) => {
                shard_block(&self.plan, context, &x, Some(&y))
            }
            _ => {
                return Err(PipelineError::Inputs(format!(
                    "shards {a} and {b} were read in different precisions"
                )))
            }
        }
        .map_err(self.of(a))
    }

    /// The analysis from the merged results of every task.
    pub fn finalize(
        &self,
        summary: &Summary,
        context: &Context,
        second: &SecondPass,
        block: Option<&UniformityBlock>,
    ) -> Result<Run> {
        let of = PipelineError::of(self.dataset.root.display().to_string());
        let analysis = match self.single_precision {
            true => finalize::<f32>(&self.plan, summary, context, second, block),
            false => finalize::<f64>(&self.plan, summary, context, second, block),
        }
        .map_err(of)?;
        Ok(Run {
            analysis,
            summary: InputSummary {
                embeddings: Some(format!(
                    "{} ({} shards)",
                    self.dataset.root.display(),
                    self.dataset.shards.len()
                )),
                views: Vec::new(),
                labels: self.dataset.labels_summary(),
                classifier: self
                    .dataset
                    .classifier
                    .as_ref()
                    .map(|p| p.display().to_string()),
                split: None,
                subclasses: None,
                class_names: None,
                dtype: self.dtype.clone(),
                normalized: self.dataset.normalize,
            },
            figures: None,
            mean_cosines: None,
            per_point: None,
            labels: None,
            timings: Vec::new(),
        })
    }

    /// The whole analysis on this machine, one shard (or shard pair) in memory at a time,
    /// with progress over shards.
    pub fn run(&self, progress: &dyn Progress) -> Result<Run> {
        let shards = self.dataset.shards.len();
        progress.start("shards: first pass", shards as u64);
        let mut summary: Option<Summary> = None;
        for shard in 0..shards {
            let part = self.summarize(shard)?;
            match summary.as_mut() {
                None => summary = Some(part),
                Some(s) => s.merge(&part).map_err(PipelineError::of(
                    self.shard(shard)?.embeddings.display().to_string(),
                ))?,
            }
            progress.advance(1);
        }
        progress.finish();
        let summary = summary.ok_or_else(|| PipelineError::Inputs("no shards".into()))?;
        let context = self.context(&summary)?;
        progress.start("shards: second pass", shards as u64);
        let mut second: Option<SecondPass> = None;
        for shard in 0..shards {
            let part = self.second_pass(&context, shard)?;
            match second.as_mut() {
                None => second = Some(part),
                Some(s) => s.merge(&part)?,
            }
            progress.advance(1);
        }
        progress.finish();
        let blocks = self.plan.blocks();
        let mut merged: Option<UniformityBlock> = None;
        if !blocks.is_empty() {
            progress.start("shards: uniformity pairs", blocks.len() as u64);
            for (a, b) in blocks {
                let block = self.uniformity_block(&context, a, b)?;
                match merged.as_mut() {
                    None => merged = Some(block),
                    Some(m) => m.merge(&block)?,
                }
                progress.advance(1);
            }
            progress.finish();
        }
        let second = second.ok_or_else(|| PipelineError::Inputs("no shards".into()))?;
        self.finalize(&summary, &context, &second, merged.as_ref())
    }
}
