//! Large zeroed buffers, zeroed by every thread.
//!
//! A training step at 28 px allocates tens of megabytes of outputs and gradients per layer.
//! `vec![0.0; n]` zeroes them on the calling thread while the pool waits, and the pages are
//! fresh from the system, so the kernel clears each one first on that same thread: in `perf` the
//! pool's threads sat idle for about a fifth of a step. Here the pool writes the zeros, each
//! thread its own part, so both the faults and the writes run in parallel.

use rayon::prelude::*;

/// `vec![0f32; len]`, written by the rayon pool.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    values.par_extend(rayon::iter::repeat_n(0f32, len));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_zero_at_every_length() {
        for len in [0, 1, 17, 1 << 20] {
            let values = zeroed(len);
            assert_eq!(values.len(), len);
            assert!(values.iter().all(|&v| v.to_bits() == 0));
        }
    }
}
