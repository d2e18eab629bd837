//! CIFAR-10 binary format: records of one label byte and 3×32×32 channel-planar bytes.

use std::path::{Path, PathBuf};

use super::{ImageDataset, ImageItem};
use crate::error::{Error, Result};
use crate::image::Image;

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;
const FORMAT: &str = "CIFAR-10 binary";

/// Reads one `.bin` file, or every `*.bin` in a directory (sorted by name).
/// Ids are `file.bin:record`.
pub fn read_cifar10(path: impl AsRef<Path>) -> Result<ImageDataset> {
    let path = path.as_ref();
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "bin"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut items = Vec::new();
    for file in &files {
        items.extend(read_file(file)?);
    }
    if items.is_empty() {
        return Err(Error::EmptyDataset { path: path.to_path_buf() });
    }
    Ok(ImageDataset::new(items))
}

fn read_file(path: &Path) -> Result<Vec<ImageItem>> {
    let bytes = crate::bounded::read(path, crate::bounded::MAX_DATA_BYTES)?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(Error::format(
            path,
            FORMAT,
            format!("{} bytes is not a whole number of {RECORD}-byte records", bytes.len()),
        ));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    bytes
        .chunks_exact(RECORD)
        .enumerate()
        .map(|(i, record)| {
            let label = usize::from(record[0]);
            if label > 9 {
                return Err(Error::format(path, FORMAT, format!("record {i} has label {label}")));
            }
            let pixels = record[1..].iter().map(|&b| f32::from(b) / 255.0).collect();
            Ok(ImageItem { id: format!("{name}:{i}"), image: Image::new(3, SIDE, SIDE, pixels)?, label: Some(label) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, value: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(value, RECORD - 1));
        r
    }

    #[test]
    fn reads_records_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data_batch_1.bin"), [record(3, 255), record(9, 0)].concat()).unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), record(1, 51)).unwrap();
        std::fs::write(dir.path().join("readme.html"), "not data").unwrap();
        let ds = read_cifar10(dir.path()).unwrap();
        let labels: Vec<_> = ds.items().iter().map(|i| i.label).collect();
        assert_eq!(labels, vec![Some(3), Some(9), Some(1)]);
        assert_eq!(ds.items()[2].id, "test_batch.bin:0");
        assert!((ds.items()[2].image.get(2, 31, 31) - 0.2).abs() < 1e-6);
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broken.bin");
        let mut bytes = record(0, 1);
        bytes.pop();
        std::fs::write(&file, bytes).unwrap();
        let err = read_cifar10(&file).unwrap_err();
        assert!(err.to_string().contains("broken.bin"), "{err}");
        let bad_label = dir.path().join("label.bin");
        std::fs::write(&bad_label, record(12, 0)).unwrap();
        assert!(read_cifar10(&bad_label).is_err());
    }
}
