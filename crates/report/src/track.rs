//! The training-trajectory page of `embgeom track`: every scalar metric against the step, the
//! alignment-uniformity trajectory, the spectrum over steps, class-mean cosines at the first
//! and last checkpoint, CKA over steps, and the per-checkpoint table.

use crate::error::ReportError;
use crate::figures::{axes, class_matrix, fail, font, series_labels, Drawn, HeatKind};
use crate::html::{escape, CSS};
use crate::page::{figure_block, figures_folder, write, Plot, MARKER};
use crate::report::Written;
use crate::style::{sequential, CLASS_COLOURS, OKABE_BLUE, VERMILLION};
use ndarray::Array2;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Class-mean cosines of one checkpoint.
pub struct Cosines {
    pub step: f64,
    pub matrix: Array2<f64>,
    pub names: Vec<String>,
}

/// One run's series on the tracking page.
pub struct RunTrajectory {
    /// Name in legends and tables.
    pub name: String,
    /// Step of each checkpoint (increasing).
    pub steps: Vec<f64>,
    /// File of each checkpoint.
    pub files: Vec<String>,
    /// Each scalar metric's value per checkpoint.
    pub metrics: Vec<(String, Vec<Option<f64>>)>,
    /// Spectrum (normalised covariance eigenvalues) per checkpoint.
    pub eigenvalues: Vec<Vec<f64>>,
    /// Class-mean cosines at the first and last checkpoint.
    pub first_cosines: Option<Cosines>,
    pub last_cosines: Option<Cosines>,
}

/// Everything the tracking page shows: one run, or several on the same axes.
pub struct Trajectory {
    pub title: String,
    /// The runs, each with its own colour.
    pub runs: Vec<RunTrajectory>,
    /// Input summary rows.
    pub inputs: Vec<(String, String)>,
    /// `--fail-if` results: (check, passed, explanation).
    pub checks: Vec<(String, bool, String)>,
    /// Identifies the options; see [`crate::report::Report::signature`].
    pub signature: String,
}

impl RunTrajectory {
    fn metric(&self, name: &str) -> Option<&Vec<Option<f64>>> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// (step, value) of the checkpoints that have a value.
    fn points(&self, values: &[Option<f64>]) -> Vec<(f64, f64)> {
        self.steps
            .iter()
            .zip(values)
            .filter_map(|(&s, v)| v.map(|v| (s, v)))
            .collect()
    }
}

impl Trajectory {
    /// Whether any run has a value of `name`.
    fn has(&self, name: &str) -> bool {
        self.runs.iter().any(|r| {
            r.metric(name)
                .is_some_and(|v| v.iter().any(Option::is_some))
        })
    }

    /// Every metric some run has, in the first run's order, then the others'.
    fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for run in &self.runs {
            for (name, _) in &run.metrics {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }

    fn several(&self) -> bool {
        self.runs.len() > 1
    }
}

/// The colour of run `i` (blue for a single run).
fn run_colour(i: usize) -> RGBColor {
    match i {
        0 => OKABE_BLUE,
        1 => VERMILLION,
        _ => CLASS_COLOURS[i % CLASS_COLOURS.len()],
    }
}

#[derive(Clone, Copy)]
enum TrackFigure {
    Metrics,
    Plane,
    Spectrum,
    FirstCosines,
    LastCosines,
    Cka,
    Modalities,
}

impl TrackFigure {
    fn id(self) -> &'static str {
        match self {
            TrackFigure::Metrics => "t1-metrics-over-steps",
            TrackFigure::Plane => "t2-alignment-uniformity-trajectory",
            TrackFigure::Spectrum => "t3-spectrum-over-steps",
            TrackFigure::FirstCosines => "t4-class-mean-cosines-first",
            TrackFigure::LastCosines => "t5-class-mean-cosines-last",
            TrackFigure::Cka => "t6-cka",
            TrackFigure::Modalities => "t7-modalities",
        }
    }

