//! The catalogue of the cross-modal readings: for every scalar measured on two modalities
//! together (the gap, the cones, retrieval both ways, the objectives over all pairs) its key,
//! name, definition (with the parameters filled in), paper, direction and ideal, and how to
//! read it from a [`CrossModal`].
//!
//! The modalities document, its table, the modalities report and `track --modalities` list
//! these readings from [`CROSS_CATALOGUE`]; a reading's column is its key followed by what it is
//! about (`cone.image`, `recall_at_1.image_to_text`).
//!
//! ```
//! use embgeom_geometry::cross_catalogue::{cross_metric, CROSS_CATALOGUE};
//!
//! let gap = cross_metric("modality_gap").expect("the gap is catalogued");
//! assert_eq!(gap.column(gap.about[0], ("image", "text")), "modality_gap");
//! let r1 = cross_metric("recall_at_1").unwrap();
//! assert_eq!(r1.column(r1.about[1], ("image", "text")), "recall_at_1.text_to_image");
//! assert!(CROSS_CATALOGUE.iter().all(|m| m.paper.link.starts_with("https://")));
//! ```

use crate::metrics::retrieval::RetrievalSummary;
use crate::orchestration::catalogue::{Direction, Paper};
use crate::orchestration::modalities::CrossModal;

/// Liang, Zhang, Kwon, Yeung & Zou, NeurIPS 2022: the modality gap and the cone effect.
pub const LIANG: Paper = Paper {
    short: "Liang et al. 2022",
    citation: "Weixin Liang, Yuhui Zhang, Yongchan Kwon, Serena Yeung and James Zou. Mind the Gap: Understanding the Modality Gap in Multi-modal Contrastive Representation Learning. NeurIPS 2022.",
    link: "https://arxiv.org/abs/2203.02053",
};
/// Schrodi, Hoffmann, Argus, Fischer & Brox, ICLR 2025: L2M, L2I and the relative modality gap.
pub const SCHRODI: Paper = Paper {
    short: "Schrodi et al. 2025",
    citation: "Simon Schrodi, David T. Hoffmann, Max Argus, Volker Fischer and Thomas Brox. Two Effects, One Trigger: On the Modality Gap, Object Bias, and Information Imbalance in Contrastive Vision-Language Representation Learning. ICLR 2025.",
    link: "https://arxiv.org/abs/2404.07983",
};
/// Muennighoff, Tazi, Magne & Reimers, EACL 2023: MTEB (whose analysis script computes the
/// centroid cosine distance).
pub const MUENNIGHOFF: Paper = Paper {
    short: "Muennighoff et al. 2023",
    citation: "Niklas Muennighoff, Nouamane Tazi, Loïc Magne and Nils Reimers. MTEB: Massive Text Embedding Benchmark. EACL 2023.",
    link: "https://arxiv.org/abs/2210.07316",
};
/// Radford et al., ICML 2021: CLIP, its symmetric InfoNCE and zero-shot retrieval.
pub const RADFORD: Paper = Paper {
    short: "Radford et al. 2021",
    citation: "Alec Radford, Jong Wook Kim, Chris Hallacy, Aditya Ramesh, Gabriel Goh, Sandhini Agarwal, Girish Sastry, Amanda Askell, Pamela Mishkin, Jack Clark, Gretchen Krueger and Ilya Sutskever. Learning Transferable Visual Models From Natural Language Supervision. ICML 2021.",
    link: "https://arxiv.org/abs/2103.00020",
};
/// Zhai, Mustafa, Kolesnikov & Beyer, ICCV 2023: SigLIP's sigmoid loss.
pub const ZHAI: Paper = Paper {
    short: "Zhai et al. 2023",
    citation: "Xiaohua Zhai, Basil Mustafa, Alexander Kolesnikov and Lucas Beyer. Sigmoid Loss for Language Image Pre-Training. ICCV 2023.",
    link: "https://arxiv.org/abs/2303.15343",
};

/// What a cross-modal reading is about, which its column names after its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    /// Both modalities at once (the column is the key).
    Pair,
    /// The first modality (`key.A`).
    First,
    /// The second modality (`key.B`).
    Second,
    /// The first's rows as queries of the second (`key.A_to_B`).
    FirstToSecond,
    /// The second's rows as queries of the first (`key.B_to_A`).
    SecondToFirst,
}

/// Both modalities at once.
const PAIR: &[About] = &[About::Pair];
/// Each modality.
const EACH: &[About] = &[About::First, About::Second];
/// Both retrieval directions.
const BOTH_WAYS: &[About] = &[About::FirstToSecond, About::SecondToFirst];

