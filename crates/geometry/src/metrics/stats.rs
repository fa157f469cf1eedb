//! Class statistics (Papyan, Han & Donoho, PNAS 2020): class counts and means, the global
//! mean, the within-class covariance `Sigma_W`, and per class the variance `Var_c` and the
//! effective rank of the centred rows.

use crate::error::Result;
use crate::kernels::classes::Classes;
use crate::kernels::scatter::{
    accumulator_count, centre_rows_into, row_gram, stripe_count, symmetrize, syrk_add,
    upper_scatter,
};
use crate::kernels::tiles::single_threaded_blas;
use crate::kernels::timings::{eigen_flops, Timings, Work};
use crate::metrics::real::Real;
use crate::metrics::spectrum::{effective_rank, symmetric_eigenvalues, total_squared_norm};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

/// Per-class statistics of raw (unnormalised) features `h_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    /// `n_c`.
    pub counts: Vec<usize>,
    /// `mu_c`, C x D.
    pub means: Array2<f64>,
    /// `mu_G`: the unweighted mean of the class means.
    pub global_mean: Array1<f64>,
    /// `tr(Sigma_W)`, `Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`.
    pub within_trace: f64,
    /// `Sigma_W` where the collapse metrics need it: with fewer classes than dimensions
    /// (`C < D`), its projection `M Sigma_W M^T` onto the centred class means `M` (C x C; NC1
    /// lives in their span); otherwise `Sigma_W` itself (D x D). See
    /// [`ClassStats::within_in_mean_span`].
    pub within_projected: Array2<f64>,
    /// `Var_c = (1/n_c) sum_{i in c} ||h_i - mu_c||^2` (from the centred rows).
    pub within_variance: Vec<f64>,
    /// Effective rank of each class's centred rows (`None` for a class of one row).
    pub effective_ranks: Vec<Option<f64>>,
}

impl ClassStats {
    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// `M`: the centred class means `mu_c - mu_G`, C x D.
    pub fn centred_means(&self) -> Array2<f64> {
        &self.means - &self.global_mean.view().insert_axis(Axis(0))
    }

    /// `Sigma_B = (1/C) M^T M`, D x D.
    pub fn between_covariance(&self) -> Array2<f64> {
        let m = self.centred_means();
        m.t().dot(&m) / self.num_classes() as f64
    }

    /// Whether [`ClassStats::within_projected`] is `M Sigma_W M^T` (`C < D`) rather than
    /// `Sigma_W`.
    pub fn within_in_mean_span(&self) -> bool {
        mean_span_basis(self.num_classes(), self.means.ncols())
    }

    /// `Sigma_W` projected as [`ClassStats::within_projected`] keeps it, from the D x D
    /// `Sigma_W` (when the statistics are merged from sums that hold it).
    pub fn project_within(
        means: &Array2<f64>,
        global_mean: &Array1<f64>,
        within: Array2<f64>,
    ) -> Array2<f64> {
        match mean_span_basis(means.nrows(), means.ncols()) {
            true => {
                let m = means - &global_mean.view().insert_axis(Axis(0));
                m.dot(&within).dot(&m.t())
            }
            false => within,
        }
    }
}

/// `C < D`: `Sigma_W` is kept in the span of the C centred class means.
fn mean_span_basis(c: usize, d: usize) -> bool {
    c < d
}

/// Seconds of thread time spent in the two kinds of work of [`class_stats_timed`].
#[derive(Debug, Default)]
struct ThreadSeconds {
    scatters: std::sync::atomic::AtomicU64,
    eigenvalues: std::sync::atomic::AtomicU64,
}

impl ThreadSeconds {
    /// Run `f`, adding its wall time on this thread to `counter` (nanoseconds).
    fn add<T>(counter: &std::sync::atomic::AtomicU64, f: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = f();
        let nanos = started.elapsed().as_nanos() as u64;
        counter.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        out
    }
}

/// How the within-class scatter is accumulated.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WithinRoute {
    /// `sum_c Z_c^T Z_c` into a D x D sum (then projected onto `M` when `C < D`).
    Square,
    /// Only `sum_i (M z_i)(M z_i)^T`, C x C ([`projected_within`]): no D x D matrix when
    /// every class has fewer rows than dimensions.
    Projected,
}

