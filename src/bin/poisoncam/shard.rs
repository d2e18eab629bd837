//! `poisoncam shard index|reduce|cut|judge|merge`: the scan as phases that many processes or
//! machines share through one work folder (docs/sharding.md).

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use clap::{Args, Subcommand};
use poisoncam::data::{open_for_scan, read_filelist, ImageFile, Opened, SkippedFile};
use poisoncam::durable::write_atomic;
use poisoncam::shard::{self, ShardSpec};
use poisoncam::{AsImage, Error, Result};

use crate::eval::SignalName;
use crate::scan::{filter_config, ScanReport};
use crate::sheet::{write_sheet, SheetInput};

#[derive(Subcommand)]
pub enum ShardCommand {
    /// Shard K of N decodes its share of the listing once and writes its index rows (Parquet,
    /// partitioned by key hash) and per-image statistics under --work; resumes after a kill.
    Index(IndexArgs),
    /// The index's counts and cores as SQL on DataFusion over every shard's rows, within a memory
    /// limit; writes the decisions every shard is judged by.
    Reduce(ReduceArgs),
    /// Shard K cuts from its images the windows of the cores a reduce named, for the reduce to
    /// compare (verification as a map); resumes after a kill. Optional: a reduce cuts the
    /// shards that have not itself.
    Cut(CutArgs),
    /// Judges shard K's images by the reduce's decisions, writing its removals.
    Judge(JudgeArgs),
    /// One report.json, removed.jsonl, kept.txt, kept.filelist and removed.png, as scan writes them.
    Merge(MergeArgs),
}

/// The listing every phase shares: a folder or a file list.
#[derive(Args)]
pub struct Source {
    /// An image folder (class sub-folders or flat).
    #[arg(required_unless_present = "filelist", conflicts_with = "filelist")]
    pub path: Option<String>,
    /// A file list instead of PATH: `path [label]` lines.
    #[arg(long)]
    pub filelist: Option<PathBuf>,
}

/// One shard of the listing, and the work folder every phase shares.
#[derive(Args)]
pub struct ShardOf {
    #[command(flatten)]
    pub source: Source,
    /// This process's shard, `K/N` (K from 0).
    #[arg(long)]
    pub shard: ShardSpec,
    /// The work folder every phase shares.
    #[arg(long)]
    pub work: PathBuf,
}

#[derive(Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub of: ShardOf,
    /// A `PoisonFilterConfig` as JSON; defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Evidence to gather (masking does not run in shards); the photo default otherwise.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub signals: Option<Vec<SignalName>>,
    /// Key partitions of the index rows: the reduce holds one at a time.
    #[arg(long, default_value_t = shard::DEFAULT_PARTITIONS)]
    pub partitions: usize,
}

#[derive(Args)]
pub struct ReduceArgs {
    #[arg(long)]
    pub work: PathBuf,
    /// Most memory DataFusion's operators hold before the sort spills to disk: bytes, or with
    /// KiB, MiB or GiB.
    #[arg(long, default_value = "1GiB")]
    pub memory_limit: String,
    /// Leave cutting the cores' windows to `shard cut` on each shard: without every shard's
    /// cut, write the cores and stop, to be run again once they have cut.
    #[arg(long)]
    pub wait_for_shards: bool,
}

#[derive(Args)]
pub struct CutArgs {
    #[command(flatten)]
    pub of: ShardOf,
}

#[derive(Args)]
pub struct JudgeArgs {
    #[command(flatten)]
    pub of: ShardOf,
}

#[derive(Args)]
pub struct MergeArgs {
    #[arg(long)]
    pub work: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

/// The listing of `source`, with what it skipped.
fn listing(source: &Source) -> Result<(String, Vec<ImageFile>, Vec<SkippedFile>)> {
    let (name, files, skipped) = match &source.filelist {
        Some(list) => (list.display().to_string(), read_filelist(list)?, Vec::new()),
        None => {
            let path = source.path.clone().unwrap_or_default();
            match open_for_scan(&path)? {
                Opened::Folder(listing) => (path, listing.files, listing.skipped),
                Opened::Loaded(_) => {
                    return Err(Error::Config("shards read image folders and file lists, not IDX or CIFAR".into()))
                }
            }
        }
    };
    let files = (0..files.len()).filter_map(|i| files.get(i)).collect();
    Ok((name, files, skipped))
}

/// `1GiB`, `512MiB`, `64KiB` or a number of bytes.
fn bytes(text: &str) -> Result<usize> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => t.split_at(at),
        None => (t, ""),
    };
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        _ => return Err(Error::Config(format!("--memory-limit {text}: expected bytes, KiB, MiB or GiB"))),
    };
    let n: usize = number.parse().map_err(|_| Error::Config(format!("--memory-limit {text}: not a number")))?;
    Ok(n.saturating_mul(scale))
}

