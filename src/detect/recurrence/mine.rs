//! Candidate mining: hash every textured window into coarse buckets, then keep the buckets whose
//! images mostly sit around one window. A trigger's copies fill their bucket; a natural bucket
//! spreads over its whole cell.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use super::hyperparams::RecurrenceConfig;
use super::island::island;
use super::windows::{corners, distance2_below, flat_share, read_window, texture, Corner};
use crate::image::Image;

/// A window that recurs, found by mining, not yet tested against every image.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub side: usize,
    /// The densest window of its bucket, `C×side×side` values.
    pub template: Vec<f32>,
    /// The distinct images with a window within the match radius of the template, in the bucket.
    pub images: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    image: u32,
    corner: Corner,
}

/// Windows of one side that were hashed, and the candidates they gave.
pub struct Mined {
    pub windows: usize,
    pub candidates: Vec<Candidate>,
}

/// Candidates of one window side from every table, most supported first.
pub fn mine(images: &[Image], side: usize, config: &RecurrenceConfig) -> Mined {
    let stride = (side / 4).max(1);
    let mut candidates = Vec::new();
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x7ec0 ^ side as u64);
    let dim = images.first().map_or(0, |i| i.channels()) * side * side;
    // Which windows are textured does not depend on the table: found once for all of them.
    let textured = textured_windows(images, side, stride, config);
    for table in 0..config.tables {
        // Table 0 uses the plain grid; the others shift it so that a split bucket meets again.
        let offsets: Vec<f32> =
            (0..dim).map(|_| if table == 0 { 0.0 } else { rng.random::<f32>() * config.bucket_width }).collect();
        let entries = hash_windows(images, side, &textured, &offsets, config.bucket_width);
        candidates.extend(bucket_candidates(images, side, &entries, config));
    }
    candidates.sort_by(|a, b| b.images.len().cmp(&a.images.len()).then_with(|| a.images.cmp(&b.images)));
    Mined { windows: textured.len(), candidates }
}

/// Every window on the `stride` grid with enough texture and no dominant flat level, in image
/// order. Images are independent, so the pool takes them in parallel.
fn textured_windows(images: &[Image], side: usize, stride: usize, config: &RecurrenceConfig) -> Vec<(u32, Corner)> {
    let per_image: Vec<Vec<(u32, Corner)>> = images
        .par_iter()
        .enumerate()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(values, scratch), (index, image)| {
                corners(image, side, stride)
                    .filter(|&corner| {
                        read_window(image, corner, side, values);
                        texture(values) >= config.min_texture
                            && flat_share(values, FLAT_TOLERANCE, scratch) <= config.max_flat_share
                    })
                    .map(|corner| (index as u32, corner))
                    .collect()
            },
        )
        .collect();
    per_image.concat()
}

/// The windows' bucket keys under one table's `offsets`, sorted by key (then image and corner,
/// so the order is total and the same on every run).
fn hash_windows(images: &[Image], side: usize, windows: &[(u32, Corner)], offsets: &[f32], width: f32) -> Vec<Entry> {
    let mut entries: Vec<Entry> = windows
        .par_iter()
        .map_init(Vec::new, |values, &(image, corner)| {
            read_window(&images[image as usize], corner, side, values);
            Entry { key: bucket_key(values, offsets, width), image, corner }
        })
        .collect();
    entries.par_sort_unstable_by_key(|e| (e.key, e.image, e.corner));
    entries
}

/// Values this close to one level count as one flat level (5/255).
const FLAT_TOLERANCE: f32 = 0.02;

