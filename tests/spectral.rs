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
use rand::{RngExt, SeedableRng};

/// A colour image of its own size: a smooth two-colour gradient, blotches and pixel noise, so that
/// its windows differ as a photo's do; stored at 8 bits.
fn photo_like(rng: &mut StdRng) -> Image {
    let (h, w) = (rng.random_range(96..200usize), rng.random_range(96..200usize));
    let base: [f32; 6] = std::array::from_fn(|_| rng.random::<f32>() * 0.6 + 0.2);
    let blots: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
        .map(|_| {
            (
                rng.random::<f32>() * w as f32,
                rng.random::<f32>() * h as f32,
                10.0 + rng.random::<f32>() * 30.0,
                std::array::from_fn(|_| rng.random::<f32>() - 0.5),
            )
        })
        .collect();
    let mut pixels = vec![0.0; 3 * h * w];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let t = (x + y) as f32 / (h + w) as f32;
                let mut v = base[c] * (1.0 - t) + base[3 + c] * t;
                for (bx, by, r, col) in &blots {
                    let d2 = (x as f32 - bx).powi(2) + (y as f32 - by).powi(2);
                    v += col[c] * 0.4 * (-d2 / (r * r)).exp();
                }
                v += (rng.random::<f32>() - 0.5) * 0.08;
                pixels[(c * h + y) * w + x] = (v.clamp(0.0, 1.0) * 255.0).round() / 255.0;
            }
        }
    }
    Image::new(3, h, w, pixels).unwrap()
}

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
