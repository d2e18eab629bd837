//! The evaluation harness: poison a dataset with the simulator, warm-start threat models on the
//! poisoned and on the clean data, and measure them (docs/design.md §5). Never used by the detector.

mod detection;
mod downstream;
mod export;
mod implant;
mod knn;
mod split;

#[doc(hidden)]
pub use detection::{box_hit, detection_scores, removal_scores};
pub use detection::{DetectionScores, PoisonCluster, RemovalScores};
#[doc(hidden)]
pub use downstream::{downstream_scores, DownstreamData, DownstreamScores, LabeledImages};
pub use export::export_attack;
pub use implant::{ImplantConfig, ImplantReport};
#[doc(hidden)]
pub use implant::{ImplantRows, TriggerPairs};
#[doc(hidden)]
pub use knn::knn_predict;
#[doc(hidden)]
pub use split::stratified_split;

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::data::ImageDataset;
use crate::detect::embed::Embed;
use crate::detect::masking::activation::ActivationProbe;
use crate::detect::masking::locate;
use crate::detect::resnet::{EncoderFile, ResNetConfig};
use crate::detect::threat::{warm_start, ThreatModel, WarmStartConfig, WarmStartReport};
use crate::detect::{DetectorConfig, StageCost};
use crate::error::{Error, Result};
use crate::filter::{PoisonFilter, PoisonFilterConfig};
use crate::image::ImageBatchSource;
use crate::image::{Image, PixelBox};
use crate::sim::attack::{poison, triggered_test_set, AttackConfig, GroundTruth};

/// A train/test split to evaluate on; both need labels.
pub struct EvalData {
    /// A name for reports.
    pub name: String,
    /// The images the threat model and the detector see.
    pub train: ImageDataset,
    /// Held-out images for the kNN scores.
    pub test: ImageDataset,
}

/// What `eval` runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalConfig {
    /// The simulated attack.
    pub attack: AttackConfig,
    /// The threat model's warm start.
    pub warm_start: WarmStartConfig,
    /// Neighbours of the kNN probe. Default 20.
    pub knn_k: usize,
    /// Also train on the clean data, for the reference numbers. Default true.
    pub compare_clean: bool,
    /// Detector variants run side by side on the poisoned-data threat model.
    pub variants: Vec<DetectorVariant>,
    /// Also train on what the first variant kept and score it downstream. Default false.
    #[serde(default)]
    pub downstream_filtered: bool,
    /// Implant a backdoor into the poisoned-data threat model before detection (testing the
    /// masking path under its premise). Default none.
    #[serde(default)]
    pub implant: Option<ImplantConfig>,
    /// The user's encoder instead of a warm-started threat model: the downstream scores and
    /// detection run on it as it is, and no model is trained. Default none.
    #[serde(default)]
    pub encoder: Option<EncoderFile>,
}

/// A named detector configuration (`full`, `cam-only`, `patchsearch`, …).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetectorVariant {
    /// A name for reports (`full`, `masking`, `patchsearch`, …).
    pub name: String,
    /// The detector settings of this variant.
    pub detector: DetectorConfig,
}

/// One variant's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    /// The variant's name.
    pub name: String,
    /// Its localisation and removal scores against the ground truth.
    #[serde(flatten)]
    pub scores: DetectionScores,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            attack: AttackConfig::default(),
            warm_start: WarmStartConfig::new(),
            knn_k: 20,
            compare_clean: true,
            downstream_filtered: false,
            implant: None,
            encoder: None,
            variants: vec![DetectorVariant { name: "full".into(), detector: DetectorConfig::new() }],
        }
    }
}

/// One trained encoder's scores and its training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// kNN accuracy, attack success and neighbour shares.
    pub downstream: DownstreamScores,
    /// How the encoder was trained.
    pub warm_start: WarmStartReport,
}

/// The implanted threat model's scores and its fine-tune.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImplantResult {
    /// kNN accuracy, attack success and neighbour shares of the implanted model.
    pub downstream: DownstreamScores,
    /// What the fine-tune did.
    pub implant: ImplantReport,
}

