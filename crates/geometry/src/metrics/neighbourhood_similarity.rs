//! The similarity measures that need the rows themselves, not only their moments, each on a
//! seeded sample of the rows (the same rows in every representation; all rows when there are
//! at most that many):
//!
//! - RBF CKA (Kornblith et al. 2019's notebook, `gram_rbf` and `center_gram`): on the sampled
//!   rows, `K_ij = exp(-||x_i - x_j||^2 / (2 t^2 m))` with `m` the median of all M^2 squared
//!   distances (the zero diagonal included, as `np.median(sq_distances)`) and `t` the
//!   threshold (1); `CKA = <HKH, HLH> / (||HKH||_F ||HLH||_F)` with `H = I - 11^T/M` (the
//!   notebook's biased centring).
//! - Mutual kNN alignment (Huh et al. 2024, platonic-rep `metrics.py::mutual_knn`): with
//!   `N_A(i)` the k nearest rows of row i by cosine among the sampled rows (itself excluded),
//!   `mean_i |N_A(i) ∩ N_B(i)| / k`.
//! - CKNNA (the same file's `cknna`, unbiased): with the mask `m_ij = [j in N_A(i) and
//!   N_B(i)]`, `K~ = m ∘ K`, `L~ = m ∘ L` (K, L the cosine Gram matrices) and
//!   `HSIC(K~, L~) = (sum K~ ∘ L~^T + sum K~ sum L~ / ((M-1)(M-2)) - 2/(M-2) sum K~ L~) / (M(M-3))`,
//!   `CKNNA = HSIC_AB / sqrt(HSIC_AA HSIC_BB)` where `HSIC_AA` uses A's own mask (platonic-rep
//!   adds 1e-6 to that denominator; here it is exact).
//!
//! Huh et al.'s preprocessing (an option for the two kNN measures): every entry clamped to
//! `[-q, q]` with `q` the mean over rows of each row's 0.95 quantile of `|x|` (linear
//! interpolation, as `torch.quantile`), then the rows scaled to unit length.

use crate::error::{GeometryError, Result};
use crate::kernels::rows::normalize_rows;
use crate::kernels::sampling::stratified_rows;
use crate::kernels::tiles::single_threaded_blas;
use crate::metrics::knn::{query_neighbours, KnnOptions, KnnSplit};
use crate::metrics::real::Real;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Rows RBF CKA uses by default (a seeded sample when there are more; its M x M kernel is
/// kept per input).
pub const DEFAULT_RBF_ROWS: usize = 2_000;
/// Rows the kNN measures use by default (as `analyze`'s kNN queries).
pub const DEFAULT_NEIGHBOUR_ROWS: usize = 10_000;
/// Neighbours k of mutual kNN and CKNNA (platonic-rep's `--topk 10`).
pub const DEFAULT_MUTUAL_K: usize = 10;
/// RBF CKA's bandwidth threshold t (the notebook's default 1).
pub const DEFAULT_RBF_THRESHOLD: f64 = 1.0;
/// The quantile of Huh et al.'s outlier clamp.
pub const PLATONIC_QUANTILE: f64 = 0.95;

/// How the sampled measures sample and what they compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleOptions {
    /// RBF CKA's rows (0: RBF CKA is not computed).
    pub rbf_rows: usize,
    /// RBF CKA's bandwidth threshold t.
    pub rbf_threshold: f64,
    /// The kNN measures' rows (0: they are not computed).
    pub neighbour_rows: usize,
    /// Neighbours k of mutual kNN and CKNNA.
    pub k: usize,
    /// Huh et al.'s outlier clamp before the kNN measures.
    pub platonic: bool,
    /// Seed of both samples.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            rbf_rows: DEFAULT_RBF_ROWS,
            rbf_threshold: DEFAULT_RBF_THRESHOLD,
            neighbour_rows: DEFAULT_NEIGHBOUR_ROWS,
            k: DEFAULT_MUTUAL_K,
            platonic: false,
            seed: 0,
        }
    }
}

