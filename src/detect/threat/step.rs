//! One SSL optimiser step (SimCLR's NT-Xent or MoCo v2's InfoNCE on two augmented views), shared
//! by the cached warm start and by training from a burn `DataLoader`.

use std::sync::Mutex;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::augment::AugmentConfig;
use super::encoder::{EncoderConfig, ThreatModel};
use super::moco::{info_nce, MocoState};
use super::settings::{SslMethod, WarmStartConfig};
use super::simclr::nt_xent;
use crate::error::{Error, Result};
use crate::progress::stage_bar;

/// Backends seed one global generator; holding this lock while seeding and initialising keeps
/// parallel runs in one process from drawing from each other's stream.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// A freshly initialised threat model, deterministic under `seed`.
pub fn init_model<B: Backend>(config: &EncoderConfig, seed: u64, device: &B::Device) -> ThreatModel<B> {
    init_model_with(seed, device, |d| config.init(d))
}

/// Any module built by `build`, its parameters drawn under `seed`.
pub fn init_model_with<B: Backend, M: Module<B>>(
    seed: u64,
    device: &B::Device,
    build: impl FnOnce(&B::Device) -> M,
) -> M {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, seed);
    let model = build(device);
    // Parameters initialise lazily on first use; draw them now, under the seed and the lock.
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
    model
}

/// One optimiser step of SimCLR or MoCo v2: the shared core of the cached warm start and of
/// training from a burn `DataLoader`.
pub struct SslStep<B: AutodiffBackend, O> {
    /// The model being trained.
    pub model: ThreatModel<B>,
    pub(super) optim: O,
    moco: Option<MocoState<B::InnerBackend>>,
    pub(super) augment: AugmentConfig,
    method_temperature: f32,
    learning_rate: f64,
    momentum: f32,
}

impl<B: AutodiffBackend, O: Optimizer<ThreatModel<B>, B>> SslStep<B, O> {
    /// A step for `model` with `optim`, set up as `config` says.
    pub fn new(
        model: ThreatModel<B>,
        optim: O,
        config: &WarmStartConfig,
        encoder: &EncoderConfig,
        device: &B::Device,
    ) -> Self {
        let moco = (config.method == SslMethod::MocoV2).then(|| {
            let mut rng = StdRng::seed_from_u64(config.seed ^ 0x6d6f_636f);
            MocoState::new(model.valid(), config.moco_queue, encoder.projection_dim, &mut rng, device)
        });
        Self {
            model,
            optim,
            moco,
            augment: config.augment.clone(),
            method_temperature: config.temperature,
            learning_rate: config.learning_rate,
            momentum: config.moco_momentum,
        }
    }

    /// Trains on one batch of images (two augmented views each); returns the loss, `[1]`, left
    /// on the device.
    pub fn step(&mut self, x: Tensor<B::InnerBackend, 4>, rng: &mut StdRng) -> Tensor<B::InnerBackend, 1> {
        let (view1, view2) = self.augment.views(x, rng);
        self.train(view1, view2)
    }

    /// Trains on two views of one batch, made by [`AugmentConfig::views`].
    pub(super) fn train(
        &mut self,
        view1: Tensor<B::InnerBackend, 4>,
        view2: Tensor<B::InnerBackend, 4>,
    ) -> Tensor<B::InnerBackend, 1> {
        let tau = self.method_temperature;
        let view1 = Tensor::from_inner(view1);
        let loss = match self.moco.as_mut() {
            None => nt_xent(self.model.project(view1), self.model.project(Tensor::from_inner(view2)), tau),
            Some(state) => {
                let keys = state.key_model.project(view2);
                let loss = info_nce(
                    self.model.project(view1),
                    Tensor::from_inner(keys.clone()),
                    Tensor::from_inner(state.queue()),
                    tau,
                );
                state.enqueue(super::simclr::l2_normalize(keys));
                loss
            }
        };
        let value = loss.clone().inner().reshape([1]);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(self.learning_rate, self.model.clone(), grads);
        if let Some(state) = self.moco.as_mut() {
            state.momentum_update(&self.model.valid(), self.momentum);
        }
        value
    }
}

/// Trains a fresh threat model for `config.epochs` epochs on the batches of a burn `DataLoader`
/// (no cache: the loader owns the order). Batches of fewer than two images are skipped.
pub fn train_from_loader<B: AutodiffBackend>(
    loader: &dyn burn::data::dataloader::DataLoader<B::InnerBackend, Tensor<B::InnerBackend, 4>>,
    encoder: &EncoderConfig,
    config: &WarmStartConfig,
    device: &B::Device,
) -> Result<ThreatModel<B::InnerBackend>> {
    if config.epochs == 0 || !(config.temperature > 0.0) {
        return Err(Error::Config("epochs and temperature must be positive".into()));
    }
    let model = init_model::<B>(encoder, config.seed, device);
    let mut step = SslStep::new(model, AdamConfig::new().init::<B, ThreatModel<B>>(), config, encoder, device);
    let bar =
        stage_bar("training (steps)", (config.epochs * loader.num_items().div_ceil(config.batch_size.max(1))) as u64);
    for epoch in 0..config.epochs {
        let mut rng = StdRng::seed_from_u64(config.seed.wrapping_mul(0x9e37_79b9).wrapping_add(epoch as u64));
        for batch in loader.iter() {
            if batch.dims()[0] >= 2 {
                step.step(batch, &mut rng);
            }
            bar.inc(1);
        }
        bar.set_message(format!("epoch {}/{}", epoch + 1, config.epochs));
    }
    bar.finish_and_clear();
    Ok(step.model.valid())
}
