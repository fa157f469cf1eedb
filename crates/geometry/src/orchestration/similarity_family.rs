//! The similarity family between representations of the same rows (layers, checkpoints,
//! models, modalities): its catalogue (for every measure its key, name, formula with its
//! parameters, paper, direction, ideal and whether it merges across shards) and the driver
//! that measures every pair of several inputs, each input's own summaries computed once.
//!
//! `compare`'s matrices, `track`'s columns (each measure against the previous and the last
//! checkpoint) and Python's readings are listed from [`SIMILARITY_CATALOGUE`].
//!
//! ```
//! use embgeom_geometry::similarity_family::{similarity_measure, SIMILARITY_CATALOGUE};
//!
//! let cka = similarity_measure("cka").expect("linear CKA is catalogued");
//! assert_eq!(cka.ideal, 1.0);
//! assert!(cka.merges);
//! assert!(SIMILARITY_CATALOGUE.iter().all(|m| m.paper.link.starts_with("https://")));
//! ```

use crate::error::{GeometryError, Result};
use crate::kernels::rows::check_finite;
use crate::kernels::timings::{Timings, Work};
use crate::metrics::neighbourhood_similarity::{
    sampled_similarity, SampleOptions, SampledRepresentation,
};
use crate::metrics::real::Real;
use crate::metrics::similarity::{CovarianceEigen, Similarity};
use crate::metrics::similarity_state::{cross_moments, OwnMoments, SimilarityState};
use crate::orchestration::analysis::search_work;
use crate::orchestration::catalogue::{Direction, Paper, KORNBLITH};
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Ding, Denain & Steinhardt, NeurIPS 2021: the Procrustes distance and the CCA family's
/// conventions in `sim_metric`.
pub const DING: Paper = Paper {
    short: "Ding et al. 2021",
    citation: "Frances Ding, Jean-Stanislas Denain and Jacob Steinhardt. Grounding Representation Similarity with Statistical Testing. NeurIPS 2021.",
    link: "https://arxiv.org/abs/2108.01661",
};
/// Williams, Kunz, Kornblith & Linderman, NeurIPS 2021: the angular Procrustes metric.
pub const WILLIAMS: Paper = Paper {
    short: "Williams et al. 2021",
    citation: "Alex H. Williams, Erin Kunz, Simon Kornblith and Scott W. Linderman. Generalized Shape Metrics on Neural Representations. NeurIPS 2021.",
    link: "https://arxiv.org/abs/2110.14739",
};
/// Raghu, Gilmer, Yosinski & Sohl-Dickstein, NeurIPS 2017: SVCCA.
pub const RAGHU: Paper = Paper {
    short: "Raghu et al. 2017",
    citation: "Maithra Raghu, Justin Gilmer, Jason Yosinski and Jascha Sohl-Dickstein. SVCCA: Singular Vector Canonical Correlation Analysis for Deep Learning Dynamics and Interpretability. NeurIPS 2017.",
    link: "https://arxiv.org/abs/1706.05806",
};
/// Morcos, Raghu & Bengio, NeurIPS 2018: PWCCA.
pub const MORCOS: Paper = Paper {
    short: "Morcos et al. 2018",
    citation: "Ari S. Morcos, Maithra Raghu and Samy Bengio. Insights on Representational Similarity in Neural Networks with Canonical Correlation. NeurIPS 2018.",
    link: "https://arxiv.org/abs/1806.05759",
};
/// Huh, Cheung, Wang & Isola, ICML 2024: mutual kNN alignment and CKNNA.
pub const HUH: Paper = Paper {
    short: "Huh et al. 2024",
    citation: "Minyoung Huh, Brian Cheung, Tongzhou Wang and Phillip Isola. The Platonic Representation Hypothesis. ICML 2024.",
    link: "https://arxiv.org/abs/2405.07987",
};

/// One catalogued similarity measure.
pub struct SimilarityMeasure {
    /// The key: compare's matrix, track's columns `KEY_previous` and `KEY_last`.
    pub key: &'static str,
    /// Name for people.
    pub name: &'static str,
    /// The formula, with its parameters.
    pub formula: &'static str,
    /// The paper it follows.
    pub paper: &'static Paper,
    /// Which way it improves (toward "the same representation").
    pub direction: Direction,
    /// The value of two identical representations.
    pub ideal: f64,
    /// Whether it merges across shards (from the moments of [`SimilarityState`]).
    pub merges: bool,
    /// Whether it is measured on the seeded row sample.
    pub sampled: bool,
    value: fn(&Similarity) -> Option<f64>,
}

