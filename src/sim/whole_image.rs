//! Triggers without a patch, each per its published recipe (for evaluation only): CTRL's
//! frequency trigger, a blended key (an image or a fixed noise), SIG's sinusoid and a fixed
//! additive perturbation bounded per pixel. Each changes the whole image, so a poison's truth
//! box is the whole image.
//!
//! Pixel values follow the recipes' 8-bit arithmetic: the image is taken to 0–255, changed,
//! rounded and clamped back, as the reference code's `uint8` output is.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::Image;

/// The key a blend attack mixes in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BlendKey {
    /// Uniform noise in [0, 1] from `seed`, drawn once at the first image's size and resized to
    /// each image (one key for every poison).
    Noise {
        /// Seeds the noise.
        seed: u64,
    },
    /// An image file (Chen et al. used Hello Kitty), resized to each image.
    File(PathBuf),
}

/// A trigger that covers the whole image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WholeImageTrigger {
    /// CTRL (Li et al. 2023): RGB → YCrCb (OpenCV's 8-bit conversion), the image cut into
    /// 32 × 32 windows from the top-left (a remainder untouched), an orthonormal 2-D DCT per
    /// window, `+magnitude` at (15, 15) and (31, 31) in Cr and Cb, the inverse DCT, back to RGB.
    /// Grey images are taken as RGB with three equal channels and given back in colour.
    Ctrl {
        /// Added to each trigger coefficient (50 in the paper, 100 in its code).
        magnitude: f32,
    },
    /// Blended (Chen et al. 2017): `x' = (1 − α)·x + α·k`.
    Blend {
        /// The key `k`.
        key: BlendKey,
        /// Its weight α (0.2 is the common default, 0.1 a stealthier one).
        alpha: f32,
    },
    /// SIG (Barni et al. 2019): `x' = x + Δ·sin(2π·j·f / W)` along the columns `j`.
    Sig {
        /// Δ, in 8-bit levels (20).
        delta: f32,
        /// f, periods across the width (6).
        frequency: f32,
    },
    /// A fixed pattern of ±`bound` levels per pixel (drawn once from `seed`, resized to each
    /// image): a stand-in for an optimised universal perturbation.
    Perturbation {
        /// The most a pixel moves, in 8-bit levels (8).
        bound: f32,
        /// Seeds the pattern.
        seed: u64,
    },
}

/// CTRL's window side and the coefficients it raises.
const CTRL_WINDOW: usize = 32;
const CTRL_POSITIONS: [(usize, usize); 2] = [(15, 15), (31, 31)];

impl WholeImageTrigger {
    /// Checks the settings' ranges.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Attack(what.to_string()));
        match self {
            Self::Ctrl { magnitude } if !magnitude.is_finite() => bad("the CTRL magnitude must be finite"),
            Self::Blend { alpha, .. } if !(*alpha > 0.0 && *alpha <= 1.0) => bad("the blend α must be in (0, 1]"),
            Self::Sig { delta, frequency } if !(delta.is_finite() && *frequency > 0.0 && frequency.is_finite()) => {
                bad("SIG needs a finite Δ and a positive frequency")
            }
            Self::Perturbation { bound, .. } if !(*bound > 0.0 && bound.is_finite()) => {
                bad("the perturbation bound must be positive")
            }
            _ => Ok(()),
        }
    }

    /// What the attacker adds to every poison, fixed once for a run: the key or the pattern at
    /// `[channels, height, width]` of the first image (resized to others).
    pub fn prepare(&self, shape: [usize; 3]) -> Result<Prepared> {
        let [c, h, w] = shape;
        let pattern = match self {
            Self::Blend { key: BlendKey::Noise { seed }, .. } => Some(noise(*seed, shape, |r| r.random::<f32>())),
            Self::Blend { key: BlendKey::File(path), .. } => {
                Some(crate::data::decode_file(path)?.with_channels(c).resized(h, w))
            }
            Self::Perturbation { bound, seed } => {
                let step = bound / 255.0;
                Some(noise(*seed, shape, |r| if r.random::<bool>() { step } else { -step }))
            }
            Self::Ctrl { .. } | Self::Sig { .. } => None,
        };
        Ok(Prepared { trigger: self.clone(), pattern })
    }
}

