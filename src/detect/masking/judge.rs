//! One rule per sample (docs/design.md §2). [`Judge::complete`] fills in a sample's evidence as far
//! as the fitted [`Decisions`] ask (a box for members of the kept clusters, a paste test for their
//! candidates, the classifier's probability when it passed its gates) and decides. The fit ends
//! by running it over the data it was fitted on; the guard runs it over new samples.

use burn::tensor::backend::Backend;

use super::locate;
use crate::detect::embed::{embed, Embed};
use crate::detect::masking::activation::ActivationProbe;
use crate::detect::masking::classify::PoisonClassifier;
use crate::detect::masking::cluster::Clusters;
use crate::detect::masking::decisions::Decisions;
use crate::detect::masking::paste::PasteTest;
use crate::detect::{DetectorConfig, Evidence, Stage};
use crate::error::Result;
use crate::image::{ImageBatchSource, PixelBox};
use crate::progress::stage_bar;

/// What fitting the masking signal leaves to judge samples with, beside the threat model.
#[derive(Clone, Debug)]
pub struct MaskingFit<B: Backend> {
    /// The clusters of the threat model's embeddings.
    pub clusters: Clusters,
    /// The paste test's references; `None` when the paste test did not run.
    pub paste: Option<PasteTest>,
    /// The classifier trained on the paste test's removals, when it passed its gates.
    pub classifier: Option<PoisonClassifier<B>>,
    /// The dataset-level decisions.
    pub decisions: Decisions,
}

/// The threat model and its clusters, ready to gather evidence on images at the working size.
pub struct Judge<'a, B: Backend> {
    backbone: &'a dyn Embed<B>,
    clusters: &'a Clusters,
    probe: ActivationProbe<'a, B>,
    config: &'a DetectorConfig,
    device: &'a B::Device,
    /// Whether its stages show progress: the fit's long stages do, a guard's batches do not.
    shows_progress: bool,
}

impl<'a, B: Backend> Judge<'a, B> {
    /// A judge of images of `shape` (`[C, H, W]`) through `backbone`, toward `clusters`.
    pub fn new(
        backbone: &'a dyn Embed<B>,
        clusters: &'a Clusters,
        shape: [usize; 3],
        config: &'a DetectorConfig,
        device: &'a B::Device,
    ) -> Self {
        let probe = ActivationProbe::new(backbone, clusters, shape, config.batch_size, device);
        Self { backbone, clusters, probe, config, device, shows_progress: true }
    }

    /// This judge, its stages showing no progress (for a guard screening batch after batch).
    pub fn quiet(self) -> Self {
        Self { shows_progress: false, ..self }
    }

    fn stage(&self, label: &str, len: usize) -> crate::progress::Stage {
        if self.shows_progress {
            stage_bar(label, len as u64)
        } else {
            crate::progress::Stage::hidden()
        }
    }

    /// The probe the stages measure with (its forward count is the stages' cost).
    pub fn probe(&self) -> &ActivationProbe<'a, B> {
        &self.probe
    }

    /// The detector's settings.
    pub fn config(&self) -> &'a DetectorConfig {
        self.config
    }

    /// The clusters samples are judged toward.
    pub fn clusters(&self) -> &'a Clusters {
        self.clusters
    }

    /// Where the threat model runs.
    pub fn device(&self) -> &'a B::Device {
        self.device
    }

    /// Evidence for new `images` with only their clusters known: each the nearest centroid, as the
    /// fit's last k-means step assigned the samples it was fitted on.
    pub fn assign(&self, images: &ImageBatchSource) -> Vec<Evidence> {
        let embeddings = embed(self.backbone, images, self.config.batch_size, self.device);
        let assigned = self.clusters.assign::<B>(&embeddings, self.config.kmeans.chunk, self.device);
        assigned.into_iter().map(|cluster| Evidence { cluster, ..Evidence::default() }).collect()
    }

    /// Locates a trigger box in each of `indices`, toward its own cluster.
    pub fn localise(
        &self,
        images: &ImageBatchSource,
        evidence: &mut [Evidence],
        indices: &[usize],
        label: &str,
    ) -> Result<()> {
        let bar = self.stage(label, indices.len());
        let round = self.config.cam.images_per_round.max(1) * 4;
        for chunk in indices.chunks(round) {
            let targets: Vec<usize> = chunk.iter().map(|&i| evidence[i].cluster).collect();
            let found =
                locate(self.backbone, self.clusters, &self.probe, images, chunk, &targets, self.config, self.device)?;
            for (&i, (b, score)) in chunk.iter().zip(found) {
                evidence[i].trigger_box = Some(b);
                evidence[i].localisation_score = Some(score);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Paste-tests the located box of each of `indices` that has one and no score yet.
    pub fn paste(
        &self,
        test: &PasteTest,
        images: &ImageBatchSource,
        evidence: &mut [Evidence],
        indices: &[usize],
        label: &str,
    ) {
        let todo: Vec<(usize, PixelBox, usize)> = indices
            .iter()
            .filter_map(|&i| match (evidence[i].trigger_box, evidence[i].paste) {
                (Some(b), None) => Some((i, b, evidence[i].cluster)),
                _ => None,
            })
            .collect();
        let bar = self.stage(label, todo.len());
        // Enough candidates per call to fill whole batches even when few references lie outside
        // a candidate's cluster.
        for chunk in todo.chunks(64) {
            for (&(i, _, _), score) in chunk.iter().zip(test.score_many(&self.probe, images, chunk)) {
                evidence[i].paste = Some(score);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
    }

    /// Completes `evidence` (rows of `images`) as `fit` asks, and returns each sample's removing
    /// stage. Evidence already gathered is kept, so the fit pays here only for what it skipped.
    pub fn complete(
        &self,
        images: &ImageBatchSource,
        evidence: &mut [Evidence],
        fit: &MaskingFit<B>,
    ) -> Result<Vec<Option<Stage>>> {
        let d = &fit.decisions;
        let unboxed: Vec<usize> = (0..evidence.len())
            .filter(|&i| evidence[i].trigger_box.is_none() && d.needs_box(evidence[i].cluster))
            .collect();
        self.localise(images, evidence, &unboxed, "localising")?;
        if let Some(test) = &fit.paste {
            let untested: Vec<usize> = (0..evidence.len())
                .filter(|&i| {
                    let e = &evidence[i];
                    e.paste.is_none() && d.needs_paste(e.cluster, e.localisation_score)
                })
                .collect();
            self.paste(test, images, evidence, &untested, "paste test");
        }
        if let (Some(classifier), Some(_)) = (&fit.classifier, d.classifier_threshold) {
            let unswept: Vec<usize> =
                (0..evidence.len()).filter(|&i| evidence[i].poison_probability.is_none()).collect();
            if !unswept.is_empty() {
                let rows = images.subset(&unswept)?;
                for (&i, p) in unswept.iter().zip(classifier.predict_all(&rows, self.config.batch_size, self.device)) {
                    evidence[i].poison_probability = Some(p);
                }
            }
        }
        let stages: Vec<Option<Stage>> = evidence.iter().map(|e| d.decide(e)).collect();
        // Every removal carries the box that shows why, the classifier's sweep outside the kept
        // clusters included; the boxes decide nothing.
        let unboxed: Vec<usize> =
            (0..evidence.len()).filter(|&i| stages[i].is_some() && evidence[i].trigger_box.is_none()).collect();
        self.localise(images, evidence, &unboxed, "localising removals")?;
        Ok(stages)
    }
}
