//! In-memory state of one ConsumeQueue (topic, queue_id): offsets, the tail block being
//! filled, full blocks waiting to be written, and where every other entry lives on disk.
//! Pure; the I/O that moves blocks to and from disk is in [`super::io`], and the queue's
//! directory is passed in by the owner (not stored: it would cost a path per queue).
//!
//! Geometry: entry `k` lives in file `k / entries_per_file` (named by its first queue offset,
//! 20 digits), at byte `(k % entries_per_file) * 32`, inside the 4 KiB block that starts at
//! `k - k % 128`. Lookup by queue offset is arithmetic, O(1).
//!
//! Memory: an idle queue holds no block, only this struct (no heap allocation at all); the
//! tail block (4 KiB) is allocated by the first entry pushed into it and dropped again by
//! [`QueueState::evict_idle_tail`] once it is written and no entry came for a whole flush
//! interval (it is then read back from disk before the next push, see `ops.rs`). Full blocks
//! not yet written are bounded by the owner (`CQ_PENDING_BLOCKS_MAX`). Must never: accept an
//! entry out of queue-offset order, let an entry's CommitLog offset go backwards, or drop a tail
//! block that is not on disk.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::entry::{self, CqEntry, BLOCK_SIZE, ENTRIES_PER_BLOCK};

/// Where the entry for a queue offset can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// Held in memory (tail block or a block waiting to be written).
    Memory(CqEntry),
    /// On disk, in the block starting at queue offset `block_first` of the file starting at
    /// queue offset `file_first`.
    Disk {
        /// First queue offset of the file.
        file_first: u64,
        /// First queue offset of the block.
        block_first: u64,
        /// The block is full and written: its bytes never change again, so they may be cached.
        /// (An evicted tail block is read from disk too, but grows again later.)
        immutable: bool,
    },
}

/// A block to write: bytes for `[block_first, block_first + 128)` at `position` in `path`.
#[derive(Debug, Clone)]
pub struct BlockWrite {
    /// Id of the queue instance the block belongs to.
    pub uid: u64,
    /// File to write (created if missing).
    pub path: PathBuf,
    /// First queue offset of the file.
    pub file_first: u64,
    /// First queue offset of the block.
    pub block_first: u64,
    /// Byte position of the block in the file.
    pub position: u64,
    /// The bytes of consecutive blocks of the file from `block_first` on (4 KiB each; one for
    /// a tail write).
    pub blocks: Vec<Rc<[u8]>>,
    /// Tail version the bytes were taken at (partial tail writes only).
    pub tail_version: Option<u64>,
}

/// File name of the consume-queue file starting at queue offset `file_first`.
#[must_use]
pub fn file_name(file_first: u64) -> String {
    format!("{file_first:020}")
}

/// Where the tail block's bytes come from when a push needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLoad {
    /// Id of the queue instance.
    pub uid: u64,
    /// File holding the tail block.
    pub path: PathBuf,
    /// Byte position of the tail block in the file.
    pub position: u64,
    /// First queue offset of the tail block.
    pub tail_first: u64,
    /// Entries `[max(min_offset, tail_first), max_offset)` of the block must be valid.
    pub min_offset: u64,
    /// The queue's max offset (entries at and past it are zeroed when installed).
    pub max_offset: u64,
    /// The queue's last entry, which the block must hold at `max_offset - 1`.
    pub last_entry: Option<CqEntry>,
}

/// State of one queue.
#[derive(Debug)]
pub struct QueueState {
    uid: u64,
    entries_per_file: u64,
    min_offset: u64,
    max_offset: u64,
    tail_first: u64,
    /// The tail block `[tail_first, tail_first + 128)`; `None` when it holds no entry yet or
    /// when its entries are all written and it was evicted (then they are read from disk).
    tail: Option<Box<[u8]>>,
    tail_version: u64,
    tail_written_version: u64,
    pending: VecDeque<(u64, Rc<[u8]>)>,
    last_entry: Option<CqEntry>,
    unsynced_files: BTreeSet<u64>,
    /// An entry was pushed (or the tail loaded for one) since the last
    /// [`QueueState::evict_idle_tail`].
    pushed_recently: bool,
}

fn block_floor(offset: u64) -> u64 {
    offset - offset % ENTRIES_PER_BLOCK
}

