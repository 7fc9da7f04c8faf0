//! ConsumeQueues of the (topic, queue_id) pairs this shard owns: fixed 32-byte entries
//! (CommitLog offset, size, tag hash, store timestamp) per queue offset, built by the store's
//! reput/dispatch step from committed CommitLog records and rebuilt from the CommitLog on
//! recovery past their checkpoint.
//!
//! Layout: `<root>/<topic>/<queue_id>/<20-digit first queue offset>`, `entries_per_file` entries
//! per file (a multiple of 128, one 4 KiB block = 128 entries), see [`entry`] and [`queue`].
//! Writes are whole 4 KiB O_DIRECT blocks ([`io`]): a block is written once it is full; the
//! partly filled tail block is written (again) by [`ops::flush`], and files are fdatasynced
//! only then, never per append (the store's checkpoint names what is durable, and recovery
//! replays the CommitLog past it). Reads: the tail block and full-but-unwritten blocks are in
//! memory; older blocks come from disk through a bounded LRU [`block_cache`].
//!
//! Memory is bounded independently of backlog: an idle queue costs its state in the map (about
//! 200 bytes, see [`CQ_QUEUES_MAX`]) and no file descriptor (files are opened per block I/O and
//! closed again); a queue written to within the last flush interval also holds its 4 KiB tail
//! block; store-wide the pending-block budget and the block cache. Owned by one shard; `!Send`.
//! Must never: keep per-message state in memory, block on fsync in the append path, hold a file
//! open per queue, or hand out an entry at or past a queue's max offset.

pub mod block_cache;
pub mod entry;
pub mod io;
pub mod ops;
pub mod queue;
pub mod recovery;
pub mod search;
pub mod topic_queues;

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::FastMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{Result, StorageError};

use self::block_cache::BlockCache;
use self::entry::{CqEntry, ENTRIES_PER_BLOCK};
use self::queue::{BlockWrite, QueueState, TailLoad};
use self::topic_queues::TopicQueues;

/// Default entries per consume-queue file: 2^18 entries = 8 MiB files (Java: 300,000 x 20 B).
pub const CQ_ENTRIES_PER_FILE_DEFAULT: u64 = 1 << 18;

/// Most queues one store (shard) may own; a new queue past it is refused with
/// `StorageError::QueuesExhausted`. RocketMQ brokers carry tens of thousands of queues (4,050
/// topics of 4 queues filled the old 8,192, issue 11), so 65,536 per shard. What it costs: an
/// idle queue holds no block and no file descriptor, only its state in the map, measured at
/// about 200 bytes with 11-byte topic names of 4 queues (`tests/consume_queue_capacity.rs`:
/// 13.3 MiB for 65,536 empty queues; the compile-time check below bounds the state alone at
/// 16 MiB); a queue written to in the last flush interval adds its 4 KiB tail block until the
/// next flush after it goes idle (was: 4.8 KiB per queue, always). The store checkpoint lists every queue: at
/// most 65,536 x 277 bytes = 17.3 MiB with 255-byte topic names (`checkpoint_file.rs`).
pub const CQ_QUEUES_MAX: usize = 65_536;

/// Consecutive full blocks of one queue's file written in one write (256 KiB). A queue taking
/// 100k entries/s fills ~780 blocks/s; written one block per file open, write and close, the
/// blocks of a broker taking 540k+ msgs/s fell behind and sends waited 2-3 s for the pending
/// budget (`perf-reports/2026-12-07-direct-dispatch/`).
pub const CQ_WRITE_BLOCKS_MAX: usize = 64;

/// Full blocks (all queues together) allowed to wait for their write before dispatch stops and
/// writes them: 1024 x 4 KiB = 4 MiB.
pub const CQ_PENDING_BLOCKS_MAX: usize = 1024;

/// Default full blocks (all queues together) that make a write round worth starting from
/// the append path ([`ops::CqStore::write_batched`]): 256 x 4 KiB = 1 MiB. Fewer wait in
/// memory for the next round or the store checkpoint's flush. Written as each one filled, a
/// 1-shard broker taking 190k msgs/s into 8 queues made ~1,480 block writes a second, each an
/// open, an fstat, an extending O_DIRECT write (which ext4 cannot complete without blocking:
/// io_uring runs it on a worker thread) and a close, ~8 % of the shard's CPU
/// (`perf-reports/2026-12-07-cq-batch/`).
pub const CQ_WRITE_START_BLOCKS: usize = 256;

