//! Progress reporting hook for long computations.

/// Receives progress of a long computation (e.g. Gram tiles of the exact uniformity).
///
/// The geometry crate never prints; a front end implements this (a progress bar on a
/// terminal, nothing when piped).
pub trait Progress: Sync {
    /// A new stage begins with `total` units of work.
    fn start(&self, stage: &str, total: u64);
    /// `units` more units of the current stage are done.
    fn advance(&self, units: u64);
    /// A unit of work of the current stage begins. A front end that stops a computation (on
    /// Ctrl-C) unwinds here, so that the units not yet begun are skipped, not computed; by
    /// default nothing happens.
    fn begin_unit(&self) {}
    /// The current stage is done.
    fn finish(&self);
    /// What is being worked on now (e.g. a file name); ignored unless overridden.
    fn note(&self, _text: &str) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _stage: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn finish(&self) {}
}
