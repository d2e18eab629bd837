//! The zip half of the read-only pass over a PyTorch checkpoint before burn-store reads it:
//! every entry is held to the size its tensors need before any is inflated, and then inflated
//! once, capped one byte past its declaration, so a zip bomb never inflates. The pickle half
//! is [`super::pickle`].

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::pickle::{scan, TensorUse};
use super::problem::CheckpointProblem;

/// The most bytes of a checkpoint file (a torch zip or safetensors): several times a
/// ResNet-152 with a momentum twin and optimiser state. Also the most its entries inflate to.
pub(super) const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;
/// The most bytes of its pickle (`data.pkl`): a ResNet-152 `state_dict`'s is about 40 KB.
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// The most bytes of any other small entry (`version`, `byteorder`, `.format_version`).
const MAX_SMALL_ENTRY_BYTES: u64 = 1 << 20;

/// Opens a checkpoint: a regular file within [`MAX_CHECKPOINT_BYTES`], or nothing is read (a
/// FIFO would block the first read, a device never end).
pub(super) fn open(path: &Path) -> Result<crate::bounded::Capped<std::fs::File>, CheckpointProblem> {
    crate::bounded::open_capped(path, MAX_CHECKPOINT_BYTES).map_err(|e| match e {
        crate::Error::TooLarge { .. } => CheckpointProblem::limit("bytes in a checkpoint file", MAX_CHECKPOINT_BYTES),
        other => CheckpointProblem::Unreadable(other.to_string()),
    })
}

/// Checks the checkpoint at `path` (a zip, as `torch.save` writes since PyTorch 1.6), reading at
/// most what its entries declare: the pickle is walked, and every entry's declared size is checked
/// against what its tensors need before any is inflated; then each is inflated once, capped at its
/// declared size, so an entry that lies about its size cannot inflate past it.
pub(super) fn check(path: &Path) -> Result<(), CheckpointProblem> {
    let file = open(path)?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| CheckpointProblem::Unreadable(format!("not a whole zip archive ({e}); truncated?")))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pickle_name = names
        .iter()
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .ok_or_else(|| CheckpointProblem::Unreadable("the archive holds no data.pkl".into()))?
        .clone();
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut archive, &pickle_name, MAX_PICKLE_BYTES)?;
    let uses = scan(&pickle)?;
    let needs = storage_needs(&uses)?;
    let mut total = 0u64;
    for name in &names {
        let declared = archive.by_name(name).map(|f| f.size()).unwrap_or(0);
        let expected = match name.strip_prefix(&format!("{prefix}data/")) {
            Some(key) => *needs.get(key).ok_or_else(|| CheckpointProblem::EntrySize {
                entry: name.clone(),
                declared_bytes: declared,
                needed_bytes: 0,
            })?,
            None if *name == pickle_name || name.ends_with('/') => continue,
            None if declared > MAX_SMALL_ENTRY_BYTES => {
                return Err(CheckpointProblem::EntrySize {
                    entry: name.clone(),
                    declared_bytes: declared,
                    needed_bytes: 0,
                })
            }
            None => declared,
        };
        if declared < expected {
            return Err(CheckpointProblem::ShortStorage {
                storage: name.strip_prefix(&format!("{prefix}data/")).unwrap_or(name).to_string(),
                needed_bytes: expected as usize,
                stored_bytes: declared as usize,
            });
        }
        if declared > expected {
            return Err(CheckpointProblem::EntrySize {
                entry: name.clone(),
                declared_bytes: declared,
                needed_bytes: expected,
            });
        }
        total = total.saturating_add(declared);
        if total > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointProblem::limit("bytes in a checkpoint's entries, inflated", MAX_CHECKPOINT_BYTES));
        }
    }
    for name in names.iter().filter(|n| !n.ends_with('/')) {
        let declared = archive.by_name(name).map(|f| f.size()).unwrap_or(0);
        let got = read_entry_len(&mut archive, name, declared)?;
        if got != declared {
            return Err(CheckpointProblem::Inflates {
                entry: name.clone(),
                declared_bytes: declared,
                inflated_bytes: got,
            });
        }
    }
    let missing = needs.keys().find(|key| !names.contains(&format!("{prefix}data/{key}")));
    if let Some(key) = missing {
        return Err(CheckpointProblem::ShortStorage {
            storage: key.clone(),
            needed_bytes: needs[key] as usize,
            stored_bytes: 0,
        });
    }
    Ok(())
}

/// Bytes each storage must hold: its declared length (or, where it names none, the most any of
/// its tensors reads) times its element size; a tensor that reads past a declared length is
/// refused here.
fn storage_needs(uses: &[TensorUse]) -> Result<HashMap<String, u64>, CheckpointProblem> {
    let mut needs: HashMap<String, u64> = HashMap::new();
    for u in uses {
        let declared = u.declared.unwrap_or(u.needed);
        let bytes = (declared as u64).checked_mul(u.element as u64);
        if u.needed > declared || bytes.is_none() {
            return Err(CheckpointProblem::ShortStorage {
                storage: u.key.clone(),
                needed_bytes: u.needed.saturating_mul(u.element),
                stored_bytes: declared.saturating_mul(u.element),
            });
        }
        let need = needs.entry(u.key.clone()).or_default();
        *need = (*need).max(bytes.unwrap_or(u64::MAX));
    }
    Ok(needs)
}

/// One entry, whole, of at most `cap` bytes however much it would inflate to.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    cap: u64,
) -> Result<Vec<u8>, CheckpointProblem> {
    let unreadable = |e: &dyn std::fmt::Display| CheckpointProblem::Unreadable(format!("{name}: {e}"));
    let entry = archive.by_name(name).map_err(|e| unreadable(&e))?;
    if entry.size() > cap {
        return Err(CheckpointProblem::EntrySize {
            entry: name.into(),
            declared_bytes: entry.size(),
            needed_bytes: cap,
        });
    }
    let mut bytes = Vec::new();
    crate::bounded::Capped::new(entry, cap).read_to_end(&mut bytes).map_err(|e| unreadable(&e))?;
    Ok(bytes)
}

/// How many bytes an entry inflates to, counted up to one past `declared` and never kept.
fn read_entry_len<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    declared: u64,
) -> Result<u64, CheckpointProblem> {
    let entry = archive.by_name(name).map_err(|e| CheckpointProblem::Unreadable(format!("{name}: {e}")))?;
    std::io::copy(&mut entry.take(declared.saturating_add(1)), &mut std::io::sink())
        .map_err(|e| CheckpointProblem::Unreadable(format!("{name}: {e}")))
}
