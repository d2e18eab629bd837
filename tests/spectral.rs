//! The spectral signal on a generated fixture: colour images of several sizes, a few carrying
//! CTRL's frequency trigger (the simulator's recipe), the rest and a clean twin carrying none.
//! Each test fails when the spectral signal is off: recurrence, left on, must not do its work.

use poisoncam::backend::{Compute, Train};
use poisoncam::detect::Stage;
use poisoncam::filter::guard::Guard;
use poisoncam::sim::whole_image::WholeImageTrigger;
use poisoncam::{PoisonFilter, PoisonFilterConfig};

mod common;
use common::{assert_guard_agrees, whole_image_fixture, WholeImageFixture};

fn fixture() -> WholeImageFixture {
    let ctrl = WholeImageTrigger::Ctrl { magnitude: 100.0 };
    whole_image_fixture(11, 15, |image| ctrl.prepare([3, image.height(), image.width()]).unwrap().apply(image))
}

fn config(spectral: bool) -> PoisonFilterConfig {
    let mut config = PoisonFilterConfig::new();
    config.detector.signals.masking = false;
    config.detector.signals.spectral = spectral;
    config
}

#[test]
fn ctrl_poisons_are_removed_by_the_spectral_signal_and_its_clean_twin_loses_nothing() {
    let f = fixture();
    let (filter, guard) =
        PoisonFilter::fit_guarded::<Train>(f.poisoned.clone(), &config(true), &Default::default()).unwrap();
    let removed: Vec<(usize, Stage)> = filter.report().removals.iter().map(|r| (r.index, r.stage)).collect();
    assert_eq!(removed, f.poisons.iter().map(|&i| (i, Stage::Spectral)).collect::<Vec<_>>());
    f.assert_whole_image_removals(filter.report());

    let twin = PoisonFilter::fit::<Train>(f.clean, &config(true), &Default::default()).unwrap();
    assert_eq!(twin.report().removed, 0, "{:?}", twin.report().signals);

    // Without the spectral signal, recurrence finds no patch to remove.
    let without = PoisonFilter::fit::<Train>(f.poisoned.clone(), &config(false), &Default::default()).unwrap();
    assert_eq!(without.report().removed, 0);

    // The guard, saved and loaded, agrees with the fit on the training samples, removes a poison
    // it never saw and keeps a clean image.
    let dir = tempfile::tempdir().unwrap();
    guard.save(dir.path()).unwrap();
    let loaded = Guard::<Compute>::load(dir.path(), &Default::default()).unwrap();
    let (poison, clean) = &f.held_back;
    for g in [&guard, &loaded] {
        assert_guard_agrees(filter.report(), g, &f.poisoned);
        assert_eq!(g.screen(poison).stage, Some(Stage::Spectral));
        assert!(!g.screen(clean).removed);
    }
}
