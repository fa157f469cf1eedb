//! Geometry metrics of learned embeddings, with the conventions of `docs/src/reference/metrics.md`:
//! Wang & Isola's alignment and uniformity (exact, tiled and parallel, or sampled),
//! label-positive alignment and per-class uniformity; neural collapse (NC1-NC4, CDNV), Graf
//! et al.'s simplex angles and the ETF distance; the covariance spectrum, effective rank,
//! RankMe and alpha-ReQ; kNN accuracy; subclass structure; linear CKA between checkpoints.
//!
//! All sums are accumulated in f64 over a fixed partition of the work, so results do not
//! depend on the number of threads. No file I/O, no printing.

// Links OpenBLAS as the BLAS behind ndarray's GEMM.
extern crate blas_src;

mod alignment;
mod amx;
mod analysis;
pub mod catalogue;
mod cka;
mod classes;
mod collapse;
mod error;
mod figure_data;
mod gram_exp;
mod knn;
mod per_class;
mod progress;
mod real;
mod rows;
mod sampling;
mod scatter;
mod serde_rows;
pub mod sharded;
mod simplex;
mod spectrum;
pub mod state;
mod stats;
mod tiles;
pub mod timings;
mod uniformity;

pub use alignment::{alignment, alignment_part, class_alignment, Alignment, AlignmentPart};
pub use analysis::{
    analyze, analyze_timed, default_memory_limit, memory_estimate, Analysis, AnalysisInput,
    AnalysisOptions, MemoryEstimate, DEFAULT_MAX_EXACT, DEFAULT_SAMPLED_PAIRS, MAX_SAMPLED_PAIRS,
};
pub use cka::{linear_cka, CkaState, CKA_STATE_VERSION};
pub use classes::{ClassSums, Classes};
pub use collapse::{cdnv, collapse, collapse_from_stats, nc1, Cdnv, Classifier, Collapse};
pub use error::{GeometryError, MemoryDriver, Result};
pub use figure_data::{
    class_mean_cosines, distances_to_class_means, figure_data, pair_distances, pca_projection,
    stratified_rows, uniform_sphere_uniformity, FigureData, PairDistances, Projection,
    FIGURE_MAX_PAIRS, FIGURE_MAX_PER_CLASS, FIGURE_MAX_POINTS,
};
pub use gram_exp::{kernel, supported_kernels, Kernel};
pub use knn::{
    knn_accuracy, knn_screen, KnnAccuracy, KnnOptions, KnnScreen, KnnSplit, Neighbour, TopK,
    DEFAULT_K, DEFAULT_MAX_QUERIES, DEFAULT_TEMPERATURE,
};
pub use per_class::{subclass_structure, PerClass, Subclasses, SubclassesOfClass};
pub use progress::{NoProgress, Progress};
pub use real::{Real, UniformityBlocks};
pub use rows::{check_finite, largest_magnitude, normalize_rows, row_norms};
pub use simplex::{canonical_simplex, simplex_angles, vertex_distances, SimplexAngles};
pub use spectrum::{
    alpha_req, column_means, covariance, effective_rank, rankme, spectrum, symmetric_eigenvalues,
    AlphaReq, Spectrum, ALPHA_REQ_RANKS, RANKME_EPSILON,
};
pub use stats::{class_means, class_stats, class_stats_timed, eigen_work, ClassStats};
pub use tiles::DEFAULT_TILE;
pub use uniformity::{
    uniformity, uniformity_exact, uniformity_part, uniformity_sampled, Estimator, Method,
    Uniformity, UniformityPart,
};
