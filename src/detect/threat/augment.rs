//! SimCLR-style augmentations, batched on the device as tensor ops.
//!
//! Only the per-sample parameters (crop boxes, flips, jitter factors) are drawn on the CPU, from a
//! seeded generator, so a run is reproducible on any backend; the pixel work is one `grid_sample`
//! and a few broadcast multiplies per batch.

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::RngExt;

use crate::error::{Error, Result};

/// Augmentation strengths; defaults follow SimCLR's recipe for small images.
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Smallest crop area as a share of the image. Milder crops (larger values) keep a small trigger
    /// in both views more often, which is what lets a short warm start learn it.
    #[config(default = 0.2)]
    pub crop_scale_min: f64,
    /// Largest crop area, as a share of the image. Default 1.
    #[config(default = 1.0)]
    pub crop_scale_max: f64,
    /// Aspect ratios of the crop are drawn log-uniformly from [1/r, r].
    #[config(default = 1.333)]
    pub crop_ratio: f64,
    /// Probability of a horizontal flip. Default 0.5.
    #[config(default = 0.5)]
    pub flip_prob: f64,
    /// Brightness factor drawn from [1 − b, 1 + b].
    #[config(default = 0.4)]
    pub brightness: f64,
    /// Contrast factor drawn from [1 − c, 1 + c].
    #[config(default = 0.4)]
    pub contrast: f64,
    /// Saturation factor drawn from [1 − s, 1 + s] (RGB only).
    #[config(default = 0.4)]
    pub saturation: f64,
    /// Probability of turning a view grey (RGB only).
    #[config(default = 0.2)]
    pub grey_prob: f64,
}

impl AugmentConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        use crate::check::{fraction, non_negative, positive, share};
        fraction("warm_start.augment.crop_scale_min", self.crop_scale_min)?;
        share("warm_start.augment.crop_scale_max", self.crop_scale_max)?;
        if self.crop_scale_max < self.crop_scale_min {
            return Err(Error::InvalidSetting {
                name: "warm_start.augment.crop_scale_max",
                value: self.crop_scale_max.to_string(),
                expected: "at least crop_scale_min",
            });
        }
        positive("warm_start.augment.crop_ratio", self.crop_ratio)?;
        share("warm_start.augment.flip_prob", self.flip_prob)?;
        non_negative("warm_start.augment.brightness", self.brightness)?;
        non_negative("warm_start.augment.contrast", self.contrast)?;
        non_negative("warm_start.augment.saturation", self.saturation)?;
        share("warm_start.augment.grey_prob", self.grey_prob)
    }
}

/// Per-sample parameters of one augmented view.
#[derive(Clone, Debug, PartialEq)]
struct ViewParams {
    /// Crop centre and half-extent in normalised [-1, 1] coordinates; a negative `half_w` flips.
    center: [f32; 2],
    half: [f32; 2],
    brightness: f32,
    contrast: f32,
    saturation: f32,
    grey: bool,
}

impl AugmentConfig {
    fn draw(&self, rng: &mut StdRng) -> ViewParams {
        let lo = self.crop_scale_min.clamp(0.01, 1.0);
        let hi = self.crop_scale_max.clamp(lo, 1.0);
        let area = rng.random_range(lo..=hi);
        let log_r = self.crop_ratio.max(1.0).ln();
        let ratio = rng.random_range(-log_r..=log_r).exp();
        let w = (area * ratio).sqrt().min(1.0) as f32;
        let h = (area / ratio).sqrt().min(1.0) as f32;
        let cx = rng.random_range(-1.0 + w..=1.0 - w);
        let cy = rng.random_range(-1.0 + h..=1.0 - h);
        let flip = rng.random_bool(self.flip_prob.clamp(0.0, 1.0));
        let mut factor = |amount: f64| rng.random_range(1.0 - amount..=1.0 + amount.max(0.0)) as f32;
        let brightness = factor(self.brightness.clamp(0.0, 1.0));
        let contrast = factor(self.contrast.clamp(0.0, 1.0));
        let saturation = factor(self.saturation.clamp(0.0, 1.0));
        let grey = rng.random_bool(self.grey_prob.clamp(0.0, 1.0));
        ViewParams { center: [cx, cy], half: [if flip { -w } else { w }, h], brightness, contrast, saturation, grey }
    }

