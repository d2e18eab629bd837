//! [`BatchNorm2d`](super::BatchNorm2d)'s training pass as one autodiff op on Flex, computed by
//! [`host`](super::host).

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;

use super::host;
use crate::backend::{cast, cast_back};

/// The normalised batch and the batch's mean and variance (untracked), when `B` is Flex under
/// autodiff and the data f32; otherwise `x` back, for the tensor-op path.
#[allow(clippy::type_complexity)]
pub fn normalise_with_batch_statistics<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>), Tensor<B, 4>> {
    if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 || beta.dtype() != DType::F32 {
        return Err(x);
    }
    let x = cast::<_, Tensor<Autodiff<Flex>, 4>>(x)?;
    let (gamma, beta): (Tensor<Autodiff<Flex>, 1>, Tensor<Autodiff<Flex>, 1>) = (cast_back(gamma), cast_back(beta));
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let (y, mean, var) = normalise(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
        [n, c, h * w],
        epsilon,
    );
    let y: Tensor<Autodiff<Flex>, 4> = Tensor::from_primitive(TensorPrimitive::Float(y));
    let stat = |values: Vec<f32>| Tensor::<Autodiff<Flex>, 1>::from_data(TensorData::new(values, [c]), &device);
    Ok((cast_back(y), cast_back(stat(mean)), cast_back(stat(var))))
}

type FlexAutodiff = FloatTensor<Autodiff<Flex>>;

/// What the backward pass keeps: `x̂`, `1/σ` and `γ` per channel, and the `N×C×HW` shape.
type SavedState = (FlexTensor, Vec<f32>, Vec<f32>, [usize; 3]);

#[derive(Debug)]
struct HostBatchNormBackward;

impl Backward<Flex, 3> for HostBatchNormBackward {
    type State = SavedState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x_hat, inv_std, gamma, shape) = ops.state;
        let (Some(dy_values), Some(x_hat_values)) = (dy.as_slice::<f32>(), x_hat.as_slice::<f32>()) else {
            unreachable!("the forward pass checked for f32")
        };
        let (dx, dgamma, dbeta) = host::backward(dy_values, x_hat_values, shape, &gamma, &inv_std);
        let tensor = |values: Vec<f32>, dims: Vec<usize>| FlexTensor::from_data(TensorData::new(values, dims));
        let c = shape[1];
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, dy.layout().shape().to_vec()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, vec![c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, vec![c]));
        }
    }
}

fn normalise(
    x: FlexAutodiff,
    gamma: FlexAutodiff,
    beta: FlexAutodiff,
    shape: [usize; 3],
    epsilon: f64,
) -> (FlexAutodiff, Vec<f32>, Vec<f32>) {
    let values = |t: &FlexTensor| {
        t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec).unwrap_or_else(|| unreachable!("checked for f32"))
    };
    let (gamma_values, beta_values) = (values(&gamma.primitive), values(&beta.primitive));
    let x_contiguous = x.primitive.to_contiguous();
    let Some(x_values) = x_contiguous.as_slice::<f32>() else { unreachable!("checked for f32") };
    let out = host::forward(x_values, shape, &gamma_values, &beta_values, epsilon);
    let dims = x.primitive.layout().shape().to_vec();
    let y = FlexTensor::from_data(TensorData::new(out.y, dims.clone()));
    let y = match HostBatchNormBackward
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let x_hat = FlexTensor::from_data(TensorData::new(out.x_hat, dims));
            prep.finish((x_hat, out.inv_std, gamma_values, shape), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (y, out.mean, out.var)
}
