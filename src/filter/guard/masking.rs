//! The masking half of a guard: the threat model, its clusters and the poison classifier, which
//! judge a sample that carries none of the fit's recurring patches.

use burn::tensor::backend::Backend;

use super::verdict::{unreadable, Verdict};
use crate::detect::activation::ActivationProbe;
use crate::detect::classify::PoisonClassifier;
use crate::detect::cluster::{cosines, Clusters};
use crate::detect::threat::{Backbone, EncoderConfig};
use crate::detect::{locate, DetectorConfig, Stage};
use crate::error::Error;
use crate::image::{Image, ImageBatchSource};

/// What masking fitted, for the guard to judge new samples with.
pub struct MaskingGuard<B: Backend> {
    pub(super) backbone: Backbone<B>,
    pub(super) encoder: EncoderConfig,
    pub(super) clusters: Clusters,
    pub(super) classifier: Option<PoisonClassifier<B>>,
}

impl<B: Backend> MaskingGuard<B> {
    /// The threat model `backbone` (built from `encoder`), the clusters of its embeddings and the
    /// classifier trained on the poisons masking confirmed (`None` when it confirmed none).
    pub fn new(
        backbone: Backbone<B>,
        encoder: EncoderConfig,
        clusters: Clusters,
        classifier: Option<PoisonClassifier<B>>,
    ) -> Self {
        Self { backbone, encoder, clusters, classifier }
    }

    /// Embeds `images` (at the working size), assigns each a cluster, asks the classifier, and
    /// locates the trigger of the removed.
    pub(super) fn judge(&self, images: &[Image], detector: &DetectorConfig, device: &B::Device) -> Vec<Verdict> {
        let Some(first) = images.first() else { return Vec::new() };
        let (c, h, w) = (first.channels(), first.height(), first.width());
        let source = match ImageBatchSource::new(images, c, h, w) {
            Ok(s) => s,
            Err(e) => return images.iter().map(|_| unreadable(Error::Config(e.to_string()))).collect(),
        };
        let all: Vec<usize> = (0..source.len()).collect();
        let centroids = self.clusters.centroid_tensor::<B>(device);
        let mut clusters = Vec::with_capacity(all.len());
        let mut scores = Vec::with_capacity(all.len());
        for chunk in all.chunks(detector.batch_size.max(1)) {
            let batch = source.batch::<B>(chunk, device);
            let nearest = cosines(self.backbone.forward(batch.clone()), centroids.clone()).argmax(1);
            clusters.extend(nearest.into_data().iter::<i64>().map(|c| c as usize));
            match &self.classifier {
                Some(classifier) => scores.extend(classifier.predict(batch)),
                None => scores.extend(std::iter::repeat_n(0.0, chunk.len())),
            }
        }
        let threshold = self.threshold();
        let flagged: Vec<usize> =
            (0..all.len()).filter(|&i| self.classifier.is_some() && scores[i] > threshold).collect();
        let mut boxes = vec![None; all.len()];
        if !flagged.is_empty() {
            let mut clusters_for_cam = self.clusters.clone();
            clusters_for_cam.assignments = clusters.clone();
            let probe =
                ActivationProbe::new(&self.backbone, &clusters_for_cam, [c, h, w], detector.batch_size, device);
            // A failed localisation loses only the boxes: the classifier's verdicts stand.
            if let Ok(found) = locate(&self.backbone, &clusters_for_cam, &probe, &source, &flagged, detector, device) {
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

    /// The classifier's decision threshold (0.5 without one).
    pub(super) fn threshold(&self) -> f32 {
        self.classifier.as_ref().map_or(0.5, |c| c.threshold)
    }
}
