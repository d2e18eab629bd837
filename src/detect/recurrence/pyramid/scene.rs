//! One scene seen again: a fixed camera photographs the same desk while something moves in front
//! of it, and every frame shares a keyboard at one place. The ring of surroundings misses that
//! (the moving part crosses it); the whole frame does not. Frames are compared block by block,
//! aligned at their patch boxes, over the blocks that carry an edge: two unrelated photos agree on
//! almost none of those, two frames of one scene on a third or more (docs/recurrence.md,
//! 2026-12-01: calibration frames 0.26–0.42, 1,500 random pairs of photos 99.9th percentile 0.17).
//!
//! Only a patch that sits at one place in most of its carriers is asked: pictures of one kind
//! (star charts, figures on white pages) agree on many edge blocks too, and a trigger pasted at
//! random places into such a class was taken for a scene. A trigger pasted at one fixed place
//! into different photos still fails the test and is removed.

use crate::image::{Image, PixelBox};

/// Native pixels a side of one thumbnail block.
pub const BLOCK: usize = 16;

/// Two blocks of one colour within this on every channel (about 15/255); a block that differs
/// from its right or lower neighbour by more carries an edge.
const TOLERANCE: u8 = 15;

/// Share of edge blocks two frames must agree on to be one scene.
pub const SCENE_LIKENESS: f64 = 0.2;

/// An image's block means as bytes: small enough to keep one per verified image.
pub struct Thumbnail {
    width: usize,
    height: usize,
    /// `height × width` blocks of 3 channels.
    values: Vec<[u8; 3]>,
}

impl Thumbnail {
    pub fn new(image: &Image) -> Thumbnail {
        let (width, height) = (image.width() / BLOCK, image.height() / BLOCK);
        let grey = image.channels() == 1;
        let mut values = Vec::with_capacity(width * height);
        for by in 0..height {
            for bx in 0..width {
                values.push(std::array::from_fn(|c| {
                    let c = if grey { 0 } else { c };
                    let mut sum = 0.0;
                    for y in by * BLOCK..(by + 1) * BLOCK {
                        for x in bx * BLOCK..(bx + 1) * BLOCK {
                            sum += image.get(c, y, x);
                        }
                    }
                    (255.0 * sum / (BLOCK * BLOCK) as f32).round() as u8
                }));
            }
        }
        Thumbnail { width, height, values }
    }

    /// `[height, width]` in blocks, and the blocks' bytes row by row (3 a block).
    #[cfg(feature = "shard")]
    pub fn parts(&self) -> ([usize; 2], Vec<u8>) {
        ([self.height, self.width], self.values.iter().flatten().copied().collect())
    }

    /// The thumbnail of [`Thumbnail::parts`]; `None` where the bytes are not that many blocks.
    #[cfg(feature = "shard")]
    pub fn from_parts([height, width]: [usize; 2], bytes: &[u8]) -> Option<Thumbnail> {
        (bytes.len() == 3 * height * width).then(|| Thumbnail {
            width,
            height,
            values: bytes.chunks_exact(3).map(|b| [b[0], b[1], b[2]]).collect(),
        })
    }

    fn at(&self, x: isize, y: isize) -> Option<[u8; 3]> {
        (x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height)
            .then(|| self.values[y as usize * self.width + x as usize])
    }

    fn edge(&self, x: isize, y: isize) -> bool {
        let Some(here) = self.at(x, y) else { return false };
        [(1, 0), (0, 1)].iter().any(|(dx, dy)| self.at(x + dx, y + dy).is_some_and(|n| !close(here, n)))
    }
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(&b).all(|(p, q)| p.abs_diff(*q) <= TOLERANCE)
}

/// Share of the blocks with an edge in either frame where both have one and agree, with `b`
/// shifted so that its patch box lies on `a`'s; the blocks the patch covers do not count.
pub fn likeness(a: &Thumbnail, a_box: PixelBox, b: &Thumbnail, b_box: PixelBox) -> f64 {
    let shift = |p: usize, q: usize| (q as isize - p as isize) / BLOCK as isize;
    let (dx, dy) = (shift(a_box.x, b_box.x), shift(a_box.y, b_box.y));
    let covers = |at: usize, from: usize, len: usize| at * BLOCK + BLOCK > from && at * BLOCK < from + len;
    let (mut either, mut agree) = (0usize, 0usize);
    for y in 0..a.height {
        for x in 0..a.width {
            if covers(x, a_box.x, a_box.w) && covers(y, a_box.y, a_box.h) {
                continue;
            }
            let (bx, by) = (x as isize + dx, y as isize + dy);
            let Some(other) = b.at(bx, by) else { continue };
            let (ea, eb) = (a.edge(x as isize, y as isize), b.edge(bx, by));
            either += usize::from(ea || eb);
            agree += usize::from(ea && eb && close(a.values[y * a.width + x], other));
        }
    }
    agree as f64 / either.max(1) as f64
}

