//! Class collapse, simplex and spectrum metrics: analytic oracles, invariances, a plain
//! unoptimised implementation on small inputs, and every degenerate case.

mod common;

use common::*;
use embgeom_geometry::*;
use ndarray::{Array1, Array2, Axis};
use ndarray_linalg::SVD;

/// C class means on a regular simplex of radius `scale` in D >= C dims, `per` rows each with
/// isotropic Gaussian noise of std `noise`. Returns rows and labels.
fn simplex_classes(
    c: usize,
    d: usize,
    per: usize,
    scale: f64,
    noise: f64,
    seed: u64,
) -> (Array2<f64>, Vec<u32>) {
    let vertices = regular_simplex(c);
    let jitter = gaussian(c * per, d, seed);
    let mut x = Array2::<f64>::zeros((c * per, d));
    let mut labels = Vec::new();
    for i in 0..c * per {
        let k = i % c;
        labels.push(k as u32);
        for j in 0..d {
            let mean = if j < c { scale * vertices[[k, j]] } else { 0.0 };
            x[[i, j]] = mean + noise * jitter[[i, j]];
        }
    }
    (x, labels)
}

/// Leave-one-out kNN accuracy with the default k and temperature.
fn loo_knn<F: Real>(unit: &Array2<F>, labels: &[u32], c: usize) -> f64 {
    knn_accuracy(
        unit.view(),
        labels,
        c,
        &KnnSplit::LeaveOneOut,
        &KnnOptions::default(),
    )
    .unwrap()
    .value
}

fn analyse(
    x: &Array2<f64>,
    labels: &[u32],
    classifier: Option<&Classifier>,
) -> (ClassStats, Collapse) {
    let classes = classes_of(labels);
    let stats = class_stats(x.view(), &classes).unwrap();
    let c = collapse(x.view(), &classes, &stats, classifier).unwrap();
    (stats, c)
}

#[test]
fn regular_simplex_with_tiny_noise_is_fully_collapsed() {
    let (x, labels) = simplex_classes(5, 8, 40, 3.0, 1e-5, 1);
    let (stats, c) = analyse(&x, &labels, None);
    assert!(c.nc1.unwrap() < 1e-8, "{:?}", c.nc1);
    assert!(c.nc1_quotient.unwrap() < 1e-8);
    assert_eq!(c.nc1_rank, 4);
    for v in [
        c.nc2_equinorm,
        c.nc2_equiangularity,
        c.nc2_max_angle,
        c.etf_distance,
    ] {
        assert!(v.unwrap() < 1e-4, "{v:?}");
    }
    assert_eq!(c.ncc_accuracy, Some(1.0));
    assert!(c.cdnv.as_ref().unwrap().mean < 1e-8);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let unit = normalize_rows(x.view()).unwrap();
    let angles = simplex_angles(class_means(unit.view(), &classes_of(&labels)).view()).unwrap();
    assert!((angles.ideal_degrees - (-0.25f64).acos().to_degrees()).abs() < 1e-12);
    assert!(angles.max_abs_deviation_degrees < 1e-3);
    assert!(angles.mean_norms.iter().all(|&n| (n - 1.0).abs() < 1e-6));
    let (distances, nearest) = vertex_distances(stats.centred_means().view()).unwrap();
    assert!(distances.iter().all(|&d| d < 1e-4), "{distances:?}");
    assert_eq!(nearest, vec![0, 1, 2, 3, 4]);
    let knn = loo_knn(&unit, &labels, 5);
    assert_eq!(knn, 1.0);
}

#[test]
fn exact_simplex_gives_exact_zeros() {
    let (x, labels) = simplex_classes(4, 4, 3, 1.0, 0.0, 1);
    let (_, c) = analyse(&x, &labels, None);
    assert_eq!(c.nc1, Some(0.0));
    assert!(c.etf_distance.unwrap() < 1e-12);
    assert!(c.warnings.iter().any(|w| w.contains("Sigma_W = 0")));
}

