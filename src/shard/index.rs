//! `shard index`: shard K decodes each of its images once, as one scan's shared pass does, and
//! writes the recurrence index's rows (partitioned by key hash) and one record per image, part
//! by part, so that a killed shard resumes at its first unfinished part.

use std::time::Instant;

use burn::data::dataset::InMemDataset;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::layout::{Plan, ShardSpec, Work};
use super::tables::{write_images, write_rows, ImageRecord};
use super::PART_ITEMS;
use crate::data::{filelist_line, ImageFile, SkippedFile};
use crate::detect::recurrence::pyramid::{index_image, Entry, Tables};
use crate::detect::recurrence::ImageRows;
use crate::detect::registry;
use crate::detect::signal::Signal;
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::filter::{PoisonFilterConfig, WorkingImages};
use crate::progress::stage_bar;

/// Images decoded at once, per parallel chunk (as the one-process index).
const CHUNK: usize = 32;

/// What one part indexed (written last: a part without it is indexed again).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartDone {
    /// Items of the part.
    pub items: usize,
    /// Of those, rows of the fit.
    pub rows: usize,
    /// Windows keyed.
    pub windows: usize,
    /// Index rows written.
    pub entries: usize,
    /// Items that could not be read.
    pub unreadable: usize,
}

/// What a shard's index phase did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Indexed {
    /// The shard.
    pub shard: ShardSpec,
    /// Its items of the listing.
    pub items: std::ops::Range<usize>,
    /// Its parts' totals.
    pub total: PartDone,
    /// Parts found done from an earlier run.
    pub resumed_parts: usize,
    /// Seconds this run took.
    pub seconds: f64,
    /// What the listing skipped (the same for every shard; the merge reports shard 0's).
    pub skipped: Vec<SkippedFile>,
}

