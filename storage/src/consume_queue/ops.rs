//! [`CqStore`]: the consume queues plus the I/O that serves them — entry reads through the
//! block cache, block writes, flush (tail blocks + fdatasync), search by timestamp, topic
//! deletion, retention and truncation. Single-threaded: the state sits in a `RefCell` that is never
//! borrowed across an `.await`; block writes are serialised by one async lock so two writes of
//! the same block can never reorder, and flushes by another.
//!
//! A failed flush leaves nothing forgotten: a failed block write stays pending, a changed tail
//! stays changed, and a file or directory whose open failed (EMFILE, ENOSPC, ...) goes back on
//! the to-sync list, so the next flush retries and succeeds once the resource is back. Only a
//! failed fdatasync itself is final (fsyncgate: what it should have covered may be gone while a
//! later one succeeds): every later flush fails until the store is reopened and recovery
//! rebuilds the queues from the CommitLog past the last good checkpoint.
//!
//! Must never: hold the `RefCell` borrow across I/O, write a block outside the write lock, or
//! report a flush as complete when a write or fdatasync failed or a file written before it
//! was not fdatasynced.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fifo_lock::FifoLock;

use crate::error::{Result, StorageError};
use crate::file::Disk;

use super::entry::{self, CqEntry, ENTRY_SIZE};
use super::io::{self, SyncFailure};
use super::queue::{BlockWrite, Located, QueueState, TailLoad};
use super::search::{Boundary, TimeSearch};
use super::{
    ConsumeQueueConfig, ConsumeQueues, Dispatched, QueueCut, QueueKey, CQ_SYNCS_IN_FLIGHT_MAX,
    CQ_WRITES_IN_FLIGHT_MAX,
};

/// How often a search by timestamp restarts when the queue changes under it.
const SEARCH_ATTEMPTS_MAX: usize = 3;

/// Result of reading one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRead {
    /// The entry.
    Found(CqEntry),
    /// The offset is outside `[min, max)` of the queue (or the queue is gone).
    OutOfRange,
    /// The file holding the entry is missing (deleted under us): the next file starts at
    /// `next_file_first`.
    FileMissing {
        /// First queue offset of the following file.
        next_file_first: u64,
    },
}

/// Consume queues of one store with their I/O.
#[derive(Debug)]
pub struct CqStore {
    disk: Disk,
    queues: RefCell<ConsumeQueues>,
    write_lock: FifoLock,
    /// One flush at a time: a flush returning `Ok` must have synced whatever an earlier,
    /// concurrent one took off the to-sync lists.
    flush_lock: FifoLock,
    /// The first failed fdatasync of a consume-queue file; flushes fail from then on.
    sync_failure: RefCell<Option<Arc<str>>>,
}

impl CqStore {
    /// An empty set of queues.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] on a bad config.
    pub fn new(disk: Disk, config: ConsumeQueueConfig) -> Result<Self> {
        Ok(Self {
            disk,
            queues: RefCell::new(ConsumeQueues::new(config)?),
            write_lock: FifoLock::new(),
            flush_lock: FifoLock::new(),
            sync_failure: RefCell::new(None),
        })
    }

    /// The disk handle.
    #[must_use]
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Runs `f` on the in-memory state (never across an await).
    pub fn with<R>(&self, f: impl FnOnce(&mut ConsumeQueues) -> R) -> R {
        f(&mut self.queues.borrow_mut())
    }

