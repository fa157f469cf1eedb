//! The metric catalogue: for every scalar metric its key, display name, definition (with the
//! parameters of the analysis filled in), paper, direction and ideal value, and how to read
//! its value from an [`Analysis`].
//!
//! Everything that lists metrics is generated from [`CATALOGUE`]: the `metrics` object of the
//! `embgeom.analysis/1` JSON document, the terminal table, the report's HTML tables, the
//! report's `metrics.csv` and the columns of `track`'s time series.
//!
//! ```
//! use embgeom_geometry::catalogue::{metric, CATALOGUE};
//!
//! let nc1 = metric("nc1").expect("NC1 is catalogued");
//! assert_eq!(nc1.name, "NC1");
//! assert!(nc1.paper.link.starts_with("https://"));
//! assert!(CATALOGUE.iter().all(|m| !m.key.is_empty()));
//! ```

use crate::error::{GeometryError, Result};
use crate::metrics::hard_negatives::{HARD_NEGATIVE_BINS, HARD_NEGATIVE_K, QUANTILE_LEVELS};
use crate::metrics::hubness::{HUBNESS_K, HUB_SIZE};
use crate::metrics::intrinsic::{MLE_NEIGHBOURS, TWONN_DISCARD};
use crate::metrics::lidar::{
    LIDAR_DELTA, LIDAR_EPSILON, REPTRIX_DELTA, REPTRIX_EPSILON, REPTRIX_MAX_EIGENVALUES,
};
use crate::metrics::spectral_loss::SPECTRAL_MU;
use crate::metrics::spectrum::{ALPHA_REQ_RANKS, RANKME_EPSILON};
use crate::orchestration::analysis::Analysis;
use serde_json::{json, Map, Value};

/// A paper a metric comes from.
#[derive(Debug, PartialEq, Eq)]
pub struct Paper {
    /// Short form, e.g. `Wang & Isola 2020`.
    pub short: &'static str,
    /// Authors, title, venue and year.
    pub citation: &'static str,
    /// arXiv, DOI or proceedings link.
    pub link: &'static str,
}

/// Wang & Isola, ICML 2020: alignment and uniformity.
pub const WANG_ISOLA: Paper = Paper {
    short: "Wang & Isola 2020",
    citation: "Tongzhou Wang and Phillip Isola. Understanding Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere. ICML 2020.",
    link: "https://arxiv.org/abs/2005.10242",
};
/// Papyan, Han & Donoho, PNAS 2020: neural collapse.
pub const PAPYAN: Paper = Paper {
    short: "Papyan et al. 2020",
    citation: "Vardan Papyan, X. Y. Han and David L. Donoho. Prevalence of neural collapse during the terminal phase of deep learning training. PNAS 117(40), 2020.",
    link: "https://doi.org/10.1073/pnas.2015509117",
};
/// Galanti, György & Hutter, ICLR 2022: the class-distance normalised variance.
pub const GALANTI: Paper = Paper {
    short: "Galanti et al. 2022",
    citation: "Tomer Galanti, András György and Marcus Hutter. On the Role of Neural Collapse in Transfer Learning. ICLR 2022.",
    link: "https://arxiv.org/abs/2112.15121",
};
/// Graf, Hofer, Niethammer & Kwitt, ICML 2021: class collapse onto a regular simplex.
pub const GRAF: Paper = Paper {
    short: "Graf et al. 2021",
    citation: "Florian Graf, Christoph D. Hofer, Marc Niethammer and Roland Kwitt. Dissecting Supervised Contrastive Learning. ICML 2021.",
    link: "https://arxiv.org/abs/2102.08817",
};
/// Roy & Vetterli, EUSIPCO 2007: the effective rank.
pub const ROY_VETTERLI: Paper = Paper {
    short: "Roy & Vetterli 2007",
    citation: "Olivier Roy and Martin Vetterli. The effective rank: A measure of effective dimensionality. 15th European Signal Processing Conference (EUSIPCO), 2007.",
    link: "https://ieeexplore.ieee.org/document/7098875",
};
/// Garrido, Balestriero, Najman & LeCun, ICML 2023: RankMe.
pub const GARRIDO: Paper = Paper {
    short: "Garrido et al. 2023",
    citation: "Quentin Garrido, Randall Balestriero, Laurent Najman and Yann LeCun. RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised Representations by Their Rank. ICML 2023.",
    link: "https://arxiv.org/abs/2210.02885",
};
/// Agrawal, Mondal, Ghosh & Richards, NeurIPS 2022: alpha-ReQ.
pub const AGRAWAL: Paper = Paper {
    short: "Agrawal et al. 2022",
    citation: "Kumar Krishna Agrawal, Arnab Kumar Mondal, Arna Ghosh and Blake Richards. alpha-ReQ: Assessing Representation Quality in Self-Supervised Learning by measuring eigenspectrum decay. NeurIPS 2022.",
    link: "https://papers.neurips.cc/paper_files/paper/2022/hash/70596d70542c51c8d9b4e423f4bf2736-Abstract-Conference.html",
};
/// Chen & He, CVPR 2021: the std of normalised outputs as a collapse monitor.
pub const CHEN_HE: Paper = Paper {
    short: "Chen & He 2021",
    citation:
        "Xinlei Chen and Kaiming He. Exploring Simple Siamese Representation Learning. CVPR 2021.",
    link: "https://arxiv.org/abs/2011.10566",
};
/// Wu, Xiong, Yu & Lin, CVPR 2018: the weighted kNN monitor.
pub const WU: Paper = Paper {
    short: "Wu et al. 2018",
    citation: "Zhirong Wu, Yuanjun Xiong, Stella X. Yu and Dahua Lin. Unsupervised Feature Learning via Non-Parametric Instance Discrimination. CVPR 2018.",
    link: "https://arxiv.org/abs/1805.01978",
};
/// Chen, Fu, Narayan, Zhang, Song, Fatahalian & Ré, ICML 2022: subclasses under class collapse.
pub const CHEN_2022: Paper = Paper {
    short: "Chen et al. 2022",
    citation: "Mayee F. Chen, Daniel Y. Fu, Avanika Narayan, Michael Zhang, Zhao Song, Kayvon Fatahalian and Christopher Ré. Perfectly Balanced: Improving Transfer and Robustness of Supervised Contrastive Learning. ICML 2022.",
    link: "https://arxiv.org/abs/2204.07596",
};
/// Jing, Vincent, LeCun & Tian, ICLR 2022: dimensional collapse and the spectrum.
pub const JING: Paper = Paper {
    short: "Jing et al. 2022",
    citation: "Li Jing, Pascal Vincent, Yann LeCun and Yuandong Tian. Understanding Dimensional Collapse in Contrastive Self-supervised Learning. ICLR 2022.",
    link: "https://arxiv.org/abs/2110.09348",
};
/// Kornblith, Norouzi, Lee & Hinton, ICML 2019: linear CKA.
pub const KORNBLITH: Paper = Paper {
    short: "Kornblith et al. 2019",
    citation: "Simon Kornblith, Mohammad Norouzi, Honglak Lee and Geoffrey Hinton. Similarity of Neural Network Representations Revisited. ICML 2019.",
    link: "https://arxiv.org/abs/1905.00414",
};

