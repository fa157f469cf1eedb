//! The training losses, on a batch of two views: `z1`, `z2` (B x D) and labels (B).
//!
//! Every contrastive loss works on L2-normalised embeddings and cosine similarities divided by
//! a temperature tau.

use tch::{Kind, Tensor};

/// The losses the trainer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Loss {
    /// NT-Xent of SimCLR (Chen et al. 2020): the other view is the one positive.
    Simclr,
    /// Supervised contrastive loss L_out (Khosla et al. 2020): every same-class sample is positive.
    Supcon,
    /// Cross-entropy of a linear classifier on the embeddings.
    Ce,
    /// Wang & Isola (2020): alignment + weighted uniformity.
    AlignUniform,
    /// SupCon plus a class-conditional InfoNCE term (Chen et al. 2022, "Perfectly balanced").
    SupconSpread,
    /// Two towers (the top and the bottom half of each image), CLIP's symmetric InfoNCE with a
    /// learnable temperature (Radford et al. 2021).
    Clip,
    /// Two towers, SigLIP's sigmoid loss with a learnable scale and bias (Zhai et al. 2023).
    Siglip,
}

impl Loss {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Simclr => "simclr",
            Loss::Supcon => "supcon",
            Loss::Ce => "ce",
            Loss::AlignUniform => "align-uniform",
            Loss::SupconSpread => "supcon-spread",
            Loss::Clip => "clip",
            Loss::Siglip => "siglip",
        }
    }

    /// Whether the loss trains two towers, one per modality of each item.
    pub fn two_tower(self) -> bool {
        matches!(self, Loss::Clip | Loss::Siglip)
    }
}

