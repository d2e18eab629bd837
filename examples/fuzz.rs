//! The parsers of untrusted bytes under a seeded mutation fuzzer, at length: per target, the
//! inputs tried, accepted and refused with a typed error, the panics (none is the pass), the
//! slowest input and the process's peak memory so far.
//!
//! `cargo run --release --features cli --example fuzz -- [--target pickle|…|all] [--inputs 1000000] [--seed 0]`

use std::time::Instant;

use poisoncam::fuzz::{corpus, run, Target};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Peak resident memory of this process, from `/proc/self/status`, in MiB.
fn peak_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

fn main() -> poisoncam::Result<()> {
    let inputs: u64 = arg("--inputs").and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let seed: u64 = arg("--seed").and_then(|v| v.parse().ok()).unwrap_or(0);
    let wanted = arg("--target").unwrap_or_else(|| "all".into());
    let targets: Vec<Target> = Target::ALL.into_iter().filter(|t| wanted == "all" || wanted == t.name()).collect();
    if targets.is_empty() {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        eprintln!("unknown --target {wanted}; one of all, {}", names.join(", "));
        std::process::exit(2);
    }
    println!(
        "| target | inputs | accepted | refused (typed error) | panics | slowest input | seconds | peak RSS so far |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for target in targets {
        let dir = tempfile::tempdir().map_err(|e| poisoncam::Error::Io { path: "tmp".into(), source: e })?;
        let corpus = corpus(target, dir.path())?;
        let start = Instant::now();
        let outcome = run(target, &corpus, inputs, seed, dir.path());
        println!(
            "| {} | {} | {} | {} | {} | {:.1} ms | {:.0} | {} MiB |",
            target.name(),
            outcome.inputs,
            outcome.accepted,
            outcome.refused,
            outcome.panics.len(),
            outcome.slowest.as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64(),
            peak_mib().unwrap_or(0),
        );
        for (seed, message) in &outcome.panics {
            println!("  panic at input seed {seed}: {message}");
        }
    }
    Ok(())
}
