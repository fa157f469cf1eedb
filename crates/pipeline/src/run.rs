//! Loaded inputs -> validated, typed, normalised matrices -> [`Analysis`] and the extras the
//! report and `track` draw.

use crate::error::{PipelineError, Result};
use crate::inputs::{load_inputs, InputSpec, InputSummary, Inputs, Values};
use embgeom_geometry::timings::{search_work, StageTime, Timings, Work};
use embgeom_geometry::{
    analyze_timed, check_finite, class_mean_cosines, figure_data, largest_magnitude,
    normalize_rows, per_point, Analysis, AnalysisInput, AnalysisOptions, Classes, Classifier,
    FigureData, GeometryError, KnnSplit, MemoryDriver, PerPoint, Progress, Real,
};
use embgeom_io::{LabelValues, Labels};
use ndarray::{Array1, Array2, CowArray, Ix2};
use rayon::prelude::*;
use std::path::PathBuf;

/// What to compute besides the analysis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extras {
    /// The numbers behind the report's figures.
    pub figures: bool,
    /// Cosines between centred class means (for tracking).
    pub mean_cosines: bool,
    /// Per-point diagnostics of at most this many seeded rows.
    pub per_point_rows: Option<usize>,
}

/// What one run of the pipeline produced.
#[derive(Debug)]
pub struct Run {
    /// Every metric.
    pub analysis: Analysis,
    /// Where the rows came from.
    pub summary: InputSummary,
    /// The numbers behind the report's figures, when asked for.
    pub figures: Option<FigureData>,
    /// Cosines between centred class means, when asked for and labelled.
    pub mean_cosines: Option<Array2<f64>>,
    /// Per-point diagnostics, when asked for.
    pub per_point: Option<PerPoint>,
    /// Class labels, as loaded.
    pub labels: Option<Labels>,
    /// Wall time and work of every stage (loading, normalising, each metric).
    pub timings: Vec<StageTime>,
}

/// Use `threads` worker threads for the rest of the process (results do not depend on it).
pub fn set_threads(threads: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| PipelineError::Threads(e.to_string()))
}

/// Load, validate and analyse: the whole `analyze` pipeline, plus the `extras`.
///
/// ```
/// use embgeom_geometry::{AnalysisOptions, NoProgress};
/// use embgeom_pipeline::{analysis_document, run_analysis, Extras, InputSpec};
///
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.npz");
/// let spec = InputSpec::file(path); // embeddings and labels in one .npz
/// let run = run_analysis(&spec, &AnalysisOptions::default(), Extras::default(), &NoProgress)?;
/// println!("uniformity {:?}", run.analysis.uniformity.as_ref().map(|u| u.value));
/// let json = analysis_document(&run.analysis, &run.summary);
/// assert_eq!(json["schema"], "embgeom.analysis/1");
/// # Ok::<(), embgeom_pipeline::PipelineError>(())
/// ```
pub fn run_analysis(
    spec: &InputSpec,
    options: &AnalysisOptions,
    extras: Extras,
    progress: &dyn Progress,
) -> Result<Run> {
    options.validate()?;
    let started = std::time::Instant::now();
    let inputs = Inputs::from_loaded(load_inputs(spec)?, spec.embeddings.as_deref())?;
    let loaded = started.elapsed().as_secs_f64();
    // Reading and decoding: the files' bytes in, the decoded matrices out.
    let file_bytes: u64 = spec
        .embeddings
        .iter()
        .map(PathBuf::as_path)
        .chain(spec.side_files())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    // Memory-mapped rows are used in place: nothing decoded.
    let decoded: usize = inputs
        .embeddings
        .iter()
        .chain(&inputs.views)
        .filter(|r| !matches!(r.values, Values::Mapped(_)))
        .map(|r| r.values.dim().0 * r.values.dim().1 * r.values.element_size())
        .sum();
    let mut run = analyze_inputs(inputs, spec.normalize, options, extras, progress)?;
    run.timings.insert(
        0,
        StageTime {
            stage: "load".into(),
            seconds: loaded,
            work: Work::Bytes(file_bytes as f64 + decoded as f64),
        },
    );
    Ok(run)
}

