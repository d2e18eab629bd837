//! The detector (DESIGN §2–§3), two signals fused:
//! - recurrence (training-free): patches pasted unchanged into many images;
//! - masking (needs the threat model): embed, cluster, localise on a few probes of every cluster,
//!   keep the clusters whose located patches pass the paste test, search those clusters, then let
//!   the poison classifier sweep every sample.
//!
//! A sample is removed when either signal confirms it; each removal records which one did.

pub mod activation;
pub mod classify;
pub mod cluster;
pub mod embed;
pub mod localize;
pub mod paste;
pub mod recurrence;
pub mod threat;

mod config;
mod evidence;
mod pruning;

pub use config::{DetectorConfig, Localizer, Signals, StageSwitches};
pub use evidence::{Detection, Evidence, RecurrenceHit, Stage, StageCost};

use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::detect::activation::ActivationProbe;
use crate::detect::classify::PoisonClassifier;
use crate::detect::cluster::Clusters;
use crate::detect::embed::Embed;
use crate::detect::localize::gradcam::GradCam;
use crate::detect::localize::{Localize, Scene};
use crate::error::{Error, Result};
use crate::image::{scale_box, Image, ImageBatchSource, PixelBox};

/// Runs the detector over `images` (at the working size) and `natives` (the same images at their
/// own resolution, where recurrence is mined). `backbone` is the threat model; the masking signal
/// needs it, recurrence does not.
pub fn detect<B: AutodiffBackend>(
    backbone: Option<&dyn Embed<B::InnerBackend>>,
    images: &ImageBatchSource,
    natives: &[Image],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<Detection> {
    detect_and_fit::<B>(backbone, images, natives, config, device).map(|(d, _)| d)
}

/// [`detect`], also returning the classifier it trained.
pub fn detect_and_fit<B: AutodiffBackend>(
    backbone: Option<&dyn Embed<B::InnerBackend>>,
    images: &ImageBatchSource,
    natives: &[Image],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, Option<PoisonClassifier<B::InnerBackend>>)> {
    config.check()?;
    if images.is_empty() {
        return Err(Error::NoInput("the detector"));
    }
    if natives.len() != images.len() {
        return Err(Error::Config(format!("{} native images for {} working images", natives.len(), images.len())));
    }
    let n = images.len();
    let started = Instant::now();
    let recurrence = if config.signals.recurrence { Some(config.recurrence.find(natives)?) } else { None };
    let recurrence_seconds = started.elapsed().as_secs_f64();
    let (mut detection, classifier) = if config.signals.masking {
        let backbone = backbone.ok_or_else(|| Error::Config("the masking signal needs a threat model".into()))?;
        pruning::masking::<B>(backbone, images, config, device)?
    } else {
        (Detection::empty(n), None)
    };
    if let Some(found) = recurrence {
        let [_, _, h, w] = images.shape();
        let mut carriers = Vec::new();
        for (patch, carrier) in found.carriers() {
            let native = &natives[carrier.image];
            let patch_box = scale_box(carrier.patch_box, [native.height(), native.width()], [h, w]);
            detection.evidence[carrier.image].recurrence =
                Some(RecurrenceHit { patch, distance: carrier.distance, patch_box });
            carriers.push(carrier.image);
        }
        detection.removed.retain(|(i, _)| carriers.binary_search(i).is_err());
        detection.removed.extend(carriers.into_iter().map(|i| (i, Stage::Recurrence)));
        detection.removed.sort_by_key(|&(i, _)| i);
        detection
            .cost
            .insert(0, StageCost { stage: "recurrence".into(), seconds: recurrence_seconds, forwards_per_image: 0.0 });
        detection.templates = found.patches.iter().map(|p| p.template()).collect();
        detection.recurrence = Some(found.summary);
    }
    Ok((detection, classifier))
}

/// The trigger box and localisation score of each of `indices`, toward its own cluster, by the
/// configured localiser.
pub fn locate<B: Backend>(
    backbone: &dyn Embed<B>,
    clusters: &Clusters,
    probe: &ActivationProbe<B>,
    images: &ImageBatchSource,
    indices: &[usize],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<Vec<(PixelBox, f32)>> {
    let [_, _, h, w] = images.shape();
    let targets: Vec<usize> = indices.iter().map(|&i| clusters.assignments[i]).collect();
    let gradcam = GradCam { side: config.cam.window_side(h, w), batch_size: config.batch_size };
    let localizer: &dyn Localize<B> = match config.localizer {
        Localizer::PoisonCam => &config.cam,
        Localizer::PatchSearch => &gradcam,
    };
    let scene = Scene { encoder: backbone, clusters, probe, images, device };
    Ok(localizer.localize(&scene, indices, &targets)?.into_iter().map(|l| (l.trigger_box, l.score)).collect())
}
