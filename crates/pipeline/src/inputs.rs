//! What to read ([`InputSpec`]) and reading it into one bundle ([`embgeom_io::Loaded`]),
//! with the checks that the inputs fit together.

use crate::error::{PipelineError, Result};
use embgeom_io::{
    load, load_array, load_class_names, load_labels, manifest_class_names, ClassNames, Embeddings,
    LabelValues, Labels, Loaded, MappedMatrix, Matrix, Selection, BIAS_KEY, CLASSIFIER_KEY,
    SPLIT_KEY, SUBCLASSES_KEY,
};
use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where an optional input comes from: a file of its own, or a key (column) of the
/// embeddings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file of its own.
    File(PathBuf),
    /// A key (npz, safetensors) or column (csv, parquet) of the embeddings file.
    Key(String),
}

impl Source {
    /// Decide once what a `FILE|KEY` value names: a file when such a file exists, else a key.
    pub fn resolve(value: &str) -> Source {
        if Path::new(value).is_file() {
            Source::File(PathBuf::from(value))
        } else {
            Source::Key(value.to_string())
        }
    }

    fn key(source: &Option<Source>) -> Option<String> {
        match source {
            Some(Source::Key(key)) => Some(key.clone()),
            _ => None,
        }
    }

    fn file(source: &Option<Source>) -> Option<&Path> {
        match source {
            Some(Source::File(path)) => Some(path),
            _ => None,
        }
    }
}

/// Everything that says what to read: the files, the keys and columns inside them, and
/// whether to L2-normalise the rows. `Default` reads nothing and normalises.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Embeddings file (`.npy`, `.npz`, `.safetensors`, `.parquet`, `.csv`); may also hold
    /// labels, views and the extras under their default keys.
    pub embeddings: Option<PathBuf>,
    /// Row-matched views of the same items, one file each (two or more).
    pub views: Vec<PathBuf>,
    /// Labels file, one label per row.
    pub labels: Option<PathBuf>,
    /// Classifier weights (C x D).
    pub classifier: Option<Source>,
    /// Classifier biases (C).
    pub bias: Option<Source>,
    /// Train/test split of the kNN accuracy (values `train` and `test`).
    pub split: Option<Source>,
    /// Subclass (fine) labels.
    pub subclasses: Option<Source>,
    /// Names of the integer labels 0..C-1 (`.txt`, `.json` or an array file); without it,
    /// a `class_names` key of the embeddings file, else the `class_names` of the
    /// `manifest.json` beside it, when present.
    pub class_names: Option<PathBuf>,
    /// Key (npz, safetensors) or list column (tables) of the embeddings.
    pub key: Option<String>,
    /// Numeric columns that form the embeddings (tables).
    pub columns: Option<Vec<String>>,
    /// Key or column of the labels.
    pub label_key: Option<String>,
    /// Key of an (N, V, D) array of views.
    pub views_key: Option<String>,
    /// CSV files have no header row.
    pub no_header: bool,
    /// L2-normalise the rows (the convention of every metric on the sphere).
    pub normalize: bool,
}

impl Default for InputSpec {
    fn default() -> Self {
        InputSpec {
            embeddings: None,
            views: Vec::new(),
            labels: None,
            classifier: None,
            bias: None,
            split: None,
            subclasses: None,
            class_names: None,
            key: None,
            columns: None,
            label_key: None,
            views_key: None,
            no_header: false,
            normalize: true,
        }
    }
}

impl InputSpec {
    /// The spec of the embeddings file `path` with default keys.
    pub fn file(path: impl Into<PathBuf>) -> InputSpec {
        InputSpec {
            embeddings: Some(path.into()),
            ..InputSpec::default()
        }
    }

    /// Which keys and columns to read from the embeddings file.
    pub fn selection(&self) -> Selection {
        Selection {
            embeddings: self.key.clone(),
            feature_columns: self.columns.clone(),
            labels: self.label_key.clone(),
            views: self.views_key.clone(),
            classifier: Source::key(&self.classifier),
            bias: Source::key(&self.bias),
            split: Source::key(&self.split),
            subclasses: Source::key(&self.subclasses),
            no_header: self.no_header,
        }
    }

    /// Every file read besides the embeddings file (labels, views, extras given as files).
    pub fn side_files(&self) -> Vec<&Path> {
        let extras = [&self.classifier, &self.bias, &self.split, &self.subclasses];
        self.views
            .iter()
            .map(PathBuf::as_path)
            .chain(self.labels.as_deref())
            .chain(self.class_names.as_deref())
            .chain(extras.into_iter().filter_map(Source::file))
            .collect()
    }