/// The user's encoder (`eval --encoder`) and its scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderResult {
    /// kNN accuracy, attack success and neighbour shares of the encoder.
    pub downstream: DownstreamScores,
    /// The ResNet as read from the checkpoint.
    pub config: ResNetConfig,
}

/// The eval JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    /// Where the images came from.
    pub data: String,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// The backend everything ran on.
    pub backend: String,
    /// The settings of the run.
    pub config: EvalConfig,
    /// Poisons in the training set.
    pub poisoned_count: usize,
    /// `ImageBatchSource::fingerprint` of the poisoned training set, as `eval --export` writes it.
    #[serde(default)]
    pub poisoned_fingerprint: String,
    /// `None` when no variant needed a threat model (recurrence alone) and none was trained.
    pub poisoned: Option<ModelResult>,
    /// The poisoned-data model after `--implant`; detection then runs on it.
    #[serde(default)]
    pub implanted: Option<ImplantResult>,
    /// The user's encoder, when detection ran on it instead of a warm-started model.
    #[serde(default)]
    pub encoder: Option<EncoderResult>,
    /// Trained on what the first detector variant kept (`--downstream`).
    pub filtered: Option<ModelResult>,
    /// A model trained on the same training set without poisons, for reference.
    pub clean: Option<ModelResult>,
    /// One row per detector variant.
    pub detection: Vec<VariantResult>,
    /// Wall time of every step of the run.
    pub cost: Vec<StageCost>,
}

fn labels_of(dataset: &ImageDataset, needed: &'static str) -> Result<Vec<usize>> {
    dataset
        .items()
        .iter()
        .enumerate()
        .map(|(index, item)| item.label.ok_or(Error::MissingLabel { index, needed }))
        .collect()
}

fn timed<T>(cost: &mut Vec<StageCost>, stage: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let out = f()?;
    cost.push(StageCost {
        stage: stage.to_string(),
        seconds: started.elapsed().as_secs_f64(),
        forwards_per_image: 0.0,
    });
    Ok(out)
}

/// `set`'s images at `[C, H, W]`.
fn batch_source(set: &ImageDataset, [c, h, w]: [usize; 3]) -> Result<ImageBatchSource> {
    let images: Vec<Image> = set.items().iter().map(|i| i.image.clone()).collect();
    ImageBatchSource::new(&images, c, h, w)
}

impl EvalConfig {
    /// `[C, H, W]` every image of `set` is judged at: the filter's choice, or the encoder's
    /// input size with `--encoder`, so that masking's windows are placed where it looks.
    fn working_shape(&self, set: &ImageDataset) -> [usize; 3] {
        let given = self.encoder.as_ref().map(|e| [e.input_size; 2]);
        crate::image::working_size(set.items().iter().map(|i| &i.image), given, crate::image::DEFAULT_MAX_SHORT_SIDE)
    }

