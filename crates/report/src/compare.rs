//! `embgeom compare`: several embedding sets (runs, losses, checkpoints, models) side by side:
//! the metric table with the difference to the first input and which input is closer to each
//! metric's ideal, overlaid and side-by-side figures, and, when the inputs hold the same items
//! in the same order, linear CKA between each pair and the per-class changes.

use crate::error::ReportError;
use crate::figures::{axes, fail, font, series_labels, Context, Drawn, Figure};
use crate::html::{escape, CSS};
use crate::modalities::recall_panel;
use crate::page::{claim_folder, figure_block, figures_folder, write, Plot, MARKER};
use crate::report::Written;
use crate::similarity::{
    similarity_document, similarity_tables, similarity_text, SimilarityHeatmaps,
};
use crate::style::CLASS_COLOURS;
use embgeom_geometry::catalogue::{metrics, Direction};
use embgeom_geometry::cross_catalogue::CROSS_CATALOGUE;
use embgeom_geometry::modalities::CrossModal;
use embgeom_geometry::sharded::DEFAULT_SAMPLE_ROWS;
use embgeom_geometry::similarity_family::{similarity_family, SimilarityMatrix};
use embgeom_geometry::timings::{StageTime, Timings};
use embgeom_geometry::{Analysis, AnalysisOptions, Progress, RetrievalSummary, SampleOptions};
use embgeom_pipeline::{
    analysis_document, load_inputs, machine_rates, modalities_document, run_analysis,
    run_modalities, timings_document, CrossOptions, Extras, InputSpec, Inputs, ModalitySpec, Run,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Schema of the comparison document.
pub const COMPARE_SCHEMA: &str = "embgeom.compare/1";

/// Within-class variance ratios (other / first) beyond which a class is said to have
/// collapsed (below) or spread (above).
const COLLAPSED: f64 = 0.8;
const SPREAD: f64 = 1.25;

/// One input of a comparison and its name.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareInput {
    /// Name in tables and legends.
    pub name: String,
    /// What to read.
    pub spec: InputSpec,
}

/// Where a comparison goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// Output folder.
    pub dir: PathBuf,
    /// Page title.
    pub title: String,
    /// Replace a folder that holds something else.
    pub force: bool,
    /// Keys of two modalities every input holds (`["image", "text"]`): the metric rows and
    /// figures are the first modality's, then the second's metrics and the two measured
    /// together are compared too; empty for one set of rows per input.
    pub modalities: Vec<String>,
    /// How the sampled similarity measures (RBF CKA, mutual kNN, CKNNA) sample.
    pub similarity: SampleOptions,
    /// Time the similarity family's stages against their bounds on this machine
    /// (`similarity.timings` in the document; the machine's rates are measured once and
    /// cached).
    pub timings: bool,
    /// Compute the similarity family only: no analysis of each input (no metric table,
    /// overlaid figures or per-class changes), for many layers or checkpoints where only how
    /// they relate is asked. The inputs must hold the same items in the same order.
    pub similarity_only: bool,
}

/// A written comparison: the files, the `embgeom.compare/1` document and a text table.
pub struct Compared {
    /// The files.
    pub written: Written,
    /// The document (also `compare.json`).
    pub document: Value,
    /// The metric table for a terminal.
    pub table: String,
}

/// One input analysed.
struct Analysed {
    name: String,
    run: Run,
}

/// The index of the input whose `(value, ideal)` is closest to its ideal (or best in
/// `direction` where there is no ideal); `None` when the metric has no direction or fewer than
/// two inputs have a value, or on a tie.
fn closest_of(values: &[(Option<f64>, Option<f64>)], direction: Direction) -> Option<usize> {
    let scores: Vec<Option<f64>> = values
        .iter()
        .map(|&(value, ideal)| {
            let value = value?;
            match (ideal, direction) {
                (_, Direction::Neither) => None,
                (Some(ideal), _) => Some((value - ideal).abs()),
                (None, Direction::Lower) => Some(value),
                (None, Direction::Higher) => Some(-value),
            }
        })
        .collect();
    let valued: Vec<(usize, f64)> = scores
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .collect();
    if valued.len() < 2 {
        return None;
    }
    let best = valued
        .iter()
        .cloned()
        .fold(f64::INFINITY, |m, (_, s)| m.min(s));
    let winners: Vec<usize> = valued
        .iter()
        .filter(|(_, s)| *s == best)
        .map(|(i, _)| *i)
        .collect();
    (winners.len() == 1).then(|| winners[0])
}

