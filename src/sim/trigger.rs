//! One trait for every way the simulator puts a trigger into an image: a patch placed by the
//! small-image rule ([`ClampedPatch`]), a patch placed by HTBA's photo rule ([`HtbaPatch`]), and a
//! trigger over the whole image ([`crate::sim::whole_image::Prepared`]). The simulators choose the
//! poisons and keep the truth; a trigger changes one image. How the images are stored is a
//! separate axis ([`crate::sim::stored::StoredAs`]).

use rand::rngs::StdRng;
use rand::RngExt;

use crate::image::{Image, PixelBox};
use crate::sim::whole_image::Prepared;

/// Puts a trigger into one image.
pub trait Trigger {
    /// Puts the trigger into `image`, drawing its size and place from `rng`; returns the box it
    /// covers in the image's own pixels, or `None` (the image unchanged) when the image cannot
    /// hold it.
    fn apply(&self, image: &mut Image, rng: &mut StdRng) -> Option<PixelBox>;
}

/// A patch at a uniform place in `[lo·W, hi·W − s]` along each axis (moved inside the image
/// where that range is empty), its side redrawn within `± jitter` pixels; an image smaller than
/// the patch gets one of its own side. The small-image simulator's rule.
pub struct ClampedPatch<'a> {
    /// The patch at its nominal side.
    pub patch: &'a Image,
    /// The side is drawn within `± jitter` pixels of the patch's (0: the patch as it is).
    pub jitter: usize,
    /// The placement range, as shares of the image side.
    pub range: (f64, f64),
    /// Opacity (1 pastes).
    pub alpha: f32,
}

impl Trigger for ClampedPatch<'_> {
    fn apply(&self, image: &mut Image, rng: &mut StdRng) -> Option<PixelBox> {
        let jittered = if self.jitter == 0 {
            self.patch.clone()
        } else {
            let side = self.patch.height();
            let lo = side.saturating_sub(self.jitter).max(1);
            let new_side = rng.random_range(lo..=side + self.jitter);
            self.patch.resized(new_side, new_side)
        };
        let side = jittered.height().min(image.height()).min(image.width());
        let patch = if side == jittered.height() { jittered } else { jittered.resized(side, side) };
        let (lo, hi) = self.range;
        let x = clamped_position(rng, side, image.width(), lo, hi);
        let y = clamped_position(rng, side, image.height(), lo, hi);
        image.blend(&patch, x, y, self.alpha);
        Some(PixelBox { x, y, w: side, h: side })
    }
}

/// A uniform position for the patch in `[lo·W, hi·W − s]`, kept inside the image.
fn clamped_position(rng: &mut StdRng, side: usize, extent: usize, lo: f64, hi: f64) -> usize {
    let start = (lo * extent as f64).floor() as usize;
    let end = ((hi * extent as f64).floor() as usize).saturating_sub(side).max(start);
    rng.random_range(start..=end).min(extent.saturating_sub(side))
}

/// HTBA's placement on photos: a patch of `px × (1 ± scale_jitter)` pixels with its top-left
/// corner uniform in `[0.25 W, 0.75 W − s] × [0.25 H, 0.75 H − s]`; an image too small to hold
/// it there is left clean.
pub struct HtbaPatch<'a> {
    /// The trigger image, resized to each drawn side.
    pub patch: &'a Image,
    /// Nominal side in the image's own pixels.
    pub px: usize,
    /// The side is drawn within `px × (1 ± scale_jitter)`.
    pub scale_jitter: f64,
    /// Opacity (1 pastes).
    pub alpha: f32,
}

impl Trigger for HtbaPatch<'_> {
    fn apply(&self, image: &mut Image, rng: &mut StdRng) -> Option<PixelBox> {
        let scale =
            if self.scale_jitter > 0.0 { rng.random_range(-self.scale_jitter..=self.scale_jitter) } else { 0.0 };
        let side = ((self.px as f64 * (1.0 + scale)).round() as usize).max(1);
        let range = |len: usize| {
            let (lo, hi) = ((0.25 * len as f64) as usize, (0.75 * len as f64) as usize);
            (hi >= lo + side).then_some((lo, hi - side))
        };
        let ((x0, x1), (y0, y1)) = (range(image.width())?, range(image.height())?);
        let (x, y) = (rng.random_range(x0..=x1), rng.random_range(y0..=y1));
        image.blend(&self.patch.resized(side, side), x, y, self.alpha);
        Some(PixelBox { x, y, w: side, h: side })
    }
}

impl Trigger for Prepared {
    /// The whole image changes, so its box is the whole image; nothing is drawn.
    fn apply(&self, image: &mut Image, _rng: &mut StdRng) -> Option<PixelBox> {
        *image = Prepared::apply(self, image);
        Some(PixelBox { x: 0, y: 0, w: image.width(), h: image.height() })
    }
}
