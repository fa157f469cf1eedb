//! Class membership of rows, and per-class sums.

use crate::error::{GeometryError, Result};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView2};
use rayon::prelude::*;

/// Per-class sums `S_c` (C x D) and sums of squared norms (C), from [`Classes::class_sums`].
pub type ClassSums = (Array2<f64>, Array1<f64>);

/// Class labels of N rows as indices `0..C`, with a display name per class.
#[derive(Debug, Clone, PartialEq)]
pub struct Classes {
    labels: Vec<u32>,
    names: Vec<String>,
    members: Vec<Vec<usize>>,
}

impl Classes {
    /// Classes from per-row indices into `names`. Every class must have at least one row.
    pub fn new(labels: Vec<u32>, names: Vec<String>) -> Result<Self> {
        let mut members = vec![Vec::new(); names.len()];
        for (row, &label) in labels.iter().enumerate() {
            let class = members
                .get_mut(label as usize)
                .ok_or_else(|| GeometryError::Labels {
                    what: format!(
                        "row {row} has class index {label}, but only {} classes are named",
                        names.len()
                    ),
                })?;
            class.push(row);
        }
        if let Some(empty) = members.iter().position(Vec::is_empty) {
            return Err(GeometryError::Labels {
                what: format!("class {:?} has no rows", names[empty]),
            });
        }
        Ok(Classes {
            labels,
            names,
            members,
        })
    }

    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.names.len()
    }

    /// Number of labelled rows N.
    pub fn num_rows(&self) -> usize {
        self.labels.len()
    }

    /// Class index of every row.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Display name of every class.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Rows of class `c`, in increasing order.
    pub fn members(&self, c: usize) -> &[usize] {
        &self.members[c]
    }

    /// `n_c` of every class.
    pub fn counts(&self) -> Vec<usize> {
        self.members.iter().map(Vec::len).collect()
    }

    /// Check that the labels describe the `rows` rows of an embedding.
    pub fn check_rows(&self, rows: usize) -> Result<()> {
        if self.labels.len() != rows {
            return Err(GeometryError::ShapeMismatch {
                what: format!("{} labels for {rows} rows", self.labels.len()),
            });
        }
        Ok(())
    }

    /// Per-class sums `S_c = sum_{i in c} x_i` (C x D) and sums of squared norms
    /// `sum_{i in c} ||x_i||^2`, accumulated in f64 in row order within each class.
    pub fn class_sums<F: Real>(&self, x: ArrayView2<F>) -> ClassSums {
        let d = x.ncols();
        let per_class: Vec<(Vec<f64>, f64)> = self
            .members
            .par_iter()
            .map(|rows| {
                let mut sum = vec![0.0f64; d];
                let mut sum_sq = 0.0f64;
                for (r, &i) in rows.iter().enumerate() {
                    crate::rows::fetch_ahead(x, rows, r);
                    let row = x.row(i);
                    let row = crate::rows::contiguous(&row);
                    crate::rows::add_row(&mut sum, &row);
                    sum_sq += crate::rows::sum_of_squares(&row);
                }
                (sum, sum_sq)
            })
            .collect();
        let mut sums = Array2::zeros((self.num_classes(), d));
        let mut sums_sq = Array1::zeros(self.num_classes());
        for (c, (sum, sum_sq)) in per_class.into_iter().enumerate() {
            sums.row_mut(c).assign(&Array1::from(sum));
            sums_sq[c] = sum_sq;
        }
        (sums, sums_sq)
    }
}
