//! Linear centred kernel alignment (Kornblith et al., ICML 2019, "Similarity of neural network
//! representations revisited") between two representations of the same rows:
//! `CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)` on column-centred X and Y.

use crate::error::{GeometryError, Result};
use crate::kernels::merge::Merge;
use crate::kernels::tiles::{map_row_chunks, single_threaded_blas};
use crate::metrics::real::Real;
use crate::metrics::similarity::{centred_moments, frobenius_sq};
use crate::metrics::spectrum::column_means;
use crate::metrics::state::{move_moment, move_sum};
use ndarray::{s, Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Linear CKA between `x` (N x D1) and `y` (N x D2), rows corresponding; 1 for the same
/// representation up to rotation, isotropic scaling and translation.
pub fn linear_cka<F: Real, G: Real>(x: ArrayView2<F>, y: ArrayView2<G>) -> Result<f64> {
    single_threaded_blas();
    let n = x.nrows();
    if y.nrows() != n {
        return Err(GeometryError::ShapeMismatch {
            what: format!("CKA needs the same rows: {n} vs {}", y.nrows()),
        });
    }
    if n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "CKA",
            needed: 2,
            got: n,
        });
    }
    let m = centred_moments(x, y);
    let (xx, yy, xy) = (
        frobenius_sq(&m.xx),
        frobenius_sq(&m.yy),
        frobenius_sq(&m.xy),
    );
    let denominator = xx.sqrt() * yy.sqrt();
    if denominator == 0.0 {
        return Err(GeometryError::Labels {
            what: "CKA is undefined for a constant representation".into(),
        });
    }
    Ok(xy / denominator)
}

/// A mergeable summary of two row-aligned representations (N x D1 and N x D2, batches or
/// shards of the same rows) for [`linear_cka`]: the row count, the sums and the second and
/// cross moments about fixed shifts (the first batch's means), so that any split of the rows,
/// merged in any order, gives the CKA of all of them (up to rounding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CkaState {
    n: u64,
    dims: (usize, usize),
    shift_x: Vec<f64>,
    shift_y: Vec<f64>,
    /// `sum (x - shift_x)`, `sum (y - shift_y)`.
    sum_x: Vec<f64>,
    sum_y: Vec<f64>,
    /// `sum (x - shift_x)(x - shift_x)^T`, the same for y, and the cross moment
    /// `sum (x - shift_x)(y - shift_y)^T`.
    #[serde(with = "crate::kernels::serde_rows")]
    xx: Array2<f64>,
    #[serde(with = "crate::kernels::serde_rows")]
    yy: Array2<f64>,
    #[serde(with = "crate::kernels::serde_rows")]
    xy: Array2<f64>,
}

/// Version of [`CkaState`]'s bytes.
pub const CKA_STATE_VERSION: u32 = 1;

impl CkaState {
    /// An empty state for representations of `dx` and `dy` dimensions.
    pub fn new(dx: usize, dy: usize) -> CkaState {
        CkaState {
            n: 0,
            dims: (dx, dy),
            shift_x: vec![0.0; dx],
            shift_y: vec![0.0; dy],
            sum_x: vec![0.0; dx],
            sum_y: vec![0.0; dy],
            xx: Array2::zeros((dx, dx)),
            yy: Array2::zeros((dy, dy)),
            xy: Array2::zeros((dx, dy)),
        }
    }

    /// Rows summarised so far.
    pub fn rows(&self) -> u64 {
        self.n
    }

