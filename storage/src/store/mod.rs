//! The store facade of one shard: `append -> CommitLog -> reput into ConsumeQueues and the
//! Index`, pulls by queue offset with RocketMQ's status table, offset and time lookups, key
//! queries, long-poll wakeups, checkpoints, recovery and retention.
//!
//! Directory layout under `root`: `commitlog/` (segments, its own checkpoint and abort marker),
//! `consumequeue/<topic>/<queue_id>/`, `index/`, and `store.checkpoint` (consume-queue offsets
//! and how far queues and index are durable). Offsets are shard-local (the broker adds the
//! shard bits to physical offsets).
//!
//! Write path ([`Store::append`]): the queue offset is assigned and the record placed with no
//! `.await` between (queue offsets follow CommitLog order); then reput reads the records back
//! from the CommitLog in log order (from its tail cache), checks them and dispatches them into
//! the consume queue, the index and the long-poll waiters; SYNC_FLUSH then waits for the
//! fdatasync covering the record (`Durable` or `FlushTimeout`). Recovery ([`Store::open`]):
//! the CommitLog validates its records; consume queues and index are trusted up to their
//! checkpoint (and only as far as their files prove), and the CommitLog is replayed from there.
//! Replication (`replication.rs`): the master ships raw entries (`read_log`), the slave
//! appends them verbatim (`append_replicated`, then the same reput), either truncates to a
//! common prefix (`truncate_to`).
//!
//! Threading: owned by one shard, `!Send`; state lives in `RefCell`s never borrowed across an
//! `.await`; appends, reput, block writes and checkpoints are each serialised by an async lock.
//! Must never: know the remoting protocol (payloads are opaque), keep per-message memory for the
//! backlog, return an index hit whose record does not carry the key, or write a checkpoint that
//! claims more than the files hold.

mod append;
pub mod checkpoint_file;
pub mod failure_log;
mod get;
pub mod notify;
mod recovery;
mod replication;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::fifo_lock::FifoLock;

use self::failure_log::{FailureStreak, Report};
pub use get::{
    GetRequest, GetResult, GetStatus, QueryResult, RecordFilter, TagFilter, GET_SCAN_ENTRIES_MAX,
};
pub use replication::PlacedChunk;

use crate::commitlog::{
    CommitLog, CommitLogConfig, RecoveryReport, RetentionClock, RetentionOutcome, RetentionPolicy,
    StoredRecord,
};
use crate::consume_queue::ops::CqStore;
use crate::consume_queue::search::Boundary;
use crate::consume_queue::{
    CQ_BLOCK_CACHE_BLOCKS_DEFAULT, CQ_ENTRIES_PER_FILE_DEFAULT, CQ_QUEUES_MAX,
};
use crate::error::{Result, StorageError};
use crate::file::Disk;
use crate::index::{Index, INDEX_ACTIVE_ENTRIES_DEFAULT};

use self::checkpoint_file::StoreCheckpoint;
use self::notify::Notifier;

/// Subdirectory of the CommitLog.
pub const COMMITLOG_DIR: &str = "commitlog";
/// Subdirectory of the consume queues.
pub const CONSUME_QUEUE_DIR: &str = "consumequeue";
/// Subdirectory of the index.
pub const INDEX_DIR: &str = "index";

/// Reput reads the CommitLog in batches of about this many bytes (bounds one read buffer).
pub const REPUT_BATCH_BYTES: usize = 1024 * 1024;

const _: () = {
    assert!(
        crate::index::INDEX_KEYS_PER_RECORD_MAX <= INDEX_ACTIVE_ENTRIES_DEFAULT,
        "one record's keys must fit an empty index table, or it could never be indexed"
    );
    assert!(
        GET_SCAN_ENTRIES_MAX >= crate::consume_queue::entry::ENTRIES_PER_BLOCK,
        "a filtered pull scans at least one consume-queue block"
    );
    assert!(
        REPUT_BATCH_BYTES <= crate::limits::READ_BATCH_BYTES_MAX,
        "reput asks the CommitLog for no more than one read batch"
    );
    assert!(
        notify::LONG_POLL_WAITERS_PER_QUEUE_MAX <= notify::LONG_POLL_WAITERS_MAX,
        "per-queue waiter cap within the store cap"
    );
};

