//! Cluster activation masking (docs/design.md §3.3): mask windows of an image, watch its cosine to its own
//! centroid fall, and turn the drops into a heat map, a trigger box and a masking score.

use burn::config::Config;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::detect::masking::activation::{channel_means, ActivationProbe, MaskedCopy};
use crate::detect::masking::localize::{hottest_box, Localize, Located, Scene};
use crate::error::Result;
use crate::image::ImageBatchSource;
use crate::image::PixelBox;

/// How the windows are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskSearch {
    /// Every window of a regular grid: the reference, `((S − w)/stride + 1)²` forwards per image.
    Grid,
    /// 3×3 overlapping half-size windows, recursing into the one whose masking hurts most, until
    /// the window side is reached, then the 8 neighbours a third of a window away: 10 forwards per
    /// level (30 at 28×28).
    CoarseToFine,
}

/// Masking settings.
#[derive(Config, Debug, PartialEq)]
pub struct CamConfig {
    /// Window side as a share of the shorter image side. Default 0.25.
    #[config(default = 0.25)]
    pub window_frac: f64,
    /// Grid stride as a share of the window side. Default 0.5.
    #[config(default = 0.5)]
    pub stride_frac: f64,
    /// Default grid: on a threat model that carries the backdoor (`eval --implant`, seed 0) it
    /// located 70 of the 80 triggers against coarse-to-fine's 48. On a model without one both
    /// locate little (9 and 22 of 80), so that case cannot choose (docs/detector.md).
    #[config(default = "MaskSearch::Grid")]
    pub search: MaskSearch,
    /// Images whose masked copies are built and measured together, with one read-back of their
    /// activations. Default 256: on a GPU each read-back waits for the device, and at 32 images
    /// (about one batch of copies) the card idled between rounds (docs/gpu.md).
    #[config(default = 256)]
    pub images_per_round: usize,
}

impl CamConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        use crate::check::{at_least, fraction};
        fraction("detector.cam.window_frac", self.window_frac)?;
        fraction("detector.cam.stride_frac", self.stride_frac)?;
        at_least("detector.cam.images_per_round", self.images_per_round, 1, "at least 1")
    }
}

/// What masking found in one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CamResult {
    /// Activation of the unmasked image.
    pub activation: f32,
    /// `H×W` mean activation drop of the windows covering each pixel.
    pub heat: Vec<f32>,
    /// The window-sized box with the most heat: the located trigger.
    pub trigger_box: PixelBox,
    /// The largest drop of any single window.
    pub score: f32,
    /// Whether masking that window moved the image to another cluster.
    pub leaves_cluster: bool,
    /// Forward passes spent on this image.
    pub forwards: usize,
}

impl CamConfig {
    /// Window side in pixels for an `h × w` image.
    pub fn window_side(&self, h: usize, w: usize) -> usize {
        ((h.min(w) as f64 * self.window_frac).round() as usize).clamp(1, h.min(w))
    }

    /// Masks the images at `indices`, each measured toward its cluster in `clusters`.
    pub fn locate<B: Backend>(
        &self,
        probe: &ActivationProbe<B>,
        images: &ImageBatchSource,
        indices: &[usize],
        clusters: &[usize],
    ) -> Vec<CamResult> {
        let mut out = Vec::with_capacity(indices.len());
        let [_, _, h, w] = images.shape();
        let side = self.window_side(h, w);
        let per_round = self.images_per_round.max(1);
        for (indices, clusters) in indices.chunks(per_round).zip(clusters.chunks(per_round)) {
            let round = Round { probe, images, indices, clusters, size: [h, w], side };
            out.extend(match self.search {
                MaskSearch::Grid => self.grid(&round),
                MaskSearch::CoarseToFine => coarse_to_fine(&round),
            });
        }
        out
    }

    fn grid<B: Backend>(&self, round: &Round<'_, B>) -> Vec<CamResult> {
        let ([h, w], side) = (round.size, round.side);
        let stride = ((side as f64 * self.stride_frac).round() as usize).max(1);
        let windows: Vec<PixelBox> = positions(h, side, stride)
            .into_iter()
            .flat_map(|y| positions(w, side, stride).into_iter().map(move |x| PixelBox { x, y, w: side, h: side }))
            .collect();
        let per_image = vec![windows; round.indices.len()];
        round.measure(&per_image, None).into_iter().map(|m| m.summarise(h, w, side, None)).collect()
    }
}

