//! The stage table of `analyze --timings`: each stage's wall time against its bound (its
//! flops over this machine's GEMM rate, or its bytes over its memory bandwidth), with the rates
//! measured once per machine and cached.

use embgeom_geometry::timings::{Rates, StageTime, Work};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where the measured rates of this machine are kept: one file per CPU model and thread count.
fn rates_file(threads: usize) -> Option<PathBuf> {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let model: String = model
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Some(
        base.join("embgeom")
            .join(format!("rates-{model}-{threads}.json")),
    )
}

/// This machine's GEMM rates and memory bandwidth: from the cache, else measured (about a
/// second) and cached.
pub fn machine_rates() -> Rates {
    let threads = rayon::current_num_threads();
    let file = rates_file(threads);
    if let Some(rates) = file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|bytes| serde_json::from_slice::<Rates>(&bytes).ok())
    {
        return rates;
    }
    let rates = Rates::measure();
    if let Some(file) = file {
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string(&rates) {
            let _ = embgeom_io::write_atomic(&file, text.as_bytes());
        }
    }
    rates
}

fn work_json(work: Work) -> Value {
    match work {
        Work::SingleFlops(f) => json!({"flops": f, "precision": "f32"}),
        Work::DoubleFlops(f) => json!({"flops": f, "precision": "f64"}),
        Work::Bytes(b) => json!({"bytes": b}),
        Work::Unmodelled => Value::Null,
    }
}

/// The `timings` object of the analysis document: the rates, and per stage its seconds,
/// work, bound and ratio (seconds over bound).
pub fn timings_document(stages: &[StageTime], rates: &Rates) -> Value {
    let total: f64 = stages.iter().map(|s| s.seconds).sum();
    json!({
        "rates": rates,
        "total_seconds": total,
        "stages": stages.iter().map(|s| {
            let bound = rates.bound(s.work);
            json!({
                "stage": s.stage,
                "seconds": s.seconds,
                "work": work_json(s.work),
                "bound_seconds": bound,
                "ratio": bound.filter(|&b| b > 0.0).map(|b| s.seconds / b),
            })
        }).collect::<Vec<_>>(),
    })
}

/// The stage table for people.
pub fn timings_table(stages: &[StageTime], rates: &Rates) -> String {
    let mut out = format!(
        "\nstage timings (bounds: sgemm {:.0} GFLOP/s, dgemm {:.0} GFLOP/s, memory {:.1} GB/s, {} threads)\n{:<30} {:>10} {:>14} {:>10} {:>7}\n",
        rates.sgemm_gflops, rates.dgemm_gflops, rates.bandwidth_gbs, rates.threads,
        "stage", "seconds", "work", "bound s", "ratio"
    );
    for s in stages {
        let work = match s.work {
            Work::SingleFlops(f) => format!("{:.2e} f32", f),
            Work::DoubleFlops(f) => format!("{:.2e} f64", f),
            Work::Bytes(b) => format!("{:.2e} B", b),
            Work::Unmodelled => "-".into(),
        };
        let bound = rates.bound(s.work);
        out.push_str(&format!(
            "{:<30} {:>10.3} {:>14} {:>10} {:>7}\n",
            s.stage,
            s.seconds,
            work,
            bound.map_or_else(|| "-".into(), |b| format!("{b:.3}")),
            bound
                .filter(|&b| b > 0.0)
                .map_or_else(|| "-".into(), |b| format!("{:.2}", s.seconds / b)),
        ));
    }
    let total: f64 = stages.iter().map(|s| s.seconds).sum();
    out.push_str(&format!("{:<30} {:>10.3}\n", "total", total));
    out
}
