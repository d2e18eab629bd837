//! A guard on disk: `guard.json` (settings, centroids, decisions, templates), the model records it
//! names and the paste test's reference pixels, written so that a crash leaves the previous guard
//! or the new one, whole.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::masking::MaskingGuard;
use super::model::GuardModel;
use super::Guard;
use crate::detect::masking::classify::{PatchNet, PoisonClassifier};
use crate::detect::masking::cluster::Clusters;
use crate::detect::masking::paste::PasteTest;
use crate::detect::recurrence::{PatchTemplate, TemplateScreen};
use crate::detect::registry;
use crate::detect::resnet::ResNetConfig;
use crate::detect::signal::Screen;
use crate::detect::threat::{load_model, save_model, EncoderConfig};
use crate::detect::{Decisions, DetectorConfig, MaskingFit};
use crate::durable::{sync_dir, sync_file, write_atomic};
use crate::error::{Error, Result};

/// What `guard.json` holds beside the model records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct GuardMeta {
    /// Names the records of this save (`backbone-G.mpk`, `classifier-G-I.mpk`); `None` in guards
    /// saved before records were named by save (`backbone.mpk`, `classifier-I.mpk`).
    #[serde(default)]
    pub generation: Option<u64>,
    pub working_shape: [usize; 3],
    /// The warm-started threat model's settings; `None` for a guard fitted without masking,
    /// which has no model records and screens by `templates` alone, or with the user's ResNet.
    pub encoder: Option<EncoderConfig>,
    /// The user's ResNet's settings, when masking looked through it.
    #[serde(default)]
    pub resnet: Option<ResNetConfig>,
    pub detector: DetectorConfig,
    #[serde(default)]
    pub centroids: Vec<f32>,
    #[serde(default)]
    pub dim: usize,
    #[serde(default)]
    pub classifier_models: usize,
    #[serde(default = "half")]
    pub threshold: f32,
    #[serde(default)]
    pub validation_accuracy: f32,
    /// Recurring patches the fit confirmed, in guards saved before each signal had its own
    /// folder; empty since (the recurrence screen is in `signals-G/recurrence/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<PatchTemplate>,
    /// The training-free signals' screens saved in `signals-G/<name>/`, in fold order.
    #[serde(default)]
    pub signals: Vec<String>,
    /// Masking's dataset-level decisions; `None` in guards saved before they were kept, which
    /// judge by the classifier alone.
    #[serde(default)]
    pub decisions: Option<Decisions>,
    /// The paste test's references (their pixels in `references-G.bin`); `None` without one.
    #[serde(default)]
    pub paste: Option<PasteTest>,
}

fn half() -> f32 {
    0.5
}

impl GuardMeta {
    pub fn new<B: Backend>(
        masking: Option<&MaskingGuard<B>>,
        signals: Vec<String>,
        detector: DetectorConfig,
        working_shape: [usize; 3],
    ) -> Self {
        let classifier = masking.and_then(|m| m.fit.classifier.as_ref());
        GuardMeta {
            generation: None,
            working_shape,
            encoder: masking.and_then(|m| match &m.model {
                GuardModel::WarmStarted(_, config) => Some(config.clone()),
                GuardModel::ResNet(..) => None,
            }),
            resnet: masking.and_then(|m| match &m.model {
                GuardModel::ResNet(_, config) => Some(config.clone()),
                GuardModel::WarmStarted(..) => None,
            }),
            detector,
            centroids: masking.map(|m| m.fit.clusters.centroids.clone()).unwrap_or_default(),
            dim: masking.map_or(0, |m| m.fit.clusters.dim),
            classifier_models: classifier.map_or(0, |c| c.models.len()),
            threshold: classifier.map_or(0.5, |c| c.threshold),
            validation_accuracy: classifier.map_or(0.0, |c| c.validation_accuracy),
            templates: Vec::new(),
            signals,
            decisions: masking.map(|m| m.fit.decisions.clone()),
            paste: masking.and_then(|m| m.fit.paste.as_ref()).map(PasteTest::without_pixels),
        }
    }
}

const GUARD_JSON: &str = "guard.json";

