//! Named limits and defaults for the storage crate, with the relations between them checked at
//! compile time.
//!
//! Owns every size, count and interval constant the CommitLog and its files use; each has a doc
//! line saying why it has its value. Configurable values have a `*_DEFAULT` here and are
//! validated against the hard limits when a config is built.
//!
//! Must never: hold runtime state or read the environment.

/// Smallest I/O alignment we use, even if the device reports 512-byte logical blocks: 4 KiB is
/// the page size and the physical block size of every current SSD, so aligned 4 KiB writes never
/// cause read-modify-write in the device.
pub const BLOCK_SIZE_MIN: usize = 4096;

/// Largest logical block size we accept from a device; larger values mean a misread sysfs file.
pub const BLOCK_SIZE_MAX: usize = 64 * 1024;

/// Default CommitLog segment size (RocketMQ `mappedFileSizeCommitLog`, 1 GiB).
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 1 << 30;

/// Smallest segment size accepted (tests use small segments to exercise rolling).
pub const SEGMENT_SIZE_BYTES_MIN: u64 = 64 * 1024;

/// Largest segment size accepted; keeps one segment's zero-fill and scan bounded.
pub const SEGMENT_SIZE_BYTES_MAX: u64 = 64 << 30;

/// Local (per-shard) physical offsets use 56 bits; the broker puts the shard id in the top 8
/// (docs/architecture.md). A log may never grow past this.
pub const LOCAL_OFFSET_LIMIT: u64 = 1 << 56;

/// Digits in a segment file name (its 20-digit zero-padded start offset, as RocketMQ names them).
pub const SEGMENT_NAME_DIGITS: usize = 20;

/// Default maximum encoded record size: RocketMQ's `maxMessageSize` (4 MiB) plus room for the
/// topic, keys and the broker's message envelope inside the payload.
pub const RECORD_SIZE_BYTES_MAX_DEFAULT: u32 = 4 * 1024 * 1024 + 64 * 1024;

/// Hard ceiling for the configurable record size (a record must fit in one write buffer).
pub const RECORD_SIZE_BYTES_LIMIT: u32 = 64 * 1024 * 1024;

/// Topic names are at most 255 bytes: RocketMQ's `%RETRY%`/`%DLQ%` names may be that long
/// (`RETRY_OR_DLQ_TOPIC_MAX_LENGTH`; ordinary ones 127), and 255 is also the longest file name
/// (the consume queue's directory is named after the topic). The length is a `u16` on disk.
pub const TOPIC_LEN_MAX: usize = 255;

/// Space-separated index keys; length stored as `u16` on disk.
pub const KEYS_LEN_MAX: usize = u16::MAX as usize;

/// Default in-memory tail (ring) of the CommitLog: holds every byte not yet written plus the most
/// recent written bytes, so recent reads never touch the disk. Memory use is this, fixed.
pub const TAIL_CACHE_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

/// Smallest tail ring accepted.
pub const TAIL_CACHE_BYTES_MIN: usize = 64 * 1024;

/// Default bound on appended-but-not-written bytes (`flush_pending_bytes_max`); an append that
/// would exceed it waits (back-pressure). Half the ring, so reads of the most recent half never
/// go to disk even when the flusher lags.
pub const FLUSH_PENDING_BYTES_MAX_DEFAULT: usize = TAIL_CACHE_BYTES_DEFAULT / 2;

/// Async flush: write + fdatasync every this many milliseconds (RocketMQ
/// `flushIntervalCommitLog`).
pub const FLUSH_INTERVAL_MS_DEFAULT: u64 = 500;

/// Async flush: appended bytes are written (O_DIRECT, no fdatasync) at most this many
/// milliseconds after they were appended (RocketMQ `commitIntervalCommitLog`, the interval at
/// which its transient store pool is committed to the file). Bytes written survive a crash of
/// the process (not of the machine), so this bounds what a SIGKILL under ASYNC_FLUSH can lose
/// (plus the write's own time and CPU scheduling delay: writes do not wait for an fdatasync).
pub const COMMIT_INTERVAL_MS_DEFAULT: u64 = 10;

/// Async flush: on the interval, flush only if at least this many bytes are pending (RocketMQ
/// `flushCommitLogLeastPages` = 4 pages of 4 KiB).
pub const FLUSH_LEAST_BYTES_DEFAULT: usize = 4 * 4096;

