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

use std::time::Instant;

use burn::config::Config;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::detect::activation::ActivationProbe;
use crate::detect::classify::{ClassifierConfig, ClassifierData, PoisonClassifier};
use crate::detect::cluster::{Clusters, KMeansConfig};
use crate::detect::embed::{embed, Embed};
use crate::detect::localize::gradcam::GradCam;
use crate::detect::localize::masking::CamConfig;
use crate::detect::localize::{Localize, Scene};
use crate::detect::paste::{median_mad, PasteConfig, PasteScore, PasteTest};
use crate::detect::recurrence::{PatchTemplate, RecurrenceConfig, RecurrenceSummary};
use crate::error::{Error, Result};
use crate::image::ImageBatchSource;
use crate::image::{Image, PixelBox};
use crate::progress::stage_bar;

/// How candidate trigger boxes are located.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Localizer {
    /// Cluster activation masking (this crate's method).
    PoisonCam,
    /// Grad-CAM of the cluster score, as PatchSearch does (the baseline).
    PatchSearch,
}

/// Which stages after localisation run; `eval --stages` ablates with these.
#[derive(Config, Debug, PartialEq)]
pub struct StageSwitches {
    /// The paste test with cluster-level pruning. Without it, masking alone decides: a sample is
    /// removed when its masking score is an outlier within its cluster. Default on.
    #[config(default = true)]
    pub paste: bool,
    /// The poison classifier over all samples. Needs the paste test. Default on.
    #[config(default = true)]
    pub classifier: bool,
}

/// Which evidence the detector gathers; `eval --signals` ablates with these.
#[derive(Config, Debug, PartialEq)]
pub struct Signals {
    /// Patches that recur across images (training-free). Default on.
    #[config(default = true)]
    pub recurrence: bool,
    /// Cluster activation masking on the threat model, with the paste test and classifier that
    /// `stages` switches. Default on.
    #[config(default = true)]
    pub masking: bool,
}

/// Settings of every detector stage.
#[derive(Config, Debug, PartialEq)]
pub struct DetectorConfig {
    #[config(default = "Signals::new()")]
    pub signals: Signals,
    #[config(default = "RecurrenceConfig::new()")]
    pub recurrence: RecurrenceConfig,
    #[config(default = "KMeansConfig::new()")]
    pub kmeans: KMeansConfig,
    #[config(default = "CamConfig::new()")]
    pub cam: CamConfig,
    #[config(default = "PasteConfig::new()")]
    pub paste: PasteConfig,
    #[config(default = "ClassifierConfig::new()")]
    pub classifier: ClassifierConfig,
    #[config(default = "Localizer::PoisonCam")]
    pub localizer: Localizer,
    #[config(default = "StageSwitches::new()")]
    pub stages: StageSwitches,
    /// Images per forward pass. Default 512.
    #[config(default = 512)]
    pub batch_size: usize,
}

/// The stage whose evidence removed a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The sample carries a patch that recurs, unchanged, across images.
    Recurrence,
    Masking,
    Paste,
    Classifier,
    /// The item's image could not be read, so nothing can vouch for it (the filter's verdict).
    Unreadable,
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
    pub trigger_box: Option<PixelBox>,
    /// Masking score (PoisonCAM) or Grad-CAM peak (PatchSearch).
    pub localisation_score: Option<f32>,
    pub paste: Option<PasteScore>,
    pub poison_probability: Option<f32>,
}

/// A sample's copy of a recurring patch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrenceHit {
    /// Index of the patch among the detection's recurring patches.
    pub patch: usize,
    /// RMS distance to the patch's template.
    pub distance: f32,
    /// Where the patch sits, in working-size pixels.
    pub patch_box: PixelBox,
}

/// Wall time of one stage (of the detector, or of an eval run), and the encoder forward passes
/// per input image where the stage counts them (0 where it does not: training, the attack).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageCost {
    pub stage: String,
    pub seconds: f64,
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
    pub evidence: Vec<Evidence>,
    /// Removed indices in increasing order, with the deciding stage.
    pub removed: Vec<(usize, Stage)>,
    /// Best paste score among each cluster's probes.
    pub cluster_scores: Vec<f32>,
    /// Clusters that stood out and were searched, strongest first.
    pub kept_clusters: Vec<usize>,
    /// Paste share a patch must move to count as a trigger, from the spread of cluster scores.
    pub paste_threshold: f32,
    /// Held-out balanced accuracy of the poison classifier; below the configured minimum its
    /// verdicts are not used and only the paste test's removals stand.
    pub classifier_validation: Option<f32>,
    /// Samples the validated classifier flagged beyond the paste test's removals; above
    /// `max_flagged_share` of all samples its verdicts are not used.
    pub classifier_flagged: Option<usize>,
    pub cost: Vec<StageCost>,
}

