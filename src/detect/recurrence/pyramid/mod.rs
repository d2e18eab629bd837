//! Photo-scale recurrence: index once, verify only what the index names.
//!
//! A trigger pasted into photos sits at any place, at any sub-pixel phase of a grid, and is
//! stored as JPEG. Keys made of a window's every value split its copies; keys made of a few
//! coarse block means gather them (docs/recurrence.md, 2026-12-01). So:
//!
//! 1. **Index** (one pass, streamed): each image is reduced to pyramid levels (box means by
//!    `factors`); every `window` at stride 1 gets a key from its 2×2 block means, centred per
//!    channel, in `tables` offset tables and a 32-bit signature of its 4×4 block means. One key
//!    in `sample_every` is kept, chosen by the key's hash, so all copies keep the same keys; each
//!    image keeps at most `max_entries_per_image` distinct keys, 16 bytes each. The decoded
//!    image is dropped.
//! 2. **Cores**: the entries sorted by key; a bucket with between `min_carriers` and
//!    `max_carrier_share` of the images whose signatures gather around one window (an island in
//!    signature space) is a core. Cores that too few others share images with to ever join into
//!    a patch are dropped before any image is read for them (`prune.rs`).
//! 3. **Verify** (a second pass over only the images the cores name): each core's windows are
//!    compared in pixels; agreeing copies whose surroundings differ are carriers, copies whose
//!    surroundings agree too are one image repeated (a duplicate group). Cores sharing carriers
//!    are merged into one patch, unless its carriers are frames of one scene (`scene.rs`).
//!
//! The index is cached as it is built (`cache.rs`), one record per chunk of images, when
//! `cache_dir` is set and every row has a fingerprint.
//!
//! Cost: the index pass is O(pixels × tables / 4) key computations (each O(1) from block sums)
//! and holds at most `16 × max_entries_per_image` bytes per image; sorting the entries is
//! O(E log E). Verification reads the images named by cores, not every image, and sweeps no
//! template over any image. Memory beyond the index is one decoded image per worker thread.

mod cache;
mod cut;
mod distance;
mod index;
mod level;
mod matching;
mod merge;
mod params;
mod prune;
mod scene;
mod seen;
mod verdict;
mod verify;

pub use matching::{best_level_match, LevelMatch};
pub use params::PyramidConfig;

use rayon::prelude::*;

use super::{ImageRows, Recurrence, RecurrenceConfig, RecurrenceSummary};
use crate::error::{Error, Result};
use crate::progress::stage_bar;
use cache::IndexCache;
#[cfg(feature = "shard")]
pub(crate) use index::core_of;
use index::cores;
pub(crate) use index::{index_image, Core, Entry, Tables};
pub(crate) use verify::{Bounds, Verified};
#[cfg(feature = "shard")]
pub(crate) use {
    cut::read_windows,
    scene::Thumbnail,
    seen::Seen,
    verdict::{verdict, Verdict},
    verify::{finish, wanted, Judged},
};

/// Images indexed per parallel chunk: enough to keep both cores busy, few enough that the
/// decoded images held at once stay a handful.
const CHUNK: usize = 32;

/// The recurring patches of the images of `rows`, found by the index.
pub fn find(rows: &dyn ImageRows, config: &RecurrenceConfig) -> Result<Recurrence> {
    let p = &config.pyramid;
    let n = rows.len();
    if n == 0 {
        return Err(Error::NoInput("the recurrence stage"));
    }
    let tables = Tables::new(p, config.seed);
    let (mut cache, resumed) = match open_cache(rows, config)? {
        Some((cache, resumed)) => (Some(cache), resumed),
        None => (None, cache::Resumed::default()),
    };
    let bar = stage_bar("recurrence index", n as u64);
    bar.resume(resumed.rows as u64);
    let (mut entries, mut windows) = (resumed.entries, resumed.windows);
    for start in (resumed.rows..n).step_by(CHUNK) {
        let chunk = start..(start + CHUNK).min(n);
        let indexed: Vec<(Vec<Entry>, usize)> = chunk
            .clone()
            .into_par_iter()
            .map(|row| match rows.read(row) {
                Ok(image) => {
                    let got = index_image(&image, row as u32, p, &tables);
                    (got.entries, got.windows)
                }
                // Unreadable rows were reported by whoever listed them; they carry nothing.
                Err(_) => (Vec::new(), 0),
            })
            .collect();
        let before = entries.len();
        let mut chunk_windows = 0;
        for (e, w) in indexed {
            entries.extend(e);
            chunk_windows += w;
        }
        windows += chunk_windows;
        if let Some(cache) = &mut cache {
            cache.append(chunk.start, chunk.len(), chunk_windows, &entries[before..])?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    drop(cache);
    let index_entries = entries.len();
    let max_carriers = (config.max_carrier_share * n as f64).floor() as usize;
    let found = cores(&mut entries, config.min_carriers, max_carriers, config.max_halo, p);
    drop(entries);
    let indexed = IndexCounts { windows, entries: index_entries };
    Ok(confirm(rows, found, indexed, config))
}

/// What the index pass looked at, for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IndexCounts {
    /// Windows keyed.
    pub windows: usize,
    /// Entries kept.
    pub entries: usize,
}

/// The cores of the index (any order: one per key), ranked and capped, pruned, and verified
/// against the images of `rows` they name: the patches.
pub(crate) fn confirm(
    rows: &dyn ImageRows,
    found: Vec<Core>,
    indexed: IndexCounts,
    config: &RecurrenceConfig,
) -> Recurrence {
    let (cores, counts) = candidates(found, config);
    let checked = verify::verify(rows, &cores, &bounds(config, rows.len()), &config.pyramid);
    summarised(checked, counts, indexed, config)
}

/// How many cores verification was given.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CoreCounts {
    /// Ranked and capped.
    pub ranked: usize,
    /// Of those, pruned before any image was read.
    pub pruned: usize,
    /// Left to verify.
    pub kept: usize,
}

