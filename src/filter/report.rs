//! What the filter did: counts, stage costs and every removal, as JSON and JSONL.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::detect::recurrence::RecurrenceSummary;
use crate::detect::signal::SignalReport;
use crate::detect::threat::WarmStartReport;
use crate::detect::{Stage, StageCost};
use crate::durable::write_atomic;
use crate::error::Result;
use crate::image::PixelBox;

/// One removed sample (a line of the removal log).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Removal {
    /// The item's index in the wrapped dataset.
    pub index: usize,
    /// The item's own id (a path, say), or its index when it has none.
    pub id: String,
    /// Poison probability if the classifier ran, else the paste or masking score.
    pub score: f32,
    /// The located trigger, `[x, y, w, h]` in working-size pixels.
    #[serde(rename = "box")]
    pub trigger_box: Option<[usize; 4]>,
    /// The same box in the pixels of the image as read (the original file's), for drawing on it.
    #[serde(default)]
    pub original_box: Option<[usize; 4]>,
    /// The stage that decided.
    pub stage: Stage,
    /// What went wrong, for unreadable items.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// A sample the detector located a trigger in, whether or not it was removed; see
/// [`crate::PoisonFilter::suspicions`].
#[derive(Clone, Debug, PartialEq)]
pub struct Suspicion {
    /// The item's index in the wrapped dataset.
    pub index: usize,
    /// The item's own id, or its index.
    pub id: String,
    /// As in [`Removal::score`].
    pub score: f32,
    /// The located trigger, in working-size pixels.
    pub trigger_box: PixelBox,
    /// Whether the filter removed it.
    pub removed: bool,
}

/// The filter's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterReport {
    /// Items in the wrapped dataset; always `kept + removed`.
    pub total: usize,
    /// Items the filter serves.
    pub kept: usize,
    /// Items removed, unreadable ones included (each is in `removals`).
    pub removed: usize,
    /// The backend the detector ran on (burn's name for it: `flex`, or `cubecl<cuda>` on a GPU).
    pub backend: String,
    /// `[channels, height, width]` every image was resized to.
    pub working_size: [usize; 3],
    /// The threat model's warm start; `None` when none was trained (recurrence alone, or
    /// `fit_with_encoder`).
    pub warm_start: Option<WarmStartReport>,
    /// What the recurrence signal looked at and the patches it found.
    #[serde(default)]
    pub recurrence: Option<RecurrenceSummary>,
    /// Clusters whose located patches passed the paste test and were searched, strongest first.
    pub kept_clusters: Vec<usize>,
    /// Paste share a patch had to move to count as a trigger; `None` when the paste test did
    /// not run (recurrence alone, or masking without it).
    #[serde(default)]
    pub paste_threshold: Option<f32>,
    /// Held-out balanced accuracy of the poison classifier when one was trained; below the
    /// configured minimum its verdicts were not used, and only the paste test's removals stand.
    #[serde(default)]
    pub classifier_validation: Option<f32>,
    /// Samples that classifier flagged; above `max_flagged_share` its verdicts were not used.
    #[serde(default)]
    pub classifier_flagged: Option<usize>,
    /// Why the poison classifier could not be trained, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_skipped: Option<String>,
    /// Wall time and forwards per image of every stage, in order.
    pub cost: Vec<StageCost>,
    /// What each training-free signal looked at and found (before the fold), in fold order.
    #[serde(default)]
    pub signals: Vec<SignalReport>,
    /// Every removed item, with its evidence, in increasing index order.
    pub removals: Vec<Removal>,
    /// Ids of each group of items that share a window together with its surroundings: one
    /// photo repeated (another size, a shifted crop). Reported for a person to look at; never
    /// removed for recurrence.
    #[serde(default)]
    pub duplicates: Vec<Vec<String>>,
}

impl FilterReport {
    /// Writes one JSON object per removal, atomically.
    pub fn write_removal_log(&self, path: &Path) -> Result<()> {
        let mut lines = Vec::new();
        for r in &self.removals {
            serde_json::to_writer(&mut lines, r)?;
            lines.push(b'\n');
        }
        write_atomic(path, &lines)
    }

    /// Writes the report as pretty JSON, atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_atomic(path, &serde_json::to_vec_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_log_is_one_object_per_line() {
        let removal = |index, stage| Removal {
            index,
            id: format!("img/{index}.png"),
            score: 0.9,
            trigger_box: Some([1, 2, 7, 7]),
            original_box: Some([2, 4, 14, 14]),
            stage,
            error: None,
        };
        let report = FilterReport {
            total: 3,
            kept: 1,
            removed: 2,
            backend: "flex".into(),
            working_size: [1, 28, 28],
            warm_start: None,
            recurrence: None,
            kept_clusters: vec![4],
            paste_threshold: None,
            classifier_validation: None,
            classifier_flagged: None,
            classifier_skipped: None,
            cost: vec![],
            signals: Vec::new(),
            removals: vec![removal(0, Stage::Paste), removal(2, Stage::Unreadable)],
            duplicates: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/removed.jsonl");
        report.write_removal_log(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["box"], serde_json::json!([1, 2, 7, 7]));
        assert_eq!(lines[0]["stage"], "paste");
        assert_eq!(lines[1]["stage"], "unreadable");
        assert_eq!(lines[1]["id"], "img/2.png");
        // A report without a paste threshold (recurrence alone) reads back as written.
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<FilterReport>(&json).unwrap(), report);
    }
}
