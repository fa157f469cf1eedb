//! A small ResNet-style CNN encoder with a projection head (and a linear classifier for the
//! cross-entropy loss).

use tch::nn::{self, ModuleT};
use tch::Tensor;

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
