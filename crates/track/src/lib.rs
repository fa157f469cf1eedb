//! `track` as a library: every metric of the analysis over a training run's checkpoints (or
//! several runs' on the same axes), cached per checkpoint, with linear CKA between
//! checkpoints, a time-series table (`metrics.csv`, `metrics.parquet`; with several runs a
//! `run` column), the trajectory page and CI checks (which may compare runs).
//!
//! ```
//! use embgeom_track::{track, TrackOptions};
//! use embgeom_geometry::NoProgress;
//!
//! # let run = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fashion-supcon");
//! # let dir = tempfile::tempdir().unwrap();
//! let options = TrackOptions {
//!     out: dir.path().join("supcon"),
//!     checks: vec!["etf_distance > 1".parse()?],
//!     ..TrackOptions::new(run)
//! };
//! let round = track(&options, &NoProgress)?;
//! assert_eq!(round.checkpoints, 12);
//! assert!(round.checks[0].passed);
//! # Ok::<(), embgeom_track::TrackError>(())
//! ```

mod cache;
mod checks;
mod discover;
mod error;

pub use cache::{file_hash, hash_bytes, Cache, CheckpointResult};
pub use checks::{Check, CheckResult, Operand, Operator, RunSeries, Trend};
pub use discover::{discover, step_from_name, Checkpoint, EXTENSIONS};
pub use error::{Result, TrackError};

use embgeom_geometry::catalogue::metrics;
use embgeom_geometry::cross_catalogue::cross_values;
use embgeom_geometry::similarity_family::{similarity_family, SIMILARITY_CATALOGUE};
use embgeom_geometry::timings::Timings;
use embgeom_geometry::{
    AnalysisOptions, NoProgress, ObjectiveParameters, Progress, SampleOptions, Similarity,
};
use embgeom_io::{load, write_table, Column, LabelValues, Labels, Matrix};
use embgeom_pipeline::{
    run_analysis, run_modalities, CrossOptions, Extras, InputSpec, ModalitiesRun, ModalitySpec,
};
use embgeom_report::{claim_folder, write_trajectory, Cosines, RunTrajectory, Trajectory};
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What to track and where to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackOptions {
    /// Run directories (optionally with `manifest.json` / `manifest.csv`) or globs; several
    /// runs share the page's axes, one colour each.
    pub runs: Vec<String>,
    /// How to read each checkpoint (its `embeddings` is set per checkpoint) and the shared
    /// inputs (labels, extras).
    pub inputs: InputSpec,
    /// Metric parameters.
    pub analysis: AnalysisOptions,
    /// Output folder.
    pub out: PathBuf,
    /// Name on the page.
    pub name: String,
    /// Checkpoints analysed at once, each held in memory (default: cores, at most 4).
    pub jobs: Option<usize>,
    /// CI checks.
    pub checks: Vec<Check>,
    /// Replace an output folder that holds something else.
    pub force: bool,
    /// Keys of two modalities each checkpoint holds (`["image", "text"]`), measured apart and
    /// together (gap, cones, retrieval, objectives); empty for one set of rows.
    pub modalities: Vec<String>,
    /// The objectives' parameters with modalities.
    pub objectives: ObjectiveParameters,
}

impl TrackOptions {
    /// Track `run` with default inputs and options into `reports/<run name>/`.
    pub fn new(run: &str) -> TrackOptions {
        let name = run_name(run);
        TrackOptions {
            runs: vec![run.to_string()],
            inputs: InputSpec::default(),
            analysis: AnalysisOptions::default(),
            out: Path::new("reports").join(&name),
            name,
            jobs: None,
            checks: Vec::new(),
            force: false,
            modalities: Vec::new(),
            objectives: ObjectiveParameters::default(),
        }
    }
}

/// The name of a run: its directory's name (a glob: its folder's name).
pub fn run_name(run: &str) -> String {
    let path = Path::new(run);
    let base = match path.is_dir() {
        true => path,
        false => path.parent().unwrap_or(path),
    };
    base.file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
}

