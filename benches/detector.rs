//! Throughput of the detector's inner loops on the compiled-in backend: cluster activation
//! masking (grid and coarse-to-fine, images/s), the paste test (patches/s) and k-means.

mod common;

use common::embedded_images;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
#[cfg(not(feature = "cuda"))]
use poisoncam::backend::Compute;
#[cfg(feature = "cuda")]
use poisoncam::backend::Cuda as Compute;
use poisoncam::detect::embed::embed;
use poisoncam::detect::masking::activation::ActivationProbe;
use poisoncam::detect::masking::cluster::KMeansConfig;
use poisoncam::detect::masking::localize::cam::{CamConfig, MaskSearch};
use poisoncam::detect::masking::paste::{PasteConfig, PasteTest};
use poisoncam::detect::threat::{init_model, EncoderConfig};
use poisoncam::image::PixelBox;

fn detector(c: &mut Criterion) {
    let device = burn::tensor::Device::<Compute>::default();
    let images = embedded_images(2000);
    let model = init_model::<Compute>(&EncoderConfig::new(), 0, &device);
    let embeddings = embed(&model.backbone, &images, 512, &device);
    let kmeans = KMeansConfig::new().with_k(Some(20));
    let clusters = kmeans.fit::<Compute>(&embeddings, &device).expect("k-means");
    let probe = ActivationProbe::new(&model.backbone, &clusters, [1, 28, 28], 512, &device);

    let mut group = c.benchmark_group("detector");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2000));
    group.bench_function("kmeans_2000x64_k20", |b| {
        b.iter(|| kmeans.fit::<Compute>(&embeddings, &device).expect("k-means"))
    });

    let indices: Vec<usize> = (0..64).collect();
    let targets: Vec<usize> = indices.iter().map(|&i| clusters.assignments[i]).collect();
    group.throughput(Throughput::Elements(64));
    for (name, search) in
        [("masking_grid_64_images", MaskSearch::Grid), ("masking_coarse_to_fine_64_images", MaskSearch::CoarseToFine)]
    {
        let cam = CamConfig::new().with_search(search);
        group.bench_function(name, |b| b.iter(|| cam.locate(&probe, &images, &indices, &targets)));
    }

    let paste = PasteTest::new(&PasteConfig::new(), &probe, &images);
    let patch = PixelBox { x: 10, y: 10, w: 7, h: 7 };
    group.throughput(Throughput::Elements(8));
    group.bench_function("paste_test_8_patches_128_refs", |b| {
        b.iter(|| (0..8).map(|i| paste.score(&probe, &images, i, &patch, clusters.assignments[i])).collect::<Vec<_>>())
    });
    group.finish();
}

criterion_group!(benches, detector);
criterion_main!(benches);
