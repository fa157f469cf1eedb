//! Mergeable partial states: batches of rows (or shards) are summarised into sufficient
//! statistics that merge exactly, in any order, and finalise into the metrics that depend on
//! them only: the spectrum, effective rank, RankMe, alpha-ReQ, the std of normalised rows,
//! label-positive alignment (alpha = 2), NC1-NC2, the ETF distance, CDNV and Graf et al.'s
//! simplex angles.
//!
//! Second moments are kept about a fixed shift (the first batch's mean) to limit
//! cancellation; merging re-centres exactly. Metrics that need the rows again (exact
//! uniformity, kNN and nearest-class-mean accuracy) are not part of a state.
//!
//! ```
//! use embgeom_geometry::state::State;
//! use ndarray::array;
//!
//! let (a, b) = (array![[1.0f64, 0.2], [0.1, 1.0]], array![[0.9f64, -0.3], [-0.2, 1.1]]);
//! let labels = ["x".to_string(), "y".to_string()];
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

use crate::collapse::{collapse_from_stats, Collapse};
use crate::error::{GeometryError, Result};
use crate::real::Real;
use crate::rows::normalize_rows;
use crate::simplex::{simplex_angles, SimplexAngles};
use crate::spectrum::{alpha_req, effective_rank, rankme, symmetric_eigenvalues, AlphaReq};
use crate::stats::ClassStats;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the serialised form; bytes of another version are refused.
pub const STATE_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"EMBGSTAT";

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
    /// Per class, by label name (rows without labels: none).
    classes: BTreeMap<String, ClassSums>,
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

/// `moment += d d^T` for the rows of `block` (already shifted), through a GEMM.
fn add_moment(moment: &mut [f64], block: &Array2<f64>) {
    let outer = block.t().dot(block);
    for (m, v) in moment.iter_mut().zip(outer.iter()) {
        *m += v;
    }
}