/// Configuration of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory.
    pub root: PathBuf,
    /// The CommitLog's configuration (flush policy, segment size, tail cache, ...).
    pub commitlog: CommitLogConfig,
    /// Entries per consume-queue file (multiple of 128).
    pub cq_entries_per_file: u64,
    /// Consume-queue block cache, in 4 KiB blocks.
    pub cq_block_cache_blocks: usize,
    /// Full consume-queue blocks that start a write round from the append path
    /// ([`crate::consume_queue::CQ_WRITE_START_BLOCKS`] by default).
    pub cq_write_start_blocks: usize,
    /// Most queues this store owns.
    pub queues_max: usize,
    /// Index entries held in memory before a sealed file is written.
    pub index_active_entries_max: usize,
}

impl StoreConfig {
    /// Defaults under `root`.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            commitlog: CommitLogConfig::default(),
            cq_entries_per_file: CQ_ENTRIES_PER_FILE_DEFAULT,
            cq_block_cache_blocks: CQ_BLOCK_CACHE_BLOCKS_DEFAULT,
            cq_write_start_blocks: crate::consume_queue::CQ_WRITE_START_BLOCKS,
            queues_max: CQ_QUEUES_MAX,
            index_active_entries_max: INDEX_ACTIVE_ENTRIES_DEFAULT,
        }
    }
}

/// One message to append.
#[derive(Debug, Clone, Copy)]
pub struct AppendMessage<'a> {
    /// Topic (RocketMQ charset `[%|a-zA-Z0-9_-]`, at most `TOPIC_LEN_MAX` bytes).
    pub topic: &'a str,
    /// Queue id (>= 0).
    pub queue_id: i32,
    /// Tag hash (Java `String.hashCode` of the tag; 0 when untagged).
    pub tags_code: i64,
    /// Space-separated index keys, including the unique key.
    pub keys: &'a str,
    /// Store timestamp in ms; `None`: the store uses the current time.
    pub store_timestamp_ms: Option<i64>,
    /// RocketMQ `MessageSysFlag`, stored as given.
    pub sys_flag: i32,
    /// The broker's encoded message, opaque to storage.
    pub payload: &'a [u8],
}

/// One message of a batch (all go to one queue, with consecutive queue offsets).
#[derive(Debug, Clone, Copy)]
pub struct BatchMessage<'a> {
    /// Tag hash.
    pub tags_code: i64,
    /// Space-separated index keys.
    pub keys: &'a str,
    /// `MessageSysFlag`.
    pub sys_flag: i32,
    /// Opaque payload.
    pub payload: &'a [u8],
}

/// Whether an append waits for the flush its policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitForFlush {
    /// SYNC_FLUSH waits for durability, ASYNC_FLUSH does not.
    AsPolicy,
    /// Return once appended and readable (RocketMQ `WAIT=false`).
    No,
}

/// How durable an appended message is when the append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// SYNC_FLUSH: covered by a completed fdatasync.
    Durable,
    /// SYNC_FLUSH: not durable within the sync-flush timeout (RocketMQ FLUSH_DISK_TIMEOUT);
    /// the message is stored and will still be flushed.
    FlushTimeout,
    /// ASYNC_FLUSH: appended (readable); the flusher makes it durable on its interval.
    Appended,
}

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// CommitLog (shard-local) offset.
    pub phys_offset: u64,
    /// Queue offset.
    pub queue_offset: u64,
    /// Encoded record size.
    pub size: u32,
    /// Store timestamp used.
    pub store_timestamp_ms: i64,
    /// Durability at return.
    pub durability: Durability,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Queue offset of the first message (the others follow consecutively).
    pub first_queue_offset: u64,
    /// (phys offset, size) per message, in order.
    pub records: Vec<(u64, u32)>,
    /// Store timestamp used for every message.
    pub store_timestamp_ms: i64,
    /// Durability at return (of the whole batch).
    pub durability: Durability,
}

