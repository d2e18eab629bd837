//! Cluster activation (DESIGN §3.3): the cosine between an image's backbone feature and a cluster
//! centroid, measured for many edited images at once. Masking and the paste test both reduce to it.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::detect::cluster::{cosines, Clusters};
use crate::detect::embed::Embed;

/// What one forward pass says about an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    /// Cosine to the centroid the caller asked about.
    pub toward: f32,
    /// The image's nearest centroid (by cosine).
    pub nearest: usize,
}

/// A backbone and unit centroids on one device, ready to measure batches of images.
pub struct ActivationProbe<'a, B: Backend> {
    backbone: &'a dyn Embed<B>,
    centroids: Tensor<B, 2>,
    image_shape: [usize; 3],
    batch_size: usize,
    device: B::Device,
    forwards: std::cell::Cell<usize>,
}

impl<'a, B: Backend> ActivationProbe<'a, B> {
    /// A probe of `clusters` through `backbone` for images of `image_shape`, `batch_size` per forward.
    pub fn new(
        backbone: &'a dyn Embed<B>,
        clusters: &Clusters,
        image_shape: [usize; 3],
        batch_size: usize,
        device: &B::Device,
    ) -> Self {
        let centroids = clusters.centroid_tensor(device);
        Self {
            backbone,
            centroids,
            image_shape,
            batch_size: batch_size.max(1),
            device: device.clone(),
            forwards: std::cell::Cell::new(0),
        }
    }

    /// Forward passes so far.
    pub fn forwards(&self) -> usize {
        self.forwards.get()
    }

    /// Measures `pixels` (consecutive `C×H×W` images), the i-th toward cluster `toward[i]`.
    pub fn measure(&self, pixels: &[f32], toward: &[usize]) -> Vec<Activation> {
        let [c, h, w] = self.image_shape;
        let size = c * h * w;
        let k = self.centroids.dims()[0];
        let mut out = Vec::with_capacity(toward.len());
        for (chunk, targets) in pixels.chunks(self.batch_size * size).zip(toward.chunks(self.batch_size)) {
            let n = targets.len();
            let images = Tensor::<B, 4>::from_data(TensorData::new(chunk.to_vec(), [n, c, h, w]), &self.device);
            let to_centroids = cosines(self.backbone.features(images), self.centroids.clone());
            let nearest = to_centroids.clone().argmax(1);
            let index = Tensor::<B, 1, Int>::from_data(
                TensorData::new(targets.iter().map(|&t| t.min(k - 1) as i64).collect::<Vec<_>>(), [n]),
                &self.device,
            )
            .reshape([n, 1]);
            let chosen = to_centroids.gather(1, index);
            let chosen: Vec<f32> = chosen.into_data().iter::<f32>().collect();
            let nearest: Vec<i64> = nearest.into_data().iter::<i64>().collect();
            out.extend(
                chosen
                    .into_iter()
                    .zip(nearest)
                    .map(|(toward, nearest)| Activation { toward, nearest: nearest as usize }),
            );
            self.forwards.set(self.forwards.get() + n);
        }
        out
    }
}
