//! The streaming filter: a fitted detector saved to disk and applied to samples as they arrive,
//! one at a time, from an iterator, or from a dataset that keeps growing.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use burn::tensor::backend::Backend;

use dashmap::DashMap;
use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::detect::activation::ActivationProbe;
use crate::detect::classify::{PatchNet, PoisonClassifier};
use crate::detect::cluster::{cosines, Clusters};
use crate::detect::recurrence::PatchTemplate;
use crate::detect::threat::{load_model, save_model, Backbone, EncoderConfig};
use crate::detect::{locate, DetectorConfig, Stage};
use crate::durable::{sync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::image::scale_box;
use crate::image::{AsImage, Image, PixelBox};
use crate::image::{Fnv, ImageBatchSource};

/// The guard's judgement of one sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the sample should be dropped.
    pub removed: bool,
    /// Why it was removed: `recurrence` (it carries a patch the fit found recurring), `classifier`
    /// or `unreadable`.
    pub stage: Option<Stage>,
    /// Mean poison probability of the classifier ensemble (0 when the fit found no poisons).
    pub score: f32,
    /// The threat model's cluster, where the sample was embedded.
    pub cluster: Option<usize>,
    /// Located trigger of a removed sample, in working-size pixels.
    pub trigger_box: Option<PixelBox>,
    /// The same box in the pixels of the sample's own image.
    #[serde(default)]
    pub original_box: Option<PixelBox>,
    /// What went wrong, for unreadable samples.
    pub error: Option<String>,
}

/// Verdicts a guard remembers by default (see [`Guard::with_cache_capacity`]).
pub const DEFAULT_VERDICT_CACHE: usize = 65_536;

/// What `guard.json` holds beside the model records.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GuardMeta {
    /// Names the records of this save (`backbone-G.mpk`, `classifier-G-I.mpk`); `None` in guards
    /// saved before records were named by save (`backbone.mpk`, `classifier-I.mpk`).
    #[serde(default)]
    generation: Option<u64>,
    working_shape: [usize; 3],
    encoder: EncoderConfig,
    detector: DetectorConfig,
    centroids: Vec<f32>,
    dim: usize,
    classifier_models: usize,
    threshold: f32,
    validation_accuracy: f32,
    /// Recurring patches the fit confirmed; a new sample carrying one is removed.
    #[serde(default)]
    templates: Vec<PatchTemplate>,
}

/// A fitted detector that screens new samples, from several threads at once if need be.
///
/// Verdicts are cached by the image's content, so a file that changes under the same name is
/// judged again, and the same image under another name is not. The cache is bounded (least
/// recently used verdicts go first). Unreadable samples are never cached: a read that failed for
/// a passing reason is tried again next time.
pub struct Guard<B: Backend> {
    backbone: Backbone<B>,
    clusters: Clusters,
    classifier: Option<PoisonClassifier<B>>,
    meta: GuardMeta,
    device: B::Device,
    verdicts: Mutex<LruCache<u64, Verdict>>,
    /// The removal log: the latest removing verdict of each sample id.
    removed: DashMap<String, Verdict>,
    /// Names samples without an id in the removal log.
    anonymous: AtomicUsize,
}

impl<B: Backend> Guard<B> {
    /// Assembles a guard from what `PoisonFilter` fitted.
    pub fn new(
        backbone: Backbone<B>,
        encoder: EncoderConfig,
        clusters: Clusters,
        classifier: Option<PoisonClassifier<B>>,
        templates: Vec<PatchTemplate>,
        detector: DetectorConfig,
        working_shape: [usize; 3],
        device: &B::Device,
    ) -> Self {
        let meta = GuardMeta {
            generation: None,
            templates,
            working_shape,
            encoder,
            detector,
            centroids: clusters.centroids.clone(),
            dim: clusters.dim,
            classifier_models: classifier.as_ref().map_or(0, |c| c.models.len()),
            threshold: classifier.as_ref().map_or(0.5, |c| c.threshold),
            validation_accuracy: classifier.as_ref().map_or(0.0, |c| c.validation_accuracy),
        };
        Self::assemble(backbone, clusters, classifier, meta, device)
    }

