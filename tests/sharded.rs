//! `embgeom analyze DIR` on sharded datasets: LAION's layout (img_emb/img_emb_N.npy with
//! metadata/metadata_N.parquet) and a flat one (emb_N.npy with labels_N.npy), uneven shards,
//! equal the analysis of the concatenated file (f64 rows: 1e-12 relative); the sampled
//! uniformity above --max-exact; a corrupt shard is named.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/digits.rs"]
mod data;

use cli::{embgeom, fails, json};
use embgeom_io::{npy_bytes, npy_bytes_f32, write_table, Column};
use serde_json::Value;
use std::path::Path;

/// Deterministic rows: 10 class means plus noise (N x D, f64), and labels 0..10 by a hash.
fn data(n: usize, d: usize) -> (Vec<f64>, Vec<i64>) {
    let mut state = 7u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let means: Vec<f64> = (0..10 * d).map(|_| 3.0 * uniform()).collect();
    let labels: Vec<i64> = (0..n).map(|i| ((i * 37 + i / 3) % 10) as i64).collect();
    let rows = (0..n * d)
        .map(|k| means[labels[k / d] as usize * d + k % d] + uniform())
        .collect();
    (rows, labels)
}

fn rows_npy(path: &Path, rows: &[f64], d: usize) {
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<f8", &[rows.len() / d, d], &bytes)).unwrap();
}

fn labels_npy(path: &Path, labels: &[i64]) {
    let bytes: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<i8", &[labels.len()], &bytes)).unwrap();
}

const D: usize = 16;
const CUTS: [usize; 8] = [0, 1, 150, 151, 700, 1100, 1599, 1600];

/// The whole set as one file, and in shards of both layouts.
fn write_sets(dir: &Path) {
    let (rows, labels) = data(1600, D);
    rows_npy(&dir.join("all.npy"), &rows, D);
    labels_npy(&dir.join("all_labels.npy"), &labels);
    for sub in ["laion/img_emb", "laion/metadata", "flat", "csv"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (i, w) in CUTS.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        rows_npy(
            &dir.join(format!("laion/img_emb/img_emb_{i}.npy")),
            &rows[a * D..b * D],
            D,
        );
        write_table(
            vec![
                Column::Int("key".into(), (a as i64..b as i64).collect()),
                Column::Int("label".into(), labels[a..b].to_vec()),
            ],
            &dir.join(format!("csv/metadata_{i}.csv")),
            &dir.join(format!("laion/metadata/metadata_{i}.parquet")),
        )
        .unwrap();
        rows_npy(
            &dir.join(format!("flat/emb_{i:03}.npy")),
            &rows[a * D..b * D],
            D,
        );
        labels_npy(&dir.join(format!("flat/labels_{i:03}.npy")), &labels[a..b]);
    }
}

/// Every number of `a` within 1e-12 relative of `b`; per-class effective ranks (not computed
/// for shards) and the inputs are skipped.
fn assert_close(a: &Value, b: &Value, path: &str) {
    assert_close_within(a, b, path, (1e-12, 1e-12))
}

