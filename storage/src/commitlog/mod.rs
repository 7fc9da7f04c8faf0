//! The CommitLog of one shard: records appended in order to preallocated O_DIRECT segment files,
//! with group commit, a bounded in-memory tail, recovery and retention.
//!
//! Owns the segment files of one directory, the tail ring, the flusher and preallocation tasks,
//! the checkpoint (`commitlog.checkpoint`) and the abort marker (`abort`). Offsets are local to
//! the shard (the broker adds the shard bits). Runs on its shard's compio runtime only.
//!
//! Must never: touch the page cache for segment data, place a record across two segments,
//! acknowledge durability before the fdatasync covering it completed, retry a failed write or
//! fdatasync as if it had succeeded (the log is poisoned instead), hold a `RefCell` borrow
//! across `.await`, or know anything about the protocol (payloads are opaque).
//!
//! API summary (what the store facade calls):
//! ```text
//! CommitLog::open(dir: &Path, config: CommitLogConfig, disk: Disk) -> Result<(CommitLog, RecoveryReport)>
//! log.ready(record_size: u64).await -> Result<()>           // room + segment for one record
//! log.try_append(&AppendRecord) -> Result<Option<Appended>>  // sync; None = call ready() first
//! log.append(&AppendRecord).await -> Result<Appended>        // ready + try_append in a loop
//! log.wait_durable(end_offset).await -> Result<()>           // group commit waiter
//! log.wait_durable_timeout(end_offset, Duration).await -> Result<FlushOutcome> // Durable|Timeout
//! log.flush().await -> Result<u64>                            // write + fdatasync all appended
//! log.appended_offset() / written_offset() / durable_offset() / min_offset() -> u64
//! log.read(phys_offset, size_hint: Option<u32>).await -> Result<StoredRecord>
//! log.read_batch(from, max_bytes).await -> Result<ReadBatch>  // reput iteration, skips fillers
//! log.delete_expired(RetentionClock, &RetentionPolicy).await -> Result<RetentionOutcome>
//! log.read_log(from, max_bytes, ShipLimit).await -> Result<LogChunk>  // replication: ship
//! log.entry_header_at(offset).await -> Result<EntryHeader>   // divergence checks
//! log.check_replicated(offset, &bytes) -> Result<Vec<ReplicatedEntry>> // slave: check a chunk
//! log.place_replicated(&ReplicatedEntry).await -> Result<u64>  // slave: place one, verbatim
//! log.truncate(offset).await -> Result<()>  // drop the tail from an entry boundary
//! log.last_generation() -> u32             // a replicated entry may not carry a lower one
//! log.checkpoint().await -> Result<u64>  // checkpoint the durable mark now (also periodic)
//! log.request_flush()                    // wake the flusher without waiting
//! log.close().await -> Result<()>    // flush, checkpoint, remove abort marker
//! log.abandon().await                // stop I/O as a crash would (tests)
//! ```
//! To keep queue offsets in log order, the facade assigns a queue offset and calls `try_append`
//! with no `.await` in between (after `ready` said there is room).
//!
//! Write path: `try_append` encodes the record into the tail ring at the append mark and returns
//! its offset. The flusher task writes `[align_down(written), align_up(appended))` from the ring
//! with O_DIRECT (the partly filled last block is rewritten next time), then fdatasyncs every
//! file written since the last fdatasync, then advances the durable mark and wakes waiters: one
//! fdatasync serves every append that was waiting. Under async flush, whole blocks are also
//! streamed out early (several writes in flight), the fdatasync follows the interval, and writes
//! go on while it runs (it covers what was written before it started). See
//! `flush.rs`, `recovery.rs`, `read.rs`, `retention.rs`, `record.rs` (on-disk format),
//! `generations.rs` (the checkpoint's generation floor), and for replication `ship.rs`,
//! `replicate.rs`, `truncate.rs`.

pub mod config;
pub mod crc32c;
mod decision;
mod flush;
mod generations;
mod read;
pub mod record;
mod recovery;
mod replicate;
mod retention;
mod ring;
pub mod segment;
mod ship;
pub mod sync_latency;
mod truncate;
mod wait;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use compio::runtime::JoinHandle;

