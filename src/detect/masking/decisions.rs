//! Masking's dataset-level decisions, frozen when the detector is fitted (docs/design.md §2): which
//! clusters the paste test searches, how far, what a trigger must move, and whether the poison
//! classifier passed its gates. With them fixed, one rule per sample decides, for the samples of
//! the fit and for new ones alike.

use serde::{Deserialize, Serialize};

use crate::detect::{Evidence, Stage};

/// What the fit decided about the data as a whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    /// Clusters whose probes' patches passed the paste test, strongest first.
    pub kept_clusters: Vec<usize>,
    /// For each kept cluster (same order), the lowest localisation score a member needs to be
    /// paste-tested: the score of the last candidate the fit searched (`None`: every member is one).
    pub candidate_floor: Vec<Option<f32>>,
    /// Share of the references a located patch must move to count as a trigger; `None` when the
    /// paste test did not run.
    pub paste_threshold: Option<f32>,
    /// The poison classifier's threshold, when its sweep passed the validation gate and the
    /// plausible-share cap; `None`: the classifier decides nothing.
    pub classifier_threshold: Option<f32>,
    /// Masking without the paste test: each cluster's outlier limit on the localisation score.
    /// Empty when the paste test ran.
    pub masking_limits: Vec<f32>,
}

impl Decisions {
    /// Whether a sample of `cluster` is localised: every sample when masking decides alone, else
    /// the members of the kept clusters.
    pub fn needs_box(&self, cluster: usize) -> bool {
        !self.masking_limits.is_empty() || self.kept_clusters.contains(&cluster)
    }

    /// Whether a sample of `cluster` whose box scored `score` is paste-tested.
    pub fn needs_paste(&self, cluster: usize, score: Option<f32>) -> bool {
        let Some(position) = self.kept_clusters.iter().position(|&k| k == cluster) else { return false };
        let floor = self.candidate_floor.get(position).copied().flatten();
        self.paste_threshold.is_some() && score.is_some_and(|s| floor.is_none_or(|f| s >= f))
    }

    /// The stage that removes a sample with evidence `e`, if any: the paste test before the
    /// classifier, which sweeps what the paste test left.
    pub fn decide(&self, e: &Evidence) -> Option<Stage> {
        if !self.masking_limits.is_empty() {
            let limit = self.masking_limits.get(e.cluster).copied().unwrap_or(f32::INFINITY);
            return (e.localisation_score.unwrap_or(0.0) > limit).then_some(Stage::Masking);
        }
        let pasted = self.paste_threshold.is_some_and(|threshold| {
            self.needs_paste(e.cluster, e.localisation_score) && e.paste.is_some_and(|p| p.moved > threshold)
        });
        if pasted {
            return Some(Stage::Paste);
        }
        let flagged = self.classifier_threshold.is_some_and(|t| e.poison_probability.is_some_and(|p| p > t));
        flagged.then_some(Stage::Classifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::masking::paste::PasteScore;

    fn evidence(cluster: usize, score: f32, moved: Option<f32>, probability: Option<f32>) -> Evidence {
        Evidence {
            cluster,
            localisation_score: Some(score),
            paste: moved.map(|moved| PasteScore { moved, into: cluster, pull: 0.0 }),
            poison_probability: probability,
            ..Evidence::default()
        }
    }

    fn fitted() -> Decisions {
        Decisions {
            kept_clusters: vec![3, 1],
            candidate_floor: vec![Some(0.5), None],
            paste_threshold: Some(0.2),
            classifier_threshold: Some(0.6),
            masking_limits: Vec::new(),
        }
    }

    #[test]
    fn a_paste_removal_needs_a_kept_cluster_a_candidates_score_and_a_large_move() {
        let d = fitted();
        assert_eq!(d.decide(&evidence(3, 0.7, Some(0.5), None)), Some(Stage::Paste));
        assert_eq!(d.decide(&evidence(3, 0.4, Some(0.5), None)), None, "below the cluster's candidate floor");
        assert_eq!(d.decide(&evidence(2, 0.9, Some(0.9), None)), None, "cluster 2 was not kept");
        assert_eq!(d.decide(&evidence(1, -3.0, Some(0.21), None)), Some(Stage::Paste));
        assert_eq!(d.decide(&evidence(1, 0.9, Some(0.2), None)), None, "the move must exceed the threshold");
    }

    #[test]
    fn the_classifier_sweeps_what_the_paste_test_left_and_only_when_it_passed_its_gates() {
        let d = fitted();
        assert_eq!(d.decide(&evidence(2, 0.0, None, Some(0.61))), Some(Stage::Classifier));
        assert_eq!(d.decide(&evidence(3, 0.9, Some(0.9), Some(0.99))), Some(Stage::Paste));
        assert_eq!(d.decide(&evidence(2, 0.0, None, Some(0.6))), None);
        let gated = Decisions { classifier_threshold: None, ..fitted() };
        assert_eq!(gated.decide(&evidence(2, 0.0, None, Some(0.99))), None);
    }

    #[test]
    fn masking_alone_compares_each_score_to_its_own_clusters_limit() {
        let d = Decisions { masking_limits: vec![0.5, 0.9], ..Decisions::default() };
        assert!(d.needs_box(1) && !d.needs_paste(1, Some(1.0)));
        assert_eq!(d.decide(&evidence(0, 0.6, None, None)), Some(Stage::Masking));
        assert_eq!(d.decide(&evidence(1, 0.6, None, None)), None);
    }

    #[test]
    fn nothing_is_looked_at_or_removed_when_nothing_was_kept() {
        let d = Decisions { paste_threshold: Some(0.3), ..Decisions::default() };
        assert!(!d.needs_box(0));
        assert_eq!(d.decide(&evidence(0, 1.0, Some(1.0), Some(1.0))), None);
    }
}
