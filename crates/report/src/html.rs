//! The self-contained HTML page: inline CSS and SVG, no scripts, no network.

use crate::figures::Figure;
use crate::{RenderedFigure, Report};
use embgeom_geometry::Analysis;

/// Escape text for HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(
        || "&ndash;".into(),
        |v| {
            if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
                format!("{v:.3e}")
            } else {
                format!("{v:.4}")
            }
        },
    )
}

/// One metric row: name, value, definition, source.
struct Row {
    name: String,
    value: Option<f64>,
    definition: &'static str,
    source: &'static str,
}

fn row(
    name: impl Into<String>,
    value: Option<f64>,
    definition: &'static str,
    source: &'static str,
) -> Row {
    Row {
        name: name.into(),
        value,
        definition,
        source,
    }
}

/// The metric groups of the page, as in `embgeom analyze`.
fn groups(a: &Analysis) -> Vec<(&'static str, Vec<Row>)> {
    const WI: &str = "Wang & Isola 2020";
    const PAPYAN: &str = "Papyan et al. 2020";
    let mut out = Vec::new();
    let mut au = vec![];
    if let Some(al) = &a.alignment {
        au.push(row(
            format!("alignment (alpha = {})", al.alpha),
            Some(al.value),
            "mean ||x_i - y_i||^alpha over the positive views",
            WI,
        ));
    }
    if let Some(u) = &a.uniformity {
        au.push(row(
            format!("uniformity (t = {}, {})", u.t, u.method.as_str()),
            Some(u.value),
            "log mean exp(-t ||x_i - x_j||^2) over pairs i < j",
            WI,
        ));
    }
    if let Some(al) = &a.class_alignment {
        au.push(row(
            "label-positive alignment",
            Some(al.value),
            "mean ||x_i - x_j||^alpha over same-class pairs",
            WI,
        ));
    }
    out.push(("Alignment and uniformity", au));
    if let Some(c) = &a.collapse {
        let mut rows = vec![
            row(
                "NC1",
                c.nc1,
                "tr(Sigma_W Sigma_B^+)/C: within- vs between-class variability",
                PAPYAN,
            ),
            row(
                "NC1 quotient",
                c.nc1_quotient,
                "tr(Sigma_W)/tr(Sigma_B)",
                PAPYAN,
            ),
            row(
                "NC2 equinorm",
                c.nc2_equinorm,
                "std/mean of the centred class-mean norms",
                PAPYAN,
            ),
            row(
                "NC2 equiangularity",
                c.nc2_equiangularity,
                "std of the cosines between centred class means",
                PAPYAN,
            ),
            row(
                "NC2 max-angle",
                c.nc2_max_angle,
                "mean |cos + 1/(C-1)|",
                PAPYAN,
            ),
        ];
        if c.nc3.is_some() {
            rows.push(row(
                "NC2 equinorm (classifier)",
                c.nc2_equinorm_classifier,
                "std/mean of the classifier row norms",
                PAPYAN,
            ));
            rows.push(row(
                "NC3",
                c.nc3,
                "||W/||W|| - M/||M||||^2: classifier vs class means",
                PAPYAN,
            ));
            rows.push(row(
                "NC4",
                c.nc4,
                "fraction where classifier and nearest class mean disagree",
                PAPYAN,
            ));
        }
        rows.push(row(
            "nearest-class-mean accuracy",
            Some(c.ncc_accuracy),
            "fraction whose nearest class mean is their class",
            PAPYAN,
        ));
        rows.push(row(
            "CDNV",
            c.cdnv.as_ref().map(|c| c.mean),
            "(Var_c + Var_c')/(2||mu_c - mu_c'||^2), mean over pairs",
            "Galanti et al. 2022",
        ));
        if let Some(k) = &a.knn {
            rows.push(row(
                format!("kNN accuracy (k = {}, {})", k.k, k.split),
                Some(k.value),
                "cosine kNN with exp(sim/0.07) votes",
                "Wu et al. 2018",
            ));
        }
        out.push(("Class collapse", rows));
        let mut simplex = vec![row(
            "ETF distance",
            c.etf_distance,
            "distance of the class-mean Gram matrix to a regular simplex",
            "",
        )];
        if let Some(s) = &a.simplex_angles {
            simplex.push(row(
                "class-mean angle deviation (degrees)",
                Some(s.mean_abs_deviation_degrees),
                "mean |angle - arccos(-1/(C-1))| on normalised features",
                "Graf et al. 2021",
            ));
            simplex.push(row(
                "max angle deviation (degrees)",
                Some(s.max_abs_deviation_degrees),
                "largest |angle - arccos(-1/(C-1))|",
                "Graf et al. 2021",
            ));
        }
        out.push(("Simplex", simplex));
    }
    let sp = &a.spectrum;
    let mut spectrum = vec![
        row(
            "effective rank",
            Some(sp.effective_rank),
            "exp(entropy) of the singular values of the centred embeddings",
            "Roy & Vetterli 2007",
        ),
        row(
            "RankMe",
            Some(sp.rankme),
            "exp(entropy) of the singular values of the raw embeddings",
            "Garrido et al. 2023",
        ),
    ];
    spectrum.push(row(
        "alpha-ReQ",
        sp.alpha_req.as_ref().map(|f| f.alpha),
        "power-law decay of the eigenvalues (ranks 11-100)",
        "Agrawal et al. 2022",
    ));
    spectrum.push(row(
        "std of normalised rows",
        Some(sp.normalized_std),
        "mean per-dimension std; 1/sqrt(D) when spread out",
        "Chen & He 2021",
    ));
    out.push(("Spectrum", spectrum));
    if let Some(sub) = &a.subclasses {
        out.push((
            "Subclasses",
            vec![
                row(
                    "within-class kNN subclass accuracy",
                    sub.knn_accuracy,
                    "do fine labels stay apart inside each class?",
                    "Chen et al. 2022",
                ),
                row(
                    "CDNV between subclasses",
                    sub.cdnv,
                    "mean CDNV of the subclasses within each class",
                    "Chen et al. 2022",
                ),
            ],
        ));
    }
    out
}

