//! The similarity family in `compare`: its part of `compare.json` (a matrix per catalogued
//! measure over every pair of inputs), its tables and its heatmaps.

use crate::figures::{fail, font, matrix_cell, matrix_grid, Drawn};
use crate::html::escape;
use crate::page::Plot;
use crate::style::sequential;
use embgeom_geometry::catalogue::Direction;
use embgeom_geometry::similarity_family::{
    SimilarityMatrix, SimilarityMeasure, SIMILARITY_CATALOGUE,
};
use embgeom_geometry::SampleOptions;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{json, Map, Value};

/// A k x k matrix of one measure: its ideal on the diagonal, `None` where undefined.
fn matrix(family: &SimilarityMatrix, measure: &SimilarityMeasure) -> Vec<Vec<Option<f64>>> {
    family
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(j, s)| match i == j {
                    true => Some(measure.ideal),
                    false => s.as_ref().and_then(|s| measure.value(s)),
                })
                .collect()
        })
        .collect()
}

/// The `similarity` object of `compare.json`: `names`, one matrix per catalogued key, the
/// catalogue (`measures`), the sampling options and the notes of every pair.
pub(crate) fn similarity_document(
    names: &[&str],
    family: &SimilarityMatrix,
    options: &SampleOptions,
) -> Value {
    let mut out = Map::new();
    out.insert("names".into(), json!(names));
    for measure in SIMILARITY_CATALOGUE {
        out.insert(measure.key.into(), json!(matrix(family, measure)));
    }
    out.insert(
        "measures".into(),
        SIMILARITY_CATALOGUE
            .iter()
            .map(|m| {
                json!({
                    "key": m.key,
                    "name": m.name,
                    "formula": m.formula,
                    "paper": m.paper.citation,
                    "link": m.paper.link,
                    "direction": m.direction.as_str(),
                    "ideal": m.ideal,
                    "merges_across_shards": m.merges,
                    "sampled": m.sampled,
                })
            })
            .collect(),
    );
    out.insert("sample".into(), json!(options));
    let mut notes = Vec::new();
    for (i, row) in family.iter().enumerate() {
        for (j, s) in row.iter().enumerate().skip(i + 1) {
            for note in s.iter().flat_map(|s| &s.notes) {
                notes.push(json!({"pair": [names[i], names[j]], "note": note}));
            }
        }
    }
    out.insert("notes".into(), json!(notes));
    Value::Object(out)
}

/// The inputs' names of the family's document, in order.
fn input_names(document: &Value) -> Vec<&str> {
    document["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The page's tables: one per measure, with its formula and paper, then the notes.
pub(crate) fn similarity_tables(document: &Value, cell: fn(&Value) -> String) -> String {
    let names = input_names(document);
    let mut html = String::from("<h2>Similarity of the representations</h2>\n<p class=\"src\">The inputs hold the same items in the same order, so each pair is compared row by row. Every measure is at its ideal on the diagonal; the heatmaps below draw the same numbers.</p>\n");
    for measure in SIMILARITY_CATALOGUE {
        let Some(matrix) = document[measure.key].as_array() else {
            continue;
        };
        html.push_str(&format!(
            "<h3>{}</h3>\n<p class=\"src\">{} ({}; {} is better, {} = the same{}).</p>\n<table>\n<tr><th></th>",
            escape(measure.name),
            escape(measure.formula),
            escape(measure.paper.short),
            measure.direction.as_str(),
            measure.ideal,
            if measure.merges { "; merges across shards" } else { "" },
        ));
        for name in &names {
            html.push_str(&format!("<th>{}</th>", escape(name)));
        }
        html.push_str("</tr>\n");
        for (row, name) in matrix.iter().zip(&names) {
            html.push_str(&format!("<tr><th>{}</th>", escape(name)));
            for v in row.as_array().into_iter().flatten() {
                html.push_str(&format!("<td class=\"v\">{}</td>", cell(v)));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
    }
    let notes = document["notes"].as_array().cloned().unwrap_or_default();
    if !notes.is_empty() {
        html.push_str("<ul>\n");
        for note in notes {
            html.push_str(&format!(
                "<li>{} vs {}: {}</li>\n",
                escape(note["pair"][0].as_str().unwrap_or_default()),
                escape(note["pair"][1].as_str().unwrap_or_default()),
                escape(note["note"].as_str().unwrap_or_default())
            ));
        }
        html.push_str("</ul>\n");
    }
    html
}

/// The family as text for a terminal: one matrix per measure (6 decimals, `-` where
/// undefined), then the notes.
pub(crate) fn similarity_text(document: &Value) -> String {
    let names = input_names(document);
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(10);
    let mut out = String::from("\nsimilarity of the representations (every pair of inputs)\n");
    for measure in SIMILARITY_CATALOGUE {
        let Some(matrix) = document[measure.key].as_array() else {
            continue;
        };
        out.push_str(&format!(
            "\n{} ({} is better, {} = the same)\n{:width$}",
            measure.name,
            measure.direction.as_str(),
            measure.ideal,
            ""
        ));
        for name in &names {
            out.push_str(&format!(" {name:>width$}"));
        }
        out.push('\n');
        for (row, name) in matrix.iter().zip(&names) {
            out.push_str(&format!("{name:<width$}"));
            for v in row.as_array().into_iter().flatten() {
                match v.as_f64() {
                    Some(v) => out.push_str(&format!(" {v:>width$.6}")),
                    None => out.push_str(&format!(" {:>width$}", "-")),
                }
            }
            out.push('\n');
        }
    }
    for note in document["notes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "note: {} vs {}: {}\n",
            note["pair"][0].as_str().unwrap_or_default(),
            note["pair"][1].as_str().unwrap_or_default(),
            note["note"].as_str().unwrap_or_default()
        ));
    }
    out
}

/// One heatmap per measure, in a grid of panels.
pub(crate) struct SimilarityHeatmaps<'a> {
    /// The `similarity` object of `compare.json`.
    pub document: &'a Value,
}

const COLUMNS: usize = 5;

impl Plot for SimilarityHeatmaps<'_> {
    fn id(&self) -> String {
        "c-similarity".into()
    }

    fn size(&self) -> (u32, u32) {
        let rows = SIMILARITY_CATALOGUE.len().div_ceil(COLUMNS) as u32;
        (1500, 330 * rows)
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(fail)?;
        let rows = SIMILARITY_CATALOGUE.len().div_ceil(COLUMNS);
        let names = input_names(self.document);
        for (measure, panel) in SIMILARITY_CATALOGUE
            .iter()
            .zip(root.split_evenly((rows, COLUMNS)))
        {
            let values: Vec<Vec<Option<f64>>> = self.document[measure.key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    row.as_array()
                        .into_iter()
                        .flatten()
                        .map(Value::as_f64)
                        .collect()
                })
                .collect();
            heatmap(&panel, measure, &names, &values)?;
        }
        root.present().map_err(fail)
    }
}

