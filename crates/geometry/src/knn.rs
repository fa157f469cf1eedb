//! Weighted k-nearest-neighbour accuracy on cosine similarity (the downstream proxy of
//! Wu et al. 2018 / DINO): `k = 20` neighbours vote for their class with weight
//! `exp(sim / 0.07)`. Exact: every query is compared with every reference row in GEMM tiles,
//! never holding an N x N matrix.

use crate::error::{GeometryError, Result};
use crate::figure_data::stratified_rows;
use crate::real::Real;
use crate::rows::contiguous;
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

/// Queries per GEMM block: each block packs every reference block once, so larger blocks
/// spend less of the time packing (256 spent about a fifth of the kNN time in it).
const QUERY_BLOCK: usize = 1024;
/// Reference blocks per task: queries are matched against stripes of this many blocks in
/// parallel.
const STRIPE_BLOCKS: usize = 64;
/// Similarities tested against the floor at once in the scan of a block.
const SCAN_GROUP: usize = 32;
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

/// A neighbour of a query: its cosine similarity, row index and class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Similarity to the query.
    pub sim: f64,
    /// Row index of the reference (global over shards).
    pub index: u64,
    /// Class index of the reference.
    pub label: u32,
}

/// The k best neighbours seen so far, best first; ties go to the lower reference index, so
/// the result does not depend on the visiting order (or on how the references are split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    items: Vec<Neighbour>,
    k: usize,
}

impl TopK {
    /// No neighbour yet, room for `k`.
    pub fn new(k: usize) -> TopK {
        TopK {
            items: Vec::with_capacity(k + 1),
            k,
        }
    }

    fn better(a: &Neighbour, b: &Neighbour) -> bool {
        a.sim > b.sim || (a.sim == b.sim && a.index < b.index)
    }

    fn offer(&mut self, candidate: Neighbour) {
        if self.items.len() == self.k && !Self::better(&candidate, &self.items[self.k - 1]) {
            return;
        }
        let at = self
            .items
            .partition_point(|item| Self::better(item, &candidate));
        self.items.insert(at, candidate);
        self.items.truncate(self.k);
    }

    /// The k-th best similarity once k neighbours are held, else minus infinity: nothing
    /// below it can enter.
    fn floor(&self) -> f64 {
        match self.items.len() == self.k {
            true => self.items[self.k - 1].sim,
            false => f64::NEG_INFINITY,
        }
    }

    /// The best k of both (the top k of the union of their references).
    pub fn merge(&mut self, other: &TopK) {
        for item in &other.items {
            self.offer(*item);
        }
    }
}

/// The references of a nearest-neighbour search: rows with their global indices and classes.
pub(crate) struct References<'a, F> {
    /// The rows (unit rows, standard layout).
    pub rows: ArrayView2<'a, F>,
    /// Global index of row `j`.
    pub index: &'a (dyn Fn(usize) -> u64 + Sync),
    /// Class of row `j`.
    pub label: &'a (dyn Fn(usize) -> u32 + Sync),
}

/// The top `k` references of every query row (cosine = dot product of unit rows), computed in
/// GEMM blocks of 1024 queries x 2048 references; a reference with the query's own global index
/// is skipped (leave-one-out).
pub(crate) fn top_neighbours<F: Real>(
    queries: ArrayView2<F>,
    query_index: &[u64],
    references: &References<F>,
    k: usize,
) -> Vec<TopK> {
    single_threaded_blas();
    let total = references.rows.nrows();
    // Tasks: every block of queries against every stripe of references (a fixed partition:
    // the same whatever the thread count), so that a few queries still keep every thread
    // busy; each query's stripes merge into its top k exactly.
    let stripes = total.div_ceil(STRIPE_BLOCKS * REFERENCE_BLOCK).max(1);
    let query_blocks: Vec<&[u64]> = query_index.chunks(QUERY_BLOCK).collect();
    let tasks: Vec<(usize, usize)> = (0..query_blocks.len())
        .flat_map(|b| (0..stripes).map(move |stripe| (b, stripe)))
        .collect();
    let partial: Vec<Vec<TopK>> = tasks
        .par_iter()
        .map(|&(b, stripe)| {
            let block = query_blocks[b];
            let q = queries.slice(s![b * QUERY_BLOCK..b * QUERY_BLOCK + block.len(), ..]);
            let first = stripe * STRIPE_BLOCKS * REFERENCE_BLOCK;
            let last = (first + STRIPE_BLOCKS * REFERENCE_BLOCK).min(total);
            scan_references(q, block, references, first..last, k)
        })
        .collect();
    let mut partial = partial.into_iter();
    let mut tops = Vec::with_capacity(query_index.len());
    for _ in 0..query_blocks.len() {
        let mut block_tops = partial.next().unwrap_or_default();
        for _ in 1..stripes {
            for (top, other) in block_tops
                .iter_mut()
                .zip(partial.next().unwrap_or_default())
            {
                top.merge(&other);
            }
        }
        tops.extend(block_tops);
    }
    tops
}

