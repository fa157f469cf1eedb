//! The sharded analysis: the same rows split into 1, 2 and 7 uneven shards, their task
//! results merged in several orders (and through their bytes), equal the single-pass analysis
//! (1e-12 relative, kNN and nearest-class-mean accuracy exactly); the sampled uniformity is
//! the same whatever the split and within a few standard errors of the exact value.

mod common;

use common::gaussian;
use embgeom_geometry::sharded::{
    finalize, second_pass, summarize, uniformity_block, LabelledRows, SecondPass, ShardOptions,
    ShardPlan, Summary, UniformityBlock,
};
use embgeom_geometry::state::LabelKey;
use embgeom_geometry::Merge;
use embgeom_geometry::{
    analyze, normalize_rows, Analysis, AnalysisInput, AnalysisOptions, Classes, Classifier,
    KnnOptions, Method, NoProgress,
};
use ndarray::{s, Array2};

/// Label values whose numeric order differs from their text order.
const VALUES: [i64; 5] = [0, 2, 10, 11, 100];

fn data() -> (Array2<f64>, Vec<u32>) {
    let labels: Vec<u32> = (0..700).map(|i| ((i * 7) % 5) as u32).collect();
    let means = gaussian(5, 12, 3) * 2.0;
    let mut x = gaussian(700, 12, 4);
    for (i, &c) in labels.iter().enumerate() {
        let mut row = x.row_mut(i);
        row += &means.row(c as usize);
    }
    (x, labels)
}

fn options() -> AnalysisOptions {
    AnalysisOptions {
        knn: KnnOptions {
            max_queries: 150,
            ..KnnOptions::default()
        },
        tile: 64,
        ..AnalysisOptions::default()
    }
}

fn classifier() -> Classifier {
    Classifier {
        weights: gaussian(5, 12, 11),
        bias: Some(gaussian(1, 5, 12).row(0).to_owned()),
    }
}

fn single_pass(x: &Array2<f64>, labels: &[u32], options: &AnalysisOptions) -> Analysis {
    let unit = normalize_rows(x.view()).unwrap();
    let names = VALUES.iter().map(|v| v.to_string()).collect();
    let classes = Classes::new(labels.to_vec(), names).unwrap();
    let classifier = classifier();
    let input = AnalysisInput {
        embeddings: Some(unit.view()),
        raw: Some(x.view()),
        classes: Some(&classes),
        classifier: Some(&classifier),
        ..AnalysisInput::default()
    };
    analyze(&input, options, &NoProgress).unwrap()
}

