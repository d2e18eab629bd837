//! One template looked for in one image on a pyramid level, as verification compares carriers:
//! how the streaming guard finds a photo patch in a new sample.

use super::distance::fitted_rms;
use super::level::Level;
use crate::image::Image;

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

/// The window of `image` closest to `template` (`3 × side × side` native values), compared on
/// box means by `factor`. A pasted patch sits at any native offset, and box means taken across
/// the level grid at another phase blur it by up to a level pixel, so the grid is laid at two
/// phases a side (0 and half a level pixel), which halves the worst offset.
pub fn best_level_match(image: &Image, template: &[f32], side: usize, factor: usize) -> Option<LevelMatch> {
    let level_side = side / factor;
    if level_side == 0 || template.len() != 3 * side * side {
        return None;
    }
    let template = Image::new(3, side, side, template.to_vec()).ok()?;
    let reduced = Level::new(&template, factor, level_side)?.pixels;
    let phases = [0, factor / 2];
    let mut best: Option<LevelMatch> = None;
    let mut window = Vec::with_capacity(reduced.len());
    for &py in &phases {
        for &px in &phases {
            let Some(level) = shifted(image, px, py).and_then(|i| Level::new(&i, factor, level_side)) else {
                continue;
            };
            for y in 0..=level.height - level_side {
                for x in 0..=level.width - level_side {
                    level.window(x, y, level_side, &mut window);
                    let distance = fitted_rms(&window, &reduced);
                    if best.is_none_or(|b| distance < b.distance) {
                        best = Some(LevelMatch { distance, x: x * factor + px, y: y * factor + py });
                    }
                }
            }
        }
    }
    best
}

/// `image` without its first `dx` columns and `dy` rows.
fn shifted(image: &Image, dx: usize, dy: usize) -> Option<Image> {
    if dx == 0 && dy == 0 {
        return Some(image.clone());
    }
    let (c, h, w) = (image.channels(), image.height(), image.width());
    if dx >= w || dy >= h {
        return None;
    }
    let mut pixels = Vec::with_capacity(c * (h - dy) * (w - dx));
    for plane in image.pixels().chunks_exact(h * w) {
        for row in plane.chunks_exact(w).skip(dy) {
            pixels.extend_from_slice(&row[dx..]);
        }
    }
    Image::new(c, h - dy, w - dx, pixels).ok()
}