impl WholeImageTrigger {
    /// The trigger drawn for images shaped like `first`, with a picture of it (its key or
    /// pattern, or for CTRL and SIG the trigger on a mid-grey image).
    pub fn drawn_for(&self, first: &Image) -> Result<(Prepared, Image)> {
        let shape = [first.channels(), first.height(), first.width()];
        let prepared = self.prepare(shape)?;
        let shown = match prepared.pattern() {
            Some(pattern) => pattern.clone(),
            None => prepared.apply(&Image::new(shape[0], shape[1], shape[2], vec![0.5; shape.iter().product()])?),
        };
        Ok((prepared, shown))
    }
}

#[doc(hidden)]
/// A trigger with its fixed key or pattern drawn.
#[derive(Clone, Debug)]
pub struct Prepared {
    trigger: WholeImageTrigger,
    pattern: Option<Image>,
}

impl Prepared {
    /// The key or pattern (none for CTRL and SIG), for pictures of the attack.
    pub fn pattern(&self) -> Option<&Image> {
        self.pattern.as_ref()
    }

    /// `image` with the trigger applied.
    pub fn apply(&self, image: &Image) -> Image {
        let (h, w) = (image.height(), image.width());
        let fitted = |p: &Image| {
            let p = p.with_channels(image.channels());
            if (p.height(), p.width()) == (h, w) {
                p
            } else {
                p.resized(h, w)
            }
        };
        let eight_bit = |values: Vec<f32>, channels: usize| {
            let pixels = values.into_iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) / 255.0).collect();
            Image::new(channels, h, w, pixels).expect("the shape is the image's")
        };
        match &self.trigger {
            WholeImageTrigger::Ctrl { magnitude } => eight_bit(ctrl(image, *magnitude), 3),
            WholeImageTrigger::Blend { alpha, .. } => {
                let key = fitted(self.pattern.as_ref().expect("drawn by prepare"));
                let mixed = image.pixels().iter().zip(key.pixels()).map(|(x, k)| (1.0 - alpha) * x + alpha * k);
                eight_bit(mixed.collect(), image.channels())
            }
            WholeImageTrigger::Perturbation { .. } => {
                let pattern = fitted(self.pattern.as_ref().expect("drawn by prepare"));
                eight_bit(image.pixels().iter().zip(pattern.pixels()).map(|(x, d)| x + d).collect(), image.channels())
            }
            WholeImageTrigger::Sig { delta, frequency } => {
                let wave: Vec<f32> = (0..w)
                    .map(|j| delta / 255.0 * (2.0 * std::f32::consts::PI * j as f32 * frequency / w as f32).sin())
                    .collect();
                let pixels = image.pixels().iter().enumerate().map(|(i, x)| x + wave[i % w]).collect();
                eight_bit(pixels, image.channels())
            }
        }
    }
}

fn noise(seed: u64, [c, h, w]: [usize; 3], mut draw: impl FnMut(&mut StdRng) -> f32) -> Image {
    let mut rng = StdRng::seed_from_u64(seed);
    Image::new(c, h, w, (0..c * h * w).map(|_| draw(&mut rng)).collect()).expect("the shape is given")
}