/// The flops of the class scatters (`dsyrk` and GEMM; the eigendecompositions apart) of classes
/// of `counts` rows in `d` dimensions by `route`: each class's Gram matrix `n_c^2 D` (or its
/// scatter `n_c D^2` when `n_c >= D`), then the within-class sum: `n_c D^2` per class with
/// fewer rows than dimensions and `2 C D^2 + 2 C^2 D` for `M Sigma_W M^T` (`Square`), or
/// `2 N C D + N C^2` for the projected rows (`Projected`).
fn scatter_flops(counts: &[usize], d: usize, route: WithinRoute) -> f64 {
    let (c, d) = (counts.len() as f64, d as f64);
    let n: f64 = counts.iter().map(|&k| k as f64).sum();
    let mut flops = match (route, mean_span_basis(counts.len(), d as usize)) {
        (WithinRoute::Square, true) => 2.0 * c * d * d + 2.0 * c * c * d,
        (WithinRoute::Square, false) => 0.0,
        (WithinRoute::Projected, _) => 2.0 * n * c * d + n * c * c,
    };
    for &n_c in counts {
        let n_c = n_c as f64;
        let small = n_c < d;
        flops += match small {
            true => n_c * n_c * d,
            false => n_c * d * d,
        };
        if route == WithinRoute::Square && small {
            flops += n_c * d * d;
        }
    }
    flops
}

/// The route with the fewer flops ([`WithinRoute::Square`] whenever `C >= D`, where NC1 needs
/// `Sigma_W` itself), and its flops.
fn within_route(counts: &[usize], d: usize) -> (WithinRoute, f64) {
    let square = scatter_flops(counts, d, WithinRoute::Square);
    if !mean_span_basis(counts.len(), d) {
        return (WithinRoute::Square, square);
    }
    let projected = scatter_flops(counts, d, WithinRoute::Projected);
    match projected < square {
        true => (WithinRoute::Projected, projected),
        false => (WithinRoute::Square, square),
    }
}

/// What one class adds to its group's within-class sum: its scatter when it has at least as
/// many rows as dimensions on the `Square` route (it is formed for its eigenvalues anyway);
/// the rows of the other classes, and every row on the `Projected` route, are summed by
/// [`within_by_rows`].
struct ClassScatter {
    route: WithinRoute,
}

impl ClassScatter {
    /// One class's rows about its mean: their share of the within-class sum (as above) added
    /// into `sum`, their trace `sum_i ||x_i - mu||^2`, and the singular values of the centred rows. A class
    /// with fewer rows than dimensions is centred into an `n x D` block whose singular values
    /// come from its `n x n` Gram matrix (`dsyrk`): no D x D matrix of its own. Otherwise its
    /// scatter is formed (its eigenvalues need it).
    fn add<F: Real>(
        &self,
        x: ArrayView2<F>,
        rows: &[usize],
        mean: ArrayView1<f64>,
        sum: &mut Option<Array2<f64>>,
        seconds: &ThreadSeconds,
    ) -> Result<(f64, Vec<f64>)> {
        let d = x.ncols();
        let (square, trace) = ThreadSeconds::add(&seconds.scatters, || {
            if rows.len() < d {
                let mut z = Array2::<f64>::zeros((rows.len(), d));
                centre_rows_into(&mut z, x, rows, &mean.to_vec());
                let gram = row_gram(z.view());
                let trace = gram.diag().sum();
                (gram, trace)
            } else {
                // One accumulator: the classes are already spread over the threads.
                let mut s = upper_scatter(x, rows, mean);
                symmetrize(&mut s);
                if self.route == WithinRoute::Square {
                    *sum.get_or_insert_with(|| Array2::zeros((d, d))) += &s;
                }
                let trace = s.diag().sum();
                (s, trace)
            }
        });
        // The round-off reference: sum_i ||x_i||^2, without a pass.
        let scale = total_squared_norm(trace, mean, rows.len());
        let singular = ThreadSeconds::add(&seconds.eigenvalues, || {
            symmetric_eigenvalues(&square, scale)
        })?
        .into_iter()
        .map(f64::sqrt)
        .collect();
        Ok((trace, singular))
    }
}

/// Rows per block of [`within_by_rows`].
const WITHIN_BLOCK_ROWS: usize = 256;

