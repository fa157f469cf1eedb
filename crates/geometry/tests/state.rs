//! Mergeable states: any split into shards, merged in any order, gives the single state's
//! metrics (1e-12), which match the two-pass analysis (1e-9); bytes round-trip with a version.

mod common;

use common::{classes_of, gaussian};
use embgeom_geometry::state::{LabelKey, State, StateMetrics};
use embgeom_geometry::Merge;
use embgeom_geometry::{analyze, normalize_rows, AnalysisInput, AnalysisOptions, NoProgress};
use ndarray::{s, Array2};

fn data() -> (Array2<f64>, Vec<u32>) {
    let labels: Vec<u32> = (0..900).map(|i| (i % 5) as u32).collect();
    let means = gaussian(5, 12, 3) * 3.0;
    let mut x = gaussian(900, 12, 4);
    for (i, &c) in labels.iter().enumerate() {
        let mut row = x.row_mut(i);
        row += &means.row(c as usize);
    }
    (x, labels)
}

fn state_of(x: &Array2<f64>, labels: &[u32], cuts: &[usize], order: &[usize]) -> StateMetrics {
    let names: Vec<LabelKey> = labels.iter().map(|&l| LabelKey::Int(l.into())).collect();
    let shards: Vec<State> = cuts
        .windows(2)
        .map(|w| {
            let mut state = State::new(x.ncols());
            state
                .update(x.slice(s![w[0]..w[1], ..]), Some(&names[w[0]..w[1]]))
                .unwrap();
            state
        })
        .collect();
    let mut merged = State::new(x.ncols());
    for &k in order {
        let copy = State::from_bytes(&shards[k].to_bytes()).unwrap();
        merged.merge(&copy).unwrap();
    }
    merged.finalize().unwrap()
}

fn close(a: Option<f64>, b: Option<f64>, tolerance: f64, what: &str) {
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        (a - b).abs() <= tolerance * a.abs().max(b.abs()),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn shards_merged_in_any_order_equal_one_state_and_the_analysis() {
    let (x, labels) = data();
    let whole = state_of(&x, &labels, &[0, 900], &[0]);
    for (cuts, order) in [
        (vec![0, 450, 900], vec![1, 0]),
        (
            vec![0, 1, 100, 101, 400, 650, 899, 900],
            vec![6, 0, 3, 1, 5, 2, 4],
        ),
    ] {
        let merged = state_of(&x, &labels, &cuts, &order);
        for (name, a, b) in [
            ("nc1", merged.nc1, whole.nc1),
            ("etf", merged.etf_distance, whole.etf_distance),
            ("cdnv", merged.cdnv, whole.cdnv),
            ("alignment", merged.class_alignment, whole.class_alignment),
            (
                "effective rank",
                Some(merged.effective_rank),
                Some(whole.effective_rank),
            ),
            ("rankme", Some(merged.rankme), Some(whole.rankme)),
        ] {
            close(a, b, 1e-12, name);
        }
    }
    let unit = normalize_rows(x.view()).unwrap();
    let classes = classes_of(&labels);
    let input = AnalysisInput {
        embeddings: Some(unit.view()),
        raw: Some(x.view()),
        classes: Some(&classes),
        ..AnalysisInput::default()
    };
    let analysis = analyze(&input, &AnalysisOptions::default(), &NoProgress).unwrap();
    let collapse = analysis.collapse.unwrap();
    close(whole.nc1, collapse.nc1, 1e-9, "nc1 against the analysis");
    close(whole.etf_distance, collapse.etf_distance, 1e-9, "etf");
    close(whole.cdnv, collapse.cdnv.map(|c| c.mean), 1e-9, "cdnv");
    close(
        Some(whole.effective_rank),
        Some(analysis.spectrum.effective_rank),
        1e-9,
        "effective rank",
    );
    close(
        Some(whole.rankme),
        Some(analysis.spectrum.rankme),
        1e-9,
        "rankme",
    );
    close(
        whole.class_alignment,
        analysis.class_alignment.map(|a| a.value),
        1e-9,
        "class alignment",
    );
}

#[test]
fn bytes_of_another_version_or_other_data_are_refused() {
    let (x, labels) = data();
    let names: Vec<LabelKey> = labels.iter().map(|&l| LabelKey::Int(l.into())).collect();
    let mut state = State::new(12);
    state.update(x.view(), Some(&names)).unwrap();
    let mut bytes = state.to_bytes();
    assert_eq!(State::from_bytes(&bytes).unwrap(), state);
    bytes[8] = 9;
    let error = State::from_bytes(&bytes).unwrap_err().to_string();
    assert!(error.contains("version 9"), "{error}");
    assert!(State::from_bytes(b"not a state").is_err());
    let mut other = State::new(5);
    other.update(gaussian(3, 5, 1).view(), None).unwrap();
    assert!(state.merge(&other).is_err(), "dimensions differ");
}

#[test]
fn uniformity_over_shard_pairs_merges_into_the_exact_value() {
    use embgeom_geometry::{uniformity_exact, uniformity_part, UniformityPart};
    let x = normalize_rows(gaussian(1000, 16, 9).view()).unwrap();
    let want = uniformity_exact(x.view(), 2.0, 128, &NoProgress)
        .unwrap()
        .value;
    let cuts = [0, 300, 301, 777, 1000];
    let shards: Vec<_> = cuts
        .windows(2)
        .map(|w| x.slice(s![w[0]..w[1], ..]))
        .collect();
    let mut parts = Vec::new();
    for (i, a) in shards.iter().enumerate() {
        parts.push(uniformity_part(*a, None, 2.0, 64).unwrap());
        for b in &shards[i + 1..] {
            parts.push(uniformity_part(*a, Some(*b), 2.0, 64).unwrap());
        }
    }
    for order in [
        (0..parts.len()).collect::<Vec<_>>(),
        (0..parts.len()).rev().collect(),
    ] {
        let merged = order
            .iter()
            .fold(UniformityPart::EMPTY, |acc, &k| acc.merge(parts[k]));
        assert_eq!(merged.pairs, 1000 * 999 / 2);
        let got = merged.value().unwrap();
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
    }
    assert_eq!(UniformityPart::EMPTY.value(), None);
    let one_row = x.slice(s![0..1, ..]);
    assert_eq!(uniformity_part(one_row, None, 2.0, 64).unwrap().pairs, 0);
}
