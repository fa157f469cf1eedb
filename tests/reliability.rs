//! One test per defect found by hostile inputs: each ends in a correct result or exit status
//! 2 with a message naming the file, never a panic, a hang or a silent NaN.

use embgeom_io::npy_bytes_f32;
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/mutation.rs"]
mod mutation;
use cli::*;

/// An `.npy` file with any descr, shape text and data bytes.
fn npy(path: &Path, descr: &str, shape: &str, data: &[u8]) -> String {
    std::fs::write(path, mutation::npy(descr, false, shape, data)).unwrap();
    path.display().to_string()
}

/// Three well-separated classes of 20 rows in 6 dimensions, f64.
fn clustered(scale: f64) -> (Vec<f64>, Vec<i64>) {
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for i in 0..60 {
        let c = i % 3;
        for j in 0..6 {
            let centre = if j == c { 3.0 } else { 0.0 };
            let noise = (((i * 7 + j * 13) % 17) as f64 - 8.0) / 16.0;
            values.push((centre + noise + 0.5) * scale);
        }
        labels.push(c as i64);
    }
    (values, labels)
}

/// The exit status and standard error of a child whose stderr is piped.
fn finished(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn npy_headers_that_used_to_panic_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A shape whose element count wraps around usize.
    let huge = npy(
        &d.join("huge.npy"),
        "<f4",
        "(4294967296, 4294967296, 2)",
        &[0; 16],
    );
    assert!(fails(&["analyze", &huge]).contains("huge.npy: corrupt or invalid file: shape"));
    for (name, descr) in [
        ("empty.npy", ""),
        ("accent.npy", "é4"),
        ("u0.npy", "<U0"),
        ("s0.npy", "|S0"),
    ] {
        let path = npy(&d.join(name), descr, "(2,)", &[0; 8]);
        let message = fails(&["analyze", &path]);
        assert!(
            message.contains(&format!("{name}: unsupported dtype")),
            "{message}"
        );
    }
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_embgeom"))
        .args(["analyze", "data/digits.npz"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let (status, stderr) = finished(child);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn parameters_are_checked_once_with_their_range() {
    for (flag, value, range) in [
        ("--pairs", "18446744073709551615", "must be in [2, 10^11]"),
        ("--t", "1e39", "must be in (0, 10000]"),
        ("--t", "0", "must be in (0, 10000]"),
        ("--alpha", "-1", "must be in (0, 64]"),
        ("--knn-queries", "0", "must be at least 1"),
        ("--knn-k", "0", "must be in [1, 100000]"),
        ("--knn-temperature", "0", "must be in [0.0001, 10000]"),
        ("--isoscore-zeta", "1.5", "must be in [0, 1]"),
        ("--isoscore-zeta", "NaN", "must be in [0, 1]"),
    ] {
        let message = fails(&["analyze", "data/digits.npz", flag, value]);
        assert!(message.contains(range), "{flag} {value}: {message}");
    }
}

#[test]
fn overflowing_values_are_an_error_not_a_silent_nan() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..40).map(|k| (k % 7) as f32 * 4e37 + 1e37).collect();
    let path = dir.path().join("big.npy");
    std::fs::write(&path, npy_bytes_f32(&[10, 4], &values)).unwrap();
    let message = fails(&["analyze", path.to_str().unwrap(), "--no-normalize"]);
    assert!(message.contains("is not finite"), "{message}");
    // Normalised, the same rows are fine.
    let doc = json(&["analyze", path.to_str().unwrap()]);
    assert!(doc["metrics"]["uniformity"]["value"].as_f64().is_some());
}

#[test]
fn extreme_f64_scales_give_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, labels) = clustered(1.0);
    let label_path = d.join("labels.npy");
    npy(
        &label_path,
        "<i8",
        "(60,)",
        &labels
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let analyse = |scale: f64| {
        let (values, _) = clustered(scale);
        let path = npy(
            &d.join(format!("x{scale:e}.npy")),
            "<f8",
            "(60, 6)",
            &f64_bytes(&values),
        );
        json(&["analyze", &path, "--labels", label_path.to_str().unwrap()])
    };
    let base = analyse(1.0);
    for scale in [1e200, 1e-200, 1e160, 1e-170, 1e150, 1e-150] {
        let doc = analyse(scale);
        for metric in [
            "uniformity",
            "nc1",
            "etf_distance",
            "cdnv",
            "effective_rank",
            "knn_accuracy",
        ] {
            let (a, b) = (
                base["metrics"][metric]["value"].as_f64().unwrap(),
                doc["metrics"][metric]["value"].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "scale {scale:e}, {metric}: {a} vs {b}"
            );
        }
        if scale.abs().log10().abs() > 150.0 {
            continue; // the variance itself (scale^2) is beyond f64
        }
        let variance = |d: &Value| d["metrics"]["per_class"][0]["within_variance"].as_f64();
        let ratio = variance(&doc).unwrap() / variance(&base).unwrap() / (scale * scale);
        assert!(
            (ratio - 1.0).abs() < 1e-9,
            "variances in the original units"
        );
    }
}