    fn assemble(
        backbone: Backbone<B>,
        clusters: Clusters,
        classifier: Option<PoisonClassifier<B>>,
        meta: GuardMeta,
        device: &B::Device,
    ) -> Self {
        Self {
            backbone,
            clusters,
            classifier,
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
        self.classifier.is_some() || !self.meta.templates.is_empty()
    }

    /// Saves the guard into directory `dir`: `guard.json` and the model records it names. The
    /// records of a save are written and synced under new names before `guard.json` is replaced
    /// atomically, so a crash leaves the previous guard or this one, whole.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let previous = read_meta(dir).ok().and_then(|m| m.generation);
        let generation = previous.map_or(1, |g| g.wrapping_add(1));
        let mut written = vec![save_model(&self.backbone, backbone_path(dir, Some(generation)))?];
        if let Some(c) = &self.classifier {
            for (i, m) in c.models.iter().enumerate() {
                written.push(save_model(m, classifier_path(dir, Some(generation), i))?);
            }
        }
        for path in &written {
            crate::durable::sync_file(path)?;
        }
        sync_dir(dir)?;
        let meta = GuardMeta { generation: Some(generation), ..self.meta.clone() };
        write_atomic(&dir.join(GUARD_JSON), &serde_json::to_vec_pretty(&meta)?)?;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "mpk") && !written.contains(&path) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Loads a guard saved with [`Guard::save`], checking that its parts fit together: a corrupt
    /// or mismatched guard is an error here, not a panic at the first screen.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let meta = read_meta(dir)?;
        validate(&meta).map_err(|reason| Error::format(dir.join(GUARD_JSON), "poisoncam guard", reason))?;
        let backbone =
            load_model(meta.encoder.init::<B>(device).backbone, backbone_path(dir, meta.generation), device)?;
        let channels = meta.working_shape[0];
        let models = (0..meta.classifier_models)
            .map(|i| load_model(PatchNet::new(channels, device), classifier_path(dir, meta.generation, i), device))
            .collect::<Result<Vec<_>>>()?;
        let classifier = (!models.is_empty()).then_some(PoisonClassifier {
            models,
            threshold: meta.threshold,
            validation_accuracy: meta.validation_accuracy,
        });
        let clusters = Clusters {
            centroids: meta.centroids.clone(),
            dim: meta.dim,
            assignments: Vec::new(),
            inertia: 0.0,
            iterations: 0,
        };
        Ok(Self::assemble(backbone, clusters, classifier, meta, device))
    }

    /// Screens one sample (cached by its id, when it has one).
    pub fn screen<I: AsImage>(&self, item: &I) -> Verdict {
        self.screen_batch(std::slice::from_ref(item)).remove(0)
    }

    /// Screens many samples with batched forward passes; images judged before are not
    /// recomputed.
    pub fn screen_batch<I: AsImage>(&self, items: &[I]) -> Vec<Verdict> {
        let [c, h, w] = self.meta.working_shape;
        let mut out: Vec<Option<Verdict>> = vec![None; items.len()];
        let mut keys = vec![None; items.len()];
        let mut todo = Vec::new();
        let mut images = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let image = match item.as_image() {
                Ok(image) => image,
                Err(e) => {
                    out[i] = Some(unreadable(e));
                    continue;
                }
            };
            let key = content_key(&image);
            keys[i] = Some(key);
            if let Some(v) = self.cache().get(&key) {
                out[i] = Some(v.clone());
                continue;
            }
            match self.carried_patch(&image) {
                Some(verdict) => out[i] = Some(verdict),
                None => {
                    todo.push((i, [image.height(), image.width()]));
                    images.push(image.with_channels(c).resized(h, w));
                }
            }
        }
        if !todo.is_empty() {
            for (&(i, size), mut v) in todo.iter().zip(self.judge(&images)) {
                v.original_box = v.trigger_box.map(|b| scale_box(b, [h, w], size));
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

    /// A removal verdict when `image` (at its own size) carries one of the fit's recurring patches.
    fn carried_patch(&self, image: &Image) -> Option<Verdict> {
        let radius = self.meta.detector.recurrence.match_radius;
        let (distance, found) = self.meta.templates.iter().find_map(|t| t.find_in(image, radius))?;
        let [_, h, w] = self.meta.working_shape;
        Some(Verdict {
            removed: true,
            stage: Some(Stage::Recurrence),
            score: 1.0 - distance / radius,
            cluster: None,
            trigger_box: Some(scale_box(found, [image.height(), image.width()], [h, w])),
            original_box: Some(found),
            error: None,
        })
    }

    /// Embeds, assigns a cluster, asks the classifier, and locates the trigger of the removed.
    fn judge(&self, images: &[Image]) -> Vec<Verdict> {
        let [c, h, w] = self.meta.working_shape;
        let source = match ImageBatchSource::new(images, c, h, w) {
            Ok(s) => s,
            Err(e) => return images.iter().map(|_| unreadable(Error::Config(e.to_string()))).collect(),
        };
        let all: Vec<usize> = (0..source.len()).collect();
        let centroids = self.clusters.centroid_tensor::<B>(&self.device);
        let mut clusters = Vec::with_capacity(all.len());
        let mut scores = Vec::with_capacity(all.len());
        for chunk in all.chunks(256) {
            let batch = source.batch::<B>(chunk, &self.device);
            let nearest = cosines(self.backbone.forward(batch.clone()), centroids.clone()).argmax(1);
            clusters.extend(nearest.into_data().iter::<i64>().map(|c| c as usize));
            match &self.classifier {
                Some(classifier) => scores.extend(classifier.predict(batch)),
                None => scores.extend(std::iter::repeat_n(0.0, chunk.len())),
            }
        }
        let threshold = self.meta.threshold;
        let flagged: Vec<usize> =
            (0..all.len()).filter(|&i| self.classifier.is_some() && scores[i] > threshold).collect();
        let mut boxes = vec![None; all.len()];
        if !flagged.is_empty() {
            let mut clusters_for_cam = self.clusters.clone();
            clusters_for_cam.assignments = clusters.clone();
            let probe = ActivationProbe::new(
                &self.backbone,
                &clusters_for_cam,
                [c, h, w],
                self.meta.detector.batch_size,
                &self.device,
            );
            // A failed localisation loses only the boxes: the classifier's verdicts stand.
            if let Ok(found) =
                locate(&self.backbone, &clusters_for_cam, &probe, &source, &flagged, &self.meta.detector, &self.device)
            {
                for (&i, (b, _)) in flagged.iter().zip(found) {
                    boxes[i] = Some(b);
                }
            }
        }
        (0..all.len())
            .map(|i| {
                let removed = flagged.binary_search(&i).is_ok();
                Verdict {
                    removed,
                    stage: removed.then_some(Stage::Classifier),
                    score: scores[i],
                    cluster: Some(clusters[i]),
                    trigger_box: boxes[i],
                    original_box: None,
                    error: None,
                }
            })
            .collect()
    }
}

const GUARD_JSON: &str = "guard.json";

fn backbone_path(dir: &Path, generation: Option<u64>) -> PathBuf {
    match generation {
        Some(g) => dir.join(format!("backbone-{g}")),
        None => dir.join("backbone"),
    }
}

fn classifier_path(dir: &Path, generation: Option<u64>, i: usize) -> PathBuf {
    match generation {
        Some(g) => dir.join(format!("classifier-{g}-{i}")),
        None => dir.join(format!("classifier-{i}")),
    }
}

fn read_meta(dir: &Path) -> Result<GuardMeta> {
    let path = dir.join(GUARD_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, "poisoncam guard", e.to_string()))
}