/// The names of several runs: their directories' names, made unique with `-2`, `-3`, ...
pub fn run_names(runs: &[String]) -> Vec<String> {
    let names: Vec<String> = runs.iter().map(|r| run_name(r)).collect();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| match names.iter().filter(|m| *m == n).count() {
            1 => n.clone(),
            _ => format!("{n}-{}", i + 1),
        })
        .collect()
}

/// What one pass over the run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// Checkpoints tracked.
    pub checkpoints: usize,
    /// Analysed in this pass.
    pub analysed: usize,
    /// Taken from the cache.
    pub cached: usize,
    /// The page written.
    pub index: PathBuf,
    /// Every check's result.
    pub checks: Vec<CheckResult>,
    /// Checkpoints that could not be loaded or analysed (e.g. still being written), with
    /// why; the outputs cover the others. `watch` retries them on the next poll.
    pub failed: Vec<(PathBuf, String)>,
}

impl RoundOutcome {
    /// Every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Every checkpoint was analysed.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// How to keep polling the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watch {
    /// Time between polls.
    pub interval: Duration,
    /// Stop after this many polls (`None`: until interrupted).
    pub rounds: Option<usize>,
}

/// One pass: discover the checkpoints, analyse the new ones, write the outputs, run the
/// checks. Refuses an output folder that holds something else unless `options.force`.
pub fn track(options: &TrackOptions, progress: &dyn Progress) -> Result<RoundOutcome> {
    claim_folder(&options.out, &signature(options), options.force)?;
    round(options, progress)
}

/// Pass after pass, `watch.interval` apart, calling `on_round` after each; returns the last.
pub fn watch(
    options: &TrackOptions,
    watch: Watch,
    progress: &dyn Progress,
    mut on_round: impl FnMut(&RoundOutcome),
) -> Result<RoundOutcome> {
    claim_folder(&options.out, &signature(options), options.force)?;
    let mut rounds = 0;
    loop {
        let outcome = round(options, progress)?;
        on_round(&outcome);
        rounds += 1;
        if watch.rounds.is_some_and(|limit| rounds >= limit) {
            return Ok(outcome);
        }
        std::thread::sleep(watch.interval);
    }
}

fn signature(options: &TrackOptions) -> String {
    match options.runs.as_slice() {
        [run] => format!("track {run:?}"),
        runs => format!("track {runs:?}"),
    }
}

/// A hash of a run's labels.
fn labels_hash(labels: &Option<Labels>) -> Option<u64> {
    labels.as_ref().map(|l| match &l.values {
        LabelValues::Int(v) => hash_bytes(format!("{v:?}").as_bytes()),
        LabelValues::Text(v) => hash_bytes(format!("{v:?}").as_bytes()),
    })
}

/// The spec of the modality under `key` in the checkpoint at `path`.
fn modality_spec(options: &TrackOptions, path: &Path, key: &str) -> InputSpec {
    InputSpec {
        key: Some(key.to_string()),
        ..options.inputs.with_embeddings(path)
    }
}

/// Analyse both modalities of one checkpoint: each apart, and the two together.
fn analyse_modalities(path: &Path, options: &TrackOptions) -> Result<CheckpointResult> {
    let specs: Vec<ModalitySpec> = options
        .modalities
        .iter()
        .map(|key| ModalitySpec {
            name: key.clone(),
            spec: modality_spec(options, path, key),
        })
        .collect();
    let cross = CrossOptions {
        pairs: None,
        parameters: options.objectives,
        shifts: Vec::new(),
        figures: false,
        sample_rows: embgeom_geometry::sharded::DEFAULT_SAMPLE_ROWS,
        queries: None,
    };
    let run = run_modalities(&specs, &options.analysis, &cross, &NoProgress)
        .and_then(ModalitiesRun::with_every_pair)
        .map_err(|error| TrackError::Checkpoint {
            path: path.display().to_string(),
            error,
        })?;
    let first = &run.runs[0].1;
    Ok(CheckpointResult {
        analysis: first.analysis.clone(),
        summary: first.summary.clone(),
        mean_cosines: None,
        labels_hash: labels_hash(&first.labels),
        modalities: run
            .runs
            .iter()
            .map(|(name, r)| (name.clone(), r.analysis.clone()))
            .collect(),
        cross: run.cross,
    })
}