pub use config::{CommitLogConfig, FlushPolicy, Preallocation};
pub use read::{ReadBatch, StoredRecord};
pub use record::{AppendRecord, EntryHeader, EntryKind};
pub use recovery::RecoveryReport;
pub use replicate::ReplicatedEntry;
pub use retention::{RetentionClock, RetentionOutcome, RetentionPolicy};
pub use ship::{LogChunk, ShipLimit};

use crate::align::align_down;
use crate::error::{Result, StorageError};
use crate::file::Disk;
use crate::limits::{FLUSH_EAGER_DIVISOR, LOCAL_OFFSET_LIMIT};
use crate::offset_wait::{OffsetWaiters, Waited};
use record::{encode_filler, encode_header, padding_len, FILLER_BYTES, RECORD_HEADER_BYTES, ZEROS};
use ring::Ring;
use segment::Segment;
use wait::{Signal, WaitList};

/// Name of the CommitLog checkpoint file in its directory.
pub const CHECKPOINT_FILE_NAME: &str = "commitlog.checkpoint";
/// Name of the abort marker: present while the log is open; found at open = unclean shutdown.
pub const ABORT_MARKER_FILE_NAME: &str = "abort";

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Log offset of the record (its physical offset, local to the shard).
    pub phys_offset: u64,
    /// Encoded size in bytes.
    pub size: u32,
    /// `phys_offset + size`: wait for the durable mark to reach this.
    pub end_offset: u64,
}

/// Result of waiting for durability with a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The fdatasync covering the record completed.
    Durable,
    /// Not durable within the timeout (RocketMQ FLUSH_DISK_TIMEOUT); the record stays
    /// appended and will still be flushed.
    Timeout,
}

/// The segment after the active one, prepared in the background.
#[derive(Debug)]
enum NextSegment {
    Idle,
    Running,
    Ready(Segment),
    Failed(StorageError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Open,
    Closing,
    Abandoning,
    Closed,
}

/// Mutable state; borrowed only in short synchronous sections.
#[derive(Debug)]
struct State {
    /// One past the last appended byte.
    appended: u64,
    /// One past the last byte whose write completed.
    written: u64,
    /// One past the last byte covered by a completed fdatasync.
    durable: u64,
    /// Lowest offset the ring has ever held valid data for (the recovered end at open).
    cache_floor: u64,
    /// Oldest first; the back one is active.
    segments: VecDeque<Segment>,
    next: NextSegment,
    poison: Option<Arc<str>>,
    lifecycle: Lifecycle,
    /// When the last fdatasync round completed (async flush interval).
    last_sync: Instant,
    /// When the last write completed (async commit interval).
    last_write: Instant,
    /// Files written since the last fdatasync round.
    unsynced_files: Vec<Rc<crate::file::DirectFile>>,
    last_checkpoint: Instant,
    /// Durable offset recorded in the newest checkpoint on disk.
    checkpointed: u64,
    /// Generations of the entries from the newest checkpoint to the append mark.
    generations: generations::Generations,
}

/// Background task handles.
#[derive(Debug, Default)]
struct Tasks {
    flusher: Option<JoinHandle<()>>,
    prealloc: Option<JoinHandle<()>>,
    checkpoint: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: CommitLogConfig,
    disk: Disk,
    alignment: usize,
    generation: u32,
    ring: Rc<Ring>,
    state: RefCell<State>,
    /// Wakes the flusher.
    flusher_signal: Rc<Signal>,
    /// `request_flush` was called: the next decision flushes whatever is pending.
    flush_requested: Cell<bool>,
    /// An fdatasync is running (at most one; writes go on meanwhile).
    sync_in_flight: Cell<bool>,
    /// Durations of completed fdatasync rounds.
    sync_latency: sync_latency::SyncLatency,
    /// Appends waiting for ring room or the next segment.
    room: WaitList,
    /// Callers waiting for the durable mark (each woken once the mark reaches its offset).
    durable_waiters: OffsetWaiters,
    /// Callers waiting for the append mark to move ([`CommitLog::wait_appended_past`]: the
    /// replication sessions of a caught-up master).
    appended_waiters: WaitList,
    /// Set when background tasks must stop (close, abandon, drop).
    stop: Rc<Cell<bool>>,
    /// A checkpoint write is in progress (they share a temp file name: one at a time).
    checkpoint_busy: Cell<bool>,
    /// How the next segment preparation prepares its file ([`CommitLog::set_preallocation`]).
    preallocation: Cell<Preallocation>,
    /// Woken when a checkpoint write ends.
    checkpoint_idle: WaitList,
    /// Truncations so far: a write or fdatasync that started before one must not move the
    /// marks after it.
    truncations: Cell<u64>,
    tasks: RefCell<Tasks>,
}

/// One shard's CommitLog. Single owner (the store facade); `!Send`.
#[derive(Debug)]
pub struct CommitLog {
    inner: Rc<Inner>,
}

impl CommitLog {
    /// Opens (or creates) the log in `dir`: recovers from the checkpoint, validating every
    /// record's CRC and truncating a torn tail, then starts the flusher. Must run inside the
    /// shard's compio runtime.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`], [`StorageError::Io`], [`StorageError::DiskFull`] (no room
    /// for the first segment), [`StorageError::Corrupt`] (segment files missing below the
    /// checkpoint).
    pub async fn open(
        dir: &Path,
        config: CommitLogConfig,
        disk: Disk,
    ) -> Result<(Self, RecoveryReport)> {
        recovery::open(dir, config, disk).await
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &CommitLogConfig {
        &self.inner.config
    }

    /// How segments prepared from now on get their space (a preparation already running keeps
    /// its mode; a segment already prepared is used as it is). A slave sets
    /// [`Preallocation::Sparse`] while it catches up and [`Preallocation::Zeroed`] once it
    /// has.
    pub fn set_preallocation(&self, mode: Preallocation) {
        let previous = self.inner.preallocation.replace(mode);
        if previous != mode {
            tracing::debug!(?mode, "segment preallocation mode changed");
        }
    }

    /// The mode segments are prepared with now.
    #[must_use]
    pub fn preallocation(&self) -> Preallocation {
        self.inner.preallocation.get()
    }

    /// The I/O alignment (device logical block size, at least 4 KiB).
    #[must_use]
    pub fn alignment(&self) -> usize {
        self.inner.alignment
    }

    /// This open's generation (stored in every record written now).
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.inner.generation
    }