impl QueueState {
    /// A queue holding entries `[min_offset, max_offset)`, whose tail block (the block holding
    /// `max_offset`) currently contains `tail_bytes` (zeros past `max_offset`), and whose last
    /// entry is `last_entry`. `tail_bytes: None`: the tail block's entries, if any, are on disk
    /// (loaded before the next push).
    ///
    /// # Panics
    /// On inconsistent arguments: bad geometry, `min > max`, a tail block of the wrong size, or
    /// a missing last entry for a non-empty queue.
    #[must_use]
    pub fn new(
        uid: u64,
        entries_per_file: u64,
        range: (u64, u64),
        tail_bytes: Option<Box<[u8]>>,
        last_entry: Option<CqEntry>,
    ) -> Self {
        let (min_offset, max_offset) = range;
        assert!(entries_per_file > 0, "a file holds entries");
        assert!(
            entries_per_file % ENTRIES_PER_BLOCK == 0,
            "files hold whole blocks"
        );
        assert!(min_offset <= max_offset, "queue range inverted");
        assert_eq!(
            last_entry.is_some(),
            max_offset > min_offset,
            "last entry iff non-empty"
        );
        if let Some(tail) = &tail_bytes {
            assert_eq!(tail.len(), BLOCK_SIZE, "tail is one block");
        }
        Self {
            uid,
            entries_per_file,
            min_offset,
            max_offset,
            tail_first: block_floor(max_offset),
            tail: tail_bytes,
            tail_version: 0,
            tail_written_version: 0,
            pending: VecDeque::new(),
            last_entry,
            unsynced_files: BTreeSet::new(),
            pushed_recently: false,
        }
    }

    /// Unique id of this queue instance (block-cache owner id).
    #[must_use]
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Entries per file.
    #[must_use]
    pub fn entries_per_file(&self) -> u64 {
        self.entries_per_file
    }

    /// First retained queue offset.
    #[must_use]
    pub fn min_offset(&self) -> u64 {
        self.min_offset
    }

    /// Next queue offset to be written.
    #[must_use]
    pub fn max_offset(&self) -> u64 {
        self.max_offset
    }

    /// The newest entry, `None` when empty.
    #[must_use]
    pub fn last_entry(&self) -> Option<CqEntry> {
        self.last_entry
    }

    /// First queue offset of the file holding `offset`.
    #[must_use]
    pub fn file_first(&self, offset: u64) -> u64 {
        offset - offset % self.entries_per_file
    }

    /// Path of the file starting at `file_first`, in the queue's directory `dir`.
    #[must_use]
    pub fn file_path(dir: &Path, file_first: u64) -> PathBuf {
        dir.join(file_name(file_first))
    }

    /// Byte position inside its file of the block starting at `block_first`.
    #[must_use]
    pub fn block_position(&self, block_first: u64) -> u64 {
        assert_eq!(
            block_first % ENTRIES_PER_BLOCK,
            0,
            "block start must be block aligned"
        );
        (block_first % self.entries_per_file) * entry::ENTRY_SIZE as u64
    }

    /// Full blocks waiting to be written.
    #[must_use]
    pub fn pending_blocks(&self) -> usize {
        self.pending.len()
    }

    /// True when the tail block holds entries that are only on disk: they must be read back
    /// ([`QueueState::tail_load`], [`QueueState::install_tail`]) before the next push.
    #[must_use]
    pub fn needs_tail_load(&self) -> bool {
        self.tail.is_none() && self.max_offset > self.tail_first
    }

    /// Where to read the tail block from, if it must be loaded.
    #[must_use]
    pub fn tail_load(&self, dir: &Path) -> Option<TailLoad> {
        if !self.needs_tail_load() {
            return None;
        }
        Some(TailLoad {
            uid: self.uid,
            path: Self::file_path(dir, self.file_first(self.tail_first)),
            position: self.block_position(self.tail_first),
            tail_first: self.tail_first,
            min_offset: self.min_offset,
            max_offset: self.max_offset,
            last_entry: self.last_entry,
        })
    }

