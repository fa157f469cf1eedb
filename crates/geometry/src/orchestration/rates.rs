//! The machine's rates that bound the stages of an analysis (`analyze --timings`), measured
//! with the kernels the stages run.

use crate::kernels::amx;
use crate::kernels::real::Element;
use crate::kernels::rows::{prefetch_row_l2, PAIRS_AHEAD};
use crate::kernels::tiles::single_threaded_blas;
use crate::kernels::timings::Work;
use crate::metrics::spectrum::symmetric_eigenvalues;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

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
    /// Rows of 64 bytes read in random order from 512 MB, every thread at once (rows/s): the
    /// latency bound of gathering short rows.
    pub random_rows_per_s: f64,
    /// Rows of 2 KiB read in random order from 512 MB, every thread at once (GB/s): the
    /// bandwidth bound of gathering long rows.
    pub random_read_gbs: f64,
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
        fn gemm_rate<F: Element>(threads: usize) -> f64 {
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
                    let values = symmetric_eigenvalues(&a, 1.0);
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
        let (random_rows, random_read) = random_reads(threads);
        Rates {
            new_memory_gbs: new_memory,
            random_rows_per_s: random_rows,
            random_read_gbs: random_read,
            sgemm_gflops: gemm_rate::<f32>(threads),
            dgemm_gflops: gemm_rate::<f64>(threads),
            eigen_gflops: eigen,
            // Every thread at once, each timing its own products: the kNN screen's tasks
            // are taken by whichever thread is free, so its bound is the sum of the threads'
            // rates, which differ where cores are shared (here one thread's tiles ran at
            // about 1,000 GFLOP/s while the other's ran at 500). 64 sweeps (about 70 ms):
            // eight gave 370-1,570 GFLOP/s from run to run.
            tile_gflops: amx::available().then(|| {
                (0..3)
                    .map(|_| {
                        rayon::broadcast(|_| amx::tile_rate(1024, 512, 512, 64))
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
            Work::Decomposition { products, eigen } => {
                Some(products / (self.dgemm_gflops * 1e9) + eigen / (self.eigen_gflops * 1e9))
            }
            Work::Bytes(b) => Some(b / (self.bandwidth_gbs * 1e9)),
            Work::NewCopy { read, written } => {
                Some(read / (self.bandwidth_gbs * 1e9) + written / (self.new_memory_gbs * 1e9))
            }
            Work::Gather {
                rows,
                bytes,
                flops,
                single,
            } => {
                let gemm = match single {
                    true => self.sgemm_gflops,
                    false => self.dgemm_gflops,
                };
                let read =
                    (rows / self.random_rows_per_s).max(bytes / (self.random_read_gbs * 1e9));
                Some(read + flops / (gemm * 1e9))
            }
            Work::Unmodelled => None,
        }
    }
}

/// `(rows/s, GB/s)` of reading rows in random order from 512 MB, every thread at once: rows of
/// 64 bytes (one cache line: the latency bound) and of 2 KiB (the bandwidth bound), each the
/// best of three timed runs. Each thread reads its own seeded sequence of rows, fetching each
/// [`PAIRS_AHEAD`] rows ahead as the gathers do, and sums one value of every cache line (so the
/// reads are not elided); the rows are in ordinary, already written pages.
fn random_reads(threads: usize) -> (f64, f64) {
    let len = 128 << 20;
    let table: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
    let rate = |row: usize, reads: usize| -> f64 {
        let rows = len / row;
        let seconds = best_of_3(|| {
            let sums: Vec<f32> = (0..threads)
                .into_par_iter()
                .map(|t| {
                    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
                    let starts: Vec<usize> = (0..reads)
                        .map(|_| {
                            state = state
                                .wrapping_mul(6_364_136_223_846_793_005)
                                .wrapping_add(1);
                            ((state >> 33) as usize % rows) * row
                        })
                        .collect();
                    let row_at = |start: usize| ArrayView1::from(&table[start..start + row]);
                    let mut sum = 0.0f32;
                    for (i, &start) in starts.iter().enumerate() {
                        // Fetched ahead as the gathers fetch theirs (more misses in flight).
                        if let Some(&ahead) = starts.get(i + PAIRS_AHEAD) {
                            prefetch_row_l2(row_at(ahead));
                        }
                        // One value of every cache line: the reads, not the adds, bound it.
                        sum += row_at(start).iter().step_by(16).sum::<f32>();
                    }
                    sum
                })
                .collect();
            std::hint::black_box(sums);
        });
        (reads * threads) as f64 / seconds
    };
    let rows_per_s = rate(16, 1 << 20);
    let long_rows_per_s = rate(512, 1 << 16);
    (rows_per_s, long_rows_per_s * 2048.0 / 1e9)
}

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
