//! The streaming guard: save → load keeps its verdicts, and concurrent screening equals serial.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::{small_config, toy};
use poisoncam::backend::{Compute, Train};
use poisoncam::data::{ImageDataset, ImageItem};
use poisoncam::stream::{Guard, ScreenExt, Verdict};
use poisoncam::PoisonFilter;

/// One fit shared by the tests (fitting dominates their run time): the items, the saved guard,
/// and the verdicts the guard gave before it was saved.
struct Fitted {
    items: Vec<ImageItem>,
    dir: tempfile::TempDir,
    before_save: Vec<Verdict>,
}

fn fitted() -> &'static Fitted {
    static FITTED: OnceLock<Fitted> = OnceLock::new();
    FITTED.get_or_init(|| {
        let set = toy(false);
        let mut config = small_config();
        config.warm_start.epochs = 3;
        let (_, guard) = PoisonFilter::fit_guarded::<Train>(set.dataset.clone(), &config, &Default::default()).unwrap();
        assert!(guard.is_armed(), "the toy's trigger should give the guard a classifier");
        let items = set.dataset.into_items();
        let before_save = guard.screen_batch(&items);
        let dir = tempfile::tempdir().unwrap();
        guard.save(dir.path()).unwrap();
        Fitted { items, dir, before_save }
    })
}

fn load(dir: &Path) -> Guard<Compute> {
    Guard::load(dir, &Default::default()).unwrap()
}

#[test]
fn a_loaded_guard_judges_as_the_saved_one() {
    let f = fitted();
    assert!(f.before_save.iter().any(|v| v.removed), "some poisons are caught");
    assert!(f.before_save.iter().filter(|v| v.removed).all(|v| v.trigger_box.is_some()));
    assert_eq!(load(f.dir.path()).screen_batch(&f.items), f.before_save);
}

#[test]
fn concurrent_screening_equals_serial() {
    let f = fitted();
    let guard = load(f.dir.path());
    let parallel: Vec<Verdict> = std::thread::scope(|scope| {
        let handles: Vec<_> = f
            .items
            .chunks(f.items.len().div_ceil(4))
            .map(|chunk| {
                let guard = &guard;
                scope.spawn(move || chunk.iter().map(|i| guard.screen(i)).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(parallel, f.before_save, "four threads judge as one");
}

#[test]
fn iterator_screening_logs_what_it_drops() {
    let f = fitted();
    let guard = load(f.dir.path());
    let kept: Vec<String> = f.items.iter().cloned().screen(&guard).map(|i| i.id).collect();
    let removed = guard.removals();
    assert_eq!(kept.len() + removed.len(), f.items.len());
    assert_eq!(removed.len(), f.before_save.iter().filter(|v| v.removed).count());
    assert!(removed.iter().all(|(id, _)| !kept.contains(id)));
}

#[test]
fn growing_dataset_only_adds_the_new_samples() {
    let f = fitted();
    let guard = load(f.dir.path());
    let kept_first = guard.screen_dataset(&ImageDataset::new(f.items[..200].to_vec())).unwrap();
    let kept_all = guard.screen_dataset(&ImageDataset::new(f.items.clone())).unwrap();
    assert_eq!(&kept_all[..kept_first.len()], &kept_first[..]);
    let expected: Vec<usize> = (0..f.items.len()).filter(|&i| !f.before_save[i].removed).collect();
    assert_eq!(kept_all, expected);
}