impl<B: Backend> Guard<B> {
    /// Saves the guard into directory `dir`: `guard.json` and the model records it names. The
    /// records of a save are written and synced under new names before `guard.json` is replaced
    /// atomically, so a crash leaves the previous guard or this one, whole.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let previous = read_meta(dir).ok().and_then(|m| m.generation);
        let generation = previous.map_or(1, |g| g.wrapping_add(1));
        let mut written = Vec::new();
        let signals = signals_path(dir, generation);
        for screen in &self.screens {
            let folder = signals.join(screen.name());
            std::fs::create_dir_all(&folder).map_err(|e| Error::write(&folder, e))?;
            screen.save(&folder)?;
        }
        if let Some(m) = &self.masking {
            written.push(m.model.save(&backbone_path(dir, Some(generation)))?);
            for (i, model) in m.fit.classifier.iter().flat_map(|c| c.models.iter()).enumerate() {
                written.push(save_model(model, classifier_path(dir, Some(generation), i))?);
            }
            if let Some(paste) = &m.fit.paste {
                let path = references_path(dir, generation);
                let bytes: Vec<u8> = paste.pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
                written.push(path);
            }
        }
        for path in &written {
            sync_file(path)?;
        }
        sync_dir(dir)?;
        let names = self.screens.iter().map(|s| s.name().to_string()).collect();
        let meta =
            GuardMeta { generation: Some(generation), signals: names, templates: Vec::new(), ..self.meta.clone() };
        write_atomic(&dir.join(GUARD_JSON), &serde_json::to_vec_pretty(&meta)?)?;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
            let path = entry.path();
            let ours = path.extension().is_some_and(|x| x == "mpk" || x == "bin");
            if ours && !written.contains(&path) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
            let old_signals = entry.file_name().to_str().is_some_and(|n| n.starts_with("signals-"));
            if old_signals && path != signals {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Loads a guard saved with [`Guard::save`], checking that its parts fit together: a corrupt
    /// or mismatched guard is an error here, not a panic at the first screen.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let meta = read_meta(dir)?;
        validate(&meta).map_err(|reason| Error::format(dir.join(GUARD_JSON), "poisoncam guard", reason))?;
        let model = GuardModel::load(
            meta.encoder.as_ref(),
            meta.resnet.as_ref(),
            &backbone_path(dir, meta.generation),
            device,
        )?;
        let masking = match model {
            Some(model) => Some(load_masking(dir, &meta, model, device)?),
            None => None,
        };
        let screens = load_screens(dir, &meta)?;
        Ok(Self::assemble(screens, masking, meta, device))
    }
}

/// The screens `meta` names, from their folders; a guard saved before the signals had folders
/// keeps its templates in `guard.json`.
fn load_screens(dir: &Path, meta: &GuardMeta) -> Result<Vec<Box<dyn Screen>>> {
    let mut screens: Vec<Box<dyn Screen>> = Vec::new();
    if !meta.templates.is_empty() {
        let radius = meta.detector.recurrence.match_radius;
        screens.push(Box::new(TemplateScreen { templates: meta.templates.clone(), default_radius: radius }));
    }
    for name in &meta.signals {
        let Some(registration) = registry::named(name) else {
            return Err(Error::format(dir.join(GUARD_JSON), "poisoncam guard", format!("no signal is named {name:?}")));
        };
        let generation = meta.generation.unwrap_or(0);
        screens.push((registration.load)(&signals_path(dir, generation).join(name))?);
    }
    Ok(screens)
}

fn signals_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("signals-{generation}"))
}

fn load_masking<B: Backend>(
    dir: &Path,
    meta: &GuardMeta,
    model: GuardModel<B>,
    device: &B::Device,
) -> Result<MaskingGuard<B>> {
    let channels = meta.working_shape[0];
    let models = (0..meta.classifier_models)
        .map(|i| load_model(PatchNet::new(channels, device), classifier_path(dir, meta.generation, i), device))
        .collect::<Result<Vec<_>>>()?;
    let classifier = (!models.is_empty()).then_some(PoisonClassifier {
        models,
        threshold: meta.threshold,
        validation_accuracy: meta.validation_accuracy,
    });
    let clusters = Clusters {
        centroids: meta.centroids.clone(),
        dim: meta.dim,
        assignments: Vec::new(),
        inertia: 0.0,
        iterations: 0,
    };
    let paste = match (&meta.paste, meta.generation) {
        (Some(paste), Some(generation)) => Some(load_references(dir, generation, paste)?),
        _ => None,
    };
    // A guard saved before the decisions were kept judged by its classifier alone.
    let decisions = meta.decisions.clone().unwrap_or_else(|| Decisions {
        classifier_threshold: classifier.as_ref().map(|c| c.threshold),
        ..Decisions::default()
    });
    Ok(MaskingGuard::new(model, MaskingFit { clusters, paste, classifier, decisions }))
}

/// The paste test of `meta` with its reference pixels read back, whole or an error.
fn load_references(dir: &Path, generation: u64, paste: &PasteTest) -> Result<PasteTest> {
    let path = references_path(dir, generation);
    let expected = paste.shape.iter().try_fold(paste.len().saturating_mul(4), |acc, &d| acc.checked_mul(d));
    let Some(expected) = expected else {
        return Err(Error::format(&path, "poisoncam paste references", format!("shape {:?} overflows", paste.shape)));
    };
    let bytes = crate::bounded::read(&path, expected as u64)?;
    if bytes.len() != expected {
        let reason =
            format!("{} bytes for {} references of {:?}, expected {expected}", bytes.len(), paste.len(), paste.shape);
        return Err(Error::format(&path, "poisoncam paste references", reason));
    }
    let pixels: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if pixels.iter().any(|v| !v.is_finite()) {
        return Err(Error::format(&path, "poisoncam paste references", "a pixel is not finite"));
    }
    Ok(PasteTest { pixels, ..paste.clone() })
}

