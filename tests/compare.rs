//! `embgeom compare`: an input against itself (zero differences, CKA 1), against a rotated
//! copy (the same metrics, CKA 1), and the demo on the two bundled runs (the same items:
//! CKA and per-class changes; class names).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/digits.rs"]
mod data;

use cli::{fails, succeeds};
use embgeom_io::npy_bytes;
use serde_json::Value;
use std::path::Path;

/// The bundled digits as f64 rows, their dimension and integer labels.
fn digits() -> (Vec<f64>, usize, Vec<i64>) {
    let (rows, labels) = data::digits();
    (
        rows.iter().map(|&v| f64::from(v)).collect(),
        rows.ncols(),
        labels,
    )
}

fn write_f64(path: &Path, rows: &[f64], d: usize) {
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<f8", &[rows.len() / d, d], &bytes)).unwrap();
}

/// A random orthogonal matrix (Gram-Schmidt of a deterministic pseudo-random matrix).
fn rotation(d: usize) -> Vec<f64> {
    let mut state = 99u64;
    let mut q: Vec<f64> = (0..d * d)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    for i in 0..d {
        for j in 0..i {
            let dot: f64 = (0..d).map(|k| q[i * d + k] * q[j * d + k]).sum();
            for k in 0..d {
                q[i * d + k] -= dot * q[j * d + k];
            }
        }
        let norm = (0..d).map(|k| q[i * d + k].powi(2)).sum::<f64>().sqrt();
        for k in 0..d {
            q[i * d + k] /= norm;
        }
    }
    q
}

