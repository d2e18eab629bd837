//! Image folders: PNG, JPEG, WebP and TIFF files, either flat or in one sub-folder per class.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, InMemDataset};
use serde::{Deserialize, Serialize};

use super::{ImageDataset, ImageItem};
use crate::error::{Error, Result};
use crate::image::{AsImage, Image, StoredHeader};

const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "tif", "tiff"];

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

/// An image file that is decoded only when its image is asked for, so a folder of any size is
/// listed in kilobytes and decoded one file at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageFile {
    /// The path relative to the folder, with `/` separators.
    pub id: String,
    /// Where the file is.
    pub path: PathBuf,
    /// The class (the top-level sub-folder), where there is one.
    pub label: Option<usize>,
}

impl AsImage for ImageFile {
    fn as_image(&self) -> Result<Image> {
        decode(&self.path)
    }
    fn label(&self) -> Option<usize> {
        self.label
    }
    fn id(&self) -> Option<String> {
        Some(self.id.clone())
    }
    fn digest(&self) -> Option<Result<[u8; 32]>> {
        Some(crate::bounded::sha256(&self.path, MAX_FILE_BYTES))
    }
    fn header(&self) -> Option<Result<StoredHeader>> {
        Some(header(&self.path))
    }
}

/// The image files below a folder, listed but not decoded.
pub struct FolderListing {
    /// Every file with an image extension, sorted by path; a burn `Dataset` whose items decode
    /// on demand (an undecodable one is then logged unreadable by the filter).
    pub files: InMemDataset<ImageFile>,
    /// Folders that could not be listed (no permission, a symlink loop) and entries named like
    /// images that are not regular files (a FIFO, a socket, a device), with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Class names by label; empty for a flat folder.
    pub classes: Vec<String>,
}

/// Lists every image file below `root` (extensions png, jpg, jpeg, webp, tif, tiff, any case). Ids are paths
/// relative to `root` with `/` separators; files inside a sub-folder get the label of that
/// top-level sub-folder (classes sorted by name). Symbolic links are followed, but a folder is
/// entered once, so a link loop ends the walk there and is reported in `skipped`.
pub fn list_image_folder(root: impl AsRef<Path>) -> Result<FolderListing> {
    let root = root.as_ref();
    if !root.is_dir() {
        return Err(Error::io(root, std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory")));
    }
    let mut walk = Walk { root, files: Vec::new(), skipped: Vec::new(), seen: HashSet::new() };
    walk.enter(root)?;
    let Walk { mut files, skipped, .. } = walk;
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
    let items: Vec<ImageFile> = files
        .into_iter()
        .zip(&relative)
        .map(|(path, parts)| ImageFile {
            id: parts.join("/"),
            path,
            label: (parts.len() > 1).then(|| classes.binary_search(&parts[0]).ok()).flatten(),
        })
        .collect();
    if items.is_empty() {
        return Err(Error::EmptyDataset { path: root.to_path_buf() });
    }
    Ok(FolderListing { files: InMemDataset::new(items), skipped, classes })
}

/// Reads every image below `root` into memory ([`list_image_folder`], then decoded).
///
/// With `lenient`, undecodable files are listed in [`FolderScan::skipped`]; without, the first one
/// is an error naming it.
pub fn read_image_folder(root: impl AsRef<Path>, lenient: bool) -> Result<FolderScan> {
    let root = root.as_ref();
    decode_listing(root, list_image_folder(root)?, lenient)
}

/// Decodes every file of a listing of `root`, as [`read_image_folder`] does.
pub(crate) fn decode_listing(root: &Path, listing: FolderListing, lenient: bool) -> Result<FolderScan> {
    let mut items = Vec::new();
    let mut skipped = listing.skipped;
    for file in listing.files.iter() {
        match decode(&file.path) {
            Ok(image) => items.push(ImageItem { id: file.id, image, label: file.label }),
            Err(err) if lenient => skipped.push(SkippedFile { id: file.id, reason: err.to_string() }),
            Err(err) => return Err(err),
        }
    }
    if items.is_empty() {
        return Err(Error::EmptyDataset { path: root.to_path_buf() });
    }
    Ok(FolderScan { dataset: ImageDataset::new(items), skipped, classes: listing.classes })
}

struct Walk<'a> {
    root: &'a Path,
    files: Vec<PathBuf>,
    skipped: Vec<SkippedFile>,
    seen: HashSet<PathBuf>,
}

impl Walk<'_> {
    fn enter(&mut self, dir: &Path) -> Result<()> {
        let root = self.root;
        let id = || dir.strip_prefix(root).unwrap_or(dir).to_string_lossy().into_owned() + "/";
        let canonical = match std::fs::canonicalize(dir) {
            Ok(c) => c,
            Err(e) => return self.skip(dir, id(), e.to_string()),
        };
        if !self.seen.insert(canonical) {
            return self.skip(dir, id(), "a symbolic link loop, or a folder reached twice: entered once".into());
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.skip(dir, id(), e.to_string()),
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => return self.skip(dir, id(), e.to_string()),
            };
            // The kind after following links: a folder is entered, a regular file listed, and a
            // FIFO, socket or device named like an image is reported, never opened (a read of
            // one would block or never end). A dangling link is listed, to be reported unreadable.
            let meta = std::fs::metadata(&path);
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                self.enter(&path)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                match meta.ok().as_ref().and_then(crate::bounded::special_kind) {
                    Some(kind) => self.skipped.push(SkippedFile { id: self.id_of(&path), reason: not_read(kind) }),
                    None => self.files.push(path),
                }
            }
        }
        Ok(())
    }

    fn id_of(&self, path: &Path) -> String {
        path.strip_prefix(self.root)
            .unwrap_or(path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }

    fn skip(&mut self, dir: &Path, id: String, reason: String) -> Result<()> {
        if dir == self.root {
            return Err(Error::io(dir, std::io::Error::other(reason)));
        }
        self.skipped.push(SkippedFile { id, reason });
        Ok(())
    }
}

