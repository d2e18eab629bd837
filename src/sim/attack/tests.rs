//! The simulator against the changed pixels: truth boxes, placement, variants.

use super::*;
use crate::data::ImageItem;

fn toy(n: usize) -> ImageDataset {
    let items = (0..n)
        .map(|i| ImageItem {
            id: i.to_string(),
            image: Image::new(1, 20, 20, vec![0.5; 400]).unwrap(),
            label: Some(i % 4),
        })
        .collect();
    ImageDataset::new(items)
}

#[test]
fn ground_truth_matches_the_changed_pixels() {
    let clean = toy(200);
    let config = AttackConfig { rate: 0.05, ..AttackConfig::default() };
    let set = poison(&clean, &config).unwrap();
    assert_eq!(set.truth.poisoned.len(), 10);
    for (index, (before, after)) in clean.items().iter().zip(set.dataset.items()).enumerate() {
        let changed: Vec<(usize, usize)> = (0..20)
            .flat_map(|y| (0..20).map(move |x| (y, x)))
            .filter(|&(y, x)| before.image.get(0, y, x) != after.image.get(0, y, x))
            .collect();
        match set.truth.poisoned.iter().find(|(i, _)| *i == index) {
            None => assert!(changed.is_empty(), "clean item {index} changed"),
            Some((_, bx)) => {
                assert_eq!(before.label, Some(config.target));
                assert_eq!((bx.w, bx.h), (4, 4));
                assert!(bx.x >= 5 && bx.x + bx.w <= 15 && bx.y >= 5 && bx.y + bx.h <= 15, "{bx:?}");
                assert!(!changed.is_empty());
                for (y, x) in changed {
                    assert!(x >= bx.x && x < bx.x + bx.w && y >= bx.y && y < bx.y + bx.h);
                }
                for y in bx.y..bx.y + bx.h {
                    for x in bx.x..bx.x + bx.w {
                        assert_eq!(after.image.get(0, y, x), set.trigger.get(0, y - bx.y, x - bx.x));
                    }
                }
            }
        }
    }
}

#[test]
fn deterministic_under_a_seed() {
    let clean = toy(100);
    let a = poison(&clean, &AttackConfig { rate: 0.1, ..AttackConfig::default() }).unwrap();
    let b = poison(&clean, &AttackConfig { rate: 0.1, ..AttackConfig::default() }).unwrap();
    let c = poison(&clean, &AttackConfig { rate: 0.1, seed: 5, ..AttackConfig::default() }).unwrap();
    assert_eq!(a.truth, b.truth);
    assert_eq!(a.dataset.items(), b.dataset.items());
    assert_ne!(a.truth, c.truth);
}

