//! The inputs every command shares (embeddings, views, labels, classifier, split,
//! subclasses), the metric parameters, and the load-validate-analyse pipeline.

use crate::output::InputSummary;
use crate::progress::TerminalProgress;
use anyhow::{bail, Context, Result};
use clap::Args;
use embgeom_geometry::{
    analyze, check_finite, class_mean_cosines, figure_data, normalize_rows, Analysis,
    AnalysisInput, AnalysisOptions, Classes, Classifier, FigureData, KnnOptions, KnnSplit, Real,
    DEFAULT_K, DEFAULT_MAX_EXACT, DEFAULT_MAX_QUERIES, DEFAULT_TEMPERATURE, DEFAULT_TILE,
};
use embgeom_io::{
    load, load_array, load_labels, Embeddings, LabelValues, Labels, Matrix, Selection, BIAS_KEY,
    CLASSIFIER_KEY, SPLIT_KEY, SUBCLASSES_KEY,
};
use ndarray::{Array1, Array2};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Where the rows, labels and extras come from.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Embeddings file (.npy, .npz, .safetensors, .parquet, .csv). Not needed with --views.
    pub embeddings: Option<PathBuf>,

    #[command(flatten)]
    pub options: InputOptions,
}

impl std::ops::Deref for InputArgs {
    type Target = InputOptions;
    fn deref(&self) -> &InputOptions {
        &self.options
    }
}

/// The options that say how to read the inputs (everything but the embeddings file).
#[derive(Args, Debug, Clone)]
pub struct InputOptions {
    /// Labels file (.npy, .npz, .safetensors, .parquet, .csv, .txt), one label per row.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Row-matched views of the same items, one file each (two or more).
    #[arg(long, num_args = 2.., value_name = "FILE")]
    pub views: Vec<PathBuf>,

    /// Key (npz/safetensors) or list column (csv/parquet) of the embeddings [default: embeddings].
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,

    /// Numeric columns (csv/parquet) that form the embeddings, comma separated.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub columns: Option<Vec<String>>,

    /// Key or column of the labels [default: labels; in tables label or labels].
    #[arg(long, value_name = "NAME")]
    pub label_key: Option<String>,

    /// Key of an (N, V, D) array of views [default: views].
    #[arg(long, value_name = "NAME")]
    pub views_key: Option<String>,

    /// Classifier weights (C x D): a file, or a key of the embeddings file [default key: classifier].
    #[arg(long, value_name = "FILE|KEY")]
    pub classifier: Option<String>,

    /// Classifier biases (C): a file, or a key of the embeddings file [default key: bias].
    #[arg(long, value_name = "FILE|KEY")]
    pub bias: Option<String>,

    /// Train/test split for kNN (values train, test): a file, or a key/column [default: split].
    #[arg(long, value_name = "FILE|KEY")]
    pub split: Option<String>,

    /// Subclass (fine) labels under the classes: a file, or a key/column [default: subclasses].
    #[arg(long, value_name = "FILE|KEY")]
    pub subclasses: Option<String>,

    /// CSV files have no header row (columns are then column_1, column_2, ...).
    #[arg(long)]
    pub no_header: bool,

    /// Use the rows as they are instead of L2-normalising them.
    #[arg(long)]
    pub no_normalize: bool,
}

/// Parameters of the metrics.
#[derive(Args, Debug, Clone)]
pub struct MetricArgs {
    /// Alignment exponent alpha.
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub alpha: f64,

    /// Uniformity parameter t.
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub t: f64,

    /// Estimate uniformity from K random pairs instead of all pairs.
    #[arg(long, value_name = "K")]
    pub pairs: Option<u64>,

    /// Above this many rows, uniformity is sampled (10^7 pairs) unless --pairs is given.
    #[arg(long, default_value_t = DEFAULT_MAX_EXACT, value_name = "N")]
    pub max_exact: usize,

    /// Seed of the pair sampler and of the kNN query subset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Neighbours of the kNN accuracy.
    #[arg(long, default_value_t = DEFAULT_K, value_name = "K")]
    pub knn_k: usize,

    /// Vote temperature of the kNN accuracy: weights exp(sim / T).
    #[arg(long, default_value_t = DEFAULT_TEMPERATURE, value_name = "T", allow_negative_numbers = true)]
    pub knn_temperature: f64,

    /// At most this many kNN queries (a seeded subset beyond; neighbours stay exact).
    #[arg(long, default_value_t = DEFAULT_MAX_QUERIES, value_name = "N")]
    pub knn_queries: usize,

