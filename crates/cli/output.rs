//! The two renderings of an analysis: JSON (`embgeom.analysis/1`) and a table for people.

use clap::Args;
use embgeom_geometry::{Alignment, Analysis, Uniformity, ALPHA_REQ_RANKS, RANKME_EPSILON};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Where a report (of `report` or `track`) is written.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output folder [default: reports/<name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Name of the report [default: from the input's file or folder name].
    #[arg(long)]
    pub name: Option<String>,

    /// Replace an output folder that holds a different report or other files.
    #[arg(long)]
    pub force: bool,
}

impl OutputArgs {
    /// The report's name (given, else `default`) and folder (given, else `reports/<name>`).
    pub fn resolve(&self, default: impl FnOnce() -> String) -> (String, PathBuf) {
        let name = self.name.clone().unwrap_or_else(default);
        let dir = self
            .out
            .clone()
            .unwrap_or_else(|| Path::new("reports").join(&name));
        (name, dir)
    }
}

/// Where the analysed rows came from.
pub struct InputSummary {
    pub embeddings: Option<String>,
    pub views: Vec<String>,
    pub labels: Option<String>,
    pub classifier: Option<String>,
    pub split: Option<String>,
    pub subclasses: Option<String>,
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

/// `{"value": v, ...extra}` or `null` when the value is absent.
fn scalar(value: Option<f64>, extra: Value) -> Value {
    match value {
        None => Value::Null,
        Some(v) => {
            let mut object = Map::new();
            object.insert("value".into(), json!(v));
            if let Value::Object(fields) = extra {
                object.extend(fields);
            }
            Value::Object(object)
        }
    }
}

/// The class-collapse, simplex, spectrum and kNN entries of `metrics`.
fn collapse_json(analysis: &Analysis, metrics: &mut Map<String, Value>) {
    let s = &analysis.spectrum;
    metrics.insert(
        "spectrum".into(),
        json!({"eigenvalues": s.eigenvalues, "of": "centred covariance (N-1) of the normalised rows"}),
    );
    metrics.insert(
        "effective_rank".into(),
        json!({"value": s.effective_rank, "of": "singular values of the centred raw embeddings"}),
    );
    metrics.insert("rankme".into(), json!({"value": s.rankme, "epsilon": RANKME_EPSILON, "of": "singular values of the raw embeddings"}));
    metrics.insert(
        "alpha_req".into(),
        match &s.alpha_req {
            Some(fit) => json!({"value": fit.alpha, "r_squared": fit.r_squared, "ranks": [fit.ranks.0, fit.ranks.1], "weights": "1/k"}),
            None => Value::Null,
        },
    );
    metrics.insert(
        "normalized_std".into(),
        json!({"value": s.normalized_std, "reference": s.normalized_std_reference, "reference_is": "1/sqrt(D)"}),
    );
    let c = analysis.collapse.as_ref();
    let get = |f: fn(&embgeom_geometry::Collapse) -> Option<f64>| c.and_then(f);
    let scalars = [
        (
            "nc1",
            get(|c| c.nc1),
            json!({"definition": "tr(Sigma_W Sigma_B^+)/C", "pinv_rank": c.map(|c| c.nc1_rank)}),
        ),
        (
            "nc1_quotient",
            get(|c| c.nc1_quotient),
            json!({"definition": "tr(Sigma_W)/tr(Sigma_B)"}),
        ),
        (
            "nc2_equinorm",
            get(|c| c.nc2_equinorm),
            json!({"of": "centred class means", "std": "C-1"}),
        ),
        (
            "nc2_equinorm_classifier",
            get(|c| c.nc2_equinorm_classifier),
            json!({"of": "classifier rows", "std": "C-1"}),
        ),
        (
            "nc2_equiangularity",
            get(|c| c.nc2_equiangularity),
            json!({"of": "cosines of centred class means over ordered pairs"}),
        ),
        (
            "nc2_max_angle",
            get(|c| c.nc2_max_angle),
            json!({"definition": "mean |cos + 1/(C-1)|"}),
        ),
        (
            "etf_distance",
            get(|c| c.etf_distance),
            json!({"definition": "||G/||G||_F - (I - 11^T/C)/sqrt(C-1)||_F, G = M M^T"}),
        ),
        (
            "nc3",
            get(|c| c.nc3),
            json!({"definition": "||W/||W||_F - M/||M||_F||_F^2"}),
        ),
        (
            "nc4",
            get(|c| c.nc4),
            json!({"definition": "fraction where the classifier and the nearest class mean disagree"}),
        ),
        (
            "ncc_accuracy",
            c.map(|c| c.ncc_accuracy),
            json!({"definition": "fraction whose nearest class mean is their class"}),
        ),
    ];
    for (name, value, parameters) in scalars {
        metrics.insert(name.into(), scalar(value, parameters));
    }
    metrics.insert(
        "cdnv".into(),
        match c.and_then(|c| c.cdnv.as_ref()) {
            Some(cdnv) => json!({
                "value": cdnv.mean,
                "matrix": cdnv.matrix.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                "definition": "(Var_c + Var_c') / (2 ||mu_c - mu_c'||^2), mean over c < c'",
            }),
            None => Value::Null,
        },
    );
    metrics.insert(
        "simplex_angles".into(),
        match &analysis.simplex_angles {
            Some(a) => json!({
                "value": a.mean_abs_deviation_degrees,
                "max_deviation": a.max_abs_deviation_degrees,
                "mean_angle": a.mean_degrees,
                "ideal_angle": a.ideal_degrees,
                "angles": a.angles_degrees,
                "mean_norms": a.mean_norms,
                "unit": "degrees",
                "of": "uncentred class means of the normalised rows (Graf et al. 2021)",
            }),
            None => Value::Null,
        },
    );
    metrics.insert(
        "knn_accuracy".into(),
        match &analysis.knn {
            Some(k) => json!({
                "value": k.value, "k": k.k, "temperature": k.temperature, "split": k.split,
                "queries": k.queries, "candidates": k.candidates, "similarity": "cosine",
            }),
            None => Value::Null,
        },
    );
    metrics.insert(
        "per_class".into(),
        if analysis.per_class.is_empty() {
            Value::Null
        } else {
            Value::Array(
                analysis
                    .per_class
                    .iter()
                    .map(|p| {
                        json!({
                            "class": p.name, "n": p.count, "within_variance": p.within_variance,
                            "vertex_distance": p.vertex_distance, "nearest_vertex": p.nearest_vertex,
                            "effective_rank": p.effective_rank, "uniformity": p.uniformity,
                        })
                    })
                    .collect(),
            )
        },
    );
    metrics.insert(
        "subclasses".into(),
        match &analysis.subclasses {
            Some(sub) => json!({
                "value": sub.knn_accuracy,
                "knn_accuracy": sub.knn_accuracy,
                "cdnv": sub.cdnv,
                "per_class": sub.per_class.iter().map(|p| json!({
                    "class": p.name, "subclasses": p.subclasses,
                    "knn_accuracy": p.knn_accuracy, "cdnv": p.cdnv,
                })).collect::<Vec<_>>(),
            }),
            None => Value::Null,
        },
    );
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
    let mut metrics = Map::new();
    metrics.insert(
        "alignment".into(),
        json!(analysis.alignment.as_ref().map(alignment_json)),
    );
    metrics.insert(
        "uniformity".into(),
        json!(analysis.uniformity.as_ref().map(uniformity_json)),
    );
    metrics.insert(
        "uniformity_views".into(),
        json!(analysis
            .uniformity_views
            .iter()
            .map(uniformity_json)
            .collect::<Vec<_>>()),
    );
    metrics.insert(
        "class_alignment".into(),
        json!(analysis.class_alignment.as_ref().map(alignment_json)),
    );
    metrics.insert("uniformity_per_class".into(), json!(per_class));
    collapse_json(analysis, &mut metrics);
    json!({
        "schema": "embgeom.analysis/1",
        "n": analysis.n,
        "dim": analysis.dim,
        "num_classes": analysis.num_classes,
        "inputs": {
            "embeddings": inputs.embeddings,
            "views": inputs.views,
            "labels": inputs.labels,
            "classifier": inputs.classifier,
            "split": inputs.split,
            "subclasses": inputs.subclasses,
            "dtype": inputs.dtype,
            "normalized": inputs.normalized,
        },
        "metrics": metrics,
        "warnings": analysis.warnings,
        "definitions": {
            "alignment": "mean ||x_i - y_i||^alpha over row-matched views (Wang & Isola 2020)",
            "uniformity": "log mean_{i<j} exp(-t ||x_i - x_j||^2); with views, the mean of the per-view values",
            "class_alignment": "mean ||x_i - x_j||^alpha over same-class pairs i<j",
            "uniformity_per_class": "uniformity within each class; null for a class of one row",
            "collapse": "NC1-NC4, ETF distance, CDNV and NCC accuracy on the raw (unnormalised) rows, Papyan et al. 2020 / Galanti et al. 2022",
            "simplex_angles": "angles between class means of the normalised rows against arccos(-1/(C-1)), Graf et al. 2021",
            "spectrum": "eigenvalues of the normalised rows' covariance, Jing et al. 2022",
            "alpha_req": format!("weighted fit of log lambda_k = -alpha log k + c over ranks {}..{}, Agrawal et al. 2022", ALPHA_REQ_RANKS.0, ALPHA_REQ_RANKS.1),
            "knn_accuracy": "cosine kNN on normalised rows, votes weighted exp(sim/T)",
        },
    })
}

fn uniformity_detail(u: &Uniformity) -> String {
    match u.stderr {
        Some(se) => format!("sampled, {} pairs, stderr {se:.2e}", u.pairs),
        None => format!("exact, {} pairs", u.pairs),
    }
}

/// A table of (metric, value, detail) rows under group headings.
struct Table {
    rows: Vec<(String, String, String)>,
}

impl Table {
    fn group(&mut self, title: &str) {
        self.rows
            .push((format!("[{title}]"), String::new(), String::new()));
    }

    fn add(&mut self, name: impl Into<String>, value: Option<f64>, detail: impl Into<String>) {
        let value = value.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"));
        self.rows
            .push((format!("  {}", name.into()), value, detail.into()));
    }

    fn print(&self) {
        let width = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max(6);
        println!("{:width$}  {:>12}  detail", "metric", "value");
        for (name, value, detail) in &self.rows {
            println!("{name:width$}  {value:>12}  {detail}");
        }
    }
}

/// Rows of the per-class table printed for people.
const PER_CLASS_ROWS: usize = 30;

/// Print the analysis as an aligned, grouped table on stdout.
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
    let mut t = Table { rows: Vec::new() };
    t.group("alignment and uniformity");
    if let Some(a) = &analysis.alignment {
        t.add(
            format!("alignment (alpha={})", a.alpha),
            Some(a.value),
            format!("{} pairs", a.pairs),
        );
    }
    if let Some(u) = &analysis.uniformity {
        t.add(
            format!("uniformity (t={})", u.t),
            Some(u.value),
            uniformity_detail(u),
        );
    }
    for (v, u) in analysis.uniformity_views.iter().enumerate() {
        t.add(format!("  view {v}"), Some(u.value), uniformity_detail(u));
    }
    if let Some(a) = &analysis.class_alignment {
        t.add(
            format!("label-positive alignment (alpha={})", a.alpha),
            Some(a.value),
            format!("{} same-class pairs", a.pairs),
        );
    }
    if let Some(c) = &analysis.collapse {
        t.group("class collapse");
        t.add(
            "NC1 tr(Sw Sb+)/C",
            c.nc1,
            "0 = within-class variability collapsed",
        );
        t.add("NC1 quotient tr(Sw)/tr(Sb)", c.nc1_quotient, "");
        t.add("NC2 equinorm (means)", c.nc2_equinorm, "0 = equal norms");
        if c.nc2_equinorm_classifier.is_some() {
            t.add("NC2 equinorm (classifier)", c.nc2_equinorm_classifier, "");
        }
        t.add(
            "NC2 equiangularity",
            c.nc2_equiangularity,
            "0 = equal angles",
        );
        t.add("NC2 max-angle", c.nc2_max_angle, "0 = cosines all -1/(C-1)");
        if c.nc3.is_some() || c.nc4.is_some() {
            t.add(
                "NC3 self-duality",
                c.nc3,
                "0 = classifier aligned with means",
            );
            t.add(
                "NC4 classifier vs nearest mean",
                c.nc4,
                "fraction that disagree",
            );
        }
        t.add("nearest-class-mean accuracy", Some(c.ncc_accuracy), "");
        t.add(
            "CDNV (mean over pairs)",
            c.cdnv.as_ref().map(|c| c.mean),
            "0 = classes collapsed and apart",
        );
        if let Some(k) = &analysis.knn {
            t.add(
                format!("kNN accuracy (k={})", k.k),
                Some(k.value),
                format!("{}, {} queries", k.split, k.queries),
            );
        }
        t.group("simplex");
        t.add(
            "ETF distance",
            c.etf_distance,
            "0 = centred means form a regular simplex",
        );
        if let Some(a) = &analysis.simplex_angles {
            t.add(
                "class-mean angle deviation",
                Some(a.mean_abs_deviation_degrees),
                format!("degrees (mean |angle - {:.2}|)", a.ideal_degrees),
            );
            t.add(
                "  max deviation",
                Some(a.max_abs_deviation_degrees),
                "degrees",
            );
            let mean_norm = a.mean_norms.iter().sum::<f64>() / a.mean_norms.len() as f64;
            t.add(
                "  mean class-mean norm",
                Some(mean_norm),
                "1 = classes collapsed on the sphere",
            );
        }
    }
    let s = &analysis.spectrum;
    t.group("spectrum");
    t.add(
        "effective rank",
        Some(s.effective_rank),
        format!("of {} dimensions", analysis.dim),
    );
    t.add("RankMe", Some(s.rankme), "");
    match &s.alpha_req {
        Some(fit) => t.add(
            "alpha-ReQ",
            Some(fit.alpha),
            format!(
                "R^2 {:.3}, ranks {}..{}",
                fit.r_squared, fit.ranks.0, fit.ranks.1
            ),
        ),
        None => t.add("alpha-ReQ", None, "needs 13 or more dimensions"),
    }
    t.add(
        "std of normalised rows",
        Some(s.normalized_std),
        format!("1/sqrt(D) = {:.6}", s.normalized_std_reference),
    );
    t.add(
        "top eigenvalue share",
        s.eigenvalues
            .first()
            .map(|top| top / s.eigenvalues.iter().sum::<f64>().max(f64::MIN_POSITIVE)),
        "",
    );
    if let Some(sub) = &analysis.subclasses {
        t.group("subclasses");
        t.add(
            "within-class kNN subclass accuracy",
            sub.knn_accuracy,
            "mean over classes",
        );
        t.add("CDNV between subclasses", sub.cdnv, "mean over classes");
    }
    t.print();
    if !analysis.per_class.is_empty() {
        println!();
        println!(
            "{:>12} {:>8} {:>14} {:>10} {:>10} {:>11}",
            "class", "n", "within var", "vertex d", "eff rank", "uniformity"
        );
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        for p in analysis.per_class.iter().take(PER_CLASS_ROWS) {
            println!(
                "{:>12} {:>8} {:>14.6} {:>10} {:>10} {:>11}",
                p.name,
                p.count,
                p.within_variance,
                cell(p.vertex_distance),
                cell(p.effective_rank),
                cell(p.uniformity)
            );
        }
        if analysis.per_class.len() > PER_CLASS_ROWS {
            println!(
                "{:>12} ({} more classes: the full table is in the --json output)",
                "...",
                analysis.per_class.len() - PER_CLASS_ROWS
            );
        }
    }
    if !analysis.warnings.is_empty() {
        println!();
        for w in &analysis.warnings {
            println!("warning: {w}");
        }
    }
}
