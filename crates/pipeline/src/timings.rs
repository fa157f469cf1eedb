//! The stage table of `analyze --timings`: each stage's wall time against its bound (its
//! flops over this machine's GEMM rate, or its bytes over its memory bandwidth), with the rates
//! measured once per machine and cached.

use embgeom_geometry::timings::{Rates, StageTime, Work};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Resident memory of this process (`/proc/self/status`, Linux): `(VmRSS, RssAnon, RssFile,
/// VmHWM)` in bytes.
fn resident_memory() -> Option<(u64, u64, u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((
        field("VmRSS:")?,
        field("RssAnon:")?,
        field("RssFile:")?,
        field("VmHWM:")?,
    ))
}

/// The peak memory of a run, against the size of its input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPeaks {
    /// Bytes of the input files (embeddings and views).
    pub input_bytes: u64,
    /// Peak resident memory (`VmHWM`): every page mapped in, the file pages of a memory-mapped
    /// input (page cache) included.
    pub peak_resident_bytes: u64,
    /// Peak anonymous memory (`RssAnon`, sampled every 5 ms): what the process itself
    /// allocated, the page cache aside.
    pub peak_anonymous_bytes: u64,
    /// File pages mapped when the anonymous memory peaked (`RssFile`).
    pub file_bytes_at_peak: u64,
}

/// Samples the memory of this process in a thread until [`MemoryWatch::finish`] (or until
/// it is dropped).
#[derive(Debug)]
pub struct MemoryWatch {
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<(u64, u64)>>,
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl MemoryWatch {
    /// Start sampling.
    pub fn start() -> MemoryWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let sampler = std::thread::spawn(move || {
            let mut peak = (0u64, 0u64);
            loop {
                if let Some((_, anonymous, file, _)) = resident_memory() {
                    if anonymous > peak.0 {
                        peak = (anonymous, file);
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        MemoryWatch {
            stop,
            sampler: Some(sampler),
        }
    }

    /// Stop sampling; `None` where `/proc/self/status` is not readable (not Linux).
    pub fn finish(mut self, input_bytes: u64) -> Option<MemoryPeaks> {
        self.stop.store(true, Ordering::Relaxed);
        let (anonymous, file) = self.sampler.take()?.join().ok()?;
        let (_, _, _, high_water) = resident_memory()?;
        Some(MemoryPeaks {
            input_bytes,
            peak_resident_bytes: high_water,
            peak_anonymous_bytes: anonymous,
            file_bytes_at_peak: file,
        })
    }
}

/// The lines of the stage table on memory.
fn memory_lines(peaks: &MemoryPeaks) -> String {
    let input = peaks.input_bytes.max(1) as f64;
    let gb = |b: u64| b as f64 / 1e9;
    format!(
        "peak memory: {:.2} GB resident ({:.2}x the input's {:.2} GB), of which {:.2} GB anonymous ({:.2}x; the page cache aside) and {:.2} GB mapped file pages\n",
        gb(peaks.peak_resident_bytes),
        peaks.peak_resident_bytes as f64 / input,
        gb(peaks.input_bytes),
        gb(peaks.peak_anonymous_bytes),
        peaks.peak_anonymous_bytes as f64 / input,
        gb(peaks.file_bytes_at_peak),
    )
}

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
            .join(format!("rates-v6-{model}-{threads}.json")),
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
            let _ = embgeom_io::write_output(&file, text.as_bytes());
        }
    }
    rates
}

fn work_json(work: Work) -> Value {
    match work {
        Work::SingleFlops(f) => json!({"flops": f, "precision": "f32"}),
        Work::DoubleFlops(f) => json!({"flops": f, "precision": "f64"}),
        Work::EigenFlops(f) => {
            json!({"flops": f, "precision": "f64", "kind": "eigendecomposition"})
        }
        Work::TileFlops(f) => json!({"flops": f, "precision": "bf16", "kind": "amx tiles"}),
        Work::Decomposition { products, eigen } => json!({
            "flops": products + eigen,
            "product_flops": products,
            "eigendecomposition_flops": eigen,
            "precision": "f64",
        }),
        Work::Bytes(b) => json!({"bytes": b}),
        Work::NewCopy { read, written } => {
            json!({"bytes": read + written, "bytes_read": read, "bytes_to_new_memory": written})
        }
        Work::Gather {
            rows,
            bytes,
            flops,
            single,
        } => json!({
            "rows_gathered": rows,
            "bytes": bytes,
            "flops": flops,
            "precision": if single { "f32" } else { "f64" },
        }),
        Work::Unmodelled => Value::Null,
    }
}

/// The `timings` object of the analysis document: the rates, per stage its seconds, work,
/// bound and ratio (seconds over bound), and the peak memory when measured.
pub fn timings_document(
    stages: &[StageTime],
    rates: &Rates,
    memory: Option<&MemoryPeaks>,
) -> Value {
    let total: f64 = stages.iter().map(|s| s.seconds).sum();
    json!({
        "rates": rates,
        "memory": memory,
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
pub fn timings_table(stages: &[StageTime], rates: &Rates, memory: Option<&MemoryPeaks>) -> String {
    let mut out = format!(
        "\nstage timings (bounds: sgemm {:.0} GFLOP/s, dgemm {:.0} GFLOP/s, {}eigenvalues {:.1} GFLOP/s, memory {:.1} GB/s, new memory {:.1} GB/s, random rows {:.0} M/s and {:.1} GB/s, {} threads)\n{:<30} {:>10} {:>14} {:>10} {:>7}\n",
        rates.sgemm_gflops, rates.dgemm_gflops,
        rates.tile_gflops.map_or_else(String::new, |t| format!("AMX bf16 tiles {t:.0} GFLOP/s, ")),
        rates.eigen_gflops, rates.bandwidth_gbs, rates.new_memory_gbs,
        rates.random_rows_per_s / 1e6, rates.random_read_gbs, rates.threads,
        "stage", "seconds", "work", "bound s", "ratio"
    );
    for s in stages {
        let work = match s.work {
            Work::SingleFlops(f) => format!("{:.2e} f32", f),
            Work::DoubleFlops(f) => format!("{:.2e} f64", f),
            Work::EigenFlops(f) => format!("{:.2e} eig", f),
            Work::Decomposition { products, eigen } => {
                format!("{:.1e} f64+eig", products + eigen)
            }
            Work::TileFlops(f) => format!("{:.2e} bf16", f),
            Work::Bytes(b) => format!("{:.2e} B", b),
            Work::NewCopy { read, written } => format!("{:.2e} B", read + written),
            Work::Gather { rows, .. } => format!("{:.2e} rows", rows),
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
    if let Some(peaks) = memory {
        out.push_str(&memory_lines(peaks));
    }
    out
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_watch_sees_memory_allocated_while_it_runs() {
        let watch = MemoryWatch::start();
        let before = resident_memory().expect("/proc/self/status").1;
        let block = vec![1u8; 256 << 20];
        std::thread::sleep(Duration::from_millis(50));
        let peaks = watch.finish(1 << 20).expect("/proc/self/status");
        std::hint::black_box(&block);
        assert!(
            peaks.peak_anonymous_bytes >= before + (200 << 20),
            "{peaks:?}"
        );
        assert!(
            peaks.peak_resident_bytes >= peaks.peak_anonymous_bytes,
            "{peaks:?}"
        );
        assert_eq!(peaks.input_bytes, 1 << 20);
        assert!(memory_lines(&peaks).starts_with("peak memory: "));
    }
}
