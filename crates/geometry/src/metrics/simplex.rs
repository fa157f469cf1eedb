//! Simplex geometry of class means: Graf et al. (ICML 2021, "Dissecting supervised
//! contrastive learning") angles between class means of L2-normalised features, and the
//! distance of each centred class mean to the nearest vertex of the best-aligned regular
//! simplex.

use crate::error::{GeometryError, Result};
use crate::kernels::scatter::{parallel_product, row_gram};
use crate::kernels::tiles::single_threaded_blas;
use crate::metrics::spectrum::symmetric_eigenpairs;
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Pairwise angles between (uncentred) class means of normalised features against the ideal
/// simplex angle `arccos(-1/(C-1))`, in degrees: `arccos(mu_c . mu_c' / (||mu_c|| ||mu_c'||))`
/// from the means' Gram matrix (`dsyrk`, `C^2 D` flops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimplexAngles {
    /// `arccos(-1/(C-1))` in degrees.
    #[serde(rename = "ideal_angle")]
    pub ideal_degrees: f64,
    /// Mean of the pairwise angles (c < c').
    #[serde(rename = "mean_angle")]
    pub mean_degrees: f64,
    /// Mean absolute deviation from the ideal.
    #[serde(rename = "value")]
    pub mean_abs_deviation_degrees: f64,
    /// Largest absolute deviation from the ideal.
    #[serde(rename = "max_deviation")]
    pub max_abs_deviation_degrees: f64,
    /// Every angle `c < c'` in row-major pair order.
    #[serde(rename = "angles")]
    pub angles_degrees: Vec<f64>,
    /// `||mean_c||` of the normalised rows (1 = the class collapsed to a point on the sphere).
    pub mean_norms: Vec<f64>,
}

/// Graf et al.'s simplex angles from the class means of L2-normalised rows (C x D).
pub fn simplex_angles(unit_means: ArrayView2<f64>) -> Result<SimplexAngles> {
    let c = unit_means.nrows();
    if c < 2 {
        return Err(GeometryError::Labels {
            what: "simplex angles need at least 2 classes".into(),
        });
    }
    let norms: Vec<f64> = unit_means
        .rows()
        .into_iter()
        .map(|r| r.dot(&r).sqrt())
        .collect();
    if let Some(zero) = norms.iter().position(|&n| n == 0.0) {
        return Err(GeometryError::Labels {
            what: format!("class {zero} has a zero mean direction; its angles are undefined"),
        });
    }
    let ideal = (-1.0 / (c as f64 - 1.0)).acos().to_degrees();
    single_threaded_blas();
    let gram = row_gram(unit_means.as_standard_layout().view());
    let mut angles = Vec::with_capacity(c * (c - 1) / 2);
    for i in 0..c {
        for j in i + 1..c {
            let cos = gram[[i, j]] / (norms[i] * norms[j]);
            angles.push(cos.clamp(-1.0, 1.0).acos().to_degrees());
        }
    }
    let count = angles.len() as f64;
    let deviations: Vec<f64> = angles.iter().map(|a| (a - ideal).abs()).collect();
    Ok(SimplexAngles {
        ideal_degrees: ideal,
        mean_degrees: angles.iter().sum::<f64>() / count,
        mean_abs_deviation_degrees: deviations.iter().sum::<f64>() / count,
        max_abs_deviation_degrees: deviations.iter().cloned().fold(0.0, f64::max),
        angles_degrees: angles,
        mean_norms: norms,
    })
}

/// The C vertices of the canonical regular simplex centred at the origin: unit rows
/// `sqrt(C/(C-1)) (e_c - 1/C)` with pairwise cosine `-1/(C-1)`.
pub fn canonical_simplex(c: usize) -> Array2<f64> {
    let scale = (c as f64 / (c as f64 - 1.0)).sqrt();
    Array2::from_shape_fn((c, c), |(i, j)| {
        scale * (if i == j { 1.0 } else { 0.0 } - 1.0 / c as f64)
    })
}

