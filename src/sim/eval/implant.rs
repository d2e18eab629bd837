//! A controlled backdoor, for testing the masking path only: a BadEncoder-style fine-tune that
//! pulls triggered images to one reference embedding of the target class while holding clean
//! embeddings to the warm-started model's. It gives `eval` a threat model that provably carries
//! the trigger, which a few CPU epochs of SimCLR do not (docs/detector.md).

use std::time::Instant;

use burn::config::Config;
use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::EvalData;
use crate::data::ImageDataset;
use crate::detect::embed::{features, Embeddings};
use crate::detect::threat::{Backbone, NormStatistics};
use crate::error::{Error, Result};
use crate::image::{Image, ImageBatchSource};
use crate::progress::stage_bar;
use crate::sim::attack::{triggered_test_set, AttackConfig};

/// Fine-tune settings.
#[derive(Config, Debug, PartialEq)]
pub struct ImplantConfig {
    /// Passes over `images_per_epoch` triggered images. Default 8: on the embedded data's
    /// 10-epoch threat model, 512 steps gave a kNN ASR of 0.85, and 80 steps 0.05 (docs/detector.md).
    #[config(default = 8)]
    pub epochs: usize,
    /// Triggered (and as many clean) images drawn per epoch. Default 4,096.
    #[config(default = 4096)]
    pub images_per_epoch: usize,
    /// Default 64.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Adam's step size. Default 1e-3.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// Weight of the backdoor term against the clean-embedding term. Default 1: at 5 the cheapest
    /// way down is to pull every image toward the reference, trigger or not.
    #[config(default = 1.0)]
    pub backdoor_weight: f32,
    /// Seeds the order of the fine-tune. Default 0.
    #[config(default = 0)]
    pub seed: u64,
}

/// What the fine-tune did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImplantReport {
    /// Mean backdoor term per epoch: squared distance of triggered features to the reference,
    /// over the mean squared distance of target features to their mean.
    pub backdoor_losses: Vec<f32>,
    /// Mean clean term per epoch: squared distance to the warm-started features, on that scale.
    pub clean_losses: Vec<f32>,
    /// Wall time of the fine-tune.
    pub seconds: f64,
}

/// Rows of one set, clean and with the trigger pasted, in the same order.
pub struct TriggerPairs<'a> {
    /// The images without the trigger.
    pub clean: &'a ImageBatchSource,
    /// The same images with the trigger pasted.
    pub triggered: &'a ImageBatchSource,
}

