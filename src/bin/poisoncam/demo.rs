//! `poisoncam demo`: the embedded images, a simulated 1% attack, the filter, and its outputs,
//! scored against the simulator's ground truth.

use std::path::PathBuf;
use std::time::Instant;

use burn::data::dataset::Dataset;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use poisoncam::data::FashionMnist;
use poisoncam::detect::Stage;
use poisoncam::durable::write_atomic;
use poisoncam::filter::report::FilterReport;
use poisoncam::image::AsImage;
use poisoncam::sim::attack::{poison, AttackConfig};
use poisoncam::sim::eval::{removal_scores, RemovalScores};
use poisoncam::sim::suspects::{write_suspects, Suspect};
use poisoncam::{PoisonFilter, PoisonFilterConfig, Result};
use serde::Serialize;

use crate::eval::{set_signals, SignalName};

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Embedded images to filter (of 10,000).
    #[arg(long, default_value_t = 5000)]
    pub images: usize,
    /// Warm-start epochs.
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    /// Share of the images poisoned.
    #[arg(long, default_value_t = 0.01)]
    pub rate: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Suspects shown in suspects.png.
    #[arg(long, default_value_t = 40)]
    pub suspects: usize,
    #[arg(long, default_value = ".poisoncam-cache")]
    pub cache: PathBuf,
    /// Evidence to gather: recurrence, masking or both (the default). Recurrence alone trains no
    /// threat model and takes seconds to minutes instead of a warm start.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub signals: Option<Vec<SignalName>>,
}

/// How the removals compare with the ground truth.
#[derive(Serialize)]
struct Truth {
    poisoned: usize,
    #[serde(flatten)]
    removals: RemovalScores,
}

#[derive(Serialize)]
struct DemoReport<'a> {
    attack: &'a AttackConfig,
    truth: Truth,
    wall_seconds: f64,
    #[serde(flatten)]
    filter: &'a FilterReport,
    config: &'a PoisonFilterConfig,
}

pub fn run<B: AutodiffBackend>(args: &DemoArgs, device: &B::Device) -> Result<()> {
    let started = Instant::now();
    let all = FashionMnist::embedded()?;
    let images = args.images;
    if images < 2 || images > all.items().len() {
        return Err(poisoncam::Error::InvalidSetting {
            name: "--images",
            value: images.to_string(),
            expected: "between 2 and 10,000 (the embedded images)",
        });
    }
    let attack = AttackConfig { rate: args.rate, seed: args.seed, ..AttackConfig::default() };
    let attacked = poison(&all.slice(0..images), &attack)?;
    println!(
        "poisoned {} of {images} embedded Fashion-MNIST images (class {}, {}px trigger)",
        attacked.truth.poisoned.len(),
        attack.target,
        attacked.trigger.width()
    );
    let mut config = PoisonFilterConfig::new().seeded(args.seed);
    config.warm_start.epochs = args.epochs;
    config.warm_start.cache_dir = Some(args.cache.clone());
    if let Some(names) = &args.signals {
        set_signals(&mut config.detector.signals, names);
    }
    let filter = PoisonFilter::fit::<B>(attacked.dataset.clone(), &config, device)?;
    let report = filter.report();

    let truth = Truth {
        poisoned: attacked.truth.poisoned.len(),
        removals: removal_scores(report.removals.iter().map(|r| r.index), &attacked.truth, images),
    };

    filter.write_removal_log(&args.out.join("removed.jsonl"))?;
    let [_, h, w] = report.working_size;
    let mut suspects = Vec::new();
    for s in filter.suspicions().into_iter().take(args.suspects) {
        let item =
            attacked.dataset.get(s.index).ok_or(poisoncam::Error::MissingItem { index: s.index, len: images })?;
        suspects.push(Suspect {
            image: item.as_image()?.resized(h, w),
            trigger_box: Some(s.trigger_box),
            truly_poisoned: Some(attacked.truth.is_poisoned(s.index)),
        });
    }
    write_suspects(&args.out.join("suspects.png"), &suspects, [h, w], 8, 4)?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let full = DemoReport { attack: &attack, truth, wall_seconds, filter: report, config: &config };
    write_atomic(&args.out.join("report.json"), &serde_json::to_vec_pretty(&full)?)?;
    print_summary(&full);
    println!("wrote {0}/report.json, {0}/removed.jsonl, {0}/suspects.png", args.out.display());
    Ok(())
}

fn print_summary(r: &DemoReport) {
    let f = r.filter;
    let t = &r.truth.removals;
    println!();
    println!("{:<28} {:>10}", "images", f.total);
    println!("{:<28} {:>10}", "kept", f.kept);
    println!("{:<28} {:>10}", "removed", f.removed);
    println!("{:<28} {:>10}", "  of which poisons", t.removed_poisons);
    println!("{:<28} {:>10}", "  of which clean", t.removed - t.removed_poisons);
    for stage in [Stage::Recurrence, Stage::Masking, Stage::Paste, Stage::Classifier, Stage::Unreadable] {
        let n = f.removals.iter().filter(|r| r.stage == stage).count();
        if n > 0 {
            println!("{:<28} {:>10}", format!("  decided by {}", stage.name()), n);
        }
    }
    println!("{:<28} {:>10.3}", "precision", t.precision);
    println!("{:<28} {:>10.3}", "recall", t.recall);
    println!("{:<28} {:>10.3}", "f1", t.f1);
    if let Some(w) = &f.warm_start {
        println!("{:<28} {:>9.1}s", format!("warm start ({} epochs)", w.epochs), w.seconds);
    }
    for c in &f.cost {
        println!("{:<28} {:>9.1}s {:>6.1} fwd/img", c.stage, c.seconds, c.forwards_per_image);
    }
    println!("{:<28} {:>9.1}s", "total", r.wall_seconds);
}
