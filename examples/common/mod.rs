//! Shared by the SimCLR and MoCo examples: three SSL trainings through burn's `DataLoaderBuilder`
//! (on poisoned data, on the `PoisonFilter`-wrapped poisoned data, on clean data) and their kNN
//! downstream scores.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use poisoncam::backend::{Compute, Train};
use poisoncam::data::{FashionMnist, ImageBatcher, ImageItem};
use poisoncam::detect::threat::{train_from_loader, EncoderConfig, SslMethod, ThreatModel, WarmStartConfig};
use poisoncam::image::ImageBatchSource;
use poisoncam::sim::attack::{poison, triggered_test_set, AttackConfig};
use poisoncam::sim::eval::{downstream_scores, DownstreamData, DownstreamScores, LabeledImages};
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};

/// `--epochs N` (default 6) and `--train N` (default 5000, the demo's recipe) from the command line.
fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn source(items: &[ImageItem]) -> Result<ImageBatchSource> {
    let images: Vec<_> = items.iter().map(|i| i.image.clone()).collect();
    ImageBatchSource::with_natural_size(&images)
}

/// Trains an encoder on `dataset` the way a burn user would: a batcher, a loader, a loop.
fn train<D: Dataset<ImageItem> + 'static>(dataset: D, ssl: &WarmStartConfig) -> Result<ThreatModel<Compute>> {
    let device = burn::tensor::Device::<Compute>::default();
    let loader = DataLoaderBuilder::<Compute, ImageItem, _>::new(ImageBatcher { channels: 1, height: 28, width: 28 })
        .batch_size(ssl.batch_size)
        .shuffle(ssl.seed)
        .build(dataset);
    train_from_loader::<Train>(&*loader, &EncoderConfig::new(), ssl, &device)
}

pub fn run(method: SslMethod) -> Result<()> {
    let device = burn::tensor::Device::<Compute>::default();
    let epochs = arg("--epochs", 6);
    let n_train = arg("--train", 5000).clamp(100, 9000);
    let all = FashionMnist::embedded()?;
    let (train_set, test_set) = (all.slice(0..n_train), all.slice(n_train..10_000));
    let attack = AttackConfig::default();
    let attacked = poison(&train_set, &attack)?;
    let triggered = triggered_test_set(&test_set, &attacked.trigger, &attack)?;

    let mut ssl = WarmStartConfig::new().with_method(method).with_epochs(epochs);
    ssl.augment.crop_scale_min = 0.6;
    let mut config = PoisonFilterConfig::new();
    config.warm_start = ssl.clone();

    // The unfiltered training is exactly the warm start the filter would run, so its encoder is
    // handed over as the threat model rather than trained a second time.
    let poisoned = train(attacked.dataset.clone(), &ssl)?;
    // The one-line wrap: still a burn Dataset, now without the samples judged poisonous.
    let filtered =
        PoisonFilter::fit_with_encoder::<Train>(attacked.dataset.clone(), &poisoned.backbone, &config, &device)?;
    println!("filter removed {} of {} samples", filtered.report().removed, filtered.report().total);
    let kept_items: Vec<ImageItem> = (0..filtered.len()).filter_map(|i| filtered.get(i)).collect();
    let kept_poisons: Vec<usize> = filtered
        .kept_indices()
        .iter()
        .enumerate()
        .filter(|(_, &i)| attacked.truth.is_poisoned(i))
        .map(|(row, _)| row)
        .collect();

    let test = source(test_set.items())?;
    let test_labels: Vec<usize> = test_set.items().iter().map(|i| i.label.unwrap_or(0)).collect();
    let triggered = source(triggered.items())?;
    let score = |model: &ThreatModel<Compute>, bank: &[ImageItem], poisons: &[usize]| -> Result<DownstreamScores> {
        let images = source(bank)?;
        let labels: Vec<usize> = bank.iter().map(|i| i.label.unwrap_or(0)).collect();
        let data = DownstreamData {
            bank: LabeledImages { images: &images, labels: &labels },
            poisoned: poisons,
            test: LabeledImages { images: &test, labels: &test_labels },
            triggered: &triggered,
            target: attack.target,
            k: 20,
        };
        Ok(downstream_scores(&model.backbone, &data, 512, &device))
    };
    let all_poisons: Vec<usize> = attacked.truth.poisoned.iter().map(|(i, _)| *i).collect();
    let rows = [
        ("poisoned", score(&poisoned, attacked.dataset.items(), &all_poisons)?),
        // The filter goes into the loader as it is: kept samples only.
        ("filtered", score(&train(filtered, &ssl)?, &kept_items, &kept_poisons)?),
        ("clean", score(&train(train_set.clone(), &ssl)?, train_set.items(), &[])?),
    ];
    println!("{:<10} {:>9} {:>7} {:>9}", "training", "clean_acc", "asr", "target_fp");
    for (name, s) in rows {
        println!("{:<10} {:>9.3} {:>7.3} {:>9.3}", name, s.clean_acc, s.asr, s.target_fp);
    }
    Ok(())
}
