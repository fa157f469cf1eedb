//! No reader panics on any byte string: every one returns a value or an error naming the file.

use embgeom_io::{
    load, load_labels, parse_npy, FileBytes, JsonLines, Npz, SafetensorsFile, Selection, TorchFile,
};
use proptest::prelude::*;

/// Bytes that start like a valid file of the format more often than chance.
fn bytes_after(prefix: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(move |(with_prefix, tail)| match with_prefix {
            true => prefix.iter().copied().chain(tail).collect(),
            false => tail,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn npy_never_panics(bytes in bytes_after(b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (")) {
        if let Err(e) = parse_npy(&bytes, "x.npy") {
            prop_assert!(e.to_string().starts_with("x.npy"));
        }
    }

    #[test]
    fn npz_never_panics(bytes in bytes_after(b"PK\x03\x04\x14\x00\x00\x00\x00\x00")) {
        if let Ok(mut npz) = Npz::new(bytes, "x.npz") {
            for key in npz.keys() {
                let _ = npz.get(&key);
            }
        }
    }

    #[test]
    fn safetensors_never_panics(bytes in bytes_after(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"embeddings\":{\"dtype\":\"F32\",\"shape\":[")) {
        if let Ok(file) = SafetensorsFile::new(FileBytes::Read(bytes), "x.safetensors") {
            for key in file.keys() {
                let _ = file.get(&key);
            }
        }
    }

    #[test]
    fn pytorch_files_never_panic(bytes in bytes_after(b"PK\x03\x04\x00\x00\x00\x00\x00\x00")) {
        if let Ok(mut file) = TorchFile::new(bytes, "x.pt") {
            for key in file.keys() {
                let _ = file.get(&key);
            }
        }
    }

    #[test]
    fn json_lines_never_panic(bytes in bytes_after(b"{\"embedding\": [1.0, 2")) {
        if let Ok(file) = JsonLines::new(&bytes, "x.jsonl") {
            for key in file.keys() {
                let _ = file.get(&key);
            }
        }
    }

    #[test]
    fn tables_and_text_never_panic(
        bytes in bytes_after(b"PAR1"),
        extension in prop::sample::select(vec!["csv", "parquet", "txt", "arrow", "feather", "jsonl", "pt", "bin"]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("x.{extension}"));
        std::fs::write(&path, &bytes).unwrap();
        let outcome = embgeom_io::quiet_panics(|| {
            let _ = load(&path, &Selection::default());
            let _ = load_labels(&path, &Selection::default());
        });
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}
