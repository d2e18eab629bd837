//! `PoisonFilter`: wraps any burn `Dataset`, finds its poisons, and is itself a `Dataset` of the
//! samples it keeps.

pub mod guard;
pub mod report;

use std::path::Path;

use burn::config::Config;
use burn::data::dataset::transform::SelectionDataset;
use burn::data::dataset::Dataset;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::detect::classify::PoisonClassifier;
use crate::detect::embed::Embed;
use crate::detect::threat::{warm_start, WarmStartConfig, WarmStartReport};
use crate::detect::{detect_and_fit, Detection, DetectorConfig, Stage};
use crate::error::{Error, Result};
use crate::filter::guard::Guard;
use crate::filter::report::{FilterReport, Removal, Suspicion};
use crate::image::ImageBatchSource;
use crate::image::{AsImage, Image};

/// Everything the filter does, nested per stage; round-trips through JSON.
#[derive(Config, Debug, PartialEq)]
pub struct PoisonFilterConfig {
    /// How the threat model is warm-started on the data.
    #[config(default = "WarmStartConfig::new()")]
    pub warm_start: WarmStartConfig,
    /// Which signals and stages run, and how.
    #[config(default = "DetectorConfig::new()")]
    pub detector: DetectorConfig,
    /// `[height, width]` every image is resized to; `None` takes the most common size, capped
    /// by `max_short_side`.
    #[config(default = "None")]
    pub working_size: Option<[usize; 2]>,
    /// Largest short side of a working size the filter chooses itself (0: no cap; default
    /// [`crate::image::DEFAULT_MAX_SHORT_SIDE`], 224). A `working_size` given explicitly is not capped.
    #[config(default = 224)]
    pub max_short_side: usize,
}

impl PoisonFilterConfig {
    /// Reads a config saved as JSON (by [`PoisonFilterConfig::write`] or burn's `Config::save`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::load_binary(text.as_bytes()).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Writes the config as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::filter::report::write_atomic(path, burn::config::config_to_json(self).as_bytes())
    }

    /// Rejects settings that cannot work, before any image is read or model trained: every
    /// stage's own `check()` for the stages that will run, and the working size.
    pub fn check(&self) -> Result<()> {
        self.detector.check()?;
        if self.detector.signals.masking {
            self.warm_start.check()?;
        }
        if let Some([h, w]) = self.working_size {
            crate::check::at_least("working_size", h.min(w), 1, "at least 1×1")?;
        }
        Ok(())
    }

    /// Sets the seed of every stage.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.warm_start.seed = seed;
        let d = &mut self.detector;
        d.kmeans.seed = seed;
        d.recurrence.seed = seed;
        d.paste.seed = seed;
        d.classifier.seed = seed;
        self
    }
}

/// The kept samples of `inner`; see [`PoisonFilter::report`] for what was removed and why.
///
/// The one-line wrap, here with the training-free signal alone so that no threat model is
/// trained:
///
/// ```
/// use burn::data::dataset::Dataset;
/// use poisoncam::backend::Train;
/// use poisoncam::data::FashionMnist;
/// use poisoncam::{PoisonFilterConfig, PoisonFilterExt};
///
/// let train = FashionMnist::embedded()?.slice(0..500);
/// let mut config = PoisonFilterConfig::new();
/// config.detector.signals.masking = false;
///
/// let train = train.poison_filter::<Train>(&config, &Default::default())?; // still a Dataset
///
/// assert_eq!(train.len() + train.report().removed, 500);
/// # Ok::<(), poisoncam::Error>(())
/// ```
///
/// The kept samples are a burn [`SelectionDataset`] over the wrapped dataset
/// ([`PoisonFilter::into_selection`] hands it over, to shuffle or split with burn's own tools).
pub struct PoisonFilter<D: Dataset<I>, I: Clone + Send + Sync> {
    kept: SelectionDataset<D, I>,
    /// Dataset index of each detection row (the readable items, in order).
    rows: Vec<usize>,
    /// Every item's id, by dataset index.
    ids: Vec<String>,
    report: FilterReport,
    detection: Detection,
}

/// The images of a dataset at one working size, and the items that could not be read.
pub struct WorkingImages {
    /// The readable images at the working size, one row each.
    pub source: ImageBatchSource,
    /// The readable images at their own size, where recurrence is mined; rows as in `source`.
    pub natives: Vec<Image>,
    /// Dataset index of each row of `source`.
    pub rows: Vec<usize>,
    /// Every item's id (its own, or its index), by dataset index.
    pub ids: Vec<String>,
    /// Dataset index and error of each item whose image could not be read.
    pub unreadable: Vec<(usize, String)>,
}

