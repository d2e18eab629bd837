//! A frequency trigger added to the whole image (CTRL: a fixed value at high DCT frequencies of
//! the chroma channels in every 32-pixel window) leaves no patch to find, but in every window it
//! moves the same coefficients the same way, which an image's own content does not do.
//!
//! Fit: per image, each chroma coefficient's t across its windows (`stats::leaning`); a
//! coefficient and sign on which a minority of images lean far ([`SpectralConfig::candidate_t`])
//! is a shared component, like a recurring window for recurrence; the components whose carriers
//! overlap the strongest one's are the pattern, each weighted by its carriers' mean t; an image
//! is confirmed when its projection on the pattern (its t's weighted sum over the weights' norm)
//! reaches [`SpectralConfig::confirm_t`]. The pattern is the screen for new samples.
//! The finding's box is the whole image.

mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use burn::config::Config;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use stats::Coefficient;
use stats::{leaning, Basis};

use crate::detect::signal::{measurement, Finding, Fitted, Measured, Sample, Screen, Signal, SignalInput};
use crate::detect::signal::{Built, Registration};
use crate::detect::{DetectorConfig, Stage};
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::image::{Image, PixelBox};

/// Its line in [`crate::detect::registry`]: on unless the config switches it off.
pub const REGISTRATION: Registration = Registration { name: "spectral", build, load };

fn build(config: &DetectorConfig) -> Built<'_> {
    Ok(config.signals.spectral.then(|| Box::new(SpectralSignal(&config.spectral)) as Box<dyn Signal>))
}

fn load(dir: &Path) -> Result<Box<dyn Screen>> {
    Ok(Box::new(SpectralScreen::load(dir)?))
}

/// When a shared lean of DCT coefficients counts as a trigger.
#[derive(Config, Debug, PartialEq)]
pub struct SpectralConfig {
    /// Window side of the block DCT. Default 32 (CTRL's).
    #[config(default = 32)]
    pub window: usize,
    /// Lowest frequency looked at, in both directions: low frequencies carry the images' own
    /// smooth colour gradients. Default 8.
    #[config(default = 8)]
    pub min_frequency: usize,
    /// Images with fewer whole windows are not measured. Default 4.
    #[config(default = 4)]
    pub min_windows: usize,
    /// Windows measured per image at most, evenly strided: a trigger in every window shows in a
    /// few hundred, and the transform's cost stays bounded on large photos. Default 256.
    #[config(default = 256)]
    pub max_windows: usize,
    /// |t| at which an image leans on a coefficient far enough to count it as a carrier of it.
    /// Clean photos stay within 6.5 (docs/whole-image.md). Default 10.
    #[config(default = 10.0)]
    pub candidate_t: f32,
    /// Projection on the pattern at which an image is confirmed. Default 10.
    #[config(default = 10.0)]
    pub confirm_t: f32,
    /// Fewest images sharing a component. Default 5.
    #[config(default = 5)]
    pub min_carriers: usize,
    /// Most images sharing a component, as a share of the measured images: more is a property of
    /// the data (a codec, a camera), not an attack on it. Default 0.2.
    #[config(default = 0.2)]
    pub max_carrier_share: f64,
}

impl SpectralConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        crate::check::at_least("spectral.window", self.window, 2, "at least 2")?;
        if self.min_frequency >= self.window {
            return Err(Error::Config(format!(
                "spectral.min_frequency {} leaves no frequency below the window side {}",
                self.min_frequency, self.window
            )));
        }
        crate::check::at_least("spectral.min_windows", self.min_windows, 2, "at least 2")?;
        crate::check::at_least("spectral.max_windows", self.max_windows, 2, "at least 2")?;
        crate::check::at_least("spectral.min_carriers", self.min_carriers, 2, "at least 2")?;
        for (name, t) in [("spectral.candidate_t", self.candidate_t), ("spectral.confirm_t", self.confirm_t)] {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::Config(format!("{name} {t} is not a positive number")));
            }
        }
        if !(self.max_carrier_share > 0.0 && self.max_carrier_share <= 1.0) {
            return Err(Error::Config(format!(
                "spectral.max_carrier_share {} is outside (0, 1]",
                self.max_carrier_share
            )));
        }
        Ok(())
    }
}

/// The spectral signal, as configured.
pub struct SpectralSignal<'a>(pub &'a SpectralConfig);

/// What the spectral signal looked at.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Images with enough whole colour windows to measure.
    measured: usize,
    /// Coefficient and sign pairs that a minority of images lean on, with their carrier counts.
    components: Vec<(Coefficient, i8, usize)>,
    /// Components turned down because too many images lean on them (a property of the data).
    too_common: usize,
    /// The pattern: the components joined with the strongest, with their weights.
    pattern: Vec<(Coefficient, f32)>,
}

