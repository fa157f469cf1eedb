//! Arrays as read from a file, before they are interpreted as embeddings, views or labels.

use crate::error::{IoError, Result};
use crate::guarded_map::GuardedMap;
use ndarray::{Array2, ArrayView2, Axis};
use std::sync::Arc;

/// Little-endian f32 values read in place from a memory-mapped file: the pages are the page
/// cache's own (shared with the file, dropped by the kernel under memory pressure and read
/// back on demand), never copied into the process. A file that changes while mapped reads as
/// zeros past its new end instead of ending the process; [`MappedF32::check_unchanged`] says
/// whether it did.
#[derive(Clone)]
pub struct MappedF32 {
    map: Arc<GuardedMap>,
    start: usize,
    len: usize,
}

impl MappedF32 {
    /// The `len` values at byte `start` of `map`, when they lie inside it at an address
    /// aligned for f32 (a mapping starts on a page boundary, so `start` must be a multiple
    /// of 4).
    pub(crate) fn new(map: Arc<GuardedMap>, start: usize, len: usize) -> Option<MappedF32> {
        let end = len.checked_mul(4)?.checked_add(start)?;
        let bytes = map.get(start..end)?;
        bytemuck::try_cast_slice::<u8, f32>(bytes).ok()?;
        Some(MappedF32 { map, start, len })
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        // In range and aligned: checked by `new`.
        bytemuck::cast_slice(&self.map[self.start..self.start + 4 * self.len])
    }

    /// `Ok` while the values read so far are the file's as mapped; an error naming the file
    /// when it was truncated or rewritten in place since. Call it after using the values.
    pub fn check_unchanged(&self) -> Result<()> {
        self.map.check_unchanged()
    }
}

impl std::fmt::Debug for MappedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedF32 {{ len: {} }}", self.len)
    }
}

impl PartialEq for MappedF32 {
    fn eq(&self, other: &MappedF32) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// An (N, D) matrix of f32 read in place from a memory-mapped file.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedMatrix {
    values: MappedF32,
    shape: (usize, usize),
}

impl MappedMatrix {
    /// (N, D).
    pub fn dim(&self) -> (usize, usize) {
        self.shape
    }

    /// `Ok` while the rows read so far are the file's as mapped (see
    /// [`MappedF32::check_unchanged`]).
    pub fn check_unchanged(&self) -> Result<()> {
        self.values.check_unchanged()
    }

    /// The rows, borrowed from the mapping.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape(self.shape, self.values.as_slice())
            .expect("shape checked when the matrix was made")
    }
}

/// Elements of an array, widened to the type embgeom computes in.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// f16, bf16 and f32 are read as f32.
    F32(Vec<f32>),
    /// f64.
    F64(Vec<f64>),
    /// f32 read in place from a memory-mapped file.
    Mapped(MappedF32),
    /// Signed or unsigned integers and booleans.
    Int(Vec<i64>),
    /// Strings (labels).
    Text(Vec<String>),
}

impl ArrayData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::Mapped(m) => m.len,
            ArrayData::Int(v) => v.len(),
            ArrayData::Text(v) => v.len(),
        }
    }

    /// True without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array read from a file: where it came from, its stored dtype, its shape (C order).
#[derive(Debug, Clone, PartialEq)]
pub struct RawArray {
    /// `file` or `file:key` / `file:column`, for messages.
    pub source: String,
    /// The dtype as stored (`f16`, `bf16`, `f32`, `f64`, `i64`, `u8`, `str`, ...).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order.
    pub data: ArrayData,
}

/// Embeddings of N rows in D dimensions, in f32 or f64.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Stored as f16, bf16 or f32.
    F32(Array2<f32>),
    /// Stored as f64 or as integers.
    F64(Array2<f64>),
    /// Stored as little-endian f32 in C order, read in place from a memory-mapped file.
    Mapped(MappedMatrix),
}

impl Matrix {
    /// (N, D).
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Matrix::F32(a) => a.dim(),
            Matrix::F64(a) => a.dim(),
            Matrix::Mapped(m) => m.dim(),
        }
    }

    /// The same values as f64; an error naming the file when mapped values changed while
    /// they were read.
    pub fn into_f64(self) -> Result<Array2<f64>> {
        match self {
            Matrix::F32(a) => Ok(a.mapv(f64::from)),
            Matrix::F64(a) => Ok(a),
            Matrix::Mapped(m) => {
                let values = m.view().mapv(f64::from);
                m.check_unchanged().map(|()| values)
            }
        }
    }
}

/// An embedding matrix with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// `file` or `file:key`.
    pub source: String,
    /// The dtype as stored.
    pub dtype: String,
    /// The values.
    pub matrix: Matrix,
}

