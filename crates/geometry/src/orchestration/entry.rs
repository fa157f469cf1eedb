//! The public entry points of an analysis: every metric ([`crate::orchestration::analysis`]),
//! then the check through the catalogue that no value is NaN or infinite.

use crate::error::Result;
use crate::kernels::timings::Timings;
use crate::metrics::real::Real;
use crate::orchestration::analysis::{analyze_unchecked, Analysis, AnalysisInput, AnalysisOptions};
use crate::orchestration::catalogue::check_finite_results;
use crate::progress::Progress;

/// Run every metric that applies to `input`.
///
/// Uniformity is taken on the views when they are given (the per-view average, as Wang &
/// Isola's reference code reports it), else on the embeddings. Label metrics use the
/// embeddings when given, else the first view.
pub fn analyze<F: Real>(
    input: &AnalysisInput<F>,
    options: &AnalysisOptions,
    progress: &dyn Progress,
) -> Result<Analysis> {
    analyze_timed(input, options, progress, &Timings::default())
}

/// [`analyze`], recording the wall time and the work of every stage in `timings`.
pub fn analyze_timed<F: Real>(
    input: &AnalysisInput<F>,
    options: &AnalysisOptions,
    progress: &dyn Progress,
    timings: &Timings,
) -> Result<Analysis> {
    let analysis = analyze_unchecked(input, options, progress, timings)?;
    check_finite_results(&analysis)?;
    Ok(analysis)
}
