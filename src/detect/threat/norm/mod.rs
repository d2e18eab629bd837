//! Batch normalisation for `N×C×H×W` maps, computed through `[N·C, H·W]` views, or on the host
//! when Flex trains (`flex`, `host`).
//!
//! burn's `BatchNorm` broadcasts `[1, C, 1, 1]` statistics over the middle axis and swaps axes to
//! reduce; on the Flex CPU backend both take a strided path that measured 130 ms per op on a
//! 256×32×28×28 batch, against 8 ms for the same work broadcast along the last axis. The maths
//! here is the same (biased batch variance in training, running statistics in inference).

mod flex;
pub mod host;

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Settings of [`BatchNorm2d`].
#[derive(Config, Debug)]
pub struct BatchNorm2dConfig {
    /// Channels normalised.
    pub channels: usize,
    /// Added to the variance. Default 1e-5.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the newest batch in the running statistics.
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl BatchNorm2dConfig {
    /// A batch norm with unit scale, zero shift and fresh running statistics.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm2d<B> {
        BatchNorm2d {
            gamma: Param::from_tensor(Tensor::ones([self.channels], device)),
            beta: Param::from_tensor(Tensor::zeros([self.channels], device)),
            running_mean: RunningState::new(Tensor::zeros([self.channels], device)),
            running_var: RunningState::new(Tensor::ones([self.channels], device)),
            epsilon: self.epsilon,
            momentum: self.momentum,
        }
    }
}

/// Batch normalisation over `N×C×H×W` maps, per channel.
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    gamma: Param<Tensor<B, 1>>,
    beta: Param<Tensor<B, 1>>,
    running_mean: RunningState<Tensor<B, 1>>,
    running_var: RunningState<Tensor<B, 1>>,
    epsilon: f64,
    momentum: f64,
}

/// A `[C]` vector laid out as `[N·C, 1]`, matching the rows of an `[N·C, H·W]` view.
fn per_row<B: Backend>(v: Tensor<B, 1>, n: usize) -> Tensor<B, 2> {
    let [c] = v.dims();
    v.reshape([1, c]).repeat_dim(0, n).reshape([n * c, 1])
}

/// Per-channel sum of an `[N·C, H·W]` view, as `[C]`.
fn channel_sum<B: Backend>(rows: Tensor<B, 2>, n: usize, c: usize) -> Tensor<B, 1> {
    rows.sum_dim(1).reshape([n, c]).sum_dim(0).reshape([c])
}

/// Which statistics a batch norm normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormStatistics {
    /// The batch's own while the backend records gradients (training), the running ones otherwise.
    ByBackend,
    /// Always the running statistics, which stay as they are: a fine-tune that must see the
    /// features exactly as inference will (evaluation mode under autodiff).
    Running,
}

