//! The eleven diagnostic figures, drawn with plotters once as SVG (inlined in the page and saved)
//! and once as PNG. Each has a caption that says what it shows and how to read it.

use crate::style::*;
use embgeom_geometry::{Analysis, FigureData, HARD_NEGATIVE_BINS};
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::f64::consts::PI;
use std::fmt::Debug;

/// Classes with their own colour in scatter plots and legends.
const LEGEND_CLASSES: usize = 10;
/// Classes shown in the heatmaps and box plots.
const MATRIX_CLASSES: usize = 40;
/// Concentration of the von Mises-Fisher kernel of the circle figure.
const VMF_KAPPA: f64 = 20.0;

pub(crate) type Drawn = Result<(), String>;

pub(crate) fn fail<E: Debug>(error: E) -> String {
    format!("{error:?}")
}

/// What the figures read.
pub struct Context<'a> {
    pub analysis: &'a Analysis,
    pub data: &'a FigureData,
    /// Class names (empty without labels).
    pub names: Vec<String>,
    /// Rows per class.
    pub counts: Vec<usize>,
}

impl<'a> Context<'a> {
    /// The context of `analysis` and the numbers behind its figures: the class names and row
    /// counts come from its per-class table.
    pub fn new(analysis: &'a Analysis, data: &'a FigureData) -> Context<'a> {
        let (names, counts) = analysis
            .per_class
            .iter()
            .map(|p| (p.name.clone(), p.count))
            .unzip();
        Context {
            analysis,
            data,
            names,
            counts,
        }
    }

    fn labelled(&self) -> bool {
        !self.names.is_empty()
    }

    /// Classes of the heatmaps and box plots: the largest `MATRIX_CLASSES`.
    fn matrix_classes(&self) -> Vec<usize> {
        shown_classes(&self.counts, MATRIX_CLASSES)
    }

    fn legend_classes(&self) -> Vec<usize> {
        shown_classes(&self.counts, LEGEND_CLASSES)
    }

    fn subset_note(&self, shown: usize) -> String {
        if shown < self.names.len() {
            format!(
                " The {shown} largest of the {} classes are shown.",
                self.names.len()
            )
        } else {
            String::new()
        }
    }
}

/// The figures, in page order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Plane,
    Distances,
    Circle,
    MeanCosines,
    MeanAngles,
    Spectrum,
    WithinClass,
    Cdnv,
    Scatter,
    IntrinsicDimension,
    Hubness,
    HardNegatives,
}

impl Figure {
    /// Every figure, in page order.
    pub const ALL: [Figure; 12] = [
        Figure::Plane,
        Figure::Distances,
        Figure::Circle,
        Figure::MeanCosines,
        Figure::MeanAngles,
        Figure::Spectrum,
        Figure::WithinClass,
        Figure::Cdnv,
        Figure::Scatter,
        Figure::IntrinsicDimension,
        Figure::Hubness,
        Figure::HardNegatives,
    ];

