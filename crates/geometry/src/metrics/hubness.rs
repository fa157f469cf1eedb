//! Hubness of the k-nearest-neighbour graph (Radovanović, Nanopoulos & Ivanović, JMLR 2010),
//! with scikit-hubness's conventions (`Hubness(k=10, hub_size=2)`, self excluded): from the
//! k-occurrence `N_k(x)`, how often row x is among the k nearest neighbours of the queries,
//!
//! - skewness: `scipy.stats.skew(N_k)`, the biased Fisher-Pearson `m_3 / m_2^(3/2)`;
//! - Robin Hood (Hoover) index: `(1/2) sum |N_k - mean N_k| / sum N_k`;
//! - Gini index: `sum_i sum_j |N_k(i) - N_k(j)| / (2 n sum N_k)` (by the sorted form
//!   `sum_i (2i - n - 1) N_(i) / (n sum N_k)`, the same value);
//! - Atkinson index (eps = 1/2): `1 - mean(sqrt N_k)^2 / mean N_k`;
//! - antihub occurrence: the share of rows with `N_k = 0`;
//! - hub occurrence: `sum_{N_k >= 2k} N_k / (k Q)`, the share of the Q queries' neighbour slots
//!   held by hubs;
//! - groupie ratio: `max N_k / (k Q)`.

use serde::{Deserialize, Serialize};

/// Neighbours of the k-occurrence (scikit-hubness's default).
pub const HUBNESS_K: usize = 10;
/// A hub occurs at least this many times k.
pub const HUB_SIZE: f64 = 2.0;
/// Rows of the subsample whose hubness stands for that of more rows than the kNN queries: a
/// seeded subset of those queries, searched among themselves (`2 S^2 D` flops: 0.017 TFLOP,
/// about 0.2 s, at D = 2,048, against the kNN's 0.8 TFLOP at 20,000 x 2,048; 4,096 rows took
/// 0.8 s there).
pub const HUBNESS_SUBSAMPLE_ROWS: usize = 2048;

/// Hubness readings of one k-occurrence vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hubness {
    /// Skewness of the k-occurrence (`None` when every row occurs equally often).
    pub skewness: Option<f64>,
    /// Robin Hood index in [0, 1).
    pub robinhood: f64,
    /// Gini index in [0, 1).
    pub gini: f64,
    /// Atkinson index (eps = 1/2).
    pub atkinson: f64,
    /// Share of rows that are no query's neighbour.
    pub antihub_occurrence: f64,
    /// Share of the neighbour slots held by hubs (`N_k >= 2k`).
    pub hub_occurrence: f64,
    /// The largest k-occurrence over `k Q`.
    pub groupie_ratio: f64,
    /// k.
    pub k: usize,
    /// Rows indexed (whose k-occurrence is counted).
    pub rows: usize,
    /// Queries.
    pub queries: usize,
    /// `(occurrence, rows)` for every k-occurrence value held by some row, ascending.
    pub histogram: Vec<(u64, u64)>,
    /// `"exact"` (every row a query) or `"subsample"` (a seeded subsample of rows among
    /// themselves).
    pub method: String,
    /// Jackknife standard errors of a subsample's readings; `None` when exact.
    pub errors: Option<HubnessErrors>,
}

/// The hubness readings of the k-occurrence `counts` of `rows` rows (one count per row) from
/// `queries` queries of `k` neighbours each.
pub fn hubness_of(counts: &[u64], k: usize, queries: usize) -> Hubness {
    let n = counts.len() as f64;
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    let mean = total / n;
    let (m2, m3) = counts.iter().fold((0.0, 0.0), |(m2, m3), &c| {
        let d = c as f64 - mean;
        (m2 + d * d, m3 + d * d * d)
    });
    let (m2, m3) = (m2 / n, m3 / n);
    let skewness = (m2 > 0.0).then(|| m3 / m2.powf(1.5));
    let absolute: f64 = counts.iter().map(|&c| (c as f64 - mean).abs()).sum();
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, &c)| (2.0 * (i + 1) as f64 - n - 1.0) * c as f64)
        .sum();
    let root_mean = counts.iter().map(|&c| (c as f64).sqrt()).sum::<f64>() / n;
    let slots = (k * queries) as f64;
    let hub_floor = HUB_SIZE * k as f64;
    let mut histogram: Vec<(u64, u64)> = Vec::new();
    for &c in &sorted {
        match histogram.last_mut() {
            Some((value, rows)) if *value == c => *rows += 1,
            _ => histogram.push((c, 1)),
        }
    }
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    Hubness {
        skewness,
        robinhood: ratio(0.5 * absolute, total),
        gini: ratio(weighted, n * total),
        atkinson: ratio(mean - root_mean * root_mean, mean),
        antihub_occurrence: counts.iter().filter(|&&c| c == 0).count() as f64 / n,
        hub_occurrence: ratio(
            counts
                .iter()
                .filter(|&&c| c as f64 >= hub_floor)
                .map(|&c| c as f64)
                .sum(),
            slots,
        ),
        groupie_ratio: ratio(sorted.last().copied().unwrap_or(0) as f64, slots),
        k,
        rows: counts.len(),
        queries,
        histogram,
        method: "exact".into(),
        errors: None,
    }
}

