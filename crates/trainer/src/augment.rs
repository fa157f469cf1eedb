//! Augmentations on the device, for a whole batch at once: a random translation of up to
//! `pad` pixels with zero fill (random crop with padding), a random horizontal flip, and
//! Gaussian pixel noise.

use tch::{Kind, Tensor};

/// Augmentation parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Largest shift in pixels.
    pub pad: i64,
    /// Flip horizontally with probability 1/2.
    pub flip: bool,
    /// Std of the added Gaussian noise.
    pub noise: f64,
}

impl Augment {
    /// One augmented view of `images` (B, 1, H, W), drawn from tch's generator.
    pub fn view(&self, images: &Tensor) -> Tensor {
        let size = images.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let device = images.device();
        let options = (Kind::Float, device);
        // Integer shifts in [-pad, pad], as normalised grid offsets (align_corners = false).
        let shift = |extent: i64| {
            (Tensor::randint(2 * self.pad + 1, [b], (Kind::Int64, device)) - self.pad)
                .to_kind(Kind::Float)
                * (2.0 / extent as f64)
        };
        let (tx, ty) = (shift(w), shift(h));
        let sx = if self.flip {
            Tensor::randint(2, [b], (Kind::Int64, device)).to_kind(Kind::Float) * 2.0 - 1.0
        } else {
            Tensor::ones([b], options)
        };
        let zeros = Tensor::zeros([b], options);
        let ones = Tensor::ones([b], options);
        let theta = Tensor::stack(&[&sx, &zeros, &tx, &zeros, &ones, &ty], 1).view([b, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, [b, 1, h, w], false);
        // Nearest-neighbour sampling (mode 1) with zero padding (mode 0): whole-pixel shifts.
        let moved = images.grid_sampler(&grid, 1, 0, false);
        if self.noise > 0.0 {
            moved + Tensor::randn([b, 1, h, w], options) * self.noise
        } else {
            moved
        }
    }
}
