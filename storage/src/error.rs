//! The storage crate's error type.
//!
//! Owns [`StorageError`], the one error enum every public storage API returns. Variants carry what
//! is needed to debug (operation, path, offset, expected / actual). The type is `Send + Sync +
//! Clone` so a poisoned CommitLog can hand the same failure to every waiter, and so the broker can
//! move it across cores or wrap it in `anyhow` at the binary edge.
//!
//! Must never: depend on protocol or network types, or hide an `io::Error` kind that a caller
//! needs (disk full is its own variant).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Every failure a storage API can return.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed. `offset` is the file offset of the call (0 when not positional).
    #[error("{op} failed on {path} at offset {offset}: {source}")]
    Io {
        /// Which call: "write", "read", "fdatasync", "open", "rename", ...
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// File offset of a positional call, else 0.
        offset: u64,
        /// The OS error (shared so the error can be cloned to several waiters).
        #[source]
        source: Arc<io::Error>,
    },

    /// The disk has no room for a new segment (or other file). Nothing already appended is
    /// touched; appends work again once space is freed (retention, operator action).
    #[error("disk full: cannot allocate {needed_bytes} bytes for {path}")]
    DiskFull {
        /// The file that could not be created or extended.
        path: PathBuf,
        /// How many bytes were asked for.
        needed_bytes: u64,
    },

    /// An earlier write or fdatasync failed: a CommitLog accepts no more appends, and after a
    /// failed consume-queue fdatasync the store writes no more checkpoints, until reopened
    /// (recovery trusts only CRC-valid records and rebuilds from the last good checkpoint). See
    /// "fsyncgate".
    #[error("poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// Rendering of the first failure.
        cause: Arc<str>,
    },

    /// A record is larger than the configured maximum.
    #[error("record of {size_bytes} bytes exceeds the maximum of {size_max_bytes} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size_bytes: u64,
        /// The configured limit.
        size_max_bytes: u64,
    },

    /// A field of a record to append is out of its limits (topic too long, ...).
    #[error("invalid record field {field}: {reason}")]
    InvalidRecord {
        /// The field name.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A new consume queue would pass the store's queue limit (`queues_max`, at most
    /// `CQ_QUEUES_MAX` per shard); nothing was appended. Existing queues keep working, and
    /// deleting topics makes room. An operating limit, not a bad request: the broker answers it
    /// as a system error.
    #[error(
        "consume queue {topic}/{queue_id} not created: the store already holds its limit of {limit} queues"
    )]
    QueuesExhausted {
        /// Topic of the queue that was refused.
        topic: String,
        /// Queue id of the queue that was refused.
        queue_id: i32,
        /// The store's queue limit.
        limit: usize,
    },

    /// A read asked for an offset outside the log.
    #[error("offset {offset} outside the log [{min_offset}, {max_offset})")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The first offset still stored.
        min_offset: u64,
        /// One past the last appended byte.
        max_offset: u64,
    },

    /// A read asked for an offset where no valid record starts (not a record boundary, an
    /// end-of-segment filler, or damaged bytes).
    #[error("no valid record at offset {offset}: {reason}")]
    NotARecord {
        /// The offset asked for.
        offset: u64,
        /// What check failed.
        reason: String,
    },

    /// No CommitLog entry (record or filler) starts at this offset: not an entry boundary, or
    /// the bytes there are damaged. Replication reads and truncation must start at one.
    #[error("no CommitLog entry starts at offset {offset}: {reason}")]
    NotAnEntry {
        /// The offset asked for.
        offset: u64,
        /// What check failed.
        reason: String,
    },

    /// Replicated bytes must continue the log exactly at its end; nothing was placed.
    #[error("replication gap: the log ends at {expected}, the replicated bytes start at {got}")]
    ReplicationGap {
        /// The log's appended end (where the bytes must start).
        expected: u64,
        /// Where they start.
        got: u64,
    },

    /// A replicated chunk was refused: one of its entries failed validation. Nothing of the
    /// chunk was placed.
    #[error("replicated entry at offset {offset} refused: {refusal}")]
    ReplicationRefused {
        /// Log offset of the first entry that failed.
        offset: u64,
        /// Which check failed.
        refusal: ReplicationRefusal,
    },

    /// Bytes on disk (or in a read) failed validation: bad length, CRC, magic or position.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// Log or file offset of the bad bytes.
        offset: u64,
        /// What check failed.
        reason: String,
    },

    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid storage config: {0}")]
    InvalidConfig(String),

    /// The log was closed (or abandoned) and accepts no more calls.
    #[error("commit log is closed")]
    Closed,
}