/// Per-row labels: integers or strings.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelValues {
    /// Integer labels.
    Int(Vec<i64>),
    /// String labels.
    Text(Vec<String>),
}

/// Names of the classes of integer labels `0..C`: `names[k]` names label `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassNames {
    /// Where they came from (`names.txt`, `ckpt.npz:class_names`, `run/manifest.json`).
    pub source: String,
    /// One name per class.
    pub names: Vec<String>,
}

/// Labels with their provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// `file` or `file:key`.
    pub source: String,
    /// The values.
    pub values: LabelValues,
    /// Names of integer labels, when given.
    pub names: Option<ClassNames>,
}

impl Labels {
    /// Number of labelled rows.
    pub fn len(&self) -> usize {
        match &self.values {
            LabelValues::Int(v) => v.len(),
            LabelValues::Text(v) => v.len(),
        }
    }

    /// True if there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels with class names: integer labels must be exactly `0..C` with one name per
    /// class (an error names both sources otherwise).
    pub fn with_names(self, names: ClassNames) -> Result<Labels> {
        let fail = |what: String| {
            Err(IoError::Value {
                path: names.source.clone(),
                what,
            })
        };
        let LabelValues::Int(values) = &self.values else {
            return fail(format!(
                "class names need integer labels 0..C-1, but {} holds text labels",
                self.source
            ));
        };
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != names.names.len() {
            return fail(format!(
                "{} class names for the {} classes of {}",
                names.names.len(),
                distinct.len(),
                self.source
            ));
        }
        if let Some(v) = distinct
            .iter()
            .find(|&&v| v < 0 || v as usize >= names.names.len())
        {
            return fail(format!(
                "label {v} of {} has no name (names are for labels 0..{})",
                self.source,
                names.names.len() - 1
            ));
        }
        Ok(Labels {
            names: Some(names),
            ..self
        })
    }

    /// Class index of every row and the class names, classes in sorted label order
    /// (numeric order for integers); integer labels with [`ClassNames`] take their names.
    pub fn class_indices(&self) -> (Vec<u32>, Vec<String>) {
        fn index<T: Ord + Clone + ToString>(values: &[T]) -> (Vec<u32>, Vec<String>) {
            let mut distinct: Vec<T> = values.to_vec();
            distinct.sort();
            distinct.dedup();
            let indices = values
                .iter()
                .map(|v| {
                    distinct
                        .binary_search(v)
                        .expect("value is among the distinct ones") as u32
                })
                .collect();
            (indices, distinct.iter().map(ToString::to_string).collect())
        }
        match (&self.values, &self.names) {
            (LabelValues::Int(v), None) => index(v),
            (LabelValues::Int(v), Some(names)) => {
                let (indices, distinct) = index(v);
                let named = distinct
                    .iter()
                    .map(|d| {
                        d.parse::<usize>()
                            .ok()
                            .and_then(|k| names.names.get(k).cloned())
                            .unwrap_or_else(|| d.clone())
                    })
                    .collect();
                (indices, named)
            }
            (LabelValues::Text(v), _) => index(v),
        }
    }
}

impl RawArray {
    fn shape_error(&self, what: String) -> IoError {
        IoError::Shape {
            path: self.source.clone(),
            what,
        }
    }

    fn values_f64(self) -> Result<Vec<f64>> {
        match self.data {
            ArrayData::F32(v) => Ok(v.into_iter().map(f64::from).collect()),
            ArrayData::F64(v) => Ok(v),
            ArrayData::Mapped(m) => {
                let values = m.as_slice().iter().map(|&v| f64::from(v)).collect();
                m.check_unchanged().map(|()| values)
            }
            ArrayData::Int(v) => Ok(v.into_iter().map(|x| x as f64).collect()),
            ArrayData::Text(_) => Err(IoError::UnknownDtype {
                path: self.source,
                dtype: self.dtype,
                hint: " for embeddings (expected a float or integer array)".into(),
            }),
        }
    }

    /// Interpret as an (N, D) embedding matrix; f16/bf16/f32 stay f32, f64 and integers
    /// become f64.
    pub fn into_embeddings(self) -> Result<Embeddings> {
        let &[n, d] = self.shape.as_slice() else {
            return Err(self.shape_error(format!(
                "expected a 2-D array (N, D) of embeddings, got shape {:?}",
                self.shape
            )));
        };
        let (source, dtype) = (self.source.clone(), self.dtype.clone());
        let length = self.data.len();
        let bad_length = |e: ndarray::ShapeError| IoError::Shape {
            path: source.clone(),
            what: format!("{length} values do not fill shape ({n}, {d}): {e}"),
        };
        let matrix = match self.data {
            ArrayData::F32(v) => {
                Matrix::F32(Array2::from_shape_vec((n, d), v).map_err(bad_length)?)
            }
            ArrayData::Mapped(values) => {
                ArrayView2::from_shape((n, d), values.as_slice()).map_err(bad_length)?;
                Matrix::Mapped(MappedMatrix {
                    values,
                    shape: (n, d),
                })
            }
            _ => {
                Matrix::F64(Array2::from_shape_vec((n, d), self.values_f64()?).map_err(bad_length)?)
            }
        };
        Ok(Embeddings {
            source,
            dtype,
            matrix,
        })
    }

