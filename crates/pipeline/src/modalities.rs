//! Paired modalities (`analyze --modalities image.npy text.npy`): every modality's own
//! analysis, the gap matrix of all of them, and for each two of them the gap, exact retrieval
//! both ways, the objectives over all pairs and the shift experiment.

use crate::error::{PipelineError, Result};
use crate::inputs::{load_inputs, InputSpec, Inputs, Rows};
use crate::run::{analyze_inputs, Extras, Run};
use crate::sharded::{ShardJob, ShardedDataset};
use crate::{analysis_document, text_table};
use embgeom_geometry::cross_catalogue::CROSS_CATALOGUE;
use embgeom_geometry::modalities::{
    cross_modal, cross_modal_sharded, gap_matrix, pair_shard, sharded_cross_modal, shifted_shard,
    CrossModal, PairContext, PairShard, PairedRetrieval,
};
use embgeom_geometry::timings::{StageTime, Timings};
use embgeom_geometry::{
    cross_figure_data, normalize_rows, shard_tally, AnalysisOptions, CrossFigureData,
    ObjectiveParameters, PairMap, Progress, QuerySubset, Real, SetSums, ShardTally,
};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The schema name of the modalities document.
pub const MODALITIES_SCHEMA: &str = "embgeom.modalities/1";

/// One modality: its name and what to read.
#[derive(Debug, Clone)]
pub struct ModalitySpec {
    /// The name (the file stem unless given).
    pub name: String,
    /// The file and how to read it (labels apply to every modality).
    pub spec: InputSpec,
}

/// What the cross-modal part needs besides the files.
#[derive(Debug, Clone)]
pub struct CrossOptions {
    /// For each row of the second modality, its row of the first (a file of integers, or the
    /// values); without it row i pairs with row i.
    pub pairs: Option<PairFile>,
    /// InfoNCE's temperature and SigLIP's scale and bias.
    pub parameters: ObjectiveParameters,
    /// The shift experiment's fractions of the gap closed.
    pub shifts: Vec<f64>,
    /// Compute the numbers behind the figures (each modality's and each pair's).
    pub figures: bool,
    /// Sharded modalities: rows of each one's seeded sample for the uniformity (as
    /// `analyze --sample-rows`).
    pub sample_rows: usize,
    /// Retrieval's queries: every row (`None`), or a seeded subset of at most this many rows
    /// of each modality (the objectives then left out).
    pub queries: Option<usize>,
}

/// A modalities run.
pub struct ModalitiesRun {
    /// Each modality's name and analysis.
    pub runs: Vec<(String, Run)>,
    /// The gap distances between every two modalities (`None` between modalities of different
    /// widths).
    pub gap_matrix: Array2<Option<f64>>,
    /// Each two modalities (i < j) of the same width measured together.
    pub cross: Vec<CrossModal>,
    /// Why two modalities were not measured together (different widths).
    pub notes: Vec<String>,
    /// The cross-modal stages' timings.
    pub timings: Vec<StageTime>,
    /// The numbers behind each pair's figures (with `figures`, when both have the same D).
    pub figures: Vec<Option<CrossFigureData>>,
}

impl ModalitiesRun {
    /// The run, or (where some modalities were not measured together: different widths) an
    /// error that says why; for what needs every pair (`compare`, `track`).
    pub fn with_every_pair(self) -> Result<ModalitiesRun> {
        match self.notes.is_empty() {
            true => Ok(self),
            false => Err(PipelineError::Inputs(self.notes.join("; "))),
        }
    }
}

/// The rows of one modality as analysed (normalised unless the spec says not), in f64 or f32.
enum Prepared {
    F32(Array2<f32>, Array2<f32>),
    F64(Array2<f64>, Array2<f64>),
}

impl Prepared {
    /// The rows as analysed and as given, in f64 (for a pair that is not both f32).
    fn widened(&self) -> (Array2<f64>, Array2<f64>) {
        match self {
            Prepared::F32(u, r) => (u.mapv(f64::from), r.mapv(f64::from)),
            Prepared::F64(u, r) => (u.clone(), r.clone()),
        }
    }
}

