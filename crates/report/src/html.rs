//! The self-contained HTML page: inline CSS and SVG, no scripts, no network.

use crate::figures::Figure;
use crate::report::{RenderedFigure, Report};
use embgeom_geometry::catalogue::shown_groups;
use embgeom_geometry::Analysis;
use embgeom_pipeline::InputSummary;

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

/// The metric tables of the page, one per catalogue group, as in `embgeom analyze`: name,
/// value, definition with the parameters used, and the paper (linked).
fn metric_tables(a: &Analysis) -> String {
    let mut h = String::new();
    for (group, shown) in shown_groups(a) {
        h.push_str(&format!("<h3>{}</h3>\n<table>\n<tr><th>metric</th><th>value</th><th>definition</th><th>source</th></tr>\n", group.title()));
        for m in shown {
            h.push_str(&format!(
                "<tr><td>{}</td><td class=\"v\">{}</td><td>{} <span class=\"src\">({})</span></td><td class=\"src\"><a href=\"{}\" title=\"{}\">{}</a></td></tr>\n",
                escape(m.name),
                number(m.value(a)),
                escape(&m.definition(a)),
                escape(m.reading),
                escape(m.paper.link),
                escape(m.paper.citation),
                escape(m.paper.short)
            ));
        }
        h.push_str("</table>\n");
    }
    h
}

/// The analysis as an HTML fragment for a notebook (Jupyter's `_repr_html_`): a line on the
/// input, one table of every metric shown by `embgeom analyze` (grouped as there; name and key,
/// value, ideal, how to read it; the definition with its parameters as a tooltip) and the
/// warnings. A value that is not a number (what an accumulated analysis cannot give) shows as
/// absent. Every text is escaped; styles are inline, nothing leaks into the notebook.
pub fn analysis_html(a: &Analysis, inputs: &InputSummary) -> String {
    let classes = a
        .num_classes
        .map(|c| format!(", {c} classes"))
        .unwrap_or_default();
    let normalised = match inputs.normalized {
        true => "L2-normalised",
        false => "not normalised",
    };
    let cell = "style=\"text-align:left;vertical-align:top\"";
    let value = "style=\"text-align:right;vertical-align:top;font-variant-numeric:tabular-nums;white-space:nowrap\"";
    let mut h = format!(
        "<div class=\"embgeom-analysis\">\n<p><strong>embgeom analysis</strong> of {}: {} &times; {} ({}{classes}, {normalised})</p>\n<table>\n<thead><tr><th {cell}>metric</th><th {value}>value</th><th {value}>ideal</th><th {cell}>reading</th></tr></thead>\n<tbody>\n",
        escape(&inputs.source()),
        a.n,
        a.dim,
        escape(&inputs.dtype),
    );
    for (group, shown) in shown_groups(a) {
        h.push_str(&format!(
            "<tr><th colspan=\"4\" {cell}>{}</th></tr>\n",
            escape(group.title())
        ));
        for m in shown {
            h.push_str(&format!(
                "<tr><td {cell} title=\"{}\">{} <code>{}</code></td><td {value}>{}</td><td {value}>{}</td><td {cell}>{}</td></tr>\n",
                escape(&m.definition(a)),
                escape(m.name),
                escape(m.key),
                number(m.value(a).filter(|v| !v.is_nan())),
                number(m.ideal(a)),
                escape(m.reading),
            ));
        }
    }
    h.push_str("</tbody>\n</table>\n");
    if !a.warnings.is_empty() {
        h.push_str("<p><strong>Warnings</strong></p>\n<ul>\n");
        for w in &a.warnings {
            h.push_str(&format!("<li>{}</li>\n", escape(w)));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</div>\n");
    h
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
        warnings.push(format!(
            "The distance histograms use uniformly sampled pairs ({} per histogram).",
            report.data.distances.all.len()
        ));
    }
    if !warnings.is_empty() {
        h.push_str("<div class=\"warn\"><strong>Warnings</strong><ul>\n");
        for w in &warnings {
            h.push_str(&format!("<li>{}</li>\n", escape(w)));
        }
        h.push_str("</ul></div>\n");
    }
    h.push_str("<h2>Metrics</h2>\n");
    h.push_str(&metric_tables(a));
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
    if let Some((table, names)) = &report.per_point {
        h.push_str(&crate::extremes::rows_to_look_at(table, names));
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
