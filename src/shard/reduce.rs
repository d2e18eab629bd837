//! `shard reduce`: the recurrence index's cores from every shard's rows (SQL on DataFusion,
//! [`super::engine`]), verified as one scan verifies them; every other signal's screen fitted
//! from the stored measurements. Writes the decisions each shard is judged by, the same on every
//! run.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::engine::{each_bucket, EngineRead};
use super::index::{measuring, Indexed};
use super::layout::{Plan, Work};
use super::rows::StoredRows;
use super::tables::read_images;
use super::PART_ITEMS;
use crate::detect::recurrence::pyramid::{confirm, core_of, rank, Core, IndexCounts};
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
    /// Cores found in those buckets.
    pub cores: usize,
    /// Seconds: reading the image tables, the engine's buckets and their cores, verifying,
    /// fitting the other signals.
    pub seconds: [f64; 4],
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

/// Reduces the shards' index in `work`, DataFusion holding at most `memory_limit` bytes.
pub fn reduce(work: &Path, memory_limit: usize) -> Result<Reduced> {
    let work = Work::at(work);
    let plan = Plan::read(&work)?;
    let config = &plan.config;
    let mut laps = Laps { clock: Instant::now(), seconds: [0.0; 4] };
    let mut counts = IndexCounts::default();
    let mut shards = Vec::with_capacity(plan.shards);
    for k in 0..plan.shards {
        let indexed: Indexed = work.read_json(&work.indexed(k), &format!("index of shard {k}/{}", plan.shards))?;
        counts.windows += indexed.total.windows;
        counts.entries += indexed.total.entries;
        shards.push(indexed);
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
    let recurrence = &config.detector.recurrence;
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
    let mut reduced = Reduced { rows: n, engine: EngineRead::default(), cores: 0, seconds: [0.0; 4], patches: 0 };
    for signal in &signals {
        let slot = names.iter().position(|&m| m == signal.name()).map_or(&none, |m| &stored[m]);
        let input = SignalInput { rows: &rows, working, read_capped: &read_capped, measured: slot };
        let (screen, summary) = if signal.name() == "recurrence" {
            let most = (recurrence.max_carrier_share * n as f64).floor() as usize;
            let least = recurrence.min_carriers;
            let mut found: Vec<Core> = Vec::new();
            let mut mapped = Ok(());
            reduced.engine = each_bucket(&work, plan.partitions, [least, most], memory_limit, |bucket| {
                let Some(mut core) = core_of(bucket, least, most, recurrence.max_halo, &recurrence.pyramid) else {
                    return;
                };
                // The index names images by listing index; verification reads rows.
                for e in &mut core.entries {
                    match rows.row_of(u64::from(e.image)) {
                        Some(row) => e.image = row as u32,
                        None => mapped = Err(Error::Engine(format!("index rows name image {}, not a row", e.image))),
                    }
                }
                found.push(core);
                reduced.cores += 1;
                if found.len() >= 4 * MAX_HELD_CORES {
                    rank(&mut found);
                }
            })?;
            mapped?;
            laps.lap(1);
            let patches = confirm(&rows, found, counts, recurrence);
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
            laps.lap(2);
            (fitted.screen, fitted.summary)
        } else {
            signal.fit_screen(&input)?
        };
        decisions.signals.push(signal.name().to_string());
        decisions.reports.push(SignalReport { name: signal.name().into(), found: 0, summary });
        screens.push(screen);
    }
    laps.lap(3);
    write_decisions(&work, &decisions, &screens)?;
    reduced.seconds = laps.seconds;
    write_atomic(&work.root_file("reduced.json"), &serde_json::to_vec_pretty(&reduced)?)?;
    Ok(reduced)
}

/// Seconds of each step, taken as each ends.
struct Laps {
    clock: Instant,
    seconds: [f64; 4],
}

impl Laps {
    fn lap(&mut self, step: usize) {
        self.seconds[step] = self.clock.elapsed().as_secs_f64();
        self.clock = Instant::now();
    }
}

/// Cores held between rankings: the verification takes the largest 4,096 (as one scan).
const MAX_HELD_CORES: usize = 4096;

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
