//! Verified windows joined into patches: a trigger gives many cores (its sub-windows, tables and
//! levels), each holding part of its copies, and the parts of one pasted patch keep their places
//! relative to each other in every copy.

use super::distance::fitted_rms;
use super::seen::{mean_of, Seen};
use crate::detect::recurrence::{Carrier, RecurringPatch};
use crate::image::PixelBox;

/// Images that two verified cores share with one offset between their windows: the parts of one
/// pasted patch keep their places relative to each other in every copy, two chance look-alikes
/// do not. Both lists are in image order, one window an image.
fn aligned(a: &[&Seen], b: &[&Seen]) -> usize {
    let mut offsets: Vec<(isize, isize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].image.cmp(&b[j].image) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                let at = |s: &Seen| ((s.x * s.factor) as isize, (s.y * s.factor) as isize);
                let ((ax, ay), (bx, by)) = (at(a[i]), at(b[j]));
                offsets.push((bx - ax, by - ay));
                i += 1;
                j += 1;
            }
        }
    }
    if offsets.is_empty() {
        return 0;
    }
    let median = |mut v: Vec<isize>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (mx, my) = (median(offsets.iter().map(|o| o.0).collect()), median(offsets.iter().map(|o| o.1).collect()));
    let tolerance = (ALIGN_TOLERANCE * a[0].factor.max(b[0].factor)) as isize;
    offsets.iter().filter(|(x, y)| (x - mx).abs() <= tolerance && (y - my).abs() <= tolerance).count()
}

/// Level pixels, of the coarser window's level, that two cores' offsets may stray from their
/// median in one pasted patch: copies differ by their phase on the grid.
pub(super) const ALIGN_TOLERANCE: usize = 2;

/// The root of `i`'s set in a union-find forest, halving the path on the way.
pub(super) fn root(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Least share of the median carrier's windows that a carrier must match. Measured on trigger 14:
/// copies matched 3–21 windows of their patch (median 14), natural intruders 1.
const CARRIER_SUPPORT_SHARE: f64 = 0.15;

/// Joins verified cores that share carriers into patches: a trigger gives many cores (its
/// sub-windows, tables and levels), each holding part of its copies.
pub(super) fn merge(verified: Vec<Vec<&Seen>>, halos: &[usize], overlap: f64, radius: f32) -> Vec<RecurringPatch> {
    let mut parent: Vec<usize> = (0..verified.len()).collect();
    for a in 0..verified.len() {
        for b in a + 1..verified.len() {
            if aligned(&verified[a], &verified[b]) as f64 >= overlap * verified[a].len().min(verified[b].len()) as f64 {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot = vec![usize::MAX; verified.len()];
    for v in 0..verified.len() {
        let r = root(&mut parent, v);
        if slot[r] == usize::MAX {
            slot[r] = groups.len();
            groups.push(Vec::new());
        }
        groups[slot[r]].push(v);
    }
    groups.into_iter().map(|g| patch_of(&g, &verified, halos, radius)).collect()
}

/// One patch from verified cores `group`: each carrier's box is the union of its windows.
fn patch_of(group: &[usize], verified: &[Vec<&Seen>], halos: &[usize], radius: f32) -> RecurringPatch {
    let mut seen: Vec<&Seen> = group.iter().flat_map(|&v| verified[v].iter().copied()).collect();
    seen.sort_by_key(|s| (s.image, s.factor, s.x, s.y));
    let largest = group.iter().copied().max_by_key(|&v| (verified[v].len(), std::cmp::Reverse(v))).unwrap_or(0);
    let template_from = &verified[largest];
    let mean = mean_of(template_from);
    let side_level = (mean.len() / 3).isqrt();
    let factor = template_from[0].factor;
    let side = side_level * factor;
    let template = replicated(&mean, side_level, factor);
    let mut carriers: Vec<Carrier> = Vec::new();
    let mut places: Vec<(usize, usize)> = Vec::new();
    // A copy of a well-supported patch matches many of its windows; an image that matches one or
    // two of them matched a part that is plain (an edge on black), not the patch.
    let mut counts: Vec<usize> = seen.chunk_by(|a, b| a.image == b.image).map(<[&Seen]>::len).collect();
    counts.sort_unstable();
    let needed = ((counts[counts.len() / 2] as f64 * CARRIER_SUPPORT_SHARE).ceil() as usize).max(1);
    for by_image in seen.chunk_by(|a, b| a.image == b.image).filter(|g| g.len() >= needed) {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let mut distance = f32::INFINITY;
        for s in by_image {
            let w = side_level * s.factor;
            x0 = x0.min(s.x * s.factor);
            y0 = y0.min(s.y * s.factor);
            x1 = x1.max(s.x * s.factor + w);
            y1 = y1.max(s.y * s.factor + w);
            if s.factor == factor && s.window.len() == mean.len() {
                distance = distance.min(fitted_rms(&s.window, &mean));
            }
        }
        places.push((x0, y0));
        carriers.push(Carrier {
            image: by_image[0].image,
            distance: if distance.is_finite() { distance } else { 0.0 },
            patch_box: PixelBox { x: x0, y: y0, w: x1 - x0, h: y1 - y0 },
        });
    }
    places.sort_unstable();
    places.dedup();
    let halo = group.iter().map(|&v| halos[verified[v][0].core]).max().unwrap_or(0);
    RecurringPatch {
        side,
        template,
        carriers,
        halo,
        distinct_places: places.len(),
        support: group.len(),
        factor,
        radius,
        extent: None,
    }
}

/// A level window (`3 × side × side`) at native size, each level pixel a `factor` square: its box
/// means by `factor` are the window again, so the guard compares it exactly as verification did.
fn replicated(window: &[f32], side: usize, factor: usize) -> Vec<f32> {
    let native = side * factor;
    let mut out = Vec::with_capacity(3 * native * native);
    for plane in window.chunks_exact(side * side) {
        for y in 0..native {
            let row = &plane[y / factor * side..][..side];
            out.extend((0..native).map(|x| row[x / factor]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::seen::tests::seen;
    use super::*;

    fn halos_of(n: usize) -> Vec<usize> {
        vec![0; n]
    }

    #[test]
    fn an_image_that_matches_one_window_of_a_well_supported_patch_is_not_its_carrier() {
        // Eight windows of one patch, each at its own offset, in images 0–5; image 9 matches one.
        let all: Vec<Vec<Seen>> = (0..8)
            .map(|c| {
                let mut v: Vec<Seen> = (0..6).map(|i| seen(c, i, 20 + 2 * c, Vec::new())).collect();
                if c == 3 {
                    v.push(seen(c, 9, 40, Vec::new()));
                }
                v
            })
            .collect();
        let verified: Vec<Vec<&Seen>> = all.iter().map(|v| v.iter().collect()).collect();
        let patches = merge(verified, &halos_of(8), 0.5, 0.06);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].support, 8);
        let carriers: Vec<usize> = patches[0].carriers.iter().map(|c| c.image).collect();
        assert_eq!(carriers, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn windows_at_changing_offsets_are_not_one_patch() {
        let a: Vec<Seen> = (0..6).map(|i| seen(0, i, 20, Vec::new())).collect();
        let b: Vec<Seen> = (0..6).map(|i| seen(1, i, 20 + 7 * i, Vec::new())).collect();
        let verified = vec![a.iter().collect(), b.iter().collect()];
        assert_eq!(merge(verified, &halos_of(2), 0.5, 0.06).len(), 2);
    }
}
