//! Detection metrics (docs/design.md §5): localisation, precision, recall, F1 and clean losses of a
//! detector run, against the simulator's ground truth.

use serde::{Deserialize, Serialize};

use crate::detect::recurrence::RecurrenceSummary;
use crate::detect::{Detection, StageCost};
use crate::filter::report::Removal;
use crate::image::PixelBox;
use crate::sim::attack::GroundTruth;

/// docs/design.md §5's hit rule: the overlap covers half of the smaller box.
pub fn box_hit(located: &PixelBox, truth: &PixelBox) -> bool {
    2 * located.intersection(truth) >= located.area().min(truth.area())
}

/// The metrics of one detector run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionScores {
    /// Share of all true poisons whose box, located directly by the localiser, hits the trigger.
    pub trigger_localization_acc: f64,
    /// Share of the true poisons the pipeline itself localised (probes and kept clusters).
    pub poisons_localised_by_pipeline: f64,
    /// Removed, removed poisons, precision, recall and F1.
    #[serde(flatten)]
    pub removals: RemovalScores,
    /// Poisons in the training set.
    pub true_poisons: usize,
    /// True poisons inside the clusters the paste test kept.
    pub poisons_in_kept_clusters: usize,
    /// Clusters the paste test kept.
    pub kept_clusters: usize,
    /// The share of references a cluster's best probe had to move to be kept.
    #[serde(default)]
    pub paste_threshold: Option<f32>,
    /// Every cluster holding a true poison, with its size and paste score: where to look when
    /// the paste test kept none of them.
    #[serde(default)]
    pub poison_clusters: Vec<PoisonCluster>,
    /// The highest paste scores of clusters holding no true poison, highest first (at most
    /// three): the noise a kept cluster's score has to clear.
    #[serde(default)]
    pub clean_cluster_top_scores: Vec<f32>,
    /// Held-out balanced accuracy of the poison classifier, when one was trained.
    pub classifier_validation: Option<f32>,
    /// Samples that classifier flagged, used or not.
    pub classifier_flagged: Option<usize>,
    /// The true poisons that were kept, with their trigger boxes: where to look when recall falls
    /// short.
    #[serde(default)]
    pub missed: Vec<(usize, PixelBox)>,
    /// What the recurrence signal looked at and found, when it ran.
    #[serde(default)]
    pub recurrence: Option<RecurrenceSummary>,
    /// Wall time and forwards per image of every detector stage.
    pub cost: Vec<StageCost>,
    /// Every removal as the filter reports it (index, id, score, boxes, stage): the lines
    /// `scan` writes to `removed.jsonl`.
    #[serde(default)]
    pub removal_log: Vec<Removal>,
}

/// A cluster holding true poisons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoisonCluster {
    /// Its index.
    pub cluster: usize,
    /// True poisons in it.
    pub poisons: usize,
    /// All its members.
    pub members: usize,
    /// Its best probe's paste score (the share of references moved), when probes were tested.
    pub score: Option<f32>,
}

/// Removals against the ground truth, whichever way they were decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemovalScores {
    /// Samples removed.
    pub removed: usize,
    /// Poisons among them.
    pub removed_poisons: usize,
    /// Poisons over removed.
    pub precision: f64,
    /// Removed poisons over all poisons.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Share of the clean samples that were removed.
    pub clean_removed_rate: f64,
}

