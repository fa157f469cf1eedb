//! Loading and validating embeddings, views and labels for embgeom.
//!
//! Formats: `.npy`, `.npz` and `.safetensors` (arrays by key), `.parquet` and `.csv` (through
//! polars: a list/array column or numeric columns), and `.txt` label files (one per line).
//! Every error names the file and the key, column or row at fault.

mod array;
mod arrow_check;
mod error;
mod guarded_map;
mod json_lines;
mod npy;
mod npz;
mod safetensors_file;
mod table;
mod torch_file;
mod write;

pub use array::{
    ArrayData, ClassNames, Embeddings, LabelValues, Labels, MappedF32, MappedMatrix, Matrix,
    RawArray,
};
pub use embgeom_write::{would_replace, write_output, write_output_with, WriteError};
pub use error::{IoError, Result};
pub use guarded_map::GuardedMap;
pub use json_lines::JsonLines;
pub use npy::{npy_bytes, npy_bytes_f32, npy_shape, parse_npy, read_npy};
pub use npz::Npz;
pub use safetensors_file::{FileBytes, SafetensorsFile};
pub use table::Table;
pub use torch_file::{is_torch_zip, TorchFile};
pub use write::{write_parquet, write_table, Column};

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Quiet sections running now (see [`quiet_panics`]).
static QUIET_SECTIONS: AtomicUsize = AtomicUsize::new(0);
static QUIET_HOOK: Once = Once::new();

/// Run `f`, returning a panic inside it (on any thread it joins) as its message instead of
/// unwinding further, without printing it.
///
/// The last resort for third-party decoders that panic on malformed input (polars' Parquet
/// reader asserts on some invalid files): embgeom turns such a panic into an error naming the
/// file. While a quiet section runs, panic messages of every thread are suppressed.
pub fn quiet_panics<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_SECTIONS.load(Ordering::SeqCst) == 0 {
                previous(info);
            }
        }));
    });
    QUIET_SECTIONS.fetch_add(1, Ordering::SeqCst);
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET_SECTIONS.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}

/// Default key of the embeddings in `.npz` / `.safetensors` files.
pub const EMBEDDINGS_KEY: &str = "embeddings";
/// Default key of the labels in `.npz` / `.safetensors` files (column `label` or `labels` in
/// tables).
pub const LABELS_KEY: &str = "labels";
/// Default key of an (N, V, D) array of views in `.npz` / `.safetensors` files.
pub const VIEWS_KEY: &str = "views";
/// Default key of classifier weights (C x D) in `.npz` / `.safetensors` files.
pub const CLASSIFIER_KEY: &str = "classifier";
/// Default key of classifier biases (C) in `.npz` / `.safetensors` files.
pub const BIAS_KEY: &str = "bias";
/// Default key or column of the train/test split (values `train` and `test`).
pub const SPLIT_KEY: &str = "split";
/// Default key or column of subclass (fine) labels.
pub const SUBCLASSES_KEY: &str = "subclasses";
/// Key of the class names in `.npz` files and `manifest.json` (a list: name of label 0, 1, ...).
pub const CLASS_NAMES_KEY: &str = "class_names";
/// Column names tried, in order, for a list/array embedding column in tables.
pub const EMBEDDING_COLUMNS: [&str; 2] = ["embedding", "embeddings"];
/// Column names tried, in order, for labels in tables.
pub const LABEL_COLUMNS: [&str; 2] = ["label", "labels"];

/// Which arrays or columns of a file to read; `None` means the documented default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Key (npz, safetensors) or list/array column (tables) of the embeddings.
    pub embeddings: Option<String>,
    /// Numeric columns that together form the embeddings (tables).
    pub feature_columns: Option<Vec<String>>,
    /// Key or column of the labels.
    pub labels: Option<String>,
    /// Key of an (N, V, D) array of views.
    pub views: Option<String>,
    /// Key of classifier weights (C x D).
    pub classifier: Option<String>,
    /// Key of classifier biases (C).
    pub bias: Option<String>,
    /// Key or column of the train/test split.
    pub split: Option<String>,
    /// Key or column of subclass labels.
    pub subclasses: Option<String>,
    /// The CSV file has no header row.
    pub no_header: bool,
}

