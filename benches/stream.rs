//! Throughput of the streaming guard (samples/s): one sample at a time and in batches of 256,
//! for a guard that was armed by its fit (embedding, nearest centroid and a 3-net classifier
//! ensemble per sample). The threshold is set above 1 so no sample is flagged: this is the cost
//! of a clean stream; each flagged sample adds one masking search (about 30 forwards).

use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
#[cfg(not(feature = "cuda"))]
use poisoncam::backend::Compute;
#[cfg(feature = "cuda")]
use poisoncam::backend::Cuda as Compute;
use poisoncam::data::{FashionMnist, ImageItem};
use poisoncam::detect::embed::embed;
use poisoncam::detect::masking::classify::{PatchNet, PoisonClassifier};
use poisoncam::detect::masking::cluster::KMeansConfig;
use poisoncam::detect::threat::{init_model, EncoderConfig};
use poisoncam::detect::{Decisions, DetectorConfig, MaskingFit};
use poisoncam::filter::guard::{Guard, GuardModel, MaskingGuard};
use poisoncam::image::ImageBatchSource;

fn stream(c: &mut Criterion) {
    let device = burn::tensor::Device::<Compute>::default();
    let data = FashionMnist::embedded().expect("embedded data");
    let items: Vec<ImageItem> = data.items().iter().take(256).cloned().collect();
    let images: Vec<_> = items.iter().map(|i| i.image.clone()).collect();
    let source = ImageBatchSource::with_natural_size(&images).expect("images");
    let encoder = EncoderConfig::new();
    let model = init_model::<Compute>(&encoder, 0, &device);
    let clusters = KMeansConfig::new()
        .with_k(Some(20))
        .fit::<Compute>(&embed(&model.backbone, &source, 256, &device), &device)
        .expect("k-means");
    let classifier = PoisonClassifier {
        models: (0..3).map(|_| PatchNet::new(1, &device)).collect(),
        threshold: 1.1,
        validation_accuracy: 1.0,
    };
    let decisions = Decisions { classifier_threshold: Some(1.1), ..Decisions::default() };
    let guard = Guard::new(Vec::new(), DetectorConfig::new(), [1, 28, 28], &device).with_masking(MaskingGuard::new(
        GuardModel::WarmStarted(model.backbone, encoder),
        MaskingFit { clusters, paste: None, classifier: Some(classifier), decisions },
    ));

    // Fresh ids every iteration, so the verdict cache never answers.
    let round = AtomicUsize::new(0);
    let fresh = || {
        let r = round.fetch_add(1, Ordering::Relaxed);
        items.iter().map(|i| ImageItem { id: format!("{r}/{}", i.id), ..i.clone() }).collect::<Vec<_>>()
    };

    let mut group = c.benchmark_group("stream");
    group.sample_size(10);
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("screen_256_one_at_a_time", |b| {
        b.iter_batched(fresh, |batch| batch.iter().map(|i| guard.screen(i).removed).count(), BatchSize::LargeInput)
    });
    group.bench_function("screen_batch_256", |b| {
        b.iter_batched(fresh, |batch| guard.screen_batch(&batch).len(), BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
