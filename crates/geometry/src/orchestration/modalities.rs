//! Paired modalities (image and text, say): the gap between them, exact retrieval both ways,
//! the contrastive objectives over all pairs, and Liang et al.'s shift experiment (retrieval
//! and loss again after the sets' centroids are moved toward each other), each a timed stage.

use crate::error::{GeometryError, Result};
use crate::kernels::rows::normalize_rows;
use crate::kernels::timings::{gemm_work, Timings, Work};
use crate::metrics::modality_gap::{modality_gap, ModalityGap, PairSums, SetSums};
use crate::metrics::real::Real;
use crate::metrics::retrieval::{retrieval, ObjectiveParameters, PairMap, RetrievalSummary};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// The fractions of the gap the shift experiment closes by default.
pub const DEFAULT_SHIFTS: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

/// Retrieval and objectives of one configuration of the two sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedRetrieval {
    /// Rows of the first set as queries against the second.
    pub a_to_b: RetrievalSummary,
    /// Rows of the second set as queries against the first.
    pub b_to_a: RetrievalSummary,
    /// CLIP's symmetric InfoNCE over all pairs (1:1 pairs only).
    pub info_nce: Option<f64>,
    /// SigLIP's sigmoid loss over all pairs (1:1 pairs only).
    pub siglip: Option<f64>,
}

/// One step of the shift experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftStep {
    /// The fraction of the centroid difference closed (1 = each set moved half-way, onto the
    /// other's centroid before renormalisation).
    pub fraction: f64,
    /// The gap distance after the shift and renormalisation.
    pub distance: f64,
    /// Retrieval and objectives after it.
    pub retrieval: PairedRetrieval,
}

/// Two paired sets measured together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossModal {
    /// The sets' names (the first, the second).
    pub names: (String, String),
    /// Rows of each set.
    pub rows: (usize, usize),
    /// The gap.
    pub gap: ModalityGap,
    /// Retrieval and objectives as the rows are.
    pub retrieval: PairedRetrieval,
    /// The objectives' parameters.
    pub parameters: ObjectiveParameters,
    /// The shift experiment, in the order of its fractions.
    pub shift: Vec<ShiftStep>,
}

/// Retrieval and objectives of `a` and `b` (unit rows) under `map`.
fn paired_retrieval<F: Real>(
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    map: &PairMap,
    parameters: &ObjectiveParameters,
) -> Result<PairedRetrieval> {
    let r = retrieval(a, b, map, parameters)?;
    Ok(PairedRetrieval {
        a_to_b: r.a_to_b.summary(),
        b_to_a: r.b_to_a.summary(),
        info_nce: r.info_nce,
        siglip: r.siglip,
    })
}

/// The work of retrieval both ways between `a` and `b` rows of `d` dimensions: two GEMMs of
/// `2 N_a N_b D`.
fn retrieval_work<F: Real>(a: usize, b: usize, d: usize) -> Work {
    gemm_work::<F>(2.0 * a as f64, b as f64, d as f64)
}

/// `x - c 1^T` (or `+`) row by row, renormalised.
fn shifted<F: Real>(
    x: ArrayView2<F>,
    shift: &ndarray::Array1<f64>,
    sign: f64,
) -> Result<Array2<F>> {
    let moved = Array2::from_shape_fn(x.dim(), |(i, k)| {
        F::from_f64(x[[i, k]].as_f64() + sign * shift[k])
    });
    normalize_rows(moved.view())
}

