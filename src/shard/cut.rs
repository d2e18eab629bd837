//! `shard cut` (a map): shard K cuts, from its own images, the windows of the cores the reduce
//! named, and writes them partitioned by core, with a thumbnail of each image read; the reduce
//! then compares windows and reads no image. A reduce not told to wait for the shards cuts each
//! shard itself, through the same function. Resumes part by part after a kill.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cores::CoreList;
use super::cut_tables::{read_wanted, write_seen, write_thumbs};
use super::layout::{Plan, ShardSpec, Work};
use super::rows::StoredRows;
use super::tables::read_images;
use super::PART_ITEMS;
use crate::data::ImageFile;
use crate::detect::recurrence::pyramid::{read_windows, Seen, Thumbnail};
use crate::detect::recurrence::ImageRows;
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::progress::stage_bar;

/// What a shard's cut did (or one part of it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cut {
    /// Images read.
    pub images: usize,
    /// Windows cut.
    pub windows: usize,
    /// Images that could not be read now (changed since the index): their windows are lost.
    pub unreadable: usize,
    /// Parts found done from an earlier run.
    pub resumed_parts: usize,
    /// Seconds this run took.
    pub seconds: f64,
}

/// Cuts shard `shard`'s windows of the cores the reduce wrote in `work`; `files`, where given,
/// is checked to be the run's listing (the images are found by the paths the index recorded).
pub fn cut(files: Option<&[ImageFile]>, shard: ShardSpec, work: &Path) -> Result<Cut> {
    let started = Instant::now();
    let work = Work::at(work);
    let plan = Plan::read(&work)?;
    if let Some(files) = files {
        Plan::new(&plan.config, files, shard.n, plan.partitions).agrees(&plan, &work.plan())?;
    }
    if shard.n != plan.shards {
        return Err(Error::Work {
            path: work.plan(),
            reason: format!("a plan of {} shards, not {}", plan.shards, shard.n),
        });
    }
    let list = CoreList::read(&work)?
        .ok_or_else(|| Error::Work { path: work.cores(), reason: "no cores yet: run shard reduce first".into() })?;
    let read = plan.config.read_plan();
    let mut rows = StoredRows::new(read.stream_from_side, read.max_native_short_side);
    for j in 0..shard.items(plan.items).len().div_ceil(PART_ITEMS) {
        for record in read_images(&work.images_file(shard.k, j), &[])?.iter().filter(|r| r.listed) {
            rows.push(record)?;
        }
    }
    let wanted = read_wanted(&work.wanted_file(shard.k))?;
    let by_image: Vec<&[(u64, u32, u32)]> = wanted.chunk_by(|a, b| a.0 == b.0).collect();
    let pyramid = &plan.config.detector.recurrence.pyramid;
    let mut total = Cut::default();
    let bar = stage_bar("shard cut", by_image.len() as u64);
    for (j, part) in by_image.chunks(PART_ITEMS).enumerate() {
        let done_path = work.cut_done(shard.k, Some(j));
        let done: Cut = if done_path.exists() {
            total.resumed_parts += 1;
            work.read_json(&done_path, "cut part record")?
        } else {
            let cut: Vec<(Vec<Seen>, Option<Thumbnail>)> = part
                .par_iter()
                .map(|group| {
                    // An image that cannot be read now loses its windows only, as in one scan.
                    let image = rows.row_of(group[0].0).and_then(|row| rows.read(row).ok());
                    let named: Vec<(usize, usize, u32)> =
                        group.iter().map(|&(i, c, p)| (i as usize, c as usize, p)).collect();
                    (read_windows(image.as_ref(), &named, pyramid), image.as_ref().map(Thumbnail::new))
                })
                .collect();
            let done = write_part(&work, &list, shard.k, j, part, cut)?;
            write_atomic(&done_path, &serde_json::to_vec(&done)?)?;
            done
        };
        total.images += done.images;
        total.windows += done.windows;
        total.unreadable += done.unreadable;
        bar.inc(part.len() as u64);
    }
    bar.finish_and_clear();
    total.seconds = started.elapsed().as_secs_f64();
    write_atomic(&work.cut_done(shard.k, None), &serde_json::to_vec_pretty(&total)?)?;
    Ok(total)
}

/// Writes part `j` of shard `k`'s cut windows by core partition, and its thumbnails.
fn write_part(
    work: &Work,
    list: &CoreList,
    k: usize,
    j: usize,
    part: &[&[(u64, u32, u32)]],
    cut: Vec<(Vec<Seen>, Option<Thumbnail>)>,
) -> Result<Cut> {
    let mut done = Cut { images: part.len(), ..Cut::default() };
    let mut parted: Vec<Vec<Seen>> = (0..list.partitions).map(|_| Vec::new()).collect();
    let mut thumbs = Vec::new();
    for (group, (seen, thumb)) in part.iter().zip(cut) {
        let Some(thumb) = thumb else {
            done.unreadable += 1;
            continue;
        };
        thumbs.push((group[0].0, thumb));
        for s in seen {
            let partition =
                list.partition_of.get(s.core).ok_or_else(|| Error::Engine(format!("core {} unlisted", s.core)))?;
            done.windows += 1;
            parted[*partition as usize].push(s);
        }
    }
    for (p, seen) in parted.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
        write_seen(&work.cut_file(p, k, j), seen)?;
    }
    write_thumbs(&work.thumbs_file(k, j), &thumbs)?;
    Ok(done)
}
