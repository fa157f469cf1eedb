//! The two renderings of an analysis: JSON (`embgeom.analysis/1`) and a table for people.

use embgeom_geometry::{Alignment, Analysis, Uniformity};
use serde_json::{json, Map, Value};

/// Where the analysed rows came from.
pub struct InputSummary {
    pub embeddings: Option<String>,
    pub views: Vec<String>,
    pub labels: Option<String>,
    pub dtype: String,
    pub normalized: bool,
}

fn alignment_json(a: &Alignment) -> Value {
    json!({"value": a.value, "alpha": a.alpha, "pairs": a.pairs})
}

fn uniformity_json(u: &Uniformity) -> Value {
    json!({
        "value": u.value,
        "t": u.t,
        "method": u.method.as_str(),
        "pairs": u.pairs,
        "stderr": u.stderr,
    })
}

/// The `embgeom.analysis/1` document. Metrics that do not apply are `null`.
pub fn to_json(analysis: &Analysis, inputs: &InputSummary) -> Value {
    let per_class: Option<Map<String, Value>> = analysis.num_classes.map(|_| {
        analysis
            .uniformity_per_class
            .iter()
            .map(|(name, u)| (name.clone(), json!(u.as_ref().map(|u| u.value))))
            .collect()
    });
    json!({
        "schema": "embgeom.analysis/1",
        "n": analysis.n,
        "dim": analysis.dim,
        "num_classes": analysis.num_classes,
        "inputs": {
            "embeddings": inputs.embeddings,
            "views": inputs.views,
            "labels": inputs.labels,
            "dtype": inputs.dtype,
            "normalized": inputs.normalized,
        },
        "metrics": {
            "alignment": analysis.alignment.as_ref().map(alignment_json),
            "uniformity": analysis.uniformity.as_ref().map(uniformity_json),
            "uniformity_views": analysis.uniformity_views.iter().map(uniformity_json).collect::<Vec<_>>(),
            "class_alignment": analysis.class_alignment.as_ref().map(alignment_json),
            "uniformity_per_class": per_class,
        },
        "definitions": {
            "alignment": "mean ||x_i - y_i||^alpha over row-matched views (Wang & Isola 2020)",
            "uniformity": "log mean_{i<j} exp(-t ||x_i - x_j||^2); with views, the mean of the per-view values",
            "class_alignment": "mean ||x_i - x_j||^alpha over same-class pairs i<j",
            "uniformity_per_class": "uniformity within each class; null for a class of one row",
        },
    })
}

fn uniformity_detail(u: &Uniformity) -> String {
    match u.stderr {
        Some(se) => format!("sampled, {} pairs, stderr {se:.2e}", u.pairs),
        None => format!("exact, {} pairs", u.pairs),
    }
}

/// Print the analysis as an aligned table on stdout.
pub fn print_table(analysis: &Analysis, inputs: &InputSummary) {
    let source = inputs
        .embeddings
        .clone()
        .unwrap_or_else(|| inputs.views.join(", "));
    let classes = analysis
        .num_classes
        .map(|c| format!(", {c} classes"))
        .unwrap_or_default();
    let normalized = if inputs.normalized {
        "L2-normalised"
    } else {
        "not normalised"
    };
    println!(
        "{source}: {} x {} ({}{classes}, {normalized})",
        analysis.n, analysis.dim, inputs.dtype
    );
    println!();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    if let Some(a) = &analysis.alignment {
        rows.push((
            format!("alignment (alpha={})", a.alpha),
            format!("{:.6}", a.value),
            format!("{} pairs", a.pairs),
        ));
    }
    if let Some(u) = &analysis.uniformity {
        rows.push((
            format!("uniformity (t={})", u.t),
            format!("{:.6}", u.value),
            uniformity_detail(u),
        ));
    }
    for (v, u) in analysis.uniformity_views.iter().enumerate() {
        rows.push((
            format!("  view {v}"),
            format!("{:.6}", u.value),
            uniformity_detail(u),
        ));
    }
    if let Some(a) = &analysis.class_alignment {
        rows.push((
            format!("label-positive alignment (alpha={})", a.alpha),
            format!("{:.6}", a.value),
            format!("{} same-class pairs", a.pairs),
        ));
    }
    if analysis.num_classes.is_some() {
        rows.push(("uniformity per class".into(), String::new(), String::new()));
        for (name, u) in &analysis.uniformity_per_class {
            match u {
                Some(u) => rows.push((
                    format!("  {name}"),
                    format!("{:.6}", u.value),
                    uniformity_detail(u),
                )),
                None => rows.push((format!("  {name}"), "-".into(), "one row: undefined".into())),
            }
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    println!("{:width$}  {:>12}  detail", "metric", "value");
    for (name, value, detail) in rows {
        println!("{name:width$}  {value:>12}  {detail}");
    }
}
