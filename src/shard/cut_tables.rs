//! The tables of verification as a map, as Parquet (zstd): the windows each shard must cut, the
//! windows cut, and the thumbnails of the images they were cut from.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Float32Array, RecordBatch, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema, UInt32Type, UInt64Type};

use super::engine_error as engine;
use super::tables::{batches, write};
use crate::detect::recurrence::pyramid::{Seen, Thumbnail};
use crate::error::{Error, Result};

/// Rows read at a time.
const BATCH: usize = 8192;

fn schema(fields: &[(&str, DataType)]) -> Arc<Schema> {
    Arc::new(Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), false)).collect::<Vec<_>>()))
}

/// A column of a batch, of the type asked for.
fn column<'b, T: 'static>(
    batch: &'b RecordBatch,
    path: &Path,
    name: &str,
    cast: impl Fn(&'b dyn Array) -> Option<&'b T>,
) -> Result<&'b T> {
    batch
        .column_by_name(name)
        .and_then(|c| cast(c.as_ref()))
        .ok_or_else(|| Error::Work { path: path.to_path_buf(), reason: format!("a table without its column {name}") })
}

/// Writes `(listing index, core, place)` rows, the windows a shard cuts.
pub(super) fn write_wanted(path: &Path, wanted: &[(u64, u32, u32)]) -> Result<()> {
    let schema = schema(&[("image", DataType::UInt64), ("core", DataType::UInt32), ("place", DataType::UInt32)]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(wanted.iter().map(|w| w.0))),
        Arc::new(UInt32Array::from_iter_values(wanted.iter().map(|w| w.1))),
        Arc::new(UInt32Array::from_iter_values(wanted.iter().map(|w| w.2))),
    ];
    write(path, schema.clone(), [RecordBatch::try_new(schema, columns).map_err(engine)])
}

/// The rows [`write_wanted`] wrote.
pub(super) fn read_wanted(path: &Path) -> Result<Vec<(u64, u32, u32)>> {
    let mut out = Vec::new();
    for batch in batches(path, BATCH)? {
        let batch = batch?;
        let image = column(&batch, path, "image", |c| c.as_primitive_opt::<UInt64Type>())?;
        let core = column(&batch, path, "core", |c| c.as_primitive_opt::<UInt32Type>())?;
        let place = column(&batch, path, "place", |c| c.as_primitive_opt::<UInt32Type>())?;
        out.extend((0..batch.num_rows()).map(|i| (image.value(i), core.value(i), place.value(i))));
    }
    Ok(out)
}

