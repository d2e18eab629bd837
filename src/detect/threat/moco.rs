//! MoCo v2: a momentum key encoder and a queue of negative keys.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::RngExt;

use super::encoder::ThreatModel;
use super::simclr::l2_normalize;

/// The key encoder and the negative-key queue.
pub struct MocoState<B: Backend> {
    /// The momentum encoder that makes the keys.
    pub key_model: ThreatModel<B>,
    queue: Tensor<B, 2>,
    next: usize,
}

impl<B: Backend> MocoState<B> {
    /// Starts from a copy of the query model and a queue of random unit vectors.
    pub fn new(query: ThreatModel<B>, queue_len: usize, dim: usize, rng: &mut StdRng, device: &B::Device) -> Self {
        // Box–Muller normals give directions uniform on the sphere once normalised.
        let values: Vec<f32> = (0..queue_len.max(1) * dim)
            .map(|_| {
                let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
                (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        let queue = Tensor::from_data(TensorData::new(values, [queue_len.max(1), dim]), device);
        Self { key_model: query, queue: l2_normalize(queue), next: 0 }
    }

    /// The queued keys, `queue × projection`.
    pub fn queue(&self) -> Tensor<B, 2> {
        self.queue.clone()
    }

    /// Replaces the oldest keys with `keys` (ring buffer).
    pub fn enqueue(&mut self, keys: Tensor<B, 2>) {
        let [len, _] = self.queue.dims();
        let [n, _] = keys.dims();
        let keys = keys.slice([0..n.min(len)]);
        let n = n.min(len);
        let first = n.min(len - self.next);
        self.queue = self.queue.clone().slice_assign([self.next..self.next + first], keys.clone().slice([0..first]));
        if first < n {
            self.queue = self.queue.clone().slice_assign([0..n - first], keys.slice([first..n]));
        }
        self.next = (self.next + n) % len;
    }

    /// key ← m·key + (1 − m)·query, parameter by parameter (batch-norm statistics included).
    pub fn momentum_update(&mut self, query: &ThreatModel<B>, momentum: f32) {
        let mut collect = CollectParams { values: Vec::new() };
        query.visit(&mut collect);
        let mut blend = BlendParams { values: collect.values.into_iter(), momentum };
        self.key_model = self.key_model.clone().map(&mut blend);
    }
}

struct CollectParams<B: Backend> {
    values: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for CollectParams<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.values.push(param.val().flatten(0, D - 1));
    }
}

struct BlendParams<B: Backend, I: Iterator<Item = Tensor<B, 1>>> {
    values: I,
    momentum: f32,
}

impl<B: Backend, I: Iterator<Item = Tensor<B, 1>>> ModuleMapper<B> for BlendParams<B, I> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        // Both models share one architecture, so their parameters are visited in the same order.
        let blended = match self.values.next() {
            Some(query) => tensor.clone() * self.momentum + query.reshape(tensor.shape()) * (1.0 - self.momentum),
            None => tensor,
        };
        Param::from_mapped_value(id, blended, mapper)
    }
}

/// InfoNCE: each query must pick its own key (index 0) against the queue.
pub fn info_nce<B: Backend>(
    queries: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    queue: Tensor<B, 2>,
    temperature: f32,
) -> Tensor<B, 1> {
    let [n, _] = queries.dims();
    let q = l2_normalize(queries);
    let k = l2_normalize(keys);
    let positive = (q.clone() * k).sum_dim(1);
    let negative = q.matmul(queue.transpose());
    let logits = Tensor::cat(vec![positive, negative], 1) / temperature;
    log_softmax(logits, 1).slice([0..n, 0..1]).sum().neg() / n as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::threat::encoder::EncoderConfig;
    use crate::detect::threat::init_model;
    use burn::backend::Flex;
    use rand::SeedableRng;

    #[test]
    fn queue_is_a_ring_buffer() {
        let device = Default::default();
        let model = EncoderConfig::new().with_widths([2, 2, 2]).with_projection_dim(2).init::<Flex>(&device);
        let mut state = MocoState::new(model, 3, 2, &mut StdRng::seed_from_u64(0), &device);
        let keys = |v: f32| Tensor::<Flex, 2>::from_data(TensorData::new(vec![v, 0.0, v, 0.0], [2, 2]), &device);
        state.enqueue(keys(1.0));
        state.enqueue(keys(2.0));
        let first: Vec<f32> = state.queue().slice([0..3, 0..1]).into_data().to_vec().unwrap();
        assert_eq!(first, vec![2.0, 1.0, 2.0]);
    }

    #[test]
    fn momentum_one_keeps_the_key_and_zero_copies_the_query() {
        let device = Default::default();
        let config = EncoderConfig::new().with_widths([2, 2, 2]).with_projection_dim(2);
        let query = init_model::<Flex>(&config, 1, &device);
        let other = init_model::<Flex>(&config, 2, &device);
        let images = Tensor::<Flex, 4>::ones([1, 1, 8, 8], &device);
        let mut state = MocoState::new(other.clone(), 4, 2, &mut StdRng::seed_from_u64(0), &device);
        state.momentum_update(&query, 1.0);
        assert_eq!(state.key_model.project(images.clone()).to_data(), other.project(images.clone()).to_data());
        state.momentum_update(&query, 0.0);
        assert_eq!(state.key_model.project(images.clone()).to_data(), query.project(images).to_data());
    }

    #[test]
    fn info_nce_is_low_when_keys_match_and_high_when_they_do_not() {
        let device = Default::default();
        let t = |v: Vec<f32>| Tensor::<Flex, 2>::from_data(TensorData::new(v, [2, 2]), &device);
        let queue = t(vec![-1.0, 0.0, 0.0, -1.0]);
        let matched: f32 =
            info_nce(t(vec![1.0, 0.0, 0.0, 1.0]), t(vec![1.0, 0.0, 0.0, 1.0]), queue.clone(), 0.1).into_scalar();
        let swapped: f32 =
            info_nce(t(vec![1.0, 0.0, 0.0, 1.0]), t(vec![-1.0, 0.0, 0.0, -1.0]), queue, 0.1).into_scalar();
        assert!(matched < 0.01 && swapped > 5.0, "{matched} {swapped}");
    }
}