/// Class indices of an input (empty without labels).
fn class_labels(run: &Run) -> Vec<u32> {
    run.labels
        .as_ref()
        .map(|l| l.class_indices().0)
        .unwrap_or_default()
}

/// Whether the inputs hold the same items in the same order: the same number of rows and the
/// same labels row by row (or none).
fn same_items(analysed: &[Analysed]) -> bool {
    let first = &analysed[0].run;
    let labels = class_labels(first);
    analysed[1..].iter().all(|a| {
        a.run.analysis.n == first.analysis.n
            && class_labels(&a.run) == labels
            && a.run.analysis.per_class.iter().map(|p| &p.name).eq(first
                .analysis
                .per_class
                .iter()
                .map(|p| &p.name))
    })
}

/// What the similarity family read of one input: its source and shape.
struct ReadShape {
    source: String,
    n: usize,
    dim: usize,
}

/// The similarity family between every pair of inputs (their rows as stored, read with
/// `specs`; see [`similarity_family`]), with its stages in `timings` and what it read.
fn similarity_matrices(
    inputs: &[CompareInput],
    specs: &[InputSpec],
    options: &SampleOptions,
) -> Result<(SimilarityMatrix, Vec<StageTime>, Vec<ReadShape>), ReportError> {
    let rows = inputs
        .iter()
        .zip(specs)
        .map(|(input, spec)| {
            let loaded = Inputs::from_loaded(load_inputs(spec)?, spec.embeddings.as_deref())?;
            let rows = loaded
                .embeddings
                .or(loaded.views.into_iter().next())
                .ok_or_else(|| {
                    embgeom_pipeline::PipelineError::Inputs(format!(
                        "{}: no embeddings",
                        input.name
                    ))
                })?;
            Ok(rows)
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    let shapes: Vec<ReadShape> = rows
        .iter()
        .map(|r| {
            let (n, dim) = r.values.dim();
            ReadShape {
                source: r.source.clone(),
                n,
                dim,
            }
        })
        .collect();
    if let Some((input, shape)) = inputs
        .iter()
        .zip(&shapes)
        .find(|(_, shape)| shape.n != shapes[0].n)
    {
        return Err(embgeom_pipeline::PipelineError::Inputs(format!(
            "the similarity family compares the same items row by row: {} has {} rows, {} has {}",
            input.name, shape.n, inputs[0].name, shapes[0].n
        ))
        .into());
    }
    // In the rows' own precision when every input is f32 (mapped files read in place), else
    // every input in f64.
    let timings = Timings::default();
    let single: Option<Vec<_>> = rows.iter().map(|r| r.values.f32_view()).collect();
    let family = match single {
        Some(views) => similarity_family(&views, options, &timings),
        None => {
            let wide: Vec<_> = rows.iter().map(|r| r.values.to_f64()).collect();
            let views: Vec<_> = wide.iter().map(|r| r.view()).collect();
            similarity_family(&views, options, &timings)
        }
    }
    .map_err(embgeom_pipeline::PipelineError::of(
        "similarity of representations",
    ))?;
    // A mapped file that changed under the run: its error, not what was computed from it.
    for r in &rows {
        r.values.check_unchanged()?;
    }
    Ok((family, timings.stages(), shapes))
}

/// Per class, the within-class variance of the first input and of `other`, their ratio and
/// what changed.
fn class_changes(first: &Analysis, other: &Analysis) -> Vec<Value> {
    let mut rows: Vec<(f64, Value)> = first
        .per_class
        .iter()
        .zip(&other.per_class)
        .map(|(a, b)| {
            let ratio = b.within_variance / a.within_variance;
            let change = match ratio {
                r if r < COLLAPSED => "collapsed",
                r if r > SPREAD => "spread",
                r if r.is_finite() => "unchanged",
                _ => "undefined",
            };
            (
                ratio,
                json!({
                    "class": a.name,
                    "within_variance": [a.within_variance, b.within_variance],
                    "ratio": ratio.is_finite().then_some(ratio),
                    "uniformity": [a.uniformity, b.uniformity],
                    "change": change,
                }),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows.into_iter().map(|(_, v)| v).collect()
}

/// Analyse every input and write the comparison into `output.dir`: `index.html`, the
/// figures, `compare.json` (`embgeom.compare/1`, with every input's analysis document) and
/// `metrics.csv` (one row per metric, one column per input, the differences to the first
/// input and the closest to the ideal).
pub fn compare(
    inputs: &[CompareInput],
    options: &AnalysisOptions,
    output: &CompareOptions,
    progress: &dyn Progress,
) -> Result<Compared, ReportError> {
    if inputs.len() < 2 {
        return Err(embgeom_pipeline::PipelineError::Inputs(format!(
            "compare needs at least two inputs, got {}",
            inputs.len()
        ))
        .into());
    }
    for (i, input) in inputs.iter().enumerate() {
        if inputs[..i].iter().any(|other| other.name == input.name) {
            return Err(embgeom_pipeline::PipelineError::Inputs(format!(
                "two inputs are named {:?}: give each a --name of its own",
                input.name
            ))
            .into());
        }
    }
    let signature = format!(
        "compare {:?} {:?}",
        inputs,
        AnalysisOptions {
            memory_limit: None,
            ..options.clone()
        }
    );
    let keys = match output.modalities.as_slice() {
        [] => None,
        [first, second] => Some((first.as_str(), second.as_str())),
        other => {
            return Err(embgeom_pipeline::PipelineError::Inputs(format!(
                "compare --modalities takes two keys, {} were given",
                other.len()
            ))
            .into())
        }
    };
    if output.similarity_only && keys.is_some() {
        return Err(embgeom_pipeline::PipelineError::Inputs(
            "--similarity-only compares one set of rows per input: give it without --modalities"
                .into(),
        )
        .into());
    }
    let signature = format!(
        "{signature} {:?}{}",
        output.modalities,
        if output.similarity_only {
            " similarity only"
        } else {
            ""
        }
    );
    claim_folder(&output.dir, &signature, output.force)?;
    let extras = Extras {
        figures: true,
        mean_cosines: true,
        ..Extras::default()
    };
    let keyed = |input: &CompareInput, key: &str| InputSpec {
        key: Some(key.to_string()),
        ..input.spec.clone()
    };
    // The rows each input is compared by: the first modality's with modalities.
    let specs: Vec<InputSpec> = inputs
        .iter()
        .map(|input| match keys {
            Some((first, _)) => keyed(input, first),
            None => input.spec.clone(),
        })
        .collect();
    // With the similarity family alone, no input is analysed.
    let analysed_inputs = match output.similarity_only {
        true => &inputs[..0],
        false => inputs,
    };
    let analysed = analysed_inputs
        .iter()
        .zip(&specs)
        .map(|(input, spec)| {
            Ok(Analysed {
                name: input.name.clone(),
                run: run_analysis(spec, options, extras, progress)?,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    // Both modalities of every input measured together.
    let paired = match keys {
        None => Vec::new(),
        Some((first, second)) => inputs
            .iter()
            .map(|input| {
                let specs = [first, second].map(|key| ModalitySpec {
                    name: key.to_string(),
                    spec: keyed(input, key),
                });
                let cross = CrossOptions {
                    pairs: None,
                    parameters: Default::default(),
                    shifts: Vec::new(),
                    figures: false,
                    sample_rows: DEFAULT_SAMPLE_ROWS,
                    queries: None,
                };
                Ok(run_modalities(&specs, options, &cross, progress)?.with_every_pair()?)
            })
            .collect::<Result<Vec<_>, ReportError>>()?,
    };
    let same = output.similarity_only || same_items(&analysed);
    let similarities = same
        .then(|| similarity_matrices(inputs, &specs, &output.similarity))
        .transpose()?;
    let names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
    let labelled = !analysed.is_empty()
        && analysed
            .iter()
            .all(|a| !a.run.analysis.per_class.is_empty());
    let changes: Option<Vec<Value>> = (same && labelled).then(|| {
        analysed[1..]
            .iter()
            .map(|other| {
                json!({
                    "from": analysed[0].name,
                    "to": other.name,
                    "classes": class_changes(&analysed[0].run.analysis, &other.run.analysis),
                })
            })
            .collect()
    });
    let similarity = similarities.as_ref().map(|(family, stages, _)| {
        let mut document = similarity_document(&names, family, &output.similarity);
        if output.timings {
            document["timings"] = timings_document(stages, &machine_rates(), None);
        }
        document
    });
    let first: Vec<&Analysis> = analysed.iter().map(|a| &a.run.analysis).collect();
    let mut metric_rows = catalogue_rows(&first, keys.map(|k| k.0), &names);
    if let Some((_, second)) = keys {
        let others: Vec<&Analysis> = paired.iter().map(|r| &r.runs[1].1.analysis).collect();
        metric_rows.extend(catalogue_rows(&others, Some(second), &names));
        let crosses: Vec<&CrossModal> = paired.iter().map(|r| &r.cross[0]).collect();
        metric_rows.extend(cross_rows(&crosses, &names));
    }
    let described: Vec<Value> = match (output.similarity_only, &similarities) {
        (true, Some((_, _, shapes))) => names
            .iter()
            .zip(shapes)
            .map(|(name, shape)| {
                json!({
                    "name": name,
                    "source": shape.source,
                    "n": shape.n,
                    "dim": shape.dim,
                    "num_classes": null,
                })
            })
            .collect(),
        _ => analysed
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "source": a.run.summary.source(),
                    "n": a.run.analysis.n,
                    "dim": a.run.analysis.dim,
                    "num_classes": a.run.analysis.num_classes,
                })
            })
            .collect(),
    };
    let document = json!({
        "schema": COMPARE_SCHEMA,
        "inputs": described,
        "similarity_only": output.similarity_only,
        "same_items": same,
        "metrics": metric_rows,
        "cka": similarity.as_ref().map(|s| json!({"names": names, "matrix": s["cka"]})),
        "similarity": similarity,
        "class_changes": changes,
        "modalities": keys.map(|_| json!({
            "keys": output.modalities,
            "pairs": paired.iter().map(|r| modalities_document(r)["pairs"][0].clone()).collect::<Vec<_>>(),
        })),
        "analyses": analysed.iter().map(|a| analysis_document(&a.run.analysis, &a.run.summary)).collect::<Vec<_>>(),
    });
    let crosses: Vec<&CrossModal> = paired.iter().map(|r| &r.cross[0]).collect();
    let written = write_page(
        &output.dir,
        &output.title,
        &analysed,
        &crosses,
        &document,
        &signature,
    )?;
    let mut table = match metric_rows.is_empty() {
        true => String::new(),
        false => text_table(&names, &metric_rows),
    };
    if let Some(similarity) = &similarity {
        table.push_str(&similarity_text(similarity));
    }
    Ok(Compared {
        table,
        written,
        document,
    })
}

/// One row of the metric table: the values of every input, their ideals, the differences to
/// the first input and the input closest to the ideal.
fn metric_row(
    key: String,
    name: String,
    direction: Direction,
    values: &[(Option<f64>, Option<f64>)],
    names: &[&str],
) -> Value {
    let first = values[0].0;
    json!({
        "metric": key,
        "name": name,
        "direction": direction.as_str(),
        "values": values.iter().map(|v| v.0).collect::<Vec<_>>(),
        "ideal": values.iter().map(|v| v.1).collect::<Vec<_>>(),
        "difference_to_first": values.iter().map(|v| Some(v.0? - first?)).collect::<Vec<_>>(),
        "closest_to_ideal": closest_of(values, direction).map(|i| names[i]),
    })
}

/// The catalogue's metrics with a value in some of `analyses` (one per input), named
/// `KEY.METRIC` when they are one modality's.
fn catalogue_rows(analyses: &[&Analysis], modality: Option<&str>, names: &[&str]) -> Vec<Value> {
    metrics()
        .filter(|m| analyses.iter().any(|a| m.value(a).is_some()))
        .map(|m| {
            let values: Vec<(Option<f64>, Option<f64>)> =
                analyses.iter().map(|a| (m.value(a), m.ideal(a))).collect();
            let (key, name) = match modality {
                Some(k) => (format!("{k}.{}", m.key), format!("{} ({k})", m.name)),
                None => (m.key.to_string(), m.name.to_string()),
            };
            metric_row(key, name, m.direction, &values, names)
        })
        .collect()
}

/// The cross-modal readings of every input's two modalities.
fn cross_rows(crosses: &[&CrossModal], names: &[&str]) -> Vec<Value> {
    let Some(first) = crosses.first() else {
        return Vec::new();
    };
    let keys = (first.names.0.as_str(), first.names.1.as_str());
    CROSS_CATALOGUE
        .iter()
        .flat_map(|m| m.about.iter().map(move |&about| (m, about)))
        .filter(|(m, about)| crosses.iter().any(|c| m.value(c, *about).is_some()))
        .map(|(m, about)| {
            let values: Vec<(Option<f64>, Option<f64>)> = crosses
                .iter()
                .map(|c| (m.value(c, about), m.ideal()))
                .collect();
            let column = m.column(about, keys);
            let name = match column.split_once('.') {
                Some((_, of)) => format!("{} ({of})", m.name),
                None => m.name.to_string(),
            };
            metric_row(column, name, m.direction, &values, names)
        })
        .collect()
}

fn cell(v: &Value) -> String {
    match v.as_f64() {
        Some(v) if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

/// The metric rows as a text table: one column per input, then the closest to the ideal.
fn text_table(names: &[&str], rows: &[Value]) -> String {
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(10);
    let mut out = format!("{:<40}", "metric");
    for name in names {
        out.push_str(&format!(" {name:>width$}"));
    }
    out.push_str("  closest to ideal\n");
    for row in rows {
        out.push_str(&format!("{:<40}", row["name"].as_str().unwrap_or_default()));
        for v in row["values"].as_array().into_iter().flatten() {
            out.push_str(&format!(" {:>width$}", cell(v)));
        }
        out.push_str(&format!(
            "  {}\n",
            row["closest_to_ideal"].as_str().unwrap_or("-")
        ));
    }
    out
}

/// A metric row's differences to the first input, of the second input on.
fn differences(row: &Value) -> impl Iterator<Item = &Value> {
    row["difference_to_first"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
}

/// `metric,<name>...,difference_<name>...,closest_to_ideal`.
fn metrics_csv(names: &[&str], rows: &[Value]) -> String {
    let mut out = String::from("metric");
    for name in names {
        out.push_str(&format!(",{name}"));
    }
    for name in &names[1..] {
        out.push_str(&format!(",difference_{name}"));
    }
    out.push_str(",closest_to_ideal\n");
    let number = |v: &Value| v.as_f64().map_or_else(String::new, |v| v.to_string());
    for row in rows {
        out.push_str(row["metric"].as_str().unwrap_or_default());
        for v in row["values"].as_array().into_iter().flatten() {
            out.push_str(&format!(",{}", number(v)));
        }
        for v in differences(row) {
            out.push_str(&format!(",{}", number(v)));
        }
        out.push_str(&format!(
            ",{}\n",
            row["closest_to_ideal"].as_str().unwrap_or("")
        ));
    }
    out
}

/// The page's metric table: every input's value, the differences to the first input and the
/// closest to the ideal.
fn metric_table(document: &Value, names: &[&str], metric_rows: &[Value]) -> String {
    let mut html = String::from("<h2>Metrics</h2>\n<p class=\"src\">Each input's value, the difference to the first input, and the input closest to the metric's ideal (bold; by its direction where it has no ideal value).</p>\n");
    if let Some(keys) = document["modalities"]["keys"].as_array() {
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        html.push_str(&format!(
            "<p class=\"src\">Every input holds two modalities, {0} and {1}: the rows are {0}'s metrics (and the figures are {0}'s), then {1}'s metrics, then the two measured together (the gap, the cones, retrieval both ways and the objectives over all pairs).</p>\n",
            escape(keys.first().copied().unwrap_or_default()),
            escape(keys.get(1).copied().unwrap_or_default())
        ));
    }
    html.push_str("<table>\n<tr><th>metric</th>");
    for name in names {
        html.push_str(&format!("<th>{}</th>", escape(name)));
    }
    for name in &names[1..] {
        html.push_str(&format!(
            "<th>{} &minus; {}</th>",
            escape(name),
            escape(names[0])
        ));
    }
    html.push_str("<th>closest to ideal</th></tr>\n");
    for row in metric_rows {
        let best = row["closest_to_ideal"].as_str();
        html.push_str(&format!(
            "<tr><td>{}</td>",
            escape(row["name"].as_str().unwrap_or_default())
        ));
        for (v, name) in row["values"].as_array().into_iter().flatten().zip(names) {
            let text = cell(v);
            match best == Some(*name) {
                true => html.push_str(&format!("<td class=\"v\"><strong>{text}</strong></td>")),
                false => html.push_str(&format!("<td class=\"v\">{text}</td>")),
            }
        }
        for v in differences(row) {
            html.push_str(&format!("<td class=\"v\">{}</td>", cell(v)));
        }
        html.push_str(&format!("<td>{}</td></tr>\n", escape(best.unwrap_or("-"))));
    }
    html.push_str("</table>\n");
    html
}

/// The comparison figures.
#[derive(Clone, Copy)]
enum CompareFigure {
    Plane,
    Distances,
    Spectrum,
    MeanCosines,
    WithinClass,
}

impl CompareFigure {
    const ALL: [CompareFigure; 5] = [
        CompareFigure::Plane,
        CompareFigure::Distances,
        CompareFigure::Spectrum,
        CompareFigure::MeanCosines,
        CompareFigure::WithinClass,
    ];

    fn id(self) -> &'static str {
        match self {
            CompareFigure::Plane => "c1-alignment-uniformity",
            CompareFigure::Distances => "c2-distance-histograms",
            CompareFigure::Spectrum => "c3-spectra",
            CompareFigure::MeanCosines => "c4-class-mean-cosines",
            CompareFigure::WithinClass => "c5-within-class-distances",
        }
    }

    fn title(self) -> &'static str {
        match self {
            CompareFigure::Plane => "Alignment and uniformity of every input",
            CompareFigure::Distances => "Pair distance histograms, input by input",
            CompareFigure::Spectrum => "Eigenvalue spectra",
            CompareFigure::MeanCosines => "Cosines between class means, input by input",
            CompareFigure::WithinClass => "Distance to the class mean, input by input",
        }
    }

    fn caption(self) -> &'static str {
        match self {
            CompareFigure::Plane => "Each input is a point: uniformity (x; lower is more uniform) against alignment (y; view alignment when the input has views, else label-positive alignment; lower is better aligned). Down and to the left is better on both.",
            CompareFigure::Distances => "For each input, the distances between positive pairs (views), same-class pairs and all pairs on [0, 2]. Well separated classes put the same-class mass at small distances and the rest near sqrt(2) or beyond.",
            CompareFigure::Spectrum => "The eigenvalues of the normalised rows' covariance, each as a share of its total, on one log axis. A spectrum that falls off early means the embedding uses few directions (dimensional collapse).",
            CompareFigure::MeanCosines => "The cosines between centred class means of each input; a regular simplex has -1/(C-1) off the diagonal everywhere.",
            CompareFigure::WithinClass => "For each input, the distribution of the distances of each class's rows to their class mean (raw rows); collapsed classes have short boxes near 0.",
        }
    }

    /// The report figure drawn once per input, side by side, if this is one.
    fn per_input(self) -> Option<Figure> {
        match self {
            CompareFigure::Distances => Some(Figure::Distances),
            CompareFigure::MeanCosines => Some(Figure::MeanCosines),
            CompareFigure::WithinClass => Some(Figure::WithinClass),
            _ => None,
        }
    }
}

struct ComparePlot<'a> {
    figure: CompareFigure,
    contexts: &'a [Context<'a>],
    names: &'a [&'a str],
}

/// A colour per input.
fn colour(i: usize) -> RGBColor {
    CLASS_COLOURS[i % CLASS_COLOURS.len()]
}

impl Plot for ComparePlot<'_> {
    fn id(&self) -> String {
        self.figure.id().to_string()
    }

    fn size(&self) -> (u32, u32) {
        match self.figure.per_input() {
            Some(figure) => {
                let (w, h) = figure.size();
                let k = self.contexts.len() as u32;
                ((w * k).min(2400), h + 36)
            }
            None => (900, 520),
        }
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(fail)?;
        match (self.figure, self.figure.per_input()) {
            (_, Some(figure)) => side_by_side(figure, self.contexts, self.names, root),
            (CompareFigure::Plane, _) => plane(self.contexts, self.names, root),
            _ => spectra(self.contexts, self.names, root),
        }?;
        root.present().map_err(fail)
    }
}

/// One report figure per input in columns, each under its input's name.
fn side_by_side<DB: DrawingBackend>(
    figure: Figure,
    contexts: &[Context],
    names: &[&str],
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let panels = root.split_evenly((1, contexts.len()));
    for ((panel, ctx), (i, name)) in panels.iter().zip(contexts).zip(names.iter().enumerate()) {
        let (title, body) = panel.split_vertically(36);
        title
            .draw_text(name, &font(18).color(&colour(i)), (12, 8))
            .map_err(fail)?;
        if let Err(reason) = figure.applies(ctx) {
            body.draw_text(&format!("not drawn: {reason}"), &font(14), (12, 20))
                .map_err(fail)?;
            continue;
        }
        figure.draw(ctx, &body)?;
    }
    Ok(())
}

/// The alignment that applies to an input: view alignment, else label-positive alignment.
fn alignment_of(a: &Analysis) -> Option<f64> {
    a.alignment
        .as_ref()
        .or(a.class_alignment.as_ref())
        .map(|al| al.value)
}

fn plane<DB: DrawingBackend>(
    contexts: &[Context],
    names: &[&str],
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let points: Vec<(usize, f64, f64)> = contexts
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            Some((
                i,
                c.analysis.uniformity.as_ref()?.value,
                alignment_of(c.analysis)?,
            ))
        })
        .collect();
    let range = |values: Vec<f64>| {
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let pad = ((hi - lo) * 0.15).max(0.05);
        (lo - pad)..(hi + pad)
    };
    let x = range(points.iter().map(|p| p.1).collect());
    let y = range(points.iter().map(|p| p.2).collect());
    let (x, y) = if points.is_empty() {
        (-4.0..0.0, 0.0..2.0)
    } else {
        (x, y)
    };
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(fail)?;
    axes(
        &mut chart,
        "uniformity (lower: more uniform)",
        "alignment (lower: better aligned)",
        13,
    )?;
    for (i, u, a) in points {
        let c = colour(i);
        let name = names[i].to_string();
        chart
            .draw_series([EmptyElement::at((u, a))
                + Circle::new((0, 0), 8, c.filled())
                + Text::new(name, (12, -18), font(14).color(&c))])
            .map_err(fail)?
            .label(names[i])
            .legend(move |(x, y)| Circle::new((x, y), 5, c.filled()));
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperRight, 13)
}

