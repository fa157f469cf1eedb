//! Writing time-series tables (CSV and Parquet) through polars.

use crate::error::{IoError, Result};
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

/// Write the columns as CSV (header row) and as Parquet.
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
        std::fs::File::create(path).map_err(|source| IoError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    CsvWriter::new(create(csv)?)
        .finish(&mut frame)
        .map_err(|e| failed(csv, format!("cannot write CSV: {e}")))?;
    ParquetWriter::new(create(parquet)?)
        .finish(&mut frame)
        .map_err(|e| failed(parquet, format!("cannot write Parquet: {e}")))?;
    Ok(())
}
