//! The report of one analysis: its page, figures, JSON and CSV.

use crate::error::ReportError;
use crate::figures::{self, Context, Figure};
use crate::html;
use crate::page::{check_folder, figures_folder, png, svg, write, Plot, MARKER};
use crate::style;
use embgeom_geometry::catalogue::scalar_values;
use embgeom_geometry::{
    Analysis, AnalysisOptions, FigureData, PerPoint, Progress, DEFAULT_PER_POINT_ROWS,
};
use embgeom_pipeline::{
    analysis_document, run_analysis, write_per_point, Extras, InputSpec, InputSummary, Run,
};
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
    /// The per-point table and the class names, when computed: the page lists its extreme
    /// rows and the folder holds it as `per_point.parquet`.
    pub per_point: Option<(&'a PerPoint, Vec<String>)>,
}

/// A figure as written: its kind, inline SVG and caption.
pub struct RenderedFigure {
    pub figure: Figure,
    pub svg: String,
    pub caption: String,
}

/// The figures of a report, drawn in memory: those that apply to the analysis, in page order,
/// and the others with why they were not drawn.
pub struct Figures {
    /// The drawn figures.
    pub drawn: Vec<RenderedFigure>,
    /// Figures not drawn and why.
    pub skipped: Vec<(Figure, &'static str)>,
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
    fn id(&self) -> String {
        self.figure.id().to_string()
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

/// The figures of a report of `analysis`, from the numbers behind them (`data`), drawn as SVG
/// strings in memory: nothing is written.
///
/// ```
/// use embgeom_geometry::{AnalysisOptions, NoProgress};
/// use embgeom_pipeline::{run_analysis, Extras, InputSpec};
///
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.npz");
/// let extras = Extras { figures: true, ..Extras::default() };
/// let run = run_analysis(&InputSpec::file(path), &AnalysisOptions::default(), extras, &NoProgress)?;
/// let figures = embgeom_report::render_figures(&run.analysis, run.figures.as_ref().unwrap())?;
/// assert!(figures.drawn.iter().all(|f| f.svg.starts_with("<svg")));
/// # Ok::<(), embgeom_report::ReportError>(())
/// ```
pub fn render_figures(analysis: &Analysis, data: &FigureData) -> Result<Figures, ReportError> {
    style::register_font();
    let ctx = Context::new(analysis, data);
    let mut figures = Figures {
        drawn: Vec::new(),
        skipped: Vec::new(),
    };
    for figure in Figure::ALL {
        match figure.applies(&ctx) {
            Err(reason) => figures.skipped.push((figure, reason)),
            Ok(()) => figures.drawn.push(RenderedFigure {
                figure,
                svg: svg(&FigurePlot { figure, ctx: &ctx })?,
                caption: figure.caption(&ctx),
            }),
        }
    }
    Ok(figures)
}

/// Draw one figure of a report of `analysis` into `path`: PNG when its name ends in `.png`,
/// SVG when it ends in `.svg` (the same SVG as [`render_figures`] and the report's file).
pub fn write_figure(
    analysis: &Analysis,
    data: &FigureData,
    figure: Figure,
    path: &Path,
) -> Result<(), ReportError> {
    style::register_font();
    let ctx = Context::new(analysis, data);
    figure.applies(&ctx).map_err(|why| ReportError::Draw {
        figure: figure.id().to_string(),
        what: format!("not drawn for this analysis: {why}"),
    })?;
    let plot = FigurePlot { figure, ctx: &ctx };
    let extension = path.extension().and_then(|e| e.to_str());
    match extension.map(str::to_ascii_lowercase).as_deref() {
        Some("png") => png(&plot, path),
        Some("svg") => Ok(embgeom_io::write_output(path, svg(&plot)?.as_bytes())?),
        _ => Err(ReportError::Write {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a figure is written as .svg or .png",
            ),
        }),
    }
}

/// Write the report into `dir` (created if needed).
pub fn write_report(dir: &Path, report: &Report, force: bool) -> Result<Written, ReportError> {
    check_folder(dir, &report.signature, force)?;
    let figures_dir = figures_folder(dir)?;
    let Figures {
        drawn: rendered,
        skipped,
    } = render_figures(report.analysis, report.data)?;
    let ctx = Context::new(report.analysis, report.data);
    let mut files = Vec::new();
    for drawn in &rendered {
        let id = drawn.figure.id();
        let png_path = figures_dir.join(format!("{id}.png"));
        png(
            &FigurePlot {
                figure: drawn.figure,
                ctx: &ctx,
            },
            &png_path,
        )?;
        files.push(png_path);
        write(
            &figures_dir.join(format!("{id}.svg")),
            drawn.svg.as_bytes(),
            &mut files,
        )?;
    }
    let json = serde_json::to_string_pretty(report.json).expect("JSON values serialise");
    write(&dir.join("analysis.json"), json.as_bytes(), &mut files)?;
    write(
        &dir.join("metrics.csv"),
        metrics_csv(report.analysis).as_bytes(),
        &mut files,
    )?;
    if let Some((table, names)) = &report.per_point {
        let path = dir.join("per_point.parquet");
        write_per_point(&path, table, names)?;
        files.push(path);
    }
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
        per_point_rows: Some(DEFAULT_PER_POINT_ROWS),
        ..Extras::default()
    };
    let run = run_analysis(spec, options, extras, progress)?;
    write_run_report(&run, options, output)
}

/// Write the report of an analysis already run, with the numbers behind the figures
/// (`Extras { figures: true, .. }`), into `output.dir`, as [`report`] does; `options` are the
/// options it ran with (with the inputs, they identify the report). For inputs that are not
/// files: the caller's arrays through [`embgeom_pipeline::analyze_inputs`].
pub fn write_run_report(
    run: &Run,
    options: &AnalysisOptions,
    output: &ReportOptions,
) -> Result<Written, ReportError> {
    let json = analysis_document(&run.analysis, &run.summary);
    let figures = run.figures.as_ref().ok_or_else(|| ReportError::Draw {
        figure: "report".into(),
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
        per_point: run.per_point.as_ref().map(|p| {
            let names = run
                .analysis
                .per_class
                .iter()
                .map(|c| c.name.clone())
                .collect();
            (p, names)
        }),
    };
    write_report(&output.dir, &page, output.force)
}
