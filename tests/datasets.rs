//! Readers against burn's own dataset types and the system Fashion-MNIST files.

use std::collections::HashSet;

use burn::data::dataset::vision::{ImageFolderDataset, MnistItem};
use burn::data::dataset::{Dataset, InMemDataset};
use poisoncam::backend::Train;
use poisoncam::data::{collect_images, read_image_folder, FashionMnist, FASHION_MNIST_DIR};
use poisoncam::detect::Stage;
use poisoncam::sim::attack::{poison, AttackConfig, PoisonedSet};
use poisoncam::{AsImage, Error, PoisonFilterConfig, PoisonFilterExt};

/// 2,000 embedded images, 1% poisoned, and a filter on the training-free signal alone.
fn poisoned_and_config() -> (PoisonedSet, PoisonFilterConfig) {
    let set = poison(
        &FashionMnist::embedded().unwrap().slice(0..2000),
        &AttackConfig { rate: 0.01, seed: 4, ..AttackConfig::default() },
    )
    .unwrap();
    let mut config = PoisonFilterConfig::new().seeded(3);
    config.detector.signals.masking = false;
    (set, config)
}

/// Every poison removed, at most 1% of the clean images, and the rest still served.
fn assert_removed(removed: &HashSet<usize>, poisons: &HashSet<usize>, total: usize, served: usize) {
    assert!(poisons.is_subset(removed), "missed {:?}", poisons.difference(removed).collect::<Vec<_>>());
    let clean_removed = removed.len() - poisons.len();
    assert!(clean_removed * 100 <= total, "removed {clean_removed} clean images");
    assert_eq!(served, total - removed.len());
}

#[test]
fn burn_mnist_items_are_filtered_in_one_line() {
    let (set, config) = poisoned_and_config();
    let items: Vec<MnistItem> = set
        .dataset
        .items()
        .iter()
        .map(|item| {
            let mut image = [[0.0; 28]; 28];
            for (y, row) in image.iter_mut().enumerate() {
                for (x, v) in row.iter_mut().enumerate() {
                    *v = (item.image.get(0, y, x) * 255.0).round();
                }
            }
            MnistItem { image, label: item.label.unwrap() as u8 }
        })
        .collect();
    let total = items.len();

    let filtered = InMemDataset::new(items).poison_filter::<Train>(&config, &Default::default()).unwrap();

    let removed: HashSet<usize> = filtered.report().removals.iter().map(|r| r.index).collect();
    let poisons: HashSet<usize> = set.truth.poisoned.iter().map(|(i, _)| *i).collect();
    assert_removed(&removed, &poisons, total, filtered.len());
}

#[test]
fn an_rgba_image_folder_is_filtered_in_one_line() {
    let (set, config) = poisoned_and_config();
    let dir = tempfile::tempdir().unwrap();
    let mut poison_paths = HashSet::new();
    for (i, item) in set.dataset.items().iter().enumerate() {
        let class = dir.path().join(format!("class{}", item.label.unwrap()));
        std::fs::create_dir_all(&class).unwrap();
        // Grey replicated into RGB, with an alpha channel that varies and must not matter.
        let rgba = image::RgbaImage::from_fn(28, 28, |x, y| {
            let v = (item.image.get(0, y as usize, x as usize) * 255.0).round() as u8;
            image::Rgba([v, v, v, ((x * 9 + y * 5 + i as u32) % 256) as u8])
        });
        let path = class.join(format!("{i:05}.png"));
        rgba.save(&path).unwrap();
        if set.truth.poisoned.iter().any(|(p, _)| *p == i) {
            poison_paths.insert(path.to_string_lossy().into_owned());
        }
    }
    let total = set.dataset.len();

    let filtered = ImageFolderDataset::new_classification(dir.path())
        .unwrap()
        .poison_filter::<Train>(&config, &Default::default())
        .unwrap();

    let report = filtered.report();
    assert!(
        report.removals.iter().all(|r| r.stage != Stage::Unreadable),
        "RGBA PNGs are readable: {:?}",
        report.removals
    );
    let ids: Vec<String> = (0..total).map(|i| filtered.inner().get(i).unwrap().id().unwrap()).collect();
    let removed: HashSet<usize> = report.removals.iter().map(|r| r.index).collect();
    let poisons: HashSet<usize> = (0..total).filter(|&i| poison_paths.contains(&ids[i])).collect();
    assert_eq!(poisons.len(), set.truth.poisoned.len());
    assert_removed(&removed, &poisons, total, filtered.len());
}

#[test]
fn burn_image_folder_items_read_like_our_own() {
    let dir = tempfile::tempdir().unwrap();
    for (class, colour) in [("blue", [0u8, 0, 255]), ("red", [255, 0, 0])] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        let mut img = image::RgbImage::from_pixel(5, 4, image::Rgb(colour));
        img.put_pixel(1, 2, image::Rgb([10, 20, 30]));
        img.save(dir.path().join(class).join("a.png")).unwrap();
    }
    let burn_ds = ImageFolderDataset::new_classification(dir.path()).unwrap();
    let ours = read_image_folder(dir.path(), false).unwrap().dataset;
    assert_eq!(burn_ds.len(), 2);
    let mut by_label: Vec<_> = collect_images(&burn_ds).unwrap();
    by_label.sort_by_key(|(_, l)| *l);
    for ((image, label), item) in by_label.iter().zip(ours.items()) {
        assert_eq!(*label, item.label);
        assert_eq!(image, &item.image);
        assert_eq!((image.channels(), image.height(), image.width()), (3, 4, 5));
    }
    let item = burn_ds.get(0).unwrap();
    assert!(item.id().unwrap().ends_with("a.png"));
    assert!((item.as_image().unwrap().get(2, 2, 1) - 30.0 / 255.0).abs() < 1e-6);
}

#[test]
fn the_full_set_reads_when_installed_and_names_the_package_when_not() {
    match FashionMnist::system_train() {
        Ok(train) => {
            assert_eq!(train.items().len(), 60_000);
            assert!(train.items().iter().all(|i| i.label.is_some_and(|l| l < 10)));
        }
        Err(err) => {
            assert!(!std::path::Path::new(FASHION_MNIST_DIR).join("train-images-idx3-ubyte.gz").exists());
            assert!(matches!(err, Error::MissingPackage { .. }), "{err}");
        }
    }
}
