//! The residual signal on a generated fixture: colour images of several sizes and different
//! content, a few with one noise key blended over the whole image (the simulator's recipe), the
//! rest and a clean twin with none. Each test fails when the residual signal is off: recurrence
//! and the spectral signal, left on, must not do its work.

use poisoncam::backend::{Compute, Train};
use poisoncam::detect::Stage;
use poisoncam::filter::guard::Guard;
use poisoncam::sim::whole_image::{BlendKey, WholeImageTrigger};
use poisoncam::{PoisonFilter, PoisonFilterConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::{assert_guard_agrees, photo_like, whole_image_fixture, WholeImageFixture};

/// The key is drawn once, at the first image's size, and resized to each poison.
fn fixture() -> WholeImageFixture {
    let blend = WholeImageTrigger::Blend { key: BlendKey::Noise { seed: 3 }, alpha: 0.2 };
    let first = photo_like(&mut StdRng::seed_from_u64(5));
    let key = blend.prepare([3, first.height(), first.width()]).unwrap();
    whole_image_fixture(5, 10, |image| key.apply(image))
}

fn config(residual: bool) -> PoisonFilterConfig {
    let mut config = PoisonFilterConfig::new();
    config.detector.signals.masking = false;
    config.detector.signals.residual = residual;
    config
}

#[test]
fn a_blended_noise_key_is_removed_by_the_residual_signal_and_its_clean_twin_loses_nothing() {
    let f = fixture();
    let (filter, guard) =
        PoisonFilter::fit_guarded::<Train>(f.poisoned.clone(), &config(true), &Default::default()).unwrap();
    let removed: Vec<(usize, Stage)> = filter.report().removals.iter().map(|r| (r.index, r.stage)).collect();
    assert_eq!(
        removed,
        f.poisons.iter().map(|&i| (i, Stage::Residual)).collect::<Vec<_>>(),
        "{:?}",
        filter.report().signals
    );
    f.assert_whole_image_removals(filter.report());

    let twin = PoisonFilter::fit::<Train>(f.clean, &config(true), &Default::default()).unwrap();
    assert_eq!(twin.report().removed, 0, "{:?}", twin.report().signals);

    // Without the residual signal, neither recurrence nor the spectral signal removes anything.
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
        assert_eq!(g.screen(poison).stage, Some(Stage::Residual));
        assert!(!g.screen(clean).removed);
    }
}
