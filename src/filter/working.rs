//! Every readable item of a dataset at the working size, and at a capped native size for
//! recurrence, with the items that could not be read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use burn::data::dataset::Dataset;

use super::listing::{capped_to, Listing, ReadPlan};
use crate::detect::recurrence::ImageRows;
use crate::error::{Error, Result};
use crate::image::{capped_size, working_size_of, AsImage, Image, ImageBatchSource};

/// The images of a dataset at one working size, and the items that could not be read.
pub struct WorkingImages {
    /// The readable images at the working size, one row each; built only when masking runs.
    pub source: Option<ImageBatchSource>,
    /// `[N, C, H, W]` of the working size.
    pub shape: [usize; 4],
    /// The readable images smaller than the plan's `stream_from_side`, at their own size or scaled
    /// down to `max_native_short_side`; `None` for the larger ones, which are read again when
    /// needed. Rows as in `source`.
    pub natives: Vec<Option<Image>>,
    /// `[height, width]` of each readable image as read, before any scaling; rows as in `source`.
    pub original_sizes: Vec<[usize; 2]>,
    /// [`Image::fingerprint`] of each readable image as read; rows as in `source`.
    pub fingerprints: Vec<u64>,
    /// Channels of each row as stored.
    pub channels: Vec<usize>,
    /// Dataset index of each row of `source`.
    pub rows: Vec<usize>,
    /// Rows listed from their stored header and not decoded by the listing: the first signal
    /// to read one finds whether it decodes ([`DatasetRows::unreadable`]).
    pub undecoded: Vec<bool>,
    /// Every item's id (its own, or its index), by dataset index.
    pub ids: Vec<String>,
    /// Dataset index and error of each item whose image could not be read.
    pub unreadable: Vec<(usize, String)>,
}

impl WorkingImages {
    /// Lists every item ([`Listing`]): a photo (short side at least the plan's
    /// `stream_from_side`) whose item has a stored header is listed from it and decoded once,
    /// later, by the first signal that reads it; the rest are decoded as listed, and only small
    /// images are held (scaled to their capped native size as read). The working size is [`crate::image::working_size`]'s choice over
    /// the capped sizes, and the working copies are built by a second read, one image at a time.
    pub fn read<I: AsImage, D: Dataset<I> + ?Sized>(dataset: &D, plan: &ReadPlan) -> Result<Self> {
        let mut images = Self::listed(dataset, plan)?;
        if images.rows.is_empty() {
            return Err(Error::NoInput("the poison filter"));
        }
        if plan.working_copies {
            images.source = Some(images.working_copies(dataset, plan)?);
        }
        Ok(images)
    }

    /// The listing alone, without working copies, also of a dataset with no readable item (a
    /// shard's part may hold only unreadable files).
    pub fn listed<I: AsImage, D: Dataset<I> + ?Sized>(dataset: &D, plan: &ReadPlan) -> Result<Self> {
        let Listing { listed, undecoded, ids, unreadable } = Listing::read(dataset, plan)?;
        let shapes = listed.iter().map(|l| (l.channels, capped_size(l.size, plan.max_native_short_side)));
        let [channels, h, w] = working_size_of(shapes, plan.working_size, plan.max_short_side);
        Ok(Self {
            source: None,
            shape: [listed.len(), channels, h, w],
            original_sizes: listed.iter().map(|l| l.size).collect(),
            fingerprints: listed.iter().map(|l| l.fingerprint).collect(),
            channels: listed.iter().map(|l| l.channels).collect(),
            rows: listed.iter().map(|l| l.index).collect(),
            natives: listed.into_iter().map(|l| l.native).collect(),
            undecoded,
            ids,
            unreadable,
        })
    }

    /// The working copies; an error when the plan did not build them.
    pub fn working(&self) -> Result<&ImageBatchSource> {
        // Only the masking signal needs them, and the plan built them only then.
        self.source.as_ref().ok_or(Error::NoInput("the masking signal (no working copies were built)"))
    }

    fn working_copies<I: AsImage, D: Dataset<I> + ?Sized>(
        &self,
        dataset: &D,
        plan: &ReadPlan,
    ) -> Result<ImageBatchSource> {
        let [n, c, h, w] = self.shape;
        let mut data = Vec::with_capacity(n * c * h * w);
        let rows = self.rows(dataset, plan);
        for row in 0..n {
            data.extend_from_slice(rows.read_capped(row)?.with_channels(c).resized(h, w).pixels());
        }
        ImageBatchSource::from_raw(data, self.shape)
    }

    /// The readable images by row, for recurrence: held ones from memory, the rest from `dataset`.
    pub fn rows<'a, I: AsImage, D: Dataset<I> + ?Sized>(
        &'a self,
        dataset: &'a D,
        plan: &ReadPlan,
    ) -> DatasetRows<'a, I, D> {
        DatasetRows {
            dataset,
            images: self,
            max_native_short_side: plan.max_native_short_side,
            decoded: self.rows.iter().map(|_| AtomicBool::new(false)).collect(),
            failed: Mutex::new(Vec::new()),
            item: std::marker::PhantomData,
        }
    }
}