    /// The figure whose [`Figure::id`] is `id`.
    pub fn from_id(id: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.id() == id)
    }

    /// File stem of the figure.
    pub fn id(self) -> &'static str {
        match self {
            Figure::Plane => "01-alignment-uniformity",
            Figure::Distances => "02-distance-histograms",
            Figure::Circle => "03-circle",
            Figure::MeanCosines => "04-class-mean-cosines",
            Figure::MeanAngles => "05-class-mean-angles",
            Figure::Spectrum => "06-spectrum",
            Figure::WithinClass => "07-within-class-distances",
            Figure::Cdnv => "08-cdnv",
            Figure::Scatter => "09-pca-scatter",
            Figure::IntrinsicDimension => "10-intrinsic-dimension",
            Figure::Hubness => "11-k-occurrence",
            Figure::HardNegatives => "12-hard-negatives",
        }
    }

    /// Title of the figure.
    pub fn title(self) -> &'static str {
        match self {
            Figure::Plane => "Alignment and uniformity",
            Figure::Distances => "Pair distance histograms",
            Figure::Circle => "Directions on the circle (Wang & Isola)",
            Figure::MeanCosines => "Cosines between class means",
            Figure::MeanAngles => "Angles between class means",
            Figure::Spectrum => "Eigenvalue spectrum",
            Figure::WithinClass => "Distance to the class mean",
            Figure::Cdnv => "Class-distance normalised variance",
            Figure::Scatter => "2-D PCA of the normalised embeddings",
            Figure::IntrinsicDimension => "Intrinsic dimension: the TwoNN fit",
            Figure::Hubness => "Hubness: the k-occurrence histogram",
            Figure::HardNegatives => "Hard negatives: the anchors' nearest other items",
        }
    }

    /// Size in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Figure::Circle | Figure::Spectrum => (1000, 440),
            Figure::MeanCosines | Figure::Cdnv => (760, 640),
            Figure::WithinClass => (1000, 460),
            _ => (800, 520),
        }
    }

    /// Whether the figure can be drawn for this input, and if not, why.
    pub fn applies(self, ctx: &Context) -> Result<(), &'static str> {
        let needs_labels = matches!(
            self,
            Figure::MeanCosines | Figure::WithinClass | Figure::Cdnv | Figure::MeanAngles
        );
        if needs_labels && !ctx.labelled() {
            return Err("needs class labels");
        }
        match self {
            Figure::MeanAngles if ctx.analysis.simplex_angles.is_none() => {
                Err("needs 2 or more classes with non-zero mean directions")
            }
            Figure::Cdnv
                if ctx
                    .analysis
                    .collapse
                    .as_ref()
                    .and_then(|c| c.cdnv.as_ref())
                    .is_none() =>
            {
                Err("needs 2 or more classes with distinct means")
            }
            Figure::MeanCosines if ctx.names.len() < 2 => Err("needs 2 or more classes"),
            Figure::IntrinsicDimension
                if ctx
                    .analysis
                    .intrinsic_dimension
                    .as_ref()
                    .and_then(|i| i.twonn)
                    .is_none() =>
            {
                Err("needs the kNN part, unit rows and 4 or more distinct neighbour ratios")
            }
            Figure::Hubness if ctx.analysis.hubness.is_none() => {
                Err("needs the kNN part, unit rows and 2 or more rows")
            }
            Figure::HardNegatives if ctx.analysis.hard_negatives.is_none() => {
                Err("needs the kNN part, unit rows and 2 or more rows")
            }
            _ => Ok(()),
        }
    }

    /// What the figure shows and how to read it.
    pub fn caption(self, ctx: &Context) -> String {
        let a = ctx.analysis;
        let d = &ctx.data;
        match self {
            Figure::Plane => format!(
                "This embedding as a point: uniformity on the x-axis (log of the mean Gaussian potential, t = {t}; lower is more uniform) and {y} on the y-axis (lower is better aligned). The dashed lines mark the uniformity of a uniform distribution on the sphere of the same dimension D = {dim} ({sphere:.3}, analytic) and the floor -2tN/(N-1) = {floor:.3} that only a regular simplex reaches. Good contrastive embeddings sit low and to the left.",
                t = a.uniformity.as_ref().map_or(2.0, |u| u.t),
                y = if a.alignment.is_some() { "the alignment of the positive views" } else if a.class_alignment.is_some() { "the label-positive alignment (same-class pairs)" } else { "no alignment (no views or labels; the point sits at 0)" },
                dim = a.dim,
                sphere = d.sphere_uniformity,
                floor = d.simplex_floor,
            ),
            Figure::Distances => format!(
                "Histograms (density) of the distances between normalised rows, on [0, 2]: all pairs against {}. Positive or same-class pairs far to the left of all pairs mean a well-aligned embedding; all pairs piled near sqrt(2) = 1.41 is what a uniform high-dimensional sphere looks like. {}",
                match (d.distances.positive.is_empty(), d.distances.same_class.is_empty()) {
                    (false, false) => "positive pairs (the two views of an item) and same-class pairs",
                    (false, true) => "positive pairs (the two views of an item)",
                    (true, false) => "same-class pairs",
                    (true, true) => "nothing else (no views or labels)",
                },
                if d.distances.exact { "Every pair is counted.".to_string() } else { format!("All-pair and same-class histograms use {} uniformly sampled pairs each.", d.distances.all.len()) },
            ),
            Figure::Circle => format!(
                "Wang & Isola's picture: each row is projected on the first two principal components of the normalised rows ({:.1}% and {:.1}% of the variance) and then onto the unit circle. Left: the points on the circle; right: a von Mises-Fisher kernel density (kappa = {VMF_KAPPA}) of their angle, per class. Uniform embeddings spread around the whole circle; collapsed classes form narrow peaks.{}",
                100.0 * d.projection.explained[0],
                100.0 * d.projection.explained[1],
                shown_note(d.projection.rows.len(), d.projection.total),
            ),
            Figure::MeanCosines => format!(
                "Cosine similarity between the centred class means mu_c - mu_G (raw features). For a regular simplex every off-diagonal cell equals -1/(C-1) = {:.3}: the colour scale is centred at 0 (white), blue is negative, red positive; uniform off-diagonal colour means equiangular means.{}",
                -1.0 / (ctx.names.len() as f64 - 1.0),
                ctx.subset_note(ctx.matrix_classes().len()),
            ),
            Figure::MeanAngles => {
                let s = a.simplex_angles.as_ref();
                format!(
                    "Histogram of the angles between the class means of the normalised rows (Graf et al. 2021). Under class collapse to a regular simplex every angle equals arccos(-1/(C-1)) = {:.2} degrees (dashed line); the mean absolute deviation here is {:.2} degrees.",
                    s.map_or(0.0, |s| s.ideal_degrees),
                    s.map_or(0.0, |s| s.mean_abs_deviation_degrees),
                )
            }
            Figure::Spectrum => format!(
                "Left: eigenvalues of the covariance of the normalised rows by rank, on a log axis (Jing et al. 2022); a sudden drop marks dimensional collapse. Right: cumulative explained variance. Effective rank {:.1} and RankMe {:.1} of D = {}.",
                a.spectrum.effective_rank,
                a.spectrum.rankme,
                a.dim,
            ),
            Figure::WithinClass => format!(
                "Distance of each row to its class mean (raw features), one box per class: the box spans the quartiles, the line is the median, whiskers the range. Class collapse (NC1) shrinks every box towards 0.{}",
                ctx.subset_note(ctx.matrix_classes().len()),
            ),
            Figure::Cdnv => format!(
                "Class-distance normalised variance V(c, c') = (Var_c + Var_c') / (2 ||mu_c - mu_c'||^2) (Galanti et al. 2022), colour on a log scale. Small values (light yellow) mean the two classes are tight relative to their separation; the diagonal is blank; the mean over pairs is {:.3}.{}",
                a.collapse.as_ref().and_then(|c| c.cdnv.as_ref()).map_or(0.0, |c| c.mean),
                ctx.subset_note(ctx.matrix_classes().len()),
            ),
            Figure::Scatter => format!(
                "The normalised rows on their first two principal components ({:.1}% and {:.1}% of the variance), coloured by class (the {} largest classes; others grey). Metrics always use all rows.{}",
                100.0 * d.projection.explained[0],
                100.0 * d.projection.explained[1],
                ctx.legend_classes().len().min(ctx.names.len()),
                shown_note(d.projection.rows.len(), d.projection.total),
            ),
            Figure::IntrinsicDimension => {
                let i = a.intrinsic_dimension.as_ref();
                format!(
                    "TwoNN (Facco et al. 2017): for each measured row the ratio mu = r2/r1 of its second to its first neighbour distance (Euclidean on the normalised rows); the sorted log mu against -log(1 - i/M) lies on a line through the origin whose slope is the intrinsic dimension, fitted over the smallest 90% of the ratios (points: up to 200 evenly spaced ranks of the {} rows used). Slope {:.2} (solid); the censored maximum likelihood {:.2} (dashed); Levina-Bickel MLE with k = {}: {:.2}.{}",
                    i.map_or(0, |i| i.points - i.duplicates),
                    i.and_then(|i| i.twonn).unwrap_or(f64::NAN),
                    i.and_then(|i| i.twonn_ml).unwrap_or(f64::NAN),
                    i.map_or(0, |i| i.mle_k),
                    i.and_then(|i| i.mle).unwrap_or(f64::NAN),
                    match i.map_or(0, |i| i.duplicates) {
                        0 => String::new(),
                        k => format!(" {k} rows with an exact duplicate are left out."),
                    },
                )
            }
            Figure::Hubness => {
                let h = a.hubness.as_ref();
                format!(
                    "How often each row is among the k = {} cosine nearest neighbours of the others (its k-occurrence N_k; the mean is k), as the number of rows per value on a log axis (Radovanovic et al. 2010). A long right tail means hubs, rows that are everyone's neighbour, and a tall bar at 0 antihubs, rows that are nobody's; the dashed line marks hubs' threshold 2k. Skewness {:.2}, Robin Hood index {:.3}; {}.",
                    h.map_or(0, |h| h.k),
                    h.and_then(|h| h.skewness).unwrap_or(0.0),
                    h.map_or(0.0, |h| h.robinhood),
                    match h {
                        Some(h) if h.method == "subsample" => format!("a seeded subsample of {} of {} rows among themselves", h.rows, a.n),
                        _ => "every row a query".to_string(),
                    },
                )
            }
            Figure::HardNegatives => {
                let h = a.hard_negatives.as_ref();
                let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
                format!(
                    "For each of the {} anchors (the kNN queries), the cosine to its most similar other row (its hardest negative, as every other item is a negative in an unsupervised contrastive batch; Robinson et al. 2021) and to its k-th most similar (k = {}), as histograms over the anchors{}. Hard negatives near 1 mean crowded neighbourhoods or duplicates; with labels, {} of the k hardest negatives share the anchor's label (false negatives; the hardest one in {}).{}",
                    h.map_or(0, |h| h.anchors),
                    h.map_or(0, |h| h.k),
                    if h.is_some_and(|h| h.positive.is_some()) { ", with the cosine to the anchor's positive (its other view)" } else { "" },
                    pct(h.and_then(|h| h.false_negative_top_k)),
                    pct(h.and_then(|h| h.false_negative_hardest)),
                    match h.and_then(|h| h.violations.zip(h.margin)) {
                        Some((v, m)) => format!(" The mean margin s+ - s-_(1) is {m:.3}; {:.1}% of the anchors have a negative closer than their positive.", 100.0 * v),
                        None => String::new(),
                    },
                )
            }
        }
    }

    /// Draw the figure on `root`.
    pub fn draw<DB: DrawingBackend>(self, ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(fail)?;
        match self {
            Figure::Plane => plane(ctx, root),
            Figure::Distances => distances(ctx, root),
            Figure::Circle => circle(ctx, root),
            Figure::MeanCosines => heatmap(ctx, root, HeatKind::Cosine),
            Figure::MeanAngles => angles(ctx, root),
            Figure::Spectrum => spectrum(ctx, root),
            Figure::WithinClass => within_class(ctx, root),
            Figure::Cdnv => heatmap(ctx, root, HeatKind::Cdnv),
            Figure::Scatter => scatter(ctx, root),
            Figure::IntrinsicDimension => intrinsic_dimension(ctx, root),
            Figure::Hubness => k_occurrence(ctx, root),
            Figure::HardNegatives => hard_negatives(ctx, root),
        }?;
        root.present().map_err(fail)
    }
}