fn floats(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

fn unfloats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Writes cut windows (`image` is the listing index).
pub(super) fn write_seen(path: &Path, seen: &[Seen]) -> Result<()> {
    let schema = schema(&[
        ("core", DataType::UInt32),
        ("image", DataType::UInt64),
        ("factor", DataType::UInt32),
        ("x", DataType::UInt32),
        ("y", DataType::UInt32),
        ("window", DataType::Binary),
        ("context", DataType::Binary),
        ("self_distance", DataType::Float32),
    ]);
    // A ring block that leaves the image is stored as NaN: pixels are finite.
    let context = |s: &Seen| floats(s.context.iter().flat_map(|b| b.unwrap_or([f32::NAN; 3])));
    let u32s = |f: fn(&Seen) -> usize| Arc::new(UInt32Array::from_iter_values(seen.iter().map(|s| f(s) as u32)));
    let columns: Vec<ArrayRef> = vec![
        u32s(|s| s.core),
        Arc::new(UInt64Array::from_iter_values(seen.iter().map(|s| s.image as u64))),
        u32s(|s| s.factor),
        u32s(|s| s.x),
        u32s(|s| s.y),
        Arc::new(BinaryArray::from_iter_values(seen.iter().map(|s| floats(s.window.iter().copied())))),
        Arc::new(BinaryArray::from_iter_values(seen.iter().map(context))),
        Arc::new(Float32Array::from_iter_values(seen.iter().map(|s| s.self_distance))),
    ];
    write(path, schema.clone(), [RecordBatch::try_new(schema, columns).map_err(engine)])
}

/// Appends the cut windows of `path` to `out`; each window's image is its listing index.
pub(super) fn read_seen(path: &Path, out: &mut Vec<Seen>) -> Result<()> {
    for batch in batches(path, BATCH)? {
        let batch = batch?;
        let u32s = |name: &str| column(&batch, path, name, |c| c.as_primitive_opt::<UInt32Type>());
        let (core, factor, x, y) = (u32s("core")?, u32s("factor")?, u32s("x")?, u32s("y")?);
        let image = column(&batch, path, "image", |c| c.as_primitive_opt::<UInt64Type>())?;
        let window = column(&batch, path, "window", |c| c.as_binary_opt::<i32>())?;
        let context = column(&batch, path, "context", |c| c.as_binary_opt::<i32>())?;
        let self_distance = column(&batch, path, "self_distance", |c| c.as_primitive_opt::<Float32Type>())?;
        for i in 0..batch.num_rows() {
            let ring = unfloats(context.value(i));
            out.push(Seen {
                core: core.value(i) as usize,
                image: image.value(i) as usize,
                factor: factor.value(i) as usize,
                x: x.value(i) as usize,
                y: y.value(i) as usize,
                window: unfloats(window.value(i)),
                context: ring.chunks_exact(3).map(|b| (!b[0].is_nan()).then(|| [b[0], b[1], b[2]])).collect(),
                self_distance: self_distance.value(i),
            });
        }
    }
    Ok(())
}

/// Writes the thumbnails of cut images, by listing index.
pub(super) fn write_thumbs(path: &Path, thumbs: &[(u64, Thumbnail)]) -> Result<()> {
    let schema = schema(&[
        ("image", DataType::UInt64),
        ("height", DataType::UInt32),
        ("width", DataType::UInt32),
        ("blocks", DataType::Binary),
    ]);
    let parts: Vec<([usize; 2], Vec<u8>)> = thumbs.iter().map(|(_, t)| t.parts()).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(thumbs.iter().map(|t| t.0))),
        Arc::new(UInt32Array::from_iter_values(parts.iter().map(|p| p.0[0] as u32))),
        Arc::new(UInt32Array::from_iter_values(parts.iter().map(|p| p.0[1] as u32))),
        Arc::new(BinaryArray::from_iter_values(parts.iter().map(|p| &p.1))),
    ];
    write(path, schema.clone(), [RecordBatch::try_new(schema, columns).map_err(engine)])
}

/// The thumbnails of `path` whose listing index `keep` accepts.
pub(super) fn read_thumbs(path: &Path, keep: &dyn Fn(u64) -> bool, out: &mut Vec<(u64, Thumbnail)>) -> Result<()> {
    for batch in batches(path, BATCH)? {
        let batch = batch?;
        let image = column(&batch, path, "image", |c| c.as_primitive_opt::<UInt64Type>())?;
        let height = column(&batch, path, "height", |c| c.as_primitive_opt::<UInt32Type>())?;
        let width = column(&batch, path, "width", |c| c.as_primitive_opt::<UInt32Type>())?;
        let blocks = column(&batch, path, "blocks", |c| c.as_binary_opt::<i32>())?;
        for i in (0..batch.num_rows()).filter(|&i| keep(image.value(i))) {
            let size = [height.value(i) as usize, width.value(i) as usize];
            let thumb = Thumbnail::from_parts(size, blocks.value(i)).ok_or_else(|| Error::Work {
                path: path.to_path_buf(),
                reason: format!("a thumbnail of image {} whose blocks are not {size:?}", image.value(i)),
            })?;
            out.push((image.value(i), thumb));
        }
    }
    Ok(())
}
