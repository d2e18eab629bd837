//! The warm start's cache: the model and optimiser after each epoch, written atomically, so an
//! interrupted run resumes from its last finished epoch and a finished one is not trained again.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::encoder::ThreatModel;
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

/// One cache entry: a directory `root/key/` holding `model.mpk`, `optimizer.mpk` and `meta.json`.
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

    /// The saved progress, or `None` when nothing usable is there.
    pub fn meta(&self) -> Option<CheckpointMeta> {
        let text = std::fs::read_to_string(self.dir.join(META)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes model, optimiser record and meta into a fresh directory, then swaps it in with a rename,
    /// so a crash leaves either the old entry or the new one, never half of each.
    pub fn save<B: Backend, O: burn::record::Record<B>>(
        &self,
        model: &ThreatModel<B>,
        optimizer: O,
        meta: &CheckpointMeta,
    ) -> Result<()> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let staging =
            tempfile::Builder::new().prefix(".staging-").tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
        model.clone().save_file(staging.path().join(MODEL), &recorder()).map_err(|e| cache_error(staging.path(), e))?;
        Recorder::<B>::record(&recorder(), optimizer, staging.path().join(OPTIMIZER))
            .map_err(|e| cache_error(staging.path(), e))?;
        std::fs::write(staging.path().join(META), serde_json::to_string_pretty(meta)?)
            .map_err(|e| Error::io(staging.path(), e))?;
        let staged = staging.keep();
        let old = parent.join(format!(".old-{}", std::process::id()));
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old).map_err(|e| Error::io(&self.dir, e))?;
        }
        std::fs::rename(&staged, &self.dir).map_err(|e| Error::io(&self.dir, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }

    /// Loads the saved weights into `model` (which fixes the architecture).
    pub fn load_model<B: Backend>(&self, model: ThreatModel<B>, device: &B::Device) -> Result<ThreatModel<B>> {
        let path = self.dir.join(MODEL);
        model.load_file(&path, &recorder(), device).map_err(|e| cache_error(&path, e))
    }

    /// Loads the saved optimiser record.
    pub fn load_optimizer<B: Backend, O: burn::record::Record<B>>(&self, device: &B::Device) -> Result<O> {
        let path = self.dir.join(OPTIMIZER);
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
    if !path.exists() {
        return Err(Error::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
    }
    model.load_file(&path, &recorder(), device).map_err(|e| cache_error(&path, e))
}
