//! The scan as its phases (`poisoncam::shard`): on a generated photo folder carrying a pasted
//! patch, CTRL's frequency trigger and a blended key, four shards remove exactly what one scan
//! removes, with the same boxes and scores, whether the reduce cuts the cores' windows itself or
//! the shards cut them (verification as a map, over several core partitions); a shard indexed or
//! cut again resumes, and a reduce run twice writes the same decisions.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use poisoncam::backend::Train;
use poisoncam::data::{open_for_scan, ImageFile, Opened};
use poisoncam::filter::report::Removal;
use poisoncam::shard::{self, ReduceLimits, ShardSpec};
use poisoncam::sim::whole_image::{BlendKey, WholeImageTrigger};
use poisoncam::{Image, PoisonFilter, PoisonFilterConfig, Stage};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

mod common;
use common::photo_like;

fn trigger(side: usize) -> Image {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/htba/trigger_14.png");
    let rgb = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let (w, h) = rgb.dimensions();
    Image::from_hwc_u8(3, h as usize, w as usize, rgb.as_raw()).unwrap().resized(side, side)
}

/// 120 photos of mixed sizes as PNG: every 10th from 3 carries a pasted 40-px patch, every 15th
/// CTRL's trigger, every 12th from 7 a blended noise key; and one PNG cut short.
fn folder(dir: &Path) -> PathBuf {
    let data = dir.join("photos");
    std::fs::create_dir_all(&data).unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let patch = trigger(40);
    let ctrl = WholeImageTrigger::Ctrl { magnitude: 100.0 };
    let blend = WholeImageTrigger::Blend { key: BlendKey::Noise { seed: 3 }, alpha: 0.2 };
    for i in 0..120 {
        let mut image = photo_like(&mut rng);
        let shape = [3, image.height(), image.width()];
        if i % 10 == 3 {
            let (x, y) = (rng.random_range(0..=image.width() - 40), rng.random_range(0..=image.height() - 40));
            image.paste(&patch, x, y);
        } else if i % 15 == 0 {
            image = ctrl.prepare(shape).unwrap().apply(&image);
        } else if i % 12 == 7 {
            image = blend.prepare(shape).unwrap().apply(&image);
        }
        let (h, w) = (image.height() as u32, image.width() as u32);
        image::RgbImage::from_raw(w, h, image.to_hwc_u8()).unwrap().save(data.join(format!("{i:03}.png"))).unwrap();
    }
    let mut broken = Vec::new();
    image::RgbImage::from_fn(160, 160, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 9]))
        .write_to(&mut std::io::Cursor::new(&mut broken), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(data.join("cut.png"), &broken[..broken.len() / 2]).unwrap();
    data
}

fn files(data: &Path) -> Vec<ImageFile> {
    let Opened::Folder(listing) = open_for_scan(data.to_str().unwrap()).unwrap() else { panic!("a folder") };
    (0..listing.files.len()).map(|i| listing.files.get(i).unwrap()).collect()
}

fn config() -> PoisonFilterConfig {
    let mut config = PoisonFilterConfig::new();
    config.detector.signals.masking = false;
    config
}

/// Who cuts the cores' windows out of the images.
#[derive(Clone, Copy, PartialEq)]
enum Cutting {
    /// The reduce, in its own process.
    InReduce,
    /// Each shard (`shard cut`), the reduce waiting for them; core partitions small enough that
    /// the cut windows fall in several.
    ByShards,
}

/// Limits under which the fixture's cut windows fall in several core partitions.
fn small() -> ReduceLimits {
    ReduceLimits { memory: 64 << 20, windows_per_partition: 32 }
}

/// The removals of four shards' phases in `work`.
fn sharded(files: &[ImageFile], work: &Path, cutting: Cutting) -> Vec<Removal> {
    let n = 4;
    for k in 0..n {
        shard::index(files, &[], ShardSpec { k, n }, work, &config(), 8).unwrap();
    }
    match cutting {
        Cutting::InReduce => {
            let reduced = shard::reduce(work, &ReduceLimits::within(256 << 20), false).unwrap();
            assert!(reduced.waiting_for.is_empty());
        }
        Cutting::ByShards => {
            let limits = small();
            let first = shard::reduce(work, &limits, true).unwrap();
            let cut_before = (0..n).filter(|k| work.join(format!("cut/done/s{k:05}.json")).exists()).count();
            assert_eq!(first.waiting_for.len(), n - cut_before, "the reduce waits for the shards not cut");
            for k in 0..n {
                shard::cut(Some(files), ShardSpec { k, n }, work).unwrap();
            }
            let reduced = shard::reduce(work, &limits, true).unwrap();
            assert!(reduced.waiting_for.is_empty());
            assert!(reduced.cut_partitions > 1, "{} windows in one partition", reduced.windows);
        }
    }
    for k in 0..n {
        shard::judge(files, ShardSpec { k, n }, work).unwrap();
    }
    shard::merge(work).unwrap().report.removals
}