/// Groups of the delete-a-group jackknife of a subsample's hubness.
pub const JACKKNIFE_GROUPS: usize = 10;

/// The standard errors of a subsample's hubness readings (delete-a-group jackknife).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubnessErrors {
    /// Of the skewness.
    pub skewness: Option<f64>,
    /// Of the Robin Hood index.
    pub robinhood: f64,
    /// Of the Gini index.
    pub gini: f64,
}

/// The k-occurrence of the `rows` rows from the first `k` neighbours of each query
/// (`position` maps a neighbour's row index to its place among the rows, `None` to skip it).
pub fn k_occurrence(
    neighbours: &[Vec<u64>],
    rows: usize,
    k: usize,
    position: impl Fn(u64) -> Option<usize>,
) -> Vec<u64> {
    let mut counts = vec![0u64; rows];
    for list in neighbours {
        for &j in list.iter().take(k) {
            if let Some(p) = position(j) {
                counts[p] += 1;
            }
        }
    }
    counts
}

/// The hubness of a subsample of rows among themselves, and its jackknife errors: `lists[i]`
/// holds the row indices (positions `0..lists.len()`) of at least k (for the errors, about
/// `2k`) nearest neighbours of row i within the subsample, best first. Replicate g leaves out the rows `i % G == g` as
/// queries and as neighbours: each remaining row keeps the first k of its neighbours that
/// remain. No errors when some row keeps fewer than k.
pub fn subsample_hubness(lists: &[Vec<usize>], k: usize) -> Hubness {
    let rows = lists.len();
    let all: Vec<usize> = (0..rows).collect();
    let whole = Hubness {
        method: "subsample".into(),
        ..hubness_of(
            &occurrence_among(lists, &all, k).unwrap_or_default(),
            k,
            rows,
        )
    };
    let groups = JACKKNIFE_GROUPS.min(rows);
    let mut replicates = Vec::with_capacity(groups);
    for g in 0..groups {
        let kept: Vec<usize> = (0..rows).filter(|i| i % groups != g).collect();
        match occurrence_among(lists, &kept, k) {
            Some(counts) => replicates.push(hubness_of(&counts, k, kept.len())),
            None => return whole,
        }
    }
    let spread = |value: &dyn Fn(&Hubness) -> Option<f64>| -> Option<f64> {
        let values: Vec<f64> = replicates.iter().map(value).collect::<Option<Vec<f64>>>()?;
        let g = values.len() as f64;
        let mean = values.iter().sum::<f64>() / g;
        Some(((g - 1.0) / g * values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()).sqrt())
    };
    let errors = (groups >= 2).then(|| HubnessErrors {
        skewness: spread(&|h| h.skewness),
        robinhood: spread(&|h| Some(h.robinhood)).unwrap_or(0.0),
        gini: spread(&|h| Some(h.gini)).unwrap_or(0.0),
    });
    Hubness { errors, ..whole }
}