/// Why a listed path that is not a regular file is not read.
fn not_read(kind: &str) -> String {
    format!("{kind}, not a regular file: never opened, since a read could block or never end")
}

/// Largest width or height a file may declare: a small file that declares 100,000 × 100,000
/// pixels (a decompression bomb) is an error, not an out-of-memory abort. 16,384 px covers
/// 150-megapixel photos.
pub const MAX_DECODED_SIDE: u32 = 16_384;
/// The most memory one decoding may take; 1 GiB holds a 16-bit RGBA image of 130 megapixels.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;
/// The most bytes read of one image file: a file larger than the decoder may allocate holds
/// nothing it could decode, and a file that grows past it while read is unreadable.
pub const MAX_FILE_BYTES: u64 = MAX_DECODE_BYTES;

/// Decodes a file to grey (for grey sources) or RGB; alpha is dropped, 16-bit samples are
/// scaled to [0, 1], and CMYK JPEGs are converted to RGB by the decoder. Pixels are kept in the
/// order they are stored: an EXIF orientation is not applied, as PIL's `Image.open` and
/// torchvision's loader do not apply it, so boxes point where a trainer sees the patch. Within
/// [`MAX_DECODED_SIDE`] and [`MAX_DECODE_BYTES`], reading at most [`MAX_FILE_BYTES`] of a regular
/// file (a FIFO or a device is [`Error::NotAFile`]).
pub fn decode(path: &Path) -> Result<Image> {
    let reader = open_limited(path)?;
    let decoded = reader.decode().map_err(|e| Error::Decode { path: path.to_path_buf(), reason: e.to_string() })?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    if decoded.color().has_color() {
        Image::from_hwc_u8(3, h, w, decoded.to_rgb8().as_raw())
    } else {
        Image::from_hwc_u8(1, h, w, decoded.to_luma8().as_raw())
    }
}

/// The channels and size `path`'s header declares, within the limits [`decode`] applies, and a
/// fingerprint of its bytes; no pixel is decoded.
pub fn header(path: &Path) -> Result<StoredHeader> {
    use image::ImageDecoder;
    let decoder = open_limited(path)?
        .into_decoder()
        .map_err(|e| Error::Decode { path: path.to_path_buf(), reason: e.to_string() })?;
    let (width, height) = decoder.dimensions();
    let channels = if decoder.color_type().has_color() { 3 } else { 1 };
    let fingerprint = crate::bounded::fingerprint(path, MAX_FILE_BYTES)?;
    Ok(StoredHeader { channels, height: height as usize, width: width as usize, fingerprint })
}

/// [`open_image`] with the decoder's limits set.
fn open_limited(path: &Path) -> Result<Reader> {
    let mut reader = open_image(path)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    Ok(reader)
}

type Reader = image::ImageReader<std::io::BufReader<crate::bounded::Capped<std::fs::File>>>;

/// A decoder's reader on a regular file of at most [`MAX_FILE_BYTES`], its format guessed from the
/// content, else the extension (as `ImageReader::open` guesses).
fn open_image(path: &Path) -> Result<Reader> {
    let file = crate::bounded::open_capped(path, MAX_FILE_BYTES)?;
    let mut reader = image::ImageReader::new(std::io::BufReader::new(file));
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    reader.with_guessed_format().map_err(|e| crate::bounded::capped_error(path, MAX_FILE_BYTES, e))
}

/// The width and height a file's header declares, read through the same checks as [`decode`]
/// (a regular file, at most [`MAX_FILE_BYTES`]) without decoding its pixels.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    open_image(path)?.into_dimensions().map_err(|e| Error::Decode { path: path.to_path_buf(), reason: e.to_string() })
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
    fn webp_and_tiff_files_are_listed_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let picture = image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([40 * x as u8, 60 * y as u8, 200]));
        let webp = std::fs::File::create(dir.path().join("a.webp")).unwrap();
        picture.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(webp)).unwrap();
        picture.save(dir.path().join("b.TIFF")).unwrap();
        let scan = read_image_folder(dir.path(), false).unwrap();
        let ids: Vec<&str> = scan.dataset.items().iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a.webp", "b.TIFF"]);
        for item in scan.dataset.items() {
            let expected = Image::from_hwc_u8(3, 4, 6, picture.as_raw()).unwrap();
            assert_eq!(item.image, expected, "{} decodes losslessly", item.id);
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
