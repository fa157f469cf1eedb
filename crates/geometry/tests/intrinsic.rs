//! The intrinsic dimension of an analysis: equal to TwoNN and the Levina-Bickel MLE written
//! out over every pair's distance (all rows as queries), near the dimension of a flat cloud,
//! without labels, with duplicate rows counted and left out, and absent (with a warning) on
//! rows that are not unit vectors.

mod common;

use common::{gaussian, unlabelled_analysis, with_queries};
use embgeom_geometry::{analyze, normalize_rows, AnalysisInput, AnalysisOptions, NoProgress};
use ndarray::{Array2, Axis};

/// Rows near a `dim`-dimensional subspace of 24 dimensions, offset from the origin so that the
/// normalised rows fill a patch of the sphere.
fn low_dimensional(n: usize, dim: usize, seed: u64) -> Array2<f64> {
    let z = gaussian(n, dim, seed);
    let basis = gaussian(dim, 24, seed + 1);
    let mut x = z.dot(&basis) * 0.2;
    x.column_mut(0).mapv_inplace(|v| v + 3.0);
    x
}

/// Every row's distances to all the others, ascending, Euclidean on the normalised rows.
fn all_distances(unit: &Array2<f64>) -> Vec<Vec<f64>> {
    (0..unit.nrows())
        .map(|i| {
            let mut d: Vec<f64> = (0..unit.nrows())
                .filter(|&j| j != i)
                .map(|j| {
                    (&unit.row(i) - &unit.row(j))
                        .iter()
                        .map(|v| v * v)
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            d.sort_by(f64::total_cmp);
            d
        })
        .collect()
}

#[test]
fn the_estimates_equal_their_formulas_over_every_pair() {
    let raw = low_dimensional(400, 3, 5);
    let a = unlabelled_analysis(&raw, &AnalysisOptions::default());
    let id = a
        .intrinsic_dimension
        .as_ref()
        .expect("measured without labels");
    let distances = all_distances(&normalize_rows(raw.view()).unwrap());
    let n = distances.len() as f64;
    let mut mu: Vec<f64> = distances.iter().map(|d| d[1] / d[0]).collect();
    mu.sort_by(f64::total_cmp);
    let kept = (n * 0.9) as usize;
    let (mut xy, mut xx) = (0.0, 0.0);
    for (i, m) in mu[..kept].iter().enumerate() {
        let (x, y) = (m.ln(), -(1.0 - (i + 1) as f64 / n).ln());
        xy += x * y;
        xx += x * x;
    }
    let twonn = xy / xx;
    let censored: f64 = mu[..kept].iter().map(|m| m.ln()).sum::<f64>()
        + (n as usize - kept) as f64 * mu[kept - 1].ln();
    let twonn_ml = (kept as f64 - 1.0) / censored;
    let inverse: f64 = distances
        .iter()
        .map(|d| d[..20].iter().map(|r| (d[19] / r).ln()).sum::<f64>() / 19.0)
        .sum::<f64>()
        / n;
    let mle = 1.0 / inverse;
    for (what, got, want) in [
        ("TwoNN", id.twonn.unwrap(), twonn),
        ("TwoNN ML", id.twonn_ml.unwrap(), twonn_ml),
        ("MLE", id.mle.unwrap(), mle),
    ] {
        assert!(
            (got - want).abs() <= 1e-10 * want,
            "{what}: {got} vs {want}"
        );
    }
    assert_eq!((id.points, id.duplicates, id.mle_k), (400, 0, 20));
    // A patch of a 3-dimensional subspace's image on the sphere: about 3.
    assert!((2.4..3.6).contains(&twonn), "TwoNN {twonn}");
    assert!(id.fit.len() <= 201 && id.fit.len() > 100);
}

#[test]
fn a_query_subset_measures_that_many_rows() {
    let raw = low_dimensional(600, 4, 9);
    let options = with_queries(250);
    let id = unlabelled_analysis(&raw, &options)
        .intrinsic_dimension
        .unwrap();
    assert_eq!(id.points, 250);
    assert!((3.0..5.0).contains(&id.mle.unwrap()), "{:?}", id.mle);
}

#[test]
fn duplicate_rows_are_counted_left_out_and_named() {
    let mut raw = low_dimensional(300, 3, 2);
    let copies = raw.select(Axis(0), &[0, 1, 2, 3, 4]);
    raw.append(Axis(0), copies.view()).unwrap();
    let a = unlabelled_analysis(&raw, &AnalysisOptions::default());
    let id = a.intrinsic_dimension.as_ref().unwrap();
    assert_eq!((id.points, id.duplicates), (305, 10));
    assert!(id.twonn.unwrap().is_finite() && id.mle.unwrap().is_finite());
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("10 of 305 measured rows have an exact duplicate")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn rows_off_the_sphere_have_no_intrinsic_dimension() {
    let raw = low_dimensional(200, 3, 4);
    let input = AnalysisInput {
        embeddings: Some(raw.view()),
        ..AnalysisInput::default()
    };
    let a = analyze(&input, &AnalysisOptions::default(), &NoProgress).unwrap();
    assert!(a.intrinsic_dimension.is_none());
    assert!(a.warnings.iter().any(|w| w.contains("not L2-normalised")));
    // Unit rows given as they are (--no-normalize on normalised rows) are measured.
    let unit = normalize_rows(raw.view()).unwrap();
    let input = AnalysisInput {
        embeddings: Some(unit.view()),
        ..AnalysisInput::default()
    };
    let a = analyze(&input, &AnalysisOptions::default(), &NoProgress).unwrap();
    assert!(a.intrinsic_dimension.is_some());
}

#[test]
fn rank_deficient_rows_say_why_the_pseudo_condition_number_is_absent() {
    // Rows in a 3-dimensional subspace of 24 dimensions: the centred raw rows have rank 3.
    let a = unlabelled_analysis(&low_dimensional(200, 3, 8), &AnalysisOptions::default());
    assert!(a.spectrum.isotropy.pseudo_condition_number.is_none());
    assert!(
        a.warnings
            .iter()
            .any(|w| w
                .starts_with("pseudo-condition number: the centred raw rows are rank deficient")),
        "{:?}",
        a.warnings
    );
}
