//! The pipeline's view of an image: `C×H×W` f32 in [0, 1], and the trait that gives it.

mod as_image;
mod batch;
mod working_size;

pub use as_image::{AsImage, StoredHeader};
pub(crate) use batch::Fnv;
pub use batch::ImageBatchSource;
#[doc(hidden)]
pub use working_size::{capped_size, median_short_side, working_size_of};
pub use working_size::{working_size, DEFAULT_MAX_SHORT_SIDE};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A channel-major image with values in [0, 1]; grey (1 channel) or RGB (3 channels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    channels: usize,
    height: usize,
    width: usize,
    pixels: Vec<f32>,
}

/// A rectangle in pixels: `[x, y, w, h]` with (x, y) the top-left corner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelBox {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
}

impl PixelBox {
    /// Pixels covered.
    pub fn area(&self) -> usize {
        self.w * self.h
    }

    /// Pixels covered by both boxes.
    pub fn intersection(&self, other: &PixelBox) -> usize {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        x1.saturating_sub(x0) * y1.saturating_sub(y0)
    }

    /// The `[x, y, w, h]` form used in JSON outputs.
    pub fn to_array(&self) -> [usize; 4] {
        [self.x, self.y, self.w, self.h]
    }
}

impl Image {
    /// Builds an image, checking that `pixels` holds `channels × height × width` values.
    pub fn new(channels: usize, height: usize, width: usize, pixels: Vec<f32>) -> Result<Self> {
        let expected = channels * height * width;
        if expected == 0 || pixels.len() != expected {
            return Err(Error::ImageShape { channels, height, width, expected, got: pixels.len() });
        }
        Ok(Self { channels, height, width, pixels })
    }

    /// Builds an image from interleaved (`H×W×C`) bytes, as decoders and IDX/CIFAR files give them.
    pub fn from_hwc_u8(channels: usize, height: usize, width: usize, bytes: &[u8]) -> Result<Self> {
        let plane = height * width;
        if bytes.len() != plane * channels {
            return Err(Error::ImageShape { channels, height, width, expected: plane * channels, got: bytes.len() });
        }
        let mut pixels = vec![0.0; bytes.len()];
        // One plane at a time, through a table of the 256 values: this runs on every decoded photo.
        let value: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
        for (c, out) in pixels.chunks_exact_mut(plane.max(1)).enumerate() {
            for (o, pixel) in out.iter_mut().zip(bytes.chunks_exact(channels.max(1))) {
                *o = value[usize::from(pixel[c])];
            }
        }
        Self::new(channels, height, width, pixels)
    }

    /// 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }
    /// All values, channel-major (`C×H×W`), in [0, 1].
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// A hash of the shape and every value, to tell images apart in cache keys: four interleaved
    /// multiply-xor lanes, so that hashing a photo costs far less than decoding it.
    pub fn fingerprint(&self) -> u64 {
        content_fingerprint([self.channels, self.height, self.width], &self.pixels)
    }

    /// The value of channel `c` at row `y`, column `x` (panics outside the image, like indexing).
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.pixels[(c * self.height + y) * self.width + x]
    }

    /// Sets the value of channel `c` at row `y`, column `x` (panics outside the image).
    pub fn set(&mut self, c: usize, y: usize, x: usize, value: f32) {
        self.pixels[(c * self.height + y) * self.width + x] = value;
    }

    /// Pastes `patch` opaquely with its top-left corner at (x, y), clipped to the image.
    /// A grey patch on an RGB image is repeated over the channels; an RGB patch on a grey
    /// image is converted to luminance.
    pub fn paste(&mut self, patch: &Image, x: usize, y: usize) {
        self.blend(patch, x, y, 1.0);
    }

    /// Like [`Image::paste`], but mixes `alpha × patch + (1 − alpha) × image`.
    pub fn blend(&mut self, patch: &Image, x: usize, y: usize, alpha: f32) {
        let patch = patch.with_channels(self.channels);
        for c in 0..self.channels {
            for py in 0..patch.height.min(self.height.saturating_sub(y)) {
                for px in 0..patch.width.min(self.width.saturating_sub(x)) {
                    let under = self.get(c, y + py, x + px);
                    self.set(c, y + py, x + px, alpha * patch.get(c, py, px) + (1.0 - alpha) * under);
                }
            }
        }
    }

    /// The pixels inside `b`, or `None` when `b` is empty or leaves the image.
    pub fn crop(&self, b: PixelBox) -> Option<Image> {
        if b.w == 0 || b.h == 0 || b.x + b.w > self.width || b.y + b.h > self.height {
            return None;
        }
        let mut pixels = Vec::with_capacity(self.channels * b.h * b.w);
        for plane in self.pixels.chunks_exact(self.height * self.width) {
            for row in plane.chunks_exact(self.width).skip(b.y).take(b.h) {
                pixels.extend_from_slice(&row[b.x..b.x + b.w]);
            }
        }
        Some(Image { channels: self.channels, height: b.h, width: b.w, pixels })
    }

    /// The same image with `channels` channels (1 = luminance, 3 = RGB).
    pub fn with_channels(&self, channels: usize) -> Image {
        if channels == self.channels {
            return self.clone();
        }
        let plane = self.height * self.width;
        let pixels = match (self.channels, channels) {
            (1, c) => self.pixels.repeat(c),
            (3, 1) => (0..plane)
                .map(|i| 0.299 * self.pixels[i] + 0.587 * self.pixels[plane + i] + 0.114 * self.pixels[2 * plane + i])
                .collect(),
            (_, c) => (0..c * plane).map(|i| self.pixels[i % plane]).collect(),
        };
        Image { channels, height: self.height, width: self.width, pixels }
    }

    /// Bilinear resize (a no-op when the size already matches).
    pub fn resized(&self, height: usize, width: usize) -> Image {
        if height == self.height && width == self.width {
            return self.clone();
        }
        let sy = self.height as f32 / height as f32;
        let sx = self.width as f32 / width as f32;
        let mut pixels = Vec::with_capacity(self.channels * height * width);
        for c in 0..self.channels {
            for y in 0..height {
                let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (self.height - 1) as f32);
                let (y0, ty) = (fy.floor() as usize, fy.fract());
                let y1 = (y0 + 1).min(self.height - 1);
                for x in 0..width {
                    let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (self.width - 1) as f32);
                    let (x0, tx) = (fx.floor() as usize, fx.fract());
                    let x1 = (x0 + 1).min(self.width - 1);
                    let top = self.get(c, y0, x0) * (1.0 - tx) + self.get(c, y0, x1) * tx;
                    let bottom = self.get(c, y1, x0) * (1.0 - tx) + self.get(c, y1, x1) * tx;
                    pixels.push(top * (1.0 - ty) + bottom * ty);
                }
            }
        }
        Image { channels: self.channels, height, width, pixels }
    }

    /// Interleaved 8-bit RGB or grey bytes, for writing PNGs.
    pub fn to_hwc_u8(&self) -> Vec<u8> {
        let plane = self.height * self.width;
        (0..plane * self.channels)
            .map(|i| {
                let v = self.pixels[(i % self.channels) * plane + i / self.channels];
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            })
            .collect()
    }
}

