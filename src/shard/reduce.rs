//! `shard reduce`: the recurrence index's cores from every shard's rows (SQL on DataFusion,
//! [`super::engine`]), verified as one scan verifies them; every other signal's screen fitted
//! from the stored measurements. Writes the decisions each shard is judged by, the same on every
//! run.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cores::{CoreList, ReduceLimits};
use super::cut::cut;
use super::engine::{each_bucket, EngineRead};
use super::index::{measuring, Indexed};
use super::layout::{Plan, ShardSpec, Work};
use super::rows::StoredRows;
use super::tables::read_images;
use super::verify::verify_cut;
use super::PART_ITEMS;
use crate::detect::recurrence::pyramid::{candidates, core_of, rank, summarised, Core, IndexCounts};
use crate::detect::recurrence::{ImageRows, RecurrenceSummary};
use crate::detect::registry;
use crate::detect::signal::{Finding, Measured, Screen, SignalInput, SignalReport};
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::image::{capped_size, working_size_of};

/// What every shard is judged by (`reduce/decisions.json`, beside each signal's saved screen in
/// `reduce/screens/NAME`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    /// The signals, in fold order; each has its screen saved.
    pub signals: Vec<String>,
    /// `[channels, height, width]` of the working size boxes are also given in.
    pub working_size: [usize; 3],
    /// Rows of the fit (listed images) across all shards.
    pub rows: usize,
    /// Recurrence's finding for each carrier, by listing index.
    pub carriers: Vec<(u64, Finding)>,
    /// Each signal's summary, in fold order (`found` is counted by the judges).
    pub reports: Vec<SignalReport>,
    /// What recurrence looked at (its duplicate groups are rows of the fit).
    pub recurrence: Option<RecurrenceSummary>,
    /// Listing index of each row in a duplicate group.
    pub duplicate_indices: Vec<Vec<u64>>,
}

/// What a reduce did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reduced {
    /// Rows of the fit.
    pub rows: usize,
    /// What DataFusion streamed back.
    pub engine: EngineRead,
    /// Cores verified (ranked, capped and pruned from those buckets').
    pub cores: usize,
    /// Their windows, cut by the shards.
    pub windows: usize,
    /// Core partitions of those windows, verified one at a time.
    pub cut_partitions: usize,
    /// Shards of the run.
    pub shards: usize,
    /// Shards whose windows are not cut yet: the reduce waits for them (empty when done).
    pub waiting_for: Vec<usize>,
    /// Seconds: reading the image tables, the engine's buckets and their cores (or reading them
    /// back), cutting the shards' windows here, verifying, fitting the other signals.
    pub seconds: [f64; 5],
    /// Patches confirmed.
    pub patches: usize,
}

const DECISIONS: &str = "decisions.json";

/// Reads decisions a reduce wrote in `work`, and the screens saved beside them, in fold order.
pub(super) fn read_decisions(work: &Work) -> Result<(Decisions, Vec<Box<dyn Screen>>)> {
    let dir = work.reduced();
    let decisions: Decisions = work.read_json(&dir.join(DECISIONS), "reduce")?;
    let mut screens = Vec::with_capacity(decisions.signals.len());
    for name in &decisions.signals {
        let registration = registry::named(name)
            .ok_or_else(|| Error::Work { path: dir.clone(), reason: format!("a screen of unknown signal {name}") })?;
        screens.push((registration.load)(&dir.join("screens").join(name))?);
    }
    Ok((decisions, screens))
}