impl SimilarityMeasure {
    /// The measure's value, `None` where it was not computed or is undefined.
    pub fn value(&self, s: &Similarity) -> Option<f64> {
        (self.value)(s)
    }
}

/// The catalogued measure with key `key`.
pub fn similarity_measure(key: &str) -> Option<&'static SimilarityMeasure> {
    SIMILARITY_CATALOGUE.iter().find(|m| m.key == key)
}

/// Every similarity measure, in the order the pages list them.
pub const SIMILARITY_CATALOGUE: &[SimilarityMeasure] = &[
    SimilarityMeasure {
        key: "cka",
        name: "linear CKA",
        formula: "||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F) of the column-centred rows",
        paper: &KORNBLITH,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: true,
        sampled: false,
        value: |s| Some(s.linear_cka),
    },
    SimilarityMeasure {
        key: "debiased_cka",
        name: "debiased CKA",
        formula: "linear CKA with Song et al.'s unbiased HSIC in feature space (Kornblith et al.'s debiased form); may be negative",
        paper: &KORNBLITH,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: true,
        sampled: false,
        value: |s| s.debiased_cka,
    },
    SimilarityMeasure {
        key: "procrustes",
        name: "Procrustes distance",
        formula: "2 - 2 ||X^T Y||_* of the centred rows scaled to unit Frobenius norm (the squared distance after the best rotation)",
        paper: &DING,
        direction: Direction::Lower,
        ideal: 0.0,
        merges: true,
        sampled: false,
        value: |s| Some(s.procrustes),
    },
    SimilarityMeasure {
        key: "procrustes_angular",
        name: "angular Procrustes distance",
        formula: "arccos ||X^T Y||_* of the same scaled rows, radians (a metric)",
        paper: &WILLIAMS,
        direction: Direction::Lower,
        ideal: 0.0,
        merges: true,
        sampled: false,
        value: |s| Some(s.procrustes_angular),
    },
    SimilarityMeasure {
        key: "mean_cca",
        name: "mean CCA",
        formula: "sum rho / min(D1, D2), rho the singular values of S_xx^-1/2 S_xy S_yy^-1/2 (eigenvalues below 1e-12 of the largest dropped); needs N > max(D1, D2)",
        paper: &DING,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: true,
        sampled: false,
        value: |s| s.mean_cca,
    },
    SimilarityMeasure {
        key: "svcca",
        name: "SVCCA",
        formula: "mean CCA of the leading principal directions that keep 99% of each representation's variance",
        paper: &RAGHU,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: true,
        sampled: false,
        value: |s| s.svcca,
    },
    SimilarityMeasure {
        key: "pwcca",
        name: "PWCCA",
        formula: "sum_j w_j rho_j, w_j = sum_k |(U^T S_xx^-1/2 S_xx)_jk| normalised (Ding et al.'s projection weights)",
        paper: &MORCOS,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: true,
        sampled: false,
        value: |s| s.pwcca,
    },
    SimilarityMeasure {
        key: "rbf_cka",
        name: "RBF CKA",
        formula: "CKA of the kernels exp(-||x_i - x_j||^2 / (2 t^2 median)), t = 1, on a seeded sample of at most 2,000 rows (option)",
        paper: &KORNBLITH,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: false,
        sampled: true,
        value: |s| s.rbf_cka,
    },
    SimilarityMeasure {
        key: "mutual_knn",
        name: "mutual kNN alignment",
        formula: "mean_i |N_A(i) ∩ N_B(i)| / k, k = 10 cosine neighbours among a seeded sample of at most 10,000 rows (options)",
        paper: &HUH,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: false,
        sampled: true,
        value: |s| s.mutual_knn,
    },
    SimilarityMeasure {
        key: "cknna",
        name: "CKNNA",
        formula: "unbiased HSIC of the cosine Gram matrices masked to shared k-neighbours, normalised by each one's own (platonic-rep's cknna without its +1e-6)",
        paper: &HUH,
        direction: Direction::Higher,
        ideal: 1.0,
        merges: false,
        sampled: true,
        value: |s| s.cknna,
    },
];

/// The family between every pair of several inputs: entry `[i][j]` holds inputs i and j's
/// measures, symmetric, `None` on the diagonal.
pub type SimilarityMatrix = Vec<Vec<Option<Similarity>>>;

