//! Per-class geometry and the structure of subclasses inside classes (Chen et al. 2022,
//! "Perfectly balanced: improving transfer and robustness of supervised contrastive
//! learning"): does the embedding keep the fine labels apart within each coarse class?

use crate::error::Result;
use crate::kernels::classes::Classes;
use crate::metrics::collapse::cdnv;
use crate::metrics::knn::{knn_accuracy, KnnOptions, KnnSplit};
use crate::metrics::real::Real;
use crate::metrics::stats::class_stats;
use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// One row of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerClass {
    /// Class name.
    #[serde(rename = "class")]
    pub name: String,
    /// `n_c`.
    #[serde(rename = "n")]
    pub count: usize,
    /// `Var_c = (1/n_c) sum ||h_i - mu_c||^2` of the raw features.
    pub within_variance: f64,
    /// Distance of the scaled centred mean to the nearest vertex of the aligned simplex.
    pub vertex_distance: Option<f64>,
    /// Name of the class whose vertex is nearest.
    pub nearest_vertex: Option<String>,
    /// Effective rank of the class's centred raw rows (`None` for a single row).
    pub effective_rank: Option<f64>,
    /// Uniformity within the class (`None` for a single row).
    pub uniformity: Option<f64>,
    /// Self-similarity (Ethayarajh 2019): the exact mean cosine over the ordered pairs
    /// `i != j` of the class's normalised rows, `(||S_c||^2 - sum_{i in c} ||u_i||^2) /
    /// (n_c (n_c - 1))` with `S_c` their sum (`None` for a single row).
    pub self_similarity: Option<f64>,
}

/// Subclass structure inside one coarse class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubclassesOfClass {
    /// Coarse class name.
    #[serde(rename = "class")]
    pub name: String,
    /// Number of distinct subclasses among its rows.
    pub subclasses: usize,
    /// Leave-one-out kNN accuracy of the subclass label among the class's rows.
    pub knn_accuracy: Option<f64>,
    /// Mean CDNV between the class's subclasses.
    pub cdnv: Option<f64>,
}

/// Subclass structure over all classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subclasses {
    /// Mean over classes with 2 or more subclasses of the within-class kNN subclass accuracy.
    pub knn_accuracy: Option<f64>,
    /// Mean over those classes of the mean CDNV between their subclasses.
    pub cdnv: Option<f64>,
    /// One entry per coarse class.
    pub per_class: Vec<SubclassesOfClass>,
}

/// How much of the subclass (fine label) structure survives within each class: kNN accuracy
/// of the subclass among the class's rows (unit rows `unit`) and the CDNV between its
/// subclasses (raw rows `raw`).
pub fn subclass_structure<F: Real>(
    unit: ArrayView2<F>,
    raw: ArrayView2<F>,
    classes: &Classes,
    subclasses: &Classes,
    knn: &KnnOptions,
) -> Result<Subclasses> {
    subclasses.check_rows(unit.nrows())?;
    let per_class = (0..classes.num_classes())
        .map(|c| {
            let members = classes.members(c);
            let mut fine: Vec<u32> = members.iter().map(|&i| subclasses.labels()[i]).collect();
            let mut distinct = fine.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for f in fine.iter_mut() {
                *f = distinct.binary_search(f).expect("present") as u32;
            }
            let name = classes.names()[c].clone();
            if distinct.len() < 2 {
                return Ok(SubclassesOfClass {
                    name,
                    subclasses: distinct.len(),
                    knn_accuracy: None,
                    cdnv: None,
                });
            }
            let local = Classes::new(
                fine.clone(),
                distinct.iter().map(|d| d.to_string()).collect(),
            )?;
            let unit_rows = unit.select(Axis(0), members);
            let raw_rows = raw.select(Axis(0), members);
            let accuracy = knn_accuracy(
                unit_rows.view(),
                &fine,
                distinct.len(),
                &KnnSplit::LeaveOneOut,
                knn,
            )?;
            let stats = class_stats(raw_rows.view(), &local)?;
            Ok(SubclassesOfClass {
                name,
                subclasses: distinct.len(),
                knn_accuracy: Some(accuracy.value),
                cdnv: cdnv(stats.means.view(), &stats.within_variance).map(|c| c.mean),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mean = |values: Vec<f64>| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    Ok(Subclasses {
        knn_accuracy: mean(per_class.iter().filter_map(|c| c.knn_accuracy).collect()),
        cdnv: mean(per_class.iter().filter_map(|c| c.cdnv).collect()),
        per_class,
    })
}