/// Reduces the shards' index in `work` within `limits`. The
/// cores' windows are cut by the shards where they have been (`shard cut`); the rest are cut
/// here, unless `wait_for_shards`: then a reduce whose shards have not all cut writes the cores
/// and returns, naming the shards it waits for, to be run again once they have.
pub fn reduce(work: &Path, limits: &ReduceLimits, wait_for_shards: bool) -> Result<Reduced> {
    let work = Work::at(work);
    let plan = Plan::read(&work)?;
    let config = &plan.config;
    let mut laps = Laps { clock: Instant::now(), seconds: [0.0; 5] };
    let mut counts = IndexCounts::default();
    let mut shards = Vec::with_capacity(plan.shards);
    for k in 0..plan.shards {
        let indexed: Indexed = work.read_json(&work.indexed(k), &format!("index of shard {k}/{}", plan.shards))?;
        counts.windows += indexed.total.windows;
        counts.entries += indexed.total.entries;
        shards.push(indexed);
    }
    // The cores first, before the rows are held: the engine's step needs only their count.
    let listed: usize = shards.iter().map(|s| s.total.rows).sum();
    let recurrence = &config.detector.recurrence;
    let list = match (config.detector.signals.recurrence, CoreList::read(&work)?) {
        (false, _) => None,
        (true, Some(list)) => Some(list),
        (true, None) => {
            let (found, engine) = gathered(&work, &plan, limits.memory, listed)?;
            let (cores, core_counts) = candidates(found, recurrence);
            Some(CoreList::write(&work, &plan, &cores, core_counts, engine, limits.windows_per_partition)?)
        }
    };
    laps.lap(1);
    let mut reduced = Reduced {
        rows: listed,
        engine: EngineRead::default(),
        cores: 0,
        windows: 0,
        cut_partitions: 0,
        shards: plan.shards,
        waiting_for: Vec::new(),
        seconds: [0.0; 5],
        patches: 0,
    };
    if let Some(list) = &list {
        reduced.engine = list.engine.clone();
        reduced.cores = list.counts.kept;
        reduced.windows = list.windows;
        reduced.cut_partitions = list.partitions;
        reduced.waiting_for = (0..plan.shards).filter(|&k| !work.cut_done(k, None).exists()).collect();
        if wait_for_shards && !reduced.waiting_for.is_empty() {
            reduced.seconds = laps.seconds;
            return Ok(reduced);
        }
    }
    let signals = registry::build(&config.detector)?;
    let measured = measuring(&signals, plan.items);
    let names: Vec<&str> = measured.iter().map(|s| s.name()).collect();
    // Every listed image, in listing order, with each measuring signal's stored measurement.
    let plan_read = config.read_plan();
    let mut rows = StoredRows::new(plan_read.stream_from_side, plan_read.max_native_short_side);
    let mut stored: Vec<Vec<OnceLock<Measured>>> = vec![Vec::new(); names.len()];
    for indexed in &shards {
        for j in 0..indexed.items.len().div_ceil(PART_ITEMS) {
            for record in read_images(&work.images_file(indexed.shard.k, j), &names)?.iter().filter(|r| r.listed) {
                rows.push(record)?;
                for (m, signal) in measured.iter().enumerate() {
                    let slot = OnceLock::new();
                    match &record.measured[m] {
                        Some(bytes) => drop(slot.set(signal.decode(bytes)?)),
                        // Measured and found unmeasurable (too small, grey); a row outside the
                        // signal's sample stays unset, to be read if the fit asks for it.
                        None if signal.measures_row(record.index as usize, plan.items) => drop(slot.set(None)),
                        None => {}
                    }
                    stored[m].push(slot);
                }
            }
        }
    }
    laps.lap(0);
    let n = rows.len();
    if n == 0 {
        return Err(Error::NoInput("the shard reduce (no image of any shard could be read)"));
    }
    if n != listed {
        return Err(Error::Engine(format!("{n} rows recorded, {listed} counted by the shards' index")));
    }
    if config.detector.signals.recurrence && !recurrence.uses_pyramid(&rows) {
        return Err(Error::Config("these are mostly small images: scan them in one process".into()));
    }
    let shapes = rows.shapes().map(|(c, size)| (c, capped_size(size, plan_read.max_native_short_side)));
    let working_size = working_size_of(shapes, config.working_size, config.max_short_side);
    let working = [working_size[1], working_size[2]];
    let read_capped = |row: usize| rows.read(row);
    let none: Vec<OnceLock<Measured>> = Vec::new();
    let mut decisions = Decisions {
        signals: Vec::new(),
        working_size,
        rows: n,
        carriers: Vec::new(),
        reports: Vec::new(),
        recurrence: None,
        duplicate_indices: Vec::new(),
    };
    let mut screens: Vec<Box<dyn Screen>> = Vec::new();
    for signal in &signals {
        let slot = names.iter().position(|&m| m == signal.name()).map_or(&none, |m| &stored[m]);
        let input = SignalInput { rows: &rows, working, read_capped: &read_capped, measured: slot };
        let (screen, summary) = if signal.name() == "recurrence" {
            let list = list.as_ref().ok_or_else(|| Error::Engine("recurrence without its cores".into()))?;
            for k in std::mem::take(&mut reduced.waiting_for) {
                cut(None, ShardSpec { k, n: plan.shards }, work.root())?;
            }
            laps.lap(2);
            let checked = verify_cut(&work, list, &rows, recurrence)?;
            let patches = summarised(checked, list.counts, counts, recurrence);
            reduced.patches = patches.patches.len();
            let fitted = crate::detect::recurrence::fitted(&patches, recurrence, &input)?;
            decisions.carriers =
                fitted.findings.iter().enumerate().filter_map(|(row, f)| Some((rows.index(row), (*f)?))).collect();
            decisions.duplicate_indices = patches
                .summary
                .duplicate_groups
                .iter()
                .map(|g| g.iter().map(|&row| rows.index(row)).collect())
                .collect();
            decisions.recurrence = Some(patches.summary.clone());
            laps.lap(3);
            (fitted.screen, fitted.summary)
        } else {
            signal.fit_screen(&input)?
        };
        decisions.signals.push(signal.name().to_string());
        decisions.reports.push(SignalReport { name: signal.name().into(), found: 0, summary });
        screens.push(screen);
    }
    laps.lap(4);
    write_decisions(&work, &decisions, &screens)?;
    reduced.seconds = laps.seconds;
    write_atomic(&work.root_file("reduced.json"), &serde_json::to_vec_pretty(&reduced)?)?;
    Ok(reduced)
}