fn spectra<DB: DrawingBackend>(
    contexts: &[Context],
    names: &[&str],
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let shares: Vec<Vec<(usize, f64)>> = contexts
        .iter()
        .map(|c| {
            let e = &c.analysis.spectrum.eigenvalues;
            let total: f64 = e.iter().sum();
            e.iter()
                .enumerate()
                .filter(|(_, &v)| v > 0.0 && total > 0.0)
                .map(|(k, &v)| (k + 1, v / total))
                .collect()
        })
        .collect();
    let d = contexts
        .iter()
        .map(|c| c.analysis.spectrum.eigenvalues.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let lo = shares
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(1.0f64, f64::min)
        .max(1e-12)
        / 2.0;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(1..d + 1, (lo..1.0).log_scale())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("rank k")
        .y_desc("share of the total variance")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    for (i, series) in shares.into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(series, c.stroke_width(2)))
            .map_err(fail)?
            .label(names[i])
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperRight, 13)
}

/// The page, the figures, `compare.json` and `metrics.csv`.
/// One retrieval direction of a pair.
type RetrievalWay = fn(&CrossModal) -> &RetrievalSummary;

/// The R@k curves of every input's two modalities, one panel per direction.
struct RecallCurves<'a> {
    crosses: &'a [&'a CrossModal],
    names: &'a [&'a str],
}

