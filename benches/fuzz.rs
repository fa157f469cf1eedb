//! The long mode of the mutation fuzzer: mutants of valid files of every format through the
//! built `embgeom analyze` binary, each under a time limit (10 s) and a memory limit (4 GiB of
//! address space), counting exit statuses. Only 0 (a result) and 2 (an error) pass; a panic
//! (101), an abort (134, e.g. an allocation over the limit), a signal or a timeout is a failure
//! and is listed with the mutation that caused it.
//!
//! `cargo bench --bench fuzz [-- MUTANTS [SEED]]` (default 20,000 mutants, seed 1).

#[path = "../tests/common/mutation.rs"]
mod fuzz;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIME_LIMIT: Duration = Duration::from_secs(10);
const MEMORY_LIMIT_KIB: u64 = 4 * 1024 * 1024;

/// Exit status of one run, `None` on a timeout.
fn run(binary: &str, args: &[String]) -> Option<i32> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KIB}; exec \"$0\" \"$@\""))
        .arg(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run embgeom");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            use std::os::unix::process::ExitStatusExt;
            return Some(status.code().unwrap_or(128 + status.signal().unwrap_or(0)));
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mutants: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let run_seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let binary = env!("CARGO_BIN_EXE_embgeom");
    let dir = tempfile::tempdir().expect("tempdir");
    fuzz::write_partners(dir.path());
    let seeds = fuzz::seeds();
    let start = Instant::now();
    let mut counts = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for index in 0..mutants {
        let seed = &seeds[(index % seeds.len() as u64) as usize];
        let (bytes, what) = fuzz::mutant(seed, run_seed, index);
        let mut command = vec!["analyze".to_string()];
        command.extend(fuzz::place(seed, &bytes, dir.path()).args());
        command.extend(["--json".into(), "-".into()]);
        let status = run(binary, &command);
        let key = status.map_or_else(|| "timeout".to_string(), |s| s.to_string());
        *counts.entry(key).or_insert(0u64) += 1;
        if !matches!(status, Some(0) | Some(2)) {
            failures.push(format!("{} mutant {index} ({what}): {status:?}", seed.name));
            let keep = dir.path().join(format!("failure-{index}-{}", seed.name));
            let _ = std::fs::write(keep, &bytes);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{mutants} mutants of {} seed files (seed {run_seed}) in {seconds:.0} s",
        seeds.len()
    );
    for (status, count) in &counts {
        println!("  exit {status}: {count}");
    }
    for failure in &failures {
        println!("FAILURE {failure}");
    }
    println!(
        "fuzz: {} passed, {} failed",
        mutants - failures.len() as u64,
        failures.len()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
