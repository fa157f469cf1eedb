//! The mergeable moments of two row-aligned representations X (N x D1) and Y (N x D2) from
//! which the whole moment-based similarity family follows (CKA linear and debiased,
//! Procrustes, the CCA family; see [`crate::metrics::similarity`]).
//!
//! Each representation is kept about a fixed shift `c` (its first batch's means, or its exact
//! means): `a_i = x_i - c_x`, `b_i = y_i - c_y`. For a pair (a, b) of them (X with itself, Y
//! with itself, X with Y) a [`Pairing`] holds
//! `M = sum a_i b_i^T`, `Q = sum ||a_i||^2 ||b_i||^2`, `W_b = sum ||a_i||^2 b_i` and
//! `W_a = sum ||b_i||^2 a_i`: the second moments and the fourth-order sums that debiased CKA
//! needs. Moving the shift by `d` (`a' = a + d`) and `e` re-expresses every sum exactly, so
//! states of any split of the rows merge in any order, and the centred values are the ones
//! about the means.

use crate::error::{GeometryError, Result};
use crate::kernels::merge::Merge;
use crate::kernels::tiles::{map_row_chunks, single_threaded_blas};
use crate::metrics::real::Real;
use crate::metrics::spectrum::column_means;
use crate::metrics::state::{move_moment, move_sum};
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Version of [`SimilarityState`]'s bytes.
pub const SIMILARITY_STATE_VERSION: u32 = 2;

/// The sums of a pair (a, b) of shifted representations (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pairing {
    /// `M = sum a_i b_i^T` (D_a x D_b).
    #[serde(with = "crate::kernels::serde_rows")]
    pub(crate) moment: Array2<f64>,
    /// `Q = sum ||a_i||^2 ||b_i||^2`.
    pub(crate) norms_product: f64,
    /// `W_b = sum ||a_i||^2 b_i`.
    pub(crate) weighted_b: Vec<f64>,
    /// `W_a = sum ||b_i||^2 a_i`.
    pub(crate) weighted_a: Vec<f64>,
}

impl Pairing {
    fn zeros(da: usize, db: usize) -> Pairing {
        Pairing {
            moment: Array2::zeros((da, db)),
            norms_product: 0.0,
            weighted_b: vec![0.0; db],
            weighted_a: vec![0.0; da],
        }
    }

    /// The sums of the shifted rows `a` and `b` (rows corresponding), in f64, over fixed row
    /// chunks added in order.
    fn of(a: &Array2<f64>, b: &Array2<f64>) -> Pairing {
        let norms =
            |m: &Array2<f64>| -> Array1<f64> { m.rows().into_iter().map(|r| r.dot(&r)).collect() };
        let (na, nb) = (norms(a), norms(b));
        Pairing {
            moment: a.t().dot(b),
            norms_product: na.dot(&nb),
            weighted_b: b.t().dot(&na).to_vec(),
            weighted_a: a.t().dot(&nb).to_vec(),
        }
    }

    fn add(&mut self, other: &Pairing) {
        self.moment += &other.moment;
        self.norms_product += other.norms_product;
        add_to(&mut self.weighted_b, &other.weighted_b);
        add_to(&mut self.weighted_a, &other.weighted_a);
    }

