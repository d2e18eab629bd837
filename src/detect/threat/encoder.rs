//! The threat model: a small ResNet backbone and a 2-layer projection head (docs/design.md §3.1).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::conv::{conv2d, conv2d_fused, fold_norm};
use super::norm::{BatchNorm2d, BatchNorm2dConfig, NormStatistics};

/// Shape of the threat model.
#[derive(Config, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Input channels (1 for grey, 3 for RGB).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Widths of the three stages (strides 1, 2, 2); the last is the feature size.
    /// The original design's starting point was 32/64/128; on Flex (2 cores, 28×28, batch 256) that trains at
    /// 63 img/s against 142 img/s for 16/32/64, and a ten-epoch warm start must fit in minutes.
    #[config(default = "[16, 32, 64]")]
    pub widths: [usize; 3],
    /// Output size of the projection head.
    #[config(default = 64)]
    pub projection_dim: usize,
}

impl EncoderConfig {
    /// Rejects shapes that cannot be built.
    pub fn check(&self) -> crate::Result<()> {
        use crate::check::at_least;
        at_least("warm_start.encoder.in_channels", self.in_channels, 1, "at least 1")?;
        for width in self.widths {
            at_least("warm_start.encoder.widths", width, 1, "at least 1 each")?;
        }
        at_least("warm_start.encoder.projection_dim", self.projection_dim, 1, "at least 1")
    }
}

impl EncoderConfig {
    /// Length of the backbone's features.
    pub fn feature_dim(&self) -> usize {
        self.widths[2]
    }

    /// A model of this shape, with burn's default initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ThreatModel<B> {
        let [w1, w2, w3] = self.widths;
        ThreatModel {
            backbone: Backbone {
                stem: conv3x3(self.in_channels, w1, 1, device),
                stem_norm: BatchNorm2dConfig::new(w1).init(device),
                blocks: vec![
                    BasicBlock::new(w1, w1, 1, device),
                    BasicBlock::new(w1, w2, 2, device),
                    BasicBlock::new(w2, w3, 2, device),
                ],
            },
            head: ProjectionHead {
                hidden: LinearConfig::new(w3, w3).init(device),
                out: LinearConfig::new(w3, self.projection_dim).init(device),
            },
        }
    }
}

fn conv3x3<B: Backend>(cin: usize, cout: usize, stride: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// Whether the norms use their running statistics and nothing records gradients: then each
/// norm folds into its convolution, and a layer is one fused pass (on Flex, one host pass).
fn inference<B: Backend>(x: &Tensor<B, 4>, stats: NormStatistics) -> bool {
    stats == NormStatistics::ByBackend && !B::ad_enabled(&x.device())
}

/// `relu?(norm(conv(x)) + residual)` in inference mode, the norm folded into the kernel.
fn folded<B: Backend>(
    conv: &Conv2d<B>,
    norm: &BatchNorm2d<B>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    relu: bool,
) -> Tensor<B, 4> {
    let (statistics, eps) = norm.inference_statistics();
    let (weight, shift) = fold_norm(conv.weight.val(), statistics, eps);
    let mut scaled = conv.clone();
    scaled.weight = burn::module::Param::from_tensor(weight);
    conv2d_fused(&scaled, x, shift, residual, relu)
}

/// Two 3×3 convolutions with a residual connection (a 1×1 projection when the shape changes).
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv1: Conv2d<B>,
    norm1: BatchNorm2d<B>,
    conv2: Conv2d<B>,
    norm2: BatchNorm2d<B>,
    shortcut: Option<(Conv2d<B>, BatchNorm2d<B>)>,
}

