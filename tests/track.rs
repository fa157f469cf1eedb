//! End-to-end tests of `embgeom track` on a synthetic training run whose geometry is known:
//! class means move from random directions to a regular simplex while the within-class noise
//! shrinks.

use std::path::Path;

#[path = "common/cli.rs"]
mod cli;
use cli::*;

/// Standard normals from an LCG and Box-Muller.
fn normals(count: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(2862933555777941757)
        .wrapping_add(3037000493);
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos())
        .collect()
}

const C: usize = 4;
const D: usize = 8;
const PER: usize = 50;

/// Checkpoint `s` of `steps`: rows of class `i % C`, means interpolated from random directions
/// to a regular simplex, noise from 0.5 down to 0.01.
fn checkpoint(s: usize, steps: usize) -> Vec<f32> {
    let a = s as f64 / (steps - 1) as f64;
    let random = normals(C * D, 7);
    let noise = normals(C * PER * D, 100 + s as u64);
    let sigma = 0.5 * (1.0 - a) + 0.01;
    let mut values = Vec::with_capacity(C * PER * D);
    for i in 0..C * PER {
        let c = i % C;
        let mut mean: Vec<f64> = (0..D)
            .map(|j| {
                let vertex = if j < C {
                    (if j == c { 1.0 } else { 0.0 }) - 1.0 / C as f64
                } else {
                    0.0
                };
                (1.0 - a) * random[c * D + j] + a * vertex * 3.0
            })
            .collect();
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
        mean.iter_mut().for_each(|v| *v *= 2.0 / norm);
        for j in 0..D {
            values.push((mean[j] + sigma * noise[i * D + j]) as f32);
        }
    }
    values
}

fn write_checkpoint(dir: &Path, name: &str, values: &[f32], rows: usize) {
    std::fs::write(
        dir.join(name),
        embgeom_io::npy_bytes_f32(&[rows, D], values),
    )
    .unwrap();
}