/// Check and analyse inputs from files or from a caller's arrays (which are read in place:
/// with `normalize = false` and f32 or f64 rows in standard layout, nothing is copied).
pub fn analyze_inputs(
    inputs: Inputs,
    normalize: bool,
    options: &AnalysisOptions,
    extras: Extras,
    progress: &dyn Progress,
) -> Result<Run> {
    options.validate()?;
    inputs.check()?;
    let summary = InputSummary::of(&inputs, normalize);
    let classes = inputs.labels.as_ref().map(classes_of).transpose()?;
    let subclasses = inputs.subclasses.as_ref().map(classes_of).transpose()?;
    let split = inputs.split.as_ref().map(knn_split).transpose()?;
    let classifier = inputs
        .classifier
        .as_ref()
        .map(|w| {
            let weights = w.values.to_f64();
            w.values.check_unchanged().map(|()| Classifier {
                weights,
                bias: inputs.bias.as_ref().map(|(_, b)| Array1::from(b.clone())),
            })
        })
        .transpose()?;
    let has_embeddings = inputs.embeddings.is_some();
    let (sources, matrices): (Vec<String>, Vec<Values>) = inputs
        .embeddings
        .into_iter()
        .chain(inputs.views)
        .map(|e| (e.source, e.values))
        .unzip();
    let typed = Typed {
        sources: &sources,
        labels_source: inputs.labels.as_ref().map(|l| l.source.as_str()),
        has_embeddings,
        normalize,
        classes: classes.as_ref(),
        classifier: classifier.as_ref(),
        split: split.as_ref(),
        subclasses: subclasses.as_ref(),
    };
    let timings = Timings::default();
    // Borrowed: the matrices (owned, mapped or the caller's) stay where they are.
    let single: Option<Vec<CowArray<f32, Ix2>>> = matrices
        .iter()
        .map(|m| m.f32_view().map(CowArray::from))
        .collect();
    let analysed = match single {
        Some(m) => typed.analyze(m, options, extras, progress, &timings),
        None => {
            let m = matrices
                .iter()
                .map(|v| match v {
                    Values::F64(a) => CowArray::from(a.view()),
                    other => CowArray::from(other.to_f64()),
                })
                .collect();
            typed.analyze(m, options, extras, progress, &timings)
        }
    };
    // A mapped file that changed under the run: its error, not what was computed (or what
    // failed) on the changed bytes.
    for matrix in &matrices {
        matrix.check_unchanged()?;
    }
    let (analysis, figures, mean_cosines, per_point) = analysed?;
    Ok(Run {
        analysis,
        summary,
        figures,
        mean_cosines,
        per_point,
        labels: inputs.labels,
        timings: timings.stages(),
    })
}

/// Classes from labels; errors name the label source.
fn classes_of(labels: &Labels) -> Result<Classes> {
    let (indices, names) = labels.class_indices();
    Classes::new(indices, names).map_err(PipelineError::of(labels.source.clone()))
}