impl SampleOptions {
    /// The parameters checked.
    pub fn check(&self) -> Result<()> {
        if !(self.rbf_threshold.is_finite() && self.rbf_threshold > 0.0) {
            return Err(GeometryError::InvalidParameter {
                name: "rbf_threshold",
                value: self.rbf_threshold,
                reason: "RBF CKA's bandwidth threshold must be a positive number",
            });
        }
        if self.neighbour_rows > 0 && self.k < 2 {
            return Err(GeometryError::InvalidParameter {
                name: "k",
                value: self.k as f64,
                reason: "mutual kNN and CKNNA need k >= 2",
            });
        }
        Ok(())
    }
}

/// One representation's sampled summaries: its centred RBF kernel and its neighbour lists.
#[derive(Debug, Clone)]
pub struct SampledRepresentation {
    /// `HKH` on the RBF rows and its Frobenius norm; `None` if not computed (or the median
    /// distance is 0).
    rbf: Option<(Array2<f64>, f64)>,
    /// Per sampled row, its k neighbours among the sampled rows: (position, cosine).
    neighbours: Option<Vec<Vec<(u32, f64)>>>,
    /// Why a measure is missing.
    notes: Vec<String>,
}

/// The sampled rows of `n`: at most `max`, seeded (sorted row indices).
pub fn sampled_rows(n: usize, max: usize, seed: u64) -> Vec<usize> {
    stratified_rows(n, None, max, seed)
}

/// Huh et al.'s clamp (see the module documentation), in place.
fn platonic_clamp(x: &mut Array2<f64>) {
    let d = x.ncols();
    if d == 0 || x.nrows() == 0 {
        return;
    }
    let position = PLATONIC_QUANTILE * (d - 1) as f64;
    let (lo, frac) = (position.floor() as usize, position - position.floor());
    let q = x
        .rows()
        .into_iter()
        .map(|r| {
            let mut a: Vec<f64> = r.iter().map(|v| v.abs()).collect();
            a.sort_by(f64::total_cmp);
            a[lo] + frac * (a[(lo + 1).min(d - 1)] - a[lo])
        })
        .sum::<f64>()
        / x.nrows() as f64;
    x.mapv_inplace(|v| v.clamp(-q, q));
}

/// Scale `x` by the power of two that brings its largest magnitude into `[1, 2)`: exact (the
/// RBF kernel with the median bandwidth does not change, bit for bit), and the squared
/// distances of rows of any finite scale stay inside f64.
fn scale_to_unit_magnitude(x: &mut Array2<f64>) {
    let largest = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !(largest.is_finite() && largest > 0.0) {
        return;
    }
    // 2^-e in two factors, each inside f64's range (e runs from -1074 to 1023).
    let e = largest.log2().floor() as i32;
    let (first, second) = (-e / 2, -e - (-e / 2));
    let (first, second) = (2f64.powi(first), 2f64.powi(second));
    x.mapv_inplace(|v| v * first * second);
}

/// `HKH` of the RBF kernel of `x`'s rows (median bandwidth) and its Frobenius norm; `None`
/// when the median squared distance is 0.
fn centred_rbf(x: &Array2<f64>, threshold: f64) -> Option<(Array2<f64>, f64)> {
    let m = x.nrows();
    let gram = x.dot(&x.t());
    let diag: Vec<f64> = (0..m).map(|i| gram[[i, i]]).collect();
    let sq = Array2::from_shape_fn((m, m), |(i, j)| -2.0 * gram[[i, j]] + diag[i] + diag[j]);
    let mut all: Vec<f64> = sq.iter().copied().collect();
    let total = all.len();
    let middle = |all: &mut Vec<f64>, at: usize| *all.select_nth_unstable_by(at, f64::total_cmp).1;
    let median = match total % 2 {
        1 => middle(&mut all, total / 2),
        _ => (middle(&mut all, total / 2 - 1) + middle(&mut all, total / 2)) / 2.0,
    };
    if median.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let mut k = sq.mapv(|v| (-v / (2.0 * threshold * threshold * median)).exp());
    let means = k.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(m));
    let half = means.mean().unwrap_or(0.0) / 2.0;
    let means = means.mapv(|v| v - half);
    for ((i, j), v) in k.indexed_iter_mut() {
        *v -= means[i] + means[j];
    }
    let norm = k.iter().map(|v| v * v).sum::<f64>().sqrt();
    Some((k, norm))
}

