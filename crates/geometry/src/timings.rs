//! Wall time per stage of an analysis, with the work each stage does (floating-point
//! operations in f32 or f64, or bytes moved), so that each stage can be set against its bound:
//! its flops over the machine's measured GEMM rate, or its bytes over its memory bandwidth.

use crate::tiles::single_threaded_blas;
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rayon::prelude::*;
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

/// The machine's rates that bound the stages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// f32 GEMM, every core (GFLOP/s).
    pub sgemm_gflops: f64,
    /// f64 GEMM, every core (GFLOP/s).
    pub dgemm_gflops: f64,
    /// Values-only symmetric eigendecompositions (`dsyevd`) of side 512 in f64, one per
    /// thread at once (GFLOP/s, counting `4/3 m^3` flops each).
    pub eigen_gflops: f64,
    /// bfloat16 products in AMX tiles, every core (GFLOP/s; `None` without AMX).
    pub tile_gflops: Option<f64>,
    /// Memory bandwidth of a parallel copy (GB/s, bytes read plus written).
    pub bandwidth_gbs: f64,
    /// First writes to newly allocated memory, in parallel (GB/s).
    pub new_memory_gbs: f64,
    /// Threads used.
    pub threads: usize,
}

impl Rates {
    /// Measure: every thread multiplies 512^3 blocks with a single-threaded BLAS call (as the
    /// kernels do), in f32 and f64, best of 3; every thread computes the eigenvalues of a
    /// 512 x 512 symmetric matrix, best of 3; a parallel copy of 256 MB for the bandwidth;
    /// a parallel fill of 256 MB newly allocated in ordinary pages (as the normalised copy is),
    /// best of 3; where the CPU has AMX, every thread at once multiplies 1024 x 512 by
    /// 512 x 512 in bfloat16 tiles 64 times (as the kNN screen does), timing its own products:
    /// the sum of the threads' rates, best of 3.
    pub fn measure() -> Rates {
        single_threaded_blas();
        let threads = rayon::current_num_threads();
        /// The shortest of three timed runs of `run`, in seconds.
        fn best_of_3(mut run: impl FnMut()) -> f64 {
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    run();
                    started.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        }
        fn gemm_rate<F: crate::Real>(threads: usize) -> f64 {
            let n = 512;
            let a = Array2::<F>::from_elem((n, n), F::from_f64(0.5));
            let best = best_of_3(|| {
                (0..threads).into_par_iter().for_each(|_| {
                    let mut c = Array2::<F>::zeros((n, n));
                    general_mat_mul(F::one(), &a, &a, F::zero(), &mut c);
                })
            });
            2.0 * (n * n * n * threads) as f64 / best / 1e9
        }
        let bandwidth = {
            let len = 32 << 20;
            let source = vec![1.0f64; len];
            let mut target = vec![0.0f64; len];
            let best = best_of_3(|| {
                target
                    .par_chunks_mut(1 << 16)
                    .zip(source.par_chunks(1 << 16))
                    .for_each(|(t, s)| t.copy_from_slice(s))
            });
            std::hint::black_box(&target);
            (2 * len * 8) as f64 / best / 1e9
        };
        let eigen = {
            let m = 512;
            // Symmetric with a spread spectrum: a diagonal ramp plus a smooth coupling.
            let a = Array2::<f64>::from_shape_fn((m, m), |(i, j)| {
                let coupling = ((i * j) % 17) as f64 / 17.0;
                coupling + if i == j { (i + 1) as f64 } else { 0.0 }
            });
            let best = best_of_3(|| {
                (0..threads).into_par_iter().for_each(|_| {
                    let values = crate::spectrum::symmetric_eigenvalues(&a, 1.0);
                    std::hint::black_box(values.ok());
                })
            });
            4.0 / 3.0 * (m * m * m * threads) as f64 / best / 1e9
        };
        let new_memory = {
            let len = 64 << 20;
            let best = best_of_3(|| {
                let mut fresh = vec![0.0f32; len];
                fresh.par_chunks_mut(1 << 16).for_each(|c| c.fill(1.0));
                std::hint::black_box(&fresh);
            });
            (len * 4) as f64 / best / 1e9
        };
        Rates {
            new_memory_gbs: new_memory,
            sgemm_gflops: gemm_rate::<f32>(threads),
            dgemm_gflops: gemm_rate::<f64>(threads),
            eigen_gflops: eigen,
            // Every thread at once, each timing its own products: the kNN screen's tasks
            // are taken by whichever thread is free, so its bound is the sum of the threads'
            // rates, which differ where cores are shared (here one thread's tiles ran at
            // about 1,000 GFLOP/s while the other's ran at 500). 64 sweeps (about 70 ms):
            // eight gave 370-1,570 GFLOP/s from run to run.
            tile_gflops: crate::amx::available().then(|| {
                (0..3)
                    .map(|_| {
                        rayon::broadcast(|_| crate::amx::tile_rate(1024, 512, 512, 64))
                            .into_iter()
                            .sum::<f64>()
                    })
                    .fold(0.0, f64::max)
            }),
            bandwidth_gbs: bandwidth,
            threads,
        }
    }

    /// The seconds `work` needs at these rates (`None`: unmodelled).
    pub fn bound(&self, work: Work) -> Option<f64> {
        match work {
            Work::SingleFlops(f) => Some(f / (self.sgemm_gflops * 1e9)),
            Work::DoubleFlops(f) => Some(f / (self.dgemm_gflops * 1e9)),
            Work::TileFlops(f) => self.tile_gflops.map(|rate| f / (rate * 1e9)),
            Work::EigenFlops(f) => Some(f / (self.eigen_gflops * 1e9)),
            Work::Bytes(b) => Some(b / (self.bandwidth_gbs * 1e9)),
            Work::NewCopy { read, written } => {
                Some(read / (self.bandwidth_gbs * 1e9) + written / (self.new_memory_gbs * 1e9))
            }
            Work::Unmodelled => None,
        }
    }
}

/// `2 m n k` flops of an `m x k` by `k x n` product, in the precision of `F`.
pub(crate) fn gemm_work<F: crate::Real>(m: f64, n: f64, k: f64) -> Work {
    let flops = 2.0 * m * n * k;
    match std::mem::size_of::<F>() {
        4 => Work::SingleFlops(flops),
        _ => Work::DoubleFlops(flops),
    }
}
