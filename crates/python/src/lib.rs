//! `embgeom._embgeom`: the compiled core of the `embgeom` Python package.
//!
//! Arrays come in as NumPy arrays (the pure-Python layer turns tensors, lists and `__array__`
//! or DLPack objects into them) and are read in place: f32 and f64 rows in C order are not
//! copied. Every computation runs with the GIL released, polls for Ctrl-C (raising
//! `KeyboardInterrupt`), and turns every Rust error into `embgeom.EmbgeomError` (a
//! `ValueError`) with the CLI's message; no panic reaches Python. No message shows the
//! contents of an array.
//!
//! An analysis comes back as a `PyRun` (`embgeom._embgeom.Run`): its document, catalogue
//! rows, text table and HTML, and (when computed) the report's figures, drawn on demand.

use embgeom_geometry::catalogue::{self, CATALOGUE};
use embgeom_geometry::modalities::{
    pair_context, pair_retrieval, CrossModal, PairContext, PairShard,
};
use embgeom_geometry::sharded::{Context, SecondPass, Summary, UniformityBlock};
use embgeom_geometry::similarity_family::{similarity_family, SIMILARITY_CATALOGUE};
use embgeom_geometry::state::{LabelKey, State};
use embgeom_geometry::Merge;
use embgeom_geometry::{
    Analysis, AnalysisOptions, FigureData, KnnOptions, ObjectiveParameters, PerPoint, Progress,
    SampleOptions, ShardTally, DEFAULT_TILE,
};
use embgeom_io::{Column, LabelValues, Labels};
use embgeom_pipeline::{
    analysis_document, analyze_inputs, modalities_document, modalities_table, pair_gap_matrix,
    per_point_columns, text_table, write_per_point, CrossOptions, Extras, InputSpec, InputSummary,
    Inputs, ModalitiesRun, PairFile, PairJob, PipelineError, Rows, Run, ShardJob, ShardedDataset,
    Source, Values,
};
use embgeom_report::{CompareInput, CompareOptions, Figure, ReportOptions};
use ndarray::CowArray;
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

create_exception!(
    _embgeom,
    EmbgeomError,
    PyValueError,
    "Bad input or an analysis that cannot be done; the message names the array, file, key or row."
);

fn error(message: impl std::fmt::Display) -> PyErr {
    EmbgeomError::new_err(message.to_string())
}

/// The payload of the panic that stops a cancelled computation.
struct Cancelled;

/// [`Progress`] that stops the computation (by unwinding) once Ctrl-C was seen.
#[derive(Default)]
struct Interruptible {
    cancelled: AtomicBool,
}

impl Progress for Interruptible {
    fn start(&self, _stage: &str, _total: u64) {
        self.check();
    }
    fn advance(&self, _units: u64) {
        self.check();
    }
    fn begin_unit(&self) {
        self.check();
    }
    fn finish(&self) {}
}

impl Interruptible {
    fn check(&self) {
        if self.cancelled.load(Ordering::Relaxed) {
            std::panic::panic_any(Cancelled);
        }
    }
}

/// Run `work` without the GIL on a worker thread while this thread polls for signals; Ctrl-C
/// stops it at its next progress report and raises `KeyboardInterrupt`.
fn interruptible<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&dyn Progress) -> Result<T, String> + Send,
) -> PyResult<T> {
    let progress = Interruptible::default();
    let mut interrupt: Option<PyErr> = None;
    let outcome = py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| embgeom_io::quiet_panics(|| work(&progress)));
            while !worker.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
                if interrupt.is_none() {
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        interrupt = Some(e);
                        progress.cancelled.store(true, Ordering::Relaxed);
                    }
                }
            }
            worker.join()
        })
    });
    if let Some(interrupt) = interrupt {
        return Err(interrupt);
    }
    match outcome {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(message))) => Err(error(message)),
        Ok(Err(panic)) => Err(error(format!("internal error: {panic}"))),
        Err(_) => Err(PyKeyboardInterrupt::new_err("interrupted")),
    }
}

/// A NumPy matrix read in place (f32 or f64; other dtypes are converted by the Python layer).
enum Matrix<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

impl<'py> Matrix<'py> {
    fn extract(value: &Bound<'py, PyAny>, name: &str) -> PyResult<Matrix<'py>> {
        if let Ok(a) = value.extract::<PyReadonlyArray2<'py, f32>>() {
            return Ok(Matrix::F32(a));
        }
        if let Ok(a) = value.extract::<PyReadonlyArray2<'py, f64>>() {
            return Ok(Matrix::F64(a));
        }
        Err(error(format!(
            "{name}: expected a 2-D float32 or float64 array"
        )))
    }

    fn rows(&self, name: &str) -> Rows<'_> {
        let (dtype, values) = match self {
            Matrix::F32(a) => ("f32", Values::F32(CowArray::from(a.as_array()))),
            Matrix::F64(a) => ("f64", Values::F64(CowArray::from(a.as_array()))),
        };
        Rows {
            source: name.to_string(),
            dtype: dtype.to_string(),
            values,
        }
    }

    /// Whether the rows are used where NumPy keeps them (C order).
    fn in_place(&self) -> bool {
        match self {
            Matrix::F32(a) => a.is_c_contiguous(),
            Matrix::F64(a) => a.is_c_contiguous(),
        }
    }
}

