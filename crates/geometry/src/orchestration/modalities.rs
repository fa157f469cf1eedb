//! Paired modalities (image and text, say): the gap between them, exact retrieval both ways,
//! the contrastive objectives over all pairs, and Liang et al.'s shift experiment (retrieval
//! and loss again after the sets' centroids are moved toward each other), each a timed stage.

use crate::error::{GeometryError, Result};
use crate::kernels::rows::normalize_rows;
use crate::kernels::timings::{gemm_work, Timings, Work};
use crate::metrics::modality_gap::{modality_gap, ModalityGap, PairSums, SetSums};
use crate::metrics::real::Real;
use crate::metrics::retrieval::{
    matched_similarities, merged_retrieval, retrieval_of_queries, shard_tally, ObjectiveParameters,
    PairMap, QuerySubset, RetrievalSummary, ShardTally,
};
use ndarray::{Array1, Array2, ArrayView2, Axis};
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
    queries: Option<&QuerySubset>,
) -> Result<PairedRetrieval> {
    let r = retrieval_of_queries(a, b, map, parameters, queries)?;
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
/// distance) named `names`, paired by `map`: the gap, retrieval (of every row, or of the
/// seeded `queries` subset) and objectives, and the shift experiment at `shifts` (fractions of
/// the gap closed: each set moved by `fraction/2` of the difference of the unit centroids
/// `m_a - m_b` toward the other, then renormalised).
#[allow(clippy::too_many_arguments)]
pub fn cross_modal<F: Real>(
    names: (&str, &str),
    (a, a_raw): (ArrayView2<F>, ArrayView2<F>),
    (b, b_raw): (ArrayView2<F>, ArrayView2<F>),
    map: &PairMap,
    parameters: &ObjectiveParameters,
    queries: Option<&QuerySubset>,
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
        paired_retrieval(a, b, map, parameters, queries)
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
                    retrieval: paired_retrieval(a2.view(), b2.view(), map, parameters, queries)?,
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

/// The first round of one configuration of two row-matched sharded sets (the rows as given,
/// or moved by a shift step): shard `shard`'s sums, its pairs' sums and its matched pairs'
/// exact similarities. One task; [`pair_context`] gathers them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairShard {
    /// The shard.
    pub shard: usize,
    sums: (SetSums, SetSums),
    pairs: PairSums,
    tops: Vec<f64>,
}

/// Shard `shard` of the two sets (`a`, `b`: unit rows and rows as given), paired row by row.
pub fn pair_shard<F: Real>(
    names: (&str, &str),
    shard: usize,
    (a, a_raw): (ArrayView2<F>, ArrayView2<F>),
    (b, b_raw): (ArrayView2<F>, ArrayView2<F>),
) -> Result<PairShard> {
    if a.nrows() != b.nrows() {
        return Err(GeometryError::ShapeMismatch {
            what: format!(
                "shard {shard}: {} has {} rows and {} has {}; sharded modalities pair row i of shard k of one with row i of shard k of the other",
                names.0,
                a.nrows(),
                names.1,
                b.nrows()
            ),
        });
    }
    same_width(names, a.ncols(), b.ncols())?;
    Ok(PairShard {
        shard,
        sums: (SetSums::of(a, a_raw), SetSums::of(b, b_raw)),
        pairs: PairSums::of(a, b, &PairMap::identity(a.nrows())),
        tops: matched_similarities(a, b),
    })
}

/// What the second round of a configuration needs: every shard's rows, the merged sums and
/// every row's matched similarity, in shard order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairContext {
    /// Rows of each shard.
    pub shard_rows: Vec<usize>,
    sums: (SetSums, SetSums),
    pairs: PairSums,
    /// The matched pairs' exact similarities, in row order.
    pub tops: Vec<f64>,
}

