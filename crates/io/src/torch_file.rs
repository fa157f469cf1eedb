//! PyTorch `.pt` / `.pth` / `.bin` files (the zip format of `torch.save`, PyTorch >= 1.6),
//! read without libtorch and without running any pickle code: `data.pkl` is interpreted by a
//! restricted unpickler that understands only what `torch.save` writes for tensors and
//! containers (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, the storage types,
//! `collections.OrderedDict`, dicts, lists, tuples, numbers, strings) and refuses every other
//! global, as `torch.load(weights_only=True)` does.
//!
//! Keys: a bare tensor is the file's only array; the tensors (and lists of numbers or strings)
//! of nested dicts and lists are named by their path with dots (`model.embeddings`,
//! `views.0`).

use crate::array::{ArrayData, RawArray};
use crate::error::{IoError, Result};
use half::{bf16, f16};
use std::collections::HashMap;
use std::io::{Cursor, Read};

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Element {
    F16,
    BF16,
    F32,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Element {
    fn from_storage(name: &str) -> Option<Element> {
        Some(match name {
            "torch.HalfStorage" => Element::F16,
            "torch.BFloat16Storage" => Element::BF16,
            "torch.FloatStorage" => Element::F32,
            "torch.DoubleStorage" => Element::F64,
            "torch.LongStorage" => Element::I64,
            "torch.IntStorage" => Element::I32,
            "torch.ShortStorage" => Element::I16,
            "torch.CharStorage" => Element::I8,
            "torch.ByteStorage" => Element::U8,
            "torch.BoolStorage" => Element::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Element::F64 | Element::I64 => 8,
            Element::F32 | Element::I32 => 4,
            Element::F16 | Element::BF16 | Element::I16 => 2,
            Element::I8 | Element::U8 | Element::Bool => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Element::F16 => "f16",
            Element::BF16 => "bf16",
            Element::F32 => "f32",
            Element::F64 => "f64",
            Element::I64 => "i64",
            Element::I32 => "i32",
            Element::I16 => "i16",
            Element::I8 => "i8",
            Element::U8 => "u8",
            Element::Bool => "bool",
        }
    }
}

/// A tensor as described by the pickle: its storage and view.
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage: String,
    element: Element,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// What the restricted unpickler builds.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes,
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    Storage(String, Element),
    Tensor(TensorRef),
    Mark,
}

/// The globals `torch.save` writes for tensors and containers; anything else is refused.
const ALLOWED: [&str; 5] = [
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "collections.OrderedDict",
    "torch.nn.parameter.Parameter",
];

struct Unpickler<'a> {
    path: &'a str,
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
}

impl<'a> Unpickler<'a> {
    fn corrupt(&self, what: impl Into<String>) -> IoError {
        IoError::Corrupt {
            path: self.path.to_string(),
            what: format!("data.pkl: {}", what.into()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.corrupt(format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, n: usize) -> Result<String> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("a string is not UTF-8"))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.corrupt("unterminated GLOBAL"))?;
        let text = self.string(end)?;
        self.at += 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack
            .pop()
            .ok_or_else(|| self.corrupt("stack underflow"))
    }

    /// Everything above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| self.corrupt("no MARK"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn global(&self, module: &str, name: &str) -> Result<Value> {
        let full = format!("{module}.{name}");
        if let Some(element) = Element::from_storage(&full) {
            return Ok(Value::Storage(String::new(), element));
        }
        if ALLOWED.contains(&full.as_str()) {
            return Ok(Value::Global(full));
        }
        Err(IoError::Corrupt {
            path: self.path.to_string(),
            what: format!(
                "refuses the pickled global {full}: only tensors and containers are read (as torch.load(weights_only=True) does), no code is run"
            ),
        })
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value> {
        let Value::Tuple(args) = args else {
            return Err(self.corrupt("REDUCE arguments are not a tuple"));
        };
        let name = match &callable {
            Value::Global(name) => name.as_str(),
            other => return Err(self.corrupt(format!("cannot call {other:?}"))),
        };
        match name {
            "collections.OrderedDict" => Ok(Value::Dict(Vec::new())),
            "torch._utils._rebuild_tensor_v2" => {
                let [Value::Storage(storage, element), Value::Int(offset), size, stride, ..] =
                    args.as_slice()
                else {
                    return Err(self.corrupt("_rebuild_tensor_v2 with unexpected arguments"));
                };
                let dims = |v: &Value| -> Result<Vec<usize>> {
                    let Value::Tuple(items) = v else {
                        return Err(self.corrupt("a tensor size or stride is not a tuple"));
                    };
                    items
                        .iter()
                        .map(|i| match i {
                            Value::Int(k) if *k >= 0 => Ok(*k as usize),
                            _ => Err(self.corrupt("a tensor size or stride is not a count")),
                        })
                        .collect()
                };
                let (size, stride) = (dims(size)?, dims(stride)?);
                if size.len() != stride.len() || *offset < 0 {
                    return Err(self.corrupt("a tensor's size and stride do not match"));
                }
                Ok(Value::Tensor(TensorRef {
                    storage: storage.clone(),
                    element: *element,
                    offset: *offset as usize,
                    size,
                    stride,
                }))
            }
            _ => match args.into_iter().next() {
                // _rebuild_parameter(data, requires_grad, hooks) and Parameter(data, ...)
                Some(tensor @ Value::Tensor(_)) => Ok(tensor),
                _ => Err(self.corrupt(format!("{name} without a tensor"))),
            },
        }
    }

