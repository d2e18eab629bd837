//! `poisoncam eval`: simulated attacks, threat models and detector metrics as JSON.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use poisoncam::data::{open_path, FashionMnist, ImageDataset};
use poisoncam::detect::masking::localize::cam::MaskSearch;
use poisoncam::detect::threat::SslMethod;
use poisoncam::detect::{DetectorConfig, Localizer, Signals};
use poisoncam::sim::attack::{AttackConfig, TriggerSource};
use poisoncam::sim::eval::{stratified_split, DetectorVariant, EvalConfig, EvalData, EvalReport, ImplantConfig};
use poisoncam::{Error, Result};

use crate::encoder::EncoderArgs;

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Share of the whole training set that is poisoned.
    #[arg(long, default_value_t = 0.01)]
    pub rate: f64,
    /// Target class of the attack.
    #[arg(long, default_value_t = 0)]
    pub target: usize,
    /// Trigger: a number seeds a procedural pattern, anything else is a PNG/JPEG path.
    #[arg(long, default_value = "0")]
    pub trigger: String,
    /// Trigger side as a share of the image side.
    #[arg(long, default_value_t = 0.2)]
    pub trigger_frac: f64,
    /// Store the poisoned training set as JPEG at this quality.
    #[arg(long)]
    pub jpeg: Option<u8>,
    /// Resample each poison's trigger side within ± this many pixels.
    #[arg(long, default_value_t = 0)]
    pub trigger_jitter: usize,
    /// Blend the trigger at this opacity instead of pasting it (1 = opaque).
    #[arg(long, default_value_t = 1.0)]
    pub blend: f64,
    #[command(flatten)]
    pub whole_image: crate::whole_image::WholeImageArgs,
    /// Evidence the detector gathers: recurrence, masking or both. Without masking no threat
    /// model is trained and no downstream scores are reported.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "recurrence,masking")]
    pub signals: Vec<SignalName>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Warm-start epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, value_enum, default_value_t = Method::Simclr)]
    pub method: Method,
    /// Smallest crop area of the augmentation, as a share of the image.
    #[arg(long)]
    pub crop_min: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// NT-Xent / InfoNCE temperature.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Training images taken from the front of a single-split dataset; the rest are the test set.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Skip the reference model trained on clean data.
    #[arg(long)]
    pub no_clean: bool,
    /// Detector stages to run: any of masking, paste, classifier (masking alone is "CAM-only").
    #[arg(long, value_enum, value_delimiter = ',', default_value = "masking,paste,classifier")]
    pub stages: Vec<StageName>,
    /// Also run a baseline on the same threat model.
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// Also train an SSL model on what the detector kept and report its downstream scores.
    #[arg(long)]
    pub downstream: bool,
    /// Implant a backdoor into the threat model before detection (a BadEncoder-style fine-tune
    /// that tests the masking path under its premise; for evaluation only).
    #[arg(long)]
    pub implant: bool,
    /// Implant epochs (with --implant).
    #[arg(long)]
    pub implant_epochs: Option<usize>,
    /// Weight of the implant's backdoor term (with --implant).
    #[arg(long)]
    pub implant_weight: Option<f32>,
    /// Run both signals, recurrence alone, masking alone and the PatchSearch baseline side by side.
    #[arg(long)]
    pub compare: bool,
    /// How masking picks its windows.
    #[arg(long, value_enum, default_value_t = Search::Grid)]
    pub search: Search,
    /// Where warm-start checkpoints are cached (an interrupted run resumes from here).
    #[arg(long, default_value = ".poisoncam-cache")]
    pub cache: PathBuf,
    /// Write the poisoned training set (and the implant's triggered images) to DIR and stop,
    /// for an encoder trained outside the crate; `eval --encoder` then judges it on the same set.
    #[arg(long)]
    pub export: Option<PathBuf>,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum SignalName {
    Recurrence,
    Masking,
    Spectral,
    Residual,
}