    /// Worker threads [default: all cores]; results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl MetricArgs {
    /// The geometry crate's options.
    pub fn options(&self) -> AnalysisOptions {
        AnalysisOptions {
            alpha: self.alpha,
            t: self.t,
            pairs: self.pairs,
            max_exact: self.max_exact,
            seed: self.seed,
            tile: DEFAULT_TILE,
            knn: KnnOptions {
                k: self.knn_k,
                temperature: self.knn_temperature,
                max_queries: self.knn_queries,
                seed: self.seed,
            },
        }
    }

    /// Use `threads` worker threads for the rest of the process, when given.
    pub fn apply_threads(&self) -> Result<()> {
        if let Some(threads) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global()
                .context("cannot set the thread count")?;
        }
        Ok(())
    }
}

/// A `FILE|KEY` option: a path when such a file exists, else a key of the embeddings file.
fn file_or_key(value: &Option<String>) -> (Option<PathBuf>, Option<String>) {
    match value {
        Some(v) if Path::new(v).is_file() => (Some(PathBuf::from(v)), None),
        Some(v) => (None, Some(v.clone())),
        None => (None, None),
    }
}

impl InputOptions {
    /// Which keys and columns to read.
    pub fn selection(&self) -> Selection {
        Selection {
            embeddings: self.key.clone(),
            feature_columns: self.columns.clone(),
            labels: self.label_key.clone(),
            views: self.views_key.clone(),
            classifier: file_or_key(&self.classifier).1,
            bias: file_or_key(&self.bias).1,
            split: file_or_key(&self.split).1,
            subclasses: file_or_key(&self.subclasses).1,
            no_header: self.no_header,
        }
    }
}

/// Everything loaded for one analysis.
pub struct Inputs {
    pub embeddings: Option<Embeddings>,
    pub views: Vec<Embeddings>,
    pub labels: Option<Labels>,
    pub classifier: Option<Embeddings>,
    pub bias: Option<(String, Vec<f64>)>,
    pub split: Option<Labels>,
    pub subclasses: Option<Labels>,
}

/// Load every input named by `args` (and the ones stored beside the embeddings).
pub fn load_inputs(args: &InputArgs) -> Result<Inputs> {
    let selection = args.selection();
    let mut inputs = Inputs {
        embeddings: None,
        views: Vec::new(),
        labels: None,
        classifier: None,
        bias: None,
        split: None,
        subclasses: None,
    };
    if let Some(path) = &args.embeddings {
        let loaded = load(path, &selection)?;
        inputs.embeddings = loaded.embeddings;
        inputs.views = loaded.views;
        inputs.labels = loaded.labels;
        inputs.classifier = loaded.classifier;
        inputs.bias = loaded
            .bias
            .map(|b| Ok::<_, anyhow::Error>((b.source.clone(), b.into_vector()?)))
            .transpose()?;
        inputs.split = loaded.split;
        inputs.subclasses = loaded.subclasses;
    }
    if !args.views.is_empty() {
        if !inputs.views.is_empty() {
            bail!(
                "views given twice: by --views and inside {:?}",
                args.embeddings
            );
        }
        let plain = Selection {
            no_header: selection.no_header,
            embeddings: selection.embeddings.clone(),
            feature_columns: selection.feature_columns.clone(),
            ..Selection::default()
        };
        for path in &args.views {
            let view = load(path, &plain)?
                .embeddings
                .with_context(|| format!("{}: holds no (N, D) embeddings", path.display()))?;
            inputs.views.push(view);
        }
    }
    if let Some(path) = &args.labels {
        inputs.labels = Some(load_labels(path, &selection)?);
    }
    if let (Some(path), _) = file_or_key(&args.classifier) {
        inputs.classifier =
            Some(load_array(&path, None, &[CLASSIFIER_KEY], &selection)?.into_embeddings()?);
    }
    if let (Some(path), _) = file_or_key(&args.bias) {
        let array = load_array(&path, None, &[BIAS_KEY], &selection)?;
        inputs.bias = Some((array.source.clone(), array.into_vector()?));
    }
    if let (Some(path), _) = file_or_key(&args.split) {
        inputs.split = Some(load_array(&path, None, &[SPLIT_KEY], &selection)?.into_labels()?);
    }
    if let (Some(path), _) = file_or_key(&args.subclasses) {
        inputs.subclasses =
            Some(load_array(&path, None, &[SUBCLASSES_KEY], &selection)?.into_labels()?);
    }
    if inputs.embeddings.is_none() && inputs.views.is_empty() {
        bail!("nothing to analyse: give an EMBEDDINGS file or --views A B");
    }
    if inputs.views.len() == 1 {
        bail!(
            "{}: alignment needs at least two views, got one",
            inputs.views[0].source
        );
    }
    check_shapes(&inputs)?;
    Ok(inputs)
}

