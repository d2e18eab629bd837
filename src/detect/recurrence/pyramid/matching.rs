//! One template looked for in one image on a pyramid level, as verification compares carriers:
//! how the streaming guard finds a photo patch in a new sample.

use std::borrow::Cow;

use super::distance::fitted_rms;
use super::level::Level;
use crate::image::{Image, PixelBox};

/// The best window of an image for a template.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelMatch {
    /// RMS distance after the fitted gain and offsets, in level pixels.
    pub distance: f32,
    /// The window's left edge in native pixels.
    pub x: usize,
    /// The window's top edge in native pixels.
    pub y: usize,
}

/// The window of `image` closest to `template` (`3 × side × side` native values) within
/// `radius`, compared on box means by `factor`. A pasted patch sits at any native offset, and box
/// means taken across the level grid at another phase blur it by up to a level pixel, so the grid
/// is laid at two phases a side (0 and half a level pixel), which halves the worst offset.
///
/// Most windows are ruled out by their block means alone: for any gain and offsets, the RMS
/// over pixels is at least the RMS over equal blocks of the same residual (the mean of squares is
/// at least the square of the mean), so a window whose block means cannot come within `radius`
/// cannot either pixel by pixel, and only the others are compared in full.
pub fn best_level_match(
    image: &Image,
    template: &[f32],
    side: usize,
    factor: usize,
    radius: f32,
) -> Option<LevelMatch> {
    let level_side = side / factor;
    if level_side == 0 || template.len() != 3 * side * side {
        return None;
    }
    let template = Image::new(3, side, side, template.to_vec()).ok()?;
    let reduced = Level::new(&template, factor, level_side)?;
    // The template's block means at each grid that divides the window, coarsest first.
    let bounds: Vec<(usize, usize, Vec<f32>)> = BOUND_GRIDS
        .iter()
        .filter(|&&grid| level_side % grid == 0 && grid < level_side)
        .map(|&grid| {
            let mut means = Vec::new();
            reduced.block_means(0, 0, level_side, grid, &mut means);
            (grid, level_side / grid, means)
        })
        .collect();
    let phases = [0, factor / 2];
    let mut best: Option<LevelMatch> = None;
    let (mut window, mut blocks) = (Vec::with_capacity(reduced.pixels.len()), Vec::with_capacity(48));
    for &py in &phases {
        for &px in &phases {
            let Some(level) = shifted(image, px, py).and_then(|i| Level::new(&i, factor, level_side)) else {
                continue;
            };
            let maps: Vec<_> = bounds.iter().map(|&(_, block, _)| level.block_map(block)).collect();
            for y in 0..=level.height - level_side {
                for x in 0..=level.width - level_side {
                    let limit = best.map_or(radius, |b| b.distance.min(radius));
                    let ruled_out = bounds.iter().zip(&maps).any(|((grid, block, means), map)| {
                        map.grid(x, y, *block, *grid, &mut blocks);
                        fitted_rms(&blocks, means) > limit + BOUND_SLACK
                    });
                    if ruled_out {
                        continue;
                    }
                    level.window(x, y, level_side, &mut window);
                    let distance = fitted_rms(&window, &reduced.pixels);
                    if distance <= limit {
                        best = Some(LevelMatch { distance, x: x * factor + px, y: y * factor + py });
                    }
                }
            }
        }
    }
    best
}

/// Block grids of the bounds, coarsest (cheapest) first: 2×2 block means rule out most windows,
/// 4×4 most of the rest.
const BOUND_GRIDS: [usize; 2] = [2, 4];

/// The bound's block means come from sums in f64 and the full comparison from f32 pixels; a
/// window is ruled out only when its bound exceeds the limit by more than their rounding.
const BOUND_SLACK: f32 = 1e-4;

/// `image` without its first `dx` columns and `dy` rows; the image itself at phase 0, which is
/// the one laid at every call, so that no copy is made there.
fn shifted(image: &Image, dx: usize, dy: usize) -> Option<Cow<'_, Image>> {
    if dx == 0 && dy == 0 {
        return Some(Cow::Borrowed(image));
    }
    let (w, h) = (image.width().checked_sub(dx)?, image.height().checked_sub(dy)?);
    image.crop(PixelBox { x: dx, y: dy, w, h }).map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: u64, h: usize, w: usize) -> Image {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let pixels = (0..3 * h * w)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                // Smooth rows with a little noise, so that some windows come near the template.
                0.5 + 0.3 * ((i % w) as f32 / 9.0).sin() + ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        Image::new(3, h, w, pixels).unwrap()
    }

    /// Every window at every phase compared in full.
    fn exhaustive(image: &Image, template: &[f32], side: usize, factor: usize) -> f32 {
        let t = Image::new(3, side, side, template.to_vec()).unwrap();
        let reduced = Level::new(&t, factor, side / factor).unwrap().pixels;
        let mut best = f32::INFINITY;
        let mut window = Vec::new();
        for py in [0, factor / 2] {
            for px in [0, factor / 2] {
                let level = Level::new(&shifted(image, px, py).unwrap(), factor, side / factor).unwrap();
                for y in 0..=level.height - side / factor {
                    for x in 0..=level.width - side / factor {
                        level.window(x, y, side / factor, &mut window);
                        best = best.min(fitted_rms(&window, &reduced));
                    }
                }
            }
        }
        best
    }

    #[test]
    fn the_block_bound_rules_out_only_windows_that_could_not_match() {
        for seed in 0..4 {
            let mut image = noise(seed, 90, 120);
            let template = noise(seed + 100, 32, 32);
            image.blend(&template, 30 + seed as usize, 41, 0.8);
            let best = exhaustive(&image, template.pixels(), 32, 4);
            let found = best_level_match(&image, template.pixels(), 32, 4, 10.0).unwrap();
            assert!((found.distance - best).abs() < 1e-6, "{} against {best}", found.distance);
            // Within a radius just above the best, the same window; just below, none.
            assert_eq!(
                best_level_match(&image, template.pixels(), 32, 4, best + 1e-3).map(|m| m.distance),
                Some(found.distance)
            );
            assert_eq!(best_level_match(&image, template.pixels(), 32, 4, best - 1e-3), None);
        }
    }
}
