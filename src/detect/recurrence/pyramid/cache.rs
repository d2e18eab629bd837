//! The index's cache: the entries of every indexed chunk of images, appended as each chunk is
//! done, so that a killed run resumes after its last whole chunk and a finished index is not
//! built again.
//!
//! An entry is the file `root/recurrence-KEY.idx`, where the key hashes the index settings and
//! every image's content fingerprint. It is a run of records, each `magic, first row, rows,
//! windows, entry count, entries, checksum`; a kill mid-append leaves a torn last record, which
//! the checksum rejects and the next append overwrites. Records must follow each other from row
//! 0, so a file that does not fit the rows it is opened for is read as empty.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::index::Entry;
use crate::durable::FileLock;
use crate::error::{Error, Result};
use crate::image::Fnv;

const MAGIC: u32 = 0x7063_6931; // "pci1"
const HEADER: usize = 4 + 4 + 4 + 8 + 4;

/// What a cache entry gave back: the rows it covers from 0, their entries and windows.
#[derive(Debug, Default, PartialEq)]
pub struct Resumed {
    pub rows: usize,
    pub entries: Vec<Entry>,
    pub windows: usize,
}

/// One open cache entry, locked against a second run appending to it.
pub struct IndexCache {
    file: File,
    path: PathBuf,
    /// Where the next record goes: the end of the last whole record.
    end: u64,
    _lock: FileLock,
}

fn cache_error(path: &Path, reason: impl ToString) -> Error {
    Error::Cache { path: path.to_path_buf(), reason: reason.to_string() }
}

/// The key of an index over images with these fingerprints under these settings.
pub fn key(settings: &str, fingerprints: &[u64]) -> String {
    let mut hash = Fnv::default();
    hash.write(settings.as_bytes());
    for f in fingerprints {
        hash.write(&f.to_le_bytes());
    }
    format!("recurrence-{:016x}", hash.0)
}

impl IndexCache {
    /// Opens (or creates) the entry `key` under `root` and reads the whole records it holds for
    /// `rows` images; waits while another run holds it.
    pub fn open(root: &Path, key: &str, rows: usize) -> Result<(IndexCache, Resumed)> {
        let path = root.join(format!("{key}.idx"));
        let lock = FileLock::acquire(&root.join(format!("{key}.lock")))?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
        let (resumed, end) = parse(&bytes, rows);
        Ok((IndexCache { file, path, end: end as u64, _lock: lock }, resumed))
    }

    /// Appends the record of rows `first..first + count` and syncs it, so that it survives a kill
    /// once this returns.
    pub fn append(&mut self, first: usize, count: usize, windows: usize, entries: &[Entry]) -> Result<()> {
        let record = encode(first, count, windows, entries);
        self.file.seek(SeekFrom::Start(self.end)).map_err(|e| Error::io(&self.path, e))?;
        self.file.write_all(&record).map_err(|e| Error::io(&self.path, e))?;
        self.end += record.len() as u64;
        // Drops a torn tail of an earlier run, which would otherwise follow this record.
        self.file.set_len(self.end).map_err(|e| Error::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| cache_error(&self.path, e))
    }
}

fn encode(first: usize, count: usize, windows: usize, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 16 * entries.len() + 8);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(first as u32).to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&(windows as u64).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        for v in [e.key, e.image, e.place, e.signature] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut hash = Fnv::default();
    hash.write(&out);
    out.extend_from_slice(&hash.0.to_le_bytes());
    out
}

/// The whole records of `bytes` that follow each other from row 0 within `rows`, and where the
/// last of them ends.
fn parse(bytes: &[u8], rows: usize) -> (Resumed, usize) {
    let mut resumed = Resumed::default();
    let mut at = 0;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    while bytes.len() >= at + HEADER {
        let head = &bytes[at..];
        let (first, count) = (u32_at(head, 4) as usize, u32_at(head, 8) as usize);
        let windows = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes")) as usize;
        let n = u32_at(head, 20) as usize;
        let len = HEADER + 16 * n + 8;
        if u32_at(head, 0) != MAGIC || first != resumed.rows || first + count > rows || head.len() < len {
            break;
        }
        let mut hash = Fnv::default();
        hash.write(&head[..len - 8]);
        if hash.0.to_le_bytes() != head[len - 8..len] {
            break;
        }
        let entries = head[HEADER..len - 8].chunks_exact(16).map(|e| Entry {
            key: u32_at(e, 0),
            image: u32_at(e, 4),
            place: u32_at(e, 8),
            signature: u32_at(e, 12),
        });
        let before = resumed.entries.len();
        resumed.entries.extend(entries);
        if resumed.entries[before..].iter().any(|e| (e.image as usize) < first || e.image as usize >= first + count) {
            resumed.entries.truncate(before);
            break;
        }
        resumed.rows += count;
        resumed.windows += windows;
        at += len;
    }
    (resumed, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(rows: std::ops::Range<u32>) -> Vec<Entry> {
        rows.map(|r| Entry { key: r * 7, image: r, place: r + 1, signature: !r }).collect()
    }

    #[test]
    fn records_come_back_whole_and_a_torn_tail_is_dropped_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut cache, resumed) = IndexCache::open(dir.path(), "k", 10).unwrap();
            assert_eq!(resumed, Resumed::default());
            cache.append(0, 4, 40, &entries(0..4)).unwrap();
            cache.append(4, 3, 30, &entries(4..7)).unwrap();
        }
        let path = dir.path().join("k.idx");
        let whole = std::fs::read(&path).unwrap();
        // A kill in the middle of the second record.
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        let (mut cache, resumed) = IndexCache::open(dir.path(), "k", 10).unwrap();
        assert_eq!((resumed.rows, resumed.windows, resumed.entries), (4, 40, entries(0..4)));
        cache.append(4, 6, 60, &entries(4..10)).unwrap();
        drop(cache);
        let (_, resumed) = IndexCache::open(dir.path(), "k", 10).unwrap();
        assert_eq!((resumed.rows, resumed.windows, resumed.entries), (10, 100, entries(0..10)));
    }

    #[test]
    fn a_record_beyond_the_rows_or_out_of_order_is_not_read() {
        let bytes = [encode(0, 4, 1, &entries(0..4)), encode(4, 4, 1, &entries(4..8))].concat();
        assert_eq!(parse(&bytes, 6).0.rows, 4, "fewer rows than the file covers");
        let swapped = [encode(4, 4, 1, &entries(4..8)), encode(0, 4, 1, &entries(0..4))].concat();
        assert_eq!(parse(&swapped, 8).0.rows, 0);
        let stray = encode(0, 2, 1, &entries(0..3));
        assert_eq!(parse(&stray, 8).0.rows, 0, "an entry outside its record's rows");
        let mut flipped = bytes.clone();
        flipped[HEADER + 3] ^= 1;
        assert_eq!(parse(&flipped, 8).0.rows, 0);
    }

    #[test]
    fn the_key_changes_with_the_settings_and_with_any_image() {
        let base = key("a", &[1, 2, 3]);
        assert_eq!(base, key("a", &[1, 2, 3]));
        assert_ne!(base, key("b", &[1, 2, 3]));
        assert_ne!(base, key("a", &[1, 2, 4]));
        assert_ne!(base, key("a", &[1, 2]));
    }
}
