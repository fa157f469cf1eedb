//! End-to-end tests of the `embgeom` binary: real files in, table or JSON out, exit status 2
//! with a message naming the file for every bad input.

use embgeom_io::npy_bytes_f32;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "common/cli.rs"]
mod cli;
use cli::*;

fn write_npy(dir: &Path, name: &str, shape: &[usize], values: &[f32]) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, npy_bytes_f32(shape, values)).unwrap();
    path.display().to_string()
}

/// The 4 vertices of a regular simplex (unit rows in R^4, centred at the origin).
fn simplex4() -> Vec<f32> {
    (0..16)
        .map(|k| if k % 5 == 0 { 0.75 } else { -0.25 })
        .collect()
}

fn metric<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["metrics"][name]
}

#[test]
fn digits_csv_table_and_json() {
    let out = embgeom(&["analyze", "data/digits.csv"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "no progress bar when piped: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("1797 x 64")
            && table.contains("uniformity: log mean_{i<j} exp(-2 ||x_i - x_j||^2), exact")
            && table.contains("10 classes"),
        "{table}"
    );

    let doc = json(&["analyze", "data/digits.csv"]);
    assert_eq!(doc["schema"], "embgeom.analysis/1");
    assert_eq!(doc["n"], 1797);
    assert_eq!(doc["dim"], 64);
    assert_eq!(doc["num_classes"], 10);
    let u = metric(&doc, "uniformity");
    assert_eq!(u["method"], "exact");
    assert_eq!(u["pairs"], 1797 * 1796 / 2);
    assert!(u["stderr"].is_null());
    let value = u["value"].as_f64().unwrap();
    assert!(value < 0.0 && value > -2.0 * 2.0 * 1797.0 / 1796.0);
    assert!(
        metric(&doc, "alignment").is_null(),
        "no views: alignment does not apply"
    );
    assert_eq!(
        metric(&doc, "uniformity_per_class")
            .as_object()
            .unwrap()
            .len(),
        10
    );
    let class_alignment = metric(&doc, "class_alignment")["value"].as_f64().unwrap();
    assert!(class_alignment > 0.0 && class_alignment < 4.0);
}

#[test]
fn regular_simplex_hits_the_floor_and_views_align() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_npy(dir.path(), "a.npy", &[4, 4], &simplex4());
    let doc = json(&["analyze", &a]);
    let u = metric(&doc, "uniformity")["value"].as_f64().unwrap();
    assert!((u + 16.0 / 3.0).abs() < 1e-5, "{u}");

    // View b is view a with rows 0 and 1 swapped: two items misaligned by ||v0 - v1||^2 = 8/3.
    let mut b_rows = simplex4();
    b_rows[..4].copy_from_slice(&simplex4()[4..8]);
    b_rows[4..8].copy_from_slice(&simplex4()[..4]);
    let b = write_npy(dir.path(), "b.npy", &[4, 4], &b_rows);
    let doc = json(&["analyze", "--views", &a, &b]);
    let alignment = metric(&doc, "alignment");
    assert!((alignment["value"].as_f64().unwrap() - 2.0 * (8.0 / 3.0) / 4.0).abs() < 1e-5);
    assert_eq!(alignment["pairs"], 4);
    assert_eq!(
        metric(&doc, "uniformity_views").as_array().unwrap().len(),
        2
    );

    // The same two views as one (N, V, D) array.
    let mut stacked = Vec::new();
    for i in 0..4 {
        stacked.extend_from_slice(&simplex4()[4 * i..4 * i + 4]);
        stacked.extend_from_slice(&b_rows[4 * i..4 * i + 4]);
    }
    let v = write_npy(dir.path(), "v.npy", &[4, 2, 4], &stacked);
    let same = json(&["analyze", &v]);
    assert_eq!(metric(&same, "alignment")["value"], alignment["value"]);
}

