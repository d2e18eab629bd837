//! `poisoncam eval-photos DIR --trigger PNG --target CLASS --work W --json F`: an HTBA-style
//! attack written to disk as one format under random names, then filtered through `scan`'s
//! folder path and scored against the truth kept in memory.

use std::path::PathBuf;
use std::time::Instant;

use burn::data::dataset::{Dataset, InMemDataset};
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use poisoncam::data::list_image_folder;
use poisoncam::durable::write_atomic;
use poisoncam::filter::report::FilterReport;
use poisoncam::sim::photo::{hold_back, GuardScore, PhotoAttack, PhotoScore, PhotoTruth, StoredAs};
use poisoncam::{Error, PixelBox, PoisonFilter, Result};
use serde::Serialize;

use crate::eval::SignalName;

#[derive(Args)]
pub struct PhotoEvalArgs {
    /// An image folder with one sub-folder per class.
    pub data: PathBuf,
    /// The trigger image (e.g. one of the published HTBA triggers); not used with --whole-image.
    #[arg(long, required_unless_present = "whole_image")]
    pub trigger: Option<PathBuf>,
    /// The class sub-folder to poison.
    #[arg(long)]
    pub target: String,
    /// Trigger side in each image's own pixels.
    #[arg(long, default_value_t = 50)]
    pub trigger_px: usize,
    /// Share of the target class that is poisoned (0 gives the clean set).
    #[arg(long, default_value_t = 0.5)]
    pub class_rate: f64,
    /// Trigger opacity (1 = pasted).
    #[arg(long, default_value_t = 1.0)]
    pub blend: f64,
    /// Each poison's trigger side is drawn within `trigger-px × (1 ± this)`.
    #[arg(long, default_value_t = 0.0)]
    pub trigger_scale_jitter: f64,
    /// How every file is stored.
    #[arg(long, value_enum, default_value_t = Format::Jpeg)]
    pub format: Format,
    /// JPEG quality (with --format jpeg).
    #[arg(long, default_value_t = 75)]
    pub quality: u8,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the poisoned folder is written (must not exist yet).
    #[arg(long)]
    pub work: PathBuf,
    #[arg(long)]
    pub json: PathBuf,
    /// A `PoisonFilterConfig` as JSON; defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Evidence to gather (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub signals: Option<Vec<SignalName>>,
    /// Where warm-start checkpoints are cached.
    #[arg(long, default_value = ".poisoncam-cache")]
    pub cache: PathBuf,
    /// Share of the written files held back from the fit and screened by the fitted streaming
    /// guard instead (0: the filter sees every file).
    #[arg(long, default_value_t = 0.0)]
    pub guard_share: f64,
    #[command(flatten)]
    pub whole_image: crate::whole_image::WholeImageArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jpeg,
    Png,
}

#[derive(Serialize)]
struct PhotoEvalReport<'a> {
    data: &'a std::path::Path,
    target: &'a str,
    /// The patch trigger's file; `null` with a whole-image trigger.
    trigger: Option<&'a std::path::Path>,
    /// The whole-image trigger, when one replaced the patch.
    whole_image: Option<&'a poisoncam::sim::whole_image::WholeImageTrigger>,
    trigger_px: usize,
    class_rate: f64,
    blend: f64,
    trigger_scale_jitter: f64,
    stored_as: StoredAs,
    seed: u64,
    /// Target-class images too small to hold the trigger in their middle half (written clean).
    too_small: usize,
    score: PhotoScore,
    write_seconds: f64,
    filter_seconds: f64,
    /// Peak resident memory of this process, from /proc (Linux).
    peak_rss_kb: Option<u64>,
    filter: &'a FilterReport,
    /// How the guard did on the held-back files (with --guard-share).
    #[serde(skip_serializing_if = "Option::is_none")]
    guard: Option<GuardScore>,
}

pub fn run<B: AutodiffBackend>(args: &PhotoEvalArgs, device: &B::Device) -> Result<()> {
    let config = crate::scan::filter_config(args.config.as_deref(), &args.cache, args.signals.as_deref())?;
    let config = config.seeded(args.seed);
    config.check()?;
    let attack = PhotoAttack {
        trigger: args.trigger.clone().unwrap_or_default(),
        trigger_px: args.trigger_px,
        target: args.target.clone(),
        class_rate: args.class_rate,
        blend: args.blend,
        scale_jitter: args.trigger_scale_jitter,
        stored_as: match args.format {
            Format::Jpeg => StoredAs::Jpeg(args.quality),
            Format::Png => StoredAs::Png,
        },
        seed: args.seed,
        whole_image: args.whole_image.trigger(args.seed)?,
    };
    attack.check()?;
    if args.work.exists() {
        return Err(Error::Attack(format!("{} exists; eval-photos writes a new folder", args.work.display())));
    }
    let started = Instant::now();
    let written = attack.write(&list_image_folder(&args.data)?, &args.work)?;
    let write_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} images ({} poisons) to {} in {write_seconds:.0} s",
        written.files.len(),
        written.files.values().filter(|b| b.is_some()).count(),
        args.work.display()
    );
    let files = list_image_folder(&args.work)?.files;
    let (fitted, held) = hold_back(files.iter().collect(), args.guard_share, args.seed);
    // The fit is scored against the files it saw, the guard against those held back.
    let truth = PhotoTruth {
        files: fitted.iter().filter_map(|f| written.files.get_key_value(&f.id)).map(|(k, v)| (k.clone(), *v)).collect(),
        too_small: written.too_small,
    };
    let held_truth: Vec<Option<PixelBox>> = held.iter().map(|f| written.files.get(&f.id).copied().flatten()).collect();
    let started = Instant::now();
    let (filter, guard) = if held.is_empty() {
        (PoisonFilter::fit::<B>(InMemDataset::new(fitted), &config, device)?, None)
    } else {
        let (filter, guard) = PoisonFilter::fit_guarded::<B>(InMemDataset::new(fitted), &config, device)?;
        (filter, Some(guard))
    };
    let filter_seconds = started.elapsed().as_secs_f64();
    let guard = guard.map(|g| GuardScore::of(&g, &held, &held_truth));
    if let Some(g) = &guard {
        eprintln!(
            "guard: {} of {} held-back poisons removed, {} clean removed, {:.1} s",
            g.caught, g.poisons, g.clean_removed, g.seconds
        );
    }
    let score = PhotoScore::of(filter.report(), &truth);
    println!(
        "images {} poisons {} removed {} precision {:.3} recall {:.3} localisation {:.3} clean removed {} filter {:.1} s",
        score.images, score.poisons, score.removed, score.precision, score.recall, score.localisation, score.clean_removed, filter_seconds
    );
    let report = PhotoEvalReport {
        data: &args.data,
        target: &args.target,
        trigger: args.trigger.as_deref(),
        whole_image: attack.whole_image.as_ref(),
        trigger_px: args.trigger_px,
        class_rate: args.class_rate,
        blend: args.blend,
        trigger_scale_jitter: args.trigger_scale_jitter,
        stored_as: attack.stored_as,
        seed: args.seed,
        too_small: truth.too_small,
        score,
        write_seconds,
        filter_seconds,
        peak_rss_kb: peak_rss_kb(),
        filter: filter.report(),
        guard,
    };
    write_atomic(&args.json, &serde_json::to_vec_pretty(&report)?)
}

/// VmHWM of this process, where /proc has it.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
