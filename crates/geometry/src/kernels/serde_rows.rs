//! Serialise a matrix as a list of rows (`[[a, b], [c, d]]`), the form JSON readers expect.

use ndarray::Array2;
use serde::de::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Write `matrix` as its rows.
pub fn serialize<S: Serializer>(matrix: &Array2<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    let rows: Vec<Vec<f64>> = matrix.rows().into_iter().map(|r| r.to_vec()).collect();
    rows.serialize(serializer)
}

/// Read a matrix from its rows; every row must have the same length.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Array2<f64>, D::Error> {
    let rows: Vec<Vec<f64>> = Vec::deserialize(deserializer)?;
    let columns = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != columns) {
        return Err(D::Error::custom("matrix rows of different lengths"));
    }
    let values: Vec<f64> = rows.iter().flatten().copied().collect();
    Array2::from_shape_vec((rows.len(), columns), values).map_err(D::Error::custom)
}

/// Serialise a vector as a list (for `#[serde(with = "...::serde_rows::vector")]`).
pub mod vector {
    use ndarray::Array1;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Write `values` as a list.
    pub fn serialize<S: Serializer>(
        values: &Array1<f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        values.to_vec().serialize(serializer)
    }

    /// Read a vector from a list.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Array1<f64>, D::Error> {
        Ok(Array1::from(Vec::<f64>::deserialize(deserializer)?))
    }
}
