//! Class statistics (Papyan, Han & Donoho, PNAS 2020): class counts and means, the global
//! mean, the within-class covariance `Sigma_W`, and per class the variance `Var_c` and the
//! effective rank of the centred rows.

use crate::error::Result;
use crate::kernels::classes::Classes;
use crate::kernels::scatter::{
    centre_rows_into, stripe_count, symmetrize, syrk_add, upper_scatter,
};
use crate::kernels::tiles::single_threaded_blas;
use crate::kernels::timings::{Timings, Work};
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
    /// `Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`, D x D.
    pub within_covariance: Array2<f64>,
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

/// One class's rows about its mean: their scatter added into `sum` (its upper triangle; the
/// caller symmetrises), their trace `sum_i ||x_i - mu||^2`, and the singular values of the
/// centred rows. A class with fewer rows than dimensions is centred into an `n x D` block whose
/// scatter is added into `sum` by `dsyrk` and whose singular values come from the `n x n` Gram
/// matrix: no D x D matrix of its own. Otherwise its scatter is formed (its eigenvalues need it)
/// and added.
fn add_class_scatter<F: Real>(
    x: ArrayView2<F>,
    rows: &[usize],
    mean: ArrayView1<f64>,
    sum: &mut Array2<f64>,
    seconds: &ThreadSeconds,
) -> Result<(f64, Vec<f64>)> {
    let d = x.ncols();
    let (square, trace) = ThreadSeconds::add(&seconds.scatters, || {
        if rows.len() < d {
            let mut z = Array2::<f64>::zeros((rows.len(), d));
            centre_rows_into(&mut z, x, rows, &mean.to_vec());
            syrk_add(z.view(), sum);
            let gram = z.dot(&z.t());
            let trace = gram.diag().sum();
            (gram, trace)
        } else {
            // One accumulator: the classes are already spread over the threads.
            let mut s = upper_scatter(x, rows, mean);
            symmetrize(&mut s);
            *sum += &s;
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

/// Compute [`ClassStats`] of `x` (rows as given) in O(C D + D^2) memory beyond the input: class
/// means in one pass, then one pass over each class's centred rows (`dsyrk`) that gives its
/// scatter (summed into `Sigma_W` over fixed groups of classes, in order), `Var_c = tr/n_c`
/// and its effective rank.
pub fn class_stats<F: Real>(x: ArrayView2<F>, classes: &Classes) -> Result<ClassStats> {
    class_stats_timed(x, classes, &Timings::default())
}

/// Values-only symmetric eigendecompositions of side `m` cost about `4/3 m^3` flops (the
/// reduction to tridiagonal form; the tridiagonal QR is `O(m^2)`).
pub fn eigen_work(sides: impl IntoIterator<Item = usize>) -> Work {
    Work::EigenFlops(
        sides
            .into_iter()
            .map(|m| 4.0 / 3.0 * (m as f64).powi(3))
            .sum(),
    )
}

/// [`class_stats`], recording two stages in `timings`: `class scatters` (the means and each
/// class's scatter, `N D^2` f64 flops) and `class eigenvalues` (one symmetric
/// eigendecomposition of side `min(n_c, D)` per class). The two run interleaved on every
/// thread, so the wall time is split between them in proportion to their thread time.
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
    let all: Vec<usize> = (0..c).collect();
    let group = c.div_ceil(stripe_count(d)).max(1);
    let groups = all
        .par_chunks(group)
        .map(|group| {
            let mut sum = Array2::<f64>::zeros((d, d));
            let mut per_class = Vec::with_capacity(group.len());
            for &k in group {
                let members = classes.members(k);
                let (trace, singular) =
                    add_class_scatter(x, members, means.row(k), &mut sum, &seconds)?;
                let variance = trace / members.len() as f64;
                let rank = (members.len() >= 2).then(|| effective_rank(&singular));
                per_class.push((variance, rank));
            }
            ThreadSeconds::add(&seconds.scatters, || symmetrize(&mut sum));
            Ok((sum, per_class))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut within_covariance = Array2::<f64>::zeros((d, d));
    let mut within_variance = Vec::with_capacity(c);
    let mut effective_ranks = Vec::with_capacity(c);
    for (sum, per_class) in groups {
        within_covariance += &sum;
        for (variance, rank) in per_class {
            within_variance.push(variance);
            effective_ranks.push(rank);
        }
    }
    within_covariance /= x.nrows() as f64;
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
    let n = x.nrows() as f64;
    timings.record(
        "class scatters",
        wall * (1.0 - eigen_share),
        // Each class's rows gathered (widened to f64), then its scatter by dsyrk.
        Work::Gather {
            rows: n,
            bytes: n * (d * std::mem::size_of::<F>()) as f64,
            flops: n * (d * d) as f64,
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
        within_covariance,
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