/// Distance of each centred class mean, scaled by the mean norm, to the nearest vertex of the
/// regular simplex best aligned with the means (orthogonal Procrustes: `R = U V^T` from the
/// SVD `S^T M = U Sigma V^T`), and the index of that vertex. Zero for every class of a regular
/// simplex.
///
/// `R` comes from the C x C eigendecomposition `(S^T M)(S^T M)^T = U Sigma^2 U^T` as
/// `U Sigma^-1 U^T S^T M`, over the singular values above `max(C, D) eps sigma_max^2` (the
/// range of the means: when they span fewer than C - 1 directions, C > D + 1 or degenerate
/// means, the directions they do not occupy are not aligned), with no SVD of the C x D matrix.
/// As the vertices `S = sqrt(C/(C-1)) (I - 1 1^T / C)` are a scaled centring, `S^T M` is the
/// scaled means less their column mean (`O(C D)`) and `S W` likewise (`O(C^2)`), so the cost is
/// `5 C^2 D + O(C^3)`: the Gram matrix of `S^T M` (`C^2 D`), the rotated vertices and their
/// scores against the means (`2 C^2 D` each, in parallel row blocks). The nearest vertex is screened by one GEMM of the vertices
/// with the means (a vertex whose score is within the scores' error bound of the best is a
/// candidate), and the distances of the candidates are taken directly, ties to the lower
/// index.
pub fn vertex_distances(centred_means: ArrayView2<f64>) -> Result<(Vec<f64>, Vec<usize>)> {
    single_threaded_blas();
    let (c, d) = centred_means.dim();
    let mean_norm = centred_means
        .rows()
        .into_iter()
        .map(|r| r.dot(&r).sqrt())
        .sum::<f64>()
        / c as f64;
    if c < 2 || mean_norm == 0.0 {
        return Err(GeometryError::Labels {
            what: "vertex distances need at least 2 distinct class means".into(),
        });
    }
    let m = centred_means.mapv(|v| v / mean_norm);
    let scale = (c as f64 / (c as f64 - 1.0)).sqrt();
    let cross = scaled_centring(m.view(), scale);
    let (values, vectors) = symmetric_eigenpairs(&row_gram(cross.view()))?;
    let top = values.iter().cloned().fold(0.0f64, f64::max);
    let cut = c.max(d) as f64 * f64::EPSILON * top;
    // W = U_k Sigma_k^-1 U_k^T over the kept pairs, so that R = W S^T M.
    let kept: Vec<usize> = (0..c)
        .filter(|&k| values[k] > cut && values[k] > 0.0)
        .collect();
    let scaled = Array2::from_shape_fn((c, kept.len()), |(i, j)| {
        vectors[[i, kept[j]]] / values[kept[j]].sqrt()
    });
    let basis = vectors.select(ndarray::Axis(1), &kept);
    let w = scaled.dot(&basis.t());
    let vertices = parallel_product(scaled_centring(w.view(), scale).view(), cross.view());
    // Scores v_j . m_k; the error of each is within 2 D eps ||v_j|| ||m_k|| (a D-term sum).
    let scores = parallel_product(m.view(), vertices.t());
    let vertex_sq: Vec<f64> = vertices.rows().into_iter().map(|v| v.dot(&v)).collect();
    let vertex_norm = vertex_sq.iter().cloned().fold(0.0f64, f64::max).sqrt();
    let mut distances = Vec::with_capacity(c);
    let mut nearest = Vec::with_capacity(c);
    for (k, row) in m.rows().into_iter().enumerate() {
        let bound = 4.0 * d as f64 * f64::EPSILON * vertex_norm * row.dot(&row).sqrt();
        // ||v_j - m_k||^2 up to the common ||m_k||^2: vertex_sq_j - 2 score.
        let key = |j: usize| vertex_sq[j] - 2.0 * scores[[k, j]];
        let best = (0..c).map(key).fold(f64::INFINITY, f64::min);
        let (index, distance) = (0..c)
            .filter(|&j| key(j) <= best + 2.0 * bound + 4.0 * f64::EPSILON * vertex_norm.powi(2))
            .map(|j| {
                let gap: f64 = vertices
                    .row(j)
                    .iter()
                    .zip(row.iter())
                    .map(|(v, x)| (v - x) * (v - x))
                    .sum();
                (j, gap.sqrt())
            })
            .fold((0, f64::INFINITY), |best, (j, d)| match d < best.1 {
                true => (j, d),
                false => best,
            });
        distances.push(distance);
        nearest.push(index);
    }
    Ok((distances, nearest))
}

/// `S^T a` for the canonical simplex `S = scale (I - 1 1^T / C)` (symmetric): `scale` times
/// the rows of `a` less their column mean, without the `C x C` product.
fn scaled_centring(a: ArrayView2<f64>, scale: f64) -> Array2<f64> {
    let mean = a.mean_axis(Axis(0)).expect("at least one row");
    (&a - &mean.insert_axis(Axis(0))) * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_linalg::{JobSvd, SVDDC};

    /// The definition: R from the thin SVD of `S^T M`, every vertex's distance to every mean.
    fn by_svd(centred: ArrayView2<f64>) -> (Vec<f64>, Vec<usize>) {
        let c = centred.nrows();
        let norm = centred
            .rows()
            .into_iter()
            .map(|r| r.dot(&r).sqrt())
            .sum::<f64>()
            / c as f64;
        let m = centred.mapv(|v| v / norm);
        let s = canonical_simplex(c);
        let cross = s.t().dot(&m);
        let (u, _, vt) = cross.svddc(JobSvd::Some).unwrap();
        let vertices = s.dot(&u.unwrap().dot(&vt.unwrap()));
        m.rows()
            .into_iter()
            .map(|row| {
                (0..c)
                    .map(|j| (j, (&vertices.row(j) - &row).mapv(|v| v * v).sum().sqrt()))
                    .fold(
                        (0, f64::INFINITY),
                        |b, (j, d)| if d < b.1 { (j, d) } else { b },
                    )
            })
            .map(|(j, d)| (d, j))
            .unzip()
    }

    #[test]
    fn the_scaled_centring_is_the_product_with_the_simplex() {
        let a = crate::kernels::test_data::pseudo_random(7, 5, 9);
        let s = canonical_simplex(7);
        let scale = (7.0f64 / 6.0).sqrt();
        let want = s.t().dot(&a);
        let got = scaled_centring(a.view(), scale);
        for (x, y) in got.iter().zip(want.iter()) {
            assert!((x - y).abs() <= 1e-14, "{x} vs {y}");
        }
    }

    #[test]
    fn vertex_distances_equal_the_svd_definition() {
        for (c, d, seed) in [
            (5, 16, 1),
            (10, 64, 2),
            (40, 300, 3),
            (12, 11, 4),
            (300, 200, 5),
        ] {
            let mut m = crate::kernels::test_data::pseudo_random(c, d, seed);
            let mean = m.mean_axis(ndarray::Axis(0)).unwrap();
            m -= &mean;
            let (got, got_nearest) = vertex_distances(m.view()).unwrap();
            let (want, want_nearest) = by_svd(m.view());
            assert_eq!(got_nearest, want_nearest, "C = {c}, D = {d}");
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-9 * b.max(1e-3),
                    "C = {c}, D = {d}: {a} vs {b}"
                );
            }
        }
    }
}
