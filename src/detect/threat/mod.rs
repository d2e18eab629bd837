//! The threat model: the encoder the detector looks through, warm-started on the data itself.

mod augment;
mod checkpoint;
pub(crate) mod conv;
mod encoder;
mod moco;
mod norm;
mod settings;
mod shares;
mod simclr;
mod step;
mod train;
mod zeroed;

pub use augment::AugmentConfig;
pub use checkpoint::{load_model, save_model, Checkpoint, CheckpointMeta};
pub use encoder::{Backbone, BasicBlock, EncoderConfig, ProjectionHead, ThreatModel};
pub use moco::{info_nce, MocoState};
pub use norm::{BatchNorm2d, BatchNorm2dConfig, NormStatistics};
pub use settings::{SslMethod, WarmStartConfig};
pub use simclr::{l2_normalize, nt_xent};
pub use step::{init_model, init_model_with, train_from_loader, SslStep};
pub use train::{model_fingerprint, warm_start, WarmStartReport};
