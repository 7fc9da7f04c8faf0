//! CommitLog configuration: flush policy, sizes and intervals, validated against the limits.
//!
//! Owns [`CommitLogConfig`] and [`FlushPolicy`]. Must never: accept a combination in which an
//! append could wait forever (a record larger than the pending bound) or the tail ring could
//! overwrite bytes not yet written.

use std::time::Duration;

use crate::error::StorageError;
use crate::limits::{
    BLOCK_SIZE_MAX, CHECKPOINT_INTERVAL_MS_DEFAULT, COMMIT_INTERVAL_MS_DEFAULT,
    FLUSH_INTERVAL_MS_DEFAULT, FLUSH_LEAST_BYTES_DEFAULT, FLUSH_PENDING_BYTES_MAX_DEFAULT,
    RECORD_SIZE_BYTES_LIMIT, RECORD_SIZE_BYTES_MAX_DEFAULT, SEGMENT_SIZE_BYTES_DEFAULT,
    SEGMENT_SIZE_BYTES_MAX, SEGMENT_SIZE_BYTES_MIN, SYNC_FLUSH_TIMEOUT_MS_DEFAULT,
    TAIL_CACHE_BYTES_DEFAULT, TAIL_CACHE_BYTES_MIN,
};

/// When appends are written and fdatasynced (RocketMQ `flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// SYNC_FLUSH: the flusher writes and fdatasyncs as soon as anything is pending; callers
    /// wait for durability with `wait_durable*` (group commit).
    Sync,
    /// ASYNC_FLUSH: written within `commit_interval_ms` of being appended (or at once when the
    /// pending bytes pass a quarter of `flush_pending_bytes_max`), fdatasynced every
    /// `flush_interval_ms` (if at least `flush_least_bytes` are not durable).
    Async,
}

/// How a new segment file's space is prepared before records are placed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preallocation {
    /// Written with zeros (O_DIRECT) and fdatasynced: later appends never hit unwritten
    /// extents, so an fdatasync never also commits extent conversions (SYNC_FLUSH latency).
    /// Costs a full segment of disk writes per segment.
    Zeroed,
    /// Reserved with `fallocate` (unwritten extents, no data written) and fdatasynced: the
    /// segment costs no writes of its own, but the first fdatasync after each write into it
    /// also commits that extent's conversion. For a slave that is catching up, whose writes
    /// are large and whose fdatasync latency delays nothing, zero-filling would double its
    /// disk writes. Falls back to [`Preallocation::Zeroed`] where `fallocate` is unsupported.
    Sparse,
}

/// Configuration of one shard's CommitLog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLogConfig {
    /// Size of each segment file (multiple of the I/O alignment).
    pub segment_size_bytes: u64,
    /// Largest encoded record accepted.
    pub record_size_max_bytes: u32,
    /// In-memory tail ring: unwritten bytes plus the most recent written ones (fixed memory).
    pub tail_cache_bytes: usize,
    /// Appended-but-unwritten bytes allowed before appends wait (back-pressure).
    pub flush_pending_bytes_max: usize,
    /// Sync or async flushing.
    pub flush_policy: FlushPolicy,
    /// Async flush interval (RocketMQ `flushIntervalCommitLog`).
    pub flush_interval_ms: u64,
    /// Async flush: appended bytes are written (not fdatasynced) within this many milliseconds
    /// (RocketMQ `commitIntervalCommitLog`); bounds what a process crash can lose.
    pub commit_interval_ms: u64,
    /// Async flush: least pending bytes for an interval flush (RocketMQ
    /// `flushCommitLogLeastPages` × 4 KiB).
    pub flush_least_bytes: usize,
    /// Async flush: flush whatever is pending if the last flush is older than this (RocketMQ
    /// `flushCommitLogThoroughInterval`).
    pub flush_thorough_interval_ms: u64,
    /// How long `wait_durable_timeout` callers wait by default (RocketMQ `syncFlushTimeout`).
    pub sync_flush_timeout_ms: u64,
    /// Minimum time between checkpoint rewrites while the durable mark advances.
    pub checkpoint_interval_ms: u64,
    /// How segments are prepared when the log opens (changed later with
    /// `CommitLog::set_preallocation`, e.g. by a slave once it caught up).
    pub preallocation: Preallocation,
}

