//! Why `track` stopped.

use embgeom_pipeline::PipelineError;
use embgeom_report::ReportError;
use thiserror::Error;

/// An error of `track`; messages name the checkpoint, manifest or check at fault.
#[derive(Debug, Error)]
pub enum TrackError {
    /// The run could not be listed or a checkpoint has no step.
    #[error("{0}")]
    Discovery(String),
    /// A `--fail-if` check is malformed or names no metric.
    #[error("{0}")]
    Check(String),
    /// A checkpoint could not be loaded or analysed.
    #[error("{path}: {error}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What went wrong.
        error: PipelineError,
    },
    /// Checkpoints that do not embed the same rows.
    #[error("{0}")]
    Rows(String),
    /// A file (cache, table) could not be read or written.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        what: String,
    },
    /// The outputs could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The tables could not be written.
    #[error(transparent)]
    Table(#[from] embgeom_io::IoError),
}

/// `track`'s result type.
pub type Result<T> = std::result::Result<T, TrackError>;