    /// Reads the entry at `offset` of a queue.
    ///
    /// # Errors
    /// [`StorageError::Io`] on a failed read; [`StorageError::Corrupt`] when the entry on disk
    /// fails its CRC although it lies inside `[min, max)`.
    pub async fn read_entry(&self, topic: &str, queue_id: i32, offset: u64) -> Result<EntryRead> {
        let (path, position, uid, block_first, file_first, entries_per_file, immutable) = {
            let mut queues = self.queues.borrow_mut();
            let Some(queue) = queues.queue(topic, queue_id) else {
                return Ok(EntryRead::OutOfRange);
            };
            if offset < queue.min_offset() || offset >= queue.max_offset() {
                return Ok(EntryRead::OutOfRange);
            }
            let (file_first, block_first, immutable) = match queue.locate(offset) {
                Located::Memory(found) => return Ok(EntryRead::Found(found)),
                Located::Disk {
                    file_first,
                    block_first,
                    immutable,
                } => (file_first, block_first, immutable),
            };
            let uid = queue.uid();
            let position = queue.block_position(block_first);
            let entries_per_file = queue.entries_per_file();
            // The path is built only for a disk read or an error: a cached block (the common
            // case of an append's pair check) needs neither.
            let cached = immutable
                .then(|| queues.cached_block(uid, block_first))
                .flatten();
            if let Some(found) = cached
                .as_deref()
                .and_then(|block| entry::decode(offset, entry::slot(block, block_first, offset)))
            {
                return Ok(EntryRead::Found(found));
            }
            let path = QueueState::file_path(&queues.queue_dir(topic, queue_id), file_first);
            if let Some(block) = cached {
                return decode_entry(&block, block_first, offset, &path, position)
                    .map(EntryRead::Found);
            }
            (
                path,
                position,
                uid,
                block_first,
                file_first,
                entries_per_file,
                immutable,
            )
        };
        let Some(block) = io::read_block(&self.disk, &path, position).await? else {
            tracing::warn!(path = %path.display(), offset, "consume queue file missing");
            return Ok(EntryRead::FileMissing {
                next_file_first: file_first + entries_per_file,
            });
        };
        let found = decode_entry(&block, block_first, offset, &path, position)?;
        // An evicted tail block grows again later: caching it would serve stale zeros.
        if immutable {
            self.queues
                .borrow_mut()
                .cache_block(uid, block_first, block);
        }
        Ok(EntryRead::Found(found))
    }

    /// Reads a queue's tail block back from disk if it was evicted (see `queue.rs`), so the
    /// next entry can be pushed. Checks every entry the block must hold.
    ///
    /// # Errors
    /// I/O errors reading the block; [`StorageError::Corrupt`] when the file is missing or an
    /// entry below the queue's max offset fails its check.
    pub async fn ensure_tail(&self, topic: &str, queue_id: i32) -> Result<()> {
        // A concurrent change (a topic deleted and re-created) makes the install refuse: load
        // again, a bounded number of times.
        for _attempt in 0..SEARCH_ATTEMPTS_MAX {
            let Some(load) = self.with(|queues| queues.tail_load(topic, queue_id)) else {
                return Ok(());
            };
            let block = io::read_block(&self.disk, &load.path, load.position).await?;
            let bytes: Box<[u8]> = match block {
                Some(block) => {
                    check_tail_block(&block, &load)?;
                    Box::from(&block[..])
                }
                // An empty queue (restarted inside the block, or emptied) needs none of the
                // block's entries: its file may never have been written.
                None if load.min_offset >= load.max_offset => {
                    vec![0u8; entry::BLOCK_SIZE].into_boxed_slice()
                }
                None => {
                    return Err(StorageError::Corrupt {
                        path: load.path.clone(),
                        offset: load.position,
                        reason: "the file holding the consume queue's tail block is missing".into(),
                    })
                }
            };
            if self.with(|queues| queues.install_tail(topic, queue_id, &load, bytes)) {
                return Ok(());
            }
        }
        Err(StorageError::Corrupt {
            path: self.with(|queues| queues.queue_dir(topic, queue_id)),
            offset: 0,
            reason: "the consume queue kept changing while its tail block was loaded".into(),
        })
    }

    /// Adds the entry for one CommitLog record (see [`ConsumeQueues::dispatch`]), loading the
    /// queue's tail block first if it was evicted.
    ///
    /// # Errors
    /// As [`Self::ensure_tail`] and [`ConsumeQueues::dispatch`].
    pub async fn dispatch(
        &self,
        topic: &str,
        queue_id: i32,
        queue_offset: u64,
        cq_entry: &CqEntry,
    ) -> Result<Dispatched> {
        self.ensure_tail(topic, queue_id).await?;
        // No await between the load and the push: an eviction runs only in `flush`.
        self.with(|queues| queues.dispatch(topic, queue_id, queue_offset, cq_entry))
    }

