//! The detector (docs/design.md §2–§3), two signals fused:
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
pub mod resnet;
pub mod threat;

mod config;
mod decisions;
mod evidence;
mod judge;
mod pruning;

pub use config::{DetectorConfig, Localizer, Signals, StageSwitches};
pub use decisions::Decisions;
pub use evidence::{Detection, Evidence, RecurrenceHit, Stage, StageCost};
pub use judge::{Judge, MaskingFit};

use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::detect::activation::ActivationProbe;
use crate::detect::cluster::Clusters;
use crate::detect::embed::Embed;
use crate::detect::localize::gradcam::GradCam;
use crate::detect::localize::{Localize, Scene};
use crate::detect::recurrence::{HeldImages, ImageRows};
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

/// [`detect`], also returning what masking fitted (its clusters, paste references, classifier and
/// decisions), for a guard to judge new samples by.
pub fn detect_and_fit<B: AutodiffBackend>(
    backbone: Option<&dyn Embed<B::InnerBackend>>,
    images: &ImageBatchSource,
    natives: &[Image],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, Option<MaskingFit<B::InnerBackend>>)> {
    let held = HeldImages(natives);
    let input = DetectorInput { images: Some(images), shape: images.shape(), natives: &held };
    detect_input::<B>(backbone, &input, |r| Ok(natives[r].clone()), config, device)
}

/// What the detector looks at: the images at the working size (needed by the masking signal
/// only; `shape` is their `[N, C, H, W]` either way) and the same images as recurrence reads
/// them, by row, with the boxes it finds in each row's own pixels.
pub struct DetectorInput<'a> {
    /// The working copies, or `None` when masking does not run and none were built.
    pub images: Option<&'a ImageBatchSource>,
    /// `[N, C, H, W]` of the working size.
    pub shape: [usize; 4],
    /// The images recurrence streams over, rows as in `images`.
    pub natives: &'a dyn ImageRows,
}

/// Runs the detector on `input`; `read_capped` gives a row at a size the exhaustive miner can
/// hold (small images are held all at once; photos are streamed instead).
pub fn detect_input<B: AutodiffBackend>(
    backbone: Option<&dyn Embed<B::InnerBackend>>,
    input: &DetectorInput,
    read_capped: impl Fn(usize) -> Result<Image>,
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, Option<MaskingFit<B::InnerBackend>>)> {
    config.check()?;
    let [n, _, h, w] = input.shape;
    if n == 0 {
        return Err(Error::NoInput("the detector"));
    }
    if input.natives.len() != n {
        return Err(Error::Config(format!("{} native images for {n} working images", input.natives.len())));
    }
    let started = Instant::now();
    let recurrence =
        if config.signals.recurrence { Some(config.recurrence.find_rows(input.natives, read_capped)?) } else { None };
    let recurrence_seconds = started.elapsed().as_secs_f64();
    let (mut detection, fit) = if config.signals.masking {
        let backbone = backbone.ok_or_else(|| Error::Config("the masking signal needs a threat model".into()))?;
        let images = input.images.ok_or_else(|| Error::Config("the masking signal needs the working images".into()))?;
        let (detection, fit) = pruning::masking::<B>(backbone, images, config, device)?;
        (detection, Some(fit))
    } else {
        (Detection::empty(n), None)
    };
    if let Some(found) = recurrence {
        let mut carriers = Vec::new();
        for (patch, carrier) in found.carriers() {
            let patch_box = scale_box(carrier.patch_box, input.natives.size(carrier.image), [h, w]);
            detection.evidence[carrier.image].recurrence =
                Some(RecurrenceHit { patch, distance: carrier.distance, patch_box });
            carriers.push(carrier.image);
        }
        carriers.dedup();
        detection.removed.retain(|(i, _)| carriers.binary_search(i).is_err());
        detection.removed.extend(carriers.into_iter().map(|i| (i, Stage::Recurrence)));
        detection.removed.sort_by_key(|&(i, _)| i);
        detection
            .cost
            .insert(0, StageCost { stage: "recurrence".into(), seconds: recurrence_seconds, forwards_per_image: 0.0 });
        detection.templates = found.patches.iter().map(|p| p.template()).collect();
        detection.recurrence = Some(found.summary);
    }
    Ok((detection, fit))
}

/// The trigger box and localisation score of each of `indices`, toward cluster `targets[i]`
/// (its own), by the configured localiser.
#[allow(clippy::too_many_arguments)]
pub fn locate<B: Backend>(
    backbone: &dyn Embed<B>,
    clusters: &Clusters,
    probe: &ActivationProbe<B>,
    images: &ImageBatchSource,
    indices: &[usize],
    targets: &[usize],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<Vec<(PixelBox, f32)>> {
    let [_, _, h, w] = images.shape();
    let gradcam = GradCam { side: config.cam.window_side(h, w), batch_size: config.batch_size };
    let localizer: &dyn Localize<B> = match config.localizer {
        Localizer::PoisonCam => &config.cam,
        Localizer::PatchSearch => &gradcam,
    };
    let scene = Scene { encoder: backbone, clusters, probe, images, device };
    Ok(localizer.localize(&scene, indices, targets)?.into_iter().map(|l| (l.trigger_box, l.score)).collect())
}