/// `sum_{i in rows} z_i z_i^T` (D x D) or, given the centred class means `M` as `basis`,
/// `sum_{i in rows} (M z_i)(M z_i)^T` (C x C), symmetric, with `z_i = x_i - mu_{y_i}`: the
/// rows in blocks of [`WITHIN_BLOCK_ROWS`] in the order given, each row centred on its class
/// mean in f64, the block added by `dsyrk` (after one GEMM by `M^T` with a basis) into the sum
/// of its stripe. The stripes (a fixed partition of the blocks by
/// [`stripe_count`](crate::kernels::scatter::stripe_count)) run in parallel and are added in order: the same bits for any thread
/// count, and every product a GEMM of 256 rows, whatever the class sizes.
fn within_by_rows<F: Real>(
    x: ArrayView2<F>,
    (labels, rows): (&[u32], &[usize]),
    means: &Array2<f64>,
    basis: Option<&Array2<f64>>,
    seconds: &ThreadSeconds,
) -> Array2<f64> {
    let d = x.ncols();
    let side = basis.map_or(d, Array2::nrows);
    let blocks: Vec<&[usize]> = rows.chunks(WITHIN_BLOCK_ROWS).collect();
    let per_stripe = blocks.len().div_ceil(stripe_count(rows.len(), side)).max(1);
    let partials: Vec<Array2<f64>> = blocks
        .par_chunks(per_stripe)
        .map(|stripe| {
            ThreadSeconds::add(&seconds.scatters, || {
                let mut sum = Array2::<f64>::zeros((side, side));
                let height = WITHIN_BLOCK_ROWS.min(rows.len());
                let mut z = Array2::<f64>::zeros((height, d));
                let mut projected = Array2::<f64>::zeros((height, basis.map_or(0, |_| side)));
                for block in stripe {
                    for (out, &i) in z.outer_iter_mut().zip(block.iter()) {
                        let out = out
                            .into_slice()
                            .expect("rows of a new matrix are contiguous");
                        let mean = means.row(labels[i] as usize);
                        let mean = mean.as_slice().expect("class means are contiguous");
                        crate::kernels::rows::centre_row(
                            out,
                            &crate::kernels::rows::contiguous(&x.row(i)),
                            mean,
                        );
                    }
                    let centred = z.slice(ndarray::s![..block.len(), ..]);
                    match basis {
                        None => syrk_add(centred, &mut sum),
                        Some(m) => {
                            let mut p = projected.slice_mut(ndarray::s![..block.len(), ..]);
                            ndarray::linalg::general_mat_mul(1.0, &centred, &m.t(), 0.0, &mut p);
                            syrk_add(projected.slice(ndarray::s![..block.len(), ..]), &mut sum);
                        }
                    }
                }
                sum
            })
        })
        .collect();
    let mut total = Array2::<f64>::zeros((side, side));
    for partial in partials {
        total += &partial;
    }
    symmetrize(&mut total);
    total
}

/// Compute [`ClassStats`] of `x` (rows as given) in O(C D + min(N, D) D) memory beyond the
/// input (O(C D + C^2 + n_c D) when every class has fewer rows than dimensions and the
/// projected route is the cheaper): class means in one pass, then one pass over each class's
/// centred rows that gives its share of `Sigma_W` (summed over fixed groups of classes, in
/// order), `Var_c = tr/n_c` and its effective rank.
pub fn class_stats<F: Real>(x: ArrayView2<F>, classes: &Classes) -> Result<ClassStats> {
    class_stats_timed(x, classes, &Timings::default())
}

/// Values-only symmetric eigendecompositions of side `m` cost about `4/3 m^3` flops (the
/// reduction to tridiagonal form; the tridiagonal QR is `O(m^2)`).
pub fn eigen_work(sides: impl IntoIterator<Item = usize>) -> Work {
    Work::EigenFlops(eigen_flops(sides))
}

/// [`class_stats`], recording two stages in `timings`: `class scatters` (the means and each
/// class's share of `Sigma_W`, the flops of the cheaper route) and `class eigenvalues` (one
/// symmetric eigendecomposition of side `min(n_c, D)` per class). The two run interleaved on
/// every thread, so the wall time is split between them in proportion to their thread time.
pub fn class_stats_timed<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    timings: &Timings,
) -> Result<ClassStats> {
    class_stats_of_means(x, classes, None, timings)
}