/// Outcome of waiting for new messages in a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The queue's max offset passed the offset waited for.
    Arrived,
    /// Too many waiters on this queue or store: reply now.
    Overloaded,
    /// The store is closing.
    Closed,
}

/// What recovery did at open.
#[derive(Debug, Clone)]
pub struct StoreRecovery {
    /// The CommitLog's report.
    pub commitlog: RecoveryReport,
    /// A store checkpoint was found and used.
    pub checkpoint_found: bool,
    /// CommitLog offset replay started from.
    pub replay_from: u64,
    /// Records replayed.
    pub records_replayed: u64,
    /// Queues whose files had lost entries (rebuilt by replay).
    pub queues_repaired: usize,
}

/// One shard's store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    disk: Disk,
    log: CommitLog,
    cqs: Rc<CqStore>,
    index: Rc<Index>,
    /// The task writing the index table set aside by the last `begin_seal`.
    seal_task: RefCell<Option<compio::runtime::JoinHandle<()>>>,
    notifier: Rc<Notifier>,
    closed: Rc<Cell<bool>>,
    /// Next CommitLog offset to dispatch.
    reput_phys: Cell<u64>,
    reput_lock: FifoLock,
    append_lock: FifoLock,
    checkpoint_lock: FifoLock,
    /// Next queue offset of queues with records placed but not dispatched yet.
    inflight: RefCell<append::Inflight>,
    /// (store timestamp, phys offset) of the last dispatched record.
    last_dispatch: Cell<(i64, u64)>,
    /// Checkpoints failing in a row (rate-limited logging, recovery report).
    checkpoint_failures: RefCell<FailureStreak>,
    /// Consume-queue block writes after a reput failing in a row.
    block_write_failures: RefCell<FailureStreak>,
    /// Truncations so far: a chunk placed before one is not dispatched after it (the
    /// truncation dispatched or dropped its records).
    truncations: Cell<u64>,
}

impl Store {
    /// Opens (or creates) the store: recovers the CommitLog, loads consume queues and index
    /// from their checkpoint, replays the CommitLog past it, and writes a fresh checkpoint.
    /// Must run inside the shard's compio runtime.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`], I/O errors, [`StorageError::Corrupt`] when data on disk
    /// contradicts itself beyond what recovery repairs.
    pub async fn open(config: StoreConfig, disk: Disk) -> Result<(Self, StoreRecovery)> {
        recovery::open(config, disk).await
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CommitLog (offsets, flush state; appends go through the store).
    #[must_use]
    pub fn commitlog(&self) -> &CommitLog {
        &self.log
    }

    /// (min offset, max offset) of a queue; `None` for an unknown queue.
    #[must_use]
    pub fn offsets(&self, topic: &str, queue_id: i32) -> Option<(u64, u64)> {
        self.cqs.with(|queues| queues.offsets(topic, queue_id))
    }

    /// First retained queue offset (0 for an unknown queue, as Java).
    #[must_use]
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> u64 {
        self.offsets(topic, queue_id).map_or(0, |(min, _)| min)
    }

    /// Next queue offset to be written (0 for an unknown queue, as Java).
    #[must_use]
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> u64 {
        self.offsets(topic, queue_id).map_or(0, |(_, max)| max)
    }

    /// Creates an empty queue (offsets 0..0) if it does not exist, so pulls see it as
    /// `NoMessageInQueue` (as Java's lazily created queues) rather than unknown.
    ///
    /// # Errors
    /// [`StorageError::InvalidRecord`] for a bad topic or queue id;
    /// [`StorageError::QueuesExhausted`] past `queues_max`.
    pub fn create_queue(&self, topic: &str, queue_id: i32) -> Result<()> {
        validate_topic(topic)?;
        validate_queue_id(queue_id)?;
        self.cqs.with(|queues| queues.ensure_queue(topic, queue_id))
    }

    /// Queue ids of `topic` this store holds.
    #[must_use]
    pub fn queue_ids(&self, topic: &str) -> Vec<i32> {
        self.cqs.with(|queues| queues.queue_ids(topic))
    }

    /// Queue offset by store timestamp (PROTOCOL.md §4.5): `Lower` = first offset stored at or
    /// after `timestamp_ms` (max offset if all are older); `Upper` = last offset stored at or
    /// before it (min offset if all are newer). 0 for an unknown queue.
    ///
    /// # Errors
    /// I/O errors reading consume-queue blocks, or a corrupt entry.
    pub async fn search_offset_by_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp_ms: i64,
        boundary: Boundary,
    ) -> Result<u64> {
        let found = self
            .cqs
            .search_by_timestamp(topic, queue_id, timestamp_ms, boundary)
            .await?;
        Ok(found.unwrap_or(0))
    }

