//! Collapse-diagnostic figures and a self-contained HTML report of an embgeom analysis:
//! `index.html` (inline SVG and CSS, no network), every figure as SVG and PNG in `figures/`,
//! the analysis JSON and a CSV of the scalar metrics.

mod compare;
mod error;
mod extremes;
mod figures;
mod html;
mod modalities;
mod page;
mod report;
mod similarity;
mod style;
mod track;

pub use compare::{compare, CompareInput, CompareOptions, Compared, COMPARE_SCHEMA};
pub use error::ReportError;
pub use figures::{Context, Figure};
pub use html::analysis_html;
pub use modalities::{report_modalities, write_modalities_report};
pub use page::{check_folder, claim_folder};
pub use report::{
    metrics_csv, render_figures, report, write_figure, write_report, write_run_report, Figures,
    RenderedFigure, Report, ReportOptions, Written,
};
pub use track::{write_trajectory, Cosines, RunTrajectory, Trajectory};
