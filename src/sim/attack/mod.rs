//! Attack simulator with ground truth (for evaluation only): targeted, HTBA-style patch poisoning.
//!
//! A rate of the *whole* dataset is drawn from the target class and gets an opaque trigger patch at
//! a uniform position in `[0.25·W, 0.75·W − s]` (training) or `[0.1·W, 0.9·W − s]` (triggered test
//! images), with `s = trigger_frac × side`.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::image::{Image, PixelBox};
use crate::sim::stored::StoredAs;
use crate::sim::trigger::{ClampedPatch, Trigger};
use crate::sim::whole_image::WholeImageTrigger;

/// Where the trigger patch comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TriggerSource {
    /// Smooth random colour blobs from `seed` (HTBA-like).
    Procedural {
        /// Seeds the pattern.
        seed: u64,
    },
    /// A PNG (or JPEG) file, resized to the trigger side.
    File(PathBuf),
}

/// Attack parameters; [`AttackConfig::default`] is docs/design.md §4's setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackConfig {
    /// Target class whose images get the trigger. Default 0.
    pub target: usize,
    /// Share of the whole dataset that is poisoned, in [0, 1]. Default 0.01.
    pub rate: f64,
    /// Trigger side as a share of the image side. Default 0.2.
    pub trigger_frac: f64,
    /// Default: procedural, seed 0.
    pub trigger: TriggerSource,
    /// Seed for which images are poisoned and where the trigger goes. Default 0.
    pub seed: u64,
    /// Each poison's trigger side is resampled uniformly within ± this many pixels. Default 0.
    #[serde(default)]
    pub jitter: usize,
    /// Opacity of the pasted trigger: 1 pastes it, below 1 blends it with the image. Default 1.
    #[serde(default = "opaque")]
    pub blend: f64,
    /// Stores every training image (poisoned or not) as JPEG at this quality. Default none.
    #[serde(default)]
    pub jpeg: Option<u8>,
    /// A trigger over the whole image (CTRL, a blend, SIG, a perturbation) instead of the
    /// patch: the patch settings are then unused and each poison's box is the whole image.
    #[serde(default)]
    pub whole_image: Option<WholeImageTrigger>,
}

fn opaque() -> f64 {
    1.0
}

impl AttackConfig {
    /// How every training image is stored: JPEG at `jpeg`'s quality, else losslessly.
    pub fn stored_as(&self) -> StoredAs {
        self.jpeg.map_or(StoredAs::Png, StoredAs::Jpeg)
    }
}

impl Default for AttackConfig {
    fn default() -> Self {
        Self {
            target: 0,
            rate: 0.01,
            trigger_frac: 0.2,
            trigger: TriggerSource::Procedural { seed: 0 },
            seed: 0,
            jitter: 0,
            blend: 1.0,
            jpeg: None,
            whole_image: None,
        }
    }
}

/// Which items were poisoned and where their trigger is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The target class.
    pub target: usize,
    /// Poisoned indices, ascending, with their trigger boxes.
    pub poisoned: Vec<(usize, PixelBox)>,
}

impl GroundTruth {
    /// Whether dataset item `index` is a poison.
    pub fn is_poisoned(&self, index: usize) -> bool {
        self.poisoned.binary_search_by_key(&index, |(i, _)| *i).is_ok()
    }
}

/// A poisoned copy of a dataset with the trigger used and the ground truth.
#[derive(Clone, Debug)]
pub struct PoisonedSet {
    /// The dataset with the poisons in place.
    pub dataset: ImageDataset,
    /// The trigger image that was pasted.
    pub trigger: Image,
    /// Which items are poisons and where their triggers are.
    pub truth: GroundTruth,
}

#[doc(hidden)]
/// The trigger side in pixels for an image of side `min(h, w)`.
pub fn trigger_side(config: &AttackConfig, height: usize, width: usize) -> usize {
    ((config.trigger_frac * height.min(width) as f64).round() as usize).clamp(1, height.min(width))
}

#[doc(hidden)]
/// Builds the trigger patch for images with `channels` channels.
pub fn make_trigger(source: &TriggerSource, channels: usize, side: usize) -> Result<Image> {
    let patch = match source {
        TriggerSource::Procedural { seed } => procedural_trigger(*seed, side),
        TriggerSource::File(path) => crate::data::decode_file(path)?.resized(side, side),
    };
    Ok(stretch_contrast(patch.with_channels(channels)))
}

/// A 4×4 grid of random colours, smoothly upsampled: blobs, like the HTBA triggers.
fn procedural_trigger(seed: u64, side: usize) -> Image {
    const GRID: usize = 4;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7416_6e72);
    let pixels = (0..3 * GRID * GRID).map(|_| rng.random::<f32>()).collect();
    // The buffer length is fixed by the constants above, never by input.
    let grid = Image::new(3, GRID, GRID, pixels).expect("3×4×4 buffer has 48 values");
    grid.resized(side, side)
}

