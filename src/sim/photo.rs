//! Photo attacks written to disk: an HTBA-style trigger pasted on one class of an image folder at
//! each image's own resolution, every file (clean ones too) stored in one format under a random
//! name, so that neither the name nor the format tells a poison. The truth stays in memory and
//! is scored against what the filter removed.

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
        let trigger = decode(&self.trigger)?.with_channels(3);
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
                placed = self.paste(&mut image, &trigger, &mut rng);
                truth.too_small += usize::from(placed.is_none());
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
mod tests {
    use super::*;

    #[test]
    fn nonsense_attacks_are_named() {
        let attack = PhotoAttack {
            trigger: "t.png".into(),
            trigger_px: 50,
            target: "a".into(),
            class_rate: 0.5,
            blend: 1.0,
            scale_jitter: 0.0,
            stored_as: StoredAs::Jpeg(75),
            seed: 0,
        };
        assert!(attack.check().is_ok());
        for bad in [
            PhotoAttack { trigger_px: 0, ..attack.clone() },
            PhotoAttack { class_rate: 1.5, ..attack.clone() },
            PhotoAttack { blend: 0.0, ..attack.clone() },
            PhotoAttack { scale_jitter: f64::NAN, ..attack.clone() },
            PhotoAttack { stored_as: StoredAs::Jpeg(0), ..attack.clone() },
        ] {
            assert!(matches!(bad.check(), Err(Error::Attack(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_htba_placement_keeps_the_trigger_in_the_middle_half() {
        let attack = PhotoAttack {
            trigger: "t.png".into(),
            trigger_px: 20,
            target: "a".into(),
            class_rate: 1.0,
            blend: 1.0,
            scale_jitter: 0.0,
            stored_as: StoredAs::Png,
            seed: 0,
        };
        let trigger = Image::new(3, 8, 8, vec![1.0; 192]).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let mut image = Image::new(3, 100, 160, vec![0.0; 3 * 100 * 160]).unwrap();
            let b = attack.paste(&mut image, &trigger, &mut rng).unwrap();
            assert!(b.x >= 40 && b.x + b.w <= 120 && b.y >= 25 && b.y + b.h <= 75, "{b:?}");
            assert_eq!(image.get(1, b.y + 3, b.x + 3), 1.0);
        }
        let mut small = Image::new(3, 30, 30, vec![0.0; 2700]).unwrap();
        assert!(attack.paste(&mut small, &trigger, &mut rng).is_none(), "15 px of middle half cannot hold 20 px");
    }

    #[test]
    fn a_written_attack_hides_its_poisons_and_is_scored_against_its_truth() {
        let dir = tempfile::tempdir().unwrap();
        let (data, out) = (dir.path().join("data"), dir.path().join("out"));
        let mut rng = StdRng::seed_from_u64(2);
        for (class, n) in [("cats", 10), ("dogs", 6)] {
            std::fs::create_dir_all(data.join(class)).unwrap();
            for i in 0..n {
                let pixels: Vec<u8> = (0..3 * 120 * 100).map(|_| rng.random::<u8>()).collect();
                image::RgbImage::from_raw(100, 120, pixels)
                    .unwrap()
                    .save(data.join(format!("{class}/{i}.png")))
                    .unwrap();
            }
        }
        let trigger = dir.path().join("t.png");
        image::RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 0])).save(&trigger).unwrap();
        let attack = PhotoAttack {
            trigger,
            trigger_px: 20,
            target: "cats".into(),
            class_rate: 0.5,
            blend: 1.0,
            scale_jitter: 0.0,
            stored_as: StoredAs::Png,
            seed: 4,
        };
        let truth = attack.write(&crate::data::list_image_folder(&data).unwrap(), &out).unwrap();
        assert_eq!(truth.files.len(), 16);
        let poisons: Vec<(&String, PixelBox)> = truth.files.iter().filter_map(|(id, b)| Some((id, (*b)?))).collect();
        assert_eq!(poisons.len(), 5, "half of the 10 cats");
        assert!(poisons.iter().all(|(id, _)| id.starts_with("cats/")));
        for id in truth.files.keys() {
            let name = id.rsplit('/').next().unwrap();
            assert!(name.len() == 20 && name.ends_with(".png"), "a random name in one format: {id}");
        }
        let (id, b) = poisons[0];
        let written = decode(&out.join(id)).unwrap();
        assert_eq!((written.get(0, b.y + 10, b.x + 10), written.get(1, b.y + 10, b.x + 10)), (1.0, 0.0));
        assert!(matches!(
            PhotoAttack { target: "birds".into(), ..attack.clone() }
                .write(&crate::data::list_image_folder(&data).unwrap(), &dir.path().join("o2")),
            Err(Error::Attack(_))
        ));

        let clean = truth.files.iter().find(|(_, b)| b.is_none()).map(|(id, _)| id.clone()).unwrap();
        let removal = |id: &str, original_box: Option<[usize; 4]>| crate::filter::report::Removal {
            index: 0,
            id: id.into(),
            score: 1.0,
            trigger_box: None,
            original_box,
            stage: crate::detect::Stage::Recurrence,
            error: None,
        };
        let report = FilterReport {
            removals: vec![
                removal(poisons[0].0, Some([b.x + 5, b.y + 5, 4, 4])),
                removal(poisons[1].0, Some([0, 0, 2, 2])),
                removal(&clean, None),
            ],
            total: 16,
            kept: 13,
            removed: 3,
            backend: "flex".into(),
            working_size: [3, 120, 100],
            warm_start: None,
            recurrence: None,
            kept_clusters: vec![],
            paste_threshold: None,
            classifier_validation: None,
            classifier_flagged: None,
            classifier_skipped: None,
            cost: vec![],
            duplicates: vec![],
        };
        let score = PhotoScore::of(&report, &truth);
        assert_eq!((score.poisons, score.removed, score.true_removed, score.clean_removed), (5, 3, 2, 1));
        assert!((score.precision - 2.0 / 3.0).abs() < 1e-9 && (score.recall - 0.4).abs() < 1e-9);
        let located_second = poisons[1].1.intersection(&PixelBox { x: 0, y: 0, w: 2, h: 2 }) > 0;
        assert_eq!(score.localisation, if located_second { 1.0 } else { 0.5 });
    }
}
