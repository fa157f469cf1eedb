//! The bundled digits (`data/digits.npz`): f32 embeddings and integer labels.

use ndarray::Array2;
use std::path::Path;

/// The embeddings (N x D, f32) and labels of the bundled digits.
pub fn digits() -> (Array2<f32>, Vec<i64>) {
    let loaded = embgeom_io::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/digits.npz")
            .as_path(),
        &embgeom_io::Selection::default(),
    )
    .unwrap();
    let embgeom_io::Matrix::F32(rows) = loaded.embeddings.unwrap().matrix else {
        panic!("the digits are stored as f32")
    };
    let embgeom_io::LabelValues::Int(labels) = loaded.labels.unwrap().values else {
        panic!("the digits have integer labels")
    };
    (rows, labels)
}
