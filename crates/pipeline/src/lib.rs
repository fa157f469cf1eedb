//! The embgeom pipeline as a library: what to read ([`InputSpec`]) -> loaded, validated inputs
//! -> [`Analysis`](embgeom_geometry::Analysis), and its two renderings, the
//! `embgeom.analysis/1` JSON document ([`analysis_document`]) and a table for people
//! ([`text_table`]), both generated from the metric catalogue
//! ([`embgeom_geometry::catalogue`]).
//!
//! Options are plain structs (no command-line or terminal types); progress goes through the
//! [`Progress`](embgeom_geometry::Progress) trait. The `embgeom` binary, the report and
//! `track` all run this one pipeline.

mod document;
mod error;
mod inputs;
mod modalities;
mod per_point;
mod run;
mod sharded;
mod timings;

pub use document::{analysis_document, text_table, SCHEMA};
pub use error::{PipelineError, Result};
pub use inputs::{load_inputs, InputSpec, InputSummary, Inputs, Rows, Source, Values};
pub use modalities::{
    analyze_modalities, modalities_document, modalities_table, pair_gap_matrix, run_modalities,
    run_sharded_modalities, CrossOptions, ModalitiesRun, ModalityJobs, ModalitySpec, PairFile,
    PairJob, MODALITIES_SCHEMA,
};
pub use per_point::{per_point_columns, write_per_point};
pub use run::{analyze_inputs, run_analysis, set_threads, Extras, Run};
pub use sharded::{Shard, ShardJob, ShardedDataset};
pub use timings::{machine_rates, timings_document, timings_table, MemoryPeaks, MemoryWatch};
