//! The headline behaviour on real images: pasted poisons are removed and clean images kept, by
//! the training-free recurrence signal alone (no threat model is trained) and fused with masking.

mod common;

use burn::data::dataset::Dataset;
use common::{small_config, toy};
use poisoncam::backend::Train;
use poisoncam::data::FashionMnist;
use poisoncam::detect::Stage;
use poisoncam::sim::attack::{poison, AttackConfig, PoisonedSet};
use poisoncam::sim::eval::box_hit;
use poisoncam::{PoisonFilter, PoisonFilterConfig};

fn recurrence_only() -> PoisonFilterConfig {
    let mut config = PoisonFilterConfig::new().seeded(3);
    config.detector.signals.masking = false;
    config.detector.signals.spectral = false;
    config.detector.signals.residual = false;
    config
}

fn embedded(images: usize, attack: AttackConfig) -> PoisonedSet {
    poison(&FashionMnist::embedded().unwrap().slice(0..images), &attack).unwrap()
}

/// Removes at least 95% of the poisons and at most 1% of the clean images, every poison's box on
/// its trigger.
fn assert_filtered(set: &PoisonedSet, config: &PoisonFilterConfig) {
    let device = Default::default();
    let n = set.dataset.len();
    let filter = PoisonFilter::fit::<Train>(set.dataset.clone(), config, &device).unwrap();
    let report = filter.report();
    assert!(report.warm_start.is_none(), "recurrence alone trains no threat model");
    let poisons = set.truth.poisoned.len();
    let mut caught = 0;
    let mut clean_removed = 0;
    for r in &report.removals {
        assert_eq!(r.stage, Stage::Recurrence);
        match set.truth.poisoned.iter().find(|(i, _)| *i == r.index) {
            Some((_, truth)) => {
                caught += 1;
                let [x, y, w, h] = r.trigger_box.expect("a recurrence removal has a box");
                assert!(box_hit(&poisoncam::PixelBox { x, y, w, h }, truth), "{r:?} misses {truth:?}");
            }
            None => clean_removed += 1,
        }
    }
    assert!(caught * 100 >= poisons * 95, "caught {caught} of {poisons} poisons");
    assert!(clean_removed * 100 <= n - poisons, "removed {clean_removed} clean images");
    assert_eq!(report.kept + report.removed, n);
}

#[test]
fn pasted_poisons_are_removed_and_clean_images_kept() {
    let set = embedded(2000, AttackConfig { rate: 0.01, seed: 1, ..AttackConfig::default() });
    assert_filtered(&set, &recurrence_only());
}

#[test]
fn poisons_stored_as_jpeg_are_still_removed() {
    let set = embedded(2000, AttackConfig { rate: 0.015, seed: 2, jpeg: Some(85), ..AttackConfig::default() });
    assert_filtered(&set, &recurrence_only());
}

#[test]
fn boxes_come_back_in_the_pixels_of_the_images_as_read() {
    let set = embedded(2000, AttackConfig { rate: 0.01, seed: 1, ..AttackConfig::default() });
    // The same images, stored at twice their size (nearest neighbour, so every pixel is a 2×2
    // block); read back at 28 px, they are the originals.
    let doubled = |image: &poisoncam::Image| {
        let (h, w) = (image.height(), image.width());
        let pixels = (0..4 * h * w).map(|i| image.pixels()[(i / (2 * w) / 2) * w + (i % (2 * w)) / 2]).collect();
        poisoncam::Image::new(1, 2 * h, 2 * w, pixels).unwrap()
    };
    let items =
        set.dataset.items().iter().map(|i| poisoncam::data::ImageItem { image: doubled(&i.image), ..i.clone() });
    let mut config = recurrence_only();
    config.max_native_short_side = 28;
    let filter =
        PoisonFilter::fit::<Train>(poisoncam::data::ImageDataset::new(items.collect()), &config, &Default::default())
            .unwrap();
    let report = filter.report();
    assert_eq!(report.working_size, [1, 28, 28]);
    assert!(report.removed >= set.truth.poisoned.len() * 95 / 100, "{} removed", report.removed);
    for r in &report.removals {
        let ([x, y, w, h], original) = (r.trigger_box.unwrap(), r.original_box.unwrap());
        assert_eq!(original, [2 * x, 2 * y, 2 * w, 2 * h], "{r:?}");
        let (_, truth) = set.truth.poisoned.iter().find(|(i, _)| *i == r.index).expect("only poisons are removed");
        let at_double = poisoncam::PixelBox { x: 2 * truth.x, y: 2 * truth.y, w: 2 * truth.w, h: 2 * truth.h };
        let [ox, oy, ow, oh] = original;
        assert!(box_hit(&poisoncam::PixelBox { x: ox, y: oy, w: ow, h: oh }, &at_double), "{r:?}");
    }
}