/// What a file provided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The (N, D) embeddings, if the file has them.
    pub embeddings: Option<Embeddings>,
    /// Views from an (N, V, D) array, if the file has one.
    pub views: Vec<Embeddings>,
    /// Labels, if the file has them.
    pub labels: Option<Labels>,
    /// Classifier weights (C x D), if the file has them.
    pub classifier: Option<Embeddings>,
    /// Classifier biases, if the file has them.
    pub bias: Option<RawArray>,
    /// Train/test split, if the file has one.
    pub split: Option<Labels>,
    /// Subclass labels, if the file has them.
    pub subclasses: Option<Labels>,
    /// Class names (key `class_names`), if the file has them.
    pub class_names: Option<ClassNames>,
}

/// A file format holding named arrays.
trait Keyed {
    fn keys(&self) -> Vec<String>;
    fn get(&mut self, key: &str) -> Result<Option<RawArray>>;
}

impl Keyed for Npz {
    fn keys(&self) -> Vec<String> {
        Npz::keys(self)
    }
    fn get(&mut self, key: &str) -> Result<Option<RawArray>> {
        Npz::get(self, key)
    }
}

impl Keyed for TorchFile {
    fn keys(&self) -> Vec<String> {
        TorchFile::keys(self)
    }
    fn get(&mut self, key: &str) -> Result<Option<RawArray>> {
        TorchFile::get(self, key)
    }
}

impl Keyed for JsonLines {
    fn keys(&self) -> Vec<String> {
        JsonLines::keys(self)
    }
    fn get(&mut self, key: &str) -> Result<Option<RawArray>> {
        JsonLines::get(self, key)
    }
}

impl Keyed for SafetensorsFile {
    fn keys(&self) -> Vec<String> {
        SafetensorsFile::keys(self)
    }
    fn get(&mut self, key: &str) -> Result<Option<RawArray>> {
        SafetensorsFile::get(self, key)
    }
}

/// A file opened by its extension.
enum Opened {
    Npy(RawArray),
    Keyed(String, Box<dyn Keyed>),
    Table(Table),
    Lines(String, Vec<String>),
}

/// A path that exists and is a regular file (never a FIFO, which would block, or a device).
pub fn check_regular_file(path: &Path) -> Result<()> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|source| IoError::Read {
        path: name.clone(),
        source,
    })?;
    let file_type = metadata.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    let kind = if file_type.is_dir() {
        "a directory"
    } else {
        file_type_name(&file_type)
    };
    Err(IoError::NotAFile { path: name, kind })
}

#[cfg(unix)]
fn file_type_name(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
fn file_type_name(_: &std::fs::FileType) -> &'static str {
    "not a file"
}

/// Label values as text (integers in decimal).
fn label_texts(labels: Labels) -> Vec<String> {
    match labels.values {
        LabelValues::Int(v) => v.iter().map(i64::to_string).collect(),
        LabelValues::Text(v) => v,
    }
}

/// Class names from a file of their own: `.txt` (one name per line), `.json` (a list, or an
/// object with `class_names`, such as a run's `manifest.json`), or any array file (key
/// `class_names`, or its only array).
pub fn load_class_names(path: &Path) -> Result<ClassNames> {
    let source = path.display().to_string();
    check_regular_file(path)?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let invalid = |what: String| IoError::Value {
        path: source.clone(),
        what,
    };
    let names: Vec<String> = match extension.as_str() {
        "txt" => {
            let text = String::from_utf8(read_bytes(path)?)
                .map_err(|_| invalid("not UTF-8 text".into()))?;
            let mut lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
            while lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            lines
        }
        "json" => {
            let value: serde_json::Value = serde_json::from_slice(&read_bytes(path)?)
                .map_err(|e| invalid(format!("not JSON: {e}")))?;
            json_class_names(&value).ok_or_else(|| {
                invalid("expected a list of class names, or an object with class_names".into())
            })?
        }
        _ => label_texts(
            load_array(path, None, &[CLASS_NAMES_KEY], &Selection::default())?.into_labels()?,
        ),
    };
    if names.is_empty() {
        return Err(invalid("holds no class names".into()));
    }
    Ok(ClassNames { source, names })
}