    /// One past the last appended byte ("appended": order fixed, readable).
    #[must_use]
    pub fn appended_offset(&self) -> u64 {
        self.inner.state.borrow().appended
    }

    /// One past the last byte whose O_DIRECT write completed.
    #[must_use]
    pub fn written_offset(&self) -> u64 {
        self.inner.state.borrow().written
    }

    /// Durations of the fdatasync rounds so far (the flush latency the metrics export).
    #[must_use]
    pub fn sync_latency(&self) -> sync_latency::SyncLatencySnapshot {
        self.inner.sync_latency.snapshot()
    }

    /// One past the last byte covered by a completed fdatasync ("durable").
    #[must_use]
    pub fn durable_offset(&self) -> u64 {
        self.inner.state.borrow().durable
    }

    /// The lowest offset still stored (start of the oldest segment).
    #[must_use]
    pub fn min_offset(&self) -> u64 {
        self.inner
            .state
            .borrow()
            .segments
            .front()
            .map_or(0, |segment| segment.start)
    }

    /// Start offsets of the segment files in use, oldest first (the last is active).
    #[must_use]
    pub fn segment_starts(&self) -> Vec<u64> {
        self.inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|segment| segment.start)
            .collect()
    }

    /// `true` once the segment after the active one is preallocated and ready.
    #[must_use]
    pub fn next_segment_ready(&self) -> bool {
        matches!(self.inner.state.borrow().next, NextSegment::Ready(_))
    }

