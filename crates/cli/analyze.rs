//! `embgeom analyze`: load, validate, compute, print.

use crate::output::{print_table, to_json, InputSummary};
use crate::progress::TerminalProgress;
use anyhow::{bail, Context, Result};
use clap::Args;
use embgeom_geometry::{
    analyze, check_finite, normalize_rows, Analysis, AnalysisInput, AnalysisOptions, Classes, Real,
    DEFAULT_MAX_EXACT, DEFAULT_TILE,
};
use embgeom_io::{load, load_labels, Embeddings, Labels, Matrix, Selection};
use ndarray::Array2;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Inputs and parameters of `embgeom analyze`.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Embeddings file (.npy, .npz, .safetensors, .parquet, .csv). Not needed with --views.
    pub embeddings: Option<PathBuf>,

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

    /// CSV files have no header row (columns are then column_1, column_2, ...).
    #[arg(long)]
    pub no_header: bool,

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

    /// Seed of the pair sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Use the rows as they are instead of L2-normalising them.
    #[arg(long)]
    pub no_normalize: bool,

    /// Worker threads [default: all cores]; results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Write the results as JSON to PATH, or to stdout with '-'.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,

    /// Replace an existing --json file.
    #[arg(long)]
    pub force: bool,
}

impl AnalyzeArgs {
    fn selection(&self) -> Selection {
        Selection {
            embeddings: self.key.clone(),
            feature_columns: self.columns.clone(),
            labels: self.label_key.clone(),
            views: self.views_key.clone(),
            no_header: self.no_header,
        }
    }

    fn options(&self) -> AnalysisOptions {
        AnalysisOptions {
            alpha: self.alpha,
            t: self.t,
            pairs: self.pairs,
            max_exact: self.max_exact,
            seed: self.seed,
            tile: DEFAULT_TILE,
        }
    }
}

/// Everything loaded for one analysis.
struct Inputs {
    embeddings: Option<Embeddings>,
    views: Vec<Embeddings>,
    labels: Option<Labels>,
}

fn load_inputs(args: &AnalyzeArgs) -> Result<Inputs> {
    let selection = args.selection();
    let mut inputs = Inputs {
        embeddings: None,
        views: Vec::new(),
        labels: None,
    };
    if let Some(path) = &args.embeddings {
        let loaded = load(path, &selection)?;
        inputs.embeddings = loaded.embeddings;
        inputs.views = loaded.views;
        inputs.labels = loaded.labels;
    }
    if !args.views.is_empty() {
        if !inputs.views.is_empty() {
            bail!(
                "views given twice: by --views and inside {:?}",
                args.embeddings
            );
        }
        for path in &args.views {
            let loaded = load(
                path,
                &Selection {
                    labels: None,
                    ..selection.clone()
                },
            )?;
            let view = loaded
                .embeddings
                .with_context(|| format!("{}: holds no (N, D) embeddings", path.display()))?;
            inputs.views.push(view);
        }
    }
    if let Some(path) = &args.labels {
        inputs.labels = Some(load_labels(path, &selection)?);
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

/// Views must share one shape, and the embeddings the same number of rows; labels one per row.
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
    if let Some(labels) = &inputs.labels {
        if labels.len() != n {
            bail!(
                "{}: {} labels, but {} has {n} rows",
                labels.source,
                labels.len(),
                reference.source
            );
        }
    }
    Ok(())
}

/// L2-normalise (or only check) one input; errors name its file.
fn prepare<F: Real>(matrix: Array2<F>, source: &str, normalize: bool) -> Result<Array2<F>> {
    if matrix.nrows() == 0 || matrix.ncols() == 0 {
        bail!("{source}: empty array of shape {:?}", matrix.dim());
    }
    let prepared = if normalize {
        normalize_rows(matrix.view())
    } else {
        check_finite(matrix.view()).map(|()| matrix)
    };
    prepared.with_context(|| source.to_string())
}

/// Prepare the matrices (embeddings first when `has_embeddings`, then the views) and analyse.
fn analyze_typed<F: Real>(
    matrices: Vec<Array2<F>>,
    sources: &[String],
    has_embeddings: bool,
    classes: Option<&Classes>,
    args: &AnalyzeArgs,
) -> Result<Analysis> {
    let prepared = matrices
        .into_iter()
        .zip(sources)
        .map(|(m, source)| prepare(m, source, !args.no_normalize))
        .collect::<Result<Vec<_>>>()?;
    let (embeddings, views) = match has_embeddings {
        true => (Some(prepared[0].view()), &prepared[1..]),
        false => (None, &prepared[..]),
    };
    let input = AnalysisInput {
        embeddings,
        views: views.iter().map(|v| v.view()).collect(),
        classes,
    };
    let progress = TerminalProgress::new(std::io::stderr().is_terminal());
    Ok(analyze(&input, &args.options(), &progress)?)
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

/// Run `embgeom analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot set the thread count")?;
    }
    let json_file = match args.json.as_deref() {
        Some("-") | None => None,
        Some(path) => Some(PathBuf::from(path)),
    };
    if let Some(path) = &json_file {
        if path.exists() && !args.force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    let inputs = load_inputs(args)?;
    let classes = match &inputs.labels {
        None => None,
        Some(labels) => {
            let (indices, names) = labels.class_indices();
            Some(Classes::new(indices, names).with_context(|| labels.source.clone())?)
        }
    };
    let summary = InputSummary {
        embeddings: inputs.embeddings.as_ref().map(|e| e.source.clone()),
        views: inputs.views.iter().map(|v| v.source.clone()).collect(),
        labels: inputs.labels.as_ref().map(|l| l.source.clone()),
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
    let analysis = match f32_matrices(matrices) {
        Ok(typed) => analyze_typed(typed, &sources, has_embeddings, classes.as_ref(), args)?,
        Err(mixed) => {
            let typed = mixed.into_iter().map(Matrix::into_f64).collect();
            analyze_typed(typed, &sources, has_embeddings, classes.as_ref(), args)?
        }
    };
    let json = to_json(&analysis, &summary);
    match (&args.json, &json_file) {
        (Some(_), None) => {
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        (_, Some(path)) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(file, "{}", serde_json::to_string_pretty(&json)?)?;
            print_table(&analysis, &summary);
        }
        (None, None) => print_table(&analysis, &summary),
    }
    Ok(())
}