impl Plot for RecallCurves<'_> {
    fn id(&self) -> String {
        "c-modalities-recall".into()
    }
    fn size(&self) -> (u32, u32) {
        (1000, 420)
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(fail)?;
        let panels = root.split_evenly((1, 2));
        let Some(first) = self.crosses.first() else {
            return Ok(());
        };
        let (a, b) = (&first.names.0, &first.names.1);
        let colour = |i: usize| CLASS_COLOURS[i % CLASS_COLOURS.len()];
        let ways: [(String, RetrievalWay); 2] = [
            (format!("{a} to {b}"), |c| &c.retrieval.a_to_b),
            (format!("{b} to {a}"), |c| &c.retrieval.b_to_a),
        ];
        for ((direction, summary), panel) in ways.iter().zip(panels.iter()) {
            let series: Vec<(String, &RetrievalSummary, RGBColor)> = self
                .crosses
                .iter()
                .zip(self.names)
                .enumerate()
                .map(|(i, (c, name))| (name.to_string(), summary(c), colour(i)))
                .collect();
            recall_panel(panel, Some(direction), &series)?;
        }
        Ok(())
    }
}

fn write_page(
    dir: &Path,
    title: &str,
    analysed: &[Analysed],
    crosses: &[&CrossModal],
    document: &Value,
    signature: &str,
) -> Result<Written, ReportError> {
    let figures_dir = figures_folder(dir)?;
    let names: Vec<&str> = document["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|input| input["name"].as_str())
        .collect();
    let contexts = analysed
        .iter()
        .map(|a| {
            let data = a.run.figures.as_ref().ok_or_else(|| ReportError::Draw {
                figure: "compare".into(),
                what: "no figure data was computed".into(),
            })?;
            Ok(Context::new(&a.run.analysis, data))
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    let mut files = Vec::new();
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{0}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{0}</h1>\n<p class=\"src\">Written by embgeom {1}. Data: <a href=\"compare.json\">compare.json</a> (with every input's analysis), <a href=\"metrics.csv\">metrics.csv</a>.</p>\n<h2>Inputs</h2>\n<table>\n<tr><th>name</th><th>source</th><th>N</th><th>D</th><th>C</th></tr>\n",
        escape(title),
        env!("CARGO_PKG_VERSION")
    );
    for input in document["inputs"].as_array().into_iter().flatten() {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"v\">{}</td><td class=\"v\">{}</td><td class=\"v\">{}</td></tr>\n",
            escape(input["name"].as_str().unwrap_or_default()),
            escape(input["source"].as_str().unwrap_or_default()),
            input["n"],
            input["dim"],
            input["num_classes"].as_u64().map_or_else(|| "-".into(), |c| c.to_string()),
        ));
    }
    html.push_str("</table>\n");
    let metric_rows = document["metrics"].as_array().cloned().unwrap_or_default();
    match analysed.is_empty() {
        true => html.push_str("<p class=\"src\">Only the similarity family was computed (<code>--similarity-only</code>): no analysis of each input, so no metric table, overlaid figures or per-class changes.</p>\n"),
        false => html.push_str(&metric_table(document, &names, &metric_rows)),
    }
    match document["similarity"].is_object() {
        true => html.push_str(&similarity_tables(&document["similarity"], cell)),
        false => html.push_str("<p class=\"src\">The inputs do not hold the same items in the same order (their row counts or their labels row by row differ), so they are not compared row by row: no similarity of the representations and no per-class changes.</p>\n"),
    }
    for change in document["class_changes"].as_array().into_iter().flatten() {
        html.push_str(&format!(
            "<h2>Per-class changes: {} &rarr; {}</h2>\n<p class=\"src\">Within-class variance of each class in both inputs and their ratio; below {COLLAPSED} the class collapsed, above {SPREAD} it spread.</p>\n<table>\n<tr><th>class</th><th>{}</th><th>{}</th><th>ratio</th><th>change</th></tr>\n",
            escape(change["from"].as_str().unwrap_or_default()),
            escape(change["to"].as_str().unwrap_or_default()),
            escape(change["from"].as_str().unwrap_or_default()),
            escape(change["to"].as_str().unwrap_or_default()),
        ));
        for class in change["classes"].as_array().into_iter().flatten() {
            html.push_str(&format!(
                "<tr><td>{}</td><td class=\"v\">{}</td><td class=\"v\">{}</td><td class=\"v\">{}</td><td>{}</td></tr>\n",
                escape(class["class"].as_str().unwrap_or_default()),
                cell(&class["within_variance"][0]),
                cell(&class["within_variance"][1]),
                cell(&class["ratio"]),
                escape(class["change"].as_str().unwrap_or_default()),
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str("<h2>Figures</h2>\n");
    if document["similarity"].is_object() {
        html.push_str(&figure_block(
            &SimilarityHeatmaps {
                document: &document["similarity"],
            },
            &figures_dir,
            "The similarity family, every pair of inputs",
            "One heatmap per measure over every pair of inputs (rows and columns in input order): dark is the same representation (the measure's ideal, as on the diagonal), light is far from it. Distances (Procrustes) are drawn so that dark is near 0.",
            &mut files,
        )?);
    }
    if !crosses.is_empty() {
        html.push_str(&figure_block(
            &RecallCurves {
                crosses,
                names: &names,
            },
            &figures_dir,
            "R@k of every input, both directions",
            "The share of queries whose best positive ranks within k (k = 1 to 100, log axis), exact, for every input's two modalities: a curve above another retrieves better at every depth.",
            &mut files,
        )?);
    }
    // The overlaid figures draw every input's analysis (none with the similarity family alone).
    let figures: &[CompareFigure] = match analysed.is_empty() {
        true => &[],
        false => &CompareFigure::ALL,
    };
    for &figure in figures {
        let plot = ComparePlot {
            figure,
            contexts: &contexts,
            names: &names,
        };
        html.push_str(&figure_block(
            &plot,
            &figures_dir,
            figure.title(),
            figure.caption(),
            &mut files,
        )?);
    }
    html.push_str("</body>\n</html>\n");
    let json = serde_json::to_string_pretty(document).expect("JSON values serialise");
    write(&dir.join("compare.json"), json.as_bytes(), &mut files)?;
    if !analysed.is_empty() {
        write(
            &dir.join("metrics.csv"),
            metrics_csv(&names, &metric_rows).as_bytes(),
            &mut files,
        )?;
    }
    let index = dir.join("index.html");
    write(&index, html.as_bytes(), &mut files)?;
    write(&dir.join(MARKER), signature.as_bytes(), &mut files)?;
    Ok(Written {
        index,
        files,
        skipped: Vec::new(),
    })
}
