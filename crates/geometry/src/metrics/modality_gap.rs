//! The modality gap (Liang et al., NeurIPS 2022, "Mind the Gap") between two sets of paired
//! embeddings, and its later variants, all from sums over the rows (O(N D), mergeable):
//! the distance between the centroids of the unit rows (Liang's gap, Schrodi et al.'s L2M), the
//! gap vector's largest components, the centroid cosine distance of the raw rows (as MTEB's
//! analysis script computes it), the mean distance of the matched pairs (L2I) and Schrodi et
//! al.'s relative modality gap (RMG, ICLR 2025) in both of their conventions, and each set's
//! cone (its exact mean pairwise cosine).

use crate::error::{GeometryError, Result};
use crate::metrics::real::Real;
use crate::metrics::retrieval::PairMap;
use crate::metrics::spectrum::column_means;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

/// The floor of RMG's matching term (Schrodi et al.'s code).
pub const RMG_MATCH_FLOOR: f64 = 1e-3;

/// Gap-vector components reported.
pub const GAP_COMPONENTS: usize = 10;

/// What the gap measurements need of one set: its rows' count, the sum of its unit rows and
/// the mean of its raw rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetSums {
    /// Rows.
    pub rows: usize,
    /// `sum_i u_i` of the unit rows.
    #[serde(with = "crate::kernels::serde_rows::vector")]
    pub unit_sum: Array1<f64>,
    /// `sum_i ||u_i||^2` (N for unit rows).
    pub unit_squares: f64,
    /// Mean of the raw rows.
    #[serde(with = "crate::kernels::serde_rows::vector")]
    pub raw_mean: Array1<f64>,
}

impl SetSums {
    /// The sums of `unit` rows (their normalised form) and of the `raw` rows.
    pub fn of<F: Real>(unit: ArrayView2<F>, raw: ArrayView2<F>) -> SetSums {
        let d = unit.ncols();
        let mut unit_sum = Array1::<f64>::zeros(d);
        let mut unit_squares = 0.0;
        for row in unit.rows() {
            for (s, v) in unit_sum.iter_mut().zip(row.iter()) {
                *s += v.as_f64();
            }
            unit_squares += row.iter().map(|v| v.as_f64() * v.as_f64()).sum::<f64>();
        }
        SetSums {
            rows: unit.nrows(),
            unit_sum,
            unit_squares,
            raw_mean: column_means(raw),
        }
    }

    /// Add the sums of other rows of the same set (another shard).
    pub fn add(&mut self, other: &SetSums) {
        let (n, m) = (self.rows as f64, other.rows as f64);
        if self.rows + other.rows > 0 {
            self.raw_mean = (&self.raw_mean * n + &other.raw_mean * m) / (n + m);
        }
        self.rows += other.rows;
        self.unit_sum += &other.unit_sum;
        self.unit_squares += other.unit_squares;
    }

    /// The centroid of the unit rows.
    fn centroid(&self) -> Array1<f64> {
        &self.unit_sum / self.rows as f64
    }

    /// The mean cosine over ordered pairs `i != j`: `(||sum u||^2 - sum ||u||^2) / (N (N - 1))`.
    pub fn cone(&self) -> Option<f64> {
        let n = self.rows as f64;
        (self.rows >= 2)
            .then(|| (self.unit_sum.dot(&self.unit_sum) - self.unit_squares) / (n * (n - 1.0)))
    }
}

/// The matched pairs' sums: `sum ||a_pi(j) - b_j||` and `sum a_pi(j) . b_j` over the pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairSums {
    /// Pairs.
    pub pairs: usize,
    /// `sum_j ||a_pi(j) - b_j||` of the unit rows.
    pub distance: f64,
    /// `sum_j a_pi(j) . b_j` of the unit rows.
    pub cosine: f64,
}

impl PairSums {
    /// Add the sums of other pairs (another shard).
    pub fn add(&mut self, other: &PairSums) {
        self.pairs += other.pairs;
        self.distance += other.distance;
        self.cosine += other.cosine;
    }