impl Detection {
    /// The strength of the evidence against a sample: 1 for a recurring patch's carrier, else the
    /// classifier's probability, the paste share or the masking score.
    pub fn score_of(&self, index: usize) -> f32 {
        let e = &self.evidence[index];
        if e.recurrence.is_some() {
            return 1.0;
        }
        e.poison_probability.or(e.paste.map(|p| p.moved)).or(e.localisation_score).unwrap_or(0.0)
    }

    /// The located trigger: the recurring patch where there is one, else the masking box.
    pub fn box_of(&self, index: usize) -> Option<PixelBox> {
        let e = &self.evidence[index];
        e.recurrence.map(|r| r.patch_box).or(e.trigger_box)
    }
}

struct Costs {
    list: Vec<StageCost>,
    images: usize,
}

impl Costs {
    fn record(&mut self, stage: &str, started: Instant, forwards: usize) {
        self.list.push(StageCost {
            stage: stage.to_string(),
            seconds: started.elapsed().as_secs_f64(),
            forwards_per_image: forwards as f64 / self.images.max(1) as f64,
        });
    }
}

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
        masking::<B>(backbone, images, config, device)?
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

impl DetectorConfig {
    /// Rejects settings that cannot work, before any image is read.
    pub fn check(&self) -> Result<()> {
        if !self.signals.recurrence && !self.signals.masking {
            return Err(Error::Config("every signal is off: nothing could be detected".into()));
        }
        if self.signals.masking && self.localizer == Localizer::PatchSearch && !self.stages.paste {
            return Err(Error::Config("the PatchSearch baseline needs the paste test".into()));
        }
        if self.signals.recurrence {
            self.recurrence.check()?;
        }
        Ok(())
    }
}

/// `b` in an image of `from = [h, w]` pixels, in an image of `to` pixels.
pub fn scale_box(b: PixelBox, from: [usize; 2], to: [usize; 2]) -> PixelBox {
    if from == to {
        return b;
    }
    let sy = to[0] as f64 / from[0] as f64;
    let sx = to[1] as f64 / from[1] as f64;
    let x = (b.x as f64 * sx).floor() as usize;
    let y = (b.y as f64 * sy).floor() as usize;
    let x1 = ((b.x + b.w) as f64 * sx).ceil().min(to[1] as f64) as usize;
    let y1 = ((b.y + b.h) as f64 * sy).ceil().min(to[0] as f64) as usize;
    PixelBox { x, y, w: x1.saturating_sub(x).max(1), h: y1.saturating_sub(y).max(1) }
}

impl Detection {
    /// A detection that has looked at nothing yet.
    fn empty(n: usize) -> Self {
        Detection {
            clusters: None,
            recurrence: None,
            templates: Vec::new(),
            evidence: vec![Evidence::default(); n],
            removed: Vec::new(),
            cluster_scores: Vec::new(),
            kept_clusters: Vec::new(),
            paste_threshold: f32::NAN,
            classifier_validation: None,
            classifier_flagged: None,
            cost: Vec::new(),
        }
    }
}

/// The masking signal: clusters, localisation, the paste test and the poison classifier.
fn masking<B: AutodiffBackend>(
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
                recurrence: None,
                templates: Vec::new(),
                removed: removed.into_iter().map(|i| (i, Stage::Masking)).collect(),
                evidence,
                cluster_scores: Vec::new(),
                kept_clusters: Vec::new(),
                paste_threshold: f32::NAN,
                classifier_validation: None,
                classifier_flagged: None,
                cost: costs.list,
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
        let trained = config.classifier.fit::<B>(&data, device)?;
        classifier_validation = Some(trained.validation_accuracy);
        let mut forwards = 0;
        if trained.validation_accuracy >= config.classifier.min_validation_accuracy {
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
            paste_threshold,
            classifier_validation,
            classifier_flagged,
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
        let bar = stage_bar(label, indices.len() as u64);
        for &i in indices {
            if let (Some(b), None) = (self.evidence[i].trigger_box, self.evidence[i].paste) {
                let cluster = self.evidence[i].cluster;
                self.evidence[i].paste = Some(test.score(self.probe, self.images, i, &b, cluster));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
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
