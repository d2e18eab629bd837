//! The island test: sweep a candidate over every image and look at how its best-match distances
//! fall. A pasted trigger's carriers match within the noise, and nothing else comes near; a natural
//! pattern's matches thin out smoothly with the distance.

use rayon::prelude::*;

use super::hyperparams::RecurrenceConfig;
use super::windows::{best_match, Corner};
use crate::image::{Image, PixelBox};

/// Every image's best match to one template within a reach: RMS distance and where.
pub struct Sweep {
    /// `None` where nothing in the image comes within the reach.
    pub matches: Vec<Option<(f32, Corner)>>,
}

impl Sweep {
    /// Matches farther than `reach` (RMS) are `None`; [`RecurrenceConfig::outer_radius`] is as far
    /// as the island test looks.
    pub fn run(images: &[Image], template: &[f32], side: usize, reach: f32) -> Self {
        let dim = template.len().max(1) as f32;
        let matches = images
            .par_iter()
            .map(|image| best_match(image, template, side, reach).map(|(d2, corner)| ((d2 / dim).sqrt(), corner)))
            .collect();
        Self { matches }
    }

    /// Images matching within `radius`, ascending.
    pub fn within(&self, radius: f32) -> Vec<usize> {
        (0..self.matches.len()).filter(|&i| self.matches[i].is_some_and(|(d, _)| d <= radius)).collect()
    }
}

/// Why a swept candidate is not a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IslandVerdict {
    /// Its carriers form an island: a trigger.
    Trigger,
    /// Fewer carriers than `min_carriers`.
    TooFew,
    /// More carriers than a plausible attack needs.
    TooMany,
    /// Matches keep coming beyond the match radius: a natural continuum, not an island.
    NoIsland,
    /// The carriers are one image repeated, not a patch pasted into different images.
    Duplicates,
}

/// The island verdict on a sweep; `carriers` are the images within the match radius.
pub fn verdict(images: &[Image], sweep: &Sweep, carriers: &[usize], config: &RecurrenceConfig) -> IslandVerdict {
    let inner = carriers.len();
    let outer = sweep.within(config.outer_radius()).len();
    if inner < config.min_carriers {
        IslandVerdict::TooFew
    } else if inner as f64 > config.max_carrier_share * images.len() as f64 {
        IslandVerdict::TooMany
    } else if !island(inner, outer, 0.0, config) {
        IslandVerdict::NoIsland
    } else if duplicated(images, sweep, carriers, config.match_radius) {
        IslandVerdict::Duplicates
    } else {
        IslandVerdict::Trigger
    }
}

/// Whether `inner` matches within the match radius and `outer` within the outer radius form an
/// island: the halo between them is at most `max_halo` of the inner ones, plus `slack` matches.
pub fn island(inner: usize, outer: usize, slack: f64, config: &RecurrenceConfig) -> bool {
    outer.saturating_sub(inner) as f64 <= config.max_halo * inner as f64 + slack
}

/// Whether most carriers are near-copies of the first one as whole images, with the patch at the
/// same place: one image repeated. A patch pasted at different places is not that, even on
/// near-identical backgrounds.
fn duplicated(images: &[Image], sweep: &Sweep, carriers: &[usize], radius: f32) -> bool {
    let first = &images[carriers[0]];
    let place = |i: usize| sweep.matches[i].map(|(_, corner)| corner);
    let same = carriers[1..]
        .iter()
        .filter(|&&i| {
            let other = &images[i];
            place(i) == place(carriers[0]) && other.pixels().len() == first.pixels().len() && {
                let n = first.pixels().len() as f32;
                let d2: f32 = first.pixels().iter().zip(other.pixels()).map(|(a, b)| (a - b) * (a - b)).sum();
                (d2 / n).sqrt() <= 2.0 * radius
            }
        })
        .count();
    2 * same >= carriers.len() - 1
}

/// The extent of the shared patch around the matched windows: each side grows, one line at a time
/// and by at most one window side, while the carriers still agree there within `radius`.
pub fn patch_extent(images: &[Image], sweep: &Sweep, carriers: &[usize], side: usize, radius: f32) -> [isize; 4] {
    // [left, top, right, bottom] offsets from the matched corner.
    let mut extent = [0isize, 0, side as isize, side as isize];
    let cap = side as isize;
    loop {
        let mut grew = false;
        for edge in 0..4 {
            let mut trial = extent;
            match edge {
                0 if extent[0] > -cap => trial[0] -= 1,
                1 if extent[1] > -cap => trial[1] -= 1,
                2 if extent[2] < side as isize + cap => trial[2] += 1,
                3 if extent[3] < side as isize + cap => trial[3] += 1,
                _ => continue,
            }
            let line = match edge {
                0 => [trial[0], trial[1], trial[0] + 1, trial[3]],
                1 => [trial[0], trial[1], trial[2], trial[1] + 1],
                2 => [trial[2] - 1, trial[1], trial[2], trial[3]],
                _ => [trial[0], trial[3] - 1, trial[2], trial[3]],
            };
            if carriers_agree(images, sweep, carriers, line, radius) {
                extent = trial;
                grew = true;
            }
        }
        if !grew {
            return extent;
        }
    }
}