/// The sets `a` and `b` (unit rows; `raw` their rows as given, for the centroid cosine
/// distance) named `names`, paired by `map`: the gap, retrieval and objectives, and the shift
/// experiment at `shifts` (fractions of the gap closed: each set moved by `fraction/2` of the
/// difference of the unit centroids `m_a - m_b` toward the other, then renormalised).
#[allow(clippy::too_many_arguments)]
pub fn cross_modal<F: Real>(
    names: (&str, &str),
    (a, a_raw): (ArrayView2<F>, ArrayView2<F>),
    (b, b_raw): (ArrayView2<F>, ArrayView2<F>),
    map: &PairMap,
    parameters: &ObjectiveParameters,
    shifts: &[f64],
    timings: &Timings,
) -> Result<CrossModal> {
    if a.ncols() != b.ncols() {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "modalities {} and {} have {} and {} dimensions",
                names.0,
                names.1,
                a.ncols(),
                b.ncols()
            ),
        });
    }
    let d = a.ncols();
    let bytes = ((a.nrows() + b.nrows()) * d * std::mem::size_of::<F>()) as f64;
    let (sums_a, sums_b) = timings.time("modality gap", Work::Bytes(2.0 * bytes), || {
        (SetSums::of(a, a_raw), SetSums::of(b, b_raw))
    });
    let pairs = PairSums::of(a, b, map);
    let gap = modality_gap(&sums_a, &sums_b, &pairs)?;
    let work = retrieval_work::<F>(a.nrows(), b.nrows(), d);
    let now = timings.time("retrieval", work, || {
        paired_retrieval(a, b, map, parameters)
    })?;
    let difference =
        sums_a.unit_sum.clone() / a.nrows() as f64 - &sums_b.unit_sum / b.nrows() as f64;
    let mut shift = Vec::with_capacity(shifts.len());
    for &fraction in shifts {
        if !(fraction.is_finite() && (0.0..=2.0).contains(&fraction)) {
            return Err(GeometryError::InvalidParameter {
                name: "shift",
                value: fraction,
                reason: "must be in [0, 2]",
            });
        }
        let half = &difference * (fraction / 2.0);
        let step = timings.time(
            "shift experiment",
            retrieval_work::<F>(a.nrows(), b.nrows(), d),
            || -> Result<ShiftStep> {
                let (a2, b2) = (shifted(a, &half, -1.0)?, shifted(b, &half, 1.0)?);
                let centroid =
                    |x: &Array2<F>| x.mapv(|v| v.as_f64()).mean_axis(Axis(0)).expect("rows");
                let delta = centroid(&a2) - centroid(&b2);
                Ok(ShiftStep {
                    fraction,
                    distance: delta.dot(&delta).sqrt(),
                    retrieval: paired_retrieval(a2.view(), b2.view(), map, parameters)?,
                })
            },
        )?;
        shift.push(step);
    }
    Ok(CrossModal {
        names: (names.0.to_string(), names.1.to_string()),
        rows: (a.nrows(), b.nrows()),
        gap,
        retrieval: now,
        parameters: *parameters,
        shift,
    })
}

/// The gap distances `||m_i - m_j||` between every two of several sets (their sums).
pub fn gap_matrix(sets: &[SetSums]) -> Array2<f64> {
    let centroids: Vec<_> = sets.iter().map(|s| &s.unit_sum / s.rows as f64).collect();
    Array2::from_shape_fn((sets.len(), sets.len()), |(i, j)| {
        let delta = &centroids[i] - &centroids[j];
        delta.dot(&delta).sqrt()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    #[test]
    fn closing_the_gap_moves_the_centroids_together() {
        let n = 300;
        let raw_a = pseudo_random(n, 12, 1);
        let mut raw_b = &raw_a + &(pseudo_random(n, 12, 2) * 0.5);
        raw_b.column_mut(0).mapv_inplace(|v| v + 2.0);
        let (a, b) = (
            normalize_rows(raw_a.view()).unwrap(),
            normalize_rows(raw_b.view()).unwrap(),
        );
        let timings = Timings::default();
        let got = cross_modal(
            ("image", "text"),
            (a.view(), raw_a.view()),
            (b.view(), raw_b.view()),
            &PairMap::identity(n),
            &ObjectiveParameters::default(),
            &DEFAULT_SHIFTS,
            &timings,
        )
        .unwrap();
        assert_eq!(got.gap.components[0].dimension, 0);
        let distances: Vec<f64> = got.shift.iter().map(|s| s.distance).collect();
        assert!(distances[0] < got.gap.distance);
        assert!(distances.windows(2).all(|w| w[1] < w[0]), "{distances:?}");
        assert!(distances[3] < 0.2 * got.gap.distance);
        assert!(got.retrieval.info_nce.is_some());
        let stages: Vec<String> = timings.stages().iter().map(|s| s.stage.clone()).collect();
        assert!(stages.contains(&"retrieval".to_string()));
        assert_eq!(
            stages.iter().filter(|s| *s == "shift experiment").count(),
            4
        );
        let m = gap_matrix(&[
            SetSums::of(a.view(), raw_a.view()),
            SetSums::of(b.view(), raw_b.view()),
            SetSums::of(a.view(), raw_a.view()),
        ]);
        assert!((m[[0, 1]] - got.gap.distance).abs() < 1e-12 && m[[0, 2]] == 0.0);
        assert_eq!(m[[1, 0]], m[[0, 1]]);
    }

    #[test]
    fn different_widths_are_an_error() {
        let a = pseudo_random(5, 3, 1);
        let b = pseudo_random(5, 4, 1);
        let error = cross_modal(
            ("a", "b"),
            (a.view(), a.view()),
            (b.view(), b.view()),
            &PairMap::identity(5),
            &ObjectiveParameters::default(),
            &[],
            &Timings::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("3 and 4 dimensions"), "{error}");
    }
}