/// CTRL on `image`: the RGB values (0–1) of the result, before rounding.
fn ctrl(image: &Image, magnitude: f32) -> Vec<f32> {
    let rgb = image.with_channels(3);
    let (h, w) = (rgb.height(), rgb.width());
    let plane = h * w;
    let p = rgb.pixels();
    // OpenCV's COLOR_RGB2YCrCb for 8-bit values: Y, then Cr and Cb around 128.
    let mut ycc = vec![0f32; 3 * plane];
    for i in 0..plane {
        let (r, g, b) = (p[i] * 255.0, p[plane + i] * 255.0, p[2 * plane + i] * 255.0);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        ycc[i] = y;
        ycc[plane + i] = (r - y) * 0.713 + 128.0;
        ycc[2 * plane + i] = (b - y) * 0.564 + 128.0;
    }
    let basis = dct_basis(CTRL_WINDOW);
    for channel in 1..3 {
        let values = &mut ycc[channel * plane..(channel + 1) * plane];
        for top in (0..h / CTRL_WINDOW).map(|k| k * CTRL_WINDOW) {
            for left in (0..w / CTRL_WINDOW).map(|k| k * CTRL_WINDOW) {
                raise_window(values, w, top, left, &basis, magnitude);
            }
        }
    }
    let mut out = vec![0f32; 3 * plane];
    for i in 0..plane {
        let (y, cr, cb) = (ycc[i], ycc[plane + i] - 128.0, ycc[2 * plane + i] - 128.0);
        out[i] = (y + 1.403 * cr) / 255.0;
        out[plane + i] = (y - 0.714 * cr - 0.344 * cb) / 255.0;
        out[2 * plane + i] = (y + 1.773 * cb) / 255.0;
    }
    out
}

/// The orthonormal DCT-II matrix of side `n`: row `u` is basis function `u`.
fn dct_basis(n: usize) -> Vec<f32> {
    let mut m = vec![0f32; n * n];
    for u in 0..n {
        let scale = if u == 0 { (1.0 / n as f64).sqrt() } else { (2.0 / n as f64).sqrt() };
        for x in 0..n {
            m[u * n + x] =
                (scale * (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * n) as f64).cos()) as f32;
        }
    }
    m
}

