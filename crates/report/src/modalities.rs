//! The report of paired modalities (`embgeom report --modalities A B`): a page with the
//! cross-modal readings of every two modalities (from the cross-modal catalogue), the shift
//! experiment, the gap matrix and four figures per pair (both modalities in one PCA with their
//! centroids and the gap vector, as Liang et al.'s Figure 1; the largest per-dimension gap
//! components; matched against unmatched pair similarities; the R@k curves both ways), the
//! document `modalities.json`, and each modality's own full report in `NAME/`.

use crate::error::ReportError;
use crate::figures::{axes, densities, fail, font, series_labels, Drawn};
use crate::html::{escape, CSS};
use crate::page::{check_folder, figure_block, figures_folder, write, Plot, MARKER};
use crate::report::{write_run_report, ReportOptions, Written};
use crate::style::{OKABE_BLUE, VERMILLION};
use embgeom_geometry::cross_catalogue::CROSS_CATALOGUE;
use embgeom_geometry::modalities::CrossModal;
use embgeom_geometry::{
    AnalysisOptions, CrossFigureData, Progress, RetrievalSummary, RECALL_CURVE_K,
};
use embgeom_pipeline::{
    modalities_document, run_modalities, CrossOptions, ModalitiesRun, ModalitySpec,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The figures of one pair of modalities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairFigure {
    /// Both modalities' rows in one 2-D PCA, their centroids and the gap vector.
    Joint,
    /// The largest per-dimension components of the gap vector.
    Components,
    /// Cosines of matched pairs against unmatched pairs.
    Similarities,
    /// R@k for k = 1..100, both directions.
    RecallCurves,
}

impl PairFigure {
    const ALL: [PairFigure; 4] = [
        PairFigure::Joint,
        PairFigure::Components,
        PairFigure::Similarities,
        PairFigure::RecallCurves,
    ];

    fn stem(self) -> &'static str {
        match self {
            PairFigure::Joint => "joint-pca",
            PairFigure::Components => "gap-components",
            PairFigure::Similarities => "pair-similarities",
            PairFigure::RecallCurves => "recall-curves",
        }
    }

    fn title(self, c: &CrossModal) -> String {
        let (a, b) = (&c.names.0, &c.names.1);
        match self {
            PairFigure::Joint => format!("{a} and {b} in one PCA, with the gap vector"),
            PairFigure::Components => format!("The largest components of the gap {a} - {b}"),
            PairFigure::Similarities => format!("Matched and unmatched {a}-{b} similarities"),
            PairFigure::RecallCurves => format!("R@k, {a} to {b} and {b} to {a}"),
        }
    }

    fn caption(self, c: &CrossModal, data: &CrossFigureData) -> String {
        let (a, b) = (&c.names.0, &c.names.1);
        match self {
            PairFigure::Joint => format!(
                "A seeded subset of each modality ({} of {} {a} rows, {} of {} {b} rows) projected on the top two principal axes of both subsets together ({:.0}% and {:.0}% of their variance); the crosses are the centroids of all rows and the arrow is the gap vector m_{b} - m_{a} (Liang et al. 2022, Figure 1). Two separate clouds are the modality gap; narrow clouds are the cone effect. The gap is {:.4} in the full space.",
                data.points.0.nrows(), c.rows.0, data.points.1.nrows(), c.rows.1,
                100.0 * data.explained[0], 100.0 * data.explained[1], c.gap.distance
            ),
            PairFigure::Components => format!(
                "|m_{a}[d] - m_{b}[d]| for the dimensions d where the centroids differ most, with each one's share of ||m_{a} - m_{b}||^2 above its bar: a gap carried by a few dimensions is what Schrodi et al. (2025) find in CLIP."
            ),
            PairFigure::Similarities => format!(
                "Densities of the cosine of matched pairs ({} pairs) and of as many seeded unmatched pairs (a {a} row with another item's {b} row). Retrieval works where the matched cosines sit to the right of the unmatched ones; a gap shifts both to the left alike.",
                data.matched.len()
            ),
            PairFigure::RecallCurves => format!(
                "The share of queries whose best positive ranks within k, for k = 1 to {RECALL_CURVE_K}, with the {a} rows as queries of the {b} rows and the other way; ranks are exact (ties go to the positive). Chance is k / {} for {a} queries.",
                c.rows.1
            ),
        }
    }

    fn size(self) -> (u32, u32) {
        match self {
            PairFigure::Joint => (760, 620),
            _ => (900, 440),
        }
    }
}

