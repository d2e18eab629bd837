//! The rows of the fit as the reduce sees them: every listed image of every shard, in listing
//! order, read from its file only where the reduce verifies a core.

use std::path::PathBuf;

use super::tables::ImageRecord;
use crate::data::ImageFile;
use crate::detect::recurrence::ImageRows;
use crate::error::{Error, Result};
use crate::image::{capped_size, AsImage, Image};

/// One row: where its file is and what its index recorded.
struct Row {
    index: u64,
    path: PathBuf,
    id: String,
    size: [usize; 2],
    channels: usize,
    fingerprint: u64,
}

/// The rows of all shards, by listing index.
pub(super) struct StoredRows {
    rows: Vec<Row>,
    /// Images whose short side is below this are held by one scan, capped at `max_native`.
    stream_from_side: usize,
    max_native: usize,
}

impl StoredRows {
    pub fn new(stream_from_side: usize, max_native: usize) -> Self {
        StoredRows { rows: Vec::new(), stream_from_side, max_native }
    }

    /// Adds the row of `record` (a listed image), after every row of a lower index.
    pub fn push(&mut self, record: &ImageRecord) -> Result<()> {
        if self.rows.last().is_some_and(|r| r.index >= record.index) {
            return Err(Error::Engine(format!("image {} recorded out of listing order", record.index)));
        }
        self.rows.push(Row {
            index: record.index,
            path: record.path.clone(),
            id: record.id.clone(),
            size: record.size,
            channels: record.channels,
            fingerprint: record.fingerprint,
        });
        Ok(())
    }

    /// The listing index of row `row`.
    pub fn index(&self, row: usize) -> u64 {
        self.rows[row].index
    }

    /// The row of listing index `index`, where it is one.
    pub fn row_of(&self, index: u64) -> Option<usize> {
        self.rows.binary_search_by_key(&index, |r| r.index).ok()
    }

    /// Each row's channels and size as stored, in order.
    pub fn shapes(&self) -> impl Iterator<Item = (usize, [usize; 2])> + '_ {
        self.rows.iter().map(|r| (r.channels, r.size))
    }

    fn held(&self, size: [usize; 2]) -> bool {
        size[0].min(size[1]) < self.stream_from_side
    }
}

impl ImageRows for StoredRows {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn size(&self, row: usize) -> [usize; 2] {
        let size = self.rows[row].size;
        // One scan holds a small image scaled to its capped size, and reads it at that size.
        if self.held(size) {
            capped_size(size, self.max_native)
        } else {
            size
        }
    }

    fn read(&self, row: usize) -> Result<Image> {
        let r = &self.rows[row];
        let file = ImageFile { id: r.id.clone(), path: r.path.clone(), label: None };
        let image = file.as_image()?;
        if [image.height(), image.width()] != r.size {
            return Err(Error::ItemChanged { index: r.index as usize, what: "its size" });
        }
        let [h, w] = self.size(row);
        Ok(if [h, w] == r.size { image } else { image.resized(h, w) })
    }

    fn fingerprint(&self, row: usize) -> Option<u64> {
        Some(self.rows[row].fingerprint)
    }
}
