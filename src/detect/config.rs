//! The detector's settings: which signals and stages run, the localiser, and every stage's own
//! config, checked before any work.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::detect::masking::classify::ClassifierConfig;
use crate::detect::masking::cluster::KMeansConfig;
use crate::detect::masking::localize::cam::CamConfig;
use crate::detect::masking::paste::PasteConfig;
use crate::detect::recurrence::RecurrenceConfig;
use crate::detect::residual::ResidualConfig;
use crate::detect::spectral::SpectralConfig;
use crate::error::{Error, Result};

/// How candidate trigger boxes are located.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Localizer {
    /// Cluster activation masking (this crate's method).
    PoisonCam,
    /// Grad-CAM of the cluster score, as PatchSearch does (the baseline).
    PatchSearch,
}

/// Which stages after localisation run; `eval --stages` ablates with these.
#[derive(Config, Debug, PartialEq)]
pub struct StageSwitches {
    /// The paste test with cluster-level pruning. Without it, masking alone decides: a sample is
    /// removed when its masking score is an outlier within its cluster. Default on.
    #[config(default = true)]
    pub paste: bool,
    /// The poison classifier over all samples. Needs the paste test. Default on.
    #[config(default = true)]
    pub classifier: bool,
}

/// Which evidence the detector gathers; `eval --signals` ablates with these.
#[derive(Config, Debug, PartialEq)]
pub struct Signals {
    /// Patches that recur across images (training-free). Default on.
    #[config(default = true)]
    pub recurrence: bool,
    /// Cluster activation masking on the threat model, with the paste test and classifier that
    /// `stages` switches. Default on.
    #[config(default = true)]
    pub masking: bool,
    /// A frequency trigger shared across images (CTRL), training-free. Default on.
    #[config(default = true)]
    pub spectral: bool,
    /// A key blended over whole images (a residual pattern shared across different content),
    /// training-free. Default on.
    #[config(default = true)]
    pub residual: bool,
}

/// Settings of every detector stage.
#[derive(Config, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Which evidence is gathered: recurrence, masking or both.
    #[config(default = "Signals::new()")]
    pub signals: Signals,
    /// The training-free recurrence signal.
    #[config(default = "RecurrenceConfig::new()")]
    pub recurrence: RecurrenceConfig,
    /// The training-free spectral signal.
    #[config(default = "SpectralConfig::new()")]
    pub spectral: SpectralConfig,
    /// The training-free residual signal.
    #[config(default = "ResidualConfig::new()")]
    pub residual: ResidualConfig,
    /// Spherical k-means over the threat model's embeddings.
    #[config(default = "KMeansConfig::new()")]
    pub kmeans: KMeansConfig,
    /// Cluster activation masking (the PoisonCAM localiser).
    #[config(default = "CamConfig::new()")]
    pub cam: CamConfig,
    /// The paste test that confirms a located patch.
    #[config(default = "PasteConfig::new()")]
    pub paste: PasteConfig,
    /// The poison classifier that sweeps every sample.
    #[config(default = "ClassifierConfig::new()")]
    pub classifier: ClassifierConfig,
    /// Masking (PoisonCAM) or Grad-CAM (the PatchSearch baseline).
    #[config(default = "Localizer::PoisonCam")]
    pub localizer: Localizer,
    /// Which stages after localisation run.
    #[config(default = "StageSwitches::new()")]
    pub stages: StageSwitches,
    /// Images per forward pass. Default 512.
    #[config(default = 512)]
    pub batch_size: usize,
    /// A list of SHA-256 hashes of known poisons' files (`sha256sum` output); a file whose bytes
    /// hash to one is removed (detect::deny). Default none.
    #[config(default = "None")]
    pub deny: Option<std::path::PathBuf>,
}

impl DetectorConfig {
    /// Rejects settings that cannot work, before any image is read.
    pub fn check(&self) -> Result<()> {
        let signals = &self.signals;
        if !signals.recurrence && !signals.masking && !signals.spectral && !signals.residual && self.deny.is_none() {
            return Err(Error::Config("every signal is off: nothing could be detected".into()));
        }
        if self.signals.masking && self.localizer == Localizer::PatchSearch && !self.stages.paste {
            return Err(Error::Config("the PatchSearch baseline needs the paste test".into()));
        }
        // The classifier learns from the patches the paste test confirmed; without them it would
        // be skipped, and a run asked for it must not quietly lack it.
        if self.signals.masking && self.stages.classifier && !self.stages.paste {
            return Err(Error::Config(
                "the poison classifier needs the paste test's confirmed patches: switch the paste test on or the classifier off".into(),
            ));
        }
        if self.signals.recurrence {
            self.recurrence.check()?;
        }
        if self.signals.spectral {
            self.spectral.check()?;
        }
        if self.signals.residual {
            self.residual.check()?;
        }
        if self.signals.masking {
            crate::check::at_least("detector.batch_size", self.batch_size, 1, "at least 1")?;
            self.kmeans.check()?;
            self.cam.check()?;
            self.paste.check()?;
            self.classifier.check()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_without_the_stage_it_needs_is_named_before_any_work() {
        let mut config = DetectorConfig::new();
        config.stages.paste = false;
        let Err(Error::Config(reason)) = config.check() else { panic!("the classifier without the paste test passed") };
        assert!(reason.contains("paste test"), "{reason}");
        config.stages.classifier = false;
        assert!(config.check().is_ok(), "masking alone is a valid ablation");
        // Recurrence alone needs neither.
        config.signals.masking = false;
        config.stages.classifier = true;
        assert!(config.check().is_ok());
    }
}
