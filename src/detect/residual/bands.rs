//! Each image as the shared-residual signal sees it: at a few fixed sides in the image's own
//! relative coordinates (a key resized to every image lands on the same pixels there), its
//! high-pass residual (the image less a Gaussian blur), centred and of unit length, stored as
//! 8-bit values; and a coarse thumbnail of its content, to tell a shared key over different
//! content from images that share their content (an atlas's plates, duplicates).

use crate::image::Image;

/// Side of the content thumbnail.
const THUMB: usize = 8;

/// Most pixels a side a band keeps: a larger band's residual is kept at every k-th pixel each
/// way (sampled, not averaged: its fine detail is what it is for), so that each band costs the
/// same to hold and compare.
const KEPT_SIDE: usize = 128;

/// Pixels a side band `side` keeps, and its sampling step.
pub(super) fn kept(side: usize) -> (usize, usize) {
    let step = side.div_ceil(KEPT_SIDE);
    (side.div_ceil(step), step)
}

/// One image's residuals and thumbnail.
#[derive(Debug)]
pub(super) struct Residuals {
    /// One per band: `3 · kept²` values ([`kept`]), channel-major, scaled so the largest
    /// magnitude is 127.
    pub bands: Vec<Vec<i8>>,
    /// Each band's length as stored (0 for an image with no residual at all: a flat image).
    pub norms: Vec<f32>,
    /// `3 · 8²` values, centred, unit length.
    pub content: Vec<f32>,
}

impl Residuals {
    /// As bytes: each band's length and values, the norms, the thumbnail (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((self.bands.len() as u32).to_le_bytes());
        for band in &self.bands {
            out.extend((band.len() as u32).to_le_bytes());
            out.extend(band.iter().map(|&v| v as u8));
        }
        out.extend(self.norms.iter().flat_map(|v| v.to_le_bytes()));
        out.extend(self.content.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    /// What [`Residuals::encode`] wrote, or why it cannot be; the thumbnail's length is fixed.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut rest = bytes;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            if rest.len() < n {
                return Err(format!("a stored residual cut short ({} bytes)", bytes.len()));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let count = u32_at(take(4)?);
        let mut bands = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let len = u32_at(take(4)?);
            bands.push(take(len)?.iter().map(|&v| v as i8).collect());
        }
        let floats = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let norms = floats(take(4 * count)?);
        let content = floats(take(4 * 3 * THUMB * THUMB)?);
        if !rest.is_empty() {
            return Err(format!("{} bytes past a stored residual's end", rest.len()));
        }
        Ok(Residuals { bands, norms, content })
    }

    /// Band `b` as a unit vector.
    pub fn unit(&self, b: usize) -> Vec<f32> {
        let n = self.norms[b];
        self.bands[b].iter().map(|&v| if n > 0.0 { f32::from(v) / n } else { 0.0 }).collect()
    }

    /// The cosine of band `b` with another image's.
    pub fn cosine(&self, other: &Residuals, b: usize) -> f32 {
        let (na, nb) = (self.norms[b], other.norms[b]);
        if na == 0.0 || nb == 0.0 {
            return 0.0;
        }
        dot_i8(&self.bands[b], &other.bands[b]) as f32 / (na * nb)
    }

    /// Band `b` (as a unit vector) dotted with `pattern`.
    pub fn along(&self, b: usize, pattern: &[f32]) -> f32 {
        let n = self.norms[b];
        if n == 0.0 {
            return 0.0;
        }
        self.bands[b].iter().zip(pattern).map(|(&v, &p)| f32::from(v) * p).sum::<f32>() / n
    }
}

/// `a · b` of two bands. The pairs' dots are most of the signal's time on photos: with AVX2
/// (checked as it runs) the same loop is compiled four times wider, 3.5× faster; integer sums are
/// exact, so either path gives the same value.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dot_i8_avx2(a, b) };
    }
    dot_i8_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_body(a, b)
}

/// i8 · i8 fits i16; summed in i32 (at most 3 · 128² · 127² < 2³¹), which vectorises.
#[inline(always)]
fn dot_i8_body(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(i16::from(x) * i16::from(y))).sum()
}