/// Block writes of different queues in flight at once (one per queue, so each queue's blocks
/// are still written in order). Written one at a time, each 4 KiB write waited 1–2 ms behind
/// the next CommitLog segment's zero-fill, and every append waits for the reput that writes
/// them (perf-reports/2026-12-05-backlog).
pub const CQ_WRITES_IN_FLIGHT_MAX: usize = 8;

/// fdatasyncs (and directory fsyncs) of different files in flight at once during a flush. A
/// store with tens of thousands of queues can have thousands of files to sync at a checkpoint:
/// 4,000 new files and their 5,001 directories took 1.9 s one at a time and 0.34 s with 64 in
/// flight (ext4 on a virtio SSD, `tests/consume_queue_capacity.rs`), against a 2 s checkpoint
/// interval. Each sync opens its file: this also bounds the file descriptors a flush holds.
pub const CQ_SYNCS_IN_FLIGHT_MAX: usize = 64;

/// Default block cache: 4096 x 4 KiB = 16 MiB of recently read or written entry blocks
/// (512 Ki entries), enough for every consumer of a few thousand queues lagging a little.
pub const CQ_BLOCK_CACHE_BLOCKS_DEFAULT: usize = 4096;

const _: () = {
    assert!(
        CQ_ENTRIES_PER_FILE_DEFAULT % ENTRIES_PER_BLOCK == 0,
        "files hold whole blocks"
    );
    assert!(CQ_SYNCS_IN_FLIGHT_MAX >= 1 && CQ_WRITES_IN_FLIGHT_MAX >= 1);
    assert!(
        CQ_PENDING_BLOCKS_MAX >= 1,
        "dispatch needs room for at least one full block"
    );
    assert!(
        CQ_WRITE_START_BLOCKS >= 1 && CQ_WRITE_START_BLOCKS <= CQ_PENDING_BLOCKS_MAX,
        "a write round starts before dispatch has to stop for one"
    );
    assert!(
        CQ_QUEUES_MAX * std::mem::size_of::<QueueState>() <= 16 * 1024 * 1024,
        "the state of all queues, idle, stays within 16 MiB"
    );
    assert!(
        CQ_QUEUES_MAX <= u32::MAX as usize,
        "the checkpoint stores the queue count as a u32"
    );
};

/// Configuration of the consume queues of one store.
#[derive(Debug, Clone)]
pub struct ConsumeQueueConfig {
    /// Directory holding `<topic>/<queue_id>/` subdirectories.
    pub root: PathBuf,
    /// Entries per file; a multiple of 128.
    pub entries_per_file: u64,
    /// Blocks the read cache may hold.
    pub block_cache_blocks: usize,
    /// Most queues.
    pub queues_max: usize,
    /// Full blocks that start a write round from the append path
    /// ([`CQ_WRITE_START_BLOCKS`]; 1..=[`CQ_PENDING_BLOCKS_MAX`]).
    pub write_start_blocks: usize,
}

impl ConsumeQueueConfig {
    /// Defaults under `root`.
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            entries_per_file: CQ_ENTRIES_PER_FILE_DEFAULT,
            block_cache_blocks: CQ_BLOCK_CACHE_BLOCKS_DEFAULT,
            queues_max: CQ_QUEUES_MAX,
            write_start_blocks: CQ_WRITE_START_BLOCKS,
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] when a value is out of range.
    pub fn validate(&self) -> Result<()> {
        if self.entries_per_file == 0 || self.entries_per_file % ENTRIES_PER_BLOCK != 0 {
            return Err(StorageError::InvalidConfig(format!(
                "consume queue entries_per_file {} must be a positive multiple of {}",
                self.entries_per_file, ENTRIES_PER_BLOCK
            )));
        }
        if self.queues_max == 0 || self.queues_max > CQ_QUEUES_MAX {
            return Err(StorageError::InvalidConfig(format!(
                "consume queue queues_max {} must be in 1..={CQ_QUEUES_MAX}",
                self.queues_max
            )));
        }
        if self.write_start_blocks == 0 || self.write_start_blocks > CQ_PENDING_BLOCKS_MAX {
            return Err(StorageError::InvalidConfig(format!(
                "consume queue write_start_blocks {} must be in 1..={CQ_PENDING_BLOCKS_MAX}",
                self.write_start_blocks
            )));
        }
        Ok(())
    }
}

/// A queue's identity.
pub type QueueKey = (Rc<str>, i32);

/// Offsets of one queue, as saved in the store checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: i32,
    /// First retained queue offset.
    pub min_offset: u64,
    /// Next queue offset.
    pub max_offset: u64,
}

