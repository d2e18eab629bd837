//! The streaming filter: fit once, save the guard, load it elsewhere and screen new samples one at
//! a time, as an iterator, and as a dataset that grows — printing throughput.
//!
//! `cargo run --release --example streaming -- [--epochs 3] [--train 3000]`

use std::time::Instant;

use poisoncam::backend::{Compute, Train};
use poisoncam::data::FashionMnist;
use poisoncam::filter::guard::{Guard, ScreenExt};
use poisoncam::sim::attack::{poison, AttackConfig};
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<()> {
    let device = burn::tensor::Device::<Compute>::default();
    let n = arg("--train", 3000).clamp(200, 9000);
    let all = FashionMnist::embedded()?;
    let attack = AttackConfig { rate: 0.02, ..AttackConfig::default() };
    // Fit on the first n images; the next 1,000 (poisoned the same way) arrive later.
    let attacked = poison(&all.slice(0..n + 1000), &attack)?;
    let (seen, arriving) = (attacked.dataset.slice(0..n), attacked.dataset.slice(n..n + 1000));

    let mut config = PoisonFilterConfig::new();
    config.warm_start.epochs = arg("--epochs", 3);
    config.warm_start.augment.crop_scale_min = 0.6;
    config.warm_start.cache_dir = Some(".poisoncam-cache".into());
    let (filter, guard) = PoisonFilter::fit_guarded::<Train>(seen, &config, &device)?;
    println!("fit: removed {} of {}; guard armed: {}", filter.report().removed, n, guard.is_armed());

    let dir = std::env::temp_dir().join("poisoncam-guard");
    guard.save(&dir)?;
    let guard = Guard::<Compute>::load(&dir, &device)?;

    let first = &arriving.items()[0];
    let verdict = guard.screen(first);
    println!("one sample {}: removed {} score {:.3}", first.id, verdict.removed, verdict.score);

    let started = Instant::now();
    let kept = arriving.items().iter().cloned().screen(&guard).count();
    let seconds = started.elapsed().as_secs_f64();
    println!("iterator: kept {kept} of 1000 in {seconds:.2}s ({:.0} samples/s, one at a time)", 1000.0 / seconds);

    let fresh = Guard::<Compute>::load(&dir, &device)?;
    let started = Instant::now();
    let kept = fresh.screen_dataset(&arriving)?;
    let seconds = started.elapsed().as_secs_f64();
    println!("dataset: kept {} of 1000 in {seconds:.2}s ({:.0} samples/s, batched)", kept.len(), 1000.0 / seconds);

    let truly = attacked.truth.poisoned.iter().filter(|(i, _)| *i >= n).count();
    let caught = fresh
        .removals()
        .iter()
        .filter(|(id, _)| {
            attacked.dataset.items().iter().position(|it| &it.id == id).is_some_and(|i| attacked.truth.is_poisoned(i))
        })
        .count();
    println!("arriving poisons: {truly}, caught: {caught}, removed in all: {}", fresh.removals().len());
    Ok(())
}
