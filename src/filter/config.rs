//! `PoisonFilterConfig`: every stage's settings in one value, read from partial JSON.

use std::path::Path;

use burn::config::Config;
use burn::data::dataset::Dataset;

use crate::detect::threat::WarmStartConfig;
use crate::detect::DetectorConfig;
use crate::error::{Error, Result};
use crate::filter::{ReadPlan, WorkingImages};
use crate::image::AsImage;

/// Everything the filter does, nested per stage; round-trips through JSON.
#[derive(Config, Debug, PartialEq)]
pub struct PoisonFilterConfig {
    /// How the threat model is warm-started on the data.
    #[config(default = "WarmStartConfig::new()")]
    pub warm_start: WarmStartConfig,
    /// Which signals and stages run, and how.
    #[config(default = "DetectorConfig::new()")]
    pub detector: DetectorConfig,
    /// `[height, width]` every image is resized to; `None` takes the most common size, capped
    /// by `max_short_side`.
    #[config(default = "None")]
    pub working_size: Option<[usize; 2]>,
    /// Largest short side of a working size the filter chooses itself (0: no cap; default
    /// [`crate::image::DEFAULT_MAX_SHORT_SIDE`], 224). A `working_size` given explicitly is not capped.
    #[config(default = "crate::image::DEFAULT_MAX_SHORT_SIDE")]
    pub max_short_side: usize,
    /// Largest short side at which recurrence mines an image (0: no cap). Larger images are
    /// scaled down as they are read, which bounds memory (a 4000×3000 photo is 144 MB as f32;
    /// at 512 px it is 4 MB) and recurrence's time; a pasted trigger scales with its image.
    /// Default 512.
    #[config(default = 512)]
    pub max_native_short_side: usize,
}

impl PoisonFilterConfig {
    /// Reads a config saved as JSON (by [`PoisonFilterConfig::write`] or burn's `Config::save`).
    /// Settings left out take their defaults, so `{"warm_start": {"epochs": 3}}` is a whole
    /// config; a setting the config does not have (a typo, say) or a value of the wrong type is
    /// an error naming it, as is any value `check()` rejects.
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::bounded::read_text(path)?;
        let bad = |reason: String| Error::Config(format!("{}: {reason}", path.display()));
        let given: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut merged: serde_json::Value = serde_json::from_str(&burn::config::config_to_json(&Self::new()))?;
        if let Some(unknown) = merge_known(&mut merged, given, "") {
            return Err(bad(format!("unknown setting `{unknown}`")));
        }
        let config = Self::load_binary(merged.to_string().as_bytes()).map_err(|e| bad(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Writes the config as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::durable::write_atomic(path, burn::config::config_to_json(self).as_bytes())
    }

    /// Rejects settings that cannot work, before any image is read or model trained: every
    /// stage's own `check()` for the stages that will run, and the working size.
    pub fn check(&self) -> Result<()> {
        self.detector.check()?;
        if self.detector.signals.masking {
            self.warm_start.check()?;
        }
        if let Some([h, w]) = self.working_size {
            crate::check::at_least("working_size", h.min(w), 1, "at least 1×1")?;
        }
        Ok(())
    }

    /// Reads `dataset` at this config's sizes, then checks what needs the image count.
    pub(super) fn read_images<I: AsImage, D: Dataset<I>>(&self, dataset: &D) -> Result<WorkingImages> {
        let images = WorkingImages::read(dataset, &self.read_plan())?;
        if let Some(k) = self.detector.kmeans.k.filter(|&k| self.detector.signals.masking && k > images.rows.len()) {
            return Err(Error::InvalidSetting {
                name: "detector.kmeans.k",
                value: k.to_string(),
                expected: "at most the number of readable images",
            });
        }
        Ok(images)
    }

    /// How the filter reads a dataset under this config.
    pub fn read_plan(&self) -> ReadPlan {
        ReadPlan {
            working_size: self.working_size,
            max_short_side: self.max_short_side,
            max_native_short_side: self.max_native_short_side,
            stream_from_side: self.detector.recurrence.pyramid.min_image_side,
            working_copies: self.detector.signals.masking,
        }
    }

    /// Sets the seed of every stage.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.warm_start.seed = seed;
        let d = &mut self.detector;
        d.kmeans.seed = seed;
        d.recurrence.seed = seed;
        d.paste.seed = seed;
        d.classifier.seed = seed;
        self
    }
}

/// Writes `given` over `defaults`, object by object; returns the first key path of `given` that
/// `defaults` does not have.
fn merge_known(defaults: &mut serde_json::Value, given: serde_json::Value, prefix: &str) -> Option<String> {
    match (defaults, given) {
        (serde_json::Value::Object(defaults), serde_json::Value::Object(given)) => {
            for (key, value) in given {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                let Some(slot) = defaults.get_mut(&key) else {
                    return Some(path);
                };
                if let Some(unknown) = merge_known(slot, value, &path) {
                    return Some(unknown);
                }
            }
            None
        }
        (slot, value) => {
            *slot = value;
            None
        }
    }
}
