//! The backend the CLI and examples run on: Flex (CPU) by default, CUDA with the `cuda` feature.
//! Library code is generic over `Backend`; only entry points name a concrete one.

use burn::backend::Autodiff;
use burn::tensor::backend::BackendTypes;

/// The CPU backend (Flex) without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub type Compute = burn::backend::Flex;
/// burn's CUDA backend with the `cuda` feature.
#[cfg(feature = "cuda")]
pub type Compute = burn::backend::Cuda;

/// `Compute` with automatic differentiation, for training.
pub type Train = Autodiff<Compute>;

/// A device of the compiled-in backend.
pub type Device = <Compute as BackendTypes>::Device;

/// The first device of the compiled-in backend.
pub fn default_device() -> Device {
    Device::default()
}

/// A short name for reports.
pub fn name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "flex (cpu)"
    }
}
