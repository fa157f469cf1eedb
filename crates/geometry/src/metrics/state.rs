//! Mergeable partial states: batches of rows (or shards) are summarised into sufficient
//! statistics that merge exactly, in any order, and finalise into the metrics that depend on
//! them only: the spectrum, effective rank, RankMe, alpha-ReQ, the std of normalised rows,
//! label-positive alignment (alpha = 2), NC1-NC2, the ETF distance, CDNV and Graf et al.'s
//! simplex angles.
//!
//! Second moments are kept about a fixed shift (the first batch's mean) to limit
//! cancellation; merging re-centres exactly. Metrics that need the rows again (exact
//! uniformity, kNN and nearest-class-mean accuracy) are not part of a state: the sharded
//! analysis ([`crate::orchestration::sharded`]) adds them in a second pass.
//!
//! ```
//! use embgeom_geometry::state::{LabelKey, State};
//! use embgeom_geometry::Merge;
//! use ndarray::array;
//!
//! let (a, b) = (array![[1.0f64, 0.2], [0.1, 1.0]], array![[0.9f64, -0.3], [-0.2, 1.1]]);
//! let labels = [LabelKey::from("x"), LabelKey::from("y")];
//! let mut left = State::new(2);
//! left.update(a.view(), Some(&labels))?;
//! let mut right = State::new(2);
//! right.update(b.view(), Some(&labels))?;
//! left.merge(&State::from_bytes(&right.to_bytes())?)?;
//! assert_eq!(left.rows(), 4);
//! let metrics = left.finalize()?;
//! assert!(metrics.nc1.is_some());
//! # Ok::<(), embgeom_geometry::GeometryError>(())
//! ```

use crate::error::{GeometryError, Result};
use crate::kernels::merge::Merge;
use crate::kernels::rows::normalize_rows;
use crate::kernels::scatter::{all_rows, scatter};
use crate::kernels::tiles::map_row_chunks;
use crate::metrics::collapse::{collapse_from_stats, Collapse};
use crate::metrics::real::Real;
use crate::metrics::simplex::{simplex_angles, SimplexAngles};
use crate::metrics::spectrum::column_means;
use crate::metrics::spectrum::{spectrum_of, AlphaReq, Spectrum, UnitMoments};
use crate::metrics::stats::ClassStats;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the serialised form; bytes of another version are refused.
pub const STATE_VERSION: u32 = 2;

/// A class label: an integer or a name. Classes are ordered as the analysis orders them:
/// integers numerically, names lexically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LabelKey {
    /// An integer label.
    Int(i64),
    /// A text label.
    Text(String),
}

impl std::fmt::Display for LabelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelKey::Int(v) => write!(f, "{v}"),
            LabelKey::Text(v) => f.write_str(v),
        }
    }
}

impl From<&str> for LabelKey {
    fn from(name: &str) -> Self {
        LabelKey::Text(name.to_string())
    }
}

impl From<i64> for LabelKey {
    fn from(value: i64) -> Self {
        LabelKey::Int(value)
    }
}

/// Sums of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClassSums {
    n: u64,
    /// `sum (h - shift)` of the raw rows.
    raw: Vec<f64>,
    /// `sum ||h - shift||^2`.
    raw_squares: f64,
    /// `sum u` of the normalised rows.
    unit: Vec<f64>,
    /// `sum ||u||^2` (the row count when the rows are normalised).
    unit_squares: f64,
}

impl ClassSums {
    fn empty(d: usize) -> ClassSums {
        ClassSums {
            n: 0,
            raw: vec![0.0; d],
            raw_squares: 0.0,
            unit: vec![0.0; d],
            unit_squares: 0.0,
        }
    }
}

/// A mergeable summary of rows (and their labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    dim: usize,
    n: u64,
    /// Fixed shifts (the first batch's means) of the raw and the normalised rows.
    shift: Vec<f64>,
    unit_shift: Vec<f64>,
    /// `sum (h - shift)`, `sum (h - shift)(h - shift)^T` (row-major D x D).
    raw_sum: Vec<f64>,
    raw_moment: Vec<f64>,
    /// The same for the normalised rows about `unit_shift`.
    unit_sum: Vec<f64>,
    unit_moment: Vec<f64>,
    /// Per class, in class order (rows without labels: none).
    classes: BTreeMap<LabelKey, ClassSums>,
}

