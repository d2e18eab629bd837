//! The guard's hold-back: a seeded share of the written files that the fit never sees, screened
//! afterwards by the fitted guard and scored against the truth, so that a guard is measured on
//! data it did not fit on.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::data::ImageFile;
use crate::filter::guard::Guard;
use crate::image::PixelBox;

/// `files` split by a seeded hash of their ids into those the filter fits on and the `share`
/// held back for the guard (`share` ≤ 0: none held back).
pub fn hold_back(files: Vec<ImageFile>, share: f64, seed: u64) -> (Vec<ImageFile>, Vec<ImageFile>) {
    let cut = (share.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    files.into_iter().partition(|f| {
        // DefaultHasher::new() has fixed keys: the split is the same on every run.
        let mut hash = DefaultHasher::new();
        (seed, &f.id).hash(&mut hash);
        share <= 0.0 || hash.finish() >= cut
    })
}

/// How the guard did on the held-back files.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuardScore {
    /// Files held back.
    pub held: usize,
    /// Held-back files that carry the trigger.
    pub poisons: usize,
    /// Of those, the ones the guard removed.
    pub caught: usize,
    /// Held-back clean files the guard removed.
    pub clean_removed: usize,
    /// `caught / poisons` (0 when there are none).
    pub recall: f64,
    /// Wall time of the screening.
    pub seconds: f64,
}

impl GuardScore {
    /// Screens `held` with `guard`, 64 files a batch, against `truth` (each file's trigger box, in
    /// the order of `held`; `None` for a clean file).
    pub fn of<B: Backend>(guard: &Guard<B>, held: &[ImageFile], truth: &[Option<PixelBox>]) -> Self {
        let started = Instant::now();
        let (mut caught, mut clean_removed) = (0, 0);
        for (files, truth) in held.chunks(64).zip(truth.chunks(64)) {
            for (verdict, t) in guard.screen_batch(files).into_iter().zip(truth) {
                match (verdict.removed, t) {
                    (true, Some(_)) => caught += 1,
                    (true, None) => clean_removed += 1,
                    _ => {}
                }
            }
        }
        let poisons = truth.iter().filter(|t| t.is_some()).count();
        GuardScore {
            held: held.len(),
            poisons,
            caught,
            clean_removed,
            recall: if poisons == 0 { 0.0 } else { caught as f64 / poisons as f64 },
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}
