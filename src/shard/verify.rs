//! Verification from the windows the shards cut: one core partition at a time (about
//! [`super::cores::ReduceLimits`]'s windows), each core judged as one scan judges it, only
//! the verified cores' carriers kept; then the same finish as one scan's.

use super::cores::CoreList;
use super::cut_tables::{read_seen, read_thumbs};
use super::layout::{parquet_files, Work};
use super::rows::StoredRows;
use crate::detect::recurrence::pyramid::{bounds, finish, verdict, Judged, Seen, Thumbnail, Verdict, Verified};
use crate::detect::recurrence::{ImageRows, RecurrenceConfig};
use crate::error::{Error, Result};
use crate::progress::stage_bar;

/// Verifies the cores of `list` from the windows cut in `work`, over the fit's `rows`.
pub(super) fn verify_cut(
    work: &Work,
    list: &CoreList,
    rows: &StoredRows,
    config: &RecurrenceConfig,
) -> Result<Verified> {
    let row_of = |index: usize| {
        rows.row_of(index as u64)
            .ok_or_else(|| Error::Engine(format!("a window cut from image {index}, not a row of the fit")))
    };
    let mut kept: Vec<Seen> = Vec::new();
    let mut others = Judged::default();
    let bar = stage_bar("shard verify", list.partitions as u64);
    for p in 0..list.partitions {
        bar.inc(1);
        let mut seen = Vec::new();
        for file in parquet_files(&work.cut_partition(p))? {
            read_seen(&file, &mut seen)?;
        }
        for s in &mut seen {
            s.image = row_of(s.image)?;
        }
        // One scan lists each core's windows in image order (one a core and image).
        seen.sort_by_key(|s| (s.core, s.image));
        let mut carriers: Vec<(usize, usize)> = Vec::new();
        for members in seen.chunk_by(|a, b| a.core == b.core) {
            let members: Vec<&Seen> = members.iter().collect();
            match verdict(&members, config.min_carriers, &config.pyramid) {
                Verdict::Carriers(found) => carriers.extend(found.iter().map(|c| (c.core, c.image))),
                Verdict::Unseen => {}
                Verdict::Rejected => others.rejected += 1,
                Verdict::Flat => others.flat += 1,
                Verdict::Repeated(group) => others.duplicate_groups.push(group),
            }
        }
        // Only the verified cores' carriers outlive their partition (one window a core and image).
        kept.extend(seen.into_iter().filter(|s| carriers.binary_search(&(s.core, s.image)).is_ok()));
    }
    bar.finish_and_clear();
    // Verified cores in core order, as one scan merges them; carriers in image order.
    kept.sort_by_key(|s| (s.core, s.image));
    let judged =
        Judged { verified: kept.chunk_by(|a, b| a.core == b.core).map(|c| c.iter().collect()).collect(), ..others };
    let mut wanted: Vec<u64> = kept.iter().map(|s| rows.index(s.image)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut thumbs: Vec<(u64, Thumbnail)> = Vec::new();
    for file in parquet_files(&work.thumbs())? {
        read_thumbs(&file, &|i| wanted.binary_search(&i).is_ok(), &mut thumbs)?;
    }
    let mut thumbs: Vec<(usize, Thumbnail)> =
        thumbs.into_iter().map(|(i, t)| Ok((row_of(i as usize)?, t))).collect::<Result<_>>()?;
    thumbs.sort_by_key(|t| t.0);
    let thumbnail_of = |row: usize| thumbs.binary_search_by_key(&row, |t| t.0).ok().map(|i| &thumbs[i].1);
    Ok(finish(judged, &list.halos, &bounds(config, rows.len()), &config.pyramid, &thumbnail_of, list.images))
}
