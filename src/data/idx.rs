//! IDX files (the MNIST family's format), plain or gzipped.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::{ImageDataset, ImageItem};
use crate::bounded::MAX_DATA_BYTES;
use crate::error::{Error, Result};
use crate::image::Image;

const FORMAT: &str = "IDX";
/// IDX type code for unsigned bytes, the only element type MNIST-style files use.
const UBYTE: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
struct IdxArray {
    dims: Vec<usize>,
    data: Vec<u8>,
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = crate::bounded::read(path, MAX_DATA_BYTES)?;
    decompress_if_gz(path, raw)
}

pub(crate) fn decompress_if_gz(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        // A small gzip can inflate to any size (a decompression bomb): the output is capped.
        let mut out = Vec::new();
        crate::bounded::Capped::new(GzDecoder::new(raw.as_slice()), MAX_DATA_BYTES).read_to_end(&mut out).map_err(
            |e| match crate::bounded::capped_error(path, MAX_DATA_BYTES, e) {
                Error::Io { source, .. } => Error::format(path, "gzip", source.to_string()),
                too_large => too_large,
            },
        )?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(path, FORMAT, "bad magic number"));
    }
    if bytes[2] != UBYTE {
        return Err(Error::format(path, FORMAT, format!("element type 0x{:02x} is not unsigned byte", bytes[2])));
    }
    let ndims = usize::from(bytes[3]);
    let header = 4 + 4 * ndims;
    if ndims == 0 || bytes.len() < header {
        return Err(Error::format(path, FORMAT, "truncated header"));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let body = &bytes[header..];
    match expected {
        Some(n) if n == body.len() => Ok(IdxArray { dims, data: body.to_vec() }),
        _ => {
            Err(Error::format(path, FORMAT, format!("dimensions {dims:?} do not match the {} data bytes", body.len())))
        }
    }
}

/// Reads an IDX image file (`N×H×W` bytes) as grey images.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Vec<Image>> {
    let path = path.as_ref();
    idx_images_from_bytes(path, read_maybe_gz(path)?)
}

pub(crate) fn idx_images_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Vec<Image>> {
    let array = parse_idx(path, &bytes)?;
    let [n, h, w] = array.dims[..] else {
        return Err(Error::format(path, FORMAT, format!("images need 3 dimensions, found {:?}", array.dims)));
    };
    if h == 0 || w == 0 {
        return Err(Error::format(path, FORMAT, "zero-sized images"));
    }
    array.data.chunks_exact(h * w).take(n).map(|chunk| Image::from_hwc_u8(1, h, w, chunk)).collect()
}

/// Reads an IDX label file (`N` bytes).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    idx_labels_from_bytes(path, read_maybe_gz(path)?)
}

pub(crate) fn idx_labels_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Vec<usize>> {
    let array = parse_idx(path, &bytes)?;
    if array.dims.len() != 1 {
        return Err(Error::format(path, FORMAT, format!("labels need 1 dimension, found {:?}", array.dims)));
    }
    Ok(array.data.into_iter().map(usize::from).collect())
}

/// Reads an image file and its label file into a dataset; ids are the indices.
pub fn read_idx_pair(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<ImageDataset> {
    let images_path = images.as_ref();
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels.as_ref())?;
    pair_up(images_path, images, labels)
}

pub(crate) fn pair_up(path: &Path, images: Vec<Image>, labels: Vec<usize>) -> Result<ImageDataset> {
    if images.len() != labels.len() {
        return Err(Error::format(path, FORMAT, format!("{} images but {} labels", images.len(), labels.len())));
    }
    let items = images
        .into_iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (image, label))| ImageItem { id: i.to_string(), image, label: Some(label) })
        .collect();
    Ok(ImageDataset::new(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzipped_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..2 * 2 * 3).map(|v| v as u8 * 20).collect();
        std::fs::write(dir.path().join("img.gz"), gz(&idx_bytes(&[2, 2, 3], &pixels))).unwrap();
        std::fs::write(dir.path().join("lbl"), idx_bytes(&[2], &[7, 3])).unwrap();
        let ds = read_idx_pair(dir.path().join("img.gz"), dir.path().join("lbl")).unwrap();
        assert_eq!(ds.items().len(), 2);
        assert_eq!(ds.items()[1].label, Some(3));
        let second = &ds.items()[1].image;
        assert_eq!((second.height(), second.width()), (2, 3));
        assert!((second.get(0, 0, 0) - 120.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn truncated_and_mismatched_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let truncated = dir.path().join("truncated.idx");
        std::fs::write(&truncated, idx_bytes(&[3, 2, 2], &[0; 11])).unwrap();
        let err = read_idx_images(&truncated).unwrap_err();
        assert!(err.to_string().contains("truncated.idx"), "{err}");

        let corrupt_gz = dir.path().join("corrupt.gz");
        let mut bytes = gz(&idx_bytes(&[1, 2, 2], &[0; 4]));
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&corrupt_gz, bytes).unwrap();
        assert!(matches!(read_idx_images(&corrupt_gz), Err(Error::Format { .. })));

        std::fs::write(dir.path().join("img"), idx_bytes(&[1, 1, 1], &[0])).unwrap();
        std::fs::write(dir.path().join("lbl"), idx_bytes(&[2], &[0, 1])).unwrap();
        assert!(read_idx_pair(dir.path().join("img"), dir.path().join("lbl")).is_err());
        assert!(matches!(read_idx_images(dir.path().join("absent")), Err(Error::Io { .. })));
    }
}