    /// Writes full blocks waiting in memory: as many as were pending when it got the write
    /// lock, not the ones that become pending meanwhile, so the task calling it (an append
    /// whose reply waits) is held for a bounded number of writes while dispatch goes on.
    /// Returns at once if another task is writing (the next call writes what that one
    /// leaves) unless the pending budget is exhausted, in which case it waits.
    ///
    /// # Errors
    /// The first failed write; its block stays pending and is retried by the next call.
    pub async fn write_pending(&self) -> Result<()> {
        let (pending, over_budget) =
            self.with(|queues| (queues.pending_blocks(), queues.pending_over_budget()));
        if pending == 0 {
            return Ok(());
        }
        let _guard = match self.write_lock.try_lock() {
            Some(guard) => guard,
            None if over_budget => self.write_lock.lock().await,
            None => return Ok(()),
        };
        let pending = self.with(|queues| queues.pending_blocks());
        self.drain_locked(Some(pending)).await
    }

    /// [`Self::write_pending`] once [`ConsumeQueueConfig::write_start_blocks`] full blocks
    /// wait (or the pending budget is exhausted); otherwise nothing: the blocks stay readable
    /// in memory until a later call or the next [`Self::flush`] writes them, each file's run
    /// of consecutive blocks in one write.
    ///
    /// # Errors
    /// As [`Self::write_pending`].
    pub async fn write_batched(&self) -> Result<()> {
        if !self.with(|queues| queues.write_round_ready()) {
            return Ok(());
        }
        self.write_pending().await
    }

    /// Drains pending blocks, one write for each of up to [`CQ_WRITES_IN_FLIGHT_MAX`] queues
    /// at once: all of them (`None`, until none is left) or about `limit` blocks (whole rounds);
    /// the caller holds the write lock.
    async fn drain_locked(&self, limit: Option<usize>) -> Result<()> {
        let mut written = 0usize;
        loop {
            if limit.is_some_and(|limit| written >= limit) {
                return Ok(());
            }
            let writes = self.with(|queues| queues.next_pending_writes(CQ_WRITES_IN_FLIGHT_MAX));
            if writes.is_empty() {
                return Ok(());
            }
            written += writes
                .iter()
                .map(|(_, write)| write.blocks.len())
                .sum::<usize>();
            let results = futures_util::future::join_all(
                writes
                    .iter()
                    .map(|(key, write)| self.write_locked(key, write)),
            )
            .await;
            if let Some(error) = results.into_iter().find_map(Result::err) {
                return Err(error);
            }
        }
    }

    async fn write_locked(&self, key: &QueueKey, write: &BlockWrite) -> Result<()> {
        match io::write_blocks(&self.disk, &write.path, write.position, &write.blocks).await {
            Ok(created) => {
                self.with(|queues| queues.complete_write(key, write, created));
                Ok(())
            }
            Err(error) => {
                self.with(|queues| queues.note_failed_write(&write.path));
                Err(error)
            }
        }
    }

