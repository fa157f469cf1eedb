//! Hubness of an analysis: with every row a query, the k-occurrence is that of a brute-force
//! cosine 10-NN search (self excluded) and the readings are scikit-hubness's formulas; beyond
//! `--knn-queries` rows, the readings are those of the seeded subsample among themselves, with
//! jackknife errors; without labels too.

mod common;

use common::{gaussian, unlabelled_analysis, with_queries};
use embgeom_geometry::{hubness_of, normalize_rows, AnalysisOptions};
use ndarray::Array2;

/// The k-occurrence of a brute-force search: each row's k largest cosines among the others
/// (ties to the lower index).
fn brute_force_occurrence(unit: &Array2<f64>, k: usize) -> Vec<u64> {
    let n = unit.nrows();
    let gram = unit.dot(&unit.t());
    let mut counts = vec![0u64; n];
    for i in 0..n {
        let mut others: Vec<(f64, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (gram[[i, j]], j))
            .collect();
        others.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, j) in others.iter().take(k) {
            counts[j] += 1;
        }
    }
    counts
}

#[test]
fn every_row_a_query_gives_the_brute_force_k_occurrence() {
    // Heavy-tailed scales make hubs.
    let mut raw = gaussian(500, 40, 3);
    for (i, mut row) in raw.rows_mut().into_iter().enumerate() {
        row *= 1.0 + (i % 7) as f64;
    }
    let a = unlabelled_analysis(&raw, &AnalysisOptions::default());
    let h = a.hubness.as_ref().expect("measured without labels");
    let unit = normalize_rows(raw.view()).unwrap();
    let want = hubness_of(&brute_force_occurrence(&unit, 10), 10, 500);
    assert_eq!(h, &want);
    assert_eq!((h.method.as_str(), h.rows, h.queries), ("exact", 500, 500));
    assert!(h.skewness.unwrap() > 0.0 && h.robinhood > 0.0 && h.errors.is_none());
}

#[test]
fn more_rows_than_queries_measure_a_seeded_subsample_with_its_errors() {
    let raw = gaussian(900, 30, 5);
    let options = with_queries(300);
    let a = unlabelled_analysis(&raw, &options);
    let h = a.hubness.as_ref().unwrap();
    assert_eq!(
        (h.method.as_str(), h.rows, h.queries),
        ("subsample", 300, 300)
    );
    let errors = h.errors.as_ref().expect("jackknife errors");
    assert!(
        errors.robinhood > 0.0 && errors.robinhood < 0.1,
        "{errors:?}"
    );
    assert!(a
        .warnings
        .iter()
        .any(|w| w.contains("seeded subsample of 300 of 900")));
    // The same seed, the same subsample.
    assert_eq!(unlabelled_analysis(&raw, &options).hubness, a.hubness);
}

#[test]
fn the_subsample_holds_at_most_2048_of_the_queries() {
    let raw = gaussian(3_000, 8, 6);
    let options = with_queries(2_500);
    let h = unlabelled_analysis(&raw, &options).hubness.unwrap();
    assert_eq!((h.method.as_str(), h.rows), ("subsample", 2_048));
    assert_eq!(
        h.histogram.iter().map(|p| p.0 * p.1).sum::<u64>(),
        2_048 * 10
    );
}