/// Ethayarajh, EMNLP 2019: anisotropy as the mean cosine of random pairs.
pub const ETHAYARAJH: Paper = Paper {
    short: "Ethayarajh 2019",
    citation: "Kawin Ethayarajh. How Contextual are Contextualized Word Representations? Comparing the Geometry of BERT, ELMo, and GPT-2 Embeddings. EMNLP 2019.",
    link: "https://arxiv.org/abs/1909.00512",
};
/// Rudman, Gillman, Rayne & Eickhoff, ACL Findings 2022: IsoScore.
pub const RUDMAN: Paper = Paper {
    short: "Rudman et al. 2022",
    citation: "William Rudman, Nate Gillman, Taylor Rayne and Carsten Eickhoff. IsoScore: Measuring the Uniformity of Embedding Space Utilization. Findings of ACL 2022.",
    link: "https://arxiv.org/abs/2108.07344",
};
/// Rudman & Eickhoff, 2024: IsoScore* (I-STAR), IsoScore of a shrunk covariance.
pub const RUDMAN_EICKHOFF: Paper = Paper {
    short: "Rudman & Eickhoff 2024",
    citation: "William Rudman and Carsten Eickhoff. Stable Anisotropic Regularization. ICLR 2024.",
    link: "https://arxiv.org/abs/2305.19358",
};
/// Mu & Viswanath, 2018: the partition-function isotropy of word vectors.
pub const MU_VISWANATH: Paper = Paper {
    short: "Mu & Viswanath 2018",
    citation: "Jiaqi Mu and Pramod Viswanath. All-but-the-Top: Simple and Effective Postprocessing for Word Representations. ICLR 2018.",
    link: "https://arxiv.org/abs/1702.01417",
};
/// Gao, Trautmann, Yu, Santhanam, Ryu, Shenoy & Ganguli, 2017: the participation ratio as a
/// dimension.
pub const GAO: Paper = Paper {
    short: "Gao et al. 2017",
    citation: "Peiran Gao, Eric Trautmann, Byron Yu, Gopal Santhanam, Stephen Ryu, Krishna Shenoy and Surya Ganguli. A theory of multineuronal dimensionality, dynamics and measurement. bioRxiv 214262, 2017.",
    link: "https://doi.org/10.1101/214262",
};
/// He & Ozay, ICML 2022: NESum.
pub const HE_OZAY: Paper = Paper {
    short: "He & Ozay 2022",
    citation: "Bobby He and Mete Ozay. Exploring the Gap between Collapsed and Whitened Features in Self-Supervised Learning. ICML 2022.",
    link: "https://arxiv.org/abs/2203.00601",
};
/// Tsitsulin, Munkhoeva & Perozzi, 2023: unsupervised embedding quality metrics.
pub const TSITSULIN: Paper = Paper {
    short: "Tsitsulin et al. 2023",
    citation: "Anton Tsitsulin, Marina Munkhoeva and Bryan Perozzi. Unsupervised Embedding Quality Evaluation. ICML 2023 Workshop on Topology, Algebra and Geometry in Machine Learning.",
    link: "https://arxiv.org/abs/2305.16562",
};

/// Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 2017: TwoNN.
pub const FACCO: Paper = Paper {
    short: "Facco et al. 2017",
    citation: "Elena Facco, Maria d'Errico, Alex Rodriguez and Alessandro Laio. Estimating the intrinsic dimension of datasets by a minimal neighborhood information. Scientific Reports 7, 12140, 2017.",
    link: "https://doi.org/10.1038/s41598-017-11873-y",
};
/// Levina & Bickel, NeurIPS 2004: the maximum-likelihood intrinsic dimension.
pub const LEVINA_BICKEL: Paper = Paper {
    short: "Levina & Bickel 2004",
    citation: "Elizaveta Levina and Peter J. Bickel. Maximum Likelihood Estimation of Intrinsic Dimension. NeurIPS 2004.",
    link: "https://papers.nips.cc/paper/2577-maximum-likelihood-estimation-of-intrinsic-dimension",
};

/// HaoChen, Wei, Gaidon & Ma, NeurIPS 2021: the spectral contrastive loss.
pub const HAOCHEN: Paper = Paper {
    short: "HaoChen et al. 2021",
    citation: "Jeff Z. HaoChen, Colin Wei, Adrien Gaidon and Tengyu Ma. Provable Guarantees for Self-Supervised Deep Learning with Spectral Contrastive Loss. NeurIPS 2021.",
    link: "https://arxiv.org/abs/2106.04156",
};
/// Wang & Liu, CVPR 2021: the uniformity-tolerance dilemma.
pub const WANG_LIU: Paper = Paper {
    short: "Wang & Liu 2021",
    citation:
        "Feng Wang and Huaping Liu. Understanding the Behaviour of Contrastive Loss. CVPR 2021.",
    link: "https://arxiv.org/abs/2012.09740",
};
/// Radovanović, Nanopoulos & Ivanović, JMLR 2010: hubs in high-dimensional data.
pub const RADOVANOVIC: Paper = Paper {
    short: "Radovanovic et al. 2010",
    citation: "Miloš Radovanović, Alexandros Nanopoulos and Mirjana Ivanović. Hubs in Space: Popular Nearest Neighbors in High-Dimensional Data. JMLR 11, 2010.",
    link: "https://jmlr.org/papers/v11/radovanovic10a.html",
};
/// Feldbauer, Leodolter, Plant & Flexer, ICBK 2018: the Robin Hood index of hubness.
pub const FELDBAUER: Paper = Paper {
    short: "Feldbauer et al. 2018",
    citation: "Roman Feldbauer, Maximilian Leodolter, Claudia Plant and Arthur Flexer. Fast Approximate Hubness Reduction for Large High-Dimensional Data. IEEE ICBK 2018.",
    link: "https://doi.org/10.1109/ICBK.2018.00055",
};

/// Thilak, Huang, Saremi, Dinh, Goh, Nakkiran, Susskind & Littwin, ICLR 2024:
/// LiDAR.
pub const THILAK: Paper = Paper {
    short: "Thilak et al. 2024",
    citation: "Vimal Thilak, Chen Huang, Omid Saremi, Laurent Dinh, Hanlin Goh, Preetum Nakkiran, Joshua M. Susskind and Etai Littwin. LiDAR: Sensing Linear Probing Performance in Joint Embedding SSL Architectures. ICLR 2024.",
    link: "https://arxiv.org/abs/2312.04000",
};
/// Robinson, Chuang, Sra & Jegelka, ICLR 2021: hard negatives.
pub const ROBINSON: Paper = Paper {
    short: "Robinson et al. 2021",
    citation: "Joshua Robinson, Ching-Yao Chuang, Suvrit Sra and Stefanie Jegelka. Contrastive Learning with Hard Negative Samples. ICLR 2021.",
    link: "https://arxiv.org/abs/2010.04592",
};

/// The anchors of the hard-negative profile (0 when absent).
fn hard_negative_anchors(a: &Analysis) -> usize {
    a.hard_negatives.as_ref().map_or(0, |h| h.anchors)
}

/// The groups metrics are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Alignment and uniformity (Wang & Isola).
    AlignmentUniformity,
    /// Class collapse (neural collapse, CDNV, nearest-mean and kNN accuracy).
    ClassCollapse,
    /// Closeness of the class means to a regular simplex.
    Simplex,
    /// Dimensional collapse.
    Spectrum,
    /// How evenly the rows fill their space (anisotropy, IsoScore and kin).
    Isotropy,
    /// How many dimensions the rows' neighbourhoods span.
    IntrinsicDimension,
    /// How unevenly the rows are one another's nearest neighbours.
    Hubness,
    /// The anchors' hardest negatives (Robinson et al.).
    HardNegatives,
    /// Fine labels inside the classes.
    Subclasses,
}

impl Group {
    /// Every group in display order.
    pub const ALL: [Group; 9] = [
        Group::AlignmentUniformity,
        Group::ClassCollapse,
        Group::Simplex,
        Group::Spectrum,
        Group::Isotropy,
        Group::IntrinsicDimension,
        Group::Hubness,
        Group::HardNegatives,
        Group::Subclasses,
    ];

    /// Heading of the group.
    pub fn title(self) -> &'static str {
        match self {
            Group::AlignmentUniformity => "Alignment and uniformity",
            Group::ClassCollapse => "Class collapse",
            Group::Simplex => "Simplex",
            Group::Spectrum => "Spectrum",
            Group::Isotropy => "Isotropy",
            Group::IntrinsicDimension => "Intrinsic dimension",
            Group::Hubness => "Hubness",
            Group::HardNegatives => "Hard negatives",
            Group::Subclasses => "Subclasses",
        }
    }
}

