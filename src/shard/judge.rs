//! `shard judge`: each of shard K's images judged by the reduce's decisions, as one scan's fit
//! judges its rows: recurrence by the carriers the reduce verified, every other signal by its
//! screen, from the stored measurement where that is enough and else from the image.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::index::measuring;
use super::layout::{Plan, ShardSpec, Work};
use super::reduce::read_decisions;
use super::tables::{read_images, ImageRecord};
use super::PART_ITEMS;
use crate::data::ImageFile;
use crate::detect::registry;
use crate::detect::signal::{Finding, Sample, Screen, Signal};
use crate::detect::Stage;
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::filter::report::Removal;
use crate::image::{capped_size, scale_box, AsImage, Image, PixelBox};
use crate::progress::stage_bar;

/// A shard's judgements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Judged {
    /// The shard.
    pub shard: ShardSpec,
    /// Its removals, unreadable items included, by listing index.
    pub removals: Vec<Removal>,
    /// Rows each signal had a finding for before the fold, in fold order.
    pub found: Vec<usize>,
    /// Listing index, patch and working-size box of each row recurrence decided.
    pub hits: Vec<(usize, usize, PixelBox)>,
    /// Images decoded again (a screen needed more than the stored measurement).
    pub decoded: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// Judges shard `shard` of `files` (the listing every phase of the run shares) in `work`.
pub fn judge(files: &[ImageFile], shard: ShardSpec, work: &Path) -> Result<Judged> {
    let started = Instant::now();
    let work = Work::at(work);
    let plan = Plan::read(&work)?;
    Plan::new(&plan.config, files, shard.n, plan.partitions).agrees(&plan, &work.plan())?;
    let (decisions, screens) = read_decisions(&work)?;
    let signals = registry::build(&plan.config.detector)?;
    let measured = measuring(&signals, plan.items);
    let names: Vec<&str> = measured.iter().map(|s| s.name()).collect();
    let read = plan.config.read_plan();
    let judge = Judge {
        screens: &screens,
        items: plan.items,
        measured: &measured,
        carriers: decisions.carriers.iter().copied().collect(),
        working: [decisions.working_size[1], decisions.working_size[2]],
        stream_from_side: read.stream_from_side,
        max_native: read.max_native_short_side,
    };
    let items = shard.items(files.len());
    let mut out = Judged {
        shard,
        removals: Vec::new(),
        found: vec![0; screens.len()],
        hits: Vec::new(),
        decoded: 0,
        seconds: 0.0,
    };
    let bar = stage_bar("shard judge", items.len() as u64);
    for j in 0..items.len().div_ceil(PART_ITEMS) {
        let records = read_images(&work.images_file(shard.k, j), &names)?;
        let judged: Vec<Verdict> = records.par_iter().map(|r| judge.one(r)).collect::<Result<_>>()?;
        for (record, verdict) in records.iter().zip(judged) {
            for (s, f) in verdict.findings.iter().enumerate() {
                out.found[s] += usize::from(f.is_some());
            }
            out.decoded += usize::from(verdict.decoded);
            if let Some(removal) = verdict.removal(record) {
                if let (Stage::Recurrence, Some(f)) = (removal.stage, verdict.decided()) {
                    if let (Some(patch), Some(b)) = (f.pattern, f.trigger_box) {
                        out.hits.push((removal.index, patch, b));
                    }
                }
                out.removals.push(removal);
            }
        }
        bar.inc(records.len() as u64);
    }
    bar.finish_and_clear();
    out.seconds = started.elapsed().as_secs_f64();
    write_atomic(&work.judged(shard.k), &serde_json::to_vec(&out)?)?;
    Ok(out)
}

/// What judging needs, shared by every image.
struct Judge<'a> {
    screens: &'a [Box<dyn Screen>],
    /// Items in the listing (a signal's sample is of these).
    items: usize,
    measured: &'a [&'a (dyn Signal + 'a)],
    carriers: HashMap<u64, Finding>,
    working: [usize; 2],
    stream_from_side: usize,
    max_native: usize,
}

/// One image's findings, signal by signal, and how it was read.
struct Verdict {
    findings: Vec<Option<Finding>>,
    /// Why it could not be read, where it could not.
    error: Option<String>,
    /// `[height, width]` as the signals read it (a small image is held at its capped size).
    read: [usize; 2],
    decoded: bool,
}

impl Verdict {
    /// The fold's finding: the first signal's, in order.
    fn decided(&self) -> Option<Finding> {
        self.findings.iter().flatten().next().copied()
    }

    /// The removal of `record`, if it is removed, as one scan writes it.
    fn removal(&self, record: &ImageRecord) -> Option<Removal> {
        let index = record.index as usize;
        if let Some(error) = &self.error {
            return Some(Removal {
                index,
                id: record.id.clone(),
                score: 1.0,
                trigger_box: None,
                original_box: None,
                stage: Stage::Unreadable,
                error: Some(error.clone()),
            });
        }
        let f = self.decided()?;
        Some(Removal {
            index,
            id: record.id.clone(),
            score: f.score,
            trigger_box: f.trigger_box.map(|b| b.to_array()),
            original_box: f.original_box.map(|b| scale_box(b, self.read, record.size).to_array()),
            stage: f.stage,
            error: None,
        })
    }
}

impl Judge<'_> {
    fn one(&self, record: &ImageRecord) -> Result<Verdict> {
        let n = self.screens.len();
        let mut verdict =
            Verdict { findings: vec![None; n], error: record.error.clone(), read: record.size, decoded: false };
        if verdict.error.is_some() || !record.listed {
            return Ok(verdict);
        }
        let small = record.size[0].min(record.size[1]) < self.stream_from_side;
        verdict.read = if small { capped_size(record.size, self.max_native) } else { record.size };
        let mut image: Option<Image> = None;
        for (s, screen) in self.screens.iter().enumerate() {
            if screen.name() == "recurrence" {
                verdict.findings[s] = self.carriers.get(&record.index).copied();
                continue;
            }
            if !screen.is_armed() {
                continue;
            }
            if let Some(m) = self.measured.iter().position(|m| m.name() == screen.name()) {
                let stored = match &record.measured[m] {
                    Some(bytes) => self.measured[m].decode(bytes)?,
                    None => None,
                };
                // A row its signal measured as it was indexed (none stored: not measurable).
                if self.measured[m].measures_row(record.index as usize, self.items) {
                    if let Some(found) = screen.judge_measured(&stored, verdict.read, self.working) {
                        verdict.findings[s] = found;
                        continue;
                    }
                }
            }
            if image.is_none() {
                match self.read(record, verdict.read) {
                    Ok(read) => image = Some(read),
                    Err(e) => {
                        verdict.error = Some(e.to_string());
                        return Ok(verdict);
                    }
                }
                verdict.decoded = true;
            }
            let Some(image) = &image else { continue };
            let file = ImageFile { id: record.id.clone(), path: record.path.clone(), label: None };
            let digest = if screen.needs_digest() { file.digest().transpose()? } else { None };
            verdict.findings[s] = screen.judge(&Sample { image, digest }, self.working);
        }
        Ok(verdict)
    }

    /// The image of `record` as one scan's signals read it.
    fn read(&self, record: &ImageRecord, read: [usize; 2]) -> Result<Image> {
        let file = ImageFile { id: record.id.clone(), path: record.path.clone(), label: None };
        let image = file.as_image()?;
        if [image.height(), image.width()] != record.size {
            return Err(Error::ItemChanged { index: record.index as usize, what: "its size" });
        }
        Ok(if read == record.size { image } else { image.resized(read[0], read[1]) })
    }
}
