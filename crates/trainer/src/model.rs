//! A small ResNet-style CNN encoder with a projection head (and a linear classifier for the
//! cross-entropy loss), and the two towers of the CLIP and SigLIP losses.

use crate::losses::{clip_loss, siglip_loss, Loss};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Conv 3x3 + batch norm.
fn conv_bn(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::SequentialT {
    let config = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::seq_t()
        .add(nn::conv2d(vs / "conv", c_in, c_out, 3, config))
        .add(nn::batch_norm2d(vs / "bn", c_out, Default::default()))
}

/// A residual block: `relu(x + bn(conv(relu(bn(conv(x))))))`.
fn residual(vs: &nn::Path, channels: i64) -> impl ModuleT {
    let first = conv_bn(&(vs / "a"), channels, channels, 1);
    let second = conv_bn(&(vs / "b"), channels, channels, 1);
    nn::func_t(move |x, train| (x + x.apply_t(&first, train).relu().apply_t(&second, train)).relu())
}

/// Encoder (CNN + global average pooling) and projection head to `dim`.
pub struct Encoder {
    body: nn::SequentialT,
    head: nn::Sequential,
}

/// Width of the encoder's last block (the input of the projection head).
pub const FEATURES: i64 = 64;

impl Encoder {
    /// A new encoder for 1-channel images.
    pub fn new(vs: &nn::Path, dim: i64) -> Encoder {
        let body = nn::seq_t()
            .add(conv_bn(&(vs / "stem"), 1, 32, 1))
            .add_fn(|x| x.relu())
            .add(residual(&(vs / "block1"), 32))
            .add(conv_bn(&(vs / "down"), 32, FEATURES, 2))
            .add_fn(|x| x.relu())
            .add(residual(&(vs / "block2"), FEATURES))
            .add_fn(|x| x.adaptive_avg_pool2d([1, 1]).flatten(1, -1));
        let head = nn::seq()
            .add(nn::linear(vs / "proj1", FEATURES, 128, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(vs / "proj2", 128, dim, Default::default()));
        Encoder { body, head }
    }

    /// Embeddings (projection-head outputs, not normalised) of a batch of images (B, 1, H, W).
    pub fn embed(&self, images: &Tensor, train: bool) -> Tensor {
        images.apply_t(&self.body, train).apply(&self.head)
    }
}

/// CLIP's upper bound on the logit scale `exp(logit_scale)` (open_clip clamps
/// `logit_scale` to `[0, ln 100]` after every step).
pub const MAX_LOGIT_SCALE: f64 = 100.0;

/// Two towers, one per modality of each item: the top and the bottom half of an image
/// (rows `[0, H/2)` and `[H/2, H)`), each with its own encoder, and the learnable logit scale
/// (and SigLIP's bias) of the loss.
pub struct TwoTower {
    /// The encoder of the top halves (var store path `top`).
    pub top: Encoder,
    /// The encoder of the bottom halves (`bottom`).
    pub bottom: Encoder,
    /// `log s` (`logit_scale`): CLIP starts at `ln(1 / tau)`, SigLIP at `ln 10`.
    pub logit_scale: Tensor,
    /// SigLIP's bias `b` (`logit_bias`, starting at -10); `None` for CLIP.
    pub logit_bias: Option<Tensor>,
}

/// SigLIP's initial logit scale `t' = ln 10` and bias `b = -10` (Zhai et al. 2023).
pub const SIGLIP_INITIAL: (f64, f64) = (std::f64::consts::LN_10, -10.0);

impl TwoTower {
    /// Two new towers for `loss` (CLIP or SigLIP); CLIP's temperature starts at `temperature`.
    pub fn new(vs: &nn::Path, dim: i64, loss: Loss, temperature: f64) -> TwoTower {
        let scale = match loss {
            Loss::Siglip => SIGLIP_INITIAL.0,
            _ => (1.0 / temperature).ln(),
        };
        let logit_scale = vs.var("logit_scale", &[], nn::Init::Const(scale));
        let logit_bias = (loss == Loss::Siglip)
            .then(|| vs.var("logit_bias", &[], nn::Init::Const(SIGLIP_INITIAL.1)));
        TwoTower {
            top: Encoder::new(&(vs / "top"), dim),
            bottom: Encoder::new(&(vs / "bottom"), dim),
            logit_scale,
            logit_bias,
        }
    }

    /// The top and the bottom halves of images (B, 1, H, W).
    pub fn halves(images: &Tensor) -> (Tensor, Tensor) {
        let h = images.size()[2];
        (
            images.narrow(2, 0, h / 2),
            images.narrow(2, h / 2, h - h / 2),
        )
    }

    /// Both towers' embeddings (not normalised) of the halves of `images`.
    pub fn embed(&self, images: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (top, bottom) = TwoTower::halves(images);
        (
            self.top.embed(&top, train),
            self.bottom.embed(&bottom, train),
        )
    }

    /// The loss of matched embeddings `za[i]`, `zb[i]`, in f32.
    pub fn loss(&self, za: &Tensor, zb: &Tensor) -> Tensor {
        let (za, zb) = (za.to_kind(Kind::Float), zb.to_kind(Kind::Float));
        match &self.logit_bias {
            Some(bias) => siglip_loss(&za, &zb, &self.logit_scale, bias),
            None => clip_loss(&za, &zb, &self.logit_scale),
        }
    }

    /// Keep the logit scale in `[0, ln 100]` (open_clip's clamp after each step).
    pub fn clamp(&self) {
        tch::no_grad(|| {
            let mut scale = self.logit_scale.shallow_clone();
            let _ = scale.clamp_(0.0, MAX_LOGIT_SCALE.ln());
        });
    }
}
