//! Helpers shared by the CommitLog integration tests: a real-disk scratch directory, a small
//! configuration that rolls segments quickly, and deterministic records.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::path::PathBuf;

use rmq_storage::commitlog::record::encoded_size;
use rmq_storage::commitlog::{AppendRecord, CommitLogConfig, FlushPolicy};
use rmq_storage::file::scratch_dir_on_real_disk;

/// Runs `future` on a fresh compio runtime.
pub fn run<F: Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("compio runtime")
        .block_on(future)
}

/// A fresh directory on a real disk (never tmpfs).
pub fn scratch(name: &str) -> PathBuf {
    scratch_dir_on_real_disk(name).expect("scratch dir on a real disk")
}

/// Small sizes: 128 KiB segments, 8 KiB records max, 32 KiB pending bound, 128 KiB ring.
pub fn small_config(policy: FlushPolicy) -> CommitLogConfig {
    CommitLogConfig {
        segment_size_bytes: 128 * 1024,
        record_size_max_bytes: 8 * 1024,
        tail_cache_bytes: 128 * 1024,
        flush_pending_bytes_max: 32 * 1024,
        flush_policy: policy,
        flush_interval_ms: 20,
        checkpoint_interval_ms: 50,
        ..CommitLogConfig::default()
    }
}

/// An owned record with deterministic contents derived from `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub seq: u64,
    pub topic: Vec<u8>,
    pub keys: Vec<u8>,
    pub payload: Vec<u8>,
}

impl TestRecord {
    /// Record number `seq` with a payload of `payload_len` bytes.
    pub fn new(seq: u64, payload_len: usize) -> Self {
        let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let payload = (0..payload_len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        Self {
            seq,
            topic: format!("topic-{}", seq % 5).into_bytes(),
            keys: format!("key-{seq} uniq-{seq:x}").into_bytes(),
            payload,
        }
    }

    /// Record number `seq` whose encoded size is exactly `size` bytes (a multiple of 16, large
    /// enough for the header, topic and keys).
    pub fn with_size(seq: u64, size: u64) -> Self {
        let bare = Self::new(seq, 0).size();
        let unpadded =
            64 + format!("topic-{}", seq % 5).len() + format!("key-{seq} uniq-{seq:x}").len();
        assert!(size >= bare && size % 16 == 0, "size {size} impossible");
        let record = Self::new(seq, size as usize - unpadded);
        assert_eq!(record.size(), size);
        record
    }

    /// The record as the log's append input.
    pub fn as_append(&self) -> AppendRecord<'_> {
        AppendRecord {
            topic: &self.topic,
            queue_id: (self.seq % 4) as i32,
            queue_offset: self.seq as i64,
            tags_code: self.seq as i64 * 31,
            keys: &self.keys,
            store_timestamp_ms: 1_700_000_000_000 + self.seq as i64,
            sys_flag: 0,
            payload: &self.payload,
        }
    }

    /// Encoded size of the record.
    pub fn size(&self) -> u64 {
        encoded_size(self.topic.len(), self.keys.len(), self.payload.len())
    }
}

/// Asserts that a stored record carries exactly `expected`'s fields (compact message: no byte
/// dumps of large payloads).
pub fn assert_same(stored: &rmq_storage::commitlog::StoredRecord, expected: &TestRecord) {
    let seq = expected.seq;
    if stored.payload.as_ref() != &expected.payload[..] {
        let first_diff = stored
            .payload
            .iter()
            .zip(&expected.payload)
            .position(|(a, b)| a != b);
        panic!(
            "payload of seq {seq} differs: stored {} bytes, expected {}, first difference at {first_diff:?}",
            stored.payload.len(),
            expected.payload.len()
        );
    }
    assert_eq!(
        stored.topic.as_ref(),
        &expected.topic[..],
        "topic of seq {seq}"
    );
    assert_eq!(
        stored.keys.as_ref(),
        &expected.keys[..],
        "keys of seq {seq}"
    );
    assert_eq!(stored.queue_offset, seq as i64);
    assert_eq!(stored.queue_id, (seq % 4) as i32);
    assert_eq!(stored.tags_code, seq as i64 * 31);
    assert_eq!(stored.store_timestamp_ms, 1_700_000_000_000 + seq as i64);
    assert_eq!(u64::from(stored.size), expected.size());
}