    /// Interpret an (N, V, D) array as V row-matched views of N items.
    pub fn into_views(self) -> Result<Vec<Embeddings>> {
        let &[n, v, d] = self.shape.as_slice() else {
            return Err(self.shape_error(format!(
                "expected a 3-D array (N, V, D) of views, got shape {:?}",
                self.shape
            )));
        };
        if v == 0 {
            return Err(self.shape_error(format!(
                "an array of views of shape {:?} holds no view",
                self.shape
            )));
        }
        let (source, dtype) = (self.source.clone(), self.dtype.clone());
        let views: Vec<Matrix> = match self.data {
            ArrayData::F32(values) => split_views(values, (n, v, d), &source)?
                .into_iter()
                .map(Matrix::F32)
                .collect(),
            ArrayData::Mapped(values) => {
                let copied = values.as_slice().to_vec();
                values.check_unchanged()?;
                split_views(copied, (n, v, d), &source)?
                    .into_iter()
                    .map(Matrix::F32)
                    .collect()
            }
            _ => split_views(self.values_f64()?, (n, v, d), &source)?
                .into_iter()
                .map(Matrix::F64)
                .collect(),
        };
        Ok(views
            .into_iter()
            .enumerate()
            .map(|(k, matrix)| Embeddings {
                source: format!("{source}[view {k}]"),
                dtype: dtype.clone(),
                matrix,
            })
            .collect())
    }

    /// Interpret as a vector of numbers: shape (N) or (N, 1).
    pub fn into_vector(self) -> Result<Vec<f64>> {
        match self.shape.as_slice() {
            [_] | [_, 1] => self.values_f64(),
            shape => Err(self.shape_error(format!("expected a 1-D array, got shape {shape:?}"))),
        }
    }

    /// Interpret as N labels: shape (N) or (N, 1); integers, strings, or integral floats.
    pub fn into_labels(self) -> Result<Labels> {
        match self.shape.as_slice() {
            [_] | [_, 1] => {}
            shape => {
                return Err(self.shape_error(format!(
                    "expected a 1-D array of labels, got shape {shape:?}"
                )))
            }
        }
        let source = self.source.clone();
        let values = match self.data {
            ArrayData::Int(v) => LabelValues::Int(v),
            ArrayData::Text(v) => LabelValues::Text(v),
            ArrayData::F32(_) | ArrayData::F64(_) | ArrayData::Mapped(_) => {
                let values = self.values_f64()?;
                if let Some(row) = values
                    .iter()
                    .position(|v| v.fract() != 0.0 || !v.is_finite())
                {
                    return Err(IoError::Value {
                        path: source,
                        what: format!(
                            "label of row {row} is {}, not an integer (labels must be integers or strings)",
                            values[row]
                        ),
                    });
                }
                LabelValues::Int(values.into_iter().map(|v| v as i64).collect())
            }
        };
        Ok(Labels {
            source,
            values,
            names: None,
        })
    }
}

/// Unsigned 64-bit integers decoded as `i64`: kept when every value fits, else as their
/// decimal text (labels keep their true names; values above 2^63 are not embeddings).
pub(crate) fn unsigned_64(data: ArrayData) -> ArrayData {
    match data {
        ArrayData::Int(values) if values.iter().any(|&v| v < 0) => {
            ArrayData::Text(values.into_iter().map(|v| (v as u64).to_string()).collect())
        }
        other => other,
    }
}

/// Split a C-order (N, V, D) buffer into V arrays of shape (N, D).
fn split_views<T: Clone>(
    values: Vec<T>,
    shape: (usize, usize, usize),
    source: &str,
) -> Result<Vec<Array2<T>>> {
    let length = values.len();
    let flat = ndarray::Array3::from_shape_vec(shape, values).map_err(|e| IoError::Shape {
        path: source.to_string(),
        what: format!("{length} values do not fill shape {shape:?}: {e}"),
    })?;
    Ok((0..shape.1)
        .map(|k| flat.index_axis(Axis(1), k).to_owned())
        .collect())
}
