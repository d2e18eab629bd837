//! Datasets: the crate's item type and readers for IDX, CIFAR-10 binary and image folders.
//!
//! Every reader returns an [`ImageDataset`], a burn `Dataset` of [`ImageItem`]s, and reports a bad
//! file as an error naming it.

mod batcher;
mod cifar;
mod fashion_mnist;
mod filelist;
mod folder;
mod idx;
mod open;

pub use batcher::ImageBatcher;
pub use cifar::read_cifar10;
pub use fashion_mnist::{FashionMnist, CLASS_NAMES as FASHION_MNIST_CLASSES, FASHION_MNIST_DIR};
#[doc(hidden)]
pub use filelist::filelist_line;
pub use filelist::read_filelist;
pub use folder::{
    decode as decode_file, dimensions as file_dimensions, list_image_folder, read_image_folder, FolderListing,
    ImageFile, SkippedFile,
};
#[doc(hidden)]
pub use folder::{FolderScan, MAX_DECODED_SIDE, MAX_DECODE_BYTES, MAX_FILE_BYTES};
/// Reads a regular text file (a list of ids or paths) of at most 256 MiB; a FIFO or a device is
/// an error, never a read that blocks or does not end.
#[doc(hidden)]
pub fn read_text(path: &std::path::Path) -> Result<String> {
    crate::bounded::read_text(path)
}
/// Files whose headers are read to tell photos from small images before a whole folder is.
const SIZE_SAMPLE: usize = 64;

/// The median shorter side of up to 64 of `files`, spread over the list, from their headers
/// alone; files whose header cannot be read are left out. `None` when none can be.
#[doc(hidden)]
pub fn sampled_short_side<'a>(files: impl ExactSizeIterator<Item = &'a std::path::Path>) -> Option<usize> {
    let step = (files.len() / SIZE_SAMPLE).max(1);
    let sizes = files
        .step_by(step)
        .take(SIZE_SAMPLE)
        .filter_map(|f| file_dimensions(f).ok())
        .map(|(w, h)| [h as usize, w as usize]);
    crate::image::median_short_side(sizes)
}
pub use idx::{read_idx_images, read_idx_labels, read_idx_pair};
#[doc(hidden)]
pub use open::{open_for_scan, open_path, Opened};

use burn::data::dataset::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::{AsImage, Image};

/// One image with its identifier and, where known, its class label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageItem {
    /// A stable identifier (a path, or `name/index`).
    pub id: String,
    /// The pixels.
    pub image: Image,
    /// The class, where known.
    pub label: Option<usize>,
}

impl AsImage for ImageItem {
    fn as_image(&self) -> Result<Image> {
        Ok(self.image.clone())
    }
    fn label(&self) -> Option<usize> {
        self.label
    }
    fn id(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

/// An in-memory dataset of [`ImageItem`]s.
#[derive(Clone, Debug, Default)]
pub struct ImageDataset {
    items: Vec<ImageItem>,
}

impl ImageDataset {
    /// A dataset of `items`, in order.
    pub fn new(items: Vec<ImageItem>) -> Self {
        Self { items }
    }

    /// Every item, in order.
    pub fn items(&self) -> &[ImageItem] {
        &self.items
    }

    /// Gives the items back.
    pub fn into_items(self) -> Vec<ImageItem> {
        self.items
    }

    /// Items `range` as a new dataset (e.g. a train/test split of the embedded data).
    pub fn slice(&self, range: std::ops::Range<usize>) -> ImageDataset {
        let end = range.end.min(self.items.len());
        let start = range.start.min(end);
        ImageDataset::new(self.items[start..end].to_vec())
    }
}

impl Dataset<ImageItem> for ImageDataset {
    fn get(&self, index: usize) -> Option<ImageItem> {
        self.items.get(index).cloned()
    }
    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Reads every item of any `Dataset` through [`AsImage`], in index order, as `(image, label)`.
///
/// A `get` that returns `None` inside `0..len()` is an error, not a silent gap.
pub fn collect_images<I: AsImage, D: Dataset<I> + ?Sized>(dataset: &D) -> Result<Vec<(Image, Option<usize>)>> {
    (0..dataset.len())
        .map(|index| {
            let item = dataset.get(index).ok_or(Error::MissingItem { index, len: dataset.len() })?;
            Ok((item.as_image()?, item.label()))
        })
        .collect()
}