    fn title(self) -> &'static str {
        match self {
            TrackFigure::Metrics => "Every scalar metric against the step",
            TrackFigure::Plane => "Alignment-uniformity trajectory",
            TrackFigure::Spectrum => "Eigenvalue spectrum over steps",
            TrackFigure::FirstCosines => "Class-mean cosines, first checkpoint",
            TrackFigure::LastCosines => "Class-mean cosines, last checkpoint",
            TrackFigure::Cka => "Linear CKA between checkpoints",
            TrackFigure::Modalities => "The modality gap, the cones and R@1 over steps",
        }
    }

    fn caption(self, t: &Trajectory) -> String {
        match self {
            TrackFigure::Metrics => "One panel per scalar metric, value against the training step; a log y-axis where the values are positive and span more than two decades (e.g. NC1).".into(),
            TrackFigure::Plane => "Uniformity (x) against alignment (y) at every checkpoint, joined in step order and coloured from light (first) to dark (last): training should move down and to the left.".into(),
            TrackFigure::Spectrum => "Eigenvalues of the normalised covariance (rows: rank, columns: checkpoint), colour log10 of the eigenvalue: dimensional collapse shows as dark bands spreading up from high ranks.".into(),
            TrackFigure::FirstCosines | TrackFigure::LastCosines => {
                let steps: Vec<String> = t
                    .runs
                    .iter()
                    .filter_map(|r| self.cosines(r))
                    .map(|c| c.step.to_string())
                    .collect();
                format!(
                    "Cosines between centred class means at step {} ({}); a regular simplex has every off-diagonal cell at -1/(C-1) (marked on the colour bar).",
                    steps.join(", "),
                    match t.several() { true => "one panel per run", false => "the run" }
                )
            }
            TrackFigure::Cka => "Linear CKA (Kornblith et al. 2019) of each checkpoint's embeddings with the previous checkpoint and with the last one (rows correspond): 1 means the same representation up to rotation and scale.".into(),
            TrackFigure::Modalities => "Top: the distance between the modalities' centroids (the gap of Liang et al. 2022), the mean matched-pair distance (L2I) and the relative modality gap (RMG, Schrodi et al. 2025). Middle: each modality's cone, the mean cosine between its rows (1 = one direction). Bottom: exact R@1 and R@10 both ways. Liang et al. find untrained towers already in two narrow cones far apart.".into(),
        }
    }

    fn size(self, t: &Trajectory) -> (u32, u32) {
        let runs = t.runs.len().max(1) as u32;
        let legend = if t.several() { 30 } else { 0 };
        match self {
            TrackFigure::Metrics => (
                1000,
                220 * (t.metric_names().len().div_ceil(3).max(1) as u32) + legend,
            ),
            TrackFigure::FirstCosines | TrackFigure::LastCosines => {
                ((760 * runs).min(2280), 640 + legend)
            }
            TrackFigure::Spectrum => ((900 * runs).min(2400), 480 + legend),
            TrackFigure::Modalities => ((900 * runs).min(2400), 3 * 260 + legend),
            _ => (900, 480),
        }
    }

    /// The cosines this figure shows for `run`.
    fn cosines(self, run: &RunTrajectory) -> Option<&Cosines> {
        match self {
            TrackFigure::FirstCosines => run.first_cosines.as_ref(),
            _ => run.last_cosines.as_ref(),
        }
    }

    fn applies(self, t: &Trajectory) -> bool {
        match self {
            TrackFigure::Plane => t.has("uniformity"),
            TrackFigure::FirstCosines => t.runs.iter().any(|r| r.first_cosines.is_some()),
            TrackFigure::LastCosines => t
                .runs
                .iter()
                .any(|r| r.last_cosines.is_some() && r.steps.len() > 1),
            TrackFigure::Cka => t.has("cka_previous"),
            TrackFigure::Modalities => t.has("modality_gap"),
            _ => t.runs.iter().any(|r| !r.steps.is_empty()),
        }
    }

    fn draw<DB: DrawingBackend>(self, t: &Trajectory, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(fail)?;
        // The plane and CKA figures have a legend of their own; the others a strip on top.
        let body = match self {
            TrackFigure::Plane | TrackFigure::Cka => root.clone(),
            _ => legend(t, root)?,
        };
        match self {
            TrackFigure::Metrics => metrics_grid(t, &body),
            TrackFigure::Plane => plane(t, &body),
            TrackFigure::Cka => cka(t, &body),
            TrackFigure::Spectrum => per_run(t, &body, |run, area| spectrum(run, area)),
            TrackFigure::Modalities => per_run(t, &body, |run, area| modalities(run, area)),
            TrackFigure::FirstCosines | TrackFigure::LastCosines => {
                per_run(t, &body, |run, area| {
                    let Some(c) = self.cosines(run) else {
                        return Ok(());
                    };
                    let classes: Vec<usize> = (0..c.names.len().min(40)).collect();
                    class_matrix(area, &c.matrix, &c.names, &classes, HeatKind::Cosine)
                })
            }
        }?;
        root.present().map_err(fail)
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0))
    }
}

