//! The poison classifier (docs/design.md §3.5): a small CNN ensemble that learns what the located trigger
//! patches look like and sweeps the whole dataset, catching poisons the cluster search missed.

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::detect::masking::paste::paste_region;
use crate::detect::threat::init_model_with;
use crate::error::{Error, Result};
use crate::image::ImageBatchSource;
use crate::image::PixelBox;

/// Classifier settings.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    /// Located patches of the best paste-test candidates used as positives. Default 20.
    #[config(default = 20)]
    pub top_patches: usize,
    /// Training examples of each class. Default 1024.
    #[config(default = 1024)]
    pub examples_per_class: usize,
    /// Models in the ensemble; their probabilities are averaged. Default 3.
    #[config(default = 3)]
    pub ensemble: usize,
    /// Default 5.
    #[config(default = 5)]
    pub epochs: usize,
    /// Default 128.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Default 1e-3.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// A sample is removed when the ensemble's mean poison probability exceeds this. Default 0.5.
    #[config(default = 0.5)]
    pub threshold: f32,
    /// The ensemble is used only if it tells fresh held-out examples apart at least this well
    /// (balanced accuracy): a classifier that failed to learn would otherwise remove at random.
    /// Default 0.9.
    #[config(default = 0.9)]
    pub min_validation_accuracy: f32,
    /// The sweep is used only if it flags at most this share of all samples. A backdoor needs few
    /// poisons; a classifier that flags more has learnt a patch common in clean images (a natural
    /// detail that passed the paste test) and would strip the dataset. Set it above the highest
    /// poison rate you expect. Default 0.1.
    #[config(default = 0.1)]
    pub max_flagged_share: f64,
    /// Seeds sampling and initialisation. Default 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl ClassifierConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        use crate::check::{at_least, positive, share};
        at_least("detector.classifier.top_patches", self.top_patches, 1, "at least 1")?;
        at_least("detector.classifier.examples_per_class", self.examples_per_class, 2, "at least 2")?;
        at_least("detector.classifier.ensemble", self.ensemble, 1, "at least 1")?;
        at_least("detector.classifier.epochs", self.epochs, 1, "at least 1")?;
        at_least("detector.classifier.batch_size", self.batch_size, 1, "at least 1")?;
        positive("detector.classifier.learning_rate", self.learning_rate)?;
        share("detector.classifier.threshold", f64::from(self.threshold))?;
        share("detector.classifier.min_validation_accuracy", f64::from(self.min_validation_accuracy))?;
        share("detector.classifier.max_flagged_share", self.max_flagged_share)
    }
}

/// conv(16) → conv(32, stride 2) → conv(32, stride 2) → global max pool → 2 logits. Max, not
/// average: the question is whether a patch is present anywhere, and averaging dilutes a small
/// patch into the background (with average pooling the net did not learn the toy trigger).
#[derive(Module, Debug)]
pub struct PatchNet<B: Backend> {
    convs: Vec<Conv2d<B>>,
    out: Linear<B>,
}

impl<B: Backend> PatchNet<B> {
    /// A freshly initialised net for images of `channels` channels.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        let conv = |cin: usize, cout: usize, stride: usize| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            convs: vec![conv(channels, 16, 1), conv(16, 32, 2), conv(32, 32, 2)],
            out: LinearConfig::new(32, 2).init(device),
        }
    }

    /// Logits `N×2` (clean, poisoned) for a batch of images.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = images;
        for conv in &self.convs {
            x = relu(conv.forward(x));
        }
        let [n, c, _, _] = x.dims();
        self.out.forward(x.max_dim(3).max_dim(2).reshape([n, c]))
    }
}

/// A trained ensemble.
#[derive(Clone, Debug)]
pub struct PoisonClassifier<B: Backend> {
    /// The ensemble; its prediction is the mean probability.
    pub models: Vec<PatchNet<B>>,
    /// Probability above which a sample is flagged.
    pub threshold: f32,
    /// Balanced accuracy on held-out examples drawn like the training ones.
    pub validation_accuracy: f32,
}

impl<B: Backend> PoisonClassifier<B> {
    /// Mean poison probability of each image of the batch.
    pub fn predict(&self, images: Tensor<B, 4>) -> Vec<f32> {
        self.mean_probability(images).into_data().iter::<f32>().collect()
    }

    /// The ensemble's mean poison probability, `N×1`, left on the device.
    fn mean_probability(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = images.dims()[0];
        let models = self.models.len().max(1) as f64;
        // Each model's share divided before the sum, in model order, as the mean always was.
        self.models
            .iter()
            .map(|model| softmax(model.forward(images.clone()), 1).slice([0..n, 1..2]) / models)
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([n, 1], &images.device()))
    }

    /// Mean poison probability of every image of `images`.
    pub fn predict_all(&self, images: &ImageBatchSource, batch_size: usize, device: &B::Device) -> Vec<f32> {
        // One read-back at the end: on a GPU each one waits for the device.
        let all: Vec<usize> = (0..images.len()).collect();
        let batches: Vec<Tensor<B, 2>> = all
            .chunks(batch_size.max(1))
            .map(|chunk| self.mean_probability(images.batch::<B>(chunk, device)))
            .collect();
        if batches.is_empty() {
            return Vec::new();
        }
        Tensor::cat(batches, 0).into_data().iter::<f32>().collect()
    }
}

