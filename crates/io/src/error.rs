//! Typed errors of the loaders. Every message names the file (and key, column or row).

use thiserror::Error;

/// Why an input could not be loaded.
#[derive(Debug, Error)]
pub enum IoError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An output could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An output could not be written (see [`embgeom_write`]).
    #[error(transparent)]
    Output(#[from] embgeom_write::WriteError),
    /// The path is not a regular file (a directory, FIFO, socket or device).
    #[error("{path}: not a regular file ({kind}); embgeom reads regular files only")]
    NotAFile { path: String, kind: &'static str },
    /// The file name has an extension no loader handles.
    #[error(
        "{path}: unsupported file type (expected .npy, .npz, .safetensors, .pt/.pth/.bin (PyTorch), .parquet, .arrow/.feather/.ipc, .csv, .jsonl/.ndjson, .txt, or a Hugging Face save_to_disk folder)"
    )]
    UnsupportedFormat { path: String },
    /// The file is shorter than its header says.
    #[error("{path}: truncated file: {what}")]
    Truncated { path: String, what: String },
    /// The file is not valid in its format.
    #[error("{path}: corrupt or invalid file: {what}")]
    Corrupt { path: String, what: String },
    /// An element type no loader handles.
    #[error("{path}: unsupported dtype {dtype}{hint}")]
    UnknownDtype {
        path: String,
        dtype: String,
        hint: String,
    },
    /// A named array or column does not exist.
    #[error("{path}: no {kind} named {name:?}; available: {}", available.join(", "))]
    Missing {
        path: String,
        kind: &'static str,
        name: String,
        available: Vec<String>,
    },
    /// An array has the wrong rank or shape.
    #[error("{path}: {what}")]
    Shape { path: String, what: String },
    /// A value is missing or invalid.
    #[error("{path}: {what}")]
    Value { path: String, what: String },
    /// A memory-mapped input was truncated or rewritten in place while it was read.
    #[error("{path}: the file changed while it was read (truncated or rewritten in place); nothing was computed from it. Write a new file under another name and rename it into place, or analyse a copy")]
    Changed { path: String },
}

/// Result alias of the io crate.
pub type Result<T> = std::result::Result<T, IoError>;
