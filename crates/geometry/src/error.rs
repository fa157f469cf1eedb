//! Typed errors of the geometry crate.

use thiserror::Error;

/// Everything that can make a metric undefined for the given input.
///
/// Metrics never return NaN silently: an input on which a formula is undefined is reported
/// here, with the row, class or parameter at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GeometryError {
    /// A row has L2 norm 0, so it has no direction on the sphere.
    #[error("row {row} has zero norm; it cannot be L2-normalised")]
    ZeroNorm { row: usize },
    /// A value is NaN or infinite.
    #[error("row {row}, column {column} is not finite ({value})")]
    NonFinite {
        row: usize,
        column: usize,
        value: f64,
    },
    /// Too few rows (or pairs) for the metric to be defined.
    #[error("{metric} needs at least {needed} rows, got {got}")]
    TooFewRows {
        metric: &'static str,
        needed: usize,
        got: usize,
    },
    /// Two arrays that must be row-matched are not.
    #[error("shape mismatch: {what}")]
    ShapeMismatch { what: String },
    /// A parameter is out of its domain.
    #[error("invalid parameter {name} = {}: {reason}", compact(*.value))]
    InvalidParameter {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    /// A metric overflowed or is undefined for this input.
    #[error("{metric} is not finite ({value}): the values overflow in its formula; L2-normalise the rows (drop --no-normalize) or use smaller parameters")]
    NonFiniteResult { metric: &'static str, value: f64 },
    /// The analysis would need more memory than allowed; `driver` says which input's size
    /// makes it so.
    #[error("too large for the memory limit: {what}")]
    MemoryLimit { what: String, driver: MemoryDriver },
    /// A linear-algebra routine failed.
    #[error("numerical failure: {what}")]
    Numerical { what: String },
    /// Bytes that are not a state of this version.
    #[error("{what}")]
    InvalidState { what: String },
    /// The labels do not fit the rows.
    #[error("labels: {what}")]
    Labels { what: String },
    /// Rows a caller loads on demand (a shard) could not be read; `what` names the file.
    #[error("{what}")]
    Source { what: String },
}

/// The largest part of an analysis's working memory, and so the input that drives it: the
/// labels (classes), the embeddings' width (dimensions) or their length (rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryDriver {
    /// The C x C class pairs: the labels' class count.
    Classes,
    /// The D x D matrices: the embeddings' dimension.
    Dimensions,
    /// The per-row work: the number of rows.
    Rows,
}

/// A number as people write it: `1e39` rather than forty digits.
fn compact(value: f64) -> String {
    if value != 0.0 && (value.abs() >= 1e6 || value.abs() < 1e-4) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// Result alias of the geometry crate.
pub type Result<T> = std::result::Result<T, GeometryError>;