    /// Writes every pending block and every changed tail block, then fdatasyncs the files and
    /// fsyncs the directories written since the last successful flush. When it returns `Ok`,
    /// every entry dispatched before the call is durable. After an error nothing is forgotten
    /// (see the module doc): the next call retries.
    ///
    /// # Errors
    /// The first failed write, open, fdatasync or directory fsync; [`StorageError::Poisoned`]
    /// once an fdatasync itself failed (until the store is reopened).
    pub async fn flush(&self) -> Result<()> {
        let _flush = self.flush_lock.lock().await;
        self.check_sync_failure()?;
        {
            let _guard = self.write_lock.lock().await;
            self.drain_locked(None).await?;
            let tails = self.with(|queues| queues.tail_writes());
            for chunk in tails.chunks(CQ_WRITES_IN_FLIGHT_MAX) {
                let writes = chunk
                    .iter()
                    .map(|(key, write)| self.write_locked(key, write));
                let results = futures_util::future::join_all(writes).await;
                if let Some(error) = results.into_iter().find_map(Result::err) {
                    return Err(error);
                }
            }
            // No block write is in flight here: tails written and idle for a whole flush
            // interval leave memory (read back before their next entry).
            self.with(ConsumeQueues::evict_idle_tails);
        }
        let (files, dirs) = self.with(ConsumeQueues::take_unsynced);
        let mut first_error = None;
        let mut files_left = Vec::new();
        for chunk in files.chunks(CQ_SYNCS_IN_FLIGHT_MAX) {
            let syncs = chunk.iter().map(|file| io::sync_file(&self.disk, file));
            let results = futures_util::future::join_all(syncs).await;
            for (file, result) in chunk.iter().zip(results) {
                if let Err(failure) = result {
                    self.note_sync_failure(&failure);
                    first_error.get_or_insert_with(|| failure.error().clone());
                    files_left.push(file.clone());
                }
            }
        }
        // A directory fsync is retried too: its entries are journaled metadata, and a failed
        // journal commit aborts the journal (every later fsync fails), unlike a data fdatasync.
        let mut dirs_left = Vec::new();
        for chunk in dirs.chunks(CQ_SYNCS_IN_FLIGHT_MAX) {
            let syncs = chunk.iter().map(|dir| async move {
                if !self.disk.exists(dir).await {
                    return Ok(()); // removed with its topic
                }
                self.disk.sync_dir(dir).await
            });
            let results = futures_util::future::join_all(syncs).await;
            for (dir, result) in chunk.iter().zip(results) {
                if let Err(error) = result {
                    first_error.get_or_insert(error);
                    dirs_left.push(dir.clone());
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => {
                self.with(|queues| queues.restore_unsynced(files_left, dirs_left));
                Err(error)
            }
        }
    }

    /// Records a failed fdatasync (the first one is kept and logged): no flush succeeds after.
    fn note_sync_failure(&self, failure: &SyncFailure) {
        let SyncFailure::Failed(error) = failure else {
            return; // not attempted: retried by the next flush
        };
        let mut recorded = self.sync_failure.borrow_mut();
        if recorded.is_none() {
            tracing::error!(
                %error,
                "consume queue fdatasync failed; no store checkpoint until the store is reopened (recovery rebuilds the queues from the CommitLog)"
            );
            *recorded = Some(Arc::from(format!("consume queue {error}")));
        }
    }

    /// The first failed fdatasync, as an error, if there was one.
    fn check_sync_failure(&self) -> Result<()> {
        match &*self.sync_failure.borrow() {
            None => Ok(()),
            Some(cause) => Err(StorageError::Poisoned {
                cause: Arc::clone(cause),
            }),
        }
    }

    /// The first failed fdatasync of a consume-queue file, if any: from then on no flush
    /// succeeds until the store is reopened (recovery rebuilds from the last good checkpoint).
    #[must_use]
    pub fn sync_failure(&self) -> Option<Arc<str>> {
        self.sync_failure.borrow().clone()
    }

    /// Queue offset by store timestamp (PROTOCOL.md §4.5); `None` for an unknown queue.
    ///
    /// # Errors
    /// As [`Self::read_entry`].
    pub async fn search_by_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp: i64,
        boundary: Boundary,
    ) -> Result<Option<u64>> {
        // A search restarts (a bounded number of times) if retention or a topic deletion changes
        // the queue under it.
        for _attempt in 0..SEARCH_ATTEMPTS_MAX {
            let Some((min_offset, max_offset)) =
                self.with(|queues| queues.offsets(topic, queue_id))
            else {
                return Ok(None);
            };
            let mut search = TimeSearch::new(min_offset, max_offset, timestamp, boundary);
            let mut changed = false;
            while let Some(probe) = search.next_probe() {
                match self.read_entry(topic, queue_id, probe).await? {
                    EntryRead::Found(found) => search.feed(probe, found.store_timestamp),
                    EntryRead::OutOfRange | EntryRead::FileMissing { .. } => {
                        changed = true;
                        break;
                    }
                }
            }
            if !changed {
                return Ok(Some(search.result()));
            }
        }
        Err(StorageError::Corrupt {
            path: self.with(|queues| queues.queue_dir(topic, queue_id)),
            offset: timestamp.unsigned_abs(),
            reason: "queue entries inside [min, max) unreadable during search by timestamp".into(),
        })
    }

    /// Store timestamp of the queue's first retained entry; `None` if empty or unknown.
    ///
    /// # Errors
    /// As [`Self::read_entry`].
    pub async fn earliest_store_time(&self, topic: &str, queue_id: i32) -> Result<Option<i64>> {
        let Some((min_offset, _)) = self.with(|queues| queues.offsets(topic, queue_id)) else {
            return Ok(None);
        };
        match self.read_entry(topic, queue_id, min_offset).await? {
            EntryRead::Found(found) => Ok(Some(found.store_timestamp)),
            EntryRead::OutOfRange | EntryRead::FileMissing { .. } => Ok(None),
        }
    }

    /// Drops every queue of `topic` and deletes its directory.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the directory cannot be removed.
    pub async fn delete_topic(&self, topic: &str) -> Result<bool> {
        let _guard = self.write_lock.lock().await;
        let Some(dir) = self.with(|queues| queues.remove_topic(topic)) else {
            return Ok(false);
        };
        remove_dir_all(&dir).await?;
        let root = self.with(|queues| queues.config().root.clone());
        self.disk.sync_dir(&root).await?;
        Ok(true)
    }

    /// Plans the consume-queue side of truncating the CommitLog at `phys`: for each queue whose
    /// last entry points at or past it, the first queue offset whose record starts at or past
    /// it (a binary search: CommitLog offsets grow with queue offsets) and the entry before.
    /// Queues ending below `phys` cost no I/O. Changes nothing.
    ///
    /// # Errors
    /// As [`Self::read_entry`]; [`StorageError::Corrupt`] when the entry before the cut is
    /// unreadable or a queue shrinks under the search.
    pub async fn plan_truncation(&self, phys: u64) -> Result<Vec<QueueCut>> {
        let mut cuts = Vec::new();
        for (topic, queue_id) in self.with(|queues| queues.keys()) {
            let found = self.with(|queues| {
                queues.queue(&topic, queue_id).map(|queue| {
                    (
                        queue.min_offset(),
                        queue.max_offset(),
                        queue.last_entry(),
                        queue.uid(),
                    )
                })
            });
            let Some((min_offset, max_offset, Some(last), uid)) = found else {
                continue; // gone or empty
            };
            if last.phys_offset < phys {
                continue;
            }
            let changed = || StorageError::Corrupt {
                path: self.with(|queues| queues.queue_dir(&topic, queue_id)),
                offset: phys,
                reason: "consume queue changed or unreadable while planning a truncation".into(),
            };
            let (mut low, mut high) = (min_offset, max_offset);
            while low < high {
                let mid = low + (high - low) / 2;
                match self.read_entry(&topic, queue_id, mid).await? {
                    EntryRead::Found(found) if found.phys_offset >= phys => high = mid,
                    EntryRead::Found(_) | EntryRead::FileMissing { .. } => low = mid + 1,
                    EntryRead::OutOfRange => return Err(changed()),
                }
            }
            let last_entry = if low > min_offset {
                match self.read_entry(&topic, queue_id, low - 1).await? {
                    EntryRead::Found(found) => Some(found),
                    EntryRead::OutOfRange | EntryRead::FileMissing { .. } => return Err(changed()),
                }
            } else {
                None
            };
            cuts.push(QueueCut {
                topic: std::rc::Rc::clone(&topic),
                queue_id,
                uid,
                new_max: low,
                last_entry,
            });
        }
        Ok(cuts)
    }

    /// Applies cuts from [`Self::plan_truncation`] (under the write lock, so no block write is
    /// in flight) and deletes the files left without entries.
    ///
    /// # Errors
    /// I/O errors removing files (the in-memory cut is done by then).
    pub async fn apply_truncation(&self, cuts: &[QueueCut]) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let doomed: Vec<PathBuf> = self.with(|queues| {
            cuts.iter()
                .flat_map(|cut| queues.truncate_queue(cut))
                .collect()
        });
        for path in doomed {
            self.disk.remove_file(&path).await?;
        }
        Ok(())
    }

