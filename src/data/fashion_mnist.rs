//! Fashion-MNIST (Zalando, MIT licence): the embedded test split and the full set from Debian.

use std::path::{Path, PathBuf};

use super::idx::read_idx_pair;
use super::ImageDataset;
use crate::error::{Error, Result};

/// Where the Debian package `dataset-fashion-mnist` puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
const PACKAGE: &str = "dataset-fashion-mnist";

#[cfg(feature = "embedded-data")]
static EMBEDDED_IMAGES: &[u8] = include_bytes!("../../assets/fashion-mnist/t10k-images-idx3-ubyte.gz");
#[cfg(feature = "embedded-data")]
static EMBEDDED_LABELS: &[u8] = include_bytes!("../../assets/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// The ten Fashion-MNIST class names, by label.
pub const CLASS_NAMES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Entry points to the Fashion-MNIST data.
pub struct FashionMnist;

impl FashionMnist {
    /// The 10,000-image test split compiled into the crate (feature `embedded-data`, on by
    /// default through `eval`): works with no set-up at all.
    #[cfg(feature = "embedded-data")]
    pub fn embedded() -> Result<ImageDataset> {
        let path = Path::new("<embedded t10k-images-idx3-ubyte.gz>");
        use super::idx::{decompress_if_gz, idx_images_from_bytes, idx_labels_from_bytes, pair_up};
        let images = idx_images_from_bytes(path, decompress_if_gz(path, EMBEDDED_IMAGES.to_vec())?)?;
        let label_path = Path::new("<embedded t10k-labels-idx1-ubyte.gz>");
        let labels = idx_labels_from_bytes(label_path, decompress_if_gz(label_path, EMBEDDED_LABELS.to_vec())?)?;
        pair_up(path, images, labels)
    }

    /// The 60,000-image training split from the Debian package.
    pub fn system_train() -> Result<ImageDataset> {
        Self::from_dir(FASHION_MNIST_DIR, "train")
    }

    /// The 10,000-image test split from the Debian package.
    pub fn system_test() -> Result<ImageDataset> {
        Self::from_dir(FASHION_MNIST_DIR, "t10k")
    }

    /// Reads `{split}-images-idx3-ubyte.gz` and `{split}-labels-idx1-ubyte.gz` from `dir`.
    pub fn from_dir(dir: impl AsRef<Path>, split: &str) -> Result<ImageDataset> {
        let dir = dir.as_ref();
        let images: PathBuf = dir.join(format!("{split}-images-idx3-ubyte.gz"));
        let labels: PathBuf = dir.join(format!("{split}-labels-idx1-ubyte.gz"));
        if !images.exists() {
            return Err(Error::MissingPackage { what: "Fashion-MNIST", path: images, package: PACKAGE });
        }
        read_idx_pair(images, labels)
    }
}

#[cfg(all(test, feature = "embedded-data"))]
mod tests {
    use super::*;

    #[test]
    fn embedded_split_is_the_real_test_set() {
        let ds = FashionMnist::embedded().unwrap();
        assert_eq!(ds.items().len(), 10_000);
        let mut counts = [0usize; 10];
        for item in ds.items() {
            counts[item.label.unwrap()] += 1;
        }
        assert_eq!(counts, [1000; 10], "the test split is balanced");
        let first = &ds.items()[0].image;
        assert_eq!((first.channels(), first.height(), first.width()), (1, 28, 28));
    }

    #[test]
    fn missing_directory_names_the_package() {
        let err = FashionMnist::from_dir("/nonexistent/dir", "train").unwrap_err();
        assert!(err.to_string().contains(PACKAGE), "{err}");
    }
}
