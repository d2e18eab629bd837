//! The photo attack: placement, written files, whole-image triggers, scoring.

use super::*;
use crate::image::Image;

#[test]
fn nonsense_attacks_are_named() {
    let attack = PhotoAttack {
        trigger: "t.png".into(),
        trigger_px: 50,
        target: "a".into(),
        class_rate: 0.5,
        blend: 1.0,
        scale_jitter: 0.0,
        stored_as: StoredAs::Jpeg(75),
        seed: 0,
        whole_image: None,
    };
    assert!(attack.check().is_ok());
    for bad in [
        PhotoAttack { trigger_px: 0, ..attack.clone() },
        PhotoAttack { class_rate: 1.5, ..attack.clone() },
        PhotoAttack { blend: 0.0, ..attack.clone() },
        PhotoAttack { scale_jitter: f64::NAN, ..attack.clone() },
        PhotoAttack { stored_as: StoredAs::Jpeg(0), ..attack.clone() },
    ] {
        assert!(matches!(bad.check(), Err(Error::Attack(_))), "{bad:?}");
    }
}

#[test]
fn the_htba_placement_keeps_the_trigger_in_the_middle_half() {
    use crate::sim::trigger::{HtbaPatch, Trigger};
    let trigger = Image::new(3, 8, 8, vec![1.0; 192]).unwrap();
    let htba = HtbaPatch { patch: &trigger, px: 20, scale_jitter: 0.0, alpha: 1.0 };
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..50 {
        let mut image = Image::new(3, 100, 160, vec![0.0; 3 * 100 * 160]).unwrap();
        let b = htba.apply(&mut image, &mut rng).unwrap();
        assert!(b.x >= 40 && b.x + b.w <= 120 && b.y >= 25 && b.y + b.h <= 75, "{b:?}");
        assert_eq!(image.get(1, b.y + 3, b.x + 3), 1.0);
    }
    let mut small = Image::new(3, 30, 30, vec![0.0; 2700]).unwrap();
    let before = small.clone();
    assert!(htba.apply(&mut small, &mut rng).is_none(), "15 px of middle half cannot hold 20 px");
    assert!(small == before, "an image that cannot hold the trigger is left clean");
}

#[test]
fn a_whole_image_attack_writes_its_trigger_over_each_poison_and_boxes_the_whole_image() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    for (class, n) in [("cats", 4), ("dogs", 2)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..n {
            image::RgbImage::from_pixel(100, 120, image::Rgb([128; 3]))
                .save(data.join(format!("{class}/{i}.png")))
                .unwrap();
        }
    }
    let attack = PhotoAttack {
        trigger: PathBuf::new(),
        trigger_px: 50,
        target: "cats".into(),
        class_rate: 0.5,
        blend: 1.0,
        scale_jitter: 0.0,
        stored_as: StoredAs::Png,
        seed: 1,
        whole_image: Some(WholeImageTrigger::Sig { delta: 20.0, frequency: 6.0 }),
    };
    let truth = attack.write(&crate::data::list_image_folder(&data).unwrap(), &out).unwrap();
    let poisons: Vec<(&String, &Option<PixelBox>)> = truth.files.iter().filter(|(_, b)| b.is_some()).collect();
    assert_eq!(poisons.len(), 2);
    for (id, b) in truth.files.iter() {
        let written = decode(&out.join(id)).unwrap();
        for x in [3, 17, 40] {
            let level = written.get(0, 5, x) * 255.0 - 128.0;
            let wave =
                if b.is_some() { 20.0 * (2.0 * std::f32::consts::PI * x as f32 * 6.0 / 100.0).sin() } else { 0.0 };
            assert!((level - wave).abs() <= 0.51, "{id} at x {x}: {level} against {wave}");
        }
        if let Some(b) = b {
            assert_eq!(*b, PixelBox { x: 0, y: 0, w: 100, h: 120 });
        }
    }
}