#[test]
fn self_dual_classifier_gives_zero_nc3_and_nc4() {
    let (x, labels) = simplex_classes(6, 10, 30, 2.0, 0.05, 2);
    let (stats, _) = analyse(&x, &labels, None);
    let w = Classifier {
        weights: stats.centred_means() * 7.0,
        bias: None,
    };
    let (_, c) = analyse(&x, &labels, Some(&w));
    assert!(c.nc3.unwrap() < 1e-20);
    assert_eq!(c.nc4, Some(0.0));
    assert!((c.nc2_equinorm_classifier.unwrap() - c.nc2_equinorm.unwrap()).abs() < 1e-12);
    // A classifier that prefers class 0 by a huge bias disagrees with the nearest mean on
    // every row that is not of class 0.
    let mut bias = Array1::zeros(6);
    bias[0] = 1e6;
    let biased = Classifier {
        weights: w.weights.clone(),
        bias: Some(bias),
    };
    let (_, c) = analyse(&x, &labels, Some(&biased));
    assert!((c.nc4.unwrap() - 5.0 / 6.0).abs() < 1e-12);
    let wrong = Classifier {
        weights: Array2::zeros((6, 3)),
        bias: None,
    };
    let classes = classes_of(&labels);
    let stats = class_stats(x.view(), &classes).unwrap();
    assert!(matches!(
        collapse(x.view(), &classes, &stats, Some(&wrong)),
        Err(GeometryError::ShapeMismatch { .. })
    ));
}

/// Plain loops and textbook formulas, independent of the optimised code paths.
mod plain {
    use super::*;

    pub fn stats(
        x: &Array2<f64>,
        labels: &[u32],
        c: usize,
    ) -> (Array2<f64>, Array2<f64>, Array2<f64>, Vec<f64>) {
        let d = x.ncols();
        let mut means = Array2::<f64>::zeros((c, d));
        let mut counts = vec![0.0; c];
        for (i, &y) in labels.iter().enumerate() {
            counts[y as usize] += 1.0;
            for j in 0..d {
                means[[y as usize, j]] += x[[i, j]];
            }
        }
        for k in 0..c {
            for j in 0..d {
                means[[k, j]] /= counts[k];
            }
        }
        let global = means.mean_axis(Axis(0)).unwrap();
        let mut sw = Array2::<f64>::zeros((d, d));
        let mut var = vec![0.0; c];
        for (i, &y) in labels.iter().enumerate() {
            for a in 0..d {
                let da = x[[i, a]] - means[[y as usize, a]];
                var[y as usize] += da * da / counts[y as usize];
                for b in 0..d {
                    sw[[a, b]] += da * (x[[i, b]] - means[[y as usize, b]]) / x.nrows() as f64;
                }
            }
        }
        let mut sb = Array2::<f64>::zeros((d, d));
        for k in 0..c {
            for a in 0..d {
                for b in 0..d {
                    sb[[a, b]] +=
                        (means[[k, a]] - global[a]) * (means[[k, b]] - global[b]) / c as f64;
                }
            }
        }
        (means, sw, sb, var)
    }

    /// Moore-Penrose pseudo-inverse from the SVD.
    pub fn pinv(a: &Array2<f64>) -> Array2<f64> {
        let (u, s, vt) = a.svd(true, true).unwrap();
        let (u, vt) = (u.unwrap(), vt.unwrap());
        let cut = a.nrows() as f64 * f64::EPSILON * s[0];
        let mut out = Array2::<f64>::zeros(a.dim());
        for k in 0..s.len() {
            if s[k] > cut {
                for i in 0..a.nrows() {
                    for j in 0..a.ncols() {
                        out[[i, j]] += vt[[k, i]] * u[[j, k]] / s[k];
                    }
                }
            }
        }
        out
    }

    pub fn singular_values(x: &Array2<f64>) -> Vec<f64> {
        x.svd(false, false).unwrap().1.to_vec()
    }
}