/// A JSON list of names, or the `class_names` list of an object.
fn json_class_names(value: &serde_json::Value) -> Option<Vec<String>> {
    let list = match value {
        serde_json::Value::Object(map) => map.get(CLASS_NAMES_KEY)?,
        other => other,
    };
    list.as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The `class_names` of the `manifest.json` beside `file` (a training run's), if it has them.
pub fn manifest_class_names(file: &Path) -> Option<ClassNames> {
    let manifest = file.parent()?.join("manifest.json");
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).ok()?).ok()?;
    let serde_json::Value::Object(map) = &value else {
        return None;
    };
    map.contains_key(CLASS_NAMES_KEY).then_some(())?;
    Some(ClassNames {
        source: manifest.display().to_string(),
        names: json_class_names(&value)?,
    })
}

/// Rows of the embeddings of `path` without decoding them where the format allows: an
/// `.npy` from its header, a Parquet file from its footer; other formats are read.
pub fn count_rows(path: &Path, selection: &Selection) -> Result<usize> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "npy" => Ok(npy_shape(path)?.first().copied().unwrap_or(0)),
        "parquet" | "pq" => Table::parquet_rows(path),
        _ => Ok(load(path, selection)?
            .embeddings
            .map_or(0, |e| e.matrix.dim().0)),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| IoError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A read-only private mapping of `file` (named `path` in messages), its pages read in at
/// once and guarded against the file changing ([`GuardedMap`]); `None` where the file cannot
/// be mapped, or where the environment variable `EMBGEOM_MMAP` is `off` (then files are read).
pub(crate) fn map_file(file: &std::fs::File, path: &str) -> Option<std::sync::Arc<GuardedMap>> {
    if std::env::var("EMBGEOM_MMAP").is_ok_and(|v| v == "off") {
        return None;
    }
    GuardedMap::new(file, path).map(std::sync::Arc::new)
}

/// The file's bytes, mapped (read where it cannot be mapped).
fn map_bytes(path: &Path) -> Result<FileBytes> {
    let file = std::fs::File::open(path).map_err(|source| IoError::Read {
        path: path.display().to_string(),
        source,
    })?;
    match map_file(&file, &path.display().to_string()) {
        Some(map) => Ok(FileBytes::Mapped(map)),
        None => read_bytes(path).map(FileBytes::Read),
    }
}

fn open(path: &Path, selection: &Selection) -> Result<Opened> {
    let name = path.display().to_string();
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if path.is_dir() && Table::is_saved_dataset(path) {
        return Ok(Opened::Table(Table::read_saved_dataset(path)?));
    }
    check_regular_file(path)?;
    Ok(match extension.as_str() {
        "npy" => Opened::Npy(read_npy(path)?),
        "npz" => Opened::Keyed(name.clone(), Box::new(Npz::new(read_bytes(path)?, &name)?)),
        "safetensors" => Opened::Keyed(
            name.clone(),
            Box::new(SafetensorsFile::new(map_bytes(path)?, &name)?),
        ),
        "csv" => Opened::Table(Table::read_csv(path, !selection.no_header)?),
        "parquet" | "pq" => Opened::Table(Table::read_parquet(path)?),
        "arrow" | "feather" | "ipc" => Opened::Table(Table::read_ipc(path)?),
        "jsonl" | "ndjson" => Opened::Keyed(
            name.clone(),
            Box::new(JsonLines::new(&read_bytes(path)?, &name)?),
        ),
        // A `.bin` is PyTorch's when it is a zip holding data.pkl (chosen by content).
        "pt" | "pth" | "bin" => {
            let bytes = read_bytes(path)?;
            if extension == "bin" && !is_torch_zip(&bytes) {
                return Err(IoError::UnsupportedFormat { path: name });
            }
            Opened::Keyed(name.clone(), Box::new(TorchFile::new(bytes, &name)?))
        }
        "txt" => {
            let text = String::from_utf8(read_bytes(path)?).map_err(|_| IoError::Corrupt {
                path: name.clone(),
                what: "not UTF-8 text".into(),
            })?;
            let lines = text
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty());
            Opened::Lines(name, lines.collect())
        }
        _ => return Err(IoError::UnsupportedFormat { path: name }),
    })
}

/// Read a key that must exist when it was asked for by name, and may be absent when it is
/// the default.
fn keyed_get(
    path: &str,
    file: &mut dyn Keyed,
    asked: Option<&String>,
    default: &str,
) -> Result<Option<RawArray>> {
    let key = asked.map(String::as_str).unwrap_or(default);
    match file.get(key)? {
        None if asked.is_some() => Err(IoError::Missing {
            path: path.to_string(),
            kind: "array",
            name: key.to_string(),
            available: file.keys(),
        }),
        found => Ok(found),
    }
}