    /// The same spec with another embeddings file (a checkpoint of a run).
    pub fn with_embeddings(&self, path: &Path) -> InputSpec {
        InputSpec {
            embeddings: Some(path.to_path_buf()),
            ..self.clone()
        }
    }
}

/// Where the analysed rows came from: the `inputs` object of the analysis document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSummary {
    /// Embeddings (`file` or `file:key`).
    pub embeddings: Option<String>,
    /// Views.
    pub views: Vec<String>,
    /// Labels.
    pub labels: Option<String>,
    /// Classifier weights.
    pub classifier: Option<String>,
    /// Train/test split.
    pub split: Option<String>,
    /// Subclass labels.
    pub subclasses: Option<String>,
    /// Where the class names came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<String>,
    /// Stored dtype of the embeddings (or first view).
    pub dtype: String,
    /// Whether the rows were L2-normalised.
    pub normalized: bool,
}

impl InputSummary {
    /// The summary of the inputs.
    pub fn of(inputs: &Inputs, normalized: bool) -> InputSummary {
        InputSummary {
            embeddings: inputs.embeddings.as_ref().map(|e| e.source.clone()),
            views: inputs.views.iter().map(|v| v.source.clone()).collect(),
            labels: inputs.labels.as_ref().map(|l| l.source.clone()),
            classifier: inputs.classifier.as_ref().map(|c| c.source.clone()),
            split: inputs.split.as_ref().map(|s| s.source.clone()),
            subclasses: inputs.subclasses.as_ref().map(|s| s.source.clone()),
            class_names: inputs
                .labels
                .as_ref()
                .and_then(|l| l.names.as_ref())
                .map(|n| n.source.clone()),
            dtype: inputs
                .embeddings
                .as_ref()
                .or(inputs.views.first())
                .map(|e| e.dtype.clone())
                .unwrap_or_default(),
            normalized,
        }
    }

    /// The embeddings file, else the views, for titles.
    pub fn source(&self) -> String {
        self.embeddings
            .clone()
            .unwrap_or_else(|| self.views.join(", "))
    }
}

/// Load every input of `spec` (and the ones stored beside the embeddings) into one bundle;
/// [`Inputs::from_loaded`] checks that they fit together.
pub fn load_inputs(spec: &InputSpec) -> Result<Loaded> {
    let selection = spec.selection();
    let mut inputs = match &spec.embeddings {
        Some(path) => load(path, &selection)?,
        None => Loaded::default(),
    };
    if !spec.views.is_empty() {
        if !inputs.views.is_empty() {
            return Err(PipelineError::Inputs(format!(
                "views given twice: by --views and inside {}",
                spec.embeddings
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string())
            )));
        }
        let plain = Selection {
            no_header: selection.no_header,
            embeddings: selection.embeddings.clone(),
            feature_columns: selection.feature_columns.clone(),
            ..Selection::default()
        };
        for path in &spec.views {
            let view = load(path, &plain)?.embeddings.ok_or_else(|| {
                PipelineError::Inputs(format!("{}: holds no (N, D) embeddings", path.display()))
            })?;
            inputs.views.push(view);
        }
    }
    if let Some(path) = &spec.labels {
        inputs.labels = Some(load_labels(path, &selection)?);
    }
    if let Some(labels) = inputs.labels.take() {
        inputs.labels = Some(named(labels, spec, inputs.class_names.take())?);
    }
    if let Some(path) = Source::file(&spec.classifier) {
        inputs.classifier =
            Some(load_array(path, None, &[CLASSIFIER_KEY], &selection)?.into_embeddings()?);
    }
    if let Some(path) = Source::file(&spec.bias) {
        inputs.bias = Some(load_array(path, None, &[BIAS_KEY], &selection)?);
    }
    if let Some(path) = Source::file(&spec.split) {
        inputs.split = Some(load_array(path, None, &[SPLIT_KEY], &selection)?.into_labels()?);
    }
    if let Some(path) = Source::file(&spec.subclasses) {
        inputs.subclasses =
            Some(load_array(path, None, &[SUBCLASSES_KEY], &selection)?.into_labels()?);
    }
    Ok(inputs)
}

