//! Where each phase writes in the work folder, and the plan every phase checks it shares.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::ImageFile;
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::filter::PoisonFilterConfig;

/// Shard K of N (`K/N`, K from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// Which shard.
    pub k: usize,
    /// How many.
    pub n: usize,
}

impl FromStr for ShardSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("--shard {s}: expected K/N with 0 <= K < N, as 3/8"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if n == 0 || k >= n {
            return Err(bad());
        }
        Ok(ShardSpec { k, n })
    }
}

impl ShardSpec {
    /// Its items of `items`: a contiguous, stable block of the listing.
    pub fn items(&self, items: usize) -> std::ops::Range<usize> {
        self.k * items / self.n..(self.k + 1) * items / self.n
    }
}

/// What every phase of one run shares: checked by each, so that shards of different listings
/// or settings are never merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The filter's settings.
    pub config: PoisonFilterConfig,
    /// Items in the listing.
    pub items: usize,
    /// SHA-256 of the listing's ids, one a line.
    pub listing: String,
    /// Shards the listing is split into.
    pub shards: usize,
    /// Key partitions of the index rows.
    pub partitions: usize,
}

impl Plan {
    /// The plan of `files` split `shards` ways.
    pub fn new(config: &PoisonFilterConfig, files: &[ImageFile], shards: usize, partitions: usize) -> Self {
        let mut hash = Sha256::new();
        for f in files {
            hash.update(f.id.as_bytes());
            hash.update(b"\n");
        }
        let listing = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Plan { config: config.clone(), items: files.len(), listing, shards, partitions }
    }

    /// Records this plan in `work`, or checks it against the one there.
    pub fn record(&self, work: &Work) -> Result<()> {
        let path = work.plan();
        if path.exists() {
            let there = Plan::read(work)?;
            return self.agrees(&there, &path);
        }
        write_atomic(&path, &serde_json::to_vec_pretty(self)?)
    }

    /// The plan recorded in `work`.
    pub fn read(work: &Work) -> Result<Self> {
        let path = work.plan();
        let text = crate::bounded::read_text(&path)?;
        serde_json::from_str(&text).map_err(|e| Error::format(&path, "poisoncam shard plan", e.to_string()))
    }

    /// Whether `there` (read from `path`) is this plan; which part differs, if not.
    pub fn agrees(&self, there: &Plan, path: &Path) -> Result<()> {
        let differs = |what: &str| {
            Err(Error::Work { path: path.to_path_buf(), reason: format!("another run's plan: its {what} differs") })
        };
        if there.listing != self.listing || there.items != self.items {
            return differs("listing");
        }
        if there.shards != self.shards || there.partitions != self.partitions {
            return differs("shard or partition count");
        }
        if there.config != self.config {
            return differs("configuration");
        }
        Ok(())
    }
}

/// The work folder's files.
pub struct Work {
    root: PathBuf,
}

impl Work {
    /// The work folder at `root`.
    pub fn at(root: &Path) -> Self {
        Work { root: root.to_path_buf() }
    }

    /// The work folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run's plan.
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.json")
    }

    /// Key partition `p` of the index rows: a folder of Parquet files.
    pub fn partition(&self, p: usize) -> PathBuf {
        self.root.join("rows").join(format!("p={p:04}"))
    }

    /// Part `j` of shard `k`'s rows in key partition `p`.
    pub fn rows_file(&self, p: usize, k: usize, j: usize) -> PathBuf {
        self.partition(p).join(format!("s{k:05}-{j:05}.parquet"))
    }

    /// Part `j` of shard `k`'s images: sizes, ids and measurements.
    pub fn images_file(&self, k: usize, j: usize) -> PathBuf {
        self.root.join("images").join(format!("s{k:05}-{j:05}.parquet"))
    }

    /// Written last for part `j` of shard `k`: what it indexed.
    pub fn part_done(&self, k: usize, j: usize) -> PathBuf {
        self.root.join("parts").join(format!("s{k:05}-{j:05}.json"))
    }

    /// Written when shard `k` has indexed every part.
    pub fn indexed(&self, k: usize) -> PathBuf {
        self.root.join("indexed").join(format!("s{k:05}.json"))
    }

    /// The cores the reduce verifies (`cores.json`, written last) and, per shard, the windows
    /// its images hold (`wanted/`).
    pub fn cores(&self) -> PathBuf {
        self.root.join("cores")
    }

    /// The windows of the cores that shard `k`'s images hold.
    pub fn wanted_file(&self, k: usize) -> PathBuf {
        self.cores().join("wanted").join(format!("s{k:05}.parquet"))
    }

    /// Core partition `p` of the cut windows: a folder of Parquet files.
    pub fn cut_partition(&self, p: usize) -> PathBuf {
        self.root.join("cut").join(format!("p={p:04}"))
    }

    /// Part `j` of shard `k`'s cut windows in core partition `p`.
    pub fn cut_file(&self, p: usize, k: usize, j: usize) -> PathBuf {
        self.cut_partition(p).join(format!("s{k:05}-{j:05}.parquet"))
    }

    /// Part `j` of the thumbnails of shard `k`'s images that were cut.
    pub fn thumbs_file(&self, k: usize, j: usize) -> PathBuf {
        self.root.join("cut").join("thumbs").join(format!("s{k:05}-{j:05}.parquet"))
    }

    /// The folder of every shard's thumbnails.
    pub fn thumbs(&self) -> PathBuf {
        self.root.join("cut").join("thumbs")
    }

    /// Written last for part `j` of shard `k`'s cut (or, without `j`, when all of it is cut).
    pub fn cut_done(&self, k: usize, j: Option<usize>) -> PathBuf {
        let name = match j {
            Some(j) => format!("s{k:05}-{j:05}.json"),
            None => format!("s{k:05}.json"),
        };
        self.root.join("cut").join("done").join(name)
    }

    /// The reduce's decisions.
    pub fn reduced(&self) -> PathBuf {
        self.root.join("reduce")
    }

    /// Shard `k`'s judgements.
    pub fn judged(&self, k: usize) -> PathBuf {
        self.root.join("judged").join(format!("s{k:05}.json"))
    }

    /// A file at the work folder's top.
    pub fn root_file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A JSON record a phase wrote, read back.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path, what: &str) -> Result<T> {
        if !path.exists() {
            return Err(Error::Work { path: path.to_path_buf(), reason: format!("no {what} yet") });
        }
        let text = crate::bounded::read_text(path)?;
        serde_json::from_str(&text).map_err(|e| Error::format(path, "poisoncam shard record", e.to_string()))
    }
}

/// The Parquet files of `dir`, in name order (none where it does not exist).
pub(super) fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}
