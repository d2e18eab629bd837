//! The residual signal on a generated fixture: colour images of several sizes and different
//! content, a few with one noise key blended over the whole image (the simulator's recipe), the
//! rest and a clean twin with none. Each test fails when the residual signal is off: recurrence
//! and the spectral signal, left on, must not do its work.

use poisoncam::detect::Stage;
use poisoncam::sim::whole_image::{BlendKey, WholeImageTrigger};
use poisoncam::PoisonFilterConfig;
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::{photo_like, whole_image_fixture, WholeImageFixture};

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
    fixture().assert_removed_by(Stage::Residual, config);
}