/// One figure of pair `index`.
struct PairPlot<'a> {
    figure: PairFigure,
    index: usize,
    cross: &'a CrossModal,
    data: &'a CrossFigureData,
}

impl Plot for PairPlot<'_> {
    fn id(&self) -> String {
        format!("p{}-{}", self.index + 1, self.figure.stem())
    }
    fn size(&self) -> (u32, u32) {
        self.figure.size()
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(fail)?;
        match self.figure {
            PairFigure::Joint => joint(self.cross, self.data, root),
            PairFigure::Components => components(self.cross, root),
            PairFigure::Similarities => similarities(self.cross, self.data, root),
            PairFigure::RecallCurves => recall_curves(self.cross, root),
        }?;
        root.present().map_err(fail)
    }
}

/// A range that holds `values`, padded by 5%.
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    match lo.is_finite() && hi > lo {
        true => (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)),
        false => (-1.0, 1.0),
    }
}

fn joint<DB: DrawingBackend>(
    c: &CrossModal,
    d: &CrossFigureData,
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let (pa, pb) = (&d.points.0, &d.points.1);
    let all = || pa.rows().into_iter().chain(pb.rows());
    let (ca, cb) = d.centroids;
    let (x_lo, x_hi) = padded(all().map(|r| r[0]).chain([ca[0], cb[0]]));
    let (y_lo, y_hi) = padded(all().map(|r| r[1]).chain([ca[1], cb[1]]));
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(fail)?;
    axes(
        &mut chart,
        format!("PC1 ({:.0}%)", 100.0 * d.explained[0]),
        format!("PC2 ({:.0}%)", 100.0 * d.explained[1]),
        14,
    )?;
    for (points, colour, name) in [(pa, OKABE_BLUE, &c.names.0), (pb, VERMILLION, &c.names.1)] {
        chart
            .draw_series(
                points
                    .rows()
                    .into_iter()
                    .map(|r| Circle::new((r[0], r[1]), 2, colour.mix(0.35).filled())),
            )
            .map_err(fail)?
            .label(format!("{name} ({} shown)", points.nrows()))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(ca[0], ca[1]), (cb[0], cb[1])],
            BLACK.stroke_width(3),
        ))
        .map_err(fail)?
        .label(format!(
            "gap vector (||m_A - m_B|| = {:.3})",
            c.gap.distance
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.stroke_width(3)));
    for (centre, colour) in [(ca, OKABE_BLUE), (cb, VERMILLION)] {
        chart
            .draw_series([Cross::new(
                (centre[0], centre[1]),
                9,
                colour.stroke_width(4),
            )])
            .map_err(fail)?;
    }
    // The arrow head at B's centroid.
    let (dx, dy) = (cb[0] - ca[0], cb[1] - ca[1]);
    let length = (dx * dx + dy * dy).sqrt();
    if length > 0.0 {
        let (ux, uy) = (dx / length, dy / length);
        let size = 0.04 * (x_hi - x_lo).max(y_hi - y_lo);
        let tip = (cb[0], cb[1]);
        let back = (cb[0] - size * ux, cb[1] - size * uy);
        let wing = |s: f64| (back.0 - s * 0.5 * size * uy, back.1 + s * 0.5 * size * ux);
        chart
            .draw_series([Polygon::new(
                vec![tip, wing(1.0), wing(-1.0)],
                BLACK.filled(),
            )])
            .map_err(fail)?;
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperRight, 13)
}