impl WorkingImages {
    /// Reads every item; a `None` inside `0..len()` is an error, an unreadable image is recorded.
    /// The working size is [`crate::image::working_size`]'s choice.
    pub fn read<I: AsImage, D: Dataset<I> + ?Sized>(
        dataset: &D,
        working_size: Option<[usize; 2]>,
        max_short_side: usize,
    ) -> Result<Self> {
        let len = dataset.len();
        let mut images = Vec::new();
        let mut rows = Vec::new();
        let mut ids = Vec::with_capacity(len);
        let mut unreadable = Vec::new();
        for index in 0..len {
            let item = dataset.get(index).ok_or(Error::MissingItem { index, len })?;
            ids.push(item.id().unwrap_or_else(|| index.to_string()));
            match item.as_image() {
                Ok(image) => {
                    images.push(image);
                    rows.push(index);
                }
                Err(e) => unreadable.push((index, e.to_string())),
            }
        }
        if images.is_empty() {
            return Err(Error::NoInput("the poison filter"));
        }
        let [channels, h, w] = crate::image::working_size(&images, working_size, max_short_side);
        let source = ImageBatchSource::new(&images, channels, h, w)?;
        Ok(Self { source, natives: images, rows, ids, unreadable })
    }
}

impl<D: Dataset<I>, I: AsImage + Clone + Send + Sync> PoisonFilter<D, I> {
    /// Warm-starts a threat model on `dataset` and filters it. With the masking signal off, no
    /// threat model is trained: recurrence alone decides.
    pub fn fit<B: AutodiffBackend>(dataset: D, config: &PoisonFilterConfig, device: &B::Device) -> Result<Self> {
        config.check()?;
        let images = WorkingImages::read(&dataset, config.working_size, config.max_short_side)?;
        if !config.detector.signals.masking {
            return Self::finish::<B>(dataset, images, None, None, config, device).map(|(f, _)| f);
        }
        let (model, warm) = warm_start::<B>(&images.source, &config.warm_start, None, device)?;
        Self::finish::<B>(dataset, images, Some(&model.backbone), Some(warm), config, device).map(|(f, _)| f)
    }

