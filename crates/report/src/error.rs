//! Why a report, comparison or trajectory page could not be written.

use embgeom_pipeline::PipelineError;
use thiserror::Error;

/// Why a report could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The folder holds something else and `force` was not given.
    #[error("{dir} already holds a different report or other files; pass --force to replace it, or choose another --out/--name")]
    Exists { dir: String },
    /// A file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An output could not be written.
    #[error(transparent)]
    Output(#[from] embgeom_io::IoError),
    /// The inputs could not be loaded or analysed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// plotters failed to draw a figure.
    #[error("figure {figure}: {what}")]
    Draw { figure: String, what: String },
}

impl From<embgeom_io::WriteError> for ReportError {
    fn from(error: embgeom_io::WriteError) -> ReportError {
        ReportError::Output(error.into())
    }
}
