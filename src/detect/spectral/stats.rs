//! Per image, how consistently each chroma DCT coefficient leans one way across the image's
//! windows: a frequency trigger added to every window (CTRL) moves its coefficients by the same
//! amount in each, while an image's own content moves them both ways.

use crate::image::Image;

/// A coefficient: chroma channel (0 Cr, 1 Cb), vertical and horizontal frequency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Coefficient {
    /// 0 for Cr, 1 for Cb.
    pub channel: u8,
    /// Vertical frequency.
    pub u: u8,
    /// Horizontal frequency.
    pub v: u8,
}

/// The orthonormal DCT-II basis of one window side, rows `lo..side` only (the frequencies looked
/// at).
pub(super) struct Basis {
    pub side: usize,
    pub lo: usize,
    /// `(side − lo) × side`, row `u − lo` the basis vector of frequency `u`.
    rows: Vec<f32>,
    /// The same, transposed: `side × (side − lo)`, row `x` every frequency's value at `x`.
    columns: Vec<f32>,
}

impl Basis {
    pub fn new(side: usize, lo: usize) -> Self {
        let n = side as f64;
        let mut rows = Vec::with_capacity((side - lo) * side);
        for u in lo..side {
            let scale = if u == 0 { (1.0 / n).sqrt() } else { (2.0 / n).sqrt() };
            for x in 0..side {
                rows.push((scale * (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2.0 * n)).cos()) as f32);
            }
        }
        let b = side - lo;
        let columns = (0..side * b).map(|i| rows[(i % b) * side + i / b]).collect();
        Basis { side, lo, rows, columns }
    }

    fn bands(&self) -> usize {
        self.side - self.lo
    }

    /// The coefficients `(u, v)`, both in `lo..side`, of a `side × side` window, row-major.
    /// With AVX2 (checked as it runs) the same loops are compiled twice as wide; every value is
    /// summed in the same order either way, so the coefficients are the same.
    fn transform(&self, window: &[f32], half: &mut [f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.transform_avx2(window, half, out) };
        }
        self.transform_body(window, half, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn transform_avx2(&self, window: &[f32], half: &mut [f32], out: &mut [f32]) {
        self.transform_body(window, half, out)
    }

    #[inline(always)]
    fn transform_body(&self, window: &[f32], half: &mut [f32], out: &mut [f32]) {
        let (s, b) = (self.side, self.bands());
        // Along rows first: half[y][v] = Σ_x window[y][x] · C[v][x], summed over x in order, with
        // v innermost so that the frequencies are summed side by side (a dot per v is one long
        // chain of dependent adds).
        for y in 0..s {
            let dst = &mut half[y * b..(y + 1) * b];
            dst.fill(0.0);
            for (x, &value) in window[y * s..(y + 1) * s].iter().enumerate() {
                for (d, c) in dst.iter_mut().zip(&self.columns[x * b..(x + 1) * b]) {
                    *d += value * c;
                }
            }
        }
        // Then down columns: out[u][v] = Σ_y C[u][y] · half[y][v].
        out.fill(0.0);
        for u in 0..b {
            let basis = &self.rows[u * s..(u + 1) * s];
            let dst = &mut out[u * b..(u + 1) * b];
            for (y, c) in basis.iter().enumerate() {
                for (d, h) in dst.iter_mut().zip(&half[y * b..(y + 1) * b]) {
                    *d += c * h;
                }
            }
        }
    }
}

/// The pattern as colour, one window of `side` with each pixel drawn `scale` times a side (the
/// trigger's frequencies are near the pixel pitch, which smooth resizing would grey out): each
/// coefficient's basis image times its weight, in Cr and Cb, back to RGB with no luma, stretched
/// to fill [0, 1] around grey.
pub(super) fn drawn(pattern: &[(Coefficient, f32)], side: usize, scale: usize) -> Option<Image> {
    let basis = Basis::new(side, 0);
    let row = |u: u8| &basis.rows[u as usize * side..(u as usize + 1) * side];
    let mut chroma = vec![vec![0.0f32; side * side]; 2];
    for (c, w) in pattern {
        let (cu, cv) = (row(c.u), row(c.v));
        for y in 0..side {
            for x in 0..side {
                chroma[usize::from(c.channel.min(1))][y * side + x] += w * cu[y] * cv[x];
            }
        }
    }
    // YCrCb to RGB with Y = 0 (OpenCV's factors): R = Cr / 0.713, B = Cb / 0.564.
    let rgb: Vec<[f32; 3]> = (0..side * side)
        .map(|i| {
            let (r, b) = (chroma[0][i] / 0.713, chroma[1][i] / 0.564);
            [r, -(0.299 * r + 0.114 * b) / 0.587, b]
        })
        .collect();
    let peak = rgb.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let n = side * scale;
    let mut pixels = vec![0.0; 3 * n * n];
    for c in 0..3 {
        for y in 0..n {
            for x in 0..n {
                pixels[(c * n + y) * n + x] = 0.5 + 0.5 * rgb[(y / scale) * side + x / scale][c] / peak;
            }
        }
    }
    Image::new(3, n, n, pixels).ok()
}

/// Cr and Cb of pixel `(y, x)` of an RGB image, on the 0–255 scale (OpenCV's formulas less their
/// constant offset, which moves no coefficient but (0, 0)).
fn chroma(image: &Image, y: usize, x: usize) -> [f32; 2] {
    let (r, g, b) = (image.get(0, y, x), image.get(1, y, x), image.get(2, y, x));
    let luma = 0.299 * r + 0.587 * g + 0.114 * b;
    [(r - luma) * 0.713 * 255.0, (b - luma) * 0.564 * 255.0]
}

