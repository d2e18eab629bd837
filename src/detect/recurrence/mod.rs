//! Recurrence evidence (docs/design.md §3.0): a pasted trigger is the same patch in many images, at
//! different places. It needs no trained model, so it works where the threat model has not learnt
//! the backdoor.
//!
//! 1. `mine`: every textured window, at the images' native resolution and several sides, is
//!    hashed into coarse buckets; a bucket whose images mostly lie around one window gives a
//!    candidate.
//! 2. `island`: each candidate is swept over every image. It is a trigger when its carriers
//!    match within the noise and almost nothing else comes near (an island in patch space), the
//!    carriers are not one image repeated, and they are not an implausible share of the data.
//!
//! What it cannot catch: a trigger that differs per image (blended into the content, randomised,
//! or warped beyond the match radius) is no longer one patch, and on data full of identical
//! textured details a small trigger can drown. Logos and watermarks pasted on many images are
//! found too, as they are pasted patches.

mod exhaustive;
mod hyperparams;
mod island;
mod mine;
pub mod pyramid;
mod signal;
mod template;
mod windows;

use serde::{Deserialize, Serialize};

pub use hyperparams::RecurrenceConfig;
pub use island::IslandVerdict;
#[cfg(feature = "shard")]
pub(crate) use signal::fitted;
pub use signal::{RecurrenceSignal, TemplateScreen, REGISTRATION};
pub use template::PatchTemplate;

use crate::error::{Error, Result};
use crate::image::{median_short_side, scale_box, Image, PixelBox};

/// One image carrying a recurring patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Carrier {
    /// Row of the image that carries it.
    pub image: usize,
    /// RMS distance of its best match to the patch's template.
    pub distance: f32,
    /// The patch in this image, in its native pixels.
    pub patch_box: PixelBox,
}

/// A patch pasted into several images.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurringPatch {
    /// Side of the mined window the template was cut at.
    pub side: usize,
    /// The patch's pixels, `channels × side × side`, channel-major.
    pub template: Vec<f32>,
    /// Carriers in increasing image order.
    pub carriers: Vec<Carrier>,
    /// Images matching within the outer radius but not the match radius.
    pub halo: usize,
    /// Distinct places the patch sits at among its carriers.
    pub distinct_places: usize,
    /// Verified windows the patch was joined from (1 for the exhaustive miner): a pasted patch
    /// gives many, one per sub-window, table and level that its copies share.
    pub support: usize,
    /// Native pixels per compared pixel: 1 where carriers were matched pixel by pixel, the
    /// pyramid level's factor where they were matched on its box means.
    pub factor: usize,
    /// RMS distance within which the carriers matched, in compared pixels.
    pub radius: f32,
    /// The carriers' box around the matched window, `[x0, y0, x1, y1]` from its corner, where
    /// every carrier's box is that window grown the same way (the exhaustive miner's); `None`
    /// where each carrier's box was measured on its own (the photo index).
    pub extent: Option<[isize; 4]>,
}

/// What the stage looked at and why candidates were turned down.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecurrenceSummary {
    /// Window sides mined, in native pixels of the median image's shorter side.
    pub window_sides: Vec<usize>,
    /// Textured windows hashed, summed over the window sides.
    pub windows: usize,
    /// Candidate patches from the hash buckets.
    pub candidates: usize,
    /// Candidates that passed the island test on a sample of the images.
    pub presweep_passed: usize,
    /// Candidates swept over every image.
    pub swept: usize,
    /// Swept candidates with too few carriers.
    pub too_few: usize,
    /// Swept candidates with an implausible share of the data as carriers.
    pub too_many: usize,
    /// Swept candidates whose carriers were not an island (other patches came near).
    pub no_island: usize,
    /// Swept candidates whose carriers are one image repeated, not a patch pasted into several.
    pub duplicates: usize,
    /// `[window side, carriers, halo, distinct places]` of every patch found.
    pub patches: Vec<[usize; 4]>,
    /// Entries the photo-scale index held (0 when the images were mined exhaustively).
    #[serde(default)]
    pub index_entries: usize,
    /// Bytes those entries took.
    #[serde(default)]
    pub index_bytes: usize,
    /// Images read a second time to verify what the index named.
    #[serde(default)]
    pub verified_images: usize,
    /// Cores of the index dropped before verification: too few other cores share their images
    /// for them to join into a patch.
    #[serde(default)]
    pub pruned_cores: usize,
    /// Verified windows behind each patch, in the order of `patches` (photo-scale index only).
    #[serde(default)]
    pub patch_support: Vec<usize>,
    /// Rows of images that share a window together with its surroundings: one photo repeated
    /// (at another size, or cropped), reported and never removed for recurrence.
    #[serde(default)]
    pub duplicate_groups: Vec<Vec<usize>>,
}

impl RecurrenceSummary {
    fn turned_down(&mut self, verdict: IslandVerdict) {
        match verdict {
            IslandVerdict::Trigger => {}
            IslandVerdict::TooFew => self.too_few += 1,
            IslandVerdict::TooMany => self.too_many += 1,
            IslandVerdict::NoIsland => self.no_island += 1,
            IslandVerdict::Duplicates => self.duplicates += 1,
        }
    }
}