    fn run(mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(self.corrupt("an integer wider than 64 bits"));
                    }
                    let negative = b.last().is_some_and(|&x| x & 0x80 != 0);
                    let mut wide = if negative { [0xff; 8] } else { [0; 8] };
                    wide[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(wide)));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    self.take(n)?;
                    self.stack.push(Value::Bytes);
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    self.take(n)?;
                    self.stack.push(Value::Bytes);
                }
                b'q' => {
                    let k = u64::from(self.u8()?);
                    self.memoize(k)?;
                }
                b'r' => {
                    let k = u64::from(self.u32()?);
                    self.memoize(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memoize(k)?;
                }
                b'h' => {
                    let k = u64::from(self.u8()?);
                    self.recall(k)?;
                }
                b'j' => {
                    let k = u64::from(self.u32()?);
                    self.recall(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let value = self.global(&module, &name)?;
                    self.stack.push(value);
                }
                0x93 => {
                    let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                        return Err(self.corrupt("STACK_GLOBAL without names"));
                    };
                    let value = self.global(&module, &name)?;
                    self.stack.push(value);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let Value::Tuple(items) = pid else {
                        return Err(self.corrupt("a persistent id that is not a tuple"));
                    };
                    let (Some(Value::Storage(_, element)), Some(Value::Str(key))) =
                        (items.get(1), items.get(2))
                    else {
                        return Err(self.corrupt("a persistent id that is not a storage"));
                    };
                    self.stack.push(Value::Storage(key.clone(), *element));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.corrupt("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.reduce(callable, args)?;
                    self.stack.push(value);
                }
                b'b' => {
                    // BUILD: the state of an OrderedDict (metadata) or a tensor; ignored.
                    self.pop()?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.insert(vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.insert(items)?;
                }
                b'a' => {
                    let value = self.pop()?;
                    self.append(vec![value])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                other => {
                    return Err(self.corrupt(format!(
                        "unsupported pickle opcode {other:#04x} at byte {}",
                        self.at - 1
                    )))
                }
            }
        }
    }

    fn memoize(&mut self, k: u64) -> Result<()> {
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.corrupt("memo of an empty stack"))?;
        self.memo.insert(k, top);
        Ok(())
    }

    fn recall(&mut self, k: u64) -> Result<()> {
        let value = self
            .memo
            .get(&k)
            .cloned()
            .ok_or_else(|| self.corrupt(format!("memo {k} is not set")))?;
        self.stack.push(value);
        Ok(())
    }

    fn insert(&mut self, items: Vec<Value>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.corrupt("SETITEMS with an odd count"));
        }
        let Some(Value::Dict(entries)) = self.stack.last_mut() else {
            return Err(self.corrupt("SETITEM on something that is not a dict"));
        };
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            entries.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        let Some(Value::List(list)) = self.stack.last_mut() else {
            return Err(self.corrupt("APPEND on something that is not a list"));
        };
        list.extend(items);
        Ok(())
    }
}

/// What a key names: a tensor, or a list of numbers or strings.
#[derive(Debug, Clone)]
enum Entry {
    Tensor(TensorRef),
    Numbers(Vec<f64>, bool),
    Strings(Vec<String>),
}

