//! How the filter reads a dataset ([`ReadPlan`]), and the listing pass: every item once, a photo
//! from its stored header where it has one (decoded later, once, by the first signal that reads
//! it), anything else decoded here.

use burn::data::dataset::Dataset;

use crate::error::{Error, Result};
use crate::image::{capped_size, median_short_side, AsImage, Image};
use crate::progress::stage_bar;

/// How the filter reads a dataset: the working size, which images it may hold, and whether the
/// masking signal needs working copies.
pub struct ReadPlan {
    /// `[height, width]` asked for, or `None` for the most common size capped at `max_short_side`.
    pub working_size: Option<[usize; 2]>,
    /// Cap on the short side of a working size chosen from the images (0: none).
    pub max_short_side: usize,
    /// Cap on the short side of an image held for the exhaustive recurrence miner.
    pub max_native_short_side: usize,
    /// Images whose short side is at least this are not held: recurrence streams them from the
    /// dataset (the photo-scale index reads each when it needs it).
    pub stream_from_side: usize,
    /// Build the working copies (the masking signal needs them).
    pub working_copies: bool,
}

/// One readable item as listed.
pub(super) struct Listed {
    pub index: usize,
    pub channels: usize,
    /// `[height, width]` as stored.
    pub size: [usize; 2],
    pub fingerprint: u64,
    /// The image, held when it is small.
    pub native: Option<Image>,
}

/// What the listing pass found.
pub(super) struct Listing {
    /// The readable items, in dataset order.
    pub listed: Vec<Listed>,
    /// By row of `listed`: listed from its stored header and not decoded yet.
    pub undecoded: Vec<bool>,
    /// Every item's id (its own, or its index), by dataset index.
    pub ids: Vec<String>,
    /// Dataset index and error of each item that could not be read, by index.
    pub unreadable: Vec<(usize, String)>,
}

impl Listing {
    /// Lists every item of `dataset`; a `None` inside `0..len()` is an error, an unreadable
    /// image is recorded.
    pub fn read<I: AsImage, D: Dataset<I> + ?Sized>(dataset: &D, plan: &ReadPlan) -> Result<Self> {
        let len = dataset.len();
        let mut listing =
            Listing { listed: Vec::new(), undecoded: Vec::new(), ids: Vec::with_capacity(len), unreadable: Vec::new() };
        let bar = stage_bar("read", len as u64);
        for index in 0..len {
            bar.inc(1);
            let item = dataset.get(index).ok_or(Error::MissingItem { index, len })?;
            listing.ids.push(item.id().unwrap_or_else(|| index.to_string()));
            // The working copies read every row again anyway; a header that does not read is
            // decoded here, for the decoder's own error.
            let header = (!plan.working_copies)
                .then(|| item.header())
                .flatten()
                .and_then(Result::ok)
                .filter(|h| h.height.min(h.width) >= plan.stream_from_side);
            if let Some(h) = header {
                let size = [h.height, h.width];
                listing.listed.push(Listed {
                    index,
                    channels: h.channels,
                    size,
                    fingerprint: h.fingerprint,
                    native: None,
                });
                listing.undecoded.push(true);
                continue;
            }
            match item.as_image() {
                Ok(image) => {
                    listing.listed.push(Listed::decoded(index, image, plan));
                    listing.undecoded.push(false);
                }
                Err(e) => listing.unreadable.push((index, e.to_string())),
            }
        }
        bar.finish_and_clear();
        if median_side(&listing.listed) < plan.stream_from_side {
            listing.decode_photos(dataset)?;
        }
        Ok(listing)
    }