/// Where a queue is cut when the CommitLog is truncated: its entries at and after `new_max`
/// point at or past the truncation point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCut {
    /// Topic.
    pub topic: Rc<str>,
    /// Queue id.
    pub queue_id: i32,
    /// The queue instance the cut was planned for.
    pub uid: u64,
    /// The new max offset.
    pub new_max: u64,
    /// The entry at `new_max - 1`; `None` when the queue becomes empty.
    pub last_entry: Option<CqEntry>,
}

/// What [`ConsumeQueues::dispatch`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// The entry was appended.
    Appended,
    /// The queue already holds this record (recovery replay over a covered range).
    AlreadyPresent,
    /// The queue was empty and restarted at the record's queue offset.
    Restarted,
}

/// All consume queues of a store.
#[derive(Debug)]
pub struct ConsumeQueues {
    config: ConsumeQueueConfig,
    topics: FastMap<Rc<str>, TopicQueues>,
    queue_count: usize,
    pending: BTreeSet<QueueKey>,
    /// The last queue [`Self::next_pending_writes`] handed out: the next round starts after
    /// it, so every queue with pending blocks gets its turn while others keep filling blocks.
    write_cursor: Option<QueueKey>,
    pending_blocks: usize,
    cache: BlockCache,
    next_uid: u64,
    /// Directories whose entries (new files, new subdirectories) need an fsync.
    dirs_to_sync: BTreeSet<PathBuf>,
    /// Files written whose fdatasync was not done (a failed open during a flush): the next
    /// flush syncs them.
    files_to_sync: BTreeSet<PathBuf>,
}