    /// Installs the tail block read for `load` (entries at and past `max_offset` zeroed).
    /// Returns false, installing nothing, if the queue changed since `load` was taken.
    ///
    /// # Panics
    /// If `bytes` is not one block.
    pub fn install_tail(&mut self, load: &TailLoad, mut bytes: Box<[u8]>) -> bool {
        assert_eq!(bytes.len(), BLOCK_SIZE, "tail is one block");
        if load.uid != self.uid
            || !self.needs_tail_load()
            || load.tail_first != self.tail_first
            || load.max_offset != self.max_offset
        {
            return false;
        }
        let end = usize::try_from(self.max_offset - self.tail_first).expect("< 128");
        bytes[end * entry::ENTRY_SIZE..].fill(0);
        self.tail = Some(bytes);
        // Loaded for an entry about to come: kept through the next flush even if that entry
        // is late.
        self.pushed_recently = true;
        true
    }

    /// Drops the tail block if it is on disk as it is in memory and no entry was pushed since
    /// the last call (one flush interval); returns whether it did. Called after each flush.
    pub fn evict_idle_tail(&mut self) -> bool {
        let idle = !std::mem::replace(&mut self.pushed_recently, false);
        if !idle || self.tail.is_none() || self.tail_changed() {
            return false;
        }
        self.tail = None;
        true
    }

    /// True when the tail block's bytes are in memory.
    #[must_use]
    pub fn tail_in_memory(&self) -> bool {
        self.tail.is_some()
    }

    /// Appends the entry for `queue_offset`, which must be `max_offset`. Returns true when this
    /// completed a block (now waiting in the pending list).
    ///
    /// # Panics
    /// If `queue_offset != max_offset`, the CommitLog offset goes backwards, or the tail block
    /// must be loaded first ([`QueueState::needs_tail_load`]).
    pub fn push(&mut self, queue_offset: u64, cq_entry: &CqEntry) -> bool {
        assert_eq!(
            queue_offset, self.max_offset,
            "consume queue entries arrive in order"
        );
        if let Some(last) = self.last_entry {
            assert!(
                cq_entry.phys_offset >= last.phys_end(),
                "CommitLog offsets must increase"
            );
        }
        assert!(
            queue_offset - self.tail_first < ENTRIES_PER_BLOCK,
            "tail holds max_offset"
        );
        assert!(
            !self.needs_tail_load(),
            "the tail block is loaded before a push"
        );
        let tail = self
            .tail
            .get_or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
        entry::encode(
            queue_offset,
            cq_entry,
            entry::slot_mut(tail, self.tail_first, queue_offset),
        );
        self.max_offset += 1;
        self.last_entry = Some(*cq_entry);
        self.tail_version += 1;
        self.pushed_recently = true;
        if self.max_offset - self.tail_first < ENTRIES_PER_BLOCK {
            return false;
        }
        let full = self.tail.take().expect("pushed into above");
        self.pending.push_back((self.tail_first, Rc::from(full)));
        self.tail_first = self.max_offset;
        // The new tail block holds nothing, so nothing of it needs writing; its block is
        // allocated by the next push.
        self.tail_written_version = self.tail_version;
        true
    }

    /// Restarts an empty queue at `offset` (a queue rebuilt from a CommitLog whose older
    /// records are gone). Blocks still waiting to be written keep their (older) positions.
    ///
    /// # Panics
    /// If the queue is not empty, or `offset` is below `max_offset`.
    pub fn restart_at(&mut self, offset: u64) {
        assert_eq!(
            self.min_offset, self.max_offset,
            "only an empty queue can restart"
        );
        assert!(
            offset >= self.max_offset,
            "a queue never restarts below its max offset"
        );
        self.min_offset = offset;
        self.max_offset = offset;
        self.tail_first = block_floor(offset);
        // A fresh zeroed tail (written with the next entry): the old entries below `offset`
        // are never served again.
        self.tail = Some(vec![0u8; BLOCK_SIZE].into_boxed_slice());
        self.tail_version += 1;
        self.last_entry = None;
    }

