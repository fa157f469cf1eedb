//! Why the pipeline stopped.

use embgeom_geometry::GeometryError;
use embgeom_io::IoError;
use thiserror::Error;

/// An error of the pipeline; every message names the file (and key, column or row) at fault.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// A file could not be read or holds something invalid.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A metric could not be computed.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// A metric could not be computed on the input named by `context`.
    #[error("{context}: {error}")]
    GeometryOf {
        /// The input (file, key) or stage.
        context: String,
        /// What went wrong.
        error: GeometryError,
    },
    /// The inputs do not fit together (missing, given twice, shapes that differ).
    #[error("{0}")]
    Inputs(String),
    /// The worker thread count could not be set.
    #[error("cannot set the thread count: {0}")]
    Threads(String),
}

/// The pipeline's result type.
pub type Result<T> = std::result::Result<T, PipelineError>;

impl PipelineError {
    /// A geometry error about the input or stage `context`.
    pub fn of(context: impl Into<String>) -> impl FnOnce(GeometryError) -> PipelineError {
        let context = context.into();
        move |error| PipelineError::GeometryOf { context, error }
    }
}
