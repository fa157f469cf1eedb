//! The metrics, each from the kernels below it: alignment, uniformity, class statistics,
//! collapse, the simplex, the spectrum, kNN, intrinsic dimension, hubness, hard negatives, partition isotropy, LiDAR, the modality gap, cross-modal retrieval, the spectral contrastive loss, subclasses, the similarity
//! family of two representations (with its mergeable state), and the mergeable state.
//! Nothing here imports [`crate::orchestration`].

pub(crate) mod alignment;
pub(crate) mod collapse;
pub(crate) mod hard_negatives;
pub(crate) mod hubness;
pub(crate) mod intrinsic;
pub(crate) mod knn;
pub(crate) mod lidar;
pub(crate) mod modality_gap;
pub(crate) mod neighbourhood_similarity;
pub(crate) mod partition_isotropy;
pub(crate) mod per_class;
pub(crate) mod real;
pub(crate) mod retrieval;
pub(crate) mod similarity;
pub(crate) mod similarity_state;
pub(crate) mod simplex;
pub(crate) mod spectral_loss;
pub(crate) mod spectrum;
pub mod state;
pub(crate) mod stats;
pub(crate) mod uniformity;