/// Rows divided by their L2 norm.
pub fn normalize(z: &Tensor) -> Tensor {
    z / z.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// Cosine similarities of the 2B stacked views divided by tau, and the stacked labels.
fn logits(z1: &Tensor, z2: &Tensor, tau: f64) -> Tensor {
    let z = normalize(&Tensor::cat(&[z1, z2], 0));
    z.matmul(&z.tr()) / tau
}

/// Log-softmax of each row over every other column (the diagonal excluded).
fn log_prob_without_self(logits: &Tensor) -> (Tensor, Tensor) {
    let n = logits.size()[0];
    let eye = Tensor::eye(n, (Kind::Bool, logits.device()));
    let masked = logits.masked_fill(&eye, f64::NEG_INFINITY);
    let log_prob = &masked - masked.logsumexp([1], true);
    (log_prob.masked_fill(&eye, 0.0), eye)
}

/// NT-Xent (SimCLR): `-log exp(s_ip/tau) / sum_{a != i} exp(s_ia/tau)` averaged over the 2B
/// anchors, `p` the other view of `i`.
pub fn nt_xent(z1: &Tensor, z2: &Tensor, tau: f64) -> Tensor {
    let b = z1.size()[0];
    let (log_prob, _) = log_prob_without_self(&logits(z1, z2, tau));
    let index = Tensor::arange(2 * b, (Kind::Int64, z1.device()));
    let positive = (&index + b).remainder(2 * b);
    -log_prob
        .gather(1, &positive.unsqueeze(1), false)
        .mean(Kind::Float)
}

/// Mean over anchors (with at least one positive) of `-mean_{p in P(i)} log_prob(i, p)`.
fn mean_over_positives(log_prob: &Tensor, positives: &Tensor) -> Tensor {
    let positives = positives.to_kind(Kind::Float);
    let count = positives.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let per_anchor =
        -(log_prob * &positives).sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            / count.clamp_min(1.0);
    let has = count.gt(0.0).to_kind(Kind::Float);
    (per_anchor * &has).sum(Kind::Float) / has.sum(Kind::Float).clamp_min(1.0)
}

/// SupCon L_out (Khosla et al. 2020): for each of the 2B anchors, the mean over its
/// same-class samples p != i of `-log exp(s_ip/tau) / sum_{a != i} exp(s_ia/tau)`.
pub fn supcon(z1: &Tensor, z2: &Tensor, labels: &Tensor, tau: f64) -> Tensor {
    let (log_prob, eye) = log_prob_without_self(&logits(z1, z2, tau));
    let y = Tensor::cat(&[labels, labels], 0);
    let same = y
        .unsqueeze(1)
        .eq_tensor(&y.unsqueeze(0))
        .logical_and(&eye.logical_not());
    mean_over_positives(&log_prob, &same)
}

/// Class-conditional InfoNCE (Chen et al. 2022): the other view is the positive and only the
/// anchor's own class supplies negatives: `-log exp(s_ip/tau) / sum_{a != i, y_a = y_i} exp(s_ia/tau)`.
pub fn class_conditional_nce(z1: &Tensor, z2: &Tensor, labels: &Tensor, tau: f64) -> Tensor {
    let b = z1.size()[0];
    let y = Tensor::cat(&[labels, labels], 0);
    let other_class = y.unsqueeze(1).ne_tensor(&y.unsqueeze(0));
    let restricted = logits(z1, z2, tau).masked_fill(&other_class, f64::NEG_INFINITY);
    let (log_prob, _) = log_prob_without_self(&restricted);
    let index = Tensor::arange(2 * b, (Kind::Int64, z1.device()));
    let positive = (&index + b).remainder(2 * b);
    -log_prob
        .gather(1, &positive.unsqueeze(1), false)
        .mean(Kind::Float)
}

/// Wang & Isola's alignment `mean ||x - y||^2` of normalised views.
pub fn alignment(z1: &Tensor, z2: &Tensor) -> Tensor {
    (normalize(z1) - normalize(z2))
        .pow_tensor_scalar(2)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .mean(Kind::Float)
}

/// Wang & Isola's uniformity `log mean_{i<j} exp(-t ||x_i - x_j||^2)` of normalised rows.
pub fn uniformity(z: &Tensor, t: f64) -> Tensor {
    let x = normalize(z);
    let n = x.size()[0];
    let sq: Tensor = (x.matmul(&x.tr()) * -2.0 + 2.0).clamp_min(0.0);
    let upper = Tensor::ones([n, n], (Kind::Bool, z.device())).triu(1);
    let values = (sq * -t).masked_select(&upper);
    values.logsumexp([0], false) - ((n * (n - 1) / 2) as f64).ln()
}

/// Align-uniform: `align + w (unif(z1) + unif(z2)) / 2` with t = 2.
pub fn align_uniform(z1: &Tensor, z2: &Tensor, uniformity_weight: f64) -> Tensor {
    alignment(z1, z2) + (uniformity(z1, 2.0) + uniformity(z2, 2.0)) * (uniformity_weight / 2.0)
}

/// CLIP's symmetric InfoNCE (Radford et al. 2021) of matched rows `za[i]`, `zb[i]` (B x D):
/// with `s = exp(logit_scale)` and logits `L = s za_n zb_n^T` of the normalised rows,
/// `(CE(L, i) + CE(L^T, i)) / 2`, each cross-entropy the mean over the B rows of
/// `-log softmax(L)_{ii}` (open_clip's `ClipLoss`).
pub fn clip_loss(za: &Tensor, zb: &Tensor, logit_scale: &Tensor) -> Tensor {
    let logits = normalize(za).matmul(&normalize(zb).tr()) * logit_scale.exp();
    let target = Tensor::arange(za.size()[0], (Kind::Int64, za.device()));
    (logits.cross_entropy_for_logits(&target) + logits.tr().cross_entropy_for_logits(&target)) / 2.0
}

/// SigLIP's sigmoid loss (Zhai et al. 2023) of matched rows `za[i]`, `zb[i]` (B x D): with
/// logits `L = exp(t') za_n zb_n^T + b` and `y_ij = 1` for `i = j`, `-1` otherwise,
/// `-(1/B) sum_{i,j} log sigmoid(y_ij L_ij)` (big_vision's and open_clip's `SigLipLoss`).
pub fn siglip_loss(za: &Tensor, zb: &Tensor, logit_scale: &Tensor, logit_bias: &Tensor) -> Tensor {
    let b = za.size()[0];
    let logits = normalize(za).matmul(&normalize(zb).tr()) * logit_scale.exp() + logit_bias;
    let signs = Tensor::eye(b, (Kind::Float, za.device())) * 2.0 - 1.0;
    -(logits * signs).log_sigmoid().sum(Kind::Float) / b as f64
}