fn shown_note(shown: usize, total: usize) -> String {
    if shown < total {
        format!(" {shown} of {total} shown, stratified by class.")
    } else {
        String::new()
    }
}

/// Draw the legend box of the labelled series.
pub(crate) fn series_labels<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    size: u32,
) -> Drawn {
    chart
        .configure_series_labels()
        .label_font(font(size))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(fail)
}

/// Draw the grid, tick labels and axis titles.
pub(crate) fn axes<'a, DB, X, Y, XV, YV>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: impl Into<String>,
    y_desc: impl Into<String>,
    size: u32,
) -> Drawn
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = XV> + ValueFormatter<XV>,
    Y: Ranged<ValueType = YV> + ValueFormatter<YV>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(font(size))
        .axis_desc_style(font(size + 1))
        .draw()
        .map_err(fail)
}

pub(crate) fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

fn plane<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let a = ctx.analysis;
    let d = ctx.data;
    let u = a.uniformity.as_ref().map_or(0.0, |u| u.value);
    let (y, y_name) = match (&a.alignment, &a.class_alignment) {
        (Some(al), _) => (al.value, format!("alignment (alpha = {})", al.alpha)),
        (None, Some(al)) => (
            al.value,
            format!("label-positive alignment (alpha = {})", al.alpha),
        ),
        _ => (0.0, "no alignment".to_string()),
    };
    let x_lo = d.simplex_floor.min(u).min(d.sphere_uniformity) - 0.3;
    let y_hi = (y * 1.25).max(2.2);
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_lo..0.2, 0.0..y_hi)
        .map_err(fail)?;
    axes(
        &mut chart,
        "uniformity L_unif (lower = more uniform)",
        y_name,
        14,
    )?;
    for (x, colour, label) in [
        (
            d.sphere_uniformity,
            OKABE_BLUE,
            format!("uniform sphere, D = {} ({:.3})", a.dim, d.sphere_uniformity),
        ),
        (
            d.simplex_floor,
            OKABE_GREEN,
            format!("simplex floor ({:.3})", d.simplex_floor),
        ),
    ] {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, 0.0), (x, y_hi)],
                8,
                6,
                colour.stroke_width(2),
            ))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .draw_series(std::iter::once(Circle::new((u, y), 7, VERMILLION.filled())))
        .map_err(fail)?
        .label(format!("this embedding ({u:.3}, {y:.3})"))
        .legend(|(x, y)| Circle::new((x + 10, y), 5, VERMILLION.filled()));
    series_labels(&mut chart, SeriesLabelPosition::UpperLeft, 14)
}

