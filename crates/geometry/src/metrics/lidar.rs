//! LiDAR (Thilak et al., ICLR 2024): the effective rank of the linear-discriminant matrix
//! `Sigma_w^{-1/2} Sigma_b Sigma_w^{-1/2}` of groups of rows: the views of each object (LiDAR
//! proper) or the rows of each class (the LDA rank).
//!
//! Two conventions, both computed from the same sums:
//! - the paper's, as stable-pretraining codes it: `Sigma_b = S_b / (G - 1)`, `Sigma_w = S_w /
//!   (N - G) + delta I` (`1 / (N (Q - 1))` for N objects of Q views), `delta = 1e-4`, the
//!   eigenvalues `lambda` of the symmetric product (clamped at 0), `p = (lambda + eps) / sum
//!   (lambda + eps)` with `eps = 1e-8` over all D of them, `exp(-sum p log p)`;
//! - reptrix 0.1.0's: `Sigma_b = S_b` (no divisor), `Sigma_w = S_w / G + 1e-6 I`, and as its
//!   "eigenspectrum" the explained-variance ratios of a PCA of the rows of the LiDAR matrix
//!   (the squared singular values of its column-centred form over their sum; the first
//!   `min(2048, D)`), `p = r / sum r + 1e-7`: not the matrix's eigenvalues.
//!
//! `S_b = sum_g (mu_g - mu)(mu_g - mu)^T` about the unweighted mean `mu` of the group means,
//! `S_w = sum_i (x_i - mu_{g(i)})(x_i - mu_{g(i)})^T`.

use crate::error::{GeometryError, Result};
use crate::kernels::scatter::{stripe_count, symmetrize, syrk_add};
use crate::kernels::tiles::single_threaded_blas;
use crate::kernels::timings::Work;
use crate::metrics::real::Real;
use crate::metrics::spectrum::{entropy_exp, symmetric_eigenpairs, symmetric_eigenvalues};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// `delta` added to `Sigma_w` in the paper's convention (stable-pretraining's default).
pub const LIDAR_DELTA: f64 = 1e-4;
/// `eps` added to each eigenvalue in the paper's convention.
pub const LIDAR_EPSILON: f64 = 1e-8;
/// `delta` added to `Sigma_w` in reptrix's convention.
pub const REPTRIX_DELTA: f64 = 1e-6;
/// `eps` added to each normalised value in reptrix's convention.
pub const REPTRIX_EPSILON: f64 = 1e-7;
/// reptrix's `max_eigenvals`: the PCA components it keeps.
pub const REPTRIX_MAX_EIGENVALUES: usize = 2048;

/// The second moments LiDAR needs: in the D dimensions of the rows, or in an orthonormal
/// basis of the r-dimensional span of the rows (`r < D`), outside which `S_b = 0`, `Sigma_w =
/// delta I` and the LiDAR matrix has `D - r` zero eigenvalues.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScatter {
    /// `S_w`, r x r.
    pub within: Array2<f64>,
    /// `S_b`.
    pub between: Between,
    /// Dimensions D of the rows.
    pub dim: usize,
    /// Groups G (objects or classes).
    pub groups: usize,
    /// Rows N over all groups.
    pub rows: usize,
}

/// The between-group scatter `S_b`: itself (r x r), or a factor `B` (G x r) with `S_b = B^T B`
/// (the centred group means), whose rank G is what the LDA rank's work grows with.
#[derive(Debug, Clone, PartialEq)]
pub enum Between {
    /// `S_b`.
    Scatter(Array2<f64>),
    /// `B`.
    Factor(Array2<f64>),
}

impl Between {
    /// `S_b` itself.
    fn scatter(&self) -> Array2<f64> {
        match self {
            Between::Scatter(s) => s.clone(),
            Between::Factor(b) => b.t().dot(b),
        }
    }
}

