//! What the guard says of one sample.

use serde::{Deserialize, Serialize};

use crate::detect::signal::Finding;
use crate::detect::Stage;
use crate::error::Error;
use crate::image::PixelBox;

/// The guard's judgement of one sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the sample should be dropped.
    pub removed: bool,
    /// Why it was removed: the stage that decided, as in the filter's removals.
    pub stage: Option<Stage>,
    /// The strength of the evidence: radius / (radius + distance) for a recurring patch, else the
    /// classifier's probability, the paste share or the masking score (0 when nothing looked).
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

impl From<Finding> for Verdict {
    /// A training-free signal's finding, as the removal it decides.
    fn from(f: Finding) -> Self {
        Verdict {
            removed: true,
            stage: Some(f.stage),
            score: f.score,
            cluster: None,
            trigger_box: f.trigger_box,
            original_box: f.original_box,
            error: None,
        }
    }
}

/// A sample that carries no patch, judged by a guard without masking.
pub(super) fn passed() -> Verdict {
    Verdict {
        removed: false,
        stage: None,
        score: 0.0,
        cluster: None,
        trigger_box: None,
        original_box: None,
        error: None,
    }
}

pub(super) fn unreadable(e: Error) -> Verdict {
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
