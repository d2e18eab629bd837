//! Square windows of images at their native resolution, as flat `C×s×s` value vectors.

use crate::image::Image;

/// The top-left corner of a window in its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Corner {
    pub x: u32,
    pub y: u32,
}

/// Copies the `side × side` window at `corner` of `image` into `out` (cleared first).
pub fn read_window(image: &Image, corner: Corner, side: usize, out: &mut Vec<f32>) {
    out.clear();
    let (x, y) = (corner.x as usize, corner.y as usize);
    for c in 0..image.channels() {
        for row in y..y + side {
            let start = (c * image.height() + row) * image.width() + x;
            out.extend_from_slice(&image.pixels()[start..start + side]);
        }
    }
}

/// Every corner of a `side` window in `image` on a grid of `stride`.
pub fn corners(image: &Image, side: usize, stride: usize) -> impl Iterator<Item = Corner> + '_ {
    let stride = stride.max(1);
    let (h, w) = (image.height(), image.width());
    let rows = if h >= side { (0..=h - side).step_by(stride).collect() } else { Vec::new() };
    let cols: Vec<usize> = if w >= side { (0..=w - side).step_by(stride).collect() } else { Vec::new() };
    rows.into_iter().flat_map(move |y| cols.clone().into_iter().map(move |x| Corner { x: x as u32, y: y as u32 }))
}

/// Standard deviation of the values.
pub fn texture(values: &[f32]) -> f32 {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt()
}

/// Largest share of the values within `tolerance` of one level.
pub fn flat_share(values: &[f32], tolerance: f32, scratch: &mut Vec<f32>) -> f64 {
    scratch.clear();
    scratch.extend_from_slice(values);
    scratch.sort_unstable_by(f32::total_cmp);
    let (mut best, mut lo) = (0, 0);
    for hi in 0..scratch.len() {
        while scratch[hi] - scratch[lo] > 2.0 * tolerance {
            lo += 1;
        }
        best = best.max(hi + 1 - lo);
    }
    best as f64 / values.len().max(1) as f64
}

/// Squared distance, stopping early once it exceeds `limit` (the result is then above `limit`).
pub fn distance2_below(a: &[f32], b: &[f32], limit: f32) -> f32 {
    let mut sum = 0.0;
    // Small chunks: most positions are rejected after the first few values.
    for (ca, cb) in a.chunks(4).zip(b.chunks(4)) {
        sum += ca.iter().zip(cb).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        if sum > limit {
            return sum;
        }
    }
    sum
}

/// The best match of `template` (a `side` window) in `image` among the positions whose RMS
/// distance is at most `reach`: squared distance and corner, or `None` when no position comes that
/// near (`f32::INFINITY` for the best match anywhere).
///
/// Each position is compared in place, row by row: copying the window first cost more than the
/// comparison, which rejects most positions after a few values. Callers look only at matches
/// within a radius, so a position is dropped as soon as its sum passes `reach`, not only once it
/// passes the best so far. The reach is widened by a hair so that the caller's own RMS test, not
/// the rounding of this squared limit, decides the boundary (and a position exactly at the
/// widened limit may be dropped); within the reach the result is the best match's, to the last
/// bit. The sums are grouped by four values as [`distance2_below`]
/// groups them.
pub fn best_match(image: &Image, template: &[f32], side: usize, reach: f32) -> Option<(f32, Corner)> {
    if image.height() < side || image.width() < side {
        return None;
    }
    let cap = reach * reach * template.len().max(1) as f32 * (1.0 + 1e-4);
    let mut best: Option<(f32, Corner)> = None;
    let (width, across) = (image.width(), image.width() - side + 1);
    // A window's first group of four lies in its first row when the side is four or more.
    let screened = side >= 4 && template.len() >= 4;
    let mut first = vec![0f32; if screened { across } else { 0 }];
    // The order of `corners(image, side, 1)`, without its per-row allocations.
    for y in 0..=image.height() - side {
        if screened {
            first_groups(&image.pixels()[y * width..][..width], &template[..4], &mut first);
        }
        for x in 0..across {
            let limit = best.map_or(cap, |(d, _)| d);
            // Most positions end on their first group, which distance2_at would return as is.
            if screened && first[x] > limit {
                continue;
            }
            let corner = Corner { x: x as u32, y: y as u32 };
            let d = distance2_at(image, corner, side, template, limit);
            if d < limit {
                best = Some((d, corner));
            }
        }
    }
    best
}

/// The first group of four of [`distance2_at`] at every position along one image row, summed in
/// the same order (so to the same bits), as one pass the compiler vectorises.
fn first_groups(row: &[f32], template: &[f32], first: &mut [f32]) {
    first.fill(0.0);
    for (k, &t) in template.iter().enumerate() {
        for (f, &v) in first.iter_mut().zip(&row[k..]) {
            *f += (v - t) * (v - t);
        }
    }
}

/// [`distance2_below`] of the window at `corner` and `template`, read from the image in place.
fn distance2_at(image: &Image, corner: Corner, side: usize, template: &[f32], limit: f32) -> f32 {
    let (x, y, width) = (corner.x as usize, corner.y as usize, image.width());
    if side % 4 == 0 && template.len() == image.channels() * side * side {
        return distance2_aligned(image, [x, y], side, template, limit);
    }
    let (mut sum, mut group, mut counted) = (0f32, 0f32, 0usize);
    let mut rows = template.chunks(side.max(1));
    for c in 0..image.channels() {
        for row in y..y + side {
            let start = (c * image.height() + row) * width + x;
            let Some(wanted) = rows.next() else { return sum };
            for (a, b) in image.pixels()[start..start + side].iter().zip(wanted) {
                group += (a - b) * (a - b);
                counted += 1;
                if counted % 4 == 0 {
                    sum += group;
                    group = 0.0;
                    if sum > limit {
                        return sum;
                    }
                }
            }
        }
    }
    if counted % 4 != 0 {
        sum += group;
    }
    sum
}

