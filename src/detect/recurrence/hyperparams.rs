//! Recurrence settings, with documented defaults and a `check()` before any work.

use burn::config::Config;

use super::pyramid::PyramidConfig;
use crate::error::{Error, Result};

/// How recurring patches are mined and when one counts as a pasted trigger.
///
/// Distances are root-mean-square differences per pixel value in [0, 1]. The defaults were
/// measured on the embedded Fashion-MNIST set (docs/recurrence.md): a trigger's copies lie within
/// 0.03 of each other even after JPEG at quality 85, while the nearest natural window to a trigger
/// lay at 0.09 or more.
#[derive(Config, Debug, PartialEq)]
pub struct RecurrenceConfig {
    /// Window sides as shares of the most common shorter image side; several sides so that both
    /// small triggers and larger, more distinctive windows are mined. Default [0.15, 0.25]
    /// (4 and 7 pixels at 28×28).
    #[config(default = "vec![0.15, 0.25]")]
    pub window_fracs: Vec<f64>,
    /// Smallest window side in pixels. Default 3.
    #[config(default = 3)]
    pub min_window: usize,
    /// Windows whose values vary less than this (standard deviation) are not mined: flat regions
    /// recur in every image and carry no pattern. Default 0.1.
    #[config(default = 0.1)]
    pub min_texture: f32,
    /// Windows where more than this share of the values sit at one level (within 0.02) are not
    /// mined: a flat background with one edge through it recurs in almost every image, whatever
    /// its std. A binary checker trigger sits at exactly 0.5. Default 0.5.
    #[config(default = 0.5)]
    pub max_flat_share: f64,
    /// Width of the hash buckets that gather candidate copies. Wide enough that JPEG noise rarely
    /// splits a trigger's copies, narrow enough that a bucket holds few natural windows. Default 0.2.
    #[config(default = 0.2)]
    pub bucket_width: f32,
    /// Hash tables, each with its own random bucket offsets, so that copies split by a bucket edge
    /// in one table meet in another. Default 2.
    #[config(default = 2)]
    pub tables: usize,
    /// Two windows closer than this are copies of one patch. Default 0.06 (twice the JPEG-85 noise).
    #[config(default = 0.06)]
    pub match_radius: f32,
    /// The island test looks again at `outer_ratio × match_radius`. Default 1.5.
    #[config(default = 1.5)]
    pub outer_ratio: f32,
    /// A trigger is an island: images matching within the outer radius but not within the match
    /// radius may number at most this share of the carriers. Natural patterns sit in a continuum,
    /// where that count keeps growing with the radius. Default 0.25.
    #[config(default = 0.25)]
    pub max_halo: f64,
    /// Fewest carrier images of a recurring patch. Default 5.
    #[config(default = 5)]
    pub min_carriers: usize,
    /// Most carrier images as a share of all images: a pattern in more than this is part of the
    /// data, not an attack on it. Default 0.2.
    #[config(default = 0.2)]
    pub max_carrier_share: f64,
    /// Share of a bucket's images that must lie around its densest window for the bucket to be
    /// swept: a trigger's bucket is almost all copies, a natural bucket spreads. Default 0.5.
    #[config(default = 0.5)]
    pub min_core_share: f64,
    /// Every patch found is looked for again at sides from this share of its own to its inverse:
    /// a trigger resized per image recurs at each size. Default 0.6 (4 to 10 pixels around 6).
    #[config(default = 0.6)]
    pub min_rescale: f64,
    /// Candidate patches swept over every image, most supported first. Default 64.
    #[config(default = 64)]
    pub max_candidates: usize,
    /// Seeds the sampling of windows. Default 0.
    #[config(default = 0)]
    pub seed: u64,
    /// The photo-scale index, used when the images' median shorter side reaches its
    /// `min_image_side`; `min_carriers`, `max_carrier_share` and `max_halo` above apply to it too.
    #[config(default = "PyramidConfig::new()")]
    pub pyramid: PyramidConfig,
    /// Where the photo-scale index is cached as it is built, so that an interrupted run resumes
    /// from its last indexed chunk; `None` builds it without a cache. Default `None`.
    #[config(default = "None")]
    pub cache_dir: Option<std::path::PathBuf>,
}

impl RecurrenceConfig {
    /// Rejects settings that cannot work, before any image is read.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("recurrence: {what}")));
        if self.window_fracs.is_empty() {
            return bad("window_fracs is empty".into());
        }
        if let Some(f) = self.window_fracs.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return bad(format!("window fraction {f} is outside (0, 1]"));
        }
        if self.min_window == 0 {
            return bad("min_window must be at least 1".into());
        }
        for (name, v) in [("bucket_width", self.bucket_width), ("match_radius", self.match_radius)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} {v} must be a positive number"));
            }
        }
        if !(self.min_texture.is_finite() && self.min_texture >= 0.0) {
            return bad(format!("min_texture {} must be a number ≥ 0", self.min_texture));
        }
        if !(self.outer_ratio.is_finite() && self.outer_ratio > 1.0) {
            return bad(format!("outer_ratio {} must be above 1", self.outer_ratio));
        }
        for (name, v) in [
            ("max_halo", self.max_halo),
            ("max_flat_share", self.max_flat_share),
            ("max_carrier_share", self.max_carrier_share),
            ("min_core_share", self.min_core_share),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v} must be a number ≥ 0"));
            }
        }
        if !(self.min_rescale > 0.0 && self.min_rescale <= 1.0) {
            return bad(format!("min_rescale {} is outside (0, 1]", self.min_rescale));
        }
        if self.tables == 0 || self.max_candidates == 0 {
            return bad("tables and max_candidates must be at least 1".into());
        }
        if self.min_carriers < 2 {
            return bad(format!("min_carriers {} must be at least 2: one image cannot recur", self.min_carriers));
        }
        self.pyramid.check()
    }

    /// The island test's outer radius, `outer_ratio × match_radius`: no caller looks farther.
    pub fn outer_radius(&self) -> f32 {
        self.match_radius * self.outer_ratio
    }

    /// Window sides in pixels for images whose most common shorter side is `side`, deduplicated.
    pub fn window_sides(&self, side: usize) -> Vec<usize> {
        let mut sides: Vec<usize> = self
            .window_fracs
            .iter()
            .map(|f| ((f * side as f64).round() as usize).max(self.min_window).min(side))
            .collect();
        sides.dedup();
        sides
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_nonsense_fails() {
        assert!(RecurrenceConfig::new().check().is_ok());
        let bad = [
            RecurrenceConfig::new().with_window_fracs(vec![]),
            RecurrenceConfig::new().with_window_fracs(vec![f64::NAN]),
            RecurrenceConfig::new().with_match_radius(-0.1),
            RecurrenceConfig::new().with_bucket_width(f32::NAN),
            RecurrenceConfig::new().with_outer_ratio(1.0),
            RecurrenceConfig::new().with_max_halo(-1.0),
            RecurrenceConfig::new().with_min_carriers(1),
            RecurrenceConfig::new().with_tables(0),
        ];
        for config in bad {
            assert!(matches!(config.check(), Err(Error::Config(_))), "{config:?}");
        }
    }

    #[test]
    fn window_sides_follow_the_image_side() {
        let config = RecurrenceConfig::new();
        assert_eq!(config.window_sides(28), vec![4, 7]);
        assert_eq!(config.window_sides(10), vec![3]);
        assert_eq!(config.window_sides(2), vec![2]);
    }
}