    /// Raw fds of the segment files (for the O_DIRECT check in tests).
    #[must_use]
    pub fn segment_fds(&self) -> Vec<RawFd> {
        self.inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|segment| segment.file.raw_fd())
            .collect()
    }

    /// Poisons the log with `error` (first failure wins): appends fail until it is reopened.
    /// The store uses it when a multi-step change (a truncation) fails half-way.
    pub(crate) fn poison(&self, error: &StorageError) {
        self.inner.poison(error);
    }

    /// Generation of the last entry in the log (0 for an empty log): a replicated entry must
    /// not carry a lower one.
    #[must_use]
    pub fn last_generation(&self) -> u32 {
        self.inner.state.borrow().generations.last()
    }

    /// The failure that poisoned the log, if any.
    #[must_use]
    pub fn poisoned(&self) -> Option<Arc<str>> {
        self.inner.state.borrow().poison.clone()
    }

    /// Appends `record` at the append mark if there is room right now, without waiting.
    /// `Ok(None)`: no room in the tail or the next segment is not ready; await
    /// [`CommitLog::ready`] and call again.
    ///
    /// # Errors
    /// [`StorageError::InvalidRecord`] / [`StorageError::RecordTooLarge`] for a bad record,
    /// [`StorageError::Poisoned`] after a failed write or fdatasync, [`StorageError::Closed`].
    pub fn try_append(&self, record: &AppendRecord<'_>) -> Result<Option<Appended>> {
        let inner = &self.inner;
        let size = u64::from(record.validate(inner.config.record_size_max_bytes)?);
        let mut state = inner.state.borrow_mut();
        let was_all_written = state.appended == state.written;
        state.usable()?;
        if state.generations.last() > inner.generation {
            return Err(StorageError::InvalidRecord {
                field: "generation",
                reason: format!(
                    "the log ends with replicated entries of generation {} above this open's {}: a slave appends no records of its own",
                    state.generations.last(),
                    inner.generation
                ),
            });
        }
        let Some(rolled) = inner.make_room(&mut state, size)? else {
            return Ok(None);
        };
        let phys_offset = state.appended;
        state.generations.appended(phys_offset, inner.generation);
        let active = state
            .segments
            .back()
            .expect("an active segment always exists");
        assert!(
            active.contains(phys_offset),
            "append mark outside the active segment"
        );
        assert!(
            phys_offset + size <= active.end(),
            "record would straddle segments"
        );
        inner.place_record(record, phys_offset);
        state.appended = phys_offset + size;
        let pending = state.appended - state.written;
        drop(state);
        inner.appended_waiters.wake_all();
        if rolled {
            inner.start_preallocation();
        }
        let eager = inner.config.flush_pending_bytes_max / FLUSH_EAGER_DIVISOR;
        // Async: the first unwritten bytes start the commit-interval clock of an idle flusher.
        if inner.config.flush_policy == FlushPolicy::Sync
            || pending >= eager as u64
            || was_all_written
        {
            inner.flusher_signal.notify();
        }
        let size = u32::try_from(size).expect("validated record size");
        Ok(Some(Appended {
            phys_offset,
            size,
            end_offset: phys_offset + u64::from(size),
        }))
    }

    /// Waits until a record of `record_size` encoded bytes can be appended without waiting:
    /// room in the tail ring (back-pressure on `flush_pending_bytes_max`) and, if the record
    /// does not fit in the active segment, a preallocated next segment. A failed preallocation
    /// is retried once per call.
    ///
    /// # Errors
    /// [`StorageError::DiskFull`] (or another preallocation error) when the next segment cannot
    /// be created; [`StorageError::Poisoned`]; [`StorageError::Closed`].
    pub async fn ready(&self, record_size: u64) -> Result<()> {
        self.ready_for(Want::Record(record_size)).await
    }

    /// [`CommitLog::ready`] for a local record or a replicated entry.
    async fn ready_for(&self, want: Want) -> Result<()> {
        let inner = &self.inner;
        let mut retried = false;
        loop {
            let start_preallocation = {
                let mut state = inner.state.borrow_mut();
                state.usable()?;
                match inner.readiness(&state, want) {
                    Readiness::Ready => return Ok(()),
                    Readiness::NeedRoom => false,
                    Readiness::NeedSegment => match &state.next {
                        NextSegment::Idle => {
                            state.next = NextSegment::Running;
                            true
                        }
                        NextSegment::Failed(error) if retried => return Err(error.clone()),
                        NextSegment::Failed(_) => {
                            retried = true;
                            state.next = NextSegment::Running;
                            true
                        }
                        NextSegment::Running | NextSegment::Ready(_) => false,
                    },
                }
            };
            if start_preallocation {
                inner.spawn_preallocation();
            }
            inner.flusher_signal.notify();
            inner.wait_for_change(&inner.room).await;
        }
    }

    /// Appends `record`, waiting for room or the next segment if needed. Returns once the
    /// record is appended (readable); use [`CommitLog::wait_durable`] for SYNC_FLUSH.
    ///
    /// # Errors
    /// As [`CommitLog::try_append`] and [`CommitLog::ready`].
    pub async fn append(&self, record: &AppendRecord<'_>) -> Result<Appended> {
        loop {
            if let Some(appended) = self.try_append(record)? {
                return Ok(appended);
            }
            self.ready(record.encoded_size()).await?;
        }
    }

    /// Waits until the durable mark reaches `end_offset` (group commit: the flusher is woken
    /// and one fdatasync serves every waiter it covers).
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] if a write or fdatasync failed first; [`StorageError::Closed`]
    /// if the log stopped before that.
    ///
    /// # Panics
    /// If `end_offset` is past the append mark (nothing to wait for: caller bug).
    pub async fn wait_durable(&self, end_offset: u64) -> Result<()> {
        match self.wait_durable_until(end_offset, None).await? {
            FlushOutcome::Durable => Ok(()),
            FlushOutcome::Timeout => unreachable!("no deadline"),
        }
    }

    /// [`CommitLog::wait_durable`], giving up at `deadline` (`Ok(FlushOutcome::Timeout)`).
    /// The deadline is kept by the waiter registry's one reaper, not a timer per call.
    ///
    /// # Errors
    /// As [`CommitLog::wait_durable`].
    pub async fn wait_durable_until(
        &self,
        end_offset: u64,
        deadline: Option<Instant>,
    ) -> Result<FlushOutcome> {
        let inner = &self.inner;
        assert!(
            end_offset <= inner.state.borrow().appended,
            "waiting for bytes never appended"
        );
        let mut waiter = inner.durable_waiters.waiter();
        poll_fn(|cx| {
            let state = inner.state.borrow();
            if state.durable >= end_offset {
                return Poll::Ready(Ok(FlushOutcome::Durable));
            }
            if let Some(cause) = &state.poison {
                return Poll::Ready(Err(StorageError::Poisoned {
                    cause: Arc::clone(cause),
                }));
            }
            if matches!(state.lifecycle, Lifecycle::Abandoning | Lifecycle::Closed) {
                return Poll::Ready(Err(StorageError::Closed));
            }
            drop(state);
            match waiter.wait(end_offset, deadline, cx.waker()) {
                Waited::Pending => {
                    inner.flusher_signal.notify();
                    Poll::Pending
                }
                Waited::Expired => Poll::Ready(Ok(FlushOutcome::Timeout)),
                Waited::Full => unreachable!("the durable waiters have no limit of their own"),
            }
        })
        .await
    }

    /// Resolves once the append mark is past `offset` (at once if it already is), or once the
    /// log stopped (closed, abandoned, poisoned: the caller's next read reports why). Woken by
    /// every append, local or replicated.
    pub async fn wait_appended_past(&self, offset: u64) {
        let inner = &self.inner;
        poll_fn(|cx| {
            let state = inner.state.borrow();
            if state.appended > offset
                || state.poison.is_some()
                || matches!(state.lifecycle, Lifecycle::Abandoning | Lifecycle::Closed)
            {
                return Poll::Ready(());
            }
            drop(state);
            inner.appended_waiters.register(cx.waker());
            Poll::Pending
        })
        .await;
    }

    /// [`CommitLog::wait_durable`] bounded by `timeout` (RocketMQ `syncFlushTimeout`; see
    /// [`CommitLogConfig::sync_flush_timeout`]).
    ///
    /// # Errors
    /// As [`CommitLog::wait_durable`]; running out of time is `Ok(FlushOutcome::Timeout)`.
    pub async fn wait_durable_timeout(
        &self,
        end_offset: u64,
        timeout: Duration,
    ) -> Result<FlushOutcome> {
        self.wait_durable_until(end_offset, Some(Instant::now() + timeout))
            .await
    }

    /// Asks the flusher to write and fdatasync what is pending now, without waiting (RocketMQ's
    /// flush-service wakeup).
    pub fn request_flush(&self) {
        self.inner.flush_requested.set(true);
        self.inner.flusher_signal.notify();
    }

    /// Writes and fdatasyncs everything appended so far; returns the durable mark.
    ///
    /// # Errors
    /// As [`CommitLog::wait_durable`].
    pub async fn flush(&self) -> Result<u64> {
        let target = self.appended_offset();
        self.wait_durable(target).await?;
        Ok(self.durable_offset())
    }

    /// Writes the checkpoint at the current durable mark now (the flusher also does this every
    /// `checkpoint_interval_ms` while the mark moves); returns the offset recorded. Recovery
    /// scans from the newest checkpoint; retention never deletes past it.
    ///
    /// # Errors
    /// [`StorageError::Io`] / [`StorageError::DiskFull`]; the previous checkpoint stays valid.
    pub async fn checkpoint(&self) -> Result<u64> {
        let durable = self.durable_offset();
        self.inner.write_checkpoint(durable).await?;
        Ok(durable)
    }

    /// Clean shutdown: flushes everything appended, stops background tasks, writes the
    /// checkpoint and removes the abort marker.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] if the log was poisoned (no checkpoint is written then, and the
    /// abort marker stays, so the next open scans); I/O errors of the final steps.
    pub async fn close(&self) -> Result<()> {
        let inner = Rc::clone(&self.inner);
        inner.state.borrow_mut().lifecycle = Lifecycle::Closing;
        inner.flusher_signal.notify();
        inner.room.wake_all();
        let flusher = inner.tasks.borrow_mut().flusher.take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        inner.stop_background().await;
        inner.state.borrow_mut().lifecycle = Lifecycle::Closed;
        inner.durable_waiters.wake_all();
        inner.appended_waiters.wake_all();
        let poison = inner.state.borrow().poison.clone();
        if let Some(cause) = poison {
            return Err(StorageError::Poisoned { cause });
        }
        let (durable, appended) = {
            let state = inner.state.borrow();
            (state.durable, state.appended)
        };
        assert_eq!(durable, appended, "close flushed everything");
        inner.write_checkpoint(durable).await?;
        crate::checkpoint::remove_marker(&inner.disk, &inner.dir, ABORT_MARKER_FILE_NAME).await
    }

    /// Stops all I/O as a crash would: waits for in-flight writes to finish, then stops
    /// without their fdatasync, further flushing, checkpointing or removing the abort marker. With
    /// [`crate::file::FaultInjector::crash`] this simulates a power loss.
    pub async fn abandon(self) {
        let inner = Rc::clone(&self.inner);
        inner.state.borrow_mut().lifecycle = Lifecycle::Abandoning;
        inner.flusher_signal.notify();
        inner.room.wake_all();
        inner.durable_waiters.wake_all();
        inner.appended_waiters.wake_all();
        let flusher = inner.tasks.borrow_mut().flusher.take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        inner.stop_background().await;
        inner.state.borrow_mut().lifecycle = Lifecycle::Closed;
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        // Dropped without close/abandon: let the background tasks end on their own (they hold
        // only weak references and check `stop`); never cancel a task from inside itself.
        self.inner.stop.set(true);
        let tasks = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        for handle in [tasks.flusher, tasks.prealloc, tasks.checkpoint]
            .into_iter()
            .flatten()
        {
            handle.detach();
        }
        self.inner.flusher_signal.notify();
        self.inner.room.wake_all();
        self.inner.durable_waiters.wake_all();
        self.inner.appended_waiters.wake_all();
    }
}