/// Scores the removed input indices of a set of `n` samples.
pub fn removal_scores(removed: impl IntoIterator<Item = usize>, truth: &GroundTruth, n: usize) -> RemovalScores {
    let (mut count, mut poisons_removed) = (0, 0);
    for index in removed {
        count += 1;
        poisons_removed += usize::from(truth.is_poisoned(index));
    }
    let poisons = truth.poisoned.len();
    let precision = ratio(poisons_removed, count);
    let recall = ratio(poisons_removed, poisons);
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    RemovalScores {
        removed: count,
        removed_poisons: poisons_removed,
        precision,
        recall,
        f1,
        clean_removed_rate: ratio(count - poisons_removed, n.saturating_sub(poisons)),
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Scores `detection` over `n` samples; `direct` holds the located box of every true poison, in
/// the order of `truth.poisoned` (`None`: nothing located it, a miss).
pub fn detection_scores(
    detection: &Detection,
    truth: &GroundTruth,
    n: usize,
    direct: &[Option<PixelBox>],
) -> DetectionScores {
    let poisons = truth.poisoned.len();
    let hits = truth.poisoned.iter().zip(direct).filter(|((_, t), b)| b.is_some_and(|b| box_hit(&b, t))).count();
    let localised = truth.poisoned.iter().filter(|(i, _)| detection.box_of(*i).is_some()).count();
    let kept: std::collections::HashSet<usize> = detection.decisions.kept_clusters.iter().copied().collect();
    let poison_clusters = poison_clusters(detection, truth);
    DetectionScores {
        trigger_localization_acc: ratio(hits, poisons),
        poisons_localised_by_pipeline: ratio(localised, poisons),
        removals: removal_scores(detection.removed.iter().map(|&(i, _)| i), truth, n),
        true_poisons: poisons,
        poisons_in_kept_clusters: truth
            .poisoned
            .iter()
            .filter(|(i, _)| kept.contains(&detection.evidence[*i].cluster))
            .count(),
        kept_clusters: kept.len(),
        paste_threshold: detection.decisions.paste_threshold,
        clean_cluster_top_scores: clean_cluster_top_scores(&detection.cluster_scores, &poison_clusters, 3),
        poison_clusters,
        classifier_validation: detection.classifier_validation,
        classifier_flagged: detection.classifier_flagged,
        missed: {
            let removed: std::collections::HashSet<usize> = detection.removed.iter().map(|&(i, _)| i).collect();
            truth.poisoned.iter().filter(|(i, _)| !removed.contains(i)).copied().collect()
        },
        recurrence: detection.recurrence.clone(),
        cost: detection.cost.clone(),
        removal_log: Vec::new(),
    }
}

fn poison_clusters(detection: &Detection, truth: &GroundTruth) -> Vec<PoisonCluster> {
    if detection.clusters.is_none() {
        return Vec::new();
    }
    let mut poisons = std::collections::BTreeMap::<usize, usize>::new();
    for (i, _) in &truth.poisoned {
        *poisons.entry(detection.evidence[*i].cluster).or_default() += 1;
    }
    poisons
        .into_iter()
        .map(|(cluster, poisons)| PoisonCluster {
            cluster,
            poisons,
            members: detection.evidence.iter().filter(|e| e.cluster == cluster).count(),
            score: detection.cluster_scores.get(cluster).copied(),
        })
        .collect()
}

/// The `count` best of `scores` (by cluster) outside `poisoned`, highest first.
fn clean_cluster_top_scores(scores: &[f32], poisoned: &[PoisonCluster], count: usize) -> Vec<f32> {
    let mut clean: Vec<f32> = scores
        .iter()
        .enumerate()
        .filter(|(cluster, _)| !poisoned.iter().any(|p| p.cluster == *cluster))
        .map(|(_, &score)| score)
        .collect();
    clean.sort_by(|a, b| b.total_cmp(a));
    clean.truncate(count);
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_needs_half_of_the_smaller_box() {
        let truth = PixelBox { x: 10, y: 10, w: 6, h: 6 };
        assert!(box_hit(&PixelBox { x: 10, y: 10, w: 7, h: 7 }, &truth));
        // 3×6 = 18 of 36: exactly half.
        assert!(box_hit(&PixelBox { x: 13, y: 10, w: 7, h: 7 }, &truth));
        assert!(!box_hit(&PixelBox { x: 14, y: 10, w: 7, h: 7 }, &truth));
        assert!(!box_hit(&PixelBox { x: 0, y: 0, w: 7, h: 7 }, &truth));
    }

    #[test]
    fn removal_scores_count_against_the_truth() {
        let truth = GroundTruth {
            target: 0,
            poisoned: vec![(1, PixelBox { x: 0, y: 0, w: 2, h: 2 }), (4, PixelBox { x: 0, y: 0, w: 2, h: 2 })],
        };
        let s = removal_scores([1, 2, 3], &truth, 10);
        assert_eq!((s.removed, s.removed_poisons), (3, 1));
        assert!((s.precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.recall - 0.5).abs() < 1e-12);
        assert!((s.f1 - 0.4).abs() < 1e-12);
        assert!((s.clean_removed_rate - 2.0 / 8.0).abs() < 1e-12);
        let none = removal_scores([], &truth, 10);
        assert_eq!((none.precision, none.recall, none.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn clean_cluster_scores_leave_out_every_cluster_holding_a_poison() {
        let scores = [0.9, 0.2, 0.4, 0.1, 0.3, 0.8];
        let holding = |cluster| PoisonCluster { cluster, poisons: 1, members: 2, score: Some(scores[cluster]) };
        let poisoned = [holding(0), holding(5)];
        assert_eq!(clean_cluster_top_scores(&scores, &poisoned, 3), vec![0.4, 0.3, 0.2]);
        assert_eq!(clean_cluster_top_scores(&scores, &poisoned, 1), vec![0.4]);
    }
}