/// Stretches each channel to the full [0, 1] range, so a grey conversion keeps the pattern visible.
fn stretch_contrast(image: Image) -> Image {
    let (c, h, w) = (image.channels(), image.height(), image.width());
    let plane = h * w;
    let mut pixels = image.pixels().to_vec();
    for ch in pixels.chunks_mut(plane) {
        let (lo, hi) = ch.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if hi - lo > 1e-6 {
            ch.iter_mut().for_each(|v| *v = (*v - lo) / (hi - lo));
        }
    }
    Image::new(c, h, w, pixels).unwrap_or(image)
}

pub(crate) fn check(config: &AttackConfig) -> Result<()> {
    if !(0.0..=1.0).contains(&config.rate) {
        return Err(Error::Attack(format!("rate {} is outside [0, 1]", config.rate)));
    }
    if !(config.trigger_frac > 0.0 && config.trigger_frac <= 1.0) {
        return Err(Error::Attack(format!("trigger_frac {} is outside (0, 1]", config.trigger_frac)));
    }
    if !(config.blend > 0.0 && config.blend <= 1.0) {
        return Err(Error::Attack(format!("blend {} is outside (0, 1]", config.blend)));
    }
    if let Some(trigger) = &config.whole_image {
        trigger.check()?;
    }
    config.stored_as().check()
}

/// Poisons `round(rate × N)` images of the target class, chosen and placed under `config.seed`.
pub fn poison(dataset: &ImageDataset, config: &AttackConfig) -> Result<PoisonedSet> {
    check(config)?;
    let items = dataset.items();
    let first = items.first().ok_or_else(|| Error::Attack("the dataset is empty".into()))?;
    let mut candidates = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let label = item.label.ok_or(Error::MissingLabel { index, needed: "the attack simulator" })?;
        if label == config.target {
            candidates.push(index);
        }
    }
    let count = (config.rate * items.len() as f64).round() as usize;
    if count > candidates.len() {
        return Err(Error::Attack(format!(
            "rate {} needs {count} images of class {} but there are {}",
            config.rate,
            config.target,
            candidates.len()
        )));
    }
    let side = trigger_side(config, first.image.height(), first.image.width());
    let whole = config.whole_image.as_ref().map(|t| t.drawn_for(&first.image)).transpose()?;
    let trigger = match &whole {
        Some((_, shown)) => shown.clone(),
        None => make_trigger(&config.trigger, first.image.channels(), side)?,
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    candidates.shuffle(&mut rng);
    let mut chosen = candidates[..count].to_vec();
    chosen.sort_unstable();

    let patch =
        ClampedPatch { patch: &trigger, jitter: config.jitter, range: (0.25, 0.75), alpha: config.blend as f32 };
    let placed: &dyn Trigger = match &whole {
        Some((prepared, _)) => prepared,
        None => &patch,
    };
    let mut out = items.to_vec();
    let mut poisoned = Vec::with_capacity(count);
    for index in chosen {
        // A clamped patch or a whole-image trigger always fits.
        if let Some(bx) = placed.apply(&mut out[index].image, &mut rng) {
            poisoned.push((index, bx));
        }
    }
    let stored = config.stored_as();
    if stored != StoredAs::Png {
        for item in &mut out {
            item.image = stored.round_trip(&item.image)?;
        }
    }
    Ok(PoisonedSet { dataset: ImageDataset::new(out), trigger, truth: GroundTruth { target: config.target, poisoned } })
}

#[doc(hidden)]
/// The triggered test set: every non-target image of `test` with the trigger pasted in
/// `[0.1·W, 0.9·W − s]`; labels stay the true ones.
pub fn triggered_test_set(test: &ImageDataset, trigger: &Image, config: &AttackConfig) -> Result<ImageDataset> {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(0x7e57));
    let whole = match test.items().first() {
        Some(first) => config.whole_image.as_ref().map(|t| t.drawn_for(&first.image)).transpose()?,
        None => None,
    };
    let patch = ClampedPatch { patch: trigger, jitter: 0, range: (0.1, 0.9), alpha: config.blend as f32 };
    let mut out = Vec::new();
    for (index, item) in test.items().iter().enumerate() {
        let label = item.label.ok_or(Error::MissingLabel { index, needed: "the triggered test set" })?;
        if label != config.target {
            let mut item = item.clone();
            let placed: &dyn Trigger = match &whole {
                Some((prepared, _)) => prepared,
                None => &patch,
            };
            placed.apply(&mut item.image, &mut rng);
            out.push(item);
        }
    }
    Ok(ImageDataset::new(out))
}

#[cfg(test)]
mod tests;
