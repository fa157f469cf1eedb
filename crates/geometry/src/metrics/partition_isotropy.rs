//! Partition-function isotropy `I(W)` (Mu & Viswanath, ICLR 2018, "All-but-the-top"):
//! `I(W) = min_c Z(c) / max_c Z(c)`, `Z(c) = sum_i exp(c . w_i)`, over the unit directions `c`
//! the paper takes: the eigenvectors of the uncentred second moment `W^T W`, each with both
//! signs (an eigenvector is defined up to its sign, and `Z(-c) != Z(c)` for uncentred rows), so
//! the value does not depend on the eigen-solver's sign choice.

use crate::error::Result;
use crate::kernels::logsumexp::log_add;
use crate::kernels::tiles::single_threaded_blas;
use crate::metrics::real::Real;
use crate::metrics::spectrum::{symmetric_eigenpairs, symmetric_eigenpairs_f32, UncentredMoment};
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// `I(W)` and the log partition functions it is the ratio of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionIsotropy {
    /// `exp(min log Z - max log Z)` over the `2 D` directions `+-v_k`; 1 = isotropic.
    pub value: f64,
    /// `min log Z(c)`.
    pub log_z_min: f64,
    /// `max log Z(c)`.
    pub log_z_max: f64,
    /// Directions evaluated: `2 D` (both signs of the D eigenvectors).
    pub directions: usize,
}

/// Rows per block of the projections (fixed by D, so the sums do not depend on the threads).
fn block_rows(d: usize) -> usize {
    ((1usize << 21) / d.max(1)).clamp(64, 4096)
}

/// Above this `|c . w|` in a block, its sums are taken about their maxima (log-sum-exp);
/// below, `exp` cannot overflow and `exp(-p) = 1 / exp(p)` saves the second `exp`.
const PLAIN_EXP_LIMIT: f64 = 300.0;

/// `log sum_i exp(p_ij)` and `log sum_i exp(-p_ij)` per column j of a block of projections.
fn block_log_sums<F: Real>(p: ArrayView2<F>) -> Vec<(f64, f64)> {
    let m = p.ncols();
    let mut high = vec![f64::NEG_INFINITY; m];
    let mut low = vec![f64::INFINITY; m];
    for row in p.rows() {
        for ((h, l), v) in high.iter_mut().zip(low.iter_mut()).zip(row.iter()) {
            let v = v.as_f64();
            *h = h.max(v);
            *l = l.min(v);
        }
    }
    let largest = high
        .iter()
        .chain(low.iter())
        .fold(0.0f64, |a, v| a.max(v.abs()));
    let (shift_plus, shift_minus): (Vec<f64>, Vec<f64>) = match largest <= PLAIN_EXP_LIMIT {
        true => (vec![0.0; m], vec![0.0; m]),
        false => (high.clone(), low.iter().map(|l| -l).collect()),
    };
    let mut plus = vec![0.0f64; m];
    let mut minus = vec![0.0f64; m];
    for row in p.rows() {
        for (j, v) in row.iter().enumerate() {
            let v = v.as_f64();
            match largest <= PLAIN_EXP_LIMIT {
                true => {
                    let e = v.exp();
                    plus[j] += e;
                    minus[j] += 1.0 / e;
                }
                false => {
                    plus[j] += (v - shift_plus[j]).exp();
                    minus[j] += (-v - shift_minus[j]).exp();
                }
            }
        }
    }
    (0..m)
        .map(|j| (plus[j].ln() + shift_plus[j], minus[j].ln() + shift_minus[j]))
        .collect()
}

/// The eigendecomposition of the rows' uncentred second moment on its smaller side.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentEigen {
    /// Eigenvalues, ascending.
    pub values: Vec<f64>,
    /// Unit eigenvectors, column k for value k.
    pub vectors: Array2<f64>,
    /// Whether they are those of `W W^T` (N x N) rather than `W^T W`.
    pub gram: bool,
    /// Dimensions D of the rows.
    pub dim: usize,
}

/// [`MomentEigen`] of `moment` for rows of `dim` dimensions, by `dsyevd`; for f32 rows
/// (`single`) by `ssyevd`, about twice as fast with vectors, the directions (or the rows'
/// coordinates) then exact to f32 precision, that of the rows and of the f32 GEMM that
/// projects them.
pub fn moment_eigen(moment: &UncentredMoment, dim: usize, single: bool) -> Result<MomentEigen> {
    single_threaded_blas();
    let (matrix, gram) = match moment {
        UncentredMoment::Scatter(m) => (m, false),
        UncentredMoment::Gram(m) => (m, true),
    };
    let (values, vectors) = match single {
        true => symmetric_eigenpairs_f32(matrix)?,
        false => symmetric_eigenpairs(matrix)?,
    };
    Ok(MomentEigen {
        values,
        vectors,
        gram,
        dim,
    })
}

