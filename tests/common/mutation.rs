//! The mutation fuzzer shared by `tests/fuzz.rs` (a few thousand mutants, in process) and
//! `benches/fuzz.rs` (any number, through the built binary with a time and memory limit):
//! valid seed files of every format, and seeded mutations of them (bit flips, byte edits,
//! truncations, insertions, deletions, header-number and length-field edits, duplicated
//! chunks, bad CSV cells).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// A seed file: its name (the extension selects the reader), bytes, and which input it is.
pub struct Seed {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub role: Role,
}

/// Which input a seed is given as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The embeddings file (with whatever else it holds).
    Embeddings,
    /// A labels file (`--labels`), next to the partner embeddings.
    Labels,
    /// A class names file (`--class-names`), next to the partner embeddings and labels.
    ClassNames,
    /// The `dataset_info.json` of a Hugging Face `save_to_disk` folder, the folder being the
    /// embeddings input (its Arrow shard is the reader fixture's).
    DatasetInfo,
}

/// The inputs of one run of a mutant, as files.
pub struct Placed {
    pub embeddings: PathBuf,
    pub labels: Option<PathBuf>,
    pub class_names: Option<PathBuf>,
}

impl Placed {
    /// The same inputs as `analyze` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![self.embeddings.display().to_string()];
        for (flag, path) in [
            ("--labels", &self.labels),
            ("--class-names", &self.class_names),
        ] {
            if let Some(path) = path {
                args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        args
    }
}

/// Write the partner files a seed is read with into `dir` (once per run).
pub fn write_partners(dir: &Path) {
    std::fs::write(dir.join("partner.npy"), label_partner()).expect("write the partner");
    std::fs::write(
        dir.join("partner-labels.npy"),
        npy("<i8", false, &format!("({ROWS},)"), &i64_bytes(&labels())),
    )
    .expect("write the partner labels");
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).expect("create the dataset folder");
    for (name, bytes) in HF_FILES {
        std::fs::write(hf.join(name), bytes).expect("write the dataset folder");
    }
}

/// The files of the Hugging Face fixture other than `dataset_info.json`.
const HF_FILES: [(&str, &[u8]); 2] = [
    (
        "data-00000-of-00001.arrow",
        include_bytes!("../fixtures/readers/hf-dataset/data-00000-of-00001.arrow"),
    ),
    (
        "state.json",
        include_bytes!("../fixtures/readers/hf-dataset/state.json"),
    ),
];

/// Write `bytes` as `seed` into `dir` (where [`write_partners`] wrote) and say what to run.
pub fn place(seed: &Seed, bytes: &[u8], dir: &Path) -> Placed {
    let path = match seed.role {
        Role::DatasetInfo => dir.join("hf").join(seed.name),
        _ => dir.join(seed.name),
    };
    std::fs::write(&path, bytes).expect("write the mutant");
    let partner = dir.join("partner.npy");
    match seed.role {
        Role::Embeddings => Placed {
            embeddings: path,
            labels: None,
            class_names: None,
        },
        Role::Labels => Placed {
            embeddings: partner,
            labels: Some(path),
            class_names: None,
        },
        Role::ClassNames => Placed {
            embeddings: partner,
            labels: Some(dir.join("partner-labels.npy")),
            class_names: Some(path),
        },
        Role::DatasetInfo => Placed {
            embeddings: dir.join("hf"),
            labels: None,
            class_names: None,
        },
    }
}

/// Rows of the generated seeds (labels seeds have as many values); the PyTorch, Arrow and
/// JSON Lines seeds are the reader fixtures (40 rows, `tests/fixtures/readers`).
pub const ROWS: usize = 12;
const DIM: usize = 4;

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn values() -> Vec<f32> {
    (0..ROWS * DIM)
        .map(|k| ((k * 7 % 11) as f32 - 5.0) / 3.0 + (k / DIM % 3) as f32)
        .collect()
}

fn labels() -> Vec<i64> {
    (0..ROWS as i64).map(|i| i % 3).collect()
}

/// An `.npy` file with the given descr, shape text and raw little-endian data.
pub fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let unpadded = 6 + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f64_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect()
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// f16 bits of small multiples of 1/4 (exact), enough for seed data.
fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| {
            let q = (v * 4.0).round() / 4.0;
            let bits: u16 = if q == 0.0 {
                0
            } else {
                let sign = if q < 0.0 { 0x8000 } else { 0 };
                let a = q.abs();
                let exponent = a.log2().floor() as i32;
                let mantissa = ((a / 2f32.powi(exponent) - 1.0) * 1024.0).round() as u16;
                sign | (((exponent + 15) as u16) << 10) | mantissa
            };
            bits.to_le_bytes()
        })
        .collect()
}

fn zip_of(entries: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut cursor);
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in entries {
            writer.start_file(*name, options).expect("zip entry");
            writer.write_all(bytes).expect("zip write");
        }
        writer.finish().expect("zip finish");
    }
    cursor.into_inner()
}

