//! The index pass: every window of every level, at stride 1, gets a coarse key (its 2×2 block
//! means per channel, centred on the channel's mean and quantised into wide cells, in several
//! offset tables) and a 32-bit signature of its finer 4×4 block means. One key in
//! `sample_every` is kept, chosen by the key itself, so copies of one patch keep the same keys
//! wherever they sit; an image's keys are deduplicated and capped. Buckets of one key whose
//! signatures gather tightly around one window are the cores a patch is verified from.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::level::{levels, spread};
use super::params::PyramidConfig;
use crate::image::Image;

/// One indexed window: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The window's key (which cell in which table), hashed.
    pub key: u32,
    /// Row of its image.
    pub image: u32,
    /// Level index (4 bits), x and y in level pixels (14 bits each).
    pub place: u32,
    /// Sign bits of the centred descriptor on 32 fixed directions.
    pub signature: u32,
}

/// Where a window sits: level index, x, y in level pixels.
pub fn unpack(place: u32) -> (usize, usize, usize) {
    ((place >> 28) as usize, ((place >> 14) & 0x3fff) as usize, (place & 0x3fff) as usize)
}

pub(super) fn pack(level: usize, x: usize, y: usize) -> u32 {
    ((level as u32) << 28) | ((x as u32) << 14) | y as u32
}

/// The fixed randomness of one run: cell offsets per table and signature directions.
pub struct Tables {
    offsets: Vec<[f32; 12]>,
    directions: Vec<[f32; 48]>,
}

impl Tables {
    pub fn new(config: &PyramidConfig, seed: u64) -> Tables {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
        let offsets = (0..config.tables)
            .map(|t| std::array::from_fn(|_| if t == 0 { 0.0 } else { rng.random::<f32>() * config.cell }))
            .collect();
        // Gaussian directions by Box–Muller, so that the sign bits split angles evenly.
        let mut gauss = || {
            let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        };
        let directions = (0..32).map(|_| std::array::from_fn(|_| gauss())).collect();
        Tables { offsets, directions }
    }

    fn signature(&self, descriptor: &[f32]) -> u32 {
        let mut centred = [0.0f32; 48];
        for (c, chunk) in descriptor.chunks(16).enumerate() {
            let mean = chunk.iter().sum::<f32>() / 16.0;
            for (j, v) in chunk.iter().enumerate() {
                centred[c * 16 + j] = v - mean;
            }
        }
        let mut bits = 0u32;
        for (b, d) in self.directions.iter().enumerate() {
            let dot: f32 = d.iter().zip(&centred).map(|(a, b)| a * b).sum();
            bits |= u32::from(dot > 0.0) << b;
        }
        bits
    }
}