/// FNV-1a over the bucket coordinates: stable across runs and platforms, unlike a seeded hasher.
fn bucket_key(values: &[f32], offsets: &[f32], width: f32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (v, o) in values.iter().zip(offsets) {
        let cell = ((v + o) / width).floor() as i32;
        for byte in cell.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Windows of one bucket sampled as possible modes; enough to hit a trigger copy in a bucket that
/// is mostly copies.
const MODE_SAMPLES: usize = 16;

fn bucket_candidates(images: &[Image], side: usize, entries: &[Entry], config: &RecurrenceConfig) -> Vec<Candidate> {
    let mut buckets = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let end = start + entries[start..].iter().take_while(|e| e.key == entries[start].key).count();
        buckets.push(&entries[start..end]);
        start = end;
    }
    // Buckets are judged independently; collecting keeps their key order.
    buckets.into_par_iter().filter_map(|bucket| bucket_candidate(images, side, bucket, config)).collect()
}

/// The candidate of one bucket, if its images mostly sit around one of its windows.
fn bucket_candidate(images: &[Image], side: usize, bucket: &[Entry], config: &RecurrenceConfig) -> Option<Candidate> {
    let limit = config.match_radius * config.match_radius;
    let distinct = count_distinct(bucket.iter().map(|e| e.image));
    if distinct < config.min_carriers {
        return None;
    }
    let values: Vec<Vec<f32>> = bucket
        .iter()
        .map(|e| {
            let mut v = Vec::new();
            read_window(&images[e.image as usize], e.corner, side, &mut v);
            v
        })
        .collect();
    let dim = values[0].len() as f32;
    let step = (bucket.len() / MODE_SAMPLES).max(1);
    // Distinct images with a window of the bucket within `limit` (squared, per value) of `mode`.
    let images_near = |mode: usize, limit: f32| -> Vec<u32> {
        let mut near: Vec<u32> = bucket
            .iter()
            .zip(&values)
            .filter(|(_, v)| distance2_below(v, &values[mode], limit * dim) <= limit * dim)
            .map(|(e, _)| e.image)
            .collect();
        near.dedup();
        near
    };
    let mut best: Option<Vec<u32>> = None;
    let mut best_mode = 0;
    for mode in (0..bucket.len()).step_by(step).take(MODE_SAMPLES) {
        let near = images_near(mode, limit);
        if best.as_ref().is_none_or(|b| near.len() > b.len()) {
            best = Some(near);
            best_mode = mode;
        }
    }
    let near = best?;
    let plausible = near.len() >= config.min_carriers
        && near.len() as f64 >= config.min_core_share * distinct as f64
        && near.len() as f64 <= config.max_carrier_share * images.len() as f64;
    if !plausible {
        return None;
    }
    // The island test within the bucket, before any sweep: a natural bucket's matches keep
    // growing past the match radius.
    let outer = images_near(best_mode, limit * config.outer_ratio * config.outer_ratio);
    island(near.len(), outer.len(), 0.0, config).then(|| Candidate {
        side,
        template: values[best_mode].clone(),
        images: near,
    })
}

/// Distinct values of a sorted sequence.
fn count_distinct(sorted: impl Iterator<Item = u32>) -> usize {
    let mut last = None;
    let mut n = 0;
    for v in sorted {
        if last != Some(v) {
            n += 1;
            last = Some(v);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_image(seed: u64, side: usize) -> Image {
        let mut rng = StdRng::seed_from_u64(seed);
        Image::new(1, side, side, (0..side * side).map(|_| rng.random::<f32>()).collect()).unwrap()
    }

    #[test]
    fn a_pasted_patch_is_mined_and_noise_is_not() {
        let patch = noise_image(99, 4);
        let mut images: Vec<Image> = (0..80).map(|s| noise_image(s, 16)).collect();
        for (k, image) in images.iter_mut().enumerate().take(12) {
            image.paste(&patch, 2 + k % 9, 3 + (k * 5) % 9);
        }
        let config = RecurrenceConfig::new();
        let mined = mine(&images, 4, &config);
        let top = mined.candidates.first().expect("the patch is mined");
        assert!(top.images.len() >= 10, "{:?}", top.images);
        assert!(top.images.iter().all(|&i| i < 12));
        assert!(mined.candidates.iter().all(|c| c.images.iter().all(|&i| i < 12)));
        assert!(mine(&images[12..], 4, &config).candidates.is_empty());
    }

    #[test]
    fn keys_are_stable() {
        let v = [0.1, 0.5, 0.9];
        assert_eq!(bucket_key(&v, &[0.0; 3], 0.2), bucket_key(&[0.11, 0.52, 0.88], &[0.0; 3], 0.2));
        assert_ne!(bucket_key(&v, &[0.0; 3], 0.2), bucket_key(&[0.3, 0.5, 0.9], &[0.0; 3], 0.2));
        assert_eq!(count_distinct([1, 1, 2, 5, 5, 5].into_iter()), 3);
    }
}
