//! SimCLR on `PoisonFilter`-wrapped data through burn's `DataLoaderBuilder`, against the same
//! training on unfiltered poisoned data and on clean data (kNN clean accuracy and attack success).
//!
//! `cargo run --release --example simclr -- [--epochs 6] [--train 5000]`

mod common;

fn main() -> poisoncam::Result<()> {
    common::run(poisoncam::detect::threat::SslMethod::SimClr)
}