impl SampledRepresentation {
    /// The summaries of `x` (N x D) under `options`.
    pub fn of<F: Real>(x: ArrayView2<F>, options: &SampleOptions) -> Result<SampledRepresentation> {
        let kernel = SampledRepresentation::kernel_of(x, options)?;
        Ok(kernel.joined(SampledRepresentation::neighbours_of(x, options)?))
    }

    /// Both halves in one (the kernel of `self`, the neighbours of `other`).
    pub fn joined(mut self, other: SampledRepresentation) -> SampledRepresentation {
        self.neighbours = other.neighbours;
        self.notes.extend(other.notes);
        self
    }

    /// The RBF half: the centred kernel of the RBF rows (in f64).
    pub fn kernel_of<F: Real>(
        x: ArrayView2<F>,
        options: &SampleOptions,
    ) -> Result<SampledRepresentation> {
        single_threaded_blas();
        options.check()?;
        let n = x.nrows();
        let mut notes = Vec::new();
        let rbf = match options.rbf_rows {
            0 => None,
            max => {
                let rows = sampled_rows(n, max, options.seed);
                let mut sample = x.select(Axis(0), &rows).mapv(F::as_f64);
                scale_to_unit_magnitude(&mut sample);
                let kernel = (rows.len() >= 2)
                    .then(|| centred_rbf(&sample, options.rbf_threshold))
                    .flatten();
                if kernel.is_none() {
                    notes.push("RBF CKA is undefined: the median squared distance of the sampled rows is 0 (duplicate rows)".to_string());
                }
                kernel
            }
        };
        Ok(SampledRepresentation {
            rbf,
            neighbours: None,
            notes,
        })
    }

    /// The neighbour half: each sampled row's k nearest among the sampled rows.
    pub fn neighbours_of<F: Real>(
        x: ArrayView2<F>,
        options: &SampleOptions,
    ) -> Result<SampledRepresentation> {
        options.check()?;
        let n = x.nrows();
        let mut notes = Vec::new();
        let neighbours = match options.neighbour_rows {
            0 => None,
            max => {
                let rows = sampled_rows(n, max, options.seed);
                if rows.len() < 4 || rows.len() <= options.k {
                    notes.push(format!(
                        "mutual kNN and CKNNA need more than k = {} sampled rows and at least 4, got {}",
                        options.k,
                        rows.len()
                    ));
                    None
                } else {
                    // In the rows' own precision (an f32 input is searched by the f32 GEMM
                    // screen, the neighbours' cosines summed exactly in f64); the clamp in
                    // f64, its result rounded back.
                    let mut sample = x.select(Axis(0), &rows);
                    if options.platonic {
                        let mut wide = sample.mapv(F::as_f64);
                        platonic_clamp(&mut wide);
                        sample = wide.mapv(F::from_f64);
                    }
                    let unit = normalize_rows(sample.view())?;
                    let found = query_neighbours(
                        unit.view(),
                        None,
                        &KnnSplit::LeaveOneOut,
                        options.k,
                        &KnnOptions {
                            k: options.k,
                            max_queries: rows.len(),
                            seed: options.seed,
                            ..KnnOptions::default()
                        },
                    )?;
                    Some(
                        found
                            .tops
                            .iter()
                            .map(|top| {
                                top.items()
                                    .iter()
                                    .map(|nb| (nb.index as u32, nb.sim))
                                    .collect()
                            })
                            .collect(),
                    )
                }
            }
        };
        Ok(SampledRepresentation {
            rbf: None,
            neighbours,
            notes,
        })
    }
}