/// Analyse one checkpoint (with the class-mean cosines and a hash of the labels).
fn analyse_checkpoint(path: &Path, options: &TrackOptions) -> Result<CheckpointResult> {
    if !options.modalities.is_empty() {
        return analyse_modalities(path, options);
    }
    let spec = options.inputs.with_embeddings(path);
    let extras = Extras {
        mean_cosines: true,
        ..Extras::default()
    };
    let run = run_analysis(&spec, &options.analysis, extras, &NoProgress).map_err(|error| {
        TrackError::Checkpoint {
            path: path.display().to_string(),
            error,
        }
    })?;
    Ok(CheckpointResult {
        labels_hash: labels_hash(&run.labels),
        analysis: run.analysis,
        summary: run.summary,
        mean_cosines: run
            .mean_cosines
            .map(|m| m.rows().into_iter().map(|r| r.to_vec()).collect()),
        modalities: Vec::new(),
        cross: Vec::new(),
    })
}

/// The checkpoints' results, from the cache or analysed `jobs` at a time (`None` for a
/// checkpoint that failed: its error is in the failures), and how many were analysed.
struct Results {
    results: Vec<Option<CheckpointResult>>,
    analysed: usize,
    failures: Vec<(usize, TrackError)>,
}

fn results(
    checkpoints: &[Checkpoint],
    hashes: &[u64],
    cache: &Cache,
    options: &TrackOptions,
    progress: &dyn Progress,
) -> Results {
    progress.start("checkpoints", checkpoints.len() as u64);
    let slots: Mutex<Vec<Option<CheckpointResult>>> = Mutex::new(vec![None; checkpoints.len()]);
    let store = |i: usize, result: CheckpointResult| {
        if let Ok(mut slots) = slots.lock() {
            slots[i] = Some(result);
        }
    };
    let mut todo = Vec::new();
    for (i, hash) in hashes.iter().enumerate() {
        match cache.read(&cache.path("analysis", &[*hash])) {
            Some(result) => {
                store(i, result);
                progress.advance(1);
            }
            None => todo.push(i),
        }
    }
    let jobs = options
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        })
        .max(1);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, TrackError)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len().max(1)) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { break };
                let c = &checkpoints[i];
                if let Some(name) = c.path.file_name() {
                    progress.note(&name.to_string_lossy());
                }
                let result = analyse_checkpoint(&c.path, options).and_then(|result| {
                    cache.write(&cache.path("analysis", &[hashes[i]]), &result)?;
                    Ok(result)
                });
                match result {
                    Ok(result) => store(i, result),
                    Err(e) => {
                        if let Ok(mut f) = failures.lock() {
                            f.push((i, e));
                        }
                    }
                }
                progress.advance(1);
            });
        }
    });
    progress.finish();
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|(i, _)| *i);
    Results {
        results: slots.into_inner().unwrap_or_default(),
        analysed: todo.len() - failures.len(),
        failures,
    }
}

/// Every checkpoint must describe the same rows in the same order.
fn check_same_rows(checkpoints: &[Checkpoint], results: &[CheckpointResult]) -> Result<()> {
    let (first, reference) = (&checkpoints[0], &results[0]);
    for (c, result) in checkpoints.iter().zip(results).skip(1) {
        let (n0, n) = (reference.analysis.n, result.analysis.n);
        if n != n0 {
            return Err(TrackError::Rows(format!(
                "{}: {n} rows, but {} has {n0}: checkpoints must embed the same rows",
                c.path.display(),
                first.path.display()
            )));
        }
        if result.labels_hash != reference.labels_hash {
            return Err(TrackError::Rows(format!("{}: labels differ from those of {} (order or values): checkpoints must embed the same rows in the same order", c.path.display(), first.path.display())));
        }
    }
    Ok(())
}