#[test]
fn optimised_metrics_match_plain_implementations() {
    let (c, d) = (4, 6);
    let x = gaussian(90, d, 3) + simplex_classes(4, d, 1, 1.0, 0.0, 0).0.row(0).to_owned();
    let labels: Vec<u32> = (0..90).map(|i| ((i * 5 + i / 7) % c) as u32).collect();
    let (stats, col) = analyse(&x, &labels, None);
    let (means, sw, sb, var) = plain::stats(&x, &labels, c);
    assert!((&stats.means - &means).iter().all(|v| v.abs() < 1e-12));
    // C = 4 < D = 6: Sigma_W is kept as its projection M Sigma_W M^T.
    assert!(stats.within_in_mean_span());
    let m = &means - &means.mean_axis(Axis(0)).unwrap();
    assert!((&stats.within_projected - &m.dot(&sw).dot(&m.t()))
        .iter()
        .all(|v| v.abs() < 1e-12));
    assert!((stats.within_trace - sw.diag().sum()).abs() < 1e-12);
    let nc1 = sw.dot(&plain::pinv(&sb)).diag().sum() / c as f64;
    assert!(
        (col.nc1.unwrap() - nc1).abs() < 1e-8 * nc1,
        "{:?} vs {nc1}",
        col.nc1
    );
    assert!((col.nc1_quotient.unwrap() - sw.diag().sum() / sb.diag().sum()).abs() < 1e-12);
    for (k, want) in var.iter().enumerate() {
        assert!((stats.within_variance[k] - want).abs() < 1e-12);
        let rows: Vec<usize> = (0..90).filter(|&i| labels[i] == k as u32).collect();
        let centred = &x.select(Axis(0), &rows) - &means.row(k);
        let s = plain::singular_values(&centred);
        let p: Vec<f64> = s.iter().map(|v| v / s.iter().sum::<f64>()).collect();
        let erank = (-p.iter().map(|p| p * p.ln()).sum::<f64>()).exp();
        assert!(
            (stats.effective_ranks[k].unwrap() - erank).abs() < 1e-9,
            "class {k}"
        );
    }
    // CDNV, equinorm, equiangularity, max-angle and ETF by loops.
    let global = means.mean_axis(Axis(0)).unwrap();
    let m: Vec<Array1<f64>> = (0..c).map(|k| &means.row(k) - &global).collect();
    let norms: Vec<f64> = m.iter().map(|v| v.dot(v).sqrt()).collect();
    let mean_norm = norms.iter().sum::<f64>() / c as f64;
    let sd = (norms.iter().map(|n| (n - mean_norm).powi(2)).sum::<f64>() / (c as f64 - 1.0)).sqrt();
    assert!((col.nc2_equinorm.unwrap() - sd / mean_norm).abs() < 1e-12);
    let mut cosines = Vec::new();
    let mut cdnv_sum = 0.0;
    for a in 0..c {
        for b in 0..c {
            if a != b {
                cosines.push(m[a].dot(&m[b]) / (norms[a] * norms[b]));
            }
            if a < b {
                let gap = (&means.row(a) - &means.row(b)).mapv(|v| v * v).sum();
                cdnv_sum += (var[a] + var[b]) / (2.0 * gap);
            }
        }
    }
    let mc = cosines.iter().sum::<f64>() / cosines.len() as f64;
    let sdc = (cosines.iter().map(|v| (v - mc).powi(2)).sum::<f64>()
        / (cosines.len() as f64 - 1.0))
        .sqrt();
    assert!((col.nc2_equiangularity.unwrap() - sdc).abs() < 1e-12);
    let max_angle =
        cosines.iter().map(|v| (v + 1.0 / 3.0).abs()).sum::<f64>() / cosines.len() as f64;
    assert!((col.nc2_max_angle.unwrap() - max_angle).abs() < 1e-12);
    assert!((col.cdnv.as_ref().unwrap().mean - cdnv_sum / 6.0).abs() < 1e-12);
    let mut g = Array2::<f64>::zeros((c, c));
    for a in 0..c {
        for b in 0..c {
            g[[a, b]] = m[a].dot(&m[b]);
        }
    }
    let gf = g.mapv(|v| v * v).sum().sqrt();
    let mut etf = 0.0;
    for a in 0..c {
        for b in 0..c {
            let ideal = (if a == b { 1.0 } else { 0.0 } - 0.25) / 3f64.sqrt();
            etf += (g[[a, b]] / gf - ideal).powi(2);
        }
    }
    assert!((col.etf_distance.unwrap() - etf.sqrt()).abs() < 1e-12);
    // Nearest class mean by loops.
    let ncc = (0..90)
        .filter(|&i| {
            let best = (0..c)
                .min_by(|&a, &b| {
                    let da = (&x.row(i) - &means.row(a)).mapv(|v| v * v).sum();
                    let db = (&x.row(i) - &means.row(b)).mapv(|v| v * v).sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            best as u32 == labels[i]
        })
        .count() as f64
        / 90.0;
    assert_eq!(col.ncc_accuracy, Some(ncc));
}

#[test]
fn spectrum_matches_svd_and_plain_covariance() {
    let x = gaussian(70, 9, 5) * Array1::from_iter((0..9).map(|j| 1.0 + j as f64)) + 0.3;
    let unit = normalize_rows(x.view()).unwrap();
    let got = spectrum(unit.view(), x.view()).unwrap();
    let mean = unit.mean_axis(Axis(0)).unwrap();
    let centred = &unit - &mean;
    let cov = centred.t().dot(&centred) / 69.0;
    let mut want: Vec<f64> = plain::singular_values(&cov);
    want.sort_by(|a, b| b.total_cmp(a));
    for (a, b) in got.eigenvalues.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    let raw_centred = &x - &x.mean_axis(Axis(0)).unwrap();
    let s = plain::singular_values(&raw_centred);
    let p: Vec<f64> = s.iter().map(|v| v / s.iter().sum::<f64>()).collect();
    let erank = (-p.iter().map(|p| p * p.ln()).sum::<f64>()).exp();
    assert!((got.effective_rank - erank).abs() < 1e-9);
    let s = plain::singular_values(&x);
    let p: Vec<f64> = s.iter().map(|v| v / s.iter().sum::<f64>() + 1e-7).collect();
    let rankme_want = (-p.iter().map(|p| p * p.ln()).sum::<f64>()).exp();
    assert!((got.rankme - rankme_want).abs() < 1e-9);
    let std_want = (0..9).map(|j| cov[[j, j]].sqrt()).sum::<f64>() / 9.0;
    assert!((got.normalized_std - std_want).abs() < 1e-12);
    assert_eq!(got.normalized_std_reference, 1.0 / 3.0);
}

#[test]
fn rank_k_embedding_has_exactly_k_eigenvalues() {
    let (k, d) = (5, 16);
    // Rows +/- e_j for j < k, rotated: equal singular values in a k-dim subspace, mean 0.
    let mut x = Array2::<f64>::zeros((4 * k, d));
    for j in 0..k {
        for r in 0..4 {
            x[[4 * j + r, j]] = if r % 2 == 0 { 1.0 } else { -1.0 };
        }
    }
    let x = x.dot(&rotation(d, 7));
    let got = spectrum(x.view(), x.view()).unwrap();
    assert_eq!(got.eigenvalues.iter().filter(|&&v| v > 0.0).count(), k);
    assert!((got.rankme - k as f64).abs() < 1e-4, "{}", got.rankme);
    assert!((got.effective_rank - k as f64).abs() < 1e-9);
}

#[test]
fn alpha_req_recovers_an_exact_power_law() {
    let eigenvalues: Vec<f64> = (1..=256).map(|k| 3.0 * (k as f64).powf(-1.3)).collect();
    let fit = alpha_req(&eigenvalues).unwrap();
    assert!((fit.alpha - 1.3).abs() < 1e-12);
    assert!((fit.r_squared - 1.0).abs() < 1e-12);
    assert_eq!(fit.ranks, (11, 100));
    let short: Vec<f64> = (1..=40).map(|k| (k as f64).powf(-0.7)).collect();
    let fit = alpha_req(&short).unwrap();
    assert_eq!(fit.ranks, (11, 40));
    assert!((fit.alpha - 0.7).abs() < 1e-12);
    assert!(alpha_req(&eigenvalues[..12]).is_none());
}

#[test]
fn metrics_are_invariant_to_row_order_and_rotation() {
    let (x, labels) = simplex_classes(5, 7, 20, 1.5, 0.4, 9);
    let rotated = x.dot(&rotation(7, 3));
    let order: Vec<usize> = (0..100).map(|i| (i * 37) % 100).collect();
    let permuted = x.select(Axis(0), &order);
    let permuted_labels: Vec<u32> = order.iter().map(|&i| labels[i]).collect();
    let summary = |x: &Array2<f64>, labels: &[u32]| {
        let (_, c) = analyse(x, labels, None);
        let unit = normalize_rows(x.view()).unwrap();
        let sp = spectrum(unit.view(), x.view()).unwrap();
        let knn = loo_knn(&unit, labels, 5);
        vec![
            c.nc1.unwrap(),
            c.nc1_quotient.unwrap(),
            c.nc2_equinorm.unwrap(),
            c.nc2_equiangularity.unwrap(),
            c.nc2_max_angle.unwrap(),
            c.etf_distance.unwrap(),
            c.cdnv.unwrap().mean,
            c.ncc_accuracy.unwrap(),
            sp.effective_rank,
            sp.rankme,
            sp.normalized_std,
            sp.eigenvalues[0],
            knn,
        ]
    };
    let base = summary(&x, &labels);
    // The std of normalised rows (index 10) is a per-coordinate monitor: row order only.
    for (other, rotated) in [
        (summary(&rotated, &labels), true),
        (summary(&permuted, &permuted_labels), false),
    ] {
        for (i, (a, b)) in base
            .iter()
            .zip(&other)
            .enumerate()
            .filter(|&(i, _)| !(rotated && i == 10))
        {
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + a.abs()),
                "metric {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn knn_matches_a_plain_sort_and_honours_the_split() {
    let x = unit_gaussian(150, 6, 4);
    let labels: Vec<u32> = (0..150).map(|i| (i % 3) as u32).collect();
    let options = KnnOptions {
        k: 7,
        ..KnnOptions::default()
    };
    let plain_vote = |query: usize, refs: &[usize]| {
        let mut sims: Vec<(f64, usize)> = refs
            .iter()
            .filter(|&&r| r != query)
            .map(|&r| (x.row(query).dot(&x.row(r)), r))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let best = sims[0].0;
        let mut w = [0.0; 3];
        for &(s, r) in &sims[..7] {
            w[labels[r] as usize] += ((s - best) / 0.07).exp();
        }
        (0..3).fold(0, |b, c| if w[c] > w[b] { c } else { b }) as u32
    };
    let all: Vec<usize> = (0..150).collect();
    let want = all
        .iter()
        .filter(|&&q| plain_vote(q, &all) == labels[q])
        .count() as f64
        / 150.0;
    let got = knn_accuracy(x.view(), &labels, 3, &KnnSplit::LeaveOneOut, &options).unwrap();
    assert_eq!(got.value, want);
    assert_eq!(
        (got.queries, got.k, got.split.as_str()),
        (150, 7, "leave-one-out")
    );
    let train: Vec<usize> = (0..100).collect();
    let test: Vec<usize> = (100..150).collect();
    let want = test
        .iter()
        .filter(|&&q| plain_vote(q, &train) == labels[q])
        .count() as f64
        / 50.0;
    let split = KnnSplit::TrainTest { train, test };
    let got = knn_accuracy(x.view(), &labels, 3, &split, &options).unwrap();
    assert_eq!(got.value, want);
    assert_eq!(got.split, "train/test");
    let few = knn_accuracy(
        x.view(),
        &labels,
        3,
        &KnnSplit::LeaveOneOut,
        &KnnOptions {
            max_queries: 40,
            ..options
        },
    )
    .unwrap();
    assert_eq!((few.queries, few.candidates), (40, 150));
}

#[test]
fn degenerate_inputs_give_messages_not_nan() {
    // One class.
    let x = gaussian(20, 4, 1);
    let (_, c) = analyse(&x, &[0; 20], None);
    assert!(c.nc1.is_none() && c.etf_distance.is_none() && c.cdnv.is_none());
    assert!(c.warnings[0].contains("one class"));
    assert_eq!(c.ncc_accuracy, Some(1.0));
    // A class with a single sample.
    let mut labels: Vec<u32> = (0..20).map(|i| (i % 2) as u32).collect();
    labels[0] = 2;
    let (_, c) = analyse(&x, &labels, None);
    assert!(c.nc1.unwrap().is_finite());
    assert!(c.warnings.iter().any(|w| w.contains("single row")));
    // C > D + 1.
    let x = gaussian(60, 2, 2);
    let labels: Vec<u32> = (0..60).map(|i| (i % 5) as u32).collect();
    let (_, c) = analyse(&x, &labels, None);
    assert!(c.warnings.iter().any(|w| w.contains("cannot exist")));
    assert!(c.etf_distance.unwrap() > 0.0 && c.nc1.unwrap().is_finite());
    // Rank-deficient Sigma_W: every class varies along one axis only.
    let (mut x, labels) = simplex_classes(3, 6, 10, 1.0, 0.0, 3);
    for i in 0..30 {
        x[[i, 5]] = (i as f64 * 0.37).sin();
    }
    let (_, c) = analyse(&x, &labels, None);
    assert!(c.nc1.unwrap().is_finite() && c.nc1.unwrap() >= 0.0);
    // Constant input: full collapse, reported as it is.
    let x = Array2::from_elem((12, 3), 0.5);
    let labels: Vec<u32> = (0..12).map(|i| (i % 3) as u32).collect();
    let (_, c) = analyse(&x, &labels, None);
    assert_eq!(c.nc1, Some(0.0));
    assert!(c.nc1_quotient.is_none());
    assert!(c.warnings[0].contains("constant input"));
    let unit = normalize_rows(x.view()).unwrap();
    let sp = spectrum(unit.view(), x.view()).unwrap();
    assert_eq!(sp.effective_rank, 0.0);
    assert!(sp.normalized_std < 1e-12);
    assert!(sp.eigenvalues.iter().all(|&v| v == 0.0));
    assert!(sp.alpha_req.is_none());
    assert!((sp.rankme - 1.0).abs() < 1e-4);
}

#[test]
fn subclass_structure_separates_kept_and_collapsed_subclasses() {
    // Class 0 keeps two well-separated subclasses; class 1's subclasses are mixed noise.
    let noise = gaussian(80, 4, 6) * 0.05;
    let mut x = Array2::<f64>::zeros((80, 4));
    let mut coarse = Vec::new();
    let mut fine = Vec::new();
    for i in 0..80 {
        let (c, f) = (i / 40, (i / 20) % 2);
        let centre: [f64; 4] = match (c, f) {
            (0, 0) => [1.0, 1.0, 0.0, 0.0],
            (0, _) => [1.0, -1.0, 0.0, 0.0],
            _ => [-1.0, 0.0, 0.0, 0.0],
        };
        for j in 0..4 {
            x[[i, j]] = centre[j] + noise[[i, j]];
        }
        coarse.push(c as u32);
        fine.push((2 * c + f) as u32);
    }
    let unit = normalize_rows(x.view()).unwrap();
    let sub = subclass_structure(
        unit.view(),
        x.view(),
        &classes_of(&coarse),
        &classes_of(&fine),
        &KnnOptions::default(),
    )
    .unwrap();
    let kept = &sub.per_class[0];
    let mixed = &sub.per_class[1];
    assert_eq!((kept.subclasses, mixed.subclasses), (2, 2));
    assert_eq!(kept.knn_accuracy, Some(1.0));
    assert!(mixed.knn_accuracy.unwrap() < 0.8);
    assert!(kept.cdnv.unwrap() < 0.01 && mixed.cdnv.unwrap() > 1.0);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (x, labels) = simplex_classes(7, 12, 300, 1.0, 0.3, 12);
    let x = x.mapv(|v| v as f32);
    let classes = classes_of(&labels);
    let unit = normalize_rows(x.view()).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let stats = class_stats(x.view(), &classes).unwrap();
                let c = collapse(x.view(), &classes, &stats, None).unwrap();
                let sp = spectrum(unit.view(), x.view()).unwrap();
                let knn = loo_knn(&unit, &labels, 7);
                (
                    c.nc1.unwrap(),
                    c.cdnv.unwrap().mean,
                    sp.eigenvalues.clone(),
                    sp.rankme,
                    knn,
                    stats.within_projected.clone(),
                )
            })
    };
    let one = run(1);
    for threads in [2, 3] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn linear_cka_is_one_for_the_same_representation_and_small_for_unrelated_ones() {
    let x = gaussian(400, 8, 1);
    let same = x.dot(&rotation(8, 2)) * 3.0 + 5.0;
    assert!((linear_cka(x.view(), same.view()).unwrap() - 1.0).abs() < 1e-12);
    let wider = ndarray::concatenate![Axis(1), x, Array2::<f64>::zeros((400, 3))];
    assert!((linear_cka(x.view(), wider.view()).unwrap() - 1.0).abs() < 1e-12);
    let other = gaussian(400, 8, 9);
    let unrelated = linear_cka(x.view(), other.view()).unwrap();
    assert!(unrelated < 0.1, "{unrelated}");
    // Plain formula on centred matrices.
    let cx = &x - &x.mean_axis(Axis(0)).unwrap();
    let cy = &other - &other.mean_axis(Axis(0)).unwrap();
    let f = |a: &Array2<f64>| a.mapv(|v| v * v).sum();
    let want = f(&cy.t().dot(&cx)) / (f(&cx.t().dot(&cx)).sqrt() * f(&cy.t().dot(&cy)).sqrt());
    assert!((unrelated - want).abs() < 1e-12);
    assert!(linear_cka(x.view(), other.slice(ndarray::s![..10, ..])).is_err());
}

/// NC1 as it is defined: the eigendecomposition of the D x D `Sigma_B`, eigenvalues above
/// `max(D, C) eps lambda_max` kept.
fn nc1_of_the_full_decomposition(stats: &ClassStats, within: &Array2<f64>) -> (f64, usize) {
    use ndarray_linalg::{Eigh, UPLO};
    let c = stats.num_classes();
    let sb = stats.between_covariance();
    let (values, vectors) = sb.eigh(UPLO::Lower).unwrap();
    let lambda_max = values.iter().cloned().fold(0.0f64, f64::max);
    let cut = sb.nrows().max(c) as f64 * f64::EPSILON * lambda_max;
    let (mut total, mut rank) = (0.0, 0);
    for (k, &lambda) in values.iter().enumerate() {
        if lambda > cut && lambda > 0.0 {
            let v = vectors.column(k);
            total += v.dot(&within.dot(&v)) / lambda;
            rank += 1;
        }
    }
    (total / c as f64, rank)
}

#[test]
fn nc1_in_the_span_of_the_class_means_equals_the_full_decomposition() {
    // Both sides of the switch: fewer classes than dimensions (the C x C route), and more.
    for (n, c, d, seed) in [
        (200, 5, 40, 1),
        (300, 10, 300, 2),
        (120, 3, 7, 3),
        (240, 12, 6, 4),
        (90, 6, 6, 5),
    ] {
        let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        let offsets = gaussian(c, d, seed + 100);
        let mut x = gaussian(n, d, seed);
        for (i, &label) in labels.iter().enumerate() {
            let mut row = x.row_mut(i);
            row += &(&offsets.row(label as usize) * 0.8);
        }
        let classes = classes_of(&labels);
        let stats = class_stats(x.view(), &classes).unwrap();
        let (_, sw, _, _) = plain::stats(&x, &labels, c);
        let (want, want_rank) = nc1_of_the_full_decomposition(&stats, &sw);
        let (got, rank) = nc1(&stats).unwrap();
        assert_eq!(rank, want_rank, "C = {c}, D = {d}");
        assert!(
            (got - want).abs() <= 1e-9 * want.abs(),
            "C = {c}, D = {d}: {got} vs {want}"
        );
    }
}

#[test]
fn per_class_self_similarity_is_the_mean_cosine_within_each_class() {
    let labels: Vec<u32> = (0..120).map(|i| (i % 4) as u32).collect();
    let mut x = gaussian(120, 9, 8);
    for (i, &label) in labels.iter().enumerate() {
        x[[i, label as usize]] += 2.0;
    }
    let unit = normalize_rows(x.view()).unwrap();
    let classes = classes_of(&labels);
    // alpha = 2 takes the class sums during the label alignment; another alpha does not.
    for alpha in [2.0, 1.0] {
        let input = AnalysisInput {
            embeddings: Some(unit.view()),
            raw: Some(x.view()),
            classes: Some(&classes),
            ..AnalysisInput::default()
        };
        let options = AnalysisOptions {
            alpha,
            ..AnalysisOptions::default()
        };
        let analysis = analyze(&input, &options, &NoProgress).unwrap();
        for (k, row) in analysis.per_class.iter().enumerate() {
            let members: Vec<usize> = (0..120).filter(|&i| labels[i] == k as u32).collect();
            let (mut total, mut pairs) = (0.0, 0.0);
            for &i in &members {
                for &j in &members {
                    if i != j {
                        total += unit.row(i).dot(&unit.row(j));
                        pairs += 1.0;
                    }
                }
            }
            let got = row.self_similarity.unwrap();
            assert!(
                (got - total / pairs).abs() < 1e-12,
                "class {k}: {got} vs {}",
                total / pairs
            );
        }
    }
}
