//! poisoncam removes backdoor poisons from image datasets before self-supervised training.
//!
//! The tree reads as the pipeline:
//! - [`image`]: the `C×H×W` view of any dataset item ([`AsImage`]);
//! - [`data`]: readers (folders, IDX, CIFAR, the embedded Fashion-MNIST) and a burn batcher;
//! - [`detect`]: the stages in order: recurrence, the threat model, embeddings, clusters,
//!   localisation (masking or Grad-CAM), the paste test and the poison classifier;
//! - [`filter`]: the `PoisonFilter` adapter, its report and the streaming guard;
//! - [`sim`]: the attack simulator, the evaluation harness and the suspects sheet, never used by
//!   the detector itself.

#![warn(missing_docs)]

pub mod backend;
pub(crate) mod bounded;
mod check;
pub mod data;
pub mod detect;
#[doc(hidden)]
pub mod durable;
pub mod error;
pub mod filter;
#[cfg(feature = "eval")]
#[doc(hidden)]
pub mod fuzz;
pub mod image;
#[doc(hidden)]
pub mod progress;
#[cfg(feature = "shard")]
pub mod shard;
#[cfg(feature = "eval")]
pub mod sim;

pub use burn;
pub use detect::{DetectorConfig, Embed, EncoderFile, Finding, Stage};
pub use error::{Error, Result};
pub use filter::guard::Guard;
pub use filter::report::{FilterReport, Removal};
pub use filter::{PoisonFilter, PoisonFilterConfig, PoisonFilterExt};
pub use image::{AsImage, Image, PixelBox};

/// The README's Rust snippets, compiled by `cargo test --doc` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
