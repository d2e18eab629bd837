//! `PoisonFilter`: wraps any burn `Dataset`, finds its poisons, and is itself a `Dataset` of the
//! samples it keeps.

mod config;
pub mod guard;
mod listing;
pub mod report;
mod working;

pub use config::PoisonFilterConfig;
#[doc(hidden)]
pub use listing::ReadPlan;
#[doc(hidden)]
pub use working::{DatasetRows, WorkingImages};

use std::path::Path;

use burn::data::dataset::transform::SelectionDataset;
use burn::data::dataset::Dataset;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::detect::embed::Embed;
use crate::detect::threat::{warm_start, WarmStartReport};
use crate::detect::{detect_input, Detection, DetectorFit, DetectorInput, Stage};
use crate::error::Result;
use crate::filter::guard::{Guard, GuardModel, MaskingGuard};
use crate::filter::report::{FilterReport, Removal, Suspicion};
use crate::image::{scale_box, AsImage};

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

impl<D: Dataset<I>, I: AsImage + Clone + Send + Sync> PoisonFilter<D, I> {
    /// Warm-starts a threat model on `dataset` and filters it. With the masking signal off, no
    /// threat model is trained: recurrence alone decides.
    pub fn fit<B: AutodiffBackend>(dataset: D, config: &PoisonFilterConfig, device: &B::Device) -> Result<Self> {
        config.check()?;
        let images = config.read_images(&dataset)?;
        if !config.detector.signals.masking {
            return Self::finish::<B>(dataset, images, None, None, config, device).map(|(f, _)| f);
        }
        let (model, warm) = warm_start::<B>(images.working()?, &config.warm_start, None, device)?;
        Self::finish::<B>(dataset, images, Some(&model.backbone), Some(warm), config, device).map(|(f, _)| f)
    }

