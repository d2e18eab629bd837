//! `poisoncam scan PATH --out DIR`: filter a user's own images and write what was kept and why
//! the rest was removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use burn::data::dataset::InMemDataset;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Args;
use poisoncam::data::{filelist_line, open_for_scan, read_filelist, FolderListing, ImageFile, Opened, SkippedFile};
use poisoncam::detect::resnet::ResNet;
use poisoncam::detect::Stage;
use poisoncam::durable::write_atomic;
use poisoncam::filter::report::FilterReport;
use poisoncam::AsImage;
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};
use serde::Serialize;

use crate::encoder::EncoderArgs;
use crate::eval::{set_signals, SignalName};

#[derive(Args)]
pub struct ScanArgs {
    /// An image folder (class sub-folders or flat; PNG, JPEG, WebP or TIFF, any sizes),
    /// `IMAGES,LABELS` for an IDX pair, or CIFAR-10 binary (a `.bin` file or a folder of them).
    #[arg(required_unless_present = "filelist", conflicts_with = "filelist")]
    pub path: Option<String>,
    /// A file list instead of PATH: `path [label]` lines, relative to the list's folder or
    /// absolute, as SSL trainers read them. `kept.filelist` is written in the same form.
    #[arg(long)]
    pub filelist: Option<PathBuf>,
    /// Ids (one a line, as in `kept.txt` or `removed.jsonl`) that a person looked at and
    /// cleared: they are kept whatever the evidence, and listed as cleared in the report.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Write every output but remove nothing: the kept lists hold every input, and the report
    /// and `removed.jsonl` say what would have been removed.
    #[arg(long)]
    pub report_only: bool,
    /// SHA-256 hashes of known poisons' files, one a line as its first field (`sha256sum`
    /// output works as it is): a file whose bytes hash to one is removed (stage `deny`).
    #[arg(long)]
    pub deny: Option<PathBuf>,
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
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// `report.json`: the filter's report plus the files that could not be read at all.
#[derive(Serialize)]
pub struct ScanReport<'a> {
    pub path: &'a str,
    /// Nothing was removed (`--report-only`): `removals` say what would have been.
    pub report_only: bool,
    /// Ids the filter would remove that `--keep` cleared; they are kept.
    pub cleared: Vec<&'a str>,
    /// Why the default signals were changed for this data (masking off for photos on the CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
    /// Folders that could not be listed (no permission, a link loop), entries named like images
    /// that are not regular files (FIFOs, sockets, devices: never opened) and, for formats read
    /// whole, records that could not be decoded; they are in neither output list.
    pub skipped: &'a [SkippedFile],
    #[serde(flatten)]
    pub filter: &'a FilterReport,
    pub config: &'a PoisonFilterConfig,
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

/// Why a default scan of `files` on the CPU leaves masking off, if it does: on photos its warm
/// start trains at up to 224 px, a few images a second on two cores (half an hour for 800
/// photos), while recurrence screens them at about a hundred a second.
fn photo_default(args: &ScanArgs, on_gpu: bool, config: &PoisonFilterConfig, files: &[PathBuf]) -> Option<String> {
    let asked = args.signals.is_some() || args.config.is_some() || args.encoder.encoder.is_some();
    if on_gpu || asked || !config.detector.signals.masking {
        return None;
    }
    let side = poisoncam::data::sampled_short_side(files.iter().map(PathBuf::as_path))?;
    (side >= config.detector.recurrence.pyramid.min_image_side).then(|| {
        format!(
            "masking is off: these are photos (median short side {side} px) and the backend is the CPU, where \
             the threat model's warm start would take hours; the training-free signals screen them. Run masking with \
             --signals recurrence,masking,spectral,residual, or on a GPU with --backend cuda"
        )
    })
}

pub fn run<B: AutodiffBackend>(args: &ScanArgs, on_gpu: bool, device: &B::Device) -> Result<()> {
    let mut config = filter_config(args.config.as_deref(), &args.cache, args.signals.as_deref())?;
    if let Some(list) = &args.deny {
        config.detector.deny = Some(list.clone());
    }
    // A scan of photos can run for hours; its index resumes from the cache as the warm start
    // does. (eval-photos leaves it off, so that its timings are of the index being built.)
    let recurrence = &mut config.detector.recurrence;
    if recurrence.cache_dir.is_none() {
        recurrence.cache_dir = Some(args.cache.clone());
    }
    let encoder = args.encoder.file()?;
    if let Some(file) = &encoder {
        if !config.detector.signals.masking {
            return Err(poisoncam::Error::Config("--encoder is what masking looks through, and masking is off".into()));
        }
        // Images are read once at the encoder's own input size, unless the config names one.
        config.working_size.get_or_insert([file.input_size; 2]);
    }
    let encoder = match encoder {
        Some(file) => Some(file.load::<B::InnerBackend>(device)?.0),
        None => None,
    };
    let cleared = match &args.keep {
        Some(path) => read_ids(path)?,
        None => HashSet::new(),
    };
    // Files are listed before the config is final: on photos the default depends on their size.
    let (name, opened) = match &args.filelist {
        Some(list) => (list.display().to_string(), Opened::Folder(files_of(read_filelist(list)?))),
        None => {
            let path = args.path.clone().unwrap_or_default();
            let opened = open_for_scan(&path)?;
            (path, opened)
        }
    };
    let note = match &opened {
        Opened::Folder(listing) => {
            let paths: Vec<PathBuf> = listing.files.iter().map(|f| f.path).collect();
            photo_default(args, on_gpu, &config, &paths)
        }
        Opened::Loaded(_) => None,
    };
    if let Some(note) = &note {
        eprintln!("{note}");
        config.detector.signals.masking = false;
    }
    let out = Outputs { args, config: &config, cleared: &cleared, note: note.as_deref(), encoder: encoder.as_ref() };
    match opened {
        Opened::Folder(listing) => {
            let lines = listing.files.iter().map(|f| filelist_line(&f)).collect();
            out.filter_and_write::<B, _, _>(&name, listing.files, &listing.skipped, Some(lines), device)
        }
        Opened::Loaded(scan) => out.filter_and_write::<B, _, _>(&name, scan.dataset, &scan.skipped, None, device),
    }
}

/// A file list as a listing: its files, nothing skipped, no class names.
fn files_of(files: InMemDataset<ImageFile>) -> FolderListing {
    FolderListing { files, skipped: Vec::new(), classes: Vec::new() }
}

/// The ids of a `--keep` file: one a line, blank lines ignored.
fn read_ids(path: &Path) -> Result<HashSet<String>> {
    let text = poisoncam::data::read_text(path)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// What a scan writes, and the review flags that change it.
struct Outputs<'a, B: Backend> {
    args: &'a ScanArgs,
    /// The user's encoder, which masking looks through instead of a warm-started model.
    encoder: Option<&'a ResNet<B>>,
    config: &'a PoisonFilterConfig,
    cleared: &'a HashSet<String>,
    /// Why the defaults were changed for this data, for the report.
    note: Option<&'a str>,
}

impl<B: Backend> Outputs<'_, B> {
    /// Filters `dataset` and writes the outputs; every input is kept, removed (unreadable files
    /// too, with the decoder's message) or listed as skipped (folders that could not be read).
    /// `lines` are the inputs' file-list lines by dataset index, for `kept.filelist`.
    fn filter_and_write<T: AutodiffBackend<InnerBackend = B>, I: AsImage + Clone + Send + Sync, D: Dataset<I>>(
        &self,
        path: &str,
        dataset: D,
        skipped: &[SkippedFile],
        lines: Option<Vec<String>>,
        device: &T::Device,
    ) -> Result<()> {
        let args = self.args;
        for s in skipped {
            eprintln!("skipped {}: {}", s.id, s.reason);
        }
        let filter = match self.encoder {
            Some(encoder) => PoisonFilter::fit_with_encoder::<T>(dataset, encoder, self.config, device)?,
            None => PoisonFilter::fit::<T>(dataset, self.config, device)?,
        };
        let report = filter.report();
        filter.write_removal_log(&args.out.join("removed.jsonl"))?;
        // Every input by dataset index, and whether it leaves the data.
        let mut all: Vec<(usize, &str, bool)> =
            filter.kept_indices().iter().zip(filter.kept_ids()).map(|(&i, id)| (i, id, false)).collect();
        let cleared: Vec<&str> =
            report.removals.iter().map(|r| r.id.as_str()).filter(|id| self.cleared.contains(*id)).collect();
        all.extend(
            report
                .removals
                .iter()
                .map(|r| (r.index, r.id.as_str(), !args.report_only && !self.cleared.contains(&r.id))),
        );
        all.sort_unstable_by_key(|&(i, ..)| i);
        let kept: Vec<(usize, &str)> = all.iter().filter(|(.., out)| !out).map(|&(i, id, _)| (i, id)).collect();
        let text: String = kept.iter().map(|(_, id)| format!("{id}\n")).collect();
        write_atomic(&args.out.join("kept.txt"), text.as_bytes())?;
        if let Some(lines) = &lines {
            let text: String = kept.iter().map(|&(i, _)| format!("{}\n", lines[i])).collect();
            write_atomic(&args.out.join("kept.filelist"), text.as_bytes())?;
        }
        let removed = all.len() - kept.len();
        let full = ScanReport {
            path,
            report_only: args.report_only,
            cleared,
            note: self.note,
            skipped,
            filter: report,
            config: self.config,
        };
        write_atomic(&args.out.join("report.json"), &serde_json::to_vec_pretty(&full)?)?;
        crate::sheet::write_removed_sheet(&args.out.join("removed.png"), &filter)?;
        let unreadable = report.removals.iter().filter(|r| r.stage == Stage::Unreadable).count();
        let verb = if args.report_only { "would remove" } else { "removed" };
        println!(
            "{path}: {} images, kept {}, {verb} {} (of which {unreadable} unreadable), cleared {}, skipped {} (folders, FIFOs, devices, sockets: never read); wrote {}",
            report.total,
            kept.len(),
            if args.report_only { report.removed } else { removed },
            full.cleared.len(),
            skipped.len(),
            args.out.display()
        );
        Ok(())
    }
}
