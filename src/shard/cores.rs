//! The cores the reduce verifies, written for the shards that cut their windows: how many there
//! are, each core's halo and partition, and per shard the windows its images hold. Written once;
//! a reduce run again reads them back, so that it verifies the same cores.

use serde::{Deserialize, Serialize};

use super::cut_tables::write_wanted;
use super::engine::EngineRead;
use super::layout::{Plan, ShardSpec, Work};
use crate::detect::recurrence::pyramid::{wanted, Core, CoreCounts};
use crate::durable::write_atomic;
use crate::error::{Error, Result};

/// Bytes a cut window takes as the reduce holds it (its 192 values, its ring of 36 blocks, its
/// place), rounded up.
pub const WINDOW_BYTES: usize = 1536;

/// What the reduce may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceLimits {
    /// Bytes DataFusion's operators hold before its sort spills to disk.
    pub memory: usize,
    /// Cut windows a core partition holds (unless one core is larger): verification holds one
    /// partition at a time.
    pub windows_per_partition: usize,
}

impl ReduceLimits {
    /// The limits within `memory` bytes: a quarter of it for a core partition's windows, so that
    /// verification is bounded whatever the data size (1 GiB: 174,762 windows, 256 MiB).
    pub fn within(memory: usize) -> Self {
        ReduceLimits { memory, windows_per_partition: (memory / 4 / WINDOW_BYTES).max(1024) }
    }
}

/// `cores/cores.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct CoreList {
    /// How many cores were ranked, pruned and kept.
    pub counts: CoreCounts,
    /// Each kept core's halo.
    pub halos: Vec<usize>,
    /// Each kept core's partition of the cut windows.
    pub partition_of: Vec<u32>,
    /// Partitions of the cut windows.
    pub partitions: usize,
    /// Windows to cut.
    pub windows: usize,
    /// Images those windows are in.
    pub images: usize,
    /// What the engine read to find the cores.
    pub engine: EngineRead,
}

impl CoreList {
    /// The core list written in `work`, if one is.
    pub fn read(work: &Work) -> Result<Option<CoreList>> {
        let path = work.cores().join("cores.json");
        if !path.exists() {
            return Ok(None);
        }
        work.read_json(&path, "core list").map(Some)
    }

    /// Writes `cores` (their images by listing index) for the shards of `plan` to cut, the list
    /// last.
    pub fn write(
        work: &Work,
        plan: &Plan,
        cores: &[Core],
        counts: CoreCounts,
        engine: EngineRead,
        per_partition: usize,
    ) -> Result<CoreList> {
        // Windows cut for cores written earlier (a core list removed by hand) name other cores.
        let stale = work.root().join("cut");
        if stale.exists() {
            std::fs::remove_dir_all(&stale).map_err(|e| Error::write(&stale, e))?;
        }
        let sizes: Vec<usize> = cores.iter().map(|c| c.entries.len()).collect();
        let (partition_of, partitions) = balanced(&sizes, per_partition);
        let wanted = wanted(cores);
        let mut images = 0;
        let mut at = 0;
        for k in 0..plan.shards {
            let items = ShardSpec { k, n: plan.shards }.items(plan.items);
            let start = at;
            while at < wanted.len() && wanted[at].0 < items.end {
                at += 1;
            }
            let mine = &wanted[start..at];
            images += mine.chunk_by(|a, b| a.0 == b.0).count();
            let rows: Vec<(u64, u32, u32)> = mine.iter().map(|&(i, c, p)| (i as u64, c as u32, p)).collect();
            write_wanted(&work.wanted_file(k), &rows)?;
        }
        let list = CoreList {
            counts,
            halos: cores.iter().map(|c| c.halo).collect(),
            partition_of,
            partitions,
            windows: wanted.len(),
            images,
            engine,
        };
        write_atomic(&work.cores().join("cores.json"), &serde_json::to_vec(&list)?)?;
        Ok(list)
    }
}

/// Each core's partition (cores of `sizes` windows, largest first), each to the partition that
/// holds fewest windows so far, and how many partitions of about `per_partition` windows.
fn balanced(sizes: &[usize], per_partition: usize) -> (Vec<u32>, usize) {
    let total: usize = sizes.iter().sum();
    let partitions = total.div_ceil(per_partition.max(1)).max(1);
    let mut held = vec![0usize; partitions];
    let of = sizes
        .iter()
        .map(|&size| {
            let p = (0..partitions).min_by_key(|&p| (held[p], p)).unwrap_or(0);
            held[p] += size;
            p as u32
        })
        .collect();
    (of, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_hold_about_their_share_of_windows() {
        let sizes: Vec<usize> = (0..400).map(|i| 4000 - 9 * i).collect();
        let per = ReduceLimits::within(256 << 20).windows_per_partition;
        let (of, partitions) = balanced(&sizes, per);
        let total: usize = sizes.iter().sum();
        assert_eq!(partitions, total.div_ceil(per));
        assert!(partitions > 1);
        let mut held = vec![0; partitions];
        for (c, &p) in of.iter().enumerate() {
            held[p as usize] += sizes[c];
        }
        let most = *held.iter().max().unwrap();
        assert!(most <= per + sizes[0], "a partition of {most} windows");
    }
}
