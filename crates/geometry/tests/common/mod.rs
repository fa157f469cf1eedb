//! Test data shared by the geometry tests: Gaussian rows, rotations, simplices, classes.
#![allow(dead_code)]

use embgeom_geometry::*;
use ndarray::Array2;

/// Deterministic standard normals (SplitMix64 + Box-Muller) for test data.
pub fn gaussian(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    Array2::from_shape_simple_fn((rows, cols), || {
        let (u, v) = (uniform().max(1e-300), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    })
}

pub fn unit_gaussian(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    normalize_rows(gaussian(rows, cols, seed).view()).unwrap()
}

/// A random orthogonal matrix (QR of a Gaussian by Gram-Schmidt).
pub fn rotation(d: usize, seed: u64) -> Array2<f64> {
    let mut q = gaussian(d, d, seed);
    for i in 0..d {
        for j in 0..i {
            let dot = q.row(i).dot(&q.row(j));
            let rj = q.row(j).to_owned();
            q.row_mut(i).scaled_add(-dot, &rj);
        }
        let norm = q.row(i).dot(&q.row(i)).sqrt();
        q.row_mut(i).mapv_inplace(|v| v / norm);
    }
    q
}

/// The C vertices of a regular simplex centred at the origin, as unit rows in R^C.
pub fn regular_simplex(c: usize) -> Array2<f64> {
    let mut x = Array2::<f64>::eye(c);
    x.mapv_inplace(|v| v - 1.0 / c as f64);
    normalize_rows(x.view()).unwrap()
}

pub fn classes_of(labels: &[u32]) -> Classes {
    let c = *labels.iter().max().unwrap() as usize + 1;
    Classes::new(labels.to_vec(), (0..c).map(|k| k.to_string()).collect()).unwrap()
}

/// The analysis of the L2-normalised `raw` rows (no labels), with `raw` as the raw rows.
pub fn unlabelled_analysis(raw: &Array2<f64>, options: &AnalysisOptions) -> Analysis {
    let unit = normalize_rows(raw.view()).unwrap();
    let input = AnalysisInput {
        embeddings: Some(unit.view()),
        raw: Some(raw.view()),
        ..AnalysisInput::default()
    };
    analyze(&input, options, &NoProgress).unwrap()
}

/// The default options with at most `queries` kNN queries.
pub fn with_queries(queries: usize) -> AnalysisOptions {
    AnalysisOptions {
        knn: KnnOptions {
            max_queries: queries,
            ..KnnOptions::default()
        },
        ..AnalysisOptions::default()
    }
}