/// The labels with their class names: `--class-names`, else a `class_names` key of the
/// embeddings file (`stored`), else the `class_names` of the `manifest.json` beside it. Names
/// found beside the file are for integer labels only; text labels keep their own.
fn named(labels: Labels, spec: &InputSpec, stored: Option<ClassNames>) -> Result<Labels> {
    if let Some(path) = &spec.class_names {
        return Ok(labels.with_names(load_class_names(path)?)?);
    }
    let found = stored.or_else(|| spec.embeddings.as_deref().and_then(manifest_class_names));
    match (found, &labels.values) {
        (Some(names), LabelValues::Int(_)) => Ok(labels.with_names(names)?),
        _ => Ok(labels),
    }
}

/// Element values of a matrix: owned (read from a file), mapped (an f32 `.npy` used in
/// place) or borrowed (a caller's array, used in place).
#[derive(Debug)]
pub enum Values<'a> {
    /// Stored as f16, bf16 or f32: computed in f32.
    F32(CowArray<'a, f32, Ix2>),
    /// Stored as f64 or integers: computed in f64.
    F64(CowArray<'a, f64, Ix2>),
    /// Stored as f32 in a memory-mapped file: computed in f32, read in place.
    Mapped(MappedMatrix),
}

impl Values<'_> {
    /// (rows, columns).
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Values::F32(a) => a.dim(),
            Values::F64(a) => a.dim(),
            Values::Mapped(m) => m.dim(),
        }
    }

    /// Bytes per element (4 or 8).
    pub fn element_size(&self) -> usize {
        match self {
            Values::F32(_) | Values::Mapped(_) => 4,
            Values::F64(_) => 8,
        }
    }

    /// The values as an owned f64 matrix.
    pub fn to_f64(&self) -> Array2<f64> {
        match self {
            Values::F32(a) => a.mapv(f64::from),
            Values::F64(a) => a.to_owned(),
            Values::Mapped(m) => m.view().mapv(f64::from),
        }
    }

    /// `Ok` unless the values are mapped from a file that was truncated or rewritten in place
    /// since (the error names the file); call it after using them.
    pub fn check_unchanged(&self) -> Result<()> {
        match self {
            Values::Mapped(m) => Ok(m.check_unchanged()?),
            Values::F32(_) | Values::F64(_) => Ok(()),
        }
    }

    /// The f32 values, borrowed; `None` for f64.
    pub fn f32_view(&self) -> Option<ArrayView2<'_, f32>> {
        match self {
            Values::F32(a) => Some(a.view()),
            Values::Mapped(m) => Some(m.view()),
            Values::F64(_) => None,
        }
    }
}

/// A matrix with its provenance (`file`, `file:key`, or a name given by the caller).
#[derive(Debug)]
pub struct Rows<'a> {
    /// Where it came from, for messages.
    pub source: String,
    /// The dtype as stored.
    pub dtype: String,
    /// The values.
    pub values: Values<'a>,
}

impl Rows<'static> {
    fn from_embeddings(e: Embeddings) -> Rows<'static> {
        let values = match e.matrix {
            Matrix::F32(a) => Values::F32(CowArray::from(a)),
            Matrix::F64(a) => Values::F64(CowArray::from(a)),
            Matrix::Mapped(m) => Values::Mapped(m),
        };
        Rows {
            source: e.source,
            dtype: e.dtype,
            values,
        }
    }
}

/// Everything one analysis reads, from files ([`Inputs::from_loaded`]) or from a caller's
/// arrays (borrowed, not copied).
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    /// The embeddings file, named when it holds nothing to analyse.
    pub origin: Option<String>,
    /// One embedding per item.
    pub embeddings: Option<Rows<'a>>,
    /// Row-matched views of the items.
    pub views: Vec<Rows<'a>>,
    /// Class labels.
    pub labels: Option<Labels>,
    /// Classifier weights (C x D).
    pub classifier: Option<Rows<'a>>,
    /// Classifier biases (C), with their source.
    pub bias: Option<(String, Vec<f64>)>,
    /// Train/test split.
    pub split: Option<Labels>,
    /// Subclass labels.
    pub subclasses: Option<Labels>,
}