/// Densities of `values` in `bins` equal bins over [lo, hi], as a step outline.
fn density_steps(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let total = values.len().max(1) as f64;
    let mut steps = vec![(lo, 0.0)];
    for (b, &c) in counts.iter().enumerate() {
        let h = c as f64 / (total * width);
        steps.push((lo + b as f64 * width, h));
        steps.push((lo + (b + 1) as f64 * width, h));
    }
    steps.push((hi, 0.0));
    steps
}

fn distances<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let d = &ctx.data.distances;
    let series: Vec<(&str, &[f64], RGBColor)> = [
        ("all pairs", d.all.as_slice(), RGBColor(0x55, 0x55, 0x55)),
        ("same-class pairs", d.same_class.as_slice(), OKABE_BLUE),
        ("positive pairs (views)", d.positive.as_slice(), VERMILLION),
    ]
    .into_iter()
    .filter(|(_, v, _)| !v.is_empty())
    .collect();
    densities(
        root,
        &series,
        (0.0, 2.0),
        50,
        "distance ||x_i - x_j|| between normalised rows",
    )
}

/// Overlaid density histograms of named samples on `[lo, hi]` in `bins` bins, each with its
/// count in the legend.
pub(crate) fn densities<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[(&str, &[f64], RGBColor)],
    (lo, hi): (f64, f64),
    bins: usize,
    x_desc: &str,
) -> Drawn {
    let curves: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, v, _)| density_steps(v, lo, hi, bins))
        .collect();
    let top = curves
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(fail)?;
    axes(&mut chart, x_desc, "density", 14)?;
    for ((name, values, colour), curve) in series.iter().zip(curves) {
        let colour = *colour;
        chart
            .draw_series(
                AreaSeries::new(curve, 0.0, colour.mix(0.18)).border_style(colour.stroke_width(2)),
            )
            .map_err(fail)?
            .label(format!("{name} (n = {})", values.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], colour.filled()));
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperLeft, 14)
}

