//! One decode for several signals: while a signal reads a row, every signal that measures rows
//! ([`Signal::measure`]) takes its statistics of the decoded image, so that a later signal reads
//! again only the rows no earlier one read (on photos, decoding is most of a signal's cost).

use std::sync::OnceLock;

use super::{Measured, Signal};
use crate::detect::recurrence::ImageRows;
use crate::error::Result;
use crate::image::Image;

/// The rows, measured for `signals` as they are read; `slots[s][row]` is signal `s`'s measurement.
pub(crate) struct MeasuredRows<'a> {
    pub inner: &'a dyn ImageRows,
    pub signals: &'a [Box<dyn Signal + 'a>],
    pub slots: Vec<Vec<OnceLock<Measured>>>,
}

impl<'a> MeasuredRows<'a> {
    pub(crate) fn new(inner: &'a dyn ImageRows, signals: &'a [Box<dyn Signal + 'a>]) -> Self {
        let slots =
            signals
                .iter()
                .map(|s| {
                    if s.measures(inner.len()) {
                        (0..inner.len()).map(|_| OnceLock::new()).collect()
                    } else {
                        Vec::new()
                    }
                })
                .collect();
        MeasuredRows { inner, signals, slots }
    }

    fn take(&self, row: usize, image: &Image) {
        for (signal, slots) in self.signals.iter().zip(&self.slots) {
            if let Some(slot) = slots.get(row) {
                slot.get_or_init(|| signal.measure(image));
            }
        }
    }
}

impl ImageRows for MeasuredRows<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn size(&self, row: usize) -> [usize; 2] {
        self.inner.size(row)
    }

    fn read(&self, row: usize) -> Result<Image> {
        let image = self.inner.read(row)?;
        self.take(row, &image);
        Ok(image)
    }

    fn fingerprint(&self, row: usize) -> Option<u64> {
        self.inner.fingerprint(row)
    }

    fn digest(&self, row: usize) -> Result<Option<[u8; 32]>> {
        self.inner.digest(row)
    }
}
