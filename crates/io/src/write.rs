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
    /// Yes or no with gaps.
    Bool(String, Vec<Option<bool>>),
    /// Each row's neighbours as embedding-atlas reads them: a struct of `ids` (zero-based row
    /// positions in this table) and `distances`, both lists (Parquet only).
    Neighbours(String, Vec<Vec<(u64, f64)>>),
}

impl Column {
    /// The polars column.
    fn into_polars(self) -> PolarsResult<polars::prelude::Column> {
        Ok(match self {
            Column::Int(name, v) => Series::new(name.into(), v).into(),
            Column::Float(name, v) => Series::new(name.into(), v).into(),
            Column::Text(name, v) => Series::new(name.into(), v).into(),
            Column::Bool(name, v) => Series::new(name.into(), v).into(),
            Column::Neighbours(name, rows) => {
                let ids: Vec<Series> = rows
                    .iter()
                    .map(|r| {
                        Series::new("".into(), r.iter().map(|n| n.0 as i64).collect::<Vec<_>>())
                    })
                    .collect();
                let distances: Vec<Series> = rows
                    .iter()
                    .map(|r| Series::new("".into(), r.iter().map(|n| n.1).collect::<Vec<_>>()))
                    .collect();
                let fields = [
                    Series::new("ids".into(), ids),
                    Series::new("distances".into(), distances),
                ];
                StructChunked::from_series(name.into(), rows.len(), fields.iter())?
                    .into_series()
                    .into()
            }
        })
    }
}

/// The columns as a frame (all of one length).
fn frame_of(columns: Vec<Column>, path: &Path) -> Result<DataFrame> {
    let failed = |what: String| IoError::Corrupt {
        path: path.display().to_string(),
        what,
    };
    let series = columns
        .into_iter()
        .map(Column::into_polars)
        .collect::<PolarsResult<Vec<_>>>()
        .map_err(|e| failed(format!("cannot build the table: {e}")))?;
    DataFrame::new_infer_height(series).map_err(|e| failed(format!("cannot build the table: {e}")))
}

/// Write the columns as one Parquet file through [`embgeom_write::write_output_with`]
/// (atomically for a regular file; a device or FIFO is written through).
pub fn write_parquet(columns: Vec<Column>, parquet: &Path) -> Result<()> {
    frame_to_parquet(&mut frame_of(columns, parquet)?, parquet)
}

/// Write `frame` to `parquet` (see [`write_parquet`]).
fn frame_to_parquet(frame: &mut DataFrame, parquet: &Path) -> Result<()> {
    write_output_with(parquet, |temporary| {
        let file = std::fs::File::create(temporary).map_err(|source| IoError::Write {
            path: parquet.display().to_string(),
            source,
        })?;
        ParquetWriter::new(file)
            .finish(frame)
            .map(drop)
            .map_err(|e| IoError::Corrupt {
                path: parquet.display().to_string(),
                what: format!("cannot write Parquet: {e}"),
            })
    })
}

/// Write the columns as CSV (header row) and as Parquet, each through
/// [`embgeom_write::write_output_with`] (atomically for regular files).
pub fn write_table(columns: Vec<Column>, csv: &Path, parquet: &Path) -> Result<()> {
    let failed = |path: &Path, what: String| IoError::Corrupt {
        path: path.display().to_string(),
        what,
    };
    let mut frame = frame_of(columns, csv)?;
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
    frame_to_parquet(&mut frame, parquet)
}
