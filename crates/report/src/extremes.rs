//! The report's "Rows to look at": the most extreme rows of the per-point table (see
//! [`embgeom_geometry::per_point`]) by row index: hubs, rows far from their class mean, rows
//! whose neighbours vote for another class, and the flattest neighbourhoods.

use crate::html::escape;
use embgeom_geometry::PerPoint;

/// Rows listed per table.
const LISTED: usize = 10;

/// A table of the first [`LISTED`] positions of `order`, each row's `cells` under `headers`.
fn table(
    title: &str,
    what: &str,
    order: Vec<usize>,
    headers: &[&str],
    cells: &dyn Fn(usize) -> Vec<String>,
) -> String {
    if order.is_empty() {
        return String::new();
    }
    let mut h = format!(
        "<h3>{}</h3>\n<p class=\"src\">{}</p>\n<table>\n<tr>",
        escape(title),
        escape(what)
    );
    for header in headers {
        h.push_str(&format!("<th>{}</th>", escape(header)));
    }
    h.push_str("</tr>\n");
    for p in order.into_iter().take(LISTED) {
        h.push_str("<tr>");
        for (i, cell) in cells(p).into_iter().enumerate() {
            let class = if i == 0 { "" } else { " class=\"v\"" };
            h.push_str(&format!("<td{class}>{}</td>", escape(&cell)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}

/// Positions sorted by `value` descending (`None` left out), ties by row.
fn ranked(n: usize, value: &dyn Fn(usize) -> Option<f64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).filter(|&p| value(p).is_some()).collect();
    order.sort_by(|&a, &b| {
        value(b)
            .unwrap_or(f64::NAN)
            .total_cmp(&value(a).unwrap_or(f64::NAN))
            .then(a.cmp(&b))
    });
    order
}

/// The section's HTML (empty without a table).
pub(crate) fn rows_to_look_at(p: &PerPoint, names: &[String]) -> String {
    let n = p.rows.len();
    let class = |pos: usize| {
        p.labels
            .as_ref()
            .map(|l| names.get(l[pos] as usize).cloned().unwrap_or_default())
            .unwrap_or_else(|| "-".into())
    };
    let number = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.4}"));
    let described = match n < p.total {
        true => format!("a seeded sample of {n} of the {} rows", p.total),
        false => format!("all {n} rows"),
    };
    let mut h = format!(
        "<h2>Rows to look at</h2>\n<p class=\"src\">From the per-point table of {described} (<a href=\"per_point.parquet\">per_point.parquet</a>; neighbours among the described rows, cosine on the rows as analysed). Rows are the input's row indices. Open the table in embedding-atlas with <code>embedding-atlas per_point.parquet --x projection_x --y projection_y --neighbors neighbors</code>.</p>\n"
    );
    h.push_str(&table(
        "Hubs",
        "The rows most often among the others' 10 nearest (k-occurrence); hubs crowd retrieval results.",
        ranked(n, &|q| Some(p.k_occurrence[q] as f64)),
        &["row", "class", "k-occurrence"],
        &|q| vec![p.rows[q].to_string(), class(q), p.k_occurrence[q].to_string()],
    ));
    if let Some(d) = &p.class_mean_distance {
        h.push_str(&table(
            "Farthest from their class mean",
            "||x - mu_c||, the class mean of all rows: outliers of their class.",
            ranked(n, &|q| Some(d[q])),
            &["row", "class", "distance"],
            &|q| vec![p.rows[q].to_string(), class(q), number(Some(d[q]))],
        ));
    }
    if let (Some(predicted), Some(labels), Some(same), Some(other)) = (
        &p.knn_prediction,
        &p.labels,
        &p.nearest_same_class,
        &p.nearest_other_class,
    ) {
        let margin = |q: usize| match predicted[q] != labels[q] {
            true => Some(other[q].unwrap_or(-1.0) - same[q].unwrap_or(-1.0)),
            false => None,
        };
        h.push_str(&table(
            "Neighbours vote for another class",
            "Rows whose weighted kNN vote is not their label, by how much nearer the nearest other-class row is than the nearest same-class one: mislabelled rows or overlapping classes.",
            ranked(n, &margin),
            &["row", "class", "kNN vote", "nearest same class", "nearest other class"],
            &|q| {
                vec![
                    p.rows[q].to_string(),
                    class(q),
                    names.get(predicted[q] as usize).cloned().unwrap_or_default(),
                    number(same[q]),
                    number(other[q]),
                ]
            },
        ));
    }
    h.push_str(&table(
        "Lowest local intrinsic dimension",
        "Levina-Bickel's estimate from the 20 nearest: neighbourhoods flattened onto few directions (collapsed).",
        ranked(n, &|q| p.lid[q].map(|v| -v)),
        &["row", "class", "LID"],
        &|q| vec![p.rows[q].to_string(), class(q), number(p.lid[q])],
    ));
    h
}
