//! The PatchSearch baseline's localisation (docs/design.md §3.6): Grad-CAM of the cluster score with
//! respect to the last convolutional feature map.
//!
//! The backbone ends in global average pooling, L2 normalisation and a dot product with the unit
//! centroid μ, so the gradient of s = cos(pool(A), μ) is constant over space:
//! ∂s/∂A_c,i,j = (μ_c − s·f̂_c) / (‖pool(A)‖·h·w). Grad-CAM's channel weights (the spatial mean of
//! that gradient) are therefore exact in closed form, and one forward pass per image suffices.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::detect::embed::Embed;
use crate::detect::masking::cluster::Clusters;
use crate::detect::masking::localize::{hottest_box, Localize, Located, Scene};
use crate::error::{Error, Result};
use crate::image::ImageBatchSource;
use crate::image::{Image, PixelBox};

/// A Grad-CAM map and what it locates.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCamResult {
    /// `H×W`, upsampled from the feature map.
    pub heat: Vec<f32>,
    /// The hottest window of the map.
    pub trigger_box: PixelBox,
    /// The peak of the map: PatchSearch's ranking of candidates within a cluster.
    pub peak: f32,
}

/// Spatial means of ∂cos(pool(A), μ)/∂A, times h·w (a positive factor that leaves boxes alone).
pub fn channel_weights<B: Backend>(pooled: Tensor<B, 2>, mu: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = pooled.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    let unit = pooled / norm.clone();
    let cos = (unit.clone() * mu.clone()).sum_dim(1);
    (mu - unit * cos) / norm
}

/// Grad-CAM for the images at `indices`, each toward its cluster, with boxes of `side` pixels.
pub fn grad_cam<B: Backend>(
    backbone: &dyn Embed<B>,
    clusters: &Clusters,
    images: &ImageBatchSource,
    indices: &[usize],
    targets: &[usize],
    side: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<GradCamResult>> {
    let [_, _, h, w] = images.shape();
    let dim = clusters.dim;
    let unit = clusters.unit_centroids();
    let mut out = Vec::with_capacity(indices.len());
    for (chunk, chunk_targets) in indices.chunks(batch_size.max(1)).zip(targets.chunks(batch_size.max(1))) {
        let n = chunk.len();
        let Some(map) = backbone.feature_map(images.batch::<B>(chunk, device)) else {
            return Err(Error::Config("Grad-CAM needs an encoder with a feature map (Embed::feature_map)".into()));
        };
        let [_, f, fh, fw] = map.dims();
        if fh < 2 || fw < 2 {
            return Err(Error::FeatureMapTooSmall { height: fh, width: fw });
        }
        let pooled = map.clone().mean_dim(3).mean_dim(2).reshape([n, f]);
        let mu: Vec<f32> = chunk_targets.iter().flat_map(|&t| unit[t * dim..(t + 1) * dim].to_vec()).collect();
        let mu = Tensor::<B, 2>::from_data(TensorData::new(mu, [n, dim]), device);
        let weights = channel_weights(pooled, mu);
        let cam = (map * weights.reshape([n, f, 1, 1])).sum_dim(1).clamp_min(0.0);
        let maps: Vec<f32> = cam.into_data().iter::<f32>().collect();
        for small in maps.chunks(fh * fw) {
            let heat = Image::new(1, fh, fw, small.to_vec())
                .map(|m| m.resized(h, w).pixels().to_vec())
                .unwrap_or_else(|_| vec![0.0; h * w]);
            let peak = heat.iter().copied().fold(0.0f32, f32::max);
            out.push(GradCamResult { trigger_box: hottest_box(&heat, h, w, side), heat, peak });
        }
    }
    Ok(out)
}

/// Grad-CAM as a localiser: boxes of `side` pixels, `batch_size` images per forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GradCam {
    /// Side of the located box, in pixels.
    pub side: usize,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl<B: Backend> Localize<B> for GradCam {
    fn localize(&self, scene: &Scene<'_, B>, indices: &[usize], targets: &[usize]) -> Result<Vec<Located>> {
        let maps = grad_cam(
            scene.encoder,
            scene.clusters,
            scene.images,
            indices,
            targets,
            self.side,
            self.batch_size,
            scene.device,
        )?;
        Ok(maps.into_iter().map(|r| Located { trigger_box: r.trigger_box, score: r.peak }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Train;
    use burn::tensor::Distribution;

    #[test]
    fn closed_form_weights_match_autodiff() {
        let device = Default::default();
        let map = Tensor::<Train, 4>::random([3, 5, 4, 4], Distribution::Uniform(0.0, 1.0), &device).require_grad();
        let mu = Tensor::<Train, 2>::random([3, 5], Distribution::Uniform(-1.0, 1.0), &device);
        let mu = mu.clone() / mu.powi_scalar(2).sum_dim(1).sqrt();
        let pooled = map.clone().mean_dim(3).mean_dim(2).reshape([3, 5]);
        let unit = pooled.clone() / pooled.clone().powi_scalar(2).sum_dim(1).sqrt();
        let score = (unit * mu.clone()).sum();
        let grads = score.backward();
        let grad = map.grad(&grads).expect("the map requires grad");
        let autodiff: Vec<f32> =
            (grad.mean_dim(3).mean_dim(2).reshape([3, 5]) * 16.0).into_data().iter::<f32>().collect();
        let closed: Vec<f32> = channel_weights(pooled.inner(), mu.inner()).into_data().iter::<f32>().collect();
        for (a, b) in autodiff.iter().zip(&closed) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