/// `image` at each of `sides`, high-passed by a Gaussian of `sigma` pixels. A side over twice
/// the image's longer one, past the first, is left empty: blown up, the image holds nothing
/// finer there than at a smaller side, and holding it would cost memory for nothing.
pub(super) fn measure(image: &Image, sides: &[usize], sigma: f32) -> Residuals {
    // A colour photo is read in place: a copy of a large one costs more than its resampling.
    let rgb = if image.channels() == 3 {
        std::borrow::Cow::Borrowed(image)
    } else {
        std::borrow::Cow::Owned(image.with_channels(3))
    };
    let (mut bands, mut norms) = (Vec::with_capacity(sides.len()), Vec::with_capacity(sides.len()));
    let longest = image.height().max(image.width());
    // The largest band is resampled from the image, the others from it (a fraction of the cost
    // on a large photo).
    let largest = sides.iter().enumerate().filter(|&(b, &s)| b == 0 || s <= 2 * longest).map(|(_, &s)| s).max();
    let base = largest.map(|s| (s, Image::new(3, s, s, resample(&rgb, s)).expect("the shape is the side's")));
    for (b, &side) in sides.iter().enumerate() {
        if b > 0 && side > 2 * longest {
            bands.push(Vec::new());
            norms.push(0.0);
            continue;
        }
        let small = match &base {
            Some((s, image)) if *s == side => image.pixels().to_vec(),
            Some((s, image)) if *s > side => resample(image, side),
            _ => resample(&rgb, side),
        };
        let blurred = blur(&small, side, sigma);
        let (k, step) = kept(side);
        let mut residual = Vec::with_capacity(3 * k * k);
        for c in 0..3 {
            for y in (0..side).step_by(step) {
                for x in (0..side).step_by(step) {
                    let i = (c * side + y) * side + x;
                    residual.push(small[i] - blurred[i]);
                }
            }
        }
        centre(&mut residual);
        let (band, norm) = quantise(&residual);
        bands.push(band);
        norms.push(norm);
    }
    let mut content = resample(&rgb, THUMB);
    centre(&mut content);
    let length = content.iter().map(|v| v * v).sum::<f32>().sqrt();
    if length > 0.0 {
        content.iter_mut().for_each(|v| *v /= length);
    }
    Residuals { bands, norms, content }
}

fn centre(values: &mut [f32]) {
    let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
    values.iter_mut().for_each(|v| *v -= mean);
}

/// 8-bit values scaled so the largest magnitude is 127, and their length.
fn quantise(values: &[f32]) -> (Vec<i8>, f32) {
    let top = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if top == 0.0 || !top.is_finite() {
        return (vec![0; values.len()], 0.0);
    }
    let band: Vec<i8> = values.iter().map(|v| (v / top * 127.0).round() as i8).collect();
    let norm = band.iter().map(|&v| f32::from(v) * f32::from(v)).sum::<f32>().sqrt();
    (band, norm)
}

/// Each output pixel's sources and weights along one axis of `from` pixels resampled to `to`:
/// the mean over its footprint when shrinking (no aliasing of fine keys), linear when growing.
fn weights(from: usize, to: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = from as f32 / to as f32;
    (0..to)
        .map(|o| {
            if scale >= 1.0 {
                let (lo, hi) = (o as f32 * scale, (o + 1) as f32 * scale);
                let mut taps = Vec::new();
                let mut i = lo.floor() as usize;
                while (i as f32) < hi && i < from {
                    let w = (hi.min(i as f32 + 1.0) - lo.max(i as f32)).max(0.0);
                    if w > 0.0 {
                        taps.push((i, w / scale));
                    }
                    i += 1;
                }
                taps
            } else {
                let f = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, (from - 1) as f32);
                let (i, t) = (f.floor() as usize, f.fract());
                vec![(i, 1.0 - t), ((i + 1).min(from - 1), t)]
            }
        })
        .collect()
}

