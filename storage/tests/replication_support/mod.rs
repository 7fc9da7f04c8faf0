//! Helpers for the replication tests: a small-segment store config, random messages (sizes up
//! to the record maximum), shipping chunks from a master to a slave, and comparisons of two
//! stores (queue offsets, pulls, key queries, the CommitLog entry stream, segment files).

#![allow(dead_code)] // each test uses a different subset

use std::path::Path;

use rand::rngs::StdRng;
use rand::Rng;
use rmq_storage::commitlog::{CommitLogConfig, EntryHeader, FlushPolicy, ShipLimit};
use rmq_storage::file::Disk;
use rmq_storage::store::{
    AppendMessage, AppendOutcome, GetRequest, Store, StoreConfig, StoreRecovery, TagFilter,
};

/// Segments of 1 MiB: a few hundred records cross several segment ends.
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// Largest encoded record (a fifth of a segment, so fillers are common).
pub const RECORD_MAX: u32 = 192 * 1024;
/// Queues the messages go to.
pub const QUEUES: [(&str, i32); 4] = [("Orders", 0), ("Orders", 1), ("Orders", 2), ("Audit", 0)];

/// Runs a future on a fresh compio runtime.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(future)
}

/// 1 MiB segments by default, a 1 MiB tail ring (older chunks are read from disk), small
/// consume-queue files and a 64-entry index table (sealed files appear quickly).
pub fn config(root: &Path, flush_policy: FlushPolicy, segment_bytes: u64) -> StoreConfig {
    let mut config = StoreConfig::new(root);
    config.commitlog = CommitLogConfig {
        segment_size_bytes: segment_bytes,
        record_size_max_bytes: RECORD_MAX,
        tail_cache_bytes: 1 << 20,
        flush_pending_bytes_max: 512 * 1024,
        flush_policy,
        flush_interval_ms: 10,
        ..CommitLogConfig::default()
    };
    config.cq_entries_per_file = 256;
    config.cq_block_cache_blocks = 8;
    config.index_active_entries_max = 64;
    config
}

/// Opens a store with [`config`].
pub async fn open(
    root: &Path,
    flush_policy: FlushPolicy,
    segment_bytes: u64,
    disk: Disk,
) -> (Store, StoreRecovery) {
    Store::open(config(root, flush_policy, segment_bytes), disk)
        .await
        .expect("open store")
}

/// A message appended to a master, as the tests remember it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Serial number (names its keys).
    pub serial: u64,
    /// Queue.
    pub topic: &'static str,
    /// Queue id.
    pub queue_id: i32,
    /// Where it landed.
    pub outcome: AppendOutcome,
}

/// Unique key of message `serial`.
pub fn unique_key(serial: u64) -> String {
    format!("uniq-{serial}")
}

/// Encoded size of a record with these field lengths.
pub fn encoded(topic: &str, keys: &str, payload_len: usize) -> u64 {
    (64 + topic.len() + keys.len() + payload_len).div_ceil(16) as u64 * 16
}

/// A payload length: mostly small, some medium, some making the record exactly or nearly
/// the largest allowed.
pub fn payload_len(rng: &mut StdRng, topic: &str, keys: &str) -> usize {
    let near_max = RECORD_MAX as usize - 64 - topic.len() - keys.len();
    match rng.gen_range(0..10) {
        0 => near_max - rng.gen_range(0..48),
        1 | 2 => rng.gen_range(8_000..60_000),
        _ => rng.gen_range(0..2_000),
    }
}