/// The context of every shard's first round (given in any order; one per shard 0..S).
pub fn pair_context(mut parts: Vec<PairShard>) -> Result<PairContext> {
    parts.sort_by_key(|p| p.shard);
    if parts.is_empty() || parts.iter().enumerate().any(|(i, p)| p.shard != i) {
        return Err(GeometryError::InvalidState {
            what: format!(
                "sharded modalities need the first round of every shard 0..S, got shards {:?}",
                parts.iter().map(|p| p.shard).collect::<Vec<_>>()
            ),
        });
    }
    let shard_rows = parts.iter().map(|p| p.tops.len()).collect();
    let mut parts = parts.into_iter();
    let first = parts.next().expect("one shard at least");
    let (mut sums, mut pairs, mut tops) = (first.sums, first.pairs, first.tops);
    for p in parts {
        sums.0.add(&p.sums.0);
        sums.1.add(&p.sums.1);
        pairs.add(&p.pairs);
        tops.extend(p.tops);
    }
    Ok(PairContext {
        shard_rows,
        sums,
        pairs,
        tops,
    })
}

impl PairContext {
    /// The half gap vector `fraction (m_A - m_B) / 2` of a shift step closing `fraction` of
    /// the gap (each set moved by it toward the other).
    pub fn half_shift(&self, fraction: f64) -> Array1<f64> {
        let (a, b) = &self.sums;
        (&a.unit_sum / a.rows as f64 - &b.unit_sum / b.rows as f64) * (fraction / 2.0)
    }

    /// `||m_A - m_B||` of the unit rows measured.
    fn centroid_distance(&self) -> f64 {
        let delta = self.half_shift(2.0);
        delta.dot(&delta).sqrt()
    }
}

/// Shard `k` of set `set` (0: A, 1: B) as measured in a shift step: moved by `-half` (A) or
/// `+half` (B) and renormalised.
pub fn shifted_shard<F: Real>(
    rows: ArrayView2<F>,
    set: usize,
    half: &Array1<f64>,
) -> Result<Array2<F>> {
    shifted(rows, half, if set == 0 { -1.0 } else { 1.0 })
}

/// One configuration's retrieval from its context and every shard pair's tallies.
pub fn pair_retrieval(
    context: &PairContext,
    tallies: Vec<ShardTally>,
    parameters: &ObjectiveParameters,
) -> Result<PairedRetrieval> {
    let r = merged_retrieval(&context.shard_rows, &context.tops, tallies, parameters)?;
    Ok(PairedRetrieval {
        a_to_b: r.a_to_b.summary(),
        b_to_a: r.b_to_a.summary(),
        info_nce: r.info_nce,
        siglip: r.siglip,
    })
}

/// The measurement of a sharded pair from its configurations: the rows as given (`base`, its
/// retrieval) and each shift step (its fraction, context and retrieval).
pub fn sharded_cross_modal(
    names: (&str, &str),
    (base, now): (&PairContext, PairedRetrieval),
    steps: Vec<(f64, PairContext, PairedRetrieval)>,
    parameters: &ObjectiveParameters,
) -> Result<CrossModal> {
    let rows = base.sums.0.rows;
    Ok(CrossModal {
        names: (names.0.to_string(), names.1.to_string()),
        rows: (rows, rows),
        gap: modality_gap(&base.sums.0, &base.sums.1, &base.pairs)?,
        retrieval: now,
        parameters: *parameters,
        shift: steps
            .into_iter()
            .map(|(fraction, context, retrieval)| ShiftStep {
                fraction,
                distance: context.centroid_distance(),
                retrieval,
            })
            .collect(),
    })
}