/// Labels from an int64 array or a list of strings.
fn labels(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Labels>> {
    let Some(value) = value else { return Ok(None) };
    let values = if let Ok(a) = value.extract::<PyReadonlyArray1<'_, i64>>() {
        LabelValues::Int(a.as_array().to_vec())
    } else if let Ok(list) = value.cast::<PyList>() {
        LabelValues::Text(list.extract::<Vec<String>>()?)
    } else {
        return Err(error(format!(
            "{name}: expected integer or string labels, one per row"
        )));
    };
    Ok(Some(Labels {
        source: name.to_string(),
        values,
        names: None,
    }))
}

/// The analysis options from keyword arguments (the CLI's defaults when absent).
fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<AnalysisOptions> {
    let mut o = AnalysisOptions::default();
    let Some(kwargs) = kwargs else { return Ok(o) };
    let mut knn = KnnOptions::default();
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        match key.as_str() {
            "alpha" => o.alpha = value.extract()?,
            "t" => o.t = value.extract()?,
            "pairs" => o.pairs = value.extract()?,
            "max_exact" => o.max_exact = value.extract()?,
            "seed" => o.seed = value.extract()?,
            "knn_k" => knn.k = value.extract()?,
            "knn_temperature" => knn.temperature = value.extract()?,
            "knn_queries" => knn.max_queries = value.extract()?,
            "memory_limit" => o.memory_limit = value.extract()?,
            "isoscore_zeta" => o.isoscore_zeta = value.extract()?,
            "uniformity" => o.parts.uniformity = value.extract()?,
            "knn" => o.parts.knn = value.extract()?,
            other => return Err(error(format!("unknown option {other:?}"))),
        }
    }
    knn.seed = o.seed;
    o.knn = knn;
    o.tile = DEFAULT_TILE;
    Ok(o)
}

/// A catalogued metric as JSON, with its value, ideal and definition for an analysis.
fn catalogue_row(m: &catalogue::Metric, analysis: Option<&Analysis>) -> serde_json::Value {
    let mut row = serde_json::json!({
        "metric": m.key,
        "name": m.name,
        "group": m.group.title(),
        "level": if m.level == catalogue::Level::Metric { "metric" } else { "detail" },
        "direction": m.direction.as_str(),
        "reading": m.reading,
        "paper": m.paper.citation,
        "link": m.paper.link,
    });
    if let (Some(a), Some(object)) = (analysis, row.as_object_mut()) {
        object.insert("value".into(), serde_json::json!(m.value(a)));
        object.insert("ideal".into(), serde_json::json!(m.ideal(a)));
        object.insert("definition".into(), serde_json::json!(m.definition(a)));
    }
    row
}

/// What extras an analysis computes: the numbers behind the report's figures, or nothing.
fn extras(figures: bool) -> Extras {
    Extras {
        figures,
        ..Extras::default()
    }
}

/// A per-point table column as a Python list (neighbours as `{"ids", "distances"}` dicts).
fn column_to_python<'py>(py: Python<'py>, column: Column) -> PyResult<(String, Bound<'py, PyAny>)> {
    Ok(match column {
        Column::Int(name, v) => (name, v.into_pyobject(py)?.into_any()),
        Column::Float(name, v) => (name, v.into_pyobject(py)?.into_any()),
        Column::Text(name, v) => (name, v.into_pyobject(py)?.into_any()),
        Column::Bool(name, v) => (name, v.into_pyobject(py)?.into_any()),
        Column::Neighbours(name, rows) => {
            let list = PyList::empty(py);
            for row in rows {
                let entry = PyDict::new(py);
                entry.set_item("ids", row.iter().map(|n| n.0).collect::<Vec<_>>())?;
                entry.set_item("distances", row.iter().map(|n| n.1).collect::<Vec<_>>())?;
                list.append(entry)?;
            }
            (name, list.into_any())
        }
    })
}

/// Two sharded modalities measured together as tasks (`embgeom_pipeline::PairJob`): every
/// task result is JSON bytes.
#[pyclass(name = "PairJob", module = "embgeom._embgeom")]
struct PyPairJob {
    job: PairJob,
}

/// A value of JSON bytes, or an error naming what it should have been.
fn decoded<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> PyResult<T> {
    serde_json::from_slice(data).map_err(|e| error(format!("not {what}: {e}")))
}

/// JSON bytes of a value.
fn encoded<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> Bound<'py, pyo3::types::PyBytes> {
    bytes(py, serde_json::to_vec(value).unwrap_or_default())
}

#[pymethods]
impl PyPairJob {
    /// The pair of two shard jobs (their shards must match row for row), named `names`.
    #[new]
    #[pyo3(signature = (names, first, second, temperature=0.01, siglip_scale=10.0, siglip_bias=-10.0, shifts=vec![0.25, 0.5, 0.75, 1.0]))]
    fn new(
        names: (String, String),
        first: PyRef<'_, PyShardJob>,
        second: PyRef<'_, PyShardJob>,
        temperature: f64,
        siglip_scale: f64,
        siglip_bias: f64,
        shifts: Vec<f64>,
    ) -> PyResult<Self> {
        let cross = CrossOptions {
            pairs: None,
            parameters: ObjectiveParameters {
                temperature,
                scale: siglip_scale,
                bias: siglip_bias,
            },
            shifts,
            figures: false,
            sample_rows: first.job.plan.options.sample_rows,
            queries: None,
        };
        let names = (names.0.as_str(), names.1.as_str());
        PairJob::new(names, first.job.clone(), second.job.clone(), &cross)
            .map(|job| PyPairJob { job })
            .map_err(error)
    }

    /// A job from `to_json`.
    #[staticmethod]
    fn from_json(json: &str) -> PyResult<Self> {
        PairJob::from_json(json)
            .map(|job| PyPairJob { job })
            .map_err(error)
    }