/// What is to be appended at the append mark.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A local record of this encoded size (the log adds a filler if it rolls).
    Record(u64),
    /// A replicated entry spanning this many bytes (placed as is; rolls only at a segment end).
    Entry(u64),
}

/// Whether a record of a given size can be appended now.
enum Readiness {
    Ready,
    NeedRoom,
    NeedSegment,
}

impl State {
    /// The lowest offset stored: the oldest segment's start (the append mark if none).
    fn min_offset(&self) -> u64 {
        self.segments.front().map_or(self.appended, |s| s.start)
    }

    fn usable(&self) -> Result<()> {
        if let Some(cause) = &self.poison {
            return Err(StorageError::Poisoned {
                cause: Arc::clone(cause),
            });
        }
        if self.lifecycle != Lifecycle::Open {
            return Err(StorageError::Closed);
        }
        Ok(())
    }
}

impl Inner {
    /// Bytes a record of `size` occupies from the append mark (incl. a filler if it rolls), and
    /// whether it rolls to the next segment.
    fn footprint(&self, state: &State, size: u64) -> (u64, bool) {
        let active = state
            .segments
            .back()
            .expect("an active segment always exists");
        if state.appended + size <= active.end() {
            (size, false)
        } else {
            (active.end() - state.appended + size, true)
        }
    }