/// The same with tolerances `(uniformity, others)`.
fn assert_close_within(a: &Value, b: &Value, path: &str, tolerances: (f64, f64)) {
    if path.ends_with("effective_rank") && path.contains("per_class") || path.starts_with("/inputs")
    {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if k == "warnings" {
                    continue;
                }
                assert_close_within(v, &y[k], &format!("{path}/{k}"), tolerances);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_close_within(u, v, &format!("{path}[{i}]"), tolerances);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            // The partition isotropy's directions (ssyevd) and projections (a GEMM) are in the
            // rows' precision; f32 rounding depends on the row blocks (shard boundaries) and on
            // the last bits of the merged moment: 1e-6 for f32 rows.
            let tolerance = match (
                path.contains("uniformity"),
                path.contains("partition_isotropy"),
            ) {
                (true, _) => tolerances.0,
                (false, true) => tolerances.1.max(1e-6),
                (false, false) => tolerances.1,
            };
            assert!(
                (x - y).abs() <= tolerance * x.abs().max(y.abs()),
                "{path}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn sharded_directories_equal_the_single_file_analysis() {
    let dir = tempfile::tempdir().unwrap();
    write_sets(dir.path());
    let path = |p: &str| dir.path().join(p).display().to_string();
    let single = json(&[
        "analyze",
        &path("all.npy"),
        "--labels",
        &path("all_labels.npy"),
    ]);
    let laion = json(&["analyze", &path("laion"), "--label-key", "label"]);
    let flat = json(&["analyze", &path("flat")]);
    assert_eq!(laion["n"], 1600);
    assert_eq!(
        laion["inputs"]["embeddings"],
        format!("{} (7 shards)", path("laion"))
    );
    assert_eq!(laion["metrics"]["uniformity"]["method"], "exact");
    assert_close(&laion, &single, "");
    assert_close(&flat, &single, "");
    assert!(laion["metrics"]["knn_accuracy"]["value"].as_f64().unwrap() > 0.5);

    // Above --max-exact: every pair of a seeded sample of rows, with a standard error.
    let sampled = json(&[
        "analyze",
        &path("flat"),
        "--max-exact",
        "1000",
        "--sample-rows",
        "500",
    ]);
    let u = &sampled["metrics"]["uniformity"];
    assert_eq!(u["method"], "sampled rows");
    assert_eq!(u["pairs"], 500 * 499 / 2);
    let (value, stderr) = (u["value"].as_f64().unwrap(), u["stderr"].as_f64().unwrap());
    let exact = single["metrics"]["uniformity"]["value"].as_f64().unwrap();
    assert!(
        (value - exact).abs() < 5.0 * stderr,
        "{value} vs {exact} (se {stderr})"
    );
}

#[test]
fn the_bundled_digits_in_seven_uneven_shards_equal_the_file() {
    let (rows, labels) = data::digits();
    let (n, d) = rows.dim();
    let values: Vec<f32> = rows.iter().copied().collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shards")).unwrap();
    let f32_npy = |path: &Path, values: &[f32]| {
        std::fs::write(path, npy_bytes_f32(&[values.len() / d, d], values)).unwrap()
    };
    f32_npy(&dir.path().join("all.npy"), &values);
    labels_npy(&dir.path().join("labels.npy"), &labels);
    let cuts = [0, 1, 300, 301, 900, 1500, n - 1, n];
    for (i, w) in cuts.windows(2).enumerate() {
        let shard = dir.path().join(format!("shards/emb_{i}.npy"));
        f32_npy(&shard, &values[w[0] * d..w[1] * d]);
        labels_npy(
            &dir.path().join(format!("shards/labels_{i}.npy")),
            &labels[w[0]..w[1]],
        );
    }
    let path = |p: &str| dir.path().join(p).display().to_string();
    let single = json(&["analyze", &path("all.npy"), "--labels", &path("labels.npy")]);
    let sharded = json(&["analyze", &path("shards")]);
    assert_eq!(sharded["inputs"]["dtype"], "f32");
    // f32 rows: the uniformity kernel's f32 exponentials over other tile boundaries (1e-8), and
    // the small eigenvalues of one-pass shifted moments against two-pass ones (1e-10).
    assert_close_within(&sharded, &single, "", (1e-8, 1e-10));
}

#[test]
fn a_bad_shard_or_layout_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_sets(dir.path());
    let path = |p: &str| dir.path().join(p).display().to_string();
    // A shard cut short.
    let shard = dir.path().join("flat/emb_004.npy");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let error = fails(&["analyze", &path("flat")]);
    assert!(
        error.contains("emb_004.npy") && error.contains("truncated"),
        "{error}"
    );
    // A NaN in a shard names the shard and the row.
    let (mut rows, _) = data(400, D);
    rows[3 * D + 2] = f64::NAN;
    rows_npy(&dir.path().join("flat/emb_004.npy"), &rows, D);
    let error = fails(&["analyze", &path("flat")]);
    assert!(
        error.contains("emb_004.npy") && error.contains("row 3"),
        "{error}"
    );
    // A missing label shard.
    std::fs::remove_file(dir.path().join("flat/labels_002.npy")).unwrap();
    let error = fails(&["analyze", &path("flat")]);
    assert!(
        error.contains("emb_002.npy: shard 2 has no labels file"),
        "{error}"
    );
    // Views are not analysed for shards; --ray needs a directory.
    let error = fails(&[
        "analyze",
        &path("laion"),
        "--views",
        &path("all.npy"),
        &path("all.npy"),
    ]);
    assert!(
        error.contains("views are not supported for sharded datasets"),
        "{error}"
    );
    let error = fails(&["analyze", &path("all.npy"), "--ray", "local"]);
    assert!(
        error.contains("--ray analyses a directory of shards"),
        "{error}"
    );
    // A training run's folder is not a sharded dataset.
    let error = fails(&["analyze", "data/fashion-supcon"]);
    assert!(
        error.contains("a training run (its manifest.json lists checkpoints)"),
        "{error}"
    );
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::copy(
        dir.path().join("flat/emb_000.npy"),
        run.join("ckpt_epoch_1.npy"),
    )
    .unwrap();
    let error = fails(&["analyze", &run.display().to_string()]);
    assert!(error.contains("named like checkpoints"), "{error}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = fails(&["analyze", &empty.display().to_string()]);
    assert!(error.contains("no numbered shards"), "{error}");
    assert!(
        embgeom(&["analyze", &path("laion"), "--label-key", "label"])
            .status
            .success()
    );
}
