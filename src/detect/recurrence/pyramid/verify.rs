//! The verification pass: only the images a core names are read again. Each core's windows are
//! compared pixel by pixel with their mean; the copies that agree within the match radius are its
//! carriers, unless they also agree in their surroundings (one image repeated: a duplicate group,
//! reported, never removed). Verified cores that share carriers are one patch.

use rayon::prelude::*;

use super::distance::{fitted_rms, rms};
use super::index::{unpack, Core};
use super::level::{levels, Level};
use super::merge::merge;
use super::params::PyramidConfig;
use super::scene::{one_place, shared_scene, Thumbnail};
use super::seen::{mean_of, Seen};
use crate::detect::recurrence::{ImageRows, RecurringPatch};
use crate::image::{Image, PixelBox};
use crate::progress::stage_bar;

/// Windows across the region around a window whose likeness tells one image repeated from a
/// patch pasted into different images: wide enough that a trigger of up to twice the window fills
/// a small part of it.
const CONTEXT: usize = 6;

/// Blocks of the region a side.
const RING_GRID: usize = 6;

/// The region `CONTEXT` windows wide centred on the window, as `RING_GRID`² blocks, each block's
/// mean colour, less the blocks within a window of it (where a pasted patch larger than the
/// window still lies). Centred on the window, so that the same content around it lands in the
/// same blocks whatever the crop; blocks that leave the image are `None`.
fn surroundings(level: &Level, x: usize, y: usize, side: usize) -> Vec<Option<[f32; 3]>> {
    let block = CONTEXT * side / RING_GRID;
    let origin = |at: usize| at as isize + side as isize / 2 - (CONTEXT * side) as isize / 2;
    let (ox, oy) = (origin(x), origin(y));
    let mut ring = Vec::with_capacity(RING_GRID * RING_GRID);
    for by in 0..RING_GRID {
        for bx in 0..RING_GRID {
            let (bx0, by0) = (ox + (bx * block) as isize, oy + (by * block) as isize);
            let overlaps =
                |b0: isize, at: usize| b0 < (at + 2 * side) as isize && b0 + (block + side) as isize > at as isize;
            let inside =
                bx0 >= 0 && by0 >= 0 && bx0 as usize + block <= level.width && by0 as usize + block <= level.height;
            if overlaps(bx0, x) && overlaps(by0, y) || !inside {
                ring.push(None);
                continue;
            }
            ring.push(Some(std::array::from_fn(|c| level.block_mean(c, bx0 as usize, by0 as usize, block))));
        }
    }
    ring
}

/// Level pixels a window is shifted by to see whether it is distinctive.
const SHIFT: usize = 2;

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

/// Verifies `cores` on the images of `rows` within `bounds`.
pub fn verify(rows: &dyn ImageRows, cores: &[Core], bounds: &Bounds, config: &PyramidConfig) -> Verified {
    let Bounds { min_carriers, max_carriers, max_halo } = *bounds;
    let mut wanted: Vec<(usize, usize, u32)> = cores
        .iter()
        .enumerate()
        .flat_map(|(c, core)| core.entries.iter().map(move |e| (e.image as usize, c, e.place)))
        .collect();
    wanted.sort_unstable();
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
    let mut verified: Vec<Vec<&Seen>> = Vec::new();
    let mut duplicate_groups = Vec::new();
    let (mut rejected, mut flat) = (0, 0);
    for members in per_core {
        let carriers = agreeing(&members, config.match_radius);
        if carriers.len() < min_carriers {
            rejected += usize::from(!members.is_empty());
            continue;
        }
        let (one, two) = colour_shares(&mean_of(&carriers), FLAT_TOLERANCE);
        if one > config.max_flat_share
            || two > config.max_two_colour_share
            || median(carriers.iter().map(|s| s.self_distance)) < config.min_self_distance
        {
            flat += 1;
            continue;
        }
        if repeated(&carriers, config.context_radius) {
            let mut group: Vec<usize> = carriers.iter().map(|s| s.image).collect();
            group.dedup();
            duplicate_groups.push(group);
            continue;
        }
        verified.push(carriers);
    }
    let mut patches: Vec<RecurringPatch> = merge(verified, cores, config.merge_overlap, config.match_radius)
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

fn read_windows(image: Option<&Image>, group: &[(usize, usize, u32)], config: &PyramidConfig) -> Vec<Seen> {
    let Some(image) = image else { return Vec::new() };
    let side = config.window;
    let levels = levels(image, &config.factors, side);
    let mut out = Vec::new();
    for &(row, core, place) in group {
        let (li, x, y) = unpack(place);
        let Some(&factor) = config.factors.get(li) else { continue };
        let Some(level) = levels[li].as_ref() else { continue };
        if x + side > level.width || y + side > level.height {
            continue;
        }
        let mut window = Vec::new();
        level.window(x, y, side, &mut window);
        let context = surroundings(level, x, y, side);
        let self_distance = shifted_distance(level, x, y, side, &window);
        out.push(Seen { core, image: row, factor, x, y, window, context, self_distance });
    }
    out
}

/// The nearest the window at (`x`, `y`) comes to its neighbours `SHIFT` pixels away: an edge
/// or a smooth gradient matches itself along its direction, a pasted pattern does not.
fn shifted_distance(level: &Level, x: usize, y: usize, side: usize, window: &[f32]) -> f32 {
    let mut best = f32::INFINITY;
    let mut other = Vec::new();
    for (dx, dy) in [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)] {
        let (sx, sy) = (x as isize + dx * SHIFT as isize, y as isize + dy * SHIFT as isize);
        if sx < 0 || sy < 0 || sx as usize + side > level.width || sy as usize + side > level.height {
            continue;
        }
        level.window(sx as usize, sy as usize, side, &mut other);
        best = best.min(rms(window, &other));
    }
    best
}

