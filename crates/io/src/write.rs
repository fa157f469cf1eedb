//! Writing time-series tables (CSV and Parquet) through polars.

use crate::error::{IoError, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// The temporary file an output is written to before it is renamed into place: beside it,
/// with the same extension (`figure.png` -> `figure.tmp-PID.png`; encoders choose the format
/// by extension).
pub fn temporary_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!(
            "{stem}.tmp-{}.{}",
            std::process::id(),
            ext.to_string_lossy()
        ),
        None => format!("{stem}.tmp-{}", std::process::id()),
    };
    path.with_file_name(name)
}

/// Move a finished temporary file into place (an interrupted run never leaves a half-written
/// output); on failure the temporary file is removed.
pub fn commit_temporary(temporary: &Path, path: &Path) -> Result<()> {
    std::fs::rename(temporary, path).map_err(|source| {
        let _ = std::fs::remove_file(temporary);
        IoError::Write {
            path: path.display().to_string(),
            source,
        }
    })
}

/// Write `bytes` to `path` atomically: into a temporary file beside it, then renamed. Errors
/// name the file (e.g. `No space left on device`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = temporary_path(path);
    std::fs::write(&temporary, bytes).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        IoError::Write {
            path: path.display().to_string(),
            source,
        }
    })?;
    commit_temporary(&temporary, path)
}

/// A column of a table to write.
pub enum Column {
    /// Integers (e.g. the step).
    Int(String, Vec<i64>),
    /// Numbers; `None` is written as an empty cell / null.
    Float(String, Vec<Option<f64>>),
    /// Text (e.g. the file name).
    Text(String, Vec<String>),
}

/// Write the columns as CSV (header row) and as Parquet, each atomically.
pub fn write_table(columns: Vec<Column>, csv: &Path, parquet: &Path) -> Result<()> {
    let series: Vec<polars::prelude::Column> = columns
        .into_iter()
        .map(|c| match c {
            Column::Int(name, v) => Series::new(name.into(), v).into(),
            Column::Float(name, v) => Series::new(name.into(), v).into(),
            Column::Text(name, v) => Series::new(name.into(), v).into(),
        })
        .collect();
    let failed = |path: &Path, what: String| IoError::Corrupt {
        path: path.display().to_string(),
        what,
    };
    let mut frame = DataFrame::new_infer_height(series)
        .map_err(|e| failed(csv, format!("cannot build the table: {e}")))?;
    let create = |path: &Path| {
        std::fs::File::create(temporary_path(path)).map_err(|source| IoError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    CsvWriter::new(create(csv)?)
        .finish(&mut frame)
        .map_err(|e| failed(csv, format!("cannot write CSV: {e}")))?;
    commit_temporary(&temporary_path(csv), csv)?;
    ParquetWriter::new(create(parquet)?)
        .finish(&mut frame)
        .map_err(|e| failed(parquet, format!("cannot write Parquet: {e}")))?;
    commit_temporary(&temporary_path(parquet), parquet)
}
