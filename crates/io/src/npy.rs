//! NumPy `.npy` files (format versions 1, 2 and 3): f16/f32/f64, integers, booleans and
//! fixed-width strings, C or Fortran order, either byte order.

use crate::array::{ArrayData, MappedF32, RawArray};
use crate::error::{IoError, Result};
use half::f16;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// What an `.npy` header says.
struct NpyHeader {
    descr: String,
    dtype: Dtype,
    fortran: bool,
    shape: Vec<usize>,
    /// Offset of the data.
    data_start: usize,
    /// Bytes of data the shape needs.
    data_bytes: usize,
}

/// The header at the start of `bytes` (the data need not follow).
fn parse_header(bytes: &[u8], source: &str) -> Result<NpyHeader> {
    let corrupt = |what: String| IoError::Corrupt {
        path: source.to_string(),
        what,
    };
    let truncated = |what: String| IoError::Truncated {
        path: source.to_string(),
        what,
    };
    if bytes.len() < 10 {
        return Err(truncated(format!(
            "{} bytes, shorter than an .npy header",
            bytes.len()
        )));
    }
    if &bytes[..6] != MAGIC {
        return Err(corrupt("missing the .npy magic string".into()));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(truncated("header length cut off".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(corrupt(format!("unknown .npy format version {v}"))),
    };
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(truncated(format!(
            "header says {header_len} bytes but the file has {}",
            bytes.len() - header_start
        )));
    }
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| corrupt("header is not text".into()))?;
    let descr = header_value(header, "descr")
        .and_then(|v| quoted(&v))
        .ok_or_else(|| corrupt(format!("header has no 'descr': {header}")))?;
    let fortran = header_value(header, "fortran_order")
        .ok_or_else(|| corrupt(format!("header has no 'fortran_order': {header}")))?
        .starts_with("True");
    let shape = header_value(header, "shape")
        .and_then(|v| parse_shape(&v))
        .ok_or_else(|| corrupt(format!("header has no valid 'shape': {header}")))?;
    let dtype = Dtype::parse(&descr).ok_or_else(|| IoError::UnknownDtype {
        path: source.to_string(),
        dtype: descr.clone(),
        hint: " (supported: f2, f4, f8, i1-i8, u1-u8, b1, U, S)".into(),
    })?;
    let expected = shape
        .iter()
        .try_fold(dtype.size, |bytes, &side| bytes.checked_mul(side))
        .ok_or_else(|| {
            corrupt(format!(
                "shape {shape:?} of {descr} is larger than any file can hold"
            ))
        })?;
    Ok(NpyHeader {
        descr,
        dtype,
        fortran,
        shape,
        data_start,
        data_bytes: expected,
    })
}

/// The header of the `.npy` file `path` (read alone), the file positioned at its data, and
/// the file's length; a file shorter than its header says is an error.
fn read_header(path: &Path) -> Result<(NpyHeader, std::fs::File)> {
    use std::io::Read;
    let source = path.display().to_string();
    crate::check_regular_file(path)?;
    let io_error = |e: std::io::Error| IoError::Read {
        path: source.clone(),
        source: e,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    let mut prefix = Vec::new();
    file.by_ref()
        .take(12)
        .read_to_end(&mut prefix)
        .map_err(io_error)?;
    let header_len = match prefix.get(6) {
        Some(1) if prefix.len() >= 10 => u16::from_le_bytes([prefix[8], prefix[9]]) as u64 + 10,
        Some(2 | 3) if prefix.len() >= 12 => {
            u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64 + 12
        }
        _ => prefix.len() as u64,
    };
    file.by_ref()
        .take(header_len.saturating_sub(prefix.len() as u64))
        .read_to_end(&mut prefix)
        .map_err(io_error)?;
    let header = parse_header(&prefix, &source)?;
    if length < (header.data_start + header.data_bytes) as u64 {
        return Err(IoError::Truncated {
            path: source,
            what: format!(
                "shape {:?} of {} needs {} data bytes, found {}",
                header.shape,
                header.descr,
                header.data_bytes,
                length.saturating_sub(header.data_start as u64)
            ),
        });
    }
    // The bytes read so far may run past the header into the data: start the data there.
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(header.data_start as u64))
        .map_err(io_error)?;
    Ok((header, file))
}

/// The shape of an `.npy` file from its header alone (the data are not read); a file shorter
/// than its header says is an error.
pub fn npy_shape(path: &Path) -> Result<Vec<usize>> {
    Ok(read_header(path)?.0.shape)
}