/// The signals a shard measures, besides recurrence's index: those whose fit looks at rows
/// through measurements.
pub(super) fn measuring<'a>(signals: &'a [Box<dyn Signal + 'a>], items: usize) -> Vec<&'a (dyn Signal + 'a)> {
    // Row 0 is in every sample a signal takes.
    signals.iter().map(|s| &**s).filter(|s| s.name() != "recurrence" && s.measures_row(0, items.max(1))).collect()
}

/// Checks what the shard phases can run: photos, the training-free signals.
fn check(files: &[ImageFile], config: &PoisonFilterConfig) -> Result<()> {
    if config.detector.signals.masking {
        return Err(Error::Config(
            "masking does not run in shards (its clusters need every image's embedding in one place); \
             turn it off with --signals, or scan in one process"
                .into(),
        ));
    }
    let side = crate::data::sampled_short_side(files.iter().map(|f| f.path.as_path()));
    let least = config.detector.recurrence.pyramid.min_image_side;
    if side.is_none_or(|s| s < least) {
        return Err(Error::Config(format!(
            "shards index photos (a median short side of at least {least} px; these: {side:?}); small images \
             fit one machine: scan them"
        )));
    }
    Ok(())
}

/// Indexes shard `shard` of `files` into `work` (`skipped` is what the listing could not list).
pub fn index(
    files: &[ImageFile],
    skipped: &[SkippedFile],
    shard: ShardSpec,
    work: &std::path::Path,
    config: &PoisonFilterConfig,
    partitions: usize,
) -> Result<Indexed> {
    let started = Instant::now();
    config.check()?;
    if partitions == 0 || partitions > 1 << 16 {
        return Err(Error::Config(format!("{partitions} key partitions: expected 1 to 65536")));
    }
    check(files, config)?;
    if files.len() > u32::MAX as usize {
        return Err(Error::Config("index rows name images by a 32-bit index: split the listing".into()));
    }
    let work_dir = Work::at(work);
    Plan::new(config, files, shard.n, partitions).record(&work_dir)?;
    let items = shard.items(files.len());
    let signals = registry::build(&config.detector)?;
    let measured = measuring(&signals, files.len());
    let recurrence = &config.detector.recurrence;
    let tables = config.detector.signals.recurrence.then(|| Tables::new(&recurrence.pyramid, recurrence.seed));
    let part = Part { files, work: &work_dir, shard, config, tables: tables.as_ref(), measured: &measured, partitions };
    let bar = stage_bar("shard index", items.len() as u64);
    let (mut total, mut resumed_parts) = (PartDone::default(), 0);
    for (j, start) in items.clone().step_by(PART_ITEMS).enumerate() {
        let range = start..(start + PART_ITEMS).min(items.end);
        let done_path = work_dir.part_done(shard.k, j);
        let done: PartDone = if done_path.exists() {
            resumed_parts += 1;
            work_dir.read_json(&done_path, "part record")?
        } else {
            let done = part.index(j, range.clone())?;
            write_atomic(&done_path, &serde_json::to_vec(&done)?)?;
            done
        };
        total.items += done.items;
        total.rows += done.rows;
        total.windows += done.windows;
        total.entries += done.entries;
        total.unreadable += done.unreadable;
        bar.inc(range.len() as u64);
    }
    bar.finish_and_clear();
    let indexed = Indexed {
        shard,
        items,
        total,
        resumed_parts,
        seconds: started.elapsed().as_secs_f64(),
        skipped: skipped.to_vec(),
    };
    write_atomic(&work_dir.indexed(shard.k), &serde_json::to_vec_pretty(&indexed)?)?;
    Ok(indexed)
}

/// What every part of one shard shares.
struct Part<'a> {
    files: &'a [ImageFile],
    work: &'a Work,
    shard: ShardSpec,
    config: &'a PoisonFilterConfig,
    tables: Option<&'a Tables>,
    measured: &'a [&'a (dyn Signal + 'a)],
    partitions: usize,
}

/// One row's index rows, windows and measurements.
type RowIndexed = (Vec<Entry>, usize, Vec<Option<Vec<u8>>>);

impl Part<'_> {
    /// Indexes items `range` as part `j`: lists them as the filter does (photos by header),
    /// decodes each row once for every signal, and writes its tables.
    fn index(&self, j: usize, range: std::ops::Range<usize>) -> Result<PartDone> {
        let first = range.start;
        let dataset = InMemDataset::new(self.files[range.clone()].to_vec());
        let plan = self.config.read_plan();
        let images = WorkingImages::listed(&dataset, &plan)?;
        let rows = images.rows(&dataset, &plan);
        let items = self.files.len();
        let p = &self.config.detector.recurrence.pyramid;
        let mut by_row: Vec<RowIndexed> = Vec::with_capacity(rows.len());
        for chunk in (0..rows.len()).collect::<Vec<_>>().chunks(CHUNK) {
            let done: Vec<RowIndexed> = chunk
                .par_iter()
                .map(|&row| {
                    let index = first + images.rows[row];
                    let Ok(image) = rows.read(row) else { return (Vec::new(), 0, vec![None; self.measured.len()]) };
                    let (entries, windows) = match self.tables {
                        Some(tables) => {
                            let got = index_image(&image, index as u32, p, tables);
                            (got.entries, got.windows)
                        }
                        None => (Vec::new(), 0),
                    };
                    let measured = self
                        .measured
                        .iter()
                        .map(|s| {
                            let m = s.measures_row(index, items).then(|| s.measure(&image)).flatten()?;
                            Some(s.encode(&*m))
                        })
                        .collect();
                    (entries, windows, measured)
                })
                .collect();
            by_row.extend(done);
        }
        let failed = rows.unreadable();
        drop(rows);
        let mut done = PartDone { items: range.len(), rows: images.rows.len(), ..PartDone::default() };
        // Index rows by key partition.
        let mut parted: Vec<Vec<Entry>> = vec![Vec::new(); self.partitions];
        for (entries, windows, _) in &by_row {
            done.windows += windows;
            done.entries += entries.len();
            for e in entries {
                parted[e.key as usize % self.partitions].push(*e);
            }
        }
        for (p, entries) in parted.iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            write_rows(&self.work.rows_file(p, self.shard.k, j), entries)?;
        }
        // One record per item: rows with their measurements, unreadable items with the error.
        let mut records: Vec<ImageRecord> = (0..range.len())
            .map(|i| {
                let file = &self.files[first + i];
                ImageRecord {
                    index: (first + i) as u64,
                    id: images.ids[i].clone(),
                    path: file.path.clone(),
                    line: filelist_line(file),
                    listed: false,
                    size: [0, 0],
                    channels: 0,
                    fingerprint: 0,
                    error: None,
                    measured: vec![None; self.measured.len()],
                }
            })
            .collect();
        for (row, (_, _, measured)) in by_row.into_iter().enumerate() {
            let r = &mut records[images.rows[row]];
            r.listed = true;
            r.size = images.original_sizes[row];
            r.channels = images.channels[row];
            r.fingerprint = images.fingerprints[row];
            r.measured = measured;
        }
        for (row, error) in failed {
            records[images.rows[row]].error = Some(error);
        }
        for (i, error) in &images.unreadable {
            records[*i].error = Some(error.clone());
        }
        done.unreadable = records.iter().filter(|r| r.error.is_some()).count();
        let names: Vec<&str> = self.measured.iter().map(|s| s.name()).collect();
        write_images(&self.work.images_file(self.shard.k, j), &names, &records)?;
        Ok(done)
    }
}
