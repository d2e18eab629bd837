//! What a warm start is asked to do: the SSL objective and its settings, apart from the code that
//! trains, so that the training step and the cached warm start both read them.

use std::path::PathBuf;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use super::augment::AugmentConfig;
use super::encoder::EncoderConfig;

/// The self-supervised objective of the warm start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SslMethod {
    /// SimCLR: two views, NT-Xent over the batch.
    SimClr,
    /// MoCo v2: a momentum key encoder and a queue of negatives.
    MocoV2,
}

/// Warm-start settings; defaults are docs/design.md §3.1's.
#[derive(Config, Debug, PartialEq)]
pub struct WarmStartConfig {
    /// The SSL objective. Default SimCLR.
    #[config(default = "SslMethod::SimClr")]
    pub method: SslMethod,
    /// `in_channels` is overwritten by the data's channel count.
    #[config(default = "EncoderConfig::new()")]
    pub encoder: EncoderConfig,
    /// The augmentations that make the views.
    #[config(default = "AugmentConfig::new()")]
    pub augment: AugmentConfig,
    /// Passes over the data.
    #[config(default = 10)]
    pub epochs: usize,
    /// Images per optimiser step.
    #[config(default = 256)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// NT-Xent / InfoNCE temperature.
    #[config(default = 0.2)]
    pub temperature: f32,
    /// MoCo key-encoder momentum.
    #[config(default = 0.99)]
    pub moco_momentum: f32,
    /// MoCo queue length.
    #[config(default = 4096)]
    pub moco_queue: usize,
    /// Seeds initialisation, order and augmentations.
    #[config(default = 0)]
    pub seed: u64,
    /// Where checkpoints go; `None` trains without a cache.
    #[config(default = "None")]
    pub cache_dir: Option<PathBuf>,
}
