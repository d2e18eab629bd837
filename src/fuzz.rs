//! A seeded mutation fuzzer for the parsers of untrusted bytes, on stable Rust: each target's
//! committed valid inputs are mutated (bit flips, boundary integers, cut, grown, spliced) and fed
//! to the parser, which must return, within bounded time, either a value or a typed error: never
//! a panic. `examples/fuzz.rs` runs it at length and the tests a few thousand inputs a target.
//! Not part of the crate's interface.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::backend::Compute;
use crate::detect::resnet::{EncoderFile, Normalization};

/// A parser under test: it reads the bytes written to a file at `path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The pickle walker that clears a torch zip before burn-store reads it (bytes in memory).
    Pickle,
    /// A whole `.pth` (zip) read as the user's encoder.
    Pth,
    /// A `.pth` whose `data.pkl` alone is mutated, inside an archive that is otherwise whole, so
    /// that the mutations reach the pickle walker and burn-store's reader behind the zip checks.
    PthPickle,
    /// A `.safetensors` file read as the user's encoder.
    Safetensors,
    /// A `--filelist`.
    Filelist,
    /// A `--config` JSON.
    Config,
    /// An IDX image file (plain or gzip).
    Idx,
    /// A CIFAR-10 binary file.
    Cifar,
    /// A saved guard folder's `guard.json`.
    Guard,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 9] = [
        Target::Pickle,
        Target::Pth,
        Target::PthPickle,
        Target::Safetensors,
        Target::Filelist,
        Target::Config,
        Target::Idx,
        Target::Cifar,
        Target::Guard,
    ];

    /// The target's name on the command line and in docs.
    pub fn name(self) -> &'static str {
        match self {
            Target::Pickle => "pickle",
            Target::Pth => "pth",
            Target::PthPickle => "pth-pickle",
            Target::Safetensors => "safetensors",
            Target::Filelist => "filelist",
            Target::Config => "config",
            Target::Idx => "idx",
            Target::Cifar => "cifar",
            Target::Guard => "guard",
        }
    }
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Inputs tried.
    pub inputs: u64,
    /// Inputs the parser accepted.
    pub accepted: u64,
    /// Inputs refused with a typed error.
    pub refused: u64,
    /// Inputs that panicked, with the first few messages and inputs' seeds.
    pub panics: Vec<(u64, String)>,
    /// The slowest input's time.
    pub slowest: Duration,
}

/// Bytes mutated from a corpus by a seeded generator.
pub struct Mutator {
    rng: StdRng,
}

const INTERESTING: [u32; 10] = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

impl Mutator {
    /// A mutator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// One to eight mutations of `base`, some splicing in bytes of `other`.
    pub fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut b = base.to_vec();
        for _ in 0..self.rng.random_range(1..=8) {
            let len = b.len();
            let at = if len == 0 { 0 } else { self.rng.random_range(0..len) };
            match self.rng.random_range(0..8) {
                0 if len > 0 => b[at] ^= 1 << self.rng.random_range(0..8),
                1 if len > 0 => b[at] = self.rng.random(),
                2 if len >= 4 => {
                    let v = INTERESTING[self.rng.random_range(0..INTERESTING.len())];
                    let bytes = if self.rng.random() { v.to_le_bytes() } else { v.to_be_bytes() };
                    let at = at.min(len - 4);
                    b[at..at + 4].copy_from_slice(&bytes);
                }
                3 => b.truncate(at),
                4 if len > 0 => {
                    let end = (at + self.rng.random_range(1..=64)).min(len);
                    b.drain(at..end);
                }
                5 if len > 0 => {
                    let end = (at + self.rng.random_range(1..=256)).min(len);
                    let copy = b[at..end].to_vec();
                    let to = self.rng.random_range(0..=b.len());
                    b.splice(to..to, copy);
                }
                6 if !other.is_empty() => {
                    let from = self.rng.random_range(0..other.len());
                    let end = (from + self.rng.random_range(1..=512)).min(other.len());
                    let to = self.rng.random_range(0..=b.len());
                    b.splice(to..to, other[from..end].iter().copied());
                }
                _ => {
                    let n = self.rng.random_range(1..=16);
                    let to = self.rng.random_range(0..=b.len());
                    let noise: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                    b.splice(to..to, noise);
                }
            }
        }
        b
    }
}