    /// Store time of the queue's first retained message (`None`: empty or unknown; the broker
    /// answers -1).
    ///
    /// # Errors
    /// I/O errors, or a corrupt entry.
    pub async fn earliest_store_time(&self, topic: &str, queue_id: i32) -> Result<Option<i64>> {
        self.cqs.earliest_store_time(topic, queue_id).await
    }

    /// The record at a CommitLog offset (VIEW_MESSAGE_BY_ID).
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] / [`StorageError::Corrupt`] when no record starts
    /// there; I/O errors.
    pub async fn read_by_phys_offset(&self, phys_offset: u64) -> Result<StoredRecord> {
        self.log.read(phys_offset, None).await
    }

    /// A future resolving once the queue's max offset is above `offset` (long polling). Race it
    /// against the pull's suspend timeout.
    #[must_use]
    pub fn wait_for_message(&self, topic: &str, queue_id: i32, offset: u64) -> NewMessageWait {
        NewMessageWait {
            cqs: Rc::clone(&self.cqs),
            notifier: Rc::clone(&self.notifier),
            closed: Rc::clone(&self.closed),
            topic: Rc::from(topic),
            queue_id,
            offset,
            registration: None,
        }
    }

    /// Parked long-poll waiters (all queues).
    #[must_use]
    pub fn waiters(&self) -> usize {
        self.notifier.len()
    }

    /// Entries in the index's in-memory table (bounded).
    #[must_use]
    pub fn index_active_entries(&self) -> usize {
        self.index.active_len()
    }

    /// Sealed index files.
    #[must_use]
    pub fn index_sealed_files(&self) -> usize {
        self.index.sealed_files()
    }

    /// Deletes a topic's consume queues (its records stay in the CommitLog until retention)
    /// and checkpoints, so the topic is not rebuilt at the next open.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn delete_topic(&self, topic: &str) -> Result<bool> {
        let deleted = self.cqs.delete_topic(topic).await?;
        self.inflight.borrow_mut().remove_topic(topic);
        if deleted {
            self.checkpoint().await?;
        }
        Ok(deleted)
    }

    /// Makes everything appended so far durable (CommitLog, consume queues) and writes the
    /// store checkpoint. Call it periodically (e.g. every second) to bound replay at the next
    /// open. A failure leaves the previous checkpoint in place and nothing forgotten, so a later
    /// call retries and succeeds once the resource (file descriptors, disk space) is back;
    /// failures are logged rate-limited ([`failure_log`]), and so is the recovery.
    ///
    /// # Errors
    /// CommitLog or consume-queue write / open / fdatasync errors (the previous checkpoint
    /// stays); [`StorageError::Poisoned`] after a consume-queue fdatasync failed, until the
    /// store is reopened.
    pub async fn checkpoint(&self) -> Result<()> {
        let _guard = self.checkpoint_lock.lock().await;
        let result = self.checkpoint_locked().await;
        let now = std::time::Instant::now();
        let report = match &result {
            Ok(()) => self.checkpoint_failures.borrow_mut().succeeded(now),
            Err(_) => self.checkpoint_failures.borrow_mut().failed(now),
        };
        let error = result.as_ref().err();
        match report {
            Report::Fine | Report::Quiet => {}
            Report::First => tracing::warn!(
                store = %self.root.display(),
                error = %error.expect("a failure"),
                "store checkpoint failed; retried at every checkpoint (replay at the next open grows until one succeeds)"
            ),
            Report::Ongoing { failures, since } => tracing::warn!(
                store = %self.root.display(),
                error = %error.expect("a failure"),
                failures,
                failing_for_s = since.as_secs(),
                "store checkpoint still failing"
            ),
            Report::Recovered { failures, lasted } => tracing::info!(
                store = %self.root.display(),
                failures,
                failed_for_ms = u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX),
                "store checkpoint succeeded again"
            ),
        }
        result
    }

    async fn checkpoint_locked(&self) -> Result<()> {
        self.log.flush().await?;
        let reput_end = self.log.appended_offset();
        self.reput_to(reput_end).await?;
        self.write_checkpoint_snapshot().await
    }

    /// Flushes the consume queues and writes the store checkpoint of what is dispatched now
    /// (the caller holds the checkpoint lock).
    async fn write_checkpoint_snapshot(&self) -> Result<()> {
        // Snapshot first (no await until the consume queues are flushed): the files then hold
        // at least what the snapshot claims once the flush succeeded.
        let snapshot = StoreCheckpoint {
            dispatched_phys: self.reput_phys.get(),
            index_phys: self.index.durable_phys(),
            queues: self.cqs.with(|queues| queues.snapshot()),
        };
        self.cqs.flush().await?;
        checkpoint_file::write(&self.disk, &self.root, &snapshot).await
    }

    /// The CommitLog offset below which every record is dispatched (in its consume queue and
    /// the index): pulls and key queries see exactly the records below it. At most
    /// `commitlog().appended_offset()`.
    #[must_use]
    pub fn dispatched_offset(&self) -> u64 {
        self.reput_phys.get()
    }

    /// Checkpoints failed in a row so far (0 once one succeeded).
    #[must_use]
    pub fn checkpoint_failures(&self) -> u64 {
        self.checkpoint_failures.borrow().failures()
    }

    /// Retention: deletes expired CommitLog segments, then raises consume-queue min offsets and
    /// drops consume-queue and index files that only point below the new CommitLog start.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn delete_expired(
        &self,
        clock: RetentionClock,
        policy: &RetentionPolicy,
    ) -> Result<RetentionOutcome> {
        let outcome = self.log.delete_expired(clock, policy).await?;
        self.cqs.apply_commitlog_min(outcome.min_offset).await?;
        self.index.apply_commitlog_min(outcome.min_offset).await?;
        Ok(outcome)
    }

    /// CLEAN_EXPIRED_CONSUMEQUEUE: applies the CommitLog's current start to the consume queues
    /// and the index now instead of at the next retention pass, so consume-queue and index
    /// files that only point at deleted CommitLog records are removed. Queues keep their
    /// offsets (Java destroys a queue whose entries all expired, so its offsets restart at 0;
    /// here it stays, empty, at its max offset). Safe to run beside retention.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn clean_expired_queues(&self) -> Result<CleanedQueues> {
        let commitlog_min = self.log.min_offset();
        let before = self.cqs.with(|queues| queues.snapshot());
        self.cqs.apply_commitlog_min(commitlog_min).await?;
        let index_files_removed = self.index.apply_commitlog_min(commitlog_min).await?;
        let queues_raised = self.cqs.with(|queues| {
            before
                .iter()
                .filter(|queue| {
                    queues
                        .offsets(&queue.topic, queue.queue_id)
                        .is_some_and(|(min, _)| min > queue.min_offset)
                })
                .count()
        });
        Ok(CleanedQueues {
            commitlog_min,
            queues_raised,
            index_files_removed,
        })
    }

    /// Clean shutdown: seals the index, checkpoints, wakes long-poll waiters and closes the
    /// CommitLog (which removes its abort marker). Takes `&self` so an owner that shares the
    /// store (a shard) can close it in place; appends and reads after it fail with `Closed`.
    /// A second call does nothing.
    ///
    /// # Errors
    /// Flush, seal or checkpoint errors (the CommitLog is still closed).
    pub async fn close(&self) -> Result<()> {
        if self.closed.replace(true) {
            return Ok(());
        }
        let sealed = self.index.seal().await;
        let checkpoint = self.checkpoint().await;
        self.notifier.wake_all();
        let closed = self.log.close().await;
        sealed?;
        checkpoint?;
        closed
    }
}