/// Appends message `serial` with a payload of `len` bytes to `(topic, queue_id)`.
pub async fn append_sized(
    store: &Store,
    (topic, queue_id): (&'static str, i32),
    serial: u64,
    len: usize,
) -> Sent {
    let keys = format!("{} biz{}", unique_key(serial), serial % 7);
    let payload: Vec<u8> = (0..len)
        .map(|i| u8::try_from((i as u64 + serial) % 251).expect("small"))
        .collect();
    let message = AppendMessage {
        topic,
        queue_id,
        tags_code: i64::try_from(serial % 3).expect("small"),
        keys: &keys,
        store_timestamp_ms: Some(1_000 + i64::try_from(serial).expect("small")),
        sys_flag: 0,
        payload: &payload,
    };
    let outcome = store.append(&message).await.expect("append");
    assert!(u64::from(outcome.size) <= u64::from(RECORD_MAX));
    Sent {
        serial,
        topic,
        queue_id,
        outcome,
    }
}

/// Appends message `serial` to `queue` with a payload making its record exactly `size` bytes
/// (a multiple of 16, at most [`RECORD_MAX`]).
pub async fn append_exact(
    store: &Store,
    queue: (&'static str, i32),
    serial: u64,
    size: u64,
) -> Sent {
    let keys = format!("{} biz{}", unique_key(serial), serial % 7);
    let overhead = encoded(queue.0, &keys, 0);
    let len = usize::try_from(size - overhead).expect("fits");
    let sent = append_sized(store, queue, serial, len).await;
    assert_eq!(u64::from(sent.outcome.size), size);
    sent
}

/// Appends `count` random messages (serials from `first`) to random queues.
pub async fn append_random(store: &Store, rng: &mut StdRng, first: u64, count: u64) -> Vec<Sent> {
    let mut sent = Vec::new();
    for serial in first..first + count {
        let queue = QUEUES[rng.gen_range(0..QUEUES.len())];
        let keys = format!("{} biz{}", unique_key(serial), serial % 7);
        let len = payload_len(rng, queue.0, &keys);
        sent.push(append_sized(store, queue, serial, len).await);
    }
    sent
}

/// Ships from the slave's end until the master has nothing more up to `limit`, cycling
/// through `chunk_sizes`; checks every chunk's bounds. Returns the chunks shipped.
pub async fn ship(master: &Store, slave: &Store, chunk_sizes: &[usize], limit: ShipLimit) -> usize {
    let mut chunks = 0;
    loop {
        let from = slave.commitlog().appended_offset();
        let max_bytes = chunk_sizes[chunks % chunk_sizes.len()];
        let chunk = master
            .read_log(from, max_bytes, limit)
            .await
            .expect("read_log");
        if chunk.is_empty() {
            assert_eq!(chunk.next_offset, from);
            return chunks;
        }
        check_chunk_bounds(master, &chunk, max_bytes);
        let end = slave
            .append_replicated(chunk.from, &chunk.bytes)
            .await
            .expect("append_replicated");
        assert_eq!(
            end, chunk.next_offset,
            "the slave ends where the chunk does"
        );
        chunks += 1;
    }
}

/// Ships until the slave's end is exactly `end` (an entry boundary of the master).
pub async fn ship_until(master: &Store, slave: &Store, end: u64, max_bytes: usize) {
    loop {
        let from = slave.commitlog().appended_offset();
        assert!(from <= end, "shipped past the target");
        if from == end {
            return;
        }
        let mut chunk = master
            .read_log(from, max_bytes, ShipLimit::Appended)
            .await
            .expect("read_log");
        if chunk.next_offset > end {
            // Whole entries ending at or before `end`: ask for no more than the gap.
            let gap = usize::try_from(end - from).expect("small");
            chunk = master
                .read_log(from, gap, ShipLimit::Appended)
                .await
                .expect("read_log");
        }
        assert!(chunk.next_offset <= end, "{end} is an entry boundary");
        slave
            .append_replicated(chunk.from, &chunk.bytes)
            .await
            .expect("append_replicated");
    }
}

/// A chunk holds whole entries within `max_bytes` (or one larger entry), inside one segment.
pub fn check_chunk_bounds(master: &Store, chunk: &rmq_storage::commitlog::LogChunk, max: usize) {
    if chunk.entries > 1 {
        assert!(
            chunk.bytes.len() <= max,
            "a chunk of several entries fits max_bytes"
        );
    }
    let segment = master.commitlog().config().segment_size_bytes;
    let segment_end = (chunk.from / segment + 1) * segment;
    assert!(
        chunk.next_offset <= segment_end,
        "a chunk never crosses a segment end"
    );
    assert!(chunk.bytes.len() as u64 <= chunk.next_offset - chunk.from);
}

/// Every entry header of a store, walked from its first offset.
pub async fn entry_headers(store: &Store) -> Vec<EntryHeader> {
    let mut headers = Vec::new();
    let mut offset = store.commitlog().min_offset();
    let end = store.commitlog().appended_offset();
    while offset < end {
        let header = store.entry_header_at(offset).await.expect("entry header");
        assert_eq!(header.offset, offset);
        offset = header.end();
        headers.push(header);
    }
    assert_eq!(offset, end, "entries tile the log");
    headers
}

/// The whole entry stream of a store, as shipped.
pub async fn entry_stream(store: &Store) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut from = store.commitlog().min_offset();
    loop {
        let chunk = store
            .read_log(from, 1 << 20, ShipLimit::Appended)
            .await
            .expect("read_log");
        if chunk.is_empty() {
            return bytes;
        }
        bytes.extend_from_slice(&chunk.bytes);
        from = chunk.next_offset;
    }
}

/// Same end, same queue offsets, same pulls (status, next offset, record bytes) at a sample of
/// offsets, same entry stream.
pub async fn assert_same(master: &Store, slave: &Store) {
    assert_eq!(
        master.commitlog().appended_offset(),
        slave.commitlog().appended_offset(),
        "same log end"
    );
    assert_eq!(
        master.commitlog().segment_starts(),
        slave.commitlog().segment_starts()
    );
    for (topic, queue_id) in QUEUES {
        // A queue whose every record was dropped (by a truncation, or by recovery on a master)
        // is empty or unknown depending on whether a checkpoint listed it: both read as (0, 0).
        let offsets = |store: &Store| store.offsets(topic, queue_id).filter(|&(_, max)| max > 0);
        assert_eq!(offsets(master), offsets(slave), "{topic}/{queue_id}");
        let Some((min, max)) = offsets(master) else {
            continue;
        };
        for queue_offset in [min, (min + max) / 2, max.saturating_sub(1), max] {
            let request = GetRequest {
                topic,
                queue_id,
                queue_offset,
                max_count: 8,
                max_bytes: 1 << 20,
                filter: TagFilter::All,
            };
            let on_master = master.get_messages(&request).await.expect("pull master");
            let on_slave = slave.get_messages(&request).await.expect("pull slave");
            assert_eq!(
                on_master.status, on_slave.status,
                "{topic}/{queue_id}@{queue_offset}"
            );
            assert_eq!(on_master.next_begin_offset, on_slave.next_begin_offset);
            let raw = |result: &rmq_storage::store::GetResult| -> Vec<Vec<u8>> {
                result.records.iter().map(|r| r.raw.to_vec()).collect()
            };
            assert_eq!(
                raw(&on_master),
                raw(&on_slave),
                "{topic}/{queue_id}@{queue_offset}"
            );
        }
    }
    assert!(
        entry_stream(master).await == entry_stream(slave).await,
        "same CommitLog entries"
    );
}

/// Key queries answer the same (the same records, in the same order) for these serials.
pub async fn assert_same_queries(master: &Store, slave: &Store, serials: &[u64]) {
    for &serial in serials {
        for (topic, _) in QUEUES {
            let key = unique_key(serial);
            let on_master = master
                .query_by_key(topic, &key, 16, 0, i64::MAX)
                .await
                .expect("query master");
            let on_slave = slave
                .query_by_key(topic, &key, 16, 0, i64::MAX)
                .await
                .expect("query slave");
            let offsets = |records: &[rmq_storage::commitlog::StoredRecord]| -> Vec<u64> {
                records.iter().map(|r| r.phys_offset).collect()
            };
            assert_eq!(
                offsets(&on_master.records),
                offsets(&on_slave.records),
                "{key}"
            );
        }
    }
}

/// The CommitLog segment files of two stores hold the same bytes up to `end`.
pub fn assert_same_segment_files(master_root: &Path, slave_root: &Path, end: u64) {
    let dir = |root: &Path| root.join("commitlog");
    let mut starts: Vec<u64> = std::fs::read_dir(dir(master_root))
        .expect("list")
        .filter_map(|entry| {
            let name = entry.expect("entry").file_name().into_string().ok()?;
            (name.len() == 20).then(|| name.parse().ok()).flatten()
        })
        .filter(|&start| start < end)
        .collect();
    starts.sort_unstable();
    assert!(!starts.is_empty());
    for start in starts {
        let name = format!("{start:020}");
        let master = std::fs::read(dir(master_root).join(&name)).expect("master segment");
        let slave = std::fs::read(dir(slave_root).join(&name)).expect("slave segment");
        let len = usize::try_from((end - start).min(master.len() as u64)).expect("fits");
        assert!(
            master[..len] == slave[..len],
            "segment {name} differs in its first {len} bytes"
        );
    }
}