/// Load the embeddings (or first view) of a checkpoint for CKA.
fn load_rows(path: &Path, spec: &InputSpec) -> Result<Array2<f64>> {
    let loaded = load(path, &spec.selection())?;
    let matrix = loaded
        .embeddings
        .or(loaded.views.into_iter().next())
        .ok_or_else(|| TrackError::Rows(format!("{}: no embeddings", path.display())))?;
    Ok(Matrix::into_f64(matrix.matrix)?)
}

/// The similarity family (every measure of the similarity catalogue; the sampled ones on
/// their default seeded samples) of each checkpoint with the previous and with the last one
/// (rows correspond), cached by pair; only the previous and the last checkpoint stay loaded.
/// Columns `KEY_previous` and `KEY_last` for every catalogued key (`cka_previous`, ...,
/// `cknna_last`).
fn similarity_columns(
    checkpoints: &[Checkpoint],
    hashes: &[u64],
    cache: &Cache,
    spec: &InputSpec,
    seed: u64,
) -> Result<Vec<(String, Vec<Option<f64>>)>> {
    let sample = SampleOptions {
        seed,
        ..SampleOptions::default()
    };
    let k = checkpoints.len();
    let mut previous: Vec<Option<Similarity>> = vec![None; k];
    let mut last: Vec<Option<Similarity>> = vec![None; k];
    let mut loaded: Vec<Option<Array2<f64>>> = vec![None; k];
    for i in 0..k {
        let pairs = [
            (i.checked_sub(1), &mut previous),
            ((i + 1 < k).then_some(k - 1), &mut last),
        ];
        for (other, out) in pairs {
            let Some(j) = other else { continue };
            let path = cache.path("similarity-family", &[hashes[j], hashes[i]]);
            let value = match cache.read::<Similarity>(&path) {
                Some(v) => v,
                None => {
                    for idx in [i, j] {
                        if loaded[idx].is_none() {
                            loaded[idx] = Some(load_rows(&checkpoints[idx].path, spec)?);
                        }
                    }
                    let (Some(a), Some(b)) = (&loaded[j], &loaded[i]) else {
                        continue;
                    };
                    let family =
                        similarity_family(&[a.view(), b.view()], &sample, &Timings::default())
                            .map_err(|error| TrackError::Checkpoint {
                                path: checkpoints[i].path.display().to_string(),
                                error: embgeom_pipeline::PipelineError::of("similarity")(error),
                            })?;
                    let Some(v) = family[0][1].clone() else {
                        continue;
                    };
                    cache.write(&path, &v)?;
                    v
                }
            };
            out[i] = Some(value);
        }
        if i >= 1 && i - 1 != k - 1 {
            loaded[i - 1] = None;
        }
    }
    let mut columns = Vec::new();
    for measure in SIMILARITY_CATALOGUE {
        for (which, values) in [("previous", &previous), ("last", &last)] {
            let column = values
                .iter()
                .map(|v| v.as_ref().and_then(|s| measure.value(s)))
                .collect();
            columns.push((format!("{}_{which}", measure.key), column));
        }
    }
    Ok(columns)
}

/// The catalogue's scalar metrics that have a value at some checkpoint, in catalogue order;
/// with modalities, the cross-modal readings first, then each modality's metrics as
/// `NAME.METRIC`.
fn metric_table(results: &[CheckpointResult]) -> Vec<(String, Vec<Option<f64>>)> {
    let Some(first) = results.first() else {
        return Vec::new();
    };
    if first.modalities.is_empty() {
        return metrics()
            .map(|m| {
                let values = results.iter().map(|r| m.value(&r.analysis)).collect();
                (m.key.to_string(), values)
            })
            .filter(|(_, values): &(String, Vec<Option<f64>>)| values.iter().any(Option::is_some))
            .collect();
    }
    let readings: Vec<Vec<(String, f64)>> = results
        .iter()
        .map(|r| r.cross.iter().flat_map(cross_values).collect())
        .collect();
    let mut table: Vec<(String, Vec<Option<f64>>)> = readings[0]
        .iter()
        .map(|(column, _)| {
            let values = readings
                .iter()
                .map(|r| r.iter().find(|(c, _)| c == column).map(|(_, v)| *v))
                .collect();
            (column.clone(), values)
        })
        .collect();
    for (k, (name, _)) in first.modalities.iter().enumerate() {
        for m in metrics() {
            let values: Vec<Option<f64>> = results
                .iter()
                .map(|r| r.modalities.get(k).and_then(|(_, a)| m.value(a)))
                .collect();
            if values.iter().any(Option::is_some) {
                table.push((format!("{name}.{}", m.key), values));
            }
        }
    }
    table
}

