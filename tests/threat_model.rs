//! Warm start end to end on tiny data: determinism, cache resume, save/load, MoCo.

use burn::backend::{Autodiff, Flex};
use poisoncam::detect::embed::embed;
use poisoncam::detect::threat::{
    load_model, save_model, warm_start, AugmentConfig, EncoderConfig, SslMethod, WarmStartConfig,
};
use poisoncam::image::ImageBatchSource;
use poisoncam::Image;

type Train = Autodiff<Flex>;

fn tiny_images(n: usize) -> ImageBatchSource {
    let images: Vec<Image> = (0..n)
        .map(|i| {
            let pixels = (0..144).map(|p| ((p * (i + 3)) % 17) as f32 / 16.0).collect();
            Image::new(1, 12, 12, pixels).unwrap()
        })
        .collect();
    ImageBatchSource::with_natural_size(&images).unwrap()
}

fn tiny_config() -> WarmStartConfig {
    WarmStartConfig::new()
        .with_encoder(EncoderConfig::new().with_widths([4, 8, 8]).with_projection_dim(8))
        .with_augment(AugmentConfig::new())
        .with_epochs(2)
        .with_batch_size(8)
        .with_seed(3)
}

fn embeddings(model: &poisoncam::detect::threat::ThreatModel<Flex>, images: &ImageBatchSource) -> Vec<f32> {
    embed(&model.backbone, images, 16, &Default::default()).data
}

#[test]
fn warm_start_is_deterministic_under_a_seed() {
    let images = tiny_images(20);
    let device = Default::default();
    let (a, report) = warm_start::<Train>(&images, &tiny_config(), None, &device).unwrap();
    let (b, _) = warm_start::<Train>(&images, &tiny_config(), None, &device).unwrap();
    let (c, _) = warm_start::<Train>(&images, &tiny_config().with_seed(4), None, &device).unwrap();
    assert_eq!(report.losses.len(), 2);
    assert!(report.losses.iter().all(|l| l.is_finite()));
    assert_eq!(embeddings(&a, &images), embeddings(&b, &images));
    assert_ne!(embeddings(&a, &images), embeddings(&c, &images));
}

#[test]
fn an_interrupted_run_resumes_from_its_cache() {
    let images = tiny_images(20);
    let device = Default::default();
    let cache = tempfile::tempdir().unwrap();
    let cached = tiny_config().with_cache_dir(Some(cache.path().to_path_buf()));
    let (straight, _) = warm_start::<Train>(&images, &tiny_config(), None, &device).unwrap();

    let (_, first) = warm_start::<Train>(&images, &cached.clone().with_epochs(1), None, &device).unwrap();
    assert_eq!(first.epochs_from_cache, 0);
    let (resumed, second) = warm_start::<Train>(&images, &cached, None, &device).unwrap();
    assert_eq!(second.epochs_from_cache, 1);
    assert_eq!(second.losses.len(), 2);
    assert_eq!(second.losses[0], first.losses[0]);
    assert_eq!(embeddings(&resumed, &images), embeddings(&straight, &images));

    let (_, third) = warm_start::<Train>(&images, &cached, None, &device).unwrap();
    assert_eq!(third.epochs_from_cache, 2, "a finished run is loaded, not trained again");
}

#[test]
fn a_shorter_run_keeps_a_longer_cached_one() {
    let images = tiny_images(20);
    let device = Default::default();
    let cache = tempfile::tempdir().unwrap();
    let cached = tiny_config().with_cache_dir(Some(cache.path().to_path_buf()));
    let (two, _) = warm_start::<Train>(&images, &cached, None, &device).unwrap();
    let (one, short) = warm_start::<Train>(&images, &cached.clone().with_epochs(1), None, &device).unwrap();
    assert_eq!(short.epochs_from_cache, 0, "one epoch cannot be cut from a two-epoch model");
    let (again, long) = warm_start::<Train>(&images, &cached, None, &device).unwrap();
    assert_eq!(long.epochs_from_cache, 2, "the two-epoch model survived the shorter run");
    assert_eq!(embeddings(&again, &images), embeddings(&two, &images));
    let (_, short_again) = warm_start::<Train>(&images, &cached.with_epochs(1), None, &device).unwrap();
    assert_eq!(short_again.epochs_from_cache, 1, "the shorter run has an entry of its own");
    assert_ne!(embeddings(&one, &images), embeddings(&two, &images));
}