/// Angle of each projected row and the class of each (class 0 without labels).
fn projected_angles(ctx: &Context) -> Vec<(f64, usize)> {
    let p = &ctx.data.projection.points;
    (0..p.nrows())
        .map(|i| {
            let class = ctx.data.projection_labels.get(i).map_or(0, |&c| c as usize);
            (p[[i, 1]].atan2(p[[i, 0]]), class)
        })
        .collect()
}

/// The classes drawn in colour and the legend entries (name, colour).
fn legend(ctx: &Context) -> (Vec<usize>, Vec<(String, RGBColor)>) {
    if !ctx.labelled() {
        return (vec![0], vec![("all rows".into(), CLASS_COLOURS[0])]);
    }
    let shown = ctx.legend_classes();
    let mut entries: Vec<(String, RGBColor)> = shown
        .iter()
        .map(|&c| (format!("class {}", ctx.names[c]), class_colour(c, &shown)))
        .collect();
    if shown.len() < ctx.names.len() {
        entries.push((
            format!("{} other classes", ctx.names.len() - shown.len()),
            OTHER,
        ));
    }
    (shown, entries)
}

fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    entries: &[(String, RGBColor)],
    position: SeriesLabelPosition,
) -> Drawn {
    for (name, colour) in entries {
        let colour = *colour;
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(fail)?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, colour.filled()));
    }
    series_labels(chart, position, 13)
}

fn circle<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (left, right) = root.split_horizontally(440);
    let angles = projected_angles(ctx);
    let (shown, entries) = legend(ctx);
    let colour_of = |c: usize| {
        if ctx.labelled() {
            class_colour(c, &shown)
        } else {
            CLASS_COLOURS[0]
        }
    };
    let mut chart = ChartBuilder::on(&left)
        .margin(20)
        .build_cartesian_2d(-1.25..1.25, -1.25..1.25)
        .map_err(fail)?;
    chart
        .draw_series(LineSeries::new(
            (0..=360).map(|k| {
                let a = k as f64 * PI / 180.0;
                (a.cos(), a.sin())
            }),
            RGBColor(0x99, 0x99, 0x99).stroke_width(1),
        ))
        .map_err(fail)?;
    // Grey classes first so coloured ones stay visible.
    let mut ordered = angles.clone();
    ordered.sort_by_key(|&(_, c)| shown.contains(&c));
    chart
        .draw_series(
            ordered
                .iter()
                .map(|&(a, c)| Circle::new((a.cos(), a.sin()), 3, colour_of(c).mix(0.6).filled())),
        )
        .map_err(fail)?;
    // Right: vMF kernel density of the angle per shown class.
    let grid: Vec<f64> = (0..=240)
        .map(|k| -PI + 2.0 * PI * k as f64 / 240.0)
        .collect();
    let density = |members: &[f64]| -> Vec<(f64, f64)> {
        let norm = 2.0 * PI * bessel_i0(VMF_KAPPA);
        grid.iter()
            .map(|&g| {
                let s: f64 = members
                    .iter()
                    .map(|&a| (VMF_KAPPA * ((g - a).cos() - 1.0)).exp())
                    .sum();
                (
                    g,
                    s * VMF_KAPPA.exp() / (norm * members.len().max(1) as f64),
                )
            })
            .collect()
    };
    let curves: Vec<(RGBColor, Vec<(f64, f64)>)> = shown
        .iter()
        .map(|&c| {
            let members: Vec<f64> = angles
                .iter()
                .filter(|&&(_, k)| k == c)
                .map(|&(a, _)| a)
                .collect();
            (colour_of(c), density(&members))
        })
        .collect();
    let top = curves
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let mut chart = ChartBuilder::on(&right)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-PI..PI, 0.0..top)
        .map_err(fail)?;
    axes(&mut chart, "angle (radians)", "density", 13)?;
    for (colour, curve) in curves {
        chart
            .draw_series(LineSeries::new(curve, colour.stroke_width(2)))
            .map_err(fail)?;
    }
    draw_legend(&mut chart, &entries, SeriesLabelPosition::UpperRight)
}

/// Modified Bessel function I0 by its power series (converges for all x).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    for k in 1..500 {
        term *= (x / 2.0).powi(2) / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum HeatKind {
    Cosine,
    Cdnv,
}

fn heatmap<DB: DrawingBackend>(
    ctx: &Context,
    root: &DrawingArea<DB, Shift>,
    kind: HeatKind,
) -> Drawn {
    let empty = ndarray::Array2::<f64>::zeros((0, 0));
    let matrix = match kind {
        HeatKind::Cosine => ctx.data.mean_cosines.as_ref(),
        HeatKind::Cdnv => ctx
            .analysis
            .collapse
            .as_ref()
            .and_then(|c| c.cdnv.as_ref())
            .map(|c| &c.matrix),
    };
    class_matrix(
        root,
        matrix.unwrap_or(&empty),
        &ctx.names,
        &ctx.matrix_classes(),
        kind,
    )
}

/// A k x k matrix's chart: one segment per row and column.
pub(crate) type MatrixChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<SegmentedCoord<RangedCoordusize>, SegmentedCoord<RangedCoordusize>>,
>;