#[test]
fn unsigned_labels_above_two_to_the_63_keep_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = [1u64 << 63, (1 << 63) + 1];
    let labels: Vec<u8> = (0..12).flat_map(|i| big[i % 2].to_le_bytes()).collect();
    let label_path = npy(&d.join("labels.npy"), "<u8", "(12,)", &labels);
    let rows: Vec<f32> = (0..48).map(|k| ((k * 5 % 9) as f32) - 4.0).collect();
    let emb = d.join("emb.npy");
    std::fs::write(&emb, npy_bytes_f32(&[12, 4], &rows)).unwrap();
    let doc = json(&["analyze", emb.to_str().unwrap(), "--labels", &label_path]);
    let names: Vec<&str> = doc["metrics"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["9223372036854775808", "9223372036854775809"]);
}

#[test]
fn csv_cells_and_headers_are_read_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = |cell: &str| -> String {
        let mut text = String::from("a,b,c, label\n");
        for i in 0..9 {
            let first = if i == 4 {
                cell.to_string()
            } else {
                format!("{}", i % 3 + 1)
            };
            text += &format!("{first},{},{}, {}\n", (i * 2) % 5 + 1, i % 4, i % 3);
        }
        text
    };
    // A header " label" (leading space) is the label column.
    let good = d.join("good.csv");
    std::fs::write(&good, rows("1.5")).unwrap();
    let doc = json(&["analyze", good.to_str().unwrap()]);
    assert_eq!(doc["dim"], 3, "the label is not a feature");
    assert_eq!(doc["num_classes"], 3);
    // Quoted numbers are numbers.
    let quoted = d.join("quoted.csv");
    std::fs::write(&quoted, rows("\"2.5\"")).unwrap();
    assert_eq!(json(&["analyze", quoted.to_str().unwrap()])["dim"], 3);
    // A cell that is not a number is an error naming the column and the row, never a
    // feature column silently dropped.
    for cell in ["abc", "\"1,5\""] {
        let bad = d.join("bad.csv");
        std::fs::write(&bad, rows(cell)).unwrap();
        let message = fails(&["analyze", bad.to_str().unwrap()]);
        assert!(message.contains("bad.csv:a: row 4 is"), "{message}");
        let message = fails(&["analyze", bad.to_str().unwrap(), "--columns", "a,b"]);
        assert!(message.contains("bad.csv:a: row 4 is"), "{message}");
    }
}