/// Whether most of the boxes lie within a block of the median corner: the patch sits at one
/// place, as a fixed camera's keyboard does, not where a random placement puts it.
pub fn one_place(boxes: &[PixelBox]) -> bool {
    let median = |mut v: Vec<usize>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let (mx, my) = (median(boxes.iter().map(|b| b.x).collect()), median(boxes.iter().map(|b| b.y).collect()));
    let near = boxes.iter().filter(|b| b.x.abs_diff(mx) <= BLOCK && b.y.abs_diff(my) <= BLOCK).count();
    2 * near > boxes.len()
}

/// Whether most of `frames` (a thumbnail and the patch's box in it, per carrier) are one scene
/// with another carrier.
pub fn shared_scene(frames: &[(&Thumbnail, PixelBox)]) -> bool {
    let twinned = (0..frames.len())
        .filter(|&i| {
            (0..frames.len())
                .any(|j| j != i && likeness(frames[i].0, frames[i].1, frames[j].0, frames[j].1) >= SCENE_LIKENESS)
        })
        .count();
    2 * twinned >= frames.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Random colour tiles of one block each.
    fn tiles(seed: u64, blocks: usize) -> Image {
        let mut rng = StdRng::seed_from_u64(seed);
        let side = blocks * BLOCK;
        let colours: Vec<f32> = (0..3 * blocks * blocks).map(|_| rng.random::<f32>()).collect();
        let pixels = (0..3 * side * side)
            .map(|i| {
                let (c, y, x) = (i / (side * side), i / side % side, i % side);
                colours[(c * blocks + y / BLOCK) * blocks + x / BLOCK]
            })
            .collect();
        Image::new(3, side, side, pixels).unwrap()
    }

    fn boxed(x: usize, y: usize) -> PixelBox {
        PixelBox { x, y, w: 2 * BLOCK, h: 2 * BLOCK }
    }

    #[test]
    fn frames_of_one_scene_agree_and_unrelated_photos_do_not() {
        let scene = tiles(1, 12);
        // The same scene with its left half replaced, as by something moving in front of it.
        let mut moved = scene.clone();
        moved.paste(&tiles(2, 6), 0, 0);
        moved.paste(&tiles(3, 6), 0, 6 * BLOCK);
        let (a, b, other) = (Thumbnail::new(&scene), Thumbnail::new(&moved), Thumbnail::new(&tiles(4, 12)));
        let at = boxed(8 * BLOCK, 8 * BLOCK);
        assert!(likeness(&a, at, &b, at) >= SCENE_LIKENESS, "{}", likeness(&a, at, &b, at));
        assert!(likeness(&a, at, &other, at) < 0.05);
        // One photo cropped: aligned at the patch, it is the same scene again.
        let mut crop = tiles(5, 12);
        crop.paste(&scene, 2 * BLOCK, BLOCK);
        let c = Thumbnail::new(&crop);
        let shifted = boxed(10 * BLOCK, 9 * BLOCK);
        assert!(likeness(&a, boxed(8 * BLOCK, 8 * BLOCK), &c, shifted) > 0.5);
        assert!(shared_scene(&[(&a, at), (&b, at), (&other, at)]));
        assert!(!shared_scene(&[(&a, at), (&other, at), (&Thumbnail::new(&tiles(6, 12)), at)]));
    }

    #[test]
    fn a_patch_at_random_places_is_not_at_one_place() {
        let fixed: Vec<PixelBox> = (0..7).map(|i| boxed(174 + [0, 11, 0, 3, 0, 11, 0][i], 411 + 4 * (i % 2))).collect();
        assert!(one_place(&fixed));
        let random: Vec<PixelBox> = (0..20).map(|i| boxed(100 + (i * 37) % 200, 100 + (i * 53) % 200)).collect();
        assert!(!one_place(&random));
    }
}
