//! Oracles, invariances and a plain O(N^2) reference for alignment and uniformity.

mod common;

use common::*;
use embgeom_geometry::*;
use ndarray::{Array2, Axis};
use proptest::prelude::*;

fn naive_uniformity(x: &Array2<f64>, t: f64) -> f64 {
    let n = x.nrows();
    let mut sum = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let d2: f64 = (&x.row(i) - &x.row(j)).mapv(|v| v * v).sum();
            sum += (-t * d2).exp();
        }
    }
    (sum / (n * (n - 1) / 2) as f64).ln()
}

fn naive_class_alignment(x: &Array2<f64>, labels: &[u32], alpha: f64) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for i in 0..x.nrows() {
        for j in i + 1..x.nrows() {
            if labels[i] == labels[j] {
                let d2: f64 = (&x.row(i) - &x.row(j)).mapv(|v| v * v).sum();
                sum += d2.powf(alpha / 2.0);
                count += 1;
            }
        }
    }
    sum / count as f64
}

fn exact(x: &Array2<f64>, t: f64, tile: usize) -> f64 {
    uniformity_exact(x.view(), t, tile, &NoProgress)
        .unwrap()
        .value
}

#[test]
fn regular_simplex_reaches_the_uniformity_floor() {
    for (n, want) in [(2, -8.0), (3, -6.0), (4, -16.0 / 3.0)] {
        let x = regular_simplex(n);
        assert!((exact(&x, 2.0, 512) - want).abs() < 1e-12, "N={n}");
    }
    for n in [5, 10, 33] {
        for t in [0.5, 2.0, 7.0] {
            let floor = -2.0 * t * n as f64 / (n as f64 - 1.0);
            assert!((exact(&regular_simplex(n), t, 4) - floor).abs() < 1e-10);
        }
    }
}

#[test]
fn full_collapse_gives_zero() {
    let row = unit_gaussian(1, 16, 1);
    let x = row.broadcast((50, 16)).unwrap().to_owned();
    assert!(exact(&x, 2.0, 7).abs() < 1e-12);
    let x32 = x.mapv(|v| v as f32);
    let u = uniformity_exact(x32.view(), 2.0, 7, &NoProgress).unwrap();
    assert!(u.value.abs() < 1e-6, "{}", u.value);
    let a = alignment(&[x.view(), x.view()], 2.0).unwrap();
    assert_eq!(a.value, 0.0);
    let labels = vec![0u32; 50];
    let ca = class_alignment(x.view(), &classes_of(&labels), 2.0, &NoProgress).unwrap();
    assert!(ca.value.abs() < 1e-12);
}

#[test]
fn uniform_sphere_matches_the_analytic_limit() {
    // metrics.md: L_unif(t = 2) for uniform points on S^{D-1}.
    for (d, limit, tol) in [
        (3, -2.079_777_060_587_913, 0.01),
        (16, -3.5130364364210654, 0.003),
    ] {
        let x = unit_gaussian(4096, d, 42 + d as u64);
        let got = exact(&x, 2.0, 512);
        assert!((got - limit).abs() < tol, "D={d}: {got} vs {limit}");
    }
    // D = 3 closed form for other t: E = (1 - e^{-4t}) / (4t).
    let x = unit_gaussian(4096, 3, 9);
    let t: f64 = 1.0;
    let want = ((1.0 - (-4.0 * t).exp()) / (4.0 * t)).ln();
    assert!((exact(&x, t, 256) - want).abs() < 0.01);
}

#[test]
fn analytic_uniform_sphere_values_match_the_reference_table() {
    let table = [
        (2, -1.575_027_204_484_540_7),
        (3, -2.079_777_060_587_913),
        (4, -2.414_909_581_461_873),
        (8, -3.082_527_233_478_035),
        (16, -3.513_036_436_421_065_4),
        (32, -3.751_805_019_856_598),
        (64, -3.875_235_589_679_26),
        (128, -3.937_530_010_203_857),
        (256, -3.968_753_783_913_330_8),
        (512, -3.984_375_474_943_411),
    ];
    for (d, want) in table {
        let got = uniform_sphere_uniformity(d, 2.0);
        assert!((got - want).abs() < 1e-12, "D={d}: {got} vs {want}");
    }
    let t: f64 = 0.7;
    let closed = ((1.0 - (-4.0 * t).exp()) / (4.0 * t)).ln();
    assert!((uniform_sphere_uniformity(3, t) - closed).abs() < 1e-12);
}

