//! The detector (docs/design.md §2–§3): the training-free signals behind the [`signal`] seam, in
//! the registry's order (a deny list of known poisons' hashes; recurrence: patches pasted
//! unchanged into many images), then masking (needs the threat model): embed, cluster, localise
//! on a few probes of every cluster, keep the clusters whose located patches pass the paste test,
//! search those clusters, then let the poison classifier sweep every sample.
//!
//! A sample is removed when any signal confirms it; each removal records which one did (the first
//! training-free signal with a finding, else masking's stage).

// The kinds of evidence and the models stay reachable for the crate's benches and tests, out
// of the documented surface; what a user configures or reads is re-exported below.
#[doc(hidden)]
pub mod deny;
#[doc(hidden)]
pub mod embed;
#[doc(hidden)]
pub mod masking;
#[doc(hidden)]
pub mod recurrence;
#[doc(hidden)]
pub mod registry;
#[doc(hidden)]
pub mod residual;
#[doc(hidden)]
pub mod resnet;
#[doc(hidden)]
pub mod signal;
#[doc(hidden)]
pub mod spectral;
#[doc(hidden)]
pub mod threat;

mod config;
mod detector;
mod evidence;
mod fold;

pub use config::{DetectorConfig, Localizer, Signals, StageSwitches};
#[doc(hidden)]
pub use detector::{detect, detect_and_fit, detect_input, DetectorFit, DetectorInput};
pub use embed::Embed;
// What the detector found per row: the filter's report is the user's account of it.
#[doc(hidden)]
pub use evidence::{Detection, Evidence, RecurrenceHit};
pub use evidence::{Stage, StageCost};
pub use masking::{
    classify::ClassifierConfig,
    cluster::KMeansConfig,
    localize::cam::{CamConfig, MaskSearch},
    paste::PasteConfig,
};
#[doc(hidden)]
pub use masking::{Decisions, Judge, MaskingFit};
pub use recurrence::{pyramid::PyramidConfig, RecurrenceConfig, RecurrenceSummary};
pub use residual::ResidualConfig;
pub use resnet::{Arch, CheckpointProblem, EncoderFile, Normalization, ResNet, ResNetConfig, Stem};
pub use signal::{Finding, SignalReport};
pub use spectral::SpectralConfig;
pub use threat::{AugmentConfig, EncoderConfig, NormStatistics, SslMethod, WarmStartConfig, WarmStartReport};