#[test]
fn labels_from_a_text_file_and_sampled_uniformity() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_npy(dir.path(), "a.npy", &[4, 4], &simplex4());
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "x\nx\ny\nz\n").unwrap();
    let doc = json(&[
        "analyze",
        &a,
        "--labels",
        labels.to_str().unwrap(),
        "--pairs",
        "100000",
        "--seed",
        "3",
    ]);
    assert_eq!(doc["num_classes"], 3);
    let ca = metric(&doc, "class_alignment");
    assert!((ca["value"].as_f64().unwrap() - 8.0 / 3.0).abs() < 1e-5);
    assert_eq!(ca["pairs"], 1);
    let per_class = metric(&doc, "uniformity_per_class");
    assert!(per_class["y"].is_null() && per_class["z"].is_null());
    let u = metric(&doc, "uniformity");
    assert_eq!(u["method"], "sampled");
    assert_eq!(u["pairs"], 100000);
    let se = u["stderr"].as_f64().unwrap();
    assert!((u["value"].as_f64().unwrap() + 16.0 / 3.0).abs() < 4.0 * se + 1e-6);
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let one = json(&["analyze", "data/digits.csv", "--threads", "1"]);
    let two = json(&["analyze", "data/digits.csv", "--threads", "2"]);
    assert_eq!(one["metrics"], two["metrics"]);
}

#[test]
fn json_file_is_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_npy(dir.path(), "a.npy", &[4, 4], &simplex4());
    let out = dir.path().join("out.json");
    std::fs::write(&out, "precious").unwrap();
    let message = fails(&["analyze", &a, "--json", out.to_str().unwrap()]);
    assert!(message.contains("exists; pass --force"), "{message}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    let ok = embgeom(&["analyze", &a, "--json", out.to_str().unwrap(), "--force"]);
    assert!(ok.status.success());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["n"], 4);
}

#[test]
fn bad_inputs_exit_2_with_a_message_naming_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut values = simplex4();
    values[9] = f32::NAN;
    let nan = write_npy(d, "nan.npy", &[4, 4], &values);
    let m = fails(&["analyze", &nan]);
    assert!(
        m.contains("nan.npy") && m.contains("row 2, column 1 is not finite"),
        "{m}"
    );

    let mut values = simplex4();
    values[12..16].fill(0.0);
    let zero = write_npy(d, "zero.npy", &[4, 4], &values);
    let m = fails(&["analyze", &zero]);
    assert!(
        m.contains("zero.npy") && m.contains("row 3 has zero norm"),
        "{m}"
    );

    let a = write_npy(d, "a.npy", &[4, 4], &simplex4());
    let short = write_npy(d, "short.npy", &[3, 4], &simplex4()[..12]);
    let m = fails(&["analyze", "--views", &a, &short]);
    assert!(
        m.contains("shape mismatch") && m.contains("short.npy"),
        "{m}"
    );

    let labels = d.join("labels.txt");
    std::fs::write(&labels, "1\n2\n3\n").unwrap();
    let m = fails(&["analyze", &a, "--labels", labels.to_str().unwrap()]);
    assert!(
        m.contains("labels.txt: 3 values, but") && m.contains("has 4 rows"),
        "{m}"
    );

    let m = fails(&["analyze", "data/digits.csv", "--key", "pixels"]);
    assert!(
        m.contains("no column named \"pixels\"") && m.contains("available: p0, p1"),
        "{m}"
    );

    let full = npy_bytes_f32(&[4, 4], &simplex4());
    let cut = d.join("cut.npy");
    std::fs::write(&cut, &full[..full.len() - 1]).unwrap();
    assert!(fails(&["analyze", cut.to_str().unwrap()]).contains("cut.npy: truncated file"));

    let mut odd = full.clone();
    let at = odd.windows(3).position(|w| w == b"<f4").unwrap();
    odd[at..at + 3].copy_from_slice(b"<c8");
    let odd_path = d.join("complex.npy");
    std::fs::write(&odd_path, odd).unwrap();
    assert!(fails(&["analyze", odd_path.to_str().unwrap()]).contains("unsupported dtype <c8"));

    assert!(fails(&["analyze"]).contains("nothing to analyse"));
    assert!(fails(&["analyze", &a, "--t", "-1"]).contains("invalid parameter t = -1"));
    let one_row = write_npy(d, "one.npy", &[1, 4], &simplex4()[..4]);
    assert!(fails(&["analyze", &one_row]).contains("uniformity needs at least 2 rows, got 1"));
}

/// C = 4 classes on a regular simplex (radius 2) in D = 6 with small deterministic noise,
/// `per` rows per class in class order 0,1,2,3,0,1,...; returns the row-major values.
fn simplex_rows(per: usize, noise: f32) -> Vec<f32> {
    let mut state = 12345u64;
    let mut jitter = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * noise
    };
    let mut values = Vec::new();
    for i in 0..4 * per {
        let class = i % 4;
        for j in 0..6 {
            let vertex = if j < 4 {
                (if j == class { 0.75f32 } else { -0.25 }) / 0.75f32.sqrt()
            } else {
                0.0
            };
            values.push(2.0 * vertex + jitter());
        }
    }
    values
}

