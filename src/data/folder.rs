//! Image folders: PNG/JPEG files, either flat or in one sub-folder per class.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ImageDataset, ImageItem};
use crate::error::{Error, Result};
use crate::image::Image;

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// A file that could not be decoded, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The file's path.
    pub id: String,
    /// Why it could not be read.
    pub reason: String,
}

/// What a lenient read of a folder found: the readable images and the skipped files.
#[derive(Clone, Debug)]
pub struct FolderScan {
    /// The images that could be read, labelled by their folder.
    pub dataset: ImageDataset,
    /// The files that could not be read, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Class names by label; empty for a flat folder.
    pub classes: Vec<String>,
}

/// Reads every image below `root`. Ids are paths relative to `root` with `/` separators;
/// files inside a sub-folder get the label of that top-level sub-folder (classes sorted by name).
///
/// With `lenient`, undecodable files are listed in [`FolderScan::skipped`]; without, the first one
/// is an error naming it.
pub fn read_image_folder(root: impl AsRef<Path>, lenient: bool) -> Result<FolderScan> {
    let root = root.as_ref();
    if !root.is_dir() {
        return Err(Error::io(root, std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory")));
    }
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort();
    let relative: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .unwrap_or(f)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let mut classes: Vec<String> = relative.iter().filter(|p| p.len() > 1).map(|p| p[0].clone()).collect();
    classes.sort();
    classes.dedup();

    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for (file, parts) in files.iter().zip(&relative) {
        let id = parts.join("/");
        match decode(file) {
            Ok(image) => {
                let label = (parts.len() > 1).then(|| classes.binary_search(&parts[0]).ok()).flatten();
                items.push(ImageItem { id, image, label });
            }
            Err(err) if lenient => skipped.push(SkippedFile { id, reason: err.to_string() }),
            Err(err) => return Err(err),
        }
    }
    if items.is_empty() {
        return Err(Error::EmptyDataset { path: root.to_path_buf() });
    }
    Ok(FolderScan { dataset: ImageDataset::new(items), skipped, classes })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Decodes a file to grey (for grey sources) or RGB.
pub fn decode(path: &Path) -> Result<Image> {
    let decoded = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::Decode { path: path.to_path_buf(), reason: e.to_string() })?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    if decoded.color().has_color() {
        Image::from_hwc_u8(3, h, w, decoded.to_rgb8().as_raw())
    } else {
        Image::from_hwc_u8(1, h, w, decoded.to_luma8().as_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, rgb: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if rgb {
            image::RgbImage::from_pixel(w, h, image::Rgb([255, 0, 0])).save(path).unwrap();
        } else {
            image::GrayImage::from_pixel(w, h, image::Luma([128])).save(path).unwrap();
        }
    }

    #[test]
    fn class_folders_give_labels_and_relative_ids() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("cat/a.png"), 4, 3, true);
        write_png(&dir.path().join("dog/b.PNG"), 5, 5, false);
        write_png(&dir.path().join("cat/deep/c.png"), 2, 2, false);
        let scan = read_image_folder(dir.path(), false).unwrap();
        let got: Vec<(String, Option<usize>, usize)> =
            scan.dataset.items().iter().map(|i| (i.id.clone(), i.label, i.image.channels())).collect();
        assert_eq!(
            got,
            vec![
                ("cat/a.png".into(), Some(0), 3),
                ("cat/deep/c.png".into(), Some(0), 1),
                ("dog/b.PNG".into(), Some(1), 1)
            ]
        );
        assert_eq!(scan.classes, vec!["cat", "dog"]);
        assert_eq!(scan.dataset.items()[0].image.width(), 4);
    }

    #[test]
    fn corrupt_file_is_an_error_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("good.png"), 3, 3, false);
        std::fs::write(dir.path().join("bad.png"), b"\x89PNG not really").unwrap();
        let err = read_image_folder(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("bad.png"), "{err}");
        let scan = read_image_folder(dir.path(), true).unwrap();
        assert_eq!(scan.dataset.items().len(), 1);
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].id, "bad.png");
        assert!(scan.classes.is_empty());
    }

    #[test]
    fn empty_or_missing_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_image_folder(dir.path(), true), Err(Error::EmptyDataset { .. })));
        assert!(read_image_folder(dir.path().join("nope"), true).is_err());
    }
}
