//! Weighted k-nearest-neighbour accuracy on cosine similarity (the downstream proxy of
//! Wu et al. 2018 / DINO): `k = 20` neighbours vote for their class with weight
//! `exp(sim / 0.07)`. Exact: every query is compared with every reference row in GEMM tiles,
//! never holding an N x N matrix.

use crate::error::{GeometryError, Result};
use crate::kernels::rows::{contiguous, row_norms};
use crate::kernels::sampling::stratified_rows;
use crate::kernels::tiles::single_threaded_blas;
use crate::metrics::real::Real;
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
/// The AMX screen's stripes are up to this many times longer (fewer stripes, fewer references
/// rescored before each stripe's k-th best similarity settles).
const AMX_STRIPE_FACTOR: usize = 4;
/// Queries per block of the AMX screen (10,000 queries at 1M x 512: 12.4 s against 13.5-14.5 s
/// with blocks of 1,024, which read the references from memory twice as often; 4,096 left
/// the threads unevenly loaded).
const AMX_QUERY_BLOCK: usize = 2048;
/// References per GEMM block.
const REFERENCE_BLOCK: usize = 2048;
/// References per block of the AMX screen (512 KB in bfloat16 at D = 512, so that they, a
/// block of queries and a panel of products stay in the second-level cache).
const AMX_BLOCK: usize = 512;

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

/// A neighbour of a query: its cosine similarity, squared Euclidean distance, row index and
/// class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Similarity to the query.
    pub sim: f64,
    /// `||q - x||^2` of the rows searched (the unit rows: the squared chord distance),
    /// accumulated in f64 from the rows' own values (no cancellation of `2 - 2 sim`), for the
    /// final top k of a search.
    pub squared_distance: f64,
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

    pub(crate) fn offer(&mut self, candidate: Neighbour) {
        if self.items.len() == self.k && !Self::better(&candidate, &self.items[self.k - 1]) {
            return;
        }
        let at = self
            .items
            .partition_point(|item| Self::better(item, &candidate));
        self.items.insert(at, candidate);
        self.items.truncate(self.k);
    }

    /// The neighbours held, best first.
    pub fn items(&self) -> &[Neighbour] {
        &self.items
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
    /// The row `j` of a global index (the inverse of `index`), `None` for another's.
    pub position: &'a (dyn Fn(u64) -> Option<usize> + Sync),
}

/// How the similarities of a block of references are screened before the exact ones are
/// taken: a screen gives every similarity to within a proven margin, so that only the
/// references it cannot rule out are rescored exactly (`sum_k q_k x_k` in f64); every screen
/// finds the same neighbours with the same similarities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KnnScreen {
    /// Intel AMX tiles (`TDPBF16PS`) on bfloat16 copies of f32 rows: within
    /// `(2^-7 + 2^-16 + gamma_D) ||q|| ||x||` of the exact dot product.
    Amx,
    /// BLAS GEMM in the rows' own precision: within `gamma_(D+1) ||q|| ||x||`, with
    /// `gamma_n = n u / (1 - n u)` and `u` the unit round-off of the rows' type.
    Gemm,
}

/// The screen for rows of type `F`: AMX tiles for f32 rows where the CPU has AMX-BF16 and the
/// operating system grants the tile state, unless `EMBGEOM_KNN_SCREEN=gemm` (for benchmarks);
/// else GEMM. Decided once.
pub fn knn_screen<F: Real>() -> KnnScreen {
    static GEMM_ASKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let gemm_asked =
        *GEMM_ASKED.get_or_init(|| std::env::var("EMBGEOM_KNN_SCREEN").as_deref() == Ok("gemm"));
    match F::SINGLE && !gemm_asked && crate::kernels::amx::available() {
        true => KnnScreen::Amx,
        false => KnnScreen::Gemm,
    }
}