    /// [`PoisonFilter::fit`], also returning the fitted detector as a [`Guard`] for new samples.
    pub fn fit_guarded<B: AutodiffBackend>(
        dataset: D,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<(Self, Guard<B::InnerBackend>)> {
        config.check()?;
        if !config.detector.signals.masking {
            return Err(Error::Config("the streaming guard needs the masking signal".into()));
        }
        let images = WorkingImages::read(&dataset, config.working_size, config.max_short_side)?;
        let encoder = config.warm_start.encoder_for(&images.source);
        let (model, warm) = warm_start::<B>(&images.source, &config.warm_start, None, device)?;
        let (filter, classifier) =
            Self::finish::<B>(dataset, images, Some(&model.backbone), Some(warm), config, device)?;
        let clusters =
            filter.detection.clusters.clone().ok_or_else(|| Error::Config("masking found no clusters".into()))?;
        let guard = Guard::new(
            model.backbone,
            encoder,
            clusters,
            classifier,
            filter.detection.templates.clone(),
            config.detector.clone(),
            filter.report.working_size,
            device,
        );
        Ok((filter, guard))
    }

    /// Filters `dataset` looking through an encoder trained elsewhere (the user's own SSL model:
    /// any burn module that implements [`Embed`]) instead of warm-starting a threat model.
    pub fn fit_with_encoder<B: AutodiffBackend>(
        dataset: D,
        encoder: &impl Embed<B::InnerBackend>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<Self> {
        config.check()?;
        let images = WorkingImages::read(&dataset, config.working_size, config.max_short_side)?;
        Self::finish::<B>(dataset, images, Some(encoder), None, config, device).map(|(f, _)| f)
    }

    fn finish<B: AutodiffBackend>(
        inner: D,
        images: WorkingImages,
        backbone: Option<&dyn Embed<B::InnerBackend>>,
        warm: Option<WarmStartReport>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<(Self, Option<PoisonClassifier<B::InnerBackend>>)> {
        let (detection, classifier) =
            detect_and_fit::<B>(backbone, &images.source, &images.natives, &config.detector, device)?;
        let mut removals: Vec<Removal> = detection
            .removed
            .iter()
            .map(|&(row, stage)| {
                let index = images.rows[row];
                Removal {
                    index,
                    id: images.ids[index].clone(),
                    score: detection.score_of(row),
                    trigger_box: detection.box_of(row).map(|b| b.to_array()),
                    stage,
                    error: None,
                }
            })
            .collect();
        removals.extend(images.unreadable.iter().map(|(index, error)| Removal {
            index: *index,
            id: images.ids[*index].clone(),
            score: 1.0,
            trigger_box: None,
            stage: Stage::Unreadable,
            error: Some(error.clone()),
        }));
        removals.sort_by_key(|r| r.index);
        let total = inner.len();
        let mut is_removed = vec![false; total];
        for r in &removals {
            is_removed[r.index] = true;
        }
        let kept: Vec<usize> = (0..total).filter(|&i| !is_removed[i]).collect();
        let [_, c, h, w] = images.source.shape();
        let report = FilterReport {
            total,
            kept: kept.len(),
            removed: removals.len(),
            backend: <B::InnerBackend as Backend>::name(device),
            working_size: [c, h, w],
            warm_start: warm,
            recurrence: detection.recurrence.clone(),
            kept_clusters: detection.kept_clusters.clone(),
            paste_threshold: detection.paste_threshold,
            classifier_validation: detection.classifier_validation,
            classifier_flagged: detection.classifier_flagged,
            classifier_skipped: detection.classifier_skipped.clone(),
            cost: detection.cost.clone(),
            removals,
        };
        let (rows, ids) = (images.rows, images.ids);
        let kept = SelectionDataset::from_indices_unchecked(inner, kept);
        Ok((Self { kept, rows, ids, report, detection }, classifier))
    }

    /// Counts, per-stage costs and every removal with its evidence.
    pub fn report(&self) -> &FilterReport {
        &self.report
    }

    /// Writes the removal log, one JSON object per line.
    pub fn write_removal_log(&self, path: &Path) -> Result<()> {
        self.report.write_removal_log(path)
    }

    /// Indices of `inner` that are kept, increasing.
    pub fn kept_indices(&self) -> &[usize] {
        &self.kept.indices
    }

    /// The detector's full evidence, rows in the order of the readable items; see
    /// [`PoisonFilter::dataset_index`].
    pub fn detection(&self) -> &Detection {
        &self.detection
    }

    /// The dataset index of a row of [`PoisonFilter::detection`].
    pub fn dataset_index(&self, row: usize) -> Option<usize> {
        self.rows.get(row).copied()
    }

    /// Every sample the detector located a trigger in, by dataset index, most suspicious first
    /// (ties by index).
    pub fn suspicions(&self) -> Vec<Suspicion> {
        let removed: std::collections::HashSet<usize> = self.report.removals.iter().map(|r| r.index).collect();
        let mut out: Vec<Suspicion> = (0..self.rows.len())
            .filter_map(|row| {
                let trigger_box = self.detection.box_of(row)?;
                let index = self.rows[row];
                Some(Suspicion {
                    index,
                    id: self.ids[index].clone(),
                    score: self.detection.score_of(row),
                    trigger_box,
                    removed: removed.contains(&index),
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        out
    }

    /// The wrapped dataset, every item included.
    pub fn inner(&self) -> &D {
        &self.kept.wrapped
    }

    /// The kept samples as burn's own selection over the wrapped dataset.
    pub fn into_selection(self) -> SelectionDataset<D, I> {
        self.kept
    }
}

impl<D: Dataset<I>, I: Clone + Send + Sync> Dataset<I> for PoisonFilter<D, I> {
    fn get(&self, index: usize) -> Option<I> {
        self.kept.get(index)
    }

    fn len(&self) -> usize {
        self.kept.len()
    }
}

/// `dataset.poison_filter(&config, &device)?` for any dataset of [`AsImage`] items.
pub trait PoisonFilterExt<I: AsImage + Clone + Send + Sync>: Dataset<I> + Sized {
    /// [`PoisonFilter::fit`] on this dataset.
    fn poison_filter<B: AutodiffBackend>(
        self,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<PoisonFilter<Self, I>> {
        PoisonFilter::fit::<B>(self, config, device)
    }
}

impl<I: AsImage + Clone + Send + Sync, D: Dataset<I>> PoisonFilterExt<I> for D {}
