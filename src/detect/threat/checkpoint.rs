//! The warm start's cache: the model and optimiser after each epoch, so an interrupted run
//! resumes from its last finished epoch and a finished one is not trained again.
//!
//! An entry is a folder `root/key/` holding `model-EEEEE.mpk` and `optimizer-EEEEE.mpk` for the
//! epoch count `EEEEE`, and `meta.json`, which names that count. The records of a new epoch are
//! written and synced under new names before `meta.json` is replaced atomically, and only then
//! are the previous epoch's records removed: a crash or a `kill -9` at any point leaves a
//! `meta.json` that names a complete pair.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::encoder::ThreatModel;
use crate::durable::{sync_dir, sync_file, write_atomic};
use crate::error::{Error, Result};

const MODEL: &str = "model";
const OPTIMIZER: &str = "optimizer";
const META: &str = "meta.json";

/// What a cache entry holds besides the records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Epochs finished.
    pub epochs: usize,
    /// Mean training loss of each finished epoch.
    pub losses: Vec<f32>,
}

/// One cache entry, the folder `root/key/`.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

fn cache_error(path: &Path, reason: impl ToString) -> Error {
    Error::Cache { path: path.to_path_buf(), reason: reason.to_string() }
}

impl Checkpoint {
    /// The entry `key` under the cache folder `root`.
    pub fn new(root: impl AsRef<Path>, key: &str) -> Self {
        Self { dir: root.as_ref().join(key) }
    }

    /// The entry's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved progress, or `None` when nothing usable is there (no entry, an unreadable
    /// `meta.json`, or records missing for the epoch it names).
    pub fn meta(&self) -> Option<CheckpointMeta> {
        let text = std::fs::read_to_string(self.dir.join(META)).ok()?;
        let meta: CheckpointMeta = serde_json::from_str(&text).ok()?;
        let complete = [MODEL, OPTIMIZER].iter().all(|stem| self.saved(stem, meta.epochs).exists());
        (complete && meta.losses.len() == meta.epochs).then_some(meta)
    }

    fn record(&self, stem: &str, epochs: usize) -> PathBuf {
        self.dir.join(format!("{stem}-{epochs:05}.mpk"))
    }

    /// The record of `epochs` epochs, or an entry's `stem.mpk` from before records were named by
    /// epoch (such an entry's `meta.json` names its only epoch count).
    fn saved(&self, stem: &str, epochs: usize) -> PathBuf {
        let named = self.record(stem, epochs);
        let unnamed = self.dir.join(format!("{stem}.mpk"));
        if !named.exists() && unnamed.exists() {
            unnamed
        } else {
            named
        }
    }

    /// Saves the model and optimiser after `meta.epochs` epochs; see the module notes for why a
    /// crash cannot leave a half entry.
    pub fn save<B: Backend, O: burn::record::Record<B>>(
        &self,
        model: &ThreatModel<B>,
        optimizer: O,
        meta: &CheckpointMeta,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let (model_path, optimizer_path) = (self.record(MODEL, meta.epochs), self.record(OPTIMIZER, meta.epochs));
        model.clone().save_file(model_path.with_extension(""), &recorder()).map_err(|e| cache_error(&model_path, e))?;
        Recorder::<B>::record(&recorder(), optimizer, optimizer_path.with_extension(""))
            .map_err(|e| cache_error(&optimizer_path, e))?;
        sync_file(&model_path)?;
        sync_file(&optimizer_path)?;
        sync_dir(&self.dir)?;
        write_atomic(&self.dir.join(META), serde_json::to_string_pretty(meta)?.as_bytes())?;
        self.remove_other_records(meta.epochs)
    }

    fn remove_other_records(&self, keep: usize) -> Result<()> {
        let keep: Vec<String> = [MODEL, OPTIMIZER].iter().map(|stem| format!("{stem}-{keep:05}.mpk")).collect();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".mpk") && !keep.contains(&name) {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// Loads the saved weights of `epochs` epochs into `model` (which fixes the architecture).
    pub fn load_model<B: Backend>(
        &self,
        model: ThreatModel<B>,
        epochs: usize,
        device: &B::Device,
    ) -> Result<ThreatModel<B>> {
        let path = self.saved(MODEL, epochs);
        record_fits(&model, &path)?;
        model.load_file(&path, &recorder(), device).map_err(|e| cache_error(&path, e))
    }

    /// Loads the saved optimiser record of `epochs` epochs.
    pub fn load_optimizer<B: Backend, O: burn::record::Record<B>>(
        &self,
        epochs: usize,
        device: &B::Device,
    ) -> Result<O> {
        let path = self.saved(OPTIMIZER, epochs);
        Recorder::<B>::load(&recorder(), path.clone(), device).map_err(|e| cache_error(&path, e))
    }
}

/// Saves a trained module (the encoder, a classifier) to `path` (`.mpk` is appended), atomically.
pub fn save_model<B: Backend, M: Module<B>>(model: &M, path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref().with_extension("mpk");
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
    model.clone().save_file(staging.path().join(MODEL), &recorder()).map_err(|e| cache_error(&path, e))?;
    std::fs::rename(staging.path().join(MODEL).with_extension("mpk"), &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Loads a module saved with [`save_model`] into `model` (which fixes the architecture).
pub fn load_model<B: Backend, M: Module<B>>(model: M, path: impl AsRef<Path>, device: &B::Device) -> Result<M> {
    let path = path.as_ref().with_extension("mpk");
    record_fits(&model, &path)?;
    model.load_file(&path, &recorder(), device).map_err(|e| cache_error(&path, e))
}

/// Checks, before burn's recorder reads the whole file, that `path` is a regular file no larger
/// than a record of `model` can be (its parameters as f32 twice over, for names and framing, plus
/// 1 MiB): a saved guard or cache entry swapped for a FIFO or a huge file is an error, not a hang
/// or an allocation.
fn record_fits<B: Backend, M: Module<B>>(model: &M, path: &Path) -> Result<()> {
    let cap = (model.num_params() as u64).saturating_mul(8).saturating_add(1 << 20);
    crate::bounded::open_capped(path, cap).map(drop)
}
