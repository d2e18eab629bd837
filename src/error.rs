//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in poisoncam, each case naming what it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// An output could not be written (a full disk, no permission); what was there before is
    /// left whole.
    #[error("cannot write {path}: {source}")]
    Write {
        /// What was written.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// A path that is not a regular file (a FIFO, a socket, a device): never opened for reading,
    /// since a read could block for good or never end.
    #[error("{path} is {kind}, not a regular file; it is not read")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },

    /// A file larger than the most that is read of its kind (it may also have grown while read).
    #[error("{path} holds more than {limit} bytes, the most that is read of such a file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        limit: u64,
    },

    /// A file is not what its format promises (IDX, CIFAR binary, checkpoint).
    #[error("{path} is not a valid {format} file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format expected.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// An image file could not be decoded.
    #[error("cannot decode image {path}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },

    /// Data a system package provides is not installed.
    #[error("{what} not found at {path}; install the Debian package `{package}` (apt-get install {package})")]
    MissingPackage {
        /// The data.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The Debian package that installs it.
        package: &'static str,
    },

    /// A folder or file holds no images.
    #[error("{path} holds no images")]
    EmptyDataset {
        /// The folder or file.
        path: PathBuf,
    },

    /// A stage was given nothing to work on; names the stage.
    #[error("{0} was given no input")]
    NoInput(&'static str),

    /// Pixel values that do not fill the stated shape, or a channel count that is not supported.
    #[error("image has {got} values, but {channels}×{height}×{width} needs {expected}")]
    ImageShape {
        /// Channels stated (or inferred).
        channels: usize,
        /// Rows stated.
        height: usize,
        /// Columns stated.
        width: usize,
        /// Values the shape needs.
        expected: usize,
        /// Values given.
        got: usize,
    },

    /// A setting that cannot work, named in the message.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// One numeric setting out of its range (NaN, negative, zero where a count is needed, …).
    #[error("invalid setting {name} = {value}: must be {expected}")]
    InvalidSetting {
        /// The setting, as a path through the config (`detector.kmeans.k`).
        name: &'static str,
        /// The value given.
        value: String,
        /// The range it must lie in.
        expected: &'static str,
    },

    /// The data holds too few of something a stage needs (a run-time state, not a setting).
    #[error("{stage} needs at least {needed} {what}, and has {got}")]
    TooFew {
        /// The stage.
        stage: &'static str,
        /// What it counts.
        what: &'static str,
        /// How many it needs.
        needed: usize,
        /// How many there are.
        got: usize,
    },

    /// A dataset item changed between two reads of one run.
    #[error("dataset item {index} changed while it was filtered ({what})")]
    ItemChanged {
        /// The item.
        index: usize,
        /// What changed.
        what: &'static str,
    },

    /// The guard could not judge a sample (it is removed: nothing vouches for it).
    #[error("cannot judge the sample: {0}")]
    Unjudged(String),

    /// A dataset returned nothing for an index below its length.
    #[error("dataset item {index} is missing (dataset reports length {len})")]
    MissingItem {
        /// The index asked for.
        index: usize,
        /// The length the dataset reported.
        len: usize,
    },

    /// An item without a label where evaluation needs one.
    #[error("item {index} has no class label, but {needed} needs one")]
    MissingLabel {
        /// The item.
        index: usize,
        /// What needs the label.
        needed: &'static str,
    },

    /// The simulated attack cannot be built as configured.
    #[error("cannot build the attack: {0}")]
    Attack(String),

    /// A cache entry could not be read or written.
    #[error("cache file {path}: {reason}")]
    Cache {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An encoder checkpoint that cannot be read as the ResNet asked for.
    #[error("encoder checkpoint {path}: {problem}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: crate::detect::resnet::problem::CheckpointProblem,
    },

    /// Grad-CAM needs a feature map of at least 2×2 to tell one place from another.
    #[error("the encoder's feature map is {height}×{width} at this input size; Grad-CAM needs at least 2×2")]
    FeatureMapTooSmall {
        /// Rows of the map.
        height: usize,
        /// Columns of the map.
        width: usize,
    },

    /// A shard work folder that does not hold what a phase needs, or holds another run's.
    #[error("shard work folder {path}: {reason}")]
    Work {
        /// The file or folder.
        path: PathBuf,
        /// What is missing or does not agree.
        reason: String,
    },

    /// The shard reduce's engine (Apache DataFusion over Parquet) failed.
    #[error("the shard engine: {0}")]
    Engine(String),

    /// JSON could not be written or read.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write { path: path.into(), source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, format: &'static str, reason: impl Into<String>) -> Self {
        Error::Format { path: path.into(), format, reason: reason.into() }
    }
}
