//! Reads that end. Only regular files are opened: a FIFO would block the scan for good and a
//! device (`/dev/urandom`) never ends, so both are refused by their kind before any read. Every
//! read is capped in bytes, so a file that keeps growing is an error, not an allocation.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// The most bytes a dataset file read whole (IDX, gzipped or not, and CIFAR-10 binary) may hold,
/// before and after decompression: 1 GiB of 8-bit pixels is 4 GiB as the f32 images it becomes.
pub(crate) const MAX_DATA_BYTES: u64 = 1 << 30;

/// The most a text input (a `--config` JSON, a file list, a `--keep` list, a guard's JSON) may hold.
pub(crate) const MAX_TEXT_BYTES: u64 = 256 << 20;

/// What a path that is not a regular file is, in words, or `None` for a regular file. Links are
/// followed, so a link to `/dev/urandom` is a character device.
pub(crate) fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_char_device() {
            return Some("a character device");
        }
        if kind.is_block_device() {
            return Some("a block device");
        }
    }
    Some("not a regular file")
}

/// Opens `path` for reading if it is a regular file. The open itself does not block (a FIFO
/// swapped in after a listing would otherwise wait for a writer for ever), and the kind is
/// checked on the opened handle, so a file replaced between the check and the open is caught.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if let Some(kind) = special_kind(&meta) {
        return Err(Error::NotAFile { path: path.to_path_buf(), kind });
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    match special_kind(&meta) {
        Some(kind) => Err(Error::NotAFile { path: path.to_path_buf(), kind }),
        None => Ok(file),
    }
}

/// Opens a regular file for a read of at most `limit` bytes: one larger already is refused here,
/// one that grows past it while read fails at the limit.
pub(crate) fn open_capped(path: &Path, limit: u64) -> Result<Capped<File>> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > limit {
        return Err(Error::TooLarge { path: path.to_path_buf(), limit });
    }
    Ok(Capped::new(file, limit))
}

/// Reads a whole regular file of at most `limit` bytes.
pub(crate) fn read(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut reader = open_capped(path, limit)?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| capped_error(path, limit, e))?;
    Ok(bytes)
}

/// SHA-256 of a regular file of at most `limit` bytes, streamed (memory stays flat).
pub(crate) fn sha256(path: &Path, limit: u64) -> Result<[u8; 32]> {
    use sha2::Digest;
    let mut file = open_capped(path, limit)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| capped_error(path, limit, e))?;
    Ok(hasher.finalize().into())
}

/// A fast 64-bit hash of a regular file of at most `limit` bytes, streamed: it tells one stored
/// file from another for a cache key, where SHA-256's strength is not needed.
pub(crate) fn fingerprint(path: &Path, limit: u64) -> Result<u64> {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut file = open_capped(path, limit)?;
    let mut lanes = [0x5bd1_e995u64, 1, 2, 3];
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        // The buffer is filled whole before it is hashed, so the value does not depend on how
        // the reads split the file.
        let mut got = 0;
        while got < buffer.len() {
            match file.read(&mut buffer[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(capped_error(path, limit, e)),
            }
        }
        for (i, word) in buffer[..got].chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..word.len()].copy_from_slice(word);
            let lane = &mut lanes[i % 4];
            *lane = (*lane ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
        }
        total += got as u64;
        if got < buffer.len() {
            break;
        }
    }
    Ok(lanes.iter().fold(total.wrapping_mul(K), |h, &l| (h ^ l).wrapping_mul(K).rotate_left(31)))
}

/// Reads a whole regular UTF-8 file of at most [`MAX_TEXT_BYTES`].
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read(path, MAX_TEXT_BYTES)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")))
    })
}

/// The crate's error for an I/O error met inside a capped read: the cap's own error becomes
/// [`Error::TooLarge`].
pub(crate) fn capped_error(path: &Path, limit: u64, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<PastTheCap>()) {
        Error::TooLarge { path: path.to_path_buf(), limit }
    } else {
        Error::io(path, e)
    }
}

/// The marker inside the `io::Error` a [`Capped`] reader returns at its limit.
#[derive(Debug)]
struct PastTheCap(u64);

impl std::fmt::Display for PastTheCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the file holds more than {} bytes, the most that is read", self.0)
    }
}

impl std::error::Error for PastTheCap {}

/// A reader that fails, rather than reads on, once a read would pass `limit` bytes from the
/// start; seeking is passed through, so decoders that seek (TIFF, WebP) work as on the file.
#[derive(Debug)]
pub(crate) struct Capped<R> {
    inner: R,
    position: u64,
    limit: u64,
}

impl<R> Capped<R> {
    /// Caps `inner`, read from its start, at `limit` bytes.
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self { inner, position: 0, limit }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.limit.saturating_sub(self.position);
        if left == 0 {
            // Anything more is past the cap; nothing more is a clean end.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(PastTheCap(self.limit))),
            };
        }
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Capped<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.position = self.inner.seek(pos)?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_past_its_cap_fails_and_one_at_its_cap_ends() {
        let mut exact = Capped::new(std::io::Cursor::new(vec![7u8; 10]), 10);
        let mut all = Vec::new();
        assert_eq!(exact.read_to_end(&mut all).unwrap(), 10);
        let mut over = Capped::new(std::io::Cursor::new(vec![7u8; 11]), 10);
        let err = over.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(capped_error(Path::new("x"), 10, err).to_string().contains("more than 10 bytes"));
    }

    #[test]
    fn a_seek_back_lets_a_capped_reader_read_again() {
        let mut r = Capped::new(std::io::Cursor::new((0u8..8).collect::<Vec<_>>()), 8);
        let mut buf = [0u8; 8];
        r.read_exact(&mut buf).unwrap();
        r.seek(SeekFrom::Start(2)).unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(two, [2, 3]);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_and_a_device_are_refused_by_kind_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a.png");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let link = dir.path().join("rand.jpg");
        std::os::unix::fs::symlink("/dev/urandom", &link).unwrap();
        for (path, kind) in [(&fifo, "FIFO"), (&link, "character device")] {
            match read(path, 1 << 20) {
                Err(Error::NotAFile { kind: k, .. }) => assert!(k.contains(kind), "{k}"),
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        std::fs::write(&path, vec![b' '; 100]).unwrap();
        assert!(matches!(read(&path, 99), Err(Error::TooLarge { limit: 99, .. })));
        assert_eq!(read(&path, 100).unwrap().len(), 100);
    }
}