/// One catalogued cross-modal reading.
pub struct CrossMetric {
    /// The key (the column is the key and, unless [`About::Pair`], what it is about).
    pub key: &'static str,
    /// What it is about: one column each.
    pub about: &'static [About],
    /// Name for people.
    pub name: &'static str,
    /// The paper it follows.
    pub paper: &'static Paper,
    /// Which way it improves.
    pub direction: Direction,
    /// How to read the value, with its reference points.
    pub reading: &'static str,
    definition: fn(&CrossModal) -> String,
    value: fn(&CrossModal, About) -> Option<f64>,
    ideal: Option<f64>,
}

impl CrossMetric {
    /// The column (and table row) of this reading about `about` for modalities named `names`.
    pub fn column(&self, about: About, names: (&str, &str)) -> String {
        let (a, b) = names;
        match about {
            About::Pair => self.key.to_string(),
            About::First => format!("{}.{a}", self.key),
            About::Second => format!("{}.{b}", self.key),
            About::FirstToSecond => format!("{}.{a}_to_{b}", self.key),
            About::SecondToFirst => format!("{}.{b}_to_{a}", self.key),
        }
    }

    /// The definition, with the parameters of the measurement filled in.
    pub fn definition(&self, c: &CrossModal) -> String {
        (self.definition)(c)
    }

    /// The value about `about`, `None` where it does not apply (the objectives with a
    /// many-to-one pair map).
    pub fn value(&self, c: &CrossModal, about: About) -> Option<f64> {
        (self.value)(c, about)
    }

    /// The ideal value where one exists.
    pub fn ideal(&self) -> Option<f64> {
        self.ideal
    }
}

/// The catalogued reading with key `key`.
pub fn cross_metric(key: &str) -> Option<&'static CrossMetric> {
    CROSS_CATALOGUE.iter().find(|m| m.key == key)
}

/// `(column, value)` of every reading that has a value, in catalogue order.
pub fn cross_values(c: &CrossModal) -> Vec<(String, f64)> {
    let names = (c.names.0.as_str(), c.names.1.as_str());
    CROSS_CATALOGUE
        .iter()
        .flat_map(|m| m.about.iter().map(move |&about| (m, about)))
        .filter_map(|(m, about)| m.value(c, about).map(|v| (m.column(about, names), v)))
        .collect()
}

/// The value of modality `about` of a pair of values.
fn of_each(pair: (f64, f64), about: About) -> f64 {
    match about {
        About::Second => pair.1,
        _ => pair.0,
    }
}

/// The retrieval summary of the direction `about` names.
fn direction(c: &CrossModal, about: About) -> &RetrievalSummary {
    match about {
        About::SecondToFirst => &c.retrieval.b_to_a,
        _ => &c.retrieval.a_to_b,
    }
}

fn retrieval_definition(c: &CrossModal, what: &str) -> String {
    format!(
        "{what}; a query's rank is 1 + the negatives strictly more similar than its best positive (ties to the positive), exact, over {} and {} rows",
        c.rows.0, c.rows.1
    )
}

