//! Large output buffers, zeroed by every thread.
//!
//! A training step at 28 px allocates tens of megabytes of outputs and gradients per layer.
//! `vec![0.0; n]` zeroes them on the calling thread while the pool waits, and the pages are
//! fresh from the system, so the kernel clears each one first on that same thread: in `perf` the
//! pool's threads sat idle for about a fifth of a step. [`written_in_chunks`] has each chunk of
//! such a buffer zeroed by the task that then writes it, while the chunk is
//! in that core's cache, instead of in a pass of its own over the whole buffer (a 25 MB stream
//! per layer, 4–5% of a step).

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// A `len`-value buffer cut into chunks of `chunk` values (the last may be shorter), each zeroed
/// and then handed to `write(state, index, chunk)` on the pool, with `state` from `init` once
/// per task (as rayon's `for_each_init`).
pub(crate) fn written_in_chunks<S>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    write: impl Fn(&mut S, usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let mut values: Vec<f32> = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each_init(
        init,
        |state, (index, part)| {
            part.fill(MaybeUninit::new(0.0));
            // SAFETY: every value of `part` was initialised on the line above, and `MaybeUninit<f32>`
            // has `f32`'s layout.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) };
            write(state, index, part);
        },
    );
    // SAFETY: the chunks cover the first `len` values of the capacity and each was initialised
    // above before its `write`; a panic in `write` propagates before this line and drops an
    // empty vector.
    unsafe { values.set_len(len) };
    values
}

/// [`written_in_chunks`] without the zeros, for a `write` that sets every value of its chunk
/// (an inference forward's output, about a twentieth of its time spent zeroing).
///
/// # Safety
/// `write` must write every value of the chunk it is handed before it returns; the buffer is
/// then taken as initialised.
pub(crate) unsafe fn set_in_chunks<S>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    write: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut values: Vec<f32> = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each_init(init, |state, (index, part)| write(state, index, part));
    // SAFETY: the chunks cover the first `len` values of the capacity, and the caller's `write`
    // set every value of each; a panic in `write` propagates before this line.
    unsafe { values.set_len(len) };
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_at_zero_and_keep_what_is_written() {
        for (len, chunk) in [(0, 4), (1, 4), (17, 4), (100_000, 784), (10, 0)] {
            // Each chunk writes its index into every other value and must find the rest zero.
            let values = written_in_chunks(
                len,
                chunk,
                || (),
                |_, index, part| {
                    assert!(part.iter().all(|&v| v == 0.0), "chunk {index} was not zeroed");
                    part.iter_mut().step_by(2).for_each(|v| *v = index as f32 + 1.0);
                },
            );
            assert_eq!(values.len(), len);
            let step = chunk.max(1);
            for (k, &v) in values.iter().enumerate() {
                let expected = if (k % step) % 2 == 0 { (k / step) as f32 + 1.0 } else { 0.0 };
                assert_eq!(v, expected, "value {k} of {len} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn every_chunk_is_handed_out_once_and_keeps_what_is_set() {
        for (len, chunk) in [(0, 4), (1, 4), (17, 4), (100_000, 784), (10, 0)] {
            // SAFETY: each call sets every value of its chunk.
            let values = unsafe {
                set_in_chunks(
                    len,
                    chunk,
                    || (),
                    |_, index, part| {
                        part.iter_mut().enumerate().for_each(|(k, v)| {
                            v.write((index * chunk.max(1) + k) as f32);
                        })
                    },
                )
            };
            assert_eq!(values.len(), len);
            assert!(values.iter().enumerate().all(|(k, &v)| v == k as f32), "{len} in chunks of {chunk}");
        }
    }
}