/// Which way a metric improves, in the sense its paper gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Lower values are closer to the ideal.
    Lower,
    /// Higher values are closer to the ideal.
    Higher,
    /// A reading with no better direction in general (e.g. how steep a spectrum decays).
    Neither,
}

impl Direction {
    /// `"lower"`, `"higher"` or `"neither"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Lower => "lower",
            Direction::Higher => "higher",
            Direction::Neither => "neither",
        }
    }
}

/// Where a metric's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A metric of its own: a key of the JSON `metrics` object with a `value`, a row of
    /// `metrics.csv` and a column of `track`.
    Metric,
    /// A secondary reading shown in the tables; in the JSON it is a field of the metric named
    /// before the dot of its key (`simplex_angles.max_deviation`).
    Detail,
}

/// What an analysis must include for a metric to be shown (with `-` when its value is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requires {
    /// Always shown.
    Nothing,
    /// Row-matched views.
    Views,
    /// Class labels.
    Labels,
    /// Class labels and a classifier.
    Classifier,
    /// Class labels and subclass labels.
    Subclasses,
}

impl Requires {
    /// Whether `analysis` had what the metric needs.
    pub fn met(self, a: &Analysis) -> bool {
        match self {
            Requires::Nothing => true,
            Requires::Views => a.alignment.is_some(),
            Requires::Labels => a.collapse.is_some(),
            Requires::Classifier => a.collapse.as_ref().is_some_and(|c| {
                c.nc2_equinorm_classifier.is_some() || c.nc3.is_some() || c.nc4.is_some()
            }),
            Requires::Subclasses => a.subclasses.is_some(),
        }
    }
}

/// One catalogued metric.
pub struct Metric {
    /// JSON key, CSV name and `track` column (`parent.field` for a [`Level::Detail`]).
    pub key: &'static str,
    /// Name for people.
    pub name: &'static str,
    /// Where it is shown.
    pub group: Group,
    /// Metric or detail.
    pub level: Level,
    /// What the analysis must include for it to be shown.
    pub requires: Requires,
    /// The paper it follows.
    pub paper: &'static Paper,
    /// Which way it improves.
    pub direction: Direction,
    /// How to read the value, with its reference points (e.g. "0 = collapsed").
    pub reading: &'static str,
    definition: fn(&Analysis) -> String,
    value: fn(&Analysis) -> Option<f64>,
    ideal: fn(&Analysis) -> Option<f64>,
    json: Fields,
}

/// How a [`Level::Metric`]'s JSON object is made.
enum Fields {
    /// `{"value": value(a), ...extra(a)}` (`null` without a value).
    Extra(fn(&Analysis) -> Value),
    /// The serialised result (it has its own `value`), `null` when absent.
    Typed(fn(&Analysis) -> Value),
    /// A detail: no object of its own.
    None,
}

impl Metric {
    /// The definition, with the parameters the analysis used (alpha, t, pair counts, k,
    /// temperature, rank windows) filled in.
    pub fn definition(&self, a: &Analysis) -> String {
        (self.definition)(a)
    }

    /// The value, `None` when the metric does not apply or is undefined for the input.
    pub fn value(&self, a: &Analysis) -> Option<f64> {
        (self.value)(a)
    }

    /// The ideal value where one exists (e.g. 0 for NC1, D for the effective rank, the
    /// regular-simplex floor `-2tN/(N-1)` for uniformity).
    pub fn ideal(&self, a: &Analysis) -> Option<f64> {
        (self.ideal)(a)
    }

    /// Whether the metric is shown for `a` (its requirement is met).
    pub fn shown(&self, a: &Analysis) -> bool {
        self.requires.met(a)
    }

    /// The JSON object of a [`Level::Metric`] (`{"value": ..., parameters...}`), `null` when
    /// absent; `null` for a detail.
    pub fn json(&self, a: &Analysis) -> Value {
        match self.json {
            Fields::Extra(extra) => with_value(self.value(a), extra(a)),
            Fields::Typed(typed) => typed(a),
            Fields::None => Value::Null,
        }
    }
}

/// The catalogued metric with JSON key `key`.
pub fn metric(key: &str) -> Option<&'static Metric> {
    CATALOGUE.iter().find(|m| m.key == key)
}

/// The [`Level::Metric`] entries, in catalogue order.
pub fn metrics() -> impl Iterator<Item = &'static Metric> {
    CATALOGUE.iter().filter(|m| m.level == Level::Metric)
}

/// The `(key, value)` of every [`Level::Metric`] that has a value, in catalogue order: a row
/// of `metrics.csv`, a row of `track`'s table.
pub fn scalar_values(a: &Analysis) -> Vec<(&'static str, f64)> {
    metrics()
        .filter_map(|m| m.value(a).map(|v| (m.key, v)))
        .collect()
}

/// The groups that have a metric to show for `a`, each with those metrics, in display order:
/// the sections of every table.
pub fn shown_groups(a: &Analysis) -> Vec<(Group, Vec<&'static Metric>)> {
    Group::ALL
        .into_iter()
        .map(|group| {
            let shown = CATALOGUE
                .iter()
                .filter(|m| m.group == group && m.shown(a))
                .collect::<Vec<_>>();
            (group, shown)
        })
        .filter(|(_, shown)| !shown.is_empty())
        .collect()
}

/// `{"value": v, ...extra}`, or `null` without a value.
fn with_value(value: Option<f64>, extra: Value) -> Value {
    let Some(v) = value else {
        return Value::Null;
    };
    let mut object = Map::new();
    object.insert("value".into(), json!(v));
    if let Value::Object(fields) = extra {
        object.extend(fields);
    }
    Value::Object(object)
}

/// A serialisable result as JSON, with `extra` fields added; `null` when absent.
fn typed<T: serde::Serialize>(item: Option<&T>, extra: Value) -> Value {
    let Some(item) = item else {
        return Value::Null;
    };
    let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
    if let (Value::Object(object), Value::Object(fields)) = (&mut value, extra) {
        object.extend(fields);
    }
    value
}

fn no_ideal(_: &Analysis) -> Option<f64> {
    None
}

fn zero(_: &Analysis) -> Option<f64> {
    Some(0.0)
}

fn one(_: &Analysis) -> Option<f64> {
    Some(1.0)
}

fn dimension(a: &Analysis) -> Option<f64> {
    Some(a.dim as f64)
}

fn collapse_value(a: &Analysis, f: fn(&crate::Collapse) -> Option<f64>) -> Option<f64> {
    a.collapse.as_ref().and_then(f)
}

fn ranks_of(a: &Analysis) -> (usize, usize) {
    a.spectrum
        .alpha_req
        .as_ref()
        .map_or(ALPHA_REQ_RANKS, |fit| fit.ranks)
}

