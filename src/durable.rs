//! Files that survive a crash or a kill: whole or absent, never half-written, and a lock for work
//! that two processes must not do at once.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a synced temporary file in the same folder and a rename, then
/// syncs the folder, so that after a crash `path` holds the old contents or the new, whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::write(dir, e))?;
    // A temporary file is private (0600); the outputs are meant to be read by others, as a file
    // written in place would be.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| Error::write(path, e))?;
    }
    file.write_all(bytes).map_err(|e| Error::write(path, e))?;
    file.as_file().sync_all().map_err(|e| Error::write(path, e))?;
    file.persist(path).map_err(|e| Error::write(path, e.error))?;
    sync_dir(dir)
}

/// Flushes a file written by someone else (burn's recorder) to the disk.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))
}

/// Makes renames and new names inside `dir` durable (a no-op where folders cannot be opened).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(f) => f.sync_all().or_else(|e| if cfg!(unix) { Err(Error::io(dir, e)) } else { Ok(()) }),
        Err(_) => Ok(()),
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// An exclusive advisory lock on a file, held until dropped; a second process asking for the
/// same lock waits. The lock file itself is left in place (removing it would race).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for and takes the lock at `path`.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(parent_of(path)).map_err(|e| Error::io(parent_of(path), e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.lock().map_err(|e| Error::io(path, e))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn an_atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"first, longer contents").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "readable by others, like a file written in place");
        }
    }

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.lock");
        let first = FileLock::acquire(&path).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (path, released) = (path.clone(), released.clone());
            std::thread::spawn(move || {
                let _second = FileLock::acquire(&path).unwrap();
                released.load(Ordering::SeqCst)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        assert!(waiter.join().unwrap(), "the second lock was granted only after the first was dropped");
        assert!(FileLock::acquire(&path).is_ok(), "free again once both are dropped");
    }
}