impl MomentEigen {
    /// From `W W^T = A L A^T`: the rows' coordinates `A_r sqrt(L_r)` (N x r) in the orthonormal
    /// basis `v_k = W^T a_k / sqrt(l_k)` of their span, over the r eigenvalues above the
    /// round-off level `max(N, D) eps l_max`; `None` for `W^T W`, whose basis is the identity.
    pub fn row_coordinates(&self) -> Option<Array2<f64>> {
        if !self.gram {
            return None;
        }
        let n = self.vectors.nrows();
        let top = self.values.iter().cloned().fold(0.0f64, f64::max);
        let floor = self.dim.max(n) as f64 * f64::EPSILON * top;
        let kept: Vec<usize> = (0..self.values.len())
            .filter(|&k| self.values[k] > floor)
            .collect();
        Some(Array2::from_shape_fn((n, kept.len()), |(i, column)| {
            let k = kept[column];
            self.vectors[[i, k]] * self.values[k].sqrt()
        }))
    }
}

/// `I(W)` of the rows `w` (N x D) from the eigendecomposition of their uncentred second moment
/// on the smaller side ([`moment_eigen`] of what the spectrum forms).
///
/// With `W^T W = V L V^T` (D x D), `Z(+-v_k) = sum_i exp(+-w_i . v_k)` from the projections
/// `W V`, in fixed row blocks (a GEMM in the rows' precision, `exp` and sums in f64, log-sum-exp
/// where a projection exceeds 300). With `W W^T` (N < D), the projections onto the basis of
/// the rows' span are their coordinates ([`MomentEigen::row_coordinates`]), and the `D - r`
/// directions orthogonal to every row have `Z = N`.
pub fn partition_isotropy<F: Real>(w: ArrayView2<F>, eigen: &MomentEigen) -> PartitionIsotropy {
    let (n, d) = w.dim();
    let sums = match eigen.row_coordinates() {
        None => projection_log_sums(w, &eigen.vectors),
        Some(coordinates) => {
            let mut sums = block_log_sums(coordinates.view());
            if coordinates.ncols() < d {
                let null = (n as f64).ln();
                sums.push((null, null));
            }
            sums
        }
    };
    of_log_sums(&sums, d)
}

/// `(log Z(v_k), log Z(-v_k))` of the rows `w` for each column `v_k` of `vectors` (D x D): the
/// projections `W V` in fixed row blocks, a GEMM in the rows' precision, `exp` and sums in f64
/// (log-sum-exp where a projection exceeds 300), the blocks' sums added in order.
pub fn projection_log_sums<F: Real>(w: ArrayView2<F>, vectors: &Array2<f64>) -> Vec<(f64, f64)> {
    single_threaded_blas();
    let (n, d) = w.dim();
    let v: Array2<F> = vectors.mapv(F::from_f64);
    let rows = block_rows(d);
    let blocks: Vec<Vec<(f64, f64)>> = (0..n.div_ceil(rows))
        .into_par_iter()
        .map(|b| {
            let chunk = w.slice(s![b * rows..((b + 1) * rows).min(n), ..]);
            let mut p = Array2::<F>::zeros((chunk.nrows(), v.ncols()));
            general_mat_mul(F::one(), &chunk, &v, F::zero(), &mut p);
            block_log_sums(p.view())
        })
        .collect();
    let mut total = vec![(f64::NEG_INFINITY, f64::NEG_INFINITY); v.ncols()];
    for block in blocks {
        add_log_sums(&mut total, &block);
    }
    total
}

/// `total += part` for log sums (`log(e^a + e^b)` per entry).
pub fn add_log_sums(total: &mut [(f64, f64)], part: &[(f64, f64)]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t = (log_add(t.0, p.0), log_add(t.1, p.1));
    }
}