    /// The job as JSON.
    fn to_json(&self) -> String {
        self.job.to_json()
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(Py<PyAny>, (String,))> {
        let from_json = slf.getattr("from_json")?.unbind();
        Ok((from_json, (slf.borrow().job.to_json(),)))
    }

    /// Number of shards of each modality.
    #[getter]
    fn shards(&self) -> usize {
        self.job.shard_rows().len()
    }

    /// Configurations: the rows as given, then each shift step.
    #[getter]
    fn configurations(&self) -> usize {
        self.job.configurations()
    }

    /// The first round of configuration `config` on shard `shard` (`base`: the first
    /// configuration's context, for a shift step).
    #[pyo3(signature = (config, shard, base=None))]
    fn first_round<'py>(
        &self,
        py: Python<'py>,
        config: usize,
        shard: usize,
        base: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let base: Option<PairContext> = base
            .as_deref()
            .map(|b| decoded(b, "a pair context"))
            .transpose()?;
        let job = &self.job;
        let part = py
            .detach(|| job.first_round(config, shard, base.as_ref()))
            .map_err(error)?;
        Ok(encoded(py, &part))
    }

    /// The context of a configuration from every shard's first round (any order).
    fn context<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let parts = parts
            .iter()
            .map(|p| decoded::<PairShard>(p, "a first round of a pair"))
            .collect::<PyResult<Vec<_>>>()?;
        let context = pair_context(parts).map_err(error)?;
        Ok(encoded(py, &context))
    }

    /// The second round of configuration `config` on shards `k` (first modality) and `l`
    /// (second), with that configuration's `context`.
    #[pyo3(signature = (config, k, l, context, base=None))]
    fn second_round<'py>(
        &self,
        py: Python<'py>,
        config: usize,
        k: usize,
        l: usize,
        context: Vec<u8>,
        base: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let base: Option<PairContext> = base
            .as_deref()
            .map(|b| decoded(b, "a pair context"))
            .transpose()?;
        let context: PairContext = decoded(&context, "a pair context")?;
        let job = &self.job;
        let tally = py
            .detach(|| job.second_round(config, (k, l), base.as_ref(), &context))
            .map_err(error)?;
        Ok(encoded(py, &tally))
    }

    /// The measurement from each configuration's context and second-round tallies, in order;
    /// returns the pair's measurement as JSON bytes.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        configurations: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let parameters = self.job.parameters;
        let measured = configurations
            .iter()
            .map(|(context, tallies)| {
                let context: PairContext = decoded(context, "a pair context")?;
                let tallies = tallies
                    .iter()
                    .map(|t| decoded::<ShardTally>(t, "a tally of two shards"))
                    .collect::<PyResult<Vec<_>>>()?;
                let retrieval = pair_retrieval(&context, tallies, &parameters).map_err(error)?;
                Ok((context, retrieval))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let cross = self.job.finish(measured).map_err(error)?;
        Ok(encoded(py, &cross))
    }
}

/// The `embgeom.modalities/1` document and table of modalities analysed apart (`runs`, in
/// order, named `names`) and measured together (`pairs`, JSON bytes of `PairJob.finish`, in
/// the order (0, 1), (0, 2), ..., (1, 2), ...).
#[pyfunction]
fn modalities_result(
    names: Vec<String>,
    runs: Vec<PyRef<'_, PyRun>>,
    pairs: Vec<Vec<u8>>,
) -> PyResult<(String, String)> {
    if names.len() != runs.len() {
        return Err(error(format!(
            "{} names for {} analyses",
            names.len(),
            runs.len()
        )));
    }
    let cross = pairs
        .iter()
        .map(|p| decoded::<CrossModal>(p, "a pair's measurement"))
        .collect::<PyResult<Vec<_>>>()?;
    let run = ModalitiesRun {
        runs: names
            .into_iter()
            .zip(&runs)
            .map(|(name, r)| {
                let run = Run {
                    analysis: r.run.analysis.clone(),
                    summary: r.run.summary.clone(),
                    figures: None,
                    mean_cosines: None,
                    per_point: None,
                    labels: None,
                    timings: Vec::new(),
                };
                (name, run)
            })
            .collect(),
        gap_matrix: pair_gap_matrix(runs.len(), &cross),
        figures: vec![None; cross.len()],
        cross,
        notes: Vec::new(),
        timings: Vec::new(),
    };
    Ok((
        modalities_document(&run).to_string(),
        modalities_table(&run),
    ))
}

/// An analysis done: every metric, the inputs' summary and, when asked for, the numbers behind
/// the report's figures, with the options it ran with.
#[pyclass(name = "Run", module = "embgeom._embgeom", frozen)]
struct PyRun {
    run: Run,
    options: AnalysisOptions,
}

impl PyRun {
    /// The per-point table, or why there is none.
    fn per_point_table(&self) -> PyResult<&PerPoint> {
        self.run.per_point.as_ref().ok_or_else(|| {
            error("this analysis holds no per-point table: run embgeom.analyze with per_point=True")
        })
    }

    /// The class names, in class order.
    fn class_names(&self) -> Vec<String> {
        self.run
            .analysis
            .per_class
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The numbers behind the figures, or why there are none.
    fn figure_data(&self) -> PyResult<&FigureData> {
        self.run.figures.as_ref().ok_or_else(|| {
            error("this analysis holds no figure data: run embgeom.analyze or analyze_file with figures=True (an Accumulator's or a sharded analysis has none)")
        })
    }
}

#[pymethods]
impl PyRun {
    /// The `embgeom.analysis/1` document as JSON.
    fn document(&self) -> String {
        analysis_document(&self.run.analysis, &self.run.summary).to_string()
    }