/// Adds `magnitude` at CTRL's coefficients of one window. The DCT is linear and orthonormal, so
/// raising coefficient (u, v) adds `magnitude · b_u(y) · b_v(x)` to the window's pixels: the
/// forward and inverse transforms need not be computed.
fn raise_window(values: &mut [f32], width: usize, top: usize, left: usize, basis: &[f32], magnitude: f32) {
    let n = CTRL_WINDOW;
    for (u, v) in CTRL_POSITIONS {
        for y in 0..n {
            let row = &mut values[(top + y) * width + left..][..n];
            let by = basis[u * n + y] * magnitude;
            for (x, value) in row.iter_mut().enumerate() {
                *value += by * basis[v * n + x];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2-D DCT coefficient (u, v) of a window, by the definition.
    fn coefficient(values: &[f32], width: usize, top: usize, left: usize, (u, v): (usize, usize)) -> f32 {
        let basis = dct_basis(CTRL_WINDOW);
        let n = CTRL_WINDOW;
        (0..n)
            .flat_map(|y| (0..n).map(move |x| (y, x)))
            .map(|(y, x)| values[(top + y) * width + left + x] * basis[u * n + y] * basis[v * n + x])
            .sum()
    }

    fn textured(c: usize, h: usize, w: usize) -> Image {
        let mut rng = StdRng::seed_from_u64(3);
        // 8-bit values, as decoded files hold.
        let levels = (0..c * h * w).map(|_| (rng.random::<f32>() * 150.0 + 50.0).round() / 255.0);
        Image::new(c, h, w, levels.collect()).unwrap()
    }

    /// Cr of an RGB image (0–255 levels), as CTRL converts it.
    fn cr(image: &Image) -> Vec<f32> {
        let plane = image.height() * image.width();
        let p = image.pixels();
        (0..plane)
            .map(|i| {
                let (r, g, b) = (p[i] * 255.0, p[plane + i] * 255.0, p[2 * plane + i] * 255.0);
                (r - (0.299 * r + 0.587 * g + 0.114 * b)) * 0.713 + 128.0
            })
            .collect()
    }

    #[test]
    fn ctrl_raises_its_two_chroma_coefficients_in_every_whole_window_and_nothing_beyond() {
        // 70 × 100: two rows of three whole windows, and remainders of 6 rows and 4 columns.
        let clean = textured(3, 70, 100);
        let trigger = WholeImageTrigger::Ctrl { magnitude: 100.0 };
        let poisoned = trigger.prepare([3, 70, 100]).unwrap().apply(&clean);
        let (before, after) = (cr(&clean), cr(&poisoned));
        for (top, left) in [(0, 0), (0, 64), (32, 32)] {
            for position in CTRL_POSITIONS {
                let raised =
                    coefficient(&after, 100, top, left, position) - coefficient(&before, 100, top, left, position);
                // Rounding to 8 bits moves a coefficient by a few levels at most.
                assert!((raised - 100.0).abs() < 6.0, "window ({top}, {left}) {position:?}: +{raised}");
            }
            let other = coefficient(&after, 100, top, left, (3, 7)) - coefficient(&before, 100, top, left, (3, 7));
            assert!(other.abs() < 6.0, "an untouched coefficient moved by {other}");
        }
        // The remainder is untouched but for OpenCV's colour round trip and rounding.
        for c in 0..3 {
            for y in 64..70 {
                for x in 0..100 {
                    assert!(
                        (clean.get(c, y, x) - poisoned.get(c, y, x)).abs() <= 1.0 / 255.0 + 1e-6,
                        "({c}, {y}, {x})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_blend_is_the_weighted_mean_with_one_key_for_every_image() {
        let trigger = WholeImageTrigger::Blend { key: BlendKey::Noise { seed: 9 }, alpha: 0.2 };
        let prepared = trigger.prepare([1, 20, 20]).unwrap();
        let key = prepared.pattern().unwrap().clone();
        for image in [textured(1, 20, 20), Image::new(1, 20, 20, vec![0.5; 400]).unwrap()] {
            let out = prepared.apply(&image);
            for i in 0..400 {
                let expected = 0.8 * image.pixels()[i] + 0.2 * key.pixels()[i];
                assert!((out.pixels()[i] - expected).abs() <= 0.5 / 255.0 + 1e-6);
            }
        }
    }

    #[test]
    fn sig_adds_one_sinusoid_along_the_columns() {
        let flat = Image::new(1, 4, 60, vec![0.5; 240]).unwrap();
        let out = WholeImageTrigger::Sig { delta: 20.0, frequency: 6.0 }.prepare([1, 4, 60]).unwrap().apply(&flat);
        for y in 0..4 {
            for x in 0..60 {
                let wave = 20.0 * (2.0 * std::f32::consts::PI * x as f32 * 6.0 / 60.0).sin();
                assert!(((out.get(0, y, x) - 0.5) * 255.0 - wave).abs() <= 0.51, "({y}, {x})");
            }
        }
    }

    #[test]
    fn a_perturbation_moves_no_pixel_past_its_bound_and_is_the_same_for_every_image() {
        let prepared = WholeImageTrigger::Perturbation { bound: 8.0, seed: 1 }.prepare([3, 16, 16]).unwrap();
        let (a, b) = (textured(3, 16, 16), Image::new(3, 16, 16, vec![128.0 / 255.0; 768]).unwrap());
        let (pa, pb) = (prepared.apply(&a), prepared.apply(&b));
        for i in 0..768 {
            let (da, db) = ((pa.pixels()[i] - a.pixels()[i]) * 255.0, (pb.pixels()[i] - b.pixels()[i]) * 255.0);
            assert!(da.abs() <= 8.5 && db.abs() <= 8.5);
            assert!((db.abs() - 8.0).abs() < 0.01, "on grey 128 the step is exactly ±8 levels");
        }
    }

    #[test]
    fn settings_out_of_range_are_errors() {
        assert!(WholeImageTrigger::Blend { key: BlendKey::Noise { seed: 0 }, alpha: 0.0 }.check().is_err());
        assert!(WholeImageTrigger::Sig { delta: 20.0, frequency: 0.0 }.check().is_err());
        assert!(WholeImageTrigger::Perturbation { bound: f32::NAN, seed: 0 }.check().is_err());
        assert!(WholeImageTrigger::Ctrl { magnitude: 50.0 }.check().is_ok());
    }
}