impl Store {
    /// Stops all I/O as a crash would (tests): no index seal, no checkpoint, the CommitLog is
    /// abandoned without flushing. Pair with [`crate::file::FaultInjector::crash`].
    pub async fn abandon(self) {
        self.closed.set(true);
        self.notifier.wake_all();
        // Dropping the handle cancels a background index write, as a crash would.
        drop(self.seal_task.borrow_mut().take());
        self.log.abandon().await;
    }
}

/// What [`Store::clean_expired_queues`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanedQueues {
    /// The CommitLog's first offset, applied.
    pub commitlog_min: u64,
    /// Queues whose min offset rose (their expired files were removed).
    pub queues_raised: usize,
    /// Index files removed.
    pub index_files_removed: usize,
}

/// Future of [`Store::wait_for_message`].
#[derive(Debug)]
pub struct NewMessageWait {
    cqs: Rc<CqStore>,
    notifier: Rc<Notifier>,
    closed: Rc<Cell<bool>>,
    topic: Rc<str>,
    queue_id: i32,
    offset: u64,
    registration: Option<u64>,
}

impl Future for NewMessageWait {
    type Output = WaitOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WaitOutcome> {
        let this = self.get_mut();
        if this.closed.get() {
            return Poll::Ready(WaitOutcome::Closed);
        }
        let max = this
            .cqs
            .with(|queues| queues.offsets(&this.topic, this.queue_id));
        if max.is_some_and(|(_, max)| max > this.offset) {
            return Poll::Ready(WaitOutcome::Arrived);
        }
        match this
            .notifier
            .register(&this.topic, this.queue_id, this.registration, cx.waker())
        {
            Ok(id) => {
                this.registration = Some(id);
                Poll::Pending
            }
            Err(notify::WaitersFull) => Poll::Ready(WaitOutcome::Overloaded),
        }
    }
}

