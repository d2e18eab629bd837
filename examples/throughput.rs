//! Prints the crate's warm-start, masked-forward and raw batched-forward throughput as `key=value` lines, for
//! `benches/peer/compare.sh` to set beside PyTorch's on the same machine. Criterion benches
//! (`cargo bench`) stay the crate's own measure; this is the side-by-side one.
//!
//! `cargo run --release --example throughput [-- IMAGES [SIZE]]` (default 1,024 images at 28 px;
//! at another SIZE the images are upsampled and replicated to RGB, a colour set of that size).

use std::time::Instant;

#[cfg(not(feature = "cuda"))]
use poisoncam::backend::{Compute, Train};
#[cfg(feature = "cuda")]
use poisoncam::backend::{Cuda as Compute, CudaTrain as Train};
use poisoncam::data::FashionMnist;
use poisoncam::detect::embed::embed;
use poisoncam::detect::masking::activation::ActivationProbe;
use poisoncam::detect::masking::cluster::KMeansConfig;
use poisoncam::detect::masking::localize::cam::{CamConfig, MaskSearch};
use poisoncam::detect::threat::{init_model, warm_start, EncoderConfig, WarmStartConfig};
use poisoncam::image::ImageBatchSource;
use poisoncam::Image;

// The command line's allocator and its settings, so these numbers are the ones it gets.
#[path = "../src/bin/poisoncam/allocator.rs"]
mod allocator;

fn main() -> poisoncam::Result<()> {
    allocator::keep_freed_memory();
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let size: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(28);
    let device = burn::tensor::Device::<Compute>::default();
    let data = FashionMnist::embedded()?;
    let colour = |i: &Image| if size == 28 { i.clone() } else { i.with_channels(3).resized(size, size) };
    let images: Vec<Image> = data.items().iter().take(n).map(|i| colour(&i.image)).collect();
    let images = ImageBatchSource::with_natural_size(&images)?;
    let channels = images.shape()[1];

    // One untimed epoch first, so allocation and thread-pool start-up are not counted.
    let config = WarmStartConfig::new().with_epochs(1);
    warm_start::<Train>(&images.subset(&(0..256.min(n)).collect::<Vec<_>>())?, &config, None, &device)?;
    let started = Instant::now();
    warm_start::<Train>(&images, &config, None, &device)?;
    let warm = n as f64 / started.elapsed().as_secs_f64();

    let model = init_model::<Compute>(&EncoderConfig::new().with_in_channels(channels), 0, &device);
    // The raw batched forward (what `embed` does) is the bar masking is held to.
    embed(&model.backbone, &images, 256, &device);
    let started = Instant::now();
    let embeddings = embed(&model.backbone, &images, 256, &device);
    let raw = n as f64 / started.elapsed().as_secs_f64();
    let clusters = KMeansConfig::new().with_k(Some(10)).fit::<Compute>(&embeddings, &device)?;
    let probe = ActivationProbe::new(&model.backbone, &clusters, [channels, size, size], 256, &device);
    let rows: Vec<usize> = (0..64.min(n)).collect();
    let targets: Vec<usize> = rows.iter().map(|&i| clusters.assignments[i]).collect();
    let cam = CamConfig::new().with_search(MaskSearch::Grid);
    let started = Instant::now();
    cam.locate(&probe, &images, &rows, &targets);
    let masked = probe.forwards() as f64 / started.elapsed().as_secs_f64();

    println!("size={size} channels={channels}");
    println!("warm_start_img_s={warm:.1}");
    println!("masked_forward_s={masked:.1}");
    println!("raw_forward_img_s={raw:.1}");
    println!("masking_over_raw={:.3}", masked / raw);
    Ok(())
}