/// A 3-channel image at `side × side`, channel-major.
fn resample(image: &Image, side: usize) -> Vec<f32> {
    let (h, w) = (image.height(), image.width());
    let (wx, wy) = (weights(w, side), weights(h, side));
    let plane = h * w;
    let mut out = vec![0f32; 3 * side * side];
    let mut rows = vec![0f32; h * side];
    for c in 0..3 {
        let p = &image.pixels()[c * plane..(c + 1) * plane];
        for y in 0..h {
            for (x, taps) in wx.iter().enumerate() {
                rows[y * side + x] = taps.iter().map(|&(i, t)| p[y * w + i] * t).sum();
            }
        }
        for (y, taps) in wy.iter().enumerate() {
            for x in 0..side {
                out[(c * side + y) * side + x] = taps.iter().map(|&(i, t)| rows[i * side + x] * t).sum();
            }
        }
    }
    out
}

/// A separable Gaussian blur of each `side × side` channel, edges clamped.
fn blur(values: &[f32], side: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let at = |i: isize| i.clamp(0, side as isize - 1) as usize;
    let mut half = vec![0f32; values.len()];
    let mut out = vec![0f32; values.len()];
    for plane in 0..values.len() / (side * side) {
        let base = plane * side * side;
        for y in 0..side {
            for x in 0..side {
                let s: f32 = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, g)| g * values[base + y * side + at(x as isize + k as isize - radius)])
                    .sum();
                half[base + y * side + x] = s / total;
            }
        }
        for y in 0..side {
            for x in 0..side {
                let s: f32 = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, g)| g * half[base + at(y as isize + k as isize - radius) * side + x])
                    .sum();
                out[base + y * side + x] = s / total;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_averages_the_footprint_and_growing_interpolates() {
        let image = Image::new(1, 2, 4, vec![0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]).unwrap().with_channels(3);
        let out = resample(&image, 2);
        assert!(out[..4].iter().all(|v| (v - 0.5).abs() < 1e-6), "{out:?}");
        let grown = resample(&Image::new(1, 1, 2, vec![0.0, 1.0]).unwrap().with_channels(3), 4);
        assert!(grown[..4].windows(2).all(|p| p[0] <= p[1] + 1e-6) && grown[0] < grown[3]);
    }

    #[test]
    fn a_flat_image_has_no_residual_and_a_textured_one_a_unit_one() {
        let flat = measure(&Image::new(3, 40, 50, vec![0.4; 6000]).unwrap(), &[16], 1.0);
        assert_eq!(flat.norms[0], 0.0);
        let pixels = (0..6000).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect();
        let textured = measure(&Image::new(3, 40, 50, pixels).unwrap(), &[16], 1.0);
        assert!(textured.norms[0] > 0.0);
        assert!((textured.cosine(&textured, 0) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_stored_residual_reads_back_as_it_was_and_a_cut_one_is_an_error() {
        let pixels = (0..3 * 70 * 90).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect();
        let r = measure(&Image::new(3, 70, 90, pixels).unwrap(), &[16, 64], 1.0);
        let bytes = r.encode();
        let back = Residuals::decode(&bytes).unwrap();
        assert_eq!((&back.bands, &back.norms, &back.content), (&r.bands, &r.norms, &r.content));
        assert!(back.bands.iter().any(|b| b.iter().any(|&v| v < 0)), "negative values survive");
        assert!(Residuals::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Residuals::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
    }

    #[test]
    fn the_dispatched_dot_is_the_exact_integer_dot() {
        for len in [0usize, 1, 31, 3 * 128 * 128] {
            let a: Vec<i8> = (0..len).map(|i| ((i * 7919) % 256) as u8 as i8).collect();
            let b: Vec<i8> = (0..len).map(|i| ((i * 104_729 + 13) % 256) as u8 as i8).collect();
            let exact: i64 = a.iter().zip(&b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
            assert_eq!(i64::from(dot_i8(&a, &b)), exact, "length {len}");
        }
        let extreme = vec![-128i8; 3 * 128 * 128];
        assert_eq!(i64::from(dot_i8(&extreme, &extreme)), 3 * 128 * 128 * 128 * 128);
    }
}
