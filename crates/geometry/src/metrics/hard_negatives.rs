//! A hard-negative profile (Robinson et al., ICLR 2021, "Contrastive Learning with Hard
//! Negative Samples"): for each anchor (a kNN query), its hardest negatives are the other
//! items most similar to it, as in an unsupervised contrastive batch where every other item is
//! a negative. The profile gives their cosine quantiles, the margin to the anchor's positive
//! (its other view) where views are given, and, with labels, how often the hardest negatives
//! share the anchor's label: the false negatives that Chuang et al.'s and Robinson et al.'s
//! debiasing `tau+` models.

use crate::metrics::knn::TopK;
use serde::{Deserialize, Serialize};

/// Hardest negatives examined per anchor (fewer when the search found fewer).
pub const HARD_NEGATIVE_K: usize = 10;

/// Bins of the cosine histograms on [-1, 1].
pub const HARD_NEGATIVE_BINS: usize = 50;

/// The quantiles reported, as fractions.
pub const QUANTILE_LEVELS: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

/// Quantiles of a set of values at [`QUANTILE_LEVELS`] (linear interpolation between order
/// statistics, NumPy's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// The values at 5%, 25%, 50%, 75% and 95%.
    pub values: Vec<f64>,
    /// Their mean.
    pub mean: f64,
}

impl Quantiles {
    /// The quantiles of `values` (at least one).
    pub fn of(values: &[f64]) -> Quantiles {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let last = sorted.len() - 1;
        let at = |q: f64| {
            let position = q * last as f64;
            let low = position.floor() as usize;
            let high = (low + 1).min(last);
            sorted[low] + (position - low as f64) * (sorted[high] - sorted[low])
        };
        Quantiles {
            values: QUANTILE_LEVELS.iter().map(|&q| at(q)).collect(),
            mean: values.iter().sum::<f64>() / values.len() as f64,
        }
    }

    /// The median.
    pub fn median(&self) -> f64 {
        self.values[2]
    }
}

/// The profile of the anchors' hardest negatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardNegatives {
    /// Anchors profiled (the kNN queries).
    pub anchors: usize,
    /// Hardest negatives examined per anchor.
    pub k: usize,
    /// Cosine of each anchor's hardest negative `s-_(1)`, over the anchors.
    pub hardest: Quantiles,
    /// Cosine of each anchor's k-th hardest negative `s-_(k)`.
    pub kth: Quantiles,
    /// Cosine of each anchor's positive `s+` (its row in the other view), with views.
    pub positive: Option<Quantiles>,
    /// Mean margin `s+ - s-_(1)`, with views.
    pub margin: Option<f64>,
    /// Fraction of anchors whose hardest negative is closer than their positive
    /// (`s-_(1) > s+`), with views.
    pub violations: Option<f64>,
    /// Fraction of the anchors whose hardest negative has their label, with labels.
    pub false_negative_hardest: Option<f64>,
    /// Fraction of the anchors' k hardest negatives that have their label, with labels.
    pub false_negative_top_k: Option<f64>,
    /// Histograms on [-1, 1] in [`HARD_NEGATIVE_BINS`] bins: `s-_(1)`, `s-_(k)` and `s+`
    /// (empty without views).
    pub histograms: [Vec<u64>; 3],
}

/// Counts of `values` in [`HARD_NEGATIVE_BINS`] equal bins on [-1, 1] (values outside clamp
/// to the end bins).
fn histogram(values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; HARD_NEGATIVE_BINS];
    let bins = HARD_NEGATIVE_BINS as f64;
    for v in values {
        let bin = (((v + 1.0) / 2.0) * bins).floor().clamp(0.0, bins - 1.0) as usize;
        counts[bin] += 1;
    }
    counts
}

