//! The scan past one machine: phases, each a process that may run anywhere the images and
//! one work folder are (docs/sharding.md).
//!
//! 1. [`index`] (a map): shard K of N decodes its share of the listing once, writes the
//!    recurrence index's rows as Parquet partitioned by key hash, and each image's size and the
//!    other signals' measurements.
//! 2. [`reduce`]: the index's bucket counts and the rows of the buckets that can hold a core, as
//!    SQL on Apache DataFusion, one key partition at a time under a memory limit; the cores,
//!    ranked and pruned as one scan's, are written for the shards to cut.
//! 3. [`cut`] (a map): each shard cuts the cores' windows from its own images; the reduce (run
//!    again, or cutting the shards that have not itself) judges the cores from the cut windows
//!    one core partition at a time, as one scan judges them, and every signal's screen is fitted
//!    from the stored measurements. Writes the decisions.
//! 4. [`judge`] (a map): each shard's images judged by those decisions, as one scan's fit judges
//!    them.
//! 5. [`merge`]: one report, removal log and kept lists, as `scan` writes them.
//!
//! One scan and the phases end in the same functions (the cores of a bucket, their
//! verification, each signal's screen), so they remove the same images with the same boxes.
//! Masking does not run in shards: it needs every image's embedding in one clustering.

mod cores;
mod cut;
mod cut_tables;
mod engine;
mod index;
mod judge;
mod layout;
mod merge;
mod reduce;
mod rows;
mod tables;
mod verify;

pub use cores::ReduceLimits;
pub use cut::{cut, Cut};
pub use index::{index, Indexed};
pub use judge::{judge, Judged};
pub use layout::{Plan, ShardSpec};
pub use merge::{merge, Merged};
pub use reduce::{reduce, Reduced};

/// Key partitions of the index rows unless asked otherwise: many more than machines, so that
/// the reduce holds one small partition at a time.
pub const DEFAULT_PARTITIONS: usize = 64;

/// Items a shard indexes and records as one part: the unit a killed index resumes from.
pub const PART_ITEMS: usize = 1024;

/// An error of DataFusion, Arrow or Parquet, as the crate's.
fn engine_error(e: impl std::fmt::Display) -> crate::error::Error {
    crate::error::Error::Engine(e.to_string())
}
