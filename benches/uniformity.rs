//! Exact uniformity benchmark (issue 2): embgeom's tiled exact uniformity at N = 20,000,
//! D = 128 against (a) the pdist formula in Python (torch.pdist if importable, else SciPy)
//! and (b) the time the half Gram matrix takes at the sgemm rate measured in the same run;
//! then N = 100,000 exact in a child process whose peak memory is read from the kernel.
//!
//! Run: `cargo bench --bench uniformity` (Python with NumPy and SciPy or PyTorch for (a)).

use embgeom_geometry::{
    normalize_rows, uniformity_exact, uniformity_sampled, NoProgress, DEFAULT_TILE,
};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rayon::prelude::*;
use std::process::Command;
use std::time::Instant;

const D: usize = 128;
const T: f64 = 2.0;

/// Unit rows from a deterministic Gaussian (SplitMix64 + Box-Muller).
fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let x = Array2::from_shape_simple_fn((n, d), || {
        let (u, v) = (uniform().max(1e-300), uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    });
    normalize_rows(x.view()).expect("Gaussian rows are non-zero")
}

/// Median wall time of `runs` calls.
fn median_seconds<R>(runs: usize, mut f: impl FnMut() -> R) -> (f64, R) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f());
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], last.expect("runs > 0"))
}

/// sgemm rate (FLOP/s) on all cores: every thread multiplies its own 1024^3 blocks with a
/// single-threaded BLAS call, the way the uniformity kernel uses BLAS.
fn sgemm_peak() -> f64 {
    let m = 1024;
    let a = unit_rows(m, m, 1);
    let b = unit_rows(m, m, 2);
    let threads = rayon::current_num_threads();
    // Warm up (and let the geometry crate switch OpenBLAS to one thread per call).
    uniformity_exact(a.view(), T, DEFAULT_TILE, &NoProgress).expect("warm-up");
    let reps = 4;
    let (seconds, _) = median_seconds(3, || {
        (0..threads * reps).into_par_iter().for_each(|_| {
            let mut c = Array2::<f32>::zeros((m, m));
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        })
    });
    (2 * m * m * m * threads * reps) as f64 / seconds
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn child_large(n: usize) {
    let x = unit_rows(n, D, 7);
    let start = Instant::now();
    let u = uniformity_exact(x.view(), T, DEFAULT_TILE, &NoProgress).expect("exact");
    let seconds = start.elapsed().as_secs_f64();
    println!("{seconds} {} {}", u.value, peak_rss_mib());
}

fn python_reference(x: &Array2<f32>) -> Option<(String, f64, f64)> {
    let dir = std::env::temp_dir().join(format!("embgeom-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("x.npy");
    let values: Vec<f32> = x.iter().cloned().collect();
    std::fs::write(
        &path,
        embgeom_io::npy_bytes_f32(&[x.nrows(), x.ncols()], &values),
    )
    .ok()?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/uniformity_reference.py"
    );
    let out = Command::new("python3")
        .args([script, path.to_str()?, &T.to_string()])
        .output()
        .ok();
    std::fs::remove_dir_all(&dir).ok();
    let out = out?;
    if !out.status.success() {
        eprintln!(
            "python reference skipped: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
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
    println!("threads: {threads}; sgemm rate: {:.1} GFLOP/s", peak / 1e9);

    let n = 20_000;
    let x = unit_rows(n, D, 3);
    let (ours, u) = median_seconds(3, || {
        uniformity_exact(x.view(), T, DEFAULT_TILE, &NoProgress).expect("exact")
    });
    let gemm_bound = (n * n * D) as f64 / peak; // N(N+1)/2 x D multiply-adds ~ N^2 D flops
    let (sampled, s) = median_seconds(3, || {
        uniformity_sampled(x.view(), T, 10_000_000, 0).expect("sampled")
    });
    println!();
    println!("| N = {n}, D = {D}, t = 2 | seconds | ratio to embgeom exact | value |");
    println!("|---|---|---|---|");
    println!(
        "| embgeom exact (tiled sgemm + exp, f64 log-sum-exp) | {ours:.3} | 1.00 | {:.9} |",
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
    let exe = std::env::current_exe().expect("bench binary");
    let out = Command::new(exe)
        .args(["--child-large", &large.to_string()])
        .output()
        .expect("child run");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    if let [seconds, value, rss] = fields.as_slice() {
        println!(
            "| N = {large}, D = {D}: embgeom exact | {seconds:.2} | peak RSS {rss:.0} MiB (input {:.0} MiB) | {value:.9} |",
            (large * D * 4) as f64 / 1048576.0
        );
    } else {
        println!(
            "| N = {large} child failed | {} | | |",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