fn components<DB: DrawingBackend>(c: &CrossModal, root: &DrawingArea<DB, Shift>) -> Drawn {
    let parts = &c.gap.components;
    let top = parts
        .iter()
        .map(|p| p.difference.abs())
        .fold(0.0, f64::max)
        .max(1e-12)
        * 1.2;
    let labels: Vec<String> = parts.iter().map(|p| format!("d{}", p.dimension)).collect();
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (0..parts.len().saturating_sub(1)).into_segmented(),
            0.0..top,
        )
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(parts.len().max(1))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(k) => labels.get(*k).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("dimension (largest |difference| first)")
        .y_desc(format!("|m_{}[d] - m_{}[d]|", c.names.0, c.names.1))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(OKABE_BLUE.filled())
                .margin(12)
                .data(
                    parts
                        .iter()
                        .enumerate()
                        .map(|(k, p)| (k, p.difference.abs())),
                ),
        )
        .map_err(fail)?;
    chart
        .draw_series(parts.iter().enumerate().map(|(k, p)| {
            Text::new(
                format!("{:.0}%", 100.0 * p.share),
                (SegmentValue::CenterOf(k), p.difference.abs() + 0.06 * top),
                font(12).pos(Pos::new(HPos::Center, VPos::Center)),
            )
        }))
        .map_err(fail)?;
    Ok(())
}

fn similarities<DB: DrawingBackend>(
    c: &CrossModal,
    d: &CrossFigureData,
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let (lo, hi) = padded(d.matched.iter().chain(&d.unmatched).copied());
    let (lo, hi) = (lo.max(-1.0), hi.min(1.0).max(lo.max(-1.0) + 1e-6));
    let series = [
        ("matched pairs", d.matched.as_slice(), VERMILLION),
        (
            "unmatched pairs",
            d.unmatched.as_slice(),
            RGBColor(0x55, 0x55, 0x55),
        ),
    ];
    let x_desc = format!("cosine of a {} row and a {} row", c.names.0, c.names.1);
    densities(root, &series, (lo, hi), 60, &x_desc)
}

fn recall_curves<DB: DrawingBackend>(c: &CrossModal, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (a, b) = (&c.names.0, &c.names.1);
    let directions = [
        (format!("{a} to {b}"), &c.retrieval.a_to_b, OKABE_BLUE),
        (format!("{b} to {a}"), &c.retrieval.b_to_a, VERMILLION),
    ];
    recall_panel(root, None, &directions)
}

/// R@k against k (1 to [`RECALL_CURVE_K`], log axis) of each named summary, in its colour,
/// under `caption` when given; the legend gives each one's R@1.
pub(crate) fn recall_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: Option<&str>,
    series: &[(String, &RetrievalSummary, RGBColor)],
) -> Drawn {
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64);
    if let Some(caption) = caption {
        builder.caption(caption, font(15));
    }
    let mut chart = builder
        .build_cartesian_2d((1.0..RECALL_CURVE_K as f64).log_scale(), 0.0..1.02)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("k")
        .y_desc("R@k")
        .x_label_formatter(&|k| format!("{k:.0}"))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    for (name, summary, colour) in series {
        let colour = *colour;
        let points: Vec<(f64, f64)> = summary
            .recall_curve
            .iter()
            .enumerate()
            .map(|(k, &r)| ((k + 1) as f64, r))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(fail)?
            .label(format!("{name} (R@1 {:.3})", summary.recall_at[0]))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperLeft, 13)
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "&ndash;".into(), |v| format!("{v:.4}"))
}

