//! The threat model's convolutions: burn's `Conv2d` modules, computed on the host when the
//! backend is Flex.
//!
//! On Flex, burn's conv backward took 3–5× the forward and about three quarters of a SimCLR
//! step, and its forward ran at a third of the SGEMM rate (docs/warm-start.md). [`host`] computes
//! the forward and both gradients as im2col and SGEMM, per image while its columns are in cache.
//! Other backends (CUDA) and convolutions outside the fast path's shape (groups, dilation, bias,
//! uneven padding, not f32) keep burn's own op. The modules and their records are burn's, so
//! checkpoints do not change.

mod adjoint;
mod epilogue;
mod forward;
mod gemm;
pub mod host;
mod planes;
mod shape;

use burn::backend::{Autodiff, Flex};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;

use crate::backend::{cast, cast_back};
use host::ConvShape;

/// `conv.forward(x)`; on Flex computed as im2col and SGEMM on the host, with the matching
/// gradients when Flex trains under autodiff.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let Some(options) = host_options(conv, &x) else {
        return conv.forward(x);
    };
    let weight = conv.weight.val();
    let x = match cast::<_, Tensor<Flex, 4>>(x) {
        Ok(x) => {
            let weight: Tensor<Flex, 4> = cast_back(weight);
            let y = host_forward(x.into_primitive().tensor(), weight.into_primitive().tensor(), &options);
            return cast_back(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(y)));
        }
        Err(x) => x,
    };
    match cast::<_, Tensor<Autodiff<Flex>, 4>>(x) {
        Ok(x) => {
            let weight: Tensor<Autodiff<Flex>, 4> = cast_back(weight);
            let y = host_conv_with_gradients(x.into_primitive().tensor(), weight.into_primitive().tensor(), options);
            cast_back(Tensor::<Autodiff<Flex>, 4>::from_primitive(TensorPrimitive::Float(y)))
        }
        Err(x) => conv.forward(x),
    }
}

/// `relu?(conv.forward(x) + shift + residual)` with `shift` per output channel: an
/// inference-mode layer. On Flex (without autodiff) one host pass does it all, the shift,
/// residual and ReLU applied to each image's output while it is in cache; elsewhere burn's ops.
pub fn conv2d_fused<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    shift: Tensor<B, 1>,
    residual: Option<Tensor<B, 4>>,
    relu: bool,
) -> Tensor<B, 4> {
    if let Some(options) = host_options(conv, &x) {
        if let Ok(x) = cast::<_, Tensor<Flex, 4>>(x.clone()) {
            let weight: Tensor<Flex, 4> = cast_back(conv.weight.val());
            let flex_shift: Tensor<Flex, 1> = cast_back(shift.clone());
            let flex_residual: Option<Tensor<Flex, 4>> = residual.clone().map(cast_back);
            if let Some(y) = host_fused(x, weight, flex_shift, flex_residual, relu, &options) {
                return cast_back(y);
            }
        }
    }
    let out = shift.dims()[0];
    let mut y = conv2d(conv, x) + shift.reshape([1, out, 1, 1]);
    if let Some(r) = residual {
        y = y + r;
    }
    if relu {
        burn::tensor::activation::relu(y)
    } else {
        y
    }
}

fn host_fused(
    x: Tensor<Flex, 4>,
    weight: Tensor<Flex, 4>,
    shift: Tensor<Flex, 1>,
    residual: Option<Tensor<Flex, 4>>,
    relu: bool,
    options: &ConvOptions<2>,
) -> Option<Tensor<Flex, 4>> {
    let primitive = |t: Tensor<Flex, 4>| t.into_primitive().tensor().to_contiguous();
    let (x, weight) = (primitive(x), primitive(weight));
    let shift = shift.into_primitive().tensor().to_contiguous();
    let residual = residual.map(primitive);
    let shape = conv_shape(&x, &weight, options);
    let slices = (x.as_slice::<f32>(), weight.as_slice::<f32>(), shift.as_slice::<f32>());
    let residual_slice = residual.as_ref().map(|r| r.as_slice::<f32>());
    let ([oh, ow], (Some(xs), Some(ws), Some(ss))) = (shape.output()?, slices) else { return None };
    let residual = match residual_slice {
        Some(r) => Some(r.filter(|r| r.len() == shape.batch * shape.channels_out * oh * ow)?),
        None => None,
    };
    if ss.len() != shape.channels_out {
        return None;
    }
    let epilogue = host::Epilogue { shift: Some(ss), residual, relu };
    let y = flex_tensor(host::conv2d_forward_with(xs, ws, &shape, epilogue), [shape.batch, shape.channels_out, oh, ow]);
    Some(Tensor::from_primitive(TensorPrimitive::Float(y)))
}