/// Every cross-modal reading, in table order.
pub const CROSS_CATALOGUE: &[CrossMetric] = &[
    CrossMetric {
        key: "modality_gap",
        about: PAIR,
        name: "modality gap",
        paper: &LIANG,
        direction: Direction::Lower,
        reading: "0 = the modalities share a centroid; 2 = opposite poles",
        definition: |_| {
            "||m_A - m_B||, m the centroid of a modality's unit rows (Schrodi et al.'s L2M)".into()
        },
        value: |c, _| Some(c.gap.distance),
        ideal: Some(0.0),
    },
    CrossMetric {
        key: "centroid_cosine_distance",
        about: PAIR,
        name: "centroid cosine distance",
        paper: &MUENNIGHOFF,
        direction: Direction::Lower,
        reading: "0 = the raw centroids point the same way",
        definition: |_| {
            "1 - cos(mean of A's raw rows, mean of B's raw rows), as MTEB's analysis script computes it".into()
        },
        value: |c, _| Some(c.gap.centroid_cosine_distance),
        ideal: Some(0.0),
    },
    CrossMetric {
        key: "l2i",
        about: PAIR,
        name: "matched-pair distance (L2I)",
        paper: &SCHRODI,
        direction: Direction::Lower,
        reading: "0 = every pair coincides",
        definition: |_| "mean_j ||a_pi(j) - b_j|| over the matched pairs of unit rows".into(),
        value: |c, _| Some(c.gap.l2i),
        ideal: Some(0.0),
    },
    CrossMetric {
        key: "rmg",
        about: PAIR,
        name: "relative modality gap (RMG)",
        paper: &SCHRODI,
        direction: Direction::Lower,
        reading:
            "0 = pairs closer than rows within a modality; 1 = pairs as far as the rows are spread",
        definition: |_| {
            "match / (match + (a + b)/2), match = max((1 - mean_j a_pi(j).b_j)/2, 1e-3), a = (1 - c_A)/2, b = (1 - c_B)/2, c a modality's mean cosine over i != j".into()
        },
        value: |c, _| Some(c.gap.rmg),
        ideal: Some(0.0),
    },
    CrossMetric {
        key: "cone",
        about: EACH,
        name: "cone (mean pairwise cosine)",
        paper: &LIANG,
        direction: Direction::Lower,
        reading: "1 = one direction (a narrow cone); 0 = centred",
        definition: |_| {
            "mean_{i != j} cos(x_i, x_j) of the modality's rows, exactly, from sums".into()
        },
        value: |c, about| Some(of_each(c.gap.cones, about)),
        ideal: Some(0.0),
    },
    CrossMetric {
        key: "recall_at_1",
        about: BOTH_WAYS,
        name: "R@1",
        paper: &RADFORD,
        direction: Direction::Higher,
        reading: "1 = every query's positive ranks first",
        definition: |c| retrieval_definition(c, "share of queries whose best positive ranks 1"),
        value: |c, about| Some(direction(c, about).recall_at[0]),
        ideal: Some(1.0),
    },
    CrossMetric {
        key: "recall_at_5",
        about: BOTH_WAYS,
        name: "R@5",
        paper: &RADFORD,
        direction: Direction::Higher,
        reading: "1 = every query's positive within the first 5",
        definition: |c| {
            retrieval_definition(c, "share of queries whose best positive ranks within 5")
        },
        value: |c, about| Some(direction(c, about).recall_at[1]),
        ideal: Some(1.0),
    },
    CrossMetric {
        key: "recall_at_10",
        about: BOTH_WAYS,
        name: "R@10",
        paper: &RADFORD,
        direction: Direction::Higher,
        reading: "1 = every query's positive within the first 10",
        definition: |c| {
            retrieval_definition(c, "share of queries whose best positive ranks within 10")
        },
        value: |c, about| Some(direction(c, about).recall_at[2]),
        ideal: Some(1.0),
    },
    CrossMetric {
        key: "mrr",
        about: BOTH_WAYS,
        name: "mean reciprocal rank",
        paper: &RADFORD,
        direction: Direction::Higher,
        reading: "1 = every positive first; 1/N = at random",
        definition: |c| retrieval_definition(c, "mean of 1/rank over the queries"),
        value: |c, about| Some(direction(c, about).mrr),
        ideal: Some(1.0),
    },
    CrossMetric {
        key: "median_rank",
        about: BOTH_WAYS,
        name: "median rank",
        paper: &RADFORD,
        direction: Direction::Lower,
        reading: "1 = at least half the queries rank their positive first",
        definition: |c| {
            retrieval_definition(c, "floor(median(rank - 1)) + 1, as open_clip reports it")
        },
        value: |c, about| Some(direction(c, about).median_rank),
        ideal: Some(1.0),
    },
    CrossMetric {
        key: "info_nce",
        about: PAIR,
        name: "InfoNCE (CLIP, symmetric, all pairs)",
        paper: &RADFORD,
        direction: Direction::Lower,
        reading: "0 = every pair separated at the temperature; ln N = no information",
        definition: |c| {
            format!(
            "(1/2N) sum_i [(log sum_j e^(s_ij/tau) - s_ii/tau) + (log sum_j e^(s_ji/tau) - s_ii/tau)] over all N pairs, tau = {}; 1:1 pairs only",
            c.parameters.temperature
        )
        },
        value: |c, _| c.retrieval.info_nce,
        ideal: Some(0.0),
    },
    CrossMetric {
        key: "siglip_loss",
        about: PAIR,
        name: "SigLIP sigmoid loss (all pairs)",
        paper: &ZHAI,
        direction: Direction::Lower,
        reading: "0 = every pair and non-pair on its side of the bias",
        definition: |c| {
            format!(
            "(1/N) sum_i sum_j log(1 + e^(-z_ij (t s_ij + b))), z_ii = 1, else -1, t = {}, b = {}; 1:1 pairs only",
            c.parameters.scale, c.parameters.bias
        )
        },
        value: |c, _| c.retrieval.siglip,
        ideal: Some(0.0),
    },
];