/// [`cross_modal`] of two sets held as row-matched shards, 1:1 (row i of shard k of one set
/// with row i of shard k of the other, `shard_rows[k]` rows each), loaded by `load(set, k)`:
/// per configuration (the rows as given, then each shift step) a first round of
/// [`pair_shard`]s and a second of [`shard_tally`]s, every query shard against every gallery
/// shard, merged in shard order, as the tasks of a distributed engine would run them. Equal
/// to the one-set measurement (ranks exactly, the rest to rounding).
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
    let s = shard_rows.len();
    // The rows of shard k of a set as measured in a configuration (shifted by `half`).
    let measured = |set: usize, k: usize, half: Option<&Array1<f64>>| -> Result<ShardRows<F>> {
        let (unit, raw) = load(set, k)?;
        if unit.nrows() != shard_rows[k] {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "shard {k} of {} has {} rows, planned {}",
                    [names.0, names.1][set],
                    unit.nrows(),
                    shard_rows[k]
                ),
            });
        }
        match half {
            None => Ok((unit, raw)),
            Some(half) => Ok((shifted_shard(unit.view(), set, half)?, None)),
        }
    };
    let configuration = |half: Option<&Array1<f64>>| -> Result<(PairContext, PairedRetrieval)> {
        let mut parts = Vec::with_capacity(s);
        for k in 0..s {
            let ((a, a_raw), (b, b_raw)) = (measured(0, k, half)?, measured(1, k, half)?);
            let a_raw = a_raw.as_ref().unwrap_or(&a);
            let b_raw = b_raw.as_ref().unwrap_or(&b);
            parts.push(pair_shard(
                names,
                k,
                (a.view(), a_raw.view()),
                (b.view(), b_raw.view()),
            )?);
        }
        let context = pair_context(parts)?;
        let mut tallies = Vec::with_capacity(s * s);
        for k in 0..s {
            let (a, _) = measured(0, k, half)?;
            for l in 0..s {
                let (b, _) = measured(1, l, half)?;
                tallies.push(shard_tally(
                    (k, a.view()),
                    (l, b.view()),
                    shard_rows,
                    &context.tops,
                    parameters,
                )?);
            }
        }
        let retrieval = pair_retrieval(&context, tallies, parameters)?;
        Ok((context, retrieval))
    };
    // The work is known once the first round has read the rows' width.
    let started = std::time::Instant::now();
    let (base, now) = configuration(None)?;
    let work = retrieval_work::<F>(rows, rows, base.sums.0.unit_sum.len());
    timings.record("retrieval", started.elapsed().as_secs_f64(), work);
    let mut steps = Vec::with_capacity(shifts.len());
    for &fraction in shifts {
        let half = base.half_shift(fraction);
        let (context, retrieval) =
            timings.time("shift experiment", work, || configuration(Some(&half)))?;
        steps.push((fraction, context, retrieval));
    }
    sharded_cross_modal(names, (&base, now), steps, parameters)
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

/// The gap distances `||m_i - m_j||` between every two of several sets (their sums); `None`
/// between sets of different widths (their centroids are not in one space).
pub fn gap_matrix(sets: &[SetSums]) -> Array2<Option<f64>> {
    let centroids: Vec<_> = sets.iter().map(|s| &s.unit_sum / s.rows as f64).collect();
    Array2::from_shape_fn((sets.len(), sets.len()), |(i, j)| {
        (centroids[i].len() == centroids[j].len()).then(|| {
            let delta = &centroids[i] - &centroids[j];
            delta.dot(&delta).sqrt()
        })
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
            None,
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
        assert!((m[[0, 1]].unwrap() - got.gap.distance).abs() < 1e-12);
        assert_eq!(m[[0, 2]], Some(0.0));
        assert_eq!(m[[1, 0]], m[[0, 1]]);
        let narrow = normalize_rows(raw_a.slice(ndarray::s![.., ..5])).unwrap();
        let mixed = gap_matrix(&[
            SetSums::of(a.view(), raw_a.view()),
            SetSums::of(narrow.view(), narrow.view()),
        ]);
        assert_eq!(mixed[[0, 1]], None);
        assert_eq!(mixed[[1, 1]], Some(0.0));
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
            None,
            &[],
            &Timings::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("3 and 4 dimensions"), "{error}");
    }
}
