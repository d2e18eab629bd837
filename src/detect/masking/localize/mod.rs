//! Localisers: where in an image the evidence for its cluster sits. Cluster activation masking
//! ([`cam`], PoisonCAM's own) and Grad-CAM (the PatchSearch baseline's) both implement
//! [`Localize`], and [`locate`] picks one by [`crate::detect::Localizer`].

pub mod cam;
pub mod gradcam;

use burn::tensor::backend::Backend;

use crate::detect::embed::Embed;
use crate::detect::masking::activation::ActivationProbe;
use crate::detect::masking::cluster::Clusters;
use crate::detect::masking::localize::gradcam::GradCam;
use crate::detect::{DetectorConfig, Localizer};
use crate::error::Result;
use crate::image::{ImageBatchSource, PixelBox};

/// What a localiser looks at: the encoder, its clusters, a probe on them, and the images.
pub struct Scene<'a, B: Backend> {
    /// The model whose clusters are explained.
    pub encoder: &'a dyn Embed<B>,
    /// Its clusters of the images.
    pub clusters: &'a Clusters,
    /// Cluster activation of edited images, on the same encoder and clusters.
    pub probe: &'a ActivationProbe<'a, B>,
    /// The images, at the working size.
    pub images: &'a ImageBatchSource,
    /// Where the encoder runs.
    pub device: &'a B::Device,
}

/// The box that holds an image in its cluster, with the localiser's own score (masking: the
/// largest activation drop; Grad-CAM: the map's peak).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Located {
    /// Where the evidence sits, in working-size pixels.
    pub trigger_box: PixelBox,
    /// How strongly: higher is more trigger-like.
    pub score: f32,
}

/// Finds, in each image of `indices`, the box that holds it in cluster `targets[i]`.
pub trait Localize<B: Backend> {
    /// One box and score per index, in the order of `indices`.
    fn localize(&self, scene: &Scene<'_, B>, indices: &[usize], targets: &[usize]) -> Result<Vec<Located>>;
}

/// The `side × side` box with the largest heat sum, at any pixel offset (summed-area table).
pub fn hottest_box(heat: &[f32], h: usize, w: usize, side: usize) -> PixelBox {
    // A window larger than the map is clipped to it rather than underflowing the scan.
    let side = side.min(h).min(w);
    if side == 0 {
        return PixelBox { x: 0, y: 0, w: 0, h: 0 };
    }
    let mut table = vec![0.0f64; (h + 1) * (w + 1)];
    for y in 0..h {
        for x in 0..w {
            table[(y + 1) * (w + 1) + x + 1] =
                heat[y * w + x] as f64 + table[y * (w + 1) + x + 1] + table[(y + 1) * (w + 1) + x]
                    - table[y * (w + 1) + x];
        }
    }
    let mut best = (f64::NEG_INFINITY, 0, 0);
    for y in 0..=h - side {
        for x in 0..=w - side {
            let s = table[(y + side) * (w + 1) + x + side]
                - table[y * (w + 1) + x + side]
                - table[(y + side) * (w + 1) + x]
                + table[y * (w + 1) + x];
            if s > best.0 {
                best = (s, x, y);
            }
        }
    }
    PixelBox { x: best.1, y: best.2, w: side, h: side }
}

/// The trigger box and localisation score of each of `indices`, toward cluster `targets[i]`
/// (its own), by the configured localiser.
#[allow(clippy::too_many_arguments)]
pub fn locate<B: Backend>(
    backbone: &dyn Embed<B>,
    clusters: &Clusters,
    probe: &ActivationProbe<B>,
    images: &ImageBatchSource,
    indices: &[usize],
    targets: &[usize],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<Vec<(PixelBox, f32)>> {
    let [_, _, h, w] = images.shape();
    let gradcam = GradCam { side: config.cam.window_side(h, w), batch_size: config.batch_size };
    let localizer: &dyn Localize<B> = match config.localizer {
        Localizer::PoisonCam => &config.cam,
        Localizer::PatchSearch => &gradcam,
    };
    let scene = Scene { encoder: backbone, clusters, probe, images, device };
    Ok(localizer.localize(&scene, indices, targets)?.into_iter().map(|l| (l.trigger_box, l.score)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hottest_box_finds_the_hot_spot() {
        let (h, w) = (12, 10);
        let mut heat = vec![0.1f32; h * w];
        for y in 5..8 {
            for x in 2..5 {
                heat[y * w + x] = 1.0;
            }
        }
        assert_eq!(hottest_box(&heat, h, w, 3), PixelBox { x: 2, y: 5, w: 3, h: 3 });
    }

    #[test]
    fn a_window_larger_than_the_map_is_clipped() {
        assert_eq!(hottest_box(&[0.0, 1.0, 2.0, 3.0], 2, 2, 5), PixelBox { x: 0, y: 0, w: 2, h: 2 });
    }
}
