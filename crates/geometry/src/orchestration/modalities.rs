//! Paired modalities (image and text, say): the gap between them, exact retrieval both ways,
//! the contrastive objectives over all pairs, and Liang et al.'s shift experiment (retrieval
//! and loss again after the sets' centroids are moved toward each other), each a timed stage.

use crate::error::{GeometryError, Result};
use crate::kernels::rows::normalize_rows;
use crate::kernels::timings::{gemm_work, Timings, Work};
use crate::metrics::modality_gap::{modality_gap, ModalityGap, PairSums, SetSums};
use crate::metrics::real::Real;
use crate::metrics::retrieval::{
    retrieval, sharded_retrieval, ObjectiveParameters, PairMap, RetrievalSummary,
};
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
    same_width(names, a.ncols(), b.ncols())?;
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
    check_shifts(shifts)?;
    let mut shift = Vec::with_capacity(shifts.len());
    for &fraction in shifts {
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

/// One shard of one set: its unit rows and its rows as given (`None`: the same rows).
pub type ShardRows<F> = (Array2<F>, Option<Array2<F>>);

/// Shard `k` of set `set` (0 or 1), loaded on demand.
pub type ShardLoader<'a, F> = &'a (dyn Fn(usize, usize) -> Result<ShardRows<F>> + Sync);

/// [`cross_modal`] of two sets held as row-matched shards, 1:1 (row i of shard k of one set
/// with row i of shard k of the other, `shard_rows[k]` rows each), loaded by `load(set, k)`:
/// the gap from sums merged shard by shard, retrieval and the objectives with every query
/// shard against every gallery shard ([`crate::sharded_retrieval`]), the shift experiment by
/// moving each loaded shard. Equal to the one-set measurement (ranks exactly, the rest to
/// rounding).
pub fn cross_modal_sharded<F: Real>(
    names: (&str, &str),
    shard_rows: &[usize],
    load: ShardLoader<F>,
    parameters: &ObjectiveParameters,
    shifts: &[f64],
    timings: &Timings,
) -> Result<CrossModal> {
    check_shifts(shifts)?;
    let rows: usize = shard_rows.iter().sum();
    let (mut sums, mut pairs): (Option<(SetSums, SetSums)>, Option<PairSums>) = (None, None);
    let mut d = 0;
    for (k, &n) in shard_rows.iter().enumerate() {
        let ((a, a_raw), (b, b_raw)) = (load(0, k)?, load(1, k)?);
        if a.nrows() != n || b.nrows() != n {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "shard {k}: {} has {} rows and {} has {}; sharded modalities pair row i of shard k of one with row i of shard k of the other",
                    names.0,
                    a.nrows(),
                    names.1,
                    b.nrows()
                ),
            });
        }
        same_width(names, a.ncols(), b.ncols())?;
        d = a.ncols();
        let bytes = (2 * n * d * std::mem::size_of::<F>()) as f64;
        let (sa, sb) = timings.time("modality gap", Work::Bytes(2.0 * bytes), || {
            (
                SetSums::of(a.view(), a_raw.as_ref().unwrap_or(&a).view()),
                SetSums::of(b.view(), b_raw.as_ref().unwrap_or(&b).view()),
            )
        });
        let p = PairSums::of(a.view(), b.view(), &PairMap::identity(n));
        match (&mut sums, &mut pairs) {
            (Some((ta, tb)), Some(tp)) => {
                ta.add(&sa);
                tb.add(&sb);
                tp.add(&p);
            }
            _ => {
                sums = Some((sa, sb));
                pairs = Some(p);
            }
        }
    }
    let (Some((sums_a, sums_b)), Some(pairs)) = (sums, pairs) else {
        return Err(GeometryError::TooFewRows {
            metric: "sharded modalities (shards)",
            needed: 1,
            got: 0,
        });
    };
    let gap = modality_gap(&sums_a, &sums_b, &pairs)?;
    let unit = |set: usize, k: usize| load(set, k).map(|(u, _)| u);
    let measured = |load: &(dyn Fn(usize, usize) -> Result<Array2<F>> + Sync)| {
        sharded_retrieval(shard_rows, load, parameters).map(|r| PairedRetrieval {
            a_to_b: r.a_to_b.summary(),
            b_to_a: r.b_to_a.summary(),
            info_nce: r.info_nce,
            siglip: r.siglip,
        })
    };
    let now = timings.time("retrieval", retrieval_work::<F>(rows, rows, d), || {
        measured(&unit)
    })?;
    let difference = sums_a.unit_sum.clone() / rows as f64 - &sums_b.unit_sum / rows as f64;
    let mut shift = Vec::with_capacity(shifts.len());
    for &fraction in shifts {
        let half = &difference * (fraction / 2.0);
        let sign = [-1.0, 1.0];
        let moved = |set: usize, k: usize| shifted(unit(set, k)?.view(), &half, sign[set]);
        let step = timings.time(
            "shift experiment",
            retrieval_work::<F>(rows, rows, d),
            || -> Result<ShiftStep> {
                let mut centroids = [ndarray::Array1::<f64>::zeros(d), ndarray::Array1::zeros(d)];
                for k in 0..shard_rows.len() {
                    for (set, centroid) in centroids.iter_mut().enumerate() {
                        *centroid += &moved(set, k)?.mapv(|v| v.as_f64()).sum_axis(Axis(0));
                    }
                }
                let delta = (&centroids[0] - &centroids[1]) / rows as f64;
                Ok(ShiftStep {
                    fraction,
                    distance: delta.dot(&delta).sqrt(),
                    retrieval: measured(&moved)?,
                })
            },
        )?;
        shift.push(step);
    }
    Ok(CrossModal {
        names: (names.0.to_string(), names.1.to_string()),
        rows: (rows, rows),
        gap,
        retrieval: now,
        parameters: *parameters,
        shift,
    })
}

/// Retrieval and the gap need both modalities in one space: the same D.
fn same_width(names: (&str, &str), a: usize, b: usize) -> Result<()> {
    match a == b {
        true => Ok(()),
        false => Err(GeometryError::ShapeMismatch {
            what: format!(
                "modalities {} and {} have {a} and {b} dimensions",
                names.0, names.1
            ),
        }),
    }
}

/// Every fraction of the shift experiment in `[0, 2]`.
fn check_shifts(shifts: &[f64]) -> Result<()> {
    match shifts
        .iter()
        .find(|f| !(f.is_finite() && (0.0..=2.0).contains(*f)))
    {
        Some(&fraction) => Err(GeometryError::InvalidParameter {
            name: "shift",
            value: fraction,
            reason: "must be in [0, 2]",
        }),
        None => Ok(()),
    }
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