impl ConsumeQueues {
    /// An empty set.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] on a bad config.
    pub fn new(config: ConsumeQueueConfig) -> Result<Self> {
        config.validate()?;
        let cache = BlockCache::new(config.block_cache_blocks);
        Ok(Self {
            config,
            topics: FastMap::default(),
            queue_count: 0,
            pending: BTreeSet::new(),
            write_cursor: None,
            pending_blocks: 0,
            cache,
            next_uid: 1,
            dirs_to_sync: BTreeSet::new(),
            files_to_sync: BTreeSet::new(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ConsumeQueueConfig {
        &self.config
    }

    /// Directory of a queue.
    #[must_use]
    pub fn queue_dir(&self, topic: &str, queue_id: i32) -> PathBuf {
        self.config.root.join(topic).join(queue_id.to_string())
    }

    /// The queue, if it exists.
    #[must_use]
    pub fn queue(&self, topic: &str, queue_id: i32) -> Option<&QueueState> {
        self.topics.get(topic)?.get(queue_id)
    }

    fn queue_mut(&mut self, topic: &str, queue_id: i32) -> Option<&mut QueueState> {
        self.topics.get_mut(topic)?.get_mut(queue_id)
    }

    /// (min offset, max offset) of a queue, `None` if unknown.
    #[must_use]
    pub fn offsets(&self, topic: &str, queue_id: i32) -> Option<(u64, u64)> {
        self.queue(topic, queue_id)
            .map(|queue| (queue.min_offset(), queue.max_offset()))
    }

    /// Number of queues.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue_count
    }

    /// True when there is no queue.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue_count == 0
    }

    /// Every queue key, sorted.
    #[must_use]
    pub fn keys(&self) -> Vec<QueueKey> {
        let mut keys: Vec<QueueKey> = self
            .topics
            .iter()
            .flat_map(|(topic, queues)| queues.ids().map(|id| (Rc::clone(topic), id)))
            .collect();
        keys.sort();
        keys
    }

    /// Queue ids of `topic`.
    #[must_use]
    pub fn queue_ids(&self, topic: &str) -> Vec<i32> {
        self.topics
            .get(topic)
            .map(|queues| queues.ids().collect())
            .unwrap_or_default()
    }

    /// A fresh owner id for a queue instance or file (block-cache key).
    pub fn new_uid(&mut self) -> u64 {
        let uid = self.next_uid;
        self.next_uid += 1;
        uid
    }

    /// Adds a queue loaded by recovery.
    ///
    /// # Errors
    /// [`StorageError::QueuesExhausted`] past `queues_max`.
    ///
    /// # Panics
    /// If the queue already exists.
    pub fn insert_loaded(&mut self, topic: &str, queue_id: i32, state: QueueState) -> Result<()> {
        assert!(self.queue(topic, queue_id).is_none(), "queue loaded twice");
        self.check_room(topic, queue_id)?;
        let topic: Rc<str> = self.topic_key(topic);
        self.topics
            .entry(topic)
            .or_default()
            .insert(queue_id, state);
        self.queue_count += 1;
        Ok(())
    }

    fn topic_key(&self, topic: &str) -> Rc<str> {
        self.topics
            .get_key_value(topic)
            .map_or_else(|| Rc::from(topic), |(key, _)| Rc::clone(key))
    }

    fn check_room(&self, topic: &str, queue_id: i32) -> Result<()> {
        if self.queue_count >= self.config.queues_max {
            return Err(StorageError::QueuesExhausted {
                topic: topic.to_owned(),
                queue_id,
                limit: self.config.queues_max,
            });
        }
        Ok(())
    }

    /// Creates an empty queue starting at offset 0 if it does not exist yet (no I/O: its
    /// directory and files are created by the first block write).
    ///
    /// # Errors
    /// [`StorageError::QueuesExhausted`] when the store already owns `queues_max` queues.
    pub fn ensure_queue(&mut self, topic: &str, queue_id: i32) -> Result<()> {
        if self.queue(topic, queue_id).is_some() {
            return Ok(());
        }
        self.check_room(topic, queue_id)?;
        let uid = self.new_uid();
        let state = QueueState::new(uid, self.config.entries_per_file, (0, 0), None, None);
        let topic_key = self.topic_key(topic);
        self.topics
            .entry(topic_key)
            .or_default()
            .insert(queue_id, state);
        self.queue_count += 1;
        Ok(())
    }

    /// Adds the entry for one CommitLog record, creating the queue if needed.
    ///
    /// Rules, in order: a record before the queue's last entry's end is already present; the
    /// record at `max_offset` is appended; an empty queue restarts at a later offset (rebuilt
    /// from a CommitLog whose older records are gone) and ignores an earlier one; anything else
    /// means the queue lost entries that were never rebuilt.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] on a gap or a rewind in a non-empty queue;
    /// [`StorageError::QueuesExhausted`] past `queues_max`.
    ///
    /// # Panics
    /// If the queue's tail block must be loaded first ([`ConsumeQueues::tail_load`]; the async
    /// `CqStore::dispatch` does it).
    pub fn dispatch(
        &mut self,
        topic: &str,
        queue_id: i32,
        queue_offset: u64,
        cq_entry: &CqEntry,
    ) -> Result<Dispatched> {
        self.ensure_queue(topic, queue_id)?;
        let queue = self.queue_mut(topic, queue_id).expect("ensured above");
        if let Some(last) = queue.last_entry() {
            if cq_entry.phys_offset < last.phys_end() {
                return Ok(Dispatched::AlreadyPresent);
            }
        }
        let empty = queue.min_offset() == queue.max_offset();
        let outcome = if queue_offset == queue.max_offset() {
            Dispatched::Appended
        } else if empty && queue_offset > queue.max_offset() {
            queue.restart_at(queue_offset);
            Dispatched::Restarted
        } else if empty {
            return Ok(Dispatched::AlreadyPresent);
        } else {
            let max_offset = queue.max_offset();
            return Err(StorageError::Corrupt {
                path: self.queue_dir(topic, queue_id),
                offset: cq_entry.phys_offset,
                reason: format!(
                    "record for queue offset {queue_offset} but the queue's next offset is {max_offset}"
                ),
            });
        };
        if queue.push(queue_offset, cq_entry) {
            self.pending_blocks += 1;
            self.pending.insert((self.topic_key(topic), queue_id));
        }
        Ok(outcome)
    }

    /// Full blocks waiting to be written, all queues together.
    #[must_use]
    pub fn pending_blocks(&self) -> usize {
        self.pending_blocks
    }

    /// True when dispatch must wait for block writes ([`CQ_PENDING_BLOCKS_MAX`]).
    #[must_use]
    pub fn pending_over_budget(&self) -> bool {
        self.pending_blocks >= CQ_PENDING_BLOCKS_MAX
    }

    /// True when enough full blocks wait to start a write round from the append path
    /// ([`ConsumeQueueConfig::write_start_blocks`]), or dispatch must wait for one.
    #[must_use]
    pub fn write_round_ready(&self) -> bool {
        self.pending_blocks >= self.config.write_start_blocks || self.pending_over_budget()
    }

    /// The next full blocks to write of each of up to `max` queues (one write per queue: up to
    /// [`CQ_WRITE_BLOCKS_MAX`] consecutive blocks of one file).
    #[must_use]
    pub fn next_pending_writes(&mut self, max: usize) -> Vec<(QueueKey, BlockWrite)> {
        // Round robin from after the queue last handed out, wrapping around.
        let chosen: Vec<QueueKey> = match &self.write_cursor {
            Some(cursor) => self
                .pending
                .range::<QueueKey, _>((Bound::Excluded(cursor), Bound::Unbounded))
                .chain(self.pending.range::<QueueKey, _>(..=cursor))
                .take(max)
                .cloned()
                .collect(),
            None => self.pending.iter().take(max).cloned().collect(),
        };
        if let Some(last) = chosen.last() {
            self.write_cursor = Some(last.clone());
        }
        chosen
            .iter()
            .map(|key| {
                let dir = self.queue_dir(&key.0, key.1);
                let write = self
                    .queue(&key.0, key.1)
                    .and_then(|queue| queue.next_pending_write(&dir, CQ_WRITE_BLOCKS_MAX))
                    .expect("a queue in the pending set has a pending block");
                (key.clone(), write)
            })
            .collect()
    }

    /// The tail blocks changed since they were last written.
    #[must_use]
    pub fn tail_writes(&self) -> Vec<(QueueKey, BlockWrite)> {
        let mut writes = Vec::new();
        for (topic, queues) in &self.topics {
            for (queue_id, queue) in queues.iter() {
                if queue.tail_changed() {
                    let dir = self.queue_dir(topic, queue_id);
                    let write = queue.tail_write(&dir).expect("the tail changed");
                    writes.push(((Rc::clone(topic), queue_id), write));
                }
            }
        }
        writes
    }

    /// Where to read a queue's tail block from, if it must be loaded before the next dispatch
    /// into the queue (it was evicted while idle).
    #[must_use]
    pub fn tail_load(&self, topic: &str, queue_id: i32) -> Option<TailLoad> {
        let queue = self.queue(topic, queue_id)?;
        if !queue.needs_tail_load() {
            return None;
        }
        queue.tail_load(&self.queue_dir(topic, queue_id))
    }

    /// Installs a tail block read for `load`; false if the queue changed meanwhile (load again).
    pub fn install_tail(
        &mut self,
        topic: &str,
        queue_id: i32,
        load: &TailLoad,
        bytes: Box<[u8]>,
    ) -> bool {
        self.queue_mut(topic, queue_id)
            .is_some_and(|queue| queue.install_tail(load, bytes))
    }

    /// Drops the tail blocks of queues that are written and got no entry since the last call
    /// (one flush interval); returns how many. Call it with no block write in flight.
    pub fn evict_idle_tails(&mut self) -> usize {
        self.topics
            .values_mut()
            .flat_map(TopicQueues::iter_mut)
            .map(|(_, queue)| queue.evict_idle_tail())
            .filter(|&evicted| evicted)
            .count()
    }

    /// Queues whose tail block is in memory.
    #[must_use]
    pub fn tails_in_memory(&self) -> usize {
        self.topics
            .values()
            .flat_map(TopicQueues::iter)
            .filter(|(_, queue)| queue.tail_in_memory())
            .count()
    }

    /// Records a completed block write (`created`: the write created the file).
    pub fn complete_write(&mut self, key: &QueueKey, write: &BlockWrite, created: bool) {
        if created {
            self.note_created(&write.path);
        }
        let Some(queue) = self.queue_mut(&key.0, key.1) else {
            return; // deleted meanwhile; its directory is being removed
        };
        if queue.uid() != write.uid {
            return; // the queue was deleted and re-created meanwhile
        }
        let uid = queue.uid();
        let completed = queue.complete_write(write);
        let still_pending = queue.pending_blocks() > 0;
        self.pending_blocks -= completed.len();
        for (block_first, bytes) in completed {
            self.cache.insert((uid, block_first), bytes);
        }
        if !still_pending {
            self.pending.remove(key);
        }
    }

    /// A block write of `file` failed: it may have created the file or its directories before
    /// failing, so the directories are synced at the next flush (the block stays pending).
    pub fn note_failed_write(&mut self, file: &Path) {
        self.note_created(file);
    }

    fn note_created(&mut self, file: &Path) {
        // The new file's directory, and (in case they were created too) the topic directory
        // and the root.
        let mut dir = file.parent();
        while let Some(path) = dir {
            self.dirs_to_sync.insert(path.to_path_buf());
            if path == self.config.root {
                break;
            }
            dir = path.parent();
        }
    }

    /// Files written since their last fdatasync and directories needing an fsync; clears both.
    /// What the caller fails to sync must go back through [`ConsumeQueues::restore_unsynced`].
    pub fn take_unsynced(&mut self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut files = std::mem::take(&mut self.files_to_sync);
        let root = &self.config.root;
        for (topic, queues) in &mut self.topics {
            for (queue_id, queue) in queues.iter_mut() {
                if queue.has_unsynced_files() {
                    let dir = root.join(&**topic).join(queue_id.to_string());
                    files.extend(queue.take_unsynced_files(&dir));
                }
            }
        }
        let dirs = std::mem::take(&mut self.dirs_to_sync).into_iter().collect();
        (files.into_iter().collect(), dirs)
    }

    /// Puts back files and directories a flush took but did not sync, so the next flush syncs
    /// them (a flush that forgot them would let a checkpoint claim entries no fdatasync
    /// covered).
    pub fn restore_unsynced(&mut self, files: Vec<PathBuf>, dirs: Vec<PathBuf>) {
        self.files_to_sync.extend(files);
        self.dirs_to_sync.extend(dirs);
    }

    /// Cached block of a queue instance.
    pub fn cached_block(&mut self, uid: u64, block_first: u64) -> Option<Rc<[u8]>> {
        self.cache.get((uid, block_first))
    }

    /// Caches an immutable block read from disk.
    pub fn cache_block(&mut self, uid: u64, block_first: u64, bytes: Rc<[u8]>) {
        self.cache.insert((uid, block_first), bytes);
    }

    /// Raises a queue's min offset (retention).
    pub fn advance_min(&mut self, topic: &str, queue_id: i32, offset: u64) {
        if let Some(queue) = self.queue_mut(topic, queue_id) {
            queue.advance_min(offset.min(queue.max_offset()));
        }
    }

    /// Drops a queue's entries at and after `cut.new_max` (see [`QueueState::truncate`]);
    /// returns the paths of its files that then hold no entry. Does nothing if the queue is
    /// gone or was re-created since the cut was planned.
    pub fn truncate_queue(&mut self, cut: &QueueCut) -> Vec<PathBuf> {
        let dir = self.queue_dir(&cut.topic, cut.queue_id);
        let Some(queue) = self.queue_mut(&cut.topic, cut.queue_id) else {
            return Vec::new();
        };
        if queue.uid() != cut.uid {
            return Vec::new();
        }
        let old_max = queue.max_offset();
        let dropped = queue.truncate(cut.new_max, cut.last_entry);
        let uid = queue.uid();
        let still_pending = queue.pending_blocks() > 0;
        let epf = queue.entries_per_file();
        let kept_file = queue.file_first(cut.new_max);
        let last_file = queue.file_first(old_max.max(1) - 1);
        self.pending_blocks -= dropped;
        if !still_pending {
            self.pending
                .retain(|(topic, queue_id)| **topic != *cut.topic || *queue_id != cut.queue_id);
        }
        // Blocks of the dropped entries may be cached as immutable: never serve them again.
        self.cache.remove_owner(uid);
        let mut doomed = Vec::new();
        let mut file_first = kept_file + epf;
        while file_first <= last_file {
            doomed.push(QueueState::file_path(&dir, file_first));
            file_first += epf;
        }
        doomed
    }

    /// Removes every queue of `topic` from memory; returns the topic directory to delete.
    pub fn remove_topic(&mut self, topic: &str) -> Option<PathBuf> {
        let queues = self.topics.remove(topic)?;
        let topic_dir = self.config.root.join(topic);
        self.files_to_sync
            .retain(|file| !file.starts_with(&topic_dir));
        for (queue_id, queue) in queues.iter() {
            self.cache.remove_owner(queue.uid());
            self.pending_blocks -= queue.pending_blocks();
            self.pending
                .retain(|(key_topic, key_id)| &**key_topic != topic || *key_id != queue_id);
            self.queue_count -= 1;
        }
        Some(topic_dir)
    }

    /// Offsets of every queue, for the store checkpoint.
    #[must_use]
    pub fn snapshot(&self) -> Vec<QueueSnapshot> {
        self.keys()
            .into_iter()
            .map(|(topic, queue_id)| {
                let queue = self.queue(&topic, queue_id).expect("key listed");
                QueueSnapshot {
                    topic: topic.to_string(),
                    queue_id,
                    min_offset: queue.min_offset(),
                    max_offset: queue.max_offset(),
                }
            })
            .collect()
    }

    /// Block-cache (hits, misses).
    #[must_use]
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }
}