    /// [`PoisonFilter::fit`], also returning the fitted detector as a [`Guard`] for new samples.
    pub fn fit_guarded<B: AutodiffBackend>(
        dataset: D,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<(Self, Guard<B::InnerBackend>)> {
        config.check()?;
        let images = config.read_images(&dataset)?;
        if !config.detector.signals.masking {
            let (filter, fit) = Self::finish::<B>(dataset, images, None, None, config, device)?;
            let guard = filter.guard_of(fit.screens, config, device);
            return Ok((filter, guard));
        }
        let encoder = config.warm_start.encoder_for(images.working()?);
        let (model, warm) = warm_start::<B>(images.working()?, &config.warm_start, None, device)?;
        let model = GuardModel::WarmStarted(model.backbone, encoder);
        Self::finish_guarded::<B>(dataset, images, model, Some(warm), config, device)
    }

    /// [`PoisonFilter::fit_with_encoder`] through a model a guard can save (the user's ResNet,
    /// [`crate::detect::resnet::EncoderFile::load`]), also returning the fitted [`Guard`].
    pub fn fit_guarded_with_encoder<B: AutodiffBackend>(
        dataset: D,
        model: GuardModel<B::InnerBackend>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<(Self, Guard<B::InnerBackend>)> {
        config.check()?;
        let images = config.read_images(&dataset)?;
        Self::finish_guarded::<B>(dataset, images, model, None, config, device)
    }

    fn finish_guarded<B: AutodiffBackend>(
        dataset: D,
        images: WorkingImages,
        model: GuardModel<B::InnerBackend>,
        warm: Option<WarmStartReport>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<(Self, Guard<B::InnerBackend>)> {
        let (filter, fit) = Self::finish::<B>(dataset, images, Some(&model), warm, config, device)?;
        let guard = filter.guard_of(fit.screens, config, device);
        Ok(match fit.masking {
            Some(masking) => (filter, guard.with_masking(MaskingGuard::new(model, masking))),
            None => (filter, guard),
        })
    }

    /// A guard that screens by the training-free signals' fitted screens.
    fn guard_of<B: Backend>(
        &self,
        screens: Vec<Box<dyn crate::detect::signal::Screen>>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Guard<B> {
        Guard::new(screens, config.detector.clone(), self.report.working_size, device)
    }

    /// Filters `dataset` looking through an encoder trained elsewhere (the user's own SSL model:
    /// any burn module that implements [`Embed`]) instead of warm-starting a threat model.
    pub fn fit_with_encoder<B: AutodiffBackend>(
        dataset: D,
        encoder: &impl Embed<B::InnerBackend>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<Self> {
        Self::fit_through::<B>(dataset, Some(encoder), config, device)
    }

    /// Filters `dataset` through `encoder` as it is, or without a model when the masking signal
    /// is off: the path `eval` scores, the same one users call.
    pub(crate) fn fit_through<B: AutodiffBackend>(
        dataset: D,
        encoder: Option<&dyn Embed<B::InnerBackend>>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<Self> {
        config.check()?;
        let images = config.read_images(&dataset)?;
        Self::finish::<B>(dataset, images, encoder, None, config, device).map(|(f, _)| f)
    }

    fn finish<B: AutodiffBackend>(
        inner: D,
        images: WorkingImages,
        backbone: Option<&dyn Embed<B::InnerBackend>>,
        warm: Option<WarmStartReport>,
        config: &PoisonFilterConfig,
        device: &B::Device,
    ) -> Result<(Self, DetectorFit<B::InnerBackend>)> {
        let plan = config.read_plan();
        let rows = images.rows(&inner, &plan);
        let input = DetectorInput { images: images.source.as_ref(), shape: images.shape, natives: &rows };
        let (detection, fit) = detect_input::<B>(backbone, &input, |r| rows.read_capped(r), &config.detector, device)?;
        // Photos listed by their header were decoded by the signals; one that did not decode
        // carries no evidence and is reported unreadable, whatever a signal made of it.
        let failed = rows.unreadable();
        drop(rows);
        let is_failed = |row: &usize| failed.binary_search_by_key(row, |f| f.0).is_ok();
        let [_, _, h, w] = images.shape;
        let mut removals: Vec<Removal> = detection
            .removed
            .iter()
            .filter(|(row, _)| !is_failed(row))
            .map(|&(row, stage)| {
                let index = images.rows[row];
                let trigger_box = detection.box_of(row);
                // A training-free finding gave its box in the pixels of the row as read (a held
                // image may have been scaled down); masking's is scaled up from the working size.
                let original = images.original_sizes[row];
                let read = images.natives[row].as_ref().map_or(original, |i| [i.height(), i.width()]);
                let original_box = match detection.original_box_of(row) {
                    Some(b) => Some(scale_box(b, read, original)),
                    None => trigger_box.map(|b| scale_box(b, [h, w], original)),
                };
                Removal {
                    index,
                    id: images.ids[index].clone(),
                    score: detection.score_of(row),
                    trigger_box: trigger_box.map(|b| b.to_array()),
                    original_box: original_box.map(|b| b.to_array()),
                    stage,
                    error: None,
                }
            })
            .collect();
        let unreadable = failed
            .iter()
            .map(|(row, error)| (images.rows[*row], error))
            .chain(images.unreadable.iter().map(|(i, e)| (*i, e)));
        removals.extend(unreadable.map(|(index, error)| Removal {
            index,
            id: images.ids[index].clone(),
            score: 1.0,
            trigger_box: None,
            original_box: None,
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
        let [_, c, h, w] = images.shape;
        let report = FilterReport {
            total,
            kept: kept.len(),
            removed: removals.len(),
            backend: <B::InnerBackend as Backend>::name(device),
            working_size: [c, h, w],
            warm_start: warm,
            recurrence: detection.recurrence.clone(),
            kept_clusters: detection.decisions.kept_clusters.clone(),
            paste_threshold: detection.decisions.paste_threshold,
            classifier_validation: detection.classifier_validation,
            classifier_flagged: detection.classifier_flagged,
            classifier_skipped: detection.classifier_skipped.clone(),
            cost: detection.cost.clone(),
            signals: detection.signals.clone(),
            removals,
            duplicates: detection
                .recurrence
                .iter()
                .flat_map(|r| &r.duplicate_groups)
                .map(|g| g.iter().map(|&row| images.ids[images.rows[row]].clone()).collect())
                .collect(),
        };
        let (rows, ids) = (images.rows, images.ids);
        let kept = SelectionDataset::from_indices_unchecked(inner, kept);
        Ok((Self { kept, rows, ids, report, detection }, fit))
    }

    /// Counts, per-stage costs and every removal with its evidence.
    pub fn report(&self) -> &FilterReport {
        &self.report
    }

    /// Writes the removal log, one JSON object per line.
    pub fn write_removal_log(&self, path: &Path) -> Result<()> {
        self.report.write_removal_log(path)
    }

    /// Ids of the kept items (their own, or their index), in order.
    pub fn kept_ids(&self) -> impl Iterator<Item = &str> {
        self.kept.indices.iter().map(|&i| self.ids[i].as_str())
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
