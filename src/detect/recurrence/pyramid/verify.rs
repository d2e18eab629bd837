//! The verification pass: only the images a core names are read again. Each core's windows are
//! cut out ([`super::cut`]) and judged ([`super::verdict`]); verified cores that share carriers
//! are one patch. One scan holds every cut window at once; the shard reduce judges them a
//! partition of cores at a time from the windows its shards cut, and both end in [`finish`].

use rayon::prelude::*;

use super::cut::read_windows;
use super::index::Core;
use super::merge::merge;
use super::params::PyramidConfig;
use super::scene::{one_place, shared_scene, Thumbnail};
use super::seen::Seen;
use super::verdict::{verdict, Verdict};
use crate::detect::recurrence::{ImageRows, RecurringPatch};
use crate::image::PixelBox;
use crate::progress::stage_bar;

/// What verification found.
pub struct Verified {
    pub patches: Vec<RecurringPatch>,
    /// Images that were read again.
    pub images_read: usize,
    /// Rows of each group of images that share a window together with its surroundings.
    pub duplicate_groups: Vec<Vec<usize>>,
    /// Cores whose pixels did not agree within the match radius.
    pub rejected: usize,
    /// Cores that agreed but were mostly one flat colour.
    pub flat: usize,
}

/// What makes a verified patch a trigger: between `min_carriers` and `max_carriers` images, and
/// a halo (bucket entries just outside the signature radius) of at most `max_halo` of them.
#[derive(Clone, Copy)]
pub struct Bounds {
    pub min_carriers: usize,
    pub max_carriers: usize,
    pub max_halo: f64,
}

/// The windows `cores` name, as `(image, core, place)` in that order: the images to read.
pub(crate) fn wanted(cores: &[Core]) -> Vec<(usize, usize, u32)> {
    let mut wanted: Vec<(usize, usize, u32)> = cores
        .iter()
        .enumerate()
        .flat_map(|(c, core)| core.entries.iter().map(move |e| (e.image as usize, c, e.place)))
        .collect();
    wanted.sort_unstable();
    wanted
}

/// Verifies `cores` on the images of `rows` within `bounds`.
pub fn verify(rows: &dyn ImageRows, cores: &[Core], bounds: &Bounds, config: &PyramidConfig) -> Verified {
    let wanted = wanted(cores);
    let by_image: Vec<&[(usize, usize, u32)]> = wanted.chunk_by(|a, b| a.0 == b.0).collect();
    let images_read = by_image.len();
    let bar = stage_bar("recurrence verify", images_read as u64);
    let read: Vec<(Vec<Seen>, Option<Thumbnail>)> = by_image
        .par_iter()
        .map(|group| {
            bar.inc(1);
            // An image that cannot be read now (changed since the index) loses its windows only.
            let image = rows.read(group[0].0).ok();
            (read_windows(image.as_ref(), group, config), image.as_ref().map(Thumbnail::new))
        })
        .collect();
    bar.finish_and_clear();
    let (seen, thumbnails): (Vec<Vec<Seen>>, Vec<Option<Thumbnail>>) = read.into_iter().unzip();
    let seen: Vec<Seen> = seen.into_iter().flatten().collect();
    let thumbnail_of =
        |row: usize| by_image.binary_search_by_key(&row, |g| g[0].0).ok().and_then(|i| thumbnails[i].as_ref());
    let mut per_core: Vec<Vec<&Seen>> = vec![Vec::new(); cores.len()];
    for s in &seen {
        per_core[s.core].push(s);
    }
    let mut judged = Judged::default();
    for members in &per_core {
        judged.add(verdict(members, bounds.min_carriers, config));
    }
    let halos: Vec<usize> = cores.iter().map(|c| c.halo).collect();
    finish(judged, &halos, bounds, config, &thumbnail_of, images_read)
}

/// The verdicts on a run of cores, in core order.
#[derive(Default)]
pub(crate) struct Judged<'a> {
    /// Each verified core's carriers, in core order.
    pub verified: Vec<Vec<&'a Seen>>,
    pub duplicate_groups: Vec<Vec<usize>>,
    pub rejected: usize,
    pub flat: usize,
}

impl<'a> Judged<'a> {
    /// Adds the next core's verdict.
    pub fn add(&mut self, verdict: Verdict<'a>) {
        match verdict {
            Verdict::Unseen => {}
            Verdict::Rejected => self.rejected += 1,
            Verdict::Flat => self.flat += 1,
            Verdict::Repeated(group) => self.duplicate_groups.push(group),
            Verdict::Carriers(carriers) => self.verified.push(carriers),
        }
    }
}

/// The patches of the verified cores (`halos` by core): merged, within `bounds`, and not one
/// scene seen again (`thumbnail_of` a carrier's row, where it was read).
pub(crate) fn finish<'t>(
    judged: Judged<'_>,
    halos: &[usize],
    bounds: &Bounds,
    config: &PyramidConfig,
    thumbnail_of: &dyn Fn(usize) -> Option<&'t Thumbnail>,
    images_read: usize,
) -> Verified {
    let Judged { verified, mut duplicate_groups, rejected, flat } = judged;
    let Bounds { min_carriers, max_carriers, max_halo } = *bounds;
    let mut patches: Vec<RecurringPatch> = merge(verified, halos, config.merge_overlap, config.match_radius)
        .into_iter()
        .filter(|p| (min_carriers..=max_carriers).contains(&p.carriers.len()) && p.support >= config.min_support)
        // The island test again, on the carriers the pixels confirmed: a natural look-alike
        // (blurred blobs on dark skies, after the fitted gain) confirms a few images of a bucket
        // whose signatures spread, where a trigger's confirm nearly all.
        .filter(|p| p.halo as f64 <= max_halo * p.carriers.len() as f64)
        .collect();
    // A patch at one place whose carriers are frames of one scene (a fixed camera) is the scene
    // recurring, not a patch pasted into it.
    patches.retain(|p| {
        let boxes: Vec<PixelBox> = p.carriers.iter().map(|c| c.patch_box).collect();
        let frames: Vec<(&Thumbnail, PixelBox)> =
            p.carriers.iter().filter_map(|c| Some((thumbnail_of(c.image)?, c.patch_box))).collect();
        let scene = one_place(&boxes) && shared_scene(&frames);
        if scene {
            duplicate_groups.push(p.carriers.iter().map(|c| c.image).collect());
        }
        !scene
    });
    // A trigger larger than the surroundings looked at shares them across its copies; those
    // groups are explained by the patch, not by a repeated photo.
    let mut carriers: Vec<usize> = patches.iter().flat_map(|p| p.carriers.iter().map(|c| c.image)).collect();
    carriers.sort_unstable();
    duplicate_groups.retain(|g| 2 * g.iter().filter(|i| carriers.binary_search(i).is_ok()).count() < g.len());
    duplicate_groups.sort();
    duplicate_groups.dedup();
    Verified { patches, images_read, duplicate_groups, rejected, flat }
}