    fn has_room(&self, state: &State, footprint: u64) -> bool {
        let block = self.alignment as u64;
        let unwritten = state.appended + footprint - align_down(state.written, block);
        unwritten <= self.config.flush_pending_bytes_max as u64
    }

    /// [`Inner::footprint`] for what is wanted: a replicated entry brings its own filler, so
    /// it rolls only when the active segment is full.
    fn footprint_of(&self, state: &State, want: Want) -> (u64, bool) {
        match want {
            Want::Record(size) => self.footprint(state, size),
            Want::Entry(span) => {
                let active = state
                    .segments
                    .back()
                    .expect("an active segment always exists");
                (span, state.appended == active.end())
            }
        }
    }

    fn readiness(&self, state: &State, want: Want) -> Readiness {
        let (footprint, rolls) = self.footprint_of(state, want);
        if !self.has_room(state, footprint) {
            return Readiness::NeedRoom;
        }
        if rolls && !matches!(state.next, NextSegment::Ready(_)) {
            return Readiness::NeedSegment;
        }
        Readiness::Ready
    }

    /// Checks room and, if the record rolls, seals the active segment and activates the next.
    /// `Ok(None)`: must wait. `Ok(Some(rolled))`: the record fits at the append mark.
    fn make_room(&self, state: &mut State, size: u64) -> Result<Option<bool>> {
        let (footprint, rolls) = self.footprint(state, size);
        if state.appended + footprint > LOCAL_OFFSET_LIMIT {
            return Err(StorageError::InvalidRecord {
                field: "phys_offset",
                reason: format!("log would pass the local offset limit {LOCAL_OFFSET_LIMIT}"),
            });
        }
        if !self.has_room(state, footprint) {
            return Ok(None);
        }
        if !rolls {
            return Ok(Some(false));
        }
        if !matches!(state.next, NextSegment::Ready(_)) {
            return Ok(None); // ready() starts or retries the preallocation
        }
        let NextSegment::Ready(next) = std::mem::replace(&mut state.next, NextSegment::Idle) else {
            unreachable!("checked just above");
        };
        self.seal_active(state);
        assert_eq!(
            next.start, state.appended,
            "next segment starts where the active one ends"
        );
        state.segments.push_back(next);
        Ok(Some(true))
    }

