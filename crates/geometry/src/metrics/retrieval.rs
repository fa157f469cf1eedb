//! Exact cross-modal retrieval between two row sets (image and text embeddings, say) paired by
//! a map, and the contrastive objectives over all pairs, in GEMM tiles: no N x N matrix.
//!
//! Each query's rank is that of its best positive: `rank = 1 + #{negatives j : s_j > s+}`,
//! `s+` the largest similarity to one of its positives. Ties between a negative and `s+` go to
//! the positive (the optimistic rank); the number of queries with such a tie is reported. The
//! similarities are screened by a
//! GEMM in the rows' precision and every one within the screen's proven margin of `s+` is
//! taken again exactly (`sum_k q_k x_k` in f64), so the ranks are those of the exact
//! similarities. The counts of gallery blocks add, so they merge across gallery shards.

use crate::error::{GeometryError, Result};
use crate::kernels::logsumexp::{log_add, softplus};
use crate::kernels::rows::row_norms;
use crate::kernels::sampling::stratified_rows;
use crate::kernels::tiles::single_threaded_blas;
use crate::metrics::knn::{exact_similarity, KnnScreen, Margin};
use crate::metrics::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Queries per parallel task and gallery rows per GEMM tile.
const QUERY_BLOCK: usize = 256;
const GALLERY_BLOCK: usize = 1024;

/// Which rows of one set pair with which of the other: `of_b[j]` is the row of set A that
/// row j of set B belongs to (five captions per image: five rows of B with the same row of A).
#[derive(Debug, Clone, PartialEq)]
pub struct PairMap {
    /// For each row of B, its row of A.
    pub of_b: Vec<usize>,
    /// Rows of A.
    pub a_rows: usize,
}

impl PairMap {
    /// Row i of A with row i of B.
    pub fn identity(n: usize) -> PairMap {
        PairMap {
            of_b: (0..n).collect(),
            a_rows: n,
        }
    }

    /// A map checked against the sets' sizes: every entry a row of A, and every row of A
    /// paired with at least one row of B (else it has no positive).
    pub fn new(of_b: Vec<usize>, a_rows: usize) -> Result<PairMap> {
        if let Some((j, &i)) = of_b.iter().enumerate().find(|(_, &i)| i >= a_rows) {
            return Err(GeometryError::ShapeMismatch {
                what: format!("pair map: row {j} of the second set names row {i} of the first, which has {a_rows} rows"),
            });
        }
        let mut paired = vec![false; a_rows];
        of_b.iter().for_each(|&i| paired[i] = true);
        if let Some(i) = paired.iter().position(|&p| !p) {
            return Err(GeometryError::ShapeMismatch {
                what: format!("pair map: row {i} of the first set has no row of the second set"),
            });
        }
        Ok(PairMap { of_b, a_rows })
    }

    /// Whether every row of A has exactly one row of B, the i-th (1:1 pairs in order).
    pub fn is_identity(&self) -> bool {
        self.of_b.len() == self.a_rows && self.of_b.iter().enumerate().all(|(j, &i)| i == j)
    }

    /// The rows of B of each row of A.
    fn of_a(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.a_rows];
        for (j, &i) in self.of_b.iter().enumerate() {
            out[i].push(j);
        }
        out
    }
}

/// The ranks of one retrieval direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranks {
    /// Each query's optimistic rank (1 = its best positive first).
    pub ranks: Vec<u64>,
    /// Queries with a negative exactly as similar as their best positive.
    pub tied_queries: usize,
}

/// The largest k of [`RetrievalSummary::recall_curve`].
pub const RECALL_CURVE_K: usize = 100;

/// Summary of one retrieval direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalSummary {
    /// Queries.
    pub queries: usize,
    /// Recall at 1, 5 and 10: the share of queries whose best positive ranks within k.
    pub recall_at: [f64; 3],
    /// Mean rank.
    pub mean_rank: f64,
    /// `floor(median(rank - 1)) + 1`, as open_clip reports it.
    pub median_rank: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
    /// Queries with a negative tied with their best positive.
    pub tied_queries: usize,
    /// Recall at k for k = 1, ..., [`RECALL_CURVE_K`] (the R@k curve).
    #[serde(default)]
    pub recall_curve: Vec<f64>,
}

