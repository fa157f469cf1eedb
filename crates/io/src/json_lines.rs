//! JSON Lines (`.jsonl`, `.ndjson`): one object per line, as embedding APIs and vector-store
//! exports write them (`{"id": ..., "embedding": [...], "label": ...}`). Each key is an array:
//! lists of numbers become (N, D) rows, numbers and strings one value per row.

use crate::array::{ArrayData, RawArray};
use crate::error::{IoError, Result};
use serde_json::Value;

/// Keys tried for the embeddings and the labels when the default names are asked for.
const ALIASES: [(&str, &str); 2] = [("embeddings", "embedding"), ("labels", "label")];

/// A parsed JSON Lines file.
pub struct JsonLines {
    path: String,
    rows: Vec<serde_json::Map<String, Value>>,
    /// Line number (1-based) of every row.
    lines: Vec<usize>,
}

impl JsonLines {
    /// Parse the text; a line that is not a JSON object is an error naming its number. Blank
    /// lines are skipped.
    pub fn new(bytes: &[u8], path: &str) -> Result<JsonLines> {
        let text = std::str::from_utf8(bytes).map_err(|e| IoError::Corrupt {
            path: path.to_string(),
            what: format!("not UTF-8 text: {e}"),
        })?;
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |what: String| IoError::Value {
                path: path.to_string(),
                what: format!("line {}: {what}", number + 1),
            };
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(object)) => rows.push(object),
                Ok(_) => return Err(bad("not a JSON object".into())),
                Err(e) => return Err(bad(format!("not valid JSON ({e})"))),
            }
            lines.push(number + 1);
        }
        Ok(JsonLines {
            path: path.to_string(),
            rows,
            lines,
        })
    }

    /// The keys of the first object, in file order.
    pub fn keys(&self) -> Vec<String> {
        self.rows
            .first()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn resolve(&self, key: &str) -> Option<String> {
        let first = self.rows.first()?;
        if first.contains_key(key) {
            return Some(key.to_string());
        }
        ALIASES
            .iter()
            .find(|(name, alias)| *name == key && first.contains_key(*alias))
            .map(|(_, alias)| alias.to_string())
    }

    /// The values under `key` (or its singular alias: `embedding`, `label`) as an array.
    pub fn get(&self, key: &str) -> Result<Option<RawArray>> {
        let Some(key) = self.resolve(key) else {
            return Ok(None);
        };
        let source = format!("{}:{key}", self.path);
        let bad = |row: usize, what: String| IoError::Value {
            path: source.clone(),
            what: format!("line {}: {what}", self.lines[row]),
        };
        let n = self.rows.len();
        let values: Vec<&Value> = self
            .rows
            .iter()
            .enumerate()
            .map(|(row, object)| {
                object
                    .get(&key)
                    .ok_or_else(|| bad(row, format!("no key {key:?}")))
            })
            .collect::<Result<_>>()?;
        let raw = |dtype: &str, shape: Vec<usize>, data: ArrayData| RawArray {
            source: source.clone(),
            dtype: dtype.into(),
            shape,
            data,
        };
        match values.first() {
            Some(Value::Array(first)) => {
                let width = first.len();
                let mut data = Vec::with_capacity(n.saturating_mul(width));
                for (row, value) in values.iter().enumerate() {
                    let Value::Array(items) = value else {
                        return Err(bad(row, format!("{key} is not a list")));
                    };
                    if items.len() != width {
                        return Err(bad(
                            row,
                            format!(
                                "{} values, but line {} has {width}",
                                items.len(),
                                self.lines[0]
                            ),
                        ));
                    }
                    for (column, item) in items.iter().enumerate() {
                        let number = item.as_f64().ok_or_else(|| {
                            bad(
                                row,
                                format!("value {column} of {key} is {item}, not a number"),
                            )
                        })?;
                        data.push(number);
                    }
                }
                Ok(Some(raw("f64", vec![n, width], ArrayData::F64(data))))
            }
            Some(Value::String(_)) => {
                let text = values
                    .iter()
                    .enumerate()
                    .map(|(row, v)| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(x) => Ok(x.to_string()),
                        other => Err(bad(row, format!("{key} is {other}, not a string"))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(raw("str", vec![n], ArrayData::Text(text))))
            }
            Some(Value::Number(_)) | Some(Value::Bool(_)) => {
                let all_integers = values.iter().all(|v| v.is_i64() || v.is_boolean());
                if all_integers {
                    let ints = values
                        .iter()
                        .map(|v| {
                            v.as_i64()
                                .unwrap_or_else(|| i64::from(v.as_bool() == Some(true)))
                        })
                        .collect();
                    return Ok(Some(raw("i64", vec![n], ArrayData::Int(ints))));
                }
                let numbers = values
                    .iter()
                    .enumerate()
                    .map(|(row, v)| {
                        v.as_f64()
                            .ok_or_else(|| bad(row, format!("{key} is {v}, not a number")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(raw("f64", vec![n], ArrayData::F64(numbers))))
            }
            Some(other) => Err(bad(
                0,
                format!("{key} is {other}: expected a list, a number or a string"),
            )),
            None => Ok(Some(raw("f64", vec![0, 0], ArrayData::F64(Vec::new())))),
        }
    }
}