    /// Mostly small images: the exhaustive miner reads every row and stops at the first that
    /// fails, so the photos listed by header are decoded now, to report one that cannot be.
    fn decode_photos<I: AsImage, D: Dataset<I> + ?Sized>(&mut self, dataset: &D) -> Result<()> {
        let len = dataset.len();
        let mut still = Vec::with_capacity(self.listed.len());
        for (l, undecoded) in std::mem::take(&mut self.listed).into_iter().zip(&self.undecoded) {
            if *undecoded {
                let item = dataset.get(l.index).ok_or(Error::MissingItem { index: l.index, len })?;
                let read = item.as_image().and_then(|image| {
                    let same = [image.height(), image.width()] == l.size;
                    same.then_some(()).ok_or(Error::ItemChanged { index: l.index, what: "its size" })
                });
                if let Err(e) = read {
                    self.unreadable.push((l.index, e.to_string()));
                    continue;
                }
            }
            still.push(l);
        }
        self.listed = still;
        self.undecoded = vec![false; self.listed.len()];
        self.unreadable.sort_by_key(|u| u.0);
        Ok(())
    }
}

impl Listed {
    fn decoded(index: usize, image: Image, plan: &ReadPlan) -> Self {
        let size = [image.height(), image.width()];
        let small = size[0].min(size[1]) < plan.stream_from_side;
        Listed {
            index,
            channels: image.channels(),
            size,
            fingerprint: image.fingerprint(),
            native: small.then(|| capped_to(image, plan.max_native_short_side)),
        }
    }
}

/// The median short side of the rows as recurrence sees them (a held image at its held size),
/// which decides between the photo index and the exhaustive miner.
fn median_side(listed: &[Listed]) -> usize {
    median_short_side(listed.iter().map(|l| l.native.as_ref().map_or(l.size, |i| [i.height(), i.width()]))).unwrap_or(0)
}

/// `image` scaled down to a short side of `max_short_side` where it is larger.
pub(super) fn capped_to(image: Image, max_short_side: usize) -> Image {
    let size = [image.height(), image.width()];
    let [h, w] = capped_size(size, max_short_side);
    if [h, w] == size {
        image
    } else {
        image.resized(h, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::list_image_folder;

    fn plan() -> ReadPlan {
        ReadPlan {
            working_size: None,
            max_short_side: 224,
            max_native_short_side: 512,
            stream_from_side: 96,
            working_copies: false,
        }
    }

    fn write(dir: &std::path::Path, name: &str, side: u32, shade: u8) {
        image::RgbImage::from_fn(side, side, |x, y| image::Rgb([shade, (x % 200) as u8, (y % 200) as u8]))
            .save(dir.join(name))
            .unwrap();
    }

    #[test]
    fn photos_are_listed_from_their_headers_unless_most_images_are_small() {
        let dir = tempfile::tempdir().unwrap();
        for (i, shade) in [10u8, 20, 30].into_iter().enumerate() {
            write(dir.path(), &format!("photo{i}.png"), 120, shade);
        }
        write(dir.path(), "small.png", 28, 0);
        let files = list_image_folder(dir.path()).unwrap().files;
        let listing = Listing::read(&files, &plan()).unwrap();
        assert_eq!(listing.undecoded, vec![true, true, true, false], "photos undecoded, the small one held");
        assert!(listing.listed[..3].iter().all(|l| l.native.is_none() && l.size == [120, 120] && l.channels == 3));
        let prints: std::collections::BTreeSet<u64> = listing.listed.iter().map(|l| l.fingerprint).collect();
        assert_eq!(prints.len(), 4, "each file its own fingerprint");
        assert_eq!(Listing::read(&files, &plan()).unwrap().listed[0].fingerprint, listing.listed[0].fingerprint);

        for i in 0..4 {
            write(dir.path(), &format!("tiny{i}.png"), 28, 40 + i as u8);
        }
        let files = list_image_folder(dir.path()).unwrap().files;
        let listing = Listing::read(&files, &plan()).unwrap();
        assert!(listing.undecoded.iter().all(|u| !u), "mostly small: every photo decoded as listed");
        assert_eq!(listing.listed.len(), 8);
    }
}