    /// Retention: raises every queue's min offset past entries whose record lies before
    /// `commitlog_min` (the CommitLog deleted it) and deletes files holding only such entries.
    ///
    /// # Errors
    /// As [`Self::read_entry`], or a failed file removal.
    pub async fn apply_commitlog_min(&self, commitlog_min: u64) -> Result<()> {
        for (topic, queue_id) in self.with(|queues| queues.keys()) {
            self.queue_retention(&topic, queue_id, commitlog_min)
                .await?;
        }
        Ok(())
    }

    async fn queue_retention(&self, topic: &str, queue_id: i32, commitlog_min: u64) -> Result<()> {
        let Some((min_offset, max_offset)) = self.with(|queues| queues.offsets(topic, queue_id))
        else {
            return Ok(());
        };
        match self.read_entry(topic, queue_id, min_offset).await? {
            EntryRead::Found(first) if first.phys_offset >= commitlog_min => return Ok(()),
            EntryRead::OutOfRange => return Ok(()),
            EntryRead::Found(_) | EntryRead::FileMissing { .. } => {}
        }
        // Partition point: first offset whose record is still in the CommitLog.
        let (mut low, mut high) = (min_offset, max_offset);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.read_entry(topic, queue_id, mid).await? {
                EntryRead::Found(found) if found.phys_offset >= commitlog_min => high = mid,
                EntryRead::Found(_) | EntryRead::FileMissing { .. } => low = mid + 1,
                EntryRead::OutOfRange => return Ok(()),
            }
        }
        if low == min_offset {
            return Ok(());
        }
        // Deletions run under the write lock so no block write can re-create a deleted file.
        let _guard = self.write_lock.lock().await;
        self.drain_locked(None).await?;
        let doomed = self.with(|queues| {
            // Re-read under the lock: another retention pass (the periodic one and an admin's
            // CLEAN_EXPIRED_CONSUMEQUEUE may overlap) or a topic deletion may have run while
            // this one searched; then there is nothing left to delete, or less.
            let Some((current_min, _)) = queues.offsets(topic, queue_id) else {
                return Vec::new();
            };
            if current_min >= low {
                return Vec::new();
            }
            queues.advance_min(topic, queue_id, low);
            let dir = queues.queue_dir(topic, queue_id);
            let queue = queues
                .queue(topic, queue_id)
                .expect("offsets read under the lock");
            let first_kept = queue.file_first(queue.min_offset().min(queue.max_offset()));
            let tail_file = queue.file_first(queue.max_offset());
            let epf = queue.entries_per_file();
            let first_file = queue.file_first(current_min.max(min_offset));
            (first_file..first_kept.min(tail_file))
                .step_by(usize::try_from(epf).expect("entries per file fits usize"))
                .map(|file_first| QueueState::file_path(&dir, file_first))
                .collect::<Vec<PathBuf>>()
        });
        for path in doomed {
            self.disk.remove_file(&path).await?;
        }
        Ok(())
    }
}