/// Why a replicated chunk was refused ([`StorageError::ReplicationRefused`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationRefusal {
    /// The chunk is larger than the store accepts in one call.
    #[error("chunk of {len} bytes exceeds the maximum of {max} bytes")]
    ChunkTooLarge {
        /// Bytes in the chunk.
        len: usize,
        /// The limit (`REPLICATION_CHUNK_BYTES_MAX`, or one record if larger).
        max: usize,
    },
    /// The entry does not parse: bad length, magic, CRC, own offset or padding.
    #[error("not a valid entry: {0}")]
    Malformed(String),
    /// The chunk ends inside an entry.
    #[error("the chunk ends inside an entry of {needed} bytes ({available} left in the chunk)")]
    Incomplete {
        /// Bytes the entry needs.
        needed: u64,
        /// Bytes left in the chunk.
        available: u64,
    },
    /// The entry's generation is below the last entry's in the log (or in the chunk).
    #[error("generation {got} below the previous entry's {last}")]
    GenerationDecreased {
        /// Generation of the entry before it.
        last: u32,
        /// The entry's generation.
        got: u32,
    },
    /// A record would straddle this log's segment end: the master's segments are larger.
    #[error("entry ending at {entry_end} crosses the segment end {segment_end}: master and slave segment sizes differ")]
    CrossesSegmentEnd {
        /// End of this log's segment holding the entry.
        segment_end: u64,
        /// Where the entry ends.
        entry_end: u64,
    },
    /// A filler does not end where this log's segment ends: the segment sizes differ (or the
    /// filler is longer than a record, which no master writes).
    #[error("filler ending at {filler_end} but the segment ends at {segment_end}: master and slave segment sizes differ")]
    FillerMisplaced {
        /// End of this log's segment holding the filler.
        segment_end: u64,
        /// Where the filler ends.
        filler_end: u64,
    },
    /// The record's queue offset is not the next one of its queue here: the slave's consume
    /// queue and the master's disagree.
    #[error("record for {topic}/{queue_id} at queue offset {got}, but the queue's next offset is {expected}")]
    QueueOffsetMismatch {
        /// Topic.
        topic: String,
        /// Queue id.
        queue_id: i32,
        /// The slave's next queue offset.
        expected: u64,
        /// The record's queue offset.
        got: i64,
    },
    /// A record field no queue can take (topic charset, negative queue id, ...).
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The chunk needs more new queues than the store may still create.
    #[error("the chunk needs {needed} new queues, only {available} more may be created")]
    QueuesExhausted {
        /// New queues the chunk needs.
        needed: usize,
        /// Queues the store may still create.
        available: usize,
    },
}

impl StorageError {
    /// Builds [`StorageError::Io`], or [`StorageError::DiskFull`] when the OS said ENOSPC /
    /// EDQUOT (so callers can match on it without inspecting errno).
    #[must_use]
    pub fn io(op: &'static str, path: impl Into<PathBuf>, offset: u64, source: io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            return StorageError::DiskFull {
                path,
                needed_bytes: 0,
            };
        }
        StorageError::Io {
            op,
            path,
            offset,
            source: Arc::new(source),
        }
    }

    /// `true` for [`StorageError::DiskFull`].
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::DiskFull { .. })
    }
}

/// `true` if the OS error means "no space" (ENOSPC) or "quota exceeded" (EDQUOT).
#[must_use]
pub fn is_disk_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || error.kind() == io::ErrorKind::StorageFull
}

/// Result alias for storage calls.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_disk_full() {
        let error = StorageError::io("write", "/x", 0, io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(error.is_disk_full());
        let error = StorageError::io("write", "/x", 7, io::Error::from_raw_os_error(libc::EIO));
        assert!(!error.is_disk_full());
        assert!(error.to_string().contains("write failed on /x at offset 7"));
    }

    #[test]
    fn queues_exhausted_names_the_queue_and_the_limit() {
        let error = StorageError::QueuesExhausted {
            topic: "T".into(),
            queue_id: 3,
            limit: 65_536,
        };
        assert_eq!(
            error.to_string(),
            "consume queue T/3 not created: the store already holds its limit of 65536 queues"
        );
    }

    #[test]
    fn error_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<StorageError>();
    }
}
