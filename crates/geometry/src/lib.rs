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

mod error;
mod kernels;
mod metrics;
mod orchestration;
mod progress;

pub use metrics::state;
pub use orchestration::per_point::{per_point, PerPoint, DEFAULT_PER_POINT_ROWS};
pub use orchestration::{catalogue, cross_catalogue, modalities, sharded, similarity_family};

/// Wall time and work of every stage ([`timings::Timings`]), and the machine's rates that
/// bound them ([`timings::Rates`]).
pub mod timings {
    pub use crate::kernels::timings::{StageTime, Timings, Work};
    pub use crate::orchestration::analysis::search_work;
    pub use crate::orchestration::rates::Rates;
}

pub use error::{GeometryError, MemoryDriver, Result};
pub use kernels::classes::{ClassSums, Classes};
pub use kernels::gram_exp::{kernel, supported_kernels, Kernel};
pub use kernels::logsumexp::UniformityPart;
pub use kernels::merge::Merge;
pub use kernels::real::Element;
pub use kernels::rows::{check_finite, largest_magnitude, normalize_rows, row_norms};
pub use kernels::sampling::stratified_rows;
pub use kernels::tiles::DEFAULT_TILE;
pub use metrics::alignment::{
    alignment, alignment_part, class_alignment, Alignment, AlignmentPart,
};
pub use metrics::collapse::{
    cdnv, class_means_work, collapse, collapse_from_stats, collapse_timed, nc1, Cdnv, Classifier,
    Collapse,
};
pub use metrics::hard_negatives::{
    hard_negatives, HardNegatives, Quantiles, HARD_NEGATIVE_BINS, HARD_NEGATIVE_K, QUANTILE_LEVELS,
};
pub use metrics::hubness::{
    hubness_of, k_occurrence, subsample_hubness, Hubness, HubnessErrors, HUBNESS_K,
    HUBNESS_SUBSAMPLE_ROWS, HUB_SIZE,
};
pub use metrics::intrinsic::{
    intrinsic_dimension, IntrinsicDimension, MLE_NEIGHBOURS, TWONN_DISCARD,
};
pub use metrics::knn::{
    knn_accuracy, knn_screen, KnnAccuracy, KnnOptions, KnnScreen, KnnSplit, Neighbour, TopK,
    DEFAULT_K, DEFAULT_MAX_QUERIES, DEFAULT_TEMPERATURE,
};
pub use metrics::lidar::{
    class_scatter, lidar, views_scatter, Between, GroupScatter, Lidar, LIDAR_DELTA, LIDAR_EPSILON,
    REPTRIX_DELTA, REPTRIX_EPSILON, REPTRIX_MAX_EIGENVALUES,
};
pub use metrics::modality_gap::{
    modality_gap, GapComponent, ModalityGap, PairSums, SetSums, GAP_COMPONENTS, RMG_MATCH_FLOOR,
};
pub use metrics::neighbourhood_similarity::{
    sampled_rows, sampled_similarity, SampleOptions, SampledRepresentation, SampledSimilarity,
    DEFAULT_MUTUAL_K, DEFAULT_NEIGHBOUR_ROWS, DEFAULT_RBF_ROWS, DEFAULT_RBF_THRESHOLD,
    PLATONIC_QUANTILE,
};
pub use metrics::partition_isotropy::{
    moment_eigen, partition_isotropy, MomentEigen, PartitionIsotropy,
};
pub use metrics::per_class::{subclass_structure, PerClass, Subclasses, SubclassesOfClass};
pub use metrics::real::{Real, UniformityBlocks};
pub use metrics::retrieval::{
    matched_similarities, merged_retrieval, retrieval, retrieval_of_queries, shard_offsets,
    shard_tally, ObjectiveParameters, PairMap, QueryCount, QuerySubset, Ranks, Retrieval,
    RetrievalSummary, ShardTally, RECALL_AT, RECALL_CURVE_K,
};
pub use metrics::similarity::{
    linear_cka, similarity, CovarianceEigen, Similarity, CCA_EIGENVALUE_FLOOR, SVCCA_VARIANCE,
};
pub use metrics::similarity_state::{
    cross_moments, CentredMoments, OwnMoments, Pairing, SimilarityState, SIMILARITY_STATE_VERSION,
};
pub use metrics::simplex::{canonical_simplex, simplex_angles, vertex_distances, SimplexAngles};
pub use metrics::spectral_loss::{spectral_loss, SpectralLoss, SPECTRAL_MU};
pub use metrics::spectrum::{
    alpha_req, column_means, covariance, effective_rank, rankme, spectrum, spectrum_timed,
    spectrum_work, symmetric_eigenvalues, AlphaReq, Isotropy, Spectrum, UncentredMoment,
    ALPHA_REQ_RANKS, DEFAULT_ISOSCORE_ZETA, RANKME_EPSILON,
};
pub use metrics::stats::{class_means, class_stats, class_stats_timed, eigen_work, ClassStats};
pub use metrics::uniformity::{
    uniformity, uniformity_exact, uniformity_part, uniformity_sampled, Estimator, Method,
    Uniformity, MAX_SAMPLED_PAIRS,
};
pub use orchestration::analysis::{
    default_memory_limit, memory_estimate, Analysis, AnalysisInput, AnalysisOptions,
    MemoryEstimate, DEFAULT_MAX_EXACT, DEFAULT_SAMPLED_PAIRS,
};
pub use orchestration::entry::{analyze, analyze_timed};
pub use orchestration::figure_data::{
    class_mean_cosines, cross_figure_data, distances_to_class_means, figure_data, pair_distances,
    pca_projection, uniform_sphere_uniformity, CrossFigureData, FigureData, PairDistances,
    Projection, CROSS_FIGURE_PAIRS, CROSS_FIGURE_POINTS, FIGURE_MAX_PAIRS, FIGURE_MAX_PER_CLASS,
    FIGURE_MAX_POINTS,
};
pub use progress::{NoProgress, Progress};
