//! The exhaustive miner (docs/design.md §3.0), for small images: every textured window at the
//! images' own resolution is mined, each candidate swept over every image and kept when its
//! carriers form an island.

use std::borrow::Cow;

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use rayon::prelude::*;

use super::island::{carrier_box, island, patch_extent, verdict, IslandVerdict, Sweep};
use super::mine::{mine, Candidate};
use super::{windows, Carrier, Recurrence, RecurrenceConfig, RecurrenceSummary, RecurringPatch};
use crate::error::{Error, Result};
use crate::image::{median_short_side, Image};
use crate::progress::stage_bar;

impl RecurrenceConfig {
    /// The exhaustive miner: every textured window at the images' own resolution.
    pub(super) fn find_exhaustive(&self, images: &[Image]) -> Result<Recurrence> {
        self.check()?;
        if images.is_empty() {
            return Err(Error::NoInput("the recurrence stage"));
        }
        let channels = images.iter().map(Image::channels).max().unwrap_or(1);
        let images: Cow<[Image]> = if images.iter().all(|i| i.channels() == channels) {
            Cow::Borrowed(images)
        } else {
            Cow::Owned(images.iter().map(|i| i.with_channels(channels)).collect())
        };
        let sides = self.window_sides(typical_side(&images));
        let mut summary = RecurrenceSummary { window_sides: sides.clone(), ..RecurrenceSummary::default() };
        let mut candidates: Vec<Candidate> = Vec::new();
        for &side in &sides {
            let mined = mine(&images, side, self);
            summary.windows += mined.windows;
            candidates.extend(mined.candidates);
        }
        summary.candidates = candidates.len();
        let mut candidates = presweep(&images, candidates, self);
        summary.presweep_passed = candidates.len();
        candidates.sort_by(|a, b| b.images.len().cmp(&a.images.len()).then_with(|| a.side.cmp(&b.side)));
        candidates.truncate(self.max_candidates);

        let mut taken = vec![false; images.len()];
        let mut patches = Vec::new();
        let bar = stage_bar("recurrence sweep", candidates.len() as u64);
        for candidate in &candidates {
            bar.inc(1);
            let seen = candidate.images.iter().filter(|&&i| taken[i as usize]).count();
            if 2 * seen >= candidate.images.len() {
                continue;
            }
            patches.extend(self.sweep_candidate(&images, candidate, &mut taken, &mut summary));
        }
        bar.finish_and_clear();
        self.rescaled(&images, &mut patches, &mut taken, &mut summary);
        Ok(Recurrence { patches, summary })
    }
}

impl RecurrenceConfig {
    /// Sweeps one candidate over every image; when its carriers not yet `taken` form a trigger,
    /// takes them and returns the patch. Either way the summary records what happened.
    fn sweep_candidate(
        &self,
        images: &[Image],
        candidate: &Candidate,
        taken: &mut [bool],
        summary: &mut RecurrenceSummary,
    ) -> Option<RecurringPatch> {
        summary.swept += 1;
        let sweep = Sweep::run(images, &candidate.template, candidate.side, self.outer_radius());
        let carriers: Vec<usize> = sweep.within(self.match_radius).into_iter().filter(|&i| !taken[i]).collect();
        let found = verdict(images, &sweep, &carriers, self);
        if found != IslandVerdict::Trigger {
            summary.turned_down(found);
            return None;
        }
        let patch = build_patch(images, &sweep, candidate, &carriers, self);
        for c in &patch.carriers {
            taken[c.image] = true;
        }
        summary.patches.push([patch.side, patch.carriers.len(), patch.halo, patch.distinct_places]);
        Some(patch)
    }

    /// Looks for every found patch again at other scales: a trigger resized per image is a set of
    /// smaller islands, some too small to be mined. Each patch's carriers, averaged over its extent,
    /// give a denoised template that is resampled and swept like a mined one.
    fn rescaled(
        &self,
        images: &[Image],
        patches: &mut Vec<RecurringPatch>,
        taken: &mut [bool],
        summary: &mut RecurrenceSummary,
    ) {
        let mut next = 0;
        while next < patches.len() {
            let Some(mean) = mean_patch(images, &patches[next]) else {
                next += 1;
                continue;
            };
            next += 1;
            let side = mean.height().max(mean.width());
            let lo = ((side as f64 * self.min_rescale).round() as usize).max(self.min_window);
            let hi = (side as f64 / self.min_rescale).round() as usize;
            for new_side in (lo..=hi).filter(|&s| s != side) {
                let template = mean.resized(new_side, new_side);
                let candidate = Candidate { side: new_side, template: template.pixels().to_vec(), images: Vec::new() };
                patches.extend(self.sweep_candidate(images, &candidate, taken, summary));
            }
        }
    }
}