/// Least standard deviation of a coefficient across windows, in levels of 255.
const SPREAD_FLOOR: f64 = 0.5;

/// The coefficients whose |t| reaches `keep_t`, with their t, for one image: every whole window of
/// `basis.side` from the top-left (at most `max_windows`, evenly strided), each chroma coefficient's
/// mean over the windows divided by its standard error. `None` for a grey image or one with fewer
/// than `min_windows` windows: there is nothing to measure.
pub(super) fn leaning(
    image: &Image,
    basis: &Basis,
    min_windows: usize,
    max_windows: usize,
    keep_t: f32,
) -> Option<Vec<(Coefficient, f32)>> {
    if image.channels() != 3 {
        return None;
    }
    let s = basis.side;
    let (rows, cols) = (image.height() / s, image.width() / s);
    let count = rows * cols;
    if count < min_windows.max(2) {
        return None;
    }
    let stride = count.div_ceil(max_windows.max(1));
    let b = basis.bands();
    let mut window = vec![vec![0.0f32; s * s]; 2];
    let mut half = vec![0.0f32; s * b];
    let mut coefs = vec![0.0f32; b * b];
    let mut sum = vec![vec![0.0f64; b * b]; 2];
    let mut squares = vec![vec![0.0f64; b * b]; 2];
    let mut n = 0usize;
    for k in (0..count).step_by(stride) {
        let (wy, wx) = (k / cols * s, k % cols * s);
        for y in 0..s {
            for x in 0..s {
                let [cr, cb] = chroma(image, wy + y, wx + x);
                window[0][y * s + x] = cr;
                window[1][y * s + x] = cb;
            }
        }
        for ch in 0..2 {
            basis.transform(&window[ch], &mut half, &mut coefs);
            for (i, &c) in coefs.iter().enumerate() {
                sum[ch][i] += f64::from(c);
                squares[ch][i] += f64::from(c) * f64::from(c);
            }
        }
        n += 1;
    }
    let mut out = Vec::new();
    for ch in 0..2 {
        for i in 0..b * b {
            let mean = sum[ch][i] / n as f64;
            let var = (squares[ch][i] / n as f64 - mean * mean).max(0.0) * n as f64 / (n - 1) as f64;
            // 8-bit storage alone spreads a coefficient by about 0.3 levels: a smaller spread is
            // a flat or synthetic image, whose lean is measured against that floor, not zero.
            let t = mean / (var.max(SPREAD_FLOOR * SPREAD_FLOOR) / n as f64).sqrt();
            if t.abs() >= f64::from(keep_t) {
                let coefficient =
                    Coefficient { channel: ch as u8, u: (basis.lo + i / b) as u8, v: (basis.lo + i % b) as u8 };
                out.push((coefficient, t as f32));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basis_is_orthonormal_and_a_pure_cosine_lands_on_its_coefficient() {
        let basis = Basis::new(8, 0);
        for u in 0..8 {
            for w in 0..8 {
                let dot: f32 = (0..8).map(|x| basis.rows[u * 8 + x] * basis.rows[w * 8 + x]).sum();
                assert!((dot - if u == w { 1.0 } else { 0.0 }).abs() < 1e-5, "{u} {w} {dot}");
            }
        }
        // The (3, 5) basis image, scaled by 7.
        let window: Vec<f32> = (0..64).map(|i| 7.0 * basis.rows[3 * 8 + i / 8] * basis.rows[5 * 8 + i % 8]).collect();
        let (mut half, mut out) = (vec![0.0; 64], vec![0.0; 64]);
        basis.transform(&window, &mut half, &mut out);
        for (i, c) in out.iter().enumerate() {
            assert!((c - if i == 3 * 8 + 5 { 7.0 } else { 0.0 }).abs() < 1e-4, "{i}: {c}");
        }
    }

    #[test]
    fn the_transform_is_each_coefficient_summed_in_order_exactly() {
        let basis = Basis::new(32, 8);
        let (s, b) = (32, 24);
        let window: Vec<f32> = (0..s * s).map(|i| ((i * 7919) % 255) as f32 - 127.0).collect();
        let (mut half, mut out) = (vec![0.0; s * b], vec![0.0; b * b]);
        basis.transform(&window, &mut half, &mut out);
        for y in 0..s {
            for v in 0..b {
                let direct: f32 = (0..s).map(|x| window[y * s + x] * basis.rows[v * s + x]).sum();
                assert_eq!(half[y * b + v], direct, "row {y}, frequency {v}");
            }
        }
        assert!(out.iter().any(|&c| c.abs() > 1.0), "the window has content at these frequencies");
    }

    #[test]
    fn grey_images_and_images_of_fewer_windows_are_not_measured() {
        let basis = Basis::new(32, 8);
        let grey = Image::new(1, 128, 128, vec![0.5; 128 * 128]).unwrap();
        assert!(leaning(&grey, &basis, 4, 256, 5.0).is_none());
        let cifar = Image::new(3, 32, 32, vec![0.5; 3 * 32 * 32]).unwrap();
        assert!(leaning(&cifar, &basis, 4, 256, 5.0).is_none(), "one window is no spread to measure against");
        let flat = Image::new(3, 128, 128, vec![0.5; 3 * 128 * 128]).unwrap();
        assert_eq!(leaning(&flat, &basis, 4, 256, 5.0), Some(Vec::new()), "a flat image leans nowhere");
    }
}