/// [`class_stats_timed`], given the class means of `x` when they are already computed.
pub(crate) fn class_stats_of_means<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    means: Option<Array2<f64>>,
    timings: &Timings,
) -> Result<ClassStats> {
    let (route, flops) = within_route(&classes.counts(), x.ncols());
    class_stats_routed(x, classes, means, (route, flops), timings)
}

/// [`class_stats_of_means`] by a given route (with its flops).
fn class_stats_routed<F: Real>(
    x: ArrayView2<F>,
    classes: &Classes,
    means: Option<Array2<f64>>,
    (route, flops): (WithinRoute, f64),
    timings: &Timings,
) -> Result<ClassStats> {
    single_threaded_blas();
    let started = std::time::Instant::now();
    let seconds = ThreadSeconds::default();
    let counts = classes.counts();
    let means = match means {
        Some(means) => means,
        None => ThreadSeconds::add(&seconds.scatters, || class_means(x, classes)),
    };
    let global_mean = means.mean_axis(Axis(0)).expect("at least one class");
    let (c, d) = (classes.num_classes(), x.ncols());
    let centred_means = &means - &global_mean.view().insert_axis(Axis(0));
    let scatter = ClassScatter { route };
    let all: Vec<usize> = (0..c).collect();
    let group = c.div_ceil(accumulator_count(d)).max(1);
    let groups = all
        .par_chunks(group)
        .map(|group| {
            let mut sum: Option<Array2<f64>> = None;
            let mut per_class = Vec::with_capacity(group.len());
            for &k in group {
                let members = classes.members(k);
                let (trace, singular) =
                    scatter.add(x, members, means.row(k), &mut sum, &seconds)?;
                let variance = trace / members.len() as f64;
                let rank = (members.len() >= 2).then(|| effective_rank(&singular));
                per_class.push((trace, variance, rank));
            }
            Ok((sum, per_class))
        })
        .collect::<Result<Vec<_>>>()?;
    // The rows summed by blocks: those of the classes with fewer rows than dimensions (square
    // route), or all of them (projected route).
    let block_rows: Vec<usize> = match route {
        WithinRoute::Square => (0..x.nrows())
            .filter(|&i| counts[classes.labels()[i] as usize] < d)
            .collect(),
        WithinRoute::Projected => (0..x.nrows()).collect(),
    };
    let basis = (route == WithinRoute::Projected).then_some(&centred_means);
    let rows_of = (classes.labels(), block_rows.as_slice());
    let mut within = within_by_rows(x, rows_of, &means, basis, &seconds);
    let mut within_trace = 0.0;
    let mut within_variance = Vec::with_capacity(c);
    let mut effective_ranks = Vec::with_capacity(c);
    for (sum, per_class) in groups {
        if let Some(sum) = sum {
            within += &sum;
        }
        for (trace, variance, rank) in per_class {
            within_trace += trace;
            within_variance.push(variance);
            effective_ranks.push(rank);
        }
    }
    let n = x.nrows() as f64;
    within_trace /= n;
    let within_projected = match route {
        WithinRoute::Square => ThreadSeconds::add(&seconds.scatters, || {
            ClassStats::project_within(&means, &global_mean, within / n)
        }),
        WithinRoute::Projected => within / n,
    };
    let wall = started.elapsed().as_secs_f64();
    let load = std::sync::atomic::Ordering::Relaxed;
    let (scatters, eigenvalues) = (
        seconds.scatters.load(load) as f64,
        seconds.eigenvalues.load(load) as f64,
    );
    let eigen_share = match scatters + eigenvalues > 0.0 {
        true => eigenvalues / (scatters + eigenvalues),
        false => 0.0,
    };
    timings.record(
        "class scatters",
        wall * (1.0 - eigen_share),
        // Each class's rows gathered (widened to f64), then the products of the route.
        Work::Gather {
            rows: n,
            bytes: n * (d * std::mem::size_of::<F>()) as f64,
            flops,
            single: false,
        },
    );
    timings.record(
        "class eigenvalues",
        wall * eigen_share,
        eigen_work(counts.iter().map(|&k| k.min(d))),
    );
    Ok(ClassStats {
        counts,
        means,
        global_mean,
        within_trace,
        within_projected,
        within_variance,
        effective_ranks,
    })
}

/// Means of the rows of each class: `(1/n_c) sum_{i in c} x_i` (C x D).
pub fn class_means<F: Real>(x: ArrayView2<F>, classes: &Classes) -> Array2<f64> {
    means_of_sums(&classes.class_sums(x).0, classes)
}