/// Every task of the sharded analysis, run shard by shard in `order`, results sent through
/// their bytes.
fn sharded(
    x: &Array2<f64>,
    labels: &[u32],
    cuts: &[usize],
    order: &[usize],
    options: &AnalysisOptions,
    sample_rows: usize,
) -> Analysis {
    let unit = normalize_rows(x.view()).unwrap();
    let keys: Vec<LabelKey> = labels
        .iter()
        .map(|&l| LabelKey::Int(VALUES[l as usize]))
        .collect();
    let shard = |k: usize| (cuts[k], cuts[k + 1]);
    let plan = ShardPlan {
        rows: cuts.windows(2).map(|w| (w[1] - w[0]) as u64).collect(),
        options: ShardOptions::of(options, sample_rows).unwrap(),
    };
    let plan = ShardPlan::from_bytes(&plan.to_bytes()).unwrap();
    let mut summary: Option<Summary> = None;
    for &k in order {
        let (a, b) = shard(k);
        let part = summarize(
            &plan,
            k,
            unit.slice(s![a..b, ..]),
            x.slice(s![a..b, ..]),
            Some(&keys[a..b]),
        )
        .unwrap();
        let part = Summary::from_bytes(&part.to_bytes()).unwrap();
        match summary.as_mut() {
            None => summary = Some(part),
            Some(summary) => summary.merge(&part).unwrap(),
        }
    }
    let summary = summary.unwrap();
    let context = summary.context(&plan, Some(&classifier())).unwrap();
    let mut second: Option<SecondPass> = None;
    for &k in order.iter().rev() {
        let (a, b) = shard(k);
        let part = second_pass(
            &plan,
            &context,
            k,
            unit.slice(s![a..b, ..]),
            x.slice(s![a..b, ..]),
            Some(&keys[a..b]),
        )
        .unwrap();
        let part = SecondPass::from_bytes(&part.to_bytes()).unwrap();
        match second.as_mut() {
            None => second = Some(part),
            Some(second) => second.merge(&part).unwrap(),
        }
    }
    let classes: Vec<Vec<u32>> = (0..cuts.len() - 1)
        .map(|k| {
            let (a, b) = shard(k);
            context.shard_classes(Some(&keys[a..b])).unwrap()
        })
        .collect();
    let mut blocks: Option<UniformityBlock> = None;
    for (a, b) in plan.blocks().into_iter().rev() {
        let rows = |k: usize| LabelledRows {
            rows: unit.slice(s![shard(k).0..shard(k).1, ..]),
            classes: &classes[k],
        };
        let other = (a != b).then(|| rows(b));
        let block = uniformity_block(
            plan.options.t,
            plan.options.tile,
            context.num_classes(),
            &rows(a),
            other.as_ref(),
        )
        .unwrap();
        let block = UniformityBlock::from_bytes(&block.to_bytes()).unwrap();
        blocks = Some(match blocks {
            None => block,
            Some(mut merged) => {
                merged.merge(&block).unwrap();
                merged
            }
        });
    }
    finalize::<f64>(&plan, &summary, &context, &second.unwrap(), blocks.as_ref()).unwrap()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn shards_merged_in_any_order_equal_the_single_pass_analysis() {
    let (x, labels) = data();
    let options = options();
    let want = single_pass(&x, &labels, &options);
    for (cuts, order) in [
        (vec![0, 700], vec![0]),
        (vec![0, 350, 700], vec![1, 0]),
        (
            vec![0, 1, 90, 91, 300, 555, 699, 700],
            vec![6, 0, 3, 1, 5, 2, 4],
        ),
    ] {
        let got = sharded(&x, &labels, &cuts, &order, &options, 10_000);
        let (u, w) = (
            got.uniformity.clone().unwrap(),
            want.uniformity.clone().unwrap(),
        );
        assert_eq!((u.method, u.pairs), (Method::Exact, w.pairs));
        close(u.value, w.value, "uniformity");
        for ((name, a), (want_name, b)) in got
            .uniformity_per_class
            .iter()
            .zip(&want.uniformity_per_class)
        {
            assert_eq!(name, want_name, "class order (numeric, not text)");
            close(a.as_ref().unwrap().value, b.as_ref().unwrap().value, name);
        }
        close(
            got.class_alignment.as_ref().unwrap().value,
            want.class_alignment.as_ref().unwrap().value,
            "class alignment",
        );
        let (gs, ws) = (&got.spectrum, &want.spectrum);
        close(gs.effective_rank, ws.effective_rank, "effective rank");
        close(gs.rankme, ws.rankme, "rankme");
        close(gs.normalized_std, ws.normalized_std, "normalized std");
        let (gi, wi) = (&gs.isotropy, &ws.isotropy);
        close(gi.mean_cosine, wi.mean_cosine, "mean cosine");
        for (what, a, b) in [
            ("isoscore", gi.isoscore, wi.isoscore),
            (
                "participation ratio",
                gi.participation_ratio,
                wi.participation_ratio,
            ),
            ("nesum", gi.nesum, wi.nesum),
            ("numerical rank", gi.numerical_rank, wi.numerical_rank),
            (
                "pseudo-condition number",
                gi.pseudo_condition_number,
                wi.pseudo_condition_number,
            ),
            ("self-clustering", gi.self_clustering, wi.self_clustering),
        ] {
            close(a.unwrap(), b.unwrap(), what);
        }
        for (a, b) in gs.eigenvalues.iter().zip(&ws.eigenvalues) {
            close(*a, *b, "eigenvalue");
        }
        let (gc, wc) = (
            got.collapse.as_ref().unwrap(),
            want.collapse.as_ref().unwrap(),
        );
        for (what, a, b) in [
            ("nc1", gc.nc1, wc.nc1),
            ("nc1 quotient", gc.nc1_quotient, wc.nc1_quotient),
            ("nc2 equinorm", gc.nc2_equinorm, wc.nc2_equinorm),
            (
                "nc2 classifier",
                gc.nc2_equinorm_classifier,
                wc.nc2_equinorm_classifier,
            ),
            (
                "nc2 equiangularity",
                gc.nc2_equiangularity,
                wc.nc2_equiangularity,
            ),
            ("etf", gc.etf_distance, wc.etf_distance),
            ("nc3", gc.nc3, wc.nc3),
            (
                "cdnv",
                gc.cdnv.as_ref().map(|c| c.mean),
                wc.cdnv.as_ref().map(|c| c.mean),
            ),
        ] {
            close(a.unwrap(), b.unwrap(), what);
        }
        assert_eq!(
            gc.ncc_accuracy, wc.ncc_accuracy,
            "nearest-class-mean accuracy"
        );
        assert_eq!(gc.nc4, wc.nc4, "nc4");
        assert_eq!(got.knn, want.knn, "kNN accuracy on the same queries");
        assert!(want.intrinsic_dimension.is_some());
        assert_eq!(
            got.intrinsic_dimension, want.intrinsic_dimension,
            "intrinsic dimension from the same merged neighbours"
        );
        assert_eq!(want.hubness.as_ref().unwrap().method, "subsample");
        assert_eq!(got.hubness, want.hubness, "hubness of the same subsample");
        close(got.tolerance.unwrap(), want.tolerance.unwrap(), "tolerance");
        let (ga, wa) = (
            got.simplex_angles.as_ref().unwrap(),
            want.simplex_angles.as_ref().unwrap(),
        );
        close(ga.mean_degrees, wa.mean_degrees, "simplex angle mean");
        for (a, b) in got.per_class.iter().zip(&want.per_class) {
            assert_eq!(
                (&a.name, a.count, &a.nearest_vertex),
                (&b.name, b.count, &b.nearest_vertex)
            );
            close(a.within_variance, b.within_variance, "within variance");
            close(
                a.vertex_distance.unwrap(),
                b.vertex_distance.unwrap(),
                "vertex distance",
            );
            close(
                a.self_similarity.unwrap(),
                b.self_similarity.unwrap(),
                "self-similarity",
            );
        }
    }
}

#[test]
fn the_sampled_uniformity_depends_on_the_seed_only() {
    let (x, labels) = data();
    let options = AnalysisOptions {
        max_exact: 100,
        ..options()
    };
    let exact = single_pass(&x, &labels, &AnalysisOptions::default());
    let one = sharded(&x, &labels, &[0, 700], &[0], &options, 300);
    let seven = sharded(
        &x,
        &labels,
        &[0, 5, 99, 300, 301, 500, 650, 700],
        &[3, 1, 6, 0, 2, 5, 4],
        &options,
        300,
    );
    let u = one.uniformity.clone().unwrap();
    assert_eq!(u.method, Method::SampledRows);
    assert_eq!(u.pairs, 300 * 299 / 2);
    assert_eq!(
        one.uniformity, seven.uniformity,
        "the same sample, the same bits"
    );
    assert_eq!(one.uniformity_per_class, seven.uniformity_per_class);
    let stderr = u.stderr.unwrap();
    let truth = exact.uniformity.unwrap().value;
    assert!(stderr > 0.0 && stderr < 0.05, "stderr {stderr}");
    assert!(
        (u.value - truth).abs() < 5.0 * stderr,
        "{} vs {truth} (se {stderr})",
        u.value
    );
    let other_seed = sharded(
        &x,
        &labels,
        &[0, 700],
        &[0],
        &AnalysisOptions { seed: 1, ..options },
        300,
    );
    assert_ne!(other_seed.uniformity, one.uniformity);
}

#[test]
fn results_of_another_version_or_a_wrong_plan_are_refused() {
    let (x, labels) = data();
    let unit = normalize_rows(x.view()).unwrap();
    let keys: Vec<LabelKey> = labels.iter().map(|&l| LabelKey::Int(l.into())).collect();
    let plan = ShardPlan {
        rows: vec![100, 600],
        options: ShardOptions::of(&options(), 1000).unwrap(),
    };
    let error = summarize(&plan, 0, unit.view(), x.view(), Some(&keys)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("shard 0 has 700 rows, the plan says 100"),
        "{error}"
    );
    let part = summarize(
        &plan,
        0,
        unit.slice(s![..100, ..]),
        x.slice(s![..100, ..]),
        Some(&keys[..100]),
    )
    .unwrap();
    let mut bytes = part.to_bytes();
    bytes[8] = 7;
    let error = Summary::from_bytes(&bytes).unwrap_err().to_string();
    assert!(error.contains("version 7"), "{error}");
    assert!(
        Summary::from_bytes(&plan.to_bytes()).is_err(),
        "a plan is not a summary"
    );
    let error = part.context(&plan, None).unwrap_err().to_string();
    assert!(error.contains("covers 1 shards and 100 rows"), "{error}");
}

/// The moment-based similarity family (linear and debiased CKA, both Procrustes forms, mean
/// CCA, SVCCA, PWCCA) of states of uneven batches, merged in several orders, equals the family
/// of all rows to 1e-12.
#[test]
fn similarity_states_merged_in_any_order_equal_the_family_of_all_rows() {
    use embgeom_geometry::{similarity, Similarity, SimilarityState};
    let x = gaussian(500, 12, 21) + 5.0;
    let y = x.dot(&gaussian(12, 7, 22)) + gaussian(500, 7, 23) * 0.5 - 3.0;
    let want = similarity(x.view(), y.view()).unwrap();
    let read = |s: &Similarity| {
        [
            Some(s.linear_cka),
            s.debiased_cka,
            Some(s.procrustes),
            Some(s.procrustes_angular),
            s.mean_cca,
            s.svcca,
            s.pwcca,
        ]
    };
    for (cuts, order) in [
        (vec![0, 500], vec![0]),
        (vec![0, 1, 200, 201, 499, 500], vec![4, 2, 0, 3, 1]),
        (vec![0, 7, 40, 41, 333, 500], vec![2, 4, 1, 0, 3]),
    ] {
        let mut merged = SimilarityState::new(12, 7);
        for &k in &order {
            let (a, b) = (cuts[k], cuts[k + 1]);
            let mut part = SimilarityState::new(12, 7);
            part.update(x.slice(s![a..b, ..]), y.slice(s![a..b, ..]))
                .unwrap();
            merged
                .merge(&SimilarityState::from_bytes(&part.to_bytes()).unwrap())
                .unwrap();
        }
        assert_eq!(merged.rows(), 500);
        let got = Similarity::from_moments(&merged.centred().unwrap()).unwrap();
        for (g, w) in read(&got).into_iter().zip(read(&want)) {
            let (g, w) = (g.unwrap(), w.unwrap());
            assert!((g - w).abs() <= 1e-12, "{g} vs {w}");
        }
    }
    assert!(SimilarityState::new(12, 7)
        .merge(&SimilarityState::new(3, 7))
        .is_err());
}

#[test]
fn view_alignment_parts_of_shards_merge_into_the_alignment() {
    use embgeom_geometry::{alignment, alignment_part};
    let x = normalize_rows(gaussian(500, 12, 31).view()).unwrap();
    let y = normalize_rows((gaussian(500, 12, 32) * 0.3 + &x).view()).unwrap();
    let z = normalize_rows((gaussian(500, 12, 33) * 0.3 + &x).view()).unwrap();
    for alpha in [2.0, 1.0] {
        let want = alignment(&[x.view(), y.view(), z.view()], alpha).unwrap();
        let cuts = [0, 1, 170, 171, 499, 500];
        let merged = cuts
            .windows(2)
            .rev()
            .map(|w| {
                let part = |m: &Array2<f64>| m.slice(s![w[0]..w[1], ..]).to_owned();
                let (a, b, c) = (part(&x), part(&y), part(&z));
                alignment_part(&[a.view(), b.view(), c.view()], alpha).unwrap()
            })
            .reduce(|a, b| a.merge(b).unwrap())
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(merged.pairs, want.pairs);
        close(merged.value, want.value, "view alignment");
    }
    let one = alignment_part(&[x.view(), y.view()], 2.0).unwrap();
    let other = alignment_part(&[x.view(), y.view()], 1.0).unwrap();
    assert!(one.merge(other).is_err(), "alphas differ");
}
