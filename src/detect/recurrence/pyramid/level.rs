//! One pyramid level of an image: the RGB image box-averaged by an integer factor, with the
//! block sums every window's key and descriptor are read from in O(1).

use crate::image::Image;

/// Block means of a level by corner; see [`Level::block_map`].
pub struct BlockMap {
    height: usize,
    width: usize,
    values: Vec<f32>,
}

impl BlockMap {
    /// The means of the 2×2 blocks of `block` side at (`x`, `y`), as [`Level::block_means`]
    /// with grid 2 gives them.
    #[inline]
    pub fn key(&self, x: usize, y: usize, block: usize, out: &mut Vec<f32>) {
        out.clear();
        for c in 0..3 {
            let plane = &self.values[c * self.height * self.width..];
            for (dx, dy) in [(0, 0), (block, 0), (0, block), (block, block)] {
                out.push(plane[(y + dy) * self.width + x + dx]);
            }
        }
    }

    /// The `grid × grid` block means per channel of the window at (`x`, `y`) made of blocks of
    /// `block` side, as [`Level::block_means`] gives them.
    pub fn grid(&self, x: usize, y: usize, block: usize, grid: usize, out: &mut Vec<f32>) {
        out.clear();
        for c in 0..3 {
            let plane = &self.values[c * self.height * self.width..];
            for by in 0..grid {
                let row = &plane[(y + by * block) * self.width + x..];
                out.extend((0..grid).map(|bx| row[bx * block]));
            }
        }
    }
}

/// The levels of `image` at each of `factors` (`None` where smaller than `min_side`), each built
/// from the finest earlier level whose factor divides its own, so that the native pixels are
/// summed once rather than once a level.
pub fn levels(image: &Image, factors: &[usize], min_side: usize) -> Vec<Option<Level>> {
    let mut out: Vec<Option<Level>> = Vec::with_capacity(factors.len());
    for (i, &factor) in factors.iter().enumerate() {
        let finer = (0..i)
            .filter(|&j| factor % factors[j] == 0 && factors[j] < factor)
            .max_by_key(|&j| factors[j])
            .and_then(|j| out[j].as_ref().map(|l| (l, factor / factors[j])));
        let level = match finer {
            Some((level, by)) => level.coarser(by, min_side),
            None => Level::new(image, factor, min_side),
        };
        out.push(level);
    }
    out
}

/// An image reduced by `factor` (each level pixel the mean of `factor × factor` native pixels),
/// always three channels so that grey and colour images share one key space.
pub struct Level {
    pub height: usize,
    pub width: usize,
    /// `3 × height × width`, channel-major.
    pub pixels: Vec<f32>,
    /// Inclusive-prefix sums per channel, `3 × (height + 1) × (width + 1)`.
    sums: Vec<f64>,
}

impl Level {
    /// `image` reduced by `factor`; `None` when the level would be smaller than `min_side`.
    pub fn new(image: &Image, factor: usize, min_side: usize) -> Option<Level> {
        let (height, width) = (image.height() / factor, image.width() / factor);
        if height < min_side || width < min_side {
            return None;
        }
        let channels = image.channels();
        let planes = (0..3).map(|c| {
            // A grey image stands for all three channels.
            let source = c.min(channels - 1) * image.height() * image.width();
            &image.pixels()[source..source + image.height() * image.width()]
        });
        Some(Level::reduced(planes, image.width(), height, width, factor))
    }

    /// This level reduced again by `factor` (a level of `self`'s factor times `factor`); `None`
    /// when it would be smaller than `min_side`. The same means as from the image, from a
    /// factor² smaller source.
    pub fn coarser(&self, factor: usize, min_side: usize) -> Option<Level> {
        let (height, width) = (self.height / factor, self.width / factor);
        if height < min_side || width < min_side {
            return None;
        }
        let plane = self.height * self.width;
        let planes = (0..3).map(|c| &self.pixels[c * plane..(c + 1) * plane]);
        Some(Level::reduced(planes, self.width, height, width, factor))
    }