/// One round of images to mask, each toward its own cluster, and the window side.
struct Round<'a, B: Backend> {
    probe: &'a ActivationProbe<'a, B>,
    images: &'a ImageBatchSource,
    indices: &'a [usize],
    clusters: &'a [usize],
    size: [usize; 2],
    side: usize,
}

impl<B: Backend> Round<'_, B> {
    fn measure(&self, windows: &[Vec<PixelBox>], bases: Option<&[f32]>) -> Vec<Masked> {
        measure_masks(self.probe, self.images, self.indices, self.clusters, windows, bases)
    }
}

/// Halves a region per level down to the window side, then nudges the window.
fn coarse_to_fine<B: Backend>(round: &Round<'_, B>) -> Vec<CamResult> {
    let ([h, w], side, indices) = (round.size, round.side, round.indices);
    let mut regions = vec![PixelBox { x: 0, y: 0, w, h }; indices.len()];
    let mut merged: Vec<Option<Masked>> = vec![None; indices.len()];
    let mut refined = false;
    while !refined {
        // Halve until the window size is reached, then nudge the window by a third of its
        // side: half-size steps alone leave a trigger straddling two windows half-covered.
        let coarse = regions[0].w > side || regions[0].h > side;
        refined = !coarse;
        let windows: Vec<Vec<PixelBox>> =
            regions.iter().map(|r| if coarse { sub_windows(r, side) } else { nudged(r, h, w) }).collect();
        // The unmasked images were measured at the first level.
        let bases: Option<Vec<f32>> = merged.iter().map(|m| m.as_ref().map(|m| m.base)).collect();
        let measured = round.measure(&windows, bases.as_deref());
        for ((region, slot), m) in regions.iter_mut().zip(merged.iter_mut()).zip(measured) {
            *region = m.windows[m.strongest()];
            match slot {
                Some(all) => all.absorb(m),
                None => *slot = Some(m),
            }
        }
    }
    merged
        .into_iter()
        .zip(regions)
        .map(|(m, region)| match m {
            Some(m) => m.summarise(h, w, side, Some(region)),
            None => CamResult {
                activation: 0.0,
                heat: vec![0.0; h * w],
                trigger_box: region,
                score: 0.0,
                leaves_cluster: false,
                forwards: 0,
            },
        })
        .collect()
}