/// Async flush also starts at once when pending bytes reach `flush_pending_bytes_max / this`, so
/// a fast producer never waits for the interval to find the buffer full.
pub const FLUSH_EAGER_DIVISOR: usize = 4;

/// How long a SYNC_FLUSH append waits for its fdatasync before the caller is told
/// FLUSH_DISK_TIMEOUT (RocketMQ `syncFlushTimeout`, 5 s).
pub const SYNC_FLUSH_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// One flush round is split into O_DIRECT writes of at most this size, submitted together, so a
/// large round keeps several requests in the device queue.
pub const WRITE_CHUNK_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Async flush streams whole blocks with at most this many O_DIRECT writes in flight (a deep
/// enough device queue without flooding it; matches the raw baseline in the benchmark).
pub const STREAM_WRITES_IN_FLIGHT: usize = 4;

/// While writes are in flight, the streamer waits until at least this many whole bytes are
/// pending before it submits another write (no trickle of tiny writes).
pub const STREAM_PIECE_BYTES_MIN: usize = 256 * 1024;

/// Zero-fill of a new segment is done in writes of this size (one buffer, reused). Smaller
/// writes were measured and rejected (`perf-reports/2026-12-07-sync-waits/`): 1 MiB cost a
/// broker writing 16 KiB messages 10-21 % more CPU per message (4x the extending writes, each
/// handed to an io_uring worker on the shard's core), and 256 KiB cost a 1 KiB workload ~10 %
/// of its throughput and p99.9 of 38-58 ms. What they were tried for, a slave's Acks stalling
/// behind its own zero-fill, is solved by not zero-filling there (`src/ha/slave.rs`).
pub const PREALLOCATE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// The recovery scan reads the log in O_DIRECT reads of this size.
pub const RECOVERY_READ_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// A single `read_batch` returns at most this many bytes of records (bounds one read buffer).
pub const READ_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Replication: one chunk of shipped log bytes (`read_log`) or placed ones (`append_replicated`)
/// holds at most this many bytes, unless its single entry is larger (at most one record). It
/// bounds the memory one shipping step takes on either side (about twice this: the aligned
/// read buffer and the chunk) whatever the backlog, and is the same as a reput batch: large
/// enough that per-chunk costs (a round trip, a dispatch) stay small next to 8 MiB of copying.
pub const REPLICATION_CHUNK_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Read buffers smaller than this are allocated (zeroed) each time, not pooled
/// (`AlignedBuf::for_read`): small blocks come from the allocator's caches, already faulted in.
pub const READ_POOL_MIN_BYTES: usize = 256 * 1024;

/// Pooled read buffers are rounded up to a multiple of this, so nearby sizes share buffers.
pub const READ_POOL_GRANULE_BYTES: usize = 256 * 1024;

/// Most bytes a thread keeps in its pool of idle read buffers (a buffer freed past it is
/// returned to the allocator): at most this much memory per shard beyond what reads in flight
/// hold, whatever the backlog.
pub const READ_POOL_BYTES_MAX: usize = 32 * 1024 * 1024;

/// One coalesced read of `CommitLog::read_many` (a pull of one queue's records) covers at most
/// this many bytes, gaps between the wanted records included: one 1 MiB O_DIRECT read instead of
/// hundreds of 4 KiB ones for a cold pull.
pub const READ_SPAN_BYTES_MAX: u64 = 1024 * 1024;

/// A checkpoint file's payload is at most this large (they hold offsets, not data).
pub const CHECKPOINT_BYTES_MAX: usize = 1024 * 1024;

/// The CommitLog checkpoint is rewritten at most this often while the durable mark advances.
pub const CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 1_000;

/// Retention: keep segments at least this many hours after their last write (RocketMQ
/// `fileReservedTime`).
pub const FILE_RESERVED_TIME_HOURS_DEFAULT: u64 = 72;

/// Retention: local hour at which expired segments are deleted (RocketMQ `deleteWhen` = "04").
pub const DELETE_WHEN_HOUR_DEFAULT: u8 = 4;

/// Retention: above this percentage of the disk in use, the oldest segments are deleted even if
/// not expired (RocketMQ `diskMaxUsedSpaceRatio`).
pub const DISK_MAX_USED_SPACE_RATIO_PERCENT_DEFAULT: u8 = 75;

/// Retention: at most this many segments are deleted per call, so one call stays short
/// (RocketMQ `deleteCommitLogFilesInterval` batches).
pub const SEGMENTS_DELETED_PER_CALL_MAX: usize = 10;

const _: () = {
    assert!(
        BLOCK_SIZE_MIN.is_power_of_two(),
        "O_DIRECT alignment must be a power of two"
    );
    assert!(
        BLOCK_SIZE_MAX.is_power_of_two(),
        "O_DIRECT alignment must be a power of two"
    );
    assert!(BLOCK_SIZE_MIN <= BLOCK_SIZE_MAX);
    assert!(
        SEGMENT_SIZE_BYTES_MIN % BLOCK_SIZE_MAX as u64 == 0,
        "segments are block multiples"
    );
    assert!(SEGMENT_SIZE_BYTES_DEFAULT % BLOCK_SIZE_MAX as u64 == 0);
    assert!(SEGMENT_SIZE_BYTES_MAX < LOCAL_OFFSET_LIMIT);
    assert!(SEGMENT_SIZE_BYTES_DEFAULT >= RECORD_SIZE_BYTES_MAX_DEFAULT as u64 * 2);
    assert!(RECORD_SIZE_BYTES_MAX_DEFAULT <= RECORD_SIZE_BYTES_LIMIT);
    assert!(
        FLUSH_PENDING_BYTES_MAX_DEFAULT >= RECORD_SIZE_BYTES_MAX_DEFAULT as usize * 2,
        "a maximal record must fit in the pending bound, else an append waits forever"
    );
    assert!(FLUSH_PENDING_BYTES_MAX_DEFAULT <= TAIL_CACHE_BYTES_DEFAULT - BLOCK_SIZE_MAX);
    assert!(
        TAIL_CACHE_BYTES_DEFAULT % BLOCK_SIZE_MAX == 0,
        "the ring is a block multiple"
    );
    assert!(TAIL_CACHE_BYTES_MIN % BLOCK_SIZE_MAX == 0);
    assert!(WRITE_CHUNK_BYTES_MAX % BLOCK_SIZE_MAX == 0);
    assert!(
        STREAM_PIECE_BYTES_MIN % BLOCK_SIZE_MAX == 0
            && STREAM_PIECE_BYTES_MIN <= WRITE_CHUNK_BYTES_MAX
    );
    assert!(STREAM_WRITES_IN_FLIGHT >= 1);
    assert!(PREALLOCATE_CHUNK_BYTES % BLOCK_SIZE_MAX == 0);
    assert!(RECOVERY_READ_CHUNK_BYTES >= RECORD_SIZE_BYTES_MAX_DEFAULT as usize / 2);
    assert!(READ_BATCH_BYTES_MAX >= RECORD_SIZE_BYTES_MAX_DEFAULT as usize + BLOCK_SIZE_MAX);
    assert!(TOPIC_LEN_MAX <= u16::MAX as usize);
    assert!(
        REPLICATION_CHUNK_BYTES_MAX >= RECORD_SIZE_BYTES_MAX_DEFAULT as usize,
        "a chunk holds at least one record of the default maximum"
    );
    assert!(
        REPLICATION_CHUNK_BYTES_MAX % BLOCK_SIZE_MAX == 0,
        "a chunk read is whole blocks"
    );
    assert!(FLUSH_EAGER_DIVISOR >= 2);
    assert!(DELETE_WHEN_HOUR_DEFAULT < 24);
    assert!(DISK_MAX_USED_SPACE_RATIO_PERCENT_DEFAULT <= 100);
};

/// Most records one read of a record-filtered pull ([`crate::store::TagFilter::Records`], SQL92)
/// fetches before the filter runs: the unit of work between filter checks.
pub const FILTER_READ_BATCH_RECORDS: usize = 64;

/// Most record bytes one record-filtered pull reads in all (matched or not), besides the
/// [`crate::store::GET_SCAN_ENTRIES_MAX`] entries bound: a filter that rejects large records
/// cannot make one pull read the whole queue.
pub const FILTER_SCAN_BYTES_MAX: u64 = 16 * 1024 * 1024;