/// [`Image::fingerprint`] of a `C×H×W` image given by its shape and pixels.
pub(crate) fn content_fingerprint(shape: [usize; 3], pixels: &[f32]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes = [shape[0] as u64, shape[1] as u64, shape[2] as u64, 0x5bd1_e995];
    for chunk in pixels.chunks(4) {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = (*lane ^ u64::from(v.to_bits())).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut hash = Fnv::default();
    for lane in lanes {
        hash.write(&lane.to_le_bytes());
    }
    hash.0
}

/// `b` in an image of `from = [h, w]` pixels, in an image of `to` pixels.
pub fn scale_box(b: PixelBox, from: [usize; 2], to: [usize; 2]) -> PixelBox {
    if from == to {
        return b;
    }
    let sy = to[0] as f64 / from[0] as f64;
    let sx = to[1] as f64 / from[1] as f64;
    let x = (b.x as f64 * sx).floor() as usize;
    let y = (b.y as f64 * sy).floor() as usize;
    let x1 = ((b.x + b.w) as f64 * sx).ceil().min(to[1] as f64) as usize;
    let y1 = ((b.y + b.h) as f64 * sy).ceil().min(to[0] as f64) as usize;
    PixelBox { x, y, w: x1.saturating_sub(x).max(1), h: y1.saturating_sub(y).max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwc_bytes_become_channel_major() {
        let img = Image::from_hwc_u8(3, 1, 2, &[255, 0, 0, 0, 0, 255]).unwrap();
        assert_eq!(img.pixels(), &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(img.to_hwc_u8(), vec![255, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(matches!(Image::new(1, 2, 2, vec![0.0; 3]), Err(Error::ImageShape { .. })));
        assert!(Image::from_hwc_u8(1, 0, 0, &[]).is_err());
    }

    #[test]
    fn paste_clips_at_the_border_and_converts_channels() {
        let mut img = Image::new(3, 4, 4, vec![0.0; 48]).unwrap();
        let patch = Image::new(1, 2, 2, vec![1.0; 4]).unwrap();
        img.paste(&patch, 3, 3);
        let changed = img.pixels().iter().filter(|&&v| v == 1.0).count();
        assert_eq!(changed, 3, "one pixel in each of three channels");
    }

    #[test]
    fn a_crop_is_the_pixels_inside_its_box_and_a_box_outside_is_none() {
        let img = Image::new(2, 3, 4, (0..24).map(|v| v as f32).collect()).unwrap();
        let crop = img.crop(PixelBox { x: 1, y: 1, w: 2, h: 2 }).unwrap();
        assert_eq!(crop.pixels(), &[5.0, 6.0, 9.0, 10.0, 17.0, 18.0, 21.0, 22.0]);
        assert_eq!(img.crop(PixelBox { x: 3, y: 0, w: 2, h: 1 }), None);
        assert_eq!(img.crop(PixelBox { x: 0, y: 0, w: 0, h: 1 }), None);
    }

    #[test]
    fn resize_keeps_constant_images_constant() {
        let img = Image::new(1, 5, 7, vec![0.25; 35]).unwrap();
        let r = img.resized(3, 9);
        assert_eq!((r.height(), r.width()), (3, 9));
        assert!(r.pixels().iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn box_intersection() {
        let a = PixelBox { x: 0, y: 0, w: 4, h: 4 };
        let b = PixelBox { x: 2, y: 3, w: 4, h: 4 };
        assert_eq!(a.intersection(&b), 2);
        assert_eq!(b.intersection(&PixelBox { x: 10, y: 10, w: 1, h: 1 }), 0);
    }
}