impl Drop for NewMessageWait {
    fn drop(&mut self) {
        if let Some(id) = self.registration.take() {
            self.notifier.remove(&self.topic, self.queue_id, id);
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |duration| {
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
    })
}

/// Topic names become directory names: RocketMQ's charset only (no `/`, no `.`).
fn validate_topic(topic: &str) -> Result<()> {
    if topic_bytes_valid(topic.as_bytes()) {
        return Ok(());
    }
    Err(StorageError::InvalidRecord {
        field: "topic",
        reason: format!("{topic:?} is empty or outside [%|a-zA-Z0-9_-]"),
    })
}

/// A stored record's topic as text if it is a valid topic name ([`validate_topic`]): one pass
/// over the bytes, as every valid name is ASCII (the UTF-8 check after it is ASCII's fast path).
fn checked_topic(topic: &[u8]) -> Option<&str> {
    if topic_bytes_valid(topic) {
        std::str::from_utf8(topic).ok()
    } else {
        None
    }
}

fn topic_bytes_valid(topic: &[u8]) -> bool {
    let valid =
        |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-');
    !topic.is_empty() && topic.iter().all(valid)
}

fn validate_queue_id(queue_id: i32) -> Result<()> {
    if queue_id < 0 {
        return Err(StorageError::InvalidRecord {
            field: "queue_id",
            reason: format!("{queue_id} is negative"),
        });
    }
    Ok(())
}
