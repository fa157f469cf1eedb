//! The per-point table (see [`embgeom_geometry::per_point`]) as columns and as a Parquet file
//! that Apple's embedding-atlas opens directly:
//! `embedding-atlas FILE --x projection_x --y projection_y --neighbors neighbors`.

use crate::error::Result;
use embgeom_geometry::PerPoint;
use embgeom_io::{write_parquet, Column};
use std::path::Path;

/// The per-point columns: `row` (in the input), `class` and the other class columns with
/// labels, `k_occurrence`, `lid`, `projection_x`, `projection_y` and `neighbors` (`{ids,
/// distances}`, ids the zero-based positions in this table, distances `1 - cosine`).
/// `class_names` name the class indices.
pub fn per_point_columns(p: &PerPoint, class_names: &[String]) -> Vec<Column> {
    let name = |c: u32| {
        class_names
            .get(c as usize)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    };
    let mut columns = vec![Column::Int(
        "row".into(),
        p.rows.iter().map(|&r| r as i64).collect(),
    )];
    if let Some(labels) = &p.labels {
        columns.push(Column::Text(
            "class".into(),
            labels.iter().map(|&c| name(c)).collect(),
        ));
    }
    let floats = |values: &[f64]| values.iter().map(|&v| Some(v)).collect::<Vec<_>>();
    if let Some(d) = &p.class_mean_distance {
        columns.push(Column::Float("class_mean_distance".into(), floats(d)));
    }
    columns.push(Column::Int(
        "k_occurrence".into(),
        p.k_occurrence.iter().map(|&c| c as i64).collect(),
    ));
    if let (Some(same), Some(other)) = (&p.nearest_same_class, &p.nearest_other_class) {
        columns.push(Column::Float("nearest_same_class".into(), same.clone()));
        columns.push(Column::Float("nearest_other_class".into(), other.clone()));
    }
    if let (Some(predicted), Some(labels)) = (&p.knn_prediction, &p.labels) {
        columns.push(Column::Text(
            "knn_prediction".into(),
            predicted.iter().map(|&c| name(c)).collect(),
        ));
        columns.push(Column::Bool(
            "knn_disagrees".into(),
            predicted
                .iter()
                .zip(labels)
                .map(|(a, b)| Some(a != b))
                .collect(),
        ));
    }
    columns.push(Column::Float("lid".into(), p.lid.clone()));
    for (axis, key) in ["projection_x", "projection_y"].into_iter().enumerate() {
        columns.push(Column::Float(
            key.into(),
            p.projection.column(axis).iter().map(|&v| Some(v)).collect(),
        ));
    }
    columns.push(Column::Neighbours("neighbors".into(), p.neighbours.clone()));
    columns
}

/// Write the per-point table to `path` as Parquet (atomically; see
/// [`embgeom_io::write_parquet`]).
pub fn write_per_point(path: &Path, p: &PerPoint, class_names: &[String]) -> Result<()> {
    Ok(write_parquet(per_point_columns(p, class_names), path)?)
}
