//! The `eval` flags of a trigger without a patch (CTRL, a blended key, SIG, a bounded
//! perturbation), each per its recipe (`poisoncam::sim::whole_image`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use poisoncam::sim::whole_image::{BlendKey, WholeImageTrigger};

#[derive(Clone, Copy, ValueEnum)]
pub enum WholeImageKind {
    /// CTRL's frequency trigger (`--magnitude`).
    Ctrl,
    /// A fixed uniform-noise key blended at `--alpha`.
    BlendNoise,
    /// An image key (`--key FILE`) blended at `--alpha`.
    BlendImage,
    /// SIG's sinusoid (`--sig-delta`, `--sig-frequency`).
    Sig,
    /// A fixed ±`--bound` pattern.
    Perturbation,
}

#[derive(Args, Clone)]
pub struct WholeImageArgs {
    /// Poison with a trigger that covers the whole image instead of a patch.
    #[arg(long, value_enum)]
    pub whole_image: Option<WholeImageKind>,
    /// CTRL: added to each trigger coefficient (50 in the paper, 100 in its code).
    #[arg(long, default_value_t = 100.0)]
    pub magnitude: f32,
    /// Blends: the key's weight α.
    #[arg(long, default_value_t = 0.2)]
    pub alpha: f32,
    /// `blend-image`: the key image.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// SIG: Δ in 8-bit levels.
    #[arg(long, default_value_t = 20.0)]
    pub sig_delta: f32,
    /// SIG: periods across the width.
    #[arg(long, default_value_t = 6.0)]
    pub sig_frequency: f32,
    /// The perturbation's bound in 8-bit levels.
    #[arg(long, default_value_t = 8.0)]
    pub bound: f32,
}

impl WholeImageArgs {
    /// The trigger the flags name, if any; `seed` seeds drawn keys and patterns.
    pub fn trigger(&self, seed: u64) -> poisoncam::Result<Option<WholeImageTrigger>> {
        let Some(kind) = self.whole_image else { return Ok(None) };
        Ok(Some(match kind {
            WholeImageKind::Ctrl => WholeImageTrigger::Ctrl { magnitude: self.magnitude },
            WholeImageKind::BlendNoise => {
                WholeImageTrigger::Blend { key: BlendKey::Noise { seed: seed ^ 0x6b65 }, alpha: self.alpha }
            }
            WholeImageKind::BlendImage => {
                let key = self
                    .key
                    .clone()
                    .ok_or_else(|| poisoncam::Error::Attack("--whole-image blend-image needs --key FILE".into()))?;
                WholeImageTrigger::Blend { key: BlendKey::File(key), alpha: self.alpha }
            }
            WholeImageKind::Sig => WholeImageTrigger::Sig { delta: self.sig_delta, frequency: self.sig_frequency },
            WholeImageKind::Perturbation => WholeImageTrigger::Perturbation { bound: self.bound, seed: seed ^ 0x7065 },
        }))
    }
}