/// A safetensors file of `(name, dtype, shape, little-endian bytes)` entries.
pub fn safetensors(entries: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut offset = 0;
    for (k, (name, dtype, shape, data)) in entries.iter().enumerate() {
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        header += &format!(
            "{}\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            if k > 0 { "," } else { "" },
            shape.join(","),
            offset + data.len()
        );
        offset += data.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, data) in entries {
        out.extend_from_slice(data);
    }
    out
}

fn csv() -> Vec<u8> {
    let v = values();
    let mut text = String::from("f0,f1,f2,f3,label\n");
    for i in 0..ROWS {
        let row: Vec<String> = v[i * DIM..(i + 1) * DIM]
            .iter()
            .map(|x| x.to_string())
            .collect();
        text += &format!("{},{}\n", row.join(","), labels()[i]);
    }
    text.into_bytes()
}

fn parquet() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = values();
    let mut columns: Vec<embgeom_io::Column> = (0..DIM)
        .map(|j| {
            embgeom_io::Column::Float(
                format!("f{j}"),
                (0..ROWS).map(|i| Some(f64::from(v[i * DIM + j]))).collect(),
            )
        })
        .collect();
    columns.push(embgeom_io::Column::Int("label".into(), labels()));
    let (csv, parquet) = (dir.path().join("t.csv"), dir.path().join("t.parquet"));
    embgeom_io::write_table(columns, &csv, &parquet).expect("write the parquet seed");
    std::fs::read(parquet).expect("read the parquet seed")
}

