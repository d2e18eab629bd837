//! The backends the command line, the examples and the tests name. Library code is generic over
//! burn's `Backend`; only entry points pick one.
//!
//! Flex (CPU) is always compiled in. The `cuda` feature adds burn's CUDA backend beside it, and
//! the command line chooses between them with `--backend`.

use burn::backend::Autodiff;

/// The CPU backend (Flex).
pub type Compute = burn::backend::Flex;

/// [`Compute`] with automatic differentiation, for training.
pub type Train = Autodiff<Compute>;

/// burn's CUDA backend; the driver is loaded at run time, so it builds without a GPU.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// [`Cuda`] with automatic differentiation, for training.
#[cfg(feature = "cuda")]
pub type CudaTrain = Autodiff<Cuda>;

/// Whether `B` is [`Compute`], whose tensors live in host memory: there, what a GPU would be
/// sent as indices and built on the device is cheaper built in place on the host.
pub(crate) fn is_host<B: 'static>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Compute>()
}

/// `value` as a `U` when it is one, otherwise `value` back: how the threat model's layers pick
/// their Flex host kernels for a backend chosen at run time.
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let boxed: Box<dyn std::any::Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(value) => Ok(*value),
        Err(boxed) => Err(*boxed.downcast::<T>().unwrap_or_else(|_| unreachable!("it was a T"))),
    }
}

/// `value` as a `U` where the caller has already matched the backend (the way back after
/// [`cast`]).
pub(crate) fn cast_back<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("the backend was matched by an earlier cast"))
}
