//! Localisers: where in an image the evidence for its cluster sits. Masking (cluster activation
//! masking, PoisonCAM's own) and Grad-CAM (the PatchSearch baseline's) both implement
//! [`Localize`], and the detector picks one by [`crate::detect::Localizer`].

pub mod gradcam;
pub mod masking;

use burn::tensor::backend::Backend;

use crate::detect::activation::ActivationProbe;
use crate::detect::cluster::Clusters;
use crate::detect::embed::Embed;
use crate::detect::threat::ImageBatchSource;
use crate::error::Result;
use crate::image::PixelBox;

/// What a localiser looks at: the encoder, its clusters, a probe on them, and the images.
pub struct Scene<'a, B: Backend> {
    pub encoder: &'a dyn Embed<B>,
    pub clusters: &'a Clusters,
    pub probe: &'a ActivationProbe<'a, B>,
    pub images: &'a ImageBatchSource,
    pub device: &'a B::Device,
}

/// The box that holds an image in its cluster, with the localiser's own score (masking: the
/// largest activation drop; Grad-CAM: the map's peak).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Located {
    pub trigger_box: PixelBox,
    pub score: f32,
}

/// Finds, in each image of `indices`, the box that holds it in cluster `targets[i]`.
pub trait Localize<B: Backend> {
    fn localize(&self, scene: &Scene<'_, B>, indices: &[usize], targets: &[usize]) -> Result<Vec<Located>>;
}