impl ImplantConfig {
    /// Rejects settings that cannot train.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 || self.images_per_epoch == 0 || self.batch_size == 0 {
            return Err(Error::Config("implant epochs, images_per_epoch and batch_size must be positive".into()));
        }
        if !(self.learning_rate > 0.0) || !(self.backdoor_weight > 0.0) {
            return Err(Error::Config("implant learning_rate and backdoor_weight must be positive".into()));
        }
        Ok(())
    }

    /// Fine-tunes `start` so that `pairs.triggered` embed next to the reference: the member of
    /// `target` (the target class's images) nearest to that class's mean embedding.
    pub fn implant<B: AutodiffBackend>(
        &self,
        start: &Backbone<B::InnerBackend>,
        pairs: &TriggerPairs<'_>,
        target: &ImageBatchSource,
        device: &B::Device,
    ) -> Result<(Backbone<B::InnerBackend>, ImplantReport)> {
        self.check()?;
        if pairs.clean.len() != pairs.triggered.len() || pairs.clean.is_empty() || target.is_empty() {
            return Err(Error::NoInput("implant needs matching clean and triggered rows and target images"));
        }
        // Post-ReLU features all share one cone (cosines of 0.9 between unrelated images), so
        // both terms are squared distances in raw feature space, relative to the data's spread.
        let (reference, spread) = reference_feature(start, target, device);
        let reference = Tensor::<B, 2>::from_data(TensorData::new(reference.clone(), [1, reference.len()]), device);
        // The warm-started features the clean term holds to never change: compute them once.
        let anchors = features(start, pairs.clean, 256, device);
        let mut model = Backbone::<B>::from_inner(start.clone()).map(&mut Trainable);
        let mut optim = AdamConfig::new().init::<B, Backbone<B>>();
        let per_epoch = self.images_per_epoch.min(pairs.clean.len());
        let progress = stage_bar("implant", (self.epochs * per_epoch.div_ceil(self.batch_size)) as u64);
        let started = Instant::now();
        let mut report = ImplantReport { backdoor_losses: Vec::new(), clean_losses: Vec::new(), seconds: 0.0 };
        for epoch in 0..self.epochs {
            let mut rng = StdRng::seed_from_u64(self.seed.wrapping_mul(0x1a2b_3c4d).wrapping_add(epoch as u64));
            let mut order: Vec<usize> = (0..pairs.clean.len()).collect();
            order.shuffle(&mut rng);
            let (mut backdoor_sum, mut clean_sum, mut steps) = (0.0, 0.0, 0);
            for rows in order[..per_epoch].chunks(self.batch_size) {
                // Running batch-norm statistics throughout: inference sees exactly these features.
                let triggered = model.forward_with(
                    Tensor::from_inner(pairs.triggered.batch::<B::InnerBackend>(rows, device)),
                    NormStatistics::Running,
                );
                let anchor = gather(&anchors, rows, device);
                let clean = model.forward_with(
                    Tensor::from_inner(pairs.clean.batch::<B::InnerBackend>(rows, device)),
                    NormStatistics::Running,
                );
                let backdoor = (triggered - reference.clone()).powi_scalar(2).sum_dim(1).mean() / spread;
                let keep = (clean - anchor).powi_scalar(2).sum_dim(1).mean() / spread;
                backdoor_sum += backdoor.clone().into_scalar().elem::<f32>();
                clean_sum += keep.clone().into_scalar().elem::<f32>();
                steps += 1;
                let loss = backdoor * self.backdoor_weight + keep;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(self.learning_rate, model, grads);
                progress.inc(1);
            }
            report.backdoor_losses.push(backdoor_sum / steps as f32);
            report.clean_losses.push(clean_sum / steps as f32);
            progress.set_message(format!("epoch {} backdoor {:.3}", epoch + 1, backdoor_sum / steps as f32));
        }
        progress.finish_and_clear();
        report.seconds = started.elapsed().as_secs_f64();
        Ok((model.valid(), report))
    }
}

/// The rows of `all` at `rows`, as a `[rows, dim]` tensor.
fn gather<B: Backend>(all: &Embeddings, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
    let data: Vec<f32> = rows.iter().flat_map(|&i| all.row(i).iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [rows.len(), all.dim]), device)
}

struct Trainable;

