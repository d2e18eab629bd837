//! `poisoncam scan PATH --out DIR`: filter a user's own images and write what was kept and why
//! the rest was removed.

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use poisoncam::data::{open_for_scan, Opened, SkippedFile};
use poisoncam::detect::Stage;
use poisoncam::filter::report::{write_atomic, FilterReport};
use poisoncam::AsImage;
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};
use serde::Serialize;

use crate::eval::{set_signals, SignalName};

#[derive(Args)]
pub struct ScanArgs {
    /// An image folder (class sub-folders or flat; PNG, JPEG, WebP or TIFF, any sizes), `IMAGES,LABELS` for an
    /// IDX pair, or CIFAR-10 binary (a `.bin` file or a folder of them).
    pub path: String,
    #[arg(long)]
    pub out: PathBuf,
    /// A `PoisonFilterConfig` as JSON; defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where warm-start checkpoints and the photo index are cached (an interrupted scan resumes
    /// from here).
    #[arg(long, default_value = ".poisoncam-cache")]
    pub cache: PathBuf,
    /// Evidence to gather: recurrence, masking or both (the default). Recurrence alone trains no
    /// threat model and takes seconds to minutes instead of a warm start.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub signals: Option<Vec<SignalName>>,
}

/// `report.json`: the filter's report plus the files that could not be read at all.
#[derive(Serialize)]
struct ScanReport<'a> {
    path: &'a str,
    /// Folders that could not be listed (no permission, a link loop) and, for formats read
    /// whole, records that could not be decoded; they are in neither output list.
    skipped: &'a [SkippedFile],
    #[serde(flatten)]
    filter: &'a FilterReport,
    config: &'a PoisonFilterConfig,
}

/// The filter's config from `--config` (defaults otherwise), with the cache folder and the
/// signals the flags name, checked.
pub fn filter_config(
    path: Option<&std::path::Path>,
    cache: &std::path::Path,
    signals: Option<&[SignalName]>,
) -> Result<PoisonFilterConfig> {
    let mut config = match path {
        Some(path) => PoisonFilterConfig::read(path)?,
        None => PoisonFilterConfig::new(),
    };
    if config.warm_start.cache_dir.is_none() {
        config.warm_start.cache_dir = Some(cache.to_path_buf());
    }
    if let Some(names) = signals {
        set_signals(&mut config.detector.signals, names);
    }
    config.check()?;
    Ok(config)
}

pub fn run<B: AutodiffBackend>(args: &ScanArgs, device: &B::Device) -> Result<()> {
    let mut config = filter_config(args.config.as_deref(), &args.cache, args.signals.as_deref())?;
    // A scan of photos can run for hours; its index resumes from the cache as the warm start
    // does. (eval-photos leaves it off, so that its timings are of the index being built.)
    let recurrence = &mut config.detector.recurrence;
    if recurrence.cache_dir.is_none() {
        recurrence.cache_dir = Some(args.cache.clone());
    }
    match open_for_scan(&args.path)? {
        Opened::Folder(listing) => filter_and_write::<B, _, _>(args, &config, listing.files, &listing.skipped, device),
        Opened::Loaded(scan) => filter_and_write::<B, _, _>(args, &config, scan.dataset, &scan.skipped, device),
    }
}

/// Filters `dataset` and writes the three outputs; every input is kept, removed (unreadable
/// files too, with the decoder's message) or listed as skipped (folders that could not be read).
fn filter_and_write<B: AutodiffBackend, I: AsImage + Clone + Send + Sync, D: Dataset<I>>(
    args: &ScanArgs,
    config: &PoisonFilterConfig,
    dataset: D,
    skipped: &[SkippedFile],
    device: &B::Device,
) -> Result<()> {
    for s in skipped {
        eprintln!("skipped {}: {}", s.id, s.reason);
    }
    let filter = PoisonFilter::fit::<B>(dataset, config, device)?;
    let report = filter.report();
    filter.write_removal_log(&args.out.join("removed.jsonl"))?;
    let kept: String = filter.kept_ids().map(|id| format!("{id}\n")).collect();
    write_atomic(&args.out.join("kept.txt"), kept.as_bytes())?;
    let full = ScanReport { path: &args.path, skipped, filter: report, config };
    write_atomic(&args.out.join("report.json"), &serde_json::to_vec_pretty(&full)?)?;
    let unreadable = report.removals.iter().filter(|r| r.stage == Stage::Unreadable).count();
    println!(
        "{}: {} images, kept {}, removed {} (of which {unreadable} unreadable), skipped {} folders; wrote {}",
        args.path,
        report.total,
        report.kept,
        report.removed,
        skipped.len(),
        args.out.display()
    );
    Ok(())
}
