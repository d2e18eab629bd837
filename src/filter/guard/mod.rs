//! The streaming filter (docs/design.md §7): a fitted detector saved to disk and applied to
//! samples as they arrive, one at a time, from an iterator, or from a dataset that keeps growing.

mod masking;
mod model;
mod saved;
mod screened;
mod verdict;

#[doc(hidden)]
pub use masking::MaskingGuard;
pub use model::GuardModel;
pub use screened::{ScreenExt, Screened};
pub use verdict::Verdict;
use verdict::{passed, unreadable};

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use burn::tensor::backend::Backend;

use dashmap::DashMap;
use lru::LruCache;
use rayon::prelude::*;

use crate::detect::signal::{screen_all, Sample, Screen};
use crate::detect::DetectorConfig;
use crate::error::{Error, Result};
use crate::image::{scale_box, AsImage, Image};
use saved::GuardMeta;

/// Verdicts a guard remembers by default (see [`Guard::with_cache_capacity`]).
pub const DEFAULT_VERDICT_CACHE: usize = 65_536;

/// A fitted detector that screens new samples, from several threads at once if need be.
///
/// Verdicts are cached by the image's content, so a file that changes under the same name is
/// judged again, and the same image under another name is not. The cache is bounded (least
/// recently used verdicts go first). Unreadable samples are never cached: a read that failed for
/// a passing reason is tried again next time.
pub struct Guard<B: Backend> {
    /// The training-free signals' screens, in fold order: the first finding decides.
    screens: Vec<Box<dyn Screen>>,
    /// The threat model's half, `None` for a guard fitted without masking.
    masking: Option<MaskingGuard<B>>,
    meta: GuardMeta,
    device: B::Device,
    verdicts: Mutex<LruCache<u64, Verdict>>,
    /// The removal log: the latest removing verdict of each sample id.
    removed: DashMap<String, Verdict>,
    /// Names samples without an id in the removal log.
    anonymous: AtomicUsize,
}

impl<B: Backend> Guard<B> {
    /// A guard that removes the samples one of `screens` (the training-free signals' fitted
    /// rules, in fold order) finds and passes the rest; [`Guard::with_masking`] adds the threat
    /// model's judgement. `working_shape` is `[C, H, W]` of the fit's working size, where
    /// verdicts' `trigger_box` lies.
    pub fn new(
        screens: Vec<Box<dyn Screen>>,
        detector: DetectorConfig,
        working_shape: [usize; 3],
        device: &B::Device,
    ) -> Self {
        let meta = GuardMeta::new::<B>(None, names(&screens), detector, working_shape);
        Self::assemble(screens, None, meta, device)
    }

    /// This guard, also judging the samples no screen found by masking's threat model and
    /// classifier.
    pub fn with_masking(self, masking: MaskingGuard<B>) -> Self {
        let meta = GuardMeta::new(Some(&masking), names(&self.screens), self.meta.detector, self.meta.working_shape);
        Self::assemble(self.screens, Some(masking), meta, &self.device)
    }

    fn assemble(
        screens: Vec<Box<dyn Screen>>,
        masking: Option<MaskingGuard<B>>,
        meta: GuardMeta,
        device: &B::Device,
    ) -> Self {
        Self {
            screens,
            masking,
            meta,
            device: device.clone(),
            verdicts: Mutex::new(LruCache::new(NonZeroUsize::new(DEFAULT_VERDICT_CACHE).unwrap_or(NonZeroUsize::MIN))),
            removed: DashMap::new(),
            anonymous: AtomicUsize::new(0),
        }
    }

    /// Keeps at most `capacity` verdicts (default [`DEFAULT_VERDICT_CACHE`]); the removal log is
    /// kept whole.
    pub fn with_cache_capacity(self, capacity: NonZeroUsize) -> Self {
        Self { verdicts: Mutex::new(LruCache::new(capacity)), ..self }
    }