fn step_range(t: &Trajectory) -> (f64, f64) {
    let steps = || t.runs.iter().flat_map(|r| r.steps.iter().cloned());
    let (lo, hi) = range(steps());
    (lo.min(steps().fold(f64::INFINITY, f64::min)), hi)
}

/// With several runs, a strip at the top naming each run in its colour; the area below.
fn legend<DB: DrawingBackend>(
    t: &Trajectory,
    root: &DrawingArea<DB, Shift>,
) -> Result<DrawingArea<DB, Shift>, String> {
    if !t.several() {
        return Ok(root.clone());
    }
    let (strip, body) = root.split_vertically(30);
    let mut x = 12;
    for (i, run) in t.runs.iter().enumerate() {
        strip
            .draw(&Rectangle::new(
                [(x, 10), (x + 22, 16)],
                run_colour(i).filled(),
            ))
            .map_err(fail)?;
        strip
            .draw_text(&run.name, &font(15), (x + 28, 5))
            .map_err(fail)?;
        x += 40 + 9 * run.name.len() as i32;
    }
    Ok(body)
}

/// `draw` once per run, side by side, each panel under its run's name when there are several.
fn per_run<DB: DrawingBackend>(
    t: &Trajectory,
    root: &DrawingArea<DB, Shift>,
    draw: impl Fn(&RunTrajectory, &DrawingArea<DB, Shift>) -> Drawn,
) -> Drawn {
    let panels = root.split_evenly((1, t.runs.len().max(1)));
    for (i, (run, panel)) in t.runs.iter().zip(panels.iter()).enumerate() {
        let area = match t.several() {
            true => {
                let (title, area) = panel.split_vertically(28);
                title
                    .draw_text(&run.name, &font(16).color(&run_colour(i)), (12, 6))
                    .map_err(fail)?;
                area
            }
            false => panel.clone(),
        };
        draw(run, &area)?;
    }
    Ok(())
}

/// A line through `points` with a dot at each, on any y axis (linear or log).
fn line_with_points<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    points: &[(f64, f64)],
    colour: RGBColor,
) -> Drawn
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points.to_vec(), colour.stroke_width(2)))
        .map_err(fail)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
        .map_err(fail)?;
    Ok(())
}

/// Which columns a panel shows.
type ColumnFilter = fn(&str) -> bool;

