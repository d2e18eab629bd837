//! The patterns a residual fit found, as the rule for new samples, saved and read back.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::bands::{measure, Residuals};
use super::pattern::Pattern;
use super::ResidualConfig;
use crate::detect::signal::{Finding, Sample, Screen};
use crate::detect::Stage;
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::image::{Image, PixelBox};

const HEADER: &str = "pattern.json";
const VALUES: &str = "pattern.f32";

/// Largest pattern file read back: 16 patterns of 64-pixel kept bands for 256 sizes each is far
/// below it.
const MOST_BYTES: u64 = 1 << 30;

/// A residual fit's patterns: a new image standing out on one is removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResidualScreen {
    pub(super) config: ResidualConfig,
    pub(super) patterns: Vec<Pattern>,
}

impl ResidualScreen {
    /// The finding on an image measured as `residuals`, of `native` size.
    pub(super) fn finding(&self, residuals: &Residuals, native: [usize; 2], working: [usize; 2]) -> Option<Finding> {
        let bar = self.config.confirm_z;
        let z = self.patterns.iter().map(|p| p.z(residuals, native)).find(|&z| z > bar)?;
        let whole = PixelBox { x: 0, y: 0, w: native[1], h: native[0] };
        Some(Finding::at(Stage::Residual, 1.0 - bar / (2.0 * z), whole, native, working))
    }

    /// The screen saved in `dir` by [`Screen::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(HEADER);
        let bad = |reason: String| Error::format(&path, "poisoncam residual screen", reason);
        let mut screen: Self =
            serde_json::from_str(&crate::bounded::read_text(&path)?).map_err(|e| bad(e.to_string()))?;
        screen.config.check().map_err(|e| bad(e.to_string()))?;
        let mut wanted = 0usize;
        for p in &screen.patterns {
            let Some(&side) = screen.config.bands.get(p.band) else {
                return Err(bad(format!("a pattern in band {} of {}", p.band, screen.config.bands.len())));
            };
            if p.count < 1 || !(p.spread > 0.0 && p.spread.is_finite() && p.median.is_finite()) {
                return Err(bad("a pattern with no carriers or no spread".into()));
            }
            wanted += (1 + p.sizes.len()) * 3 * super::bands::kept(side).0.pow(2);
        }
        let bytes = crate::bounded::read(&dir.join(VALUES), MOST_BYTES)?;
        if bytes.len() != 4 * wanted {
            return Err(bad(format!("{} bytes of pattern values, {} expected", bytes.len(), 4 * wanted)));
        }
        let mut values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        for p in &mut screen.patterns {
            let dim = 3 * super::bands::kept(screen.config.bands[p.band]).0.pow(2);
            p.total = values.by_ref().take(dim).collect();
            p.by_size = (0..p.sizes.len()).map(|_| values.by_ref().take(dim).collect()).collect();
        }
        if screen.patterns.iter().flat_map(|p| p.total.iter().chain(p.by_size.iter().flatten())).any(|v| !v.is_finite())
        {
            return Err(bad("a pattern value that is not a number".into()));
        }
        Ok(screen)
    }
}

impl Screen for ResidualScreen {
    fn name(&self) -> &'static str {
        "residual"
    }

    fn is_armed(&self) -> bool {
        !self.patterns.is_empty()
    }

    fn judge(&self, sample: &Sample, working: [usize; 2]) -> Option<Finding> {
        if self.patterns.is_empty() {
            return None;
        }
        let residuals = measure(sample.image, &self.config.bands, self.config.sigma);
        self.finding(&residuals, [sample.image.height(), sample.image.width()], working)
    }

    fn judge_measured(
        &self,
        measured: &crate::detect::signal::Measured,
        native: [usize; 2],
        working: [usize; 2],
    ) -> Option<Option<Finding>> {
        // Rows past a large fit's sample were not measured: those need their image.
        let residuals = crate::detect::signal::measurement::<Residuals>(measured)?;
        Some(self.finding(residuals, native, working))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let values: Vec<u8> = self
            .patterns
            .iter()
            .flat_map(|p| p.total.iter().chain(p.by_size.iter().flatten()))
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_atomic(&dir.join(VALUES), &values)?;
        write_atomic(&dir.join(HEADER), &serde_json::to_vec(self)?)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// The strongest pattern, amplified around mid-grey (±4 of its standard deviations).
    fn drawn(&self) -> Option<Image> {
        let p = self.patterns.first()?;
        let side = super::bands::kept(self.config.bands[p.band]).0;
        let sd = (p.total.iter().map(|v| v * v).sum::<f32>() / p.total.len() as f32).sqrt().max(1e-12);
        let pixels = p.total.iter().map(|v| (0.5 + v / (8.0 * sd)).clamp(0.0, 1.0)).collect();
        Image::new(3, side, side, pixels).ok()
    }
}