/// The profile of the anchors' neighbour lists `tops` (best first, the anchor itself left out),
/// whose similarities are cosines (unit rows). `positives[q]`: the cosine of anchor q to its
/// positive; `labels`: the anchors' own labels (the neighbours carry theirs). `None` when no
/// anchor has a neighbour.
pub fn hard_negatives(
    tops: &[TopK],
    positives: Option<&[f64]>,
    labels: Option<&[u32]>,
) -> Option<HardNegatives> {
    let k = tops
        .iter()
        .map(|t| t.items().len())
        .min()?
        .min(HARD_NEGATIVE_K);
    if k == 0 {
        return None;
    }
    let hardest: Vec<f64> = tops.iter().map(|t| t.items()[0].sim).collect();
    let kth: Vec<f64> = tops.iter().map(|t| t.items()[k - 1].sim).collect();
    let anchors = tops.len() as f64;
    let (positive, margin, violations) = match positives {
        Some(p) => (
            Some(Quantiles::of(p)),
            Some(p.iter().zip(&hardest).map(|(s, h)| s - h).sum::<f64>() / anchors),
            Some(p.iter().zip(&hardest).filter(|(s, h)| h > s).count() as f64 / anchors),
        ),
        None => (None, None, None),
    };
    let (false_negative_hardest, false_negative_top_k) = match labels {
        Some(labels) => {
            let same = |top: &TopK, label: u32, count: usize| {
                top.items()[..count]
                    .iter()
                    .filter(|m| m.label == label)
                    .count()
            };
            let hardest = tops.iter().zip(labels).map(|(t, &l)| same(t, l, 1));
            let top_k = tops.iter().zip(labels).map(|(t, &l)| same(t, l, k));
            (
                Some(hardest.sum::<usize>() as f64 / anchors),
                Some(top_k.sum::<usize>() as f64 / (anchors * k as f64)),
            )
        }
        None => (None, None),
    };
    Some(HardNegatives {
        anchors: tops.len(),
        k,
        histograms: [
            histogram(&hardest),
            histogram(&kth),
            positives.map(histogram).unwrap_or_default(),
        ],
        hardest: Quantiles::of(&hardest),
        kth: Quantiles::of(&kth),
        positive,
        margin,
        violations,
        false_negative_hardest,
        false_negative_top_k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::knn::Neighbour;

    fn top(sims: &[(f64, u32)]) -> TopK {
        let mut t = TopK::new(sims.len());
        for (i, &(sim, label)) in sims.iter().enumerate() {
            t.offer(Neighbour {
                sim,
                squared_distance: 2.0 - 2.0 * sim,
                index: i as u64,
                label,
            });
        }
        t
    }

    #[test]
    fn quantiles_interpolate_as_numpy() {
        let q = Quantiles::of(&[3.0, 1.0, 2.0, 4.0, 5.0]);
        // numpy.quantile([1..5], [.05, .25, .5, .75, .95]) = 1.2, 2, 3, 4, 4.8
        let want = [1.2, 2.0, 3.0, 4.0, 4.8];
        for (g, w) in q.values.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        assert_eq!(q.mean, 3.0);
    }

    #[test]
    fn profile_of_two_anchors() {
        let tops = [
            top(&[(0.9, 0), (0.5, 1), (0.1, 0)]),
            top(&[(0.7, 1), (0.6, 1), (0.2, 1)]),
        ];
        let got = hard_negatives(&tops, Some(&[0.8, 0.95]), Some(&[0, 1])).unwrap();
        assert_eq!(got.k, 3);
        assert_eq!(got.hardest.values[2], 0.8);
        assert_eq!(got.kth.values[2], 0.15000000000000002);
        assert!((got.margin.unwrap() - (-0.1 + 0.25) / 2.0).abs() < 1e-12);
        assert_eq!(got.violations, Some(0.5));
        assert_eq!(got.false_negative_hardest, Some(1.0));
        assert!((got.false_negative_top_k.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(got.histograms[0].iter().sum::<u64>(), 2);
        assert_eq!(got.histograms[2].iter().sum::<u64>(), 2);
        let unlabelled = hard_negatives(&tops, None, None).unwrap();
        assert_eq!(unlabelled.margin, None);
        assert_eq!(unlabelled.false_negative_top_k, None);
        assert!(unlabelled.histograms[2].is_empty());
    }

    #[test]
    fn no_neighbours_no_profile() {
        assert_eq!(hard_negatives(&[], None, None), None);
        assert_eq!(hard_negatives(&[TopK::new(3)], None, None), None);
    }
}