impl<B: Backend> BasicBlock<B> {
    fn new(cin: usize, cout: usize, stride: usize, device: &B::Device) -> Self {
        let shortcut = (stride != 1 || cin != cout).then(|| {
            (
                Conv2dConfig::new([cin, cout], [1, 1]).with_stride([stride, stride]).with_bias(false).init(device),
                BatchNorm2dConfig::new(cout).init(device),
            )
        });
        Self {
            conv1: conv3x3(cin, cout, stride, device),
            norm1: BatchNorm2dConfig::new(cout).init(device),
            conv2: conv3x3(cout, cout, 1, device),
            norm2: BatchNorm2dConfig::new(cout).init(device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<B, 4>, stats: NormStatistics) -> Tensor<B, 4> {
        if inference::<B>(&x, stats) {
            let skip = match &self.shortcut {
                Some((conv, norm)) => folded(conv, norm, x.clone(), None, false),
                None => x.clone(),
            };
            let y = folded(&self.conv1, &self.norm1, x, None, true);
            return folded(&self.conv2, &self.norm2, y, Some(skip), true);
        }
        let skip = match &self.shortcut {
            Some((conv, norm)) => norm.forward_with(conv2d(conv, x.clone()), stats),
            None => x.clone(),
        };
        let y = self.norm1.forward_then(conv2d(&self.conv1, x), None, true, stats);
        self.norm2.forward_then(conv2d(&self.conv2, y), Some(skip), true, stats)
    }
}

/// The feature extractor whose embeddings the detector clusters.
#[derive(Module, Debug)]
pub struct Backbone<B: Backend> {
    stem: Conv2d<B>,
    stem_norm: BatchNorm2d<B>,
    blocks: Vec<BasicBlock<B>>,
}

impl<B: Backend> Backbone<B> {
    /// The last convolutional feature map, `N×F×h×w` (what Grad-CAM looks at).
    pub fn feature_map(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.feature_map_with(images, NormStatistics::ByBackend)
    }

    fn feature_map_with(&self, images: Tensor<B, 4>, stats: NormStatistics) -> Tensor<B, 4> {
        let mut x = if inference::<B>(&images, stats) {
            folded(&self.stem, &self.stem_norm, images, None, true)
        } else {
            self.stem_norm.forward_then(conv2d(&self.stem, images), None, true, stats)
        };
        for block in &self.blocks {
            x = block.forward(x, stats);
        }
        x
    }

    /// Globally average-pooled features, `N×F`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_with(images, NormStatistics::ByBackend)
    }

    /// [`Self::forward`] with the batch norms' statistics chosen explicitly.
    pub fn forward_with(&self, images: Tensor<B, 4>, stats: NormStatistics) -> Tensor<B, 2> {
        let map = self.feature_map_with(images, stats);
        let [n, f, _, _] = map.dims();
        map.mean_dim(3).mean_dim(2).reshape([n, f])
    }
}

/// The 2-layer MLP that SimCLR and MoCo put on top of the backbone during training only.
#[derive(Module, Debug)]
pub struct ProjectionHead<B: Backend> {
    hidden: Linear<B>,
    out: Linear<B>,
}

impl<B: Backend> ProjectionHead<B> {
    /// Projections of backbone features.
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.out.forward(relu(self.hidden.forward(features)))
    }
}

/// Backbone plus projection head.
#[derive(Module, Debug)]
pub struct ThreatModel<B: Backend> {
    /// What the detector looks through.
    pub backbone: Backbone<B>,
    /// Used in training only.
    pub head: ProjectionHead<B>,
}

impl<B: Backend> ThreatModel<B> {
    /// Projections used by the contrastive loss.
    pub fn project(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head.forward(self.backbone.forward(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn shapes_follow_the_config() {
        let device = Default::default();
        let config = EncoderConfig::new().with_widths([4, 8, 16]).with_projection_dim(6);
        let model = config.init::<Flex>(&device);
        let images = Tensor::<Flex, 4>::zeros([2, 1, 28, 28], &device);
        assert_eq!(model.backbone.feature_map(images.clone()).dims(), [2, 16, 7, 7]);
        assert_eq!(model.backbone.forward(images.clone()).dims(), [2, 16]);
        assert_eq!(model.project(images).dims(), [2, 6]);
    }
}
