//! A key blended over whole images (Chen et al.'s blend, a noise key, a small fixed
//! perturbation) leaves no patch and no within-image repetition, but it adds the same pattern,
//! in each image's relative coordinates, to every poison: a minority of images whose high-pass
//! residuals share one component while their content differs.
//!
//! Fit: each image at a few sides ([`ResidualConfig::bands`]), its residual of unit length
//! (`bands`); groups seeded by mutual nearest neighbours and re-estimated from the images that
//! stand out on their pattern (`search`); the kept patterns are the screen, and an image is
//! confirmed when its projection on a pattern, on the carriers of other sizes, stands
//! [`ResidualConfig::confirm_z`] robust deviations above the data's (`pattern`). The finding's
//! box is the whole image. Measured in docs/whole-image.md (2026-12-07).

mod bands;
mod pattern;
mod screen;
mod search;

use std::path::Path;
use std::sync::Arc;

use burn::config::Config;
use rayon::prelude::*;
use serde::Serialize;

pub use screen::ResidualScreen;

use crate::detect::signal::{Built, Fitted, Measured, Registration, Screen, Signal, SignalInput};
use crate::detect::DetectorConfig;
use crate::error::{Error, Result};
use crate::image::Image;
use bands::Residuals;

/// Its line in [`crate::detect::registry`]: on unless the config switches it off.
pub const REGISTRATION: Registration = Registration { name: "residual", build, load };

fn build(config: &DetectorConfig) -> Built<'_> {
    Ok(config.signals.residual.then(|| Box::new(ResidualSignal(&config.residual)) as Box<dyn Signal>))
}

fn load(dir: &Path) -> Result<Box<dyn Screen>> {
    Ok(Box::new(ResidualScreen::load(dir)?))
}

/// When a shared residual counts as a blended key.
#[derive(Config, Debug, PartialEq)]
pub struct ResidualConfig {
    /// Sides each image is looked at, in its relative coordinates: a key finer than a side is
    /// averaged away there. Default 64 and 128.
    #[config(default = "vec![64, 128]")]
    pub bands: Vec<usize>,
    /// Gaussian blur (pixels of the band) whose difference is the residual. Default 1.
    #[config(default = 1.0)]
    pub sigma: f32,
    /// Nearest images per image when seeding groups. Default 5.
    #[config(default = 5)]
    pub neighbours: usize,
    /// Groups seeded per band at most. Default 12.
    #[config(default = 12)]
    pub seeds: usize,
    /// Robust deviations above the data's projection at which an image stands out. Default 6.
    #[config(default = 6.0)]
    pub confirm_z: f32,
    /// Fewest images sharing a pattern. Default 5.
    #[config(default = 5)]
    pub min_carriers: usize,
    /// Most images sharing a pattern, as a share of the measured ones: more is a property of the
    /// data. Default 0.2.
    #[config(default = 0.2)]
    pub max_carrier_share: f64,
    /// Most images just below the bar (half of it to it), per carrier: a pattern whose
    /// standing fades into the data is the data's own structure, not an added key. Default 0.5.
    #[config(default = 0.5)]
    pub island: f64,
    /// Highest mean cosine of the carriers' 8-pixel thumbnails: carriers that look alike share
    /// their content, not a key. Default 0.5.
    #[config(default = 0.5)]
    pub max_content: f32,
    /// Images the neighbour search compares, pairwise, at most (evenly strided). Default 2048.
    #[config(default = 2048)]
    pub search_rows: usize,
    /// Images whose residuals are held at once, at most; past it the fit looks at a strided
    /// sample and judges the rest one by one. Default 8192.
    #[config(default = 8192)]
    pub max_rows: usize,
}

impl ResidualConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        if self.bands.is_empty() || self.bands.iter().any(|&s| !(8..=512).contains(&s)) {
            return Err(Error::Config(format!("residual.bands {:?}: each side must be 8 to 512", self.bands)));
        }
        if !(self.sigma > 0.0 && self.sigma.is_finite() && self.confirm_z > 0.0 && self.confirm_z.is_finite()) {
            return Err(Error::Config("residual.sigma and residual.confirm_z must be positive numbers".into()));
        }
        crate::check::at_least("residual.neighbours", self.neighbours, 1, "at least 1")?;
        crate::check::at_least("residual.seeds", self.seeds, 1, "at least 1")?;
        crate::check::at_least("residual.min_carriers", self.min_carriers, 3, "at least 3")?;
        crate::check::at_least("residual.search_rows", self.search_rows, 2, "at least 2")?;
        crate::check::at_least("residual.max_rows", self.max_rows, self.search_rows, "at least residual.search_rows")?;
        let share = |v: f64| v > 0.0 && v <= 1.0;
        if !(share(self.max_carrier_share) && self.island >= 0.0 && self.max_content.is_finite()) {
            return Err(Error::Config(
                "residual.max_carrier_share must be in (0, 1], residual.island at least 0".into(),
            ));
        }
        Ok(())
    }
}