/// The gap, the cones and R@1 / R@10 of a run tracked with modalities, one panel each.
fn modalities<DB: DrawingBackend>(run: &RunTrajectory, root: &DrawingArea<DB, Shift>) -> Drawn {
    let panels = root.split_evenly((3, 1));
    let groups: [(&str, ColumnFilter); 3] = [
        ("gap", |n| matches!(n, "modality_gap" | "l2i" | "rmg")),
        ("cone (mean cosine)", |n| n.starts_with("cone.")),
        ("retrieval", |n| {
            n.starts_with("recall_at_1.") || n.starts_with("recall_at_10.")
        }),
    ];
    let (x_lo, x_hi) = range(run.steps.iter().copied());
    for ((title, wanted), panel) in groups.iter().zip(panels.iter()) {
        let series: Vec<(&str, Vec<(f64, f64)>)> = run
            .metrics
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(name, values)| (name.as_str(), run.points(values)))
            .collect();
        let (lo, hi) = range(series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(panel)
            .margin(8)
            .caption(title, font(15))
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(x_lo..x_hi, lo.min(0.0)..hi)
            .map_err(fail)?;
        axes(&mut chart, "step", "", 12)?;
        for (k, (name, points)) in series.iter().enumerate() {
            let colour = CLASS_COLOURS[k % CLASS_COLOURS.len()];
            line_with_points(&mut chart, points, colour)?;
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(fail)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 16, y + 4)], colour.filled())
                });
        }
        // The gap and the cones fall, retrieval rises: the legend where the lines are not.
        let corner = match *title {
            "retrieval" => SeriesLabelPosition::UpperLeft,
            _ => SeriesLabelPosition::UpperRight,
        };
        series_labels(&mut chart, corner, 12)?;
    }
    Ok(())
}

fn metrics_grid<DB: DrawingBackend>(t: &Trajectory, root: &DrawingArea<DB, Shift>) -> Drawn {
    let names = t.metric_names();
    let rows = names.len().div_ceil(3).max(1);
    let panels = root.split_evenly((rows, 3));
    let (x_lo, x_hi) = step_range(t);
    for (name, panel) in names.iter().zip(panels.iter()) {
        let series: Vec<(usize, Vec<(f64, f64)>)> = t
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.points(r.metric(name)?))))
            .collect();
        let all = || series.iter().flat_map(|(_, p)| p.iter());
        let positive = all().all(|p| p.1 > 0.0);
        let (lo, hi) = all().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
        let builder = |panel| {
            let mut b = ChartBuilder::on(panel);
            b.margin(8)
                .caption(name, font(14))
                .x_label_area_size(26)
                .y_label_area_size(56);
            b
        };
        if positive && all().next().is_some() && hi / lo > 100.0 {
            let mut chart = builder(panel)
                .build_cartesian_2d(x_lo..x_hi, (lo / 1.5..hi * 1.5).log_scale())
                .map_err(fail)?;
            chart
                .configure_mesh()
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .label_style(font(11))
                .draw()
                .map_err(fail)?;
            for (i, points) in &series {
                line_with_points(&mut chart, points, run_colour(*i))?;
            }
        } else {
            let (lo, hi) = range(all().map(|p| p.1));
            let mut chart = builder(panel)
                .build_cartesian_2d(x_lo..x_hi, lo..hi)
                .map_err(fail)?;
            chart
                .configure_mesh()
                .label_style(font(11))
                .draw()
                .map_err(fail)?;
            for (i, points) in &series {
                line_with_points(&mut chart, points, run_colour(*i))?;
            }
        }
    }
    Ok(())
}