/// The first of `candidates` that is a column of `table`.
fn first_column(table: &Table, candidates: &[&str]) -> Option<String> {
    let columns = table.columns();
    candidates
        .iter()
        .find(|c| columns.iter().any(|col| col == *c))
        .map(|c| c.to_string())
}

/// Load embeddings, views and labels from one file.
///
/// - `.npy`: a 2-D array is the embeddings, a 3-D (N, V, D) array the views.
/// - `.npz` / `.safetensors`: keys `embeddings`, `views`, `labels` (or as selected); a file
///   holding a single array uses it as the embeddings.
/// - `.csv` / `.parquet`: the embeddings are the selected list column, or the selected
///   numeric columns, or a list column named `embedding(s)`, or else every numeric column
///   other than the label column; labels come from `label(s)` or the selected column.
pub fn load(path: &Path, selection: &Selection) -> Result<Loaded> {
    let name = path.display().to_string();
    match open(path, selection)? {
        Opened::Npy(array) => {
            let keys = [
                &selection.classifier,
                &selection.bias,
                &selection.split,
                &selection.subclasses,
            ];
            if let Some(key) = keys.into_iter().flatten().next() {
                return Err(IoError::Missing {
                    path: name,
                    kind: "array (an .npy file holds a single unnamed array, and no file has that name either)",
                    name: key.clone(),
                    available: Vec::new(),
                });
            }
            load_npy(array)
        }

        Opened::Keyed(path, mut file) => {
            let file = file.as_mut();
            let labels = keyed_get(&path, file, selection.labels.as_ref(), LABELS_KEY)?
                .map(RawArray::into_labels)
                .transpose()?;
            let views = keyed_get(&path, file, selection.views.as_ref(), VIEWS_KEY)?
                .map(RawArray::into_views)
                .transpose()?
                .unwrap_or_default();
            let mut embeddings =
                keyed_get(&path, file, selection.embeddings.as_ref(), EMBEDDINGS_KEY)?;
            let keys = file.keys();
            if embeddings.is_none() && views.is_empty() {
                if let [only] = keys.as_slice() {
                    embeddings = file.get(only)?;
                } else {
                    return Err(IoError::Missing {
                        path,
                        kind: "array",
                        name: EMBEDDINGS_KEY.into(),
                        available: keys,
                    });
                }
            }
            Ok(Loaded {
                embeddings: embeddings.map(RawArray::into_embeddings).transpose()?,
                views,
                labels,
                classifier: keyed_get(&path, file, selection.classifier.as_ref(), CLASSIFIER_KEY)?
                    .map(RawArray::into_embeddings)
                    .transpose()?,
                bias: keyed_get(&path, file, selection.bias.as_ref(), BIAS_KEY)?,
                split: keyed_get(&path, file, selection.split.as_ref(), SPLIT_KEY)?
                    .map(RawArray::into_labels)
                    .transpose()?,
                subclasses: keyed_get(&path, file, selection.subclasses.as_ref(), SUBCLASSES_KEY)?
                    .map(RawArray::into_labels)
                    .transpose()?,
                class_names: keyed_get(&path, file, None, CLASS_NAMES_KEY)?
                    .map(|names| {
                        let source = names.source.clone();
                        Ok::<_, IoError>(ClassNames {
                            source,
                            names: label_texts(names.into_labels()?),
                        })
                    })
                    .transpose()?,
            })
        }
        Opened::Table(table) => {
            let label_column = match &selection.labels {
                Some(column) => Some(column.clone()),
                None => first_column(&table, &LABEL_COLUMNS),
            };
            let optional_column =
                |asked: &Option<String>, default: &str| -> Result<Option<Labels>> {
                    match asked.clone().or_else(|| first_column(&table, &[default])) {
                        Some(column) => Ok(Some(table.column(&column)?.into_labels()?)),
                        None => Ok(None),
                    }
                };
            let split = optional_column(&selection.split, SPLIT_KEY)?;
            let subclasses = optional_column(&selection.subclasses, SUBCLASSES_KEY)?;
            let not_features: Vec<String> =
                [&label_column, &selection.split, &selection.subclasses]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .chain([SPLIT_KEY.to_string(), SUBCLASSES_KEY.to_string()])
                    .collect();
            let labels = label_column
                .as_deref()
                .map(|c| table.column(c)?.into_labels())
                .transpose()?;
            let embeddings = if let Some(columns) = &selection.feature_columns {
                table.numeric_matrix(columns)?
            } else if let Some(column) = selection
                .embeddings
                .clone()
                .or_else(|| first_column(&table, &EMBEDDING_COLUMNS))
            {
                table.column(&column)?
            } else {
                if let Some(text) = table
                    .text_columns()
                    .into_iter()
                    .find(|c| !not_features.contains(c) && Some(c) != label_column.as_ref())
                {
                    let (row, cell) = table.first_text_cell(&text).unwrap_or_default();
                    return Err(IoError::Value {
                        path: format!("{name}:{text}"),
                        what: format!(
                            "row {row} is {cell:?}, not a number: every column but the labels is a feature; fix the cell, or choose the features with --columns (or a list column with --key)"
                        ),
                    });
                }
                let features: Vec<String> = table
                    .numeric_columns()
                    .into_iter()
                    .filter(|c| !not_features.contains(c))
                    .collect();
                if features.is_empty() {
                    return Err(IoError::Missing {
                        path: name,
                        kind: "numeric or list column",
                        name: "(any)".into(),
                        available: table.columns(),
                    });
                }
                table.numeric_matrix(&features)?
            };
            Ok(Loaded {
                embeddings: Some(embeddings.into_embeddings()?),
                labels,
                split,
                subclasses,
                ..Loaded::default()
            })
        }
        Opened::Lines(path, _) => Err(IoError::UnsupportedFormat { path }),
    }
}

