//! Tables (`.csv`, `.parquet`) through polars: embeddings from one list/array column or from
//! several numeric columns, labels and splits from a column.

use crate::array::{ArrayData, RawArray};
use crate::error::{IoError, Result};
use polars::prelude::*;
use std::path::Path;

/// A table read from a CSV or Parquet file.
pub struct Table {
    path: String,
    frame: DataFrame,
}

impl Table {
    /// Read a CSV file (with a header row unless `has_header` is false; columns are then
    /// named `column_1`, `column_2`, ...). Column names are trimmed, and a text column whose
    /// every cell is a number (e.g. quoted numbers) is read as numbers.
    pub fn read_csv(path: &Path, has_header: bool) -> Result<Table> {
        let name = path.display().to_string();
        let frame = contain_panics(&name, "CSV", || {
            CsvReadOptions::default()
                .with_has_header(has_header)
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|reader| reader.finish())
        })?
        .map_err(|e| IoError::Corrupt {
            path: name.clone(),
            what: format!("cannot parse as CSV: {e}"),
        })?;
        let mut table = Table { path: name, frame };
        table.trim_names()?;
        table.numbers_from_text()?;
        Ok(table)
    }

    /// Read a Parquet file. Column names are trimmed.
    pub fn read_parquet(path: &Path) -> Result<Table> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| IoError::Read {
            path: name.clone(),
            source,
        })?;
        let frame = contain_panics(&name, "Parquet", || ParquetReader::new(file).finish())?
            .map_err(|e| IoError::Corrupt {
                path: name.clone(),
                what: format!("cannot read as Parquet (truncated or not Parquet?): {e}"),
            })?;
        let mut table = Table { path: name, frame };
        table.trim_names()?;
        table.check_heights()?;
        Ok(table)
    }

    /// Rows of a Parquet file from its footer (no column is read).
    pub fn parquet_rows(path: &Path) -> Result<usize> {
        let name = path.display().to_string();
        crate::check_regular_file(path)?;
        let file = std::fs::File::open(path).map_err(|source| IoError::Read {
            path: name.clone(),
            source,
        })?;
        contain_panics(&name, "Parquet", || ParquetReader::new(file).num_rows())?.map_err(|e| {
            IoError::Corrupt {
                path: name.clone(),
                what: format!("cannot read as Parquet (truncated or not Parquet?): {e}"),
            }
        })
    }

    /// Read an Arrow IPC file (Feather v2) or an Arrow IPC stream. Column names are trimmed.
    pub fn read_ipc(path: &Path) -> Result<Table> {
        let name = path.display().to_string();
        let bytes = crate::read_bytes(path)?;
        crate::arrow_check::check_ipc(&bytes, &name)?;
        // The file form opens with its magic; anything else is read as a stream.
        let data = std::io::Cursor::new(bytes.as_slice());
        let frame = match bytes.starts_with(b"ARROW1") {
            true => contain_panics(&name, "Arrow", || IpcReader::new(data).finish())?,
            false => contain_panics(&name, "Arrow", || IpcStreamReader::new(data).finish())?,
        }
        .map_err(|e| IoError::Corrupt {
            path: name.clone(),
            what: format!("cannot read as an Arrow IPC file or stream: {e}"),
        })?;
        let mut table = Table { path: name, frame };
        table.trim_names()?;
        table.check_heights()?;
        Ok(table)
    }

    /// Whether `dir` is a Hugging Face `datasets` folder written by `save_to_disk`.
    pub fn is_saved_dataset(dir: &Path) -> bool {
        dir.join("dataset_info.json").is_file()
            && std::fs::read_dir(dir).is_ok_and(|mut entries| {
                entries
                    .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".arrow")))
            })
    }

    /// Read a Hugging Face `save_to_disk` folder: its `data-*.arrow` shards (Arrow IPC
    /// streams) in name order, one table; a `ClassLabel` feature of `dataset_info.json`
    /// turns its integer column into the class names.
    pub fn read_saved_dataset(dir: &Path) -> Result<Table> {
        let name = dir.display().to_string();
        let mut shards: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| IoError::Read {
                path: name.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
            .collect();
        shards.sort();
        let mut frame: Option<DataFrame> = None;
        for shard in &shards {
            let part = Table::read_ipc(shard)?.frame;
            frame = Some(match frame {
                None => part,
                Some(mut all) => {
                    all.vstack_mut(&part).map_err(|e| IoError::Corrupt {
                        path: shard.display().to_string(),
                        what: format!("its columns differ from the first shard's: {e}"),
                    })?;
                    all
                }
            });
        }
        let frame = frame.ok_or_else(|| IoError::Missing {
            path: name.clone(),
            kind: "data-*.arrow shard",
            name: "data-00000-of-00001.arrow".into(),
            available: Vec::new(),
        })?;
        let mut table = Table {
            path: name.clone(),
            frame,
        };
        let info_path = dir.join("dataset_info.json");
        let info: serde_json::Value = std::fs::read_to_string(&info_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| IoError::Corrupt {
                path: info_path.display().to_string(),
                what: "not readable JSON".into(),
            })?;
        if let Some(features) = info["features"].as_object() {
            for (column, feature) in features {
                let Some(names) = feature["names"].as_array() else {
                    continue;
                };
                if feature["_type"] != "ClassLabel" {
                    continue;
                }
                let names: Vec<String> = names
                    .iter()
                    .map(|n| n.as_str().unwrap_or_default().to_string())
                    .collect();
                table.class_names(column, &names)?;
            }
        }
        Ok(table)
    }

    /// Replace the integer column `column` by the class names it indexes.
    fn class_names(&mut self, column: &str, names: &[String]) -> Result<()> {
        let source = self.source(column);
        let Ok(RawArray {
            data: ArrayData::Int(indices),
            ..
        }) = self.column(column)
        else {
            return Ok(());
        };
        let text = indices
            .iter()
            .enumerate()
            .map(|(row, &i)| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| names.get(i).cloned())
                    .ok_or_else(|| IoError::Value {
                        path: source.clone(),
                        what: format!(
                            "row {row} is class {i}, but the ClassLabel has {} names",
                            names.len()
                        ),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        self.frame
            .with_column(Series::new(column.into(), text).into_column())
            .map_err(|e| IoError::Corrupt {
                path: source,
                what: e.to_string(),
            })?;
        Ok(())
    }

    /// Column names without surrounding white space (`" label"` is the label column).
    fn trim_names(&mut self) -> Result<()> {
        let trimmed: Vec<String> = self
            .columns()
            .iter()
            .map(|c| c.trim().to_string())
            .collect();
        if trimmed != self.columns() {
            let path = self.path.clone();
            self.frame
                .set_column_names(&trimmed.iter().map(String::as_str).collect::<Vec<_>>())
                .map_err(|e| IoError::Corrupt {
                    path,
                    what: format!("column names that differ only by white space: {e}"),
                })?;
        }
        Ok(())
    }

    /// Every column as long as the table (a malformed file may declare otherwise).
    fn check_heights(&self) -> Result<()> {
        let n = self.rows();
        match self.frame.columns().iter().find(|c| c.len() != n) {
            Some(c) => Err(IoError::Shape {
                path: self.source(c.name()),
                what: format!("{} rows, but the table has {n}", c.len()),
            }),
            None => Ok(()),
        }
    }

    /// Text columns whose every cell is a number become Float64 columns.
    fn numbers_from_text(&mut self) -> Result<()> {
        let mut converted = Vec::new();
        for column in self.frame.columns() {
            let Ok(strings) = column.str() else { continue };
            let parsed: Option<Vec<Option<f64>>> = strings
                .iter()
                .map(|v| match v {
                    None => Some(None),
                    Some(text) => text.trim().parse::<f64>().ok().map(Some),
                })
                .collect();
            if let Some(values) = parsed {
                if !strings.is_empty() {
                    converted.push(Series::new(column.name().clone(), values));
                }
            }
        }
        for series in converted {
            let path = self.path.clone();
            self.frame
                .with_column(series.into_column())
                .map_err(|e| IoError::Corrupt {
                    path,
                    what: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The first cell of a text column that is not a number, as `(row, text)`.
    pub fn first_text_cell(&self, name: &str) -> Option<(usize, String)> {
        first_text_cell(self.series(name).ok()?)
    }

    /// Names of the text columns.
    pub fn text_columns(&self) -> Vec<String> {
        self.frame
            .columns()
            .iter()
            .filter(|c| c.dtype() == &DataType::String)
            .map(|c| c.name().to_string())
            .collect()
    }

    /// Column names in file order.
    pub fn columns(&self) -> Vec<String> {
        self.frame
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.frame.height()
    }

    /// Names of the numeric (integer or float) columns.
    pub fn numeric_columns(&self) -> Vec<String> {
        self.frame
            .columns()
            .iter()
            .filter(|c| c.dtype().is_primitive_numeric())
            .map(|c| c.name().to_string())
            .collect()
    }

    fn series(&self, name: &str) -> Result<&Series> {
        self.frame
            .column(name)
            .map(|c| c.as_materialized_series())
            .map_err(|_| IoError::Missing {
                path: self.path.clone(),
                kind: "column",
                name: name.to_string(),
                available: self.columns(),
            })
    }

    fn source(&self, name: &str) -> String {
        format!("{}:{name}", self.path)
    }

    fn null_error(&self, column: &str, row: usize) -> IoError {
        IoError::Value {
            path: self.source(column),
            what: format!("row {row} is empty (null)"),
        }
    }

    /// Values of a numeric series as f64, failing on the first null.
    fn floats(&self, column: &str, series: &Series) -> Result<Vec<f64>> {
        if let Some((row, cell)) = first_text_cell(series) {
            return Err(IoError::Value {
                path: self.source(column),
                what: format!("row {row} is {cell:?}, not a number"),
            });
        }
        let cast = series
            .cast(&DataType::Float64)
            .map_err(|e| IoError::Value {
                path: self.source(column),
                what: format!("not numeric: {e}"),
            })?;
        let values = cast.f64().map_err(|e| IoError::Value {
            path: self.source(column),
            what: format!("not numeric: {e}"),
        })?;
        values
            .iter()
            .enumerate()
            .map(|(row, v)| v.ok_or_else(|| self.null_error(column, row)))
            .collect()
    }

    /// A column as an array: a list or fixed-size-array column of numbers becomes (N, D); a
    /// numeric column (N); a string column (N) of text.
    pub fn column(&self, name: &str) -> Result<RawArray> {
        let series = self.series(name)?;
        let source = self.source(name);
        let n = series.len();
        let raw = |dtype: &str, shape: Vec<usize>, data: ArrayData| RawArray {
            source: source.clone(),
            dtype: dtype.to_string(),
            shape,
            data,
        };
        match series.dtype() {
            DataType::List(_) | DataType::Array(_, _) => {
                let lists = series
                    .cast(&DataType::List(Box::new(DataType::Float64)))
                    .map_err(|e| IoError::Value {
                        path: source.clone(),
                        what: format!("list elements are not numeric: {e}"),
                    })?;
                let lists = lists.list().map_err(|e| IoError::Value {
                    path: source.clone(),
                    what: format!("not a list column: {e}"),
                })?;
                let mut values = Vec::new();
                let mut width = None;
                for (row, item) in lists.amortized_iter().enumerate() {
                    let item = item.ok_or_else(|| self.null_error(name, row))?;
                    let row_values = self.floats(name, item.as_ref())?;
                    match width {
                        None => width = Some(row_values.len()),
                        Some(w) if w != row_values.len() => {
                            return Err(IoError::Shape {
                                path: source.clone(),
                                what: format!(
                                    "row {row} has {} values but row 0 has {w}",
                                    row_values.len()
                                ),
                            })
                        }
                        Some(_) => {}
                    }
                    values.extend(row_values);
                }
                Ok(raw(
                    "f64",
                    vec![n, width.unwrap_or(0)],
                    ArrayData::F64(values),
                ))
            }
            DataType::String => {
                let strings = series.str().map_err(|e| IoError::Value {
                    path: source.clone(),
                    what: e.to_string(),
                })?;
                let text = strings
                    .iter()
                    .enumerate()
                    .map(|(row, v)| {
                        v.map(str::to_string)
                            .ok_or_else(|| self.null_error(name, row))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(raw("str", vec![n], ArrayData::Text(text)))
            }
            dtype if dtype.is_integer() => {
                let not_i64 = |e: PolarsError| IoError::Value {
                    path: source.clone(),
                    what: format!("integers beyond the 64-bit signed range: {e}"),
                };
                let ints = series.strict_cast(&DataType::Int64).map_err(not_i64)?;
                let values = ints
                    .i64()
                    .map_err(not_i64)?
                    .iter()
                    .enumerate()
                    .map(|(row, v)| v.ok_or_else(|| self.null_error(name, row)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(raw("i64", vec![n], ArrayData::Int(values)))
            }
            dtype if dtype.is_primitive_numeric() => Ok(raw(
                "f64",
                vec![n],
                ArrayData::F64(self.floats(name, series)?),
            )),
            other => Err(IoError::UnknownDtype {
                path: source.clone(),
                dtype: other.to_string(),
                hint: " (expected numbers, a list of numbers, or strings)".into(),
            }),
        }
    }

    /// Several numeric columns side by side as an (N, k) f64 array.
    pub fn numeric_matrix(&self, names: &[String]) -> Result<RawArray> {
        let n = self.rows();
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            columns.push(self.floats(name, self.series(name)?)?);
        }
        if let Some((name, short)) = names.iter().zip(&columns).find(|(_, c)| c.len() != n) {
            return Err(IoError::Shape {
                path: self.source(name),
                what: format!("{} rows, but the table has {n}", short.len()),
            });
        }
        let mut values = Vec::with_capacity(n.saturating_mul(names.len()));
        for row in 0..n {
            values.extend(columns.iter().map(|c| c[row]));
        }
        Ok(RawArray {
            source: format!("{} ({} numeric columns)", self.path, names.len()),
            dtype: "f64".into(),
            shape: vec![n, names.len()],
            data: ArrayData::F64(values),
        })
    }
}

/// Run a polars reader, turning a panic inside it (polars' decoders assert on some malformed
/// files instead of returning an error) into an error naming the file. The panic message is
/// not printed: see [`crate::quiet_panics`].
fn contain_panics<T>(path: &str, format: &str, read: impl FnOnce() -> T) -> Result<T> {
    crate::quiet_panics(read).map_err(|message| IoError::Corrupt {
        path: path.to_string(),
        what: format!("malformed {format} file (the decoder failed: {message})"),
    })
}

/// The first cell of a text series that is not a number, as `(row, text)`; `None` for a
/// series that is not text.
fn first_text_cell(series: &Series) -> Option<(usize, String)> {
    let strings = series.str().ok()?;
    strings.iter().enumerate().find_map(|(row, v)| {
        let text = v?;
        text.trim()
            .parse::<f64>()
            .is_err()
            .then(|| (row, text.to_string()))
    })
}