/// LiDAR in both conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lidar {
    /// The paper's convention (stable-pretraining).
    pub value: f64,
    /// reptrix 0.1.0's convention (`None` when not asked).
    pub reptrix: Option<f64>,
    /// Groups (objects or classes).
    pub groups: usize,
    /// Rows over all groups.
    pub rows: usize,
    /// The largest eigenvalues of the paper's LiDAR matrix, decreasing (at most 64).
    pub top_eigenvalues: Vec<f64>,
}

/// The lower Cholesky factor `L` (`a = L L^T`) of a symmetric positive definite matrix, by
/// LAPACK `dpotrf` (`D^3 / 3` flops).
fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    let n = a.nrows();
    // Row-major symmetric = column-major symmetric; LAPACK's upper U (a = U^T U) read
    // row-major is the lower L = U^T.
    let mut factor = a.as_standard_layout().to_owned();
    if n == 0 {
        return Ok(factor);
    }
    let (uplo, dim) = (b'U' as std::os::raw::c_char, n as i32);
    let mut info = 0i32;
    // SAFETY: an n x n matrix (n >= 1) with leading dimension n.
    unsafe { lapack_sys::dpotrf_(&uplo, &dim, factor.as_mut_ptr(), &dim, &mut info) };
    if info != 0 {
        return Err(GeometryError::Numerical {
            what: format!(
                "LiDAR: the within-group covariance plus delta I is not positive definite (dpotrf info = {info})"
            ),
        });
    }
    for i in 0..n {
        for j in i + 1..n {
            factor[[i, j]] = 0.0;
        }
    }
    Ok(factor)
}

/// `b <- L^-1 b` (`right = false`) or `b <- b L^-T` (`right = true`) for lower-triangular `L`,
/// by BLAS `dtrsm`.
fn solve_lower(factor: &Array2<f64>, b: &mut Array2<f64>, right: bool) {
    use cblas_sys::*;
    let (rows, cols) = b.dim();
    if rows == 0 || cols == 0 {
        return;
    }
    let (side, trans) = match right {
        false => (CblasLeft, CblasNoTrans),
        true => (CblasRight, CblasTrans),
    };
    let n = factor.nrows() as i32;
    assert!(factor.is_standard_layout() && b.is_standard_layout());
    // SAFETY: `factor` is n x n, `b` rows x cols with n = rows (left) or cols (right), both
    // standard (row-major) layout with the leading dimensions passed.
    unsafe {
        cblas_dtrsm(
            CblasRowMajor,
            side,
            CblasLower,
            trans,
            CblasNonUnit,
            rows as i32,
            cols as i32,
            1.0,
            factor.as_ptr(),
            n,
            b.as_mut_ptr(),
            cols as i32,
        )
    };
}

/// `a^{-1/2}` of a symmetric positive definite matrix by its eigenvectors.
fn inverse_square_root(a: &Array2<f64>) -> Result<Array2<f64>> {
    let (values, vectors) = symmetric_eigenpairs(a)?;
    if values.first().is_none_or(|&v| v <= 0.0) {
        return Err(GeometryError::Numerical {
            what: "LiDAR: the within-group covariance plus delta I is not positive definite".into(),
        });
    }
    let scaled = &vectors * &Array1::from_iter(values.iter().map(|v| 1.0 / v.sqrt()));
    Ok(scaled.dot(&vectors.t()))
}

/// `s b s` for symmetric `s` and `b`, made exactly symmetric.
fn sandwich(s: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let mut product = s.dot(b).dot(s);
    symmetrize(&mut product);
    product
}

/// `within / divisor + delta I`.
fn regularised(within: &Array2<f64>, divisor: f64, delta: f64) -> Array2<f64> {
    let mut w = within / divisor;
    w.diag_mut().mapv_inplace(|v| v + delta);
    w
}