/// [`distance2_at`] when every group of four values lies within one row (the side a multiple of
/// four): whole groups, without counting values one by one.
fn distance2_aligned(image: &Image, [x, y]: [usize; 2], side: usize, template: &[f32], limit: f32) -> f32 {
    let mut sum = 0f32;
    let mut wanted = template.chunks_exact(4);
    for c in 0..image.channels() {
        for row in y..y + side {
            let start = (c * image.height() + row) * image.width() + x;
            for (got, wanted) in image.pixels()[start..start + side].chunks_exact(4).zip(wanted.by_ref()) {
                sum += got.iter().zip(wanted).fold(0f32, |group, (a, b)| group + (a - b) * (a - b));
                if sum > limit {
                    return sum;
                }
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Image {
        Image::new(1, h, w, (0..h * w).map(|i| i as f32 / (h * w) as f32).collect()).unwrap()
    }

    #[test]
    fn windows_read_the_right_pixels() {
        let image = ramp(5, 6);
        let mut out = Vec::new();
        read_window(&image, Corner { x: 2, y: 1 }, 2, &mut out);
        assert_eq!(out, vec![image.get(0, 1, 2), image.get(0, 1, 3), image.get(0, 2, 2), image.get(0, 2, 3)]);
        assert_eq!(corners(&image, 2, 1).count(), 4 * 5);
        assert_eq!(corners(&image, 2, 2).count(), 2 * 3);
        assert_eq!(corners(&image, 7, 1).count(), 0);
    }

    #[test]
    fn best_match_finds_the_copy() {
        let mut image = Image::new(1, 8, 8, vec![0.0; 64]).unwrap();
        let patch = Image::new(1, 3, 3, vec![0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.5]).unwrap();
        image.paste(&patch, 4, 2);
        let (d, corner) = best_match(&image, patch.pixels(), 3, f32::INFINITY).unwrap();
        assert_eq!((d, corner), (0.0, Corner { x: 4, y: 2 }));
        assert!(texture(patch.pixels()) > 0.2);
        assert_eq!(texture(&[0.5; 9]), 0.0);
        let mut scratch = Vec::new();
        assert_eq!(flat_share(&[0.0, 0.0, 0.01, 0.9], 0.02, &mut scratch), 0.75);
        assert_eq!(flat_share(&[0.0, 1.0, 0.0, 1.0], 0.02, &mut scratch), 0.5);
        assert_eq!(flat_share(&[0.1, 0.3, 0.5, 0.7], 0.02, &mut scratch), 0.25);
    }

    /// Within its reach the bounded search finds the unbounded one's match to the last bit, and
    /// past it nothing, on sides whose groups of four do and do not cross rows.
    #[test]
    fn a_reach_keeps_the_best_match_within_it_and_drops_the_rest() {
        let pixels: Vec<f32> = (0..2 * 12 * 13).map(|i| ((i * 7919 % 103) as f32 / 103.0).powi(2)).collect();
        let image = Image::new(2, 12, 13, pixels).unwrap();
        let mut window = Vec::new();
        for side in [3, 4, 7] {
            read_window(&image, Corner { x: 5, y: 3 }, side, &mut window);
            let template: Vec<f32> =
                window.iter().enumerate().map(|(i, v)| v + 0.03 * ((i % 3) as f32 - 1.0)).collect();
            let (d2, corner) = best_match(&image, &template, side, f32::INFINITY).unwrap();
            // Against every window copied out and compared in full: the first-group screen and
            // the early stops change nothing.
            let mut brute: Option<(f32, Corner)> = None;
            for at in corners(&image, side, 1) {
                read_window(&image, at, side, &mut window);
                let d = distance2_below(&window, &template, f32::INFINITY);
                if brute.is_none_or(|(b, _)| d < b) {
                    brute = Some((d, at));
                }
            }
            assert_eq!(brute.map(|(d, at)| (d.to_bits(), at)), Some((d2.to_bits(), corner)), "side {side}");
            let rms = (d2 / template.len() as f32).sqrt();
            assert_eq!(corner, Corner { x: 5, y: 3 }, "side {side}");
            let near = best_match(&image, &template, side, rms).unwrap();
            assert_eq!((near.0.to_bits(), near.1), (d2.to_bits(), corner), "side {side}");
            assert_eq!(best_match(&image, &template, side, 0.9 * rms), None, "side {side}");
        }
    }

    /// The in-place comparison gives the copied window's distance to the last bit, at every
    /// position and for limits that stop it early, on a 3-channel image.
    #[test]
    fn in_place_distances_equal_the_copied_windows() {
        let (h, w) = (9, 11);
        let pixels: Vec<f32> = (0..3 * h * w).map(|i| ((i * 7919 % 101) as f32 / 101.0).powi(2)).collect();
        let image = Image::new(3, h, w, pixels).unwrap();
        let mut window = Vec::new();
        // Sides that split groups of four across rows, and sides whose rows hold whole groups.
        for side in [3, 4, 5, 8] {
            let template: Vec<f32> = (0..3 * side * side).map(|i| (i * 31 % 17) as f32 / 17.0).collect();
            for corner in corners(&image, side, 1) {
                read_window(&image, corner, side, &mut window);
                for limit in [f32::INFINITY, 1.0, 0.05] {
                    let copied = distance2_below(&window, &template, limit);
                    let in_place = distance2_at(&image, corner, side, &template, limit);
                    assert_eq!(copied.to_bits(), in_place.to_bits(), "side {side}, {corner:?}, limit {limit}");
                }
            }
        }
    }
}