/// Why the parts of a saved guard do not fit together, if they do not.
fn validate(meta: &GuardMeta) -> std::result::Result<(), String> {
    let [c, h, w] = meta.working_shape;
    if c == 0 || h == 0 || w == 0 {
        return Err(format!("working shape {:?} is empty", meta.working_shape));
    }
    meta.encoder.check().map_err(|e| e.to_string())?;
    meta.detector.check().map_err(|e| e.to_string())?;
    if meta.encoder.in_channels != c {
        return Err(format!("encoder takes {} channels, working shape has {c}", meta.encoder.in_channels));
    }
    if meta.dim != meta.encoder.feature_dim() {
        return Err(format!("centroids of length {} for {} features", meta.dim, meta.encoder.feature_dim()));
    }
    if meta.centroids.is_empty() || meta.centroids.len() % meta.dim != 0 {
        return Err(format!("{} centroid values do not make rows of {}", meta.centroids.len(), meta.dim));
    }
    if meta.centroids.iter().any(|v| !v.is_finite()) {
        return Err("a centroid is not finite".into());
    }
    if !(0.0..=1.0).contains(&meta.threshold) {
        return Err(format!("classifier threshold {} is outside [0, 1]", meta.threshold));
    }
    for t in &meta.templates {
        if t.channels == 0 || t.side == 0 || t.values.len() != t.channels * t.side * t.side {
            return Err(format!("a {}-channel template of side {} has {} values", t.channels, t.side, t.values.len()));
        }
    }
    Ok(())
}

/// Names an image by its content: shape and every pixel.
fn content_key(image: &Image) -> u64 {
    let mut hash = Fnv::default();
    for d in [image.channels(), image.height(), image.width()] {
        hash.write(&(d as u64).to_le_bytes());
    }
    for v in image.pixels() {
        hash.write(&v.to_bits().to_le_bytes());
    }
    hash.0
}

fn unreadable(e: Error) -> Verdict {
    Verdict {
        removed: true,
        stage: Some(Stage::Unreadable),
        score: 1.0,
        cluster: None,
        trigger_box: None,
        original_box: None,
        error: Some(e.to_string()),
    }
}

/// `iter.screen(&guard)`: yields the samples the guard keeps; the others are recorded in the
/// guard ([`Guard::removals`]).
pub trait ScreenExt: Iterator + Sized
where
    Self::Item: AsImage,
{
    /// Screens every item of this iterator, lazily.
    fn screen<B: Backend>(self, guard: &Guard<B>) -> Screened<'_, Self, B> {
        Screened { inner: self, guard }
    }
}

impl<T: Iterator> ScreenExt for T where T::Item: AsImage {}

/// The iterator returned by [`ScreenExt::screen`].
pub struct Screened<'g, T, B: Backend> {
    inner: T,
    guard: &'g Guard<B>,
}

impl<T: Iterator, B: Backend> Iterator for Screened<'_, T, B>
where
    T::Item: AsImage,
{
    type Item = T::Item;

    fn next(&mut self) -> Option<T::Item> {
        for item in self.inner.by_ref() {
            if !self.guard.screen(&item).removed {
                return Some(item);
            }
        }
        None
    }
}
