//! [`BatchNorm2d`](super::BatchNorm2d)'s training pass as one autodiff op on Flex, computed by
//! [`host`](super::host), with what follows it in a layer (residual sum, ReLU) in the same op.
//!
//! Apart, the sum and the ReLU were two more Flex passes forward and two backward, each with its
//! own buffer, over tensors of 10–30 MB per layer; fused, the ReLU's mask is read from the saved
//! output and the residual's gradient is written by the pass that writes the input's.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::NodeId;
use burn_flex::FlexTensor;

use super::host::{self, Then};
use crate::backend::{cast, cast_back};

/// `relu?(norm(x) + residual)` and the batch's mean and variance (untracked), when `B` is Flex
/// under autodiff and the data f32; otherwise `(x, residual)` back, for the tensor-op path.
#[allow(clippy::type_complexity)]
pub fn normalise_with_batch_statistics<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    residual: Option<Tensor<B, 4>>,
    relu: bool,
) -> Result<(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>), (Tensor<B, 4>, Option<Tensor<B, 4>>)> {
    let mut dtypes = [x.dtype(), gamma.dtype(), beta.dtype()].into_iter().chain(residual.as_ref().map(|r| r.dtype()));
    if dtypes.any(|d| d != DType::F32) || residual.as_ref().is_some_and(|r| r.dims() != x.dims()) {
        return Err((x, residual));
    }
    let x = match cast::<_, Tensor<Autodiff<Flex>, 4>>(x) {
        Ok(x) => x,
        Err(x) => return Err((x, residual)),
    };
    let (gamma, beta): (Tensor<Autodiff<Flex>, 1>, Tensor<Autodiff<Flex>, 1>) = (cast_back(gamma), cast_back(beta));
    let residual: Option<Tensor<Autodiff<Flex>, 4>> = residual.map(cast_back);
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let primitive = |t: Tensor<Autodiff<Flex>, 4>| t.into_primitive().tensor();
    let inputs = Inputs {
        x: primitive(x),
        gamma: gamma.into_primitive().tensor(),
        beta: beta.into_primitive().tensor(),
        residual: residual.map(primitive),
    };
    let (y, mean, var) = normalise(inputs, [n, c, h * w], epsilon, relu);
    let y: Tensor<Autodiff<Flex>, 4> = Tensor::from_primitive(TensorPrimitive::Float(y));
    let stat = |values: Vec<f32>| Tensor::<Autodiff<Flex>, 1>::from_data(TensorData::new(values, [c]), &device);
    Ok((cast_back(y), cast_back(stat(mean)), cast_back(stat(var))))
}

type FlexAutodiff = FloatTensor<Autodiff<Flex>>;

struct Inputs {
    x: FlexAutodiff,
    gamma: FlexAutodiff,
    beta: FlexAutodiff,
    residual: Option<FlexAutodiff>,
}

/// What the backward pass keeps: the input (contiguous), the mean, `1/σ` and `γ` per channel,
/// the `N×C×HW` shape, and the output when a ReLU ran (its sign is the ReLU's mask).
#[derive(Clone, Debug)]
struct SavedState {
    x: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    shape: [usize; 3],
    relu_output: Option<FlexTensor>,
}

/// The norm (and ReLU) alone: parents `x`, `γ`, `β`.
#[derive(Debug)]
struct NormBackward;

/// With a residual sum: parents `x`, `γ`, `β`, the residual.
#[derive(Debug)]
struct NormResidualBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = SavedState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, gamma, beta] = ops.parents.map(|p| p.map(|node| node.id));
        register_gradients(ops.state, grads.consume::<Flex>(&ops.node), [x, gamma, beta, None], grads);
    }
}

impl Backward<Flex, 4> for NormResidualBackward {
    type State = SavedState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        register_gradients(ops.state, grads.consume::<Flex>(&ops.node), parents, grads);
    }
}