/// (checkpoint index, uniformity, alignment) of a run's checkpoints, and the alignment's name.
type PlanePoints = (Vec<(usize, f64, f64)>, &'static str);

fn plane_points(run: &RunTrajectory) -> PlanePoints {
    let Some(u) = run.metric("uniformity") else {
        return (Vec::new(), "alignment");
    };
    let (a, y_name) = match (run.metric("alignment"), run.metric("class_alignment")) {
        (Some(a), _) if a.iter().any(Option::is_some) => (a.clone(), "alignment"),
        (_, Some(a)) => (a.clone(), "label-positive alignment"),
        _ => (vec![Some(0.0); u.len()], "no alignment"),
    };
    let points = u
        .iter()
        .zip(&a)
        .enumerate()
        .filter_map(|(i, (u, a))| Some((i, (*u)?, (*a)?)))
        .collect();
    (points, y_name)
}

fn plane<DB: DrawingBackend>(t: &Trajectory, root: &DrawingArea<DB, Shift>) -> Drawn {
    let runs: Vec<PlanePoints> = t.runs.iter().map(plane_points).collect();
    let all = || runs.iter().flat_map(|(p, _)| p.iter());
    let (x_lo, x_hi) = range(all().map(|p| p.1));
    let (y_lo, y_hi) = range(all().map(|p| p.2));
    let y_name = runs.first().map_or("alignment", |r| r.1);
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(fail)?;
    axes(&mut chart, "uniformity (lower = more uniform)", y_name, 14)?;
    for (r, ((points, _), run)) in runs.iter().zip(&t.runs).enumerate() {
        let line = match t.several() {
            true => run_colour(r),
            false => RGBColor(0x99, 0x99, 0x99),
        };
        let series = chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.1, p.2)),
                line.stroke_width(if t.several() { 2 } else { 1 }),
            ))
            .map_err(fail)?;
        if t.several() {
            series.label(run.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], line.stroke_width(2))
            });
        }
        let last = run.steps.len().max(2) - 1;
        chart
            .draw_series(points.iter().map(|&(i, x, y)| {
                let colour = match t.several() {
                    true => run_colour(r)
                        .mix(0.35 + 0.65 * i as f64 / last as f64)
                        .filled(),
                    false => sequential(0.15 + 0.85 * i as f64 / last as f64).filled(),
                };
                Circle::new((x, y), 6, colour)
            }))
            .map_err(fail)?;
        for (label, idx) in [("first", 0usize), ("last", points.len().saturating_sub(1))] {
            if let Some(&(i, x, y)) = points.get(idx) {
                let text = match t.several() {
                    true => format!("{} {label} (step {})", run.name, run.steps[i]),
                    false => format!("{label} (step {})", run.steps[i]),
                };
                chart
                    .draw_series(std::iter::once(Text::new(text, (x, y), font(13))))
                    .map_err(fail)?;
            }
        }
    }
    if t.several() {
        series_labels(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
    }
    Ok(())
}

fn spectrum<DB: DrawingBackend>(t: &RunTrajectory, root: &DrawingArea<DB, Shift>) -> Drawn {
    let k = t.eigenvalues.len();
    let d = t.eigenvalues.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let logs: Vec<f64> = t
        .eigenvalues
        .iter()
        .flatten()
        .filter(|&&v| v > 0.0)
        .map(|v| v.log10())
        .collect();
    let (lo, hi) = range(logs.iter().cloned());
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0..k, 0..d)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("checkpoint (step order)")
        .y_desc("rank (0 = largest eigenvalue)")
        .label_style(font(12))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(t.eigenvalues.iter().enumerate().flat_map(|(c, values)| {
            values.iter().enumerate().map(move |(r, &v)| {
                let f = if v > 0.0 {
                    (v.log10() - lo) / (hi - lo)
                } else {
                    0.0
                };
                Rectangle::new(
                    [(c, d - 1 - r), (c + 1, d - r)],
                    sequential(1.0 - f).filled(),
                )
            })
        }))
        .map_err(fail)?;
    chart
        .draw_series(std::iter::once(Text::new(
            format!("colour: log10 eigenvalue from {lo:.1} (light) to {hi:.1} (dark)"),
            (0, d),
            font(12),
        )))
        .map_err(fail)?;
    Ok(())
}

fn cka<DB: DrawingBackend>(t: &Trajectory, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (x_lo, x_hi) = step_range(t);
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(x_lo..x_hi, 0.0..1.05)
        .map_err(fail)?;
    axes(&mut chart, "step", "linear CKA", 14)?;
    for (r, run) in t.runs.iter().enumerate() {
        for (name, width) in [("cka_previous", 2), ("cka_last", 1)] {
            let Some(values) = run.metric(name) else {
                continue;
            };
            let colour = match (t.several(), name) {
                (true, _) => run_colour(r),
                (false, "cka_previous") => OKABE_BLUE,
                (false, _) => VERMILLION,
            };
            let what = match name {
                "cka_previous" => "with the previous checkpoint",
                _ => "with the last checkpoint",
            };
            let label = match t.several() {
                true => format!("{}: {what}", run.name),
                false => what.to_string(),
            };
            chart
                .draw_series(LineSeries::new(
                    run.points(values),
                    colour.stroke_width(width),
                ))
                .map_err(fail)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(width))
                });
        }
    }
    series_labels(&mut chart, SeriesLabelPosition::LowerRight, 14)
}