impl Inputs<'static> {
    /// The inputs loaded from files; `origin` is the embeddings file.
    pub fn from_loaded(loaded: Loaded, origin: Option<&Path>) -> Result<Inputs<'static>> {
        let bias = loaded
            .bias
            .map(|b| Ok::<_, PipelineError>((b.source.clone(), b.into_vector()?)))
            .transpose()?;
        Ok(Inputs {
            origin: origin.map(|p| p.display().to_string()),
            embeddings: loaded.embeddings.map(Rows::from_embeddings),
            views: loaded
                .views
                .into_iter()
                .map(Rows::from_embeddings)
                .collect(),
            labels: loaded.labels,
            classifier: loaded.classifier.map(Rows::from_embeddings),
            bias,
            split: loaded.split,
            subclasses: loaded.subclasses,
        })
    }
}

impl Inputs<'_> {
    /// Something to analyse; views share one shape, the embeddings the same number of rows;
    /// one label, split value and subclass per row; extras need labels; a bias needs a
    /// classifier.
    pub fn check(&self) -> Result<()> {
        let fail = |message: String| Err(PipelineError::Inputs(message));
        let Some(reference) = self.embeddings.as_ref().or(self.views.first()) else {
            return fail(match &self.origin {
                Some(path) => format!("{path}: holds no embeddings and no views"),
                None => "nothing to analyse: give an EMBEDDINGS file or --views A B".into(),
            });
        };
        if self.views.len() == 1 {
            return fail(format!(
                "{}: alignment needs at least two views, got one",
                self.views[0].source
            ));
        }
        let (n, d) = reference.values.dim();
        for view in &self.views {
            if view.values.dim() != (n, d) {
                return fail(format!(
                    "shape mismatch: {} has shape {:?} but {} has shape {:?}",
                    view.source,
                    view.values.dim(),
                    reference.source,
                    (n, d)
                ));
            }
        }
        for labels in [&self.labels, &self.split, &self.subclasses]
            .into_iter()
            .flatten()
        {
            if labels.len() != n {
                return fail(format!(
                    "{}: {} values, but {} has {n} rows",
                    labels.source,
                    labels.len(),
                    reference.source
                ));
            }
        }
        if self.labels.is_none() {
            let extra = [
                self.classifier.as_ref().map(|c| &c.source),
                self.split.as_ref().map(|s| &s.source),
                self.subclasses.as_ref().map(|s| &s.source),
            ];
            if let Some(source) = extra.into_iter().flatten().next() {
                return fail(format!(
                    "{source} needs class labels: give --labels (or store them beside the embeddings)"
                ));
            }
        }
        if let (Some((source, _)), None) = (&self.bias, &self.classifier) {
            return fail(format!(
                "{source}: a bias needs classifier weights (--classifier)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_or_key_is_decided_once_by_whether_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("w.npy");
        std::fs::write(&weights, b"").unwrap();
        let spec = InputSpec {
            classifier: Some(Source::resolve(weights.to_str().unwrap())),
            split: Some(Source::resolve("fold")),
            labels: Some(dir.path().join("labels.txt")),
            ..InputSpec::file("emb.npz")
        };
        assert_eq!(spec.classifier, Some(Source::File(weights.clone())));
        let selection = spec.selection();
        assert_eq!(selection.split.as_deref(), Some("fold"));
        assert_eq!(selection.classifier, None, "a file is not a key");
        assert_eq!(
            spec.side_files(),
            vec![dir.path().join("labels.txt").as_path(), weights.as_path()]
        );
        let other = spec.with_embeddings(Path::new("ckpt_2.npz"));
        assert_eq!(other.embeddings.as_deref(), Some(Path::new("ckpt_2.npz")));
        assert_eq!(other.split, spec.split);
    }

    #[test]
    fn inputs_that_do_not_fit_together_are_named() {
        let check = |spec: &InputSpec| {
            Inputs::from_loaded(load_inputs(spec)?, spec.embeddings.as_deref())?.check()
        };
        let nothing = check(&InputSpec::default()).unwrap_err();
        assert!(nothing.to_string().starts_with("nothing to analyse"));
        let dir = tempfile::tempdir().unwrap();
        let rows = dir.path().join("rows.npy");
        std::fs::write(
            &rows,
            embgeom_io::npy_bytes_f32(&[2, 2], &[1.0, 0.0, 0.0, 1.0]),
        )
        .unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "a\nb\nc\n").unwrap();
        let spec = InputSpec {
            labels: Some(labels),
            ..InputSpec::file(&rows)
        };
        let error = check(&spec).unwrap_err().to_string();
        assert!(error.contains("labels.txt: 3 values, but"), "{error}");
        assert!(error.contains("rows.npy has 2 rows"), "{error}");
    }
}