    /// One JSON row per catalogued metric: its catalogue entry with value, ideal and definition.
    fn rows(&self) -> String {
        let rows: Vec<serde_json::Value> = CATALOGUE
            .iter()
            .map(|m| catalogue_row(m, Some(&self.run.analysis)))
            .collect();
        serde_json::Value::from(rows).to_string()
    }

    /// The table of `embgeom analyze`.
    fn table(&self) -> String {
        text_table(&self.run.analysis, &self.run.summary)
    }

    /// The per-point table as `{column: list}` (see `embgeom_geometry::per_point`).
    fn per_point<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let table = self.per_point_table()?;
        let out = PyDict::new(py);
        for column in per_point_columns(table, &self.class_names()) {
            let (name, values) = column_to_python(py, column)?;
            out.set_item(name, values)?;
        }
        Ok(out)
    }

    /// Write the per-point table to `path` as Parquet (embedding-atlas's form).
    fn write_per_point(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let table = self.per_point_table()?;
        let names = self.class_names();
        py.detach(|| write_per_point(&path, table, &names).map_err(|e| e.to_string()))
            .map_err(error)
    }

    /// The metric table and warnings as an HTML fragment (escaped).
    fn html(&self) -> String {
        embgeom_report::analysis_html(&self.run.analysis, &self.run.summary)
    }

    /// The report's figures drawn as SVG in memory: `(drawn, skipped)`, `drawn` as
    /// `(id, title, caption, svg)` in page order, `skipped` as `(id, title, why)`.
    #[allow(clippy::type_complexity)]
    fn figures(
        &self,
        py: Python<'_>,
    ) -> PyResult<(
        Vec<(String, String, String, String)>,
        Vec<(String, String, String)>,
    )> {
        let data = self.figure_data()?;
        let analysis = &self.run.analysis;
        let figures = py
            .detach(|| embgeom_report::render_figures(analysis, data))
            .map_err(error)?;
        let drawn = figures
            .drawn
            .into_iter()
            .map(|f| {
                let (id, title) = (f.figure.id().into(), f.figure.title().into());
                (id, title, f.caption, f.svg)
            })
            .collect();
        let skipped = figures
            .skipped
            .iter()
            .map(|(f, why)| (f.id().into(), f.title().into(), why.to_string()))
            .collect();
        Ok((drawn, skipped))
    }

    /// Draw figure `figure` (its id) into `path`: PNG for a `.png` name, SVG for `.svg`.
    fn write_figure(&self, py: Python<'_>, figure: &str, path: PathBuf) -> PyResult<()> {
        let data = self.figure_data()?;
        let figure = Figure::from_id(figure).ok_or_else(|| {
            let ids: Vec<&str> = Figure::ALL.iter().map(|f| f.id()).collect();
            error(format!("no figure {figure:?}; figures: {}", ids.join(", ")))
        })?;
        let analysis = &self.run.analysis;
        py.detach(|| embgeom_report::write_figure(analysis, data, figure, &path))
            .map_err(error)
    }

    /// Write the report (`index.html`, the figures, `analysis.json`, `metrics.csv`) into
    /// `out`, as `embgeom report` does; returns the path of `index.html`.
    #[pyo3(signature = (out, name, force=false))]
    fn write_report(
        &self,
        py: Python<'_>,
        out: PathBuf,
        name: String,
        force: bool,
    ) -> PyResult<String> {
        self.figure_data()?;
        let output = ReportOptions {
            dir: out,
            name,
            force,
        };
        let written = py
            .detach(|| embgeom_report::write_run_report(&self.run, &self.options, &output))
            .map_err(error)?;
        Ok(written.index.display().to_string())
    }
}

/// A finished run for Python; `options` sign its report (a sharded or an accumulated analysis,
/// which has no figure data and so no report, passes the defaults).
fn finished(run: Run, options: AnalysisOptions) -> PyRun {
    PyRun { run, options }
}

/// Analyse in-memory arrays: every metric of `embgeom analyze` and, with `figures`, the
/// numbers behind the report's figures.
///
/// Returns `(run, in_place)`: the analysis and whether the embeddings were read in place (not
/// copied).
#[pyfunction]
#[pyo3(signature = (embeddings=None, views=None, labels=None, classifier=None, bias=None, split=None, subclasses=None, normalize=true, figures=false, per_point=None, **kwargs))]
#[allow(clippy::too_many_arguments)]
fn analyze<'py>(
    py: Python<'py>,
    embeddings: Option<Bound<'py, PyAny>>,
    views: Option<Vec<Bound<'py, PyAny>>>,
    labels: Option<Bound<'py, PyAny>>,
    classifier: Option<Bound<'py, PyAny>>,
    bias: Option<Vec<f64>>,
    split: Option<Bound<'py, PyAny>>,
    subclasses: Option<Bound<'py, PyAny>>,
    normalize: bool,
    figures: bool,
    per_point: Option<usize>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<(PyRun, bool)> {
    let options = options(kwargs)?;
    let embeddings = embeddings
        .map(|e| Matrix::extract(&e, "embeddings"))
        .transpose()?;
    let views = views
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(v, view)| Matrix::extract(view, &format!("views[{v}]")))
        .collect::<PyResult<Vec<_>>>()?;
    let classifier = classifier
        .map(|c| Matrix::extract(&c, "classifier"))
        .transpose()?;
    let in_place = embeddings
        .as_ref()
        .or(views.first())
        .is_some_and(Matrix::in_place);
    let inputs = Inputs {
        origin: None,
        embeddings: embeddings.as_ref().map(|e| e.rows("embeddings")),
        views: views
            .iter()
            .enumerate()
            .map(|(v, m)| m.rows(&format!("views[{v}]")))
            .collect(),
        labels: self::labels(labels.as_ref(), "labels")?,
        classifier: classifier.as_ref().map(|c| c.rows("classifier")),
        bias: bias.map(|b| ("bias".to_string(), b)),
        split: self::labels(split.as_ref(), "split")?,
        subclasses: self::labels(subclasses.as_ref(), "subclasses")?,
    };
    let run = interruptible(py, |progress| {
        let extras = Extras {
            per_point_rows: per_point,
            ..extras(figures)
        };
        analyze_inputs(inputs, normalize, &options, extras, progress).map_err(|e| e.to_string())
    })?;
    Ok((finished(run, options), in_place))
}