#[test]
fn trigger_has_full_contrast() {
    let t = make_trigger(&TriggerSource::Procedural { seed: 3 }, 1, 6).unwrap();
    let (lo, hi) = t.pixels().iter().fold((1f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert_eq!((lo, hi), (0.0, 1.0));
    assert_ne!(t, make_trigger(&TriggerSource::Procedural { seed: 4 }, 1, 6).unwrap());
}

#[test]
fn impossible_attacks_are_errors() {
    let clean = toy(40);
    let too_many = AttackConfig { rate: 0.5, ..AttackConfig::default() };
    assert!(matches!(poison(&clean, &too_many), Err(Error::Attack(_))));
    assert!(poison(&clean, &AttackConfig { rate: 1.5, ..AttackConfig::default() }).is_err());
    let unlabeled = ImageDataset::new(vec![ImageItem {
        id: "x".into(),
        image: Image::new(1, 4, 4, vec![0.0; 16]).unwrap(),
        label: None,
    }]);
    assert!(matches!(poison(&unlabeled, &AttackConfig::default()), Err(Error::MissingLabel { .. })));
}

#[test]
fn variants_jitter_blend_and_jpeg() {
    let clean = toy(400);
    let jitter = AttackConfig { rate: 0.1, jitter: 1, ..AttackConfig::default() };
    let sides: std::collections::BTreeSet<usize> =
        poison(&clean, &jitter).unwrap().truth.poisoned.iter().map(|(_, b)| b.w).collect();
    assert_eq!(sides.into_iter().collect::<Vec<_>>(), vec![3, 4, 5]);

    let blended = poison(&clean, &AttackConfig { rate: 0.1, blend: 0.5, ..AttackConfig::default() }).unwrap();
    let (index, bx) = blended.truth.poisoned[0];
    let got = blended.dataset.items()[index].image.get(0, bx.y, bx.x);
    assert!((got - (0.5 * blended.trigger.get(0, 0, 0) + 0.25)).abs() < 1e-6);

    let jpeg = poison(&clean, &AttackConfig { rate: 0.1, jpeg: Some(85), ..AttackConfig::default() }).unwrap();
    let plain = poison(&clean, &AttackConfig { rate: 0.1, ..AttackConfig::default() }).unwrap();
    assert_eq!(jpeg.truth, plain.truth);
    let rms = |a: &Image, b: &Image| {
        let n = a.pixels().len() as f32;
        (a.pixels().iter().zip(b.pixels()).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / n).sqrt()
    };
    let (index, _) = plain.truth.poisoned[0];
    let error = rms(&jpeg.dataset.items()[index].image, &plain.dataset.items()[index].image);
    assert!(error > 0.0 && error < 0.05, "JPEG 85 changes a poisoned image by {error}");
    assert!(poison(&clean, &AttackConfig { blend: 0.0, ..AttackConfig::default() }).is_err());
    assert!(poison(&clean, &AttackConfig { jpeg: Some(0), ..AttackConfig::default() }).is_err());
}

#[test]
fn triggered_test_set_skips_the_target_class() {
    let test = toy(40);
    let config = AttackConfig::default();
    let trigger = make_trigger(&config.trigger, 1, 4).unwrap();
    let triggered = triggered_test_set(&test, &trigger, &config).unwrap();
    assert_eq!(triggered.items().len(), 30);
    assert!(triggered.items().iter().all(|i| i.label != Some(0)));
    assert!(triggered
        .items()
        .iter()
        .zip(test.items().iter().filter(|i| i.label != Some(0)))
        .all(|(a, b)| a.image != b.image));
}

#[test]
fn a_whole_image_trigger_changes_exactly_the_poisons_and_boxes_the_whole_image() {
    use crate::sim::whole_image::{BlendKey, WholeImageTrigger};
    let clean = toy(200);
    let trigger = WholeImageTrigger::Blend { key: BlendKey::Noise { seed: 5 }, alpha: 0.2 };
    let config = AttackConfig { rate: 0.05, whole_image: Some(trigger), ..AttackConfig::default() };
    let set = poison(&clean, &config).unwrap();
    assert_eq!(set.truth.poisoned.len(), 10);
    for (index, (before, after)) in clean.items().iter().zip(set.dataset.items()).enumerate() {
        let changed = before.image.pixels().iter().zip(after.image.pixels()).filter(|(a, b)| a != b).count();
        match set.truth.poisoned.iter().find(|(i, _)| *i == index) {
            None => assert_eq!(changed, 0, "clean item {index} changed"),
            Some((_, bx)) => {
                assert_eq!(*bx, PixelBox { x: 0, y: 0, w: 20, h: 20 });
                assert!(changed > 300, "poison {index}: {changed} of 400 pixels changed");
            }
        }
    }
    // The triggered test images carry the same key.
    let triggered = triggered_test_set(&clean, &set.trigger, &config).unwrap();
    let first = &triggered.items()[0].image;
    let expected = 0.8 * 0.5 + 0.2 * set.trigger.get(0, 3, 4);
    assert!((first.get(0, 3, 4) - expected).abs() <= 0.5 / 255.0 + 1e-6);
}
