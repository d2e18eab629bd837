//! The warm start: a few epochs of SimCLR or MoCo v2 on the (possibly poisoned) data.

use std::path::Path;
use std::time::Instant;

use crate::progress::stage_bar;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointMeta};
use super::encoder::{EncoderConfig, ThreatModel};
use super::settings::{SslMethod, WarmStartConfig};
use super::step::{init_model, SslStep};
use crate::durable::FileLock;
use crate::error::{Error, Result};
use crate::image::{Fnv, ImageBatchSource};

/// What the warm start did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmStartReport {
    /// Epochs the model has now had.
    pub epochs: usize,
    /// Epochs loaded from the cache instead of trained.
    pub epochs_from_cache: usize,
    /// Mean loss of every epoch, cached ones included.
    pub losses: Vec<f32>,
    /// Wall time of the epochs trained in this call.
    pub seconds: f64,
    /// Images per second over those epochs.
    pub images_per_second: f64,
}

impl WarmStartConfig {
    /// Rejects settings that cannot work, before any image is read.
    pub fn check(&self) -> Result<()> {
        use crate::check::{at_least, positive, share};
        at_least("warm_start.batch_size", self.batch_size, 2, "at least 2 for a contrastive loss")?;
        positive("warm_start.learning_rate", self.learning_rate)?;
        positive("warm_start.temperature", f64::from(self.temperature))?;
        if self.method == SslMethod::MocoV2 {
            share("warm_start.moco_momentum", f64::from(self.moco_momentum))?;
            at_least("warm_start.moco_queue", self.moco_queue, 1, "at least 1")?;
        }
        self.encoder.check()?;
        self.augment.check()
    }

    fn check_for(&self, images: &ImageBatchSource) -> Result<()> {
        self.check()?;
        if images.len() < 2 {
            return Err(Error::TooFew { stage: "the warm start", what: "images", needed: 2, got: images.len() });
        }
        Ok(())
    }

    /// The encoder config with the data's channel count.
    pub fn encoder_for(&self, images: &ImageBatchSource) -> EncoderConfig {
        self.encoder.clone().with_in_channels(images.shape()[1])
    }

    /// Names the cache entry: every setting that changes the result, the data, and the start weights.
    fn cache_key(&self, images: &ImageBatchSource, start: Option<u64>) -> String {
        let mut hash = Fnv::default();
        let mut settings = self.clone();
        settings.cache_dir = None;
        settings.epochs = 0; // later epochs extend earlier ones, so an entry serves any epoch count
        hash.write(settings.to_string().as_bytes());
        hash.write(&images.fingerprint().to_le_bytes());
        hash.write(&start.unwrap_or(0).to_le_bytes());
        format!("warmstart-{:016x}", hash.0)
    }
}

/// The entry a run of `epochs` epochs resumes and extends: the key's own, unless that holds a
/// longer run, which a shorter one must not overwrite; it then gets an entry of its own.
fn entry_for(dir: &Path, key: &str, epochs: usize) -> Checkpoint {
    let shared = Checkpoint::new(dir, key);
    match shared.meta() {
        Some(meta) if meta.epochs > epochs => Checkpoint::new(dir, &format!("{key}-e{epochs}")),
        _ => shared,
    }
}

