//! The signal seam: a deny list of known poisons' hashes (the smallest real signal) through the
//! filter, the guard and a saved guard; and the guard agreeing with the filter on the training
//! samples, stage, score and box, because the fit's findings are its screens' rule.

mod common;

use std::path::Path;

use burn::data::dataset::Dataset;
use common::toy;
use image::ImageEncoder;
use poisoncam::backend::Train;
use poisoncam::data::{list_image_folder, FashionMnist};
use poisoncam::detect::Stage;
use poisoncam::filter::guard::Guard;
use poisoncam::sim::attack::{poison, AttackConfig};
use poisoncam::{AsImage, Error, PoisonFilter, PoisonFilterConfig};
use sha2::Digest;

/// 30 PNGs of noise in `dir`; returns their paths.
fn write_noise_pngs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut state = 7u32;
    (0..30)
        .map(|i| {
            let pixels: Vec<u8> = (0..32 * 32 * 3)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            let path = dir.join(format!("{i:02}.png"));
            image::RgbImage::from_raw(32, 32, pixels).unwrap().save(&path).unwrap();
            path
        })
        .collect()
}

fn sha256_line(path: &Path) -> String {
    let hash = sha2::Sha256::digest(std::fs::read(path).unwrap());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}  {}\n", path.file_name().unwrap().to_string_lossy())
}

fn deny_config(list: &Path) -> PoisonFilterConfig {
    let mut config = PoisonFilterConfig::new();
    config.detector.signals.masking = false;
    config.detector.deny = Some(list.to_path_buf());
    config
}

#[test]
fn a_deny_list_removes_exactly_the_listed_files_and_the_guard_screens_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let paths = write_noise_pngs(&images);
    let listed = [4, 11, 27];
    let list = dir.path().join("poisons.sha256");
    std::fs::write(&list, listed.iter().map(|&i| sha256_line(&paths[i])).collect::<String>()).unwrap();

    let files = list_image_folder(&images).unwrap().files;
    let listing = list_image_folder(&images).unwrap().files;
    let (filter, guard) =
        PoisonFilter::fit_guarded::<Train>(listing, &deny_config(&list), &Default::default()).unwrap();
    let removed: Vec<(usize, Stage)> = filter.report().removals.iter().map(|r| (r.index, r.stage)).collect();
    assert_eq!(removed, listed.iter().map(|&i| (i, Stage::Deny)).collect::<Vec<_>>());
    assert_eq!(filter.len(), 27);
    let deny = filter.report().signals.iter().find(|s| s.name == "deny").expect("the deny signal reports");
    assert_eq!((deny.found, deny.summary["hashed"].as_u64()), (3, Some(30)));

    // The guard, and a guard saved and loaded, judge the files as the filter did.
    let saved = dir.path().join("guard");
    guard.save(&saved).unwrap();
    let loaded = Guard::<poisoncam::backend::Compute>::load(&saved, &Default::default()).unwrap();
    for g in [&guard, &loaded] {
        common::assert_guard_agrees(filter.report(), g, &files);
    }

    // The same pixels stored as other bytes are not the listed file: the list is of bytes.
    let copy = images.join("copy-of-04.png");
    let pixels = image::open(&paths[4]).unwrap().to_rgb8();
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Paeth,
    )
    .write_image(&pixels, 32, 32, image::ExtendedColorType::Rgb8)
    .unwrap();
    std::fs::write(&copy, &bytes).unwrap();
    assert_ne!(std::fs::read(&copy).unwrap(), std::fs::read(&paths[4]).unwrap());
    let files = list_image_folder(&images).unwrap().files;
    let by_id = |id: &str| (0..files.len()).map(|i| files.get(i).unwrap()).find(|f| f.id == id).unwrap();
    let (copy, listed_file) = (by_id("copy-of-04.png"), by_id("04.png"));
    assert!(copy.as_image().unwrap() == listed_file.as_image().unwrap(), "the copy decodes as 04 does");
    assert!(!loaded.screen(&copy).removed, "a re-encoded copy has another hash");
    assert!(loaded.screen(&listed_file).removed, "and the listed file is still removed");
}

#[test]
fn a_deny_list_of_items_without_bytes_or_without_hashes_is_an_error_not_a_clean_result() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list");
    std::fs::write(&list, "not-a-hash  a.png\n").unwrap();
    let set = toy(false);
    let Err(err) = PoisonFilter::fit::<Train>(set.dataset.clone(), &deny_config(&list), &Default::default()) else {
        panic!("a list with no hash was accepted")
    };
    assert!(matches!(&err, Error::Format { reason, .. } if reason.starts_with("line 1:")), "{err}");
    std::fs::write(&list, format!("{}  a.png\n", "ab".repeat(32))).unwrap();
    let Err(err) = PoisonFilter::fit::<Train>(set.dataset, &deny_config(&list), &Default::default()) else {
        panic!("a list that can match nothing passed for a clean result")
    };
    assert!(matches!(&err, Error::Config(reason) if reason.contains("have none")), "{err}");
}

#[test]
fn the_guard_agrees_with_the_filter_on_its_own_recurrence_removals_in_stage_score_and_box() {
    // Stored as JPEG q85, so that copies match within a distance and scores differ.
    let base = FashionMnist::embedded().unwrap().slice(0..1000);
    let set = poison(&base, &AttackConfig { rate: 0.02, seed: 2, jpeg: Some(85), ..AttackConfig::default() }).unwrap();
    let mut config = PoisonFilterConfig::new();
    config.detector.signals.masking = false;
    let (filter, guard) =
        PoisonFilter::fit_guarded::<Train>(set.dataset.clone(), &config, &Default::default()).unwrap();
    let removals = &filter.report().removals;
    assert!(removals.len() * 10 >= set.truth.poisoned.len() * 9, "recurrence finds most poisons: {}", removals.len());
    assert!(removals.iter().any(|r| r.score < 1.0), "scores are graded by distance, not a constant");
    common::assert_guard_agrees(filter.report(), &guard, &set.dataset);
}