/// Every seed: valid files of each format and dtype the readers take.
pub fn seeds() -> Vec<Seed> {
    let v = values();
    let shape = format!("({ROWS}, {DIM})");
    let embeddings = npy("<f4", false, &shape, &f32_bytes(&v));
    let label_npy = npy("<i8", false, &format!("({ROWS},)"), &i64_bytes(&labels()));
    let views: Vec<f32> = (0..ROWS)
        .flat_map(|i| {
            let row = &v[i * DIM..(i + 1) * DIM];
            row.iter()
                .copied()
                .chain(row.iter().map(|x| x + 0.1))
                .collect::<Vec<_>>()
        })
        .collect();
    let text_labels: Vec<u8> = (0..ROWS)
        .flat_map(|i| {
            let mut cell = [0u8; 12];
            cell[0] = b'a' + (i % 3) as u8;
            cell
        })
        .collect();
    let seed = |name, bytes, labels: bool| Seed {
        name,
        bytes,
        role: match labels {
            true => Role::Labels,
            false => Role::Embeddings,
        },
    };
    let fixtures: [(&'static str, &'static [u8]); 5] = [
        ("dict.pt", include_bytes!("../fixtures/readers/dict.pt")),
        ("slice.pt", include_bytes!("../fixtures/readers/slice.pt")),
        (
            "table.feather",
            include_bytes!("../fixtures/readers/table.feather"),
        ),
        (
            "stream.arrow",
            include_bytes!("../fixtures/readers/stream.arrow"),
        ),
        (
            "data.jsonl",
            include_bytes!("../fixtures/readers/data.jsonl"),
        ),
    ];
    let mut all = vec![
        seed("f32.npy", embeddings.clone(), false),
        seed(
            "f64-fortran.npy",
            npy(">f8", true, &shape, &{
                // Big-endian, column-major.
                let mut columns = Vec::new();
                for j in 0..DIM {
                    for i in 0..ROWS {
                        columns.extend_from_slice(&f64::from(v[i * DIM + j]).to_be_bytes());
                    }
                }
                columns
            }),
            false,
        ),
        seed("f16.npy", npy("<f2", false, &shape, &f16_bytes(&v)), false),
        seed(
            "views.npy",
            npy(
                "<f4",
                false,
                &format!("({ROWS}, 2, {DIM})"),
                &f32_bytes(&views),
            ),
            false,
        ),
        seed("labels.npy", label_npy.clone(), true),
        seed(
            "labels-u3.npy",
            npy("<U3", false, &format!("({ROWS},)"), &text_labels),
            true,
        ),
        seed(
            "stored.npz",
            zip_of(
                &[
                    ("embeddings.npy", embeddings.clone()),
                    ("labels.npy", label_npy.clone()),
                ],
                false,
            ),
            false,
        ),
        seed(
            "deflated.npz",
            zip_of(
                &[
                    ("embeddings.npy", npy("<f8", false, &shape, &f64_bytes(&v))),
                    ("labels.npy", label_npy),
                ],
                true,
            ),
            false,
        ),
        seed(
            "checkpoint.safetensors",
            safetensors(&[
                ("embeddings", "F32", vec![ROWS, DIM], f32_bytes(&v)),
                ("labels", "I64", vec![ROWS], i64_bytes(&labels())),
                ("views", "F32", vec![ROWS, 2, DIM], f32_bytes(&views)),
            ]),
            false,
        ),
        seed("table.csv", csv(), false),
        seed("table.parquet", parquet(), false),
        seed(
            "labels.txt",
            (0..ROWS)
                .map(|i| format!("class{}\n", i % 3))
                .collect::<String>()
                .into_bytes(),
            true,
        ),
    ];
    all.extend(fixtures.map(|(name, bytes)| seed(name, bytes.to_vec(), false)));
    let names = |name, bytes: &[u8]| Seed {
        name,
        bytes: bytes.to_vec(),
        role: Role::ClassNames,
    };
    all.push(names("names.txt", b"alpha\nbeta\ngamma\n"));
    all.push(names("names.json", br#"["alpha", "beta", "gamma"]"#));
    all.push(Seed {
        name: "dataset_info.json",
        bytes: include_bytes!("../fixtures/readers/hf-dataset/dataset_info.json").to_vec(),
        role: Role::DatasetInfo,
    });
    all
}

/// The embeddings a labels seed is read with (`ROWS` rows).
pub fn label_partner() -> Vec<u8> {
    npy(
        "<f4",
        false,
        &format!("({ROWS}, {DIM})"),
        &f32_bytes(&values()),
    )
}

const NUMBERS: [&str; 9] = [
    "0",
    "1",
    "-1",
    "65535",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e308",
    "nan",
];
const CELLS: [&str; 8] = ["abc", "nan", "inf", "", "\"1,5\"", " 1", "1e999", "\"\""];

/// One mutation of `bytes`, described for the failure report.
fn mutate_once(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    if bytes.is_empty() {
        bytes.push(rng.next() as u8);
        return "grow an empty file".into();
    }
    let at = rng.below(bytes.len());
    match rng.below(9) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let k = rng.below(bytes.len());
                bytes[k] ^= 1 << rng.below(8);
            }
            format!("flip {flips} bits")
        }
        1 => {
            let value = [0x00, 0xFF, 0x7F, 0x80, rng.next() as u8][rng.below(5)];
            bytes[at] = value;
            format!("byte {at} = {value:#x}")
        }
        2 => {
            bytes.truncate(at);
            format!("truncate at {at}")
        }
        3 => {
            let count = 1 + rng.below(16);
            let insert: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, insert);
            format!("insert {count} bytes at {at}")
        }
        4 => {
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            bytes.drain(at..end);
            format!("delete {at}..{end}")
        }
        5 => {
            // A number in the first 600 bytes (a header field) replaced.
            let limit = bytes.len().min(600);
            let starts: Vec<usize> = (0..limit)
                .filter(|&k| {
                    bytes[k].is_ascii_digit() && (k == 0 || !bytes[k - 1].is_ascii_digit())
                })
                .collect();
            if starts.is_empty() {
                bytes[at] ^= 0x01;
                return format!("flip bit 0 of byte {at}");
            }
            let start = starts[rng.below(starts.len())];
            let end = (start..bytes.len())
                .find(|&k| !bytes[k].is_ascii_digit())
                .unwrap_or(bytes.len());
            let number = NUMBERS[rng.below(NUMBERS.len())];
            bytes.splice(start..end, number.bytes());
            format!("number at {start} = {number}")
        }
        6 => {
            // A little-endian length field overwritten.
            let value: u64 = [0, 1, u64::from(u32::MAX), u64::MAX, rng.next()][rng.below(5)];
            let width = if rng.below(2) == 0 { 4 } else { 8 };
            let end = (at + width).min(bytes.len());
            let le = value.to_le_bytes();
            bytes[at..end].copy_from_slice(&le[..end - at]);
            format!("{width}-byte field at {at} = {value}")
        }
        7 => {
            let end = (at + 1 + rng.below(256)).min(bytes.len());
            let chunk = bytes[at..end].to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, chunk);
            format!("copy {at}..{end} to {to}")
        }
        _ => {
            // A CSV-style cell replaced (text between separators).
            let cell = CELLS[rng.below(CELLS.len())];
            let end = (at..bytes.len())
                .find(|&k| matches!(bytes[k], b',' | b'\n'))
                .unwrap_or(bytes.len());
            bytes.splice(at..end, cell.bytes());
            format!("cell at {at} = {cell:?}")
        }
    }
}

/// Mutant `index` of `seed`: one to three mutations, reproducible from `(run_seed, index)`.
pub fn mutant(seed: &Seed, run_seed: u64, index: u64) -> (Vec<u8>, String) {
    let mut rng = Rng::new(run_seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut bytes = seed.bytes.clone();
    let count = 1 + rng.below(3);
    let what: Vec<String> = (0..count)
        .map(|_| mutate_once(&mut bytes, &mut rng))
        .collect();
    (bytes, what.join("; "))
}