fn references_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("references-{generation}.bin"))
}

fn backbone_path(dir: &Path, generation: Option<u64>) -> PathBuf {
    match generation {
        Some(g) => dir.join(format!("backbone-{g}")),
        None => dir.join("backbone"),
    }
}

fn classifier_path(dir: &Path, generation: Option<u64>, i: usize) -> PathBuf {
    match generation {
        Some(g) => dir.join(format!("classifier-{g}-{i}")),
        None => dir.join(format!("classifier-{i}")),
    }
}

fn read_meta(dir: &Path) -> Result<GuardMeta> {
    let path = dir.join(GUARD_JSON);
    let text = crate::bounded::read_text(&path)?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, "poisoncam guard", e.to_string()))
}

/// Why the parts of a saved guard do not fit together, if they do not.
fn validate(meta: &GuardMeta) -> std::result::Result<(), String> {
    let [c, h, w] = meta.working_shape;
    if c == 0 || h == 0 || w == 0 {
        return Err(format!("working shape {:?} is empty", meta.working_shape));
    }
    meta.detector.check().map_err(|e| e.to_string())?;
    match (&meta.encoder, &meta.resnet) {
        (Some(_), Some(_)) => return Err("settings of two models".into()),
        (Some(encoder), None) => {
            encoder.check().map_err(|e| e.to_string())?;
            let c = meta.working_shape[0];
            if encoder.in_channels != c {
                return Err(format!("encoder takes {} channels, working shape has {c}", encoder.in_channels));
            }
            validate_masking(meta, encoder.feature_dim())?
        }
        (None, Some(resnet)) => {
            resnet.check().map_err(|e| e.to_string())?;
            if ![1, 3].contains(&meta.working_shape[0]) {
                return Err(format!("a ResNet takes grey or RGB images, not {} channels", meta.working_shape[0]));
            }
            validate_masking(meta, resnet.feature_dim())?
        }
        (None, None) if !meta.centroids.is_empty() || meta.classifier_models > 0 => {
            return Err("centroids or classifier records without the threat model's settings".into());
        }
        (None, None) => {}
    }
    for t in &meta.templates {
        TemplateScreen::check_template(t)?;
    }
    Ok(())
}

/// Checks what masking left against a model of `features` features.
fn validate_masking(meta: &GuardMeta, features: usize) -> std::result::Result<(), String> {
    if meta.dim != features {
        return Err(format!("centroids of length {} for {features} features", meta.dim));
    }
    if meta.centroids.is_empty() || meta.centroids.len() % meta.dim != 0 {
        return Err(format!("{} centroid values do not make rows of {}", meta.centroids.len(), meta.dim));
    }
    if meta.centroids.iter().any(|v| !v.is_finite()) {
        return Err("a centroid is not finite".into());
    }
    if !(0.0..=1.0).contains(&meta.threshold) {
        return Err(format!("classifier threshold {} is outside [0, 1]", meta.threshold));
    }
    let k = meta.centroids.len() / meta.dim;
    if let Some(d) = &meta.decisions {
        validate_decisions(d, k, meta.classifier_models > 0)?;
    }
    if let Some(paste) = &meta.paste {
        if paste.shape != meta.working_shape {
            return Err(format!(
                "paste references of {:?} for a working shape of {:?}",
                paste.shape, meta.working_shape
            ));
        }
        if paste.fingerprints.len() != paste.clusters.len() || paste.clusters.iter().any(|&c| c >= k) {
            return Err(format!("{} paste references do not fit {k} clusters", paste.clusters.len()));
        }
    }
    Ok(())
}

fn validate_decisions(d: &Decisions, k: usize, has_classifier: bool) -> std::result::Result<(), String> {
    if d.kept_clusters.iter().any(|&c| c >= k) || d.candidate_floor.len() != d.kept_clusters.len() {
        return Err(format!("kept clusters {:?} do not fit {k} clusters and their floors", d.kept_clusters));
    }
    if !d.masking_limits.is_empty() && d.masking_limits.len() != k {
        return Err(format!("{} masking limits for {k} clusters", d.masking_limits.len()));
    }
    let thresholds = [d.paste_threshold, d.classifier_threshold].into_iter().chain(d.candidate_floor.iter().copied());
    if thresholds.flatten().chain(d.masking_limits.iter().copied()).any(|t| !t.is_finite()) {
        return Err("a decision threshold is not finite".into());
    }
    if d.classifier_threshold.is_some() && !has_classifier {
        return Err("a classifier threshold without classifier records".into());
    }
    Ok(())
}
