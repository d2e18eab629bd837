//! Embeddings: L2-normalised features of every image, computed in batches by any [`Embed`] model.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::detect::threat::{l2_normalize, Backbone};
use crate::image::ImageBatchSource;

/// A model the detector looks through: the warm-started threat model, or your own encoder (an
/// SSL checkpoint) handed to `PoisonFilter::fit_with_encoder`.
///
/// Masking, the paste test and the poison classifier need only [`Embed::features`]; Grad-CAM
/// (the PatchSearch localiser) also needs [`Embed::feature_map`].
///
/// ```
/// use burn::backend::Flex;
/// use burn::module::Module;
/// use burn::nn::conv::{Conv2d, Conv2dConfig};
/// use burn::tensor::{backend::Backend, Tensor};
/// use poisoncam::detect::embed::Embed;
///
/// /// One convolution and a global average pool: any burn module will do.
/// #[derive(Module, Debug)]
/// struct Tiny<B: Backend> {
///     conv: Conv2d<B>,
/// }
///
/// impl<B: Backend> Embed<B> for Tiny<B> {
///     fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
///         let map = self.conv.forward(images);
///         let [n, f, _, _] = map.dims();
///         map.mean_dim(3).mean_dim(2).reshape([n, f])
///     }
/// }
///
/// let device = Default::default();
/// let tiny = Tiny::<Flex> { conv: Conv2dConfig::new([1, 8], [3, 3]).init(&device) };
/// let features = tiny.features(Tensor::zeros([2, 1, 28, 28], &device));
/// assert_eq!(features.dims(), [2, 8]);
/// ```
pub trait Embed<B: Backend> {
    /// Features of a batch of `N×C×H×W` images (values in [0, 1]), `N×F`, before normalisation.
    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2>;

    /// The last convolutional feature map, `N×F×h×w`, whose spatial mean is [`Embed::features`].
    /// `None` (the default) means the model has none, and Grad-CAM refuses it with a config error.
    fn feature_map(&self, _images: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
        None
    }
}

impl<B: Backend> Embed<B> for Backbone<B> {
    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(images)
    }

    fn feature_map(&self, images: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
        Some(Backbone::feature_map(self, images))
    }
}

/// `N` feature vectors, row-major: unit length from [`embed`], raw from [`features`].
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// `len × dim` values, row-major.
    pub data: Vec<f32>,
    /// Length of each vector.
    pub dim: usize,
}

impl Embeddings {
    /// The number of vectors.
    pub fn len(&self) -> usize {
        if self.dim == 0 {
            0
        } else {
            self.data.len() / self.dim
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Embeds every image of `images` with `backbone`, `batch_size` at a time.
pub fn embed<B: Backend>(
    backbone: &dyn Embed<B>,
    images: &ImageBatchSource,
    batch_size: usize,
    device: &B::Device,
) -> Embeddings {
    forward_all(backbone, images, batch_size, device, l2_normalize)
}

/// The raw (unnormalised) backbone features of every image of `images`.
pub fn features<B: Backend>(
    backbone: &dyn Embed<B>,
    images: &ImageBatchSource,
    batch_size: usize,
    device: &B::Device,
) -> Embeddings {
    forward_all(backbone, images, batch_size, device, |f| f)
}

fn forward_all<B: Backend>(
    backbone: &dyn Embed<B>,
    images: &ImageBatchSource,
    batch_size: usize,
    device: &B::Device,
    finish: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Embeddings {
    let mut data = Vec::new();
    let mut dim = 0;
    let indices: Vec<usize> = (0..images.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let features = finish(backbone.features(images.batch::<B>(chunk, device)));
        dim = features.dims()[1];
        data.extend(features.into_data().iter::<f32>());
    }
    Embeddings { data, dim }
}
