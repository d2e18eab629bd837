//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in poisoncam, each case naming what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a valid {format} file: {reason}")]
    Format { path: PathBuf, format: &'static str, reason: String },

    #[error("cannot decode image {path}: {reason}")]
    Decode { path: PathBuf, reason: String },

    #[error("{what} not found at {path}; install the Debian package `{package}` (apt-get install {package})")]
    MissingPackage { what: &'static str, path: PathBuf, package: &'static str },

    #[error("{path} holds no images")]
    EmptyDataset { path: PathBuf },

    #[error("{0} was given no input")]
    NoInput(&'static str),

    #[error("image has {got} values, but {channels}×{height}×{width} needs {expected}")]
    ImageShape { channels: usize, height: usize, width: usize, expected: usize, got: usize },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("dataset item {index} is missing (dataset reports length {len})")]
    MissingItem { index: usize, len: usize },

    #[error("item {index} has no class label, but {needed} needs one")]
    MissingLabel { index: usize, needed: &'static str },

    #[error("cannot build the attack: {0}")]
    Attack(String),

    #[error("cache file {path}: {reason}")]
    Cache { path: PathBuf, reason: String },

    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, format: &'static str, reason: impl Into<String>) -> Self {
        Error::Format { path: path.into(), format, reason: reason.into() }
    }
}