/// [`WorkingImages`]' rows over their dataset.
pub struct DatasetRows<'a, I, D: ?Sized> {
    dataset: &'a D,
    images: &'a WorkingImages,
    max_native_short_side: usize,
    /// Rows read whole at least once through these rows.
    decoded: Vec<AtomicBool>,
    /// Rows whose read failed, with the error: a signal takes such a row as carrying no
    /// evidence, and the filter reports it unreadable.
    failed: Mutex<Vec<(usize, String)>>,
    item: std::marker::PhantomData<fn() -> I>,
}

impl<I: AsImage, D: Dataset<I> + ?Sized> DatasetRows<'_, I, D> {
    /// Row `row` scaled to its capped native size, as the exhaustive miner and the working
    /// copies take it.
    pub fn read_capped(&self, row: usize) -> Result<Image> {
        // A held image was capped as it was read, so capping it again keeps it as it is.
        Ok(capped_to(self.read(row)?, self.max_native_short_side))
    }

    /// The rows that did not decode, by row, each once: those whose read failed, and those
    /// listed from their header that no signal read, decoded now. Nothing listed is lost: a row
    /// is kept, removed as a finding, or reported here.
    pub fn unreadable(&self) -> Vec<(usize, String)> {
        for row in 0..self.images.rows.len() {
            if self.images.undecoded[row] && !self.decoded[row].load(Ordering::Relaxed) {
                // A failure is recorded by the read itself.
                let _ = self.read(row);
            }
        }
        let mut failed = std::mem::take(&mut *self.failed.lock().unwrap_or_else(|e| e.into_inner()));
        failed.sort_by_key(|f| f.0);
        failed.dedup_by_key(|f| f.0);
        failed
    }

    fn read_stored(&self, row: usize) -> Result<Image> {
        let index = self.images.rows[row];
        let len = self.dataset.len();
        let image = self.dataset.get(index).ok_or(Error::MissingItem { index, len })?.as_image()?;
        // The item changed between reads; its boxes would not fit it.
        if [image.height(), image.width()] != self.images.original_sizes[row] {
            return Err(Error::ItemChanged { index, what: "its size" });
        }
        Ok(image)
    }
}

impl<I: AsImage, D: Dataset<I> + ?Sized> ImageRows for DatasetRows<'_, I, D> {
    fn len(&self) -> usize {
        self.images.rows.len()
    }

    fn size(&self, row: usize) -> [usize; 2] {
        match &self.images.natives[row] {
            Some(image) => [image.height(), image.width()],
            None => self.images.original_sizes[row],
        }
    }

    fn read(&self, row: usize) -> Result<Image> {
        if let Some(image) = &self.images.natives[row] {
            return Ok(image.clone());
        }
        let read = self.read_stored(row);
        match &read {
            Ok(_) => self.decoded[row].store(true, Ordering::Relaxed),
            Err(e) => self.failed.lock().unwrap_or_else(|e| e.into_inner()).push((row, e.to_string())),
        }
        read
    }

    fn fingerprint(&self, row: usize) -> Option<u64> {
        Some(self.images.fingerprints[row])
    }

    fn digest(&self, row: usize) -> Result<Option<[u8; 32]>> {
        let index = self.images.rows[row];
        let len = self.dataset.len();
        self.dataset.get(index).ok_or(Error::MissingItem { index, len })?.digest().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageDataset, ImageItem};
    use crate::detect::recurrence::ImageRows;

    #[test]
    fn large_images_are_capped_and_their_original_size_kept() {
        let item = |id: &str, h: usize, w: usize| ImageItem {
            id: id.into(),
            image: Image::new(1, h, w, vec![0.5; h * w]).unwrap(),
            label: None,
        };
        let data = ImageDataset::new(vec![item("big", 900, 1200), item("small", 30, 40), item("big2", 900, 1200)]);
        let plan = |stream_from_side| ReadPlan {
            working_size: None,
            max_short_side: 60,
            max_native_short_side: 300,
            stream_from_side,
            working_copies: true,
        };
        let working = WorkingImages::read(&data, &plan(10_000)).unwrap();
        assert_eq!(working.original_sizes, vec![[900, 1200], [30, 40], [900, 1200]]);
        let held = |w: &WorkingImages, i: usize| w.natives[i].as_ref().map(|n| [n.height(), n.width()]);
        assert_eq!(held(&working, 0), Some([300, 400]));
        assert_eq!(held(&working, 1), Some([30, 40]), "small ones stay");
        assert_eq!(working.source.as_ref().unwrap().shape(), [3, 1, 60, 80]);
        let streamed = WorkingImages::read(&data, &plan(96)).unwrap();
        assert_eq!((held(&streamed, 0), held(&streamed, 1)), (None, Some([30, 40])), "photos are not held");
        assert_eq!(streamed.source.as_ref().unwrap().pixels(0), working.source.as_ref().unwrap().pixels(0));
        let rows = streamed.rows(&data, &plan(96));
        assert_eq!(rows.size(0), [900, 1200]);
        assert_eq!(rows.read(2).unwrap().height(), 900, "read again at its own size");
    }
}