    /// Ends the active segment at the append mark: a filler covers the rest (unless the last
    /// record filled it exactly), and the append mark moves to the segment end.
    fn seal_active(&self, state: &mut State) {
        let active = state
            .segments
            .back()
            .expect("an active segment always exists");
        if active.sealed_at.get().is_some() {
            // Sealed by a replicated filler: the append mark is already at its end.
            assert_eq!(state.appended, active.end(), "a sealed segment is full");
            return;
        }
        let at = state.appended;
        let remaining = active.end() - at;
        if remaining > 0 {
            let filler = encode_filler(at, remaining, self.generation);
            self.ring.write(at, &filler);
            state.generations.appended(at, self.generation);
            // The unused span is written as zeros (see `flush.rs`, `write_limit`); it is shorter
            // than the record that did not fit, so it fits the ring.
            let filler_end = at + FILLER_BYTES as u64;
            self.ring
                .zero(filler_end, (active.end() - filler_end) as usize);
        }
        active.sealed_at.set(Some(at));
        state.appended = active.end();
    }

    /// Encodes `record` into the ring at `phys_offset`, then reads the header back and checks it
    /// (pair assertion; in debug builds the whole record is re-validated).
    fn place_record(&self, record: &AppendRecord<'_>, phys_offset: u64) {
        let header = encode_header(record, phys_offset, self.generation);
        let padding = &ZEROS[..padding_len(record)];
        let placed = self.ring.write_pieces(
            phys_offset,
            &[
                &header[..],
                record.topic,
                record.keys,
                record.payload,
                padding,
            ],
        );
        assert_eq!(
            placed as u64,
            record.encoded_size(),
            "encoded size matches bytes placed"
        );
        let mut check = [0u8; RECORD_HEADER_BYTES];
        self.ring.read(phys_offset, &mut check);
        assert_eq!(
            check, header,
            "record header reads back from the ring as written"
        );
        if cfg!(debug_assertions) {
            let mut bytes = vec![0u8; record.encoded_size() as usize];
            self.ring.read(phys_offset, &mut bytes);
            let entry = record::parse_entry(&bytes, phys_offset, self.config.record_size_max_bytes);
            assert!(
                matches!(entry, Ok(record::Entry::Record(_))),
                "placed record validates: {entry:?}"
            );
        }
    }