/// Train and test rows from split values `train` / `test` (any case).
fn knn_split(split: &Labels) -> Result<KnnSplit> {
    let fail = |message: String| Err(PipelineError::Inputs(message));
    let LabelValues::Text(values) = &split.values else {
        return fail(format!(
            "{}: split values must be the strings train and test",
            split.source
        ));
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (row, value) in values.iter().enumerate() {
        match value.to_ascii_lowercase().as_str() {
            "train" => train.push(row),
            "test" => test.push(row),
            other => {
                return fail(format!(
                    "{}: row {row} is {other:?}; expected train or test",
                    split.source
                ))
            }
        }
    }
    if train.is_empty() || test.is_empty() {
        return fail(format!(
            "{}: the split needs both train and test rows",
            split.source
        ));
    }
    Ok(KnnSplit::TrainTest { train, test })
}

/// The rows to analyse and, when they were normalised, the raw rows.
pub(crate) type Prepared<'a, F> = (CowArray<'a, F, Ix2>, Option<CowArray<'a, F, Ix2>>);

/// L2-normalise (or only check) one input; errors name its file. Returns the rows to use
/// and, when they were normalised, the raw rows. Rows not in standard (C) layout are copied
/// into it once.
pub(crate) fn prepare<'a, F: Real>(
    matrix: CowArray<'a, F, Ix2>,
    source: &str,
    normalize: bool,
) -> Result<Prepared<'a, F>> {
    if matrix.nrows() == 0 || matrix.ncols() == 0 {
        return Err(PipelineError::Inputs(format!(
            "{source}: empty array of shape {:?}",
            matrix.dim()
        )));
    }
    let matrix = match matrix.is_standard_layout() {
        true => matrix,
        false => CowArray::from(matrix.as_standard_layout().into_owned()),
    };
    let prepared = if normalize {
        normalize_rows(matrix.view()).map(|unit| (CowArray::from(unit), Some(matrix)))
    } else {
        check_finite(matrix.view()).map(|()| (matrix, None))
    };
    prepared.map_err(PipelineError::of(source))
}

/// A power of two to divide the raw rows by when their largest entry is beyond 2^+-200 (their
/// squares and scatters would leave f64's range), else `None`.
pub(crate) fn extreme_scale<F: Real>(rows: &CowArray<F, Ix2>) -> Option<f64> {
    // Nonzero f32 magnitudes lie in [2^-149, 2^128): never extreme, no pass needed.
    if F::SINGLE {
        return None;
    }
    let largest = match rows.as_slice() {
        Some(values) => values
            .par_chunks(1 << 16)
            .map(largest_magnitude)
            .reduce(|| 0.0, f64::max),
        None => rows.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs())),
    };
    let safe = 2f64.powi(-200)..=2f64.powi(200);
    (largest > 0.0 && largest.is_finite() && !safe.contains(&largest))
        .then(|| f64::from_bits(largest.to_bits() & 0x7ff0_0000_0000_0000).max(f64::from_bits(1)))
}

/// The analysis of one set of typed matrices and the extras asked for.
type Computed = (
    Analysis,
    Option<FigureData>,
    Option<Array2<f64>>,
    Option<PerPoint>,
);

/// The validated non-matrix inputs; the matrices (embeddings first when present, then
/// views) come in typed.
struct Typed<'a> {
    sources: &'a [String],
    labels_source: Option<&'a str>,
    has_embeddings: bool,
    normalize: bool,
    classes: Option<&'a Classes>,
    classifier: Option<&'a Classifier>,
    split: Option<&'a KnnSplit>,
    subclasses: Option<&'a Classes>,
}