fn write_lines(dir: &Path, name: &str, lines: impl Iterator<Item = String>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.collect::<Vec<_>>().join("\n")).unwrap();
    path.display().to_string()
}

#[test]
fn class_collapse_metrics_with_classifier_split_and_subclasses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let per = 50;
    let emb = write_npy(d, "emb.npy", &[4 * per, 6], &simplex_rows(per, 1e-3));
    let labels = write_lines(d, "labels.txt", (0..4 * per).map(|i| format!("c{}", i % 4)));
    let split = write_lines(
        d,
        "split.txt",
        (0..4 * per).map(|i| {
            if i < 120 {
                "train".into()
            } else {
                "TEST".to_string()
            }
        }),
    );
    let subclasses = write_lines(
        d,
        "sub.txt",
        (0..4 * per).map(|i| format!("{}", (i % 4) * 10 + (i / 4) % 2)),
    );
    let weights: Vec<f32> = simplex_rows(1, 0.0).iter().map(|v| v * 3.0).collect();
    let classifier = write_npy(d, "w.npy", &[4, 6], &weights);
    let bias = write_npy(d, "b.npy", &[4], &[0.0; 4]);
    let doc = json(&[
        "analyze",
        &emb,
        "--labels",
        &labels,
        "--classifier",
        &classifier,
        "--bias",
        &bias,
        "--split",
        &split,
        "--subclasses",
        &subclasses,
    ]);
    let m = &doc["metrics"];
    for key in [
        "nc1",
        "nc1_quotient",
        "nc2_equinorm",
        "nc2_equinorm_classifier",
        "nc2_equiangularity",
        "nc2_max_angle",
        "etf_distance",
        "nc3",
        "nc4",
        "cdnv",
        "simplex_angles",
    ] {
        let value = m[key]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {}", m[key]));
        assert!(
            value.abs() < 1e-2,
            "{key} = {value} on a noisy regular simplex"
        );
    }
    // Four simplex vertices span 3 dimensions.
    assert!((m["effective_rank"]["value"].as_f64().unwrap() - 3.0).abs() < 0.05);
    assert!((m["rankme"]["value"].as_f64().unwrap() - 3.0).abs() < 0.05);
    assert_eq!(m["ncc_accuracy"]["value"], 1.0);
    assert_eq!(m["knn_accuracy"]["value"], 1.0);
    assert_eq!(m["knn_accuracy"]["split"], "train/test");
    assert_eq!(m["knn_accuracy"]["queries"], 80);
    assert_eq!(m["cdnv"]["matrix"].as_array().unwrap().len(), 4);
    assert_eq!(m["spectrum"]["eigenvalues"].as_array().unwrap().len(), 6);
    assert!(m["alpha_req"].is_null(), "D = 6 has no ranks 11..100");
    let ideal = m["simplex_angles"]["ideal_angle"].as_f64().unwrap();
    assert!((ideal - (-1.0f64 / 3.0).acos().to_degrees()).abs() < 1e-9);
    let per_class = m["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 4);
    assert_eq!(per_class[2]["class"], "c2");
    assert_eq!(per_class[2]["n"], per);
    assert_eq!(per_class[2]["nearest_vertex"], "c2");
    assert!(per_class[2]["vertex_distance"].as_f64().unwrap() < 1e-2);
    let sub = &m["subclasses"];
    assert_eq!(sub["per_class"].as_array().unwrap().len(), 4);
    assert_eq!(sub["per_class"][0]["subclasses"], 2);
    assert!(
        sub["cdnv"].as_f64().unwrap() > 1.0,
        "noise-only subclasses are not separated"
    );
    assert_eq!(doc["inputs"]["classifier"].as_str().unwrap(), classifier);

    let out = embgeom(&["analyze", &emb, "--labels", &labels]);
    let table = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "[Alignment and uniformity]",
        "[Class collapse]",
        "[Simplex]",
        "[Spectrum]",
        "vertex d",
    ] {
        assert!(table.contains(heading), "{heading} missing:\n{table}");
    }
}