/// LiDAR of `scatter`, with reptrix's convention too when `reptrix` (in D dimensions only).
/// Needs two groups and more rows than groups.
pub fn lidar(scatter: &GroupScatter, reptrix: bool) -> Result<Lidar> {
    single_threaded_blas();
    let (g, n) = (scatter.groups, scatter.rows);
    if g < 2 || n <= g {
        return Err(GeometryError::TooFewRows {
            metric: "LiDAR (two groups and more rows than groups)",
            needed: g.max(2) + 1,
            got: n,
        });
    }
    let d = scatter.dim;
    let factor = cholesky(&regularised(&scatter.within, (n - g) as f64, LIDAR_DELTA))?;
    let matrix = match &scatter.between {
        // L^-1 S_b L^-T, the same eigenvalues as Sigma_w^-1/2 S_b Sigma_w^-1/2.
        Between::Scatter(between) => {
            let mut product = between / (g as f64 - 1.0);
            solve_lower(&factor, &mut product, false);
            solve_lower(&factor, &mut product, true);
            symmetrize(&mut product);
            product
        }
        // X = L^-1 B^T: its Gram matrix on the smaller side has the nonzero eigenvalues.
        Between::Factor(b) => {
            let mut x = b.t().as_standard_layout().to_owned() / (g as f64 - 1.0).sqrt();
            solve_lower(&factor, &mut x, false);
            match x.ncols() < x.nrows() {
                true => x.t().dot(&x),
                false => x.dot(&x.t()),
            }
        }
    };
    let scale = matrix.diag().iter().map(|v| v.abs()).sum::<f64>();
    let mut eigenvalues = symmetric_eigenvalues(&matrix, scale)?;
    if eigenvalues.iter().all(|&l| l == 0.0) {
        // Every p would be eps / (D eps): the value D, from eps alone.
        return Err(GeometryError::Numerical {
            what: "LiDAR: the group means coincide (Sigma_b = 0), so no direction separates the groups".into(),
        });
    }
    eigenvalues.resize(d, 0.0);
    let total: f64 = eigenvalues.iter().map(|l| l + LIDAR_EPSILON).sum();
    let value = entropy_exp(eigenvalues.iter().map(|l| (l + LIDAR_EPSILON) / total));
    let reptrix = match reptrix && scatter.within.nrows() == d {
        true => Some(reptrix_lidar(scatter, d)?),
        false => None,
    };
    Ok(Lidar {
        value,
        reptrix,
        groups: g,
        rows: n,
        top_eigenvalues: eigenvalues.iter().take(64).copied().collect(),
    })
}

/// reptrix 0.1.0's LiDAR: the explained-variance ratios of a PCA of the rows of its LiDAR
/// matrix `L` (D x D): the eigenvalues of `L^T (I - 1 1^T / D) L` (its column-centred form's
/// squared singular values) over their sum, the first `min(2048, D)` of them.
fn reptrix_lidar(scatter: &GroupScatter, d: usize) -> Result<f64> {
    let root = inverse_square_root(&regularised(
        &scatter.within,
        scatter.groups as f64,
        REPTRIX_DELTA,
    ))?;
    let matrix = sandwich(&root, &scatter.between.scatter());
    let column_means = matrix.mean_axis(Axis(0)).expect("D >= 1");
    let centred = &matrix - &column_means.view().insert_axis(Axis(0));
    let gram = centred.t().dot(&centred);
    let scale = gram.diag().sum();
    let variances = symmetric_eigenvalues(&gram, scale)?;
    let total: f64 = variances.iter().sum();
    if total <= 0.0 {
        return Ok(0.0);
    }
    let kept: Vec<f64> = variances
        .iter()
        .take(REPTRIX_MAX_EIGENVALUES.min(d))
        .map(|v| v / total)
        .collect();
    let l1: f64 = kept.iter().map(|v| v.abs()).sum();
    Ok(entropy_exp(kept.iter().map(|v| v / l1 + REPTRIX_EPSILON)))
}

