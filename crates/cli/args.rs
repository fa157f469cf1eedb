//! The command-line flags and their translation into the libraries' option structs.

use clap::Args;
use embgeom_geometry::{
    AnalysisOptions, KnnOptions, DEFAULT_ISOSCORE_ZETA, DEFAULT_K, DEFAULT_MAX_EXACT,
    DEFAULT_MAX_QUERIES, DEFAULT_TEMPERATURE, DEFAULT_TILE,
};
use embgeom_pipeline::{set_threads, InputSpec, Source};
use std::path::{Path, PathBuf};

/// The inputs and metric parameters of `analyze` and `report`.
#[derive(Args, Debug, Clone)]
pub struct AnalysisFlags {
    /// Embeddings file (.npy, .npz, .safetensors, .parquet, .csv). Not needed with --views.
    pub embeddings: Option<PathBuf>,
    #[command(flatten)]
    pub inputs: InputFlags,
    #[command(flatten)]
    pub metrics: MetricFlags,
}

/// The options that say how to read the inputs (everything but the embeddings file).
#[derive(Args, Debug, Clone)]
pub struct InputFlags {
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

    /// Names of the integer labels 0..C-1: a .txt (one per line), a .json list (or an object
    /// with class_names) or an array file [default: a class_names key of the embeddings file,
    /// else the class_names of the manifest.json beside it].
    #[arg(long, value_name = "FILE")]
    pub class_names: Option<PathBuf>,

    /// CSV files have no header row (columns are then column_1, column_2, ...).
    #[arg(long)]
    pub no_header: bool,

    /// Use the rows as they are instead of L2-normalising them.
    #[arg(long)]
    pub no_normalize: bool,
}

impl InputFlags {
    /// The pipeline's input spec, reading `embeddings`.
    pub fn spec(&self, embeddings: Option<PathBuf>) -> InputSpec {
        let resolve = |value: &Option<String>| value.as_deref().map(Source::resolve);
        InputSpec {
            embeddings,
            views: self.views.clone(),
            labels: self.labels.clone(),
            classifier: resolve(&self.classifier),
            bias: resolve(&self.bias),
            split: resolve(&self.split),
            subclasses: resolve(&self.subclasses),
            class_names: self.class_names.clone(),
            key: self.key.clone(),
            columns: self.columns.clone(),
            label_key: self.label_key.clone(),
            views_key: self.views_key.clone(),
            no_header: self.no_header,
            normalize: !self.no_normalize,
        }
    }
}

/// Parameters of the metrics.
#[derive(Args, Debug, Clone)]
pub struct MetricFlags {
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

    /// Shrinkage zeta of IsoScore*: the covariance (1 - zeta) C + zeta (tr C / D) I.
    #[arg(long, default_value_t = DEFAULT_ISOSCORE_ZETA, value_name = "ZETA")]
    pub isoscore_zeta: f64,

    /// Worker threads [default: all cores]; results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Refuse an analysis whose working memory would exceed SIZE (e.g. 8G, 500M)
    /// [default: 3/4 of the machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
}

/// A size in bytes: a number with an optional K, M, G or T suffix (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale: f64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit {other:?} (use K, M, G or T)")),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale < u64::MAX as f64 => Ok((v * scale) as u64),
        _ => Err(format!(
            "{text:?} is not a positive size such as 8G or 500M"
        )),
    }
}

impl MetricFlags {
    /// The geometry crate's options, after setting the thread count when one is given.
    pub fn options(&self) -> anyhow::Result<AnalysisOptions> {
        if let Some(threads) = self.threads {
            set_threads(threads)?;
        }
        Ok(AnalysisOptions {
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
            memory_limit: self.memory_limit,
            isoscore_zeta: self.isoscore_zeta,
            ..AnalysisOptions::default()
        })
    }
}

/// Where a report (of `report` or `track`) is written.
#[derive(Args, Debug, Clone)]
pub struct OutputFlags {
    /// Output folder [default: reports/NAME].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Name of the report [default: from the input's file or folder name].
    #[arg(long)]
    pub name: Option<String>,

    /// Replace an output folder that holds a different report or other files.
    #[arg(long)]
    pub force: bool,
}

impl OutputFlags {
    /// The report's name (given, else `default`) and folder (given, else `reports/<name>`).
    pub fn resolve(&self, default: String) -> (String, PathBuf) {
        let name = self.name.clone().unwrap_or(default);
        let dir = self
            .out
            .clone()
            .unwrap_or_else(|| Path::new("reports").join(&name));
        (name, dir)
    }
}
