//! The masking signal's policy (docs/design.md §3.3–§3.5): embed and cluster, localise a few probes of
//! every cluster, keep the clusters whose located patches pass the paste test, search the kept
//! clusters, and let the poison classifier sweep every sample behind its validation gate.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;

use crate::detect::embed::{embed, Embed};
use crate::detect::evidence::Costs;
use crate::detect::masking::classify::{ClassifierData, PoisonClassifier};
use crate::detect::masking::decisions::Decisions;
use crate::detect::masking::judge::{Judge, MaskingFit};
use crate::detect::masking::paste::{median_mad, PasteConfig, PasteTest};
use crate::detect::{Detection, DetectorConfig, Evidence, Stage};
use crate::error::Result;
use crate::image::{ImageBatchSource, PixelBox};

/// Fits the masking signal on `images`: clusters, the paste test's kept clusters and threshold,
/// and the classifier behind its gates. The removals are then [`Judge::complete`]'s, the rule a
/// guard applies to new samples.
pub(crate) fn fit<B: AutodiffBackend>(
    backbone: &dyn Embed<B::InnerBackend>,
    images: &ImageBatchSource,
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, MaskingFit<B::InnerBackend>)> {
    let n = images.len();
    let [_, c, h, w] = images.shape();
    let mut costs = Costs { list: Vec::new(), images: n };

    let started = Instant::now();
    let embeddings = embed(backbone, images, config.batch_size, device);
    costs.record("embed", started, n);
    let started = Instant::now();
    let clusters = config.kmeans.fit::<B::InnerBackend>(&embeddings, device)?;
    costs.record("cluster", started, 0);

    let mut evidence: Vec<Evidence> =
        clusters.assignments.iter().map(|&cluster| Evidence { cluster, ..Evidence::default() }).collect();
    // Filled in as the fit decides; the judge only ever reads the clusters until the end.
    let mut fit = MaskingFit { clusters, paste: None, classifier: None, decisions: Decisions::default() };
    let judge = Judge::new(backbone, &fit.clusters, [c, h, w], config, device);
    let mut detection = Detection::empty(0);
    if config.stages.paste {
        let (paste, mut decisions) = fit_paste(&judge, images, &mut evidence, &mut detection, &mut costs)?;
        let started = Instant::now();
        let (classifier, forwards) =
            fit_classifier::<B>(&judge, images, &mut evidence, &mut detection, &mut decisions)?;
        if let Some(forwards) = forwards {
            costs.record("classifier", started, forwards);
        }
        (fit.paste, fit.classifier, fit.decisions) = (Some(paste), classifier, decisions);
    } else {
        let started = Instant::now();
        let all: Vec<usize> = (0..n).collect();
        judge.localise(images, &mut evidence, &all, "masking every sample")?;
        costs.record("masking", started, judge.probe().forwards());
        fit.decisions.masking_limits = masking_limits(&evidence, fit.clusters.k(), config.paste.outlier_mads);
    }
    let stages = judge.complete(images, &mut evidence, &fit)?;
    drop(judge);
    detection.removed = stages.into_iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s))).collect();
    detection.decisions = fit.decisions.clone();
    detection.clusters = Some(fit.clusters.clone());
    detection.evidence = evidence;
    detection.cost = costs.list;
    Ok((detection, fit))
}

/// The paste test's dataset-level decisions: probe every cluster, keep the clusters whose probes'
/// patches stand out, localise their members and paste-test the strongest.
fn fit_paste<B: burn::tensor::backend::Backend>(
    judge: &Judge<B>,
    images: &ImageBatchSource,
    evidence: &mut [Evidence],
    detection: &mut Detection,
    costs: &mut Costs,
) -> Result<(PasteTest, Decisions)> {
    let config = judge.config();
    let clusters = judge.clusters();
    let started = Instant::now();
    let paste_test = PasteTest::new(&config.paste, judge.probe(), images);
    let members = clusters.members();
    let probes = probe_members(&members, config.paste.probes_per_cluster, config.paste.seed);
    judge.localise(images, evidence, &probes, "localising cluster probes")?;
    judge.paste(&paste_test, images, evidence, &probes, "paste test on probes");
    let cluster_scores: Vec<f32> = members
        .iter()
        .map(|m| m.iter().filter_map(|&i| evidence[i].paste.map(|p| p.moved)).fold(0.0, f32::max))
        .collect();
    let (median, mad) = median_mad(&cluster_scores);
    let paste_threshold = (median + config.paste.outlier_mads as f32 * mad).max(config.paste.min_moved as f32);
    let kept_clusters = kept_clusters(&cluster_scores, paste_threshold, &config.paste);
    let forwards_before = judge.probe().forwards();
    costs.record("cluster_pruning", started, forwards_before);

    let started = Instant::now();
    let kept_members: Vec<usize> = kept_clusters.iter().flat_map(|&k| members[k].iter().copied()).collect();
    let unlocalised: Vec<usize> = kept_members.iter().copied().filter(|&i| evidence[i].trigger_box.is_none()).collect();
    judge.localise(images, evidence, &unlocalised, "localising kept clusters")?;
    let per_cluster = config.paste.candidates_per_cluster;
    let candidate_floor: Vec<Option<f32>> =
        kept_clusters.iter().map(|&k| candidate_floor(evidence, &members[k], per_cluster)).collect();
    let decisions =
        Decisions { kept_clusters, candidate_floor, paste_threshold: Some(paste_threshold), ..Decisions::default() };
    let candidates: Vec<usize> = kept_members
        .into_iter()
        .filter(|&i| decisions.needs_paste(evidence[i].cluster, evidence[i].localisation_score))
        .collect();
    judge.paste(&paste_test, images, evidence, &candidates, "paste test on candidates");
    costs.record("paste_test", started, judge.probe().forwards() - forwards_before);
    detection.cluster_scores = cluster_scores;
    Ok((paste_test, decisions))
}

