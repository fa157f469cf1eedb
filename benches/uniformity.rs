//! Exact uniformity benchmark (issue 2): embgeom's tiled exact uniformity at N = 20,000,
//! D = 128 against (a) the pdist formula in Python (torch.pdist if importable, else SciPy)
//! and (b) the time the half Gram matrix takes at the sgemm rate measured in the same run;
//! then N = 100,000 exact in a child process whose peak memory is read from the kernel.
//!
//! Run: `cargo bench --bench uniformity` (Python with NumPy and SciPy or PyTorch for (a));
//! `cargo bench --bench uniformity -- --kernel-only` times the exact kernel alone at
//! N = 20,000 and 100,000 against the bound (`EMBGEOM_KERNEL` picks the kernel).

use embgeom_geometry::{
    normalize_rows, uniformity_exact, uniformity_sampled, NoProgress, DEFAULT_TILE,
};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rayon::prelude::*;
use std::time::Instant;

mod common;
use common::{child, fastest_seconds, gaussian, median_seconds, peak_rss_mib, python, write_npy};

const D: usize = 128;
const T: f64 = 2.0;

/// Unit rows from a deterministic Gaussian.
fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    normalize_rows(gaussian(n, d, seed).view()).expect("Gaussian rows are non-zero")
}

/// sgemm rate (FLOP/s) on all cores: every thread multiplies its own 1024^3 blocks with a
/// single-threaded BLAS call; the fastest of five runs, the rate this machine can reach.
fn sgemm_peak() -> f64 {
    let m = 1024;
    let a = unit_rows(m, m, 1);
    let b = unit_rows(m, m, 2);
    let threads = rayon::current_num_threads();
    // Warm up (and let the geometry crate switch OpenBLAS to one thread per call).
    uniformity_exact(a.view(), T, DEFAULT_TILE, &NoProgress).expect("warm-up");
    let reps = 4;
    let (seconds, _) = fastest_seconds(5, || {
        (0..threads * reps).into_par_iter().for_each(|_| {
            let mut c = Array2::<f32>::zeros((m, m));
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        })
    });
    (2 * m * m * m * threads * reps) as f64 / seconds
}

fn child_large(n: usize) {
    let x = unit_rows(n, D, 7);
    let start = Instant::now();
    let u = uniformity_exact(x.view(), T, DEFAULT_TILE, &NoProgress).expect("exact");
    let seconds = start.elapsed().as_secs_f64();
    println!("{seconds} {} {}", u.value, peak_rss_mib());
}

/// The half Gram matrix of `n` rows at the sgemm rate: `N(N-1)/2 x 2D` flops (about `N^2 D`).
fn gemm_bound(n: usize, peak: f64) -> f64 {
    (n * n * D) as f64 / peak
}

/// The exact kernel at N = 20,000 (in process, median of 3) and 100,000 (a child process)
/// against the half-Gram bound. The portable kernel runs at N = 5,000 only: on x86-64 it is
/// compiled without hardware FMA, so each `mul_add` is a call to libm (about 200x the bound;
/// N = 100,000 would take a quarter of an hour).
fn kernel_against_bound(peak: f64) {
    println!("| exact uniformity, D = {D} | seconds | GEMM bound (s) | ratio | value |");
    println!("|---|---|---|---|---|");
    let portable = embgeom_geometry::kernel() == embgeom_geometry::Kernel::Portable;
    let n = if portable { 5_000 } else { 20_000 };
    let x = unit_rows(n, D, 3);
    let (seconds, u) = median_seconds(3, || {
        uniformity_exact(x.view(), T, DEFAULT_TILE, &NoProgress).expect("exact")
    });
    let bound = gemm_bound(n, peak);
    println!(
        "| N = {n} | {seconds:.3} | {bound:.3} | {:.2} | {:.16} |",
        seconds / bound,
        u.value
    );
    if portable {
        println!("| N = 100000: not run for the portable kernel (software FMA) | | | | |");
        return;
    }
    let large = 100_000;
    match child(&["--child-large", &large.to_string()]).as_slice() {
        [seconds, value, _] => {
            let bound = gemm_bound(large, peak);
            println!(
                "| N = {large} | {seconds:.3} | {bound:.3} | {:.2} | {value:.16} |",
                seconds / bound
            );
        }
        _ => println!("| N = {large}: child run failed | | | | |"),
    }
}

fn python_reference(x: &Array2<f32>) -> Option<(String, f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("x.npy");
    write_npy(&path, x);
    let doc = python("uniformity_reference.py", &[path.to_str()?, &T.to_string()])?;
    Some((
        doc["impl"].as_str()?.to_string(),
        doc["seconds"].as_f64()?,
        doc["value"].as_f64()?,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-large") {
        child_large(args[i + 1].parse().expect("N"));
        return;
    }
    let threads = rayon::current_num_threads();
    let peak = sgemm_peak();
    println!(
        "threads: {threads}; sgemm rate: {:.1} GFLOP/s; kernel: {:?}",
        peak / 1e9,
        embgeom_geometry::kernel()
    );
    if args.iter().any(|a| a == "--kernel-only") {
        kernel_against_bound(peak);
        return;
    }

    let n = 20_000;
    let x = unit_rows(n, D, 3);
    let (ours, u) = median_seconds(3, || {
        uniformity_exact(x.view(), T, DEFAULT_TILE, &NoProgress).expect("exact")
    });
    let gemm_bound = gemm_bound(n, peak);
    let (sampled, s) = median_seconds(3, || {
        uniformity_sampled(x.view(), T, 10_000_000, 0).expect("sampled")
    });
    println!();
    println!("| N = {n}, D = {D}, t = 2 | seconds | ratio to embgeom exact | value |");
    println!("|---|---|---|---|");
    println!(
        "| embgeom exact (fused kernel, f64 log-sum-exp) | {ours:.3} | 1.00 | {:.9} |",
        u.value
    );
    println!(
        "| half Gram matrix at the measured sgemm rate (bound) | {gemm_bound:.3} | {:.2} | |",
        gemm_bound / ours
    );
    println!(
        "| embgeom sampled, 10^7 pairs | {sampled:.3} | {:.2} | {:.6} ± {:.6} |",
        sampled / ours,
        s.value,
        s.stderr.unwrap_or(f64::NAN)
    );
    match python_reference(&x) {
        Some((name, seconds, value)) => println!(
            "| {name} | {seconds:.3} | {:.2} | {value:.9} |",
            seconds / ours
        ),
        None => {
            println!("| python reference | skipped (no python3 with numpy+scipy or torch) | | |")
        }
    }

    let large = 100_000;
    if let [seconds, value, rss] = child(&["--child-large", &large.to_string()]).as_slice() {
        println!(
            "| N = {large}, D = {D}: embgeom exact | {seconds:.2} | peak RSS {rss:.0} MiB (input {:.0} MiB) | {value:.9} |",
            (large * D * 4) as f64 / 1048576.0
        );
    } else {
        println!("| N = {large}: child run failed | | | |");
    }
}