/// Feeds `inputs` mutations of `corpus` to `target`, in `dir` (a scratch folder). Each input's
/// seed is `seed + i`, so any input a run reports can be made again alone.
pub fn run(target: Target, corpus: &[Vec<u8>], inputs: u64, seed: u64, dir: &Path) -> Outcome {
    let mut outcome = Outcome::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..inputs {
        let bytes = input(target, corpus, seed.wrapping_add(i));
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| parse(target, &bytes, dir)));
        outcome.slowest = outcome.slowest.max(start.elapsed());
        outcome.inputs += 1;
        match result {
            Ok(Ok(())) => outcome.accepted += 1,
            Ok(Err(_)) => outcome.refused += 1,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if outcome.panics.len() < 20 {
                    outcome.panics.push((seed.wrapping_add(i), message));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    outcome
}

/// The input of seed `seed`: a mutation of one corpus entry, spliced with another.
pub fn input(target: Target, corpus: &[Vec<u8>], seed: u64) -> Vec<u8> {
    let mut m = Mutator::new(seed);
    let pick = (seed as usize) % corpus.len();
    let other = &corpus[(pick + 1) % corpus.len()];
    let mutated = m.mutate(&corpus[pick], other);
    match target {
        Target::PthPickle => with_pickle(&corpus[pick], &m.mutate(&pickle_of(&corpus[pick]), &[])).unwrap_or(mutated),
        _ => mutated,
    }
}

/// Runs one parser on `bytes`; `Err` holds the typed error's message.
pub fn parse(target: Target, bytes: &[u8], dir: &Path) -> Result<(), String> {
    let fail = |e: crate::Error| e.to_string();
    if target == Target::Pickle {
        return crate::detect::resnet::walk_pickle(bytes).map_err(|e| e.to_string());
    }
    let name = match target {
        Target::Pth | Target::PthPickle => "input.pth",
        Target::Safetensors => "input.safetensors",
        Target::Filelist => "input.txt",
        Target::Config => "input.json",
        Target::Idx => "input-idx3-ubyte",
        Target::Cifar => "input.bin",
        Target::Guard => "guard.json",
        Target::Pickle => unreachable!("handled above"),
    };
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let device = Default::default();
    match target {
        Target::Pth | Target::PthPickle | Target::Safetensors => {
            EncoderFile::new(path, 32, Normalization::None).load::<Compute>(&device).map(drop).map_err(fail)
        }
        Target::Filelist => crate::data::read_filelist(&path).map(drop).map_err(fail),
        Target::Config => {
            crate::PoisonFilterConfig::read(&path).and_then(|c| c.check().map(|()| c)).map(drop).map_err(fail)
        }
        Target::Idx => crate::data::read_idx_images(&path).map(drop).map_err(fail),
        Target::Cifar => crate::data::read_cifar10(&path).map(drop).map_err(fail),
        Target::Guard => crate::filter::guard::Guard::<Compute>::load(dir, &device).map(drop).map_err(fail),
        Target::Pickle => unreachable!("handled above"),
    }
}

/// Valid inputs of `target` to mutate: the committed checkpoints for the checkpoint targets,
/// and for the rest files written as the crate or its users write them. A guard is fitted (by
/// recurrence, on 300 embedded images with a pasted trigger) and saved in `dir`.
pub fn corpus(target: Target, dir: &Path) -> crate::Result<Vec<Vec<u8>>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet");
    let read = |name: &str| std::fs::read(fixtures.join(name)).map_err(|e| crate::Error::io(fixtures.join(name), e));
    let torch = ["twin18.pth", "lightly.pth", "moco.pth.tar", "solo.ckpt", "short_storage.pth", "system_call.pth"];
    Ok(match target {
        Target::Pickle => torch.iter().map(|n| read(n).map(|b| pickle_of(&b))).collect::<crate::Result<_>>()?,
        Target::Pth | Target::PthPickle => torch.iter().map(|n| read(n)).collect::<crate::Result<_>>()?,
        Target::Safetensors => vec![read("twin18.safetensors")?, read("twin50.safetensors")?],
        Target::Filelist => vec![
            b"a/0.png 0
a/1.png 0
b/2.jpg 1
"
            .to_vec(),
            b"/data/x.png

  spaced name.png  
"
            .to_vec(),
        ],
        Target::Config => vec![
            serde_json::to_vec_pretty(&crate::PoisonFilterConfig::new())?,
            br#"{"warm_start": {"epochs": 3}, "detector": {"kmeans": {"k": 12}}}"#.to_vec(),
        ],
        Target::Idx => {
            let images = crate::data::FashionMnist::embedded()?.slice(0..8);
            let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 8, 0, 0, 0, 28, 0, 0, 0, 28];
            idx.extend(images.items().iter().flat_map(|i| i.image.to_hwc_u8()));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &idx).map_err(|e| crate::Error::io(dir, e))?;
            vec![idx, gz.finish().map_err(|e| crate::Error::io(dir, e))?]
        }
        Target::Cifar => vec![(0..3 * 3073).map(|i| if i % 3073 == 0 { (i / 3073) as u8 } else { i as u8 }).collect()],
        Target::Guard => vec![saved_guard(dir)?],
    })
}

/// The `guard.json` of a recurrence guard fitted on embedded images carrying a pasted trigger.
fn saved_guard(dir: &Path) -> crate::Result<Vec<u8>> {
    use crate::sim::attack::{poison, AttackConfig};
    let images = crate::data::FashionMnist::embedded()?.slice(0..300);
    let attacked = poison(&images, &AttackConfig { rate: 0.05, ..AttackConfig::default() })?;
    let mut config = crate::PoisonFilterConfig::new();
    config.detector.signals.masking = false;
    let device = Default::default();
    let (_, guard) = crate::PoisonFilter::fit_guarded::<crate::backend::Train>(attacked.dataset, &config, &device)?;
    guard.save(dir)?;
    let path = dir.join("guard.json");
    std::fs::read(&path).map_err(|e| crate::Error::io(path, e))
}

/// The `data.pkl` of a torch zip, or nothing.
fn pickle_of(zip_bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)) else { return Vec::new() };
    let name = archive.file_names().find(|n| n.ends_with("data.pkl")).map(str::to_string);
    let mut out = Vec::new();
    if let Some(mut entry) = name.and_then(|n| archive.by_name(&n).ok()) {
        let _ = entry.read_to_end(&mut out);
    }
    out
}

/// `zip_bytes` with its `data.pkl` replaced by `pickle`, the other entries copied as they are.
fn with_pickle(zip_bytes: &[u8], pickle: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).ok()?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let entry = archive.by_index(i).ok()?;
        if entry.name().ends_with("data.pkl") {
            let name = entry.name().to_string();
            drop(entry);
            out.start_file(name, zip::write::SimpleFileOptions::default()).ok()?;
            out.write_all(pickle).ok()?;
        } else {
            out.raw_copy_file(entry).ok()?;
        }
    }
    out.finish().ok().map(|c| c.into_inner())
}