/// The exact similarity of the kNN search, `sum_k q_k x_k` accumulated in f64 in a fixed order
/// ([`lane_sum`](crate::kernels::rows::lane_sum)): for f32 rows every product is exact, and the result
/// is within `D 2^-53 ||q|| ||x||` of the true dot product; the same bits on every machine.
pub(crate) fn exact_similarity<F: Real>(q: &[F], x: &[F]) -> f64 {
    crate::kernels::rows::lane_dot(q, x)
}

/// The margin of a screen: `|screened - exact similarity|` is at most [`Margin::of`] the rows'
/// norms `a` and `b` (the screen's error plus that of [`exact_similarity`], times 1.01 for
/// the norms' own round-off); infinite where the rows are too large for the screen's
/// arithmetic (then every reference is rescored).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Margin {
    bound: crate::kernels::amx::ErrorBound,
    /// Norms beyond this are not screened.
    limit: f64,
}

impl Margin {
    pub(crate) fn new<F: Real>(screen: KnnScreen, depth: usize) -> Margin {
        let k = depth as f64;
        let exact = crate::kernels::amx::ErrorBound {
            product: (k + 2.0) * 2f64.powi(-53),
            sum: 0.0,
            constant: k * 2f64.powi(-1060),
        };
        let (screened, limit) = match screen {
            KnnScreen::Amx => (
                crate::kernels::amx::bf16_error(depth.next_multiple_of(crate::kernels::amx::STEP)),
                2f64.powi(50),
            ),
            KnnScreen::Gemm => {
                let u = F::epsilon().as_f64() / 2.0;
                let gamma = (k + 1.0) * u / (1.0 - (k + 1.0) * u);
                let bound = crate::kernels::amx::ErrorBound {
                    product: gamma,
                    sum: 0.0,
                    constant: (k + 1.0) * F::min_positive_value().as_f64(),
                };
                (
                    bound,
                    if F::SINGLE {
                        2f64.powi(50)
                    } else {
                        2f64.powi(400)
                    },
                )
            }
        };
        Margin {
            bound: screened.plus(&exact, 1.01),
            limit,
        }
    }

    /// The margin for rows of norms `a` and `b`.
    pub(crate) fn of(&self, a: f64, b: f64) -> f64 {
        match a <= self.limit && b <= self.limit {
            true => self.bound.at(a, b),
            false => f64::INFINITY,
        }
    }
}

/// The largest value of type `S` at or below `t` (`t` not NaN).
fn at_or_below<S: Real>(t: f64) -> S {
    let v = S::from_f64(t);
    match v.as_f64() > t {
        true => v - (v.abs() * S::epsilon()).max(S::min_positive_value()),
        false => v,
    }
}

/// The top `k` references of every query row, by [`exact_similarity`] (the cosine for unit
/// rows; ties to the lower global index), screened by [`knn_screen`]; a reference with the
/// query's own global index is skipped (leave-one-out).
pub(crate) fn top_neighbours<F: Real>(
    queries: ArrayView2<F>,
    query_index: &[u64],
    references: &References<F>,
    k: usize,
) -> Vec<TopK> {
    top_neighbours_screened(queries, query_index, references, k, knn_screen::<F>())
}