/// The top `k` among references `range` of each query row of `q` (global indices `block`),
/// from GEMM blocks of [`REFERENCE_BLOCK`] references.
fn scan_references<F: Real>(
    q: ArrayView2<F>,
    block: &[u64],
    references: &References<F>,
    range: std::ops::Range<usize>,
    k: usize,
) -> Vec<TopK> {
    let mut tops: Vec<TopK> = (0..block.len()).map(|_| TopK::new(k)).collect();
    let mut sims = Array2::<F>::zeros((block.len(), REFERENCE_BLOCK.min(range.len())));
    for start in range.clone().step_by(REFERENCE_BLOCK) {
        let end = (start + REFERENCE_BLOCK).min(range.end);
        let r = references.rows.slice(s![start..end, ..]);
        let mut out = sims.slice_mut(s![.., ..end - start]);
        general_mat_mul(F::one(), &q, &r.t(), F::zero(), &mut out);
        for (qi, top) in tops.iter_mut().enumerate() {
            // Only a similarity at or above the current k-th best can enter: a plain
            // comparison rejects the rest (the ties are settled by `offer`), first for
            // whole groups of SCAN_GROUP similarities at once (the floor only rises, so a
            // group below it at its start holds no candidate).
            let mut floor = top.floor();
            let row = out.row(qi);
            let row = contiguous(&row);
            for (g, group) in row.chunks(SCAN_GROUP).enumerate() {
                // The floor is a similarity of the element type, or -inf: exact in F.
                let floor_f = F::from_f64(floor);
                if !group.iter().fold(false, |hit, &sim| hit | (sim >= floor_f)) {
                    continue;
                }
                for (offset, &sim) in group.iter().enumerate() {
                    let sim = sim.as_f64();
                    if sim < floor {
                        continue;
                    }
                    let j = g * SCAN_GROUP + offset;
                    let index = (references.index)(start + j);
                    if index == block[qi] {
                        continue;
                    }
                    top.offer(Neighbour {
                        sim,
                        index,
                        label: (references.label)(start + j),
                    });
                    floor = top.floor();
                }
            }
        }
    }
    tops
}

/// Weighted kNN accuracy of unit rows `x` with class `labels` (indices `< num_classes`).
pub fn knn_accuracy<F: Real>(
    x: ArrayView2<F>,
    labels: &[u32],
    num_classes: usize,
    split: &KnnSplit,
    options: &KnnOptions,
) -> Result<KnnAccuracy> {
    check_options(options)?;
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
    // Leave-one-out compares against every row in order: use the rows in place. With a split
    // no query is a reference, so no index is skipped.
    let reference_rows = if leave_one_out {
        CowArray::from(x)
    } else {
        CowArray::from(x.select(Axis(0), &references))
    };
    let query_rows = x.select(Axis(0), &queries);
    let query_index: Vec<u64> = queries.iter().map(|&q| q as u64).collect();
    let index = |j: usize| references[j] as u64;
    let label = |j: usize| labels[references[j]];
    let tops = top_neighbours(
        query_rows.view(),
        &query_index,
        &References {
            rows: reference_rows.view(),
            index: &index,
            label: &label,
        },
        k,
    );
    let correct = tops
        .iter()
        .zip(&queries)
        .filter(|(top, &query)| vote(top, num_classes, options.temperature) == labels[query])
        .count();
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

/// k at least 1 and a positive finite temperature.
pub(crate) fn check_options(options: &KnnOptions) -> Result<()> {
    if options.k == 0 || !(options.temperature.is_finite() && options.temperature > 0.0) {
        return Err(GeometryError::InvalidParameter {
            name: "k / temperature",
            value: options.temperature,
            reason: "k must be at least 1 and the temperature positive",
        });
    }
    Ok(())
}

/// Class with the largest `sum exp(sim / tau)` over the neighbours (computed relative to the
/// best similarity); ties go to the lower class index.
pub(crate) fn vote(top: &TopK, num_classes: usize, temperature: f64) -> u32 {
    let best = top.items.first().map_or(0.0, |item| item.sim);
    let mut weights = vec![0.0f64; num_classes];
    for item in &top.items {
        weights[item.label as usize] += ((item.sim - best) / temperature).exp();
    }
    let mut winner = 0;
    for (c, &w) in weights.iter().enumerate() {
        if w > weights[winner] {
            winner = c;
        }
    }
    winner as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows on a circle in 3-D with many exact ties (angles repeat), labels by position.
    fn rows(n: usize) -> Array2<f32> {
        Array2::from_shape_fn((n, 3), |(i, j)| {
            let angle = (i % 997) as f32 * 0.0063;
            match j {
                0 => angle.cos(),
                1 => angle.sin(),
                _ => 0.25,
            }
        })
    }

    #[test]
    fn stripes_of_references_merge_into_the_top_k_of_one_scan() {
        // More references than two stripes, so that queries meet three stripes.
        let n = 2 * STRIPE_BLOCKS * REFERENCE_BLOCK + 1234;
        let x = rows(n);
        let index = |j: usize| j as u64;
        let label = |j: usize| (j % 7) as u32;
        let references = References {
            rows: x.view(),
            index: &index,
            label: &label,
        };
        let query_index: Vec<u64> = (0..1100u64).map(|q| q * 211 % n as u64).collect();
        let queries = Array2::from_shape_fn((query_index.len(), 3), |(q, j)| {
            x[[query_index[q] as usize, j]]
        });
        let striped = top_neighbours(queries.view(), &query_index, &references, 20);
        for (b, block) in query_index.chunks(QUERY_BLOCK).enumerate() {
            let q = queries.slice(s![b * QUERY_BLOCK..b * QUERY_BLOCK + block.len(), ..]);
            let whole = scan_references(q, block, &references, 0..n, 20);
            assert_eq!(
                whole,
                striped[b * QUERY_BLOCK..b * QUERY_BLOCK + block.len()]
            );
        }
    }
}