/// Every tensor (and list of plain values) of `value`, by dotted path.
fn flatten(value: &Value, prefix: &str, out: &mut Vec<(String, Entry)>) {
    let join = |key: &str| match prefix.is_empty() {
        true => key.to_string(),
        false => format!("{prefix}.{key}"),
    };
    match value {
        Value::Tensor(t) => out.push((prefix.to_string(), Entry::Tensor(t.clone()))),
        Value::Dict(entries) => {
            for (k, v) in entries {
                let key = match k {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => continue,
                };
                flatten(v, &join(&key), out);
            }
        }
        Value::List(items) | Value::Tuple(items) => {
            if !items.is_empty() && items.iter().all(|v| matches!(v, Value::Str(_))) {
                let strings = items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                out.push((prefix.to_string(), Entry::Strings(strings)));
            } else if !items.is_empty()
                && items
                    .iter()
                    .all(|v| matches!(v, Value::Int(_) | Value::Float(_) | Value::Bool(_)))
            {
                let integral = items.iter().all(|v| !matches!(v, Value::Float(_)));
                let numbers = items
                    .iter()
                    .map(|v| match v {
                        Value::Int(i) => *i as f64,
                        Value::Float(f) => *f,
                        Value::Bool(b) => f64::from(u8::from(*b)),
                        _ => 0.0,
                    })
                    .collect();
                out.push((prefix.to_string(), Entry::Numbers(numbers, integral)));
            } else {
                for (i, v) in items.iter().enumerate() {
                    flatten(v, &join(&i.to_string()), out);
                }
            }
        }
        _ => {}
    }
}

/// Elements `indices` of a storage of `N`-byte items, each decoded by `f` from its
/// little-endian bytes (swapped first for a big-endian file).
fn gather<const N: usize, T>(
    indices: &[usize],
    bytes: &[u8],
    big_endian: bool,
    f: impl Fn([u8; N]) -> T,
) -> Vec<T> {
    indices
        .iter()
        .map(|&i| {
            let mut word = [0u8; N];
            word.copy_from_slice(&bytes[i * N..(i + 1) * N]);
            if big_endian {
                word.reverse();
            }
            f(word)
        })
        .collect()
}

/// An opened PyTorch zip file.
pub struct TorchFile {
    path: String,
    archive: zip::ZipArchive<Cursor<Vec<u8>>>,
    prefix: String,
    big_endian: bool,
    entries: Vec<(String, Entry)>,
}