    /// Drops the entries at and after `new_max` (the CommitLog was truncated under them);
    /// `last_entry` is the entry at `new_max - 1` (`None` when the queue becomes empty).
    /// Returns how many pending full blocks were dropped. The new tail block comes from memory
    /// when it is the current tail or a pending block (zeroed past `new_max`, rewritten at the
    /// next flush); otherwise it is on disk and loaded before the next push. Entries on disk
    /// past `new_max` stay until overwritten: no read reaches them (reads stop at the max
    /// offset, a tail load zeroes them, recovery trusts no more than the checkpoint's max).
    ///
    /// # Panics
    /// If `new_max` lies outside `[min_offset, max_offset]`, or `last_entry` disagrees with
    /// the queue becoming empty.
    pub fn truncate(&mut self, new_max: u64, last_entry: Option<CqEntry>) -> usize {
        assert!(
            new_max >= self.min_offset,
            "truncation below the min offset"
        );
        assert!(new_max <= self.max_offset, "truncation past the max offset");
        assert_eq!(
            last_entry.is_some(),
            new_max > self.min_offset,
            "last entry iff non-empty"
        );
        if new_max == self.max_offset {
            return 0;
        }
        let new_tail_first = block_floor(new_max);
        let mut tail: Option<Box<[u8]>> = if new_tail_first == self.tail_first {
            self.tail.take()
        } else {
            self.pending
                .iter()
                .find(|(first, _)| *first == new_tail_first)
                .map(|(_, bytes)| Box::from(&bytes[..]))
        };
        let before = self.pending.len();
        self.pending.retain(|(first, _)| *first < new_tail_first);
        let dropped = before - self.pending.len();
        if let Some(bytes) = tail.as_mut() {
            let keep = usize::try_from(new_max - new_tail_first).expect("< 128");
            bytes[keep * entry::ENTRY_SIZE..].fill(0);
        }
        self.max_offset = new_max;
        self.tail_first = new_tail_first;
        self.last_entry = last_entry;
        self.tail = tail;
        self.tail_version += 1;
        if self.tail.is_none() {
            // Nothing in memory to write: the block on disk holds the entries below `new_max`.
            self.tail_written_version = self.tail_version;
        }
        self.pushed_recently = true;
        dropped
    }

    /// Raises the min offset (retention). Entries below it are never served again.
    ///
    /// # Panics
    /// If `offset` lies outside `[min_offset, max_offset]`.
    pub fn advance_min(&mut self, offset: u64) {
        assert!(offset >= self.min_offset, "min offset never moves back");
        assert!(
            offset <= self.max_offset,
            "min offset never passes max offset"
        );
        self.min_offset = offset;
    }

    /// Where to read the entry for `offset`.
    ///
    /// # Panics
    /// If `offset` is outside `[min_offset, max_offset)`, or an in-memory entry fails its CRC
    /// (memory corruption).
    #[must_use]
    pub fn locate(&self, offset: u64) -> Located {
        assert!(offset >= self.min_offset, "locate below min offset");
        assert!(offset < self.max_offset, "locate at or past max offset");
        let block_first = block_floor(offset);
        let in_memory = if block_first == self.tail_first {
            self.tail.as_deref()
        } else {
            self.pending
                .iter()
                .find(|(first, _)| *first == block_first)
                .map(|(_, bytes)| &bytes[..])
        };
        match in_memory {
            Some(bytes) => {
                let slot = entry::slot(bytes, block_first, offset);
                Located::Memory(entry::decode(offset, slot).expect("in-memory entry is valid"))
            }
            None => Located::Disk {
                file_first: self.file_first(offset),
                block_first,
                immutable: block_first != self.tail_first,
            },
        }
    }

    /// The oldest full block waiting to be written (`dir`: the queue's directory).
    #[must_use]
    pub fn next_pending_write(&self, dir: &Path, max_blocks: usize) -> Option<BlockWrite> {
        let &(block_first, _) = self.pending.front()?;
        let file_first = self.file_first(block_first);
        let mut expected = block_first;
        let blocks = self
            .pending
            .iter()
            .take(max_blocks.max(1))
            .take_while(|(first, _)| {
                let next = *first == expected && self.file_first(*first) == file_first;
                expected += ENTRIES_PER_BLOCK;
                next
            })
            .map(|(_, bytes)| Rc::clone(bytes))
            .collect();
        Some(BlockWrite {
            uid: self.uid,
            path: Self::file_path(dir, file_first),
            file_first,
            block_first,
            position: self.block_position(block_first),
            blocks,
            tail_version: None,
        })
    }

    /// Whether the partly filled tail block changed since it was last written.
    #[must_use]
    pub fn tail_changed(&self) -> bool {
        self.tail_version != self.tail_written_version && self.max_offset != self.tail_first
    }

