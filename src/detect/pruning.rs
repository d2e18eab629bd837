//! The masking signal's policy (docs/design.md §3.3–§3.5): embed and cluster, localise a few probes of
//! every cluster, keep the clusters whose located patches pass the paste test, search the kept
//! clusters, and let the poison classifier sweep every sample behind its validation gate.

use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;

use super::evidence::Costs;
use super::{locate, Detection, DetectorConfig, Evidence, Stage};
use crate::detect::activation::ActivationProbe;
use crate::detect::classify::{ClassifierData, PoisonClassifier};
use crate::detect::cluster::Clusters;
use crate::detect::embed::{embed, Embed};
use crate::detect::paste::{median_mad, PasteTest};
use crate::error::Result;
use crate::image::{ImageBatchSource, PixelBox};
use crate::progress::stage_bar;

/// The masking signal: clusters, localisation, the paste test and the poison classifier.
pub(crate) fn masking<B: AutodiffBackend>(
    backbone: &dyn Embed<B::InnerBackend>,
    images: &ImageBatchSource,
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(Detection, Option<PoisonClassifier<B::InnerBackend>>)> {
    let n = images.len();
    let [_, c, h, w] = images.shape();
    let mut costs = Costs { list: Vec::new(), images: n };

    let started = Instant::now();
    let embeddings = embed(backbone, images, config.batch_size, device);
    costs.record("embed", started, n);
    let started = Instant::now();
    let clusters = config.kmeans.fit::<B::InnerBackend>(&embeddings, device)?;
    costs.record("cluster", started, 0);

    let probe = ActivationProbe::new(backbone, &clusters, [c, h, w], config.batch_size, device);
    let mut evidence: Vec<Evidence> =
        clusters.assignments.iter().map(|&cluster| Evidence { cluster, ..Evidence::default() }).collect();
    let mut search = Search::<B::InnerBackend> {
        backbone,
        images,
        clusters: &clusters,
        probe: &probe,
        config,
        device,
        evidence: &mut evidence,
    };

    if !config.stages.paste {
        let started = Instant::now();
        let all: Vec<usize> = (0..n).collect();
        search.localise(&all, "masking every sample")?;
        costs.record("masking", started, probe.forwards());
        let removed = masking_outliers(&evidence, clusters.k(), config.paste.outlier_mads);
        return Ok((
            Detection {
                clusters: Some(clusters),
                removed: removed.into_iter().map(|i| (i, Stage::Masking)).collect(),
                evidence,
                cost: costs.list,
                ..Detection::empty(0)
            },
            None,
        ));
    }

    let started = Instant::now();
    let paste_test = PasteTest::new(&config.paste, &probe, images);
    let members = clusters.members();
    let probes = probe_members(&members, config.paste.probes_per_cluster, config.paste.seed);
    search.localise(&probes, "localising cluster probes")?;
    search.paste(&paste_test, &probes, "paste test on probes");
    let cluster_scores: Vec<f32> = members
        .iter()
        .map(|m| m.iter().filter_map(|&i| search.evidence[i].paste.map(|p| p.moved)).fold(0.0, f32::max))
        .collect();
    let (median, mad) = median_mad(&cluster_scores);
    let paste_threshold = (median + config.paste.outlier_mads as f32 * mad).max(config.paste.min_moved as f32);
    let mut kept_clusters: Vec<usize> = (0..clusters.k()).filter(|&k| cluster_scores[k] > paste_threshold).collect();
    kept_clusters.sort_by(|&a, &b| cluster_scores[b].total_cmp(&cluster_scores[a]).then(a.cmp(&b)));
    let cap = ((clusters.k() as f64 * config.paste.kept_cluster_share).ceil() as usize).max(1);
    kept_clusters.truncate(cap);
    let forwards_before = probe.forwards();
    costs.record("cluster_pruning", started, forwards_before);

    let started = Instant::now();
    let kept_members: Vec<usize> = kept_clusters.iter().flat_map(|&k| members[k].iter().copied()).collect();
    let unlocalised: Vec<usize> =
        kept_members.iter().copied().filter(|&i| search.evidence[i].trigger_box.is_none()).collect();
    search.localise(&unlocalised, "localising kept clusters")?;
    let candidates = top_candidates(search.evidence, &kept_clusters, &members, config.paste.candidates_per_cluster);
    search.paste(&paste_test, &candidates, "paste test on candidates");
    costs.record("paste_test", started, probe.forwards() - forwards_before);

    let mut removed: Vec<(usize, Stage)> = (0..n)
        .filter(|&i| evidence[i].paste.is_some_and(|p| p.moved > paste_threshold))
        .map(|i| (i, Stage::Paste))
        .collect();

    let mut classifier = None;
    let mut classifier_validation = None;
    let mut classifier_flagged = None;
    let mut classifier_skipped = None;
    if config.stages.classifier && !removed.is_empty() {
        let started = Instant::now();
        let pasted: Vec<usize> = removed.iter().map(|&(i, _)| i).collect();
        let mut positives = pasted.clone();
        positives.sort_by(|&a, &b| {
            let key = |i: usize| evidence[i].paste.map(|p| p.rank_key()).unwrap_or(0.0);
            key(b).total_cmp(&key(a)).then(a.cmp(&b))
        });
        let patches: Vec<(usize, PixelBox)> =
            positives.iter().filter_map(|&i| evidence[i].trigger_box.map(|b| (i, b))).collect();
        let clean_pool: Vec<usize> = (0..n)
            .filter(|&i| {
                cluster_scores[evidence[i].cluster] <= median
                    && evidence[i].paste.is_none_or(|p| p.moved <= paste_threshold)
            })
            .collect();
        let data = ClassifierData { images, patches: &patches, clean_pool: &clean_pool };
        // A classifier that cannot be trained (too few clean images, say) loses only its sweep:
        // the paste test's removals stand, and the report says why it did not run.
        let trained = match config.classifier.fit::<B>(&data, device) {
            Ok(trained) => Some(trained),
            Err(e) => {
                classifier_skipped = Some(e.to_string());
                None
            }
        };
        classifier_validation = trained.as_ref().map(|t| t.validation_accuracy);
        let mut forwards = 0;
        if let Some(trained) = trained.filter(|t| t.validation_accuracy >= config.classifier.min_validation_accuracy) {
            let probabilities = trained.predict_all(images, config.batch_size, device);
            forwards =
                (2 * config.classifier.examples_per_class * config.classifier.epochs + n) * config.classifier.ensemble;
            let flagged = sweep(&probabilities, &pasted, config.classifier.threshold);
            classifier_flagged = Some(flagged.len());
            if plausible_share(flagged.len(), n, config.classifier.max_flagged_share) {
                for (e, p) in evidence.iter_mut().zip(&probabilities) {
                    e.poison_probability = Some(*p);
                }
                removed.extend(flagged.into_iter().map(|i| (i, Stage::Classifier)));
                removed.sort_by_key(|&(i, _)| i);
                classifier = Some(trained);
            }
        }
        costs.record("classifier", started, forwards);
    }

    Ok((
        Detection {
            clusters: Some(clusters),
            recurrence: None,
            templates: Vec::new(),
            evidence,
            removed,
            cluster_scores,
            kept_clusters,
            paste_threshold: Some(paste_threshold),
            classifier_validation,
            classifier_flagged,
            classifier_skipped,
            cost: costs.list,
        },
        classifier,
    ))
}

/// Samples above `threshold` that the paste test has not already removed (`already`, sorted).
fn sweep(probabilities: &[f32], already: &[usize], threshold: f32) -> Vec<usize> {
    (0..probabilities.len()).filter(|i| probabilities[*i] > threshold && already.binary_search(i).is_err()).collect()
}

/// Whether flagging `flagged` of `n` samples is within the share a backdoor could plausibly need.
fn plausible_share(flagged: usize, n: usize, max_share: f64) -> bool {
    flagged as f64 <= max_share * n as f64
}

/// The borrowed state of the cluster search.
struct Search<'a, 'b, B: Backend> {
    backbone: &'a dyn Embed<B>,
    images: &'a ImageBatchSource,
    clusters: &'a Clusters,
    probe: &'a ActivationProbe<'a, B>,
    config: &'a DetectorConfig,
    device: &'a B::Device,
    evidence: &'b mut [Evidence],
}

impl<B: Backend> Search<'_, '_, B> {
    /// Locates a trigger box in each of `indices`, toward its own cluster.
    fn localise(&mut self, indices: &[usize], label: &str) -> Result<()> {
        let bar = stage_bar(label, indices.len() as u64);
        let round = self.config.cam.images_per_round.max(1) * 4;
        for chunk in indices.chunks(round) {
            let found = locate(self.backbone, self.clusters, self.probe, self.images, chunk, self.config, self.device)?;
            for (&i, (b, score)) in chunk.iter().zip(found) {
                self.evidence[i].trigger_box = Some(b);
                self.evidence[i].localisation_score = Some(score);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Paste-tests the located box of each of `indices`.
    fn paste(&mut self, test: &PasteTest, indices: &[usize], label: &str) {
        let todo: Vec<(usize, PixelBox, usize)> = indices
            .iter()
            .filter_map(|&i| match (self.evidence[i].trigger_box, self.evidence[i].paste) {
                (Some(b), None) => Some((i, b, self.evidence[i].cluster)),
                _ => None,
            })
            .collect();
        let bar = stage_bar(label, todo.len() as u64);
        // Enough candidates per call to fill whole batches even when few references lie outside
        // a candidate's cluster.
        for chunk in todo.chunks(16) {
            for (&(i, _, _), score) in chunk.iter().zip(test.score_many(self.probe, self.images, chunk)) {
                self.evidence[i].paste = Some(score);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
    }
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

/// In each kept cluster, the members with the highest localisation scores.
fn top_candidates(evidence: &[Evidence], kept: &[usize], members: &[Vec<usize>], per_cluster: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for &k in kept {
        let mut m = members[k].clone();
        let score = |i: usize| evidence[i].localisation_score.unwrap_or(f32::NEG_INFINITY);
        m.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
        out.extend(m.into_iter().take(per_cluster));
    }
    out
}

/// Masking alone: samples whose masking score is an outlier within their own cluster.
fn masking_outliers(evidence: &[Evidence], k: usize, mads: f64) -> Vec<usize> {
    let mut scores = vec![Vec::new(); k];
    for e in evidence {
        scores[e.cluster].push(e.localisation_score.unwrap_or(0.0));
    }
    let limits: Vec<f32> = scores
        .iter()
        .map(|s| {
            let (m, mad) = median_mad(s);
            m + mads as f32 * mad.max(1e-6)
        })
        .collect();
    (0..evidence.len())
        .filter(|&i| evidence[i].localisation_score.unwrap_or(0.0) > limits[evidence[i].cluster])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn masking_outliers_are_relative_to_the_cluster() {
        let e = |cluster, s| Evidence { cluster, localisation_score: Some(s), ..Evidence::default() };
        // Cluster 1's scores are all high; only cluster 0's lone spike is an outlier.
        let evidence = vec![e(0, 0.1), e(0, 0.11), e(0, 0.09), e(0, 0.9), e(1, 0.8), e(1, 0.82), e(1, 0.79)];
        assert_eq!(masking_outliers(&evidence, 2, 4.0), vec![3]);
    }
}