/// What a state finalises into; a metric that is undefined for the rows is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMetrics {
    pub n: u64,
    pub dim: usize,
    pub num_classes: Option<usize>,
    /// Eigenvalues (decreasing) of the normalised rows' centred covariance (N - 1).
    pub eigenvalues: Vec<f64>,
    pub effective_rank: f64,
    pub rankme: f64,
    pub alpha_req: Option<AlphaReq>,
    pub normalized_std: f64,
    /// Label-positive alignment with alpha = 2.
    pub class_alignment: Option<f64>,
    pub nc1: Option<f64>,
    pub nc1_quotient: Option<f64>,
    pub nc2_equinorm: Option<f64>,
    pub nc2_equiangularity: Option<f64>,
    pub nc2_max_angle: Option<f64>,
    pub etf_distance: Option<f64>,
    pub cdnv: Option<f64>,
    pub simplex_angles: Option<SimplexAngles>,
    pub warnings: Vec<String>,
}

/// `target[i] += values[i]`.
fn add_to<'a>(target: &mut [f64], values: impl Iterator<Item = &'a f64>) {
    for (t, v) in target.iter_mut().zip(values) {
        *t += v;
    }
}

/// `sum_i (x_i - shift)` over fixed row chunks, added in order.
fn shifted_sum<F: Real>(x: ArrayView2<F>, shift: ArrayView1<f64>) -> Array1<f64> {
    let partials = map_row_chunks(x.nrows(), |range| {
        let mut sum = Array1::<f64>::zeros(x.ncols());
        for i in range {
            for ((s, v), m) in sum.iter_mut().zip(x.row(i)).zip(shift) {
                *s += v.as_f64() - m;
            }
        }
        sum
    });
    partials
        .into_iter()
        .fold(Array1::zeros(x.ncols()), |total, p| total + p)
}

/// Moments about `from` re-expressed about `to`: with `delta = from - to`,
/// `M_to = M_from + delta s^T + s delta^T + n delta delta^T`, `s_to = s_from + n delta`.
fn recentre(sum: &mut [f64], moment: &mut [f64], n: f64, from: &[f64], to: &[f64]) {
    let delta: Vec<f64> = from.iter().zip(to).map(|(a, b)| a - b).collect();
    move_moment(moment, &delta, sum, &delta, sum, n);
    move_sum(sum, &delta, n);
}

/// A (cross) moment `sum (a - from_a)(b - from_b)^T` (row-major, `delta_b.len()` columns)
/// re-expressed about shifts moved by `delta_a`, `delta_b`, with `sum_a`, `sum_b` the sums
/// about the old shifts: `M += delta_a sum_b^T + sum_a delta_b^T + n delta_a delta_b^T`.
pub(crate) fn move_moment(
    moment: &mut [f64],
    delta_a: &[f64],
    sum_a: &[f64],
    delta_b: &[f64],
    sum_b: &[f64],
    n: f64,
) {
    let cols = delta_b.len();
    for i in 0..delta_a.len() {
        for j in 0..cols {
            moment[i * cols + j] +=
                delta_a[i] * sum_b[j] + sum_a[i] * delta_b[j] + n * delta_a[i] * delta_b[j];
        }
    }
}

/// `sum (x - from)` re-expressed about a shift moved by `delta`: `s += n delta`.
pub(crate) fn move_sum(sum: &mut [f64], delta: &[f64], n: f64) {
    for (s, dl) in sum.iter_mut().zip(delta) {
        *s += n * dl;
    }
}

fn matrix(values: &[f64], d: usize) -> Array2<f64> {
    Array2::from_shape_vec((d, d), values.to_vec()).unwrap_or_else(|_| Array2::zeros((d, d)))
}

/// `moment - s s^T / n`: the scatter about the mean.
fn centred(moment: &[f64], sum: &[f64], n: f64) -> Array2<f64> {
    let d = sum.len();
    let mut out = matrix(moment, d);
    for i in 0..d {
        for j in 0..d {
            out[[i, j]] -= sum[i] * sum[j] / n;
        }
    }
    out
}

impl State {
    /// An empty state for rows of `dim` dimensions.
    pub fn new(dim: usize) -> State {
        State {
            dim,
            n: 0,
            shift: vec![0.0; dim],
            unit_shift: vec![0.0; dim],
            raw_sum: vec![0.0; dim],
            raw_moment: vec![0.0; dim * dim],
            unit_sum: vec![0.0; dim],
            unit_moment: vec![0.0; dim * dim],
            classes: BTreeMap::new(),
        }
    }

    /// Rows summarised so far.
    pub fn rows(&self) -> u64 {
        self.n
    }