/// The chart of a k x k matrix (k = `names.len()`) from `builder` (its margins set), row 0 at
/// the top: every `every`-th name at its cells' centres in labels of `size`, and `desc` on
/// both axes.
pub(crate) fn matrix_grid<'a, DB: DrawingBackend>(
    builder: &mut ChartBuilder<'a, '_, DB>,
    names: &[String],
    every: usize,
    desc: Option<&str>,
    size: u32,
) -> Result<MatrixChart<'a, DB>, String> {
    let k = names.len();
    let mut chart = builder
        .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
        .map_err(fail)?;
    // Row 0 is drawn at the top: y position p shows row k - 1 - p.
    let tick = |v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(p) if *p < k && p % every == 0 => {
            names[if flip { k - 1 - p } else { *p }].clone()
        }
        _ => String::new(),
    };
    let (x_ticks, y_ticks) = (
        |v: &SegmentValue<usize>| tick(v, false),
        |v: &SegmentValue<usize>| tick(v, true),
    );
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_labels(k + 1)
        .y_labels(k + 1)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .label_style(font(size))
        .axis_desc_style(font(size + 2));
    if let Some(desc) = desc {
        mesh.x_desc(desc).y_desc(desc);
    }
    mesh.draw().map_err(fail)?;
    Ok(chart)
}

/// The cell of row `i`, column `j` of a k x k [`matrix_grid`], filled with `shade`.
pub(crate) fn matrix_cell(
    i: usize,
    j: usize,
    k: usize,
    shade: RGBColor,
) -> Rectangle<(SegmentValue<usize>, SegmentValue<usize>)> {
    let (x, y) = (j, k - 1 - i);
    Rectangle::new(
        [
            (SegmentValue::Exact(x), SegmentValue::Exact(y)),
            (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
        ],
        shade.filled(),
    )
}

/// Draw a class x class matrix (rows and columns `classes`, named by `names`) with its colour
/// bar: cosines on a diverging scale with -1/(C-1) marked, or CDNV on a log scale.
pub(crate) fn class_matrix<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    matrix: &ndarray::Array2<f64>,
    names: &[String],
    classes: &[usize],
    kind: HeatKind,
) -> Drawn {
    let k = classes.len();
    let (main, bar) = root.split_horizontally(640);
    let value = |i: usize, j: usize| -> f64 { matrix[[classes[i], classes[j]]] };
    // CDNV is shown as log10 over the off-diagonal range.
    let off: Vec<f64> = (0..k)
        .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| value(i, j))
        .filter(|v| *v > 0.0)
        .map(f64::log10)
        .collect();
    let (lo, hi) = match kind {
        HeatKind::Cosine => (-1.0, 1.0),
        HeatKind::Cdnv => {
            let lo = off.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = off.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() && hi > lo {
                (lo, hi)
            } else {
                (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0)
            }
        }
    };
    let colour = |v: f64| match kind {
        HeatKind::Cosine => diverging(v),
        HeatKind::Cdnv => sequential((v - lo) / (hi - lo)),
    };
    let names: Vec<String> = classes.iter().map(|&c| names[c].clone()).collect();
    let mut builder = ChartBuilder::on(&main);
    builder
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(72);
    let mut chart = matrix_grid(
        &mut builder,
        &names,
        k.div_ceil(20).max(1),
        Some("class"),
        12,
    )?;
    chart
        .draw_series(
            (0..k)
                .flat_map(|i| (0..k).map(move |j| (i, j)))
                .map(|(i, j)| {
                    let v = value(i, j);
                    let shade = match kind {
                        HeatKind::Cdnv if i == j => WHITE,
                        HeatKind::Cdnv => colour(if v > 0.0 { v.log10() } else { lo }),
                        HeatKind::Cosine => colour(v),
                    };
                    matrix_cell(i, j, k, shade)
                }),
        )
        .map_err(fail)?;
    // Colour bar.
    let mut scale = ChartBuilder::on(&bar)
        .margin_top(30)
        .margin_bottom(70)
        .margin_right(50)
        .y_label_area_size(0)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(fail)?;
    scale
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(match kind {
            HeatKind::Cosine => "cosine",
            HeatKind::Cdnv => "log10 CDNV",
        })
        .label_style(font(12))
        .axis_desc_style(font(13))
        .draw()
        .map_err(fail)?;
    let steps = 100;
    scale
        .draw_series((0..steps).map(|s| {
            let a = lo + (hi - lo) * s as f64 / steps as f64;
            let b = lo + (hi - lo) * (s + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, a), (1.0, b)], colour((a + b) / 2.0).filled())
        }))
        .map_err(fail)?;
    if kind == HeatKind::Cosine && matrix.nrows() >= 2 {
        let ideal = -1.0 / (matrix.nrows() as f64 - 1.0);
        scale
            .draw_series(LineSeries::new(
                vec![(0.0, ideal), (1.0, ideal)],
                BLACK.stroke_width(3),
            ))
            .map_err(fail)?;
    }
    Ok(())
}

