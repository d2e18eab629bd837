//! Grid-masked forwards only, for a profiler: the masked-forward part of `throughput` at 28 px,
//! repeated, with nothing else in the profile but start-up. Prints `masked_forward_s=`.
//!
//! `cargo build --release --example masked_forwards && perf record -g
//! target/release/examples/masked_forwards [ROUNDS [BATCH]]` (default 20 rounds of 64 images'
//! grid masks, 256 copies a forward).

#[cfg(not(feature = "cuda"))]
use poisoncam::backend::Compute;
#[cfg(feature = "cuda")]
use poisoncam::backend::Cuda as Compute;
use poisoncam::data::FashionMnist;
use poisoncam::detect::embed::embed;
use poisoncam::detect::masking::activation::ActivationProbe;
use poisoncam::detect::masking::cluster::KMeansConfig;
use poisoncam::detect::masking::localize::cam::{CamConfig, MaskSearch};
use poisoncam::detect::threat::{init_model, EncoderConfig};
use poisoncam::image::ImageBatchSource;
use poisoncam::Image;

// The command line's allocator and its settings, so the profile is the one it gets.
#[path = "../src/bin/poisoncam/allocator.rs"]
mod allocator;

fn main() -> poisoncam::Result<()> {
    allocator::keep_freed_memory();
    let arg = |n: usize, default: usize| std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (rounds, batch) = (arg(1, 20), arg(2, 256));
    let device = burn::tensor::Device::<Compute>::default();
    let data = FashionMnist::embedded()?;
    let images: Vec<Image> = data.items().iter().take(256).map(|i| i.image.clone()).collect();
    let images = ImageBatchSource::with_natural_size(&images)?;
    let model = init_model::<Compute>(&EncoderConfig::new().with_in_channels(1), 0, &device);
    let embeddings = embed(&model.backbone, &images, 256, &device);
    let clusters = KMeansConfig::new().with_k(Some(10)).fit::<Compute>(&embeddings, &device)?;
    let probe = ActivationProbe::new(&model.backbone, &clusters, [1, 28, 28], batch, &device);
    let rows: Vec<usize> = (0..64).collect();
    let targets: Vec<usize> = rows.iter().map(|&i| clusters.assignments[i]).collect();
    let cam = CamConfig::new().with_search(MaskSearch::Grid);
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        cam.locate(&probe, &images, &rows, &targets);
    }
    println!("masked_forward_s={:.1}", probe.forwards() as f64 / started.elapsed().as_secs_f64());
    Ok(())
}