impl Typed<'_> {
    fn analyze<F: Real>(
        &self,
        matrices: Vec<CowArray<F, Ix2>>,
        options: &AnalysisOptions,
        extras: Extras,
        progress: &dyn Progress,
        timings: &Timings,
    ) -> Result<Computed> {
        // Each element read and checked; normalising, a scaled copy written to new memory in
        // the same pass (each row's norm and its scaled values are taken from the cache).
        let elements: usize = matrices.iter().map(|m| m.len()).sum();
        let bytes = (elements * std::mem::size_of::<F>()) as f64;
        let work = match self.normalize {
            true => Work::NewCopy {
                read: bytes,
                written: bytes,
            },
            false => Work::Bytes(bytes),
        };
        let prepared = timings.time("validate and normalise", work, || {
            matrices
                .into_iter()
                .zip(self.sources)
                .map(|(m, source)| prepare(m, source, self.normalize))
                .collect::<Result<Vec<_>>>()
        })?;
        let all: Vec<&CowArray<F, Ix2>> = prepared.iter().map(|(rows, _)| rows).collect();
        // Rows of extreme scale (entries beyond 2^+-200) would overflow or underflow the f64
        // scatters of the class statistics: those run on the rows divided by a power of two
        // (exact), and the scale-dependent outputs are multiplied back.
        let raw = prepared.first().and_then(|(_, raw)| raw.as_ref());
        let labelled_raw = raw.unwrap_or(all[0]);
        let scale = extreme_scale(labelled_raw);
        let scaled_raw = scale.map(|s| labelled_raw.mapv(|v| F::from_f64(v.as_f64() / s)));
        let scaled_classifier = scale.and_then(|s| {
            self.classifier.map(|c| Classifier {
                weights: c.weights.clone(),
                bias: c.bias.as_ref().map(|b| b.mapv(|v| v / s)),
            })
        });
        let (embeddings, views) = match self.has_embeddings {
            true => (Some(all[0].view()), &all[1..]),
            false => (None, &all[..]),
        };
        let input = AnalysisInput {
            embeddings,
            views: views.iter().map(|v| v.view()).collect(),
            raw: scaled_raw
                .as_ref()
                .map(|r| r.view())
                .or(raw.map(|r| r.view())),
            classes: self.classes,
            classifier: scaled_classifier.as_ref().or(self.classifier),
            knn_split: self.split,
            subclasses: self.subclasses,
        };
        let mut analysis = analyze_timed(&input, options, progress, timings).map_err(|e| {
            match (&e, self.classifier, self.labels_source) {
                (GeometryError::ShapeMismatch { .. }, Some(_), _) => {
                    PipelineError::of("classifier")(e)
                }
                // Refused for the class count: the labels drive it.
                (
                    GeometryError::MemoryLimit {
                        driver: MemoryDriver::Classes,
                        ..
                    },
                    _,
                    Some(labels),
                ) => PipelineError::of(labels)(e),
                _ => PipelineError::of(self.sources[0].as_str())(e),
            }
        })?;
        let stats_rows = input.raw.unwrap_or(all[0].view());
        let mut figures = extras
            .figures
            .then(|| {
                let first_views = match input.views.as_slice() {
                    [a, b, ..] => Some((*a, *b)),
                    _ => None,
                };
                figure_data(
                    all[0].view(),
                    stats_rows,
                    first_views,
                    self.classes,
                    options.t,
                    options.seed,
                )
            })
            .transpose()
            .map_err(PipelineError::of(format!(
                "{}: figure data",
                self.sources[0]
            )))?;
        // The per-point table's own kNN among its rows (by the screen of the rows' type).
        let per_point_table = extras
            .per_point_rows
            .map(|max| {
                let m = max.min(all[0].nrows());
                let work = search_work::<F>(m, m, all[0].ncols());
                timings.time("per-point diagnostics", work, || {
                    per_point(all[0].view(), self.classes, max, &options.knn)
                })
            })
            .transpose()
            .map_err(PipelineError::of(format!(
                "{}: per-point diagnostics",
                self.sources[0]
            )))?;
        let cosines = extras
            .mean_cosines
            .then_some(self.classes)
            .flatten()
            .map(|c| class_mean_cosines(stats_rows, c));
        if let Some(s) = scale {
            for p in &mut analysis.per_class {
                p.within_variance *= s * s;
            }
            if analysis
                .per_class
                .iter()
                .any(|p| !p.within_variance.is_finite() || p.within_variance == 0.0)
            {
                analysis.warnings.push(format!(
                    "within-class variances in the original units ({s:e} squared) are beyond f64's range: they are reported as null (infinite) or 0"
                ));
            }
            if let Some(data) = figures.as_mut() {
                for d in data.distances_to_means.iter_mut().flatten() {
                    *d *= s;
                }
            }
            analysis.warnings.push(format!(
                "the rows are of extreme scale (largest entry near {s:e}): the class statistics ran on the rows divided by {s:e} (exact); within-class variances and distances are in the original units"
            ));
        }
        Ok((analysis, figures, cosines, per_point_table))
    }
}
