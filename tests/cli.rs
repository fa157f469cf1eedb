//! End-to-end tests of the `embgeom` binary: real files in, table or JSON out, exit status 2
//! with a message naming the file for every bad input.

use embgeom_io::npy_bytes_f32;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn embgeom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embgeom"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run embgeom")
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "-"]);
    let out = embgeom(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// Run, expect exit status 2, return stderr.
fn fails(args: &[&str]) -> String {
    let out = embgeom(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

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
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("1797 x 64")
            && table.contains("uniformity (t=2)")
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
        m.contains("labels.txt: 3 labels, but") && m.contains("has 4 rows"),
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
