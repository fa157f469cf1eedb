//! The two renderings of an analysis: the `embgeom.analysis/1` JSON document and a table for
//! people, both generated from the metric catalogue.

use crate::inputs::InputSummary;
use embgeom_geometry::catalogue::{self, shown_groups, Level, CATALOGUE};
use embgeom_geometry::{Analysis, Uniformity};
use serde_json::{json, Map, Value};

/// Name of the JSON schema.
pub const SCHEMA: &str = "embgeom.analysis/1";

/// The `embgeom.analysis/1` document: `n`, `dim`, `num_classes`, `inputs`, `metrics` (every
/// catalogued metric as `{"value": ..., parameters...}`, `null` when it does not apply, plus
/// the per-view and per-class uniformities, the spectrum and the per-class table),
/// `warnings`, and `definitions` (each metric's definition with the parameters used).
pub fn analysis_document(analysis: &Analysis, inputs: &InputSummary) -> Value {
    let mut metrics = Map::new();
    let json_of = |u: &Vec<Uniformity>| serde_json::to_value(u).unwrap_or(Value::Null);
    for metric in catalogue::metrics() {
        metrics.insert(metric.key.into(), metric.json(analysis));
        match metric.key {
            "uniformity" => {
                metrics.insert(
                    "uniformity_views".into(),
                    json_of(&analysis.uniformity_views),
                );
            }
            "class_alignment" => {
                let per_class: Option<Map<String, Value>> = analysis.num_classes.map(|_| {
                    analysis
                        .uniformity_per_class
                        .iter()
                        .map(|(name, u)| (name.clone(), json!(u.as_ref().map(|u| u.value))))
                        .collect()
                });
                metrics.insert("uniformity_per_class".into(), json!(per_class));
            }
            _ => {}
        }
    }
    metrics.insert(
        "spectrum".into(),
        json!({"eigenvalues": analysis.spectrum.eigenvalues, "of": "centred covariance (N-1) of the normalised rows"}),
    );
    metrics.insert(
        "per_class".into(),
        match analysis.per_class.is_empty() {
            true => Value::Null,
            false => serde_json::to_value(&analysis.per_class).unwrap_or(Value::Null),
        },
    );
    let definitions: Map<String, Value> = catalogue::metrics()
        .map(|m| (m.key.to_string(), json!(m.definition(analysis))))
        .chain([(
            "uniformity_per_class".to_string(),
            json!("uniformity within each class; null for a class of one row"),
        )])
        .collect();
    let papers: Map<String, Value> = catalogue::metrics()
        .map(|m| {
            (
                m.key.to_string(),
                json!(m.paper.citation.to_string() + " " + m.paper.link),
            )
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "n": analysis.n,
        "dim": analysis.dim,
        "num_classes": analysis.num_classes,
        "inputs": inputs,
        "metrics": metrics,
        "warnings": analysis.warnings,
        "definitions": definitions,
        "papers": papers,
    })
}

/// A number for the table: six decimals, `-` when absent.
fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"))
}

/// Rows of the per-class table printed for people.
const PER_CLASS_ROWS: usize = 30;

/// The analysis as an aligned, grouped table for people: the input line, every catalogued
/// metric that applies (name, value, how to read it), the per-class table and the warnings.
pub fn text_table(analysis: &Analysis, inputs: &InputSummary) -> String {
    let classes = analysis
        .num_classes
        .map(|c| format!(", {c} classes"))
        .unwrap_or_default();
    let normalized = match inputs.normalized {
        true => "L2-normalised",
        false => "not normalised",
    };
    let mut out = format!(
        "{}: {} x {} ({}{classes}, {normalized})\n\n",
        inputs.source(),
        analysis.n,
        analysis.dim,
        inputs.dtype
    );
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for (group, shown) in shown_groups(analysis) {
        rows.push((format!("[{}]", group.title()), String::new(), String::new()));
        for m in shown {
            let indent = if m.level == Level::Detail {
                "    "
            } else {
                "  "
            };
            rows.push((
                format!("{indent}{}", m.name),
                cell(m.value(analysis)),
                m.reading.to_string(),
            ));
            if m.key == "uniformity" {
                for (v, u) in analysis.uniformity_views.iter().enumerate() {
                    rows.push((
                        format!("    view {v}"),
                        cell(Some(u.value)),
                        format!("{} over {} pairs", u.method.as_str(), u.pairs),
                    ));
                }
            }
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    out.push_str(&format!("{:width$}  {:>12}  reading\n", "metric", "value"));
    for (name, value, reading) in &rows {
        out.push_str(&format!("{name:width$}  {value:>12}  {reading}\n"));
    }
    out.push_str("\nparameters:\n");
    for m in CATALOGUE
        .iter()
        .filter(|m| m.level == Level::Metric && m.value(analysis).is_some())
    {
        out.push_str(&format!("  {}: {}\n", m.key, m.definition(analysis)));
    }
    if !analysis.per_class.is_empty() {
        out.push_str(&format!(
            "\n{:>12} {:>8} {:>14} {:>10} {:>10} {:>11} {:>9}\n",
            "class", "n", "within var", "vertex d", "eff rank", "uniformity", "self-sim"
        ));
        let short = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        for p in analysis.per_class.iter().take(PER_CLASS_ROWS) {
            out.push_str(&format!(
                "{:>12} {:>8} {:>14.6} {:>10} {:>10} {:>11} {:>9}\n",
                p.name,
                p.count,
                p.within_variance,
                short(p.vertex_distance),
                short(p.effective_rank),
                short(p.uniformity),
                short(p.self_similarity)
            ));
        }
        if analysis.per_class.len() > PER_CLASS_ROWS {
            out.push_str(&format!(
                "{:>12} ({} more classes: the full table is in the --json output)\n",
                "...",
                analysis.per_class.len() - PER_CLASS_ROWS
            ));
        }
    }
    if !analysis.warnings.is_empty() {
        out.push('\n');
        for w in &analysis.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{run_analysis, Extras, InputSpec};
    use embgeom_geometry::{AnalysisOptions, NoProgress};

    #[test]
    fn the_document_and_the_table_follow_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.npz");
        let options = AnalysisOptions {
            knn: embgeom_geometry::KnnOptions {
                k: 7,
                temperature: 0.5,
                ..Default::default()
            },
            ..AnalysisOptions::default()
        };
        let run = run_analysis(
            &InputSpec::file(path),
            &options,
            Extras::default(),
            &NoProgress,
        )
        .unwrap();
        let doc = analysis_document(&run.analysis, &run.summary);
        for m in catalogue::metrics() {
            let value = m.value(&run.analysis);
            assert_eq!(doc["metrics"][m.key]["value"].as_f64(), value, "{}", m.key);
            assert!(doc["definitions"][m.key].is_string(), "{}", m.key);
        }
        // The parameters actually used appear in the definitions, not the defaults.
        let knn = doc["definitions"]["knn_accuracy"].as_str().unwrap();
        assert!(
            knn.contains("k = 7") && knn.contains("exp(sim/0.5)"),
            "{knn}"
        );
        let table = text_table(&run.analysis, &run.summary);
        assert!(
            table.contains("[Class collapse]") && table.contains("k = 7"),
            "{table}"
        );
        assert!(
            table.lines().any(|l| l.starts_with("  alignment ")) && table.contains("view 1"),
            "the bundled digits have two views: {table}"
        );
    }
}