pub fn run(command: &ShardCommand) -> Result<()> {
    match command {
        ShardCommand::Index(args) => {
            let ShardOf { source, shard, work } = &args.of;
            let (name, files, skipped) = listing(source)?;
            let mut config = filter_config(args.config.as_deref(), &work.join("cache"), args.signals.as_deref())?;
            if args.signals.is_none() && args.config.is_none() {
                // The photo default on the CPU: the training-free signals.
                config.detector.signals.masking = false;
            }
            let done = shard::index(&files, &skipped, *shard, work, &config, args.partitions)?;
            println!(
                "{name}: shard {}/{} indexed items {}..{} ({} rows, {} index rows, {} unreadable; {} parts resumed) in {:.1} s",
                shard.k,
                shard.n,
                done.items.start,
                done.items.end,
                done.total.rows,
                done.total.entries,
                done.total.unreadable,
                done.resumed_parts,
                done.seconds
            );
            Ok(())
        }
        ShardCommand::Reduce(args) => {
            let done = shard::reduce(
                &args.work,
                &shard::ReduceLimits::within(bytes(&args.memory_limit)?),
                args.wait_for_shards,
            )?;
            if !done.waiting_for.is_empty() {
                println!(
                    "wrote {} cores ({} windows); waiting for `poisoncam shard cut DATA --shard K/{} --work {}` on shards {:?}, then run this reduce again",
                    done.cores,
                    done.windows,
                    done.shards,
                    args.work.display(),
                    done.waiting_for
                );
                return Ok(());
            }
            println!(
                "reduced {} rows: {} candidate buckets ({} rows) in {} partitions, {} cores, {} patches; seconds {:?}",
                done.rows,
                done.engine.buckets,
                done.engine.bucket_rows,
                done.engine.partitions,
                done.cores,
                done.patches,
                done.seconds
            );
            Ok(())
        }
        ShardCommand::Cut(args) => {
            let ShardOf { source, shard, work } = &args.of;
            let (name, files, _) = listing(source)?;
            let done = shard::cut(Some(&files), *shard, work)?;
            println!(
                "{name}: shard {}/{} cut {} windows from {} images ({} unreadable now; {} parts resumed) in {:.1} s",
                shard.k, shard.n, done.windows, done.images, done.unreadable, done.resumed_parts, done.seconds
            );
            Ok(())
        }
        ShardCommand::Judge(args) => {
            let ShardOf { source, shard, work } = &args.of;
            let (name, files, _) = listing(source)?;
            let done = shard::judge(&files, *shard, work)?;
            println!(
                "{name}: shard {}/{} judged: {} removed, {} decoded again, in {:.1} s",
                shard.k,
                shard.n,
                done.removals.len(),
                done.decoded,
                done.seconds
            );
            Ok(())
        }
        ShardCommand::Merge(args) => merge(args),
    }
}

fn merge(args: &MergeArgs) -> Result<()> {
    let merged = shard::merge(&args.work)?;
    let report = &merged.report;
    let out = &args.out;
    report.write_removal_log(&out.join("removed.jsonl"))?;
    let mut removed = vec![false; merged.items.len()];
    for r in &report.removals {
        removed[r.index] = true;
    }
    let kept: Vec<usize> = (0..merged.items.len()).filter(|&i| !removed[i]).collect();
    let text: String = kept.iter().map(|&i| format!("{}\n", merged.items[i].id)).collect();
    write_atomic(&out.join("kept.txt"), text.as_bytes())?;
    let text: String = kept.iter().map(|&i| format!("{}\n", merged.items[i].line)).collect();
    write_atomic(&out.join("kept.filelist"), text.as_bytes())?;
    let path = args.work.display().to_string();
    let full = ScanReport {
        path: &path,
        report_only: false,
        cleared: Vec::new(),
        note: None,
        skipped: &merged.skipped,
        filter: report,
        config: &merged.config,
    };
    write_atomic(&out.join("report.json"), &serde_json::to_vec_pretty(&full)?)?;
    let image = |index: usize| {
        let item = merged.items.get(index)?;
        ImageFile { id: item.id.clone(), path: item.path.clone(), label: None }.as_image().ok()
    };
    let input = SheetInput {
        report,
        templates: &merged.templates,
        drawn: &merged.drawn,
        hits: merged.hits.clone(),
        suspicions: Vec::new(),
        image: &image,
    };
    write_sheet(&out.join("removed.png"), &input)?;
    println!(
        "merged {} shards' work: {} images, kept {}, removed {}; wrote {}",
        merged.shards,
        report.total,
        report.kept,
        report.removed,
        out.display()
    );
    Ok(())
}
