//! Sums made in parts by the pool's tasks and added in a fixed order.
//!
//! A weight gradient is summed over the batch in chunks of images, one share per chunk, on
//! whichever thread rayon gives the chunk. Adding the shares as they arrive would make the sum's
//! bits depend on the schedule and the number of threads; runs must be deterministic under a
//! seed, so the shares are kept by chunk and added in chunk order.

use std::sync::Mutex;

/// One share per chunk, put from any task in any order.
pub(crate) struct Shares(Mutex<Vec<Option<Vec<f32>>>>);

impl Shares {
    pub(crate) fn new(chunks: usize) -> Self {
        Shares(Mutex::new(vec![None; chunks]))
    }

    /// Keeps `share` as chunk `chunk`'s.
    pub(crate) fn put(&self, chunk: usize, share: Vec<f32>) {
        self.0.lock().expect("no task panicked holding the shares")[chunk] = Some(share);
    }

    /// The shares added in chunk order; `len` zeros when there are none.
    ///
    /// # Panics
    /// When a chunk's share was never put: a sum missing part of the batch would be wrong
    /// silently.
    pub(crate) fn sum(self, len: usize) -> Vec<f32> {
        let shares = self.0.into_inner().expect("no task panicked holding the shares");
        let mut shares =
            shares.into_iter().enumerate().map(|(chunk, s)| s.unwrap_or_else(|| panic!("chunk {chunk} put no share")));
        let Some(mut sum) = shares.next() else { return vec![0f32; len] };
        for share in shares {
            sum.iter_mut().zip(&share).for_each(|(a, b)| *a += b);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn shares_are_added_in_chunk_order_whatever_order_they_arrive_in() {
        // Added left to right, 1e8 + 1 − 1e8 is 0 in f32 and 1e8 − 1e8 + 1 is 1: the order shows.
        let values = [1e8f32, 1.0, -1e8];
        let in_order = values.iter().fold(0f32, |a, &b| a + b);
        for order in [[0, 1, 2], [0, 2, 1], [2, 0, 1]] {
            let shares = Shares::new(3);
            order.into_iter().for_each(|chunk| shares.put(chunk, vec![values[chunk]; 2]));
            assert_eq!(shares.sum(2), vec![in_order; 2], "put in order {order:?}");
        }
        let shares = Shares::new(64);
        (0..64).into_par_iter().for_each(|chunk| shares.put(chunk, vec![chunk as f32]));
        assert_eq!(shares.sum(1), vec![(0..64).sum::<usize>() as f32], "put from the pool");
        assert_eq!(Shares::new(0).sum(3), vec![0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "chunk 1 put no share")]
    fn a_missing_share_is_not_taken_as_zero() {
        let shares = Shares::new(2);
        shares.put(0, vec![1.0]);
        shares.sum(1);
    }
}
