//! What the detector found: per-sample evidence, the removals with the stage that decided each,
//! and what every stage cost.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::detect::masking::cluster::Clusters;
use crate::detect::masking::paste::PasteScore;
use crate::detect::masking::Decisions;
use crate::detect::recurrence::{PatchTemplate, RecurrenceSummary};
use crate::detect::signal::{Finding, SignalReport};
use crate::image::{Image, PixelBox};

/// The stage whose evidence removed a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The sample carries a patch that recurs, unchanged, across images.
    Recurrence,
    /// Masking alone: the sample's masking score is an outlier in its cluster (CAM-only runs).
    Masking,
    /// Its located patch moved clean images toward its cluster in the paste test.
    Paste,
    /// The validated poison classifier flagged it.
    Classifier,
    /// The item's image could not be read, so nothing can vouch for it (the filter's verdict).
    Unreadable,
    /// Its stored bytes hash to a value on the deny list of known poisons.
    Deny,
    /// Its chroma DCT coefficients lean along a pattern that a minority of images share (a
    /// frequency trigger such as CTRL's).
    Spectral,
    /// Its high-pass residual stands out on a pattern that a minority of images of different
    /// content share (a blended key).
    Residual,
}

impl Stage {
    /// The name used in the removal log.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Recurrence => "recurrence",
            Stage::Masking => "masking",
            Stage::Paste => "paste",
            Stage::Classifier => "classifier",
            Stage::Unreadable => "unreadable",
            Stage::Deny => "deny",
            Stage::Spectral => "spectral",
            Stage::Residual => "residual",
        }
    }
}

/// Everything the detector learnt about one sample; `None` where a stage did not look at it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The threat model's cluster; 0 when masking did not run.
    pub cluster: usize,
    /// The recurring patch this sample carries.
    #[serde(default)]
    pub recurrence: Option<RecurrenceHit>,
    /// The box the localiser found, in working-size pixels.
    pub trigger_box: Option<PixelBox>,
    /// Masking score (PoisonCAM) or Grad-CAM peak (PatchSearch).
    pub localisation_score: Option<f32>,
    /// The paste test of its located box.
    pub paste: Option<PasteScore>,
    /// The poison classifier's probability.
    pub poison_probability: Option<f32>,
}

impl Evidence {
    /// The strength of masking's evidence: the classifier's probability, else the paste share,
    /// else the masking score.
    pub fn masking_score(&self) -> f32 {
        self.poison_probability.or(self.paste.map(|p| p.moved)).or(self.localisation_score).unwrap_or(0.0)
    }
}

/// A sample's copy of a recurring patch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrenceHit {
    /// Index of the patch among the detection's recurring patches.
    pub patch: usize,
    /// radius / (radius + RMS distance to the patch's template): 1 for an exact copy, ½ at the radius.
    pub score: f32,
    /// Where the patch sits, in working-size pixels.
    pub patch_box: PixelBox,
}

/// Wall time of one stage (of the detector, or of an eval run), and the encoder forward passes
/// per input image where the stage counts them (0 where it does not: training, the attack).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageCost {
    /// The stage's name in reports (`embed`, `cluster_pruning`, …).
    pub stage: String,
    /// Wall time.
    pub seconds: f64,
    /// Encoder forwards per input image.
    #[serde(default)]
    pub forwards_per_image: f64,
}

/// The detector's output.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The threat model's clusters; `None` when masking did not run.
    pub clusters: Option<Clusters>,
    /// What the recurrence stage looked at; `None` when it did not run.
    pub recurrence: Option<RecurrenceSummary>,
    /// The recurring patches it confirmed, for screening new samples.
    pub templates: Vec<PatchTemplate>,
    /// What other training-free signals' screens look for, drawn, by signal name (the spectral
    /// pattern, amplified).
    pub drawn: Vec<(String, Image)>,
    /// What every stage learnt about each sample, by row.
    pub evidence: Vec<Evidence>,
    /// Removed indices in increasing order, with the deciding stage.
    pub removed: Vec<(usize, Stage)>,
    /// Best paste score among each cluster's probes.
    pub cluster_scores: Vec<f32>,
    /// Masking's dataset-level decisions (kept clusters, thresholds); empty when it did not run.
    pub decisions: Decisions,
    /// Held-out balanced accuracy of the poison classifier; below the configured minimum its
    /// verdicts are not used and only the paste test's removals stand.
    pub classifier_validation: Option<f32>,
    /// Samples the validated classifier flagged beyond the paste test's removals; above
    /// `max_flagged_share` of all samples its verdicts are not used.
    pub classifier_flagged: Option<usize>,
    /// Why the poison classifier could not be trained, when it could not; the paste test's
    /// removals stand without it.
    pub classifier_skipped: Option<String>,
    /// Wall time and forwards per image of every stage, in order.
    pub cost: Vec<StageCost>,
    /// The training-free signals' fold, by row: the finding that decided, where one did.
    pub findings: Vec<Option<Finding>>,
    /// What each training-free signal looked at, in fold order.
    pub signals: Vec<SignalReport>,
}

impl Detection {
    /// The strength of the evidence against a sample: the training-free finding's score where
    /// one decided, else the classifier's probability, the paste share or the masking score.
    pub fn score_of(&self, index: usize) -> f32 {
        match self.findings.get(index).copied().flatten() {
            Some(finding) => finding.score,
            None => self.evidence[index].masking_score(),
        }
    }

    /// The located trigger, in working-size pixels: the training-free finding's box where one
    /// decided (none for a whole-sample finding), else the masking box.
    pub fn box_of(&self, index: usize) -> Option<PixelBox> {
        match self.findings.get(index).copied().flatten() {
            Some(finding) => finding.trigger_box,
            None => self.evidence[index].trigger_box,
        }
    }

    /// The same box in the sample's own pixels, where a training-free finding gave it.
    pub fn original_box_of(&self, index: usize) -> Option<PixelBox> {
        self.findings.get(index).copied().flatten().and_then(|f| f.original_box)
    }
}

/// Stage costs as they are recorded, per input image.
pub(crate) struct Costs {
    pub(crate) list: Vec<StageCost>,
    pub(crate) images: usize,
}

impl Costs {
    pub(crate) fn record(&mut self, stage: &str, started: Instant, forwards: usize) {
        self.list.push(StageCost {
            stage: stage.to_string(),
            seconds: started.elapsed().as_secs_f64(),
            forwards_per_image: forwards as f64 / self.images.max(1) as f64,
        });
    }
}

impl Detection {
    /// A detection that has looked at nothing yet.
    pub(crate) fn empty(n: usize) -> Self {
        Detection {
            clusters: None,
            recurrence: None,
            templates: Vec::new(),
            drawn: Vec::new(),
            evidence: vec![Evidence::default(); n],
            removed: Vec::new(),
            cluster_scores: Vec::new(),
            decisions: Decisions::default(),
            classifier_validation: None,
            classifier_flagged: None,
            classifier_skipped: None,
            cost: Vec::new(),
            findings: vec![None; n],
            signals: Vec::new(),
        }
    }
}