    /// Add the same rows of both representations.
    pub fn update<F: Real, G: Real>(&mut self, x: ArrayView2<F>, y: ArrayView2<G>) -> Result<()> {
        single_threaded_blas();
        let n = x.nrows();
        if y.nrows() != n || (x.ncols(), y.ncols()) != self.dims {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "CKA batches of shapes {:?} and {:?} for a state of {:?} dimensions",
                    x.dim(),
                    y.dim(),
                    self.dims
                ),
            });
        }
        if n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            self.shift_x = column_means(x).to_vec();
            self.shift_y = column_means(y).to_vec();
        }
        let (sx, sy) = (
            ndarray::ArrayView1::from(&self.shift_x),
            ndarray::ArrayView1::from(&self.shift_y),
        );
        let partials = map_row_chunks(n, |range| {
            let cx = x.slice(s![range.clone(), ..]).mapv(F::as_f64) - sx;
            let cy = y.slice(s![range, ..]).mapv(G::as_f64) - sy;
            (
                cx.t().dot(&cx),
                cy.t().dot(&cy),
                cx.t().dot(&cy),
                cx.sum_axis(ndarray::Axis(0)),
                cy.sum_axis(ndarray::Axis(0)),
            )
        });
        for (xx, yy, xy, sum_x, sum_y) in partials {
            self.xx += &xx;
            self.yy += &yy;
            self.xy += &xy;
            self.sum_x.iter_mut().zip(&sum_x).for_each(|(a, b)| *a += b);
            self.sum_y.iter_mut().zip(&sum_y).for_each(|(a, b)| *a += b);
        }
        self.n += n as u64;
        Ok(())
    }

    /// The moments re-expressed about the shifts `(to_x, to_y)`: with `d = from - to`,
    /// `M_to = M + d_x s_y^T + s_x d_y^T + n d_x d_y^T` and `s_to = s + n d`.
    fn recentred(&self, to_x: &[f64], to_y: &[f64]) -> CkaState {
        let n = self.n as f64;
        let delta = |from: &[f64], to: &[f64]| -> Vec<f64> {
            from.iter().zip(to).map(|(a, b)| a - b).collect()
        };
        let (dx, dy) = (delta(&self.shift_x, to_x), delta(&self.shift_y, to_y));
        let (sx, sy) = (&self.sum_x, &self.sum_y);
        let mut out = self.clone();
        for (m, (da, sa, db, sb)) in [
            (&mut out.xx, (&dx, sx, &dx, sx)),
            (&mut out.yy, (&dy, sy, &dy, sy)),
            (&mut out.xy, (&dx, sx, &dy, sy)),
        ] {
            // A row-major copy (the moments are built that way; the copy costs D^2).
            let mut standard = m.as_standard_layout().into_owned();
            if let Some(slice) = standard.as_slice_mut() {
                move_moment(slice, da, sa, db, sb, n);
            }
            *m = standard;
        }
        move_sum(&mut out.sum_x, &dx, n);
        move_sum(&mut out.sum_y, &dy, n);
        out.shift_x = to_x.to_vec();
        out.shift_y = to_y.to_vec();
        out
    }

    /// Linear CKA of every row summarised: the centred moments `S = M - s s'^T / n` in
    /// `||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F)`.
    pub fn finalize(&self) -> Result<f64> {
        if self.n < 2 {
            return Err(GeometryError::TooFewRows {
                metric: "CKA",
                needed: 2,
                got: self.n as usize,
            });
        }
        let n = self.n as f64;
        let (sx, sy) = (
            Array1::from(self.sum_x.clone()),
            Array1::from(self.sum_y.clone()),
        );
        let centred = |m: &Array2<f64>, a: &Array1<f64>, b: &Array1<f64>| {
            m - &(a
                .view()
                .insert_axis(ndarray::Axis(1))
                .dot(&b.view().insert_axis(ndarray::Axis(0)))
                / n)
        };
        let frobenius_sq = |a: &Array2<f64>| a.iter().map(|v| v * v).sum::<f64>();
        let (sxx, syy, sxy) = (
            centred(&self.xx, &sx, &sx),
            centred(&self.yy, &sy, &sy),
            centred(&self.xy, &sx, &sy),
        );
        let denominator = frobenius_sq(&sxx).sqrt() * frobenius_sq(&syy).sqrt();
        if denominator == 0.0 {
            return Err(GeometryError::Labels {
                what: "CKA is undefined for a constant representation".into(),
            });
        }
        Ok(frobenius_sq(&sxy) / denominator)
    }
}

impl Merge for CkaState {
    const MAGIC: [u8; 8] = *b"EMBGCKAS";
    const VERSION: u32 = CKA_STATE_VERSION;
    const WHAT: &'static str = "an embgeom CKA state";

    /// Merge another state of the same dimensions into this one.
    fn merge(&mut self, other: &CkaState) -> Result<()> {
        if other.dims != self.dims {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "merging CKA states of {:?} and {:?} dimensions",
                    other.dims, self.dims
                ),
            });
        }
        if other.n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            *self = other.clone();
            return Ok(());
        }
        let other = other.recentred(&self.shift_x, &self.shift_y);
        self.xx += &other.xx;
        self.yy += &other.yy;
        self.xy += &other.xy;
        self.sum_x
            .iter_mut()
            .zip(&other.sum_x)
            .for_each(|(a, b)| *a += b);
        self.sum_y
            .iter_mut()
            .zip(&other.sum_y)
            .for_each(|(a, b)| *a += b);
        self.n += other.n;
        Ok(())
    }

    /// The decoded state, once its sizes are checked to agree.
    fn checked(self) -> Result<CkaState> {
        let state = self;
        let (dx, dy) = state.dims;
        let fits = state.xx.dim() == (dx, dx)
            && state.yy.dim() == (dy, dy)
            && state.xy.dim() == (dx, dy)
            && [state.shift_x.len(), state.sum_x.len()] == [dx, dx]
            && [state.shift_y.len(), state.sum_y.len()] == [dy, dy];
        match fits {
            true => Ok(state),
            false => Err(GeometryError::InvalidState {
                what: "a corrupt embgeom CKA state: sizes disagree".into(),
            }),
        }
    }
}