/// A kernel with an inference-mode batch norm (`[γ, β, running mean, running variance]`) folded
/// in: `(weight · scale, β − mean · scale)` with `scale = γ / √(var + ε)` per output channel, so
/// that `conv(x, weight′) + shift` is `norm(conv(x, weight))`.
pub fn fold_norm<B: Backend>(weight: Tensor<B, 4>, norm: [Tensor<B, 1>; 4], eps: f64) -> (Tensor<B, 4>, Tensor<B, 1>) {
    let [gamma, beta, mean, var] = norm;
    let out = gamma.dims()[0];
    let scale = gamma / (var + eps).sqrt();
    let shift = beta - mean * scale.clone();
    (weight * scale.reshape([out, 1, 1, 1]), shift)
}

/// How the host convolution would run `conv` on `x`: `None` when it cannot (grouped, dilated,
/// biased, uneven padding, or not f32), and burn's own op runs instead.
fn host_options<B: Backend>(conv: &Conv2d<B>, x: &Tensor<B, 4>) -> Option<ConvOptions<2>> {
    let padding = symmetric_padding(conv)?;
    let host_shaped = conv.groups == 1 && conv.dilation == [1, 1] && conv.bias.is_none();
    let f32s = x.dtype() == DType::F32 && conv.weight.val().dtype() == DType::F32;
    (host_shaped && f32s).then(|| ConvOptions::new(conv.stride, padding, [1, 1], 1))
}

/// The padding per axis when it is the same on both sides.
fn symmetric_padding<B: Backend>(conv: &Conv2d<B>) -> Option<[usize; 2]> {
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        _ => None,
    }
}

type FlexAutodiff = FloatTensor<Autodiff<Flex>>;

#[derive(Debug)]
struct HostConvBackward;

impl Backward<Flex, 2> for HostConvBackward {
    type State = (FlexTensor, FlexTensor, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, options) = ops.state;
        let (dx, dweight) = gradients(x, weight, dy, &options, node_x.is_some(), node_weight.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dweight)) = (node_weight, dweight) {
            grads.register::<Flex>(node.id, dweight);
        }
    }
}

fn host_conv_with_gradients(x: FlexAutodiff, weight: FlexAutodiff, options: ConvOptions<2>) -> FlexAutodiff {
    match HostConvBackward.prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone()]).compute_bound().stateful()
    {
        OpsKind::Tracked(prep) => {
            // Made contiguous once, for the forward pass and the saved state alike.
            let (x, weight) = (x.primitive.to_contiguous(), weight.primitive.to_contiguous());
            let y = host_forward(x.clone(), weight.clone(), &options);
            prep.finish((x, weight, options), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(host_forward(x.primitive, weight.primitive, &options)),
    }
}

fn conv_shape(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> ConvShape {
    let x_shape = x.layout().shape();
    let w_shape = weight.layout().shape();
    ConvShape {
        batch: x_shape[0],
        channels_in: x_shape[1],
        channels_out: w_shape[0],
        input: [x_shape[2], x_shape[3]],
        kernel: [w_shape[2], w_shape[3]],
        stride: options.stride,
        padding: options.padding,
    }
}

fn flex_tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(values, shape))
}

/// The forward pass on the host; burn's when the kernel does not fit or the data is not f32.
fn host_forward(x: FlexTensor, weight: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    let shape = conv_shape(&x, &weight, options);
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    match (shape.output(), x.as_slice::<f32>(), weight.as_slice::<f32>()) {
        (Some([oh, ow]), Some(xs), Some(ws)) => {
            flex_tensor(host::conv2d_forward(xs, ws, &shape), [shape.batch, shape.channels_out, oh, ow])
        }
        _ => Flex::conv2d(x, weight, None, options.clone()),
    }
}

/// `(dx, dweight)` for the gradient `dy` of `conv2d(x, weight)`.
fn gradients(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    options: &ConvOptions<2>,
    want_dx: bool,
    want_dweight: bool,
) -> (Option<FloatTensor<Flex>>, Option<FloatTensor<Flex>>) {
    let shape = conv_shape(&x, &weight, options);
    let (x_shape, w_shape) = (x.layout().shape().clone(), weight.layout().shape().clone());
    let (x, weight, dy) = (x.to_contiguous(), weight.to_contiguous(), dy.to_contiguous());
    let (Some(xs), Some(ws), Some(dys)) = (x.as_slice::<f32>(), weight.as_slice::<f32>(), dy.as_slice::<f32>()) else {
        unreachable!("conv2d takes this path for f32 only")
    };
    let (dx, dweight) = host::conv2d_backward(xs, ws, dys, &shape, want_dx, want_dweight);
    (dx.map(|v| flex_tensor(v, x_shape)), dweight.map(|v| flex_tensor(v, w_shape)))
}

