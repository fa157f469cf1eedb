//! Wall time per stage of an analysis, with the work each stage does (floating-point
//! operations in f32 or f64, or bytes moved), so that each stage can be set against its bound:
//! its flops over the machine's measured GEMM rate, or its bytes over its memory bandwidth.

use crate::kernels::real::Element;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;

/// What a stage does, for its bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Floating-point operations in f32 (bound: the sgemm rate).
    SingleFlops(f64),
    /// Floating-point operations in f64 (bound: the dgemm rate).
    DoubleFlops(f64),
    /// Floating-point operations of bfloat16 products in AMX tiles, summed in f32 (bound: the
    /// rate of those tiles).
    TileFlops(f64),
    /// Floating-point operations of symmetric eigendecompositions in f64 (bound: the rate of
    /// LAPACK's `dsyevd` on 512 x 512 matrices, one per thread).
    EigenFlops(f64),
    /// Floating-point products in f64 (bound: the dgemm rate), then symmetric
    /// eigendecompositions (bound: the rate of `dsyevd`, as [`Work::EigenFlops`]).
    Decomposition {
        /// Flops of the products.
        products: f64,
        /// Flops of the eigendecompositions (`4/3 m^3` for a side of m, values only).
        eigen: f64,
    },
    /// Bytes read and written (bound: the memory bandwidth).
    Bytes(f64),
    /// Bytes read, and bytes written to newly allocated memory (bound: the bytes read over the
    /// memory bandwidth plus the bytes written over the rate of first writes to new memory,
    /// which includes the kernel's page faults and zeroing).
    NewCopy {
        /// Bytes read.
        read: f64,
        /// Bytes written to new memory.
        written: f64,
    },
    /// Rows read in random order, then floating-point operations on them (bound: the larger
    /// of the rows over the machine's random-row rate and the bytes over its random-read
    /// bandwidth, plus the flops over the GEMM rate of their precision).
    Gather {
        /// Rows read.
        rows: f64,
        /// Bytes of those rows.
        bytes: f64,
        /// Floating-point operations on them.
        flops: f64,
        /// Whether the flops are in f32 (else f64).
        single: bool,
    },
    /// No model of the work (the stage is small, or irregular).
    Unmodelled,
}

/// One stage's wall time and work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// The stage.
    pub stage: String,
    /// Wall seconds.
    pub seconds: f64,
    /// What it did.
    pub work: Work,
}

/// The stages of one analysis, in the order they ran (thread-safe).
#[derive(Debug, Default)]
pub struct Timings {
    stages: Mutex<Vec<StageTime>>,
}

impl Timings {
    /// Run `f` as stage `stage` doing `work`, and record its wall time.
    pub fn time<T>(&self, stage: &str, work: Work, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.record(stage, started.elapsed().as_secs_f64(), work);
        out
    }

    /// Record a stage timed elsewhere.
    pub fn record(&self, stage: &str, seconds: f64, work: Work) {
        if let Ok(mut stages) = self.stages.lock() {
            stages.push(StageTime {
                stage: stage.to_string(),
                seconds,
                work,
            });
        }
    }

    /// The stages so far.
    pub fn stages(&self) -> Vec<StageTime> {
        self.stages.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// `rows` rows of `d` elements of `F` read in random order, then `flops` operations in the
/// precision of `F`.
pub(crate) fn gather_work<F: Element>(rows: f64, d: f64, flops: f64) -> Work {
    let element = std::mem::size_of::<F>();
    Work::Gather {
        rows,
        bytes: rows * d * element as f64,
        flops,
        single: element == 4,
    }
}

/// `2 m n k` flops of an `m x k` by `k x n` product, in the precision of `F`.
pub(crate) fn gemm_work<F: Element>(m: f64, n: f64, k: f64) -> Work {
    let flops = 2.0 * m * n * k;
    match std::mem::size_of::<F>() {
        4 => Work::SingleFlops(flops),
        _ => Work::DoubleFlops(flops),
    }
}

/// `sum 4/3 m^3` over the sides `m` of values-only symmetric eigendecompositions (the
/// reduction to tridiagonal form; the tridiagonal QR is `O(m^2)`).
pub(crate) fn eigen_flops(sides: impl IntoIterator<Item = usize>) -> f64 {
    sides
        .into_iter()
        .map(|m| 4.0 / 3.0 * (m as f64).powi(3))
        .sum()
}