    /// The sums over the pairs of `map` (unit rows).
    pub fn of<F: Real>(a: ArrayView2<F>, b: ArrayView2<F>, map: &PairMap) -> PairSums {
        let (mut distance, mut cosine) = (0.0, 0.0);
        for (j, &i) in map.of_b.iter().enumerate() {
            let (x, y) = (a.row(i), b.row(j));
            let (mut sq, mut dot) = (0.0f64, 0.0f64);
            for (u, v) in x.iter().zip(y.iter()) {
                let (u, v) = (u.as_f64(), v.as_f64());
                sq += (u - v) * (u - v);
                dot += u * v;
            }
            distance += sq.sqrt();
            cosine += dot;
        }
        PairSums {
            pairs: map.of_b.len(),
            distance,
            cosine,
        }
    }
}

/// A component of the gap vector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GapComponent {
    /// The dimension.
    pub dimension: usize,
    /// `m_A[d] - m_B[d]` of the unit rows' centroids.
    pub difference: f64,
    /// Its share of `||m_A - m_B||^2`.
    pub share: f64,
}

/// The gap between two sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalityGap {
    /// `||m_A - m_B||`, `m` the centroid of a set's unit rows (Liang et al.; Schrodi's L2M).
    pub distance: f64,
    /// The largest components of `m_A - m_B` by magnitude.
    pub components: Vec<GapComponent>,
    /// `1 - cos(mean raw A, mean raw B)` (MTEB's analysis script).
    pub centroid_cosine_distance: f64,
    /// Mean `||a_pi(j) - b_j||` over the matched pairs of unit rows (Schrodi's L2I).
    pub l2i: f64,
    /// Mean cosine of the matched pairs.
    pub pair_cosine: f64,
    /// Schrodi et al.'s RMG, analysis convention: off-diagonal within-set means.
    pub rmg: f64,
    /// RMG as their training code computes it: within-set means over the full matrices,
    /// diagonal included.
    pub rmg_training: f64,
    /// Mean pairwise cosine within A and within B (each set's cone).
    pub cones: (f64, f64),
}