fn angles<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let s = ctx
        .analysis
        .simplex_angles
        .as_ref()
        .ok_or("no simplex angles")?;
    let steps = density_steps(&s.angles_degrees, 0.0, 180.0, 60);
    let top = steps.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..180.0, 0.0..top)
        .map_err(fail)?;
    axes(
        &mut chart,
        "angle between class means (degrees)",
        "density",
        14,
    )?;
    chart
        .draw_series(
            AreaSeries::new(steps, 0.0, OKABE_BLUE.mix(0.3))
                .border_style(OKABE_BLUE.stroke_width(2)),
        )
        .map_err(fail)?
        .label(format!("{} class pairs", s.angles_degrees.len()))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], OKABE_BLUE.filled()));
    chart
        .draw_series(DashedLineSeries::new(
            vec![(s.ideal_degrees, 0.0), (s.ideal_degrees, top)],
            8,
            6,
            VERMILLION.stroke_width(2),
        ))
        .map_err(fail)?
        .label(format!(
            "simplex: arccos(-1/(C-1)) = {:.2}",
            s.ideal_degrees
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], VERMILLION.stroke_width(2)));
    series_labels(&mut chart, SeriesLabelPosition::UpperLeft, 14)
}

fn spectrum<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let sp = &ctx.analysis.spectrum;
    let (left, right) = root.split_horizontally(500);
    let positive: Vec<(usize, f64)> = sp
        .eigenvalues
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0.0)
        .map(|(k, &v)| (k + 1, v))
        .collect();
    let d = sp.eigenvalues.len().max(1);
    let (lo, hi) = positive
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if positive.is_empty() {
        (1e-3, 1.0)
    } else {
        (lo / 2.0, hi * 2.0)
    };
    let mut chart = ChartBuilder::on(&left)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(1..d + 1, (lo..hi).log_scale())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("rank k")
        .y_desc("eigenvalue")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(LineSeries::new(
            positive.clone(),
            OKABE_BLUE.stroke_width(2),
        ))
        .map_err(fail)?
        .label(format!(
            "effective rank {:.1}, RankMe {:.1}",
            sp.effective_rank, sp.rankme
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], OKABE_BLUE.stroke_width(2)));
    chart
        .draw_series(
            positive
                .iter()
                .map(|&p| Circle::new(p, 2, OKABE_BLUE.filled())),
        )
        .map_err(fail)?;
    series_labels(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
    let total: f64 = sp.eigenvalues.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let cumulative: Vec<(usize, f64)> = sp
        .eigenvalues
        .iter()
        .scan(0.0, |acc, v| {
            *acc += v / total;
            Some(*acc)
        })
        .enumerate()
        .map(|(k, c)| (k + 1, c))
        .collect();
    let mut chart = ChartBuilder::on(&right)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(1..d + 1, 0.0..1.02)
        .map_err(fail)?;
    axes(&mut chart, "rank k", "cumulative explained variance", 13)?;
    chart
        .draw_series(LineSeries::new(cumulative, VERMILLION.stroke_width(2)))
        .map_err(fail)?;
    Ok(())
}

fn within_class<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let classes: Vec<usize> = ctx
        .matrix_classes()
        .into_iter()
        .filter(|&c| !ctx.data.distances_to_means[c].is_empty())
        .collect();
    let quartiles: Vec<Quartiles> = classes
        .iter()
        .map(|&c| Quartiles::new(&ctx.data.distances_to_means[c]))
        .collect();
    let hi = quartiles
        .iter()
        .map(|q| q.values()[4])
        .fold(0.0f32, f32::max)
        .max(1e-9)
        * 1.1;
    let k = classes.len();
    let names: Vec<String> = classes.iter().map(|&c| ctx.names[c].clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d((0..k.max(1) - 1).into_segmented(), 0f32..hi)
        .map_err(fail)?;
    let label_every = k.div_ceil(30).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(k.min(40))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i)
                if i % label_every == 0 && *i < k =>
            {
                names[*i].clone()
            }
            _ => String::new(),
        })
        .x_desc("class")
        .y_desc("||h_i - mu_c||")
        .label_style(font(12))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    let shown = ctx.legend_classes();
    chart
        .draw_series(
            classes
                .iter()
                .zip(&quartiles)
                .enumerate()
                .map(|(i, (&c, q))| {
                    Boxplot::new_vertical(SegmentValue::CenterOf(i), q)
                        .width(((560 / k.max(1)) as u32).clamp(3, 30))
                        .style(class_colour(c, &shown).stroke_width(2))
                }),
        )
        .map_err(fail)?;
    Ok(())
}

