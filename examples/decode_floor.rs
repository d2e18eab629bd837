//! The decode floor of a photo folder: every file decoded once by the crate's own decoder
//! (`poisoncam::data::decode_file`, as `scan` reads a file) on THREADS threads, nothing else done.
//! `benches/photos/decode_floor.sh` sets it beside the scan, Pillow and imagededup.
//!
//! `cargo run --release --example decode_floor -- FOLDER [THREADS]` prints
//! `images=N megapixels=M seconds=S`.

use std::time::Instant;

use burn::data::dataset::Dataset;
use poisoncam::data::{decode_file, list_image_folder};
use rayon::prelude::*;

fn main() -> poisoncam::Result<()> {
    let folder = std::env::args().nth(1).expect("usage: decode_floor FOLDER [THREADS]");
    let threads: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(2);
    let listing = list_image_folder(std::path::Path::new(&folder))?.files;
    let files: Vec<_> = listing.iter().collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
    let started = Instant::now();
    // An undecodable file counts as no pixels: the floor is of the decoder, not of error handling.
    let pixels: usize =
        pool.install(|| files.par_iter().map(|f| decode_file(&f.path).map_or(0, |i| i.height() * i.width())).sum());
    println!(
        "images={} megapixels={:.1} seconds={:.3}",
        files.len(),
        pixels as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