/// The sampled measures between two representations summarised with the same options.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledSimilarity {
    /// RBF CKA.
    pub rbf_cka: Option<f64>,
    /// Mutual kNN alignment.
    pub mutual_knn: Option<f64>,
    /// CKNNA.
    pub cknna: Option<f64>,
    /// Why a measure is missing.
    pub notes: Vec<String>,
}

/// Platonic-rep's unbiased HSIC of the masked Gram matrices, given the mask's entries
/// `(i, j) -> (K_ij, L_ij)` over `m` rows.
fn masked_hsic(entries: &HashMap<(u32, u32), (f64, f64)>, m: usize) -> f64 {
    let mf = m as f64;
    let (mut sum_k, mut sum_l, mut transposed) = (0.0, 0.0, 0.0);
    let mut column_k = vec![0.0; m];
    let mut row_l = vec![0.0; m];
    // In row order, so the sums do not depend on the map's order.
    let mut keys: Vec<&(u32, u32)> = entries.keys().collect();
    keys.sort_unstable();
    for &&(i, j) in &keys {
        let (k, l) = entries[&(i, j)];
        sum_k += k;
        sum_l += l;
        column_k[j as usize] += k;
        row_l[i as usize] += l;
        if let Some((_, l_ji)) = entries.get(&(j, i)) {
            transposed += k * l_ji;
        }
    }
    let product: f64 = column_k.iter().zip(&row_l).map(|(a, b)| a * b).sum();
    (transposed + sum_k * sum_l / ((mf - 1.0) * (mf - 2.0)) - 2.0 * product / (mf - 2.0))
        / (mf * (mf - 3.0))
}

/// The mask of `a` and `b`'s shared neighbours with both cosines.
fn shared(a: &[Vec<(u32, f64)>], b: &[Vec<(u32, f64)>]) -> HashMap<(u32, u32), (f64, f64)> {
    let mut out = HashMap::new();
    for (i, (na, nb)) in a.iter().zip(b).enumerate() {
        for &(j, k) in na {
            if let Some(&(_, l)) = nb.iter().find(|(jb, _)| *jb == j) {
                out.insert((i as u32, j), (k, l));
            }
        }
    }
    out
}

