//! torchvision's ResNet blocks in inference mode, each convolution with its batch norm folded in.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::detect::threat::conv::{conv2d_fused, fold_norm};

/// A convolution followed by an inference-mode batch norm, folded: the norm's per-channel scale
/// `γ / √(var + ε)` multiplies the kernel and its shift `β − mean · scale` is added after. The
/// kernel keeps no bias so that Flex runs it on the host convolution.
#[derive(Module, Debug)]
pub struct ConvNorm<B: Backend> {
    conv: Conv2d<B>,
    shift: Param<Tensor<B, 1>>,
}

impl<B: Backend> ConvNorm<B> {
    /// `channels = [in, out]`, a square kernel of side `kernel`; placeholder weights.
    pub fn new(channels: [usize; 2], kernel: usize, stride: usize, padding: usize, device: &B::Device) -> Self {
        let conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
            .with_bias(false)
            .init(device);
        Self { conv, shift: Param::from_tensor(Tensor::zeros([channels[1]], device)) }
    }

    /// `[out, in, k, k]` of the kernel.
    pub fn kernel_dims(&self) -> [usize; 4] {
        self.conv.weight.dims()
    }

    /// Sets the kernel `weight` and folds in the norm (`γ`, `β`, running mean and variance,
    /// all of `out` values).
    pub fn fold(mut self, weight: Tensor<B, 4>, norm: [Tensor<B, 1>; 4], eps: f64) -> Self {
        let (weight, shift) = fold_norm(weight, norm, eps);
        self.conv.weight = Param::from_tensor(weight);
        self.shift = Param::from_tensor(shift);
        self
    }

    /// The convolution and the norm, then `residual` added and a ReLU when asked for (one host
    /// pass on Flex).
    pub fn forward(&self, x: Tensor<B, 4>, residual: Option<Tensor<B, 4>>, relu: bool) -> Tensor<B, 4> {
        conv2d_fused(&self.conv, x, self.shift.val(), residual, relu)
    }
}

/// A BasicBlock (two 3×3) or a Bottleneck (1×1, 3×3 carrying the stride, 1×1 four times wider,
/// as torchvision's v1.5 places it), and the projection torchvision calls `downsample`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// In torchvision's order: `conv1`/`bn1`, `conv2`/`bn2` (and `conv3`/`bn3`).
    pub(super) convs: Vec<ConvNorm<B>>,
    /// `downsample.0`/`downsample.1`, where the shape changes.
    pub(super) downsample: Option<ConvNorm<B>>,
}

impl<B: Backend> Block<B> {
    /// A block from `channels` in, with `planes` as torchvision counts them.
    pub fn new(channels: usize, planes: usize, stride: usize, bottleneck: bool, device: &B::Device) -> Self {
        let out = if bottleneck { planes * 4 } else { planes };
        let convs = if bottleneck {
            vec![
                ConvNorm::new([channels, planes], 1, 1, 0, device),
                ConvNorm::new([planes, planes], 3, stride, 1, device),
                ConvNorm::new([planes, out], 1, 1, 0, device),
            ]
        } else {
            vec![
                ConvNorm::new([channels, planes], 3, stride, 1, device),
                ConvNorm::new([planes, planes], 3, 1, 1, device),
            ]
        };
        let downsample = (stride != 1 || channels != out).then(|| ConvNorm::new([channels, out], 1, stride, 0, device));
        Self { convs, downsample }
    }

    /// Output channels.
    pub fn channels_out(&self) -> usize {
        self.convs.last().map_or(0, |c| c.kernel_dims()[0])
    }

    /// `relu(convs(x) + skip(x))`, with a ReLU between the convolutions.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let skip = match &self.downsample {
            Some(d) => d.forward(x.clone(), None, false),
            None => x.clone(),
        };
        let (last, first) = self.convs.split_last().expect("a block has convolutions");
        let y = first.iter().fold(x, |y, conv| conv.forward(y, None, true));
        last.forward(y, Some(skip), true)
    }
}