    /// The sums about shifts moved by `d` (a' = a + d) and `e` (b' = b + e), given the old
    /// sums `sum_a`, `sum_b` and `trace_a = sum ||a||^2`, `trace_b`:
    /// `Q' = Q + 2 e.W_b + |e|^2 T_a + 2 d.W_a + 4 d^T M e + 2|e|^2 d.s_a + |d|^2 T_b
    ///  + 2|d|^2 e.s_b + n|d|^2|e|^2`,
    /// `W_b' = W_b + 2 M^T d + |d|^2 s_b + e (T_a + 2 d.s_a + n|d|^2)` (and `W_a'` alike),
    /// `M' = M + s_a e^T + d s_b^T + n d e^T`.
    fn moved(&self, moves: &Moves) -> Pairing {
        let Moves {
            d,
            e,
            sum_a,
            sum_b,
            trace_a,
            trace_b,
            n,
        } = *moves;
        let dot = |u: &[f64], v: &[f64]| -> f64 { u.iter().zip(v).map(|(p, q)| p * q).sum() };
        let (dd, ee) = (dot(d, d), dot(e, e));
        let (d_sa, e_sb) = (dot(d, sum_a), dot(e, sum_b));
        let m_e = self.moment.dot(&ArrayView1::from(e));
        let mt_d = self.moment.t().dot(&ArrayView1::from(d));
        let norms_product = self.norms_product
            + 2.0 * dot(e, &self.weighted_b)
            + ee * trace_a
            + 2.0 * dot(d, &self.weighted_a)
            + 4.0 * dot(d, m_e.as_slice().unwrap_or(&[]))
            + 2.0 * ee * d_sa
            + dd * trace_b
            + 2.0 * dd * e_sb
            + n * dd * ee;
        let scale_e = trace_a + 2.0 * d_sa + n * dd;
        let weighted_b = (0..e.len())
            .map(|j| self.weighted_b[j] + 2.0 * mt_d[j] + dd * sum_b[j] + e[j] * scale_e)
            .collect();
        let scale_d = trace_b + 2.0 * e_sb + n * ee;
        let weighted_a = (0..d.len())
            .map(|i| self.weighted_a[i] + 2.0 * m_e[i] + ee * sum_a[i] + d[i] * scale_d)
            .collect();
        let mut moment = self.moment.as_standard_layout().into_owned();
        if let Some(slice) = moment.as_slice_mut() {
            move_moment(slice, d, sum_a, e, sum_b, n);
        }
        Pairing {
            moment,
            norms_product,
            weighted_b,
            weighted_a,
        }
    }
}

/// What a shift move needs (see [`Pairing::moved`]).
struct Moves<'a> {
    d: &'a [f64],
    e: &'a [f64],
    sum_a: &'a [f64],
    sum_b: &'a [f64],
    trace_a: f64,
    trace_b: f64,
    n: f64,
}

fn add_to(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(p, q)| *p += q);
}

fn trace(m: &Array2<f64>) -> f64 {
    m.diag().sum()
}

/// One representation's own sums about its shift: the row count, `c`, `sum a_i` and the
/// [`Pairing`] of a with itself. Computed once per input when many are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnMoments {
    n: u64,
    shift: Vec<f64>,
    sum: Vec<f64>,
    own: Pairing,
}

impl OwnMoments {
    fn empty(d: usize) -> OwnMoments {
        OwnMoments {
            n: 0,
            shift: vec![0.0; d],
            sum: vec![0.0; d],
            own: Pairing::zeros(d, d),
        }
    }

    /// The sums of all rows of `x` about their exact column means (so `sum a_i = 0` up to
    /// rounding).
    pub fn of<F: Real>(x: ArrayView2<F>) -> OwnMoments {
        single_threaded_blas();
        let shift = column_means(x);
        let mut out = OwnMoments::empty(x.ncols());
        out.shift = shift.to_vec();
        let parts = map_row_chunks(x.nrows(), |range| {
            let a = x.slice(s![range, ..]).mapv(F::as_f64) - &shift;
            (a.sum_axis(Axis(0)), Pairing::of(&a, &a))
        });
        for (sum, own) in parts {
            add_to(&mut out.sum, sum.as_slice().unwrap_or(&[]));
            out.own.add(&own);
        }
        out.n = x.nrows() as u64;
        out
    }

    /// Rows summed.
    pub fn rows(&self) -> u64 {
        self.n
    }

    /// Width D.
    pub fn dim(&self) -> usize {
        self.shift.len()
    }

    /// The centred second moment `sum (x_i - mean)(x_i - mean)^T = M - s s^T / n`.
    pub fn centred_moment(&self) -> Array2<f64> {
        let n = self.n.max(1) as f64;
        let s = ArrayView1::from(&self.sum);
        let mut m = self.own.moment.clone();
        for ((i, j), v) in m.indexed_iter_mut() {
            *v -= s[i] * s[j] / n;
        }
        m
    }

    fn shift_view(&self) -> ArrayView1<'_, f64> {
        ArrayView1::from(&self.shift)
    }
}

