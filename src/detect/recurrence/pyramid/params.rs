//! Settings of the photo-scale index, with documented defaults and a `check()` before any work.

use burn::config::Config;

use crate::check::{at_least, fraction, invalid, positive};
use crate::error::Result;

/// How the photo-scale recurrence index keys, samples and verifies windows.
///
/// Distances are in level pixels with values in [0, 1]. The defaults were measured on real
/// photos with a published HTBA trigger stored as JPEG q75 (docs/recurrence.md, 2026-12-01).
#[derive(Config, Debug, PartialEq)]
pub struct PyramidConfig {
    /// Images whose median shorter side is at least this many pixels are indexed by the pyramid;
    /// smaller ones are mined exhaustively at their own resolution. Default 96.
    #[config(default = 96)]
    pub min_image_side: usize,
    /// Reduction factors of the pyramid levels. A `window` of level pixels covers
    /// `window × factor` native pixels, so a trigger of T pixels is indexed at the levels where
    /// `(window + 1) × factor ≤ T`. Default [2, 4, 8]: triggers from about 18 px up.
    #[config(default = "vec![2, 4, 8]")]
    pub factors: Vec<usize>,
    /// Window side in level pixels, a multiple of 4 (the key is its 2×2 block means, the
    /// descriptor its 4×4 block means). Default 8.
    #[config(default = 8)]
    pub window: usize,
    /// Width of the cells the key's 12 block means are quantised into. Coarse, so that JPEG noise
    /// and a trigger's sub-pixel placement rarely move a copy to another cell. Default 0.12.
    #[config(default = 0.12)]
    pub cell: f32,
    /// Hash tables, each with its own offsets of the cells, so that copies split by a cell edge
    /// in one table meet in another. Default 3.
    #[config(default = 3)]
    pub tables: usize,
    /// Windows whose key blocks differ less than this (standard deviation) are not indexed:
    /// smooth windows collide with every other smooth window. Default 0.06.
    #[config(default = 0.06)]
    pub min_spread: f32,
    /// One key in this many is kept, chosen by the key's own hash so that every copy of a
    /// patch keeps the same keys. A pasted trigger gives thousands of keys; this bounds the
    /// index. At 64, 16 copies of a trigger shared too few keys (recall 0.56); at 16 the cores
    /// overflowed their cap and chance patches appeared. Default 32.
    #[config(default = 32)]
    pub sample_every: u32,
    /// Most index entries kept per image (the smallest keys), which bounds the index at 16 bytes
    /// an entry whatever the image's size. Default 600 (≈ 9.6 KB).
    #[config(default = 600)]
    pub max_entries_per_image: usize,
    /// Bits of the descriptor's signature that two copies of one window may differ in.
    /// Default 5 (of 32).
    #[config(default = 5)]
    pub signature_radius: u32,
    /// The island test looks again at this many bits. Default 9.
    #[config(default = 9)]
    pub signature_outer: u32,
    /// Two windows within this RMS distance (level pixels) are copies of one patch; checked on
    /// the pixels of every carrier after the index. Default 0.06.
    #[config(default = 0.06)]
    pub match_radius: f32,
    /// Two indexed windows are of one image repeated when their surroundings (three windows wide)
    /// are within this RMS distance too. Default 0.06.
    #[config(default = 0.06)]
    pub context_radius: f32,
    /// A verified window where more than this share of the pixels sit at one colour (within
    /// 0.06 on every channel) is not a trigger: an edge of a flat shape on a flat background
    /// recurs across unrelated images. Sub-windows of every published HTBA trigger sat at 0.4 or
    /// below in 72–100%; natural windows that passed the pixel test sat at a median of 0.61.
    /// Default 0.4.
    #[config(default = 0.4)]
    pub max_flat_share: f64,
    /// Nor is a window where more than this share sits at two colours: line art, a
    /// checkerboard, a shape on a flat ground. Sub-windows of the ten HTBA triggers sat at 0.6 or
    /// below in 88–100%; natural windows that passed the other tests, at 0.42–1.0 (most above
    /// 0.6). Default 0.6.
    #[config(default = 0.6)]
    pub max_two_colour_share: f64,
    /// A verified window that comes this close (RMS) to itself shifted by two level pixels is
    /// not distinctive (an edge, a gradient, a stripe) and recurs by chance. Default 0.1.
    #[config(default = 0.1)]
    pub min_self_distance: f32,
    /// Fewest verified windows a patch must be joined from. A pasted patch's copies share many
    /// windows (its sub-windows, in several tables and levels) at fixed offsets from each other;
    /// a chance coincidence of natural content is mostly one. Over 66 photo runs every trigger
    /// joined 8 to 90, and the three chance patches that removed clean photos (nebula blobs on
    /// dark skies, after the fitted gain) 2 each (docs/recurrence.md). Default 4.
    #[config(default = 4)]
    pub min_support: usize,
    /// Merged into one patch when two verified windows share this share of the smaller one's
    /// carriers at one offset from each other (within two level pixels). Default 0.5.
    #[config(default = 0.5)]
    pub merge_overlap: f64,
}

