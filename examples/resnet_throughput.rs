//! The user's-encoder path's speed: a torchvision ResNet's batched forward and masking's masked
//! forwards through it, at a given input size, with placeholder weights (speed does not depend
//! on them). Prints `key=value` lines.
//!
//! `cargo run --release --example resnet_throughput -- [resnet18|resnet50] [SIZE] [IMAGES]`
//! (default resnet18, 64 px, 256 images).

use std::time::Instant;

#[cfg(not(feature = "cuda"))]
use poisoncam::backend::Compute;
#[cfg(feature = "cuda")]
use poisoncam::backend::Cuda as Compute;
use poisoncam::data::FashionMnist;
use poisoncam::detect::embed::embed;
use poisoncam::detect::masking::activation::ActivationProbe;
use poisoncam::detect::masking::cluster::KMeansConfig;
use poisoncam::detect::masking::localize::cam::{CamConfig, MaskSearch};
use poisoncam::detect::resnet::{Arch, Normalization, ResNetConfig, Stem};
use poisoncam::image::ImageBatchSource;
use poisoncam::Image;

// The command line's allocator and its settings, so these numbers are the ones it gets.
#[path = "../src/bin/poisoncam/allocator.rs"]
mod allocator;

fn main() -> poisoncam::Result<()> {
    allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let arch = if args.get(1).is_some_and(|a| a == "resnet50") { Arch::ResNet50 } else { Arch::ResNet18 };
    let size: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(256);
    let device = burn::tensor::Device::<Compute>::default();
    // The embedded images upsampled to SIZE and replicated to RGB, as a colour photo set would be.
    let data = FashionMnist::embedded()?;
    let images: Vec<Image> =
        data.items().iter().take(n).map(|i| i.image.with_channels(3).resized(size, size)).collect();
    let images = ImageBatchSource::new(&images, 3, size, size)?;
    let stem = if size >= 96 { Stem::Imagenet } else { Stem::Cifar };
    let model = ResNetConfig::new(arch, stem, size, Normalization::Imagenet).init::<Compute>(&device);
    let batch = if size >= 160 { 32 } else { 128 };

    embed(&model, &images.subset(&(0..batch.min(n)).collect::<Vec<_>>())?, batch, &device);
    let started = Instant::now();
    let embeddings = embed(&model, &images, batch, &device);
    let raw = n as f64 / started.elapsed().as_secs_f64();
    let clusters = KMeansConfig::new().with_k(Some(4)).fit::<Compute>(&embeddings, &device)?;
    let probe = ActivationProbe::new(&model, &clusters, [3, size, size], batch, &device);
    let rows: Vec<usize> = (0..8.min(n)).collect();
    let targets: Vec<usize> = rows.iter().map(|&i| clusters.assignments[i]).collect();
    let started = Instant::now();
    CamConfig::new().with_search(MaskSearch::Grid).locate(&probe, &images, &rows, &targets);
    let seconds = started.elapsed().as_secs_f64();
    let masked = probe.forwards() as f64 / seconds;

    println!("arch={} size={size} stem={stem:?} batch={batch}", arch.name());
    println!("raw_forward_img_s={raw:.1}");
    println!("masked_forward_s={masked:.1}");
    println!("masking_over_raw={:.3}", masked / raw);
    // What one image's grid masking costs (masking runs on the probes and on the members of the
    // clusters they open, never on the whole set).
    println!("masked_forwards_per_image={}", probe.forwards() / rows.len());
    println!("masking_s_per_image={:.2}", seconds / rows.len() as f64);
    Ok(())
}