/// The cross [`Pairing`] of `x` and `y` (rows corresponding) about the shifts of their
/// [`OwnMoments`].
pub fn cross_moments<F: Real, G: Real>(
    x: ArrayView2<F>,
    y: ArrayView2<G>,
    own_x: &OwnMoments,
    own_y: &OwnMoments,
) -> Pairing {
    single_threaded_blas();
    let parts = map_row_chunks(x.nrows(), |range| {
        let a = x.slice(s![range.clone(), ..]).mapv(F::as_f64) - own_x.shift_view();
        let b = y.slice(s![range, ..]).mapv(G::as_f64) - own_y.shift_view();
        Pairing::of(&a, &b)
    });
    let mut out = Pairing::zeros(x.ncols(), y.ncols());
    for part in &parts {
        out.add(part);
    }
    out
}

/// A mergeable summary of two row-aligned representations (batches or shards of the same
/// rows): both [`OwnMoments`] and their cross [`Pairing`]. Any split of the rows, merged in
/// any order, gives the moment-based similarity family of all of them (up to rounding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityState {
    x: OwnMoments,
    y: OwnMoments,
    xy: Pairing,
}

/// The centred moments every measure reads: `S_xx`, `S_yy`, `S_xy` (sums, not divided by N)
/// and, with `r_i = ||x_i - mean||^2` and `s_i` alike, `sum r`, `sum s`, `r.r`, `s.s`, `r.s`.
#[derive(Debug, Clone)]
pub struct CentredMoments {
    /// Rows N.
    pub n: u64,
    /// `S_xx = sum (x_i - mean)(x_i - mean)^T`.
    pub xx: Array2<f64>,
    /// `S_yy`.
    pub yy: Array2<f64>,
    /// `S_xy`.
    pub xy: Array2<f64>,
    /// `sum r_i = tr S_xx`.
    pub trace_x: f64,
    /// `sum s_i = tr S_yy`.
    pub trace_y: f64,
    /// `sum r_i^2`.
    pub rr: f64,
    /// `sum s_i^2`.
    pub ss: f64,
    /// `sum r_i s_i`.
    pub rs: f64,
}

/// Sums of squares (or of fourth powers) whose mean per row is at least this lie in f64's
/// normal range, where the rounding of the smallest terms is relative, not absolute.
const NORMAL_SUMS: f64 = 1e-290;

impl CentredMoments {
    /// Whether the fourth-order sums `r.r`, `s.s`, `r.s` of the raw moments were summed in f64's
    /// normal range: finite, and `(tr S)^2 / N` (a lower bound of `r.r`) at least `1e-290`.
    pub fn fourth_order_exact(&self) -> bool {
        let n = self.n as f64;
        let normal = |t: f64| t * (t / n) >= NORMAL_SUMS;
        self.rr.is_finite()
            && self.ss.is_finite()
            && self.rs.is_finite()
            && normal(self.trace_x)
            && normal(self.trace_y)
    }

    /// The same moments of the rows scaled to unit Frobenius norm (`X / sqrt(tr S_xx)`,
    /// `Y / sqrt(tr S_yy)`): `S_xx / tr S_xx`, `S_xy / sqrt(tr S_xx tr S_yy)`, `r.r / (tr
    /// S_xx)^2`, ..., both traces 1. Every measure of the family is invariant to that scaling,
    /// and the normalised moments keep their squares (`||S||_F^2`) inside f64 for any rows
    /// whose second moments were summed in f64's normal range (values of magnitude between
    /// about 1e-145 and 1e154; outside it, an error that says so). The fourth-order sums
    /// (`r.r`, `s.s`, `r.s`), which only debiased CKA reads, need values between about 1e-70
    /// and 1e77: [`CentredMoments::fourth_order_exact`] says whether they were.
    pub fn unit_trace(&self) -> Result<CentredMoments> {
        for (which, t) in [("first", self.trace_x), ("second", self.trace_y)] {
            if !t.is_finite() {
                return Err(GeometryError::Numerical {
                    what: format!(
                        "the similarity of representations: the {which} representation's second moments overflow f64 (values of magnitude 1e154 or more)"
                    ),
                });
            }
            if t <= 0.0 {
                return Err(GeometryError::Labels {
                    what: "the similarity of a constant representation is undefined (all rows equal, or values so small that their squares underflow f64)".into(),
                });
            }
            if t < self.n as f64 * NORMAL_SUMS {
                return Err(GeometryError::Numerical {
                    what: format!(
                        "the similarity of representations: the {which} representation is constant up to rounding, or its values are too small for f64's squares (magnitude 1e-145 or less: scale the rows up)"
                    ),
                });
            }
        }
        let (tx, ty) = (self.trace_x, self.trace_y);
        let txy = tx.sqrt() * ty.sqrt();
        Ok(CentredMoments {
            n: self.n,
            xx: &self.xx / tx,
            yy: &self.yy / ty,
            xy: &self.xy / txy,
            trace_x: 1.0,
            trace_y: 1.0,
            rr: self.rr / tx / tx,
            ss: self.ss / ty / ty,
            rs: self.rs / tx / ty,
        })
    }
}

