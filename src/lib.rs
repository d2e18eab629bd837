//! poisoncam removes backdoor poisons from image datasets before self-supervised training.
//!
//! The pipeline (DESIGN §2): a threat model warm-started on the data, embeddings, clusters,
//! cluster activation masking, a paste test and a poison classifier. The [`attack`] simulator and
//! the [`eval`] harness sit beside it and are never used by the detector itself.

pub mod activation;
pub mod attack;
pub mod backend;
pub mod cam;
pub mod classifier;
pub mod cluster;
pub mod data;
pub mod detector;
pub mod embed;
pub mod error;
pub mod eval;
pub mod filter;
pub mod gradcam;
pub mod image;
pub mod progress;
pub mod recurrence;
pub mod report;
pub mod score;
pub mod stream;
pub mod suspects;
pub mod threat;

pub use burn;
pub use error::{Error, Result};
pub use filter::{PoisonFilter, PoisonFilterConfig, PoisonFilterExt};
pub use image::{AsImage, Image, PixelBox};