fn scatter<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let p = &ctx.data.projection.points;
    let (shown, entries) = legend(ctx);
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for row in p.rows() {
        x_lo = x_lo.min(row[0]);
        x_hi = x_hi.max(row[0]);
        y_lo = y_lo.min(row[1]);
        y_hi = y_hi.max(row[1]);
    }
    let pad = |lo: f64, hi: f64| {
        let m = ((hi - lo) * 0.05).max(1e-6);
        (lo - m, hi + m)
    };
    let ((x_lo, x_hi), (y_lo, y_hi)) = (pad(x_lo, x_hi), pad(y_lo, y_hi));
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(fail)?;
    axes(&mut chart, "PC 1", "PC 2", 13)?;
    let mut order: Vec<usize> = (0..p.nrows()).collect();
    let class_of = |i: usize| ctx.data.projection_labels.get(i).map_or(0, |&c| c as usize);
    order.sort_by_key(|&i| shown.contains(&class_of(i)));
    chart
        .draw_series(order.iter().map(|&i| {
            let colour = if ctx.labelled() {
                class_colour(class_of(i), &shown)
            } else {
                CLASS_COLOURS[0]
            };
            Circle::new((p[[i, 0]], p[[i, 1]]), 3, colour.mix(0.7).filled())
        }))
        .map_err(fail)?;
    draw_legend(&mut chart, &entries, SeriesLabelPosition::UpperRight)
}

fn intrinsic_dimension<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let i = ctx
        .analysis
        .intrinsic_dimension
        .as_ref()
        .ok_or("no intrinsic dimension")?;
    let slope = i.twonn.ok_or("no TwoNN slope")?;
    let x_top = i.fit.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9) * 1.05;
    let y_top = i
        .fit
        .iter()
        .map(|p| p.1)
        .fold(slope * x_top, f64::max)
        .max(1e-9)
        * 1.05;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_top, 0.0..y_top)
        .map_err(fail)?;
    axes(&mut chart, "log mu (mu = r2 / r1)", "-log(1 - F(mu))", 14)?;
    chart
        .draw_series(
            i.fit
                .iter()
                .map(|&p| Circle::new(p, 3, OKABE_BLUE.mix(0.6).filled())),
        )
        .map_err(fail)?
        .label(format!("{} measured rows", i.points - i.duplicates))
        .legend(|(x, y)| Circle::new((x + 9, y), 3, OKABE_BLUE.filled()));
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (x_top, slope * x_top)],
            VERMILLION.stroke_width(2),
        ))
        .map_err(fail)?
        .label(format!("TwoNN slope {slope:.2}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], VERMILLION.stroke_width(2)));
    if let Some(ml) = i.twonn_ml {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (x_top, ml * x_top)],
                8,
                6,
                BLACK.stroke_width(1),
            ))
            .map_err(fail)?
            .label(format!("maximum likelihood {ml:.2}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperLeft, 14)
}

fn k_occurrence<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let h = ctx.analysis.hubness.as_ref().ok_or("no hubness")?;
    let top_value = h.histogram.last().map_or(1, |p| p.0).max(2 * h.k as u64) + 1;
    let top_rows = h.histogram.iter().map(|p| p.1).max().unwrap_or(1) as f64 * 2.0;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..top_value as f64, (0.5..top_rows).log_scale())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("k-occurrence N_k")
        .y_desc("rows")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(h.histogram.iter().map(|&(value, rows)| {
            let x = value as f64;
            Rectangle::new(
                [(x - 0.4, 0.5), (x + 0.4, rows as f64)],
                OKABE_BLUE.filled(),
            )
        }))
        .map_err(fail)?
        .label(format!("{} rows, k = {}", h.rows, h.k))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], OKABE_BLUE.filled()));
    let hub = 2.0 * h.k as f64;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(hub, 0.5), (hub, top_rows)],
            8,
            6,
            VERMILLION.stroke_width(2),
        ))
        .map_err(fail)?
        .label("hubs: N_k >= 2k")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], VERMILLION.stroke_width(2)));
    series_labels(&mut chart, SeriesLabelPosition::UpperRight, 14)
}

fn hard_negatives<DB: DrawingBackend>(ctx: &Context, root: &DrawingArea<DB, Shift>) -> Drawn {
    let h = ctx
        .analysis
        .hard_negatives
        .as_ref()
        .ok_or("no hard negatives")?;
    let bins = HARD_NEGATIVE_BINS;
    let width = 2.0 / bins as f64;
    let series: Vec<(&str, &Vec<u64>, RGBColor)> = [
        ("hardest negative s-_(1)", &h.histograms[0], VERMILLION),
        ("k-th hardest s-_(k)", &h.histograms[1], OKABE_BLUE),
        ("positive s+", &h.histograms[2], BLACK),
    ]
    .into_iter()
    .filter(|(_, counts, _)| !counts.is_empty())
    .collect();
    let top = series
        .iter()
        .flat_map(|(_, counts, _)| counts.iter())
        .copied()
        .max()
        .unwrap_or(1) as f64
        * 1.15;
    // From a little below the lowest occupied bin to 1.
    let lowest = series
        .iter()
        .filter_map(|(_, counts, _)| counts.iter().position(|&c| c > 0))
        .min()
        .unwrap_or(0);
    let left = (-1.0 + lowest as f64 * width - 0.1).max(-1.0);
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(left..1.0, 0.0..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("cosine to the anchor")
        .y_desc("anchors")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(fail)?;
    for (label, counts, colour) in series {
        let points: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .flat_map(|(b, &c)| {
                let x = -1.0 + b as f64 * width;
                [(x, c as f64), (x + width, c as f64)]
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    series_labels(&mut chart, SeriesLabelPosition::UpperLeft, 14)
}