#[test]
fn degenerate_class_structure_is_reported_not_nan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let emb = write_npy(d, "emb.npy", &[40, 6], &simplex_rows(10, 0.1));
    let one = write_lines(d, "one.txt", (0..40).map(|_| "a".to_string()));
    let doc = json(&["analyze", &emb, "--labels", &one]);
    assert!(doc["metrics"]["nc1"].is_null() && doc["metrics"]["etf_distance"].is_null());
    let warnings = doc["warnings"].to_string();
    assert!(warnings.contains("one class"), "{warnings}");
    assert!(!serde_json::to_string(&doc).unwrap().contains("NaN"));

    let many = write_lines(d, "many.txt", (0..40).map(|i| (i % 10).to_string()));
    let doc = json(&["analyze", &emb, "--labels", &many]);
    assert!(doc["warnings"].to_string().contains("cannot exist"));
    assert!(doc["metrics"]["etf_distance"]["value"].as_f64().unwrap() > 0.0);

    let constant = write_npy(d, "const.npy", &[12, 3], &[0.5; 36]);
    let labels = write_lines(d, "l.txt", (0..12).map(|i| (i % 3).to_string()));
    let doc = json(&["analyze", &constant, "--labels", &labels]);
    assert_eq!(doc["metrics"]["nc1"]["value"], 0.0);
    assert_eq!(doc["metrics"]["effective_rank"]["value"], 0.0);
    assert!(doc["warnings"].to_string().contains("constant input"));
}

#[test]
fn bad_class_inputs_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let emb = write_npy(d, "emb.npy", &[40, 6], &simplex_rows(10, 0.1));
    let labels = write_lines(d, "labels.txt", (0..40).map(|i| (i % 4).to_string()));
    let wrong = write_npy(d, "w.npy", &[4, 5], &[1.0; 20]);
    let m = fails(&["analyze", &emb, "--labels", &labels, "--classifier", &wrong]);
    assert!(m.contains("classifier") && m.contains("(4, 5)"), "{m}");
    let split = write_lines(
        d,
        "split.txt",
        (0..40).map(|i| {
            if i == 7 {
                "val".into()
            } else {
                "train".to_string()
            }
        }),
    );
    let m = fails(&["analyze", &emb, "--labels", &labels, "--split", &split]);
    assert!(
        m.contains("split.txt: row 7 is \"val\"; expected train or test"),
        "{m}"
    );
    let m = fails(&["analyze", &emb, "--classifier", &wrong]);
    assert!(m.contains("w.npy needs class labels"), "{m}");
    let m = fails(&[
        "analyze",
        &emb,
        "--labels",
        &labels,
        "--subclasses",
        "nosuchkey",
    ]);
    assert!(m.contains("no array") || m.contains("nosuchkey"), "{m}");
}

#[test]
fn class_names_come_from_a_file_or_the_runs_manifest() {
    let demo = "data/fashion-supcon/ckpt_epoch_0012.safetensors";
    let doc = json(&["analyze", demo]);
    assert_eq!(
        doc["inputs"]["class_names"],
        "data/fashion-supcon/manifest.json"
    );
    let names: Vec<&str> = doc["metrics"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "T-shirt/top");
    assert_eq!(names[9], "Ankle boot");

    let dir = tempfile::tempdir().unwrap();
    let rows = write_npy(dir.path(), "rows.npy", &[4, 4], &simplex4());
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "2\n0\n1\n2\n").unwrap();
    let names = dir.path().join("names.txt");
    std::fs::write(&names, "cat\ndog\nbird\n").unwrap();
    let labels = labels.display().to_string();
    let named = json(&[
        "analyze",
        &rows,
        "--labels",
        &labels,
        "--class-names",
        &names.display().to_string(),
    ]);
    let per_class: Vec<&str> = named["metrics"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(per_class, ["cat", "dog", "bird"]);
    // A list of another length is an error naming the file.
    let json_names = dir.path().join("names.json");
    std::fs::write(&json_names, r#"{"class_names": ["a", "b"]}"#).unwrap();
    let error = fails(&[
        "analyze",
        &rows,
        "--labels",
        &labels,
        "--class-names",
        &json_names.display().to_string(),
    ]);
    assert!(
        error.contains("names.json: 2 class names for the 3 classes of"),
        "{error}"
    );
    // The report shows them.
    let out = dir.path().join("report");
    succeeds(&["report", demo, "--out", &out.display().to_string()]);
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("Ankle boot") && page.contains("T-shirt/top"));
}