/// The family between every pair of `inputs` (all with the same rows): a symmetric matrix,
/// `None` on the diagonal. Each input's own moments and sampled summaries are computed once;
/// each pair adds its cross moments (stages `similarity: own moments`, `similarity: RBF
/// kernel`, `similarity: neighbours`, `similarity: covariance eigenvectors`, `similarity: cross moments`, `similarity: finalise`).
pub fn similarity_family<F: Real>(
    inputs: &[ArrayView2<F>],
    options: &SampleOptions,
    timings: &Timings,
) -> Result<SimilarityMatrix> {
    options.check()?;
    let k = inputs.len();
    let n = inputs.first().map_or(0, |x| x.nrows());
    for (i, x) in inputs.iter().enumerate() {
        if x.nrows() != n {
            return Err(GeometryError::ShapeMismatch {
                what: format!(
                    "the similarity family compares the same rows: input {} has {} rows, input 1 has {n}",
                    i + 1,
                    x.nrows()
                ),
            });
        }
        check_finite(*x).map_err(|e| GeometryError::Source {
            what: format!("input {}: {e}", i + 1),
        })?;
    }
    if n < 2 {
        return Err(GeometryError::TooFewRows {
            metric: "the similarity family",
            needed: 2,
            got: n,
        });
    }
    let mut own = Vec::with_capacity(k);
    let mut sampled = Vec::with_capacity(k);
    for x in inputs {
        let (n, d) = x.dim();
        let flops = |a: usize, b: usize| 2.0 * a as f64 * b as f64 * d as f64;
        own.push(timings.time(
            "similarity: own moments",
            Work::DoubleFlops(flops(n, d)),
            || OwnMoments::of(*x),
        ));
        // The RBF kernel's Gram matrix (f64) and the neighbour search among the sampled rows
        // (in the rows' precision: the GEMM screen's flops).
        // Each sample holds min(N, its rows) rows (none when its rows are 0).
        let (m_rbf, m_knn) = (n.min(options.rbf_rows), n.min(options.neighbour_rows));
        let kernel = timings.time(
            "similarity: RBF kernel",
            Work::DoubleFlops(flops(m_rbf, m_rbf)),
            || SampledRepresentation::kernel_of(*x, options),
        )?;
        let knn_work = search_work::<F>(m_knn, m_knn, d);
        let neighbours = timings.time("similarity: neighbours", knn_work, || {
            SampledRepresentation::neighbours_of(*x, options)
        })?;
        sampled.push(kernel.joined(neighbours));
    }
    // Each input's covariance decomposition for the CCA family (when it applies), once.
    let eigen = timings.time(
        "similarity: covariance eigenvectors",
        Work::Unmodelled,
        || {
            own.par_iter()
                .map(|o| match o.rows() as usize > o.dim() {
                    true => CovarianceEigen::of(&o.centred_moment()).map(Some),
                    false => Ok(None),
                })
                .collect::<Result<Vec<_>>>()
        },
    )?;
    let pairs: Vec<(usize, usize)> = (0..k)
        .flat_map(|i| (i + 1..k).map(move |j| (i, j)))
        .collect();
    // A batch of pairs at a time, one per thread: the cross moments (each over every thread),
    // then the batch's decompositions (small and independent: one pair per thread). Memory:
    // a cross moment (D1 x D2) per thread.
    let mut finalised = Vec::with_capacity(pairs.len());
    for batch in pairs.chunks(rayon::current_num_threads().max(1)) {
        let crosses: Vec<_> = batch
            .iter()
            .map(|&(i, j)| {
                let (n, di, dj) = (inputs[i].nrows(), inputs[i].ncols(), inputs[j].ncols());
                timings.time(
                    "similarity: cross moments",
                    Work::DoubleFlops(2.0 * (n * di) as f64 * dj as f64),
                    || cross_moments(inputs[i], inputs[j], &own[i], &own[j]),
                )
            })
            .collect();
        finalised.extend(timings.time("similarity: finalise", Work::Unmodelled, || {
            batch
                .par_iter()
                .zip(crosses)
                .map(|(&(i, j), xy)| {
                    let state = SimilarityState::from_parts(&own[i], &own[j], xy)?;
                    let known = match (&eigen[i], &eigen[j]) {
                        (Some(a), Some(b)) => Some((a, b)),
                        _ => None,
                    };
                    let mut s = Similarity::from_moments_with(&state.centred()?, known)?;
                    let extra = sampled_similarity(&sampled[i], &sampled[j]);
                    s.rbf_cka = extra.rbf_cka;
                    s.mutual_knn = extra.mutual_knn;
                    s.cknna = extra.cknna;
                    s.notes.extend(extra.notes);
                    Ok(s)
                })
                .collect::<Result<Vec<Similarity>>>()
        })?);
    }
    let mut out = vec![vec![None; k]; k];
    for (&(i, j), s) in pairs.iter().zip(finalised) {
        out[j][i] = Some(s.clone());
        out[i][j] = Some(s);
    }
    Ok(out)
}
