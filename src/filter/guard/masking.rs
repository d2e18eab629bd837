//! The masking half of a guard: the threat model and what fitting masking left (clusters, paste
//! references, classifier, decisions), which judge a sample that carries none of the fit's
//! recurring patches by the rule the filter applied ([`Judge::complete`]).

use burn::tensor::backend::Backend;

use super::model::GuardModel;
use super::verdict::{unreadable, Verdict};
use crate::detect::{DetectorConfig, Judge, MaskingFit};
use crate::error::{Error, Result};
use crate::image::{Image, ImageBatchSource};

/// What masking fitted, for the guard to judge new samples with.
pub struct MaskingGuard<B: Backend> {
    pub(super) model: GuardModel<B>,
    pub(super) fit: MaskingFit<B>,
}

impl<B: Backend> MaskingGuard<B> {
    /// The model masking looked through and what fitting masking through it left.
    pub fn new(model: GuardModel<B>, fit: MaskingFit<B>) -> Self {
        Self { model, fit }
    }

    /// Whether the fit left masking anything to remove by.
    pub(super) fn is_armed(&self) -> bool {
        let d = &self.fit.decisions;
        !d.kept_clusters.is_empty() || d.classifier_threshold.is_some() || !d.masking_limits.is_empty()
    }

    /// Judges `images` (at any size; judged at `shape`, the fit's `[C, H, W]`) as the filter
    /// judged the samples of its fit.
    pub(super) fn judge(
        &self,
        images: &[Image],
        shape: [usize; 3],
        detector: &DetectorConfig,
        device: &B::Device,
    ) -> Vec<Verdict> {
        match self.try_judge(images, shape, detector, device) {
            Ok(verdicts) => verdicts,
            Err(e) => {
                let reason = e.to_string();
                images.iter().map(|_| unreadable(Error::Unjudged(reason.clone()))).collect()
            }
        }
    }

    fn try_judge(
        &self,
        images: &[Image],
        shape: [usize; 3],
        detector: &DetectorConfig,
        device: &B::Device,
    ) -> Result<Vec<Verdict>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let source = ImageBatchSource::new(images, shape[0], shape[1], shape[2])?;
        let judge = Judge::new(&self.model, &self.fit.clusters, shape, detector, device).quiet();
        let mut evidence = judge.assign(&source);
        let stages = judge.complete(&source, &mut evidence, &self.fit)?;
        Ok(evidence
            .iter()
            .zip(stages)
            .map(|(e, stage)| Verdict {
                removed: stage.is_some(),
                stage,
                score: e.masking_score(),
                cluster: Some(e.cluster),
                trigger_box: stage.and(e.trigger_box),
                original_box: None,
                error: None,
            })
            .collect())
    }
}
