//! `eval --export DIR`: the poisoned training set an `eval` run builds, written for an encoder
//! trained outside the crate (benches/peer/ssl_backdoor.py), so that its checkpoint is then
//! judged by `eval --encoder` on exactly these images and this truth.
//!
//! `DIR/train.f32` holds the poisoned training images and `DIR/implant.f32` the implant's
//! triggered images, each `N×C×H×W` little-endian f32 in [0, 1]; `DIR/attack.json` the shapes,
//! labels, poisons with their boxes, the implant's rows and the set's fingerprint, which
//! `eval --encoder` prints too.

use std::path::Path;

use serde::Serialize;

use super::{batch_source, labels_of, EvalConfig, EvalData, ImplantRows};
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::image::ImageBatchSource;
use crate::sim::attack::{poison, AttackConfig};

/// What `attack.json` holds.
#[derive(Serialize)]
struct ExportedAttack<'a> {
    /// `[N, C, H, W]` of `train.f32`.
    train_shape: [usize; 4],
    /// `[M, C, H, W]` of `implant.f32`.
    implant_shape: [usize; 4],
    /// The label of every training image (poisons carry the target's).
    labels: &'a [usize],
    /// `(index, [x, y, w, h])` of every poison.
    poisoned: Vec<(usize, [usize; 4])>,
    /// The training rows whose images `implant.f32` holds with the trigger pasted, in order.
    implant_rows: &'a [usize],
    /// The training rows of the target class.
    target_rows: &'a [usize],
    /// `ImageBatchSource::fingerprint` of the poisoned training set.
    fingerprint: String,
    attack: &'a AttackConfig,
}

/// Poisons `data.train` as `eval` does under `config` and writes it to `dir`; returns the
/// training set's fingerprint.
pub fn export_attack(data: &EvalData, config: &EvalConfig, dir: &Path) -> Result<String> {
    config.check()?;
    let attacked = poison(&data.train, &config.attack)?;
    let labels = labels_of(&attacked.dataset, "eval --export")?;
    let train_labels = labels_of(&data.train, "eval --export")?;
    let shape = config.working_shape(&attacked.dataset);
    let train = batch_source(&attacked.dataset, shape)?;
    let rows = ImplantRows::new(data, &attacked.trigger, &config.attack, &train_labels)?;
    let implant = batch_source(&rows.triggered, shape)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_f32(&dir.join("train.f32"), &train)?;
    write_f32(&dir.join("implant.f32"), &implant)?;
    let fingerprint = format!("{:016x}", train.fingerprint());
    let exported = ExportedAttack {
        train_shape: train.shape(),
        implant_shape: implant.shape(),
        labels: &labels,
        poisoned: attacked.truth.poisoned.iter().map(|(i, b)| (*i, b.to_array())).collect(),
        implant_rows: &rows.others,
        target_rows: &rows.targets,
        fingerprint: fingerprint.clone(),
        attack: &config.attack,
    };
    write_atomic(&dir.join("attack.json"), &serde_json::to_vec(&exported)?)?;
    Ok(fingerprint)
}

fn write_f32(path: &Path, images: &ImageBatchSource) -> Result<()> {
    let bytes: Vec<u8> =
        (0..images.len()).flat_map(|i| images.pixels(i).iter().flat_map(|v| v.to_le_bytes())).collect();
    write_atomic(path, &bytes)
}