/// Computes and registers the gradients of the parents `[x, γ, β, residual]` that track them.
fn register_gradients(state: SavedState, dy: FlexTensor, parents: [Option<NodeId>; 4], grads: &mut Gradients) {
    let dy = dy.to_contiguous();
    let relu_output = state.relu_output.map(|y| y.to_contiguous());
    let slices = (dy.as_slice::<f32>(), state.x.as_slice::<f32>());
    let (Some(dy_values), Some(x_values)) = slices else { unreachable!("the forward pass checked for f32") };
    let relu_values = relu_output.as_ref().map(|y| y.as_slice::<f32>().unwrap_or_else(|| unreachable!("f32")));
    let [x, gamma, beta, residual] = parents;
    let out = host::backward_then(
        dy_values,
        x_values,
        state.shape,
        [&state.gamma, &state.mean, &state.inv_std],
        relu_values,
        residual.is_some(),
    );
    let dims = dy.layout().shape().to_vec();
    let tensor = |values: Vec<f32>, dims: Vec<usize>| FlexTensor::from_data(TensorData::new(values, dims));
    let c = state.shape[1];
    let pairs = [(x, Some(out.dx), dims.clone()), (gamma, Some(out.dgamma), vec![c]), (beta, Some(out.dbeta), vec![c])];
    for (node, values, dims) in pairs.into_iter().chain([(residual, out.dresidual, dims)]) {
        if let (Some(id), Some(values)) = (node, values) {
            grads.register::<Flex>(id, tensor(values, dims));
        }
    }
}

fn normalise(inputs: Inputs, shape: [usize; 3], epsilon: f64, relu: bool) -> (FlexAutodiff, Vec<f32>, Vec<f32>) {
    let values = |t: &FlexTensor| {
        t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec).unwrap_or_else(|| unreachable!("checked for f32"))
    };
    let (gamma_values, beta_values) = (values(&inputs.gamma.primitive), values(&inputs.beta.primitive));
    let x_contiguous = inputs.x.primitive.to_contiguous();
    let residual_contiguous = inputs.residual.as_ref().map(|r| r.primitive.to_contiguous());
    let Some(x_values) = x_contiguous.as_slice::<f32>() else { unreachable!("checked for f32") };
    let residual = residual_contiguous.as_ref().map(|r| r.as_slice::<f32>().unwrap_or_else(|| unreachable!("f32")));
    let out = host::forward_then(x_values, shape, &gamma_values, &beta_values, epsilon, Then { residual, relu });
    let dims = inputs.x.primitive.layout().shape().to_vec();
    let y = FlexTensor::from_data(TensorData::new(out.y, dims));
    // Built only when a parent tracks gradients; it shares the input's buffer, not a copy.
    let state = |y: &FlexTensor| SavedState {
        x: x_contiguous.clone(),
        mean: out.mean.clone(),
        inv_std: out.inv_std,
        gamma: gamma_values,
        shape,
        relu_output: relu.then(|| y.clone()),
    };
    let [x, gamma, beta] = [inputs.x.node, inputs.gamma.node, inputs.beta.node];
    let y = match inputs.residual {
        None => record(NormBackward.prepare::<NoCheckpointing>([x, gamma, beta]).compute_bound().stateful(), y, state),
        Some(residual) => {
            let nodes = [x, gamma, beta, residual.node];
            record(NormResidualBackward.prepare::<NoCheckpointing>(nodes).compute_bound().stateful(), y, state)
        }
    };
    (y, out.mean, out.var)
}

/// The op's output `y`, with the state its backward pass needs when a parent tracks gradients.
fn record<BO: Backward<Flex, N, State = SavedState>, const N: usize>(
    kind: OpsKind<BO, Flex, SavedState, NoCheckpointing, N>,
    y: FlexTensor,
    state: impl FnOnce(&FlexTensor) -> SavedState,
) -> FlexAutodiff {
    match kind {
        OpsKind::Tracked(prep) => {
            let state = state(&y);
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