/// A 3-D `.npy` array is views, any other the embeddings.
fn load_npy(array: RawArray) -> Result<Loaded> {
    Ok(match array.shape.len() {
        3 => Loaded {
            views: array.into_views()?,
            ..Loaded::default()
        },
        _ => Loaded {
            embeddings: Some(array.into_embeddings()?),
            ..Loaded::default()
        },
    })
}

/// Load labels from a file of their own: `.npy` (1-D), `.npz` / `.safetensors` (key
/// `labels` or as selected), `.csv` / `.parquet` (column `label(s)`, the selected one, or the
/// only column), or `.txt` (one label per line; integers if every line is one).
pub fn load_labels(path: &Path, selection: &Selection) -> Result<Labels> {
    load_array(path, selection.labels.as_deref(), &LABEL_COLUMNS, selection)?.into_labels()
}

/// Load one array from a file of its own: `.npy` (the array), `.npz` / `.safetensors` (key
/// `key`, else the first of `defaults` present, else the only array), `.csv` / `.parquet`
/// (column likewise, or the only column), `.txt` (one value per line: integers if every line
/// is one, else text).
pub fn load_array(
    path: &Path,
    key: Option<&str>,
    defaults: &[&str],
    selection: &Selection,
) -> Result<RawArray> {
    let name = path.display().to_string();
    let choose = |available: Vec<String>| -> Result<String> {
        if let Some(key) = key {
            return Ok(key.to_string());
        }
        if let Some(found) = defaults.iter().find(|d| available.iter().any(|a| a == *d)) {
            return Ok(found.to_string());
        }
        match available.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(IoError::Missing {
                path: name.clone(),
                kind: "array or column",
                name: defaults.first().unwrap_or(&"(any)").to_string(),
                available,
            }),
        }
    };
    match open(path, selection)? {
        Opened::Npy(array) => Ok(array),
        Opened::Keyed(path, mut file) => {
            let key = choose(file.keys())?;
            file.get(&key)?.ok_or_else(|| IoError::Missing {
                path,
                kind: "array",
                name: key,
                available: file.keys(),
            })
        }
        Opened::Table(table) => table.column(&choose(table.columns())?),
        Opened::Lines(path, lines) => {
            let ints: Option<Vec<i64>> = lines.iter().map(|l| l.parse().ok()).collect();
            let n = lines.len();
            let (dtype, data) = match ints {
                Some(ints) => ("i64", ArrayData::Int(ints)),
                None => ("str", ArrayData::Text(lines)),
            };
            Ok(RawArray {
                source: path,
                dtype: dtype.into(),
                shape: vec![n],
                data,
            })
        }
    }
}
