//! The `poisoncam` command line: `demo`, `eval` and `scan` (docs/design.md §6).

mod allocator;
mod demo;
mod encoder;
mod eval;
mod photo_eval;
mod scan;
#[cfg(feature = "shard")]
mod shard;
mod sheet;
mod whole_image;

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, Subcommand, ValueEnum};
use poisoncam::sim::eval::run_eval;
use poisoncam::Result;

#[derive(Parser)]
#[command(name = "poisoncam", version, about = "Find and remove backdoor poisons in image datasets")]
struct Cli {
    /// Where the threat model and the detector run: `cpu` (Flex), or `cuda` in a build with the
    /// `cuda` feature.
    #[arg(long, global = true, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Cpu,
    Cuda,
}

#[derive(Subcommand)]
enum Command {
    /// Zero set-up: filter the embedded Fashion-MNIST images after simulated 1% poisoning; writes
    /// out/report.json, out/removed.jsonl and out/suspects.png.
    Demo(demo::DemoArgs),
    /// Poison a dataset with the simulator, warm-start threat models, run the detector and
    /// report metrics as JSON.
    Eval {
        /// `embedded` (10k Fashion-MNIST test split), `fashion-mnist` (60k+10k from the Debian
        /// package), or a path: an image folder with class sub-folders, a CIFAR-10 binary file or
        /// folder, or `IMAGES.gz,LABELS.gz` for an IDX pair.
        #[arg(long, default_value = "embedded")]
        data: String,
        #[arg(long)]
        json: PathBuf,
        #[command(flatten)]
        run: eval::RunArgs,
    },
    /// Filter your own data: writes DIR/removed.jsonl, DIR/kept.txt and DIR/report.json.
    Scan(scan::ScanArgs),
    /// Poison one class of a photo folder HTBA-style, write it to disk (one format, random
    /// names), filter it through scan's folder path and score the result as JSON.
    EvalPhotos(photo_eval::PhotoEvalArgs),
    /// The scan past one machine: `index` each shard, `reduce` once, `judge` each shard, `merge`
    /// (in a build with the `shard` feature).
    #[cfg(feature = "shard")]
    #[command(subcommand)]
    Shard(shard::ShardCommand),
}

fn run(cli: Cli) -> Result<()> {
    match cli.backend {
        BackendArg::Cpu => run_on::<poisoncam::backend::Train>(cli.command, false, &Default::default()),
        #[cfg(feature = "cuda")]
        BackendArg::Cuda => run_on::<poisoncam::backend::CudaTrain>(cli.command, true, &Default::default()),
        #[cfg(not(feature = "cuda"))]
        BackendArg::Cuda => Err(poisoncam::Error::Config(
            "--backend cuda needs a build with the `cuda` feature (cargo build --features cuda,cli)".into(),
        )),
    }
}

fn run_on<B: AutodiffBackend>(command: Command, on_gpu: bool, device: &B::Device) -> Result<()> {
    match command {
        Command::Demo(args) => demo::run::<B>(&args, device),
        Command::Eval { data, json, run } => {
            let data = eval::load(&data, run.train_size, run.seed)?;
            let config = run.eval_config()?;
            if let Some(dir) = &run.export {
                let fingerprint = poisoncam::sim::eval::export_attack(&data, &config, dir)?;
                println!("wrote the poisoned training set to {} (fingerprint {fingerprint})", dir.display());
                return Ok(());
            }
            let report = run_eval::<B>(&data, &config, device)?;
            eval::print_table(&report);
            eval::write_json(&json, &report)
        }
        Command::Scan(args) => scan::run::<B>(&args, on_gpu, device),
        Command::EvalPhotos(args) => photo_eval::run::<B>(&args, device),
        #[cfg(feature = "shard")]
        Command::Shard(command) => shard::run(&command),
    }
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