/// Read an `.npy` file. Little-endian f32 in C order (what embeddings usually are) is
/// memory-mapped and used in place ([`ArrayData::Mapped`]): no copy of the values is made,
/// and their pages stay the page cache's. Anything else (f16, bf16, f64, integers, Fortran
/// order, big-endian) is decoded from a mapping of the file into its array, without a copy of
/// the file's bytes; where a file cannot be mapped it is read.
pub fn read_npy(path: &Path) -> Result<RawArray> {
    let (header, file) = read_header(path)?;
    let source = path.display().to_string();
    // The fallback: the whole file read into memory, then decoded.
    let decode_read = || {
        let bytes = std::fs::read(path).map_err(|e| IoError::Read {
            path: source.clone(),
            source: e,
        })?;
        parse_npy(&bytes, &source)
    };
    // `read_header` checked that the file holds the header's data bytes.
    let Some(map) = crate::map_file(&file, &source) else {
        return decode_read();
    };
    let direct = header.dtype.kind == Kind::Float
        && header.dtype.size == 4
        && !header.dtype.big_endian
        && (!header.fortran || header.shape.len() < 2)
        && cfg!(target_endian = "little");
    if !direct {
        let parsed = parse_npy(&map, &source);
        map.check_unchanged()?;
        return parsed;
    }
    let (start, len) = (header.data_start, header.data_bytes / 4);
    match MappedF32::new(map, start, len) {
        Some(values) => Ok(RawArray {
            source: source.clone(),
            dtype: header.dtype.name(),
            shape: header.shape,
            data: ArrayData::Mapped(values),
        }),
        // A header whose length leaves the data unaligned for f32: decode a copy.
        None => decode_read(),
    }
}

/// Parse the bytes of an `.npy` file; `source` names it in messages.
pub fn parse_npy(bytes: &[u8], source: &str) -> Result<RawArray> {
    let truncated = |what: String| IoError::Truncated {
        path: source.to_string(),
        what,
    };
    let header = parse_header(bytes, source)?;
    let (descr, dtype, shape, data_start, expected) = (
        header.descr,
        header.dtype,
        header.shape,
        header.data_start,
        header.data_bytes,
    );
    let fortran = header.fortran;
    let body = &bytes[data_start..];
    if body.len() < expected {
        return Err(truncated(format!(
            "shape {shape:?} of {descr} needs {expected} data bytes, found {}",
            body.len()
        )));
    }
    let mut data = dtype.decode(&body[..expected]);
    if (dtype.kind, dtype.size) == (Kind::Unsigned, 8) {
        data = crate::array::unsigned_64(data);
    }
    if fortran && shape.len() > 1 {
        data = fortran_to_c(data, &shape);
    }
    Ok(RawArray {
        source: source.to_string(),
        dtype: dtype.name(),
        shape,
        data,
    })
}

/// The text after `'key':` in a header dict, up to the next top-level comma.
fn header_value(header: &str, key: &str) -> Option<String> {
    let pattern = format!("'{key}'");
    let rest = &header[header.find(&pattern)? + pattern.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    let end = rest
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                _ => {}
            }
            depth == 0 && (c == ',' || c == '}')
        })
        .map(|(i, c)| if c == ')' { i + 1 } else { i })
        .unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

fn quoted(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix('\'').or_else(|| v.strip_prefix('"'))?;
    Some(v.trim_end_matches(['\'', '"']).to_string())
}

fn parse_shape(value: &str) -> Option<Vec<usize>> {
    let inner = value.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float,
    Signed,
    Unsigned,
    Bool,
    Unicode,
    Bytes,
}

