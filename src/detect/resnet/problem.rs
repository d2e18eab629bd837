//! Why a checkpoint cannot be read: a type of its own, on the ground floor, so that the crate's
//! `Error` can name it without depending on the reader.

/// Why a checkpoint cannot be read as the ResNet asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// The file cannot be read as a checkpoint at all (truncated, not a zip, a broken pickle).
    #[error("{0}")]
    Unreadable(String),
    /// Its pickle names a global that is not a tensor rebuilder: code, which is never run.
    #[error("the pickle names `{0}`, which is not a tensor rebuilder; refused without running anything")]
    RefusedGlobal(String),
    /// A tensor's storage holds fewer bytes than the tensor reads (it would load as zeros).
    #[error("storage `{storage}` holds {stored_bytes} bytes, its tensors need {needed_bytes}")]
    ShortStorage {
        /// The storage's key in the archive.
        storage: String,
        /// What its tensors read.
        needed_bytes: usize,
        /// What the archive holds.
        stored_bytes: usize,
    },
    /// An archive entry whose declared size is not what its tensors need: refused before it is
    /// inflated (a zip bomb), or an entry no tensor reads.
    #[error("archive entry `{entry}` holds {declared_bytes} bytes where {needed_bytes} are expected; refused before it is read")]
    EntrySize {
        /// The entry's name in the archive.
        entry: String,
        /// The size it declares.
        declared_bytes: u64,
        /// What its tensors need (0: no tensor reads it).
        needed_bytes: u64,
    },
    /// An archive entry that inflates to another size than it declares (counted only up to one
    /// byte past its declaration, so a lying entry is never inflated further).
    #[error("archive entry `{entry}` declares {declared_bytes} bytes but inflates to {inflated_bytes}{}; refused", if inflated_bytes > declared_bytes { " or more" } else { "" })]
    Inflates {
        /// The entry's name in the archive.
        entry: String,
        /// The size it declares.
        declared_bytes: u64,
        /// What it inflated to, counted up to one past the declaration.
        inflated_bytes: u64,
    },
    /// The file goes past one of the reader's limits (its size, the pickle's nesting or length).
    #[error("more than {limit} {what}; refused")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The most allowed.
        limit: u64,
    },
    /// No torchvision ResNet backbone is in the file.
    #[error("no torchvision ResNet backbone: {0}")]
    NotResNet(String),
    /// More than one backbone, and no `--key-prefix` picked one.
    #[error("{} backbones ({}); pick one with --key-prefix", candidates.len(), candidates.join(", "))]
    AmbiguousPrefix {
        /// The prefixes a backbone sits under.
        candidates: Vec<String>,
    },
    /// The `--key-prefix` given matches no backbone.
    #[error("no backbone under the prefix `{wanted}`; the file has: {}", candidates.join(", "))]
    PrefixNotFound {
        /// The prefix asked for.
        wanted: String,
        /// The prefixes a backbone sits under (`` for none).
        candidates: Vec<String>,
    },
    /// The architecture asked for is not the one in the file.
    #[error("--arch {given} was asked for, but the file holds {found}")]
    ArchMismatch {
        /// What was asked for.
        given: String,
        /// What the keys show.
        found: String,
    },
    /// The stem asked for does not fit the first convolution, or a 3×3 one was not named.
    #[error("{0}")]
    Stem(String),
    /// A tensor the architecture needs is not in the file.
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    /// A tensor has another shape than the architecture needs.
    #[error("tensor `{key}` has shape {found:?}, the architecture needs {expected:?}")]
    Shape {
        /// Its key in the file.
        key: String,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds something other than floats, or values that are not finite.
    #[error("tensor `{key}`: {reason}")]
    Values {
        /// Its key in the file.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl CheckpointProblem {
    /// The problem of a value past one of the reader's limits.
    pub(crate) fn limit(what: &'static str, limit: u64) -> Self {
        CheckpointProblem::Limit { what, limit }
    }
}