/// The k of [`RetrievalSummary::recall_at`].
pub const RECALL_AT: [u64; 3] = [1, 5, 10];

impl Ranks {
    /// The summary of the ranks.
    pub fn summary(&self) -> RetrievalSummary {
        let q = self.ranks.len().max(1) as f64;
        let recall = |k: u64| self.ranks.iter().filter(|&&r| r <= k).count() as f64 / q;
        let mut sorted = self.ranks.clone();
        sorted.sort_unstable();
        let median = match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => (sorted[n / 2] - 1) as f64,
            n => ((sorted[n / 2 - 1] + sorted[n / 2]) as f64 - 2.0) / 2.0,
        };
        RetrievalSummary {
            queries: self.ranks.len(),
            recall_at: RECALL_AT.map(recall),
            mean_rank: self.ranks.iter().sum::<u64>() as f64 / q,
            median_rank: median.floor() + 1.0,
            mrr: self.ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / q,
            tied_queries: self.tied_queries,
            recall_curve: (1..=RECALL_CURVE_K as u64)
                .map(|k| sorted.partition_point(|&r| r <= k) as f64 / q)
                .collect(),
        }
    }
}

/// What one pass of queries against a gallery gives: ranks, and per query
/// `log sum_j exp(s_j / tau)` over the whole gallery (for InfoNCE), and the SigLIP terms.
struct Pass {
    ranks: Ranks,
    log_partition: Vec<f64>,
    siglip: f64,
}

/// The objectives' parameters: InfoNCE's temperature and SigLIP's scale and bias.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveParameters {
    /// `tau` of `exp(s / tau)` (CLIP's learned `1 / logit_scale`; 0.01 at its cap of 100).
    pub temperature: f64,
    /// SigLIP's `t` (its learned `exp(t')`; 10 at initialisation).
    pub scale: f64,
    /// SigLIP's `b` (-10 at initialisation).
    pub bias: f64,
}

impl Default for ObjectiveParameters {
    fn default() -> Self {
        ObjectiveParameters {
            temperature: 0.01,
            scale: 10.0,
            bias: -10.0,
        }
    }
}

/// Retrieval both ways and the objectives over all pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Rows of A as queries against B (image to text).
    pub a_to_b: Ranks,
    /// Rows of B as queries against A (text to image).
    pub b_to_a: Ranks,
    /// CLIP's symmetric InfoNCE over all pairs (1:1 pairs only).
    pub info_nce: Option<f64>,
    /// SigLIP's sigmoid loss over all pairs (1:1 pairs only).
    pub siglip: Option<f64>,
    /// The parameters used.
    pub parameters: ObjectiveParameters,
}

/// One query's tallies over the gallery blocks seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueryCount {
    /// Negatives strictly more similar than the best positive.
    greater: u64,
    /// Negatives exactly as similar.
    ties: u64,
    /// `log sum_j exp(s_j / tau)`.
    log_partition: f64,
}

/// The rows of one gallery block: global row `offset + c` for column `c`.
struct GalleryBlock<'a, F> {
    rows: ArrayView2<'a, F>,
    offset: usize,
}

/// The queries of one block: global row `offset + q` for row `q`, each with its best
/// positive's exact similarity `tops[q]` and its positives' global gallery rows.
struct QueryBlock<'a, F> {
    rows: ArrayView2<'a, F>,
    offset: usize,
    tops: &'a [f64],
    positives: &'a (dyn Fn(usize) -> Vec<usize> + Sync),
}