    /// Marks the next segment as being prepared and spawns the preparation (called after a roll
    /// consumed the ready one).
    fn start_preallocation(self: &Rc<Self>) {
        let start = {
            let mut state = self.state.borrow_mut();
            if !matches!(state.next, NextSegment::Idle) {
                return;
            }
            state.next = NextSegment::Running;
            state.segments.back().map(Segment::end)
        };
        if start.is_some() {
            self.spawn_preallocation();
        }
    }

    /// Spawns preallocation of the segment after the active one; `state.next` must be Running.
    fn spawn_preallocation(self: &Rc<Self>) {
        let start = {
            let state = self.state.borrow();
            assert!(
                matches!(state.next, NextSegment::Running),
                "preallocation state must be Running"
            );
            state
                .segments
                .back()
                .expect("an active segment always exists")
                .end()
        };
        let weak = Rc::downgrade(self);
        let disk = self.disk.clone();
        let dir = self.dir.clone();
        let size = self.config.segment_size_bytes;
        let alignment = self.alignment;
        let mode = self.preallocation.get();
        let stop = Rc::clone(&self.stop);
        let handle = compio::runtime::spawn(async move {
            let stop_flag = Rc::clone(&stop);
            let result =
                segment::preallocate(&disk, &dir, start, size, alignment, mode, move || {
                    stop_flag.get()
                })
                .await;
            let Some(inner) = weak.upgrade() else { return };
            let next = match result {
                Ok(segment) => NextSegment::Ready(segment),
                Err(error) => {
                    tracing::warn!(start, %error, "preallocating the next segment failed");
                    NextSegment::Failed(error)
                }
            };
            inner.state.borrow_mut().next = next;
            inner.room.wake_all();
        });
        let previous = self.tasks.borrow_mut().prealloc.replace(handle);
        if let Some(previous) = previous {
            previous.detach();
        }
    }

    /// Resolves after the next `wake_all` on `list` (the caller re-checks its condition).
    async fn wait_for_change(&self, list: &WaitList) {
        let mut registered = false;
        poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            list.register(cx.waker());
            Poll::Pending
        })
        .await;
    }

    /// Stops preallocation and checkpoint tasks and waits for them.
    async fn stop_background(&self) {
        self.stop.set(true);
        let (prealloc, checkpoint) = {
            let mut tasks = self.tasks.borrow_mut();
            (tasks.prealloc.take(), tasks.checkpoint.take())
        };
        for handle in [prealloc, checkpoint].into_iter().flatten() {
            let _ = handle.await;
        }
    }

    /// Marks the log poisoned by `error` (first failure wins) and wakes everyone.
    fn poison(&self, error: &StorageError) {
        {
            let mut state = self.state.borrow_mut();
            if state.poison.is_none() {
                tracing::error!(%error, "commit log poisoned");
                state.poison = Some(Arc::from(error.to_string()));
            }
        }
        self.room.wake_all();
        self.durable_waiters.wake_all();
        self.appended_waiters.wake_all();
    }
}