/// Every metric embgeom reports, in display order.
pub static CATALOGUE: &[Metric] = &[
    Metric {
        key: "alignment",
        name: "alignment",
        group: Group::AlignmentUniformity,
        level: Level::Metric,
        requires: Requires::Views,
        paper: &WANG_ISOLA,
        direction: Direction::Lower,
        reading: "0 = every pair of views identical",
        definition: |a| {
            match &a.alignment {
            Some(al) => format!(
                "mean ||x_i - y_i||^{} over {} row-matched positive pairs (with V views: every view pair v < w)",
                al.alpha, al.pairs
            ),
            None => "mean ||x_i - y_i||^alpha over row-matched views (needs views)".into(),
        }
        },
        value: |a| a.alignment.as_ref().map(|al| al.value),
        ideal: zero,
        json: Fields::Typed(|a| typed(a.alignment.as_ref(), Value::Null)),
    },
    Metric {
        key: "uniformity",
        name: "uniformity",
        group: Group::AlignmentUniformity,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &WANG_ISOLA,
        direction: Direction::Lower,
        reading: "0 = all rows equal; -2tN/(N-1) = a regular simplex (the floor)",
        definition: |a| {
            match &a.uniformity {
            Some(u) => format!(
                "log mean_{{i<j}} exp(-{} ||x_i - x_j||^2), {} over {} pairs{}; with views, the mean of the per-view values",
                u.t,
                u.method.as_str(),
                u.pairs,
                u.stderr.map_or_else(String::new, |se| format!(" (standard error {se:.2e})"))
            ),
            None => "log mean_{i<j} exp(-t ||x_i - x_j||^2)".into(),
        }
        },
        value: |a| a.uniformity.as_ref().map(|u| u.value),
        ideal: |a| {
            let u = a.uniformity.as_ref()?;
            let n = a.n as f64;
            (a.n >= 2).then(|| -2.0 * u.t * n / (n - 1.0))
        },
        json: Fields::Typed(|a| typed(a.uniformity.as_ref(), Value::Null)),
    },
    Metric {
        key: "class_alignment",
        name: "label-positive alignment",
        group: Group::AlignmentUniformity,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &WANG_ISOLA,
        direction: Direction::Lower,
        reading: "0 = every class collapsed to a point",
        definition: |a| match &a.class_alignment {
            Some(al) => format!(
                "mean ||x_i - x_j||^{} over {} same-class pairs i < j",
                al.alpha, al.pairs
            ),
            None => "mean ||x_i - x_j||^alpha over same-class pairs i < j (needs labels)".into(),
        },
        value: |a| a.class_alignment.as_ref().map(|al| al.value),
        ideal: zero,
        json: Fields::Typed(|a| typed(a.class_alignment.as_ref(), Value::Null)),
    },
    Metric {
        key: "spectral_contrastive_loss",
        name: "spectral contrastive loss",
        group: Group::AlignmentUniformity,
        level: Level::Metric,
        requires: Requires::Views,
        paper: &HAOCHEN,
        direction: Direction::Lower,
        reading: "lower = positives aligned and other pairs orthogonal; the mean over view pairs",
        definition: |_| {
            format!("-(2/N) sum_i z1_i . z2_i + 1/(N(N-1)) sum_(i != j) (z1_i . z2_j)^2 over all rows of the views (rows clipped to norm sqrt(mu), mu = {SPECTRAL_MU}), exact; the reference code's batch loss")
        },
        value: |a| a.spectral_loss.as_ref().map(|l| l.value),
        ideal: no_ideal,
        json: Fields::Typed(|a| typed(a.spectral_loss.as_ref(), Value::Null)),
    },
    Metric {
        key: "tolerance",
        name: "tolerance",
        group: Group::AlignmentUniformity,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &WANG_LIU,
        direction: Direction::Higher,
        reading: "1 = every class collapsed to a point; read against uniformity (the dilemma)",
        definition: |_| {
            "mean cos(u_i, u_j) of the normalised rows over the same-class ordered pairs i != j, exact from the class sums: sum_c (n_c^2 ||m_c||^2 - sum_{i in c} ||u_i||^2) / sum_c n_c (n_c - 1); 1 - label-positive alignment / 2 for unit rows".into()
        },
        value: |a| a.tolerance,
        ideal: no_ideal,
        json: Fields::Extra(
            |_| json!({"pairs": "same-class ordered pairs i != j", "of": "normalised rows"}),
        ),
    },
    Metric {
        key: "nc1",
        name: "NC1",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = within-class variability collapsed",
        definition: |a| {
            let rank = a.collapse.as_ref().map_or(0, |c| c.nc1_rank);
            format!("tr(Sigma_W Sigma_B^+)/C on the raw rows, global mean the unweighted mean of the class means, pseudo-inverse of rank {rank}")
        },
        value: |a| collapse_value(a, |c| c.nc1),
        ideal: zero,
        json: Fields::Extra(
            |a| json!({"definition": "tr(Sigma_W Sigma_B^+)/C", "pinv_rank": a.collapse.as_ref().map(|c| c.nc1_rank)}),
        ),
    },
    Metric {
        key: "nc1_quotient",
        name: "NC1 quotient",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = within-class variability collapsed",
        definition: |_| "tr(Sigma_W)/tr(Sigma_B) (no inverse)".into(),
        value: |a| collapse_value(a, |c| c.nc1_quotient),
        ideal: zero,
        json: Fields::Extra(|_| json!({"definition": "tr(Sigma_W)/tr(Sigma_B)"})),
    },
    Metric {
        key: "nc2_equinorm",
        name: "NC2 equinorm",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = centred class means of equal norm",
        definition: |_| "std/mean of the norms of the centred class means (std with C-1)".into(),
        value: |a| collapse_value(a, |c| c.nc2_equinorm),
        ideal: zero,
        json: Fields::Extra(|_| json!({"of": "centred class means", "std": "C-1"})),
    },
    Metric {
        key: "nc2_equinorm_classifier",
        name: "NC2 equinorm (classifier)",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Classifier,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = classifier rows of equal norm",
        definition: |_| "std/mean of the classifier row norms (std with C-1)".into(),
        value: |a| collapse_value(a, |c| c.nc2_equinorm_classifier),
        ideal: zero,
        json: Fields::Extra(|_| json!({"of": "classifier rows", "std": "C-1"})),
    },
    Metric {
        key: "nc2_equiangularity",
        name: "NC2 equiangularity",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = every pair of centred class means at the same angle",
        definition: |_| {
            "sample std of the cosines between centred class means over the C(C-1) ordered pairs"
                .into()
        },
        value: |a| collapse_value(a, |c| c.nc2_equiangularity),
        ideal: zero,
        json: Fields::Extra(|_| json!({"of": "cosines of centred class means over ordered pairs"})),
    },
    Metric {
        key: "nc2_max_angle",
        name: "NC2 max-angle",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = every cosine is -1/(C-1)",
        definition: |_| "mean over c != c' of |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(C-1)|".into(),
        value: |a| collapse_value(a, |c| c.nc2_max_angle),
        ideal: zero,
        json: Fields::Extra(|_| json!({"definition": "mean |cos + 1/(C-1)|"})),
    },
    Metric {
        key: "nc3",
        name: "NC3 self-duality",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Classifier,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = classifier rows aligned with the centred class means",
        definition: |_| "||W/||W||_F - M/||M||_F||_F^2 (squared)".into(),
        value: |a| collapse_value(a, |c| c.nc3),
        ideal: zero,
        json: Fields::Extra(|_| json!({"definition": "||W/||W||_F - M/||M||_F||_F^2"})),
    },
    Metric {
        key: "nc4",
        name: "NC4 classifier vs nearest mean",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Classifier,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = the classifier decides as the nearest class mean",
        definition: |_| {
            "fraction of rows where argmax_c (w_c.h + b_c) differs from the nearest class mean"
                .into()
        },
        value: |a| collapse_value(a, |c| c.nc4),
        ideal: zero,
        json: Fields::Extra(
            |_| json!({"definition": "fraction where the classifier and the nearest class mean disagree"}),
        ),
    },
    Metric {
        key: "ncc_accuracy",
        name: "nearest-class-mean accuracy",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Higher,
        reading: "1 = every row nearest to its own class mean",
        definition: |_| {
            "fraction of rows whose nearest class mean (Euclidean, raw rows) is their class".into()
        },
        value: |a| a.collapse.as_ref().and_then(|c| c.ncc_accuracy),
        ideal: one,
        json: Fields::Extra(
            |_| json!({"definition": "fraction whose nearest class mean is their class"}),
        ),
    },
    Metric {
        key: "cdnv",
        name: "CDNV",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &GALANTI,
        direction: Direction::Lower,
        reading: "0 = classes collapsed and apart",
        definition: |_| {
            "(Var_c + Var_c')/(2 ||mu_c - mu_c'||^2), Var_c = mean ||h_i - mu_c||^2, mean over pairs c < c'".into()
        },
        value: |a| {
            a.collapse
                .as_ref()
                .and_then(|c| c.cdnv.as_ref())
                .map(|c| c.mean)
        },
        ideal: zero,
        json: Fields::Typed(|a| {
            typed(
                a.collapse.as_ref().and_then(|c| c.cdnv.as_ref()),
                json!({"definition": "(Var_c + Var_c') / (2 ||mu_c - mu_c'||^2), mean over c < c'"}),
            )
        }),
    },
    Metric {
        key: "knn_accuracy",
        name: "kNN accuracy",
        group: Group::ClassCollapse,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &WU,
        direction: Direction::Higher,
        reading: "1 = every query's weighted neighbour vote is its class",
        definition: |a| {
            match &a.knn {
            Some(k) => format!(
                "cosine kNN on the normalised rows, k = {}, votes weighted exp(sim/{}), {}, {} of {} queries",
                k.k, k.temperature, k.split, k.queries, k.candidates
            ),
            None => "cosine kNN on the normalised rows, votes weighted exp(sim/T)".into(),
        }
        },
        value: |a| a.knn.as_ref().map(|k| k.value),
        ideal: one,
        json: Fields::Typed(|a| typed(a.knn.as_ref(), json!({"similarity": "cosine"}))),
    },
    Metric {
        key: "etf_distance",
        name: "ETF distance",
        group: Group::Simplex,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &PAPYAN,
        direction: Direction::Lower,
        reading: "0 = centred class means form a regular simplex",
        definition: |_| {
            "||G/||G||_F - (I - 11^T/C)/sqrt(C-1)||_F with G = M M^T, M the centred class means"
                .into()
        },
        value: |a| collapse_value(a, |c| c.etf_distance),
        ideal: zero,
        json: Fields::Extra(
            |_| json!({"definition": "||G/||G||_F - (I - 11^T/C)/sqrt(C-1)||_F, G = M M^T"}),
        ),
    },
    Metric {
        key: "simplex_angles",
        name: "class-mean angle deviation (degrees)",
        group: Group::Simplex,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &GRAF,
        direction: Direction::Lower,
        reading: "0 = every pair of class means at the simplex angle",
        definition: |a| {
            let ideal = a.simplex_angles.as_ref().map_or_else(
                || "arccos(-1/(C-1))".into(),
                |s| format!("{:.2}", s.ideal_degrees),
            );
            format!("mean |angle - {ideal}| in degrees between the uncentred class means of the normalised rows")
        },
        value: |a| {
            a.simplex_angles
                .as_ref()
                .map(|s| s.mean_abs_deviation_degrees)
        },
        ideal: zero,
        json: Fields::Typed(|a| {
            typed(
                a.simplex_angles.as_ref(),
                json!({"unit": "degrees", "of": "uncentred class means of the normalised rows (Graf et al. 2021)"}),
            )
        }),
    },
    Metric {
        key: "simplex_angles.max_deviation",
        name: "max angle deviation (degrees)",
        group: Group::Simplex,
        level: Level::Detail,
        requires: Requires::Labels,
        paper: &GRAF,
        direction: Direction::Lower,
        reading: "0 = no pair of class means off the simplex angle",
        definition: |_| "largest |angle - arccos(-1/(C-1))| over pairs of class means".into(),
        value: |a| {
            a.simplex_angles
                .as_ref()
                .map(|s| s.max_abs_deviation_degrees)
        },
        ideal: zero,
        json: Fields::None,
    },
    Metric {
        key: "simplex_angles.mean_norm",
        name: "mean class-mean norm",
        group: Group::Simplex,
        level: Level::Detail,
        requires: Requires::Labels,
        paper: &GRAF,
        direction: Direction::Higher,
        reading: "1 = classes collapsed to points on the sphere",
        definition: |_| "mean over classes of ||mean_c|| of the normalised rows".into(),
        value: |a| {
            let norms = &a.simplex_angles.as_ref()?.mean_norms;
            (!norms.is_empty()).then(|| norms.iter().sum::<f64>() / norms.len() as f64)
        },
        ideal: one,
        json: Fields::None,
    },
    Metric {
        key: "effective_rank",
        name: "effective rank",
        group: Group::Spectrum,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &ROY_VETTERLI,
        direction: Direction::Higher,
        reading: "D = every direction used equally; 1 = one direction",
        definition: |a| {
            format!("exp(-sum p_k log p_k), p_k = s_k / sum s, s the singular values of the centred raw embeddings (no epsilon), of {} dimensions", a.dim)
        },
        value: |a| Some(a.spectrum.effective_rank),
        ideal: dimension,
        json: Fields::Extra(|_| json!({"of": "singular values of the centred raw embeddings"})),
    },
    Metric {
        key: "rankme",
        name: "RankMe",
        group: Group::Spectrum,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &GARRIDO,
        direction: Direction::Higher,
        reading: "D = every direction used equally; 1 = one direction",
        definition: |_| {
            format!("exp(-sum p_k log p_k), p_k = s_k / sum s + {RANKME_EPSILON:e}, s the singular values of the raw (uncentred) embeddings")
        },
        value: |a| Some(a.spectrum.rankme),
        ideal: dimension,
        json: Fields::Extra(
            |_| json!({"epsilon": RANKME_EPSILON, "of": "singular values of the raw embeddings"}),
        ),
    },
    Metric {
        key: "alpha_req",
        name: "alpha-ReQ",
        group: Group::Spectrum,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &AGRAWAL,
        direction: Direction::Neither,
        reading: "decay exponent of the eigenvalues; needs 13 or more dimensions",
        definition: |a| {
            let (first, last) = ranks_of(a);
            format!("1/k-weighted least-squares fit of log lambda_k = -alpha log k + c over ranks {first}..{last} of the normalised rows' covariance eigenvalues")
        },
        value: |a| a.spectrum.alpha_req.as_ref().map(|f| f.alpha),
        ideal: no_ideal,
        json: Fields::Extra(|a| match &a.spectrum.alpha_req {
            Some(fit) => {
                json!({"r_squared": fit.r_squared, "ranks": [fit.ranks.0, fit.ranks.1], "weights": "1/k"})
            }
            None => Value::Null,
        }),
    },
    Metric {
        key: "lidar",
        name: "LiDAR",
        group: Group::Spectrum,
        level: Level::Metric,
        requires: Requires::Views,
        paper: &THILAK,
        direction: Direction::Higher,
        reading: "effective rank of the directions that tell objects apart beyond their views' spread; D at most",
        definition: |a| {
            let groups = a.lidar.as_ref().map_or(0, |l| l.groups);
            format!("exp(-sum p log p), p = (lambda + {LIDAR_EPSILON:e}) / sum (lambda + {LIDAR_EPSILON:e}) over the D eigenvalues of Sigma_w^-1/2 Sigma_b Sigma_w^-1/2, Sigma_b the covariance (/(N - 1)) of the {groups} objects' mean views, Sigma_w = sum over objects and views of (e - mu_n)(e - mu_n)^T / (N (Q - 1)) + {LIDAR_DELTA:e} I; the analysed view rows (stable-pretraining's convention)")
        },
        value: |a| a.lidar.as_ref().map(|l| l.value),
        ideal: dimension,
        json: Fields::Extra(|a| match &a.lidar {
            Some(l) => json!({
                "reptrix": l.reptrix,
                "objects": l.groups,
                "rows": l.rows,
                "delta": LIDAR_DELTA,
                "epsilon": LIDAR_EPSILON,
                "top_eigenvalues": l.top_eigenvalues,
            }),
            None => Value::Null,
        }),
    },
    Metric {
        key: "lidar.reptrix",
        name: "LiDAR (reptrix's convention)",
        group: Group::Spectrum,
        level: Level::Detail,
        requires: Requires::Views,
        paper: &THILAK,
        direction: Direction::Higher,
        reading: "reptrix 0.1.0's number: not the same spectrum (see the peer table)",
        definition: |_| {
            format!("reptrix 0.1.0's get_lidar: Sigma_b without a divisor, Sigma_w the mean over objects of their views' scatter + {REPTRIX_DELTA:e} I, and as spectrum the PCA explained-variance ratios r of the rows of the LiDAR matrix (its column-centred squared singular values over their sum, the first min({REPTRIX_MAX_EIGENVALUES}, D)), p = r / sum r + {REPTRIX_EPSILON:e}")
        },
        value: |a| a.lidar.as_ref().and_then(|l| l.reptrix),
        ideal: no_ideal,
        json: Fields::None,
    },
    Metric {
        key: "lda_rank",
        name: "LDA rank",
        group: Group::Spectrum,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &THILAK,
        direction: Direction::Higher,
        reading: "effective rank of the directions that tell classes apart beyond their spread; C - 1 at most (D when C > D)",
        definition: |_| {
            format!("LiDAR with the classes as the groups: the D eigenvalues of Sigma_w^-1/2 Sigma_b Sigma_w^-1/2, Sigma_b the covariance (/(C - 1)) of the class means about their unweighted mean, Sigma_w = sum_i (u_i - mu_(y_i))(u_i - mu_(y_i))^T / (N - C) + {LIDAR_DELTA:e} I, of the analysed rows; p = (lambda + {LIDAR_EPSILON:e}) / sum (lambda + {LIDAR_EPSILON:e}), exp(-sum p log p)")
        },
        value: |a| a.lda_rank.as_ref().map(|l| l.value),
        ideal: no_ideal,
        json: Fields::Extra(|a| match &a.lda_rank {
            Some(l) => json!({"classes": l.groups, "rows": l.rows, "top_eigenvalues": l.top_eigenvalues}),
            None => Value::Null,
        }),
    },
    Metric {
        key: "normalized_std",
        name: "std of normalised rows",
        group: Group::Spectrum,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &CHEN_HE,
        direction: Direction::Higher,
        reading: "1/sqrt(D) when spread out, 0 when collapsed",
        definition: |a| {
            format!(
                "mean over dimensions of the std (N-1) of the L2-normalised rows; 1/sqrt(D) = {:.6}",
                a.spectrum.normalized_std_reference
            )
        },
        value: |a| Some(a.spectrum.normalized_std),
        ideal: |a| Some(a.spectrum.normalized_std_reference),
        json: Fields::Extra(
            |a| json!({"reference": a.spectrum.normalized_std_reference, "reference_is": "1/sqrt(D)"}),
        ),
    },
    Metric {
        key: "spectrum.top_share",
        name: "top eigenvalue share",
        group: Group::Spectrum,
        level: Level::Detail,
        requires: Requires::Nothing,
        paper: &JING,
        direction: Direction::Lower,
        reading: "1/D when spread out, 1 = one direction",
        definition: |_| {
            "largest eigenvalue of the normalised rows' covariance over their sum".into()
        },
        value: |a| {
            let e = &a.spectrum.eigenvalues;
            e.first()
                .map(|top| top / e.iter().sum::<f64>().max(f64::MIN_POSITIVE))
        },
        ideal: |a| Some(1.0 / a.dim as f64),
        json: Fields::None,
    },
    Metric {
        key: "mean_cosine",
        name: "mean cosine (anisotropy)",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &ETHAYARAJH,
        direction: Direction::Lower,
        reading: "0 = isotropic; 1 = every row the same direction",
        definition: |a| {
            format!("exact mean of cos(u_i, u_j) over the {} ordered pairs i != j of the normalised rows: (||sum u_i||^2 - sum ||u_i||^2) / (N (N - 1))", a.n as f64 * (a.n as f64 - 1.0))
        },
        value: |a| Some(a.spectrum.isotropy.mean_cosine),
        ideal: zero,
        json: Fields::Extra(
            |_| json!({"pairs": "all ordered pairs i != j", "of": "normalised rows"}),
        ),
    },
    Metric {
        key: "isoscore",
        name: "IsoScore",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &RUDMAN,
        direction: Direction::Higher,
        reading: "1 = isotropic; 0 = one direction",
        definition: |_| {
            "(PR - 1) / (D - 1), PR the participation ratio of the raw rows' covariance eigenvalues (the closed form of the IsoScore package's steps)".into()
        },
        value: |a| a.spectrum.isotropy.isoscore,
        ideal: one,
        json: Fields::Extra(|_| json!({"of": "covariance of the raw rows"})),
    },
    Metric {
        key: "isoscore_star",
        name: "IsoScore*",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &RUDMAN_EICKHOFF,
        direction: Direction::Higher,
        reading: "1 = isotropic; 0 = one direction; counts fewer forced-zero directions than IsoScore when N <= D",
        definition: |a| {
            format!("IsoScore of the shrunk covariance (1 - zeta) C + zeta (tr C / D) I of the raw rows, zeta = {}: (PR_zeta - 1) / (D - 1), PR_zeta = (sum lambda)^2 / sum_k ((1 - zeta) lambda_k + zeta tr C / D)^2 over all D eigenvalues (the I-STAR code's isoscore_star with C0 = (tr C / D) I; it is C0 = I for rows with tr C = D)", a.isoscore_zeta)
        },
        value: |a| a.spectrum.isotropy.isoscore_star(a.isoscore_zeta, a.dim),
        ideal: one,
        json: Fields::Extra(
            |a| json!({"zeta": a.isoscore_zeta, "target": "(tr C / D) I", "of": "covariance of the raw rows"}),
        ),
    },
    Metric {
        key: "partition_isotropy",
        name: "partition isotropy I(W)",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &MU_VISWANATH,
        direction: Direction::Higher,
        reading: "1 = isotropic; near 0 = the rows crowd one side",
        definition: |_| {
            "min Z(c) / max Z(c), Z(c) = sum_i exp(c . w_i) over the 2D directions c = +-v_k, v_k the eigenvectors of the uncentred W^T W of the analysed rows (both signs, so no eigen-solver sign choice; log-sum-exp sums)".into()
        },
        value: |a| a.partition_isotropy.as_ref().map(|p| p.value),
        ideal: one,
        json: Fields::Extra(|a| match &a.partition_isotropy {
            Some(p) => json!({
                "log_z_min": p.log_z_min,
                "log_z_max": p.log_z_max,
                "directions": p.directions,
                "of": "analysed rows (normalised unless --no-normalize), uncentred",
            }),
            None => Value::Null,
        }),
    },
    Metric {
        key: "participation_ratio",
        name: "participation ratio",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &GAO,
        direction: Direction::Higher,
        reading: "D = every direction used equally; 1 = one direction",
        definition: |_| {
            "(sum lambda)^2 / sum lambda^2 over the eigenvalues of the raw rows' covariance".into()
        },
        value: |a| a.spectrum.isotropy.participation_ratio,
        ideal: dimension,
        json: Fields::Extra(|_| json!({"of": "covariance of the raw rows"})),
    },
    Metric {
        key: "nesum",
        name: "NESum",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &HE_OZAY,
        direction: Direction::Higher,
        reading: "D = every direction used equally; 1 = one direction",
        definition: |_| {
            "sum lambda / lambda_1 over the eigenvalues of the normalised rows' covariance".into()
        },
        value: |a| a.spectrum.isotropy.nesum,
        ideal: dimension,
        json: Fields::Extra(|_| json!({"of": "covariance of the normalised rows"})),
    },
    Metric {
        key: "numerical_rank",
        name: "numerical rank",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &TSITSULIN,
        direction: Direction::Higher,
        reading: "min(N, D) = every direction used equally; 1 = one direction",
        definition: |_| "||X||_F^2 / sigma_1^2 of the raw, uncentred rows".into(),
        value: |a| a.spectrum.isotropy.numerical_rank,
        ideal: dimension,
        json: Fields::Extra(|_| json!({"of": "raw uncentred rows"})),
    },
    Metric {
        key: "pseudo_condition_number",
        name: "pseudo-condition number",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &TSITSULIN,
        direction: Direction::Lower,
        reading: "1 = every direction equally strong; undefined when the rows are rank deficient",
        definition: |_| {
            "sigma_1 / sigma_min of the centred raw rows over the min(N - 1, D) singular values they can have".into()
        },
        value: |a| a.spectrum.isotropy.pseudo_condition_number,
        ideal: one,
        json: Fields::Extra(|_| json!({"of": "centred raw rows"})),
    },
    Metric {
        key: "self_clustering",
        name: "self-clustering",
        group: Group::Isotropy,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &TSITSULIN,
        direction: Direction::Lower,
        reading: "0 = as rows uniform on the sphere; 1 = collapsed",
        definition: |_| {
            "(A - E) / (N^2 - E), A = sum over all pairs (i, j), diagonal included, of (u_i . u_j)^2 of the normalised rows, E = N + N (N - 1) / D".into()
        },
        value: |a| a.spectrum.isotropy.self_clustering,
        ideal: zero,
        json: Fields::Extra(|_| json!({"of": "normalised rows (uncentred)"})),
    },
    Metric {
        key: "twonn",
        name: "TwoNN intrinsic dimension",
        group: Group::IntrinsicDimension,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &FACCO,
        direction: Direction::Neither,
        reading: "dimensions the rows' neighbourhoods span; D at most",
        definition: |a| {
            let (points, duplicates, discard) = a
                .intrinsic_dimension
                .as_ref()
                .map_or((0, 0, TWONN_DISCARD), |i| {
                    (i.points, i.duplicates, i.discard)
                });
            format!("slope through the origin of -log(1 - i/M) against log mu_(i), mu = r_2 / r_1 (Euclidean distances on the normalised rows to the two nearest), over the smallest {:.0}% of the ratios of M = {} measured rows ({} with an exact duplicate left out); scikit-dimension's TwoNN", 100.0 * (1.0 - discard), points - duplicates, duplicates)
        },
        value: |a| a.intrinsic_dimension.as_ref().and_then(|i| i.twonn),
        ideal: no_ideal,
        json: Fields::Extra(|a| match &a.intrinsic_dimension {
            Some(i) => json!({
                "ml": i.twonn_ml,
                "discard": i.discard,
                "points": i.points,
                "duplicates": i.duplicates,
                "of": "normalised rows, Euclidean",
                "fit": i.fit.iter().map(|&(x, y)| [x, y]).collect::<Vec<_>>(),
            }),
            None => Value::Null,
        }),
    },
    Metric {
        key: "twonn.ml",
        name: "TwoNN (maximum likelihood)",
        group: Group::IntrinsicDimension,
        level: Level::Detail,
        requires: Requires::Nothing,
        paper: &FACCO,
        direction: Direction::Neither,
        reading: "the same ratios' censored maximum likelihood",
        definition: |_| {
            "(m - 1) / (sum_{i <= m} log mu_(i) + (M - m) log mu_(m)), m the kept ratios of M; scikit-dimension's TwoNN(method=\"mle\")".into()
        },
        value: |a| a.intrinsic_dimension.as_ref().and_then(|i| i.twonn_ml),
        ideal: no_ideal,
        json: Fields::None,
    },
    Metric {
        key: "mle_id",
        name: "MLE intrinsic dimension",
        group: Group::IntrinsicDimension,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &LEVINA_BICKEL,
        direction: Direction::Neither,
        reading: "dimensions the rows' k-neighbourhoods span; D at most",
        definition: |a| {
            let k = a
                .intrinsic_dimension
                .as_ref()
                .map_or(MLE_NEIGHBOURS, |i| i.mle_k);
            format!("harmonic mean over the measured rows of (k - 1) / sum_j log(R_k / R_j), R_1..R_k the Euclidean distances on the normalised rows to the k = {k} nearest; scikit-dimension's MLE (comb=\"mle\")")
        },
        value: |a| a.intrinsic_dimension.as_ref().and_then(|i| i.mle),
        ideal: no_ideal,
        json: Fields::Extra(|a| match &a.intrinsic_dimension {
            Some(i) => json!({
                "k": i.mle_k,
                "combination": "harmonic mean",
                "points": i.points,
                "duplicates": i.duplicates,
                "of": "normalised rows, Euclidean",
            }),
            None => Value::Null,
        }),
    },
    Metric {
        key: "hub_skewness",
        name: "k-occurrence skewness",
        group: Group::Hubness,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &RADOVANOVIC,
        direction: Direction::Lower,
        reading: "0 = every row as often a neighbour; large = hubs (grows with N)",
        definition: |a| {
            format!("biased skewness m_3 / m_2^(3/2) of the k-occurrence N_k (how often each row is among the k = {HUBNESS_K} cosine nearest neighbours of the others, itself excluded), {}; scikit-hubness's k_skewness", hubness_scope(a))
        },
        value: |a| a.hubness.as_ref().and_then(|h| h.skewness),
        ideal: zero,
        json: Fields::Extra(|a| match &a.hubness {
            Some(h) => json!({
                "k": h.k,
                "hub_size": HUB_SIZE,
                "method": h.method,
                "rows": h.rows,
                "queries": h.queries,
                "stderr": h.errors.as_ref().and_then(|e| e.skewness),
                "atkinson": h.atkinson,
                "groupie_ratio": h.groupie_ratio,
                "histogram": h.histogram.iter().map(|&(v, c)| [v, c]).collect::<Vec<_>>(),
            }),
            None => Value::Null,
        }),
    },
    Metric {
        key: "hub_skewness.atkinson",
        name: "Atkinson index",
        group: Group::Hubness,
        level: Level::Detail,
        requires: Requires::Nothing,
        paper: &FELDBAUER,
        direction: Direction::Lower,
        reading: "0 = even k-occurrence",
        definition: |_| "1 - mean(sqrt N_k)^2 / mean N_k (epsilon = 1/2)".into(),
        value: |a| a.hubness.as_ref().map(|h| h.atkinson),
        ideal: zero,
        json: Fields::None,
    },
    Metric {
        key: "hub_skewness.groupie_ratio",
        name: "groupie ratio",
        group: Group::Hubness,
        level: Level::Detail,
        requires: Requires::Nothing,
        paper: &FELDBAUER,
        direction: Direction::Lower,
        reading: "share of the neighbour slots the largest hub holds",
        definition: |_| "max N_k / (k Q), Q the queries".into(),
        value: |a| a.hubness.as_ref().map(|h| h.groupie_ratio),
        ideal: no_ideal,
        json: Fields::None,
    },
    Metric {
        key: "robinhood",
        name: "Robin Hood index",
        group: Group::Hubness,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &FELDBAUER,
        direction: Direction::Lower,
        reading:
            "0 = even; the share of neighbour slots to move for evenness (barely depends on N)",
        definition: |a| {
            format!("(1/2) sum |N_k - mean N_k| / sum N_k over the k = {HUBNESS_K} cosine nearest neighbours, {}", hubness_scope(a))
        },
        value: |a| a.hubness.as_ref().map(|h| h.robinhood),
        ideal: zero,
        json: Fields::Extra(|a| match &a.hubness {
            Some(h) => {
                json!({"stderr": h.errors.as_ref().map(|e| e.robinhood), "method": h.method})
            }
            None => Value::Null,
        }),
    },
    Metric {
        key: "hub_gini",
        name: "k-occurrence Gini index",
        group: Group::Hubness,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &FELDBAUER,
        direction: Direction::Lower,
        reading: "0 = even k-occurrence; towards 1 = a few hubs",
        definition: |_| {
            "sum_i sum_j |N_k(i) - N_k(j)| / (2 n sum N_k), from the sorted counts".into()
        },
        value: |a| a.hubness.as_ref().map(|h| h.gini),
        ideal: zero,
        json: Fields::Extra(|a| match &a.hubness {
            Some(h) => json!({"stderr": h.errors.as_ref().map(|e| e.gini), "method": h.method}),
            None => Value::Null,
        }),
    },
    Metric {
        key: "antihub_occurrence",
        name: "antihub occurrence",
        group: Group::Hubness,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &RADOVANOVIC,
        direction: Direction::Lower,
        reading: "share of rows that are no row's neighbour",
        definition: |_| "#{N_k = 0} / n".into(),
        value: |a| a.hubness.as_ref().map(|h| h.antihub_occurrence),
        ideal: zero,
        json: Fields::Extra(|a| match &a.hubness {
            Some(h) => json!({"method": h.method}),
            None => Value::Null,
        }),
    },
    Metric {
        key: "hub_occurrence",
        name: "hub occurrence",
        group: Group::Hubness,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &RADOVANOVIC,
        direction: Direction::Lower,
        reading: "share of neighbour slots held by hubs (N_k >= 2k)",
        definition: |_| "sum over rows with N_k >= 2k of N_k / (k Q), Q the queries".into(),
        value: |a| a.hubness.as_ref().map(|h| h.hub_occurrence),
        ideal: zero,
        json: Fields::Extra(|a| match &a.hubness {
            Some(h) => json!({"hub_size": HUB_SIZE, "method": h.method}),
            None => Value::Null,
        }),
    },
    Metric {
        key: "hard_negative_similarity",
        name: "hardest-negative cosine",
        group: Group::HardNegatives,
        level: Level::Metric,
        requires: Requires::Nothing,
        paper: &ROBINSON,
        direction: Direction::Lower,
        reading: "median over the anchors of their most similar other item; near 1 = crowded (hard negatives, or duplicates)",
        definition: |a| {
            format!("median over the {} kNN queries (anchors) of s-_(1), the cosine of the anchor's nearest other row (every other item a negative, as in an unsupervised contrastive batch)", hard_negative_anchors(a))
        },
        value: |a| a.hard_negatives.as_ref().map(|h| h.hardest.median()),
        ideal: no_ideal,
        json: Fields::Extra(|a| match &a.hard_negatives {
            Some(h) => json!({
                "anchors": h.anchors,
                "k": h.k,
                "quantile_levels": QUANTILE_LEVELS,
                "hardest": h.hardest,
                "kth": h.kth,
                "positive": h.positive,
                "histogram_bins": HARD_NEGATIVE_BINS,
                "histograms": {"hardest": h.histograms[0], "kth": h.histograms[1], "positive": h.histograms[2]},
            }),
            None => Value::Null,
        }),
    },
    Metric {
        key: "hard_negative_margin",
        name: "positive margin over the hardest negative",
        group: Group::HardNegatives,
        level: Level::Metric,
        requires: Requires::Views,
        paper: &ROBINSON,
        direction: Direction::Higher,
        reading: "> 0 = positives closer than the hardest negative on average",
        definition: |_| {
            "mean over the anchors of s+ - s-_(1): the cosine to the anchor's positive (its row in the other view) less that to its hardest negative among the analysed rows".into()
        },
        value: |a| a.hard_negatives.as_ref().and_then(|h| h.margin),
        ideal: no_ideal,
        json: Fields::Extra(|_| json!({"of": "s+ - s-_(1), mean over the anchors"})),
    },
    Metric {
        key: "hard_negative_violations",
        name: "anchors with a negative above the positive",
        group: Group::HardNegatives,
        level: Level::Metric,
        requires: Requires::Views,
        paper: &ROBINSON,
        direction: Direction::Lower,
        reading: "0 = every positive beats every negative",
        definition: |_| "fraction of the anchors with s-_(1) > s+".into(),
        value: |a| a.hard_negatives.as_ref().and_then(|h| h.violations),
        ideal: zero,
        json: Fields::Extra(|_| json!({"of": "anchors with s-_(1) > s+"})),
    },
    Metric {
        key: "false_negative_rate",
        name: "false negatives among the hardest",
        group: Group::HardNegatives,
        level: Level::Metric,
        requires: Requires::Labels,
        paper: &ROBINSON,
        direction: Direction::Neither,
        reading: "share of the hardest negatives that are same-class: what the debiasing tau+ models; high = classes cluster",
        definition: |a| {
            let k = a.hard_negatives.as_ref().map_or(HARD_NEGATIVE_K, |h| h.k);
            format!("fraction of the anchors' k = {k} hardest negatives with the anchor's label")
        },
        value: |a| a.hard_negatives.as_ref().and_then(|h| h.false_negative_top_k),
        ideal: no_ideal,
        json: Fields::Extra(|a| json!({"hardest": a.hard_negatives.as_ref().and_then(|h| h.false_negative_hardest), "k": a.hard_negatives.as_ref().map(|h| h.k)})),
    },
    Metric {
        key: "false_negative_rate.hardest",
        name: "false negative: the hardest",
        group: Group::HardNegatives,
        level: Level::Detail,
        requires: Requires::Labels,
        paper: &ROBINSON,
        direction: Direction::Neither,
        reading: "share of the anchors whose hardest negative is same-class",
        definition: |_| "fraction of the anchors whose s-_(1) row has the anchor's label".into(),
        value: |a| a.hard_negatives.as_ref().and_then(|h| h.false_negative_hardest),
        ideal: no_ideal,
        json: Fields::None,
    },
    Metric {
        key: "subclasses",
        name: "within-class kNN subclass accuracy",
        group: Group::Subclasses,
        level: Level::Metric,
        requires: Requires::Subclasses,
        paper: &CHEN_2022,
        direction: Direction::Higher,
        reading:
            "1 = fine labels stay apart inside every class; chance = class collapse erased them",
        definition: |_| {
            "mean over classes with 2 or more subclasses of the leave-one-out kNN accuracy of the subclass among the class's rows".into()
        },
        value: |a| a.subclasses.as_ref().and_then(|s| s.knn_accuracy),
        ideal: one,
        json: Fields::Typed(|a| {
            let s = a.subclasses.as_ref();
            typed(s, json!({"value": s.and_then(|s| s.knn_accuracy)}))
        }),
    },
    Metric {
        key: "subclasses.cdnv",
        name: "CDNV between subclasses",
        group: Group::Subclasses,
        level: Level::Detail,
        requires: Requires::Subclasses,
        paper: &CHEN_2022,
        direction: Direction::Higher,
        reading: "0 = subclasses merged inside their class",
        definition: |_| "mean over classes of the mean CDNV between their subclasses".into(),
        value: |a| a.subclasses.as_ref().and_then(|s| s.cdnv),
        ideal: no_ideal,
        json: Fields::None,
    },
];

/// Which rows hubness counts: all of them, or a seeded subsample among themselves.
fn hubness_scope(a: &Analysis) -> String {
    match &a.hubness {
        Some(h) if h.method == "subsample" => format!(
            "over a seeded subsample of {} of {} rows among themselves",
            h.rows, a.n
        ),
        Some(h) => format!("every one of the {} rows a query", h.rows),
        None => "every row a query up to --knn-queries, else a seeded subsample".into(),
    }
}

/// No metric is ever a silent NaN or infinity: a value that overflowed (e.g. unnormalised rows
/// near the largest float with `--no-normalize`) is an error that names the metric.
pub(crate) fn check_finite_results(analysis: &Analysis) -> Result<()> {
    let scalars = CATALOGUE
        .iter()
        .filter_map(|m| m.value(analysis).map(|v| (m.key, v)));
    let eigenvalues = analysis
        .spectrum
        .eigenvalues
        .iter()
        .map(|&v| ("spectrum", v));
    match scalars.chain(eigenvalues).find(|(_, v)| !v.is_finite()) {
        Some((metric, value)) => Err(GeometryError::NonFiniteResult { metric, value }),
        None => Ok(()),
    }
}