fn compare(args: &[&str], out: &Path) -> Value {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    let out_text = out.display().to_string();
    let json = out.with_extension("json").display().to_string();
    all.extend(["--out", &out_text, "--json", &json]);
    succeeds(&all);
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn values(row: &Value) -> Vec<f64> {
    row["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn an_input_against_itself_and_a_rotated_copy() {
    let (rows, d, labels) = digits();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    write_f64(&dir.path().join("x.npy"), &rows, d);
    let q = rotation(d);
    let rotated: Vec<f64> = (0..rows.len())
        .map(|k| {
            let (i, j) = (k / d, k % d);
            (0..d).map(|m| rows[i * d + m] * q[m * d + j]).sum()
        })
        .collect();
    write_f64(&dir.path().join("rotated.npy"), &rotated, d);
    let label_bytes: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(
        dir.path().join("labels.npy"),
        npy_bytes("<i8", &[labels.len()], &label_bytes),
    )
    .unwrap();

    let same = compare(
        &[
            &path("x.npy"),
            &path("x.npy"),
            "--name",
            "a",
            "--name",
            "b",
            "--labels",
            &path("labels.npy"),
        ],
        &dir.path().join("same"),
    );
    assert_eq!(same["schema"], "embgeom.compare/1");
    assert_eq!(same["same_items"], true);
    for row in same["metrics"].as_array().unwrap() {
        let v = values(row);
        assert_eq!(v[0], v[1], "{}", row["metric"]);
        assert_eq!(row["difference_to_first"][1], 0.0, "{}", row["metric"]);
        assert!(row["closest_to_ideal"].is_null(), "a tie has no winner");
    }
    let cka = same["cka"]["matrix"][0][1].as_f64().unwrap();
    assert!((cka - 1.0).abs() < 1e-12, "{cka}");
    let changes = &same["class_changes"][0]["classes"];
    assert_eq!(changes.as_array().unwrap().len(), 10);
    assert!(changes
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["change"] == "unchanged"));

    let turned = compare(
        &[
            &path("x.npy"),
            &path("rotated.npy"),
            "--labels",
            &path("labels.npy"),
        ],
        &dir.path().join("rotated"),
    );
    assert_eq!(turned["inputs"][1]["name"], "rotated");
    for row in turned["metrics"].as_array().unwrap() {
        // The std of normalised rows averages per-coordinate stds: not rotation invariant.
        if row["metric"] == "normalized_std" {
            continue;
        }
        let v = values(row);
        assert!(
            (v[0] - v[1]).abs() <= 1e-9 * v[0].abs().max(1e-12),
            "{}: {} vs {}",
            row["metric"],
            v[0],
            v[1]
        );
    }
    let cka = turned["cka"]["matrix"][1][0].as_f64().unwrap();
    assert!((cka - 1.0).abs() < 1e-9, "{cka}");
    let csv = std::fs::read_to_string(dir.path().join("rotated/metrics.csv")).unwrap();
    assert!(
        csv.starts_with("metric,x,rotated,difference_rotated,closest_to_ideal\n"),
        "{csv}"
    );

    // The same file twice with extra arguments; bad uses are named.
    let twice = |extra: &[&str]| {
        let mut args = vec!["compare".to_string(), path("x.npy"), path("x.npy")];
        args.extend(extra.iter().map(|a| a.to_string()));
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // An existing --json file is not replaced without --force.
    let json_path = dir.path().join("same.json").display().to_string();
    let again = path("again");
    let error = twice(&[
        "--name", "a", "--name", "b", "--out", &again, "--json", &json_path,
    ]);
    assert!(error.contains("exists; pass --force"), "{error}");
    let error = fails(&["compare", &path("x.npy")]);
    assert!(error.contains("two or more inputs"), "{error}");
    let error = twice(&["--name", "a"]);
    assert!(error.contains("1 --name for 2 inputs"), "{error}");
    let dup = path("dup");
    let error = twice(&["--name", "a", "--name", "a", "--out", &dup]);
    assert!(error.contains("two inputs are named \"a\""), "{error}");
}

#[test]
fn the_demo_compares_the_bundled_runs_with_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let doc = compare(&[], &dir.path().join("demo"));
    let names: Vec<&str> = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["supcon", "simclr"]);
    assert_eq!(doc["same_items"], true);
    let nc1 = doc["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "nc1")
        .unwrap();
    assert_eq!(
        nc1["closest_to_ideal"], "supcon",
        "SupCon collapses its classes more"
    );
    let classes: Vec<&str> = doc["class_changes"][0]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"Ankle boot"), "{classes:?}");
    let page = std::fs::read_to_string(dir.path().join("demo/index.html")).unwrap();
    assert!(page.contains("Ankle boot") && page.contains("linear CKA"));
    assert!(page.contains("CKNNA") && page.contains("Huh et al. 2024"));
    // Every measure of the similarity family has its matrix, its ideal on the diagonal.
    for measure in doc["similarity"]["measures"].as_array().unwrap() {
        let key = measure["key"].as_str().unwrap();
        let matrix = &doc["similarity"][key];
        assert_eq!(matrix[0][0], measure["ideal"], "{key}");
        assert!(matrix[0][1].as_f64().is_some(), "{key} measured");
        assert_eq!(matrix[0][1], matrix[1][0], "{key} symmetric");
    }
    for figure in [
        "c-similarity",
        "c1-alignment-uniformity",
        "c2-distance-histograms",
        "c3-spectra",
        "c4-class-mean-cosines",
        "c5-within-class-distances",
    ] {
        let svg =
            std::fs::read_to_string(dir.path().join(format!("demo/figures/{figure}.svg"))).unwrap();
        assert!(svg.len() > 2000, "{figure} is empty");
    }
    // --similarity-only: the same matrices without the analyses, the metric table or the
    // overlaid figures; the terminal gets the matrices.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let file = |run: &str| {
        root.join(format!("fashion-{run}/ckpt_epoch_0012.safetensors"))
            .display()
            .to_string()
    };
    let (supcon, simclr) = (file("supcon"), file("simclr"));
    let named = [
        supcon.as_str(),
        simclr.as_str(),
        "--name",
        "supcon",
        "--name",
        "simclr",
        "--similarity-only",
    ];
    let only = compare(&named, &dir.path().join("only"));
    assert_eq!(only["similarity_only"], true);
    assert_eq!(only["similarity"], doc["similarity"]);
    assert_eq!(only["inputs"][1]["n"], doc["inputs"][1]["n"]);
    assert!(only["metrics"].as_array().unwrap().is_empty());
    assert!(only["analyses"].as_array().unwrap().is_empty());
    let page = std::fs::read_to_string(dir.path().join("only/index.html")).unwrap();
    assert!(page.contains("--similarity-only") && page.contains("CKNNA"));
    assert!(dir.path().join("only/figures/c-similarity.svg").exists());
    assert!(!dir.path().join("only/figures/c3-spectra.svg").exists());
    assert!(!dir.path().join("only/metrics.csv").exists());
    let out = dir.path().join("only-text").display().to_string();
    let mut printed = named.to_vec();
    printed.extend(["--out", &out]);
    let table = succeeds(&[&["compare"], printed.as_slice()].concat());
    assert!(
        table.contains("linear CKA") && table.contains("supcon"),
        "{table}"
    );
    // Refused: with --modalities, and inputs that do not hold the same rows.
    let message = fails(&[
        "compare",
        &supcon,
        &simclr,
        "--similarity-only",
        "--modalities",
        "a",
        "b",
        "--out",
        &dir.path().join("refused").display().to_string(),
    ]);
    assert!(message.contains("--modalities"), "{message}");
    let (rows, d, _) = digits();
    write_f64(&dir.path().join("digits.npy"), &rows, d);
    let message = fails(&[
        "compare",
        &supcon,
        &dir.path().join("digits.npy").display().to_string(),
        "--similarity-only",
        "--out",
        &dir.path().join("rows").display().to_string(),
    ]);
    assert!(
        message.contains("digits has") && message.contains("rows"),
        "{message}"
    );
}