#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.npy");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let message = fails(&["analyze", fifo.to_str().unwrap()]);
    assert!(
        message.contains("pipe.npy: not a regular file (a FIFO)"),
        "{message}"
    );
    // A directory is a sharded dataset for analyze, and not a file for report.
    let message = fails(&["analyze", dir.path().to_str().unwrap()]);
    assert!(message.contains("no numbered shards"), "{message}");
    let out = dir.path().join("out");
    let message = fails(&[
        "report",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        message.contains("not a regular file (a directory)"),
        "{message}"
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.npy");
    std::fs::write(&one, npy_bytes_f32(&[1, 3], &[1.0, 2.0, 3.0])).unwrap();
    let message = fails(&["analyze", one.to_str().unwrap()]);
    assert!(
        message.contains("one.npy: uniformity needs at least 2 rows"),
        "{message}"
    );
    let out = dir.path().join("missing-dir/out.json");
    let message = fails(&[
        "analyze",
        "data/digits.npz",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(
        message.contains("missing-dir/out.json: cannot write"),
        "{message}"
    );
}

fn write_checkpoints(run: &Path, steps: usize) {
    for s in 0..steps {
        let rows: Vec<f32> = (0..40)
            .map(|k| ((k * (s + 3)) % 11) as f32 - 5.0 + (k / 4 % 2) as f32 * 3.0)
            .collect();
        std::fs::write(
            run.join(format!("ckpt_{s}.npy")),
            npy_bytes_f32(&[10, 4], &rows),
        )
        .unwrap();
    }
}

#[test]
fn track_goes_on_past_a_bad_checkpoint_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    write_checkpoints(&run, 3);
    // A checkpoint still being written: cut in the middle.
    let whole = std::fs::read(run.join("ckpt_2.npy")).unwrap();
    std::fs::write(run.join("ckpt_2.npy"), &whole[..whole.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let args = [
        "track",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let message = fails(&args);
    assert!(
        message.contains("failed: ") && message.contains("ckpt_2.npy"),
        "{message}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "the two good checkpoints are written"
    );

    // With --watch the half-written checkpoint is a note, retried on the next poll.
    let watched = embgeom(&[
        "track",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--watch",
        "--watch-rounds",
        "1",
        "--interval",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&watched.stderr);
    assert!(watched.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: skipped") && stderr.contains("retried"),
        "{stderr}"
    );

    // Once written, a rerun is not refused as "a different report" and takes all three.
    std::fs::write(run.join("ckpt_2.npy"), &whole).unwrap();
    let stdout = succeeds(&args);
    assert!(
        stdout.contains("tracked 3 checkpoints (1 analysed, 2 from the cache)"),
        "{stdout}"
    );
}

#[test]
fn a_first_failed_track_run_does_not_block_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    write_checkpoints(&run, 2);
    std::fs::write(run.join("ckpt_0.npy"), b"not an npy file").unwrap();
    std::fs::write(run.join("ckpt_1.npy"), b"not an npy file").unwrap();
    let out = dir.path().join("out");
    let args = [
        "track",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(fails(&args).contains("no checkpoint could be analysed"));
    write_checkpoints(&run, 2);
    succeeds(&args);
}

#[test]
fn work_too_large_for_the_memory_limit_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 10,000 classes of 2 rows: the C x C class-pair matrices alone need ~23 GB.
    let n = 20_000;
    let rows: Vec<f32> = (0..n * 4).map(|k| ((k * 37 % 101) as f32) - 50.0).collect();
    let emb = d.join("many.npy");
    std::fs::write(&emb, npy_bytes_f32(&[n, 4], &rows)).unwrap();
    let labels = d.join("labels.txt");
    std::fs::write(
        &labels,
        (0..n).map(|i| format!("{}\n", i / 2)).collect::<String>(),
    )
    .unwrap();
    let message = fails(&[
        "analyze",
        emb.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--memory-limit",
        "4G",
    ]);
    assert!(
        message.contains("too large for the memory limit")
            && message.contains("C = 10000")
            && message.contains("--memory-limit"),
        "{message}"
    );
    // The class count drives it: the labels are named, not the embeddings.
    assert!(message.contains("labels.txt"), "{message}");
    assert!(!message.contains("many.npy"), "{message}");
    assert!(message.contains("fewer classes"), "{message}");
    // 2,000 x 2,000: the D x D scatters (side min(N, D)) are the problem.
    let wide = d.join("wide.npy");
    std::fs::write(&wide, npy_bytes_f32(&[2_000, 2_000], &vec![1.0; 4_000_000])).unwrap();
    let message = fails(&["analyze", wide.to_str().unwrap(), "--memory-limit", "100M"]);
    assert!(message.contains("D = 2000"), "{message}");
    assert!(message.contains("wide.npy"), "{message}");
    assert!(message.contains("fewer dimensions or rows"), "{message}");
    assert!(
        fails(&["analyze", wide.to_str().unwrap(), "--memory-limit", "4Q"])
            .contains("unknown unit")
    );
}

/// What a path is now, links not followed.
fn kind_of(path: &Path) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::symlink_metadata(path).unwrap().file_type();
    match () {
        _ if kind.is_symlink() => "link",
        _ if kind.is_char_device() => "char device",
        _ if kind.is_fifo() => "fifo",
        _ if kind.is_file() => "file",
        _ => "other",
    }
}

/// A private device node (`mknod` in a temporary folder, never the real `/dev`): `None` where
/// this user may not make one (not root), which fails under CI.
fn device_node(path: &Path, major: u32, minor: u32) -> Option<()> {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let device = libc::makedev(major, minor);
    // Safety: a valid C string; mknod only creates the node.
    let made = unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR | 0o666, device) } == 0;
    if !made {
        let why = std::io::Error::last_os_error();
        assert!(
            std::env::var("CI").is_err(),
            "cannot make a device node under CI: {why}"
        );
        eprintln!(
            "SKIP device nodes: mknod {}: {why} (run as root)",
            path.display()
        );
    }
    made.then_some(())
}

#[test]
fn outputs_write_through_devices_and_never_replace_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (null, full) = (d.join("null"), d.join("full"));
    if device_node(&null, 1, 3).is_none() || device_node(&full, 1, 7).is_none() {
        return;
    }
    let null_arg = null.to_str().unwrap();
    // A device is written through, with or without --force, and stays a device.
    for force in [false, true] {
        let mut args = vec!["analyze", "data/digits.npz", "--json", null_arg];
        if force {
            args.push("--force");
        }
        succeeds(&args);
        assert_eq!(kind_of(&null), "char device");
    }
    // The same for every command that writes a file.
    succeeds(&[
        "compare",
        "data/fashion-supcon/ckpt_epoch_0001.safetensors",
        "data/fashion-supcon/ckpt_epoch_0012.safetensors",
        "--out",
        d.join("compare").to_str().unwrap(),
        "--json",
        null_arg,
    ]);
    assert_eq!(kind_of(&null), "char device");
    // A device that refuses the bytes is an error naming it (exit 2), and stays a device.
    let message = fails(&[
        "analyze",
        "data/digits.npz",
        "--json",
        full.to_str().unwrap(),
    ]);
    assert!(
        message.contains(full.to_str().unwrap()) && message.contains("No space left"),
        "{message}"
    );
    assert_eq!(kind_of(&full), "char device");
    // Every file of a report written into a folder whose files are devices.
    let report = d.join("report");
    succeeds(&[
        "report",
        "data/digits.npz",
        "--out",
        report.to_str().unwrap(),
    ]);
    let index = report.join("index.html");
    std::fs::remove_file(&index).unwrap();
    device_node(&index, 1, 3).unwrap();
    let figure = std::fs::read_dir(report.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    std::fs::remove_file(&figure).unwrap();
    device_node(&figure, 1, 3).unwrap();
    succeeds(&[
        "report",
        "data/digits.npz",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert_eq!(kind_of(&index), "char device");
    assert_eq!(kind_of(&figure), "char device");
}

#[test]
fn outputs_stream_into_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // Safety: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    succeeds(&[
        "analyze",
        "data/digits.npz",
        "--json",
        fifo.to_str().unwrap(),
    ]);
    let document: Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(document["schema"], "embgeom.analysis/1");
    assert_eq!(kind_of(&fifo), "fifo");
}

#[test]
fn a_linked_output_replaces_its_target_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (target, link) = (d.join("target.json"), d.join("link.json"));
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink("target.json", &link).unwrap();
    let link_arg = link.to_str().unwrap();
    // The target is a file the user has: replaced only when asked.
    assert!(fails(&["analyze", "data/digits.npz", "--json", link_arg]).contains("--force"));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
    succeeds(&["analyze", "data/digits.npz", "--json", link_arg, "--force"]);
    assert_eq!(kind_of(&link), "link");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(document["schema"], "embgeom.analysis/1");
    // Nothing but the two is left in the folder (no temporary file).
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 2);
}

#[test]
fn a_mapped_input_truncated_during_a_run_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinking.npy");
    // Large enough that the analysis runs for a while after the file is mapped.
    let (n, d) = (60_000, 128);
    let rows: Vec<f32> = (0..n * d)
        .map(|k| ((k * 2_654_435_761usize) % 1_000) as f32 / 500.0 - 1.0)
        .collect();
    let bytes = npy_bytes_f32(&[n, d], &rows);
    std::fs::write(&path, &bytes).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_embgeom"))
        .args(["analyze", path.to_str().unwrap(), "--json", "-"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the file is mapped (and so being read).
    let maps = format!("/proc/{}/maps", child.id());
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains("shrinking.npy")) {
        assert!(
            started.elapsed().as_secs() < 60,
            "the input was never mapped"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Truncate in place, then write it back: the mapping's pages vanish, then return.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(128).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::write(&path, &bytes).unwrap();
    let (status, stderr) = finished(child);
    // Exit 2 and the file named, whichever stage the change met (never SIGBUS, 135).
    assert_eq!(status.code(), Some(2), "{status:?}: {stderr}");
    assert!(stderr.contains("shrinking.npy"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