/// The mean of a patch over the carriers where its whole extent lies inside the image.
fn mean_patch(images: &[Image], patch: &RecurringPatch) -> Option<Image> {
    let (w, h) = patch.carriers.iter().map(|c| (c.patch_box.w, c.patch_box.h)).max()?;
    let full: Vec<&Carrier> = patch.carriers.iter().filter(|c| (c.patch_box.w, c.patch_box.h) == (w, h)).collect();
    let channels = images[full[0].image].channels();
    let mut sum = vec![0.0f32; channels * w * h];
    for c in &full {
        let image = &images[c.image];
        for ch in 0..channels {
            for y in 0..h {
                for x in 0..w {
                    sum[(ch * h + y) * w + x] += image.get(ch, c.patch_box.y + y, c.patch_box.x + x);
                }
            }
        }
    }
    let n = full.len() as f32;
    Image::new(channels, h, w, sum.into_iter().map(|v| v / n).collect()).ok()
}

/// Images in the samples every candidate is first swept over: a small one that turns down the
/// common patterns cheaply, then larger ones.
const PRESWEEP_SAMPLES: [usize; 3] = [64, 512, 2048];

/// Drops the candidates that fail the island test on seeded samples of the images: common natural
/// patterns (edges, stripes) match in a large share of any sample, with a wide halo. Cheap enough
/// for tens of thousands of candidates, where a full sweep is not.
fn presweep(images: &[Image], mut candidates: Vec<Candidate>, config: &RecurrenceConfig) -> Vec<Candidate> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5a3b1e);
    for size in PRESWEEP_SAMPLES {
        let take = size.min(images.len());
        let mut picked: Vec<usize> = sample(&mut rng, images.len(), take).into_vec();
        picked.sort_unstable();
        let subset: Vec<&Image> = picked.iter().map(|&i| &images[i]).collect();
        let keep: Vec<bool> = candidates.par_iter().map(|c| island_in(&subset, c, config)).collect();
        candidates = candidates.into_iter().zip(keep).filter_map(|(c, k)| k.then_some(c)).collect();
    }
    candidates
}

/// The island test of `candidate` within `subset`.
fn island_in(subset: &[&Image], candidate: &Candidate, config: &RecurrenceConfig) -> bool {
    let (inner_r, outer_r) = (config.match_radius, config.outer_radius());
    let (mut inner, mut outer) = (0usize, 0usize);
    for image in subset {
        if let Some((d2, _)) = windows::best_match(image, &candidate.template, candidate.side, outer_r) {
            let d = (d2 / candidate.template.len() as f32).sqrt();
            inner += usize::from(d <= inner_r);
            outer += usize::from(d <= outer_r);
        }
    }
    // Two spare matches, so that a trigger with a natural look-alike in the sample passes.
    island(inner, outer, 2.0, config) && inner as f64 <= config.max_carrier_share * subset.len() as f64
}

fn build_patch(
    images: &[Image],
    sweep: &Sweep,
    candidate: &Candidate,
    carriers: &[usize],
    config: &RecurrenceConfig,
) -> RecurringPatch {
    let extent = patch_extent(images, sweep, carriers, candidate.side, config.match_radius);
    let outer = sweep.within(config.outer_radius()).len();
    let mut places: Vec<(u32, u32)> = Vec::new();
    let carriers: Vec<Carrier> = carriers
        .iter()
        .filter_map(|&i| {
            let (distance, corner) = sweep.matches[i]?;
            places.push((corner.x, corner.y));
            Some(Carrier { image: i, distance, patch_box: carrier_box(&images[i], corner, extent) })
        })
        .collect();
    places.sort_unstable();
    places.dedup();
    RecurringPatch {
        side: candidate.side,
        template: candidate.template.clone(),
        halo: outer.saturating_sub(carriers.len()),
        distinct_places: places.len(),
        support: 1,
        factor: 1,
        radius: config.match_radius,
        extent: Some(extent),
        carriers,
    }
}

/// The median shorter side: the size windows are scaled to.
fn typical_side(images: &[Image]) -> usize {
    median_short_side(images.iter().map(|i| [i.height(), i.width()])).unwrap_or(0)
}