/// The group scatter of the views: object n's rows are row n of each view (Q >= 2 views of N
/// objects). `S_w` from the rows less their object's mean, `S_b` from the object means less
/// their mean, each by `dsyrk` over fixed stripes of objects (thread-count independent).
pub fn views_scatter<F: Real>(views: &[ArrayView2<F>]) -> GroupScatter {
    single_threaded_blas();
    let (n, d) = views[0].dim();
    let q = views.len() as f64;
    let object_mean = |i: usize, out: &mut [f64]| {
        out.iter_mut().for_each(|v| *v = 0.0);
        for view in views {
            for (o, x) in out.iter_mut().zip(view.row(i).iter()) {
                *o += x.as_f64();
            }
        }
        out.iter_mut().for_each(|v| *v /= q);
    };
    // The mean of the object means.
    let mut grand = vec![0.0f64; d];
    let mut mean = vec![0.0f64; d];
    for i in 0..n {
        object_mean(i, &mut mean);
        grand.iter_mut().zip(&mean).for_each(|(g, m)| *g += m);
    }
    grand.iter_mut().for_each(|g| *g /= n as f64);
    const CHUNK: usize = 256;
    let per_stripe = n.div_ceil(stripe_count(n, d)).max(1);
    let stripes: Vec<(Array2<f64>, Array2<f64>)> = (0..n.div_ceil(per_stripe))
        .into_par_iter()
        .map(|s| {
            let rows = s * per_stripe..((s + 1) * per_stripe).min(n);
            let mut within = Array2::<f64>::zeros((d, d));
            let mut between = Array2::<f64>::zeros((d, d));
            let mut z = Array2::<f64>::zeros((CHUNK * views.len(), d));
            let mut m = Array2::<f64>::zeros((CHUNK, d));
            let mut start = rows.start;
            while start < rows.end {
                let end = (start + CHUNK).min(rows.end);
                let count = end - start;
                for (r, i) in (start..end).enumerate() {
                    let mut mean_row = m.row_mut(r);
                    let out = mean_row.as_slice_mut().expect("contiguous");
                    object_mean(i, out);
                    for (v, view) in views.iter().enumerate() {
                        let mut zr = z.row_mut(v * count + r);
                        for ((o, x), mu) in zr.iter_mut().zip(view.row(i).iter()).zip(out.iter()) {
                            *o = x.as_f64() - mu;
                        }
                    }
                    for (o, g) in out.iter_mut().zip(&grand) {
                        *o -= g;
                    }
                }
                syrk_add(z.slice(ndarray::s![..count * views.len(), ..]), &mut within);
                syrk_add(m.slice(ndarray::s![..count, ..]), &mut between);
                start = end;
            }
            (within, between)
        })
        .collect();
    let mut within = Array2::<f64>::zeros((d, d));
    let mut between = Array2::<f64>::zeros((d, d));
    for (w, b) in stripes {
        within += &w;
        between += &b;
    }
    symmetrize(&mut within);
    symmetrize(&mut between);
    GroupScatter {
        within,
        between: Between::Scatter(between),
        dim: d,
        groups: n,
        rows: n * views.len(),
    }
}

/// The group scatter of labelled rows of `dim` dimensions from their uncentred second moment
/// `X^T X` (r x r, in the rows' coordinates), the class means `means` (C x r) and counts:
/// `S_w = X^T X - sum_c n_c mu_c mu_c^T` (no pass over the rows), `S_b` about the unweighted
/// mean of the class means.
pub fn class_scatter(
    moment: &Array2<f64>,
    means: &Array2<f64>,
    counts: &[usize],
    dim: usize,
) -> GroupScatter {
    let weighted =
        means * &Array1::from_iter(counts.iter().map(|&c| (c as f64).sqrt())).insert_axis(Axis(1));
    let mut within = moment - &weighted.t().dot(&weighted);
    symmetrize(&mut within);
    let grand = means.mean_axis(Axis(0)).expect("a class");
    let centred = means - &grand.insert_axis(Axis(0));
    GroupScatter {
        within,
        between: Between::Factor(centred),
        dim,
        groups: counts.len(),
        rows: counts.iter().sum(),
    }
}

