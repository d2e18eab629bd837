//! The detector's order: the training-free signals folded in the registry's order, then masking
//! for the rows they left; a training-free finding decides its row.

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::detect::embed::Embed;
use crate::detect::fold::fit_all;
use crate::detect::masking::{self, MaskingFit};
use crate::detect::recurrence::{HeldImages, ImageRows, RecurrenceSummary, TemplateScreen};
use crate::detect::signal::{Screen, SignalInput};
use crate::detect::{Detection, DetectorConfig, RecurrenceHit, Stage};
use crate::error::{Error, Result};
use crate::image::{Image, ImageBatchSource};

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

/// What a detector fit leaves for a guard to judge new samples by.
pub struct DetectorFit<B: Backend> {
    /// The training-free signals' screens, in fold order.
    pub screens: Vec<Box<dyn Screen>>,
    /// What masking fitted (its clusters, paste references, classifier and decisions), where it ran.
    pub masking: Option<MaskingFit<B>>,
}

/// [`detect`], also returning what the signals fitted, for a guard to judge new samples by.
pub fn detect_and_fit<B: AutodiffBackend>(
    backbone: Option<&dyn Embed<B::InnerBackend>>,
    images: &ImageBatchSource,
    natives: &[Image],
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, DetectorFit<B::InnerBackend>)> {
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
    read_capped: impl Fn(usize) -> Result<Image> + Sync,
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, DetectorFit<B::InnerBackend>)> {
    config.check()?;
    let [n, _, h, w] = input.shape;
    if n == 0 {
        return Err(Error::NoInput("the detector"));
    }
    if input.natives.len() != n {
        return Err(Error::Config(format!("{} native images for {n} working images", input.natives.len())));
    }
    let signal_input = SignalInput { rows: input.natives, working: [h, w], read_capped: &read_capped, measured: &[] };
    let signals = fit_all(config, &signal_input)?;
    let (mut detection, masking) = if config.signals.masking {
        let backbone = backbone.ok_or_else(|| Error::Config("the masking signal needs a threat model".into()))?;
        let images = input.images.ok_or_else(|| Error::Config("the masking signal needs the working images".into()))?;
        let (detection, fit) = masking::fit::<B>(backbone, images, config, device)?;
        (detection, Some(fit))
    } else {
        (Detection::empty(n), None)
    };
    // The training-free findings decide their rows, masking the rest.
    let mut decided = Vec::new();
    for (row, finding) in signals.findings.iter().enumerate() {
        let Some(finding) = finding else { continue };
        if finding.stage == Stage::Recurrence {
            if let (Some(patch), Some(patch_box)) = (finding.pattern, finding.trigger_box) {
                detection.evidence[row].recurrence = Some(RecurrenceHit { patch, score: finding.score, patch_box });
            }
        }
        decided.push((row, finding.stage));
    }
    detection.removed.retain(|(i, _)| decided.binary_search_by_key(i, |&(r, _)| r).is_err());
    detection.removed.extend(decided);
    detection.removed.sort_by_key(|&(i, _)| i);
    detection.cost.splice(0..0, signals.cost);
    detection.templates = signals
        .screens
        .iter()
        .find_map(|s| s.as_any().downcast_ref::<TemplateScreen>())
        .map(|t| t.templates.clone())
        .unwrap_or_default();
    detection.drawn = signals
        .screens
        .iter()
        .filter(|s| s.is_armed())
        .filter_map(|s| Some((s.name().to_string(), s.drawn()?)))
        .collect();
    detection.recurrence = signals
        .reports
        .iter()
        .find(|r| r.name == "recurrence")
        .map(|r| serde_json::from_value::<RecurrenceSummary>(r.summary.clone()))
        .transpose()?;
    detection.findings = signals.findings;
    detection.signals = signals.reports;
    Ok((detection, DetectorFit { screens: signals.screens, masking }))
}
