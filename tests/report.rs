//! End-to-end tests of `embgeom report`: the files, a self-contained page, the overwrite
//! rules, and the bundled demo.

use std::path::Path;
use std::process::{Command, Output};

fn embgeom_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embgeom"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run embgeom")
}

fn demo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/digits.npz")
        .display()
        .to_string()
}

const FIGURES: [&str; 12] = [
    "01-alignment-uniformity",
    "02-distance-histograms",
    "03-circle",
    "04-class-mean-cosines",
    "05-class-mean-angles",
    "06-spectrum",
    "07-within-class-distances",
    "08-cdnv",
    "09-pca-scatter",
    "10-intrinsic-dimension",
    "11-k-occurrence",
    "12-hard-negatives",
];

#[test]
fn no_arguments_report_the_bundled_demo_with_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = embgeom_in(dir.path(), &["report"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.path().join("reports/demo");
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    for id in FIGURES {
        let svg = std::fs::read_to_string(report.join(format!("figures/{id}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.len() > 1000, "{id}.svg");
        let png = std::fs::read(report.join(format!("figures/{id}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{id}.png");
        assert!(
            page.contains(&format!("<figure id=\"{id}\"")),
            "{id} missing from the page"
        );
    }
    assert_eq!(
        page.matches("<svg").count(),
        FIGURES.len(),
        "every figure inline"
    );
    assert_eq!(page.matches("<figcaption>").count(), FIGURES.len());
    // Self-contained: no scripts, stylesheets, images or fonts to fetch.
    for needle in ["<script", "<link", "<img", "src=", "url(", "@import"] {
        assert!(!page.contains(needle), "page contains {needle}");
    }
    // The only https addresses are links to the papers, which nothing fetches.
    let links = page.matches("https://").count();
    assert_eq!(page.matches("<a href=\"https://").count(), links);
    assert!(links >= 5, "each metric links its paper");
    let external: Vec<&str> = page
        .match_indices("http://")
        .map(|(i, _)| &page[i..i + 30])
        .collect();
    assert!(
        external.iter().all(|s| s.starts_with("http://www.w3.org/")),
        "{external:?}"
    );
    for text in [
        "Alignment and uniformity",
        "Class collapse",
        "Spectrum",
        "Wang &amp; Isola 2020",
        "data/fashion-supcon",
    ] {
        assert!(page.contains(text), "page lacks {text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("analysis.json")).unwrap())
            .unwrap();
    assert_eq!(json["n"], 2000);
    assert_eq!(json["num_classes"], 10);
    assert!(
        json["metrics"]["alignment"]["value"].as_f64().unwrap() > 0.0,
        "views give alignment"
    );
    let csv = std::fs::read_to_string(report.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("metric,value\n")
            && csv.contains("\nuniformity,")
            && csv.contains("\nnc1,")
    );
}

#[test]
fn a_different_report_is_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r").display().to_string();
    let first = embgeom_in(dir.path(), &["report", &demo(), "--out", &out]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = embgeom_in(dir.path(), &["report", &demo(), "--out", &out]);
    assert!(again.status.success(), "the same report may be rewritten");
    let other = embgeom_in(dir.path(), &["report", &demo(), "--out", &out, "--t", "1"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("already holds a different report"));
    let forced = embgeom_in(
        dir.path(),
        &["report", &demo(), "--out", &out, "--t", "1", "--force"],
    );
    assert!(forced.status.success());
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let refused = embgeom_in(
        dir.path(),
        &["report", &demo(), "--out", busy.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(busy.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn unlabelled_embeddings_get_the_figures_that_apply() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..300 * 5)
        .map(|k| ((k * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let path = dir.path().join("plain.npy");
    std::fs::write(&path, embgeom_io::npy_bytes_f32(&[300, 5], &values)).unwrap();
    let out = embgeom_in(dir.path(), &["report", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("not drawn: Cosines between class means (needs class labels)"),
        "{stdout}"
    );
    let page = std::fs::read_to_string(dir.path().join("reports/plain/index.html")).unwrap();
    assert!(page.contains("<figure id=\"09-pca-scatter\"") && page.contains("Not drawn:"));
}

/// `report --modalities` on the bundled two-tower run: the untrained checkpoint's page shows
/// the gap (two clouds far apart in the joint PCA), each modality gets its own report, the
/// document is the `analyze --modalities` one, and the folder rules hold.
#[test]
fn modalities_report_shows_the_gap_and_each_modality() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fashion-clip/ckpt_epoch_0000.safetensors")
        .display()
        .to_string();
    let (top, bottom) = (format!("{checkpoint}:top"), format!("{checkpoint}:bottom"));
    let args = [
        "report",
        "--modalities",
        &top,
        &bottom,
        "--out",
        "untrained",
    ];
    let out = embgeom_in(dir.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.path().join("untrained");
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    for id in [
        "p1-joint-pca",
        "p1-gap-components",
        "p1-pair-similarities",
        "p1-recall-curves",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
        assert!(report.join(format!("figures/{id}.png")).is_file(), "{id}");
    }
    for name in ["top", "bottom"] {
        assert!(page.contains(&format!("href=\"{name}/index.html\"")));
        let own = std::fs::read_to_string(report.join(name).join("index.html")).unwrap();
        assert!(
            own.contains("01-alignment-uniformity"),
            "{name}'s own report"
        );
    }
    assert!(page.contains("modality_gap") && page.contains("recall_at_1.top_to_bottom"));
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("modalities.json")).unwrap())
            .unwrap();
    assert_eq!(document["schema"], "embgeom.modalities/1");
    let gap = document["pairs"][0]["gap"]["distance"].as_f64().unwrap();
    assert!(gap > 1.5, "the untrained towers sit far apart: {gap}");
    // The same report again is fine; another one into the same folder is refused.
    assert!(embgeom_in(dir.path(), &args).status.success());
    let other = [
        "report",
        "--modalities",
        &bottom,
        &top,
        "--out",
        "untrained",
    ];
    let refused = embgeom_in(dir.path(), &other);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("untrained"));
}