#[test]
fn exact_tiled_matches_the_plain_double_loop() {
    for (n, d, tile) in [(2, 3, 1), (37, 5, 8), (100, 16, 33), (129, 4, 512)] {
        let x = unit_gaussian(n, d, n as u64);
        for t in [0.1, 2.0, 50.0] {
            let want = naive_uniformity(&x, t);
            let got = exact(&x, t, tile);
            assert!(
                ((got - want) / want).abs() < 1e-10,
                "n={n} t={t}: {got} vs {want}"
            );
            let x32 = x.mapv(|v| v as f32);
            let got32 = uniformity_exact(x32.view(), t, tile, &NoProgress)
                .unwrap()
                .value;
            assert!(
                ((got32 - want) / want).abs() < 1e-5,
                "f32 n={n} t={t}: {got32} vs {want}"
            );
        }
    }
}

#[test]
fn unnormalised_rows_use_true_distances() {
    let x = gaussian(40, 6, 3) * 0.3;
    assert!(
        ((exact(&x, 2.0, 8) - naive_uniformity(&x, 2.0)) / naive_uniformity(&x, 2.0)).abs() < 1e-10
    );
}

#[test]
fn label_positive_alignment_matches_the_double_loop() {
    let x = unit_gaussian(90, 7, 5);
    let labels: Vec<u32> = (0..90).map(|i| (i * 7 % 4) as u32).collect();
    let classes = classes_of(&labels);
    for alpha in [2.0, 1.0, 3.5] {
        let got = class_alignment(x.view(), &classes, alpha, &NoProgress).unwrap();
        let want = naive_class_alignment(&x, &labels, alpha);
        assert!(((got.value - want) / want).abs() < 1e-10, "alpha={alpha}");
    }
    let pairs = class_alignment(x.view(), &classes, 2.0, &NoProgress)
        .unwrap()
        .pairs;
    let counts = classes.counts();
    assert_eq!(
        pairs,
        counts
            .iter()
            .map(|&n| (n * (n - 1) / 2) as u64)
            .sum::<u64>()
    );
}

#[test]
fn view_alignment_averages_all_view_pairs() {
    let a = unit_gaussian(30, 4, 1);
    let b = unit_gaussian(30, 4, 2);
    let c = unit_gaussian(30, 4, 3);
    let mean_sq = |p: &Array2<f64>, q: &Array2<f64>| (p - q).mapv(|v| v * v).sum() / 30.0;
    let two = alignment(&[a.view(), b.view()], 2.0).unwrap();
    assert!((two.value - mean_sq(&a, &b)).abs() < 1e-12);
    assert_eq!(two.pairs, 30);
    let three = alignment(&[a.view(), b.view(), c.view()], 2.0).unwrap();
    let want = (mean_sq(&a, &b) + mean_sq(&a, &c) + mean_sq(&b, &c)) / 3.0;
    assert!((three.value - want).abs() < 1e-12);
    assert_eq!(three.pairs, 90);
    let one = alignment(&[a.view(), b.view()], 1.0).unwrap();
    let want1: f64 = (0..30)
        .map(|i| (&a.row(i) - &b.row(i)).mapv(|v| v * v).sum().sqrt())
        .sum::<f64>()
        / 30.0;
    assert!((one.value - want1).abs() < 1e-12);
}

#[test]
fn metrics_are_invariant_to_rotation_and_row_order() {
    let x = unit_gaussian(200, 12, 11);
    let labels: Vec<u32> = (0..200).map(|i| (i % 5) as u32).collect();
    let rotated = x.dot(&rotation(12, 4));
    let order: Vec<usize> = (0..200).map(|i| (i * 73) % 200).collect();
    let permuted = x.select(Axis(0), &order);
    let permuted_labels: Vec<u32> = order.iter().map(|&i| labels[i]).collect();
    let base = exact(&x, 2.0, 64);
    assert!((exact(&rotated, 2.0, 64) - base).abs() < 1e-12);
    assert!((exact(&permuted, 2.0, 64) - base).abs() < 1e-12);
    for alpha in [2.0, 1.0] {
        let ca = |m: &Array2<f64>, l: &[u32]| {
            class_alignment(m.view(), &classes_of(l), alpha, &NoProgress)
                .unwrap()
                .value
        };
        let base = ca(&x, &labels);
        assert!((ca(&rotated, &labels) - base).abs() < 1e-12);
        assert!((ca(&permuted, &permuted_labels) - base).abs() < 1e-12);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let x = unit_gaussian(3000, 32, 8).mapv(|v| v as f32);
    let labels: Vec<u32> = (0..3000).map(|i| (i % 7) as u32).collect();
    let classes = classes_of(&labels);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            (
                uniformity_exact(x.view(), 2.0, 256, &NoProgress)
                    .unwrap()
                    .value,
                uniformity_sampled(x.view(), 2.0, 300_000, 5).unwrap().value,
                class_alignment(x.view(), &classes, 1.0, &NoProgress)
                    .unwrap()
                    .value,
                class_alignment(x.view(), &classes, 2.0, &NoProgress)
                    .unwrap()
                    .value,
            )
        })
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        let other = run(threads);
        for (a, b) in [
            (one.0, other.0),
            (one.1, other.1),
            (one.2, other.2),
            (one.3, other.3),
        ] {
            // Identical bits, as promised: every sum runs over a fixed partition of the work.
            assert_eq!(a.to_bits(), b.to_bits(), "{threads} threads: {a} vs {b}");
        }
    }
}