#[test]
fn a_written_attack_hides_its_poisons_and_is_scored_against_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    let mut rng = StdRng::seed_from_u64(2);
    for (class, n) in [("cats", 10), ("dogs", 6)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..n {
            let pixels: Vec<u8> = (0..3 * 120 * 100).map(|_| rng.random::<u8>()).collect();
            image::RgbImage::from_raw(100, 120, pixels).unwrap().save(data.join(format!("{class}/{i}.png"))).unwrap();
        }
    }
    let trigger = dir.path().join("t.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 0])).save(&trigger).unwrap();
    let attack = PhotoAttack {
        trigger,
        trigger_px: 20,
        target: "cats".into(),
        class_rate: 0.5,
        blend: 1.0,
        scale_jitter: 0.0,
        stored_as: StoredAs::Png,
        seed: 4,
        whole_image: None,
    };
    let truth = attack.write(&crate::data::list_image_folder(&data).unwrap(), &out).unwrap();
    assert_eq!(truth.files.len(), 16);
    let poisons: Vec<(&String, PixelBox)> = truth.files.iter().filter_map(|(id, b)| Some((id, (*b)?))).collect();
    assert_eq!(poisons.len(), 5, "half of the 10 cats");
    assert!(poisons.iter().all(|(id, _)| id.starts_with("cats/")));
    for id in truth.files.keys() {
        let name = id.rsplit('/').next().unwrap();
        assert!(name.len() == 20 && name.ends_with(".png"), "a random name in one format: {id}");
    }
    let (id, b) = poisons[0];
    let written = decode(&out.join(id)).unwrap();
    assert_eq!((written.get(0, b.y + 10, b.x + 10), written.get(1, b.y + 10, b.x + 10)), (1.0, 0.0));
    assert!(matches!(
        PhotoAttack { target: "birds".into(), ..attack.clone() }
            .write(&crate::data::list_image_folder(&data).unwrap(), &dir.path().join("o2")),
        Err(Error::Attack(_))
    ));

    let clean = truth.files.iter().find(|(_, b)| b.is_none()).map(|(id, _)| id.clone()).unwrap();
    let removal = |id: &str, original_box: Option<[usize; 4]>| crate::filter::report::Removal {
        index: 0,
        id: id.into(),
        score: 1.0,
        trigger_box: None,
        original_box,
        stage: crate::detect::Stage::Recurrence,
        error: None,
    };
    let report = FilterReport {
        removals: vec![
            removal(poisons[0].0, Some([b.x + 5, b.y + 5, 4, 4])),
            removal(poisons[1].0, Some([0, 0, 2, 2])),
            removal(&clean, None),
        ],
        total: 16,
        kept: 13,
        removed: 3,
        backend: "flex".into(),
        working_size: [3, 120, 100],
        warm_start: None,
        recurrence: None,
        kept_clusters: vec![],
        paste_threshold: None,
        classifier_validation: None,
        classifier_flagged: None,
        classifier_skipped: None,
        cost: vec![],
        signals: Vec::new(),
        duplicates: vec![],
    };
    let score = PhotoScore::of(&report, &truth);
    assert_eq!((score.poisons, score.removed, score.true_removed, score.clean_removed), (5, 3, 2, 1));
    assert!((score.precision - 2.0 / 3.0).abs() < 1e-9 && (score.recall - 0.4).abs() < 1e-9);
    let located_second = poisons[1].1.intersection(&PixelBox { x: 0, y: 0, w: 2, h: 2 }) > 0;
    assert_eq!(score.localisation, if located_second { 1.0 } else { 0.5 });
}

#[test]
fn the_hold_back_is_a_seeded_share_and_keeps_every_file() {
    let files = |n: usize| -> Vec<crate::data::ImageFile> {
        (0..n)
            .map(|i| crate::data::ImageFile { id: format!("f{i}.jpg"), path: format!("f{i}.jpg").into(), label: None })
            .collect()
    };
    let ids = |v: &[crate::data::ImageFile]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    let (fitted, held) = hold_back(files(1000), 0.3, 7);
    assert_eq!(fitted.len() + held.len(), 1000);
    assert!((250..350).contains(&held.len()), "{} held of 1000 at 0.3", held.len());
    let (again_fitted, again_held) = hold_back(files(1000), 0.3, 7);
    assert_eq!((ids(&fitted), ids(&held)), (ids(&again_fitted), ids(&again_held)));
    let (_, other_seed) = hold_back(files(1000), 0.3, 8);
    assert_ne!(ids(&held), ids(&other_seed), "the seed draws another split");
    let (all, none) = hold_back(files(1000), 0.0, 7);
    assert_eq!((all.len(), none.len()), (1000, 0));
}
