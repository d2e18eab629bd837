//! Embeddings: L2-normalised backbone features of every image, computed in batches.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::threat::{l2_normalize, Backbone, ImageBatchSource};

/// `N` feature vectors, row-major: unit length from [`embed`], raw from [`features`].
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    pub data: Vec<f32>,
    pub dim: usize,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        if self.dim == 0 {
            0
        } else {
            self.data.len() / self.dim
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Embeds every image of `images` with `backbone`, `batch_size` at a time.
pub fn embed<B: Backend>(
    backbone: &Backbone<B>,
    images: &ImageBatchSource,
    batch_size: usize,
    device: &B::Device,
) -> Embeddings {
    forward_all(backbone, images, batch_size, device, l2_normalize)
}

/// The raw (unnormalised) backbone features of every image of `images`.
pub fn features<B: Backend>(
    backbone: &Backbone<B>,
    images: &ImageBatchSource,
    batch_size: usize,
    device: &B::Device,
) -> Embeddings {
    forward_all(backbone, images, batch_size, device, |f| f)
}

fn forward_all<B: Backend>(
    backbone: &Backbone<B>,
    images: &ImageBatchSource,
    batch_size: usize,
    device: &B::Device,
    finish: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Embeddings {
    let mut data = Vec::new();
    let mut dim = 0;
    let indices: Vec<usize> = (0..images.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let features = finish(backbone.forward(images.batch::<B>(chunk, device)));
        dim = features.dims()[1];
        data.extend(features.into_data().iter::<f32>());
    }
    Embeddings { data, dim }
}
