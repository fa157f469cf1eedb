//! The top layer: one analysis from its inputs (stages, timings, memory limit), the sharded
//! analysis's tasks, the numbers behind the figures, the metric catalogue, the machine's
//! rates, and the public entry points.

pub(crate) mod analysis;
pub mod catalogue;
pub mod cross_catalogue;
pub(crate) mod entry;
pub(crate) mod figure_data;
pub mod modalities;
pub mod per_point;
pub(crate) mod rates;
pub mod sharded;
pub mod similarity_family;