/// Moments about `from` re-expressed about `to`: with `delta = from - to`,
/// `M_to = M_from + delta s^T + s delta^T + n delta delta^T`, `s_to = s_from + n delta`.
fn recentre(sum: &mut [f64], moment: &mut [f64], n: f64, from: &[f64], to: &[f64]) {
    let d = from.len();
    let delta: Vec<f64> = from.iter().zip(to).map(|(a, b)| a - b).collect();
    for i in 0..d {
        for j in 0..d {
            moment[i * d + j] += delta[i] * sum[j] + sum[i] * delta[j] + n * delta[i] * delta[j];
        }
    }
    for (s, dl) in sum.iter_mut().zip(&delta) {
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

    /// Add a batch of rows (raw; they are L2-normalised for the sphere metrics) with their
    /// labels. Every batch must carry labels, or none.
    pub fn update<F: Real>(
        &mut self,
        rows: ArrayView2<F>,
        labels: Option<&[String]>,
    ) -> Result<()> {
        let (n, d) = rows.dim();
        if d != self.dim {
            return Err(GeometryError::ShapeMismatch {
                what: format!("a batch of {d} dimensions for a state of {}", self.dim),
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
        let unit = normalize_rows(rows)?.mapv(Real::as_f64);
        let raw = rows.mapv(Real::as_f64);
        if self.n == 0 {
            self.shift = raw.mean_axis(Axis(0)).map_or_else(Vec::new, |m| m.to_vec());
            self.unit_shift = unit
                .mean_axis(Axis(0))
                .map_or_else(Vec::new, |m| m.to_vec());
        }
        let shifted = &raw - &Array1::from(self.shift.clone()).insert_axis(Axis(0));
        let unit_shifted = &unit - &Array1::from(self.unit_shift.clone()).insert_axis(Axis(0));
        add_moment(&mut self.raw_moment, &shifted);
        add_moment(&mut self.unit_moment, &unit_shifted);
        for (s, v) in self.raw_sum.iter_mut().zip(shifted.sum_axis(Axis(0))) {
            *s += v;
        }
        for (s, v) in self.unit_sum.iter_mut().zip(unit_shifted.sum_axis(Axis(0))) {
            *s += v;
        }
        if let Some(labels) = labels {
            for (i, label) in labels.iter().enumerate() {
                let class = self
                    .classes
                    .entry(label.clone())
                    .or_insert_with(|| ClassSums {
                        n: 0,
                        raw: vec![0.0; d],
                        raw_squares: 0.0,
                        unit: vec![0.0; d],
                    });
                class.n += 1;
                let row = shifted.row(i);
                for (s, v) in class.raw.iter_mut().zip(row) {
                    *s += v;
                }
                class.raw_squares += row.dot(&row);
                for (s, v) in class.unit.iter_mut().zip(unit.row(i)) {
                    *s += v;
                }
            }
        }
        self.n += n as u64;
        Ok(())
    }

    /// Merge another state into this one (exact; the order does not matter beyond rounding).
    pub fn merge(&mut self, other: &State) -> Result<()> {
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
            let raw: Vec<f64> = class
                .raw
                .iter()
                .zip(&delta)
                .map(|(s, d)| s + nc * d)
                .collect();
            let squares = class.raw_squares + 2.0 * cross + nc * shift_sq;
            let mine = self.classes.entry(name).or_insert_with(|| ClassSums {
                n: 0,
                raw: vec![0.0; delta.len()],
                raw_squares: 0.0,
                unit: vec![0.0; delta.len()],
            });
            mine.n += class.n;
            mine.raw_squares += squares;
            for (s, v) in mine.raw.iter_mut().zip(raw) {
                *s += v;
            }
            for (s, v) in mine.unit.iter_mut().zip(class.unit) {
                *s += v;
            }
        }
        for (a, b) in self.raw_sum.iter_mut().zip(&other.raw_sum) {
            *a += b;
        }
        for (a, b) in self.raw_moment.iter_mut().zip(&other.raw_moment) {
            *a += b;
        }
        for (a, b) in self.unit_sum.iter_mut().zip(&other.unit_sum) {
            *a += b;
        }
        for (a, b) in self.unit_moment.iter_mut().zip(&other.unit_moment) {
            *a += b;
        }
        self.n += other.n;
        Ok(())
    }

    /// The state as bytes: a magic tag, the version, then JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.extend_from_slice(serde_json::to_string(self).unwrap_or_default().as_bytes());
        out
    }

    /// A state from [`State::to_bytes`]; other data or another version is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<State> {
        let bad = |what: String| GeometryError::InvalidState { what };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(bad("not an embgeom state".into()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != STATE_VERSION {
            return Err(bad(format!(
                "an embgeom state of version {version}; this embgeom reads version {STATE_VERSION}"
            )));
        }
        let state: State = serde_json::from_slice(&bytes[12..])
            .map_err(|e| bad(format!("a corrupt embgeom state: {e}")))?;
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

    /// The metrics of the summarised rows.
    pub fn finalize(&self) -> Result<StateMetrics> {
        let d = self.dim;
        if self.n < 2 {
            return Err(GeometryError::TooFewRows {
                metric: "a state",
                needed: 2,
                got: self.n as usize,
            });
        }
        let n = self.n as f64;
        // Spectrum of the normalised rows.
        let unit_cov = centred(&self.unit_moment, &self.unit_sum, n) / (n - 1.0);
        let eigenvalues = symmetric_eigenvalues(&unit_cov, 1.0)?;
        let normalized_std = unit_cov
            .diag()
            .iter()
            .map(|v| v.max(0.0).sqrt())
            .sum::<f64>()
            / d as f64;
        // Singular values of the centred and of the raw rows.
        let raw_scatter = centred(&self.raw_moment, &self.raw_sum, n);
        let scale = raw_scatter.diag().sum().max(f64::MIN_POSITIVE) / n;
        let centred_singular: Vec<f64> = symmetric_eigenvalues(&raw_scatter, scale)?
            .iter()
            .map(|v| v.sqrt())
            .collect();
        let mut gram = matrix(&self.raw_moment, d);
        for i in 0..d {
            for j in 0..d {
                gram[[i, j]] += self.shift[i] * self.raw_sum[j]
                    + self.raw_sum[i] * self.shift[j]
                    + n * self.shift[i] * self.shift[j];
            }
        }
        let raw_scale = gram.diag().sum().max(f64::MIN_POSITIVE) / n;
        let raw_singular: Vec<f64> = symmetric_eigenvalues(&gram, raw_scale)?
            .iter()
            .map(|v| v.sqrt())
            .collect();
        let mut out = StateMetrics {
            n: self.n,
            dim: d,
            num_classes: None,
            alpha_req: alpha_req(&eigenvalues),
            eigenvalues,
            effective_rank: effective_rank(&centred_singular),
            rankme: rankme(&raw_singular),
            normalized_std,
            class_alignment: None,
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
        if !self.classes.is_empty() {
            self.class_metrics(&mut out)?;
        }
        Ok(out)
    }

    fn class_metrics(&self, out: &mut StateMetrics) -> Result<()> {
        let d = self.dim;
        let names: Vec<String> = self.classes.keys().cloned().collect();
        let c = names.len();
        out.num_classes = Some(c);
        let classes: Vec<&ClassSums> = self.classes.values().collect();
        // Label-positive alignment (alpha = 2): sum over pairs i < j in c of ||u_i - u_j||^2
        // = n_c sum ||u||^2 - ||S_c||^2 = n_c^2 - ||S_c||^2 for unit rows.
        let (mut total, mut pairs) = (0.0, 0.0);
        for class in &classes {
            let nc = class.n as f64;
            let norm_sq: f64 = class.unit.iter().map(|v| v * v).sum();
            total += nc * nc - norm_sq;
            pairs += nc * (nc - 1.0) / 2.0;
        }
        out.class_alignment = (pairs > 0.0).then(|| total / pairs);
        // Class statistics of the raw rows.
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
        let stats = ClassStats {
            counts: classes.iter().map(|c| c.n as usize).collect(),
            means,
            global_mean,
            within_covariance: within,
            within_variance: variances,
            effective_ranks: vec![None; c],
        };
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
            let mut unit_means = Array2::<f64>::zeros((c, d));
            for (k, class) in classes.iter().enumerate() {
                for j in 0..d {
                    unit_means[[k, j]] = class.unit[j] / class.n as f64;
                }
            }
            match simplex_angles(unit_means.view()) {
                Ok(angles) => out.simplex_angles = Some(angles),
                Err(e) => out.warnings.push(format!("simplex angles: {e}")),
            }
        }
        Ok(())
    }
}
