//! The formats researchers save (PyTorch `.pt`/`.pth`/`.bin`, Arrow IPC and Feather, a
//! Hugging Face `save_to_disk` folder, JSON Lines), read from fixtures written by the real
//! libraries (`tests/fixtures/readers/make.py`): each gives the same analysis as the same
//! values in `.npy`.

use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::*;

const DIR: &str = "tests/fixtures/readers";

fn fixture(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// The scalar metrics of an analysis.
fn scalars(doc: &Value) -> Vec<(String, f64)> {
    doc["metrics"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| v.get("value")?.as_f64().map(|x| (k.clone(), x)))
        .collect()
}

fn reference(values: &str) -> Value {
    json(&[
        "analyze",
        &fixture(values),
        "--labels",
        &fixture("labels.npy"),
    ])
}

fn assert_same(doc: &Value, want: &Value, what: &str) {
    assert_eq!(doc["n"], 40, "{what}");
    assert_eq!(doc["dim"], 8, "{what}");
    assert_eq!(scalars(doc), scalars(want), "{what}");
}

#[test]
fn pytorch_files_give_the_same_analysis_as_npy() {
    let want = reference("values.npy");
    let with_labels = |file: &str, extra: &[&str]| {
        let path = fixture(file);
        let labels = fixture("labels.npy");
        let mut args = vec!["analyze", path.as_str(), "--labels", labels.as_str()];
        args.extend_from_slice(extra);
        json(&args)
    };
    assert_same(&with_labels("tensor.pt", &[]), &want, "a bare tensor");
    assert_same(
        &with_labels("slice.pt", &[]),
        &want,
        "a non-contiguous view",
    );
    assert_same(
        &json(&["analyze", &fixture("dict.pt")]),
        &want,
        "a dict with embeddings and labels",
    );
    assert_same(
        &json(&["analyze", &fixture("state.bin")]),
        &want,
        "an OrderedDict saved as .bin",
    );
    let nested = json(&[
        "analyze",
        &fixture("nested.pth"),
        "--key",
        "model.embeddings",
    ]);
    assert_same(&nested, &want, "a nested key and a list of labels");
    assert_eq!(
        nested["inputs"]["embeddings"],
        format!("{DIR}/nested.pth:model.embeddings")
    );
    let bf16 = reference("bf16-values.npy");
    assert_same(&with_labels("bf16.pt", &[]), &bf16, "bf16");
}

#[test]
fn pytorch_files_never_run_pickled_code() {
    let message = fails(&["analyze", &fixture("malicious.pt")]);
    assert!(
        message.contains(
            "malicious.pt: corrupt or invalid file: refuses the pickled global posix.system"
        ),
        "{message}"
    );
    assert!(!std::path::Path::new("embgeom-was-exploited").exists());
    let message = fails(&["analyze", &fixture("legacy.pt")]);
    assert!(
        message.contains("legacy (pre-1.6, non-zip) PyTorch file: re-save it"),
        "{message}"
    );
    let message = fails(&["analyze", &fixture("dict.pt"), "--key", "model.missing"]);
    assert!(
        message.contains("available: embeddings, labels"),
        "{message}"
    );
}

#[test]
fn arrow_feather_and_saved_datasets_give_the_same_analysis_as_npy() {
    let want = reference("values64.npy");
    assert_same(
        &json(&["analyze", &fixture("table.feather")]),
        &want,
        "Feather",
    );
    assert_same(
        &json(&["analyze", &fixture("stream.arrow")]),
        &want,
        "an IPC stream",
    );
    let hf = json(&["analyze", &fixture("hf-dataset")]);
    assert_same(&hf, &want, "a save_to_disk folder");
    let classes: Vec<&str> = hf["metrics"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        ["ankle", "bag", "coat", "dress"],
        "ClassLabel names"
    );
}

#[test]
fn json_lines_give_the_same_analysis_as_npy_and_name_bad_lines() {
    let want = reference("values64.npy");
    assert_same(
        &json(&["analyze", &fixture("data.jsonl")]),
        &want,
        "JSON Lines",
    );
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("data.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[6] = lines[6].replace("\"embedding\": [", "\"embedding\": [oops, ");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let message = fails(&["analyze", bad.to_str().unwrap()]);
    assert!(
        message.contains("bad.jsonl: line 7: not valid JSON"),
        "{message}"
    );
    lines[6] = text
        .lines()
        .nth(6)
        .unwrap()
        .replace("\"embedding\": [", "\"embedding\": [1.5, ");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let message = fails(&["analyze", bad.to_str().unwrap()]);
    assert!(
        message.contains("bad.jsonl:embedding: line 7: 9 values, but line 1 has 8"),
        "{message}"
    );
}