    /// Verdicts cached now.
    pub fn cached_verdicts(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<u64, Verdict>> {
        // A panic while holding the lock cannot leave a half-written verdict behind.
        self.verdicts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the fit found poisons to learn from; without, every sample passes.
    pub fn is_armed(&self) -> bool {
        self.masking.as_ref().is_some_and(MaskingGuard::is_armed) || self.screens.iter().any(|s| s.is_armed())
    }

    /// Screens one sample (its verdict cached by the image's content).
    pub fn screen<I: AsImage>(&self, item: &I) -> Verdict {
        self.screen_batch(std::slice::from_ref(item)).remove(0)
    }

    /// Screens many samples with batched forward passes; images judged before are not
    /// recomputed.
    pub fn screen_batch<I: AsImage>(&self, items: &[I]) -> Vec<Verdict> {
        let mut out: Vec<Option<Verdict>> = vec![None; items.len()];
        let mut keys = vec![None; items.len()];
        let mut fresh = Vec::new();
        let wants_digest = self.screens.iter().any(|s| s.needs_digest());
        for (i, item) in items.iter().enumerate() {
            let read = item.as_image().and_then(|image| {
                let digest = if wants_digest { item.digest().transpose()? } else { None };
                Ok((image, digest))
            });
            let (image, digest) = match read {
                Ok(read) => read,
                Err(e) => {
                    out[i] = Some(unreadable(e));
                    continue;
                }
            };
            // The same pixels stored as other bytes may be judged otherwise by a deny list.
            let key =
                image.fingerprint() ^ digest.map_or(0, |d| u64::from_le_bytes(d[..8].try_into().unwrap_or_default()));
            keys[i] = Some(key);
            match self.cache().get(&key) {
                Some(v) => out[i] = Some(v.clone()),
                None => fresh.push((i, image, digest)),
            }
        }
        // Template search costs a pass over each image's pixels per template: one image a thread.
        let found: Vec<Option<Verdict>> =
            fresh.par_iter().map(|(_, image, digest)| self.screened(image, *digest)).collect();
        let (mut todo, mut todo_images) = (Vec::new(), Vec::new());
        for ((i, image, _), verdict) in fresh.into_iter().zip(found) {
            match verdict {
                Some(v) => out[i] = Some(v),
                None if self.masking.is_some() => {
                    todo.push(i);
                    todo_images.push(image);
                }
                None => out[i] = Some(passed()),
            }
        }
        if let (Some(masking), false) = (&self.masking, todo.is_empty()) {
            let shape = self.meta.working_shape;
            let verdicts = masking.judge(&todo_images, shape, &self.meta.detector, &self.device);
            for ((&i, image), mut v) in todo.iter().zip(&todo_images).zip(verdicts) {
                v.original_box =
                    v.trigger_box.map(|b| scale_box(b, [shape[1], shape[2]], [image.height(), image.width()]));
                out[i] = Some(v);
            }
        }
        let verdicts: Vec<Verdict> =
            out.into_iter().map(|v| v.unwrap_or_else(|| unreadable(Error::NoInput("screen")))).collect();
        for ((item, key), v) in items.iter().zip(keys).zip(&verdicts) {
            if let Some(key) = key {
                self.cache().put(key, v.clone());
            }
            match item.id() {
                Some(id) if v.removed => {
                    self.removed.insert(id, v.clone());
                }
                // A sample that changed and now passes leaves the log.
                Some(id) => {
                    self.removed.remove(&id);
                }
                None if v.removed => {
                    let n = self.anonymous.fetch_add(1, Ordering::Relaxed);
                    self.removed.insert(format!("#anonymous-{n}"), v.clone());
                }
                None => {}
            }
        }
        verdicts
    }

    /// Kept indices of a dataset; images screened before cost a read and a hash, not a forward
    /// pass, so a dataset that grows after fitting is re-screened cheaply.
    pub fn screen_dataset<I: AsImage, D: burn::data::dataset::Dataset<I> + ?Sized>(
        &self,
        dataset: &D,
    ) -> Result<Vec<usize>> {
        let mut kept = Vec::new();
        let indices: Vec<usize> = (0..dataset.len()).collect();
        for chunk in indices.chunks(256) {
            let items = chunk
                .iter()
                .map(|&index| dataset.get(index).ok_or(Error::MissingItem { index, len: dataset.len() }))
                .collect::<Result<Vec<I>>>()?;
            for (&index, v) in chunk.iter().zip(self.screen_batch(&items)) {
                if !v.removed {
                    kept.push(index);
                }
            }
        }
        Ok(kept)
    }

    /// Every removed sample screened so far, by id (its latest verdict).
    pub fn removals(&self) -> Vec<(String, Verdict)> {
        let mut out: Vec<(String, Verdict)> =
            self.removed.iter().map(|e| (e.key().clone(), e.value().clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A removal verdict when one of the screens finds `image` (at its own size), by the first.
    fn screened(&self, image: &Image, digest: Option<[u8; 32]>) -> Option<Verdict> {
        let [_, h, w] = self.meta.working_shape;
        let finding = screen_all(&self.screens, &Sample { image, digest }, [h, w])?;
        Some(Verdict::from(finding))
    }
}

fn names(screens: &[Box<dyn Screen>]) -> Vec<String> {
    screens.iter().map(|s| s.name().to_string()).collect()
}