/// [`top_neighbours`] with the given screen (AMX only where [`crate::kernels::amx::available`]).
fn top_neighbours_screened<F: Real>(
    queries: ArrayView2<F>,
    query_index: &[u64],
    references: &References<F>,
    k: usize,
    screen: KnnScreen,
) -> Vec<TopK> {
    single_threaded_blas();
    let total = references.rows.nrows();
    let norms = Norms {
        queries: row_norms(queries),
        references: row_norms(references.rows),
    };
    // The AMX screen packs each block of references into bfloat16 once per block of queries,
    // reading it from memory: larger blocks of queries read the references less often.
    let query_block = match screen {
        KnnScreen::Amx => AMX_QUERY_BLOCK,
        KnnScreen::Gemm => QUERY_BLOCK,
    };
    // Tasks: every block of queries against every stripe of references, so that a few queries
    // still keep every thread busy; each query's stripes merge into its exact top k (a total
    // order: similarity, then index), so the partition changes no result. GEMM's stripes are
    // fixed; the AMX screen's are longer (fewer references rescored before each stripe's k-th
    // best settles), but at least two tasks per thread.
    let stripe_len = match screen {
        KnnScreen::Amx => {
            let blocks = query_index.len().div_ceil(query_block).max(1);
            let wanted = (2 * rayon::current_num_threads()).div_ceil(blocks);
            let stripes = total
                .div_ceil(AMX_STRIPE_FACTOR * STRIPE_BLOCKS * REFERENCE_BLOCK)
                .max(wanted)
                .min(total.div_ceil(AMX_BLOCK))
                .max(1);
            total
                .div_ceil(stripes)
                .next_multiple_of(AMX_BLOCK)
                .max(AMX_BLOCK)
        }
        KnnScreen::Gemm => STRIPE_BLOCKS * REFERENCE_BLOCK,
    };
    let stripes = total.div_ceil(stripe_len).max(1);
    let query_blocks: Vec<&[u64]> = query_index.chunks(query_block).collect();
    let tasks: Vec<(usize, usize)> = (0..query_blocks.len())
        .flat_map(|b| (0..stripes).map(move |stripe| (b, stripe)))
        .collect();
    let partial: Vec<Vec<TopK>> = tasks
        .par_iter()
        .map(|&(b, stripe)| {
            let block = query_blocks[b];
            let rows = b * query_block..b * query_block + block.len();
            let first = stripe * stripe_len;
            let last = (first + stripe_len).min(total);
            let scan = Scan {
                queries: queries.slice(s![rows.clone(), ..]),
                query_norms: &norms.queries[rows],
                block,
                references,
                reference_norms: &norms.references,
                screen,
            };
            scan.references(first..last, k)
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
    add_squared_distances(&mut tops, queries, references);
    tops
}

/// Each held neighbour's `||q - x||^2`, summed in f64 from the rows' own values (the final
/// top k only: `Q k D` flops).
fn add_squared_distances<F: Real>(
    tops: &mut [TopK],
    queries: ArrayView2<F>,
    references: &References<F>,
) {
    tops.par_iter_mut().enumerate().for_each(|(q, top)| {
        let query = queries.row(q);
        let query = contiguous(&query);
        for item in top.items.iter_mut() {
            if let Some(j) = (references.position)(item.index) {
                let reference = references.rows.row(j);
                item.squared_distance =
                    crate::kernels::rows::slice_squared_distance(&query, &contiguous(&reference));
            }
        }
    });
}

/// Row norms of the queries and the references (the screens' margins).
struct Norms {
    queries: Vec<f64>,
    references: Vec<f64>,
}

/// A block of queries matched against references.
struct Scan<'a, 'r, F> {
    queries: ArrayView2<'a, F>,
    query_norms: &'a [f64],
    /// Global index of each query.
    block: &'a [u64],
    references: &'a References<'r, F>,
    reference_norms: &'a [f64],
    screen: KnnScreen,
}

impl<F: Real> Scan<'_, '_, F> {
    /// The top `k` among references `range` of each query, screened in blocks of
    /// [`REFERENCE_BLOCK`] references (GEMM) or [`AMX_BLOCK`] (tiles, 32 queries at a time).
    fn references(&self, range: std::ops::Range<usize>, k: usize) -> Vec<TopK> {
        let mut tops: Vec<TopK> = (0..self.block.len()).map(|_| TopK::new(k)).collect();
        let margin = Margin::new::<F>(self.screen, self.queries.ncols());
        let margins = |start: usize, end: usize| {
            let widest = self.reference_norms[start..end]
                .iter()
                .fold(0.0f64, |m, &v| m.max(v));
            self.query_norms
                .iter()
                .map(|&a| margin.of(a, widest))
                .collect::<Vec<f64>>()
        };
        match self.screen {
            KnnScreen::Amx => {
                use crate::kernels::amx::{Bf16Rows, Tiles, STEP};
                let queries = Bf16Rows::queries(self.queries);
                let mut packed = Bf16Rows::reference_buffer();
                let mut panel = Vec::new();
                for start in range.clone().step_by(AMX_BLOCK) {
                    let end = (start + AMX_BLOCK).min(range.end);
                    packed.fill_references(self.references.rows.slice(s![start..end, ..]));
                    panel.resize(STEP * packed.rows(), 0.0f32);
                    let margins = margins(start, end);
                    let tiles = Tiles::configure();
                    for first in (0..self.block.len()).step_by(STEP) {
                        tiles.products(&queries, first, &packed, &mut panel);
                        let sims = ArrayView2::from_shape((STEP, packed.rows()), &panel)
                            .expect("a panel of 32 rows");
                        let rows = (self.block.len() - first).min(STEP);
                        self.rescore(
                            sims.slice(s![..rows, ..end - start]),
                            first,
                            start,
                            &margins,
                            &mut tops,
                        );
                    }
                }
            }
            KnnScreen::Gemm => {
                let q = self.queries;
                let mut sims =
                    Array2::<F>::zeros((self.block.len(), REFERENCE_BLOCK.min(range.len())));
                for start in range.clone().step_by(REFERENCE_BLOCK) {
                    let end = (start + REFERENCE_BLOCK).min(range.end);
                    let r = self.references.rows.slice(s![start..end, ..]);
                    let mut out = sims.slice_mut(s![.., ..end - start]);
                    general_mat_mul(F::one(), &q, &r.t(), F::zero(), &mut out);
                    self.rescore(out.view(), 0, start, &margins(start, end), &mut tops);
                }
            }
        }
        tops
    }

    /// Offer the references of screened similarities `sims` (queries `first..`, references
    /// `start..`) that can enter a top k, with their exact similarities. Only a screened
    /// similarity at or above the k-th best exact one minus the margin can: a comparison
    /// rejects the rest, [`SCAN_GROUP`] at once with AVX-512 where the CPU has it
    /// ([`first_at_or_above`]; the floor only rises, so a value below it when scanned is no
    /// candidate). While a query's top k is not yet full (its first block), the block's own
    /// `(k+1)`-th largest screened similarity `t` sets the floor `t - 2 margin` as well: at
    /// least k of those references other than the query are within the margin of `t` or
    /// above, so the final k-th best is at least `t - margin`, and a screened value below
    /// `t - 2 margin` is exactly below it. Without it every reference of the first block that
    /// beats the few held so far is rescored (about `k ln(n/k)` a query, each a pass over D).
    fn rescore<S: Real>(
        &self,
        sims: ArrayView2<S>,
        first: usize,
        start: usize,
        margins: &[f64],
        tops: &mut [TopK],
    ) {
        let mut scratch: Vec<f64> = Vec::new();
        for (r, row) in sims.outer_iter().enumerate() {
            let qi = first + r;
            let (top, margin) = (&mut tops[qi], margins[qi]);
            let query = self.queries.row(qi);
            let query = contiguous(&query);
            // Rows too large for the screen's arithmetic: every reference is rescored.
            let everything = margin.is_infinite();
            let row = row.to_slice().expect("rows of a standard-layout panel");
            let block_floor = match !everything && top.items.len() < top.k && row.len() > top.k {
                true => {
                    scratch.clear();
                    scratch.extend(row.iter().map(|v| v.as_f64()));
                    let at = row.len() - (top.k + 1);
                    let (_, t, _) = scratch.select_nth_unstable_by(at, f64::total_cmp);
                    *t - 2.0 * margin
                }
                false => f64::NEG_INFINITY,
            };
            let mut threshold = (top.floor() - margin).max(block_floor);
            let mut threshold_s = at_or_below::<S>(threshold);
            // From the first column at or above the threshold to the next.
            let mut next = 0;
            while next < row.len() {
                let column = match everything {
                    true => next,
                    false => match first_at_or_above(&row[next..], threshold_s) {
                        Some(offset) => next + offset,
                        None => break,
                    },
                };
                next = column + 1;
                if !everything && row[column].as_f64() < threshold {
                    continue;
                }
                let j = start + column;
                let index = (self.references.index)(j);
                if index == self.block[qi] {
                    continue;
                }
                let reference = self.references.rows.row(j);
                top.offer(Neighbour {
                    sim: exact_similarity(&query, &contiguous(&reference)),
                    squared_distance: 0.0,
                    index,
                    label: (self.references.label)(j),
                });
                threshold = (top.floor() - margin).max(block_floor);
                threshold_s = at_or_below::<S>(threshold);
            }
        }
    }
}

crate::kernels::rows::widened! {
    /// The index of the first of `values` at or above `threshold` (`None` if none), testing
    /// [`SCAN_GROUP`] values at once: most groups hold none.
    fn first_at_or_above<S: Real>(values: &[S], threshold: S) -> Option<usize> {
        for (g, group) in values.chunks(SCAN_GROUP).enumerate() {
            if group.iter().fold(false, |hit, &v| hit | (v >= threshold)) {
                let offset = group.iter().position(|&v| v >= threshold);
                return offset.map(|offset| g * SCAN_GROUP + offset);
            }
        }
        None
    }
}

/// The nearest neighbours of a seeded subset of queries: every query against every reference
/// row (leave-one-out: all rows, the query itself skipped; train/test: the train rows).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryNeighbours {
    /// Row index of each query.
    pub queries: Vec<usize>,
    /// Queries available (all test rows, or N for leave-one-out).
    pub candidates: usize,
    /// Each query's top neighbours, best first.
    pub tops: Vec<TopK>,
    /// Neighbours searched (`k`, or fewer when there are fewer references).
    pub k: usize,
    /// Whether the split is leave-one-out.
    pub leave_one_out: bool,
}

/// The top `k` neighbours (cosine on the rows of `x`; `labels` carried for a vote, 0 without)
/// of at most `options.max_queries` queries (the seeded subset of [`stratified_rows`]).
pub fn query_neighbours<F: Real>(
    x: ArrayView2<F>,
    labels: Option<&[u32]>,
    split: &KnnSplit,
    k: usize,
    options: &KnnOptions,
) -> Result<QueryNeighbours> {
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
    let k = k.min(usable_references);
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
    let label = |j: usize| labels.map_or(0, |labels| labels[references[j]]);
    let place: std::collections::HashMap<u64, usize> = match leave_one_out {
        true => std::collections::HashMap::new(),
        false => (0..references.len()).map(|j| (index(j), j)).collect(),
    };
    let position = |i: u64| match leave_one_out {
        true => Some(i as usize),
        false => place.get(&i).copied(),
    };
    let tops = top_neighbours(
        query_rows.view(),
        &query_index,
        &References {
            rows: reference_rows.view(),
            index: &index,
            label: &label,
            position: &position,
        },
        k,
    );
    Ok(QueryNeighbours {
        queries,
        candidates: candidates.len(),
        tops,
        k,
        leave_one_out,
    })
}

/// The weighted vote's accuracy over `neighbours` (their first `options.k`) of the queries'
/// class `labels` (indices `< num_classes`).
pub fn accuracy_of(
    neighbours: &QueryNeighbours,
    labels: &[u32],
    num_classes: usize,
    options: &KnnOptions,
) -> KnnAccuracy {
    let k = options.k.min(neighbours.k);
    let correct = neighbours
        .tops
        .iter()
        .zip(&neighbours.queries)
        .filter(|(top, &query)| vote(top, k, num_classes, options.temperature) == labels[query])
        .count();
    KnnAccuracy {
        value: correct as f64 / neighbours.queries.len() as f64,
        k,
        temperature: options.temperature,
        queries: neighbours.queries.len(),
        candidates: neighbours.candidates,
        split: if neighbours.leave_one_out {
            "leave-one-out"
        } else {
            "train/test"
        }
        .to_string(),
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
    let neighbours = query_neighbours(x, Some(labels), split, options.k, options)?;
    Ok(accuracy_of(&neighbours, labels, num_classes, options))
}

/// Each query's squared distances to its neighbours, ascending (rounding can order them
/// differently from the similarities when the rows' norms differ from 1), as distances.
pub fn neighbour_distances(tops: &[TopK]) -> Vec<Vec<f64>> {
    tops.iter()
        .map(|top| {
            let mut d: Vec<f64> = top
                .items()
                .iter()
                .map(|n| n.squared_distance.sqrt())
                .collect();
            d.sort_by(f64::total_cmp);
            d
        })
        .collect()
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
pub(crate) fn vote(top: &TopK, k: usize, num_classes: usize, temperature: f64) -> u32 {
    let best = top.items.first().map_or(0.0, |item| item.sim);
    let mut weights = vec![0.0f64; num_classes];
    for item in top.items.iter().take(k) {
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

    /// Every query's k best references by exact similarity (ties to the lower index),
    /// computed pair by pair.
    fn brute_force<F: Real>(
        queries: ArrayView2<F>,
        ids: &[u64],
        x: ArrayView2<F>,
        k: usize,
    ) -> Vec<Vec<(f64, u64)>> {
        queries
            .outer_iter()
            .zip(ids)
            .map(|(q, &own)| {
                let mut all: Vec<(f64, u64)> = x
                    .outer_iter()
                    .enumerate()
                    .filter(|&(j, _)| j as u64 != own)
                    .map(|(j, r)| (exact_similarity(&contiguous(&q), &contiguous(&r)), j as u64))
                    .collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                all.truncate(k);
                all
            })
            .collect()
    }

    /// The screens available here (GEMM always; AMX for f32 rows where the CPU has it).
    fn screens<F: Real>() -> Vec<KnnScreen> {
        let mut screens = vec![KnnScreen::Gemm];
        match F::SINGLE && crate::kernels::amx::available() {
            true => screens.push(KnnScreen::Amx),
            false => {
                println!("no AMX tiles for these rows or on this CPU: the AMX screen was not run")
            }
        }
        screens
    }

    /// Rows `x` with clusters of near-duplicates (differences far below the screens' margins,
    /// so that only the rescoring can order them), exact duplicates (ties), and ragged shapes;
    /// every screen returns the brute-force top k, similarities included.
    fn check_screens<F: Real>(x: &Array2<F>, k: usize) {
        with_references(x, 5, |references| check_screens_of(x, references, k));
    }

    /// `f` of the references `x` (global index = row, class = row mod `classes`).
    fn with_references<F: Real, T>(
        x: &Array2<F>,
        classes: u32,
        f: impl FnOnce(&References<F>) -> T,
    ) -> T {
        let index = |j: usize| j as u64;
        let label = |j: usize| j as u32 % classes;
        let position = |i: u64| Some(i as usize);
        f(&References {
            rows: x.view(),
            index: &index,
            label: &label,
            position: &position,
        })
    }

    fn check_screens_of<F: Real>(x: &Array2<F>, references: &References<F>, k: usize) {
        let n = x.nrows();
        let ids: Vec<u64> = (0..n as u64).step_by(7).collect();
        let queries = x.select(
            Axis(0),
            &ids.iter().map(|&i| i as usize).collect::<Vec<_>>(),
        );
        let expected = brute_force(queries.view(), &ids, x.view(), k);
        for screen in screens::<F>() {
            let tops = top_neighbours_screened(queries.view(), &ids, references, k, screen);
            for (top, want) in tops.iter().zip(&expected) {
                let got: Vec<(f64, u64)> = top.items.iter().map(|n| (n.sim, n.index)).collect();
                assert_eq!(&got, want, "{screen:?}");
            }
        }
    }

    /// Unit rows near a few centres: many references within 1e-6 of each other.
    fn clustered<F: Real>(n: usize, d: usize, scale: f64) -> Array2<F> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let centres: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..d).map(|_| uniform()).collect())
            .collect();
        let mut x = Array2::<F>::zeros((n, d));
        for (i, mut row) in x.outer_iter_mut().enumerate() {
            let spread = [1e-7, 1e-3, 0.3][i % 3];
            let centre = &centres[i % 4];
            let values: Vec<f64> = centre.iter().map(|c| c + spread * uniform()).collect();
            let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (o, v) in row.iter_mut().zip(&values) {
                *o = F::from_f64(scale * v / norm);
            }
        }
        // Exact duplicates: ties settled by index.
        for i in (0..n).step_by(11).skip(1) {
            let copy = x.row(i - 1).to_owned();
            x.row_mut(i).assign(&copy);
        }
        x
    }

    #[test]
    fn every_screen_finds_the_exact_top_k_of_f32_rows() {
        for (n, d, k) in [(700, 40, 20), (300, 513, 7), (97, 3, 100), (650, 64, 1)] {
            check_screens(&clustered::<f32>(n, d, 1.0), k);
        }
    }

    /// The AMX screen's partition follows the thread count; its results do not.
    #[test]
    fn the_neighbours_do_not_depend_on_the_thread_count() {
        let x = clustered::<f32>(3000, 24, 1.0);
        let ids: Vec<u64> = (0..3000u64).step_by(13).collect();
        let queries = x.select(
            Axis(0),
            &ids.iter().map(|&i| i as usize).collect::<Vec<_>>(),
        );
        with_references(&x, 5, |references| {
            for screen in screens::<f32>() {
                let tops: Vec<Vec<TopK>> = [1, 2, 3, 8]
                    .into_iter()
                    .map(|threads| {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build()
                            .expect("a thread pool");
                        pool.install(|| {
                            top_neighbours_screened(queries.view(), &ids, references, 20, screen)
                        })
                    })
                    .collect();
                assert!(tops.windows(2).all(|w| w[0] == w[1]), "{screen:?}");
            }
        });
    }

    #[test]
    fn every_screen_finds_the_exact_top_k_of_f64_rows() {
        check_screens(&clustered::<f64>(500, 33, 1.0), 20);
    }

    /// Rows beyond the screens' range (norms near 1e30 in f32, whose products overflow in f32)
    /// and f64 rows near 1e150 are rescored in full; tiny rows (norms 1e-30) still order correctly.
    #[test]
    fn rows_out_of_the_screens_range_are_rescored() {
        check_screens(&clustered::<f32>(300, 16, 1e30), 10);
        check_screens(&clustered::<f32>(300, 16, 1e-30), 10);
        check_screens(&clustered::<f64>(200, 16, 1e150), 10);
    }

    /// The screens' margins hold for every pair of random rows of mixed scales.
    #[test]
    fn screened_similarities_are_within_their_margin() {
        let x = clustered::<f32>(200, 300, 1.0);
        let y = x.mapv(|v| v * 3.7);
        let norms = (row_norms(x.view()), row_norms(y.view()));
        for screen in screens::<f32>() {
            let margin = Margin::new::<f32>(screen, x.ncols());
            let sims: Array2<f32> = match screen {
                KnnScreen::Gemm => x.dot(&y.t()),
                KnnScreen::Amx => {
                    use crate::kernels::amx::{Bf16Rows, Tiles, STEP};
                    let q = Bf16Rows::queries(x.view());
                    let mut r = Bf16Rows::reference_buffer();
                    r.fill_references(y.view());
                    let tiles = Tiles::configure();
                    let mut out = Array2::<f32>::zeros((q.rows(), r.rows()));
                    for first in (0..x.nrows()).step_by(STEP) {
                        let mut panel = vec![0.0f32; STEP * r.rows()];
                        tiles.products(&q, first, &r, &mut panel);
                        let panel = Array2::from_shape_vec((STEP, r.rows()), panel).unwrap();
                        out.slice_mut(s![first..first + STEP, ..]).assign(&panel);
                    }
                    out.slice(s![..x.nrows(), ..y.nrows()]).to_owned()
                }
            };
            let mut widest = 0.0f64;
            for i in 0..x.nrows() {
                for j in 0..y.nrows() {
                    let exact = exact_similarity(&contiguous(&x.row(i)), &contiguous(&y.row(j)));
                    let margin = margin.of(norms.0[i], norms.1[j]);
                    let error = (f64::from(sims[[i, j]]) - exact).abs();
                    assert!(error <= margin, "{screen:?} {i} {j}: {error} > {margin}");
                    widest = widest.max(error / margin);
                }
            }
            // The margin is not loose by orders of magnitude.
            assert!(widest > 0.01, "{screen:?}: {widest}");
        }
    }

    #[test]
    fn a_threshold_is_rounded_down() {
        for t in [0.1f64, -0.3, 1.0 - 1e-12, 1e-40, -1e-45, 0.0] {
            let v = at_or_below::<f32>(t);
            assert!(f64::from(v) <= t, "{t}");
            assert!(f64::from(v) > t - 1e-6 * t.abs() - 1e-44, "{t}");
        }
        assert_eq!(at_or_below::<f32>(f64::NEG_INFINITY), f32::NEG_INFINITY);
    }

    #[test]
    fn the_scan_finds_the_first_value_at_or_above_the_threshold() {
        let values: Vec<f32> = (0..150u32)
            .map(|i| ((i * 37 + 11) % 101) as f32 / 100.0 - 0.5)
            .collect();
        for len in [0, 1, 31, 32, 33, 64, 95, 150] {
            for threshold in [-1.0f32, -0.5, 0.0, 0.49, 0.5, 2.0, f32::NEG_INFINITY] {
                let values = &values[..len];
                let plain = values.iter().position(|&v| v >= threshold);
                assert_eq!(
                    first_at_or_above(values, threshold),
                    plain,
                    "{len} {threshold}"
                );
                let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
                let plain = wide.iter().position(|&v| v >= f64::from(threshold));
                assert_eq!(first_at_or_above(&wide, f64::from(threshold)), plain);
            }
        }
    }

    #[test]
    fn stripes_of_references_merge_into_the_top_k_of_one_scan() {
        // More references than two stripes of either screen, so that queries meet three.
        let n = 2 * AMX_STRIPE_FACTOR * STRIPE_BLOCKS * REFERENCE_BLOCK + 1234;
        let x = rows(n);
        let query_index: Vec<u64> = (0..1100u64).map(|q| q * 211 % n as u64).collect();
        let queries = Array2::from_shape_fn((query_index.len(), 3), |(q, j)| {
            x[[query_index[q] as usize, j]]
        });
        let (query_norms, reference_norms) = (row_norms(queries.view()), row_norms(x.view()));
        with_references(&x, 7, |references| {
            for screen in screens::<f32>() {
                let striped =
                    top_neighbours_screened(queries.view(), &query_index, references, 20, screen);
                for (b, block) in query_index.chunks(QUERY_BLOCK).enumerate() {
                    let rows = b * QUERY_BLOCK..b * QUERY_BLOCK + block.len();
                    let scan = Scan {
                        queries: queries.slice(s![rows.clone(), ..]),
                        query_norms: &query_norms[rows.clone()],
                        block,
                        references,
                        reference_norms: &reference_norms,
                        screen,
                    };
                    assert_eq!(scan.references(0..n, 20), striped[rows], "{screen:?}");
                }
            }
        });
    }
}