/// The cores to verify of those found (any order: one per key): ranked and capped, then pruned.
/// One scan and the shard reduce both take these steps, so that they agree.
pub(crate) fn candidates(mut found: Vec<Core>, config: &RecurrenceConfig) -> (Vec<Core>, CoreCounts) {
    let p = &config.pyramid;
    rank(&mut found);
    let ranked = found.len();
    let need = prune::Joinable {
        min_carriers: config.min_carriers,
        merge_overlap: p.merge_overlap,
        min_support: p.min_support,
    };
    let (found, pruned) = prune::joinable(found, need, &p.factors);
    let kept = found.len();
    (found, CoreCounts { ranked, pruned, kept })
}

/// What a verified patch must be over `rows` rows.
pub(crate) fn bounds(config: &RecurrenceConfig, rows: usize) -> Bounds {
    let max_carriers = (config.max_carrier_share * rows as f64).floor() as usize;
    Bounds { min_carriers: config.min_carriers, max_carriers, max_halo: config.max_halo }
}

/// The patches and the summary of what verification found.
pub(crate) fn summarised(
    checked: Verified,
    counts: CoreCounts,
    indexed: IndexCounts,
    config: &RecurrenceConfig,
) -> Recurrence {
    let p = &config.pyramid;
    let summary = RecurrenceSummary {
        window_sides: p.factors.iter().map(|f| f * p.window).collect(),
        windows: indexed.windows,
        candidates: counts.ranked,
        pruned_cores: counts.pruned,
        presweep_passed: counts.kept - checked.rejected - checked.flat,
        index_entries: indexed.entries,
        index_bytes: indexed.entries * std::mem::size_of::<Entry>(),
        verified_images: checked.images_read,
        duplicate_groups: checked.duplicate_groups,
        patch_support: checked.patches.iter().map(|p| p.support).collect(),
        patches: checked.patches.iter().map(|p| [p.side, p.carriers.len(), p.halo, p.distinct_places]).collect(),
        ..RecurrenceSummary::default()
    };
    Recurrence { patches: checked.patches, summary }
}

/// The largest cores first (a trigger gives many, and past [`MAX_CORES`] the rest repeat them),
/// ties by key; one core per key, so the order does not depend on the order found. A caller
/// that gathers cores in parts may rank and cap after each part and get the same cores.
pub(crate) fn rank(found: &mut Vec<Core>) {
    found.sort_by(|a, b| b.entries.len().cmp(&a.entries.len()).then_with(|| a.entries[0].key.cmp(&b.entries[0].key)));
    found.truncate(MAX_CORES);
}

/// The cache entry of this index, when there is a cache folder and every row a fingerprint.
fn open_cache(rows: &dyn ImageRows, config: &RecurrenceConfig) -> Result<Option<(IndexCache, cache::Resumed)>> {
    let Some(dir) = &config.cache_dir else { return Ok(None) };
    let Some(prints) = (0..rows.len()).map(|r| rows.fingerprint(r)).collect::<Option<Vec<u64>>>() else {
        return Ok(None);
    };
    // The index depends on the pyramid settings and on the seed of its tables, nothing else.
    let settings = format!("{}\n{}", config.pyramid, config.seed);
    IndexCache::open(dir, &cache::key(&settings, &prints), rows.len()).map(Some)
}

/// Most cores verified: each names a few to a few hundred images.
const MAX_CORES: usize = 4096;