/// A parsed `descr`: kind, item size in bytes, byte order.
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    /// `<f4`, `>i8`, `|b1`, `<U12`, `|S5`, ...; `None` for anything else (including empty,
    /// non-ASCII and zero-width strings).
    fn parse(descr: &str) -> Option<Dtype> {
        let mut chars = descr.chars();
        let big_endian = match chars.next()? {
            '<' | '|' | '=' => false,
            '>' => true,
            _ => return None,
        };
        let kind = chars.next()?;
        let size: usize = chars.as_str().parse().ok()?;
        let (kind, size) = match (kind, size) {
            ('f', 2 | 4 | 8) => (Kind::Float, size),
            ('i', 1 | 2 | 4 | 8) => (Kind::Signed, size),
            ('u', 1 | 2 | 4 | 8) => (Kind::Unsigned, size),
            ('b', 1) => (Kind::Bool, 1),
            ('U', n) if n > 0 => (Kind::Unicode, n.checked_mul(4)?),
            ('S', n) if n > 0 => (Kind::Bytes, n),
            _ => return None,
        };
        Some(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    fn name(&self) -> String {
        match self.kind {
            Kind::Float => format!("f{}", self.size * 8),
            Kind::Signed => format!("i{}", self.size * 8),
            Kind::Unsigned => format!("u{}", self.size * 8),
            Kind::Bool => "bool".into(),
            Kind::Unicode | Kind::Bytes => "str".into(),
        }
    }

    /// Item bytes in little-endian order.
    fn item<'a>(&self, chunk: &'a [u8], scratch: &'a mut [u8; 8]) -> &'a [u8] {
        if self.big_endian && self.size > 1 {
            scratch[..self.size].copy_from_slice(chunk);
            scratch[..self.size].reverse();
            &scratch[..self.size]
        } else {
            chunk
        }
    }

    fn decode(&self, body: &[u8]) -> ArrayData {
        let mut scratch = [0u8; 8];
        let items = body.chunks_exact(self.size);
        match (self.kind, self.size) {
            (Kind::Float, 2) => ArrayData::F32(
                items
                    .map(|c| {
                        f16::from_le_bytes(self.item(c, &mut scratch).try_into().unwrap()).to_f32()
                    })
                    .collect(),
            ),
            (Kind::Float, 4) => ArrayData::F32(
                items
                    .map(|c| f32::from_le_bytes(self.item(c, &mut scratch).try_into().unwrap()))
                    .collect(),
            ),
            (Kind::Float, _) => ArrayData::F64(
                items
                    .map(|c| f64::from_le_bytes(self.item(c, &mut scratch).try_into().unwrap()))
                    .collect(),
            ),
            (Kind::Signed, _) | (Kind::Unsigned, _) | (Kind::Bool, _) => ArrayData::Int(
                items
                    .map(|c| {
                        let le = self.item(c, &mut scratch);
                        let negative = self.kind == Kind::Signed && le[le.len() - 1] & 0x80 != 0;
                        let mut wide = if negative { [0xffu8; 8] } else { [0u8; 8] };
                        wide[..le.len()].copy_from_slice(le);
                        i64::from_le_bytes(wide)
                    })
                    .collect(),
            ),
            (Kind::Unicode, _) => ArrayData::Text(
                items
                    .map(|c| {
                        c.chunks_exact(4)
                            .map(|u| {
                                let u: [u8; 4] = u.try_into().unwrap();
                                if self.big_endian {
                                    u32::from_be_bytes(u)
                                } else {
                                    u32::from_le_bytes(u)
                                }
                            })
                            .take_while(|&u| u != 0)
                            .map(|u| char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER))
                            .collect()
                    })
                    .collect(),
            ),
            (Kind::Bytes, _) => ArrayData::Text(
                items
                    .map(|c| {
                        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                        String::from_utf8_lossy(&c[..end]).into_owned()
                    })
                    .collect(),
            ),
        }
    }
}

/// Reorder Fortran-order (column-major) elements into C order.
fn fortran_to_c(data: ArrayData, shape: &[usize]) -> ArrayData {
    fn reorder<T: Clone>(values: Vec<T>, shape: &[usize]) -> Vec<T> {
        let reversed: Vec<usize> = shape.iter().rev().cloned().collect();
        let array = ndarray::ArrayD::from_shape_vec(reversed, values).expect("size checked");
        array.reversed_axes().iter().cloned().collect()
    }
    match data {
        ArrayData::F32(v) => ArrayData::F32(reorder(v, shape)),
        ArrayData::Mapped(m) => ArrayData::F32(reorder(m.as_slice().to_vec(), shape)),
        ArrayData::F64(v) => ArrayData::F64(reorder(v, shape)),
        ArrayData::Int(v) => ArrayData::Int(reorder(v, shape)),
        ArrayData::Text(v) => ArrayData::Text(reorder(v, shape)),
    }
}

/// Serialise an f32 array of any shape as a version-1 little-endian C-order `.npy` file.
pub fn npy_bytes_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_bytes("<f4", shape, &body)
}

/// A version-1 `.npy` file (C order) of dtype `descr` (e.g. `<f8`, `<i8`) and `shape` around
/// the little-endian `body`.
pub fn npy_bytes(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_f32_and_reads_fortran_order() {
        let bytes = npy_bytes_f32(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let a = parse_npy(&bytes, "x.npy").unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, ArrayData::F32(vec![1., 2., 3., 4., 5., 6.]));
        let mut fortran = bytes.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        let f = parse_npy(&fortran, "f.npy").unwrap();
        assert_eq!(f.data, ArrayData::F32(vec![1., 3., 5., 2., 4., 6.]));
    }

    #[test]
    fn header_parsing_handles_shapes_and_quotes() {
        let h = "{'descr': '<U3', 'fortran_order': False, 'shape': (4,), }";
        assert_eq!(header_value(h, "shape").as_deref(), Some("(4,)"));
        assert_eq!(parse_shape("(4,)"), Some(vec![4]));
        assert_eq!(parse_shape("()"), Some(vec![]));
        assert_eq!(quoted("'<U3'").as_deref(), Some("<U3"));
    }
}