/// A modality's rows as analysed (normalised when `normalize`) and as given.
fn prepared(rows: &Rows, normalize: bool) -> Result<Prepared> {
    fn unit_and_raw<F: Real>(
        raw: Array2<F>,
        normalize: bool,
        source: &str,
    ) -> Result<(Array2<F>, Array2<F>)> {
        let unit = match normalize {
            true => normalize_rows(raw.view()).map_err(PipelineError::of(source))?,
            false => raw.clone(),
        };
        Ok((unit, raw))
    }
    let out = match rows.values.f32_view() {
        Some(view) => {
            let (unit, raw) = unit_and_raw(view.to_owned(), normalize, &rows.source)?;
            Prepared::F32(unit, raw)
        }
        None => {
            let (unit, raw) = unit_and_raw(rows.values.to_f64(), normalize, &rows.source)?;
            Prepared::F64(unit, raw)
        }
    };
    rows.values.check_unchanged()?;
    Ok(out)
}

/// The pair map from a file of integers, named in its errors.
fn pair_map(path: &Path, a_rows: usize, b_rows: usize) -> Result<PairMap> {
    let name = path.display().to_string();
    let labels = embgeom_io::load_array(path, None, &["pairs"], &Default::default())
        .and_then(|array| array.into_labels())
        .map_err(|e| PipelineError::Inputs(format!("pair map: {e}")))?;
    match labels.values {
        embgeom_io::LabelValues::Int(values) => map_of(&values, a_rows, b_rows, &name),
        embgeom_io::LabelValues::Text(_) => Err(PipelineError::Inputs(format!(
            "{name}: the pair map holds text; it needs row numbers of the first modality"
        ))),
    }
}