/// The classifier a fit keeps, if any, and its forward passes (`None` when it was not tried).
type ClassifierFit<B> = (Option<PoisonClassifier<B>>, Option<usize>);

/// Trains the poison classifier on the paste test's removals and keeps it when it passes its
/// validation gate and flags a plausible share; returns it and its forward passes (`None` when it
/// was not tried), and sets its threshold in `decisions` when it is kept.
fn fit_classifier<B: AutodiffBackend>(
    judge: &Judge<B::InnerBackend>,
    images: &ImageBatchSource,
    evidence: &mut [Evidence],
    detection: &mut Detection,
    decisions: &mut Decisions,
) -> Result<ClassifierFit<B::InnerBackend>> {
    let config = judge.config();
    let n = evidence.len();
    let pasted: Vec<usize> = (0..n).filter(|&i| decisions.decide(&evidence[i]) == Some(Stage::Paste)).collect();
    if !config.stages.classifier || pasted.is_empty() {
        return Ok((None, None));
    }
    let threshold = decisions.paste_threshold.unwrap_or(f32::INFINITY);
    let median = median_mad(&detection.cluster_scores).0;
    let mut positives = pasted.clone();
    positives.sort_by(|&a, &b| {
        let key = |i: usize| evidence[i].paste.map(|p| p.rank_key()).unwrap_or(0.0);
        key(b).total_cmp(&key(a)).then(a.cmp(&b))
    });
    let patches: Vec<(usize, PixelBox)> =
        positives.iter().filter_map(|&i| evidence[i].trigger_box.map(|b| (i, b))).collect();
    let clean_pool: Vec<usize> = (0..n)
        .filter(|&i| {
            detection.cluster_scores[evidence[i].cluster] <= median
                && evidence[i].paste.is_none_or(|p| p.moved <= threshold)
        })
        .collect();
    let data = ClassifierData { images, patches: &patches, clean_pool: &clean_pool };
    // A classifier that cannot be trained (too few clean images, say) loses only its sweep:
    // the paste test's removals stand, and the report says why it did not run.
    let trained = match config.classifier.fit::<B>(&data, judge.device()) {
        Ok(trained) => trained,
        Err(e) => {
            detection.classifier_skipped = Some(e.to_string());
            return Ok((None, Some(0)));
        }
    };
    detection.classifier_validation = Some(trained.validation_accuracy);
    if trained.validation_accuracy < config.classifier.min_validation_accuracy {
        return Ok((None, Some(0)));
    }
    let probabilities = trained.predict_all(images, config.batch_size, judge.device());
    let forwards =
        (2 * config.classifier.examples_per_class * config.classifier.epochs + n) * config.classifier.ensemble;
    let flagged = sweep(&probabilities, &pasted, trained.threshold);
    detection.classifier_flagged = Some(flagged.len());
    if !plausible_share(flagged.len(), n, config.classifier.max_flagged_share) {
        return Ok((None, Some(forwards)));
    }
    for (e, p) in evidence.iter_mut().zip(&probabilities) {
        e.poison_probability = Some(*p);
    }
    decisions.classifier_threshold = Some(trained.threshold);
    Ok((Some(trained), Some(forwards)))
}

/// The clusters whose best probe stands out from the rest and moved at least `min_cluster_moved`,
/// strongest first, at most `kept_cluster_share` of them.
fn kept_clusters(scores: &[f32], threshold: f32, paste: &PasteConfig) -> Vec<usize> {
    let stands_out = |score: f32| score > threshold && score >= paste.min_cluster_moved as f32;
    let mut kept: Vec<usize> = (0..scores.len()).filter(|&k| stands_out(scores[k])).collect();
    kept.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    kept.truncate(((scores.len() as f64 * paste.kept_cluster_share).ceil() as usize).max(1));
    kept
}

/// Samples above `threshold` that the paste test has not already removed (`already`, sorted).
fn sweep(probabilities: &[f32], already: &[usize], threshold: f32) -> Vec<usize> {
    (0..probabilities.len()).filter(|i| probabilities[*i] > threshold && already.binary_search(i).is_err()).collect()
}