/// The k-occurrence among the rows `kept` (ascending) of a subsample: each kept row's first k
/// neighbours in `lists` that are kept; `None` when some kept row has fewer than k of them.
fn occurrence_among(lists: &[Vec<usize>], kept: &[usize], k: usize) -> Option<Vec<u64>> {
    let mut place = vec![None; lists.len()];
    for (p, &i) in kept.iter().enumerate() {
        place[i] = Some(p);
    }
    let mut counts = vec![0u64; kept.len()];
    for &i in kept {
        let mut taken = 0;
        for p in lists[i].iter().filter_map(|&j| place[j]).take(k) {
            counts[p] += 1;
            taken += 1;
        }
        if taken < k {
            return None;
        }
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readings_follow_their_definitions() {
        let counts = [0u64, 0, 1, 2, 5, 12, 3, 1];
        let (k, queries) = (3, 8);
        let h = hubness_of(&counts, k, queries);
        let x: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let m2 = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let m3 = x.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n;
        assert!((h.skewness.unwrap() - m3 / m2.powf(1.5)).abs() < 1e-12);
        let total: f64 = x.iter().sum();
        let pairs: f64 = x
            .iter()
            .flat_map(|a| x.iter().map(move |b| (a - b).abs()))
            .sum();
        assert!((h.gini - pairs / (2.0 * n * total)).abs() < 1e-12);
        let hood = 0.5 * x.iter().map(|v| (v - mean).abs()).sum::<f64>() / total;
        assert!((h.robinhood - hood).abs() < 1e-12);
        let root = (x.iter().map(|v| v.sqrt()).sum::<f64>() / n).powi(2);
        assert!((h.atkinson - (1.0 - root / mean)).abs() < 1e-12);
        assert_eq!(h.antihub_occurrence, 2.0 / 8.0);
        // Hubs: N_k >= 2k = 6, only 12.
        assert!((h.hub_occurrence - 12.0 / 24.0).abs() < 1e-15);
        assert!((h.groupie_ratio - 12.0 / 24.0).abs() < 1e-15);
        assert_eq!(h.histogram[0], (0, 2));
        assert_eq!(h.histogram.last(), Some(&(12, 1)));
        // Every row equally often a neighbour: no skewness, no inequality.
        let flat = hubness_of(&[3, 3, 3, 3], 3, 4);
        assert_eq!((flat.skewness, flat.robinhood, flat.gini), (None, 0.0, 0.0));
    }

    /// The `m` nearest of every point among `points` (positions into it), ties to the lower.
    fn nearest(points: &[Vec<f64>], members: &[usize], m: usize) -> Vec<Vec<usize>> {
        members
            .iter()
            .map(|&i| {
                let mut others: Vec<(f64, usize)> = members
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| {
                        let d: f64 = points[i]
                            .iter()
                            .zip(&points[j])
                            .map(|(a, b)| (a - b).powi(2))
                            .sum();
                        (d, j)
                    })
                    .collect();
                others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                others.into_iter().take(m).map(|(_, j)| j).collect()
            })
            .collect()
    }

    #[test]
    fn the_jackknife_replicates_are_the_searches_without_each_group() {
        let x = crate::kernels::test_data::pseudo_random(60, 6, 8);
        let points: Vec<Vec<f64>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
        let all: Vec<usize> = (0..60).collect();
        let (k, lists) = (4, nearest(&points, &all, 8));
        let h = subsample_hubness(&lists, k);
        let whole = hubness_of(
            &k_occurrence(
                &nearest(&points, &all, k)
                    .iter()
                    .map(|l| l.iter().map(|&j| j as u64).collect())
                    .collect::<Vec<_>>(),
                60,
                k,
                |j| Some(j as usize),
            ),
            k,
            60,
        );
        assert_eq!(
            (h.skewness, h.robinhood, &h.method),
            (whole.skewness, whole.robinhood, &"subsample".to_string())
        );
        // The jackknife by searching each replicate again.
        let robinhoods: Vec<f64> = (0..JACKKNIFE_GROUPS)
            .map(|g| {
                let kept: Vec<usize> = all.iter().copied().filter(|i| i % 10 != g).collect();
                let place = |j: u64| kept.iter().position(|&i| i as u64 == j);
                let lists: Vec<Vec<u64>> = nearest(&points, &kept, k)
                    .iter()
                    .map(|l| l.iter().map(|&j| j as u64).collect())
                    .collect();
                hubness_of(&k_occurrence(&lists, kept.len(), k, place), k, kept.len()).robinhood
            })
            .collect();
        let mean = robinhoods.iter().sum::<f64>() / 10.0;
        let se = (0.9 * robinhoods.iter().map(|v| (v - mean).powi(2)).sum::<f64>()).sqrt();
        let errors = h.errors.expect("every row keeps k of its 2k neighbours");
        assert!(
            (errors.robinhood - se).abs() < 1e-12,
            "{} vs {se}",
            errors.robinhood
        );
        assert!(errors.robinhood > 0.0);
    }
}