    /// Dimension D of the rows.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Add a batch of rows (raw; they are L2-normalised for the sphere metrics) with their
    /// labels. Every batch must carry labels, or none.
    pub fn update<F: Real>(
        &mut self,
        rows: ArrayView2<F>,
        labels: Option<&[LabelKey]>,
    ) -> Result<()> {
        let unit = normalize_rows(rows)?;
        self.update_prepared(unit.view(), rows, labels)
    }

    /// Add a batch given as the rows the sphere metrics use (`unit`: normalised, or the raw
    /// rows themselves when the analysis does not normalise) and the raw rows.
    pub fn update_prepared<F: Real>(
        &mut self,
        unit: ArrayView2<F>,
        raw: ArrayView2<F>,
        labels: Option<&[LabelKey]>,
    ) -> Result<()> {
        let (n, d) = raw.dim();
        if d != self.dim || unit.dim() != (n, d) {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "a batch of shape {:?} (rows {:?}) for a state of {} dimensions",
                    raw.dim(),
                    unit.dim(),
                    self.dim
                ),
            });
        }
        if let Some(labels) = labels {
            if labels.len() != n {
                return Err(GeometryError::Labels {
                    what: format!("{} labels for {n} rows", labels.len()),
                });
            }
        }
        if self.n > 0 && labels.is_some() == self.classes.is_empty() {
            return Err(GeometryError::Labels {
                what: "every batch must carry labels, or none".into(),
            });
        }
        if n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            self.shift = column_means(raw).to_vec();
            self.unit_shift = column_means(unit).to_vec();
        }
        // Second moments about the shifts, in parallel over fixed stripes of rows (dsyrk).
        let rows = all_rows(n);
        let shift = ArrayView1::from(&self.shift);
        let unit_shift = ArrayView1::from(&self.unit_shift);
        add_to(&mut self.raw_moment, scatter(raw, &rows, shift).iter());
        add_to(
            &mut self.unit_moment,
            scatter(unit, &rows, unit_shift).iter(),
        );
        add_to(&mut self.raw_sum, shifted_sum(raw, shift).iter());
        add_to(&mut self.unit_sum, shifted_sum(unit, unit_shift).iter());
        if let Some(labels) = labels {
            let mut shifted = vec![0.0; d];
            for (i, label) in labels.iter().enumerate() {
                if !self.classes.contains_key(label) {
                    self.classes.insert(label.clone(), ClassSums::empty(d));
                }
                let Some(class) = self.classes.get_mut(label) else {
                    continue;
                };
                class.n += 1;
                for ((s, v), m) in shifted.iter_mut().zip(raw.row(i)).zip(&self.shift) {
                    *s = v.as_f64() - m;
                }
                add_to(&mut class.raw, shifted.iter());
                class.raw_squares += shifted.iter().map(|v| v * v).sum::<f64>();
                let unit_row = unit.row(i);
                for (s, v) in class.unit.iter_mut().zip(unit_row) {
                    *s += v.as_f64();
                }
                class.unit_squares += unit_row.iter().map(|v| v.as_f64().powi(2)).sum::<f64>();
            }
        }
        self.n += n as u64;
        Ok(())
    }

    /// The classes in class order (empty without labels).
    pub fn class_keys(&self) -> Vec<LabelKey> {
        self.classes.keys().cloned().collect()
    }

    /// Rows per class, in class order.
    pub fn class_counts(&self) -> Vec<u64> {
        self.classes.values().map(|c| c.n).collect()
    }

    /// `sum x x^T` about the origin from the moment about `shift`:
    /// `M + shift s^T + s shift^T + n shift shift^T`.
    fn uncentred(moment: &[f64], sum: &[f64], shift: &[f64], n: f64) -> Array2<f64> {
        let d = sum.len();
        let mut out = matrix(moment, d);
        for i in 0..d {
            for j in 0..d {
                out[[i, j]] += shift[i] * sum[j] + sum[i] * shift[j] + n * shift[i] * shift[j];
            }
        }
        out
    }

    /// `U^T U` of the normalised rows (D x D).
    pub fn unit_uncentred(&self) -> Array2<f64> {
        Self::uncentred(
            &self.unit_moment,
            &self.unit_sum,
            &self.unit_shift,
            self.n as f64,
        )
    }

    /// The dimensional-collapse metrics of the rows, as [`crate::spectrum`] computes them from
    /// the rows themselves (the same round-off levels).
    pub fn spectrum(&self) -> Result<Spectrum> {
        if self.n < 2 {
            return Err(GeometryError::TooFewRows {
                metric: "a state",
                needed: 2,
                got: self.n as usize,
            });
        }
        let n = self.n as f64;
        let unit_cov = centred(&self.unit_moment, &self.unit_sum, n) / (n - 1.0);
        let unit_products = Self::uncentred(&self.unit_moment, &self.unit_sum, &self.unit_shift, n);
        let unit_mean: Array1<f64> = self
            .unit_shift
            .iter()
            .zip(&self.unit_sum)
            .map(|(shift, sum)| shift + sum / n)
            .collect();
        let unit = UnitMoments {
            cov: &unit_cov,
            scale: unit_products.diag().sum() / n,
            mean: unit_mean,
            products_sq: unit_products.iter().map(|v| v * v).sum(),
        };
        let gram = Self::uncentred(&self.raw_moment, &self.raw_sum, &self.shift, n);
        let raw_scale = gram.diag().sum();
        let raw_scatter = centred(&self.raw_moment, &self.raw_sum, n);
        spectrum_of(self.n as usize, unit, &raw_scatter, &gram, raw_scale)
    }

    /// Label-positive alignment with alpha = 2: over the pairs `i < j` of each class,
    /// `sum ||u_i - u_j||^2 = n_c sum ||u_i||^2 - ||S_c||^2` with class sum `S_c`; `None`
    /// without labels or without a class of two rows.
    pub fn class_alignment(&self) -> Option<f64> {
        let (mut total, mut pairs) = (0.0, 0.0);
        for class in self.classes.values() {
            let nc = class.n as f64;
            let norm_sq: f64 = class.unit.iter().map(|v| v * v).sum();
            total += nc * class.unit_squares - norm_sq;
            pairs += nc * (nc - 1.0) / 2.0;
        }
        (pairs > 0.0).then(|| total / pairs)
    }

    /// The class statistics of the raw rows (per-class effective ranks are not kept: they
    /// would need a D x D scatter per class), with the class names; `None` without labels.
    pub fn class_stats(&self) -> Option<(Vec<String>, ClassStats)> {
        if self.classes.is_empty() {
            return None;
        }
        let d = self.dim;
        let names: Vec<String> = self.classes.keys().map(ToString::to_string).collect();
        let classes: Vec<&ClassSums> = self.classes.values().collect();
        let c = classes.len();
        let mut means = Array2::<f64>::zeros((c, d));
        let mut within = matrix(&self.raw_moment, d);
        let mut variances = Vec::with_capacity(c);
        for (k, class) in classes.iter().enumerate() {
            let nc = class.n as f64;
            let offset: Vec<f64> = class.raw.iter().map(|s| s / nc).collect();
            for j in 0..d {
                means[[k, j]] = self.shift[j] + offset[j];
            }
            for i in 0..d {
                for j in 0..d {
                    within[[i, j]] -= nc * offset[i] * offset[j];
                }
            }
            let offset_sq: f64 = offset.iter().map(|v| v * v).sum();
            variances.push(((class.raw_squares - nc * offset_sq) / nc).max(0.0));
        }
        within /= self.n as f64;
        let global_mean = means.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(d));
        let within_trace = within.diag().sum();
        let stats = ClassStats {
            counts: classes.iter().map(|c| c.n as usize).collect(),
            within_projected: ClassStats::project_within(&means, &global_mean, within),
            means,
            global_mean,
            within_trace,
            within_variance: variances,
            effective_ranks: vec![None; c],
        };
        Some((names, stats))
    }

    /// `sum_{i in c} ||u_i||^2` of the normalised rows of each class, in class order.
    pub fn unit_class_squares(&self) -> Vec<f64> {
        self.classes.values().map(|c| c.unit_squares).collect()
    }

    /// Means of the normalised rows of each class (C x D), in class order.
    pub fn unit_class_means(&self) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros((self.classes.len(), self.dim));
        for (k, class) in self.classes.values().enumerate() {
            for (o, s) in out.row_mut(k).iter_mut().zip(&class.unit) {
                *o = s / class.n as f64;
            }
        }
        out
    }

    /// The metrics of the summarised rows.
    pub fn finalize(&self) -> Result<StateMetrics> {
        let spectrum = self.spectrum()?;
        let mut out = StateMetrics {
            n: self.n,
            dim: self.dim,
            num_classes: None,
            alpha_req: spectrum.alpha_req,
            eigenvalues: spectrum.eigenvalues,
            effective_rank: spectrum.effective_rank,
            rankme: spectrum.rankme,
            normalized_std: spectrum.normalized_std,
            class_alignment: self.class_alignment(),
            nc1: None,
            nc1_quotient: None,
            nc2_equinorm: None,
            nc2_equiangularity: None,
            nc2_max_angle: None,
            etf_distance: None,
            cdnv: None,
            simplex_angles: None,
            warnings: Vec::new(),
        };
        let Some((names, stats)) = self.class_stats() else {
            return Ok(out);
        };
        let c = names.len();
        out.num_classes = Some(c);
        let collapsed = collapse_from_stats(Collapse::default(), &stats, &names, None)?;
        out.nc1 = collapsed.nc1;
        out.nc1_quotient = collapsed.nc1_quotient;
        out.nc2_equinorm = collapsed.nc2_equinorm;
        out.nc2_equiangularity = collapsed.nc2_equiangularity;
        out.nc2_max_angle = collapsed.nc2_max_angle;
        out.etf_distance = collapsed.etf_distance;
        out.cdnv = collapsed.cdnv.map(|c| c.mean);
        out.warnings.extend(collapsed.warnings);
        if c >= 2 {
            match simplex_angles(self.unit_class_means().view()) {
                Ok(angles) => out.simplex_angles = Some(angles),
                Err(e) => out.warnings.push(format!("simplex angles: {e}")),
            }
        }
        Ok(out)
    }
}