/// The gap from the sums of the two sets and of their pairs. Both sets need two rows.
pub fn modality_gap(a: &SetSums, b: &SetSums, pairs: &PairSums) -> Result<ModalityGap> {
    let (Some(cone_a), Some(cone_b)) = (a.cone(), b.cone()) else {
        return Err(GeometryError::TooFewRows {
            metric: "modality gap (two rows per set)",
            needed: 2,
            got: a.rows.min(b.rows),
        });
    };
    let gap = a.centroid() - b.centroid();
    let squared = gap.dot(&gap);
    let mut order: Vec<usize> = (0..gap.len()).collect();
    order.sort_by(|&x, &y| gap[y].abs().total_cmp(&gap[x].abs()).then(x.cmp(&y)));
    let components = order
        .iter()
        .take(GAP_COMPONENTS)
        .map(|&dimension| GapComponent {
            dimension,
            difference: gap[dimension],
            share: match squared > 0.0 {
                true => gap[dimension] * gap[dimension] / squared,
                false => 0.0,
            },
        })
        .collect();
    let raw_cos = {
        let (x, y) = (&a.raw_mean, &b.raw_mean);
        let norms = (x.dot(x) * y.dot(y)).sqrt();
        match norms > 0.0 {
            true => x.dot(y) / norms,
            false => 0.0,
        }
    };
    let pair_cosine = pairs.cosine / pairs.pairs as f64;
    let matching = ((1.0 - pair_cosine) / 2.0).max(RMG_MATCH_FLOOR);
    let rmg_of =
        |ca: f64, cb: f64| matching / (matching + ((1.0 - ca) / 2.0 + (1.0 - cb) / 2.0) / 2.0);
    let full = |s: &SetSums| s.unit_sum.dot(&s.unit_sum) / (s.rows as f64 * s.rows as f64);
    Ok(ModalityGap {
        distance: squared.sqrt(),
        components,
        centroid_cosine_distance: 1.0 - raw_cos,
        l2i: pairs.distance / pairs.pairs as f64,
        pair_cosine,
        rmg: rmg_of(cone_a, cone_b),
        rmg_training: rmg_of(full(a), full(b)),
        cones: (cone_a, cone_b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;
    use ndarray::Array2;

    fn unit(x: &Array2<f64>) -> Array2<f64> {
        let mut x = x.clone();
        for mut row in x.rows_mut() {
            let n = row.dot(&row).sqrt();
            row /= n;
        }
        x
    }

    #[test]
    fn equals_schrodis_matrices_on_a_toy() {
        // Seven random unit pairs in D = 4, as the landscape's check; written out with the
        // N x N matrices the reference code builds.
        let raw_a = pseudo_random(7, 4, 1);
        let raw_b = pseudo_random(7, 4, 2);
        let (a, b) = (unit(&raw_a), unit(&raw_b));
        let map = PairMap::identity(7);
        let gap = modality_gap(
            &SetSums::of(a.view(), raw_a.view()),
            &SetSums::of(b.view(), raw_b.view()),
            &PairSums::of(a.view(), b.view(), &map),
        )
        .unwrap();
        let p = (0..7).map(|i| a.row(i).dot(&b.row(i))).sum::<f64>() / 7.0;
        let off = |x: &Array2<f64>| {
            let g = x.dot(&x.t());
            (g.sum() - g.diag().sum()) / 42.0
        };
        let full = |x: &Array2<f64>| x.dot(&x.t()).sum() / 49.0;
        let m = ((1.0 - p) / 2.0).max(1e-3);
        let rmg = m / (m + ((1.0 - off(&a)) / 2.0 + (1.0 - off(&b)) / 2.0) / 2.0);
        let rmg_training = m / (m + ((1.0 - full(&a)) / 2.0 + (1.0 - full(&b)) / 2.0) / 2.0);
        assert!((gap.rmg - rmg).abs() < 1e-14 && (gap.rmg_training - rmg_training).abs() < 1e-14);
        let centroid = |x: &Array2<f64>| x.mean_axis(ndarray::Axis(0)).unwrap();
        let delta = centroid(&a) - centroid(&b);
        assert!((gap.distance - delta.dot(&delta).sqrt()).abs() < 1e-14);
        let l2i = (0..7)
            .map(|i| (&a.row(i) - &b.row(i)).mapv(|v| v * v).sum().sqrt())
            .sum::<f64>()
            / 7.0;
        assert!((gap.l2i - l2i).abs() < 1e-14);
        let (ra, rb) = (centroid(&raw_a), centroid(&raw_b));
        let cos = ra.dot(&rb) / (ra.dot(&ra) * rb.dot(&rb)).sqrt();
        assert!((gap.centroid_cosine_distance - (1.0 - cos)).abs() < 1e-14);
        assert_eq!(gap.components.len(), 4);
        let shares: f64 = gap.components.iter().map(|c| c.share).sum();
        assert!((shares - 1.0).abs() < 1e-12);
        assert!(gap.components[0].difference.abs() >= gap.components[1].difference.abs());
    }

    #[test]
    fn a_shifted_copy_has_the_shift_as_its_gap() {
        let raw = pseudo_random(500, 6, 3);
        let a = unit(&raw);
        let mut shifted = raw.clone();
        shifted.column_mut(2).mapv_inplace(|v| v + 3.0);
        let b = unit(&shifted);
        let gap = modality_gap(
            &SetSums::of(a.view(), raw.view()),
            &SetSums::of(b.view(), shifted.view()),
            &PairSums::of(a.view(), b.view(), &PairMap::identity(500)),
        )
        .unwrap();
        assert_eq!(gap.components[0].dimension, 2);
        assert!(gap.components[0].share > 0.5);
        assert!(
            gap.cones.1 > gap.cones.0,
            "the shifted set is the narrower cone"
        );
        let same = modality_gap(
            &SetSums::of(a.view(), raw.view()),
            &SetSums::of(a.view(), raw.view()),
            &PairSums::of(a.view(), a.view(), &PairMap::identity(500)),
        )
        .unwrap();
        assert_eq!(same.distance, 0.0);
        assert!(same.l2i < 1e-7 && same.rmg < 0.01);
    }

    #[test]
    fn one_row_is_an_error() {
        let x = pseudo_random(1, 3, 1);
        let s = SetSums::of(x.view(), x.view());
        let p = PairSums::of(x.view(), x.view(), &PairMap::identity(1));
        assert!(modality_gap(&s, &s, &p).is_err());
    }
}
