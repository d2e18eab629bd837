//! The masking signal (PoisonCAM, docs/design.md §3.3–§3.5), every part in one room: the threat
//! model's embeddings are clustered ([`cluster`]), a few probes of every cluster are localised
//! ([`localize`], through [`activation`]), the clusters whose located patches pass the paste test
//! ([`paste`]) are kept and searched, and the poison classifier ([`classify`]) sweeps the rest.
//! `fit` is the policy that runs them in that order; [`Judge`] applies one [`Decisions`] to
//! the training samples and, in a guard, to new ones.

pub mod activation;
pub mod classify;
pub mod cluster;
pub mod localize;
pub mod paste;

mod decisions;
mod fit;
mod judge;

pub use decisions::Decisions;
pub(crate) use fit::fit;
pub use judge::{Judge, MaskingFit};
pub use localize::locate;
