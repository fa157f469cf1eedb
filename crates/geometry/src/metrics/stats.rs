//! Class statistics (Papyan, Han & Donoho, PNAS 2020): class counts and means, the global
//! mean, the within-class covariance `Sigma_W`, and per class the variance `Var_c` and the
//! effective rank of the centred rows.

use crate::error::Result;
use crate::kernels::classes::Classes;
use crate::kernels::scatter::{
    centre_rows_into, row_gram, stripe_count, symmetrize, syrk_add, upper_scatter,
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
    /// Only `sum_c (Z_c M^T)^T (Z_c M^T)`, C x C: no D x D matrix when every class has
    /// fewer rows than dimensions.
    Projected,
}

/// The flops of the class scatters (`dsyrk` and GEMM; the eigendecompositions apart) of classes
/// of `counts` rows in `d` dimensions by `route`: each class's Gram matrix `n_c^2 D` (or its
/// scatter `n_c D^2` when `n_c >= D`), then the within-class sum: `n_c D^2` per class and
/// `2 C D^2 + 2 C^2 D` for `M Sigma_W M^T` (`Square`), or `2 n_c C D + n_c C^2` per class
/// (`2 C D^2 + 2 C^2 D` for a class with `n_c >= D`; `Projected`).
fn scatter_flops(counts: &[usize], d: usize, route: WithinRoute) -> f64 {
    let (c, d) = (counts.len() as f64, d as f64);
    let projection = 2.0 * c * d * d + 2.0 * c * c * d;
    let mut flops = match (route, mean_span_basis(counts.len(), d as usize)) {
        (WithinRoute::Square, true) => projection,
        _ => 0.0,
    };
    for &n_c in counts {
        let n = n_c as f64;
        let small = n < d;
        flops += match small {
            true => n * n * d,
            false => n * d * d,
        };
        flops += match (route, small) {
            (WithinRoute::Square, true) => n * d * d,
            (WithinRoute::Square, false) => 0.0,
            (WithinRoute::Projected, true) => 2.0 * n * c * d + n * c * c,
            (WithinRoute::Projected, false) => projection,
        };
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

/// What one class adds: into `sum` (upper triangle; the caller symmetrises) its scatter
/// (`Square`, D x D) or `P^T P` with `P = Z M^T` (`Projected`, C x C).
struct ClassScatter<'a> {
    route: WithinRoute,
    /// The centred class means `M` (C x D).
    centred_means: &'a Array2<f64>,
}

impl ClassScatter<'_> {
    /// One class's rows about its mean: their share of the within-class sum added into `sum`,
    /// their trace `sum_i ||x_i - mu||^2`, and the singular values of the centred rows. A class
    /// with fewer rows than dimensions is centred into an `n x D` block whose singular values
    /// come from its `n x n` Gram matrix (`dsyrk`): no D x D matrix of its own. Otherwise its
    /// scatter is formed (its eigenvalues need it).
    fn add<F: Real>(
        &self,
        x: ArrayView2<F>,
        rows: &[usize],
        mean: ArrayView1<f64>,
        sum: &mut Array2<f64>,
        seconds: &ThreadSeconds,
    ) -> Result<(f64, Vec<f64>)> {
        let d = x.ncols();
        let m = self.centred_means;
        let (square, trace) = ThreadSeconds::add(&seconds.scatters, || {
            if rows.len() < d {
                let mut z = Array2::<f64>::zeros((rows.len(), d));
                centre_rows_into(&mut z, x, rows, &mean.to_vec());
                match self.route {
                    WithinRoute::Square => syrk_add(z.view(), sum),
                    WithinRoute::Projected => syrk_add(z.dot(&m.t()).view(), sum),
                }
                let gram = row_gram(z.view());
                let trace = gram.diag().sum();
                (gram, trace)
            } else {
                // One accumulator: the classes are already spread over the threads.
                let mut s = upper_scatter(x, rows, mean);
                symmetrize(&mut s);
                match self.route {
                    WithinRoute::Square => *sum += &s,
                    WithinRoute::Projected => *sum += &m.dot(&s).dot(&m.t()),
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
    let scatter = ClassScatter {
        route,
        centred_means: &centred_means,
    };
    let side = match route {
        WithinRoute::Square => d,
        WithinRoute::Projected => c,
    };
    let all: Vec<usize> = (0..c).collect();
    let group = c.div_ceil(stripe_count(side)).max(1);
    let groups = all
        .par_chunks(group)
        .map(|group| {
            let mut sum = Array2::<f64>::zeros((side, side));
            let mut per_class = Vec::with_capacity(group.len());
            for &k in group {
                let members = classes.members(k);
                let (trace, singular) =
                    scatter.add(x, members, means.row(k), &mut sum, &seconds)?;
                let variance = trace / members.len() as f64;
                let rank = (members.len() >= 2).then(|| effective_rank(&singular));
                per_class.push((trace, variance, rank));
            }
            ThreadSeconds::add(&seconds.scatters, || symmetrize(&mut sum));
            Ok((sum, per_class))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut within = Array2::<f64>::zeros((side, side));
    let mut within_trace = 0.0;
    let mut within_variance = Vec::with_capacity(c);
    let mut effective_ranks = Vec::with_capacity(c);
    for (sum, per_class) in groups {
        within += &sum;
        for (trace, variance, rank) in per_class {
            within_trace += trace;
            within_variance.push(variance);
            effective_ranks.push(rank);
        }
    }
    let n = x.nrows() as f64;
    within /= n;
    within_trace /= n;
    let within_projected = match route {
        WithinRoute::Square => ThreadSeconds::add(&seconds.scatters, || {
            ClassStats::project_within(&means, &global_mean, within)
        }),
        WithinRoute::Projected => within,
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
