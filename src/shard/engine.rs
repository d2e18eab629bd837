//! The index's reduce as SQL on Apache DataFusion: per key partition, the keys whose buckets can
//! hold a core (GROUP BY ... HAVING), and those buckets' rows in key order (a semi-join, sorted,
//! spilling under the memory limit), streamed bucket by bucket to the caller. The plan is plain
//! DataFusion, so the same SQL runs on a Ballista cluster.

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use super::engine_error as engine;
use super::layout::{parquet_files, Work};
use super::tables::entries_of;
use crate::detect::recurrence::pyramid::Entry;
use crate::error::{Error, Result};
use crate::progress::stage_bar;

/// The query of one partition's candidate buckets, `rows` being the partition's table.
pub(super) fn bucket_rows_sql(least: usize, most: usize) -> String {
    format!(
        "SELECT r.key, r.image, r.place, r.signature FROM rows r \
         JOIN (SELECT key FROM rows GROUP BY key HAVING COUNT(*) BETWEEN {least} AND {most}) b ON r.key = b.key \
         ORDER BY r.key, r.image, r.place"
    )
}

/// What the engine read.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EngineRead {
    /// Partitions that held rows.
    pub partitions: usize,
    /// Rows of candidate buckets streamed back.
    pub bucket_rows: usize,
    /// Candidate buckets.
    pub buckets: usize,
}

/// Calls `bucket` with every bucket of between `least` and `most` rows, each sorted by image
/// and place, partition after partition; DataFusion holds at most `memory_limit` bytes of
/// operator state, spilling the sort to disk past it.
pub(super) fn each_bucket(
    work: &Work,
    partitions: usize,
    [least, most]: [usize; 2],
    memory_limit: usize,
    mut bucket: impl FnMut(&[Entry]),
) -> Result<EngineRead> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build();
    let runtime = runtime.map_err(engine)?;
    let env = RuntimeEnvBuilder::new().with_memory_limit(memory_limit, 1.0).build_arc().map_err(engine)?;
    // The sort's merge reserves 10 MB up front unless told otherwise: a small limit would refuse
    // to sort at all.
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_sort_spill_reservation_bytes((memory_limit / 8).min(10 << 20));
    let ctx = SessionContext::new_with_config_rt(config, env);
    let sql = bucket_rows_sql(least, most);
    let mut read = EngineRead::default();
    let bar = stage_bar("shard reduce", partitions as u64);
    for p in 0..partitions {
        bar.inc(1);
        let dir = work.partition(p);
        if parquet_files(&dir)?.is_empty() {
            continue;
        }
        read.partitions += 1;
        runtime.block_on(async {
            let url = format!("{}/", dir.display());
            ctx.register_parquet("rows", &url, ParquetReadOptions::default()).await.map_err(engine)?;
            let mut stream = ctx.sql(&sql).await.map_err(engine)?.execute_stream().await.map_err(engine)?;
            // A bucket may span batches: its rows are held until the key changes.
            let mut open: Vec<Entry> = Vec::new();
            while let Some(batch) = stream.next().await {
                let entries = entries_of(&batch.map_err(engine)?)?;
                read.bucket_rows += entries.len();
                for e in entries {
                    if open.first().is_some_and(|o| o.key != e.key) {
                        read.buckets += 1;
                        bucket(&open);
                        open.clear();
                    }
                    open.push(e);
                }
            }
            if !open.is_empty() {
                read.buckets += 1;
                bucket(&open);
            }
            ctx.deregister_table("rows").map_err(engine)?;
            Ok::<_, Error>(())
        })?;
    }
    bar.finish_and_clear();
    Ok(read)
}