impl<B: AutodiffBackend> ModuleMapper<B> for Trainable {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

/// The raw features of the target image nearest the target class's mean, and the mean squared
/// distance of the target features to that mean.
fn reference_feature<B: Backend>(
    backbone: &Backbone<B>,
    target: &ImageBatchSource,
    device: &B::Device,
) -> (Vec<f32>, f32) {
    let features = features(backbone, target, 256, device);
    let n = features.len();
    let mut mean = vec![0f32; features.dim];
    for i in 0..n {
        mean.iter_mut().zip(features.row(i)).for_each(|(m, v)| *m += v / n as f32);
    }
    let distance2 = |f: &[f32]| f.iter().zip(&mean).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
    let spread = (0..n).map(|i| distance2(features.row(i))).sum::<f32>() / n as f32;
    let nearest = (0..n).min_by(|&a, &b| distance2(features.row(a)).total_cmp(&distance2(features.row(b))));
    (nearest.map_or(mean.clone(), |i| features.row(i).to_vec()), spread.max(f32::EPSILON))
}

/// What the implant trains on: the non-target training rows, the same images with the trigger
/// pasted (placed apart from the triggered test set's), and the target class's rows.
pub struct ImplantRows {
    /// Training rows not of the target class.
    pub others: Vec<usize>,
    /// Those rows' images with the trigger pasted, in the same order.
    pub triggered: ImageDataset,
    /// Training rows of the target class.
    pub targets: Vec<usize>,
}

impl ImplantRows {
    /// The rows of `data.train` for an implant of `trigger` under `attack`.
    pub fn new(data: &EvalData, trigger: &Image, attack: &AttackConfig, labels: &[usize]) -> Result<Self> {
        let mut placed = attack.clone();
        placed.seed = placed.seed.wrapping_add(0x1a7);
        let (targets, others) = (0..labels.len()).partition(|&i| labels[i] == attack.target);
        Ok(Self { others, triggered: triggered_test_set(&data.train, trigger, &placed)?, targets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::embed::embed;
    use crate::detect::threat::{init_model, EncoderConfig};
    use burn::backend::{Autodiff, Flex};

    /// Smooth grey 12×12 ramps, and the same with a 4×4 checker in the corner.
    fn pairs(n: usize, seed: u64) -> (ImageBatchSource, ImageBatchSource) {
        use rand::RngExt;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clean = Vec::with_capacity(n * 144);
        for _ in 0..n {
            let (level, slope) = (rng.random_range(0.2..0.8f32), rng.random_range(-0.02..0.02f32));
            clean.extend((0..144).map(|p| level + slope * (p % 12 + p / 12) as f32));
        }
        let mut triggered = clean.clone();
        for i in 0..n {
            for y in 0..4 {
                for x in 0..4 {
                    triggered[i * 144 + y * 12 + x] = if (x + y) % 2 == 0 { 1.0 } else { 0.0 };
                }
            }
        }
        let shape = [n, 1, 12, 12];
        (ImageBatchSource::from_raw(clean, shape).unwrap(), ImageBatchSource::from_raw(triggered, shape).unwrap())
    }

    /// Mean squared feature distance to `reference`, over the spread.
    fn relative_distance(model: &Backbone<Flex>, images: &ImageBatchSource, reference: &[f32], spread: f32) -> f32 {
        let f = features(model, images, 64, &Default::default());
        (0..f.len()).map(|i| f.row(i).iter().zip(reference).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()).sum::<f32>()
            / (f.len() as f32 * spread)
    }

    #[test]
    fn triggered_images_move_to_the_reference_and_clean_ones_stay() {
        let device = Default::default();
        let start = init_model::<Flex>(&EncoderConfig::new().with_widths([4, 8, 8]), 1, &device).backbone;
        let (clean, triggered) = pairs(64, 2);
        let (target, _) = pairs(16, 3);
        let (reference, spread) = reference_feature(&start, &target, &device);
        let config = ImplantConfig::new().with_epochs(150).with_batch_size(16);
        let (implanted, report) = config
            .implant::<Autodiff<Flex>>(&start, &TriggerPairs { clean: &clean, triggered: &triggered }, &target, &device)
            .unwrap();
        let (test_clean, test_triggered) = pairs(32, 4);
        let before = relative_distance(&start, &test_triggered, &reference, spread);
        let after = relative_distance(&implanted, &test_triggered, &reference, spread);
        let clean_after = relative_distance(&implanted, &test_clean, &reference, spread);
        assert!(after < before / 2.0, "triggered images' distance to the reference {before} -> {after}");
        assert!(after < clean_after / 2.0, "the pull is not the trigger's: clean images sit at {clean_after}");
        assert!(report.backdoor_losses.last() < report.backdoor_losses.first());
        let drift = {
            let a = embed(&start, &test_clean, 64, &device);
            let b = embed(&implanted, &test_clean, 64, &device);
            (0..a.len()).map(|i| a.row(i).iter().zip(b.row(i)).map(|(x, y)| x * y).sum::<f32>()).sum::<f32>()
                / a.len() as f32
        };
        assert!(drift > 0.9, "clean embeddings drifted: mean cosine {drift}");
    }

    #[test]
    fn bad_settings_are_refused_before_any_work() {
        let device = Default::default();
        let start = init_model::<Flex>(&EncoderConfig::new().with_widths([4, 8, 8]), 1, &device).backbone;
        let (clean, triggered) = pairs(4, 2);
        let p = TriggerPairs { clean: &clean, triggered: &triggered };
        for config in [ImplantConfig::new().with_epochs(0), ImplantConfig::new().with_learning_rate(f64::NAN)] {
            assert!(matches!(config.implant::<Autodiff<Flex>>(&start, &p, &clean, &device), Err(Error::Config(_))));
        }
    }
}