/// `compare --modalities top bottom` of two checkpoints of the bundled two-tower run: the
/// first modality's metrics, the second's, and the cross-modal readings side by side, equal to
/// `analyze --modalities` of each checkpoint; the trained one is closest to the ideals of the
/// gap and of R@1; the R@k figure is drawn.
#[test]
fn two_modalities_of_each_input_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-clip");
    let files: Vec<String> = ["ckpt_epoch_0001", "ckpt_epoch_0012"]
        .iter()
        .map(|f| run.join(format!("{f}.safetensors")).display().to_string())
        .collect();
    let out = dir.path().join("compare").display().to_string();
    let json = succeeds(&[
        "compare",
        &files[0],
        &files[1],
        "--modalities",
        "top",
        "bottom",
        "--out",
        &out,
        "--json",
        "-",
    ]);
    let document: Value = serde_json::from_str(&json).unwrap();
    let rows = document["metrics"].as_array().unwrap();
    let row = |key: &str| {
        rows.iter()
            .find(|r| r["metric"] == key)
            .unwrap_or_else(|| panic!("no row {key}"))
    };
    for key in [
        "top.uniformity",
        "bottom.uniformity",
        "cone.bottom",
        "mrr.bottom_to_top",
    ] {
        assert_eq!(row(key)["values"].as_array().unwrap().len(), 2, "{key}");
    }
    assert_eq!(row("modality_gap")["closest_to_ideal"], "ckpt_epoch_0012");
    assert_eq!(
        row("recall_at_1.top_to_bottom")["closest_to_ideal"],
        "ckpt_epoch_0012"
    );
    for (k, file) in files.iter().enumerate() {
        let (top, bottom) = (format!("{file}:top"), format!("{file}:bottom"));
        let analysed: Value = serde_json::from_str(&succeeds(&[
            "analyze",
            "--modalities",
            &top,
            &bottom,
            "--shifts",
            "",
            "--json",
            "-",
        ]))
        .unwrap();
        let pair = &analysed["pairs"][0];
        assert_eq!(row("modality_gap")["values"][k], pair["gap"]["distance"]);
        assert_eq!(
            row("recall_at_1.bottom_to_top")["values"][k],
            pair["retrieval"]["bottom_to_top"]["recall_at_1"]
        );
        assert_eq!(document["modalities"]["pairs"][k]["gap"], pair["gap"]);
        let bottom_uniformity =
            &analysed["modalities"][1]["analysis"]["metrics"]["uniformity"]["value"];
        assert_eq!(&row("bottom.uniformity")["values"][k], bottom_uniformity);
    }
    let page = std::fs::read_to_string(dir.path().join("compare/index.html")).unwrap();
    assert!(
        page.contains("id=\"c-modalities-recall\"")
            && page.contains("two modalities, top and bottom")
    );
    let other = dir.path().join("missing-key").display().to_string();
    let error = fails(&[
        "compare",
        &files[0],
        &files[1],
        "--modalities",
        "top",
        "image",
        "--out",
        &other,
    ]);
    assert!(error.contains("image"), "{error}");
}