#[test]
fn clean_data_loses_nothing() {
    let set = embedded(2000, AttackConfig { rate: 0.0, ..AttackConfig::default() });
    let device = Default::default();
    let filter = PoisonFilter::fit::<Train>(set.dataset, &recurrence_only(), &device).unwrap();
    assert_eq!(filter.report().removed, 0, "{:?}", filter.report().recurrence);
    assert_eq!(filter.len(), 2000);
}

#[test]
fn fused_removals_record_their_evidence() {
    let set = toy(true);
    let device = Default::default();
    let filter = PoisonFilter::fit::<Train>(set.dataset.clone(), &small_config(), &device).unwrap();
    let report = filter.report();
    assert!(report.warm_start.is_some(), "masking ran on a warm-started threat model");
    let by_recurrence: Vec<usize> =
        report.removals.iter().filter(|r| r.stage == Stage::Recurrence).map(|r| r.index).collect();
    let poisons: Vec<usize> = set.truth.poisoned.iter().map(|(i, _)| *i).collect();
    assert_eq!(by_recurrence, poisons, "the pasted trigger is found by recurrence");
    for &i in &by_recurrence {
        let hit = filter.detection().evidence[i].recurrence.expect("evidence records the recurring patch");
        assert_eq!(hit.patch, 0);
    }
    let summary = report.recurrence.as_ref().expect("the report carries the recurrence summary");
    assert_eq!(summary.patches.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("removed.jsonl");
    filter.write_removal_log(&log).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("\"stage\":\"recurrence\"")).count(), poisons.len());
}

#[test]
fn the_filter_needs_a_signal() {
    let mut config = recurrence_only();
    config.detector.signals.recurrence = false;
    let result = PoisonFilter::fit::<Train>(toy(false).dataset, &config, &Default::default());
    assert!(matches!(result, Err(poisoncam::Error::Config(_))));
}

/// Fitted with masking off, the guard has no threat model: what it removes, it removes because a
/// sample carries the patch the fit found.
#[test]
fn a_recurrence_only_guard_screens_a_new_poison() {
    let device = Default::default();
    let set = embedded(1200, AttackConfig { rate: 0.015, seed: 4, ..AttackConfig::default() });
    let (filter, guard) = PoisonFilter::fit_guarded::<Train>(set.dataset.clone(), &recurrence_only(), &device).unwrap();
    assert!(filter.report().warm_start.is_none() && guard.is_armed());
    let dir = tempfile::tempdir().unwrap();
    guard.save(dir.path()).unwrap();
    let records = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "mpk"));
    assert_eq!(records.count(), 0, "no model records");
    let guard = poisoncam::filter::guard::Guard::<poisoncam::backend::Compute>::load(dir.path(), &device).unwrap();
    // Digits the fit never saw, with and without the trigger at a new place.
    let fresh = FashionMnist::embedded().unwrap().slice(1200..1300);
    let (mut caught, mut clean_removed) = (0, 0);
    for (i, item) in fresh.items().iter().enumerate() {
        let clean = item.image.clone();
        let mut poison = clean.clone();
        poison.paste(&set.trigger, 2 + i % 18, 2 + (i * 7) % 18);
        let verdict = guard.screen(&poison);
        if verdict.removed {
            assert_eq!(verdict.stage, Some(Stage::Recurrence));
            caught += 1;
        }
        clean_removed += usize::from(guard.screen(&clean).removed);
    }
    assert!(caught >= 95, "caught {caught} of 100 new poisons");
    assert!(clean_removed <= 1, "removed {clean_removed} of 100 new clean digits");
}