impl Default for CommitLogConfig {
    fn default() -> Self {
        Self {
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            record_size_max_bytes: RECORD_SIZE_BYTES_MAX_DEFAULT,
            tail_cache_bytes: TAIL_CACHE_BYTES_DEFAULT,
            flush_pending_bytes_max: FLUSH_PENDING_BYTES_MAX_DEFAULT,
            flush_policy: FlushPolicy::Async,
            flush_interval_ms: FLUSH_INTERVAL_MS_DEFAULT,
            commit_interval_ms: COMMIT_INTERVAL_MS_DEFAULT,
            flush_least_bytes: FLUSH_LEAST_BYTES_DEFAULT,
            flush_thorough_interval_ms: 10 * 1_000,
            sync_flush_timeout_ms: SYNC_FLUSH_TIMEOUT_MS_DEFAULT,
            checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS_DEFAULT,
            preallocation: Preallocation::Zeroed,
        }
    }
}

impl CommitLogConfig {
    /// The default sync-flush timeout as a `Duration`.
    #[must_use]
    pub fn sync_flush_timeout(&self) -> Duration {
        Duration::from_millis(self.sync_flush_timeout_ms)
    }

    /// Checks every value and the relations between them for I/O alignment `alignment`.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] naming the first violated rule.
    pub fn validate(&self, alignment: usize) -> Result<(), StorageError> {
        let invalid = |message: String| Err(StorageError::InvalidConfig(message));
        let align = alignment as u64;
        if !(SEGMENT_SIZE_BYTES_MIN..=SEGMENT_SIZE_BYTES_MAX).contains(&self.segment_size_bytes) {
            return invalid(format!(
                "segment_size_bytes {} out of range",
                self.segment_size_bytes
            ));
        }
        if self.segment_size_bytes % align != 0
            || self.segment_size_bytes % BLOCK_SIZE_MAX as u64 != 0
        {
            return invalid(format!(
                "segment_size_bytes {} not a multiple of 64 KiB",
                self.segment_size_bytes
            ));
        }
        let record_max = u64::from(self.record_size_max_bytes);
        if self.record_size_max_bytes < 128 || self.record_size_max_bytes > RECORD_SIZE_BYTES_LIMIT
        {
            return invalid(format!("record_size_max_bytes {record_max} out of range"));
        }
        if record_max * 2 > self.segment_size_bytes {
            return invalid("a segment must hold at least two maximal records".into());
        }
        if self.tail_cache_bytes < TAIL_CACHE_BYTES_MIN
            || self.tail_cache_bytes % BLOCK_SIZE_MAX != 0
        {
            return invalid(format!(
                "tail_cache_bytes {} must be >= 64 KiB and a multiple of it",
                self.tail_cache_bytes
            ));
        }
        // A record plus the filler before it must fit in the pending bound, or it never fits.
        if (self.flush_pending_bytes_max as u64) < record_max * 2 {
            return invalid("flush_pending_bytes_max must hold two maximal records".into());
        }
        // The ring holds every unwritten byte plus the last partly written block, and a record
        // that straddles the cached window's floor must already be written to disk.
        if self.flush_pending_bytes_max as u64 + record_max + BLOCK_SIZE_MAX as u64
            > self.tail_cache_bytes as u64
        {
            return invalid(
                "tail_cache_bytes must exceed flush_pending_bytes_max + record_size_max + 64 KiB"
                    .into(),
            );
        }
        if self.flush_interval_ms == 0
            || self.commit_interval_ms == 0
            || self.sync_flush_timeout_ms == 0
        {
            return invalid("intervals and timeouts must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        CommitLogConfig::default()
            .validate(4096)
            .expect("default config");
    }

    #[test]
    fn rejects_inconsistent_sizes() {
        let small = CommitLogConfig {
            segment_size_bytes: 1 << 20,
            record_size_max_bytes: 64 * 1024,
            tail_cache_bytes: 1 << 20,
            flush_pending_bytes_max: 256 * 1024,
            ..CommitLogConfig::default()
        };
        small.validate(4096).expect("small config is consistent");
        let cases = [
            CommitLogConfig {
                segment_size_bytes: 100_000,
                ..small.clone()
            },
            CommitLogConfig {
                record_size_max_bytes: 1 << 20,
                ..small.clone()
            },
            CommitLogConfig {
                flush_pending_bytes_max: 64 * 1024,
                ..small.clone()
            },
            CommitLogConfig {
                tail_cache_bytes: 256 * 1024,
                ..small.clone()
            },
            CommitLogConfig {
                flush_interval_ms: 0,
                ..small.clone()
            },
            CommitLogConfig {
                commit_interval_ms: 0,
                ..small.clone()
            },
        ];
        for case in cases {
            assert!(case.validate(4096).is_err(), "{case:?}");
        }
    }
}
