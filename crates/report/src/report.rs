//! The report of one analysis: its page, figures, JSON and CSV.

use crate::error::ReportError;
use crate::figures::{self, Context, Figure};
use crate::html;
use crate::page::{check_folder, figures_folder, render, write, Plot, MARKER};
use embgeom_geometry::catalogue::scalar_values;
use embgeom_geometry::{Analysis, AnalysisOptions, FigureData, Progress};
use embgeom_pipeline::{analysis_document, run_analysis, Extras, InputSpec, InputSummary};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Everything a report shows.
pub struct Report<'a> {
    /// Page title.
    pub title: String,
    /// The measured metrics.
    pub analysis: &'a Analysis,
    /// The numbers behind the figures.
    pub data: &'a FigureData,
    /// The analysis as JSON (`embgeom.analysis/1`), written beside the page.
    pub json: &'a Value,
    /// Rows of the input summary (label, value).
    pub inputs: Vec<(String, String)>,
    /// Notes to show with the warnings (e.g. unnormalised input).
    pub notes: Vec<String>,
    /// Identifies the inputs and options; a folder holding a report of another signature is
    /// not overwritten without `force`.
    pub signature: String,
}

/// A figure as written: its kind, inline SVG and caption.
pub struct RenderedFigure {
    pub figure: Figure,
    pub svg: String,
    pub caption: String,
}

/// The files a report consists of.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// `index.html`.
    pub index: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
    /// Figures not drawn and why.
    pub skipped: Vec<(Figure, &'static str)>,
}

/// A report figure with the data it draws.
struct FigurePlot<'a> {
    figure: Figure,
    ctx: &'a Context<'a>,
}

impl Plot for FigurePlot<'_> {
    fn id(&self) -> &'static str {
        self.figure.id()
    }
    fn size(&self) -> (u32, u32) {
        self.figure.size()
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> figures::Drawn {
        self.figure.draw(self.ctx, root)
    }
}

/// Every scalar metric of the catalogue that has a value, as `metric,value` CSV lines.
pub fn metrics_csv(analysis: &Analysis) -> String {
    let mut out = String::from("metric,value\n");
    for (name, v) in scalar_values(analysis) {
        out.push_str(&format!("{name},{v}\n"));
    }
    out
}

/// Write the report into `dir` (created if needed).
pub fn write_report(dir: &Path, report: &Report, force: bool) -> Result<Written, ReportError> {
    check_folder(dir, &report.signature, force)?;
    let figures_dir = figures_folder(dir)?;
    let (names, counts) = report
        .analysis
        .per_class
        .iter()
        .map(|p| (p.name.clone(), p.count))
        .unzip();
    let ctx = Context {
        analysis: report.analysis,
        data: report.data,
        names,
        counts,
    };
    let mut files = Vec::new();
    let mut rendered = Vec::new();
    let mut skipped = Vec::new();
    for figure in Figure::ALL {
        if let Err(reason) = figure.applies(&ctx) {
            skipped.push((figure, reason));
            continue;
        }
        let png = figures_dir.join(format!("{}.png", figure.id()));
        let svg = render(&FigurePlot { figure, ctx: &ctx }, &png)?;
        files.push(png);
        write(
            &figures_dir.join(format!("{}.svg", figure.id())),
            svg.as_bytes(),
            &mut files,
        )?;
        rendered.push(RenderedFigure {
            figure,
            svg,
            caption: figure.caption(&ctx),
        });
    }
    let json = serde_json::to_string_pretty(report.json).expect("JSON values serialise");
    write(&dir.join("analysis.json"), json.as_bytes(), &mut files)?;
    write(
        &dir.join("metrics.csv"),
        metrics_csv(report.analysis).as_bytes(),
        &mut files,
    )?;
    let page = html::page(report, &rendered, &skipped);
    let index = dir.join("index.html");
    write(&index, page.as_bytes(), &mut files)?;
    write(&dir.join(MARKER), report.signature.as_bytes(), &mut files)?;
    Ok(Written {
        index,
        files,
        skipped,
    })
}

/// Where a report goes and what it is called.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Output folder.
    pub dir: PathBuf,
    /// Report name (the page title is `embgeom report: NAME`).
    pub name: String,
    /// Replace a folder that holds a different report or other files.
    pub force: bool,
}

/// The input-summary rows of the page.
fn input_rows(analysis: &Analysis, s: &InputSummary) -> Vec<(String, String)> {
    let normalised = match s.normalized {
        true => "yes",
        false => "no (--no-normalize)",
    };
    [
        ("embeddings", s.embeddings.clone()),
        ("views", (!s.views.is_empty()).then(|| s.views.join(", "))),
        ("labels", s.labels.clone()),
        ("classifier", s.classifier.clone()),
        ("split", s.split.clone()),
        ("subclasses", s.subclasses.clone()),
        ("rows N", Some(analysis.n.to_string())),
        ("dimension D", Some(analysis.dim.to_string())),
        ("classes C", analysis.num_classes.map(|c| c.to_string())),
        ("stored dtype", Some(s.dtype.clone())),
        ("rows L2-normalised", Some(normalised.to_string())),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.map(|v| (label.to_string(), v)))
    .collect()
}

/// Analyse the inputs of `spec` (every metric of `analyze`) and write the report into
/// `output.dir`: `index.html`, the figures, `analysis.json` and `metrics.csv`.
///
/// A folder that holds a report of other inputs or options, or other files, is not replaced
/// unless `output.force`; the thread count is not part of the options, so it never matters.
///
/// ```
/// use embgeom_geometry::{AnalysisOptions, NoProgress};
/// use embgeom_pipeline::InputSpec;
/// use embgeom_report::{report, ReportOptions};
///
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.npz");
/// # let dir = tempfile::tempdir().unwrap();
/// let output = ReportOptions { dir: dir.path().join("digits"), name: "digits".into(), force: false };
/// let written = report(&InputSpec::file(path), &AnalysisOptions::default(), &output, &NoProgress)?;
/// assert!(written.index.ends_with("index.html"));
/// # Ok::<(), embgeom_report::ReportError>(())
/// ```
pub fn report(
    spec: &InputSpec,
    options: &AnalysisOptions,
    output: &ReportOptions,
    progress: &dyn Progress,
) -> Result<Written, ReportError> {
    let extras = Extras {
        figures: true,
        ..Extras::default()
    };
    let run = run_analysis(spec, options, extras, progress)?;
    let json = analysis_document(&run.analysis, &run.summary);
    let figures = run.figures.as_ref().ok_or_else(|| ReportError::Draw {
        figure: "report",
        what: "no figure data was computed".into(),
    })?;
    let mut notes = Vec::new();
    if !run.summary.normalized {
        notes.push("The rows were not L2-normalised (--no-normalize): alignment, uniformity, angles and the spectrum are on the rows as stored.".into());
    }
    let page = Report {
        title: format!("embgeom report: {}", output.name),
        analysis: &run.analysis,
        data: figures,
        json: &json,
        inputs: input_rows(&run.analysis, &run.summary),
        notes,
        signature: format!(
            "{}{:?}",
            json!(run.summary),
            AnalysisOptions {
                memory_limit: None,
                ..options.clone()
            }
        ),
    };
    write_report(&output.dir, &page, output.force)
}