/// Every query of `queries` against every row of `gallery`, in tiles: each query's tallies,
/// and with `siglip` the sum of `softplus(-z (t s + b))` (z = +1 for the 1:1 positive, the
/// gallery row of the query's own global index, -1 otherwise) over the pairs. The tallies of
/// gallery blocks add (log partitions by `log_add`), so a gallery may come in shards.
fn tally<F: Real>(
    queries: &QueryBlock<F>,
    gallery: &GalleryBlock<F>,
    parameters: &ObjectiveParameters,
    siglip: bool,
) -> (Vec<QueryCount>, f64) {
    single_threaded_blas();
    let (nq, ng, d) = (
        queries.rows.nrows(),
        gallery.rows.nrows(),
        queries.rows.ncols(),
    );
    let margin = Margin::new::<F>(KnnScreen::Gemm, d);
    let inverse_temperature = 1.0 / parameters.temperature;
    let query_norms = row_norms(queries.rows);
    let gallery_norms = row_norms(gallery.rows);
    let widest = gallery_norms.iter().cloned().fold(0.0f64, f64::max);
    let exact = |q: usize, c: usize| {
        exact_similarity(
            crate::kernels::rows::contiguous(&queries.rows.row(q)).as_ref(),
            crate::kernels::rows::contiguous(&gallery.rows.row(c)).as_ref(),
        )
    };
    let blocks: Vec<(Vec<QueryCount>, f64)> = (0..nq.div_ceil(QUERY_BLOCK))
        .into_par_iter()
        .map(|b| {
            let (start, end) = (b * QUERY_BLOCK, ((b + 1) * QUERY_BLOCK).min(nq));
            let rows = queries.rows.slice(s![start..end, ..]);
            let mine: Vec<Vec<usize>> = (start..end).map(|q| (queries.positives)(q)).collect();
            let margins: Vec<f64> = (start..end)
                .map(|q| margin.of(query_norms[q], widest))
                .collect();
            let empty = QueryCount {
                greater: 0,
                ties: 0,
                log_partition: f64::NEG_INFINITY,
            };
            let mut counts = vec![empty; end - start];
            let mut loss = 0.0f64;
            let mut tile = Array2::<F>::zeros((end - start, GALLERY_BLOCK.min(ng.max(1))));
            for g in (0..ng).step_by(GALLERY_BLOCK) {
                let g_end = (g + GALLERY_BLOCK).min(ng);
                let refs = gallery.rows.slice(s![g..g_end, ..]);
                let mut out = tile.slice_mut(s![.., ..g_end - g]);
                general_mat_mul(F::one(), &rows, &refs.t(), F::zero(), &mut out);
                // The global gallery rows of this tile.
                let (first, last) = (gallery.offset + g, gallery.offset + g_end);
                for (r, row) in out.outer_iter().enumerate() {
                    let q = start + r;
                    let top = queries.tops[q];
                    let count = &mut counts[r];
                    let row = row.as_slice().expect("a tile row is contiguous");
                    let top_screened =
                        row.iter()
                            .copied()
                            .fold(F::neg_infinity(), |m, v| if v > m { v } else { m });
                    let shift = top_screened.as_f64() * inverse_temperature;
                    let sum = F::sum_exp_below(row, top_screened, inverse_temperature);
                    count.log_partition = log_add(count.log_partition, shift + sum.ln());
                    if siglip {
                        // Every pair as a negative, then the positive (1:1) corrected.
                        let logit = |v: f64| parameters.scale * v + parameters.bias;
                        loss += F::sum_softplus(row, parameters.scale, parameters.bias);
                        let own = queries.offset + q;
                        if (first..last).contains(&own) {
                            let x = logit(row[own - first].as_f64());
                            loss += softplus(-x) - softplus(x);
                        }
                    }
                    // Ranks: a positive's screened value is at most `top + margin`, so it is
                    // never counted greater; one in the band is rescored and skipped.
                    let (high, low) = (top + margins[r], top - margins[r]);
                    for (c, v) in row.iter().enumerate() {
                        let screened = v.as_f64();
                        if screened < low {
                            continue;
                        }
                        if screened > high {
                            count.greater += 1;
                            continue;
                        }
                        if mine[r].contains(&(first + c)) {
                            continue;
                        }
                        let s = exact(q, g + c);
                        if s > top {
                            count.greater += 1;
                        } else if s == top {
                            count.ties += 1;
                        }
                    }
                }
            }
            (counts, loss)
        })
        .collect();
    let mut counts = Vec::with_capacity(nq);
    let mut loss = 0.0;
    for (block, partial) in blocks {
        counts.extend(block);
        loss += partial;
    }
    (counts, loss)
}

