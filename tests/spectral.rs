//! The spectral signal on a generated fixture: colour images of several sizes, a few carrying
//! CTRL's frequency trigger (the simulator's recipe), the rest and a clean twin carrying none.
//! Each test fails when the spectral signal is off: recurrence, left on, must not do its work.

use burn::data::dataset::Dataset;
use poisoncam::backend::{Compute, Train};
use poisoncam::data::{ImageDataset, ImageItem};
use poisoncam::detect::Stage;
use poisoncam::filter::guard::Guard;
use poisoncam::sim::whole_image::WholeImageTrigger;
use poisoncam::{Image, PoisonFilter, PoisonFilterConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::photo_like;

struct Fixture {
    poisoned: ImageDataset,
    clean: ImageDataset,
    poisons: Vec<usize>,
    /// Images the fit never saw: a poison and a clean one.
    held_back: (Image, Image),
}

fn fixture() -> Fixture {
    let mut rng = StdRng::seed_from_u64(11);
    let images: Vec<Image> = (0..122).map(|_| photo_like(&mut rng)).collect();
    let ctrl = WholeImageTrigger::Ctrl { magnitude: 100.0 };
    let poison = |image: &Image| ctrl.prepare([3, image.height(), image.width()]).unwrap().apply(image);
    let poisons: Vec<usize> = (0..120).step_by(15).collect();
    let item = |i: usize, image: Image| ImageItem { id: format!("f/{i}.png"), image, label: None };
    let clean = ImageDataset::new(images[..120].iter().enumerate().map(|(i, im)| item(i, im.clone())).collect());
    let poisoned = ImageDataset::new(
        images[..120]
            .iter()
            .enumerate()
            .map(|(i, im)| item(i, if poisons.contains(&i) { poison(im) } else { im.clone() }))
            .collect(),
    );
    Fixture { poisoned, clean, poisons, held_back: (poison(&images[120]), images[121].clone()) }
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
    for r in &filter.report().removals {
        let image = f.poisoned.get(r.index).unwrap().image;
        assert_eq!(r.original_box, Some([0, 0, image.width(), image.height()]), "the box is the whole image");
        assert!(r.score > 0.5 && r.score <= 1.0, "{}", r.score);
    }

    let twin = PoisonFilter::fit::<Train>(f.clean, &config(true), &Default::default()).unwrap();
    assert_eq!(twin.report().removed, 0, "{:?}", twin.report().signals);

    // Without the spectral signal, recurrence finds no patch to remove.
    let without = PoisonFilter::fit::<Train>(f.poisoned, &config(false), &Default::default()).unwrap();
    assert_eq!(without.report().removed, 0);

    // The guard, saved and loaded, removes a poison it never saw and keeps a clean image.
    let dir = tempfile::tempdir().unwrap();
    guard.save(dir.path()).unwrap();
    let loaded = Guard::<Compute>::load(dir.path(), &Default::default()).unwrap();
    let (poison, clean) = &f.held_back;
    for g in [&guard, &loaded] {
        assert_eq!(g.screen(poison).stage, Some(Stage::Spectral));
        assert!(!g.screen(clean).removed);
    }
}