/// Views share one shape, the embeddings the same number of rows; one label, split value and
/// subclass per row; extras need labels.
fn check_shapes(inputs: &Inputs) -> Result<()> {
    let reference = inputs
        .embeddings
        .as_ref()
        .or(inputs.views.first())
        .expect("checked");
    let (n, d) = reference.matrix.dim();
    for view in &inputs.views {
        if view.matrix.dim() != (n, d) {
            bail!(
                "shape mismatch: {} has shape {:?} but {} has shape {:?}",
                view.source,
                view.matrix.dim(),
                reference.source,
                (n, d)
            );
        }
    }
    for labels in [&inputs.labels, &inputs.split, &inputs.subclasses]
        .into_iter()
        .flatten()
    {
        if labels.len() != n {
            bail!(
                "{}: {} values, but {} has {n} rows",
                labels.source,
                labels.len(),
                reference.source
            );
        }
    }
    if inputs.labels.is_none() {
        let extra = [
            inputs.classifier.as_ref().map(|c| c.source.clone()),
            inputs.split.as_ref().map(|s| s.source.clone()),
            inputs.subclasses.as_ref().map(|s| s.source.clone()),
        ];
        if let Some(source) = extra.into_iter().flatten().next() {
            bail!(
                "{source} needs class labels: give --labels (or store them beside the embeddings)"
            );
        }
    }
    if let (Some((source, _)), None) = (&inputs.bias, &inputs.classifier) {
        bail!("{source}: a bias needs classifier weights (--classifier)");
    }
    Ok(())
}

/// Classes from labels; errors name the label source.
fn classes_of(labels: &Labels) -> Result<Classes> {
    let (indices, names) = labels.class_indices();
    Classes::new(indices, names).with_context(|| labels.source.clone())
}

/// Train and test rows from split values `train` / `test` (any case).
fn knn_split(split: &Labels) -> Result<KnnSplit> {
    let LabelValues::Text(values) = &split.values else {
        bail!(
            "{}: split values must be the strings train and test",
            split.source
        );
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (row, value) in values.iter().enumerate() {
        match value.to_ascii_lowercase().as_str() {
            "train" => train.push(row),
            "test" => test.push(row),
            other => bail!(
                "{}: row {row} is {other:?}; expected train or test",
                split.source
            ),
        }
    }
    if train.is_empty() || test.is_empty() {
        bail!("{}: the split needs both train and test rows", split.source);
    }
    Ok(KnnSplit::TrainTest { train, test })
}

/// L2-normalise (or only check) one input; errors name its file. Returns the rows to use
/// and, when they were normalised, the raw rows.
fn prepare<F: Real>(
    matrix: Array2<F>,
    source: &str,
    normalize: bool,
) -> Result<(Array2<F>, Option<Array2<F>>)> {
    if matrix.nrows() == 0 || matrix.ncols() == 0 {
        bail!("{source}: empty array of shape {:?}", matrix.dim());
    }
    let prepared = if normalize {
        normalize_rows(matrix.view()).map(|unit| (unit, Some(matrix)))
    } else {
        check_finite(matrix.view()).map(|()| (matrix, None))
    };
    prepared.with_context(|| source.to_string())
}

/// The typed part of the pipeline: matrices (embeddings first when present, then views).
struct Typed<'a> {
    sources: &'a [String],
    has_embeddings: bool,
    classes: Option<&'a Classes>,
    classifier: Option<&'a Classifier>,
    split: Option<&'a KnnSplit>,
    subclasses: Option<&'a Classes>,
}

/// What to compute besides the analysis.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// The numbers behind the report's figures.
    pub figures: bool,
    /// Cosines between centred class means (for tracking).
    pub mean_cosines: bool,
    /// A progress bar on a terminal.
    pub progress: bool,
}

/// The analysis of one set of typed matrices and the extras asked for.
type Computed = (Analysis, Option<FigureData>, Option<Array2<f64>>);