    /// The two views of a batch that a contrastive step compares, drawn in that order.
    pub fn views<B: Backend>(&self, images: Tensor<B, 4>, rng: &mut StdRng) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let first = self.augment(images.clone(), rng);
        (first, self.augment(images, rng))
    }

    /// One augmented view of each image in `images` (`N×C×H×W`, values in [0, 1]).
    pub fn augment<B: Backend>(&self, images: Tensor<B, 4>, rng: &mut StdRng) -> Tensor<B, 4> {
        let [n, c, h, w] = images.dims();
        let device = images.device();
        let params: Vec<ViewParams> = (0..n).map(|_| self.draw(rng)).collect();
        let column = |f: &dyn Fn(&ViewParams) -> f32| -> Tensor<B, 4> {
            let values: Vec<f32> = params.iter().map(f).collect();
            Tensor::from_data(TensorData::new(values, [n, 1, 1, 1]), &device)
        };

        // Random resized crop and flip: sample the crop box through an affine grid.
        let base = base_grid::<B>(h, w, &device);
        let half: Vec<f32> = params.iter().flat_map(|p| p.half).collect();
        let center: Vec<f32> = params.iter().flat_map(|p| p.center).collect();
        let half = Tensor::<B, 4>::from_data(TensorData::new(half, [n, 1, 1, 2]), &device);
        let center = Tensor::<B, 4>::from_data(TensorData::new(center, [n, 1, 1, 2]), &device);
        let grid = base * half + center;
        let options = GridSampleOptions::new(InterpolateMode::Bilinear)
            .with_padding_mode(GridSamplePaddingMode::Border)
            .with_align_corners(false);
        let mut x = images.grid_sample_2d(grid, options);

        x = x * column(&|p| p.brightness);
        let mean = x.clone().mean_dim(3).mean_dim(2).mean_dim(1);
        x = (x - mean.clone()) * column(&|p| p.contrast) + mean;
        if c == 3 {
            let grey = luminance(x.clone());
            x = grey.clone() + (x - grey.clone()) * column(&|p| p.saturation);
            let keep = column(&|p| if p.grey { 0.0 } else { 1.0 });
            x = x * keep.clone() + grey * (keep.neg() + 1.0);
        }
        x.clamp(0.0, 1.0)
    }
}

/// Output pixel centres in normalised coordinates (align_corners = false), `1×H×W×2` as (x, y).
fn base_grid<B: Backend>(h: usize, w: usize, device: &B::Device) -> Tensor<B, 4> {
    let mut values = Vec::with_capacity(h * w * 2);
    for i in 0..h {
        for j in 0..w {
            values.push((2 * j + 1) as f32 / w as f32 - 1.0);
            values.push((2 * i + 1) as f32 / h as f32 - 1.0);
        }
    }
    Tensor::from_data(TensorData::new(values, [1, h, w, 2]), device)
}

/// ITU-R 601 luminance of an RGB batch, kept as `N×1×H×W` so it broadcasts over channels.
fn luminance<B: Backend>(rgb: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = rgb.device();
    let weights = Tensor::<B, 4>::from_data(TensorData::new(vec![0.299f32, 0.587, 0.114], [1, 3, 1, 1]), &device);
    (rgb * weights).sum_dim(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use rand::SeedableRng;

    fn identity() -> AugmentConfig {
        AugmentConfig::new()
            .with_crop_scale_min(1.0)
            .with_crop_ratio(1.0)
            .with_flip_prob(0.0)
            .with_brightness(0.0)
            .with_contrast(0.0)
            .with_saturation(0.0)
            .with_grey_prob(0.0)
    }

    fn ramp(n: usize, c: usize, h: usize, w: usize) -> Tensor<Flex, 4> {
        let values: Vec<f32> = (0..n * c * h * w).map(|i| (i % 97) as f32 / 96.0).collect();
        Tensor::from_data(TensorData::new(values, [n, c, h, w]), &Default::default())
    }

    #[test]
    fn without_randomness_the_view_is_the_image() {
        let images = ramp(3, 3, 8, 6);
        let out = identity().augment(images.clone(), &mut StdRng::seed_from_u64(1));
        let diff: f32 = (out - images).abs().max().into_scalar();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn flip_mirrors_the_columns() {
        let images = ramp(2, 1, 4, 5);
        let out = identity().with_flip_prob(1.0).augment(images.clone(), &mut StdRng::seed_from_u64(1));
        let diff: f32 = (out - images.flip([3])).abs().max().into_scalar();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn same_seed_same_views_and_values_stay_in_range() {
        let images = ramp(4, 3, 10, 10);
        let config = AugmentConfig::new();
        let a = config.augment(images.clone(), &mut StdRng::seed_from_u64(9));
        let b = config.augment(images.clone(), &mut StdRng::seed_from_u64(9));
        let c = config.augment(images, &mut StdRng::seed_from_u64(10));
        assert_eq!(a.to_data(), b.to_data());
        assert_ne!(a.to_data(), c.to_data());
        let (lo, hi): (f32, f32) = (a.clone().min().into_scalar(), a.max().into_scalar());
        assert!(lo >= 0.0 && hi <= 1.0);
    }
}
