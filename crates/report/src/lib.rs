//! Collapse-diagnostic figures and a self-contained HTML report of an embgeom analysis:
//! `index.html` (inline SVG and CSS, no network), every figure as SVG and PNG in `figures/`,
//! the analysis JSON and a CSV of the scalar metrics.

mod compare;
mod figures;
mod html;
mod style;
mod track;

pub use compare::{compare, CompareInput, CompareOptions, Compared, COMPARE_SCHEMA};
pub use figures::{Context, Figure};
pub use track::{write_trajectory, Cosines, RunTrajectory, Trajectory};

use embgeom_geometry::catalogue::scalar_values;
use embgeom_geometry::{Analysis, AnalysisOptions, FigureData, Progress};
use embgeom_pipeline::{
    analysis_document, run_analysis, Extras, InputSpec, InputSummary, PipelineError,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a report could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The folder holds something else and `force` was not given.
    #[error("{dir} already holds a different report or other files; pass --force to replace it, or choose another --out/--name")]
    Exists { dir: String },
    /// A file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An output could not be written.
    #[error(transparent)]
    Output(#[from] embgeom_io::IoError),
    /// The inputs could not be loaded or analysed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// plotters failed to draw a figure.
    #[error("figure {figure}: {what}")]
    Draw { figure: &'static str, what: String },
}

impl From<embgeom_io::WriteError> for ReportError {
    fn from(error: embgeom_io::WriteError) -> ReportError {
        ReportError::Output(error.into())
    }
}

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

pub(crate) const MARKER: &str = ".embgeom-report";

pub(crate) fn write(
    path: &Path,
    bytes: &[u8],
    files: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    embgeom_io::write_output(path, bytes)?;
    files.push(path.to_path_buf());
    Ok(())
}

/// Refuse a folder that holds anything but a report of the same signature, unless `force`.
pub fn check_folder(dir: &Path, signature: &str, force: bool) -> Result<(), ReportError> {
    let occupied = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !occupied || force {
        return Ok(());
    }
    match std::fs::read_to_string(dir.join(MARKER)) {
        Ok(existing) if existing == signature => Ok(()),
        _ => Err(ReportError::Exists {
            dir: dir.display().to_string(),
        }),
    }
}

/// [`check_folder`], then create the folder and mark it as this signature's, so that a run
/// that fails half-way (leaving a cache, no report) is not refused when it is run again.
pub fn claim_folder(dir: &Path, signature: &str, force: bool) -> Result<(), ReportError> {
    check_folder(dir, signature, force)?;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    embgeom_io::write_output(&dir.join(MARKER), signature.as_bytes())?;
    Ok(())
}

/// Something drawn once as SVG and once as PNG.
pub(crate) trait Plot {
    /// File stem.
    fn id(&self) -> &'static str;
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw on any plotters backend.
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> figures::Drawn;
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

/// Draw `plot` as an SVG string and as a PNG file.
pub(crate) fn render(plot: &impl Plot, png: &Path) -> Result<String, ReportError> {
    let draw_error = |what: String| ReportError::Draw {
        figure: plot.id(),
        what,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size()).into_drawing_area();
        plot.draw_on(&root).map_err(draw_error)?;
    }
    embgeom_io::write_output_with(png, |temporary: &Path| {
        let root = BitMapBackend::new(temporary, plot.size()).into_drawing_area();
        plot.draw_on(&root).map_err(draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))
    })?;
    Ok(svg)
}

/// Create `dir/figures` (and register the figures' font); its path.
pub(crate) fn figures_folder(dir: &Path) -> Result<PathBuf, ReportError> {
    let figures_dir = dir.join("figures");
    std::fs::create_dir_all(&figures_dir).map_err(|source| ReportError::Write {
        path: figures_dir.display().to_string(),
        source,
    })?;
    style::register_font();
    Ok(figures_dir)
}

/// Render `plot` into `figures_dir` (`ID.png`, `ID.svg`, added to `files`) and return its
/// `<figure>` block for a page: the title, the inline SVG and the caption with links.
pub(crate) fn figure_block(
    plot: &impl Plot,
    figures_dir: &Path,
    title: &str,
    caption: &str,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let id = plot.id();
    let png = figures_dir.join(format!("{id}.png"));
    let svg = render(plot, &png)?;
    files.push(png);
    write(
        &figures_dir.join(format!("{id}.svg")),
        svg.as_bytes(),
        files,
    )?;
    Ok(format!(
        "<figure id=\"{id}\" class=\"plot\">\n<h3>{}</h3>\n{}\n<figcaption>{} <a href=\"figures/{id}.svg\">SVG</a> &middot; <a href=\"figures/{id}.png\">PNG</a></figcaption>\n</figure>\n",
        html::escape(title),
        html::responsive(&svg),
        html::escape(caption)
    ))
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
