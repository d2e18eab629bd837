//! Throughput of the threat model on the compiled-in backend: encoder forward (images/s, 28×28,
//! batch 256) and one warm-start epoch (SimCLR, two views, forward + backward).

mod common;

use common::embedded_images;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
#[cfg(not(feature = "cuda"))]
use poisoncam::backend::{Compute, Train};
#[cfg(feature = "cuda")]
use poisoncam::backend::{Cuda as Compute, CudaTrain as Train};
use poisoncam::detect::threat::{init_model, warm_start, EncoderConfig, WarmStartConfig};

fn encoder_forward(c: &mut Criterion) {
    let device = burn::tensor::Device::<Compute>::default();
    let images = embedded_images(256);
    let model = init_model::<Compute>(&EncoderConfig::new(), 0, &device);
    let indices: Vec<usize> = (0..256).collect();
    let mut group = c.benchmark_group("encoder");
    group.throughput(Throughput::Elements(256));
    group.sample_size(20);
    group.bench_function("forward_28x28_batch256", |b| {
        b.iter(|| {
            let features = model.backbone.forward(images.batch::<Compute>(&indices, &device));
            features.into_data()
        })
    });
    group.finish();
}

fn warm_start_epoch(c: &mut Criterion) {
    let device = burn::tensor::Device::<Compute>::default();
    let images = embedded_images(1024);
    let config = WarmStartConfig::new().with_epochs(1);
    let mut group = c.benchmark_group("warm_start");
    group.throughput(Throughput::Elements(images.len() as u64));
    group.sample_size(10);
    group.bench_function("simclr_epoch_1024_images", |b| {
        b.iter(|| warm_start::<Train>(&images, &config, None, &device).expect("warm start"))
    });
    group.finish();
}

criterion_group!(benches, encoder_forward, warm_start_epoch);
criterion_main!(benches);
