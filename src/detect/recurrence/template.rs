//! A recurring patch kept to look for in new images: what the streaming guard screens by when the
//! fit found a patch, with or without the threat model.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::island::carrier_box;
use super::pyramid::{best_level_match, LevelMatch};
use super::{windows, RecurringPatch};
use crate::image::{Image, PixelBox};

/// A recurring patch's template, enough to look for it in new images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchTemplate {
    /// Channels of the template.
    pub channels: usize,
    /// Side of the square template, in native pixels.
    pub side: usize,
    /// `channels × side × side` values in [0, 1].
    pub values: Vec<f32>,
    /// Native pixels per compared pixel: 1 for a patch mined pixel by pixel (small images), the
    /// pyramid level's factor for one the photo index found, which is compared on that level's
    /// box means after the fitted gain and offsets, as its carriers were. Templates saved before
    /// photos were indexed have none and are compared pixel by pixel.
    #[serde(default = "one")]
    pub factor: usize,
    /// RMS distance within which a window is a copy, in compared pixels; `None` in templates
    /// saved before it was kept, which use the radius the caller gives.
    #[serde(default)]
    pub radius: Option<f32>,
    /// The box a copy is reported at around the matched window, `[x0, y0, x1, y1]` from its
    /// corner, as the fit reported its carriers (see [`RecurringPatch::extent`]); `None`: the
    /// window itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent: Option<[isize; 4]>,
}

fn one() -> usize {
    1
}

impl PatchTemplate {
    /// The radius a window is held to: the template's own, or `default` for one saved without.
    pub fn radius_or(&self, default: f32) -> f32 {
        self.radius.unwrap_or(default)
    }

    /// Where the template matches `image` within [`PatchTemplate::radius_or`] `default_radius`, if
    /// it does: the RMS distance and the box, in `image`'s own pixels.
    pub fn find_in(&self, image: &Image, default_radius: f32) -> Option<(f32, PixelBox)> {
        let radius = self.radius_or(default_radius);
        if self.factor > 1 {
            return best_level_match(image, &self.values, self.side, self.factor, radius)
                .map(|m| level_box(m, self.side));
        }
        let image = if image.channels() == self.channels {
            Cow::Borrowed(image)
        } else {
            Cow::Owned(image.with_channels(self.channels))
        };
        let (d2, corner) = windows::best_match(&image, &self.values, self.side, radius)?;
        let distance = (d2 / self.values.len().max(1) as f32).sqrt();
        let found = match self.extent {
            Some(extent) => carrier_box(&image, corner, extent),
            None => PixelBox { x: corner.x as usize, y: corner.y as usize, w: self.side, h: self.side },
        };
        (distance <= radius).then_some((distance, found))
    }
}

impl RecurringPatch {
    /// The patch's template, for screening new samples.
    pub fn template(&self) -> PatchTemplate {
        let channels = self.template.len() / (self.side * self.side).max(1);
        PatchTemplate {
            channels,
            side: self.side,
            values: self.template.clone(),
            factor: self.factor,
            radius: Some(self.radius),
            extent: self.extent,
        }
    }
}

fn level_box(found: LevelMatch, side: usize) -> (f32, PixelBox) {
    (found.distance, PixelBox { x: found.x, y: found.y, w: side, h: side })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A photo-like background: smooth gradients per channel.
    fn background(h: usize, w: usize, tint: f32) -> Image {
        let pixels = (0..3 * h * w)
            .map(|i| {
                let (c, y, x) = (i / (h * w), i / w % h, i % w);
                0.2 + 0.5 * ((x + 2 * y) as f32 / (3 * w) as f32) + 0.1 * c as f32 * tint
            })
            .collect();
        Image::new(3, h, w, pixels).unwrap()
    }

    /// Hashed colours on a 6×6 grid, smoothly upsampled: textured at every level like a
    /// photo detail, and like no shift of itself.
    fn trigger(side: usize) -> Image {
        let hash = |v: usize| ((v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32;
        let coarse = Image::new(3, 6, 6, (0..3 * 36).map(hash).collect()).unwrap();
        coarse.resized(side, side)
    }

    fn photo_template(t: &Image, factor: usize) -> PatchTemplate {
        PatchTemplate {
            channels: 3,
            side: t.height(),
            values: t.pixels().to_vec(),
            factor,
            radius: Some(0.06),
            extent: None,
        }
    }

    #[test]
    fn a_photo_template_finds_its_patch_blended_at_any_phase_and_nothing_in_a_clean_photo() {
        let t = trigger(32);
        let template = photo_template(&t, 4);
        for (x, y) in [(40, 24), (41, 27), (102, 63)] {
            let mut image = background(160, 200, 1.0);
            image.blend(&t, x, y, 0.8);
            let (distance, found) = template.find_in(&image, 1.0).expect("the blended copy is found");
            assert!(distance <= 0.06, "{distance}");
            assert!(found.x.abs_diff(x) <= 4 && found.y.abs_diff(y) <= 4, "{found:?} for ({x}, {y})");
            assert_eq!((found.w, found.h), (32, 32));
        }
        assert_eq!(template.find_in(&background(160, 200, 1.0), 1.0), None);
        // Another pattern pasted is not this one.
        let mut other = background(160, 200, 0.5);
        let foreign =
            Image::new(3, 32, 32, (0..3 * 32 * 32).map(|i| ((i * 104_729) % 11) as f32 / 11.0).collect()).unwrap();
        other.paste(&foreign, 50, 50);
        assert_eq!(template.find_in(&other, 1.0), None);
    }

    #[test]
    fn a_template_without_a_radius_uses_the_callers() {
        let t = trigger(4);
        let mut image = Image::new(3, 12, 12, vec![0.5; 3 * 144]).unwrap();
        image.paste(&t, 3, 5);
        let template =
            PatchTemplate { channels: 3, side: 4, values: t.pixels().to_vec(), factor: 1, radius: None, extent: None };
        assert_eq!(template.find_in(&image, 0.01).map(|(_, b)| (b.x, b.y)), Some((3, 5)));
        let saved = r#"{"channels":3,"side":4,"values":[]}"#;
        let old: PatchTemplate = serde_json::from_str(saved).unwrap();
        assert_eq!((old.factor, old.radius), (1, None));
    }
}