impl<B: Backend> BatchNorm2d<B> {
    /// Training statistics when the backend records gradients, running statistics otherwise.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with(x, NormStatistics::ByBackend)
    }

    /// Normalises `x` with the chosen statistics (and updates the running ones when training).
    pub fn forward_with(&self, x: Tensor<B, 4>, statistics: NormStatistics) -> Tensor<B, 4> {
        self.forward_then(x, None, false, statistics)
    }

    /// `relu?(norm(x) + residual)`, a layer's norm and what follows it. When Flex trains, one host
    /// op computes all of it and its gradients; elsewhere burn's ops do.
    pub fn forward_then(
        &self,
        x: Tensor<B, 4>,
        residual: Option<Tensor<B, 4>>,
        relu: bool,
        statistics: NormStatistics,
    ) -> Tensor<B, 4> {
        let (x, residual) = if statistics == NormStatistics::ByBackend && B::ad_enabled(&x.device()) {
            let (gamma, beta) = (self.gamma.val(), self.beta.val());
            match flex::normalise_with_batch_statistics(x, gamma, beta, self.epsilon, residual, relu) {
                Ok((y, mean, var)) => {
                    self.update_running(mean, var);
                    return y;
                }
                Err(unfused) => unfused,
            }
        } else {
            (x, residual)
        };
        let mut y = self.normalise(x, statistics);
        if let Some(residual) = residual {
            y = y + residual;
        }
        if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    }

    /// The norm alone, as burn tensor ops.
    fn normalise(&self, x: Tensor<B, 4>, statistics: NormStatistics) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let rows = x.reshape([n * c, h * w]);
        let (mean, var) = if statistics == NormStatistics::Running {
            (self.running_mean.value_sync(), self.running_var.value_sync())
        } else if B::ad_enabled(&rows.device()) {
            let count = (n * h * w) as f64;
            let mean = channel_sum(rows.clone(), n, c) / count;
            let centred = rows.clone() - per_row(mean.clone(), n);
            let var = channel_sum(centred.powi_scalar(2), n, c) / count;
            self.update_running(mean.clone().detach(), var.clone().detach());
            (mean, var)
        } else {
            (self.running_mean.value(), self.running_var.value())
        };
        let scale = self.gamma.val() / (var + self.epsilon).sqrt();
        let shift = self.beta.val() - mean * scale.clone();
        (rows * per_row(scale, n) + per_row(shift, n)).reshape([n, c, h, w])
    }

    /// What the inference-mode norm applies, `[γ, β, running mean, running variance]`, and its
    /// ε: what folds it into the convolution before it.
    pub fn inference_statistics(&self) -> ([Tensor<B, 1>; 4], f64) {
        let statistics = [self.gamma.val(), self.beta.val(), self.running_mean.value(), self.running_var.value()];
        (statistics, self.epsilon)
    }

    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>) {
        let m = self.momentum;
        self.running_mean.update(self.running_mean.value_sync() * (1.0 - m) + mean * m);
        self.running_var.update(self.running_var.value_sync() * (1.0 - m) + var * m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn matches_burns_batch_norm_in_training_and_inference() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<Ad, 4>::random([4, 3, 5, 6], Distribution::Normal(1.0, 2.0), &device);
        let ours = BatchNorm2dConfig::new(3).init::<Ad>(&device);
        let theirs = BatchNormConfig::new(3).init::<Ad>(&device);
        ours.forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&theirs.forward(x.clone()).into_data(), Tolerance::default());
        let x_inner = x.inner();
        ours.valid()
            .forward(x_inner.clone())
            .into_data()
            .assert_approx_eq::<f32>(&theirs.valid().forward(x_inner).into_data(), Tolerance::default());
    }

    #[test]
    fn training_gradients_and_running_statistics_match_burns_batch_norm() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<Ad, 4>::random([5, 3, 4, 7], Distribution::Normal(1.0, 2.0), &device);
        let weights = Tensor::<Ad, 4>::random([5, 3, 4, 7], Distribution::Normal(0.0, 1.0), &device);
        let ours = BatchNorm2dConfig::new(3).init::<Ad>(&device);
        let theirs = BatchNormConfig::new(3).init::<Ad>(&device);
        let x_ours = x.clone().require_grad();
        let x_theirs = x.clone().require_grad();
        let grads_ours = (ours.forward(x_ours.clone()) * weights.clone()).sum().backward();
        let grads_theirs = (theirs.forward(x_theirs.clone()) * weights).sum().backward();
        let close = |a: Tensor<Flex, 1>, b: Tensor<Flex, 1>| {
            a.into_data().assert_approx_eq::<f32>(&b.into_data(), Tolerance::default())
        };
        let flat = |t: Tensor<Flex, 4>| t.flatten::<1>(0, 3);
        close(flat(x_ours.grad(&grads_ours).unwrap()), flat(x_theirs.grad(&grads_theirs).unwrap()));
        close(ours.gamma.grad(&grads_ours).unwrap(), theirs.gamma.grad(&grads_theirs).unwrap());
        close(ours.beta.grad(&grads_ours).unwrap(), theirs.beta.grad(&grads_theirs).unwrap());
        close(ours.running_mean.value_sync().inner(), theirs.running_mean.value_sync().inner());
        // burn keeps the unbiased variance in its running statistics, this layer the biased one.
        let m = (5 * 4 * 7) as f64;
        let biased = theirs.running_var.value_sync().inner().sub_scalar(0.9) * ((m - 1.0) / m) + 0.9;
        close(ours.running_var.value_sync().inner(), biased);
    }

    #[test]
    fn running_statistics_under_autodiff_match_inference_and_stay_put() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<Ad, 4>::random([4, 3, 5, 6], Distribution::Normal(1.0, 2.0), &device);
        let norm = BatchNorm2dConfig::new(3).init::<Ad>(&device);
        let _ = norm.forward(x.clone()); // moves the running statistics away from 0 and 1
        let before = norm.running_mean.value_sync().into_data();
        let running = norm.forward_with(x.clone(), NormStatistics::Running);
        assert_eq!(norm.running_mean.value_sync().into_data(), before);
        running
            .inner()
            .into_data()
            .assert_approx_eq::<f32>(&norm.valid().forward(x.clone().inner()).into_data(), Tolerance::default());
        let training = norm.forward(x.clone()).inner().into_data();
        let inference = norm.valid().forward(x.inner()).into_data();
        assert_ne!(training, inference, "the batch statistics differ from the running ones");
    }

    /// The fused norm + residual + ReLU against burn's `BatchNorm`, add and `relu`: output and
    /// the gradients of the input, γ, β and the residual, also when the residual is the input
    /// itself (an identity block's skip, whose two gradients add up).
    #[test]
    fn the_fused_residual_and_relu_match_burns_ops() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<Ad, 4>::random([4, 3, 5, 6], Distribution::Normal(1.0, 2.0), &device);
        let other = Tensor::<Ad, 4>::random([4, 3, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        let weights = Tensor::<Ad, 4>::random([4, 3, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        for residual_is_input in [false, true] {
            let ours = BatchNorm2dConfig::new(3).init::<Ad>(&device);
            let theirs = BatchNormConfig::new(3).init::<Ad>(&device);
            let run = |fused: bool| {
                let x = x.clone().require_grad();
                let residual = if residual_is_input { x.clone() } else { other.clone().require_grad() };
                let y = if fused {
                    ours.forward_then(x.clone(), Some(residual.clone()), true, NormStatistics::ByBackend)
                } else {
                    burn::tensor::activation::relu(theirs.forward(x.clone()) + residual.clone())
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                let norm_grads = if fused {
                    [ours.gamma.grad(&grads).unwrap(), ours.beta.grad(&grads).unwrap()]
                } else {
                    [theirs.gamma.grad(&grads).unwrap(), theirs.beta.grad(&grads).unwrap()]
                };
                let flat = |t: Tensor<Flex, 4>| t.flatten::<1>(0, 3);
                let dr = residual.grad(&grads).map(flat);
                (flat(y.inner()), flat(x.grad(&grads).unwrap()), norm_grads, dr)
            };
            let (fused, reference) = (run(true), run(false));
            let close = |a: Tensor<Flex, 1>, b: Tensor<Flex, 1>, what: &str| {
                let error = (a - b.clone()).abs().max().into_scalar() / b.abs().max().into_scalar().max(1e-6);
                assert!(error < 1e-4, "{what} (residual is the input: {residual_is_input}): relative error {error}");
            };
            close(fused.0, reference.0, "output");
            close(fused.1, reference.1, "input gradient");
            let [dg, db] = fused.2;
            let [rg, rb] = reference.2;
            close(dg, rg, "γ gradient");
            close(db, rb, "β gradient");
            if !residual_is_input {
                close(fused.3.expect("the residual has a gradient"), reference.3.unwrap(), "residual gradient");
            }
        }
    }
}