/// The recurring patches of a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recurrence {
    /// The confirmed patches and their carriers.
    pub patches: Vec<RecurringPatch>,
    /// What was looked at, for reports.
    pub summary: RecurrenceSummary,
}

impl Recurrence {
    /// Every carrier with the index of its patch, in increasing image order.
    pub fn carriers(&self) -> Vec<(usize, &Carrier)> {
        let mut out: Vec<(usize, &Carrier)> =
            self.patches.iter().enumerate().flat_map(|(p, patch)| patch.carriers.iter().map(move |c| (p, c))).collect();
        out.sort_by_key(|(_, c)| c.image);
        out
    }
}

/// Images read by row, possibly from disk each time: what recurrence streams over.
pub trait ImageRows: Sync {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[height, width]` of row `row` as read, without reading its pixels.
    fn size(&self, row: usize) -> [usize; 2];
    /// The image of row `row`. A row that cannot be read carries no evidence: a signal passes
    /// over it, so an implementation whose reads can fail reports such rows itself (the filter's
    /// rows report them unreadable).
    fn read(&self, row: usize) -> Result<Image>;
    /// [`Image::fingerprint`] of row `row` as read, when it is known without reading the row
    /// again; the index is cached only when every row has one.
    fn fingerprint(&self, _row: usize) -> Option<u64> {
        None
    }
    /// SHA-256 of row `row`'s stored bytes, where its item has any (a file's).
    fn digest(&self, _row: usize) -> Result<Option<[u8; 32]>> {
        Ok(None)
    }
}

/// Images held in memory, as [`ImageRows`].
pub struct HeldImages<'a>(pub &'a [Image]);

impl ImageRows for HeldImages<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn size(&self, row: usize) -> [usize; 2] {
        [self.0[row].height(), self.0[row].width()]
    }
    fn read(&self, row: usize) -> Result<Image> {
        Ok(self.0[row].clone())
    }
    fn fingerprint(&self, row: usize) -> Option<u64> {
        Some(self.0[row].fingerprint())
    }
}

impl RecurrenceConfig {
    /// Whether images of these sizes are indexed by the photo-scale pyramid rather than mined
    /// exhaustively: their median shorter side reaches `pyramid.min_image_side`.
    pub fn uses_pyramid(&self, rows: &dyn ImageRows) -> bool {
        median_short_side((0..rows.len()).map(|r| rows.size(r))).is_some_and(|s| s >= self.pyramid.min_image_side)
    }

    /// Finds the patches that recur across the images of `rows`: photos through the index
    /// ([`pyramid`]), which reads each image once and again only where the index points; small
    /// images by the exhaustive miner below, which holds them all (`read_capped` gives each).
    pub fn find_rows(&self, rows: &dyn ImageRows, read_capped: &dyn Fn(usize) -> Result<Image>) -> Result<Recurrence> {
        self.check()?;
        if rows.is_empty() {
            return Err(Error::NoInput("the recurrence stage"));
        }
        if self.uses_pyramid(rows) {
            return pyramid::find(rows, self);
        }
        let images: Vec<Image> = (0..rows.len()).map(read_capped).collect::<Result<_>>()?;
        let mut found = self.find_exhaustive(&images)?;
        // Boxes in each row's own pixels, whatever size the miner held it at.
        for carrier in found.patches.iter_mut().flat_map(|p| p.carriers.iter_mut()) {
            let image = &images[carrier.image];
            carrier.patch_box = scale_box(carrier.patch_box, [image.height(), image.width()], rows.size(carrier.image));
        }
        Ok(found)
    }

    /// Finds the patches that recur across `images` (any sizes; grey images are compared as RGB
    /// when the set mixes both).
    pub fn find(&self, images: &[Image]) -> Result<Recurrence> {
        self.find_rows(&HeldImages(images), &|r| Ok(images[r].clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    fn noise(rng: &mut StdRng, side: usize) -> Image {
        Image::new(1, side, side, (0..side * side).map(|_| rng.random::<f32>()).collect()).unwrap()
    }

    #[test]
    fn finds_the_pasted_patch_and_nothing_on_clean_images() {
        let mut rng = StdRng::seed_from_u64(5);
        let patch = noise(&mut rng, 5);
        let clean: Vec<Image> = (0..60).map(|_| noise(&mut rng, 24)).collect();
        let mut poisoned = clean.clone();
        for (k, image) in poisoned.iter_mut().enumerate().filter(|(k, _)| k % 6 == 0) {
            image.paste(&patch, 4 + k % 13, 2 + (k * 7) % 15);
        }
        let config = RecurrenceConfig::new();
        let found = config.find(&poisoned).unwrap();
        assert_eq!(found.patches.len(), 1, "{:?}", found.summary);
        let carriers: Vec<usize> = found.patches[0].carriers.iter().map(|c| c.image).collect();
        assert_eq!(carriers, (0..60).step_by(6).collect::<Vec<_>>());
        for c in &found.patches[0].carriers {
            assert_eq!((c.patch_box.w, c.patch_box.h), (5, 5), "{c:?}");
        }
        assert!(config.find(&clean).unwrap().patches.is_empty());
    }

    #[test]
    fn no_images_is_an_error() {
        assert!(matches!(RecurrenceConfig::new().find(&[]), Err(Error::NoInput(_))));
    }
}
