//! Cutting a core's windows out of one image: the window itself, the ring of its surroundings
//! and how far it is from itself shifted. One scan cuts them as it verifies; shards cut their
//! own images and write the windows for the reduce to compare (`crate::shard`).

use super::distance::rms;
use super::index::unpack;
use super::level::{levels, Level};
use super::params::PyramidConfig;
use super::seen::Seen;
use crate::image::Image;

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

/// The windows of `image` that `group` names (`(image, core, place)`, all of one image), cut
/// out; none where the image could not be read.
pub(crate) fn read_windows(image: Option<&Image>, group: &[(usize, usize, u32)], config: &PyramidConfig) -> Vec<Seen> {
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