/// Seconds of each step, taken as each ends.
struct Laps {
    clock: Instant,
    seconds: [f64; 5],
}

impl Laps {
    fn lap(&mut self, step: usize) {
        self.seconds[step] = self.clock.elapsed().as_secs_f64();
        self.clock = Instant::now();
    }
}

/// Cores held between rankings: the verification takes the largest 4,096 (as one scan).
const MAX_HELD_CORES: usize = 4096;

/// The cores of every candidate bucket the engine streams back (images by listing index),
/// ranked as they come so that few are held; and what the engine read.
fn gathered(work: &Work, plan: &Plan, memory_limit: usize, rows: usize) -> Result<(Vec<Core>, EngineRead)> {
    let recurrence = &plan.config.detector.recurrence;
    let most = (recurrence.max_carrier_share * rows as f64).floor() as usize;
    let least = recurrence.min_carriers;
    let mut found: Vec<Core> = Vec::new();
    let engine = each_bucket(work, plan.partitions, [least, most], memory_limit, |bucket| {
        if let Some(core) = core_of(bucket, least, most, recurrence.max_halo, &recurrence.pyramid) {
            found.push(core);
            if found.len() >= 4 * MAX_HELD_CORES {
                rank(&mut found);
            }
        }
    })?;
    Ok((found, engine))
}

/// Writes the decisions and screens into a fresh folder, then puts it in place of the last.
fn write_decisions(work: &Work, decisions: &Decisions, screens: &[Box<dyn Screen>]) -> Result<()> {
    let dir = work.reduced();
    let fresh = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&fresh);
    for screen in screens {
        let at = fresh.join("screens").join(screen.name());
        std::fs::create_dir_all(&at).map_err(|e| Error::write(&at, e))?;
        screen.save(&at)?;
    }
    write_atomic(&fresh.join(DECISIONS), &serde_json::to_vec_pretty(decisions)?)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&fresh, &dir).map_err(|e| Error::write(&dir, e))
}