/// The pair map of `values` (for each row of the second modality, its row of the first),
/// named `name` in its errors.
fn map_of(values: &[i64], a_rows: usize, b_rows: usize, name: &str) -> Result<PairMap> {
    if values.len() != b_rows {
        return Err(PipelineError::Inputs(format!(
            "{name}: the pair map has {} entries for the second modality's {b_rows} rows",
            values.len()
        )));
    }
    let of_b = values
        .iter()
        .enumerate()
        .map(|(j, &v)| {
            usize::try_from(v).map_err(|_| {
                PipelineError::Inputs(format!("{name}: entry {j} is {v}, not a row number"))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    PairMap::new(of_b, a_rows).map_err(|e| PipelineError::Inputs(format!("{name}: {e}")))
}

/// Both sets in one precision (f32 only when both are f32).
fn cross_of(
    names: (&str, &str),
    a: &Prepared,
    b: &Prepared,
    map: &PairMap,
    (cross, seed): (&CrossOptions, u64),
    timings: &Timings,
) -> Result<CrossModal> {
    fn run<F: Real>(
        names: (&str, &str),
        a: (ArrayView2<F>, ArrayView2<F>),
        b: (ArrayView2<F>, ArrayView2<F>),
        map: &PairMap,
        (cross, seed): (&CrossOptions, u64),
        timings: &Timings,
    ) -> Result<CrossModal> {
        let queries = cross.queries.map(|rows| QuerySubset { rows, seed });
        Ok(cross_modal(
            names,
            a,
            b,
            map,
            &cross.parameters,
            queries.as_ref(),
            &cross.shifts,
            timings,
        )?)
    }
    match (a, b) {
        (Prepared::F32(ua, ra), Prepared::F32(ub, rb)) => run(
            names,
            (ua.view(), ra.view()),
            (ub.view(), rb.view()),
            map,
            (cross, seed),
            timings,
        ),
        _ => {
            let ((ua, ra), (ub, rb)) = (a.widened(), b.widened());
            run(
                names,
                (ua.view(), ra.view()),
                (ub.view(), rb.view()),
                map,
                (cross, seed),
                timings,
            )
        }
    }
}

/// The numbers behind the figures of two modalities of the same D.
fn figures_of(a: &Prepared, b: &Prepared, map: &PairMap, seed: u64) -> Result<CrossFigureData> {
    let data = match (a, b) {
        (Prepared::F32(ua, _), Prepared::F32(ub, _)) => {
            cross_figure_data(ua.view(), ub.view(), &map.of_b, seed)
        }
        (Prepared::F64(ua, _), Prepared::F64(ub, _)) => {
            cross_figure_data(ua.view(), ub.view(), &map.of_b, seed)
        }
        _ => {
            let ((ua, _), (ub, _)) = (a.widened(), b.widened());
            cross_figure_data(ua.view(), ub.view(), &map.of_b, seed)
        }
    };
    Ok(data?)
}

fn dims(p: &Prepared) -> (usize, usize) {
    match p {
        Prepared::F32(u, _) => u.dim(),
        Prepared::F64(u, _) => u.dim(),
    }
}

fn sums(p: &Prepared) -> SetSums {
    match p {
        Prepared::F32(u, r) => SetSums::of(u.view(), r.view()),
        Prepared::F64(u, r) => SetSums::of(u.view(), r.view()),
    }
}

/// Analyse two or more modality files: each one's own analysis (as `run_analysis` on its
/// file), the gap matrix, and every two of them together. With a pair map there must be two.
pub fn run_modalities(
    modalities: &[ModalitySpec],
    options: &AnalysisOptions,
    cross: &CrossOptions,
    progress: &dyn Progress,
) -> Result<ModalitiesRun> {
    if let Some(jobs) = ModalityJobs::of(modalities, options, cross)? {
        if cross.figures {
            return Err(PipelineError::Inputs(
                "the report of modalities reads files; sharded directories are measured by analyze --modalities".into(),
            ));
        }
        return run_sharded_modalities(&jobs, progress);
    }
    let mut named = Vec::new();
    for m in modalities {
        let inputs = Inputs::from_loaded(load_inputs(&m.spec)?, m.spec.embeddings.as_deref())?;
        named.push((m.name.clone(), inputs, m.spec.normalize));
    }
    analyze_modalities(named, options, cross, progress)
}

/// Where a pair map comes from.
#[derive(Debug, Clone)]
pub enum PairFile {
    /// A file of integers.
    Path(PathBuf),
    /// The values (from a caller).
    Values(Vec<i64>),
}

/// Analyse two or more modalities' inputs (files already read, or a caller's arrays): each
/// one's own analysis, the gap matrix and every two of them together.
pub fn analyze_modalities(
    modalities: Vec<(String, Inputs, bool)>,
    options: &AnalysisOptions,
    cross: &CrossOptions,
    progress: &dyn Progress,
) -> Result<ModalitiesRun> {
    at_least_two(modalities.len())?;
    if cross.pairs.is_some() && modalities.len() != 2 {
        return Err(PipelineError::Inputs(format!(
            "a pair map pairs two modalities; {} were given",
            modalities.len()
        )));
    }
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    let mut names = Vec::new();
    for (name, inputs, normalize) in modalities {
        let embeddings = inputs
            .embeddings
            .as_ref()
            .ok_or_else(|| PipelineError::Inputs(format!("modality {name}: no embeddings")))?;
        rows.push(prepared(embeddings, normalize)?);
        let extras = Extras {
            figures: cross.figures,
            ..Extras::default()
        };
        let run = analyze_inputs(inputs, normalize, options, extras, progress)?;
        runs.push((name.clone(), run));
        names.push(name);
    }
    let timings = Timings::default();
    let matrix = gap_matrix(&rows.iter().map(sums).collect::<Vec<_>>());
    let mut pairs = Vec::new();
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let ((na, da), (nb, db)) = (dims(&rows[i]), dims(&rows[j]));
            if da != db {
                notes.push(different_widths(&names[i], &names[j], da, db));
                continue;
            }
            let map = match &cross.pairs {
                Some(PairFile::Path(path)) => pair_map(path, na, nb)?,
                Some(PairFile::Values(values)) => map_of(values, na, nb, "pair map")?,
                None if na == nb => PairMap::identity(na),
                None => {
                    return Err(PipelineError::Inputs(format!(
                        "modalities {} ({na} rows) and {} ({nb} rows) differ in rows: give --pair-map (for each row of the second, its row of the first)",
                        names[i], names[j]
                    )))
                }
            };
            let pair_names = (names[i].as_str(), names[j].as_str());
            pairs.push(cross_of(
                pair_names,
                &rows[i],
                &rows[j],
                &map,
                (cross, options.seed),
                &timings,
            )?);
            figures.push(match cross.figures {
                true => Some(figures_of(&rows[i], &rows[j], &map, options.seed)?),
                false => None,
            });
        }
    }
    Ok(ModalitiesRun {
        runs,
        gap_matrix: matrix,
        cross: pairs,
        notes,
        timings: timings.stages(),
        figures,
    })
}

/// Why two modalities of different widths are not measured together.
fn different_widths(first: &str, second: &str, da: usize, db: usize) -> String {
    format!(
        "modalities {first} and {second} have {da} and {db} dimensions: the gap, retrieval and the objectives need one space, so they are not measured together (each is analysed on its own)"
    )
}

/// Two or more modalities held as sharded directories of row-matched shards (LAION's
/// `img_emb/img_emb_N.npy` and `text_emb/text_emb_N.npy`: row i of shard N of each is one
/// item): each one's shard job and every two of them as a [`PairJob`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModalityJobs {
    /// Each modality's name and shard job.
    pub modalities: Vec<(String, ShardJob)>,
    /// Every two of them, in the order (0, 1), (0, 2), ..., (1, 2), ...
    pub pairs: Vec<PairJob>,
}

impl ModalityJobs {
    /// The jobs of `modalities` when every one is a directory of shards; `None` when none is.
    pub fn of(
        modalities: &[ModalitySpec],
        options: &AnalysisOptions,
        cross: &CrossOptions,
    ) -> Result<Option<ModalityJobs>> {
        let sharded = |m: &ModalitySpec| {
            m.spec
                .embeddings
                .as_deref()
                .is_some_and(ShardedDataset::is_sharded)
        };
        match modalities.iter().filter(|m| sharded(m)).count() {
            0 => return Ok(None),
            n if n == modalities.len() => {}
            _ => {
                return Err(PipelineError::Inputs(
                    "modalities: either every one is a directory of shards or none is".into(),
                ))
            }
        }
        at_least_two(modalities.len())?;
        if cross.pairs.is_some() {
            return Err(PipelineError::Inputs(
                "sharded modalities pair row i of shard N of each; a pair map is not supported for them".into(),
            ));
        }
        if cross.queries.is_some() {
            return Err(PipelineError::Inputs(
                "sharded modalities retrieve every row; a query subset is not supported for them"
                    .into(),
            ));
        }
        let mut jobs = Vec::new();
        for m in modalities {
            let dir = m.spec.embeddings.as_deref().unwrap_or(Path::new("."));
            let dataset = ShardedDataset::discover(dir, &m.spec)?;
            jobs.push((
                m.name.clone(),
                ShardJob::new(dataset, options, cross.sample_rows)?,
            ));
        }
        let mut pairs = Vec::new();
        for i in 0..jobs.len() {
            for j in i + 1..jobs.len() {
                let names = (jobs[i].0.as_str(), jobs[j].0.as_str());
                pairs.push(PairJob::new(
                    names,
                    jobs[i].1.clone(),
                    jobs[j].1.clone(),
                    cross,
                )?);
            }
        }
        Ok(Some(ModalityJobs {
            modalities: jobs,
            pairs,
        }))
    }

    /// The jobs as JSON (for a distributed engine).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Run sharded modalities here: each one's sharded analysis, then every pair's tasks in order;
/// equal to the analysis of the concatenated files.
pub fn run_sharded_modalities(
    jobs: &ModalityJobs,
    progress: &dyn Progress,
) -> Result<ModalitiesRun> {
    let mut runs = Vec::new();
    for (name, job) in &jobs.modalities {
        runs.push((name.clone(), job.run(progress)?));
    }
    let timings = Timings::default();
    let pairs = jobs
        .pairs
        .iter()
        .map(|p| p.run(&timings))
        .collect::<Result<Vec<_>>>()?;
    Ok(ModalitiesRun {
        gap_matrix: pair_gap_matrix(runs.len(), &pairs),
        runs,
        figures: vec![None; pairs.len()],
        cross: pairs,
        notes: Vec::new(),
        timings: timings.stages(),
    })
}

/// Modalities come in twos or more.
fn at_least_two(count: usize) -> Result<()> {
    match count {
        0 | 1 => Err(PipelineError::Inputs(format!(
            "modalities: two or more are needed, {count} given"
        ))),
        _ => Ok(()),
    }
}

/// Two sharded modalities measured together as tasks, for Ray or any engine (and run here by
/// [`PairJob::run`]): per configuration (0: the rows as given; i: shift step i - 1) a first
/// round of one task per shard ([`PairJob::first_round`], gathered by
/// [`embgeom_geometry::modalities::pair_context`]) and a second of one task per shard pair
/// ([`PairJob::second_round`], merged by [`embgeom_geometry::modalities::pair_retrieval`]);
/// [`embgeom_geometry::modalities::sharded_cross_modal`] assembles the measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairJob {
    /// The two modalities' names.
    pub names: (String, String),
    /// Their shards and plans.
    pub jobs: (ShardJob, ShardJob),
    /// InfoNCE's temperature and SigLIP's scale and bias.
    pub parameters: ObjectiveParameters,
    /// The shift experiment's fractions of the gap closed.
    pub shifts: Vec<f64>,
}

impl PairJob {
    /// The pair of `a` and `b`, whose shards must match row for row.
    pub fn new(
        names: (&str, &str),
        a: ShardJob,
        b: ShardJob,
        cross: &CrossOptions,
    ) -> Result<PairJob> {
        if a.plan.rows != b.plan.rows {
            let at = a
                .plan
                .rows
                .iter()
                .zip(&b.plan.rows)
                .position(|(x, y)| x != y)
                .unwrap_or(a.plan.rows.len().min(b.plan.rows.len()));
            let describe =
                |job: &ShardJob| match (job.dataset.shards.get(at), job.plan.rows.get(at)) {
                    (Some(shard), Some(rows)) => {
                        format!("{} has {rows} rows", shard.embeddings.display())
                    }
                    _ => format!(
                        "{} has {} shards",
                        job.dataset.root.display(),
                        job.plan.rows.len()
                    ),
                };
            return Err(PipelineError::Inputs(format!(
                "modalities {} and {} are not row-matched shard by shard: {}, {}",
                names.0,
                names.1,
                describe(&a),
                describe(&b)
            )));
        }
        Ok(PairJob {
            names: (names.0.to_string(), names.1.to_string()),
            jobs: (a, b),
            parameters: cross.parameters,
            shifts: cross.shifts.clone(),
        })
    }

    /// Rows of each shard (the same in both modalities).
    pub fn shard_rows(&self) -> Vec<usize> {
        self.jobs.0.plan.rows.iter().map(|&n| n as usize).collect()
    }

    /// Configurations: the rows as given, then each shift step.
    pub fn configurations(&self) -> usize {
        1 + self.shifts.len()
    }

    fn names(&self) -> (&str, &str) {
        (&self.names.0, &self.names.1)
    }

    /// The half gap vector of configuration `config` (none for 0), from the first
    /// configuration's context `base`.
    fn half(
        &self,
        config: usize,
        base: Option<&PairContext>,
    ) -> Result<Option<ndarray::Array1<f64>>> {
        match (config, base) {
            (0, _) => Ok(None),
            (c, Some(base)) => match self.shifts.get(c - 1) {
                Some(&fraction) => Ok(Some(base.half_shift(fraction))),
                None => Err(PipelineError::Inputs(format!(
                    "configuration {c} of {}",
                    self.configurations()
                ))),
            },
            (c, None) => Err(PipelineError::Inputs(format!(
                "configuration {c} (a shift step) needs the first configuration's context"
            ))),
        }
    }

    /// Shard `k` of set `set` in `F`, as measured in a configuration (moved by `half`).
    fn rows<F: Real>(
        &self,
        set: usize,
        k: usize,
        half: Option<&ndarray::Array1<f64>>,
    ) -> Result<(Array2<F>, Option<Array2<F>>)> {
        let job = [&self.jobs.0, &self.jobs.1][set];
        let (unit, raw) = job.unit_and_raw::<F>(k)?;
        let name = [&self.names.0, &self.names.1][set];
        match half {
            None => Ok((unit, raw)),
            Some(half) => Ok((
                shifted_shard(unit.view(), set, half).map_err(PipelineError::of(name.as_str()))?,
                None,
            )),
        }
    }

    fn single(&self) -> bool {
        self.jobs.0.single_precision && self.jobs.1.single_precision
    }

    /// The first round of configuration `config` on shard `k`.
    pub fn first_round(
        &self,
        config: usize,
        k: usize,
        base: Option<&PairContext>,
    ) -> Result<PairShard> {
        fn run<F: Real>(
            job: &PairJob,
            k: usize,
            half: Option<&ndarray::Array1<f64>>,
        ) -> Result<PairShard> {
            let ((a, a_raw), (b, b_raw)) = (job.rows::<F>(0, k, half)?, job.rows::<F>(1, k, half)?);
            let (a_raw, b_raw) = (a_raw.as_ref().unwrap_or(&a), b_raw.as_ref().unwrap_or(&b));
            pair_shard(
                job.names(),
                k,
                (a.view(), a_raw.view()),
                (b.view(), b_raw.view()),
            )
            .map_err(PipelineError::of(format!("shard {k}")))
        }
        let half = self.half(config, base)?;
        match self.single() {
            true => run::<f32>(self, k, half.as_ref()),
            false => run::<f64>(self, k, half.as_ref()),
        }
    }

    /// The second round of configuration `config` on query shard `k` of the first modality
    /// and gallery shard `l` of the second (and the other way), `context` that configuration's.
    pub fn second_round(
        &self,
        config: usize,
        (k, l): (usize, usize),
        base: Option<&PairContext>,
        context: &PairContext,
    ) -> Result<ShardTally> {
        fn run<F: Real>(
            job: &PairJob,
            (k, l): (usize, usize),
            half: Option<&ndarray::Array1<f64>>,
            context: &PairContext,
        ) -> Result<ShardTally> {
            let (a, b) = (job.rows::<F>(0, k, half)?.0, job.rows::<F>(1, l, half)?.0);
            shard_tally(
                (k, a.view()),
                (l, b.view()),
                &context.shard_rows,
                &context.tops,
                &job.parameters,
            )
            .map_err(PipelineError::of(format!("shards {k} and {l}")))
        }
        let half = self.half(config, base)?;
        match self.single() {
            true => run::<f32>(self, (k, l), half.as_ref(), context),
            false => run::<f64>(self, (k, l), half.as_ref(), context),
        }
    }

    /// The measurement from every configuration's context and retrieval, in order.
    pub fn finish(
        &self,
        configurations: Vec<(PairContext, PairedRetrieval)>,
    ) -> Result<CrossModal> {
        let mut configurations = configurations.into_iter();
        let Some((base, now)) = configurations.next() else {
            return Err(PipelineError::Inputs(
                "no configuration was measured".into(),
            ));
        };
        let steps = self
            .shifts
            .iter()
            .zip(configurations)
            .map(|(&f, (context, retrieval))| (f, context, retrieval))
            .collect();
        sharded_cross_modal(self.names(), (&base, now), steps, &self.parameters).map_err(
            PipelineError::of(format!("modalities {} and {}", self.names.0, self.names.1)),
        )
    }

    /// Run every task here, in order.
    pub fn run(&self, timings: &Timings) -> Result<CrossModal> {
        fn local<F: Real>(
            job: &PairJob,
            timings: &Timings,
        ) -> embgeom_geometry::Result<CrossModal> {
            let load = |set: usize, k: usize| job.rows::<F>(set, k, None).map_err(as_geometry);
            cross_modal_sharded(
                job.names(),
                &job.shard_rows(),
                &load,
                &job.parameters,
                &job.shifts,
                timings,
            )
        }
        let measured = match self.single() {
            true => local::<f32>(self, timings),
            false => local::<f64>(self, timings),
        };
        measured.map_err(PipelineError::of(format!(
            "modalities {} and {}",
            self.names.0, self.names.1
        )))
    }

    /// The job as JSON (for the tasks of a distributed engine).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A job from [`PairJob::to_json`].
    pub fn from_json(json: &str) -> Result<PairJob> {
        serde_json::from_str(json)
            .map_err(|e| PipelineError::Inputs(format!("not an embgeom pair job: {e}")))
    }
}

/// The gap matrix of `count` modalities from the gaps of every two of them (in the order
/// `(0, 1), (0, 2), ..., (1, 2), ...`).
pub fn pair_gap_matrix(count: usize, pairs: &[CrossModal]) -> Array2<Option<f64>> {
    let mut matrix = Array2::from_shape_fn((count, count), |(i, j)| (i == j).then_some(0.0));
    let mut next = pairs.iter();
    for i in 0..count {
        for j in i + 1..count {
            if let Some(c) = next.next() {
                matrix[[i, j]] = Some(c.gap.distance);
                matrix[[j, i]] = Some(c.gap.distance);
            }
        }
    }
    matrix
}

/// A shard's reading error inside a geometry stage, with its message kept.
fn as_geometry(error: PipelineError) -> embgeom_geometry::GeometryError {
    embgeom_geometry::GeometryError::Source {
        what: error.to_string(),
    }
}

/// The `embgeom.modalities/1` document: each modality's analysis document, the gap matrix and
/// the cross-modal measurements.
pub fn modalities_document(run: &ModalitiesRun) -> Value {
    let names: Vec<&str> = run.runs.iter().map(|(n, _)| n.as_str()).collect();
    json!({
        "schema": MODALITIES_SCHEMA,
        "modalities": run.runs.iter().map(|(name, r)| json!({
            "name": name,
            "analysis": analysis_document(&r.analysis, &r.summary),
        })).collect::<Vec<_>>(),
        "gap_matrix": {
            "names": names,
            "distances": run.gap_matrix.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
            "of": "||m_i - m_j||, m the centroid of a modality's unit rows",
        },
        "pairs": run.cross.iter().map(cross_document).collect::<Vec<_>>(),
        "notes": run.notes,
    })
}

/// One pair of modalities as JSON, with both naming conventions of retrieval.
fn cross_document(c: &CrossModal) -> Value {
    let direction = |s: &embgeom_geometry::RetrievalSummary| {
        json!({
            "queries": s.queries,
            "recall_at_1": s.recall_at[0],
            "recall_at_5": s.recall_at[1],
            "recall_at_10": s.recall_at[2],
            "mean_rank": s.mean_rank,
            "median_rank": s.median_rank,
            "mrr": s.mrr,
            "tied_queries": s.tied_queries,
            "recall_curve": s.recall_curve,
        })
    };
    let retrieval = |r: &embgeom_geometry::modalities::PairedRetrieval| {
        json!({
            format!("{}_to_{}", c.names.0, c.names.1): direction(&r.a_to_b),
            format!("{}_to_{}", c.names.1, c.names.0): direction(&r.b_to_a),
            "info_nce": r.info_nce,
            "siglip": r.siglip,
        })
    };
    let names = (c.names.0.as_str(), c.names.1.as_str());
    let mut metrics = serde_json::Map::new();
    for m in CROSS_CATALOGUE {
        for &about in m.about {
            metrics.insert(
                m.column(about, names),
                json!({
                    "value": m.value(c, about),
                    "name": m.name,
                    "definition": m.definition(c),
                    "paper": m.paper.short,
                    "direction": m.direction.as_str(),
                    "ideal": m.ideal(),
                }),
            );
        }
    }
    json!({
        "first": c.names.0,
        "second": c.names.1,
        "rows": [c.rows.0, c.rows.1],
        "metrics": metrics,
        "gap": c.gap,
        "retrieval": retrieval(&c.retrieval),
        "conventions": {
            "first_to_second": "open_clip's image_to_text when the first is the images; CLIP_benchmark's text_retrieval",
            "second_to_first": "open_clip's text_to_image; CLIP_benchmark's image_retrieval",
            "rank": "1 + the negatives strictly more similar than the best positive (ties to the positive; tied_queries counts them)",
            "queries": match c.retrieval.a_to_b.queries == c.rows.0 && c.retrieval.b_to_a.queries == c.rows.1 {
                true => "every row of each modality, against every row of the other".to_string(),
                false => "a seeded subset of each modality's rows (--retrieval-queries), against every row of the other; the objectives need every row and are left out".to_string(),
            },
        },
        "parameters": c.parameters,
        "shift": c.shift.iter().map(|s| json!({
            "fraction": s.fraction,
            "distance": s.distance,
            "retrieval": retrieval(&s.retrieval),
        })).collect::<Vec<_>>(),
    })
}

/// The table for people: each modality's table, the gap matrix, and each pair's readings.
pub fn modalities_table(run: &ModalitiesRun) -> String {
    let mut out = String::new();
    for (name, r) in &run.runs {
        out.push_str(&format!("== modality {name}\n"));
        out.push_str(&text_table(&r.analysis, &r.summary));
        out.push('\n');
    }
    let names: Vec<&str> = run.runs.iter().map(|(n, _)| n.as_str()).collect();
    out.push_str("== gap matrix (distance between the centroids of the unit rows)\n");
    out.push_str(&format!("{:>12}", ""));
    for n in &names {
        out.push_str(&format!(" {n:>12}"));
    }
    out.push('\n');
    for (i, row) in run.gap_matrix.rows().into_iter().enumerate() {
        out.push_str(&format!("{:>12}", names[i]));
        for v in row {
            match v {
                Some(v) => out.push_str(&format!(" {v:>12.6}")),
                None => out.push_str(&format!(" {:>12}", "-")),
            }
        }
        out.push('\n');
    }
    for note in &run.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for c in &run.cross {
        let (a, b) = (&c.names.0, &c.names.1);
        out.push_str(&format!("\n== {a} and {b}\n"));
        let line = |out: &mut String, label: &str, value: String, reading: &str| {
            out.push_str(&format!("  {label:<40} {value:>12}  {reading}\n"));
        };
        let names = (a.as_str(), b.as_str());
        for m in CROSS_CATALOGUE {
            for &about in m.about {
                let Some(value) = m.value(c, about) else {
                    continue;
                };
                let column = m.column(about, names);
                let label = match column.split_once('.') {
                    Some((_, of)) => format!("{} ({of})", m.name),
                    None => m.name.to_string(),
                };
                line(&mut out, &label, format!("{value:.6}"), m.reading);
            }
        }
        let top: Vec<String> = c
            .gap
            .components
            .iter()
            .take(3)
            .map(|x| format!("d{} ({:.0}%)", x.dimension, 100.0 * x.share))
            .collect();
        line(
            &mut out,
            "largest gap components",
            String::new(),
            &top.join(", "),
        );
        for s in &c.shift {
            line(
                &mut out,
                &format!("shift {:.0}% of the gap: R@1", 100.0 * s.fraction),
                format!("{:.4}", s.retrieval.a_to_b.recall_at[0]),
                &format!(
                    "{b} -> {a} {:.4}; gap {:.4}",
                    s.retrieval.b_to_a.recall_at[0], s.distance
                ),
            );
        }
    }
    out
}
