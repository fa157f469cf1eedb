//! Writing time-series tables (CSV and Parquet) through polars.

use crate::error::{IoError, Result};
use embgeom_write::write_output_with;
use polars::prelude::*;
use std::path::Path;

/// A column of a table to write.
pub enum Column {
    /// Integers (e.g. the step).
    Int(String, Vec<i64>),
    /// Numbers; `None` is written as an empty cell / null.
    Float(String, Vec<Option<f64>>),
    /// Text (e.g. the file name).
    Text(String, Vec<String>),
}

/// Write the columns as CSV (header row) and as Parquet, each through
/// [`embgeom_write::write_output_with`] (atomically for regular files).
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
        std::fs::File::create(path).map_err(|source| IoError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    write_output_with(csv, |temporary| {
        CsvWriter::new(create(temporary)?)
            .finish(&mut frame)
            .map_err(|e| failed(csv, format!("cannot write CSV: {e}")))
    })?;
    write_output_with(parquet, |temporary| {
        ParquetWriter::new(create(temporary)?)
            .finish(&mut frame)
            .map(drop)
            .map_err(|e| failed(parquet, format!("cannot write Parquet: {e}")))
    })
}