/// Trains the threat model, from `start` (the user's own checkpoint) or from scratch, for
/// `config.epochs` epochs, and returns it for inference with what was done.
pub fn warm_start<B: AutodiffBackend>(
    images: &ImageBatchSource,
    config: &WarmStartConfig,
    start: Option<ThreatModel<B>>,
    device: &B::Device,
) -> Result<(ThreatModel<B::InnerBackend>, WarmStartReport)> {
    config.check_for(images)?;
    let encoder = config.encoder_for(images);
    let start_print = start.as_ref().map(|m| model_fingerprint(&m.valid()));
    let mut model = start.unwrap_or_else(|| init_model::<B>(&encoder, config.seed, device));
    let mut optim = AdamConfig::new().init::<B, ThreatModel<B>>();
    // Two runs with one key share an entry: the second waits, then loads what the first saved.
    let (checkpoint, _lock) = match &config.cache_dir {
        Some(dir) => {
            let key = config.cache_key(images, start_print);
            let lock = FileLock::acquire(&dir.join(format!("{key}.lock")))?;
            (Some(entry_for(dir, &key, config.epochs)), Some(lock))
        }
        None => (None, None),
    };

    let mut losses = Vec::new();
    if let Some(ckpt) = &checkpoint {
        if let Some(meta) = ckpt.meta().filter(|m| m.epochs <= config.epochs) {
            model = ckpt.load_model(model, meta.epochs, device)?;
            optim = optim.load_record(ckpt.load_optimizer::<B, _>(meta.epochs, device)?);
            losses = meta.losses;
        }
    }
    let from_cache = losses.len();

    let steps_per_epoch = images.len().div_ceil(config.batch_size);
    let bar = stage_bar("warm start (steps)", (config.epochs.saturating_sub(from_cache) * steps_per_epoch) as u64);
    let started = Instant::now();
    let mut step = SslStep::new(model, optim, config, &encoder, device);
    let augment = step.augment.clone();
    let views = |batch: &[usize], rng: &mut StdRng| augment.views(images.batch::<B::InnerBackend>(batch, device), rng);
    for epoch in from_cache..config.epochs {
        let (order, mut rng) = epoch_order(config, images.len(), epoch);
        // The losses stay on the device until the epoch ends: reading one back each step would
        // make a GPU wait for every step before the next is queued.
        let mut total: Option<Tensor<B::InnerBackend, 1>> = None;
        let batches: Vec<&[usize]> = order.chunks(config.batch_size).filter(|b| b.len() >= 2).collect();
        // The next batch's views are made on a second thread while this batch trains: the
        // augmentation's ops run on one thread, and the pool's threads waited on them (about a
        // twentieth of a 28 px step in `perf`). They draw from `rng` in the same order as before.
        let mut next = batches.first().map(|batch| views(batch, &mut rng));
        for k in 0..batches.len() {
            let (view1, view2) = next.take().expect("made for every batch");
            let loss = std::thread::scope(|scope| {
                let ahead = batches.get(k + 1).map(|batch| scope.spawn(|| views(batch, &mut rng)));
                let loss = step.train(view1, view2);
                next = ahead.map(|h| h.join().expect("the augmentation thread does not panic"));
                loss
            });
            total = Some(match total {
                Some(t) => t + loss,
                None => loss,
            });
            bar.inc(1);
        }
        let steps = batches.len();
        let total: f32 = total.map_or(0.0, |t| t.into_scalar().elem_f32());
        losses.push(total / steps.max(1) as f32);
        bar.set_message(format!("epoch {}/{} loss {:.3}", epoch + 1, config.epochs, total / steps.max(1) as f32));
        if let Some(ckpt) = &checkpoint {
            let meta = CheckpointMeta { epochs: epoch + 1, losses: losses.clone() };
            ckpt.save(&step.model, step.optim.to_record(), &meta)?;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let trained = (config.epochs.saturating_sub(from_cache) * images.len()) as f64;
    Ok((
        step.model.valid(),
        WarmStartReport {
            epochs: config.epochs,
            epochs_from_cache: from_cache.min(config.epochs),
            losses,
            seconds,
            images_per_second: if seconds > 0.0 { trained / seconds } else { 0.0 },
        },
    ))
}

/// Epoch `epoch`'s order of the images and the generator its augmentations go on drawing from.
/// One generator per epoch, so a resumed run draws exactly what an uninterrupted one would.
fn epoch_order(config: &WarmStartConfig, images: usize, epoch: usize) -> (Vec<usize>, StdRng) {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_mul(0x9e37_79b9).wrapping_add(epoch as u64));
    let mut order: Vec<usize> = (0..images).collect();
    order.shuffle(&mut rng);
    (order, rng)
}

trait ElemF32 {
    fn elem_f32(self) -> f32;
}
impl<E: burn::tensor::ElementConversion> ElemF32 for E {
    fn elem_f32(self) -> f32 {
        self.elem()
    }
}

/// A hash of every parameter value, to tell start weights apart in cache keys.
pub fn model_fingerprint<B: Backend>(model: &ThreatModel<B>) -> u64 {
    struct Hasher(Fnv);
    impl<B: Backend> ModuleVisitor<B> for Hasher {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            for v in param.val().into_data().iter::<f32>() {
                self.0.write(&v.to_bits().to_le_bytes());
            }
        }
    }
    let mut hasher = Hasher(Fnv::default());
    model.visit(&mut hasher);
    hasher.0 .0
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};

    use super::*;
    use crate::detect::embed::embed;
    use crate::image::Image;

    type Train = Autodiff<Flex>;

    /// The warm start makes each batch's views on a second thread while the batch before it
    /// trains; a model trained on views made in turn, one step at a time, is the same to the bit.
    #[test]
    fn views_made_a_batch_ahead_train_the_model_as_views_made_in_turn() {
        let images: Vec<Image> = (0..20)
            .map(|i| Image::new(1, 12, 12, (0..144).map(|p| ((p * (i + 3)) % 17) as f32 / 16.0).collect()).unwrap())
            .collect();
        let images = ImageBatchSource::with_natural_size(&images).unwrap();
        let config = WarmStartConfig::new()
            .with_encoder(EncoderConfig::new().with_widths([4, 8, 8]).with_projection_dim(8))
            .with_epochs(2)
            .with_batch_size(8)
            .with_seed(3);
        let device = Default::default();
        let (ahead, _) = warm_start::<Train>(&images, &config, None, &device).unwrap();

        let encoder = config.encoder_for(&images);
        let optim = AdamConfig::new().init::<Train, ThreatModel<Train>>();
        let mut step =
            SslStep::new(init_model::<Train>(&encoder, config.seed, &device), optim, &config, &encoder, &device);
        for epoch in 0..config.epochs {
            let (order, mut rng) = epoch_order(&config, images.len(), epoch);
            for batch in order.chunks(config.batch_size).filter(|b| b.len() >= 2) {
                step.step(images.batch::<Flex>(batch, &device), &mut rng);
            }
        }
        let in_turn = step.model.valid();
        assert_eq!(
            embed(&ahead.backbone, &images, 16, &device).data,
            embed(&in_turn.backbone, &images, 16, &device).data
        );
    }
}