impl PyramidConfig {
    /// Rejects settings that cannot work, before any image is read.
    pub fn check(&self) -> Result<()> {
        at_least("recurrence.pyramid.min_image_side", self.min_image_side, 1, "at least 1")?;
        if self.factors.is_empty() || self.factors.contains(&0) {
            return Err(invalid(
                "recurrence.pyramid.factors",
                format!("{:?}", self.factors),
                "one or more factors of at least 1",
            ));
        }
        if self.window < 4 || self.window % 4 != 0 {
            return Err(invalid("recurrence.pyramid.window", self.window.to_string(), "a multiple of 4, at least 4"));
        }
        positive("recurrence.pyramid.cell", f64::from(self.cell))?;
        at_least("recurrence.pyramid.tables", self.tables, 1, "at least 1")?;
        crate::check::non_negative("recurrence.pyramid.min_spread", f64::from(self.min_spread))?;
        at_least("recurrence.pyramid.sample_every", self.sample_every as usize, 1, "at least 1")?;
        at_least("recurrence.pyramid.max_entries_per_image", self.max_entries_per_image, 1, "at least 1")?;
        if self.signature_outer <= self.signature_radius || self.signature_outer > 32 {
            return Err(invalid(
                "recurrence.pyramid.signature_outer",
                self.signature_outer.to_string(),
                "above signature_radius and at most 32",
            ));
        }
        positive("recurrence.pyramid.match_radius", f64::from(self.match_radius))?;
        positive("recurrence.pyramid.context_radius", f64::from(self.context_radius))?;
        crate::check::share("recurrence.pyramid.max_flat_share", self.max_flat_share)?;
        crate::check::share("recurrence.pyramid.max_two_colour_share", self.max_two_colour_share)?;
        crate::check::non_negative("recurrence.pyramid.min_self_distance", f64::from(self.min_self_distance))?;
        fraction("recurrence.pyramid.merge_overlap", self.merge_overlap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn defaults_pass_and_nonsense_is_named() {
        assert!(PyramidConfig::new().check().is_ok());
        let bad = [
            PyramidConfig::new().with_factors(vec![]),
            PyramidConfig::new().with_factors(vec![2, 0]),
            PyramidConfig::new().with_window(6),
            PyramidConfig::new().with_cell(f32::NAN),
            PyramidConfig::new().with_tables(0),
            PyramidConfig::new().with_sample_every(0),
            PyramidConfig::new().with_signature_outer(5),
            PyramidConfig::new().with_merge_overlap(0.0),
        ];
        for config in bad {
            assert!(matches!(config.check(), Err(Error::InvalidSetting { .. })), "{config:?}");
        }
    }
}