/// Analyse paired modalities held in arrays, as `embgeom analyze --modalities` does.
///
/// Returns `(document, table)`: the `embgeom.modalities/1` JSON document and its table; with
/// `report`, also writes the modalities report into that folder.
#[pyfunction]
#[pyo3(signature = (modalities, pair_map=None, labels=None, normalize=true, temperature=0.01, siglip_scale=10.0, siglip_bias=-10.0, shifts=vec![0.25, 0.5, 0.75, 1.0], report=None, force=false, retrieval_queries=None, **kwargs))]
#[allow(clippy::too_many_arguments)]
fn analyze_modalities<'py>(
    py: Python<'py>,
    modalities: Vec<(String, Bound<'py, PyAny>)>,
    pair_map: Option<Vec<i64>>,
    labels: Option<Bound<'py, PyAny>>,
    normalize: bool,
    temperature: f64,
    siglip_scale: f64,
    siglip_bias: f64,
    shifts: Vec<f64>,
    report: Option<PathBuf>,
    force: bool,
    retrieval_queries: Option<usize>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<(String, String)> {
    let options = options(kwargs)?;
    // A folder that holds something else is refused before the analysis.
    let signature = format!(
        "modalities from Python {:?} {options:?}",
        modalities.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    if let Some(dir) = &report {
        embgeom_report::check_folder(dir, &signature, force).map_err(error)?;
    }
    let matrices = modalities
        .iter()
        .map(|(name, value)| Ok((name.clone(), Matrix::extract(value, name)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let mut named = Vec::new();
    for (name, matrix) in &matrices {
        named.push((
            name.clone(),
            Inputs {
                embeddings: Some(matrix.rows(name)),
                labels: self::labels(labels.as_ref(), "labels")?,
                ..Inputs::default()
            },
            normalize,
        ));
    }
    let cross = CrossOptions {
        pairs: pair_map.map(PairFile::Values),
        parameters: ObjectiveParameters {
            temperature,
            scale: siglip_scale,
            bias: siglip_bias,
        },
        shifts,
        figures: report.is_some(),
        sample_rows: embgeom_geometry::sharded::DEFAULT_SAMPLE_ROWS,
        queries: retrieval_queries,
    };
    interruptible(py, |progress| {
        let run = embgeom_pipeline::analyze_modalities(named, &options, &cross, progress)
            .map_err(|e| e.to_string())?;
        if let Some(dir) = &report {
            let output = embgeom_report::ReportOptions {
                name: dir
                    .file_name()
                    .map_or_else(|| "modalities".into(), |n| n.to_string_lossy().into_owned()),
                dir: dir.clone(),
                force,
            };
            embgeom_report::write_modalities_report(&run, &options, &output, &signature)
                .map_err(|e| e.to_string())?;
        }
        Ok((
            modalities_document(&run).to_string(),
            modalities_table(&run),
        ))
    })
}

/// Analyse files, as `embgeom analyze FILE` does (with `figures`, also the numbers behind the
/// report's figures).
#[pyfunction]
#[pyo3(signature = (path, labels=None, views=None, key=None, label_key=None, classifier=None, normalize=true, figures=false, **kwargs))]
#[allow(clippy::too_many_arguments)]
fn analyze_file(
    py: Python<'_>,
    path: Option<PathBuf>,
    labels: Option<PathBuf>,
    views: Option<Vec<PathBuf>>,
    key: Option<String>,
    label_key: Option<String>,
    classifier: Option<String>,
    normalize: bool,
    figures: bool,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyRun> {
    let options = options(kwargs)?;
    let spec = InputSpec {
        embeddings: path,
        labels,
        views: views.unwrap_or_default(),
        key,
        label_key,
        classifier: classifier.as_deref().map(Source::resolve),
        normalize,
        ..InputSpec::default()
    };
    let run = interruptible(py, |progress| {
        embgeom_pipeline::run_analysis(&spec, &options, extras(figures), progress)
            .map_err(|e| e.to_string())
    })?;
    Ok(finished(run, options))
}

/// Write a report of a file (`embgeom report`); returns the path of `index.html`.
#[pyfunction]
#[pyo3(signature = (path, out, name, labels=None, force=false, normalize=true, **kwargs))]
#[allow(clippy::too_many_arguments)]
fn report(
    py: Python<'_>,
    path: PathBuf,
    out: PathBuf,
    name: String,
    labels: Option<PathBuf>,
    force: bool,
    normalize: bool,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let options = options(kwargs)?;
    let spec = InputSpec {
        embeddings: Some(path),
        labels,
        normalize,
        ..InputSpec::default()
    };
    let output = ReportOptions {
        dir: out,
        name,
        force,
    };
    let written = interruptible(py, |progress| {
        embgeom_report::report(&spec, &options, &output, progress).map_err(|e| e.to_string())
    })?;
    Ok(written.index.display().to_string())
}

/// One `embgeom track` pass over a run (named `name`, by default its folder's name), with
/// `modalities` the keys of two modalities each checkpoint holds; returns a dict with the
/// counts, the page and the check results.
#[pyfunction]
#[pyo3(signature = (run, out, labels=None, checks=None, force=false, name=None, modalities=None, **kwargs))]
#[allow(clippy::too_many_arguments)]
fn track<'py>(
    py: Python<'py>,
    run: String,
    out: PathBuf,
    labels: Option<PathBuf>,
    checks: Option<Vec<String>>,
    force: bool,
    name: Option<String>,
    modalities: Option<Vec<String>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let modalities = modalities.unwrap_or_default();
    if !matches!(modalities.len(), 0 | 2) {
        return Err(error(format!(
            "modalities: two keys are needed, {} were given",
            modalities.len()
        )));
    }
    let analysis = options(kwargs)?;
    let checks = checks
        .unwrap_or_default()
        .iter()
        .map(|c| c.parse().map_err(error))
        .collect::<PyResult<Vec<embgeom_track::Check>>>()?;
    let defaults = embgeom_track::TrackOptions::new(&run);
    let options = embgeom_track::TrackOptions {
        inputs: InputSpec {
            labels,
            ..InputSpec::default()
        },
        analysis,
        out,
        name: name.unwrap_or(defaults.name.clone()),
        checks,
        force,
        modalities,
        ..defaults
    };
    let outcome = interruptible(py, |progress| {
        embgeom_track::track(&options, progress).map_err(|e| e.to_string())
    })?;
    let result = PyDict::new(py);
    result.set_item("checkpoints", outcome.checkpoints)?;
    result.set_item("analysed", outcome.analysed)?;
    result.set_item("cached", outcome.cached)?;
    result.set_item("index", outcome.index.display().to_string())?;
    let checks: Vec<(String, bool, String)> = outcome
        .checks
        .iter()
        .map(|c| (c.check.clone(), c.passed, c.detail.clone()))
        .collect();
    result.set_item("checks", checks)?;
    let failed: Vec<(String, String)> = outcome
        .failed
        .iter()
        .map(|(p, why)| (p.display().to_string(), why.clone()))
        .collect();
    result.set_item("failed", failed)?;
    Ok(result)
}

/// The similarity family's sampling from `(rbf_rows, neighbour_rows, k, platonic)`.
fn sample_options(sample: Option<(usize, usize, usize, bool)>, seed: u64) -> SampleOptions {
    match sample {
        Some((rbf_rows, neighbour_rows, k, platonic)) => SampleOptions {
            rbf_rows,
            neighbour_rows,
            k,
            platonic,
            seed,
            ..SampleOptions::default()
        },
        None => SampleOptions {
            seed,
            ..SampleOptions::default()
        },
    }
}

/// The similarity family between `x` and `y` (rows corresponding): every catalogued measure
/// (`None` where undefined) and `notes`. `sample` is `(rbf_rows, neighbour_rows, k,
/// platonic)`.
#[pyfunction]
#[pyo3(signature = (x, y, sample=None, seed=0))]
fn similarity<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    sample: Option<(usize, usize, usize, bool)>,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, y) = (Matrix::extract(x, "x")?, Matrix::extract(y, "y")?);
    let options = sample_options(sample, seed);
    let timings = embgeom_geometry::timings::Timings::default();
    let family = match (&x, &y) {
        (Matrix::F32(a), Matrix::F32(b)) => {
            similarity_family(&[a.as_array(), b.as_array()], &options, &timings)
        }
        _ => {
            let widen = |m: &Matrix| match m {
                Matrix::F32(a) => a.as_array().mapv(f64::from),
                Matrix::F64(a) => a.as_array().to_owned(),
            };
            let (a, b) = (widen(&x), widen(&y));
            similarity_family(&[a.view(), b.view()], &options, &timings)
        }
    }
    .map_err(|e| error(e.to_string()))?;
    let result = PyDict::new(py);
    let Some(s) = family[0][1].as_ref() else {
        return Err(error("no similarity was measured"));
    };
    for measure in SIMILARITY_CATALOGUE {
        result.set_item(measure.key, measure.value(s))?;
    }
    result.set_item("notes", s.notes.clone())?;
    Ok(result)
}

/// Compare files side by side, as `embgeom compare` does: `inputs` are `(name, path)` pairs
/// (two or more), `labels` a labels file for every input; `similarity_only` computes the
/// similarity family alone. Returns a dict with the path of the
/// page (`index`), the `embgeom.compare/1` document as JSON (`document`) and the text table.
#[pyfunction]
#[pyo3(signature = (inputs, out, title, labels=None, force=false, modalities=None, sample=None, similarity_only=false, **kwargs))]
#[allow(clippy::too_many_arguments)]
fn compare<'py>(
    py: Python<'py>,
    inputs: Vec<(String, PathBuf)>,
    out: PathBuf,
    title: String,
    labels: Option<PathBuf>,
    force: bool,
    modalities: Option<Vec<String>>,
    sample: Option<(usize, usize, usize, bool)>,
    similarity_only: bool,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let options = options(kwargs)?;
    let similarity = sample_options(sample, options.knn.seed);
    let inputs: Vec<CompareInput> = inputs
        .into_iter()
        .map(|(name, path)| CompareInput {
            name,
            spec: InputSpec {
                embeddings: Some(path),
                labels: labels.clone(),
                ..InputSpec::default()
            },
        })
        .collect();
    let output = CompareOptions {
        dir: out,
        title,
        force,
        modalities: modalities.unwrap_or_default(),
        similarity,
        timings: false,
        similarity_only,
    };
    let compared = interruptible(py, |progress| {
        embgeom_report::compare(&inputs, &options, &output, progress).map_err(|e| e.to_string())
    })?;
    let result = PyDict::new(py);
    result.set_item("index", compared.written.index.display().to_string())?;
    result.set_item("document", compared.document.to_string())?;
    result.set_item("table", compared.table)?;
    Ok(result)
}

/// The metric catalogue as JSON: key, name, group, level, direction, reading, paper, link.
#[pyfunction]
fn catalogue_json() -> String {
    let rows: Vec<serde_json::Value> = CATALOGUE.iter().map(|m| catalogue_row(m, None)).collect();
    serde_json::Value::from(rows).to_string()
}

/// A label value: a Python int (or numpy integer) or a string.
fn label_key(value: &Bound<'_, PyAny>) -> PyResult<LabelKey> {
    if let Ok(v) = value.extract::<i64>() {
        return Ok(LabelKey::Int(v));
    }
    value.extract::<String>().map(LabelKey::Text).map_err(|_| {
        let kind = value
            .get_type()
            .name()
            .map_or_else(|_| "value".to_string(), |n| n.to_string());
        error(format!(
            "labels: a {kind} is neither an integer nor a string"
        ))
    })
}

/// What an accumulator's analysis leaves out.
const NOT_IN_A_STATE: &str = "an Accumulator keeps sufficient statistics only: uniformity, kNN accuracy, nearest-class-mean accuracy and per-class effective ranks need the rows (embgeom.analyze)";

/// The analysis of the rows a state summarised ([`embgeom_geometry::sharded::state_analysis`]),
/// with a warning naming what needs the rows.
fn state_analysis(state: &State) -> embgeom_geometry::Result<Analysis> {
    let mut analysis = embgeom_geometry::sharded::state_analysis(state)?;
    analysis.warnings.push(NOT_IN_A_STATE.into());
    Ok(analysis)
}

/// A mergeable partial state (`embgeom_geometry::state::State`); see `embgeom.Accumulator`.
#[pyclass(name = "State", module = "embgeom._embgeom")]
struct PyState {
    state: embgeom_geometry::state::State,
}

#[pymethods]
impl PyState {
    #[new]
    fn new(dim: usize) -> Self {
        PyState {
            state: embgeom_geometry::state::State::new(dim),
        }
    }

    /// Add a batch of rows (f32 or f64, 2-D) with one label per row (integers or strings),
    /// or none.
    #[pyo3(signature = (rows, labels=None))]
    fn update(
        &mut self,
        py: Python<'_>,
        rows: Bound<'_, PyAny>,
        labels: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<()> {
        let rows = Matrix::extract(&rows, "batch")?;
        let labels = labels
            .map(|values| values.iter().map(label_key).collect::<PyResult<Vec<_>>>())
            .transpose()?;
        let state = &mut self.state;
        let labels = labels.as_deref();
        let result = match &rows {
            Matrix::F32(a) => {
                let view = a.as_array();
                py.detach(|| state.update(view, labels))
            }
            Matrix::F64(a) => {
                let view = a.as_array();
                py.detach(|| state.update(view, labels))
            }
        };
        result.map_err(|e| error(format!("batch: {e}")))
    }

    /// Merge another state into this one.
    fn merge(&mut self, other: PyRef<'_, PyState>) -> PyResult<()> {
        self.state.merge(&other.state).map_err(error)
    }

    /// The state as bytes (versioned).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.state.to_bytes())
    }

    /// A state from `to_bytes`.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<PyState> {
        embgeom_geometry::state::State::from_bytes(data)
            .map(|state| PyState { state })
            .map_err(error)
    }

    /// The analysis of every row summarised (see `state_analysis`).
    fn finalize(&self) -> PyResult<PyRun> {
        let analysis = state_analysis(&self.state).map_err(error)?;
        let summary = InputSummary {
            embeddings: Some("Accumulator".into()),
            views: Vec::new(),
            labels: analysis.num_classes.map(|_| "labels".into()),
            classifier: None,
            split: None,
            subclasses: None,
            class_names: None,
            dtype: "f64".into(),
            normalized: true,
        };
        let run = Run {
            analysis,
            summary,
            figures: None,
            mean_cosines: None,
            per_point: None,
            labels: None,
            timings: Vec::new(),
        };
        Ok(finished(run, AnalysisOptions::default()))
    }

    /// Rows summarised so far.
    #[getter]
    fn rows(&self) -> u64 {
        self.state.rows()
    }
}

/// A sharded analysis (`embgeom_pipeline::ShardJob`): the dataset, the plan and the task
/// functions that Ray (or any engine) runs; every task result is versioned bytes.
#[pyclass(name = "ShardJob", module = "embgeom._embgeom")]
struct PyShardJob {
    job: ShardJob,
}

/// The merge of task results given as versioned bytes, in order.
fn merged<T: Merge>(parts: Vec<Vec<u8>>) -> PyResult<T> {
    T::merge_bytes(&parts).map_err(error)
}

fn bytes(py: Python<'_>, data: Vec<u8>) -> Bound<'_, pyo3::types::PyBytes> {
    pyo3::types::PyBytes::new(py, &data)
}

#[pymethods]
impl PyShardJob {
    /// Discover the shards of directory `path` and plan their analysis (`sample_rows`
    /// defaults to `DEFAULT_SAMPLE_ROWS`, written out for the signature Python shows).
    #[new]
    #[pyo3(signature = (path, key=None, label_key=None, classifier=None, bias=None, normalize=true, sample_rows=10000, **kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        key: Option<String>,
        label_key: Option<String>,
        classifier: Option<PathBuf>,
        bias: Option<PathBuf>,
        normalize: bool,
        sample_rows: usize,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let options = options(kwargs)?;
        let spec = InputSpec {
            key,
            label_key,
            classifier: classifier.map(Source::File),
            bias: bias.map(Source::File),
            normalize,
            ..InputSpec::default()
        };
        let job = py.detach(|| {
            ShardedDataset::discover(&path, &spec)
                .and_then(|dataset| ShardJob::new(dataset, &options, sample_rows))
        });
        job.map(|job| PyShardJob { job }).map_err(error)
    }

    /// A job from `to_json`.
    #[staticmethod]
    fn from_json(json: &str) -> PyResult<Self> {
        ShardJob::from_json(json)
            .map(|job| PyShardJob { job })
            .map_err(error)
    }

    /// The job as JSON (shards, plan, options).
    fn to_json(&self) -> String {
        self.job.to_json()
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(Py<PyAny>, (String,))> {
        let from_json = slf.getattr("from_json")?.unbind();
        Ok((from_json, (slf.borrow().job.to_json(),)))
    }

    /// Number of shards.
    #[getter]
    fn shards(&self) -> usize {
        self.job.dataset.shards.len()
    }

    /// Rows of each shard.
    #[getter]
    fn rows(&self) -> Vec<u64> {
        self.job.plan.rows.clone()
    }

    /// The shard files, in order.
    #[getter]
    fn files(&self) -> Vec<PathBuf> {
        self.job
            .dataset
            .shards
            .iter()
            .map(|s| s.embeddings.clone())
            .collect()
    }

    /// The shard pairs `(a, b)`, `a <= b`, of the exact uniformity (empty when sampled).
    fn blocks(&self) -> Vec<(usize, usize)> {
        self.job.plan.blocks()
    }

    /// First pass over shard `shard` (a summary).
    fn summarize<'py>(
        &self,
        py: Python<'py>,
        shard: usize,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let job = &self.job;
        let summary = py.detach(|| job.summarize(shard)).map_err(error)?;
        Ok(bytes(py, summary.to_bytes()))
    }

    /// Merge summaries (any order).
    fn merge_summaries<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let summary: Summary = py.detach(|| merged(parts))?;
        Ok(bytes(py, summary.to_bytes()))
    }

    /// The context of the second pass from the merged summary.
    fn context<'py>(
        &self,
        py: Python<'py>,
        summary: Vec<u8>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let job = &self.job;
        let context = py
            .detach(|| {
                let summary = Summary::from_bytes(&summary).map_err(PipelineError::from)?;
                job.context(&summary)
            })
            .map_err(error)?;
        Ok(bytes(py, context.to_bytes()))
    }

    /// Second pass over shard `shard`.
    fn second_pass<'py>(
        &self,
        py: Python<'py>,
        context: Vec<u8>,
        shard: usize,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let job = &self.job;
        let second = py
            .detach(|| job.second_pass(&Context::from_bytes(&context)?, shard))
            .map_err(error)?;
        Ok(bytes(py, second.to_bytes()))
    }

    /// Merge second passes (any order).
    fn merge_second_passes<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let second: SecondPass = py.detach(|| merged(parts))?;
        Ok(bytes(py, second.to_bytes()))
    }

    /// The exact-uniformity block of shards `a <= b`.
    fn uniformity_block<'py>(
        &self,
        py: Python<'py>,
        context: Vec<u8>,
        a: usize,
        b: usize,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let job = &self.job;
        let block = py
            .detach(|| job.uniformity_block(&Context::from_bytes(&context)?, a, b))
            .map_err(error)?;
        Ok(bytes(py, block.to_bytes()))
    }

    /// Merge uniformity blocks (any order).
    fn merge_uniformity_blocks<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let block: UniformityBlock = py.detach(|| merged(parts))?;
        Ok(bytes(py, block.to_bytes()))
    }

    /// The analysis from the merged results.
    #[pyo3(signature = (summary, context, second, block=None))]
    fn finalize(
        &self,
        py: Python<'_>,
        summary: Vec<u8>,
        context: Vec<u8>,
        second: Vec<u8>,
        block: Option<Vec<u8>>,
    ) -> PyResult<PyRun> {
        let job = &self.job;
        let run = py
            .detach(|| {
                let block = block
                    .as_deref()
                    .map(UniformityBlock::from_bytes)
                    .transpose()?;
                job.finalize(
                    &Summary::from_bytes(&summary)?,
                    &Context::from_bytes(&context)?,
                    &SecondPass::from_bytes(&second)?,
                    block.as_ref(),
                )
            })
            .map_err(error)?;
        Ok(finished(run, AnalysisOptions::default()))
    }

    /// The whole analysis in this process, one shard at a time.
    fn run(&self, py: Python<'_>) -> PyResult<PyRun> {
        let job = &self.job;
        let run = interruptible(py, |progress| job.run(progress).map_err(|e| e.to_string()))?;
        Ok(finished(run, AnalysisOptions::default()))
    }
}

/// The compiled module.
#[pymodule]
fn _embgeom(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("EmbgeomError", m.py().get_type::<EmbgeomError>())?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(analyze_file, m)?)?;
    m.add_function(wrap_pyfunction!(analyze_modalities, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(track, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(similarity, m)?)?;
    m.add_function(wrap_pyfunction!(catalogue_json, m)?)?;
    m.add_class::<PyRun>()?;
    m.add_class::<PyState>()?;
    m.add_class::<PyShardJob>()?;
    m.add_class::<PyPairJob>()?;
    m.add_function(wrap_pyfunction!(modalities_result, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