impl Merge for State {
    const MAGIC: [u8; 8] = *b"EMBGSTAT";
    const VERSION: u32 = STATE_VERSION;
    const WHAT: &'static str = "an embgeom state";

    /// Merge another state into this one (exact; the order does not matter beyond rounding).
    fn merge(&mut self, other: &State) -> Result<()> {
        if other.dim != self.dim {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "merging a state of {} dimensions into one of {}",
                    other.dim, self.dim
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
        if self.classes.is_empty() != other.classes.is_empty() {
            return Err(GeometryError::Labels {
                what: "merging a labelled state with an unlabelled one".into(),
            });
        }
        let mut other = other.clone();
        let n = other.n as f64;
        recentre(
            &mut other.raw_sum,
            &mut other.raw_moment,
            n,
            &other.shift,
            &self.shift,
        );
        recentre(
            &mut other.unit_sum,
            &mut other.unit_moment,
            n,
            &other.unit_shift,
            &self.unit_shift,
        );
        let delta: Vec<f64> = other
            .shift
            .iter()
            .zip(&self.shift)
            .map(|(a, b)| a - b)
            .collect();
        for (name, class) in other.classes {
            let nc = class.n as f64;
            // sum (h - to) = sum (h - from) + n delta; ||.||^2 grows accordingly.
            let cross: f64 = class.raw.iter().zip(&delta).map(|(s, d)| s * d).sum();
            let shift_sq: f64 = delta.iter().map(|d| d * d).sum();
            let mut raw = class.raw.clone();
            move_sum(&mut raw, &delta, nc);
            let squares = class.raw_squares + 2.0 * cross + nc * shift_sq;
            let mine = self
                .classes
                .entry(name)
                .or_insert_with(|| ClassSums::empty(delta.len()));
            mine.n += class.n;
            mine.raw_squares += squares;
            mine.unit_squares += class.unit_squares;
            add_to(&mut mine.raw, raw.iter());
            add_to(&mut mine.unit, class.unit.iter());
        }
        add_to(&mut self.raw_sum, other.raw_sum.iter());
        add_to(&mut self.raw_moment, other.raw_moment.iter());
        add_to(&mut self.unit_sum, other.unit_sum.iter());
        add_to(&mut self.unit_moment, other.unit_moment.iter());
        self.n += other.n;
        Ok(())
    }

    /// The decoded state, once its sizes are checked to agree.
    fn checked(self) -> Result<State> {
        let bad = |what: String| GeometryError::InvalidState { what };
        let state = self;
        let d = state.dim;
        let sizes_ok = [
            &state.shift,
            &state.unit_shift,
            &state.raw_sum,
            &state.unit_sum,
        ]
        .iter()
        .all(|v| v.len() == d)
            && state.raw_moment.len() == d * d
            && state.unit_moment.len() == d * d
            && state
                .classes
                .values()
                .all(|c| c.raw.len() == d && c.unit.len() == d);
        match sizes_ok {
            true => Ok(state),
            false => Err(bad("a corrupt embgeom state: sizes disagree".into())),
        }
    }
}