/// Where the classifier's training examples come from.
pub struct ClassifierData<'a> {
    /// Every image, at the working size.
    pub images: &'a ImageBatchSource,
    /// (image, located box) of the strongest candidates: the patches that make positives.
    pub patches: &'a [(usize, PixelBox)],
    /// Images believed clean: backgrounds for positives, and negatives.
    pub clean_pool: &'a [usize],
}

impl ClassifierConfig {
    /// Trains the ensemble.
    pub fn fit<B: AutodiffBackend>(
        &self,
        data: &ClassifierData,
        device: &B::Device,
    ) -> Result<PoisonClassifier<B::InnerBackend>> {
        if data.patches.is_empty() {
            return Err(Error::TooFew { stage: "the poison classifier", what: "patches", needed: 1, got: 0 });
        }
        if data.clean_pool.len() < 2 {
            let got = data.clean_pool.len();
            return Err(Error::TooFew { stage: "the poison classifier", what: "clean images", needed: 2, got });
        }
        self.check()?;
        // Held-out backgrounds are images no member trained on: the check measures what the
        // ensemble learnt about the patch, not what it remembers of the images.
        let mut pool = data.clean_pool.to_vec();
        pool.shuffle(&mut StdRng::seed_from_u64(self.seed ^ 0x401d_0u64));
        let held = (pool.len() / 5).max(1);
        let (held_pool, train_pool) = pool.split_at(held);
        let train_data = ClassifierData { images: data.images, patches: data.patches, clean_pool: train_pool };
        let held_data = ClassifierData { images: data.images, patches: data.patches, clean_pool: held_pool };
        let models = (0..self.ensemble)
            .map(|member| {
                let seed = self.seed.wrapping_add(member as u64 * 7919);
                let (examples, labels) = self.examples(&train_data, seed);
                self.train::<B>(&examples, &labels, seed, device)
            })
            .collect();
        let mut classifier = PoisonClassifier { models, threshold: self.threshold, validation_accuracy: 0.0 };
        let (held_out, labels) = self.examples(&held_data, self.seed ^ 0x5eed_0ff);
        let p = classifier.predict_all(&held_out, self.batch_size, device);
        let hit = |want: i64| {
            let (mut right, mut all) = (0usize, 0usize);
            for (p, &l) in p.iter().zip(&labels).filter(|(_, &l)| l == want) {
                all += 1;
                right += usize::from((*p > self.threshold) == (l == 1));
            }
            right as f32 / all.max(1) as f32
        };
        classifier.validation_accuracy = (hit(0) + hit(1)) / 2.0;
        Ok(classifier)
    }

    /// Balanced examples: clean images with a patch pasted (1); clean images plain or with a
    /// patch of another clean image pasted (0), so pasting alone is no cue.
    fn examples(&self, data: &ClassifierData, seed: u64) -> (ImageBatchSource, Vec<i64>) {
        let [_, c, h, w] = data.images.shape();
        let mut rng = StdRng::seed_from_u64(seed ^ 0xc1a55);
        let top = &data.patches[..self.top_patches.clamp(1, data.patches.len())];
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..self.examples_per_class * 2 {
            let base = data.clean_pool[rng.random_range(0..data.clean_pool.len())];
            let start = pixels.len();
            pixels.extend_from_slice(data.images.pixels(base));
            let positive = i % 2 == 0;
            if positive || rng.random::<bool>() {
                let (donor, patch) = if positive {
                    top[rng.random_range(0..top.len())]
                } else {
                    let donor = data.clean_pool[rng.random_range(0..data.clean_pool.len())];
                    let (pw, ph) = (top[0].1.w, top[0].1.h);
                    let region =
                        PixelBox { x: rng.random_range(0..=w - pw), y: rng.random_range(0..=h - ph), w: pw, h: ph };
                    (donor, region)
                };
                let x = rng.random_range(0..=w - patch.w);
                let y = rng.random_range(0..=h - patch.h);
                paste_region(&mut pixels[start..], data.images.pixels(donor), [c, h, w], &patch, x, y);
            }
            labels.push(positive as i64);
        }
        let count = labels.len();
        let source = ImageBatchSource::from_raw(pixels, [count, c, h, w]).expect("whole images were copied");
        (source, labels)
    }

    fn train<B: AutodiffBackend>(
        &self,
        examples: &ImageBatchSource,
        labels: &[i64],
        seed: u64,
        device: &B::Device,
    ) -> PatchNet<B::InnerBackend> {
        let channels = examples.shape()[1];
        let mut model = init_model_with::<B, _>(seed, device, |d| PatchNet::new(channels, d));
        let mut optim = AdamConfig::new().init::<B, PatchNet<B>>();
        let loss_fn = CrossEntropyLossConfig::new().init(device);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..labels.len()).collect();
        for _ in 0..self.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(self.batch_size) {
                let x = examples.batch::<B>(batch, device);
                let y = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(batch.iter().map(|&i| labels[i]).collect::<Vec<_>>(), [batch.len()]),
                    device,
                );
                let loss = loss_fn.forward(model.forward(x), y);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(self.learning_rate, model, grads);
            }
        }
        model.valid()
    }
}
