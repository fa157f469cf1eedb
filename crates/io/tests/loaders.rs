//! Every format and dtype the loaders accept, and a clear error for each bad input.

use embgeom_io::*;
use half::{bf16, f16};
use polars::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An `.npy` file with any `descr`, shape text and raw little/big-endian body.
fn npy(descr: &str, shape: &str, fortran: bool, body: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn f32_values(e: &Embeddings) -> Vec<f32> {
    match &e.matrix {
        Matrix::F32(a) => a.iter().cloned().collect(),
        Matrix::F64(a) => a.iter().map(|&v| v as f32).collect(),
        Matrix::Mapped(m) => m.view().iter().cloned().collect(),
    }
}

fn embeddings(path: &Path) -> Embeddings {
    load(path, &Selection::default())
        .unwrap()
        .embeddings
        .unwrap()
}

fn error(path: &Path, selection: &Selection) -> String {
    load(path, selection).unwrap_err().to_string()
}

const VALUES: [f32; 6] = [1.0, -2.0, 0.5, 4.0, 0.25, -8.0];

#[test]
fn npy_float_dtypes_orders_and_endianness() {
    let dir = tempfile::tempdir().unwrap();
    let le32: Vec<u8> = VALUES.iter().flat_map(|v| v.to_le_bytes()).collect();
    let be32: Vec<u8> = VALUES.iter().flat_map(|v| v.to_be_bytes()).collect();
    let le64: Vec<u8> = VALUES
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect();
    let le16: Vec<u8> = VALUES
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    for (name, descr, body) in [
        ("a.npy", "<f4", &le32),
        ("b.npy", ">f4", &be32),
        ("c.npy", "<f8", &le64),
        ("d.npy", "<f2", &le16),
    ] {
        let e = embeddings(&write(dir.path(), name, &npy(descr, "(2, 3)", false, body)));
        assert_eq!(e.matrix.dim(), (2, 3), "{descr}");
        assert_eq!(f32_values(&e), VALUES.to_vec(), "{descr}");
    }
    let f = embeddings(&write(
        dir.path(),
        "f.npy",
        &npy("<f4", "(3, 2)", true, &le32),
    ));
    // Column-major (3, 2): column 0 = 1, -2, 0.5; column 1 = 4, 0.25, -8.
    assert_eq!(f32_values(&f), vec![1.0, 4.0, -2.0, 0.25, 0.5, -8.0]);
    let ok = embeddings(&write(
        dir.path(),
        "w.npy",
        &npy_bytes_f32(&[3, 2], &VALUES),
    ));
    assert_eq!(ok.dtype, "f32");
    let c = embeddings(&dir.path().join("c.npy"));
    assert!(matches!(c.matrix, Matrix::F64(_)));
}

#[test]
fn npy_labels_of_every_integer_width_and_strings() {
    let dir = tempfile::tempdir().unwrap();
    let ints: [i64; 4] = [3, -1, 3, 7];
    for (descr, size) in [("<i8", 8), ("<i4", 4), ("<i2", 2), ("|i1", 1)] {
        let body: Vec<u8> = ints
            .iter()
            .flat_map(|v| v.to_le_bytes()[..size].to_vec())
            .collect();
        let path = write(dir.path(), "l.npy", &npy(descr, "(4,)", false, &body));
        let labels = load_labels(&path, &Selection::default()).unwrap();
        assert_eq!(labels.values, LabelValues::Int(ints.to_vec()), "{descr}");
        assert_eq!(
            labels.class_indices(),
            (vec![1, 0, 1, 2], vec!["-1".into(), "3".into(), "7".into()])
        );
    }
    let body: Vec<u8> = ["cat", "dog", "cat"]
        .iter()
        .flat_map(|s| {
            let mut u: Vec<u8> = s.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
            u.resize(16, 0);
            u
        })
        .collect();
    let path = write(dir.path(), "s.npy", &npy("<U4", "(3,)", false, &body));
    let labels = load_labels(&path, &Selection::default()).unwrap();
    assert_eq!(
        labels.values,
        LabelValues::Text(vec!["cat".into(), "dog".into(), "cat".into()])
    );
    let txt = write(dir.path(), "l.txt", b"b\na\nb\n");
    assert_eq!(
        load_labels(&txt, &Selection::default())
            .unwrap()
            .class_indices()
            .0,
        vec![1, 0, 1]
    );
}

#[test]
fn npz_stored_and_deflated_with_default_and_chosen_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (name, method) in [
        ("s.npz", ::zip::CompressionMethod::Stored),
        ("d.npz", ::zip::CompressionMethod::Deflated),
    ] {
        let path = dir.path().join(name);
        let mut zip = ::zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = ::zip::write::SimpleFileOptions::default().compression_method(method);
        zip.start_file("embeddings.npy", options).unwrap();
        zip.write_all(&npy_bytes_f32(&[2, 3], &VALUES)).unwrap();
        zip.start_file("labels.npy", options).unwrap();
        zip.write_all(&npy(
            "<i8",
            "(2,)",
            false,
            &[5i64, 6]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        ))
        .unwrap();
        zip.start_file("views.npy", options).unwrap();
        zip.write_all(&npy_bytes_f32(&[1, 2, 3], &VALUES)).unwrap();
        zip.start_file("other.npy", options).unwrap();
        zip.write_all(&npy_bytes_f32(&[3, 2], &VALUES)).unwrap();
        zip.finish().unwrap();
        let loaded = load(&path, &Selection::default()).unwrap();
        assert_eq!(
            f32_values(loaded.embeddings.as_ref().unwrap()),
            VALUES.to_vec()
        );
        assert_eq!(loaded.labels.unwrap().values, LabelValues::Int(vec![5, 6]));
        assert_eq!(loaded.views.len(), 2);
        assert_eq!(f32_values(&loaded.views[1]), VALUES[3..].to_vec());
        let other = load(
            &path,
            &Selection {
                embeddings: Some("other".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(other.embeddings.unwrap().matrix.dim(), (3, 2));
        let missing = error(
            &path,
            &Selection {
                embeddings: Some("emb".into()),
                ..Default::default()
            },
        );
        assert!(
            missing.contains("no array named \"emb\"")
                && missing.contains("embeddings, labels, views, other"),
            "{missing}"
        );
    }
}

#[test]
fn safetensors_in_every_float_type() {
    let dir = tempfile::tempdir().unwrap();
    let f32b: Vec<u8> = VALUES.iter().flat_map(|v| v.to_le_bytes()).collect();
    let f16b: Vec<u8> = VALUES
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16b: Vec<u8> = VALUES
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect();
    let f64b: Vec<u8> = VALUES
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect();
    let labels: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    for (dtype, bytes, name) in [
        (safetensors::Dtype::F32, &f32b, "f32"),
        (safetensors::Dtype::F16, &f16b, "f16"),
        (safetensors::Dtype::BF16, &bf16b, "bf16"),
        (safetensors::Dtype::F64, &f64b, "f64"),
    ] {
        let tensors = vec![
            (
                "embeddings",
                safetensors::tensor::TensorView::new(dtype, vec![2, 3], bytes).unwrap(),
            ),
            (
                "labels",
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![2], &labels)
                    .unwrap(),
            ),
        ];
        let path = write(
            dir.path(),
            "x.safetensors",
            &safetensors::serialize(tensors, None).unwrap(),
        );
        let loaded = load(&path, &Selection::default()).unwrap();
        let e = loaded.embeddings.unwrap();
        assert_eq!(e.dtype, name);
        assert_eq!(f32_values(&e), VALUES.to_vec(), "{name}");
        // f32 is used in place from the mapped file; the other types are decoded.
        assert_eq!(
            matches!(e.matrix, Matrix::Mapped(_)),
            name == "f32",
            "{name}"
        );
        assert_eq!(loaded.labels.unwrap().values, LabelValues::Int(vec![1, 2]));
    }
    let path = dir.path().join("x.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let cut = write(dir.path(), "cut.safetensors", &bytes[..bytes.len() - 5]);
    assert!(error(&cut, &Selection::default()).contains("cut.safetensors: corrupt or invalid file"));
}

#[test]
fn csv_numeric_columns_and_label_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        b"a,b,label\n1,-2,x\n0.5,4,y\n0.25,-8,x\n",
    );
    let loaded = load(&path, &Selection::default()).unwrap();
    assert_eq!(
        f32_values(loaded.embeddings.as_ref().unwrap()),
        VALUES.to_vec()
    );
    assert_eq!(
        loaded.labels.unwrap().values,
        LabelValues::Text(vec!["x".into(), "y".into(), "x".into()])
    );
    let only_b = load(
        &path,
        &Selection {
            feature_columns: Some(vec!["b".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(only_b.embeddings.unwrap().matrix.dim(), (3, 1));
    let bad = error(
        &path,
        &Selection {
            feature_columns: Some(vec!["zz".into()]),
            ..Default::default()
        },
    );
    assert!(
        bad.contains("no column named \"zz\"; available: a, b, label"),
        "{bad}"
    );
    let headless = write(dir.path(), "h.csv", b"1,-2\n0.5,4\n0.25,-8\n");
    let e = load(
        &headless,
        &Selection {
            no_header: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(f32_values(e.embeddings.as_ref().unwrap()), VALUES.to_vec());
    let holes = write(dir.path(), "n.csv", b"a,b\n1,2\n,3\n");
    assert!(error(&holes, &Selection::default()).contains("row 1 is empty"));
}

#[test]
fn parquet_list_column_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Series> = VALUES
        .chunks(3)
        .map(|r| Series::new("".into(), r))
        .collect();
    let mut frame = DataFrame::new_infer_height(vec![
        Series::new("embedding".into(), rows).into(),
        Series::new("label".into(), &[3i64, 1]).into(),
    ])
    .unwrap();
    let path = dir.path().join("t.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut frame)
        .unwrap();
    let loaded = load(&path, &Selection::default()).unwrap();
    assert_eq!(
        f32_values(loaded.embeddings.as_ref().unwrap()),
        VALUES.to_vec()
    );
    assert_eq!(loaded.labels.unwrap().values, LabelValues::Int(vec![3, 1]));

    let ragged: Vec<Series> = vec![
        Series::new("".into(), &[1.0f32, 2.0]),
        Series::new("".into(), &[1.0f32]),
    ];
    let mut frame =
        DataFrame::new_infer_height(vec![Series::new("embedding".into(), ragged).into()]).unwrap();
    let path = dir.path().join("r.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut frame)
        .unwrap();
    assert!(error(&path, &Selection::default()).contains("row 1 has 1 values but row 0 has 2"));
    let cut = std::fs::read(&path).unwrap();
    let cut = write(dir.path(), "cut.parquet", &cut[..cut.len() / 2]);
    assert!(error(&cut, &Selection::default()).contains("cut.parquet: corrupt or invalid file"));
}

#[test]
fn bad_files_get_messages_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let full = npy_bytes_f32(&[2, 3], &VALUES);
    let cut = write(dir.path(), "cut.npy", &full[..full.len() - 3]);
    let message = error(&cut, &Selection::default());
    assert!(
        message.contains("cut.npy: truncated file")
            && message.contains("needs 24 data bytes, found 21"),
        "{message}"
    );
    let complex = write(dir.path(), "c.npy", &npy("<c8", "(2,)", false, &[0; 16]));
    assert!(error(&complex, &Selection::default()).contains("c.npy: unsupported dtype <c8"));
    let rank1 = write(dir.path(), "r.npy", &npy_bytes_f32(&[6], &VALUES));
    assert!(error(&rank1, &Selection::default())
        .contains("expected a 2-D array (N, D) of embeddings, got shape [6]"));
    let garbage = write(dir.path(), "g.npy", b"hello, this is not numpy");
    assert!(error(&garbage, &Selection::default())
        .contains("g.npy: corrupt or invalid file: missing the .npy magic"));
    let unknown = write(dir.path(), "x.h5", b"");
    assert!(error(&unknown, &Selection::default()).contains("x.h5: unsupported file type"));
    assert!(error(&dir.path().join("absent.npy"), &Selection::default())
        .contains("absent.npy: cannot read"));
    let fractional = write(dir.path(), "f.npy", &npy_bytes_f32(&[2], &[1.0, 1.5]));
    let message = load_labels(&fractional, &Selection::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("label of row 1 is 1.5, not an integer"),
        "{message}"
    );
    let not_zip = write(dir.path(), "z.npz", b"PK but not really");
    assert!(error(&not_zip, &Selection::default()).contains("z.npz: corrupt or invalid file"));
}

#[test]
fn npz_extras_by_default_key_and_table_split_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.npz");
    let mut zip = ::zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = ::zip::write::SimpleFileOptions::default();
    let ints = |v: &[i64]| {
        npy(
            "<i8",
            &format!("({},)", v.len()),
            false,
            &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
        )
    };
    for (name, bytes) in [
        ("embeddings.npy", npy_bytes_f32(&[2, 3], &VALUES)),
        ("labels.npy", ints(&[0, 1])),
        ("classifier.npy", npy_bytes_f32(&[2, 3], &VALUES)),
        ("bias.npy", npy_bytes_f32(&[2], &[0.5, -0.5])),
        ("subclasses.npy", ints(&[4, 7])),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
    let loaded = load(&path, &Selection::default()).unwrap();
    assert_eq!(loaded.classifier.unwrap().matrix.dim(), (2, 3));
    assert_eq!(loaded.bias.unwrap().into_vector().unwrap(), vec![0.5, -0.5]);
    assert_eq!(
        loaded.subclasses.unwrap().values,
        LabelValues::Int(vec![4, 7])
    );
    assert!(loaded.split.is_none());
    let missing = error(
        &path,
        &Selection {
            split: Some("fold".into()),
            ..Default::default()
        },
    );
    assert!(missing.contains("no array named \"fold\""), "{missing}");

    let table = write(
        dir.path(),
        "t.csv",
        b"a,b,label,split\n1,2,x,train\n3,4,y,test\n",
    );
    let loaded = load(&table, &Selection::default()).unwrap();
    assert_eq!(
        loaded.embeddings.unwrap().matrix.dim(),
        (2, 2),
        "split is not a feature"
    );
    assert_eq!(
        loaded.split.unwrap().values,
        LabelValues::Text(vec!["train".into(), "test".into()])
    );
}

#[test]
fn f32_npy_is_memory_mapped_and_used_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..600).map(|k| k as f32 * 0.25 - 7.0).collect();
    let bytes = npy_bytes_f32(&[200, 3], &values);
    let path = write(dir.path(), "x.npy", &bytes);
    let direct = read_npy(&path).unwrap();
    let ArrayData::Mapped(mapped) = &direct.data else {
        panic!("an f32 .npy is mapped, got {:?}", direct.data)
    };
    assert_eq!(mapped.as_slice(), values.as_slice());
    let decoded = parse_npy(&bytes, &path.display().to_string()).unwrap();
    assert_eq!(decoded.data, ArrayData::F32(values.clone()));
    assert_eq!(
        (&direct.shape, &direct.dtype),
        (&decoded.shape, &decoded.dtype)
    );
    let loaded = embeddings(&path);
    assert!(matches!(loaded.matrix, Matrix::Mapped(_)));
    assert_eq!(loaded.matrix.dim(), (200, 3));
    assert_eq!(f32_values(&loaded), values);
    // A header whose length leaves the data unaligned for f32 is decoded into memory.
    let mut odd = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (200, 3), } \n";
    odd.extend_from_slice(&(header.len() as u16).to_le_bytes());
    odd.extend_from_slice(header.as_bytes());
    assert_ne!(odd.len() % 4, 0);
    odd.extend_from_slice(&bytes[bytes.len() - 2400..]);
    let odd = write(dir.path(), "odd.npy", &odd);
    let unaligned = read_npy(&odd).unwrap();
    assert_eq!(unaligned.data, ArrayData::F32(values.clone()));
    // f16 is decoded from the mapping into f32.
    let halves: Vec<u8> = values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    let half_path = write(dir.path(), "h.npy", &npy("<f2", "(200, 3)", false, &halves));
    assert!(matches!(embeddings(&half_path).matrix, Matrix::F32(_)));
    assert_eq!(f32_values(&embeddings(&half_path)), values);
    assert_eq!(npy_shape(&path).unwrap(), vec![200, 3]);
    let cut = write(dir.path(), "cut.npy", &bytes[..bytes.len() - 5]);
    let error = read_npy(&cut).unwrap_err().to_string();
    assert!(error.contains("cut.npy: truncated file"), "{error}");
    // Other dtypes and orders take the decoding path.
    let fortran = write(
        dir.path(),
        "f.npy",
        &npy("<f4", "(2, 3)", true, &bytes[bytes.len() - 24..]),
    );
    assert_eq!(read_npy(&fortran).unwrap().shape, vec![2, 3]);
}
