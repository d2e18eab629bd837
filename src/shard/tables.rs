//! The two tables the index writes, as Parquet (zstd): the recurrence index's rows, and one
//! record per image.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt32Type, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::engine_error as engine;
use crate::detect::recurrence::pyramid::Entry;
use crate::error::{Error, Result};

/// Rows a Parquet row group holds.
const GROUP_ROWS: usize = 1 << 20;

/// The index rows' schema: the recurrence index's entries, 16 bytes each.
pub(super) fn rows_schema() -> Arc<Schema> {
    let field = |name| Field::new(name, DataType::UInt32, false);
    Arc::new(Schema::new(vec![field("key"), field("image"), field("place"), field("signature")]))
}

/// One image as its shard's index saw it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ImageRecord {
    /// Index in the listing.
    pub index: u64,
    /// Its id (the path relative to the folder).
    pub id: String,
    /// Where the file is.
    pub path: PathBuf,
    /// Its line in a file list (`kept.filelist`).
    pub line: String,
    /// A row of the fit: its header (or image) read as listed; a row may still fail to decode.
    pub listed: bool,
    /// `[height, width]` as stored (0 where it was not listed).
    pub size: [usize; 2],
    /// Channels as stored.
    pub channels: usize,
    /// Its fingerprint as the filter takes it.
    pub fingerprint: u64,
    /// Why it could not be read, where it could not: it is removed as unreadable.
    pub error: Option<String>,
    /// Each measuring signal's measurement ([`crate::detect::signal::Signal::encode`]), in the
    /// order of the table's signal columns; `None` where it was not measured.
    pub measured: Vec<Option<Vec<u8>>>,
}

fn images_schema(signals: &[&str]) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("index", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("path", DataType::Binary, false),
        Field::new("line", DataType::Utf8, false),
        Field::new("listed", DataType::Boolean, false),
        Field::new("height", DataType::UInt32, false),
        Field::new("width", DataType::UInt32, false),
        Field::new("channels", DataType::UInt32, false),
        Field::new("fingerprint", DataType::UInt64, false),
        Field::new("error", DataType::Utf8, true),
    ];
    fields.extend(signals.iter().map(|s| Field::new(format!("m_{s}"), DataType::Binary, true)));
    Arc::new(Schema::new(fields))
}

/// Writes `batches` of `schema` to `path` (through a temporary file beside it, renamed, so that
/// a killed shard leaves no half file under the final name).
pub(super) fn write(
    path: &Path,
    schema: Arc<Schema>,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| Error::write(&tmp, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(engine)?;
    for batch in batches {
        writer.write(&batch?).map_err(engine)?;
    }
    writer.close().map_err(engine)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::write(path, e))
}

/// The record batches of the Parquet file at `path`, `rows` at a time.
pub(super) fn batches(path: &Path, rows: usize) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(engine)?.with_batch_size(rows).build();
    Ok(reader.map_err(engine)?.map(|b| b.map_err(engine)))
}

/// Writes index rows to `path`.
pub(super) fn write_rows(path: &Path, entries: &[Entry]) -> Result<()> {
    let column = |f: fn(&Entry) -> u32| Arc::new(UInt32Array::from_iter_values(entries.iter().map(f))) as ArrayRef;
    let batch = RecordBatch::try_new(
        rows_schema(),
        vec![column(|e| e.key), column(|e| e.image), column(|e| e.place), column(|e| e.signature)],
    )
    .map_err(engine);
    write(path, rows_schema(), [batch])
}

/// The entries of a batch of index rows.
pub(super) fn entries_of(batch: &RecordBatch) -> Result<Vec<Entry>> {
    let column = |name: &str| -> Result<&UInt32Array> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<UInt32Type>())
            .ok_or_else(|| Error::Engine(format!("index rows without a u32 column {name}")))
    };
    let (key, image, place, signature) = (column("key")?, column("image")?, column("place")?, column("signature")?);
    Ok((0..batch.num_rows())
        .map(|i| Entry {
            key: key.value(i),
            image: image.value(i),
            place: place.value(i),
            signature: signature.value(i),
        })
        .collect())
}

/// Writes the image records of one part, with a column per measuring signal.
pub(super) fn write_images(path: &Path, signals: &[&str], records: &[ImageRecord]) -> Result<()> {
    let u32s = |f: &dyn Fn(&ImageRecord) -> usize| {
        Arc::new(UInt32Array::from_iter_values(records.iter().map(|r| f(r) as u32))) as ArrayRef
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.index))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.id.as_str()))),
        Arc::new(BinaryArray::from_iter_values(records.iter().map(|r| r.path.as_os_str().as_bytes()))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.line.as_str()))),
        Arc::new(BooleanArray::from(records.iter().map(|r| r.listed).collect::<Vec<_>>())),
        u32s(&|r| r.size[0]),
        u32s(&|r| r.size[1]),
        u32s(&|r| r.channels),
        Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.fingerprint))),
        Arc::new(StringArray::from(records.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())),
    ];
    for s in 0..signals.len() {
        columns.push(Arc::new(BinaryArray::from(records.iter().map(|r| r.measured[s].as_deref()).collect::<Vec<_>>())));
    }
    let schema = images_schema(signals);
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(engine);
    write(path, schema, [batch])
}

/// The image records of one part, the measurements of `signals` only.
pub(super) fn read_images(path: &Path, signals: &[&str]) -> Result<Vec<ImageRecord>> {
    let bad = |what: &str| Error::Work { path: path.to_path_buf(), reason: format!("an image table without {what}") };
    let mut out = Vec::new();
    for batch in batches(path, 1024)? {
        let batch = batch?;
        let col = |name: &str| batch.column_by_name(name).ok_or_else(|| bad(name));
        let u64s = |name: &str| col(name)?.as_primitive_opt::<UInt64Type>().ok_or_else(|| bad(name));
        let u32s = |name: &str| col(name)?.as_primitive_opt::<UInt32Type>().ok_or_else(|| bad(name));
        let strs = |name: &str| col(name)?.as_string_opt::<i32>().ok_or_else(|| bad(name));
        let bins = |name: &str| col(name)?.as_binary_opt::<i32>().ok_or_else(|| bad(name));
        let (index, id, paths, line) = (u64s("index")?, strs("id")?, bins("path")?, strs("line")?);
        let listed = col("listed")?.as_boolean_opt().ok_or_else(|| bad("listed"))?;
        let (height, width, channels) = (u32s("height")?, u32s("width")?, u32s("channels")?);
        let (fingerprint, error) = (u64s("fingerprint")?, strs("error")?);
        let measured: Vec<&BinaryArray> = signals.iter().map(|s| bins(&format!("m_{s}"))).collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            out.push(ImageRecord {
                index: index.value(i),
                id: id.value(i).to_string(),
                path: PathBuf::from(std::ffi::OsStr::from_bytes(paths.value(i))),
                line: line.value(i).to_string(),
                listed: listed.value(i),
                size: [height.value(i) as usize, width.value(i) as usize],
                channels: channels.value(i) as usize,
                fingerprint: fingerprint.value(i),
                error: error.is_valid(i).then(|| error.value(i).to_string()),
                measured: measured.iter().map(|m| m.is_valid(i).then(|| m.value(i).to_vec())).collect(),
            });
        }
    }
    Ok(out)
}