impl SimilarityState {
    /// An empty state for representations of `dx` and `dy` dimensions.
    pub fn new(dx: usize, dy: usize) -> SimilarityState {
        SimilarityState {
            x: OwnMoments::empty(dx),
            y: OwnMoments::empty(dy),
            xy: Pairing::zeros(dx, dy),
        }
    }

    /// The state of two whole representations from their [`OwnMoments`] and
    /// [`cross_moments`] (all about the same shifts).
    pub fn from_parts(x: &OwnMoments, y: &OwnMoments, xy: Pairing) -> Result<SimilarityState> {
        if x.n != y.n || xy.moment.dim() != (x.dim(), y.dim()) {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "similarity parts of {} and {} rows, {} and {} columns, cross moment {:?}",
                    x.n,
                    y.n,
                    x.dim(),
                    y.dim(),
                    xy.moment.dim()
                ),
            });
        }
        Ok(SimilarityState {
            x: x.clone(),
            y: y.clone(),
            xy,
        })
    }

    /// Rows summarised so far.
    pub fn rows(&self) -> u64 {
        self.x.n
    }

    /// Add the same rows of both representations.
    pub fn update<F: Real, G: Real>(&mut self, x: ArrayView2<F>, y: ArrayView2<G>) -> Result<()> {
        single_threaded_blas();
        let n = x.nrows();
        if y.nrows() != n || (x.ncols(), y.ncols()) != (self.x.dim(), self.y.dim()) {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "similarity batches of shapes {:?} and {:?} for a state of ({}, {}) dimensions",
                    x.dim(),
                    y.dim(),
                    self.x.dim(),
                    self.y.dim()
                ),
            });
        }
        if n == 0 {
            return Ok(());
        }
        if self.x.n == 0 {
            self.x.shift = column_means(x).to_vec();
            self.y.shift = column_means(y).to_vec();
        }
        let (sx, sy) = (self.x.shift_view(), self.y.shift_view());
        let parts = map_row_chunks(n, |range| {
            let a = x.slice(s![range.clone(), ..]).mapv(F::as_f64) - sx;
            let b = y.slice(s![range, ..]).mapv(G::as_f64) - sy;
            (
                a.sum_axis(Axis(0)),
                b.sum_axis(Axis(0)),
                Pairing::of(&a, &a),
                Pairing::of(&b, &b),
                Pairing::of(&a, &b),
            )
        });
        for (sum_a, sum_b, aa, bb, ab) in parts {
            add_to(&mut self.x.sum, sum_a.as_slice().unwrap_or(&[]));
            add_to(&mut self.y.sum, sum_b.as_slice().unwrap_or(&[]));
            self.x.own.add(&aa);
            self.y.own.add(&bb);
            self.xy.add(&ab);
        }
        self.x.n += n as u64;
        self.y.n += n as u64;
        Ok(())
    }

    /// The state re-expressed about the shifts `(to_x, to_y)`.
    fn recentred(&self, to_x: &[f64], to_y: &[f64]) -> SimilarityState {
        let n = self.x.n as f64;
        let delta = |from: &[f64], to: &[f64]| -> Vec<f64> {
            from.iter().zip(to).map(|(a, b)| a - b).collect()
        };
        let (d, e) = (delta(&self.x.shift, to_x), delta(&self.y.shift, to_y));
        let moved = |p: &Pairing, (d, a): (&[f64], &OwnMoments), (e, b): (&[f64], &OwnMoments)| {
            p.moved(&Moves {
                d,
                e,
                sum_a: &a.sum,
                sum_b: &b.sum,
                trace_a: trace(&a.own.moment),
                trace_b: trace(&b.own.moment),
                n,
            })
        };
        let xx = moved(&self.x.own, (&d, &self.x), (&d, &self.x));
        let yy = moved(&self.y.own, (&e, &self.y), (&e, &self.y));
        let xy = moved(&self.xy, (&d, &self.x), (&e, &self.y));
        let side = |own: &OwnMoments, delta: &[f64], to: &[f64], pairing: Pairing| {
            let mut sum = own.sum.clone();
            move_sum(&mut sum, delta, n);
            OwnMoments {
                n: own.n,
                shift: to.to_vec(),
                sum,
                own: pairing,
            }
        };
        SimilarityState {
            x: side(&self.x, &d, to_x, xx),
            y: side(&self.y, &e, to_y, yy),
            xy,
        }
    }

    /// The moments about the means of every row summarised (the shifts moved to
    /// `c + sum/n`).
    pub fn centred(&self) -> Result<CentredMoments> {
        let n = self.x.n;
        if n < 2 {
            return Err(GeometryError::TooFewRows {
                metric: "similarity of representations",
                needed: 2,
                got: n as usize,
            });
        }
        let mean = |own: &OwnMoments| -> Vec<f64> {
            own.shift
                .iter()
                .zip(&own.sum)
                .map(|(c, s)| c + s / n as f64)
                .collect()
        };
        let about = self.recentred(&mean(&self.x), &mean(&self.y));
        Ok(CentredMoments {
            n,
            trace_x: trace(&about.x.own.moment),
            trace_y: trace(&about.y.own.moment),
            rr: about.x.own.norms_product,
            ss: about.y.own.norms_product,
            rs: about.xy.norms_product,
            xx: about.x.own.moment,
            yy: about.y.own.moment,
            xy: about.xy.moment,
        })
    }
}