impl QueryCount {
    /// Add the tallies of another gallery block.
    fn add(&mut self, other: &QueryCount) {
        self.greater += other.greater;
        self.ties += other.ties;
        self.log_partition = log_add(self.log_partition, other.log_partition);
    }
}

/// The pass of queries whose tallies are complete.
fn finished(counts: Vec<QueryCount>, siglip: f64) -> Pass {
    let ranks = counts.iter().map(|c| 1 + c.greater).collect();
    let tied = counts.iter().filter(|c| c.ties > 0).count();
    Pass {
        ranks: Ranks {
            ranks,
            tied_queries: tied,
        },
        log_partition: counts.iter().map(|c| c.log_partition).collect(),
        siglip,
    }
}

/// One direction: every query against every gallery row, in tiles. `positives(q)` lists the
/// gallery rows that pair with query q; `siglip` adds SigLIP's terms (1:1 pairs).
fn pass<F: Real>(
    queries: ArrayView2<F>,
    gallery: ArrayView2<F>,
    positives: &(dyn Fn(usize) -> Vec<usize> + Sync),
    parameters: &ObjectiveParameters,
    siglip: bool,
) -> Pass {
    let tops: Vec<f64> = (0..queries.nrows())
        .into_par_iter()
        .map(|q| {
            positives(q)
                .iter()
                .map(|&j| {
                    exact_similarity(
                        crate::kernels::rows::contiguous(&queries.row(q)).as_ref(),
                        crate::kernels::rows::contiguous(&gallery.row(j)).as_ref(),
                    )
                })
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    let block = QueryBlock {
        rows: queries,
        offset: 0,
        tops: &tops,
        positives,
    };
    let gallery = GalleryBlock {
        rows: gallery,
        offset: 0,
    };
    let (counts, loss) = tally(&block, &gallery, parameters, siglip);
    finished(counts, loss)
}

/// Retrieval from A to B and from B to A under `map`, and with 1:1 pairs CLIP's symmetric
/// InfoNCE `(1/2N) sum_i [(-s_ii / tau + log sum_j e^(s_ij / tau)) + (-s_ii / tau + log sum_j
/// e^(s_ji / tau))]` and SigLIP's `(1/N) sum_i sum_j softplus(-z_ij (t s_ij + b))` (`z_ii = 1`,
/// else -1) over all pairs, from the same tiles (the losses from the screened similarities,
/// the positives' `s_ii` exact).
pub fn retrieval<F: Real>(
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    map: &PairMap,
    parameters: &ObjectiveParameters,
) -> Result<Retrieval> {
    retrieval_of_queries(a, b, map, parameters, None)
}

/// Which rows are queries: every row, or a seeded subset of at most `rows` of each set (the
/// gallery is always every row of the other set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySubset {
    /// Queries of each set, at most.
    pub rows: usize,
    /// The seed of the draw (the second set's draw uses `seed ^ 1`).
    pub seed: u64,
}

impl QuerySubset {
    /// The query rows of a set of `n` rows (`which`: 0 or 1), `None` for every row.
    pub fn of(subset: Option<&QuerySubset>, n: usize, which: u64) -> Option<Vec<usize>> {
        subset
            .filter(|s| s.rows < n)
            .map(|s| stratified_rows(n, None, s.rows, s.seed ^ which))
    }
}

/// [`retrieval`] with the queries of each direction a seeded subset (`queries`), ranked
/// exactly against every row of the other set; the objectives need every query and are left
/// out for a subset.
pub fn retrieval_of_queries<F: Real>(
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    map: &PairMap,
    parameters: &ObjectiveParameters,
    queries: Option<&QuerySubset>,
) -> Result<Retrieval> {
    if a.ncols() != b.ncols() {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "the two sets have {} and {} dimensions",
                a.ncols(),
                b.ncols()
            ),
        });
    }
    if map.a_rows != a.nrows() || map.of_b.len() != b.nrows() {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "pair map for {} x {} rows, sets of {} and {} rows",
                map.a_rows,
                map.of_b.len(),
                a.nrows(),
                b.nrows()
            ),
        });
    }
    if !(parameters.temperature.is_finite() && parameters.temperature > 0.0) {
        return Err(GeometryError::InvalidParameter {
            name: "temperature",
            value: parameters.temperature,
            reason: "must be positive",
        });
    }
    let (subset_a, subset_b) = (
        QuerySubset::of(queries, a.nrows(), 0),
        QuerySubset::of(queries, b.nrows(), 1),
    );
    let one_to_one = map.is_identity() && subset_a.is_none() && subset_b.is_none();
    let of_a = map.of_a();
    let forward = match &subset_a {
        None => pass(a, b, &|i: usize| of_a[i].clone(), parameters, one_to_one),
        Some(rows) => {
            let chosen = a.select(Axis(0), rows);
            pass(
                chosen.view(),
                b,
                &|q: usize| of_a[rows[q]].clone(),
                parameters,
                false,
            )
        }
    };
    let backward = match &subset_b {
        None => pass(b, a, &|j: usize| vec![map.of_b[j]], parameters, false),
        Some(rows) => {
            let chosen = b.select(Axis(0), rows);
            pass(
                chosen.view(),
                a,
                &|q: usize| vec![map.of_b[rows[q]]],
                parameters,
                false,
            )
        }
    };
    let positive_sum = match one_to_one {
        true => Some(
            (0..a.nrows())
                .map(|i| {
                    exact_similarity(
                        crate::kernels::rows::contiguous(&a.row(i)).as_ref(),
                        crate::kernels::rows::contiguous(&b.row(i)).as_ref(),
                    )
                })
                .sum::<f64>(),
        ),
        false => None,
    };
    Ok(both_ways(forward, backward, positive_sum, parameters))
}

