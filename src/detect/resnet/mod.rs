//! The user's own encoder: a torchvision-layout ResNet (ResNet-18 to -152, the ImageNet or a
//! CIFAR stem) read from a PyTorch or safetensors checkpoint (docs/design.md §3.7).
//!
//! SSL trainers (solo-learn, lightly, MoCo, the SSL-backdoor reference code) save torchvision's
//! ResNet backbones; this is the model masking is meant to look through, since a warm start of
//! minutes does not learn a backdoor. The network runs in inference mode: every batch norm is
//! folded into the convolution before it when the checkpoint is read.

mod archive;
mod blocks;
mod import;
mod keys;
mod pickle;
pub(crate) mod problem;

pub use import::EncoderFile;
pub(crate) use pickle::walk as walk_pickle;
pub use problem::CheckpointProblem;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::module::{interpolate, max_pool2d};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::detect::embed::Embed;
use blocks::{Block, ConvNorm};

/// The torchvision architectures: the block and how many of them each of the four stages holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// BasicBlock, [2, 2, 2, 2].
    ResNet18,
    /// BasicBlock, [3, 4, 6, 3].
    ResNet34,
    /// Bottleneck, [3, 4, 6, 3].
    ResNet50,
    /// Bottleneck, [3, 4, 23, 3].
    ResNet101,
    /// Bottleneck, [3, 8, 36, 3].
    ResNet152,
}

impl Arch {
    /// Every architecture, for reading one off a checkpoint.
    pub const ALL: [Arch; 5] = [Arch::ResNet18, Arch::ResNet34, Arch::ResNet50, Arch::ResNet101, Arch::ResNet152];

    /// Whether its blocks are bottlenecks (1×1, 3×3, 1×1, four times wider out).
    pub fn bottleneck(self) -> bool {
        matches!(self, Arch::ResNet50 | Arch::ResNet101 | Arch::ResNet152)
    }

    /// Blocks per stage.
    pub fn layers(self) -> [usize; 4] {
        match self {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => [3, 4, 6, 3],
            Arch::ResNet101 => [3, 4, 23, 3],
            Arch::ResNet152 => [3, 8, 36, 3],
        }
    }

    /// Its name as torchvision spells it (`resnet50`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
        }
    }
}

/// The first layers, which a state_dict shows only in part (a max-pool and a padding hold no
/// weights), so a 3×3 first convolution must be named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stem {
    /// torchvision's: 7×7 stride 2 padding 3, then a 3×3 max-pool of stride 2.
    Imagenet,
    /// 3×3 stride 1 padding 1 and no max-pool (lightly's and most CIFAR recipes).
    Cifar,
    /// 3×3 stride 1 padding 2 and no max-pool (solo-learn's CIFAR models).
    CifarPad2,
}

impl Stem {
    /// The first convolution's kernel side.
    pub fn kernel(self) -> usize {
        if self == Stem::Imagenet {
            7
        } else {
            3
        }
    }

    fn stride_and_padding(self) -> (usize, usize) {
        match self {
            Stem::Imagenet => (2, 3),
            Stem::Cifar => (1, 1),
            Stem::CifarPad2 => (1, 2),
        }
    }
}

/// How the pixels in [0, 1] are standardised before the first convolution, as the encoder was
/// trained: `(x − mean) / std` per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// torchvision's ImageNet statistics.
    Imagenet,
    /// CIFAR-10's statistics, as solo-learn uses them.
    Cifar,
    /// The pixels as they are.
    None,
}

impl Normalization {
    /// `(mean, std)` per RGB channel.
    pub fn statistics(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Normalization::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            Normalization::Cifar => ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
            Normalization::None => ([0.0; 3], [1.0; 3]),
        }
    }
}

/// A ResNet as read from a checkpoint: what is needed to build an empty one of the same shape
/// (a saved guard does this) and how its inputs are prepared.
#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    /// The block and depth.
    pub arch: Arch,
    /// The first layers.
    pub stem: Stem,
    /// Planes of the four stages (torchvision: 64, 128, 256, 512; a bottleneck's output is
    /// four times wider).
    #[config(default = "[64, 128, 256, 512]")]
    pub widths: [usize; 4],
    /// The side images are resized to (bilinearly) before the first convolution. Never guessed:
    /// the size the encoder was trained at.
    pub input_size: usize,
    /// How pixels are standardised. Never guessed: what the encoder was trained with.
    pub normalization: Normalization,
}

impl ResNetConfig {
    /// Rejects shapes that cannot be built.
    pub fn check(&self) -> crate::Result<()> {
        use crate::check::at_least;
        for width in self.widths {
            at_least("encoder.widths", width, 1, "at least 1 each")?;
        }
        at_least("encoder.input_size", self.input_size, 1, "at least 1")
    }

    /// Length of the features (the last stage's output channels).
    pub fn feature_dim(&self) -> usize {
        self.widths[3] * if self.arch.bottleneck() { 4 } else { 1 }
    }

    /// A model of this shape with placeholder weights, to load a saved record into.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let (stride, padding) = self.stem.stride_and_padding();
        let k = self.stem.kernel();
        let mut stages = Vec::new();
        let mut channels = self.widths[0];
        for (stage, (&planes, &blocks)) in self.widths.iter().zip(self.arch.layers().iter()).enumerate() {
            let mut layer = Vec::new();
            for b in 0..blocks {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let block = Block::new(channels, planes, stride, self.arch.bottleneck(), device);
                channels = block.channels_out();
                layer.push(block);
            }
            stages.push(layer);
        }
        let (mean, std) = self.normalization.statistics();
        ResNet {
            stem: ConvNorm::new([3, self.widths[0]], k, stride, padding, device),
            max_pool: self.stem == Stem::Imagenet,
            stages,
            input_size: self.input_size,
            mean,
            std,
        }
    }
}

/// A torchvision ResNet backbone in inference mode, without its `fc` head.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    stem: ConvNorm<B>,
    max_pool: bool,
    stages: Vec<Vec<Block<B>>>,
    input_size: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

impl<B: Backend> ResNet<B> {
    /// Images in [0, 1] (`N×1×H×W` grey, replicated to RGB, or `N×3×H×W`) as the first
    /// convolution takes them: RGB, `input_size` square, standardised.
    fn prepare(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, c, h, w] = images.dims();
        let mut x = if c == 1 { images.repeat_dim(1, 3) } else { images };
        if [h, w] != [self.input_size; 2] {
            let options = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false);
            x = interpolate(x, [self.input_size; 2], options);
        }
        let device = x.device();
        let mean = Tensor::<B, 1>::from_floats(self.mean.as_slice(), &device).reshape([1, 3, 1, 1]);
        let std = Tensor::<B, 1>::from_floats(self.std.as_slice(), &device).reshape([1, 3, 1, 1]);
        (x - mean) / std
    }

    /// The last stage's output, `N×F×h×w`.
    pub fn feature_map(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = self.stem.forward(self.prepare(images), None, true);
        if self.max_pool {
            x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for stage in &self.stages {
            for block in stage {
                x = block.forward(x);
            }
        }
        x
    }

    /// Globally average-pooled features, `N×F`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let map = self.feature_map(images);
        let [n, f, _, _] = map.dims();
        map.mean_dim(3).mean_dim(2).reshape([n, f])
    }
}

impl<B: Backend> Embed<B> for ResNet<B> {
    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(images)
    }

    fn feature_map(&self, images: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
        Some(ResNet::feature_map(self, images))
    }
}