    /// Box means by `factor` of three planes `source_width` wide, into `height × width`.
    fn reduced<'a>(
        planes: impl Iterator<Item = &'a [f32]>,
        source_width: usize,
        height: usize,
        width: usize,
        factor: usize,
    ) -> Level {
        let area = (factor * factor) as f32;
        let mut pixels = vec![0.0f32; 3 * height * width];
        for (c, plane) in planes.enumerate() {
            for y in 0..height {
                let out = &mut pixels[(c * height + y) * width..(c * height + y + 1) * width];
                for dy in 0..factor {
                    let row = &plane[(y * factor + dy) * source_width..][..width * factor];
                    for (o, block) in out.iter_mut().zip(row.chunks_exact(factor)) {
                        *o += block.iter().sum::<f32>();
                    }
                }
                out.iter_mut().for_each(|v| *v /= area);
            }
        }
        Level::with_sums(height, width, pixels)
    }

    fn with_sums(height: usize, width: usize, pixels: Vec<f32>) -> Level {
        let (sh, sw) = (height + 1, width + 1);
        let mut sums = vec![0.0f64; 3 * sh * sw];
        for c in 0..3 {
            for y in 0..height {
                let mut row = 0.0f64;
                for x in 0..width {
                    row += f64::from(pixels[(c * height + y) * width + x]);
                    sums[(c * sh + y + 1) * sw + x + 1] = sums[(c * sh + y) * sw + x + 1] + row;
                }
            }
        }
        Level { height, width, pixels, sums }
    }

    /// Mean of channel `c` over the `side × side` block at (`x`, `y`).
    #[inline]
    pub fn block_mean(&self, c: usize, x: usize, y: usize, side: usize) -> f32 {
        let sw = self.width + 1;
        let base = c * (self.height + 1) * sw;
        let at = |yy: usize, xx: usize| self.sums[base + yy * sw + xx];
        let sum = at(y + side, x + side) - at(y, x + side) - at(y + side, x) + at(y, x);
        (sum / (side * side) as f64) as f32
    }

    /// The window's `grid × grid` block means per channel, `3 × grid × grid` values: the key
    /// (grid 2) and the descriptor (grid 4) of the `side` window at (`x`, `y`).
    pub fn block_means(&self, x: usize, y: usize, side: usize, grid: usize, out: &mut Vec<f32>) {
        out.clear();
        let block = side / grid;
        for c in 0..3 {
            for by in 0..grid {
                for bx in 0..grid {
                    out.push(self.block_mean(c, x + bx * block, y + by * block, block));
                }
            }
        }
    }

    /// The mean of every `block × block` block, by its corner: `3 × (height − block + 1) ×
    /// (width − block + 1)`. The index reads a key's four blocks from here instead of the sums,
    /// as each block is shared by four windows.
    pub fn block_map(&self, block: usize) -> BlockMap {
        let (height, width) = ((self.height + 1).saturating_sub(block), (self.width + 1).saturating_sub(block));
        let mut values = Vec::with_capacity(3 * height * width);
        for c in 0..3 {
            for y in 0..height {
                values.extend((0..width).map(|x| self.block_mean(c, x, y, block)));
            }
        }
        BlockMap { height, width, values }
    }

    /// The window's level pixels, `3 × side × side`.
    pub fn window(&self, x: usize, y: usize, side: usize, out: &mut Vec<f32>) {
        out.clear();
        for c in 0..3 {
            for row in y..y + side {
                let start = (c * self.height + row) * self.width + x;
                out.extend_from_slice(&self.pixels[start..start + side]);
            }
        }
    }
}

/// How far the blocks of a key differ: the standard deviation over its blocks, averaged over
/// channels. A window whose blocks are all alike carries no pattern and collides with every
/// other flat or smooth window.
pub fn spread(key: &[f32]) -> f32 {
    let per = key.len() / 3;
    let mut total = 0.0;
    for c in key.chunks(per) {
        let mean = c.iter().sum::<f32>() / per as f32;
        total += (c.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / per as f32).sqrt();
    }
    total / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_map_gives_the_keys_the_sums_give() {
        let pixels: Vec<f32> = (0..3 * 21 * 17).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect();
        let level = Level::new(&Image::new(3, 21, 17, pixels).unwrap(), 1, 8).unwrap();
        let map = level.block_map(4);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (x, y) in [(0, 0), (9, 13), (3, 5)] {
            level.block_means(x, y, 8, 2, &mut a);
            map.key(x, y, 4, &mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn levels_built_from_finer_levels_equal_levels_from_the_image() {
        let pixels: Vec<f32> = (0..3 * 37 * 53).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect();
        let image = Image::new(3, 37, 53, pixels).unwrap();
        let built = levels(&image, &[2, 4, 8, 3], 2);
        for (level, factor) in built.iter().zip([2, 4, 8, 3]) {
            let (level, direct) = (level.as_ref().unwrap(), Level::new(&image, factor, 2).unwrap());
            assert_eq!((level.height, level.width), (direct.height, direct.width));
            let worst = level.pixels.iter().zip(&direct.pixels).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "factor {factor}: {worst}");
        }
        assert!(levels(&image, &[2, 32], 2)[1].is_none());
    }

    #[test]
    fn a_level_averages_blocks_and_its_sums_agree() {
        let pixels: Vec<f32> = (0..3 * 8 * 12).map(|i| (i % 17) as f32 / 17.0).collect();
        let image = Image::new(3, 8, 12, pixels).unwrap();
        let level = Level::new(&image, 2, 2).unwrap();
        assert_eq!((level.height, level.width), (4, 6));
        let direct = (image.get(1, 2, 4) + image.get(1, 2, 5) + image.get(1, 3, 4) + image.get(1, 3, 5)) / 4.0;
        assert!((level.pixels[(4 + 1) * 6 + 2] - direct).abs() < 1e-6);
        let mean: f32 = (1..3)
            .flat_map(|y| (2..4).map(move |x| (y, x)))
            .map(|(y, x)| level.pixels[(2 * 4 + y) * 6 + x])
            .sum::<f32>()
            / 4.0;
        assert!((level.block_mean(2, 2, 1, 2) - mean).abs() < 1e-5);
        assert!(Level::new(&image, 4, 3).is_none(), "2×3 is below the smallest side");
    }

    #[test]
    fn grey_stands_for_every_channel_and_flat_keys_have_no_spread() {
        let image = Image::new(1, 4, 4, vec![0.25; 16]).unwrap();
        let level = Level::new(&image, 1, 1).unwrap();
        assert!(level.pixels.iter().all(|&v| v == 0.25));
        let mut key = Vec::new();
        level.block_means(0, 0, 4, 2, &mut key);
        assert_eq!(key.len(), 12);
        assert_eq!(spread(&key), 0.0);
        assert!(spread(&[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]) > 0.4);
    }
}