/// The retrieval of both directions' passes; with 1:1 pairs (`positive_sum`, the sum of the
/// matched pairs' similarities, given) the objectives: InfoNCE
/// `(sum_i lse_i(A->B) + sum_i lse_i(B->A) - 2 sum_i s_ii / tau) / 2N` and SigLIP's sum over N.
fn both_ways(
    forward: Pass,
    backward: Pass,
    positive_sum: Option<f64>,
    parameters: &ObjectiveParameters,
) -> Retrieval {
    let (info_nce, siglip) = match positive_sum {
        Some(sum) => {
            let n = forward.ranks.ranks.len() as f64;
            let partitions: f64 = forward.log_partition.iter().sum::<f64>()
                + backward.log_partition.iter().sum::<f64>();
            (
                Some((partitions - 2.0 * (sum / parameters.temperature)) / (2.0 * n)),
                Some(forward.siglip / n),
            )
        }
        None => (None, None),
    };
    Retrieval {
        a_to_b: forward.ranks,
        b_to_a: backward.ranks,
        info_nce,
        siglip,
        parameters: *parameters,
    }
}

/// Add to `totals` the tallies of the 1:1 queries `(rows, start, tops)` (global rows from
/// `start`, each paired with the gallery row of its own global index) against the gallery
/// block `(rows, offset)`; returns SigLIP's partial sum (with `siglip`).
fn add_block<F: Real>(
    totals: &mut [QueryCount],
    (queries, start, tops): (ArrayView2<F>, usize, &[f64]),
    (gallery, offset): (ArrayView2<F>, usize),
    parameters: &ObjectiveParameters,
    siglip: bool,
) -> f64 {
    let own = move |q: usize| vec![start + q];
    let block = QueryBlock {
        rows: queries,
        offset: start,
        tops,
        positives: &own,
    };
    let gallery = GalleryBlock {
        rows: gallery,
        offset,
    };
    let (counts, loss) = tally(&block, &gallery, parameters, siglip);
    for (total, part) in totals.iter_mut().zip(&counts) {
        total.add(part);
    }
    loss
}

/// The tallies of query shard `k` of A against gallery shard `l` of B (`forward`) and of B's
/// shard `l` against A's shard `k` (`backward`), 1:1 pairs, with SigLIP's partial sum: one task
/// of a sharded retrieval ([`shard_tally`]), merged by [`merged_retrieval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardTally {
    /// The query shard of A.
    pub k: usize,
    /// The gallery shard of B.
    pub l: usize,
    forward: Vec<QueryCount>,
    backward: Vec<QueryCount>,
    siglip: f64,
}