/// Whether flagging `flagged` of `n` samples is within the share a backdoor could plausibly need.
fn plausible_share(flagged: usize, n: usize, max_share: f64) -> bool {
    flagged as f64 <= max_share * n as f64
}

/// Up to `per_cluster` seeded random members of every cluster.
fn probe_members(members: &[Vec<usize>], per_cluster: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9b0be);
    let mut out = Vec::new();
    for m in members {
        let take = per_cluster.min(m.len());
        let mut chosen: Vec<usize> = sample(&mut rng, m.len(), take).into_iter().map(|j| m[j]).collect();
        chosen.sort_unstable();
        out.extend(chosen);
    }
    out
}

/// The localisation score of a kept cluster's `per_cluster`-th strongest member: members at or
/// above it are its paste-test candidates. `None` (every member is one) when it has no more.
fn candidate_floor(evidence: &[Evidence], members: &[usize], per_cluster: usize) -> Option<f32> {
    let mut scores: Vec<f32> = members.iter().filter_map(|&i| evidence[i].localisation_score).collect();
    if scores.len() <= per_cluster {
        return None;
    }
    scores.sort_by(|a, b| b.total_cmp(a));
    Some(scores[per_cluster.max(1) - 1])
}

/// Masking alone: each cluster's outlier limit on its members' masking scores.
fn masking_limits(evidence: &[Evidence], k: usize, mads: f64) -> Vec<f32> {
    let mut scores = vec![Vec::new(); k];
    for e in evidence {
        scores[e.cluster].push(e.localisation_score.unwrap_or(0.0));
    }
    scores
        .iter()
        .map(|s| {
            let (m, mad) = median_mad(s);
            m + mads as f32 * mad.max(1e-6)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clusters_close_together_are_not_kept_however_low_the_threshold() {
        let paste = PasteConfig::new();
        let mut scores: Vec<f32> = (0..40).map(|k| 0.04 + 0.001 * k as f32).collect();
        scores[7] = 0.09;
        assert!(kept_clusters(&scores, 0.05, &paste).is_empty(), "0.09 is within clean clusters' chance");
        scores[3] = 0.3;
        scores[9] = 0.5;
        assert_eq!(kept_clusters(&scores, 0.05, &paste), vec![9, 3], "strongest first");
        let open = PasteConfig { min_cluster_moved: 0.0, ..PasteConfig::new() };
        assert_eq!(kept_clusters(&scores, 0.05, &open), vec![9, 3, 7, 39], "capped at a tenth of 40");
    }

    #[test]
    fn sweep_flags_only_what_the_paste_test_left() {
        let p = [0.9, 0.2, 0.7, 0.51, 0.5];
        assert_eq!(sweep(&p, &[2], 0.5), vec![0, 3]);
        assert_eq!(sweep(&p, &[], 0.8), vec![0]);
    }

    #[test]
    fn a_sweep_that_flags_a_fifth_of_the_data_is_not_plausible() {
        // Seed 1's PatchSearch classifier validated at 0.92 yet flagged 1,558 of 8,000.
        assert!(!plausible_share(1558, 8000, 0.1));
        assert!(plausible_share(800, 8000, 0.1));
        assert!(plausible_share(0, 0, 0.1));
    }

    #[test]
    fn probes_are_seeded_members() {
        let members = vec![vec![0, 1, 2, 3, 4, 5], vec![6], vec![]];
        let a = probe_members(&members, 3, 1);
        assert_eq!(a, probe_members(&members, 3, 1));
        assert_eq!(a.len(), 4);
        assert!(a[..3].iter().all(|i| members[0].contains(i)));
        assert_eq!(a[3], 6);
    }

    #[test]
    fn masking_limits_are_relative_to_the_cluster() {
        let e = |cluster, s| Evidence { cluster, localisation_score: Some(s), ..Evidence::default() };
        // Cluster 1's scores are all high; only cluster 0's lone spike is an outlier.
        let evidence = vec![e(0, 0.1), e(0, 0.11), e(0, 0.09), e(0, 0.9), e(1, 0.8), e(1, 0.82), e(1, 0.79)];
        let d = Decisions { masking_limits: masking_limits(&evidence, 2, 4.0), ..Decisions::default() };
        let removed: Vec<usize> = (0..evidence.len()).filter(|&i| d.decide(&evidence[i]).is_some()).collect();
        assert_eq!(removed, vec![3]);
    }

    #[test]
    fn the_candidate_floor_admits_the_strongest_members() {
        let e = |s| Evidence { localisation_score: Some(s), ..Evidence::default() };
        let evidence = vec![e(0.3), e(0.9), e(0.1), e(0.5)];
        assert_eq!(candidate_floor(&evidence, &[0, 1, 2, 3], 2), Some(0.5));
        assert_eq!(candidate_floor(&evidence, &[0, 1, 2, 3], 4), None);
        assert_eq!(candidate_floor(&evidence, &[0, 2], 1), Some(0.3));
    }
}
