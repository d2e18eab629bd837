//! `poisoncam scan PATH --out DIR`: filter a user's own images and write what was kept and why
//! the rest was removed.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use poisoncam::data::{open_path, SkippedFile};
use poisoncam::filter::report::{write_atomic, FilterReport};
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};
use serde::Serialize;

use crate::eval::{set_signals, SignalName};

#[derive(Args)]
pub struct ScanArgs {
    /// An image folder (class sub-folders or flat; PNG/JPEG, any sizes), `IMAGES,LABELS` for an
    /// IDX pair, or CIFAR-10 binary (a `.bin` file or a folder of them).
    pub path: String,
    #[arg(long)]
    pub out: PathBuf,
    /// A `PoisonFilterConfig` as JSON; defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where warm-start checkpoints are cached (an interrupted scan resumes from here).
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
    /// Files skipped because they could not be decoded; they are in neither output list.
    skipped: &'a [SkippedFile],
    #[serde(flatten)]
    filter: &'a FilterReport,
    config: &'a PoisonFilterConfig,
}

pub fn run<B: AutodiffBackend>(args: &ScanArgs, device: &B::Device) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => PoisonFilterConfig::read(path)?,
        None => PoisonFilterConfig::new(),
    };
    if config.warm_start.cache_dir.is_none() {
        config.warm_start.cache_dir = Some(args.cache.clone());
    }
    if let Some(names) = &args.signals {
        set_signals(&mut config.detector.signals, names);
    }
    let scan = open_path(&args.path, true)?;
    for s in &scan.skipped {
        eprintln!("skipped {}: {}", s.id, s.reason);
    }
    let filter = PoisonFilter::fit::<B>(scan.dataset, &config, device)?;
    let report = filter.report();
    filter.write_removal_log(&args.out.join("removed.jsonl"))?;
    let items = filter.inner().items();
    let kept: String = filter.kept_indices().iter().map(|&i| format!("{}\n", items[i].id)).collect();
    write_atomic(&args.out.join("kept.txt"), kept.as_bytes())?;
    let full = ScanReport { path: &args.path, skipped: &scan.skipped, filter: report, config: &config };
    write_atomic(&args.out.join("report.json"), &serde_json::to_vec_pretty(&full)?)?;
    println!(
        "{}: {} images, kept {}, removed {}, skipped {} unreadable files; wrote {}",
        args.path,
        report.total,
        report.kept,
        report.removed,
        scan.skipped.len(),
        args.out.display()
    );
    Ok(())
}