fn cosines(result: &CheckpointResult, step: f64) -> Option<Cosines> {
    let rows = result.mean_cosines.as_ref()?;
    let c = rows.len();
    let values: Vec<f64> = rows.iter().flatten().copied().collect();
    Some(Cosines {
        step,
        matrix: Array2::from_shape_vec((c, c), values).ok()?,
        names: result
            .analysis
            .per_class
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    })
}

/// One run's checkpoints, results and table in a pass.
struct RunRound {
    name: String,
    run: String,
    steps: Vec<f64>,
    files: Vec<String>,
    results: Vec<CheckpointResult>,
    table: Vec<(String, Vec<Option<f64>>)>,
    analysed: usize,
    failed: Vec<(PathBuf, String)>,
}

/// Discover one run's checkpoints, analyse the new ones, compute CKA and its table.
fn run_round(
    run: &str,
    name: &str,
    cache: &Cache,
    options: &TrackOptions,
    progress: &dyn Progress,
) -> Result<RunRound> {
    let checkpoints = discover(run)?;
    let hashes = checkpoints
        .iter()
        .map(|c| file_hash(&c.path))
        .collect::<Result<Vec<_>>>()?;
    let Results {
        results,
        analysed,
        failures,
    } = results(&checkpoints, &hashes, cache, options, progress);
    let failed: Vec<(PathBuf, String)> = failures
        .into_iter()
        .map(|(i, e)| (checkpoints[i].path.clone(), e.to_string()))
        .collect();
    // The checkpoints that could be analysed go on; the others are listed as failed.
    let (checkpoints, kept): (Vec<Checkpoint>, Vec<(u64, CheckpointResult)>) = checkpoints
        .into_iter()
        .zip(hashes.into_iter().zip(results))
        .filter_map(|(c, (h, r))| r.map(|r| (c, (h, r))))
        .unzip();
    let (hashes, results): (Vec<u64>, Vec<CheckpointResult>) = kept.into_iter().unzip();
    if checkpoints.is_empty() {
        let (path, error) = failed.into_iter().next().unwrap_or_default();
        return Err(TrackError::Rows(format!(
            "{run}: no checkpoint could be analysed; the first: {}: {error}",
            path.display()
        )));
    }
    check_same_rows(&checkpoints, &results)?;
    // With modalities, CKA between checkpoints is the first modality's.
    let cka_spec = match options.modalities.first() {
        Some(key) => InputSpec {
            key: Some(key.clone()),
            ..options.inputs.clone()
        },
        None => options.inputs.clone(),
    };
    let mut table = metric_table(&results);
    table.extend(similarity_columns(
        &checkpoints,
        &hashes,
        cache,
        &cka_spec,
        options.analysis.knn.seed,
    )?);
    Ok(RunRound {
        name: name.to_string(),
        run: run.to_string(),
        steps: checkpoints.iter().map(|c| c.step).collect(),
        files: checkpoints
            .iter()
            .map(|c| c.path.display().to_string())
            .collect(),
        results,
        table,
        analysed,
        failed,
    })
}

