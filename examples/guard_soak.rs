//! The streaming guard under load: several threads screen arriving samples while another grows
//! the dataset they come from; resident memory is sampled as the screens go by, and every
//! verdict is compared with one thread's verdict for the same sample from a fresh guard.
//!
//! `cargo run --release --features cli --example guard_soak -- [--screens 100000] [--threads 3] [--masking]`
//!
//! The guard is fitted by recurrence on 3,000 embedded images with a pasted trigger on 2% (with
//! `--masking`, by both signals, the warm start as in `examples/streaming`: 3 epochs, cached);
//! arriving sample `i` is embedded image `i mod 10,000` (poisoned the same way) with one corner
//! pixel set from `i / 10,000`, so each is new content and the verdict cache churns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use poisoncam::backend::{Compute, Train};
use poisoncam::data::{FashionMnist, ImageItem};
use poisoncam::filter::guard::{Guard, Verdict};
use poisoncam::sim::attack::{poison, AttackConfig};
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1));
    kb.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024
}

/// Arriving sample `i`: a pool image made new by one corner pixel.
fn arriving(pool: &[ImageItem], i: usize) -> ImageItem {
    let mut item = pool[i % pool.len()].clone();
    let round = (i / pool.len()) as f32;
    item.image.set(0, 0, 0, (round % 256.0) / 255.0);
    item.image.set(0, 0, 1, (round / 256.0).floor() / 255.0);
    item.id = format!("arrival-{i}");
    item
}

/// A verdict's every field, hashed: the soak keeps 16 bytes a screen, not the verdicts, so that
/// the memory it reports is the guard's.
fn digest(verdict: &Verdict) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{verdict:?}").hash(&mut hasher);
    hasher.finish()
}

fn main() -> Result<()> {
    let screens = arg("--screens", 100_000);
    let threads = arg("--threads", 3).max(1);
    let device = burn::tensor::Device::<Compute>::default();
    let attacked = poison(&FashionMnist::embedded()?, &AttackConfig { rate: 0.02, ..AttackConfig::default() })?;
    let pool: Arc<Vec<ImageItem>> = Arc::new(attacked.dataset.items().to_vec());
    let masking = std::env::args().any(|a| a == "--masking");
    let mut config = PoisonFilterConfig::new();
    config.detector.signals.masking = masking;
    if masking {
        config.warm_start.epochs = 3;
        config.warm_start.augment.crop_scale_min = 0.6;
        config.warm_start.cache_dir = Some(".poisoncam-cache".into());
    }
    let (filter, guard) = PoisonFilter::fit_guarded::<Train>(attacked.dataset.slice(0..3000), &config, &device)?;
    println!("fit: removed {} of 3000; guard armed: {}", filter.report().removed, guard.is_armed());
    let guard = Arc::new(guard);
    let start_rss = rss_mib();

    // The grower lengthens the shared dataset one arrival at a time, as files land in a folder
    // (an item is made when read, as a folder's file is decoded when read, so the memory below
    // is the guard's and not the arrivals'); screeners take their share of indices and wait for
    // the grower where they run ahead of it.
    let grown = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let grower = {
        let grown = grown.clone();
        std::thread::spawn(move || {
            for _ in 0..screens {
                grown.fetch_add(1, Ordering::Release);
                std::thread::yield_now();
            }
        })
    };
    let samples = Arc::new(RwLock::new(Vec::new()));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (guard, grown, samples, pool) = (guard.clone(), grown.clone(), samples.clone(), pool.clone());
            std::thread::spawn(move || {
                let mut verdicts: Vec<(usize, u64, bool)> = Vec::new();
                for i in (t..screens).step_by(threads) {
                    while grown.load(Ordering::Acquire) <= i {
                        std::thread::yield_now();
                    }
                    let verdict = guard.screen(&arriving(&pool, i));
                    verdicts.push((i, digest(&verdict), verdict.removed));
                    if t == 0 && i % (screens / 10).max(1) < threads {
                        samples.write().unwrap_or_else(|p| p.into_inner()).push((i, rss_mib()));
                    }
                }
                verdicts
            })
        })
        .collect();
    grower.join().expect("the grower ended");
    let mut concurrent: Vec<(usize, u64, bool)> =
        workers.into_iter().flat_map(|w| w.join().expect("a screener ended")).collect();
    concurrent.sort_by_key(|(i, _, _)| *i);
    let seconds = start.elapsed().as_secs_f64();
    let end_rss = rss_mib();

    // One thread, a fresh guard from the same fit (saved and loaded), the same samples in order.
    let dir = tempfile::tempdir().map_err(|e| poisoncam::Error::Io { path: "tmp".into(), source: e })?;
    guard.save(dir.path())?;
    let single = Guard::<Compute>::load(dir.path(), &device)?;
    let mut disagree = 0;
    for (i, verdict, _) in &concurrent {
        if digest(&single.screen(&arriving(&pool, *i))) != *verdict {
            disagree += 1;
        }
    }
    let removed = concurrent.iter().filter(|(_, _, removed)| *removed).count();
    println!(
        "{threads} screening threads + 1 growing: {screens} screens in {seconds:.1} s ({:.0}/s), {removed} removed",
        screens as f64 / seconds
    );
    println!("resident memory: {start_rss} MiB after the fit, {end_rss} MiB at the end; during (screen, MiB):");
    for (i, mib) in samples.read().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("  {i:>7} {mib}");
    }
    println!("verdicts cached: {}; disagreements with one thread: {disagree} of {screens}", guard.cached_verdicts());
    Ok(())
}