/// Pixels this close on every channel count as one colour (about 15/255).
const FLAT_TOLERANCE: f32 = 0.06;

fn median(values: impl Iterator<Item = f32>) -> f32 {
    let mut v: Vec<f32> = values.collect();
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The shares of a `3 × s × s` window's pixels within `tolerance` (on every channel) of its most
/// common colour, and of its two most common colours together (the second counted among the
/// pixels the first left).
fn colour_shares(window: &[f32], tolerance: f32) -> (f64, f64) {
    let plane = window.len() / 3;
    let close = |i: usize, j: usize| (0..3).all(|c| (window[c * plane + i] - window[c * plane + j]).abs() <= tolerance);
    let count = |i: usize, left: &[bool]| (0..plane).filter(|&j| left[j] && close(i, j)).count();
    let all = vec![true; plane];
    let Some(first) = (0..plane).max_by_key(|&i| (count(i, &all), std::cmp::Reverse(i))) else { return (0.0, 0.0) };
    let left: Vec<bool> = (0..plane).map(|j| !close(first, j)).collect();
    let one = plane - left.iter().filter(|&&l| l).count();
    let two = one + (0..plane).filter(|&i| left[i]).map(|i| count(i, &left)).max().unwrap_or(0);
    (one as f64 / plane as f64, two as f64 / plane as f64)
}

/// The windows within `radius` of the members' mean, the mean taken again over those (one
/// refinement, so that a few natural look-alikes in the bucket do not drag it). Distances are
/// after a fitted gain and offsets: with raw distances a trigger blended at 80% and rescaled
/// ±20% kept 0.23 of its kept-aside poisons, with fitted ones 0.85 (docs/recurrence.md).
fn agreeing<'a>(members: &[&'a Seen], radius: f32) -> Vec<&'a Seen> {
    let mean = mean_of(members);
    let first: Vec<&Seen> = members.iter().copied().filter(|s| fitted_rms(&s.window, &mean) <= 2.0 * radius).collect();
    let mean = mean_of(&first);
    members.iter().copied().filter(|s| fitted_rms(&s.window, &mean) <= radius).collect()
}

/// Whether most carriers share their surroundings with another carrier: the window recurs
/// because the image does.
fn repeated(carriers: &[&Seen], radius: f32) -> bool {
    let twinned = carriers
        .iter()
        .filter(|a| carriers.iter().any(|b| b.image != a.image && same_ring(&a.context, &b.context, radius)))
        .count();
    2 * twinned >= carriers.len()
}

/// Fewest ring blocks two windows must both have for their surroundings to be compared.
const MIN_RING_BLOCKS: usize = 6;

/// A ring flatter than this (the spread of its block colours) shows nothing of the image it is
/// in: a white page or a black sky is alike in every image.
const MIN_CONTEXT_SPREAD: f32 = 0.02;

/// Whether two rings of surroundings are one image's: over the blocks both have, close, and close
/// against how much the ring itself varies (two pages of white with a little text are close, yet
/// not the same page). A flat ring is no evidence either way.
fn same_ring(a: &[Option<[f32; 3]>], b: &[Option<[f32; 3]>], radius: f32) -> bool {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (p, q) in a.iter().zip(b) {
        if let (Some(p), Some(q)) = (p, q) {
            x.extend_from_slice(p);
            y.extend_from_slice(q);
        }
    }
    if x.len() < 3 * MIN_RING_BLOCKS {
        return false;
    }
    let d = rms(&x, &y);
    let mean = x.iter().sum::<f32>() / x.len() as f32;
    let varies = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / x.len() as f32).sqrt();
    varies >= MIN_CONTEXT_SPREAD && d <= radius && d <= RING_LIKENESS * varies
}

/// Largest difference between two rings, as a share of the ring's own variation, that still
/// makes them one image: JPEG moves block means by far less than a tenth of a photo's variation.
const RING_LIKENESS: f32 = 0.25;

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn seen(core: usize, image: usize, x: usize, context: Vec<Option<[f32; 3]>>) -> Seen {
        Seen { core, image, factor: 2, x, y: 10, window: vec![0.5; 192], context, self_distance: 1.0 }
    }

    #[test]
    fn shared_surroundings_make_a_duplicate_only_where_they_vary() {
        let ring = |v: f32| (0..36).map(|k| Some([v + (k % 5) as f32 * 0.1; 3])).collect::<Vec<_>>();
        let flat = |v: f32| (0..36).map(|_| Some([v; 3])).collect::<Vec<_>>();
        assert!(same_ring(&ring(0.1), &ring(0.11), 0.06));
        assert!(!same_ring(&ring(0.1), &ring(0.3), 0.06), "different surroundings");
        assert!(!same_ring(&flat(0.95), &flat(0.96), 0.06), "two white pages are no evidence");
        let repeated: Vec<Seen> = (0..6).map(|i| seen(0, i, 20, ring(0.1))).collect();
        assert!(super::repeated(&repeated.iter().collect::<Vec<_>>(), 0.06));
        let pasted: Vec<Seen> = (0..6).map(|i| seen(0, i, 20, ring(0.1 * i as f32))).collect();
        assert!(!super::repeated(&pasted.iter().collect::<Vec<_>>(), 0.06));
    }
}
