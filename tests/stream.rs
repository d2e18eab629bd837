//! The streaming guard: save → load keeps its verdicts, and concurrent screening equals serial.

mod common;

use common::{small_config, toy};
use poisoncam::backend::{Compute, Train};
use poisoncam::data::ImageItem;
use poisoncam::stream::{Guard, ScreenExt, Verdict};
use poisoncam::PoisonFilter;
use std::sync::OnceLock;

/// One fit shared by the tests (fitting dominates their run time); each test screens with its own
/// loaded copy so their caches stay apart.
fn fitted() -> (Vec<ImageItem>, Guard<Compute>) {
    static SAVED: OnceLock<(Vec<ImageItem>, tempfile::TempDir)> = OnceLock::new();
    let (items, dir) = SAVED.get_or_init(|| {
        let (items, guard) = fit();
        let dir = tempfile::tempdir().unwrap();
        guard.save(dir.path()).unwrap();
        (items, dir)
    });
    (items.clone(), Guard::load(dir.path(), &Default::default()).unwrap())
}

fn fit() -> (Vec<ImageItem>, Guard<Compute>) {
    let set = toy(false);
    let mut config = small_config();
    config.warm_start.epochs = 3;
    let device = Default::default();
    let (_, guard) = PoisonFilter::fit_guarded::<Train>(set.dataset.clone(), &config, &device).unwrap();
    (set.dataset.into_items(), guard)
}

#[test]
fn guard_screens_consistently_across_save_load_and_threads() {
    let (items, guard) = fit();
    assert!(guard.is_armed(), "the toy's trigger should give the guard a classifier");
    let serial: Vec<Verdict> = items.iter().map(|i| guard.screen(i)).collect();
    assert!(serial.iter().any(|v| v.removed), "some poisons are caught");
    assert!(serial.iter().filter(|v| v.removed).all(|v| v.trigger_box.is_some()));

    let dir = tempfile::tempdir().unwrap();
    guard.save(dir.path()).unwrap();
    let loaded = Guard::<Compute>::load(dir.path(), &Default::default()).unwrap();
    let batch = loaded.screen_batch(&items);
    assert_eq!(batch, serial, "a loaded guard judges as the saved one did");

    let fresh = Guard::<Compute>::load(dir.path(), &Default::default()).unwrap();
    let parallel: Vec<Verdict> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(4))
            .map(|chunk| {
                let fresh = &fresh;
                scope.spawn(move || chunk.iter().map(|i| fresh.screen(i)).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(parallel, serial, "four threads judge as one");

    let kept: Vec<String> = items.iter().cloned().screen(&fresh).map(|i| i.id).collect();
    let removed = fresh.removals();
    assert_eq!(kept.len() + removed.len(), items.len());
    assert_eq!(removed.len(), serial.iter().filter(|v| v.removed).count());
}

#[test]
fn growing_dataset_only_screens_new_samples() {
    let (items, guard) = fitted();
    let first = poisoncam::data::ImageDataset::new(items[..200].to_vec());
    let kept_first = guard.screen_dataset(&first).unwrap();
    let grown = poisoncam::data::ImageDataset::new(items.clone());
    let kept_all = guard.screen_dataset(&grown).unwrap();
    assert_eq!(&kept_all[..kept_first.len()], &kept_first[..]);
    assert!(kept_all.iter().all(|&i| i < items.len()));
    assert_eq!(kept_all.len() + guard.removals().len(), items.len());
}
