//! Shared pieces of the bench binaries: deterministic data, timing, peak memory, and the
//! Python reference runner.
#![allow(dead_code)]

use ndarray::Array2;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "../../crates/geometry/tests/common/mod.rs"]
mod data;

/// The geometry tests' deterministic standard normals, as f32.
pub fn gaussian(n: usize, d: usize, seed: u64) -> Array2<f32> {
    data::gaussian(n, d, seed).mapv(|v| v as f32)
}

/// Wall times of `runs` calls, sorted, and the last result.
fn sorted_seconds<R>(runs: usize, mut f: impl FnMut() -> R) -> (Vec<f64>, R) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f());
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times, last.expect("runs > 0"))
}

/// Median wall time of `runs` calls, and the last result.
pub fn median_seconds<R>(runs: usize, f: impl FnMut() -> R) -> (f64, R) {
    let (times, last) = sorted_seconds(runs, f);
    (times[runs / 2], last)
}

/// Fastest wall time of `runs` calls (for a machine's rate, a bound), and the last result.
pub fn fastest_seconds<R>(runs: usize, f: impl FnMut() -> R) -> (f64, R) {
    let (times, last) = sorted_seconds(runs, f);
    (times[0], last)
}

/// Peak resident memory of this process (VmHWM), MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Write an f32 matrix as `.npy`.
pub fn write_npy(path: &Path, x: &Array2<f32>) {
    let values: Vec<f32> = x.iter().cloned().collect();
    std::fs::write(
        path,
        embgeom_io::npy_bytes_f32(&[x.nrows(), x.ncols()], &values),
    )
    .expect("write npy");
}

/// Run `benches/<script>` with python3 and parse its last stdout line as JSON; `None` (with a
/// note on stderr) when Python or its packages are missing.
/// The Python to run references with: `$EMBGEOM_PYTHON`, else the project's venv
/// (`scripts/python.sh` makes it), else `python3`.
fn interpreter() -> std::ffi::OsString {
    if let Some(python) = std::env::var_os("EMBGEOM_PYTHON") {
        return python;
    }
    let venv = std::env::var_os("EMBGEOM_VENV")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/embgeom-py")))
        .map(|dir| dir.join("bin/python"));
    match venv {
        Some(python) if python.exists() => python.into_os_string(),
        _ => "python3".into(),
    }
}

/// Run `benches/{script}` with `args`; its last line of output as JSON (`None`, with the reason
/// on stderr, when it fails).
pub fn python(script: &str, args: &[&str]) -> Option<serde_json::Value> {
    let path = format!("{}/benches/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(interpreter())
        .arg(&path)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "{script} skipped: {}",
            err.lines().last().unwrap_or("failed")
        );
        return None;
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last()?).ok()
}

/// Run this bench binary again with `args` and parse the numbers it prints.
pub fn child(args: &[&str]) -> Vec<f64> {
    child_with_env(args, &[])
}

/// [`child`] with environment variables `env` set.
pub fn child_with_env(args: &[&str], env: &[(&str, &str)]) -> Vec<f64> {
    let exe = std::env::current_exe().expect("bench binary");
    let out = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("child run");
    if !out.status.success() {
        eprintln!(
            "child {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect()
}