/// One measure's k x k heatmap: dark = the same representation (its ideal), light = far from
/// it; each cell's value written in it while they fit.
fn heatmap<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    measure: &SimilarityMeasure,
    names: &[&str],
    values: &[Vec<Option<f64>>],
) -> Drawn {
    let k = values.len();
    if k == 0 {
        return Ok(());
    }
    let finite: Vec<f64> = values.iter().flatten().flatten().copied().collect();
    let (lo, hi) = (
        finite.iter().cloned().fold(f64::INFINITY, f64::min),
        finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    // How close to "the same" a value is, on [0, 1].
    let closeness = |v: f64| match measure.direction {
        Direction::Lower => 1.0 - v / hi.max(f64::MIN_POSITIVE),
        _ => {
            let floor = lo.min(0.0);
            (v - floor) / (measure.ideal - floor).max(f64::MIN_POSITIVE)
        }
    };
    let mut builder = ChartBuilder::on(panel);
    builder
        .caption(measure.name, font(16))
        .margin(8)
        .x_label_area_size(if k <= 12 { 40 } else { 10 })
        .y_label_area_size(if k <= 12 { 60 } else { 10 });
    let names: Vec<String> = names.iter().map(|n| n.chars().take(9).collect()).collect();
    // Names while they fit (12 inputs or fewer).
    let every = if k <= 12 { 1 } else { k + 1 };
    let mut chart = matrix_grid(&mut builder, &names, every, None, 11)?;
    let cells = (0..k).flat_map(|i| (0..k).map(move |j| (i, j)));
    chart
        .draw_series(cells.clone().map(|(i, j)| {
            let shade = match values[i].get(j).copied().flatten() {
                Some(v) => sequential(closeness(v)),
                None => RGBColor(0xEE, 0xEE, 0xEE),
            };
            matrix_cell(i, j, k, shade)
        }))
        .map_err(fail)?;
    if k <= 8 {
        let centred = Pos::new(HPos::Center, VPos::Center);
        chart
            .draw_series(cells.filter_map(|(i, j)| {
                let v = values[i].get(j).copied().flatten()?;
                let style = match closeness(v) > 0.5 {
                    true => font(12).color(&WHITE),
                    false => font(12).color(&BLACK),
                }
                .pos(centred);
                let at = (SegmentValue::CenterOf(j), SegmentValue::CenterOf(k - 1 - i));
                Some(Text::new(format!("{v:.2}"), at, style))
            }))
            .map_err(fail)?;
    }
    Ok(())
}
