//! Photo attacks written to disk: an HTBA-style trigger pasted on one class of an image folder at
//! each image's own resolution, every file (clean ones too) stored in one format under a random
//! name, so that neither the name nor the format tells a poison. The truth stays in memory and
//! is scored against what the filter removed.

mod held;

pub use held::{hold_back, GuardScore};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use burn::data::dataset::Dataset;

use crate::data::{decode_file as decode, FolderListing};
use crate::error::{Error, Result};
use crate::filter::report::FilterReport;
use crate::image::{Image, PixelBox};
use crate::sim::whole_image::WholeImageTrigger;

/// How the files are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StoredAs {
    /// JPEG at this quality (the HTBA recipe saves at Pillow's default, 75).
    Jpeg(u8),
    /// Lossless PNG (CorruptEncoder's poisons).
    Png,
}

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
        if let StoredAs::Jpeg(q) = self.stored_as {
            if !(1..=100).contains(&q) {
                return bad(format!("JPEG quality {q} is outside 1..=100"));
            }
        }
        Ok(())
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
                if let Some(kind) = &self.whole_image {
                    if whole.is_none() {
                        whole = Some(kind.prepare([3, image.height(), image.width()])?);
                    }
                    if let Some(prepared) = &whole {
                        image = prepared.apply(&image);
                    }
                    placed = Some(PixelBox { x: 0, y: 0, w: image.width(), h: image.height() });
                } else if let Some(patch) = &patch {
                    placed = self.paste(&mut image, patch, &mut rng);
                    truth.too_small += usize::from(placed.is_none());
                }
            }
            let class = file.id.rsplit_once('/').map(|(c, _)| c);
            let name = format!("{:016x}.{}", rng.random::<u64>(), self.extension());
            let id = class.map_or(name.clone(), |c| format!("{c}/{name}"));
            let path = out.join(&id);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            self.store(&image, &path)?;
            truth.files.insert(id, placed);
        }
        Ok(truth)
    }

    fn extension(&self) -> &'static str {
        match self.stored_as {
            StoredAs::Jpeg(_) => "jpg",
            StoredAs::Png => "png",
        }
    }

    /// The HTBA placement: the trigger's top-left corner uniform in
    /// `[0.25 W, 0.75 W − s] × [0.25 H, 0.75 H − s]`; `None` when the image cannot hold it there.
    fn paste(&self, image: &mut Image, trigger: &Image, rng: &mut StdRng) -> Option<PixelBox> {
        let scale =
            if self.scale_jitter > 0.0 { rng.random_range(-self.scale_jitter..=self.scale_jitter) } else { 0.0 };
        let side = ((self.trigger_px as f64 * (1.0 + scale)).round() as usize).max(1);
        let range = |len: usize| {
            let (lo, hi) = ((0.25 * len as f64) as usize, (0.75 * len as f64) as usize);
            (hi >= lo + side).then_some((lo, hi - side))
        };
        let ((x0, x1), (y0, y1)) = (range(image.width())?, range(image.height())?);
        let (x, y) = (rng.random_range(x0..=x1), rng.random_range(y0..=y1));
        image.blend(&trigger.resized(side, side), x, y, self.blend as f32);
        Some(PixelBox { x, y, w: side, h: side })
    }

    fn store(&self, image: &Image, path: &Path) -> Result<()> {
        let (w, h) = (image.width() as u32, image.height() as u32);
        let bytes = image.to_hwc_u8();
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let writer = std::io::BufWriter::new(file);
        let written = match self.stored_as {
            StoredAs::Jpeg(q) => {
                JpegEncoder::new_with_quality(writer, q).write_image(&bytes, w, h, ExtendedColorType::Rgb8)
            }
            StoredAs::Png => PngEncoder::new(writer).write_image(&bytes, w, h, ExtendedColorType::Rgb8),
        };
        written.map_err(|e| Error::Attack(format!("{}: {e}", path.display())))
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