fn column(csv: &str, name: &str) -> Vec<f64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    // Empty cells (no value, e.g. CKA with the previous checkpoint at the first) read as NaN.
    lines
        .map(|l| l.split(',').nth(at).unwrap().parse().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn synthetic_run_collapses_and_the_cache_skips_known_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let steps = 11;
    for s in 0..steps - 1 {
        write_checkpoint(
            &run,
            &format!("epoch_{s}.npy"),
            &checkpoint(s, steps),
            C * PER,
        );
    }
    let labels = tmp.path().join("labels.txt");
    std::fs::write(
        &labels,
        (0..C * PER)
            .map(|i| (i % C).to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "track".to_string(),
            run.display().to_string(),
            "--labels".into(),
            labels.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run_track = |extra: &[&str]| {
        let a = args(extra);
        embgeom(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let first = run_track(&[]);
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("tracked 10 checkpoints (10 analysed, 0 from the cache)"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let step = column(&csv, "step");
    assert_eq!(
        step,
        (0..10).map(|s| s as f64).collect::<Vec<_>>(),
        "numeric order"
    );
    let nc1 = column(&csv, "nc1");
    for w in nc1.windows(2) {
        assert!(w[1] < w[0], "NC1 must fall at every step: {nc1:?}");
    }
    let etf = column(&csv, "etf_distance");
    assert!(etf[0] > 0.3 && *etf.last().unwrap() < 0.1, "{etf:?}");
    let cka_last = column(&csv, "cka_last");
    assert!(
        cka_last[0] < cka_last[8],
        "later checkpoints are closer to the last: {cka_last:?}"
    );
    assert!(out.join("metrics.parquet").exists());
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    for id in [
        "t1-metrics-over-steps",
        "t2-alignment-uniformity-trajectory",
        "t3-spectrum-over-steps",
        "t4-class-mean-cosines-first",
        "t5-class-mean-cosines-last",
        "t6-cka",
    ] {
        assert!(page.contains(&format!("<figure id=\"{id}\"")), "{id}");
        assert!(out.join(format!("figures/{id}.png")).exists());
    }

    let again = run_track(&[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("(0 analysed, 10 from the cache)"));
    // The thread count does not change results, so it does not miss the cache.
    let threads = run_track(&["--threads", "1"]);
    assert!(
        String::from_utf8_lossy(&threads.stdout).contains("(0 analysed, 10 from the cache)"),
        "{}",
        String::from_utf8_lossy(&threads.stderr)
    );
    // Labels rewritten in place are new content: nothing stale comes from the cache.
    let original = std::fs::read_to_string(&labels).unwrap();
    let swapped: String = original
        .lines()
        .map(|l| {
            if l == "0" {
                "1"
            } else if l == "1" {
                "0"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&labels, swapped).unwrap();
    let relabelled = run_track(&[]);
    assert!(
        String::from_utf8_lossy(&relabelled.stdout).contains("(10 analysed, 0 from the cache)"),
        "{}",
        String::from_utf8_lossy(&relabelled.stderr)
    );
    std::fs::write(&labels, original).unwrap();
    // A checkpoint written later (epoch_10 sorts after epoch_9) is picked up alone.
    write_checkpoint(&run, "epoch_10.npy", &checkpoint(10, steps), C * PER);
    let grown = run_track(&[
        "--fail-if",
        "nc1 increased",
        "--fail-if",
        "etf_distance > 0.1",
    ]);
    let stdout = String::from_utf8_lossy(&grown.stdout).to_string();
    assert!(grown.status.success(), "{stdout}");
    assert!(
        stdout.contains("tracked 11 checkpoints (1 analysed, 10 from the cache)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok: nc1 increased") && stdout.contains("ok: etf_distance > 0.1"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(*column(&csv, "step").last().unwrap(), 10.0);

    let failing = run_track(&["--fail-if", "rankme < 100"]);
    assert_eq!(failing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failing.stdout).contains("fail: rankme < 100"));
    let bad = run_track(&["--fail-if", "rankme <"]);
    assert_eq!(bad.status.code(), Some(2));

    // A checkpoint with other rows is named.
    write_checkpoint(
        &run,
        "epoch_11.npy",
        &checkpoint(10, steps)[..(C * PER - 4) * D],
        C * PER - 4,
    );
    let mismatch = run_track(&[]);
    assert_eq!(mismatch.status.code(), Some(2));
    let message = String::from_utf8_lossy(&mismatch.stderr);
    assert!(message.contains("epoch_11.npy"), "{message}");
}

#[test]
fn manifest_orders_checkpoints_and_labels_inside_files_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    for (file, s) in [("late.npy", 4), ("early.npy", 0), ("middle.npy", 2)] {
        write_checkpoint(&run, file, &checkpoint(s, 5), C * PER);
    }
    std::fs::write(
        run.join("manifest.json"),
        r#"{"checkpoints": [{"step": 100, "path": "late.npy"}, {"step": 5, "path": "early.npy"}, {"step": 50, "path": "middle.npy"}]}"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let result = embgeom(&[
        "track",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(column(&csv, "step"), vec![5.0, 50.0, 100.0]);
    assert!(csv.lines().nth(1).unwrap().contains("early.npy"));

    let unnumbered = tmp.path().join("plain");
    std::fs::create_dir(&unnumbered).unwrap();
    write_checkpoint(&unnumbered, "final.npy", &checkpoint(0, 5), C * PER);
    let error = embgeom(&[
        "track",
        unnumbered.to_str().unwrap(),
        "--out",
        out.join("x").to_str().unwrap(),
    ]);
    assert_eq!(error.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&error.stderr).contains("final.npy: no step number"));

    // Labels stored inside each checkpoint (a CSV label column) must be the same at every
    // step: a checkpoint whose labels are in another order is named.
    let labelled = tmp.path().join("labelled");
    std::fs::create_dir(&labelled).unwrap();
    let csv_checkpoint = |s: usize, shift: usize| {
        let values = checkpoint(s, 3);
        let mut text = (0..D)
            .map(|j| format!("f{j}"))
            .collect::<Vec<_>>()
            .join(",")
            + ",label\n";
        for i in 0..C * PER {
            let row: Vec<String> = values[i * D..(i + 1) * D]
                .iter()
                .map(|v| v.to_string())
                .collect();
            text += &format!("{},{}\n", row.join(","), (i + shift) % C);
        }
        std::fs::write(labelled.join(format!("step_{s}.csv")), text).unwrap();
    };
    csv_checkpoint(0, 0);
    csv_checkpoint(1, 0);
    let agreeing = embgeom(&[
        "track",
        labelled.to_str().unwrap(),
        "--out",
        out.join("labelled").to_str().unwrap(),
    ]);
    assert!(
        agreeing.status.success(),
        "{}",
        String::from_utf8_lossy(&agreeing.stderr)
    );
    csv_checkpoint(2, 1);
    let disagreeing = embgeom(&[
        "track",
        labelled.to_str().unwrap(),
        "--out",
        out.join("labelled").to_str().unwrap(),
    ]);
    assert_eq!(disagreeing.status.code(), Some(2));
    let message = String::from_utf8_lossy(&disagreeing.stderr);
    assert!(
        message.contains("step_2.csv: labels differ from those of"),
        "{message}"
    );
}

#[test]
fn watch_polls_the_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    for s in 0..2 {
        write_checkpoint(&run, &format!("step{s}.npy"), &checkpoint(s, 2), C * PER);
    }
    let out = tmp.path().join("out");
    let watched = embgeom(&[
        "track",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--watch",
        "--watch-rounds",
        "2",
        "--interval",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&watched.stdout);
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert!(
        stdout.contains("(2 analysed, 0 from the cache)")
            && stdout.contains("(0 analysed, 2 from the cache)"),
        "{stdout}"
    );
}

#[test]
fn two_runs_share_the_plots_and_checks_compare_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("both");
    let out_text = out.display().to_string();
    let track = |checks: &[&str]| {
        let mut args = vec![
            "track",
            "data/fashion-supcon",
            "data/fashion-simclr",
            "--out",
            &out_text,
        ];
        for check in checks {
            args.extend(["--fail-if", check]);
        }
        embgeom(&args)
    };
    // SupCon ends with the lower NC1 (4.16 against 18.70): its check passes, the reverse fails.
    let passing = track(&["nc1 of fashion-supcon > nc1 of fashion-simclr"]);
    assert!(
        passing.status.success(),
        "{}",
        String::from_utf8_lossy(&passing.stderr)
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 25, "a header and 24 rows");
    assert!(lines[0].starts_with("run,step,file,"), "{}", lines[0]);
    let runs: std::collections::BTreeSet<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        ["fashion-simclr", "fashion-supcon"]
    );
    let failing = track(&[
        "nc1 of fashion-supcon < nc1 of fashion-simclr",
        "rankme of fashion-simclr < 5",
    ]);
    assert_eq!(failing.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&failing.stdout);
    assert!(
        stdout.contains("fail: nc1 of fashion-supcon < nc1 of fashion-simclr (nc1 of fashion-supcon = 4.161177 at step 144, nc1 of fashion-simclr = 18.695764 at step 144)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok: rankme of fashion-simclr < 5"),
        "{stdout}"
    );
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("run fashion-supcon") && page.contains("<h3>fashion-simclr</h3>"));
    let unknown = fails(&[
        "track",
        "data/fashion-supcon",
        "data/fashion-simclr",
        "--out",
        &out_text,
        "--fail-if",
        "nc1 of byol > 1",
    ]);
    assert!(
        unknown.contains("no run byol; runs: fashion-supcon, fashion-simclr"),
        "{unknown}"
    );
}

/// The bundled two-tower run (CLIP's loss on the top and the bottom halves of Fashion-MNIST
/// images, data/fashion-clip): `track --modalities top bottom` gives the gap, the cones and
/// retrieval at every checkpoint, equal to `analyze --modalities FILE:top FILE:bottom` of the
/// checkpoint; the untrained towers sit in two narrow cones far apart, and training closes the
/// gap and raises R@1.
#[test]
fn two_tower_run_tracks_the_gap_cones_and_retrieval() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = root.join("data/fashion-clip");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("clip");
    let (run_arg, out_arg) = (run.display().to_string(), out.display().to_string());
    succeeds(&[
        "track",
        &run_arg,
        "--modalities",
        "top",
        "bottom",
        "--out",
        &out_arg,
    ]);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let (gap, r1) = (
        column(&csv, "modality_gap"),
        column(&csv, "recall_at_1.top_to_bottom"),
    );
    let (cone_top, cone_bottom) = (column(&csv, "cone.top"), column(&csv, "cone.bottom"));
    assert_eq!(gap.len(), 13, "checkpoints 0 (untrained) to 12");
    assert!(
        cone_top[0] > 0.9 && cone_bottom[0] > 0.9,
        "{cone_top:?} {cone_bottom:?}"
    );
    assert!(gap[0] > 1.5 && gap[12] < 0.5 * gap[0], "{gap:?}");
    assert!(r1[12] > 10.0 * r1[0].max(1.0 / 2000.0), "{r1:?}");
    for key in [
        "top.uniformity",
        "bottom.effective_rank",
        "cka_previous",
        "info_nce",
    ] {
        assert!(
            column(&csv, key).iter().skip(1).all(|v| v.is_finite()),
            "{key}"
        );
    }
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("modality_gap") && page.contains("recall_at_1.bottom_to_top"));
    assert!(page.contains("id=\"t7-modalities\""));

    // The same numbers as analyze of the last checkpoint's two keys.
    let last = run
        .join("ckpt_epoch_0012.safetensors")
        .display()
        .to_string();
    let document = json(&[
        "analyze",
        "--modalities",
        &format!("{last}:top"),
        &format!("{last}:bottom"),
        "--shifts",
        "",
    ]);
    let pair = &document["pairs"][0];
    assert_eq!(pair["first"], "top");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    assert!(close(pair["gap"]["distance"].as_f64().unwrap(), gap[12]));
    let r1_doc = pair["retrieval"]["top_to_bottom"]["recall_at_1"]
        .as_f64()
        .unwrap();
    assert!(close(r1_doc, r1[12]));
    assert!(close(
        pair["gap"]["cones"][0].as_f64().unwrap(),
        cone_top[12]
    ));
}
