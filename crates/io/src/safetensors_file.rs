//! `.safetensors` files (Hugging Face): f16, bf16, f32, f64 and integer tensors by name.

use crate::array::{ArrayData, MappedF32, RawArray};
use crate::error::{IoError, Result};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::sync::Arc;

/// The bytes of a file: read into memory, or memory-mapped.
pub enum FileBytes {
    /// Read.
    Read(Vec<u8>),
    /// Mapped (the page cache's pages, used in place).
    Mapped(Arc<crate::guarded_map::GuardedMap>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(bytes) => bytes,
            FileBytes::Mapped(map) => map,
        }
    }
}

/// An opened `.safetensors` file.
pub struct SafetensorsFile {
    path: String,
    bytes: FileBytes,
}

impl SafetensorsFile {
    /// Validate the header of the file held in `bytes`; `path` names it in messages. From a
    /// mapping, f32 tensors are used in place ([`ArrayData::Mapped`]); the others are decoded.
    pub fn new(bytes: FileBytes, path: &str) -> Result<SafetensorsFile> {
        SafeTensors::deserialize(&bytes).map_err(|e| IoError::Corrupt {
            path: path.to_string(),
            what: format!("not a valid .safetensors file (truncated or bad header?): {e}"),
        })?;
        Ok(SafetensorsFile {
            path: path.to_string(),
            bytes,
        })
    }

    /// The tensors of the header validated in `new`; a mapped file that no longer parses has
    /// changed since (see [`crate::GuardedMap`]).
    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|_| IoError::Changed {
            path: self.path.clone(),
        })
    }

    /// `Ok` unless the file is mapped and changed since it was mapped.
    fn check_unchanged(&self) -> Result<()> {
        match &self.bytes {
            FileBytes::Mapped(map) => map.check_unchanged(),
            FileBytes::Read(_) => Ok(()),
        }
    }

    /// Names of the tensors, sorted.
    pub fn keys(&self) -> Vec<String> {
        // A file that changed under its mapping lists no keys (reading one says why).
        let mut keys: Vec<String> = self.tensors().map_or_else(
            |_| Vec::new(),
            |t| t.names().iter().map(|s| s.to_string()).collect(),
        );
        keys.sort();
        keys
    }

    /// Read the tensor named `key`, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<RawArray>> {
        let tensors = self.tensors()?;
        let Ok(view) = tensors.tensor(key) else {
            return Ok(None);
        };
        let source = format!("{}:{key}", self.path);
        let bytes = view.data();
        fn decode<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunk of N bytes")))
                .collect()
        }
        let (dtype, data) = match view.dtype() {
            Dtype::F16 => (
                "f16",
                ArrayData::F32(decode(bytes, |b| f16::from_le_bytes(b).to_f32())),
            ),
            Dtype::BF16 => (
                "bf16",
                ArrayData::F32(decode(bytes, |b| bf16::from_le_bytes(b).to_f32())),
            ),
            Dtype::F32 => (
                "f32",
                self.mapped_f32(bytes)
                    .unwrap_or_else(|| ArrayData::F32(decode(bytes, f32::from_le_bytes))),
            ),
            Dtype::F64 => ("f64", ArrayData::F64(decode(bytes, f64::from_le_bytes))),
            Dtype::I64 => ("i64", ArrayData::Int(decode(bytes, i64::from_le_bytes))),
            Dtype::I32 => (
                "i32",
                ArrayData::Int(decode(bytes, |b| i32::from_le_bytes(b) as i64)),
            ),
            Dtype::I16 => (
                "i16",
                ArrayData::Int(decode(bytes, |b| i16::from_le_bytes(b) as i64)),
            ),
            Dtype::I8 => (
                "i8",
                ArrayData::Int(decode(bytes, |b: [u8; 1]| b[0] as i8 as i64)),
            ),
            Dtype::U8 => (
                "u8",
                ArrayData::Int(decode(bytes, |b: [u8; 1]| b[0] as i64)),
            ),
            Dtype::BOOL => (
                "bool",
                ArrayData::Int(decode(bytes, |b: [u8; 1]| b[0] as i64)),
            ),
            other => {
                return Err(IoError::UnknownDtype {
                    path: source,
                    dtype: format!("{other:?}"),
                    hint: " (supported: F16, BF16, F32, F64, I8-I64, U8, BOOL)".into(),
                })
            }
        };
        // Decoded from the mapping: the bytes read must be the file's.
        if !matches!(data, ArrayData::Mapped(_)) {
            self.check_unchanged()?;
        }
        Ok(Some(RawArray {
            source,
            dtype: dtype.into(),
            shape: view.shape().to_vec(),
            data,
        }))
    }

    /// The f32 values at `data` in place, when the file is mapped, the machine little-endian
    /// and the data aligned for f32.
    fn mapped_f32(&self, data: &[u8]) -> Option<ArrayData> {
        let FileBytes::Mapped(map) = &self.bytes else {
            return None;
        };
        if cfg!(target_endian = "big") {
            return None;
        }
        let start = (data.as_ptr() as usize).checked_sub(map.as_ptr() as usize)?;
        MappedF32::new(Arc::clone(map), start, data.len() / 4).map(ArrayData::Mapped)
    }
}