#[test]
fn sampled_estimate_agrees_with_exact_within_its_standard_error() {
    let x = unit_gaussian(2000, 8, 21);
    let want = exact(&x, 2.0, 512);
    let mut within = 0;
    for seed in 0..20 {
        let s = uniformity_sampled(x.view(), 2.0, 200_000, seed).unwrap();
        assert_eq!(s.method, Method::Sampled);
        let se = s.stderr.unwrap();
        assert!(se > 0.0 && se < 0.01);
        if (s.value - want).abs() < 2.0 * se {
            within += 1;
        }
    }
    // About 95% of the estimates fall within 2 standard errors.
    assert!(within >= 15, "{within} of 20 within 2 se");
    let small = uniformity_sampled(x.view(), 2.0, 20_000, 1)
        .unwrap()
        .stderr
        .unwrap();
    let large = uniformity_sampled(x.view(), 2.0, 2_000_000, 1)
        .unwrap()
        .stderr
        .unwrap();
    assert!(
        (small / large - 10.0).abs() < 1.0,
        "stderr scales as 1/sqrt(K)"
    );
}

#[test]
fn normalising_divides_each_row_by_its_norm_and_names_the_first_bad_row_in_any_block() {
    // More rows than one parallel block (4,096), f32 and f64: each output is the row's entry
    // over its f64 norm, rounded once to the element type.
    let x = unit_gaussian(9_000, 5, 11).mapv(|v| 3.0 * v);
    let unit = normalize_rows(x.view()).unwrap();
    let x32 = x.mapv(|v| v as f32);
    let unit32 = normalize_rows(x32.view()).unwrap();
    for i in 0..x.nrows() {
        let norm = x.row(i).iter().map(|v| v * v).sum::<f64>().sqrt();
        let norm32 = x32
            .row(i)
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        for j in 0..x.ncols() {
            assert!((unit[[i, j]] - x[[i, j]] / norm).abs() <= 4e-16, "{i} {j}");
            assert_eq!(
                unit32[[i, j]],
                (f64::from(x32[[i, j]]) / norm32) as f32,
                "{i} {j}"
            );
        }
    }
    // A zero row in one block and a non-finite entry in a later one: the non-finite entry
    // is named, as the whole input is checked for finiteness first.
    let mut bad = x.clone();
    bad.row_mut(5_000).fill(0.0);
    assert_eq!(
        normalize_rows(bad.view()),
        Err(GeometryError::ZeroNorm { row: 5_000 })
    );
    bad[[8_000, 3]] = f64::INFINITY;
    for result in [
        normalize_rows(bad.view()),
        normalize_rows(bad.mapv(|v| v as f32).view()).map(|u| u.mapv(f64::from)),
    ] {
        assert!(
            matches!(
                result,
                Err(GeometryError::NonFinite {
                    row: 8_000,
                    column: 3,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

#[test]
fn bad_inputs_are_errors_that_name_the_row() {
    let mut x = unit_gaussian(10, 3, 1);
    x.row_mut(6).fill(0.0);
    assert_eq!(
        normalize_rows(x.view()),
        Err(GeometryError::ZeroNorm { row: 6 })
    );
    x[[4, 2]] = f64::NAN;
    match normalize_rows(x.view()) {
        Err(GeometryError::NonFinite {
            row: 4, column: 2, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let y = unit_gaussian(10, 3, 2);
    assert!(matches!(
        uniformity_exact(y.view(), 0.0, 8, &NoProgress),
        Err(GeometryError::InvalidParameter { name: "t", .. })
    ));
    assert!(matches!(
        uniformity_exact(y.slice(ndarray::s![..1, ..]), 2.0, 8, &NoProgress),
        Err(GeometryError::TooFewRows { .. })
    ));
    // A NaN reaching the exact uniformity (f64 tiles or the fused f32 kernel) is named, and
    // exponents beyond the element type's range are an error, never a NaN.
    let mut z = y.clone();
    z[[7, 1]] = f64::NAN;
    let z32 = z.mapv(|v| v as f32);
    for result in [
        uniformity_exact(z.view(), 2.0, 8, &NoProgress),
        uniformity_exact(z32.view(), 2.0, 8, &NoProgress),
    ] {
        assert!(
            matches!(
                result,
                Err(GeometryError::NonFinite {
                    row: 7,
                    column: 1,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    let y32 = y.mapv(|v| v as f32);
    assert!(matches!(
        uniformity_exact(y32.view(), 1e38, 8, &NoProgress),
        Err(GeometryError::NonFiniteResult { .. })
    ));
    assert!(matches!(
        alignment(&[y.view(), y.slice(ndarray::s![..5, ..])], 2.0),
        Err(GeometryError::ShapeMismatch { .. })
    ));
    let singletons = classes_of(&(0..10).collect::<Vec<u32>>());
    assert!(matches!(
        class_alignment(y.view(), &singletons, 2.0, &NoProgress),
        Err(GeometryError::Labels { .. })
    ));
}

#[test]
fn analysis_reports_what_applies_and_nothing_else() {
    let x = unit_gaussian(60, 5, 3);
    let y = unit_gaussian(60, 5, 4);
    let labels: Vec<u32> = (0..60)
        .map(|i| if i == 0 { 2 } else { (i % 2) as u32 })
        .collect();
    let classes = classes_of(&labels);
    let options = AnalysisOptions::default();
    let plain = analyze(
        &AnalysisInput {
            embeddings: Some(x.view()),
            ..Default::default()
        },
        &options,
        &NoProgress,
    )
    .unwrap();
    assert!(plain.alignment.is_none() && plain.class_alignment.is_none());
    assert_eq!(plain.num_classes, None);
    assert!((plain.uniformity.unwrap().value - naive_uniformity(&x, 2.0)).abs() < 1e-10);

    let full = analyze(
        &AnalysisInput {
            views: vec![x.view(), y.view()],
            classes: Some(&classes),
            ..Default::default()
        },
        &options,
        &NoProgress,
    )
    .unwrap();
    let mean = (naive_uniformity(&x, 2.0) + naive_uniformity(&y, 2.0)) / 2.0;
    assert!((full.uniformity.as_ref().unwrap().value - mean).abs() < 1e-10);
    assert_eq!(full.uniformity_views.len(), 2);
    assert!(full.alignment.is_some());
    assert_eq!(full.num_classes, Some(3));
    assert_eq!(full.uniformity_per_class[2], ("2".to_string(), None));
    let class1: Vec<usize> = (0..60).filter(|&i| labels[i] == 1).collect();
    let want = naive_uniformity(&x.select(Axis(0), &class1), 2.0);
    assert!((full.uniformity_per_class[1].1.as_ref().unwrap().value - want).abs() < 1e-10);

    let sampled = analyze(
        &AnalysisInput {
            embeddings: Some(x.view()),
            ..Default::default()
        },
        &AnalysisOptions {
            max_exact: 10,
            ..options
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(sampled.uniformity.unwrap().method, Method::Sampled);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn exact_uniformity_matches_reference_and_respects_the_floor(
        n in 2usize..40, d in 1usize..6, seed in 0u64..1000, tile in 1usize..16, t in 0.1f64..8.0
    ) {
        let x = unit_gaussian(n, d, seed);
        let got = exact(&x, t, tile);
        let want = naive_uniformity(&x, t);
        prop_assert!((got - want).abs() < 1e-9 * want.abs().max(1.0));
        prop_assert!(got >= -2.0 * t * n as f64 / (n as f64 - 1.0) - 1e-9);
        prop_assert!(got <= 1e-12);
    }
}

#[test]
fn the_memory_estimate_follows_the_smaller_side() {
    // 2,000 x 16,384 in 10 classes: N x N Gram matrices and per-class blocks, not D x D ones.
    let wide = memory_estimate(2_000, 16_384, 10);
    assert!(wide.total() < 1_000_000_000, "{wide:?}");
    // The same D with as many rows: the D x D scatters (about 34 GB).
    let square = memory_estimate(20_000, 16_384, 10);
    assert!(square.dimension_pairs > 30_000_000_000, "{square:?}");
    assert_eq!(square.driver(), MemoryDriver::Dimensions);
    // Growing D at fixed N < D grows the estimate linearly, not quadratically.
    let (a, b) = (
        memory_estimate(1_000, 8_192, 10),
        memory_estimate(1_000, 16_384, 10),
    );
    assert!(b.total() < 2 * a.total() + 10_000_000, "{a:?} {b:?}");
}