fn analyze_typed<F: Real>(
    matrices: Vec<Array2<F>>,
    typed: &Typed,
    normalize: bool,
    metrics: &MetricArgs,
    options: RunOptions,
) -> Result<Computed> {
    let mut matrices = matrices.into_iter();
    let first = matrices.next().expect("at least one matrix");
    let (prepared_first, raw) = prepare(first, &typed.sources[0], normalize)?;
    let rest = matrices
        .zip(&typed.sources[1..])
        .map(|(m, source)| prepare(m, source, normalize).map(|(rows, _)| rows))
        .collect::<Result<Vec<_>>>()?;
    let all: Vec<&Array2<F>> = std::iter::once(&prepared_first)
        .chain(rest.iter())
        .collect();
    let (embeddings, views) = match typed.has_embeddings {
        true => (Some(all[0].view()), &all[1..]),
        false => (None, &all[..]),
    };
    let input = AnalysisInput {
        embeddings,
        views: views.iter().map(|v| v.view()).collect(),
        raw: raw.as_ref().map(|r| r.view()),
        classes: typed.classes,
        classifier: typed.classifier,
        knn_split: typed.split,
        subclasses: typed.subclasses,
    };
    let progress = TerminalProgress::new(options.progress && std::io::stderr().is_terminal());
    let analysis = analyze(&input, &metrics.options(), &progress).map_err(|e| {
        match (&e, typed.classifier) {
            (embgeom_geometry::GeometryError::ShapeMismatch { .. }, Some(_)) => {
                anyhow::Error::new(e).context("classifier")
            }
            _ => anyhow::Error::from(e),
        }
    })?;
    let data = options
        .figures
        .then(|| {
            let first_views = match input.views.as_slice() {
                [a, b, ..] => Some((*a, *b)),
                _ => None,
            };
            figure_data(
                all[0].view(),
                input.raw.unwrap_or(all[0].view()),
                first_views,
                typed.classes,
                metrics.t,
                metrics.seed,
            )
        })
        .transpose()
        .context("figure data")?;
    let raw = input.raw.unwrap_or(all[0].view());
    let cosines = options
        .mean_cosines
        .then_some(typed.classes)
        .flatten()
        .map(|c| class_mean_cosines(raw, c));
    Ok((analysis, data, cosines))
}

/// The matrices as f32 when every one is stored in f32 (or narrower), else all of them back.
fn f32_matrices(matrices: Vec<Matrix>) -> std::result::Result<Vec<Array2<f32>>, Vec<Matrix>> {
    if !matrices.iter().all(|m| matches!(m, Matrix::F32(_))) {
        return Err(matrices);
    }
    Ok(matrices
        .into_iter()
        .filter_map(|m| match m {
            Matrix::F32(a) => Some(a),
            Matrix::F64(_) => None,
        })
        .collect())
}

/// What one run of the pipeline produced.
pub struct Run {
    pub analysis: Analysis,
    pub summary: InputSummary,
    /// The numbers behind the report's figures, when asked for.
    pub figures: Option<FigureData>,
    /// Cosines between centred class means, when asked for and labelled.
    pub mean_cosines: Option<Array2<f64>>,
    /// Class labels, as loaded.
    pub labels: Option<Labels>,
}

/// Load, validate and analyse: the whole `analyze` pipeline, shared by every command, plus the
/// extras of `options`.
pub fn run_analysis(args: &InputArgs, metrics: &MetricArgs, options: RunOptions) -> Result<Run> {
    let inputs = load_inputs(args)?;
    let classes = inputs.labels.as_ref().map(classes_of).transpose()?;
    let subclasses = inputs.subclasses.as_ref().map(classes_of).transpose()?;
    let split = inputs.split.as_ref().map(knn_split).transpose()?;
    let classifier = inputs.classifier.as_ref().map(|w| Classifier {
        weights: w.matrix.clone().into_f64(),
        bias: inputs.bias.as_ref().map(|(_, b)| Array1::from(b.clone())),
    });
    let summary = InputSummary {
        embeddings: inputs.embeddings.as_ref().map(|e| e.source.clone()),
        views: inputs.views.iter().map(|v| v.source.clone()).collect(),
        labels: inputs.labels.as_ref().map(|l| l.source.clone()),
        classifier: inputs.classifier.as_ref().map(|c| c.source.clone()),
        split: inputs.split.as_ref().map(|s| s.source.clone()),
        subclasses: inputs.subclasses.as_ref().map(|s| s.source.clone()),
        dtype: inputs
            .embeddings
            .as_ref()
            .or(inputs.views.first())
            .map(|e| e.dtype.clone())
            .unwrap_or_default(),
        normalized: !args.no_normalize,
    };
    let has_embeddings = inputs.embeddings.is_some();
    let (sources, matrices): (Vec<String>, Vec<Matrix>) = inputs
        .embeddings
        .into_iter()
        .chain(inputs.views)
        .map(|e| (e.source, e.matrix))
        .unzip();
    let typed = Typed {
        sources: &sources,
        has_embeddings,
        classes: classes.as_ref(),
        classifier: classifier.as_ref(),
        split: split.as_ref(),
        subclasses: subclasses.as_ref(),
    };
    let normalize = !args.no_normalize;
    let (analysis, figures, mean_cosines) = match f32_matrices(matrices) {
        Ok(m) => analyze_typed(m, &typed, normalize, metrics, options)?,
        Err(mixed) => {
            let m = mixed.into_iter().map(Matrix::into_f64).collect();
            analyze_typed(m, &typed, normalize, metrics, options)?
        }
    };
    Ok(Run {
        analysis,
        summary,
        figures,
        mean_cosines,
        labels: inputs.labels,
    })
}