/// Checks the fast path against burn's `Conv2d` (forward and both gradients).
#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::AutodiffModule;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    type T = Autodiff<Flex>;

    fn compare(
        batch: usize,
        cin: usize,
        cout: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) {
        let device = Default::default();
        <T as Backend>::seed(&device, 7);
        let conv: Conv2d<T> = Conv2dConfig::new([cin, cout], kernel)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(padding[0], padding[1], padding[0], padding[1]))
            .with_bias(false)
            .init(&device);
        let x = Tensor::<T, 4>::random([batch, cin, input[0], input[1]], Distribution::Normal(0.0, 1.0), &device);
        // A loss that weights every output differently, so each gradient entry is tested.
        let weights = Tensor::<T, 4>::random(conv.forward(x.clone()).dims(), Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = x.clone().require_grad();
            let y = if fast { conv2d(&conv, x.clone()) } else { conv.forward(x.clone()) };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let dx = x.grad(&grads).expect("x has a gradient");
            let dw = conv.weight.grad(&grads).expect("the weight has a gradient");
            (y.inner(), dx, dw)
        };
        let ours = run(true);
        let burns = run(false);
        let close = |a: Tensor<Flex, 4>, b: Tensor<Flex, 4>, what: &str| {
            let scale = b.clone().abs().max().into_scalar().max(1e-6);
            let error = (a - b).abs().max().into_scalar() / scale;
            assert!(
                error < 1e-4,
                "{what}: relative error {error} for {cin}->{cout} {input:?} k{kernel:?} s{stride} p{padding:?}"
            );
        };
        close(ours.0, burns.0, "forward");
        let inference = conv.valid();
        close(conv2d(&inference, x.clone().inner()), inference.forward(x.clone().inner()), "inference forward");
        close(ours.1, burns.1, "input gradient");
        close(ours.2, burns.2, "weight gradient");
    }

    #[test]
    fn matches_burns_conv_on_the_encoders_shapes() {
        compare(3, 1, 4, [28, 28], [3, 3], 1, [1, 1]);
        compare(3, 4, 4, [28, 28], [3, 3], 1, [1, 1]);
        compare(3, 4, 8, [28, 28], [3, 3], 2, [1, 1]);
        compare(3, 4, 8, [28, 28], [1, 1], 2, [0, 0]);
        compare(2, 8, 8, [7, 7], [3, 3], 1, [1, 1]);
    }

    /// The fused host pass against burn's ops (conv, broadcast add, add, ReLU), with and without
    /// a residual, on a 3×3 kernel at strides 2 and 1 (phase planes) and a pointwise one (no columns).
    #[test]
    fn the_fused_pass_matches_burns_ops() {
        let device = Default::default();
        for (kernel, stride, padding) in [(3, 2, 1), (3, 1, 1), (1, 1, 0)] {
            let conv: Conv2d<Flex> = Conv2dConfig::new([4, 6], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
                .with_bias(false)
                .init(&device);
            let x = Tensor::<Flex, 4>::random([3, 4, 9, 9], Distribution::Normal(0.0, 1.0), &device);
            let shift = Tensor::<Flex, 1>::random([6], Distribution::Normal(0.0, 1.0), &device);
            let dims = conv.forward(x.clone()).dims();
            let residual = Tensor::<Flex, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            for (residual, relu) in [(None, false), (Some(residual), true)] {
                let fused = conv2d_fused(&conv, x.clone(), shift.clone(), residual.clone(), relu);
                let mut expected = conv.forward(x.clone()) + shift.clone().reshape([1, 6, 1, 1]);
                if let Some(r) = residual {
                    expected = expected + r;
                }
                if relu {
                    expected = burn::tensor::activation::relu(expected);
                }
                let error = (fused - expected.clone()).abs().max().into_scalar() / expected.abs().max().into_scalar();
                assert!(error < 1e-5, "kernel {kernel}, relu {relu}: relative error {error}");
            }
        }
    }

    #[test]
    fn matches_burns_conv_on_odd_shapes() {
        compare(2, 3, 5, [9, 13], [5, 3], 3, [2, 1]);
        compare(1, 2, 3, [6, 5], [3, 3], 2, [0, 0]);
        compare(2, 3, 2, [4, 4], [4, 4], 1, [2, 2]);
        // Stride 1 with a kernel taller than wide, and with padding past the kernel's reach
        // (its input gradient is not a convolution then).
        compare(2, 3, 4, [7, 6], [5, 3], 1, [2, 1]);
        compare(2, 3, 4, [7, 6], [3, 3], 1, [3, 1]);
    }
}
