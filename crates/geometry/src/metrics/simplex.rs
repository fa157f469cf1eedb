//! Simplex geometry of class means: Graf et al. (ICML 2021, "Dissecting supervised
//! contrastive learning") angles between class means of L2-normalised features, and the
//! distance of each centred class mean to the nearest vertex of the best-aligned regular
//! simplex.

use crate::error::{GeometryError, Result};
use crate::kernels::tiles::single_threaded_blas;
use ndarray::{Array2, ArrayView2};
use ndarray_linalg::{JobSvd, SVDDC};
use serde::{Deserialize, Serialize};

/// Pairwise angles between (uncentred) class means of normalised features against the ideal
/// simplex angle `arccos(-1/(C-1))`, in degrees.
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
    let mut angles = Vec::with_capacity(c * (c - 1) / 2);
    for i in 0..c {
        for j in i + 1..c {
            let cos = unit_means.row(i).dot(&unit_means.row(j)) / (norms[i] * norms[j]);
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
/// SVD of `S^T M`), and the index of that vertex. Zero for every class of a regular simplex.
pub fn vertex_distances(centred_means: ArrayView2<f64>) -> Result<(Vec<f64>, Vec<usize>)> {
    single_threaded_blas();
    let c = centred_means.nrows();
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
    let s = canonical_simplex(c);
    let cross = s.t().dot(&m);
    // The thin SVD: U and V^T of min(rows, D) singular vectors, never a D x D V^T.
    let (u, _, vt) = cross
        .svddc(JobSvd::Some)
        .map_err(|e| GeometryError::Numerical {
            what: format!("SVD for the simplex alignment failed: {e}"),
        })?;
    let (u, vt) = (u.expect("asked for U"), vt.expect("asked for V^T"));
    let k = cross.nrows().min(m.ncols());
    let rotation = u
        .slice(ndarray::s![.., ..k])
        .dot(&vt.slice(ndarray::s![..k, ..]));
    let vertices = s.dot(&rotation);
    let mut distances = Vec::with_capacity(c);
    let mut nearest = Vec::with_capacity(c);
    for row in m.rows() {
        let (best, distance) = vertices
            .rows()
            .into_iter()
            .map(|v| (&v - &row).mapv(|x| x * x).sum().sqrt())
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |best, (i, d)| if d < best.1 { (i, d) } else { best },
            );
        distances.push(distance);
        nearest.push(best);
    }
    Ok((distances, nearest))
}