    /// The partly filled tail block, if it changed since it was last written (`dir`: the
    /// queue's directory).
    #[must_use]
    pub fn tail_write(&self, dir: &Path) -> Option<BlockWrite> {
        if !self.tail_changed() {
            return None;
        }
        let tail = self.tail.as_ref().expect("a changed tail is in memory");
        let file_first = self.file_first(self.tail_first);
        Some(BlockWrite {
            uid: self.uid,
            path: Self::file_path(dir, file_first),
            file_first,
            block_first: self.tail_first,
            position: self.block_position(self.tail_first),
            blocks: vec![Rc::from(tail.clone())],
            tail_version: Some(self.tail_version),
        })
    }

    /// Records that `write` reached the file. Returns the blocks it wrote when they are full
    /// (`(block_first, bytes)`: immutable from now on, so the caller may cache them); none for
    /// a tail write.
    ///
    /// # Panics
    /// If `write` is not the oldest pending blocks nor a tail write of this queue.
    pub fn complete_write(&mut self, write: &BlockWrite) -> Vec<(u64, Rc<[u8]>)> {
        assert_eq!(
            write.uid, self.uid,
            "a block write completes on its own queue"
        );
        self.unsynced_files.insert(write.file_first);
        if let Some(version) = write.tail_version {
            if write.block_first == self.tail_first {
                self.tail_written_version = self.tail_written_version.max(version);
            }
            return Vec::new();
        }
        let mut expected = write.block_first;
        let mut completed = Vec::with_capacity(write.blocks.len());
        for _ in &write.blocks {
            let (block_first, bytes) = self
                .pending
                .pop_front()
                .expect("a pending block was written");
            assert_eq!(block_first, expected, "pending blocks are written in order");
            completed.push((block_first, bytes));
            expected += ENTRIES_PER_BLOCK;
        }
        completed
    }

    /// Files written since the last sync (in the queue's directory `dir`); clears the set.
    pub fn take_unsynced_files(&mut self, dir: &Path) -> Vec<PathBuf> {
        let files = std::mem::take(&mut self.unsynced_files);
        files
            .into_iter()
            .map(|file_first| Self::file_path(dir, file_first))
            .collect()
    }

    /// True when files of this queue were written since the last sync.
    #[must_use]
    pub fn has_unsynced_files(&self) -> bool {
        !self.unsynced_files.is_empty()
    }

    /// Has anything not reached the disk (pending blocks, a changed tail, unsynced files)?
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty() || self.tail_changed() || !self.unsynced_files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cq_entry(index: u64) -> CqEntry {
        CqEntry {
            phys_offset: index * 100,
            size: 100,
            tags_code: i64::try_from(index).expect("small"),
            store_timestamp: 1000 + i64::try_from(index).expect("small"),
        }
    }

