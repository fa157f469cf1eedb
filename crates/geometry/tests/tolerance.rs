//! Wang & Liu's tolerance: the mean cosine over the same-class ordered pairs of the normalised
//! rows, from the class sums; for unit rows `1 - label-positive alignment / 2`.

mod common;

use common::{classes_of, gaussian};
use embgeom_geometry::{analyze, normalize_rows, AnalysisInput, AnalysisOptions, NoProgress};

#[test]
fn tolerance_is_the_mean_same_class_cosine() {
    let labels: Vec<u32> = (0..240).map(|i| ((i * 7) % 4) as u32).collect();
    let mut raw = gaussian(240, 9, 12);
    for (i, mut row) in raw.rows_mut().into_iter().enumerate() {
        row[labels[i] as usize] += 2.0;
    }
    let unit = normalize_rows(raw.view()).unwrap();
    let classes = classes_of(&labels);
    let input = AnalysisInput {
        embeddings: Some(unit.view()),
        raw: Some(raw.view()),
        classes: Some(&classes),
        ..AnalysisInput::default()
    };
    let a = analyze(&input, &AnalysisOptions::default(), &NoProgress).unwrap();
    let (mut sum, mut pairs) = (0.0, 0.0);
    for i in 0..240 {
        for j in 0..240 {
            if i != j && labels[i] == labels[j] {
                sum += unit.row(i).dot(&unit.row(j));
                pairs += 1.0;
            }
        }
    }
    let got = a.tolerance.unwrap();
    assert!(
        (got - sum / pairs).abs() <= 1e-12,
        "{got} vs {}",
        sum / pairs
    );
    let aligned = a.class_alignment.as_ref().unwrap().value;
    assert!((got - (1.0 - aligned / 2.0)).abs() <= 1e-12);
    assert!(got > 0.2, "classes pulled apart by their offsets: {got}");
}