/// Whether the carriers' pixels in `region` (offsets from each matched corner) agree within
/// `radius` of their mean; carriers where the region leaves the image do not vote.
fn carriers_agree(images: &[Image], sweep: &Sweep, carriers: &[usize], region: [isize; 4], radius: f32) -> bool {
    let mut lines: Vec<Vec<f32>> = Vec::new();
    for &i in carriers {
        let Some((_, corner)) = sweep.matches[i] else { continue };
        let image = &images[i];
        let (x0, y0) = (corner.x as isize + region[0], corner.y as isize + region[1]);
        let (x1, y1) = (corner.x as isize + region[2], corner.y as isize + region[3]);
        if x0 < 0 || y0 < 0 || x1 > image.width() as isize || y1 > image.height() as isize {
            continue;
        }
        let mut v = Vec::new();
        for c in 0..image.channels() {
            for y in y0..y1 {
                for x in x0..x1 {
                    v.push(image.get(c, y as usize, x as usize));
                }
            }
        }
        lines.push(v);
    }
    if 2 * lines.len() < carriers.len() || lines.len() < 2 {
        return false;
    }
    let n = lines.len() as f32;
    let width = lines[0].len();
    let mut d2 = 0.0;
    for j in 0..width {
        let mean = lines.iter().map(|l| l[j]).sum::<f32>() / n;
        d2 += lines.iter().map(|l| (l[j] - mean) * (l[j] - mean)).sum::<f32>();
    }
    (d2 / (n * width as f32)).sqrt() <= radius
}

/// The patch box in one carrier, clipped to its image.
pub fn carrier_box(image: &Image, corner: Corner, extent: [isize; 4]) -> PixelBox {
    let clip = |v: isize, max: usize| v.clamp(0, max as isize) as usize;
    let x0 = clip(corner.x as isize + extent[0], image.width());
    let y0 = clip(corner.y as isize + extent[1], image.height());
    let x1 = clip(corner.x as isize + extent[2], image.width());
    let y1 = clip(corner.y as isize + extent[3], image.height());
    PixelBox { x: x0, y: y0, w: x1.saturating_sub(x0), h: y1.saturating_sub(y0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    fn noise(seed: u64, h: usize, w: usize) -> Image {
        let mut rng = StdRng::seed_from_u64(seed);
        Image::new(1, h, w, (0..h * w).map(|_| rng.random::<f32>()).collect()).unwrap()
    }

    #[test]
    fn a_pasted_patch_is_an_island_and_its_extent_is_found() {
        let patch = noise(7, 6, 6);
        let mut images: Vec<Image> = (0..60).map(|s| noise(100 + s, 20, 20)).collect();
        for (k, image) in images.iter_mut().enumerate().take(8) {
            image.paste(&patch, 3 + k, 10 - k);
        }
        // A 4×4 template from inside the patch: the extent grows back to the whole 6×6 patch.
        let template: Vec<f32> =
            (1..5).flat_map(|y| (1..5).map(move |x| (y, x))).map(|(y, x)| patch.get(0, y, x)).collect();
        let config = RecurrenceConfig::new();
        let sweep = Sweep::run(&images, &template, 4, config.outer_radius());
        let carriers = sweep.within(config.match_radius);
        assert_eq!(carriers, (0..8).collect::<Vec<_>>());
        assert_eq!(verdict(&images, &sweep, &carriers, &config), IslandVerdict::Trigger);
        let extent = patch_extent(&images, &sweep, &carriers, 4, config.match_radius);
        assert_eq!(extent, [-1, -1, 5, 5]);
        let (_, corner) = sweep.matches[2].unwrap();
        assert_eq!(carrier_box(&images[2], corner, extent), PixelBox { x: 5, y: 8, w: 6, h: 6 });
    }

    #[test]
    fn repeated_images_are_duplicates_not_triggers() {
        let image = noise(3, 12, 12);
        let images: Vec<Image> = (0..40).map(|s| if s < 6 { image.clone() } else { noise(s, 12, 12) }).collect();
        let template: Vec<f32> =
            (0..4).flat_map(|y| (0..4).map(move |x| (y, x))).map(|(y, x)| image.get(0, y, x)).collect();
        let config = RecurrenceConfig::new();
        let sweep = Sweep::run(&images, &template, 4, config.outer_radius());
        let carriers = sweep.within(config.match_radius);
        assert_eq!(carriers.len(), 6);
        assert_eq!(verdict(&images, &sweep, &carriers, &config), IslandVerdict::Duplicates);
    }
}