impl SpectralConfig {
    /// The coefficients `image` leans on, those at least half the lower bar (so that little is
    /// kept per image; a projection is taken over those); `None` where it cannot be measured.
    fn lean_of(&self, image: &Image) -> Option<Vec<(Coefficient, f32)>> {
        let basis = Basis::new(self.window, self.min_frequency);
        leaning(image, &basis, self.min_windows, self.max_windows, self.candidate_t.min(self.confirm_t) / 2.0)
    }
}

impl Signal for SpectralSignal<'_> {
    fn name(&self) -> &'static str {
        "spectral"
    }

    fn measures(&self, _rows: usize) -> bool {
        true
    }

    fn measure(&self, image: &Image) -> Measured {
        self.0.lean_of(image).map(|lean| Arc::new(lean) as Arc<dyn std::any::Any + Send + Sync>)
    }

    fn fit(&self, input: &SignalInput) -> Result<Fitted> {
        let (leans, screen, summary) = self.fitted(input)?;
        let findings = leans
            .iter()
            .enumerate()
            .map(|(row, l)| l.as_ref().and_then(|l| screen.finding(l, input.rows.size(row), input.working)))
            .collect();
        Ok(Fitted { findings, screen: Box::new(screen), summary })
    }

    fn fit_screen(&self, input: &SignalInput) -> Result<(Box<dyn Screen>, serde_json::Value)> {
        let (_, screen, summary) = self.fitted(input)?;
        Ok((Box::new(screen), summary))
    }

    fn encode(&self, measured: &(dyn std::any::Any + Send + Sync)) -> Vec<u8> {
        let Some(lean) = measured.downcast_ref::<Lean>() else { return Vec::new() };
        lean.iter().flat_map(|(c, t)| [c.channel, c.u, c.v].into_iter().chain(t.to_le_bytes())).collect()
    }

    fn decode(&self, bytes: &[u8]) -> Result<Measured> {
        if bytes.len() % 7 != 0 {
            return Err(Error::Config(format!("a stored spectral measurement of {} bytes", bytes.len())));
        }
        let lean: Lean = bytes
            .chunks(7)
            .map(|b| (Coefficient { channel: b[0], u: b[1], v: b[2] }, f32::from_le_bytes([b[3], b[4], b[5], b[6]])))
            .collect();
        Ok(Some(Arc::new(lean)))
    }
}

/// The coefficients one image leans on, with their t.
type Lean = Vec<(Coefficient, f32)>;

impl SpectralSignal<'_> {
    /// Every row's lean (measured earlier or read here), the screen and the summary.
    fn fitted(&self, input: &SignalInput) -> Result<(Vec<Option<Lean>>, SpectralScreen, serde_json::Value)> {
        let config = self.0;
        // Rows an earlier signal decoded were measured then; the rest are read here.
        let leans: Vec<Option<Lean>> = (0..input.rows.len())
            .into_par_iter()
            .map(|row| measurement::<Lean>(&input.measured_by(self, row)).cloned())
            .collect();
        let measured = leans.iter().filter(|l| l.is_some()).count();
        let mut summary = Summary { measured, ..Summary::default() };
        let pattern = pattern_of(&leans, config, &mut summary);
        summary.pattern = pattern.clone();
        let screen = SpectralScreen { config: config.clone(), pattern };
        Ok((leans, screen, serde_json::to_value(&summary)?))
    }
}