/// The work of LiDAR on `rows` rows (for `q` views of `n` objects, `(q + 1) n`: the views and
/// the object means, into the D x D scatters by `dsyrk`, `rows D^2`; none for classes, whose
/// scatter comes from the second moment) of `d` dimensions in `groups` groups: the Cholesky
/// factor (`D^3 / 3`), then `L^-1 S_b L^-T` (`2 D^3`) and its eigenvalues, or for classes
/// `L^-1 B^T` (`G D^2`), its Gram matrix on the smaller side `m = min(G, D)` (`m^2 max`) and
/// its eigenvalues (`4/3 m^3`); with reptrix's convention an eigendecomposition with vectors
/// (`3 D^3`), the products (`4 D^3`), the centred Gram matrix (`2 D^3`) and its eigenvalues.
pub fn lidar_work(rows: usize, d: usize, groups: Option<usize>, reptrix: bool) -> Work {
    let (r, df) = (rows as f64, d as f64);
    let (solve, side) = match groups {
        None => (2.0 * df.powi(3), df),
        Some(g) => {
            let m = g.min(d) as f64;
            (g as f64 * df * df + m * m * (g.max(d) as f64), m)
        }
    };
    let (reptrix_products, reptrix_eigen) = match reptrix {
        true => (6.0 * df.powi(3), (3.0 + 4.0 / 3.0) * df.powi(3)),
        false => (0.0, 0.0),
    };
    Work::Decomposition {
        products: r * df * df + df.powi(3) / 3.0 + solve + reptrix_products,
        eigen: 4.0 / 3.0 * side.powi(3) + reptrix_eigen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::pseudo_random;

    /// The paper's LiDAR written out from the rows of each group (groups of `q` consecutive
    /// rows), with the eigenvalues of the sandwich.
    fn plain(rows: &Array2<f64>, q: usize) -> f64 {
        let (total, d) = rows.dim();
        let g = total / q;
        let means: Vec<Array1<f64>> = (0..g)
            .map(|k| {
                rows.slice(ndarray::s![k * q..(k + 1) * q, ..])
                    .mean_axis(Axis(0))
                    .unwrap()
            })
            .collect();
        let grand = means.iter().fold(Array1::<f64>::zeros(d), |a, m| a + m) / g as f64;
        let mut sb = Array2::<f64>::zeros((d, d));
        let mut sw = Array2::<f64>::zeros((d, d));
        for (k, mean) in means.iter().enumerate() {
            let c = (mean - &grand).insert_axis(Axis(1));
            sb = sb + c.dot(&c.t());
            for i in 0..q {
                let e = (&rows.row(k * q + i) - mean).insert_axis(Axis(1));
                sw = sw + e.dot(&e.t());
            }
        }
        let sb = sb / (g as f64 - 1.0);
        let mut sw = sw / (g as f64 * (q as f64 - 1.0));
        sw.diag_mut().mapv_inplace(|v| v + LIDAR_DELTA);
        let root = inverse_square_root(&sw).unwrap();
        let m = root.dot(&sb).dot(&root);
        let (values, _) = symmetric_eigenpairs(&m).unwrap();
        let values: Vec<f64> = values.iter().map(|v| v.max(0.0)).collect();
        let total: f64 = values.iter().map(|l| l + LIDAR_EPSILON).sum();
        entropy_exp(values.iter().map(|l| (l + LIDAR_EPSILON) / total))
    }

    #[test]
    fn views_equal_the_definition() {
        let (n, q, d) = (60, 3, 7);
        let base = pseudo_random(n, d, 1);
        let views: Vec<Array2<f64>> = (0..q)
            .map(|v| &base + &(pseudo_random(n, d, 10 + v as u64) * 0.3))
            .collect();
        let view_refs: Vec<ArrayView2<f64>> = views.iter().map(|v| v.view()).collect();
        let got = lidar(&views_scatter(&view_refs), true).unwrap();
        let mut rows = Array2::<f64>::zeros((n * q, d));
        for i in 0..n {
            for (v, view) in views.iter().enumerate() {
                rows.row_mut(i * q + v).assign(&view.row(i));
            }
        }
        let want = plain(&rows, q);
        assert!(
            (got.value - want).abs() < 1e-10 * want,
            "{} vs {want}",
            got.value
        );
        assert!(got.reptrix.unwrap() > 0.0);
        assert_eq!((got.groups, got.rows), (n, n * q));
    }

    #[test]
    fn class_scatter_equals_views_scatter_for_equal_groups() {
        let (n, q, d) = (40, 2, 5);
        let views: Vec<Array2<f64>> = (0..q).map(|v| pseudo_random(n, d, 3 + v as u64)).collect();
        let view_refs: Vec<ArrayView2<f64>> = views.iter().map(|v| v.view()).collect();
        let from_views = views_scatter(&view_refs);
        let mut moment = Array2::<f64>::zeros((d, d));
        for v in &views {
            moment = moment + v.t().dot(v);
        }
        let means = (&views[0] + &views[1]) / 2.0;
        let from_classes = class_scatter(&moment, &means, &vec![q; n], d);
        let from_classes_between = from_classes.between.scatter();
        let from_views_between = from_views.between.scatter();
        for (a, b) in from_views.within.iter().zip(from_classes.within.iter()) {
            assert!((a - b).abs() < 1e-12 * (1.0 + a.abs()));
        }
        for (a, b) in from_views_between.iter().zip(from_classes_between.iter()) {
            assert!((a - b).abs() < 1e-12 * (1.0 + a.abs()));
        }
    }

    #[test]
    fn the_factor_form_equals_the_scatter_form_on_both_sides() {
        for (c, d) in [(5, 12), (12, 5)] {
            let rows = pseudo_random(6 * c, d, 4);
            let labels: Vec<usize> = (0..6 * c).map(|i| i % c).collect();
            let mut means = Array2::<f64>::zeros((c, d));
            for (i, &l) in labels.iter().enumerate() {
                let mut row = means.row_mut(l);
                row += &(&rows.row(i) / 6.0);
            }
            let factored = class_scatter(&rows.t().dot(&rows), &means, &vec![6; c], d);
            let square = GroupScatter {
                between: Between::Scatter(factored.between.scatter()),
                ..factored.clone()
            };
            let (a, b) = (
                lidar(&factored, false).unwrap(),
                lidar(&square, false).unwrap(),
            );
            assert!((a.value - b.value).abs() < 1e-10 * b.value, "{c} x {d}");
        }
    }

    #[test]
    fn separated_groups_have_the_rank_of_their_means() {
        // Three well-separated objects with tiny views: LiDAR ~ 2 (rank of the centred means).
        let d = 6;
        let mut views = vec![Array2::<f64>::zeros((3, d)); 2];
        for i in 0..3 {
            for v in 0..2 {
                views[v][[i, i]] = 1.0;
                views[v][[i, 3 + v]] = 1e-3;
            }
        }
        let refs: Vec<ArrayView2<f64>> = views.iter().map(|v| v.view()).collect();
        let got = lidar(&views_scatter(&refs), false).unwrap();
        assert!((got.value - 2.0).abs() < 0.05, "{}", got.value);
    }

    #[test]
    fn too_few_groups_or_coinciding_means_are_an_error() {
        let one = Array2::<f64>::zeros((1, 3));
        let refs = [one.view(), one.view()];
        assert!(lidar(&views_scatter(&refs), false).is_err());
        // Two objects with the same mean view.
        let a = ndarray::array![[1.0, 0.0], [0.0, 1.0]];
        let b = ndarray::array![[0.0, 1.0], [1.0, 0.0]];
        let message = lidar(&views_scatter(&[a.view(), b.view()]), false)
            .unwrap_err()
            .to_string();
        assert!(message.contains("coincide"), "{message}");
        // No dimensions at all.
        let empty = GroupScatter {
            within: Array2::zeros((0, 0)),
            between: Between::Factor(Array2::zeros((3, 0))),
            dim: 0,
            groups: 3,
            rows: 9,
        };
        assert!(lidar(&empty, false).is_err());
    }
}
