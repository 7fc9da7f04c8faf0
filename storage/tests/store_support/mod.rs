//! Shared helpers for the store tests: a small-geometry config on a real disk directory, a
//! runtime, and message builders whose payload names the message.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;

use rmq_storage::commitlog::{CommitLogConfig, FlushPolicy};
use rmq_storage::file::Disk;
use rmq_storage::store::{AppendMessage, AppendOutcome, Store, StoreConfig, StoreRecovery};

/// Runs a future on a fresh compio runtime.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(future)
}

/// Small segments (256 KiB), a small tail cache (old records come from disk), consume-queue
/// files of 256 entries, an index table of 64 entries.
pub fn config(root: &Path, flush_policy: FlushPolicy) -> StoreConfig {
    let mut config = StoreConfig::new(root);
    config.commitlog = CommitLogConfig {
        segment_size_bytes: 256 * 1024,
        record_size_max_bytes: 16 * 1024,
        tail_cache_bytes: 256 * 1024,
        flush_pending_bytes_max: 64 * 1024,
        flush_policy,
        flush_interval_ms: 10,
        ..CommitLogConfig::default()
    };
    config.cq_entries_per_file = 256;
    config.cq_block_cache_blocks = 8;
    // Each full block is written as it fills (as before batching), so the small stores of
    // these tests have consume-queue writes between checkpoints for crashes to cut.
    config.cq_write_start_blocks = 1;
    config.index_active_entries_max = 64;
    config
}

/// Opens a store with [`config`].
pub async fn open(root: &Path, flush_policy: FlushPolicy, disk: Disk) -> (Store, StoreRecovery) {
    Store::open(config(root, flush_policy), disk)
        .await
        .expect("open store")
}

/// Payload of message `i` of a queue.
pub fn payload(topic: &str, queue_id: i32, i: u64) -> Vec<u8> {
    format!(
        "{topic}/{queue_id}/{i}:{}",
        "x".repeat(usize::try_from(i % 50).expect("small"))
    )
    .into_bytes()
}

/// Keys of message `i`: a shared business key `biz{i % 5}` and a unique key.
pub fn keys(topic: &str, queue_id: i32, i: u64) -> String {
    format!("biz{} uniq-{topic}-{queue_id}-{i}", i % 5)
}

/// Appends message `i` to a queue with store time `1_000 + i` ms and tag code `i % 3`.
pub async fn append(store: &Store, topic: &str, queue_id: i32, i: u64) -> AppendOutcome {
    let payload = payload(topic, queue_id, i);
    let keys = keys(topic, queue_id, i);
    let message = AppendMessage {
        topic,
        queue_id,
        tags_code: i64::try_from(i % 3).expect("small"),
        keys: &keys,
        store_timestamp_ms: Some(1_000 + i64::try_from(i).expect("small")),
        sys_flag: 0,
        payload: &payload,
    };
    store.append(&message).await.expect("append")
}