impl Merge for SimilarityState {
    const MAGIC: [u8; 8] = *b"EMBGSIMS";
    const VERSION: u32 = SIMILARITY_STATE_VERSION;
    const WHAT: &'static str = "an embgeom similarity state";

    /// Merge another state of the same dimensions into this one.
    fn merge(&mut self, other: &SimilarityState) -> Result<()> {
        if (other.x.dim(), other.y.dim()) != (self.x.dim(), self.y.dim()) {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "merging similarity states of ({}, {}) and ({}, {}) dimensions",
                    other.x.dim(),
                    other.y.dim(),
                    self.x.dim(),
                    self.y.dim()
                ),
            });
        }
        if other.x.n == 0 {
            return Ok(());
        }
        if self.x.n == 0 {
            *self = other.clone();
            return Ok(());
        }
        let other = other.recentred(&self.x.shift, &self.y.shift);
        for (mine, theirs) in [(&mut self.x, &other.x), (&mut self.y, &other.y)] {
            add_to(&mut mine.sum, &theirs.sum);
            mine.own.add(&theirs.own);
            mine.n += theirs.n;
        }
        self.xy.add(&other.xy);
        Ok(())
    }

    /// The decoded state, once its sizes are checked to agree.
    fn checked(self) -> Result<SimilarityState> {
        let (dx, dy) = (self.x.dim(), self.y.dim());
        let pairing_fits = |p: &Pairing, a: usize, b: usize| {
            p.moment.dim() == (a, b) && p.weighted_a.len() == a && p.weighted_b.len() == b
        };
        let fits = self.x.sum.len() == dx
            && self.y.sum.len() == dy
            && self.x.n == self.y.n
            && pairing_fits(&self.x.own, dx, dx)
            && pairing_fits(&self.y.own, dy, dy)
            && pairing_fits(&self.xy, dx, dy);
        match fits {
            true => Ok(self),
            false => Err(GeometryError::InvalidState {
                what: "a corrupt embgeom similarity state: sizes disagree".into(),
            }),
        }
    }
}
