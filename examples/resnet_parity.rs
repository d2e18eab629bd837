//! Loads a torchvision ResNet checkpoint and compares its features on the 16 hash images of
//! benches/peer/resnet_twins.py with PyTorch's, written beside it as JSON
//! (`arch`, `stem`, `input_size`, `normalization`, `features`). Prints the relative error and the
//! forward's time. Run by benches/peer/resnet_parity.py, and on a GPU by the device script.
//!
//! `cargo run --release --example resnet_parity -- CHECKPOINT FEATURES.json`

use std::time::Instant;

#[cfg(not(feature = "cuda"))]
use poisoncam::backend::Compute;
#[cfg(feature = "cuda")]
use poisoncam::backend::Cuda as Compute;
use poisoncam::burn::tensor::{Tensor, TensorData};
use poisoncam::detect::embed::Embed;
use poisoncam::detect::resnet::{Arch, EncoderFile, Normalization, Stem};

#[path = "../benches/peer/hash_pixels.rs"]
mod hash_pixels;

fn main() -> poisoncam::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (checkpoint, json) = (&args[1], &args[2]);
    let text = std::fs::read_to_string(json).map_err(|e| poisoncam::Error::Config(format!("{json}: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let size = v["input_size"].as_u64().unwrap_or(224) as usize;
    let normalization: Normalization = serde_json::from_value(v["normalization"].clone())?;
    let stem: Stem = serde_json::from_value(v["stem"].clone())?;
    let arch: Arch = serde_json::from_value(v["arch"].clone())?;
    let expected: Vec<Vec<f32>> = serde_json::from_value(v["features"].clone())?;
    let device = Default::default();
    let file = EncoderFile::new(checkpoint.into(), size, normalization).with_stem(Some(stem)).with_arch(Some(arch));
    let started = Instant::now();
    let (model, _) = file.load::<Compute>(&device)?;
    let load = started.elapsed().as_secs_f64();
    let n = expected.len();
    let pixels = hash_pixels::hash_pixels(n, size);
    let images = Tensor::<Compute, 4>::from_data(TensorData::new(pixels, [n, 3, size, size]), &device);
    let started = Instant::now();
    let got: Vec<f32> = model.features(images).into_data().iter::<f32>().collect();
    let forward = started.elapsed().as_secs_f64();
    let want: Vec<f32> = expected.concat();
    let diff: f64 = got.iter().zip(&want).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
    let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    println!(
        "relative_error={:.2e} load_s={load:.2} forward_{n}_s={forward:.2} features={}",
        (diff / norm).sqrt(),
        got.len() / n
    );
    Ok(())
}