#[test]
fn a_save_killed_half_way_resumes_from_the_last_whole_epoch() {
    let images = tiny_images(20);
    let device = Default::default();
    let cache = tempfile::tempdir().unwrap();
    let cached = tiny_config().with_cache_dir(Some(cache.path().to_path_buf()));
    let (straight, _) = warm_start::<Train>(&images, &tiny_config(), None, &device).unwrap();
    warm_start::<Train>(&images, &cached.clone().with_epochs(1), None, &device).unwrap();
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("one cache entry");
    // A kill while epoch 2 was being written: its model half there, meta.json still at epoch 1.
    std::fs::write(entry.join("model-00002.mpk"), b"half a record").unwrap();
    let (resumed, report) = warm_start::<Train>(&images, &cached, None, &device).unwrap();
    assert_eq!(report.epochs_from_cache, 1);
    assert_eq!(embeddings(&resumed, &images), embeddings(&straight, &images));
    // A meta.json naming records that are not there is no entry, not an error.
    std::fs::write(entry.join("meta.json"), r#"{"epochs": 7, "losses": [1,1,1,1,1,1,1]}"#).unwrap();
    let (_, fresh) = warm_start::<Train>(&images, &cached, None, &device).unwrap();
    assert_eq!(fresh.epochs_from_cache, 0);
}

#[test]
fn two_runs_sharing_a_cache_both_finish_with_the_same_model() {
    let images = tiny_images(20);
    let cache = tempfile::tempdir().unwrap();
    let cached = tiny_config().with_cache_dir(Some(cache.path().to_path_buf()));
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (images, cached) = (images.clone(), cached.clone());
            std::thread::spawn(move || {
                let (model, report) = warm_start::<Train>(&images, &cached, None, &Default::default()).unwrap();
                (embeddings(&model, &images), report.epochs_from_cache)
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(results[0].0, results[1].0);
    let mut from_cache: Vec<usize> = results.iter().map(|r| r.1).collect();
    from_cache.sort_unstable();
    assert_eq!(from_cache, vec![0, 2], "one trained, the other waited and loaded");
}

#[test]
fn saved_and_loaded_encoders_give_identical_embeddings() {
    let images = tiny_images(12);
    let device = Default::default();
    let config = tiny_config().with_epochs(1);
    let (model, _) = warm_start::<Train>(&images, &config, None, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = save_model(&model, dir.path().join("encoder")).unwrap();
    assert!(path.exists());
    let fresh = poisoncam::detect::threat::init_model::<Flex>(&config.encoder_for(&images), 99, &device);
    assert_ne!(embeddings(&fresh, &images), embeddings(&model, &images));
    let loaded = load_model(fresh, &path, &device).unwrap();
    assert_eq!(embeddings(&loaded, &images), embeddings(&model, &images));
    let missing = load_model(model, dir.path().join("absent"), &device);
    assert!(matches!(missing, Err(poisoncam::Error::Io { .. })));
}

#[test]
fn moco_trains_and_moves_the_weights() {
    let images = tiny_images(24);
    let device = Default::default();
    let config = tiny_config().with_method(SslMethod::MocoV2).with_moco_queue(16).with_epochs(1);
    let (model, report) = warm_start::<Train>(&images, &config, None, &device).unwrap();
    assert!(report.losses[0].is_finite() && report.losses[0] > 0.0);
    let untrained = poisoncam::detect::threat::init_model::<Flex>(&config.encoder_for(&images), config.seed, &device);
    assert_ne!(embeddings(&model, &images), embeddings(&untrained, &images));
}

#[test]
fn bad_settings_are_errors() {
    let images = tiny_images(4);
    let device = Default::default();
    let too_small = tiny_config().with_batch_size(1);
    assert!(matches!(
        warm_start::<Train>(&images, &too_small, None, &device),
        Err(poisoncam::Error::InvalidSetting { name: "warm_start.batch_size", .. })
    ));
    let one = tiny_images(1);
    assert!(warm_start::<Train>(&one, &tiny_config(), None, &device).is_err());
}
