//! Collapse-diagnostic figures and a self-contained HTML report of an embgeom analysis:
//! `index.html` (inline SVG and CSS, no network), every figure as SVG and PNG in `figures/`,
//! the analysis JSON and a CSV of the scalar metrics.

mod figures;
mod html;
mod style;
mod track;

pub use figures::{Context, Figure};
pub use track::{write_trajectory, Cosines, Trajectory};

use embgeom_geometry::{Analysis, FigureData};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
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
    /// plotters failed to draw a figure.
    #[error("figure {figure}: {what}")]
    Draw { figure: &'static str, what: String },
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
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })?;
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
    let root = BitMapBackend::new(png, plot.size()).into_drawing_area();
    plot.draw_on(&root).map_err(draw_error)?;
    Ok(svg)
}

/// The scalar metrics of the analysis JSON as `metric,value` CSV lines.
pub fn metrics_csv(json: &Value) -> String {
    let mut out = String::from("metric,value\n");
    if let Some(metrics) = json["metrics"].as_object() {
        for (name, metric) in metrics {
            if let Some(v) = metric.get("value").and_then(Value::as_f64) {
                out.push_str(&format!("{name},{v}\n"));
            }
        }
    }
    out
}

/// Write the report into `dir` (created if needed).
pub fn write_report(dir: &Path, report: &Report, force: bool) -> Result<Written, ReportError> {
    check_folder(dir, &report.signature, force)?;
    let figures_dir = dir.join("figures");
    std::fs::create_dir_all(&figures_dir).map_err(|source| ReportError::Write {
        path: figures_dir.display().to_string(),
        source,
    })?;
    style::register_font();
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
        metrics_csv(report.json).as_bytes(),
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