/// Row offsets of shards of `shard_rows` rows.
pub fn shard_offsets(shard_rows: &[usize]) -> Vec<usize> {
    shard_rows
        .iter()
        .scan(0, |at, &n| {
            let start = *at;
            *at += n;
            Some(start)
        })
        .collect()
}

/// The tallies of shard `k` of A (`a`, unit rows) and shard `l` of B (`b`) of sets whose
/// shards have `shard_rows` rows, `tops` every row's matched similarity (both ways the same).
pub fn shard_tally<F: Real>(
    (k, a): (usize, ArrayView2<F>),
    (l, b): (usize, ArrayView2<F>),
    shard_rows: &[usize],
    tops: &[f64],
    parameters: &ObjectiveParameters,
) -> Result<ShardTally> {
    let offsets = shard_offsets(shard_rows);
    let (Some(&start_k), Some(&start_l)) = (offsets.get(k), offsets.get(l)) else {
        return Err(GeometryError::ShapeMismatch {
            what: format!("shards {k} and {l} of {} shards", shard_rows.len()),
        });
    };
    for (shard, rows) in [(k, a.nrows()), (l, b.nrows())] {
        if rows != shard_rows[shard] {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "shard {shard} has {rows} rows, planned {}",
                    shard_rows[shard]
                ),
            });
        }
    }
    if a.ncols() != b.ncols() || tops.len() != shard_rows.iter().sum::<usize>() {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "shards of {} and {} dimensions, {} matched similarities",
                a.ncols(),
                b.ncols(),
                tops.len()
            ),
        });
    }
    let empty = QueryCount {
        greater: 0,
        ties: 0,
        log_partition: f64::NEG_INFINITY,
    };
    let (mut forward, mut backward) = (vec![empty; a.nrows()], vec![empty; b.nrows()]);
    let siglip = add_block(
        &mut forward,
        (a, start_k, &tops[start_k..start_k + a.nrows()]),
        (b, start_l),
        parameters,
        true,
    );
    add_block(
        &mut backward,
        (b, start_l, &tops[start_l..start_l + b.nrows()]),
        (a, start_k),
        parameters,
        false,
    );
    Ok(ShardTally {
        k,
        l,
        forward,
        backward,
        siglip,
    })
}

/// The retrieval both ways of sets with shards of `shard_rows` rows from every shard pair's
/// tallies (any order: they are merged in `(k, l)` order, so the result does not depend on the
/// order the tasks finished in) and every row's matched similarity `tops`.
pub fn merged_retrieval(
    shard_rows: &[usize],
    tops: &[f64],
    mut tallies: Vec<ShardTally>,
    parameters: &ObjectiveParameters,
) -> Result<Retrieval> {
    let s = shard_rows.len();
    tallies.sort_by_key(|t| (t.k, t.l));
    let expected = (0..s).flat_map(|k| (0..s).map(move |l| (k, l)));
    if tallies.len() != s * s || !tallies.iter().map(|t| (t.k, t.l)).eq(expected) {
        return Err(GeometryError::InvalidState {
            what: format!(
                "retrieval of {s} shards needs one tally of every shard pair, got {}",
                tallies.len()
            ),
        });
    }
    let offsets = shard_offsets(shard_rows);
    let total: usize = shard_rows.iter().sum();
    let empty = QueryCount {
        greater: 0,
        ties: 0,
        log_partition: f64::NEG_INFINITY,
    };
    let (mut forward, mut backward) = (vec![empty; total], vec![empty; total]);
    let mut siglip = 0.0;
    for t in &tallies {
        let (rows_k, rows_l) = (shard_rows[t.k], shard_rows[t.l]);
        if t.forward.len() != rows_k || t.backward.len() != rows_l {
            return Err(GeometryError::InvalidState {
                what: format!(
                    "the tally of shards {} and {} has other row counts",
                    t.k, t.l
                ),
            });
        }
        for (sum, part) in forward[offsets[t.k]..].iter_mut().zip(&t.forward) {
            sum.add(part);
        }
        for (sum, part) in backward[offsets[t.l]..].iter_mut().zip(&t.backward) {
            sum.add(part);
        }
        siglip += t.siglip;
    }
    Ok(both_ways(
        finished(forward, siglip),
        finished(backward, 0.0),
        Some(tops.iter().sum::<f64>()),
        parameters,
    ))
}