/// Switches on exactly the named signals.
pub fn set_signals(signals: &mut Signals, names: &[SignalName]) {
    signals.recurrence = names.contains(&SignalName::Recurrence);
    signals.masking = names.contains(&SignalName::Masking);
    signals.spectral = names.contains(&SignalName::Spectral);
    signals.residual = names.contains(&SignalName::Residual);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum StageName {
    Masking,
    Paste,
    Classifier,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Baseline {
    Patchsearch,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Search {
    Grid,
    CoarseToFine,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Method {
    Simclr,
    Moco,
}

impl RunArgs {
    pub fn eval_config(&self) -> Result<EvalConfig> {
        let trigger = match self.trigger.parse::<u64>() {
            Ok(seed) => TriggerSource::Procedural { seed },
            Err(_) => TriggerSource::File(PathBuf::from(&self.trigger)),
        };
        let mut config = EvalConfig {
            attack: AttackConfig {
                target: self.target,
                rate: self.rate,
                trigger_frac: self.trigger_frac,
                trigger,
                seed: self.seed,
                jitter: self.trigger_jitter,
                blend: self.blend,
                jpeg: self.jpeg,
                whole_image: self.whole_image.trigger(self.seed)?,
            },
            ..EvalConfig::default()
        };
        let ws = &mut config.warm_start;
        ws.seed = self.seed;
        ws.cache_dir = Some(self.cache.clone());
        ws.method = match self.method {
            Method::Simclr => SslMethod::SimClr,
            Method::Moco => SslMethod::MocoV2,
        };
        if let Some(e) = self.epochs {
            ws.epochs = e;
        }
        if let Some(c) = self.crop_min {
            ws.augment.crop_scale_min = c;
        }
        if let Some(b) = self.batch_size {
            ws.batch_size = b;
        }
        if let Some(t) = self.temperature {
            ws.temperature = t;
        }
        config.compare_clean = !self.no_clean;
        config.variants = self.variants();
        config.downstream_filtered = self.downstream;
        if self.implant {
            let mut implant = ImplantConfig::new().with_seed(self.seed);
            if let Some(e) = self.implant_epochs {
                implant.epochs = e;
            }
            if let Some(w) = self.implant_weight {
                implant.backdoor_weight = w;
            }
            config.implant = Some(implant);
        }
        config.encoder = self.encoder.file()?;
        Ok(config)
    }

    fn detector(&self, stages: &[StageName], localizer: Localizer) -> DetectorConfig {
        let mut d = DetectorConfig::new().with_localizer(localizer);
        set_signals(&mut d.signals, &self.signals);
        d.recurrence.seed = self.seed;
        d.stages.paste = stages.contains(&StageName::Paste);
        d.stages.classifier = stages.contains(&StageName::Classifier);
        d.cam.search = match self.search {
            Search::Grid => MaskSearch::Grid,
            Search::CoarseToFine => MaskSearch::CoarseToFine,
        };
        d.kmeans.seed = self.seed;
        d.paste.seed = self.seed;
        // The baseline keeps PatchSearch's paste test, which counts only the candidate's cluster.
        d.paste.into_any_cluster = localizer == Localizer::PoisonCam;
        d.classifier.seed = self.seed;
        d
    }

    fn variants(&self) -> Vec<DetectorVariant> {
        let variant = |name: &str, detector| DetectorVariant { name: name.to_string(), detector };
        let full = [StageName::Masking, StageName::Paste, StageName::Classifier];
        if self.compare {
            // Each signal alone, then both, then the baseline, on one threat model.
            let only = |signal: SignalName, stages: &[StageName], localizer| {
                let mut d = self.detector(stages, localizer);
                set_signals(&mut d.signals, &[signal]);
                d
            };
            let mut both = self.detector(&full, Localizer::PoisonCam);
            set_signals(&mut both.signals, &[SignalName::Recurrence, SignalName::Masking]);
            return vec![
                variant("full", both),
                variant("recurrence", only(SignalName::Recurrence, &full, Localizer::PoisonCam)),
                variant("masking", only(SignalName::Masking, &full, Localizer::PoisonCam)),
                variant("patchsearch", only(SignalName::Masking, &full, Localizer::PatchSearch)),
            ];
        }
        let signals = self.signals.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>().join("+");
        let name = if self.stages.len() == 3 || !self.signals.contains(&SignalName::Masking) {
            signals
        } else {
            let stages = self.stages.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>().join("+");
            format!("{signals}:{stages}")
        };
        let mut out = vec![variant(&name, self.detector(&self.stages, Localizer::PoisonCam))];
        if let Some(Baseline::Patchsearch) = self.baseline {
            let mut baseline = self.detector(&self.stages, Localizer::PatchSearch);
            set_signals(&mut baseline.signals, &[SignalName::Masking]);
            out.push(variant("patchsearch", baseline));
        }
        out
    }
}

fn split(name: &str, all: ImageDataset, train_size: Option<usize>) -> Result<EvalData> {
    let n = all.items().len();
    let train = train_size.unwrap_or(n * 4 / 5);
    if train == 0 || train >= n {
        return Err(Error::Config(format!("train size {train} leaves no test images out of {n}")));
    }
    Ok(EvalData { name: name.to_string(), train: all.slice(0..train), test: all.slice(train..n) })
}

/// `embedded` keeps its recorded split, the first 8,000 images for training (the test split is
/// in no class order); any path is split stratified under the seed.
pub fn load(data: &str, train_size: Option<usize>, seed: u64) -> Result<EvalData> {
    match data {
        "embedded" => split("fashion-mnist-embedded", FashionMnist::embedded()?, train_size.or(Some(8000))),
        "fashion-mnist" => Ok(EvalData {
            name: "fashion-mnist-full".into(),
            train: FashionMnist::system_train()?,
            test: FashionMnist::system_test()?,
        }),
        path => {
            let all = open_path(path, false)?.dataset;
            let n = all.items().len();
            let (train, test) = stratified_split(&all, train_size.unwrap_or(n * 4 / 5), seed)?;
            Ok(EvalData { name: path.to_string(), train, test })
        }
    }
}

pub fn print_table(report: &EvalReport) {
    println!(
        "data {} ({} train, {} test), backend {}",
        report.data, report.train_images, report.test_images, report.backend
    );
    println!(
        "poisoned {} training images of class {} (set fingerprint {})",
        report.poisoned_count, report.config.attack.target, report.poisoned_fingerprint
    );
    println!(
        "{:<10} {:>9} {:>7} {:>9} {:>16} {:>10}",
        "model", "clean_acc", "asr", "target_fp", "poison_nbr (null)", "warm (s)"
    );
    let rows = report
        .poisoned
        .as_ref()
        .map(|c| ("poisoned", &c.downstream, c.warm_start.seconds))
        .into_iter()
        .chain(report.implanted.as_ref().map(|i| ("implanted", &i.downstream, i.implant.seconds)))
        .chain(report.encoder.as_ref().map(|e| ("encoder", &e.downstream, 0.0)))
        .chain(report.filtered.as_ref().map(|c| ("filtered", &c.downstream, c.warm_start.seconds)))
        .chain(report.clean.as_ref().map(|c| ("clean", &c.downstream, c.warm_start.seconds)));
    for (name, d, seconds) in rows {
        println!(
            "{:<10} {:>9.3} {:>7.3} {:>9.3} {:>16} {:>10.1}",
            name,
            d.clean_acc,
            d.asr,
            d.target_fp,
            match (d.poison_neighbour_share, d.poison_neighbour_null) {
                (Some(share), Some(null)) => format!("{share:.3} ({null:.3})"),
                (Some(share), None) => format!("{share:.3}"),
                _ => "-".into(),
            },
            seconds
        );
    }
    if !report.detection.is_empty() {
        println!(
            "{:<12} {:>6} {:>9} {:>6} {:>6} {:>7} {:>12} {:>8}",
            "detector", "loc", "precision", "recall", "f1", "removed", "clean_rm", "kept_cl"
        );
    }
    for v in &report.detection {
        let s = &v.scores;
        println!(
            "{:<12} {:>6.3} {:>9.3} {:>6.3} {:>6.3} {:>7} {:>12.4} {:>8}",
            v.name,
            s.trigger_localization_acc,
            s.removals.precision,
            s.removals.recall,
            s.removals.f1,
            s.removals.removed,
            s.removals.clean_removed_rate,
            s.kept_clusters
        );
        for c in &s.cost {
            println!("    {:<20} {:>8.1} s {:>8.1} fwd/img", c.stage, c.seconds, c.forwards_per_image);
        }
    }
    for stage in &report.cost {
        println!("  {:<22} {:>8.1} s", stage.stage, stage.seconds);
    }
}

pub fn write_json(path: &std::path::Path, report: &EvalReport) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::Io { path: parent.into(), source: e })?;
    }
    std::fs::write(path, serde_json::to_string_pretty(report)?).map_err(|e| Error::Io { path: path.into(), source: e })
}