/// The readings of one pair: every catalogued value with its ideal, direction and paper.
fn pair_table(c: &CrossModal) -> String {
    let names = (c.names.0.as_str(), c.names.1.as_str());
    let mut h = String::from("<table>\n<tr><th>reading</th><th>value</th><th>ideal</th><th>better</th><th>definition</th><th>paper</th></tr>\n");
    for m in CROSS_CATALOGUE {
        for &about in m.about {
            h.push_str(&format!(
                "<tr><td><code>{}</code><br>{}</td><td class=\"v\">{}</td><td class=\"v\">{}</td><td>{}</td><td>{}<br><span class=\"src\">{}</span></td><td><a href=\"{}\">{}</a></td></tr>\n",
                escape(&m.column(about, names)),
                escape(m.name),
                cell(m.value(c, about)),
                cell(m.ideal()),
                m.direction.as_str(),
                escape(&m.definition(c)),
                escape(m.reading),
                m.paper.link,
                escape(m.paper.short),
            ));
        }
    }
    h.push_str("</table>\n");
    if !c.shift.is_empty() {
        let (a, b) = (&c.names.0, &c.names.1);
        h.push_str(&format!("<h3>Shift experiment (Liang et al. 2022)</h3>\n<p class=\"src\">Each modality's rows moved by half the closed fraction of the gap vector toward the other's centroid and renormalised, then measured again.</p>\n<table>\n<tr><th>gap closed</th><th>gap after</th><th>R@1 {a} to {b}</th><th>R@1 {b} to {a}</th><th>InfoNCE</th><th>SigLIP loss</th></tr>\n", a = escape(a), b = escape(b)));
        let mut rows = vec![(0.0, c.gap.distance, &c.retrieval)];
        rows.extend(
            c.shift
                .iter()
                .map(|s| (s.fraction, s.distance, &s.retrieval)),
        );
        for (fraction, distance, r) in rows {
            h.push_str(&format!(
                "<tr><td class=\"v\">{:.0}%</td><td class=\"v\">{distance:.4}</td><td class=\"v\">{:.4}</td><td class=\"v\">{:.4}</td><td class=\"v\">{}</td><td class=\"v\">{}</td></tr>\n",
                100.0 * fraction,
                r.a_to_b.recall_at[0],
                r.b_to_a.recall_at[0],
                cell(r.info_nce),
                cell(r.siglip)
            ));
        }
        h.push_str("</table>\n");
    }
    h
}