/// The exact similarity of row i of `a` and row i of `b`, for every row.
pub fn matched_similarities<F: Real>(a: ArrayView2<F>, b: ArrayView2<F>) -> Vec<f64> {
    (0..a.nrows().min(b.nrows()))
        .into_par_iter()
        .map(|i| {
            exact_similarity(
                crate::kernels::rows::contiguous(&a.row(i)).as_ref(),
                crate::kernels::rows::contiguous(&b.row(i)).as_ref(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    fn unit(x: Array2<f64>) -> Array2<f64> {
        let mut x = x;
        for mut row in x.rows_mut() {
            let n = row.dot(&row).sqrt();
            row /= n;
        }
        x
    }

    /// Ranks written out over the full similarity matrix.
    fn plain_ranks(s: &Array2<f64>, positives: &dyn Fn(usize) -> Vec<usize>) -> Vec<u64> {
        (0..s.nrows())
            .map(|q| {
                let mine = positives(q);
                let top = mine
                    .iter()
                    .map(|&j| s[[q, j]])
                    .fold(f64::NEG_INFINITY, f64::max);
                1 + (0..s.ncols())
                    .filter(|j| !mine.contains(j) && s[[q, *j]] > top)
                    .count() as u64
            })
            .collect()
    }

    #[test]
    fn ranks_and_losses_equal_the_full_matrix() {
        let n = 700;
        let a = unit(pseudo_random(n, 24, 1));
        let b = unit(&a + &(pseudo_random(n, 24, 2) * 0.8));
        let parameters = ObjectiveParameters {
            temperature: 0.07,
            scale: 10.0,
            bias: -10.0,
        };
        let got = retrieval(a.view(), b.view(), &PairMap::identity(n), &parameters).unwrap();
        let s = a.dot(&b.t());
        assert_eq!(got.a_to_b.ranks, plain_ranks(&s, &|q| vec![q]));
        assert_eq!(
            got.b_to_a.ranks,
            plain_ranks(&s.t().to_owned(), &|q| vec![q])
        );
        let lse = |row: ndarray::ArrayView1<f64>| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        };
        let logits = &s / 0.07;
        let mut info = 0.0;
        for i in 0..n {
            info += lse(logits.row(i)) - logits[[i, i]];
            info += lse(logits.column(i)) - logits[[i, i]];
        }
        let info = info / (2.0 * n as f64);
        assert!((got.info_nce.unwrap() - info).abs() < 1e-10 * info.abs());
        let mut sig = 0.0;
        for ((i, j), v) in s.indexed_iter() {
            let z = if i == j { 1.0 } else { -1.0 };
            sig += (1.0 + (-z * (10.0 * v - 10.0)).exp()).ln();
        }
        let sig = sig / n as f64;
        assert!((got.siglip.unwrap() - sig).abs() < 1e-10 * sig);
        let summary = got.a_to_b.summary();
        let r1 = got.a_to_b.ranks.iter().filter(|&&r| r == 1).count() as f64 / n as f64;
        assert_eq!(summary.recall_at[0], r1);
    }

    #[test]
    fn several_captions_per_image_rank_the_best_one() {
        let (images, captions) = (60, 5);
        let a = unit(pseudo_random(images, 16, 3));
        let of_b: Vec<usize> = (0..images * captions).map(|j| j / captions).collect();
        let b = unit(Array2::from_shape_fn((images * captions, 16), |(j, k)| {
            a[[j / captions, k]] + 0.9 * pseudo_random(images * captions, 16, 4)[[j, k]]
        }));
        let map = PairMap::new(of_b.clone(), images).unwrap();
        let got = retrieval(a.view(), b.view(), &map, &ObjectiveParameters::default()).unwrap();
        let s = a.dot(&b.t());
        let of_a = map.of_a();
        assert_eq!(got.a_to_b.ranks, plain_ranks(&s, &|q| of_a[q].clone()));
        assert_eq!(
            got.b_to_a.ranks,
            plain_ranks(&s.t().to_owned(), &|q| vec![of_b[q]])
        );
        assert_eq!(got.info_nce, None);
    }

    #[test]
    fn ties_go_to_the_positive_and_are_counted() {
        // Duplicate gallery rows: the positive's twin ties with it.
        let a = unit(pseudo_random(10, 8, 5));
        let mut b = a.clone();
        b.row_mut(3).assign(&a.row(2));
        let got = retrieval(
            a.view(),
            b.view(),
            &PairMap::identity(10),
            &ObjectiveParameters::default(),
        )
        .unwrap();
        assert_eq!(got.a_to_b.ranks[2], 1);
        assert!(got.a_to_b.tied_queries >= 1);
    }

    #[test]
    fn f32_rows_rank_as_their_exact_similarities() {
        let n = 400;
        let a = unit(pseudo_random(n, 64, 6));
        let b = unit(&a + &(pseudo_random(n, 64, 7) * 2.0));
        let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
        let got = retrieval(
            a32.view(),
            b32.view(),
            &PairMap::identity(n),
            &Default::default(),
        )
        .unwrap();
        let (a64, b64) = (a32.mapv(|v| v as f64), b32.mapv(|v| v as f64));
        let s = a64.dot(&b64.t());
        assert_eq!(got.a_to_b.ranks, plain_ranks(&s, &|q| vec![q]));
    }

    #[test]
    fn softplus_equals_its_definition() {
        for k in -4000..4000 {
            let x = k as f64 / 100.0;
            let want = match x > 0.0 {
                true => x + (-x).exp().ln_1p(),
                false => x.exp().ln_1p(),
            };
            assert!((softplus(x) - want).abs() <= 4e-16 * want.abs(), "{x}");
        }
    }

    #[test]
    fn bad_maps_are_errors() {
        assert!(PairMap::new(vec![0, 5], 2).is_err());
        assert!(PairMap::new(vec![0, 0], 2).is_err());
        assert!(PairMap::new(vec![1, 0], 2).is_ok());
    }

    /// A seeded query subset: its queries' exact ranks against every gallery row, equal to the
    /// brute force of those rows; no objectives; every row when the subset is not smaller.
    #[test]
    fn a_query_subset_ranks_its_rows_exactly() {
        let (n, d) = (90, 6);
        let a = crate::normalize_rows(pseudo_random(n, d, 31).view()).unwrap();
        let noise = pseudo_random(n, d, 32);
        let b = crate::normalize_rows((&a + &(noise * 0.9)).view()).unwrap();
        let map = PairMap::identity(n);
        let parameters = ObjectiveParameters::default();
        let subset = QuerySubset { rows: 25, seed: 7 };
        let got =
            retrieval_of_queries(a.view(), b.view(), &map, &parameters, Some(&subset)).unwrap();
        assert_eq!(got.info_nce, None);
        let rank = |x: &Array2<f64>, y: &Array2<f64>, q: usize| {
            let s = |j: usize| x.row(q).dot(&y.row(j));
            1 + (0..n).filter(|&j| j != q && s(j) > s(q)).count() as u64
        };
        let rows_a = stratified_rows(n, None, 25, 7);
        let rows_b = stratified_rows(n, None, 25, 7 ^ 1);
        let want_a: Vec<u64> = rows_a.iter().map(|&q| rank(&a, &b, q)).collect();
        let want_b: Vec<u64> = rows_b.iter().map(|&q| rank(&b, &a, q)).collect();
        assert_eq!(got.a_to_b.ranks, want_a);
        assert_eq!(got.b_to_a.ranks, want_b);
        let all = retrieval_of_queries(
            a.view(),
            b.view(),
            &map,
            &parameters,
            Some(&QuerySubset { rows: n, seed: 7 }),
        )
        .unwrap();
        assert_eq!(
            all,
            retrieval(a.view(), b.view(), &map, &parameters).unwrap()
        );
    }
}
