//! Readers against burn's own dataset types and the system Fashion-MNIST files.

use burn::data::dataset::vision::ImageFolderDataset;
use burn::data::dataset::Dataset;
use poisoncam::data::{collect_images, read_image_folder, FashionMnist, FASHION_MNIST_DIR};
use poisoncam::{AsImage, Error};

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