/// Pair check of a tail block read back from disk: every entry the queue holds in it decodes
/// (its CRC covers its queue offset) and the last one is the queue's last entry.
fn check_tail_block(block: &[u8], load: &TailLoad) -> Result<()> {
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        path: load.path.clone(),
        offset: load.position + (offset - load.tail_first) * ENTRY_SIZE as u64,
        reason,
    };
    let first = load.min_offset.max(load.tail_first);
    for offset in first..load.max_offset {
        let slot = entry::slot(block, load.tail_first, offset);
        let Some(found) = entry::decode(offset, slot) else {
            return Err(corrupt(
                offset,
                format!("tail entry for offset {offset} failed its check"),
            ));
        };
        if offset + 1 == load.max_offset && Some(found) != load.last_entry {
            return Err(corrupt(
                offset,
                "tail block does not end with the queue's last entry".into(),
            ));
        }
    }
    Ok(())
}

fn decode_entry(
    block: &[u8],
    block_first: u64,
    offset: u64,
    path: &Path,
    position: u64,
) -> Result<CqEntry> {
    entry::decode(offset, entry::slot(block, block_first, offset)).ok_or_else(|| {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: position + (offset - block_first) * ENTRY_SIZE as u64,
            reason: format!("consume queue entry for offset {offset} failed its check"),
        }
    })
}

/// Removes a directory tree (no io_uring op exists for it: runs on the blocking pool).
///
/// # Errors
/// [`StorageError::Io`].
pub async fn remove_dir_all(dir: &Path) -> Result<()> {
    let owned = dir.to_path_buf();
    let result = compio::runtime::spawn_blocking(move || match std::fs::remove_dir_all(&owned) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await
    .map_err(|_| StorageError::Closed)?;
    result.map_err(|error| StorageError::io("remove_dir_all", dir, 0, error))
}

/// Lists the subdirectory names of `dir` (empty if it does not exist); blocking pool.
///
/// # Errors
/// [`StorageError::Io`].
pub async fn list_subdirs(dir: &Path) -> Result<Vec<String>> {
    let owned = dir.to_path_buf();
    let result = compio::runtime::spawn_blocking(move || -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&owned) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    })
    .await
    .map_err(|_| StorageError::Closed)?;
    result.map_err(|error| StorageError::io("readdir", dir, 0, error))
}