/// `metrics.csv` and `metrics.parquet`: `step, file, metrics...`, with a leading `run`
/// column when there are several runs (a metric a run lacks is empty).
fn write_tables(runs: &[RunRound], out: &Path) -> Result<()> {
    let mut metric_names: Vec<&str> = Vec::new();
    for run in runs {
        for (name, _) in &run.table {
            if !metric_names.contains(&name.as_str()) {
                metric_names.push(name);
            }
        }
    }
    let mut columns = Vec::new();
    if runs.len() > 1 {
        columns.push(Column::Text(
            "run".into(),
            runs.iter()
                .flat_map(|r| std::iter::repeat_n(r.name.clone(), r.steps.len()))
                .collect(),
        ));
    }
    columns.push(Column::Float(
        "step".into(),
        runs.iter()
            .flat_map(|r| r.steps.iter().map(|&s| Some(s)))
            .collect(),
    ));
    columns.push(Column::Text(
        "file".into(),
        runs.iter().flat_map(|r| r.files.iter().cloned()).collect(),
    ));
    for name in metric_names {
        let values = runs
            .iter()
            .flat_map(|r| match r.table.iter().find(|(n, _)| n == name) {
                Some((_, v)) => v.clone(),
                None => vec![None; r.steps.len()],
            })
            .collect();
        columns.push(Column::Float(name.to_string(), values));
    }
    write_table(
        columns,
        &out.join("metrics.csv"),
        &out.join("metrics.parquet"),
    )?;
    Ok(())
}

/// One pass over the runs.
fn round(options: &TrackOptions, progress: &dyn Progress) -> Result<RoundOutcome> {
    let cache = Cache::new(
        options.out.join(".cache"),
        &options.inputs,
        &options.analysis,
        &options.modalities,
    )?;
    let names = run_names(&options.runs);
    let runs = options
        .runs
        .iter()
        .zip(&names)
        .map(|(run, name)| run_round(run, name, &cache, options, progress))
        .collect::<Result<Vec<_>>>()?;
    write_tables(&runs, &options.out)?;
    let series: Vec<RunSeries> = runs
        .iter()
        .map(|r| RunSeries {
            name: &r.name,
            steps: &r.steps,
            table: &r.table,
        })
        .collect();
    let checks = options
        .checks
        .iter()
        .map(|check| check.evaluate(&series))
        .collect::<Result<Vec<_>>>()?;

    let first = &runs[0].results[0].analysis;
    let checkpoints: usize = runs.iter().map(|r| r.steps.len()).sum();
    let analysed: usize = runs.iter().map(|r| r.analysed).sum();
    let mut inputs: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            let k = r.steps.len();
            let label = match runs.len() {
                1 => "run".to_string(),
                _ => format!("run {}", r.name),
            };
            (
                label,
                format!(
                    "{}: {k} checkpoints, steps {} to {}",
                    r.run,
                    r.steps[0],
                    r.steps[k - 1]
                ),
            )
        })
        .collect();
    inputs.extend([
        ("rows N".into(), first.n.to_string()),
        ("dimension D".into(), first.dim.to_string()),
        (
            "classes C".into(),
            first
                .num_classes
                .map_or_else(|| "none".into(), |c| c.to_string()),
        ),
        (
            "labels".into(),
            runs[0].results[0]
                .summary
                .labels
                .clone()
                .unwrap_or_else(|| "none".into()),
        ),
    ]);
    let trajectory = Trajectory {
        title: format!("embgeom track: {}", options.name),
        inputs,
        checks: checks
            .iter()
            .map(|c| (c.check.clone(), c.passed, c.detail.clone()))
            .collect(),
        signature: signature(options),
        runs: runs
            .iter()
            .map(|r| {
                let k = r.steps.len();
                RunTrajectory {
                    name: r.name.clone(),
                    first_cosines: cosines(&r.results[0], r.steps[0]),
                    last_cosines: cosines(&r.results[k - 1], r.steps[k - 1]),
                    eigenvalues: r
                        .results
                        .iter()
                        .map(|x| x.analysis.spectrum.eigenvalues.clone())
                        .collect(),
                    steps: r.steps.clone(),
                    files: r.files.clone(),
                    metrics: r.table.clone(),
                }
            })
            .collect(),
    };
    let written = write_trajectory(&options.out, &trajectory)?;
    Ok(RoundOutcome {
        checkpoints,
        analysed,
        cached: checkpoints - analysed,
        index: written.index,
        checks,
        failed: runs.into_iter().flat_map(|r| r.failed).collect(),
    })
}