/// True for the bytes of a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// True for a zip archive that holds a `data.pkl` (the PyTorch format).
pub fn is_torch_zip(bytes: &[u8]) -> bool {
    is_zip(bytes)
        && zip::ZipArchive::new(Cursor::new(bytes)).is_ok_and(|archive| {
            archive
                .file_names()
                .filter_map(|n| n.ok())
                .any(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
        })
}

impl TorchFile {
    /// Open the file held in `bytes`; `path` names it in messages.
    pub fn new(bytes: Vec<u8>, path: &str) -> Result<TorchFile> {
        let corrupt = |what: String| IoError::Corrupt {
            path: path.to_string(),
            what,
        };
        if !is_zip(&bytes) {
            return Err(corrupt(match bytes.first() {
                Some(0x80) => "a legacy (pre-1.6, non-zip) PyTorch file: re-save it with torch.save(obj, path) in PyTorch 1.6 or later (the default zip format)".into(),
                _ => "not a PyTorch zip file (torch.save of PyTorch 1.6 or later)".into(),
            }));
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| corrupt(format!("not a readable zip archive: {e}")))?;
        let pickle_name = archive
            .file_names()
            .filter_map(|n| n.ok())
            .find(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
            .map(|n| n.to_string())
            .ok_or_else(|| corrupt("a zip without data.pkl: not a PyTorch file".into()))?;
        let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
        let read = |archive: &mut zip::ZipArchive<Cursor<Vec<u8>>>, name: &str| {
            let mut member = archive
                .by_name(name)
                .map_err(|e| corrupt(format!("{name}: {e}")))?;
            let mut out = Vec::new();
            member
                .read_to_end(&mut out)
                .map_err(|e| corrupt(format!("{name}: cannot read: {e}")))?;
            Ok::<_, IoError>(out)
        };
        let pickle = read(&mut archive, &pickle_name)?;
        let big_endian = match read(&mut archive, &format!("{prefix}byteorder")) {
            Ok(order) => order.starts_with(b"big"),
            Err(_) => false,
        };
        let root = Unpickler {
            path,
            bytes: &pickle,
            at: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
        .run()?;
        let mut entries = Vec::new();
        flatten(&root, "", &mut entries);
        if let [(key, _)] = entries.as_mut_slice() {
            if key.is_empty() {
                *key = "tensor".into();
            }
        }
        Ok(TorchFile {
            path: path.to_string(),
            archive,
            prefix,
            big_endian,
            entries,
        })
    }

    /// Dotted paths of the tensors and value lists (`tensor` for a bare tensor).
    pub fn keys(&self) -> Vec<String> {
        self.entries.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The array named `key`, if it exists.
    pub fn get(&mut self, key: &str) -> Result<Option<RawArray>> {
        let Some((_, entry)) = self.entries.iter().find(|(k, _)| k == key) else {
            return Ok(None);
        };
        let source = format!("{}:{key}", self.path);
        let raw = |dtype: &str, shape: Vec<usize>, data: ArrayData| RawArray {
            source: source.clone(),
            dtype: dtype.to_string(),
            shape,
            data,
        };
        match entry.clone() {
            Entry::Strings(s) => Ok(Some(raw("str", vec![s.len()], ArrayData::Text(s)))),
            Entry::Numbers(v, integral) => Ok(Some(match integral {
                true => raw(
                    "i64",
                    vec![v.len()],
                    ArrayData::Int(v.iter().map(|&x| x as i64).collect()),
                ),
                false => raw("f64", vec![v.len()], ArrayData::F64(v)),
            })),
            Entry::Tensor(t) => self.tensor(&t, &source).map(Some),
        }
    }

    fn tensor(&mut self, t: &TensorRef, source: &str) -> Result<RawArray> {
        let corrupt = |what: String| IoError::Corrupt {
            path: source.to_string(),
            what,
        };
        let member = format!("{}data/{}", self.prefix, t.storage);
        let mut bytes = Vec::new();
        self.archive
            .by_name(&member)
            .map_err(|e| corrupt(format!("storage {member}: {e}")))?
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(format!("storage {member}: cannot read: {e}")))?;
        let size = t.element.size();
        let available = bytes.len() / size;
        let count = t
            .size
            .iter()
            .try_fold(1usize, |n, &s| n.checked_mul(s))
            .ok_or_else(|| corrupt(format!("shape {:?} overflows", t.size)))?;
        // The largest element index the view touches must lie inside the storage.
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |end, (&n, &s)| {
                end.checked_add(n.saturating_sub(1).checked_mul(s)?)
            });
        match last {
            Some(last) if count == 0 || last < available => {}
            _ => {
                return Err(IoError::Truncated {
                    path: source.to_string(),
                    what: format!(
                        "the view (offset {}, shape {:?}, stride {:?}) reaches past its storage of {available} elements",
                        t.offset, t.size, t.stride
                    ),
                })
            }
        }
        // A view may repeat its storage (stride 0), but not into an allocation out of all
        // proportion to the file.
        if count > (1 << 20) && count / 64 > available {
            return Err(corrupt(format!(
                "a view of {count} elements over a storage of {available}"
            )));
        }
        let mut indices = Vec::with_capacity(count);
        let mut index = vec![0usize; t.size.len()];
        for _ in 0..count {
            let at: usize = t.offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            indices.push(at);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < t.size[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        let (big, at) = (self.big_endian, indices.as_slice());
        let data = match t.element {
            Element::F16 => {
                ArrayData::F32(gather(at, &bytes, big, |b| f16::from_le_bytes(b).to_f32()))
            }
            Element::BF16 => {
                ArrayData::F32(gather(at, &bytes, big, |b| bf16::from_le_bytes(b).to_f32()))
            }
            Element::F32 => ArrayData::F32(gather(at, &bytes, big, f32::from_le_bytes)),
            Element::F64 => ArrayData::F64(gather(at, &bytes, big, f64::from_le_bytes)),
            Element::I64 => ArrayData::Int(gather(at, &bytes, big, i64::from_le_bytes)),
            Element::I32 => ArrayData::Int(gather(at, &bytes, big, |b| {
                i64::from(i32::from_le_bytes(b))
            })),
            Element::I16 => ArrayData::Int(gather(at, &bytes, big, |b| {
                i64::from(i16::from_le_bytes(b))
            })),
            Element::I8 => {
                ArrayData::Int(gather(at, &bytes, big, |b: [u8; 1]| i64::from(b[0] as i8)))
            }
            Element::U8 | Element::Bool => {
                ArrayData::Int(gather(at, &bytes, big, |b: [u8; 1]| i64::from(b[0])))
            }
        };
        Ok(RawArray {
            source: source.to_string(),
            dtype: t.element.name().to_string(),
            shape: t.size.clone(),
            data,
        })
    }
}