/// The shared components, and the pattern joined around the strongest: each component whose
/// carriers are mostly the strongest's, weighted by those carriers' mean t; empty when no
/// component is shared by a minority.
fn pattern_of(
    leans: &[Option<Vec<(Coefficient, f32)>>],
    config: &SpectralConfig,
    summary: &mut Summary,
) -> Vec<(Coefficient, f32)> {
    let mut carriers: BTreeMap<(Coefficient, i8), Vec<usize>> = BTreeMap::new();
    for (row, lean) in leans.iter().enumerate() {
        for &(c, t) in lean.iter().flatten() {
            if t.abs() >= config.candidate_t {
                carriers.entry((c, if t > 0.0 { 1 } else { -1 })).or_default().push(row);
            }
        }
    }
    let most = (config.max_carrier_share * summary.measured as f64).floor() as usize;
    carriers.retain(|_, rows| {
        let common = rows.len() > most;
        summary.too_common += usize::from(common && rows.len() >= config.min_carriers);
        rows.len() >= config.min_carriers && !common
    });
    summary.components = carriers.iter().map(|(&(c, s), rows)| (c, s, rows.len())).collect();
    // The most carried component, ties to the lowest coefficient.
    let Some(core) = carriers.iter().max_by_key(|(k, rows)| (rows.len(), std::cmp::Reverse(**k))).map(|(_, r)| r)
    else {
        return Vec::new();
    };
    let core: BTreeSet<usize> = core.iter().copied().collect();
    // Components carried by mostly the same images are one trigger (CTRL moves four, and the
    // rounding to 8 bits adds weaker harmonics).
    carriers
        .iter()
        .filter(|(_, rows)| 2 * rows.iter().filter(|r| core.contains(r)).count() >= rows.len().max(core.len()))
        .map(|(&(c, _), _)| {
            let t_of = |row: usize| leans[row].iter().flatten().find(|(k, _)| *k == c).map_or(0.0, |(_, t)| *t);
            let weight = core.iter().map(|&row| t_of(row).clamp(-MAX_T, MAX_T)).sum::<f32>() / core.len() as f32;
            (c, weight)
        })
        .collect()
}

/// Screen pixels per pattern pixel in the drawn pattern (a 32-px window drawn at 160 px).
const DRAWN_SCALE: usize = 5;

/// Largest |t| a weight or a projection counts: a flat image's lean is measured against the
/// storage floor and can be huge; past this it says nothing more.
const MAX_T: f32 = 1e4;

/// The pattern a spectral fit found: a new image leaning along it is removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpectralScreen {
    config: SpectralConfig,
    /// Coefficients and their weights (the carriers' mean t); empty when the fit found none.
    pattern: Vec<(Coefficient, f32)>,
}

const FILE: &str = "pattern.json";

impl SpectralScreen {
    /// The screen saved in `dir` by [`Screen::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let text = crate::bounded::read_text(&path)?;
        let bad = |reason: String| Error::format(&path, "poisoncam spectral screen", reason);
        let screen: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        screen.config.check().map_err(|e| bad(e.to_string()))?;
        let (lo, side) = (screen.config.min_frequency, screen.config.window);
        let fits = |c: &Coefficient| {
            c.channel < 2 && (lo..side).contains(&(c.u as usize)) && (lo..side).contains(&(c.v as usize))
        };
        if screen.pattern.iter().any(|(c, w)| !fits(c) || !w.is_finite()) {
            return Err(bad("a pattern coefficient outside the measured frequencies".into()));
        }
        Ok(screen)
    }

    /// The projection of `lean` on the pattern (a component not kept counts 0), as a finding
    /// over the whole image (of `native` size, also given at `working` size) when it reaches
    /// the bar.
    fn finding(&self, lean: &[(Coefficient, f32)], native: [usize; 2], working: [usize; 2]) -> Option<Finding> {
        let norm = self.pattern.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm == 0.0 {
            return None;
        }
        let t_of = |c: &Coefficient| lean.iter().find(|(k, _)| k == c).map_or(0.0, |(_, t)| t.clamp(-MAX_T, MAX_T));
        let along = self.pattern.iter().map(|(c, w)| w * t_of(c)).sum::<f32>() / norm;
        let bar = self.config.confirm_t;
        let whole = PixelBox { x: 0, y: 0, w: native[1], h: native[0] };
        (along >= bar).then(|| Finding::at(Stage::Spectral, 1.0 - bar / (2.0 * along), whole, native, working))
    }

    fn judge_image(&self, image: &Image, working: [usize; 2]) -> Option<Finding> {
        self.finding(&self.config.lean_of(image)?, [image.height(), image.width()], working)
    }
}

impl Screen for SpectralScreen {
    fn name(&self) -> &'static str {
        "spectral"
    }

    fn is_armed(&self) -> bool {
        !self.pattern.is_empty()
    }

    fn judge(&self, sample: &Sample, working: [usize; 2]) -> Option<Finding> {
        if self.pattern.is_empty() {
            return None;
        }
        self.judge_image(sample.image, working)
    }

    fn judge_measured(&self, measured: &Measured, native: [usize; 2], working: [usize; 2]) -> Option<Option<Finding>> {
        // An image too small to measure has no lean, and so no finding.
        Some(measurement::<Lean>(measured).and_then(|lean| self.finding(lean, native, working)))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(FILE), &serde_json::to_vec(self)?)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn drawn(&self) -> Option<Image> {
        if self.pattern.is_empty() {
            return None;
        }
        stats::drawn(&self.pattern, self.config.window, DRAWN_SCALE)
    }
}
