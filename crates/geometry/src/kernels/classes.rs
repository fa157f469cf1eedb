//! Class membership of rows, and per-class sums.

use crate::error::{GeometryError, Result};
use crate::kernels::real::Element;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
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
    ///
    /// Each task owns every `T`-th class (`T` tasks, one per thread) and reads the rows in
    /// order, adding those of its classes: the rows are read from memory once, front to back,
    /// instead of gathered class by class from all over the input. A class's sum is the same
    /// whatever `T`.
    pub fn class_sums<F: Element>(&self, x: ArrayView2<F>) -> ClassSums {
        let (classes, d) = (self.num_classes(), x.ncols());
        let tasks = rayon::current_num_threads().clamp(1, classes.max(1));
        let owned: Vec<(Vec<f64>, Vec<f64>)> = (0..tasks)
            .into_par_iter()
            .map(|task| {
                let mine = (classes - task).div_ceil(tasks);
                let (mut sums, mut sums_sq) = (vec![0.0f64; mine * d], vec![0.0f64; mine]);
                for (i, &label) in self.labels.iter().enumerate() {
                    let label = label as usize;
                    if label % tasks != task {
                        continue;
                    }
                    let slot = label / tasks;
                    let row = x.row(i);
                    let row = crate::kernels::rows::contiguous(&row);
                    crate::kernels::rows::add_row(&mut sums[slot * d..(slot + 1) * d], &row);
                    sums_sq[slot] += crate::kernels::rows::sum_of_squares(&row);
                }
                (sums, sums_sq)
            })
            .collect();
        let mut sums = Array2::zeros((classes, d));
        let mut sums_sq = Array1::zeros(classes);
        for c in 0..classes {
            let ((owned_sums, owned_sq), slot) = (&owned[c % tasks], c / tasks);
            sums.row_mut(c)
                .assign(&ArrayView1::from(&owned_sums[slot * d..(slot + 1) * d]));
            sums_sq[c] = owned_sq[slot];
        }
        (sums, sums_sq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_sums_are_the_row_order_sums_whatever_the_thread_count() {
        let (n, d) = (613, 37);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let x = Array2::from_shape_fn((n, d), |_| {
            (next() >> 11) as f32 / (1u64 << 40) as f32 - 4.0
        });
        for classes in [1usize, 2, 5, 13] {
            let labels: Vec<u32> = (0..n)
                .map(|i| {
                    if i < classes {
                        i as u32
                    } else {
                        (next() % classes as u64) as u32
                    }
                })
                .collect();
            let names = (0..classes).map(|c| c.to_string()).collect();
            let classes = Classes::new(labels, names).unwrap();
            // Each class's rows added one after the other, in row order.
            let mut plain = Array2::<f64>::zeros((classes.num_classes(), d));
            let mut plain_sq = Array1::<f64>::zeros(classes.num_classes());
            for c in 0..classes.num_classes() {
                for &i in classes.members(c) {
                    let row = x.row(i).to_vec();
                    for (s, &v) in plain.row_mut(c).iter_mut().zip(&row) {
                        *s += f64::from(v);
                    }
                    plain_sq[c] += crate::kernels::rows::sum_of_squares(&row);
                }
            }
            for threads in [1, 2, 3, 8] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let (sums, sums_sq) = pool.install(|| classes.class_sums(x.view()));
                let bits = |a: &[f64]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(sums.as_slice().unwrap()),
                    bits(plain.as_slice().unwrap())
                );
                assert_eq!(
                    bits(sums_sq.as_slice().unwrap()),
                    bits(plain_sq.as_slice().unwrap())
                );
            }
        }
    }
}