/// `S_c / n_c` for every class, from the class sums `S_c` (C x D).
pub(crate) fn means_of_sums(sums: &Array2<f64>, classes: &Classes) -> Array2<f64> {
    let counts = Array1::from_iter(classes.counts().into_iter().map(|n| n as f64));
    sums / &counts.insert_axis(Axis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with class offsets, and labels `i % c` (classes of equal size) or, with `skew`, a
    /// first class of most rows.
    fn labelled(n: usize, d: usize, c: usize, skew: bool, seed: u64) -> (Array2<f64>, Classes) {
        let x = crate::kernels::test_data::pseudo_random(n, d, seed);
        let labels: Vec<u32> = (0..n)
            .map(|i| match skew && i < n / 2 {
                true => 0,
                false => (i % c) as u32,
            })
            .collect();
        let offsets = crate::kernels::test_data::pseudo_random(c, d, seed + 7);
        let mut x = x;
        for (i, &label) in labels.iter().enumerate() {
            let mut row = x.row_mut(i);
            row += &offsets.row(label as usize);
        }
        (
            x,
            Classes::new(labels.clone(), (0..c).map(|k| k.to_string()).collect()).unwrap(),
        )
    }

    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-9 * scale.max(f64::MIN_POSITIVE)
    }

    #[test]
    fn both_routes_of_the_within_class_scatter_agree() {
        // Classes with fewer rows than dimensions, with more, and both (a skewed first class).
        for (n, d, c, skew) in [
            (60, 40, 4, false),
            (200, 30, 3, false),
            (240, 50, 6, true),
            (90, 12, 5, true),
            (700, 40, 10, false),
        ] {
            let (x, classes) = labelled(n, d, c, skew, n as u64);
            let counts = classes.counts();
            if skew && n == 240 {
                // One class with more rows than dimensions beside classes with fewer.
                assert!(counts.iter().any(|&k| k < d) && counts.iter().any(|&k| k >= d));
            }
            let run = |route| {
                let flops = scatter_flops(&counts, d, route);
                class_stats_routed(
                    x.view(),
                    &classes,
                    None,
                    (route, flops),
                    &Timings::default(),
                )
                .unwrap()
            };
            let (square, projected) = (run(WithinRoute::Square), run(WithinRoute::Projected));
            let scale = square
                .within_projected
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(square
                .within_projected
                .iter()
                .zip(projected.within_projected.iter())
                .all(|(a, b)| close(*a, *b, scale)));
            assert!(close(
                square.within_trace,
                projected.within_trace,
                square.within_trace
            ));
            // NC1 is a function of the means and this projection (tests/collapse.rs holds it to
            // the full D x D decomposition).
            assert_eq!(square.means, projected.means);
            for (a, b) in square
                .effective_ranks
                .iter()
                .zip(&projected.effective_ranks)
            {
                assert!(close(a.unwrap(), b.unwrap(), a.unwrap()));
            }
        }
    }

    #[test]
    fn both_routes_do_not_depend_on_the_thread_count() {
        // Classes of about 42 rows in 60 dimensions (summed by blocks of rows on both routes),
        // in several blocks and two stripes.
        let (x, classes) = labelled(17_000, 60, 400, false, 9);
        assert_eq!(stripe_count(17_000, 60), 2);
        let counts = classes.counts();
        for route in [WithinRoute::Square, WithinRoute::Projected] {
            let flops = scatter_flops(&counts, 60, route);
            let run = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| {
                        let (timings, route) = (Timings::default(), (route, flops));
                        class_stats_routed(x.view(), &classes, None, route, &timings).unwrap()
                    })
            };
            let one = run(1);
            assert_eq!(run(2), one, "{route:?}");
            assert_eq!(run(3), one, "{route:?}");
        }
    }

    #[test]
    fn the_cheaper_route_is_taken() {
        // 100 classes of 50 rows in 4,096 dimensions: projections, no D x D sum.
        let counts = vec![50; 100];
        assert_eq!(within_route(&counts, 4096).0, WithinRoute::Projected);
        // As many classes as dimensions: Sigma_W itself.
        assert_eq!(within_route(&[3; 64], 64).0, WithinRoute::Square);
        // Classes of many rows in few dimensions: the D x D sum.
        assert_eq!(within_route(&[10_000; 10], 16).0, WithinRoute::Square);
    }
}