/// RBF CKA, mutual kNN and CKNNA between `a` and `b` (see the module documentation).
pub fn sampled_similarity(
    a: &SampledRepresentation,
    b: &SampledRepresentation,
) -> SampledSimilarity {
    let mut notes: Vec<String> = a.notes.iter().chain(&b.notes).cloned().collect();
    notes.dedup();
    let rbf_cka = match (&a.rbf, &b.rbf) {
        (Some((k, nk)), Some((l, nl))) if *nk > 0.0 && *nl > 0.0 => {
            let inner: f64 = k.iter().zip(l.iter()).map(|(p, q)| p * q).sum();
            Some(inner / (nk * nl))
        }
        _ => None,
    };
    let (mut mutual_knn, mut cknna) = (None, None);
    if let (Some(na), Some(nb)) = (&a.neighbours, &b.neighbours) {
        let m = na.len();
        let k = na.first().map_or(0, Vec::len).max(1);
        let both = shared(na, nb);
        mutual_knn = Some(both.len() as f64 / (m * k) as f64);
        let own = |n: &[Vec<(u32, f64)>]| -> HashMap<(u32, u32), (f64, f64)> {
            n.iter()
                .enumerate()
                .flat_map(|(i, row)| row.iter().map(move |&(j, s)| ((i as u32, j), (s, s))))
                .collect()
        };
        let (ab, aa, bb) = (
            masked_hsic(&both, m),
            masked_hsic(&own(na), m),
            masked_hsic(&own(nb), m),
        );
        cknna = match aa * bb > 0.0 {
            true => Some(ab / (aa * bb).sqrt()),
            false => {
                notes.push(
                    "CKNNA is undefined: a representation's own masked HSIC is not positive".into(),
                );
                None
            }
        };
    }
    SampledSimilarity {
        rbf_cka,
        mutual_knn,
        cknna,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    fn measures(x: &Array2<f64>, y: &Array2<f64>, options: &SampleOptions) -> SampledSimilarity {
        sampled_similarity(
            &SampledRepresentation::of(x.view(), options).unwrap(),
            &SampledRepresentation::of(y.view(), options).unwrap(),
        )
    }

    /// The same rows give 1 everywhere; a rotation and a scale leave every measure at 1 (RBF
    /// CKA also a translation); unrelated rows score far below.
    #[test]
    fn ideals_invariances_and_unrelated_rows() {
        let options = SampleOptions::default();
        let x = pseudo_random(80, 6, 1);
        let same = measures(&x, &x, &options);
        for v in [same.rbf_cka, same.mutual_knn, same.cknna] {
            assert!((v.unwrap() - 1.0).abs() < 1e-12, "{v:?}");
        }
        // Swap two columns and flip a sign (a rotation), scale by 3.
        let mut rotated = x.select(Axis(1), &[1, 0, 2, 3, 4, 5]) * 3.0;
        rotated.column_mut(0).mapv_inplace(|v| -v);
        let r = measures(&x, &rotated, &options);
        for v in [r.rbf_cka, r.mutual_knn, r.cknna] {
            assert!((v.unwrap() - 1.0).abs() < 1e-12, "{v:?}");
        }
        let shifted = measures(&x, &(x.clone() + 5.0), &options);
        assert!((shifted.rbf_cka.unwrap() - 1.0).abs() < 1e-12);
        let other = measures(&x, &pseudo_random(80, 6, 2), &options);
        assert!(other.rbf_cka.unwrap() < 0.5 && other.mutual_knn.unwrap() < 0.5);
        assert!(other.cknna.unwrap() < 0.5);
    }

    /// Rows of any finite scale give the measures of the unscaled rows (the RBF sample is
    /// scaled by a power of two), from 1e-300 to 1e200 (whose squares overflow).
    #[test]
    fn extreme_scales_give_the_same_values() {
        let options = SampleOptions::default();
        let (x, y) = (pseudo_random(60, 4, 5), pseudo_random(60, 3, 6));
        let want = measures(&x, &y, &options);
        for scale in [1e-300, 1e-150, 1e150, 1e200] {
            let got = measures(&(&x * scale), &(&y * scale), &options);
            let pairs = [
                (got.rbf_cka, want.rbf_cka),
                (got.mutual_knn, want.mutual_knn),
                (got.cknna, want.cknna),
            ];
            for (g, w) in pairs {
                assert!(
                    (g.unwrap() - w.unwrap()).abs() < 1e-12,
                    "{scale}: {g:?} {w:?}"
                );
            }
        }
    }

    /// A sample smaller than the rows uses the same rows in both inputs; bad options and too
    /// few rows are refused or noted.
    #[test]
    fn samples_and_refusals() {
        let x = pseudo_random(300, 5, 3);
        let options = SampleOptions {
            rbf_rows: 50,
            neighbour_rows: 60,
            ..SampleOptions::default()
        };
        let same = measures(&x, &x, &options);
        assert!((same.mutual_knn.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(sampled_rows(300, 60, 0).len(), 60);
        let bad = SampleOptions {
            k: 1,
            ..SampleOptions::default()
        };
        assert!(SampledRepresentation::of(x.view(), &bad).is_err());
        let few = measures(&pseudo_random(5, 3, 1), &pseudo_random(5, 3, 2), &options);
        assert!(few.mutual_knn.is_none() && few.notes[0].contains("sampled rows"));
        let duplicates = Array2::<f64>::ones((10, 3));
        let d = measures(&duplicates, &duplicates, &options);
        assert!(d.rbf_cka.is_none());
    }
}
