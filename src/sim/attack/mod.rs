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

use crate::data::{ImageDataset, ImageItem};
use crate::error::{Error, Result};
use crate::image::{Image, PixelBox};
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

/// A uniform position for the patch in `[lo·W, hi·W − s]` along each axis.
fn position(rng: &mut StdRng, side: usize, extent: usize, lo: f64, hi: f64) -> usize {
    let start = (lo * extent as f64).floor() as usize;
    let end = ((hi * extent as f64).floor() as usize).saturating_sub(side).max(start);
    rng.random_range(start..=end).min(extent.saturating_sub(side))
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
    if config.jpeg.is_some_and(|q| !(1..=100).contains(&q)) {
        return Err(Error::Attack(format!("JPEG quality {} is outside 1..=100", config.jpeg.unwrap_or(0))));
    }
    Ok(())
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

    let mut out = items.to_vec();
    let mut poisoned = Vec::with_capacity(count);
    let alpha = config.blend as f32;
    for index in chosen {
        let bx = match &whole {
            Some((prepared, _)) => {
                let image = &mut out[index].image;
                *image = prepared.apply(image);
                PixelBox { x: 0, y: 0, w: image.width(), h: image.height() }
            }
            None => {
                let jittered = jittered_trigger(config, &trigger, side, &mut rng);
                paste_at_random(&mut out[index], &jittered, &mut rng, 0.25, 0.75, alpha)
            }
        };
        poisoned.push((index, bx));
    }
    if let Some(quality) = config.jpeg {
        for item in &mut out {
            item.image = jpeg_round_trip(&item.image, quality)?;
        }
    }
    Ok(PoisonedSet { dataset: ImageDataset::new(out), trigger, truth: GroundTruth { target: config.target, poisoned } })
}

/// The trigger resampled to a side drawn within `± config.jitter` pixels (the trigger itself when 0).
fn jittered_trigger(config: &AttackConfig, trigger: &Image, side: usize, rng: &mut StdRng) -> Image {
    if config.jitter == 0 {
        return trigger.clone();
    }
    let lo = side.saturating_sub(config.jitter).max(1);
    let new_side = rng.random_range(lo..=side + config.jitter);
    trigger.resized(new_side, new_side)
}

#[doc(hidden)]
/// The image as a JPEG decoder gives it back after encoding at `quality`.
pub fn jpeg_round_trip(image: &Image, quality: u8) -> Result<Image> {
    use image::codecs::jpeg::JpegEncoder;
    use image::{ExtendedColorType, ImageEncoder};
    let (c, h, w) = (image.channels(), image.height(), image.width());
    let plane = h * w;
    let bytes: Vec<u8> = (0..plane * c)
        .map(|i| (image.pixels()[(i % c) * plane + i / c] * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let color = if c == 1 { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, quality)
        .write_image(&bytes, w as u32, h as u32, color)
        .map_err(|e| Error::Attack(format!("JPEG encoding failed: {e}")))?;
    let decoded = image::load_from_memory(&encoded).map_err(|e| Error::Attack(format!("JPEG decoding failed: {e}")))?;
    let raw = if c == 1 { decoded.to_luma8().into_raw() } else { decoded.to_rgb8().into_raw() };
    Image::from_hwc_u8(c, h, w, &raw)
}

fn paste_at_random(item: &mut ImageItem, trigger: &Image, rng: &mut StdRng, lo: f64, hi: f64, alpha: f32) -> PixelBox {
    // Images of other sizes than the first get a trigger of their own side.
    let side = trigger.height().min(item.image.height()).min(item.image.width());
    let patch = if side == trigger.height() { trigger.clone() } else { trigger.resized(side, side) };
    let x = position(rng, side, item.image.width(), lo, hi);
    let y = position(rng, side, item.image.height(), lo, hi);
    item.image.blend(&patch, x, y, alpha);
    PixelBox { x, y, w: side, h: side }
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
    let mut out = Vec::new();
    for (index, item) in test.items().iter().enumerate() {
        let label = item.label.ok_or(Error::MissingLabel { index, needed: "the triggered test set" })?;
        if label != config.target {
            let mut item = item.clone();
            match &whole {
                Some((prepared, _)) => item.image = prepared.apply(&item.image),
                None => drop(paste_at_random(&mut item, trigger, &mut rng, 0.1, 0.9, config.blend as f32)),
            }
            out.push(item);
        }
    }
    Ok(ImageDataset::new(out))
}

#[cfg(test)]
mod tests;
