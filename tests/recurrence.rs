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
fn masking_needs_a_signal_and_the_guard_needs_masking() {
    let device = Default::default();
    let mut config = recurrence_only();
    let set = toy(false);
    assert!(matches!(
        PoisonFilter::fit_guarded::<Train>(set.dataset.clone(), &config, &device),
        Err(poisoncam::Error::Config(_))
    ));
    config.detector.signals.recurrence = false;
    assert!(matches!(PoisonFilter::fit::<Train>(set.dataset, &config, &device), Err(poisoncam::Error::Config(_))));
}
