//! The metric catalogue is complete, consistent and documented.

use embgeom_geometry::catalogue::{metrics, Level, CATALOGUE};
use std::collections::HashSet;

#[test]
fn keys_are_unique_and_details_name_their_metric() {
    let mut seen = HashSet::new();
    for m in CATALOGUE {
        assert!(seen.insert(m.key), "{} twice", m.key);
        assert!(!m.name.is_empty() && !m.reading.is_empty(), "{}", m.key);
        assert!(m.paper.link.starts_with("https://"), "{}", m.key);
        match m.level {
            Level::Metric => assert!(!m.key.contains('.'), "{}", m.key),
            Level::Detail => {
                let parent = m.key.split('.').next().unwrap_or_default();
                // `spectrum` is the JSON entry of the eigenvalue list (not a scalar).
                assert!(
                    parent == "spectrum" || CATALOGUE.iter().any(|p| p.key == parent),
                    "{}: no metric {parent}",
                    m.key
                );
            }
        }
    }
}

#[test]
fn every_metric_is_documented_in_docs_metrics_md() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/src/reference/metrics.md"
    );
    let doc = std::fs::read_to_string(path).expect("docs/src/reference/metrics.md");
    for m in metrics() {
        assert!(
            doc.contains(&format!("`{}`", m.key)),
            "docs/src/reference/metrics.md does not define `{}`",
            m.key
        );
    }
}

#[test]
fn cross_modal_readings_are_unique_and_documented() {
    use embgeom_geometry::cross_catalogue::CROSS_CATALOGUE;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/src/reference/metrics.md"
    );
    let doc = std::fs::read_to_string(path).expect("docs/src/reference/metrics.md");
    let mut seen = HashSet::new();
    for m in CROSS_CATALOGUE {
        assert!(seen.insert(m.key), "{} twice", m.key);
        assert!(!m.about.is_empty() && !m.reading.is_empty(), "{}", m.key);
        assert!(m.paper.link.starts_with("https://"), "{}", m.key);
        assert!(
            doc.contains(&format!("`{}`", m.key)),
            "docs/src/reference/metrics.md does not define the cross-modal `{}`",
            m.key
        );
    }
}