/// A tracking figure with the data it draws.
struct TrackPlot<'a> {
    figure: TrackFigure,
    trajectory: &'a Trajectory,
}

impl Plot for TrackPlot<'_> {
    fn id(&self) -> String {
        self.figure.id().to_string()
    }
    fn size(&self) -> (u32, u32) {
        self.figure.size(self.trajectory)
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        self.figure.draw(self.trajectory, root)
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "&ndash;".into(), |v| format!("{v:.4}"))
}

/// Write the tracking page and its figures into `dir` (the tables are written by the caller,
/// which has checked the folder with [`crate::page::check_folder`]).
pub fn write_trajectory(dir: &Path, t: &Trajectory) -> Result<Written, ReportError> {
    let figures_dir = figures_folder(dir)?;
    let mut files = Vec::new();
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{0}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{0}</h1>\n<p class=\"src\">Written by embgeom {1}. Per-checkpoint metrics: <a href=\"metrics.csv\">metrics.csv</a>, <a href=\"metrics.parquet\">metrics.parquet</a>.</p>\n<h2>Input</h2>\n<table>\n",
        escape(&t.title),
        env!("CARGO_PKG_VERSION")
    );
    for (label, value) in &t.inputs {
        html.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(value)
        ));
    }
    html.push_str("</table>\n");
    if !t.checks.is_empty() {
        html.push_str(
            "<h2>Checks</h2>\n<table>\n<tr><th>check</th><th>result</th><th>detail</th></tr>\n",
        );
        for (check, ok, detail) in &t.checks {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(check),
                if *ok { "ok" } else { "<strong>fail</strong>" },
                escape(detail)
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str("<h2>Figures</h2>\n");
    for figure in [
        TrackFigure::Metrics,
        TrackFigure::Plane,
        TrackFigure::Spectrum,
        TrackFigure::FirstCosines,
        TrackFigure::LastCosines,
        TrackFigure::Cka,
        TrackFigure::Modalities,
    ] {
        if !figure.applies(t) {
            continue;
        }
        let plot = TrackPlot {
            figure,
            trajectory: t,
        };
        html.push_str(&figure_block(
            &plot,
            &figures_dir,
            figure.title(),
            &figure.caption(t),
            &mut files,
        )?);
    }
    let shown = [
        "uniformity",
        "alignment",
        "class_alignment",
        "nc1",
        "etf_distance",
        "rankme",
        "knn_accuracy",
        "cka_previous",
        "modality_gap",
        "rmg",
    ];
    html.push_str("<h2>Checkpoints</h2>\n");
    for run in &t.runs {
        let mut columns: Vec<&(String, Vec<Option<f64>>)> = shown
            .iter()
            .filter_map(|n| run.metrics.iter().find(|(m, _)| m == n))
            .collect();
        // With modalities: each one's cone and R@1 both ways.
        columns.extend(
            run.metrics
                .iter()
                .filter(|(m, _)| m.starts_with("cone.") || m.starts_with("recall_at_1.")),
        );
        if t.several() {
            html.push_str(&format!("<h3>{}</h3>\n", escape(&run.name)));
        }
        html.push_str("<table>\n<tr><th>step</th><th>file</th>");
        for (name, _) in &columns {
            html.push_str(&format!("<th>{}</th>", escape(name)));
        }
        html.push_str("</tr>\n");
        for (i, (step, file)) in run.steps.iter().zip(&run.files).enumerate() {
            html.push_str(&format!("<tr><td>{step}</td><td>{}</td>", escape(file)));
            for (_, values) in &columns {
                html.push_str(&format!("<td class=\"v\">{}</td>", cell(values[i])));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
    }
    html.push_str("<p class=\"src\">Every metric of every checkpoint is in metrics.csv.</p>\n</body>\n</html>\n");
    let index = dir.join("index.html");
    write(&index, html.as_bytes(), &mut files)?;
    write(&dir.join(MARKER), t.signature.as_bytes(), &mut files)?;
    Ok(Written {
        index,
        files,
        skipped: Vec::new(),
    })
}
