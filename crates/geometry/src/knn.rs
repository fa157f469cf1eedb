//! Weighted k-nearest-neighbour accuracy on cosine similarity (the downstream proxy of
//! Wu et al. 2018 / DINO): `k = 20` neighbours vote for their class with weight
//! `exp(sim / 0.07)`. Exact: every query is compared with every reference row in GEMM tiles,
//! never holding an N x N matrix.

use crate::error::{GeometryError, Result};
use crate::figure_data::stratified_rows;
use crate::real::Real;
use crate::tiles::single_threaded_blas;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, Axis, CowArray};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Default number of neighbours.
pub const DEFAULT_K: usize = 20;
/// Default vote temperature.
pub const DEFAULT_TEMPERATURE: f64 = 0.07;
/// Default cap on the number of queries (a seeded subset beyond it).
pub const DEFAULT_MAX_QUERIES: usize = 10_000;

const QUERY_BLOCK: usize = 256;
const REFERENCE_BLOCK: usize = 2048;

/// Which rows are queried against which.
#[derive(Debug, Clone, PartialEq)]
pub enum KnnSplit {
    /// Every row against all the others.
    LeaveOneOut,
    /// Test rows against train rows.
    TrainTest { train: Vec<usize>, test: Vec<usize> },
}

/// Parameters of [`knn_accuracy`].
#[derive(Debug, Clone, PartialEq)]
pub struct KnnOptions {
    /// Neighbours k.
    pub k: usize,
    /// Vote temperature tau: weight `exp(sim / tau)`.
    pub temperature: f64,
    /// At most this many queries (a seeded random subset when there are more).
    pub max_queries: usize,
    /// Seed of that subset.
    pub seed: u64,
}

impl Default for KnnOptions {
    fn default() -> Self {
        KnnOptions {
            k: DEFAULT_K,
            temperature: DEFAULT_TEMPERATURE,
            max_queries: DEFAULT_MAX_QUERIES,
            seed: 0,
        }
    }
}

/// A kNN accuracy with how it was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnAccuracy {
    /// Fraction of queries whose weighted vote is their label.
    pub value: f64,
    /// Neighbours used (k, or fewer when there are fewer references).
    pub k: usize,
    /// Vote temperature.
    pub temperature: f64,
    /// Queries evaluated.
    pub queries: usize,
    /// Queries available (all test rows, or N for leave-one-out).
    pub candidates: usize,
    /// `"leave-one-out"` or `"train/test"`.
    pub split: String,
}

/// The k best `(similarity, reference)` pairs seen so far, best first; ties go to the lower
/// reference index, so the result does not depend on the visiting order.
struct TopK {
    items: Vec<(f64, usize)>,
    k: usize,
}

impl TopK {
    fn offer(&mut self, sim: f64, index: usize) {
        let better = |a: (f64, usize), b: (f64, usize)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
        if self.items.len() == self.k && !better((sim, index), self.items[self.k - 1]) {
            return;
        }
        let at = self
            .items
            .partition_point(|&item| better(item, (sim, index)));
        self.items.insert(at, (sim, index));
        self.items.truncate(self.k);
    }
}

/// Weighted kNN accuracy of unit rows `x` with class `labels` (indices `< num_classes`).
pub fn knn_accuracy<F: Real>(
    x: ArrayView2<F>,
    labels: &[u32],
    num_classes: usize,
    split: &KnnSplit,
    options: &KnnOptions,
) -> Result<KnnAccuracy> {
    if options.k == 0 || !(options.temperature.is_finite() && options.temperature > 0.0) {
        return Err(GeometryError::InvalidParameter {
            name: "k / temperature",
            value: options.temperature,
            reason: "k must be at least 1 and the temperature positive",
        });
    }
    let n = x.nrows();
    let (references, candidates, leave_one_out): (Vec<usize>, Vec<usize>, bool) = match split {
        KnnSplit::LeaveOneOut => ((0..n).collect(), (0..n).collect(), true),
        KnnSplit::TrainTest { train, test } => (train.clone(), test.clone(), false),
    };
    let usable_references = references.len() - usize::from(leave_one_out);
    if candidates.is_empty() || usable_references == 0 {
        return Err(GeometryError::TooFewRows {
            metric: "kNN accuracy (queries and references)",
            needed: 2,
            got: n,
        });
    }
    let queries: Vec<usize> =
        stratified_rows(candidates.len(), None, options.max_queries, options.seed)
            .into_iter()
            .map(|i| candidates[i])
            .collect();
    let k = options.k.min(usable_references);
    // Leave-one-out compares against every row in order: use the rows in place.
    let reference_rows = if leave_one_out {
        CowArray::from(x)
    } else {
        CowArray::from(x.select(Axis(0), &references))
    };
    let query_rows = x.select(Axis(0), &queries);
    single_threaded_blas();
    let correct: usize = queries
        .par_chunks(QUERY_BLOCK)
        .enumerate()
        .map(|(b, block)| {
            let q = query_rows.slice(s![b * QUERY_BLOCK..b * QUERY_BLOCK + block.len(), ..]);
            let mut tops: Vec<TopK> = (0..block.len())
                .map(|_| TopK {
                    items: Vec::with_capacity(k + 1),
                    k,
                })
                .collect();
            let mut sims = Array2::<F>::zeros((block.len(), REFERENCE_BLOCK));
            for start in (0..references.len()).step_by(REFERENCE_BLOCK) {
                let end = (start + REFERENCE_BLOCK).min(references.len());
                let r = reference_rows.slice(s![start..end, ..]);
                let mut out = sims.slice_mut(s![.., ..end - start]);
                general_mat_mul(F::one(), &q, &r.t(), F::zero(), &mut out);
                for (qi, top) in tops.iter_mut().enumerate() {
                    for (j, &sim) in out.row(qi).iter().enumerate() {
                        let reference = references[start + j];
                        if leave_one_out && reference == block[qi] {
                            continue;
                        }
                        top.offer(sim.as_f64(), reference);
                    }
                }
            }
            tops.iter()
                .zip(block)
                .filter(|(top, &query)| {
                    vote(top, labels, num_classes, options.temperature) == labels[query]
                })
                .count()
        })
        .sum();
    Ok(KnnAccuracy {
        value: correct as f64 / queries.len() as f64,
        k,
        temperature: options.temperature,
        queries: queries.len(),
        candidates: candidates.len(),
        split: if leave_one_out {
            "leave-one-out"
        } else {
            "train/test"
        }
        .to_string(),
    })
}

/// Class with the largest `sum exp(sim / tau)` over the neighbours (computed relative to the
/// best similarity); ties go to the lower class index.
fn vote(top: &TopK, labels: &[u32], num_classes: usize, temperature: f64) -> u32 {
    let best = top.items.first().map_or(0.0, |item| item.0);
    let mut weights = vec![0.0f64; num_classes];
    for &(sim, index) in &top.items {
        weights[labels[index] as usize] += ((sim - best) / temperature).exp();
    }
    let mut winner = 0;
    for (c, &w) in weights.iter().enumerate() {
        if w > weights[winner] {
            winner = c;
        }
    }
    winner as u32
}
