//! What every page shares: its folder (claimed with a marker of the inputs and options), its
//! files, and its figures, each drawn once as inline SVG and once as a PNG file.

use crate::error::ReportError;
use crate::figures;
use crate::html;
use crate::style;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The file that marks a folder as an embgeom page of one signature (inputs and options).
pub(crate) const MARKER: &str = ".embgeom-report";

/// Write one file of a page ([`embgeom_io::write_output`]) and list it in `files`.
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
    fn id(&self) -> String;
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw on any plotters backend.
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> figures::Drawn;
}

/// The error of `plot` failing to draw.
fn draw_error(plot: &impl Plot) -> impl Fn(String) -> ReportError {
    let figure = plot.id();
    move |what| ReportError::Draw {
        figure: figure.clone(),
        what,
    }
}

/// Draw `plot` as an SVG string.
pub(crate) fn svg(plot: &impl Plot) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size()).into_drawing_area();
        plot.draw_on(&root).map_err(draw_error(plot))?;
    }
    Ok(svg)
}

/// Draw `plot` as a PNG file.
pub(crate) fn png(plot: &impl Plot, path: &Path) -> Result<(), ReportError> {
    let draw_error = draw_error(plot);
    embgeom_io::write_output_with(path, |temporary: &Path| {
        let root = BitMapBackend::new(temporary, plot.size()).into_drawing_area();
        plot.draw_on(&root).map_err(&draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))
    })?;
    Ok(())
}

/// Draw `plot` as an SVG string and as a PNG file.
pub(crate) fn render(plot: &impl Plot, png_path: &Path) -> Result<String, ReportError> {
    let svg = svg(plot)?;
    png(plot, png_path)?;
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