/// Start offsets of windows of `side` along `extent`, the last one flush with the end.
fn positions(extent: usize, side: usize, stride: usize) -> Vec<usize> {
    let last = extent.saturating_sub(side);
    let mut out: Vec<usize> = (0..=last).step_by(stride.max(1)).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// 3×3 windows of half the region (never below `side`) at quarter-region strides.
fn sub_windows(region: &PixelBox, side: usize) -> Vec<PixelBox> {
    let sw = region.w.div_ceil(2).max(side).min(region.w);
    let sh = region.h.div_ceil(2).max(side).min(region.h);
    let xs = [0, (region.w - sw) / 2, region.w - sw];
    let ys = [0, (region.h - sh) / 2, region.h - sh];
    let mut out = Vec::with_capacity(9);
    for &y in &ys {
        for &x in &xs {
            let b = PixelBox { x: region.x + x, y: region.y + y, w: sw, h: sh };
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// The window itself and its eight neighbours a third of a side away, inside the image.
fn nudged(window: &PixelBox, h: usize, w: usize) -> Vec<PixelBox> {
    let q = (window.w.min(window.h) / 3).max(1) as isize;
    let mut out = Vec::with_capacity(9);
    for dy in [-q, 0, q] {
        for dx in [-q, 0, q] {
            let x = (window.x as isize + dx).clamp(0, (w - window.w) as isize) as usize;
            let y = (window.y as isize + dy).clamp(0, (h - window.h) as isize) as usize;
            let b = PixelBox { x, y, ..*window };
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// Masked activations of one image.
#[derive(Clone, Debug)]
struct Masked {
    base: f32,
    windows: Vec<PixelBox>,
    drops: Vec<f32>,
    left: Vec<bool>,
    forwards: usize,
}

impl Masked {
    fn strongest(&self) -> usize {
        (0..self.drops.len()).max_by(|&a, &b| self.drops[a].total_cmp(&self.drops[b]).then(b.cmp(&a))).unwrap_or(0)
    }

    fn absorb(&mut self, other: Masked) {
        self.windows.extend(other.windows);
        self.drops.extend(other.drops);
        self.left.extend(other.left);
        self.forwards += other.forwards;
    }

    fn summarise(self, h: usize, w: usize, side: usize, fixed: Option<PixelBox>) -> CamResult {
        let mut sum = vec![0.0f32; h * w];
        let mut cover = vec![0.0f32; h * w];
        for (b, &d) in self.windows.iter().zip(&self.drops) {
            for y in b.y..b.y + b.h {
                for x in b.x..b.x + b.w {
                    sum[y * w + x] += d;
                    cover[y * w + x] += 1.0;
                }
            }
        }
        let heat: Vec<f32> = sum.iter().zip(&cover).map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 }).collect();
        let trigger_box = fixed.unwrap_or_else(|| hottest_box(&heat, h, w, side));
        let best = self.strongest();
        CamResult {
            activation: self.base,
            trigger_box,
            score: self.drops.get(best).copied().unwrap_or(0.0),
            leaves_cluster: self.left.get(best).copied().unwrap_or(false),
            forwards: self.forwards,
            heat,
        }
    }
}

/// Runs each image's masked copies through the probe, built on the device from one upload of
/// the images; the unmasked image too, unless its activation is known from an earlier level.
fn measure_masks<B: Backend>(
    probe: &ActivationProbe<B>,
    images: &ImageBatchSource,
    indices: &[usize],
    clusters: &[usize],
    windows: &[Vec<PixelBox>],
    bases: Option<&[f32]>,
) -> Vec<Masked> {
    let [_, c, _, _] = images.shape();
    let mut originals = Vec::new();
    let mut fill = Vec::new();
    let mut copies = Vec::new();
    for (row, ((&i, &cluster), ws)) in indices.iter().zip(clusters).zip(windows).enumerate() {
        let original = images.pixels(i);
        fill.extend(channel_means(original, c));
        originals.extend_from_slice(original);
        if bases.is_none() {
            copies.push(MaskedCopy { image: row, window: None, toward: cluster });
        }
        copies.extend(ws.iter().map(|&b| MaskedCopy { image: row, window: Some(b), toward: cluster }));
    }
    let activations = probe.measure_masked(&originals, &fill, &copies);
    let mut cursor = activations.into_iter();
    clusters
        .iter()
        .zip(windows)
        .enumerate()
        .map(|(row, (&cluster, ws))| {
            let base = match bases {
                Some(known) => known[row],
                None => cursor.next().map(|a| a.toward).unwrap_or(0.0),
            };
            let masked: Vec<_> = cursor.by_ref().take(ws.len()).collect();
            Masked {
                base,
                windows: ws.clone(),
                drops: masked.iter().map(|a| base - a.toward).collect(),
                left: masked.iter().map(|a| a.nearest != cluster).collect(),
                forwards: ws.len() + usize::from(bases.is_none()),
            }
        })
        .collect()
}

impl<B: Backend> Localize<B> for CamConfig {
    fn localize(&self, scene: &Scene<'_, B>, indices: &[usize], targets: &[usize]) -> Result<Vec<Located>> {
        Ok(self
            .locate(scene.probe, scene.images, indices, targets)
            .into_iter()
            .map(|r| Located { trigger_box: r.trigger_box, score: r.score })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_cover_the_extent() {
        assert_eq!(positions(28, 7, 4), vec![0, 4, 8, 12, 16, 20, 21]);
        assert_eq!(positions(28, 7, 3), vec![0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!(positions(7, 7, 3), vec![0]);
    }

    #[test]
    fn sub_windows_are_three_by_three_half_regions() {
        let full = PixelBox { x: 0, y: 0, w: 28, h: 28 };
        let subs = sub_windows(&full, 7);
        assert_eq!(subs.len(), 9);
        assert!(subs.iter().all(|b| b.w == 14 && b.h == 14 && b.x + b.w <= 28));
        let small = sub_windows(&PixelBox { x: 7, y: 14, w: 14, h: 14 }, 7);
        assert_eq!(small[8], PixelBox { x: 14, y: 21, w: 7, h: 7 });
    }

    #[test]
    fn nudged_windows_stay_inside() {
        let around = nudged(&PixelBox { x: 0, y: 10, w: 7, h: 7 }, 28, 28);
        assert_eq!(around.len(), 6);
        assert!(around.iter().all(|b| b.x <= 2 && b.y >= 8 && b.y <= 12));
    }
}