/// `I(W)` from the log partition functions of the directions of rows in `d` dimensions.
pub fn of_log_sums(sums: &[(f64, f64)], d: usize) -> PartitionIsotropy {
    let all = sums.iter().flat_map(|&(plus, minus)| [plus, minus]);
    let (log_z_min, log_z_max) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    PartitionIsotropy {
        value: (log_z_min - log_z_max).exp(),
        log_z_min,
        log_z_max,
        directions: 2 * d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    /// The uncentred second moment of `w` on its smaller side, formed directly (the analysis takes
    /// it from the spectrum instead).
    fn uncentred_moment<F: Real>(w: ArrayView2<F>) -> UncentredMoment {
        let (n, d) = w.dim();
        let wide = w.mapv(|v| v.as_f64());
        match n < d {
            true => UncentredMoment::Gram(wide.dot(&wide.t())),
            false => UncentredMoment::Scatter(wide.t().dot(&wide)),
        }
    }

    fn isotropy_of<F: Real>(w: ArrayView2<F>) -> Result<PartitionIsotropy> {
        Ok(partition_isotropy(
            w,
            &moment_eigen(&uncentred_moment(w), w.ncols(), false)?,
        ))
    }

    /// The definition over every eigenvector of `W^T W` and both signs, written out.
    fn plain(w: &Array2<f64>) -> f64 {
        let (_, vectors) = symmetric_eigenpairs(&w.t().dot(w)).unwrap();
        let mut z = Vec::new();
        for c in vectors.columns() {
            let p = w.dot(&c);
            z.push(p.iter().map(|v| v.exp()).sum::<f64>());
            z.push(p.iter().map(|v| (-v).exp()).sum::<f64>());
        }
        let lo = z.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = z.iter().cloned().fold(0.0, f64::max);
        lo / hi
    }

    fn unit_rows(n: usize, d: usize, shift: f64, seed: u64) -> Array2<f64> {
        let mut x = pseudo_random(n, d, seed);
        x.column_mut(0).mapv_inplace(|v| v + shift);
        for mut row in x.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        x
    }

    #[test]
    fn equals_the_definition_on_both_routes() {
        for &(n, d) in &[(300, 12), (9000, 5), (7, 20), (40, 40)] {
            let w = unit_rows(n, d, 0.7, n as u64);
            let got = isotropy_of(w.view()).unwrap();
            let want = plain(&w);
            assert!(
                ((got.value - want) / want).abs() < 1e-10,
                "{n} x {d}: {} vs {want}",
                got.value
            );
            assert_eq!(got.directions, 2 * d);
        }
    }

    #[test]
    fn the_gram_route_equals_the_scatter_route() {
        for &(n, d) in &[(40, 300), (120, 700), (2, 9), (299, 300)] {
            let w = unit_rows(n, d, 0.4, n as u64);
            let value = |moment: UncentredMoment| {
                partition_isotropy(w.view(), &moment_eigen(&moment, d, false).unwrap()).value
            };
            let gram = value(UncentredMoment::Gram(w.dot(&w.t())));
            let scatter = value(UncentredMoment::Scatter(w.t().dot(&w)));
            assert!(
                (gram - scatter).abs() <= 1e-9 * scatter,
                "{n} x {d}: {gram} vs {scatter}"
            );
        }
    }

    #[test]
    fn large_projections_use_log_sum_exp() {
        let w = unit_rows(500, 6, 0.3, 3).mapv(|v| v * 1000.0);
        let got = isotropy_of(w.view()).unwrap();
        assert!(got.value.is_finite() && got.value >= 0.0);
        let scaled = unit_rows(500, 6, 0.3, 3).mapv(|v| v * 100.0);
        let plain_value = plain(&scaled);
        let got = isotropy_of(scaled.view()).unwrap();
        assert!(((got.value - plain_value) / plain_value).abs() < 1e-9);
    }

    #[test]
    fn symmetric_rows_are_isotropic_and_a_cone_is_not() {
        // Rows +-e_k: every direction's Z is the same.
        let d = 4;
        let mut w = Array2::<f64>::zeros((2 * d, d));
        for k in 0..d {
            w[[2 * k, k]] = 1.0;
            w[[2 * k + 1, k]] = -1.0;
        }
        let got = isotropy_of(w.view()).unwrap();
        assert!((got.value - 1.0).abs() < 1e-12);
        let cone = unit_rows(400, 8, 8.0, 5);
        let got = isotropy_of(cone.view()).unwrap();
        assert!(got.value < 0.6, "{}", got.value);
    }

    #[test]
    fn does_not_depend_on_the_threads() {
        let w = unit_rows(20_000, 16, 0.5, 9).mapv(|v| v as f32);
        let eigen = moment_eigen(&uncentred_moment(w.view()), 16, true).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| partition_isotropy(w.view(), &eigen));
        let all = partition_isotropy(w.view(), &eigen);
        assert_eq!(one, all);
    }
}
