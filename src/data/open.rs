//! One entry point for a user's path: an image folder, an IDX pair or CIFAR-10 binary.

use std::path::Path;

use super::folder::decode_listing;
use super::{list_image_folder, read_cifar10, read_idx_pair, FolderListing, FolderScan};
use crate::error::{Error, Result};

/// Opens `path`: `IMAGES,LABELS` is an IDX pair (plain or gzip); a directory holding `.bin`
/// files, or a `.bin` file, is CIFAR-10 binary; any other directory is an image folder. A path
/// that exists as written is never split at a comma. With `lenient`, undecodable files in a
/// folder are skipped and listed instead of failing the read.
pub fn open_path(path: &str, lenient: bool) -> Result<FolderScan> {
    match open_for_scan(path)? {
        Opened::Folder(listing) => decode_listing(Path::new(path), listing, lenient),
        Opened::Loaded(scan) => Ok(scan),
    }
}

/// What [`open_for_scan`] found.
pub enum Opened {
    /// An image folder, listed: its files are decoded one at a time, when the filter reads them.
    Folder(FolderListing),
    /// An IDX pair or CIFAR-10 binary, read whole (both are compact).
    Loaded(FolderScan),
}

/// Opens `path` as [`open_path`] does, but lists an image folder instead of decoding it, so
/// memory stays bounded by what the filter keeps per image.
pub fn open_for_scan(path: &str) -> Result<Opened> {
    let plain = |dataset| FolderScan { dataset, skipped: Vec::new(), classes: Vec::new() };
    let p = Path::new(path);
    if let Some((images, labels)) = path.split_once(',').filter(|_| !p.exists()) {
        return Ok(Opened::Loaded(plain(read_idx_pair(images, labels)?)));
    }
    if !p.exists() {
        return Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")));
    }
    let holds_bin = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "bin")))
            .unwrap_or(false)
    };
    if p.is_file() || holds_bin(p) {
        return Ok(Opened::Loaded(plain(read_cifar10(p)?)));
    }
    list_image_folder(p).map(Opened::Folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_paths_are_errors() {
        assert!(matches!(open_path("/no/such/poisoncam/dir", true), Err(Error::Io { .. })));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(open_path(dir.path().to_str().unwrap(), true), Err(Error::EmptyDataset { .. })));
    }

    #[test]
    fn a_folder_with_a_comma_in_its_name_is_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("photos, 2026");
        std::fs::create_dir(&folder).unwrap();
        image::GrayImage::from_pixel(4, 4, image::Luma([9])).save(folder.join("a.png")).unwrap();
        let scan = open_path(folder.to_str().unwrap(), true).unwrap();
        assert_eq!(scan.dataset.items().len(), 1);
    }
}