/// FNV-1a over the table and the key's cells, then a finaliser so that the low bits sample well.
fn key_hash(table: usize, key: &[f32], offsets: &[f32; 12], cell: f32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ table as u64;
    for (v, o) in key.iter().zip(offsets) {
        // The floor without a call to `floorf`, which the baseline x86-64 target cannot inline.
        let q = (v + o) / cell;
        let c = q as i32 - i32::from((q as i32) as f32 > q);
        for byte in c.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// Subtracts from each channel's block means their mean. A trigger blended over a background
/// that is smooth under one window is shifted by one offset per channel, which changes with the
/// image; its copies share the gain (the opacity), so the centred means agree. Measured on the
/// kept-aside photos, trigger 13 at 80% opacity: recall 0.00 with raw means, 0.97 centred, and
/// the opaque trigger gained too (0.97 to 1.00; docs/recurrence.md, 2026-12-01).
fn centre(key: &mut [f32]) {
    for channel in key.chunks_mut(4) {
        let mean = channel.iter().sum::<f32>() / 4.0;
        channel.iter_mut().for_each(|v| *v -= mean);
    }
}

/// What indexing one image gave: its entries and how many windows it looked at.
pub struct Indexed {
    pub entries: Vec<Entry>,
    pub windows: usize,
}

/// Indexes every window of `image` (row `row`).
pub fn index_image(image: &Image, row: u32, config: &PyramidConfig, tables: &Tables) -> Indexed {
    let side = config.window;
    let (mut key, mut descriptor) = (Vec::with_capacity(12), Vec::with_capacity(48));
    let mut found: Vec<(u64, u32, u32)> = Vec::new();
    let mut windows = 0;
    for (li, level) in levels(image, &config.factors, side).into_iter().enumerate() {
        let Some(level) = level else { continue };
        let map = level.block_map(side / 2);
        for y in 0..=(level.height - side).min(0x3fff) {
            for x in 0..=(level.width - side).min(0x3fff) {
                map.key(x, y, side / 2, &mut key);
                windows += 1;
                if spread(&key) < config.min_spread {
                    continue;
                }
                centre(&mut key);
                let mut signature = None;
                for (t, offsets) in tables.offsets.iter().enumerate() {
                    let hash = key_hash(t, &key, offsets, config.cell);
                    if hash % u64::from(config.sample_every) != 0 {
                        continue;
                    }
                    let sig = *signature.get_or_insert_with(|| {
                        level.block_means(x, y, side, 4, &mut descriptor);
                        tables.signature(&descriptor)
                    });
                    found.push(((hash >> 32) ^ (hash & 0xffff_ffff), pack(li, x, y), sig));
                }
            }
        }
    }
    // One entry per key and image (the first window met); the smallest keys when there are too
    // many, which every image prefers alike.
    found.sort_by_key(|&(k, place, _)| (k, place));
    found.dedup_by_key(|e| e.0);
    found.truncate(config.max_entries_per_image);
    let entries = found
        .into_iter()
        .map(|(key, place, signature)| Entry { key: key as u32, image: row, place, signature })
        .collect();
    Indexed { entries, windows }
}

/// A bucket's windows that lie tightly around one of them, and how many lay a little further.
#[derive(Clone, Debug, PartialEq)]
pub struct Core {
    /// The entries near the mode, one per image, by image.
    pub entries: Vec<Entry>,
    /// Entries within the outer signature radius but not the inner one.
    pub halo: usize,
}

/// Signatures of a bucket tried as its mode; enough to hit a copy in a bucket that is mostly
/// copies.
const MODE_SAMPLES: usize = 24;

/// The cores of every bucket of `entries` (sorted here by key, then image) with between
/// `min_images` and `max_images` images.
pub fn cores(
    entries: &mut [Entry],
    min_images: usize,
    max_images: usize,
    max_halo: f64,
    config: &PyramidConfig,
) -> Vec<Core> {
    entries.sort_unstable_by_key(|e| (e.key, e.image, e.place));
    entries
        .chunk_by(|a, b| a.key == b.key)
        .filter_map(|b| core_of(b, min_images, max_images, max_halo, config))
        .collect()
}

/// The core of one bucket (one key's entries, sorted by image, then place), if it has between
/// `min_images` and `max_images` entries that gather around one signature with a small enough
/// halo.
pub fn core_of(
    bucket: &[Entry],
    min_images: usize,
    max_images: usize,
    max_halo: f64,
    config: &PyramidConfig,
) -> Option<Core> {
    if bucket.len() < min_images || bucket.len() > max_images {
        return None;
    }
    let near = |mode: u32, radius: u32| bucket.iter().filter(move |e| (e.signature ^ mode).count_ones() <= radius);
    let step = (bucket.len() / MODE_SAMPLES).max(1);
    let mode = bucket
        .iter()
        .step_by(step)
        .take(MODE_SAMPLES)
        .map(|e| e.signature)
        .max_by_key(|&m| (near(m, config.signature_radius).count(), std::cmp::Reverse(m)))?;
    let inner: Vec<Entry> = near(mode, config.signature_radius).copied().collect();
    let outer = near(mode, config.signature_outer).count();
    let halo = outer - inner.len();
    (inner.len() >= min_images && halo as f64 <= max_halo * inner.len() as f64).then_some(Core { entries: inner, halo })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: u64, channels: usize, h: usize, w: usize) -> Image {
        let mut rng = StdRng::seed_from_u64(seed);
        Image::new(channels, h, w, (0..channels * h * w).map(|_| rng.random::<f32>()).collect()).unwrap()
    }

    #[test]
    fn places_round_trip_and_an_image_keeps_each_key_once() {
        assert_eq!(unpack(pack(3, 16383, 7)), (3, 16383, 7));
        let config = PyramidConfig::new().with_factors(vec![1]).with_sample_every(1);
        let tables = Tables::new(&config, 0);
        let indexed = index_image(&noise(1, 3, 20, 20), 4, &config, &tables);
        assert_eq!(indexed.windows, 13 * 13);
        let mut keys: Vec<u32> = indexed.entries.iter().map(|e| e.key).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
        assert!(indexed.entries.iter().all(|e| e.image == 4));
    }

    /// Random colours in 4×4 tiles: block means that differ, as a pattern's do.
    fn tiles(seed: u64, h: usize, w: usize) -> Image {
        let mut rng = StdRng::seed_from_u64(seed);
        let (th, tw) = (h.div_ceil(4), w.div_ceil(4));
        let colours: Vec<f32> = (0..3 * th * tw).map(|_| rng.random::<f32>()).collect();
        let pixels = (0..3 * h * w).map(|i| colours[((i / (h * w)) * th + (i / w) % h / 4) * tw + i % w / 4]).collect();
        Image::new(3, h, w, pixels).unwrap()
    }

    #[test]
    fn copies_of_a_patch_share_keys_wherever_they_sit() {
        let config =
            PyramidConfig::new().with_factors(vec![1]).with_sample_every(1).with_max_entries_per_image(usize::MAX);
        let tables = Tables::new(&config, 0);
        let patch = tiles(9, 12, 12);
        let keys = |seed: u64, x: usize, y: usize| {
            let mut image = tiles(seed, 40, 40);
            image.paste(&patch, x, y);
            let mut k: Vec<u32> = index_image(&image, 0, &config, &tables).entries.iter().map(|e| e.key).collect();
            k.sort_unstable();
            k
        };
        let (a, b) = (keys(1, 3, 5), keys(2, 21, 18));
        let shared = a.iter().filter(|k| b.binary_search(k).is_ok()).count();
        // The 5×5 windows inside the patch, in every table (a few coincide within one image).
        assert!(shared >= 20 * config.tables, "{shared}");
        let other = keys(3, 30, 30);
        let unrelated = keys(4, 28, 1).iter().filter(|k| other.binary_search(k).is_ok()).count();
        assert!(unrelated < shared / 2, "{unrelated} against {shared}");
    }

    #[test]
    fn blended_copies_over_different_backgrounds_share_keys() {
        let config =
            PyramidConfig::new().with_factors(vec![1]).with_sample_every(1).with_max_entries_per_image(usize::MAX);
        let tables = Tables::new(&config, 0);
        let patch = tiles(9, 12, 12);
        // 80% opacity over a flat background of a different colour in each image.
        let keys = |background: [f32; 3]| {
            let pixels = patch.pixels().iter().enumerate().map(|(i, v)| 0.8 * v + 0.2 * background[i / 144]).collect();
            let image = Image::new(3, 12, 12, pixels).unwrap();
            let mut k: Vec<u32> = index_image(&image, 0, &config, &tables).entries.iter().map(|e| e.key).collect();
            k.sort_unstable();
            k
        };
        let (a, b) = (keys([0.9, 0.1, 0.5]), keys([0.1, 0.8, 0.2]));
        let shared = a.iter().filter(|k| b.binary_search(k).is_ok()).count();
        assert!(shared * 2 >= a.len().min(b.len()), "{shared} of {} keys", a.len());
    }

    #[test]
    fn a_bucket_of_copies_is_a_core_and_a_spread_bucket_is_not() {
        let config = PyramidConfig::new();
        let entry = |image: u32, signature: u32| Entry { key: 7, image, place: 0, signature };
        let mut copies: Vec<Entry> = (0..10).map(|i| entry(i, 0xf0f0_f0f0 ^ (1 << (i % 3)))).collect();
        let found = cores(&mut copies, 5, 100, 0.25, &config);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entries.len(), 10);
        let mut rng = StdRng::seed_from_u64(3);
        let mut spread_out: Vec<Entry> = (0..10).map(|i| entry(i, rng.random::<u32>())).collect();
        assert!(cores(&mut spread_out, 5, 100, 0.25, &config).is_empty());
    }
}