#[test]
fn timings_report_every_stage_against_its_bound() {
    let doc = json(&["analyze", "data/digits.npz", "--timings"]);
    let timings = &doc["timings"];
    let rates = &timings["rates"];
    for rate in [
        "sgemm_gflops",
        "dgemm_gflops",
        "eigen_gflops",
        "bandwidth_gbs",
    ] {
        assert!(rates[rate].as_f64().unwrap() > 0.0, "{rate}: {rates}");
    }
    let stages: Vec<&str> = timings["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    for stage in [
        "load",
        "validate and normalise",
        "alignment",
        "uniformity",
        "spectrum",
        "class scatters",
        "class eigenvalues",
        "kNN",
    ] {
        assert!(stages.contains(&stage), "{stage} missing from {stages:?}");
    }
    for stage in timings["stages"].as_array().unwrap() {
        assert!(stage["seconds"].as_f64().unwrap() >= 0.0, "{stage}");
        if let Some(ratio) = stage["ratio"].as_f64() {
            assert!(ratio > 0.0 && ratio.is_finite(), "{stage}");
        }
    }
    let stage = |name: &str| {
        timings["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap()
            .clone()
    };
    let uniformity = stage("uniformity");
    // Two views of 1,797 rows, D = 64: each the half Gram matrix, N(N-1)/2 x 2D flops.
    assert_eq!(
        uniformity["work"]["flops"].as_f64().unwrap(),
        1797.0 * 1796.0 / 2.0 * 2.0 * 64.0
    );
    // One eigendecomposition of side min(n_c, D) = 64 per class: 10 x 4/3 x 64^3 flops.
    let eigen = stage("class eigenvalues");
    let expected = 10.0 * 4.0 / 3.0 * 64f64.powi(3);
    let flops = eigen["work"]["flops"].as_f64().unwrap();
    assert!((flops - expected).abs() < 1e-6 * expected, "{eigen}");
    // Peak memory against the input file's size.
    let memory = &timings["memory"];
    let input = std::fs::metadata("data/digits.npz").unwrap().len();
    assert_eq!(memory["input_bytes"].as_u64(), Some(input), "{memory}");
    let resident = memory["peak_resident_bytes"].as_u64().unwrap();
    let anonymous = memory["peak_anonymous_bytes"].as_u64().unwrap();
    assert!(
        resident > 0 && anonymous > 0 && anonymous <= resident,
        "{memory}"
    );
    let table = succeeds(&["analyze", "data/digits.npz", "--timings"]);
    assert!(table.contains("stage timings (bounds: sgemm"), "{table}");
    assert!(table.contains("peak memory: "), "{table}");
    // Without --timings the document has no timings.
    assert!(json(&["analyze", "data/digits.npz"])
        .get("timings")
        .is_none());
}

#[test]
fn a_mapped_npy_gives_the_values_of_a_read_one() {
    let dir = tempfile::tempdir().unwrap();
    let (x, labels) = digits_rows();
    let rows = write_npy(dir.path(), "x.npy", &[x.len() / 64, 64], &x);
    let labels_path = dir.path().join("labels.txt");
    std::fs::write(&labels_path, labels).unwrap();
    let labels_path = labels_path.display().to_string();
    let args = ["analyze", &rows, "--labels", &labels_path, "--timings"];
    let run = |mmap: &str| json_with_env(&args, &[("EMBGEOM_MMAP", mmap)]);
    let (mapped, read) = (run("on"), run("off"));
    assert_eq!(mapped["metrics"], read["metrics"]);
    assert_eq!(mapped["per_class"], read["per_class"]);
    // Loading: the files' bytes, plus the decoded matrix only when it was read.
    let load = |doc: &Value| {
        doc["timings"]["stages"][0]["work"]["bytes"]
            .as_f64()
            .unwrap()
    };
    let file_bytes = (std::fs::metadata(&rows).unwrap().len()
        + std::fs::metadata(&labels_path).unwrap().len()) as f64;
    assert_eq!(load(&mapped), file_bytes);
    assert_eq!(load(&read), file_bytes + (x.len() * 4) as f64);
}

/// The bundled digits as f32 rows (N x 64, row-major) and their labels, one per line.
fn digits_rows() -> (Vec<f32>, String) {
    let text = std::fs::read_to_string("data/digits.csv").unwrap();
    let mut values = Vec::new();
    let mut labels = String::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let (pixels, label) = fields.split_at(64);
        values.extend(pixels.iter().map(|v| v.parse::<f32>().unwrap()));
        labels.push_str(label[0]);
        labels.push('\n');
    }
    (values, labels)
}
