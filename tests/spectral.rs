//! The spectral signal on a generated fixture: colour images of several sizes, a few carrying
//! CTRL's frequency trigger (the simulator's recipe), the rest and a clean twin carrying none.
//! Each test fails when the spectral signal is off: recurrence, left on, must not do its work.

use poisoncam::detect::Stage;
use poisoncam::sim::whole_image::WholeImageTrigger;
use poisoncam::PoisonFilterConfig;

mod common;
use common::{whole_image_fixture, WholeImageFixture};

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
    fixture().assert_removed_by(Stage::Spectral, config);
}