/// The residual signal, as configured.
pub struct ResidualSignal<'a>(pub &'a ResidualConfig);

/// What the residual signal looked at.
#[derive(Debug, Serialize)]
struct Summary {
    /// Images with a residual (not flat).
    measured: usize,
    /// Whether the images have several sizes (each is then judged on carriers of other sizes).
    mixed_sizes: bool,
    /// Images looked at by the fit, where the data had more than `max_rows`.
    sampled: Option<usize>,
    /// Groups considered, with why each was kept or turned down.
    considered: Vec<search::Considered>,
    /// The patterns kept: band side and carriers.
    patterns: Vec<(usize, usize)>,
}

impl Signal for ResidualSignal<'_> {
    fn name(&self) -> &'static str {
        "residual"
    }

    fn measures(&self, rows: usize) -> bool {
        rows <= self.0.max_rows
    }

    fn measures_row(&self, row: usize, rows: usize) -> bool {
        looks_at(row, rows, self.0.max_rows)
    }

    fn measure(&self, image: &Image) -> Measured {
        Some(Arc::new(bands::measure(image, &self.0.bands, self.0.sigma)))
    }

    fn encode(&self, measured: &(dyn std::any::Any + Send + Sync)) -> Vec<u8> {
        measured.downcast_ref::<Residuals>().map_or_else(Vec::new, Residuals::encode)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Measured> {
        let residuals = Residuals::decode(bytes).map_err(Error::Config)?;
        Ok(Some(Arc::new(residuals)))
    }

    fn fit(&self, input: &SignalInput) -> Result<Fitted> {
        let config = self.0;
        let (residuals, screen, summary) = self.fitted(input)?;
        let n = input.rows.len();
        let findings = (0..n)
            .into_par_iter()
            .map(|row| {
                let size = input.rows.size(row);
                match &residuals[row] {
                    Some(r) => screen.finding(r, size, input.working),
                    None if self.measures_row(row, n) || !screen.is_armed() => None,
                    // A row that cannot be read carries no evidence; its rows report it.
                    None => {
                        let image = input.rows.read(row).ok()?;
                        screen.finding(&bands::measure(&image, &config.bands, config.sigma), size, input.working)
                    }
                }
            })
            .collect();
        Ok(Fitted { findings, screen: Box::new(screen), summary })
    }

    fn fit_screen(&self, input: &SignalInput) -> Result<(Box<dyn Screen>, serde_json::Value)> {
        let (_, screen, summary) = self.fitted(input)?;
        Ok((Box::new(screen), summary))
    }
}

/// Whether the fit looks at row `row` of `rows`: every row up to `max_rows` of them, else
/// `max_rows` evenly strided.
fn looks_at(row: usize, rows: usize, max_rows: usize) -> bool {
    if rows <= max_rows {
        return row < rows;
    }
    // Row k · rows / max_rows for k below max_rows: the first k whose row reaches `row`.
    let k = (row * max_rows).div_ceil(rows);
    k < max_rows && k * rows / max_rows == row
}

impl ResidualSignal<'_> {
    /// The residuals of the rows looked at (measured earlier or read here), the screen and the
    /// summary.
    fn fitted(&self, input: &SignalInput) -> Result<(Vec<Option<Arc<Residuals>>>, ResidualScreen, serde_json::Value)> {
        let config = self.0;
        let n = input.rows.len();
        let sizes: Vec<[usize; 2]> = (0..n).map(|r| input.rows.size(r)).collect();
        let residuals: Vec<Option<Arc<Residuals>>> = (0..n)
            .into_par_iter()
            .map(|row| {
                if !self.measures_row(row, n) {
                    return None;
                }
                input.measured_by(self, row).and_then(|m| m.downcast::<Residuals>().ok())
            })
            .collect();
        let (patterns, considered) = search::search(&residuals, &sizes, config);
        let measured = residuals.iter().flatten().filter(|r| r.norms.iter().any(|&v| v > 0.0)).count();
        let summary = Summary {
            measured,
            mixed_sizes: search::Rows::in_band(&residuals, &sizes, 0).mixed,
            sampled: (n > config.max_rows).then_some(config.max_rows.min(n)),
            considered,
            patterns: patterns.iter().map(|p| (config.bands[p.band], p.count)).collect(),
        };
        let screen = ResidualScreen { config: config.clone(), patterns };
        Ok((residuals, screen, serde_json::to_value(&summary)?))
    }
}

#[cfg(test)]
mod tests {
    use super::looks_at;

    #[test]
    fn the_rows_looked_at_are_the_evenly_strided_sample() {
        for (rows, most) in [(5, 8), (8, 8), (9, 8), (100, 7), (8193, 8192), (30_001, 64)] {
            let sample: Vec<usize> =
                if rows <= most { (0..rows).collect() } else { (0..most).map(|k| k * rows / most).collect() };
            let looked: Vec<usize> = (0..rows).filter(|&r| looks_at(r, rows, most)).collect();
            assert_eq!(looked, sample, "{rows} rows, at most {most}");
        }
    }
}