pub(crate) const CSS: &str = "
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem;margin:.3rem 0}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.92rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.v{font-variant-numeric:tabular-nums;text-align:right;white-space:nowrap}
th{background:#f4f4f4}.src{color:#666;font-size:.85rem}
.warn{background:#fff6e0;border-left:4px solid #d55e00;padding:.5rem 1rem;margin:1rem 0}
figure{margin:1.5rem 0;padding:.5rem;border:1px solid #e5e5e5;border-radius:4px;break-inside:avoid}
figure svg{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:.9rem;color:#333;margin-top:.4rem}
figcaption a{color:#0072b2}
@media print{body{max-width:none;margin:0}figure{break-inside:avoid;page-break-inside:avoid}a{color:inherit}}
";

/// Give plotters' SVG a viewBox so that CSS can scale it to the page width.
pub(crate) fn responsive(svg: &str) -> String {
    if svg.contains("viewBox") {
        return svg.to_string();
    }
    let size = |attr: &str| -> Option<String> {
        let start = svg.find(&format!("{attr}=\""))? + attr.len() + 2;
        Some(svg[start..start + svg[start..].find('"')?].to_string())
    };
    match (size("width"), size("height")) {
        (Some(w), Some(h)) => svg.replacen("<svg ", &format!("<svg viewBox=\"0 0 {w} {h}\" "), 1),
        _ => svg.to_string(),
    }
}

/// The whole page.
pub fn page(
    report: &Report,
    figures: &[RenderedFigure],
    skipped: &[(Figure, &'static str)],
) -> String {
    let a = report.analysis;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str(&format!(
        "<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&report.title)
    ));
    h.push_str(&format!("<h1>{}</h1>\n", escape(&report.title)));
    h.push_str(&format!(
        "<p class=\"src\">Geometry report written by embgeom {}. The analysis is in <a href=\"analysis.json\">analysis.json</a>, the scalar metrics in <a href=\"metrics.csv\">metrics.csv</a>, each figure as SVG and PNG in <code>figures/</code>.</p>\n",
        env!("CARGO_PKG_VERSION")
    ));
    h.push_str("<h2>Input</h2>\n<table>\n");
    for (label, value) in &report.inputs {
        h.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(value)
        ));
    }
    h.push_str("</table>\n");
    let mut warnings: Vec<String> = report.notes.clone();
    warnings.extend(a.warnings.iter().cloned());
    for figure in figures {
        if matches!(figure.figure, Figure::Scatter | Figure::Circle)
            && report.data.projection.rows.len() < report.data.projection.total
        {
            warnings.push(format!(
                "The projections show {} of {} rows, stratified by class; every metric uses all rows.",
                report.data.projection.rows.len(),
                report.data.projection.total
            ));
            break;
        }
    }
    if !report.data.distances.exact {
        warnings.push(
            "The distance histograms use uniformly sampled pairs (10^6 per histogram).".into(),
        );
    }
    if !warnings.is_empty() {
        h.push_str("<div class=\"warn\"><strong>Warnings</strong><ul>\n");
        for w in &warnings {
            h.push_str(&format!("<li>{}</li>\n", escape(w)));
        }
        h.push_str("</ul></div>\n");
    }
    h.push_str("<h2>Metrics</h2>\n");
    for (title, rows) in groups(a) {
        if rows.is_empty() {
            continue;
        }
        h.push_str(&format!("<h3>{title}</h3>\n<table>\n<tr><th>metric</th><th>value</th><th>definition</th><th>source</th></tr>\n"));
        for r in rows {
            h.push_str(&format!(
                "<tr><td>{}</td><td class=\"v\">{}</td><td>{}</td><td class=\"src\">{}</td></tr>\n",
                escape(&r.name),
                number(r.value),
                escape(r.definition),
                escape(r.source)
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Figures</h2>\n");
    for f in figures {
        let id = f.figure.id();
        h.push_str(&format!(
            "<figure id=\"{id}\" class=\"plot\">\n<h3>{}</h3>\n",
            escape(f.figure.title())
        ));
        h.push_str(&responsive(&f.svg));
        h.push_str(&format!(
            "\n<figcaption>{} <a href=\"figures/{id}.svg\">SVG</a> &middot; <a href=\"figures/{id}.png\">PNG</a></figcaption>\n</figure>\n",
            escape(&f.caption)
        ));
    }
    if !skipped.is_empty() {
        h.push_str("<p class=\"src\">Not drawn: ");
        let list: Vec<String> = skipped
            .iter()
            .map(|(f, why)| format!("{} ({why})", f.title()))
            .collect();
        h.push_str(&escape(&list.join("; ")));
        h.push_str(".</p>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}