    /// Rejects settings that cannot work, before any attack is built or model trained.
    pub fn check(&self) -> Result<()> {
        crate::sim::attack::check(&self.attack)?;
        self.warm_start.check()?;
        crate::check::at_least("knn_k", self.knn_k, 1, "at least 1")?;
        for variant in &self.variants {
            variant.detector.check()?;
        }
        if let Some(implant) = &self.implant {
            implant.check()?;
            if self.encoder.is_some() {
                return Err(Error::Config(
                    "--implant fine-tunes the crate's own threat model; an --encoder is used as it is".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Runs the downstream evaluation.
pub fn run_eval<B: AutodiffBackend>(data: &EvalData, config: &EvalConfig, device: &B::Device) -> Result<EvalReport> {
    config.check()?;
    let mut cost = Vec::new();
    let attacked = timed(&mut cost, "attack", || poison(&data.train, &config.attack))?;
    let train_labels = labels_of(&data.train, "eval")?;
    let test_labels = labels_of(&data.test, "eval")?;
    let shape = config.working_shape(&attacked.dataset);
    let to_source = |ds: &ImageDataset| batch_source(ds, shape);
    let poisoned_source = to_source(&attacked.dataset)?;
    let clean_source = to_source(&data.train)?;
    let test_source = to_source(&data.test)?;
    let triggered = triggered_test_set(&data.test, &attacked.trigger, &config.attack)?;
    let triggered_source = to_source(&triggered)?;
    let poisoned_rows: Vec<usize> = attacked.truth.poisoned.iter().map(|(i, _)| *i).collect();

    let score =
        |backbone: &dyn Embed<B::InnerBackend>, source: &ImageBatchSource, labels: &[usize], poisoned: &[usize]| {
            let data = DownstreamData {
                bank: LabeledImages { images: source, labels },
                poisoned,
                test: LabeledImages { images: &test_source, labels: &test_labels },
                triggered: &triggered_source,
                target: config.attack.target,
                k: config.knn_k,
            };
            downstream_scores(backbone, &data, 512, device)
        };
    let evaluate = |cost: &mut Vec<StageCost>,
                    name: &str,
                    source: &ImageBatchSource,
                    labels: &[usize],
                    poisoned: &[usize]|
     -> Result<(ModelResult, ThreatModel<B::InnerBackend>)> {
        let (model, report) =
            timed(cost, &format!("warm_start_{name}"), || warm_start::<B>(source, &config.warm_start, None, device))?;
        let scores =
            timed(cost, &format!("downstream_{name}"), || Ok(score(&model.backbone, source, labels, poisoned)))?;
        Ok((ModelResult { downstream: scores, warm_start: report }, model))
    };
    let needs_model = config.encoder.is_none()
        && (config.downstream_filtered
            || config.implant.is_some()
            || config.variants.iter().any(|v| v.detector.signals.masking));
    let (poisoned, mut threat_model) = if needs_model {
        let (result, model) = evaluate(&mut cost, "poisoned", &poisoned_source, &train_labels, &poisoned_rows)?;
        (Some(result), Some(model))
    } else {
        (None, None)
    };
    let mut implanted = None;
    if let (Some(implant), Some(model)) = (&config.implant, threat_model.as_mut()) {
        let (backbone, report) = timed(&mut cost, "implant", || {
            let rows = ImplantRows::new(data, &attacked.trigger, &config.attack, &train_labels)?;
            let triggered = to_source(&rows.triggered)?;
            let pairs = TriggerPairs { clean: &clean_source.subset(&rows.others)?, triggered: &triggered };
            let targets = rows.targets;
            implant.implant::<B>(&model.backbone, &pairs, &clean_source.subset(&targets)?, device)
        })?;
        let downstream = score(&backbone, &poisoned_source, &train_labels, &poisoned_rows);
        model.backbone = backbone;
        implanted = Some(ImplantResult { downstream, implant: report });
    }
    let imported = match &config.encoder {
        Some(file) => Some(timed(&mut cost, "load_encoder", || file.load::<B::InnerBackend>(device))?),
        None => None,
    };
    let encoder = imported.as_ref().map(|(model, config)| EncoderResult {
        downstream: score(model, &poisoned_source, &train_labels, &poisoned_rows),
        config: config.clone(),
    });
    let model: Option<&dyn Embed<B::InnerBackend>> = match (&imported, &threat_model) {
        (Some((resnet, _)), _) => Some(resnet),
        (None, Some(threat)) => Some(&threat.backbone),
        (None, None) => None,
    };
    // The filter owns what it wraps; the poisoned set is not needed past this point, so it moves.
    let dataset = Arc::new(attacked.dataset);
    let mut detection = Vec::new();
    let mut first_removed: Option<Vec<usize>> = None;
    for variant in &config.variants {
        let (scores, removed) = timed(&mut cost, &format!("detect_{}", variant.name), || {
            let input = DetectorInput { model, images: &poisoned_source, dataset: &dataset };
            evaluate_detector::<B>(&input, &attacked.truth, &variant.detector, device)
        })?;
        first_removed.get_or_insert(removed);
        detection.push(VariantResult { name: variant.name.clone(), scores });
    }
    let filtered = match (config.downstream_filtered, first_removed) {
        (true, Some(removed)) => {
            let removed: std::collections::HashSet<usize> = removed.into_iter().collect();
            let kept: Vec<usize> = (0..poisoned_source.len()).filter(|i| !removed.contains(i)).collect();
            let source = poisoned_source.subset(&kept)?;
            let labels: Vec<usize> = kept.iter().map(|&i| train_labels[i]).collect();
            let poisons: Vec<usize> = (0..kept.len()).filter(|&r| attacked.truth.is_poisoned(kept[r])).collect();
            Some(evaluate(&mut cost, "filtered", &source, &labels, &poisons)?.0)
        }
        _ => None,
    };
    let clean = if config.compare_clean && needs_model {
        Some(evaluate(&mut cost, "clean", &clean_source, &train_labels, &poisoned_rows)?.0)
    } else {
        None
    };
    Ok(EvalReport {
        data: data.name.clone(),
        train_images: data.train.items().len(),
        test_images: data.test.items().len(),
        backend: <B::InnerBackend as Backend>::name(device),
        config: config.clone(),
        poisoned_count: poisoned_rows.len(),
        poisoned_fingerprint: format!("{:016x}", poisoned_source.fingerprint()),
        poisoned,
        implanted,
        encoder,
        filtered,
        clean,
        detection,
        cost,
    })
}

/// What a detector variant runs on.
struct DetectorInput<'a, B: Backend> {
    model: Option<&'a dyn Embed<B>>,
    images: &'a ImageBatchSource,
    dataset: &'a Arc<ImageDataset>,
}

/// Runs one detector variant through [`PoisonFilter`] (the path users call, with its native cap
/// and its report) and scores it. Localisation is measured on every true poison apart from the
/// pruning: the recurring patch's box where recurrence found one, else the masking localiser
/// applied directly.
fn evaluate_detector<B: AutodiffBackend>(
    input: &DetectorInput<B::InnerBackend>,
    truth: &GroundTruth,
    config: &DetectorConfig,
    device: &B::Device,
) -> Result<(DetectionScores, Vec<usize>)> {
    let backbone = input.model;
    let [n, _, h, w] = input.images.shape();
    let filter_config = PoisonFilterConfig::new().with_detector(config.clone()).with_working_size(Some([h, w]));
    let filter = PoisonFilter::fit_through::<B>(Arc::clone(input.dataset), backbone, &filter_config, device)?;
    let found = filter.detection();
    // Rows are dataset indices only when every item was read; the simulator's items always are.
    if found.evidence.len() != n {
        return Err(Error::Config(format!("{} of {n} simulated images were read", found.evidence.len())));
    }
    let poisons: Vec<usize> = truth.poisoned.iter().map(|(i, _)| *i).collect();
    let mut direct: Vec<Option<PixelBox>> =
        poisons.iter().map(|&i| found.evidence[i].recurrence.map(|r| r.patch_box)).collect();
    if let (Some(backbone), Some(clusters)) = (backbone, found.clusters.as_ref()) {
        let [_, c, h, w] = input.images.shape();
        let probe = ActivationProbe::new(backbone, clusters, [c, h, w], config.batch_size, device);
        let missing: Vec<usize> = (0..poisons.len()).filter(|&k| direct[k].is_none()).collect();
        let rows: Vec<usize> = missing.iter().map(|&k| poisons[k]).collect();
        let targets: Vec<usize> = rows.iter().map(|&i| clusters.assignments[i]).collect();
        let located = locate(backbone, clusters, &probe, input.images, &rows, &targets, config, device)?;
        for (k, (b, _)) in missing.into_iter().zip(located) {
            direct[k] = Some(b);
        }
    }
    let removed = found.removed.iter().map(|&(i, _)| i).collect();
    let mut scores = detection_scores(found, truth, n, &direct);
    scores.removal_log = filter.report().removals.clone();
    Ok((scores, removed))
}