    fn dir() -> &'static Path {
        Path::new("/q")
    }

    fn queue(range: (u64, u64)) -> QueueState {
        let last = (range.1 > range.0).then(|| cq_entry(range.1 - 1));
        QueueState::new(1, 256, range, None, last)
    }

    #[test]
    fn consecutive_full_blocks_of_one_file_are_written_together() {
        // 256 entries per file = 2 blocks: five full blocks span three files.
        let mut queue = queue((0, 0));
        for offset in 0..(5 * 128 + 7) {
            queue.push(offset, &cq_entry(offset));
        }
        assert_eq!(queue.pending_blocks(), 5);
        let first = queue.next_pending_write(dir(), 64).expect("pending");
        assert_eq!(
            (first.block_first, first.position, first.file_first),
            (0, 0, 0)
        );
        assert_eq!(first.blocks.len(), 2, "up to the file's end");
        let limited = queue.next_pending_write(dir(), 1).expect("pending");
        assert_eq!(limited.blocks.len(), 1, "at most max_blocks");
        let written: Vec<u64> = queue.complete_write(&first).iter().map(|b| b.0).collect();
        assert_eq!(written, [0, 128]);
        assert_eq!(queue.pending_blocks(), 3);
        let second = queue.next_pending_write(dir(), 64).expect("pending");
        assert_eq!(
            (second.block_first, second.file_first, second.position),
            (256, 256, 0)
        );
        assert_eq!(second.blocks.len(), 2);
        let mut slot = [0u8; entry::ENTRY_SIZE];
        entry::encode(384, &cq_entry(384), &mut slot);
        assert_eq!(&second.blocks[1][..entry::ENTRY_SIZE], &slot[..]);
        queue.complete_write(&second);
        let third = queue.next_pending_write(dir(), 64).expect("pending");
        assert_eq!((third.block_first, third.blocks.len()), (512, 1));
        queue.complete_write(&third);
        assert!(queue.next_pending_write(dir(), 64).is_none());
        assert_eq!(queue.pending_blocks(), 0);
    }

    #[test]
    fn geometry_is_arithmetic() {
        let queue = queue((0, 0));
        assert_eq!(queue.file_first(0), 0);
        assert_eq!(queue.file_first(255), 0);
        assert_eq!(queue.file_first(256), 256);
        assert_eq!(queue.block_position(128), 4096);
        assert_eq!(queue.block_position(256), 0);
        assert_eq!(
            QueueState::file_path(Path::new("/q"), 256),
            PathBuf::from("/q/00000000000000000256")
        );
    }

    #[test]
    fn push_fills_tail_then_pending_in_order() {
        let mut queue = queue((0, 0));
        for offset in 0..300 {
            let completed = queue.push(offset, &cq_entry(offset));
            assert_eq!(completed, (offset + 1) % 128 == 0);
        }
        assert_eq!(queue.max_offset(), 300);
        assert_eq!(queue.pending_blocks(), 2);
        for offset in 0..300 {
            assert_eq!(queue.locate(offset), Located::Memory(cq_entry(offset)));
        }
        let first = queue.next_pending_write(dir(), 1).expect("pending");
        assert_eq!(
            (first.block_first, first.position, first.file_first),
            (0, 0, 0)
        );
        let (_, cached) = queue.complete_write(&first).pop().expect("full block");
        assert_eq!(cached.len(), BLOCK_SIZE);
        assert_eq!(
            queue.locate(5),
            Located::Disk {
                file_first: 0,
                block_first: 0,
                immutable: true
            }
        );
        let second = queue.next_pending_write(dir(), 1).expect("pending");
        assert_eq!((second.block_first, second.position), (128, 4096));
        queue.complete_write(&second);
        assert!(queue.next_pending_write(dir(), 1).is_none());
        let tail = queue.tail_write(dir()).expect("tail changed");
        assert_eq!(
            (tail.block_first, tail.file_first, tail.position),
            (256, 256, 0)
        );
        queue.complete_write(&tail);
        assert!(
            queue.tail_write(dir()).is_none(),
            "tail written and unchanged"
        );
        assert_eq!(queue.take_unsynced_files(dir()).len(), 2);
        assert!(!queue.is_dirty());
        queue.push(300, &cq_entry(300));
        assert!(queue.tail_write(dir()).is_some());
    }

    #[test]
    fn an_idle_written_tail_is_dropped_and_loaded_back() {
        let mut queue = queue((0, 0));
        assert!(!queue.tail_in_memory(), "an empty queue holds no block");
        assert!(!queue.evict_idle_tail());
        for offset in 0..130 {
            queue.push(offset, &cq_entry(offset));
        }
        assert!(queue.tail_in_memory());
        assert!(!queue.evict_idle_tail(), "pushed since the last flush");
        assert!(!queue.evict_idle_tail(), "not written yet");
        let full = queue.next_pending_write(dir(), 1).expect("full block");
        queue.complete_write(&full);
        let tail = queue.tail_write(dir()).expect("tail changed");
        queue.complete_write(&tail);
        assert!(queue.evict_idle_tail(), "written and idle for a flush");
        assert!(!queue.tail_in_memory());
        assert_eq!(
            queue.locate(129),
            Located::Disk {
                file_first: 0,
                block_first: 128,
                immutable: false
            },
            "an evicted tail is read from disk, never cached"
        );
        assert!(queue.tail_write(dir()).is_none(), "nothing to write");
        assert!(queue.needs_tail_load());
        let load = queue.tail_load(dir()).expect("load");
        assert_eq!(
            (load.position, load.tail_first, load.max_offset),
            (4096, 128, 130)
        );
        assert_eq!(load.last_entry, Some(cq_entry(129)));
        // The disk block as written, with a stale entry past max_offset that must not survive.
        let mut bytes = tail.blocks[0].to_vec().into_boxed_slice();
        entry::encode(130, &cq_entry(130), entry::slot_mut(&mut bytes, 128, 130));
        let stale_load = TailLoad {
            max_offset: 129,
            ..load.clone()
        };
        assert!(
            !queue.install_tail(&stale_load, bytes.clone()),
            "the queue moved on"
        );
        assert!(queue.install_tail(&load, bytes));
        assert!(!queue.needs_tail_load());
        assert!(
            !queue.evict_idle_tail(),
            "a tail just loaded survives the next flush"
        );
        assert_eq!(queue.locate(129), Located::Memory(cq_entry(129)));
        queue.push(130, &cq_entry(131));
        assert_eq!(queue.locate(130), Located::Memory(cq_entry(131)));
        // A queue whose last push completed a block holds no tail at all.
        for offset in 131..256 {
            queue.push(offset, &cq_entry(offset + 1));
        }
        assert!(!queue.tail_in_memory());
        assert!(!queue.needs_tail_load());
    }

    #[test]
    #[should_panic(expected = "loaded before a push")]
    fn a_push_into_an_evicted_tail_panics() {
        let mut queue = queue((0, 0));
        queue.push(0, &cq_entry(0));
        let tail = queue.tail_write(dir()).expect("tail");
        queue.complete_write(&tail);
        queue.evict_idle_tail(); // clears the pushed flag
        assert!(queue.evict_idle_tail());
        queue.push(1, &cq_entry(1));
    }

    #[test]
    fn restart_and_min_advance() {
        let mut queue = queue((0, 0));
        queue.restart_at(1000);
        assert_eq!((queue.min_offset(), queue.max_offset()), (1000, 1000));
        queue.push(1000, &cq_entry(1000));
        assert_eq!(queue.locate(1000), Located::Memory(cq_entry(1000)));
        queue.push(1001, &cq_entry(1001));
        queue.advance_min(1001);
        assert_eq!(queue.min_offset(), 1001);
    }

    #[test]
    fn truncate_keeps_the_prefix_in_memory_or_on_disk() {
        // Into the current tail: zeroed past the new max, rewritten at the next flush.
        let mut queue = queue((0, 0));
        for offset in 0..300 {
            queue.push(offset, &cq_entry(offset));
        }
        assert_eq!(queue.truncate(290, Some(cq_entry(289))), 0);
        assert_eq!(
            (queue.max_offset(), queue.last_entry()),
            (290, Some(cq_entry(289)))
        );
        assert_eq!(queue.locate(289), Located::Memory(cq_entry(289)));
        let tail = queue.tail_write(dir()).expect("tail rewritten");
        assert!(entry::decode(290, entry::slot(&tail.blocks[0], 256, 290)).is_none());
        // Into a pending full block: it becomes the tail, the blocks after it are dropped.
        assert_eq!(queue.truncate(200, Some(cq_entry(199))), 1);
        assert_eq!(
            queue.pending_blocks(),
            1,
            "block 0..128 still waits for its write"
        );
        assert_eq!(queue.locate(199), Located::Memory(cq_entry(199)));
        queue.push(200, &cq_entry(1000));
        assert_eq!(queue.locate(200), Located::Memory(cq_entry(1000)));
        // Into a written block: loaded from disk before the next push.
        let first = queue.next_pending_write(dir(), 1).expect("pending");
        queue.complete_write(&first);
        assert_eq!(queue.truncate(100, Some(cq_entry(99))), 0);
        assert!(queue.needs_tail_load());
        assert!(
            queue.tail_write(dir()).is_none(),
            "nothing in memory to write"
        );
        assert_eq!(
            queue.locate(99),
            Located::Disk {
                file_first: 0,
                block_first: 0,
                immutable: false
            }
        );
        // Down to empty.
        assert_eq!(queue.truncate(0, None), 0);
        assert_eq!((queue.min_offset(), queue.max_offset()), (0, 0));
        assert!(!queue.needs_tail_load());
        queue.push(0, &cq_entry(5000));
        assert_eq!(queue.locate(0), Located::Memory(cq_entry(5000)));
    }

    #[test]
    #[should_panic(expected = "arrive in order")]
    fn out_of_order_push_panics() {
        let mut queue = queue((0, 0));
        queue.push(1, &cq_entry(1));
    }

    #[test]
    #[should_panic(expected = "must increase")]
    fn backwards_phys_offset_panics() {
        let mut queue = queue((0, 0));
        queue.push(0, &cq_entry(5));
        queue.push(1, &cq_entry(4));
    }
}
