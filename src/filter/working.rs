//! Every readable item of a dataset at the working size, and at a capped native size for
//! recurrence, with the items that could not be read.

use burn::data::dataset::Dataset;

use crate::error::{Error, Result};
use crate::image::{capped_size, AsImage, Image, ImageBatchSource};

/// The images of a dataset at one working size, and the items that could not be read.
pub struct WorkingImages {
    /// The readable images at the working size, one row each.
    pub source: ImageBatchSource,
    /// The readable images at their own size, or scaled down to a short side of
    /// `max_native_short_side`; recurrence is mined here. Rows as in `source`.
    pub natives: Vec<Image>,
    /// `[height, width]` of each readable image as read, before any scaling; rows as in `source`.
    pub original_sizes: Vec<[usize; 2]>,
    /// Dataset index of each row of `source`.
    pub rows: Vec<usize>,
    /// Every item's id (its own, or its index), by dataset index.
    pub ids: Vec<String>,
    /// Dataset index and error of each item whose image could not be read.
    pub unreadable: Vec<(usize, String)>,
}

impl WorkingImages {
    /// Reads every item once; a `None` inside `0..len()` is an error, an unreadable image is
    /// recorded. Each image is scaled to its capped native size as it is read, so the full-size
    /// decode of one item is all that is held beyond the capped copies. The working size is
    /// [`crate::image::working_size`]'s choice over the capped images.
    pub fn read<I: AsImage, D: Dataset<I> + ?Sized>(
        dataset: &D,
        working_size: Option<[usize; 2]>,
        max_short_side: usize,
        max_native_short_side: usize,
    ) -> Result<Self> {
        let len = dataset.len();
        let mut natives = Vec::new();
        let mut original_sizes = Vec::new();
        let mut rows = Vec::new();
        let mut ids = Vec::with_capacity(len);
        let mut unreadable = Vec::new();
        for index in 0..len {
            let item = dataset.get(index).ok_or(Error::MissingItem { index, len })?;
            ids.push(item.id().unwrap_or_else(|| index.to_string()));
            match item.as_image() {
                Ok(image) => {
                    let size = [image.height(), image.width()];
                    let [h, w] = capped_size(size, max_native_short_side);
                    natives.push(if [h, w] == size { image } else { image.resized(h, w) });
                    original_sizes.push(size);
                    rows.push(index);
                }
                Err(e) => unreadable.push((index, e.to_string())),
            }
        }
        if natives.is_empty() {
            return Err(Error::NoInput("the poison filter"));
        }
        let [channels, h, w] = crate::image::working_size(&natives, working_size, max_short_side);
        let source = ImageBatchSource::new(&natives, channels, h, w)?;
        Ok(Self { source, natives, original_sizes, rows, ids, unreadable })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageDataset, ImageItem};

    #[test]
    fn large_images_are_capped_and_their_original_size_kept() {
        let item = |id: &str, h: usize, w: usize| ImageItem {
            id: id.into(),
            image: Image::new(1, h, w, vec![0.5; h * w]).unwrap(),
            label: None,
        };
        let data = ImageDataset::new(vec![item("big", 900, 1200), item("small", 30, 40), item("big2", 900, 1200)]);
        let working = WorkingImages::read(&data, None, 60, 300).unwrap();
        assert_eq!(working.original_sizes, vec![[900, 1200], [30, 40], [900, 1200]]);
        assert_eq!([working.natives[0].height(), working.natives[0].width()], [300, 400]);
        assert_eq!([working.natives[1].height(), working.natives[1].width()], [30, 40], "small ones stay");
        assert_eq!(working.source.shape(), [3, 1, 60, 80]);
    }
}
