//! Known poisons by their bytes: a list of SHA-256 hashes (`sha256sum` output works as it is:
//! the first field of each line) that teams share. A file whose stored bytes hash to a listed
//! value is removed, whatever its pixels say; a re-encoded copy is not this signal's to catch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::detect::signal::{Built, Registration};
use crate::detect::signal::{Finding, Fitted, Sample, Screen, Signal, SignalInput};
use crate::detect::{DetectorConfig, Stage};
use crate::durable::write_atomic;
use crate::error::{Error, Result};

/// Its line in [`crate::detect::registry`]: on when the config names a list.
pub const REGISTRATION: Registration = Registration { name: "deny", build, load };

fn build(config: &DetectorConfig) -> Built<'_> {
    match &config.deny {
        Some(path) => Ok(Some(Box::new(DenySignal::read(path)?))),
        None => Ok(None),
    }
}

fn load(dir: &Path) -> Result<Box<dyn Screen>> {
    Ok(Box::new(DenyScreen::load(dir)?))
}

/// The listed hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct DenyList {
    hashes: BTreeSet<[u8; 32]>,
}

const FORMAT: &str = "SHA-256 deny list";

impl DenyList {
    /// Reads `path`: one hash a line as 64 hex digits, first field (what follows is ignored, so
    /// `sha256sum`'s `HASH  NAME` lines work, and its `\HASH` for escaped names); blank lines and
    /// lines starting with `#` are skipped. A line that holds no hash is an error naming it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::bounded::read_text(path)?;
        Self::parse(&text).map_err(|reason| Error::format(path, FORMAT, reason))
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut hashes = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let Some(field) = line.split_whitespace().next() else { continue };
            if field.starts_with('#') {
                continue;
            }
            let field = field.strip_prefix('\\').unwrap_or(field);
            let hash = parse_hex(field).ok_or_else(|| format!("line {}: {field:?} is not 64 hex digits", n + 1))?;
            hashes.insert(hash);
        }
        if hashes.is_empty() {
            return Err("no hash in the list".into());
        }
        Ok(DenyList { hashes })
    }

    /// Hashes listed.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether none is listed (never, for a list that was read).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.hashes.contains(digest)
    }
}

fn parse_hex(field: &str) -> Option<[u8; 32]> {
    let bytes = field.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

fn to_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The deny signal: the list at a path, read when the signal is built.
pub struct DenySignal {
    list: DenyList,
    path: PathBuf,
}

impl DenySignal {
    /// The signal of the list at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        Ok(DenySignal { list: DenyList::read(path)?, path: path.to_path_buf() })
    }
}

/// What the deny signal looked at.
#[derive(serde::Serialize)]
struct Summary<'a> {
    list: &'a Path,
    listed: usize,
    hashed: usize,
}

impl Signal for DenySignal {
    fn name(&self) -> &'static str {
        "deny"
    }

    fn fit(&self, input: &SignalInput) -> Result<Fitted> {
        let screen = DenyScreen { list: self.list.clone() };
        let mut findings = Vec::with_capacity(input.rows.len());
        let mut hashed = 0;
        for row in 0..input.rows.len() {
            let digest = input.rows.digest(row)?;
            hashed += usize::from(digest.is_some());
            findings.push(digest.and_then(|d| screen.finding(&d)));
        }
        // A list that can match nothing must not pass for a clean result.
        if hashed == 0 {
            return Err(Error::Config(
                "the deny list matches files' bytes, and these items have none (images in memory, IDX or CIFAR records)"
                    .into(),
            ));
        }
        let summary = Summary { list: &self.path, listed: self.list.len(), hashed };
        Ok(Fitted { findings, screen: Box::new(screen), summary: serde_json::to_value(summary)? })
    }

    fn fit_screen(&self, _input: &SignalInput) -> Result<(Box<dyn Screen>, serde_json::Value)> {
        // The list is the screen; each shard's judge hashes its own files.
        let summary = Summary { list: &self.path, listed: self.list.len(), hashed: 0 };
        Ok((Box::new(DenyScreen { list: self.list.clone() }), serde_json::to_value(summary)?))
    }
}

/// The list, as a screen of new samples' bytes.
#[derive(Clone, Debug)]
pub struct DenyScreen {
    list: DenyList,
}

const FILE: &str = "hashes.txt";

impl DenyScreen {
    /// The screen saved in `dir` by [`Screen::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(DenyScreen { list: DenyList::read(&dir.join(FILE))? })
    }

    fn finding(&self, digest: &[u8; 32]) -> Option<Finding> {
        self.list.contains(digest).then(|| Finding::whole(Stage::Deny, 1.0))
    }
}

impl Screen for DenyScreen {
    fn name(&self) -> &'static str {
        "deny"
    }

    fn is_armed(&self) -> bool {
        !self.list.is_empty()
    }

    fn needs_digest(&self) -> bool {
        true
    }

    fn judge(&self, sample: &Sample, _working: [usize; 2]) -> Option<Finding> {
        sample.digest.as_ref().and_then(|d| self.finding(d))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let text: String = self.list.hashes.iter().map(|h| format!("{}\n", to_hex(h))).collect();
        write_atomic(&dir.join(FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn sha256sum_output_comments_and_escaped_names_parse() {
        let text = format!("# known poisons\n{A}  train/cat/001.png\n\n\\{}  dir/odd\\nname.jpg\n", A.to_uppercase());
        let list = DenyList::parse(&text).unwrap();
        assert_eq!(list.len(), 1, "the same hash in either case is one");
        assert_eq!(to_hex(list.hashes.first().unwrap()), A);
    }

    #[test]
    fn a_line_without_a_hash_is_named() {
        let err = DenyList::parse(&format!("{A}  ok.png\nnot-a-hash  bad.png\n")).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(DenyList::parse("# nothing\n\n").is_err(), "an empty list would deny nothing silently");
    }
}
