//! Photo attacks written to disk: an HTBA-style trigger pasted on one class of an image folder at
//! each image's own resolution, every file (clean ones too) stored in one format under a random
//! name, so that neither the name nor the format tells a poison. The truth stays in memory and
//! is scored against what the filter removed.

mod held;

pub use held::{hold_back, GuardScore};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use burn::data::dataset::Dataset;

use crate::data::{decode_file as decode, FolderListing};
use crate::error::{Error, Result};
use crate::filter::report::FilterReport;
use crate::image::PixelBox;
pub use crate::sim::stored::StoredAs;
use crate::sim::trigger::{HtbaPatch, Trigger};
use crate::sim::whole_image::WholeImageTrigger;

/// The attack on a folder.
#[derive(Clone, Debug)]
pub struct PhotoAttack {
    /// The trigger image (any size; resized to `trigger_px`).
    pub trigger: PathBuf,
    /// Trigger side in each image's own pixels. HTBA: 50.
    pub trigger_px: usize,
    /// The class sub-folder attacked.
    pub target: String,
    /// Share of the target class that is poisoned. HTBA's paper: 0.5; its configs: 1.0.
    pub class_rate: f64,
    /// Opacity of the trigger (1: pasted).
    pub blend: f64,
    /// Each poison's trigger side is drawn within `trigger_px × (1 ± this)`.
    pub scale_jitter: f64,
    /// How every file is stored.
    pub stored_as: StoredAs,
    /// Seeds which images are poisoned, where, and the file names.
    pub seed: u64,
    /// A trigger over the whole image instead of the patch (the patch settings are then unused;
    /// a poison's box is the whole image). Its key or pattern is drawn at the first poison's size.
    pub whole_image: Option<WholeImageTrigger>,
}

/// What was written: each file's id and, for a poison, where its trigger is.
pub struct PhotoTruth {
    /// Written ids (paths relative to the output folder) with the trigger box of the poisons.
    pub files: HashMap<String, Option<PixelBox>>,
    /// Target-class images too small to hold the trigger in their middle half, written clean.
    pub too_small: usize,
}

impl PhotoAttack {
    /// Rejects settings that cannot work, before any file is read.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Attack(what));
        if self.trigger_px == 0 {
            return bad("the trigger side must be at least 1 px".into());
        }
        if !(self.class_rate > 0.0 && self.class_rate <= 1.0) && self.class_rate != 0.0 {
            return bad(format!("class rate {} is outside [0, 1]", self.class_rate));
        }
        if !(self.blend > 0.0 && self.blend <= 1.0) {
            return bad(format!("blend {} is outside (0, 1]", self.blend));
        }
        if !(0.0..1.0).contains(&self.scale_jitter) {
            return bad(format!("scale jitter {} is outside [0, 1)", self.scale_jitter));
        }
        if let Some(trigger) = &self.whole_image {
            trigger.check()?;
        }
        self.stored_as.check()
    }

    /// Writes every readable file of `listing` below `out`, in class folders, under random names,
    /// poisoning the chosen share of the target class.
    pub fn write(&self, listing: &FolderListing, out: &Path) -> Result<PhotoTruth> {
        self.check()?;
        if !listing.classes.iter().any(|c| *c == self.target) {
            return Err(Error::Attack(format!("no class folder `{}` (classes: {:?})", self.target, listing.classes)));
        }
        // The patch, or the whole-image trigger drawn at the first poison's size.
        let patch = match &self.whole_image {
            Some(_) => None,
            None => Some(decode(&self.trigger)?.with_channels(3)),
        };
        let htba = patch.as_ref().map(|patch| HtbaPatch {
            patch,
            px: self.trigger_px,
            scale_jitter: self.scale_jitter,
            alpha: self.blend as f32,
        });
        let mut whole = None;
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x9407_0e5e);
        let files: Vec<_> = listing.files.iter().collect();
        let in_target: Vec<usize> =
            (0..files.len()).filter(|&i| files[i].id.split('/').next() == Some(self.target.as_str())).collect();
        let count = (self.class_rate * in_target.len() as f64).round() as usize;
        let mut chosen: Vec<usize> =
            rand::seq::index::sample(&mut rng, in_target.len(), count).into_iter().map(|k| in_target[k]).collect();
        chosen.sort_unstable();
        let mut truth = PhotoTruth { files: HashMap::new(), too_small: 0 };
        for (i, file) in files.iter().enumerate() {
            // An undecodable file is left out; the scan of the written folder never sees it.
            let Ok(image) = decode(&file.path) else { continue };
            let mut image = image.with_channels(3);
            let mut placed = None;
            if chosen.binary_search(&i).is_ok() {
                if let (Some(kind), None) = (&self.whole_image, &whole) {
                    whole = Some(kind.prepare([3, image.height(), image.width()])?);
                }
                let trigger: Option<&dyn Trigger> = match (&whole, &htba) {
                    (Some(prepared), _) => Some(prepared),
                    (None, Some(htba)) => Some(htba),
                    (None, None) => None,
                };
                if let Some(trigger) = trigger {
                    placed = trigger.apply(&mut image, &mut rng);
                    truth.too_small += usize::from(placed.is_none());
                }
            }
            let class = file.id.rsplit_once('/').map(|(c, _)| c);
            let name = format!("{:016x}.{}", rng.random::<u64>(), self.stored_as.extension());
            let id = class.map_or(name.clone(), |c| format!("{c}/{name}"));
            let path = out.join(&id);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            self.stored_as.write(&image, &path)?;
            truth.files.insert(id, placed);
        }
        Ok(truth)
    }
}

/// How the filter did against the truth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhotoScore {
    /// Files written.
    pub images: usize,
    /// Files that carry the trigger.
    pub poisons: usize,
    /// Files the filter removed.
    pub removed: usize,
    /// Removed files that carry the trigger.
    pub true_removed: usize,
    /// Removed files that do not.
    pub clean_removed: usize,
    /// `true_removed / removed` (0 when nothing was removed).
    pub precision: f64,
    /// `true_removed / poisons` (0 when there are none).
    pub recall: f64,
    /// Share of the removed poisons whose box (in the image's own pixels) overlaps the trigger.
    pub localisation: f64,
}

impl PhotoScore {
    /// Scores `report` against `truth`.
    pub fn of(report: &FilterReport, truth: &PhotoTruth) -> PhotoScore {
        let poisons = truth.files.values().filter(|b| b.is_some()).count();
        let (mut true_removed, mut clean_removed, mut located) = (0, 0, 0);
        for r in &report.removals {
            match truth.files.get(&r.id) {
                Some(Some(t)) => {
                    true_removed += 1;
                    let b = r.original_box.map(|[x, y, w, h]| PixelBox { x, y, w, h });
                    located += usize::from(b.is_some_and(|b| b.intersection(t) > 0));
                }
                _ => clean_removed += 1,
            }
        }
        let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        PhotoScore {
            images: truth.files.len(),
            poisons,
            removed: report.removals.len(),
            true_removed,
            clean_removed,
            precision: share(true_removed, report.removals.len()),
            recall: share(true_removed, poisons),
            localisation: share(located, true_removed),
        }
    }
}

#[cfg(test)]
mod tests;