fn stages(removals: &[Removal]) -> Vec<Stage> {
    let mut s: Vec<Stage> = removals.iter().map(|r| r.stage).collect();
    s.sort_by_key(|s| s.name());
    s.dedup();
    s
}

#[test]
fn four_shards_remove_what_one_scan_removes_with_the_same_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let files = files(&data);
    let dataset = burn::data::dataset::InMemDataset::new(files.clone());
    let one = PoisonFilter::fit::<Train>(dataset, &config(), &Default::default()).unwrap();
    let scanned = one.report().removals.clone();
    // Not two empty sets: every kind of evidence the fixture plants decided some removal.
    let found = stages(&scanned);
    for stage in [Stage::Recurrence, Stage::Spectral, Stage::Unreadable] {
        assert!(found.contains(&stage), "the one scan removed nothing by {stage:?}: {found:?}");
    }
    for (cutting, name) in [(Cutting::InReduce, "in the reduce"), (Cutting::ByShards, "by the shards")] {
        let work = dir.path().join(format!("work-{}", cutting as u8));
        let shards = sharded(&files, &work, cutting);
        assert_eq!(shards, scanned, "four shards, their windows cut {name}, and one scan disagree");
        assert_eq!(shard::merge(&work).unwrap().report.working_size, one.report().working_size);
    }
}

#[test]
fn a_shard_indexed_again_resumes_and_a_reduce_run_twice_decides_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let files = files(&data);
    let work = dir.path().join("work");
    let first = sharded(&files, &work, Cutting::ByShards);
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    let decisions = || read(work.join("reduce/decisions.json"));
    let before = decisions();
    shard::reduce(&work, &small(), true).unwrap();
    assert_eq!(decisions(), before, "a second reduce decided otherwise");
    assert!(!first.is_empty());

    // A shard killed mid-cut: its unrecorded part is cut again, to the same bytes.
    let cut_file = std::fs::read_dir(work.join("cut/p=0000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("s00001-"))
        .expect("shard 1 cut windows into partition 0");
    let cut_bytes = read(cut_file.clone());
    std::fs::remove_file(work.join("cut/done/s00001-00000.json")).unwrap();
    std::fs::remove_file(work.join("cut/done/s00001.json")).unwrap();
    std::fs::write(&cut_file, b"half a file").unwrap();
    let waiting = shard::reduce(&work, &small(), true).unwrap();
    assert_eq!(waiting.waiting_for, vec![1]);
    let recut = shard::cut(Some(&files), ShardSpec { k: 1, n: 4 }, &work).unwrap();
    assert_eq!(recut.resumed_parts, 0);
    assert_eq!(read(cut_file), cut_bytes);
    shard::reduce(&work, &small(), true).unwrap();
    assert_eq!(decisions(), before, "a reduce after a shard cut again decided otherwise");

    // A finished shard run again reads its parts back instead of decoding them.
    let again = shard::index(&files, &[], ShardSpec { k: 1, n: 4 }, &work, &config(), 8).unwrap();
    assert_eq!(again.resumed_parts, 1);
    // A shard killed before its part was recorded: the part is indexed again, to the same bytes.
    let table = work.join("images/s00002-00000.parquet");
    let table_bytes = read(table.clone());
    std::fs::remove_file(work.join("parts/s00002-00000.json")).unwrap();
    std::fs::remove_file(work.join("indexed/s00002.json")).unwrap();
    std::fs::write(&table, b"half a file").unwrap();
    let redone = shard::index(&files, &[], ShardSpec { k: 2, n: 4 }, &work, &config(), 8).unwrap();
    assert_eq!(redone.resumed_parts, 0);
    assert_eq!(read(table), table_bytes);
    assert_eq!(sharded(&files, &work, Cutting::ByShards), first);

    // Shards of another listing or other settings are refused, never merged.
    let mut other = config();
    other.detector.signals.residual = false;
    let refused = shard::index(&files, &[], ShardSpec { k: 0, n: 4 }, &work, &other, 8);
    assert!(matches!(refused, Err(poisoncam::Error::Work { .. })), "{refused:?}");
}
