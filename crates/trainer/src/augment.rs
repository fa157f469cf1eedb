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

/// The random draws of one augmented view: shifts in pixels, flips (+1 / -1), noise.
pub struct Draws {
    /// Horizontal and vertical shifts (B, Int64), in `[-pad, pad]`.
    pub shift_x: Tensor,
    pub shift_y: Tensor,
    /// +1, or -1 for a horizontal flip (B, Float).
    pub flip: Tensor,
    /// Added Gaussian noise (B, 1, H, W), when `noise > 0`.
    pub noise: Option<Tensor>,
}

impl Augment {
    /// Draw the randomness of one view of `images` (B, 1, H, W) from tch's generator.
    pub fn draw(&self, images: &Tensor) -> Draws {
        let size = images.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let device = images.device();
        let options = (Kind::Float, device);
        let shift = || Tensor::randint(2 * self.pad + 1, [b], (Kind::Int64, device)) - self.pad;
        let (shift_x, shift_y) = (shift(), shift());
        let flip = if self.flip {
            Tensor::randint(2, [b], (Kind::Int64, device)).to_kind(Kind::Float) * 2.0 - 1.0
        } else {
            Tensor::ones([b], options)
        };
        let noise = (self.noise > 0.0).then(|| Tensor::randn([b, 1, h, w], options) * self.noise);
        Draws {
            shift_x,
            shift_y,
            flip,
            noise,
        }
    }

    /// The view of `images` for `draws`: whole-pixel shifts and flips as an affine grid
    /// (normalised offsets, align_corners = false), nearest sampling with zero fill, noise.
    pub fn apply(images: &Tensor, draws: &Draws) -> Tensor {
        let size = images.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let options = (Kind::Float, images.device());
        let tx = draws.shift_x.to_kind(Kind::Float) * (2.0 / w as f64);
        let ty = draws.shift_y.to_kind(Kind::Float) * (2.0 / h as f64);
        let zeros = Tensor::zeros([b], options);
        let ones = Tensor::ones([b], options);
        let theta =
            Tensor::stack(&[&draws.flip, &zeros, &tx, &zeros, &ones, &ty], 1).view([b, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, [b, 1, h, w], false);
        // Nearest-neighbour sampling (mode 1) with zero padding (mode 0): whole-pixel shifts.
        let moved = images.grid_sampler(&grid, 1, 0, false);
        match &draws.noise {
            Some(noise) => moved + noise,
            None => moved,
        }
    }

    /// One augmented view of `images` (B, 1, H, W), drawn from tch's generator.
    pub fn view(&self, images: &Tensor) -> Tensor {
        Augment::apply(images, &self.draw(images))
    }
}