/// Write the modalities report of `run` (analysed with `figures`) into `output.dir`:
/// `index.html`, the figures, `modalities.json`, and each modality's report in `NAME/`;
/// `signature` identifies the inputs and options (a folder of another is not replaced without
/// `output.force`).
pub fn write_modalities_report(
    run: &ModalitiesRun,
    options: &AnalysisOptions,
    output: &ReportOptions,
    signature: &str,
) -> Result<Written, ReportError> {
    let dir = &output.dir;
    check_folder(dir, signature, output.force)?;
    let figures_dir = figures_folder(dir)?;
    let mut files = Vec::new();
    let title = format!("embgeom report: {}", output.name);
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{0}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{0}</h1>\n<p class=\"src\">Paired modalities, written by embgeom {1}. The measurements are in <a href=\"modalities.json\">modalities.json</a>; each modality's own report (every metric and figure of <code>report</code>) is linked below.</p>\n<h2>Modalities</h2>\n<table>\n<tr><th>name</th><th>source</th><th>rows N</th><th>dimension D</th><th>own report</th></tr>\n",
        escape(&title),
        env!("CARGO_PKG_VERSION")
    );
    for (name, r) in &run.runs {
        let sub = ReportOptions {
            dir: dir.join(name),
            name: name.clone(),
            force: output.force,
        };
        let written = write_run_report(r, options, &sub)?;
        files.extend(written.files);
        html.push_str(&format!(
            "<tr><td>{0}</td><td>{1}</td><td class=\"v\">{2}</td><td class=\"v\">{3}</td><td><a href=\"{0}/index.html\">{0}/</a></td></tr>\n",
            escape(name),
            escape(r.summary.embeddings.as_deref().unwrap_or("arrays")),
            r.analysis.n,
            r.analysis.dim
        ));
    }
    html.push_str("</table>\n<h2>Gap matrix</h2>\n<p class=\"src\">||m_i - m_j||, m the centroid of a modality's unit rows.</p>\n<table>\n<tr><th></th>");
    for (name, _) in &run.runs {
        html.push_str(&format!("<th>{}</th>", escape(name)));
    }
    html.push_str("</tr>\n");
    for ((name, _), row) in run.runs.iter().zip(run.gap_matrix.rows()) {
        html.push_str(&format!("<tr><th>{}</th>", escape(name)));
        for v in row {
            match v {
                Some(v) => html.push_str(&format!("<td class=\"v\">{v:.4}</td>")),
                None => html.push_str("<td class=\"v\">-</td>"),
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    for note in &run.notes {
        html.push_str(&format!("<p class=\"warn\">{}</p>\n", escape(note)));
    }
    for (index, c) in run.cross.iter().enumerate() {
        html.push_str(&format!(
            "<h2>{} and {}</h2>\n",
            escape(&c.names.0),
            escape(&c.names.1)
        ));
        html.push_str(&pair_table(c));
        match run.figures.get(index).and_then(Option::as_ref) {
            Some(data) => {
                for figure in PairFigure::ALL {
                    let plot = PairPlot {
                        figure,
                        index,
                        cross: c,
                        data,
                    };
                    html.push_str(&figure_block(
                        &plot,
                        &figures_dir,
                        &figure.title(c),
                        &figure.caption(c, data),
                        &mut files,
                    )?);
                }
            }
            None => html.push_str(
                "<p class=\"src\">No figures: the two modalities differ in dimension.</p>\n",
            ),
        }
    }
    html.push_str("</body>\n</html>\n");
    let document =
        serde_json::to_string_pretty(&modalities_document(run)).expect("JSON values serialise");
    write(
        &dir.join("modalities.json"),
        document.as_bytes(),
        &mut files,
    )?;
    let index = dir.join("index.html");
    write(&index, html.as_bytes(), &mut files)?;
    write(&dir.join(MARKER), signature.as_bytes(), &mut files)?;
    Ok(Written {
        index,
        files,
        skipped: Vec::new(),
    })
}

/// Analyse the modalities of `specs` together (every metric of `analyze --modalities`, with
/// the numbers behind the figures) and write their report into `output.dir`, as
/// [`write_modalities_report`] does.
///
/// ```
/// use embgeom_geometry::{AnalysisOptions, NoProgress};
/// use embgeom_pipeline::{CrossOptions, InputSpec, ModalitySpec};
/// use embgeom_report::{report_modalities, ReportOptions};
///
/// # let run = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fashion-clip/ckpt_epoch_0012.safetensors");
/// # let dir = tempfile::tempdir().unwrap();
/// let modality = |key: &str| ModalitySpec {
///     name: key.into(),
///     spec: InputSpec { key: Some(key.into()), ..InputSpec::file(run) },
/// };
/// let cross = CrossOptions {
///     pairs: None, parameters: Default::default(), shifts: vec![1.0], figures: true, sample_rows: 10_000,
///     queries: None,
/// };
/// let output = ReportOptions { dir: dir.path().join("clip"), name: "clip".into(), force: false };
/// let specs = [modality("top"), modality("bottom")];
/// let written = report_modalities(&specs, &AnalysisOptions::default(), &cross, &output, &NoProgress)?;
/// assert!(written.files.iter().any(|f| f.ends_with("figures/p1-joint-pca.svg")));
/// # Ok::<(), embgeom_report::ReportError>(())
/// ```
pub fn report_modalities(
    specs: &[ModalitySpec],
    options: &AnalysisOptions,
    cross: &CrossOptions,
    output: &ReportOptions,
    progress: &dyn Progress,
) -> Result<Written, ReportError> {
    let cross = CrossOptions {
        figures: true,
        ..cross.clone()
    };
    let signature = format!(
        "modalities {:?} {:?} {:?} {:?}",
        specs
            .iter()
            .map(|m| (&m.name, &m.spec.embeddings, &m.spec.key))
            .collect::<Vec<_>>(),
        cross.pairs,
        cross.parameters,
        AnalysisOptions {
            memory_limit: None,
            ..options.clone()
        }
    );
    // Refuse an occupied folder before the analysis, not after it.
    check_folder(&output.dir, &signature, output.force)?;
    let run = run_modalities(specs, options, &cross, progress)?;
    write_modalities_report(&run, options, output, &signature)
}
