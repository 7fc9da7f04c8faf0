//! The key index of one store: `topic#key` (message `KEYS`, space separated, and the
//! `UNIQ_KEY`) -> CommitLog offsets, queried by key with a store-time range and a result limit.
//!
//! LSM-like and bounded in memory: new entries go to an [`active::ActiveTable`] capped at
//! `active_entries_max`; when full (or at close) it is sealed into an immutable file
//! ([`sealed`] format: header, hash slots, entries sorted by slot, all CRC'd) written once with
//! O_DIRECT, fdatasynced, then renamed into place (`<root>/<20-digit first covered CommitLog
//! offset>`). Queries look at the active table, a table being sealed, then sealed files whose
//! time range overlaps the query, newest first, reading one slot block and the slot's entry
//! blocks (a small block cache in front). In memory per sealed file: its header (a few dozen
//! bytes), never its entries.
//!
//! The index stores 64-bit key hashes, not keys: it returns candidate offsets, and the store
//! facade reads each candidate record and drops any whose topic or keys do not match, so a hash
//! collision never reaches a caller. Recovery: sealed files prove the CommitLog range they
//! cover; the active table is rebuilt by replaying the CommitLog from the end of the last
//! sealed file. Sealing is split so the write path never waits for the file: `begin_seal` swaps
//! tables without I/O, `write_sealing` writes the set-aside one (the store runs it as a task).
//! Owned by one shard; `!Send`. Must never: hold more than two tables (active + one being
//! sealed, `active_entries_max` entries each) in memory, hold a `RefCell` borrow across I/O, or keep a sealed file that covers
//! records past the recovered CommitLog end.

pub mod active;
pub mod key;
pub mod sealed;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::fifo_lock::FifoLock;

use crate::align::AlignedBuf;
use crate::consume_queue::block_cache::BlockCache;
use crate::error::{Result, StorageError};
use crate::file::{Disk, OpenMode};

use self::active::{ActiveTable, IndexEntry};
use self::sealed::{SealedHeader, BLOCK_SIZE};

/// Default cap of the active table: 2^18 entries (about 10 MiB: 8 MiB of entries, 2 MiB of hash
/// slots); a sealed file of that many entries is about 9 MiB.
pub const INDEX_ACTIVE_ENTRIES_DEFAULT: usize = 1 << 18;

/// Hard cap for the configured active table: 2^22 entries (~160 MiB), far above any sensible
/// setting; keeps sealed files under ~150 MiB.
pub const INDEX_ACTIVE_ENTRIES_MAX: usize = 1 << 22;

/// Keys indexed per record; further keys of one record are ignored (Java indexes all, but a
/// record with thousands of keys would fill the table on its own). 64 covers every real use.
pub const INDEX_KEYS_PER_RECORD_MAX: usize = 64;

/// Blocks of sealed index files kept in memory (256 x 4 KiB = 1 MiB).
pub const INDEX_BLOCK_CACHE_BLOCKS: usize = 256;

/// Most candidate offsets one query collects before the facade verifies them.
pub const INDEX_QUERY_RESULTS_MAX: usize = 64 * 1024;

/// Configuration of the index.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Directory of sealed files.
    pub root: PathBuf,
    /// Entries the active table holds before it is sealed.
    pub active_entries_max: usize,
}

impl IndexConfig {
    /// Defaults under `root`.
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            active_entries_max: INDEX_ACTIVE_ENTRIES_DEFAULT,
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] when out of range.
    pub fn validate(&self) -> Result<()> {
        if !(INDEX_KEYS_PER_RECORD_MAX..=INDEX_ACTIVE_ENTRIES_MAX)
            .contains(&self.active_entries_max)
        {
            return Err(StorageError::InvalidConfig(format!(
                "index active_entries_max {} must be in {INDEX_KEYS_PER_RECORD_MAX}..={INDEX_ACTIVE_ENTRIES_MAX}",
                self.active_entries_max
            )));
        }
        Ok(())
    }
}

/// What [`Index::truncate`] dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCut {
    /// Where records must be offered again (a dropped file also covered records before the
    /// truncation point); `None` when the index is complete up to it.
    pub rebuild_from: Option<u64>,
    /// Files of the dropped sealed tables, to delete once nothing relies on them.
    pub files: Vec<PathBuf>,
}

/// A sealed file known to the index.
#[derive(Debug, Clone)]
struct SealedFile {
    path: PathBuf,
    header: SealedHeader,
    uid: u64,
}

#[derive(Debug)]
struct IndexState {
    active: ActiveTable,
    sealing: Option<Rc<ActiveTable>>,
    /// The last written table's memory, kept for the next [`Index::begin_seal`] (never held
    /// together with `sealing`: still at most two tables in memory).
    spare: Option<ActiveTable>,
    /// Oldest first.
    sealed: Vec<SealedFile>,
    cache: BlockCache,
    next_uid: u64,
}

/// The index with its I/O.
#[derive(Debug)]
pub struct Index {
    disk: Disk,
    config: IndexConfig,
    state: RefCell<IndexState>,
    seal_lock: FifoLock,
}

fn file_name(covered_begin: u64) -> String {
    format!("{covered_begin:020}")
}

impl Index {
    /// Opens the index in `config.root`: loads sealed file headers, deletes files that are
    /// damaged or cover records past `phys_limit` (the recovered CommitLog end) together with
    /// every later file, and starts an empty active table. Returns the index and the CommitLog
    /// offset from which records must be replayed into it (`None`: no sealed file; the caller
    /// picks its checkpoint or the CommitLog start).
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`], or I/O errors.
    pub async fn open(
        disk: Disk,
        config: IndexConfig,
        phys_limit: u64,
    ) -> Result<(Self, Option<u64>)> {
        config.validate()?;
        disk.create_dir_all(&config.root).await?;
        let mut sealed: Vec<SealedFile> = Vec::new();
        let mut doomed: Vec<PathBuf> = Vec::new();
        for file in disk.list_dir(&config.root).await? {
            let path = config.root.join(&file.name);
            let numbered = file.name.len() == 20 && file.name.bytes().all(|b| b.is_ascii_digit());
            if !numbered || !doomed.is_empty() {
                doomed.push(path);
                continue;
            }
            match load_header(&disk, &path, file.len).await? {
                Some(header) if header.covered_end <= phys_limit => {
                    let uid = u64::try_from(sealed.len()).expect("fits") + 1;
                    sealed.push(SealedFile { path, header, uid });
                }
                _ => doomed.push(path),
            }
        }
        for path in &doomed {
            tracing::warn!(path = %path.display(), "removing index file (damaged, temporary or past the log end)");
            disk.remove_file(path).await?;
        }
        if !doomed.is_empty() {
            disk.sync_dir(&config.root).await?;
        }
        let resume = sealed.last().map(|file| file.header.covered_end);
        let next_uid = u64::try_from(sealed.len()).expect("fits") + 1;
        let state = IndexState {
            active: ActiveTable::new(config.active_entries_max, resume.unwrap_or(0)),
            sealing: None,
            spare: None,
            sealed,
            cache: BlockCache::new(INDEX_BLOCK_CACHE_BLOCKS),
            next_uid,
        };
        let index = Self {
            disk,
            config,
            state: RefCell::new(state),
            seal_lock: FifoLock::new(),
        };
        Ok((index, resume))
    }

    /// Sets where the (empty) active table starts covering: the replay start chosen by the
    /// store at recovery.
    ///
    /// # Panics
    /// If the active table is not empty, or `phys` lies before the end of the last sealed file.
    pub fn start_at(&self, phys: u64) {
        let mut state = self.state.borrow_mut();
        assert!(
            state.active.is_empty(),
            "the index start is set before any dispatch"
        );
        if let Some(last) = state.sealed.last() {
            assert!(
                phys >= last.header.covered_end,
                "index start inside a sealed file"
            );
        }
        state.active = ActiveTable::new(self.config.active_entries_max, phys);
    }

    /// CommitLog offset up to which the index survives a crash: the active table's start, or
    /// its end when it holds no entry.
    #[must_use]
    pub fn durable_phys(&self) -> u64 {
        let state = self.state.borrow();
        let (begin, end) = state.active.covered();
        if state.active.is_empty() && state.sealing.is_none() {
            end
        } else {
            begin.min(
                state
                    .sealing
                    .as_ref()
                    .map_or(begin, |table| table.covered().0),
            )
        }
    }

    /// CommitLog offset up to which records have been offered to the index.
    #[must_use]
    pub fn covered_end(&self) -> u64 {
        self.state.borrow().active.covered().1
    }

    /// Entries in the active table (bounded by `active_entries_max`).
    #[must_use]
    pub fn active_len(&self) -> usize {
        self.state.borrow().active.len()
    }

    /// Number of sealed files.
    #[must_use]
    pub fn sealed_files(&self) -> usize {
        self.state.borrow().sealed.len()
    }

    /// True when a record with `key_count` keys does not fit the active table: seal
    /// ([`Self::begin_seal`] or [`Self::seal`]) before [`Self::dispatch_hashed`].
    #[must_use]
    pub fn needs_seal(&self, key_count: usize) -> bool {
        self.state.borrow().active.remaining() < key_count.min(INDEX_KEYS_PER_RECORD_MAX)
    }

    /// Indexes one record (at `phys_offset`, ending at `phys_end`) under each of its keys,
    /// given as their hashes ([`key::hash_keys`]; at most [`INDEX_KEYS_PER_RECORD_MAX`], the
    /// rest are ignored). Returns false, indexing nothing, when the keys do not fit: the
    /// caller should have sealed ([`Self::needs_seal`]); if sealing failed (disk error) the
    /// record stays unindexed rather than memory growing.
    ///
    /// # Panics
    /// If records arrive out of CommitLog order.
    pub fn dispatch_hashed(
        &self,
        key_hashes: &[u64],
        phys_offset: u64,
        phys_end: u64,
        store_timestamp: i64,
    ) -> bool {
        let mut state = self.state.borrow_mut();
        assert!(
            phys_offset >= state.active.covered().1,
            "index dispatch out of CommitLog order"
        );
        let key_hashes = &key_hashes[..key_hashes.len().min(INDEX_KEYS_PER_RECORD_MAX)];
        let fits = state.active.remaining() >= key_hashes.len();
        if fits {
            for &key_hash in key_hashes {
                state.active.insert(IndexEntry {
                    key_hash,
                    phys_offset,
                    store_timestamp,
                });
            }
        }
        state.active.advance_covered(phys_end);
        fits
    }

    /// Asks the CPU to load the chain heads that inserting `key_hashes` will update, so a
    /// window of inserts waits for memory once (a hint only: nothing changes).
    pub fn prefetch(&self, key_hashes: &[u64]) {
        let state = self.state.borrow();
        for &key_hash in key_hashes {
            state.active.prefetch(key_hash);
        }
    }

    /// Notes that every record before `phys_end` has been offered (records without keys).
    pub fn advance(&self, phys_end: u64) {
        let mut state = self.state.borrow_mut();
        if phys_end > state.active.covered().1 {
            state.active.advance_covered(phys_end);
        }
    }

    /// Seals the active table into a file (no-op when it is empty), after writing any table a
    /// [`Self::begin_seal`] set aside. Queries keep seeing the entries while files are written.
    /// A table whose write failed stays in memory (still queried) and is written by the next
    /// call before anything else.
    ///
    /// # Errors
    /// I/O errors writing a file.
    pub async fn seal(&self) -> Result<()> {
        self.write_sealing().await?;
        if self.begin_seal() {
            self.write_sealing().await?;
        }
        Ok(())
    }

    /// Sets a non-empty active table aside for sealing (queries still see it) and starts a
    /// fresh one, without I/O, so dispatch never waits for a file write. Returns false, doing
    /// nothing, when the active table is empty or a table is already set aside (at most two
    /// tables are in memory: call [`Self::write_sealing`] first).
    pub fn begin_seal(&self) -> bool {
        let mut state = self.state.borrow_mut();
        if state.sealing.is_some() || state.active.is_empty() {
            return false;
        }
        let start = state.active.covered().1;
        let capacity = self.config.active_entries_max;
        let fresh = match state.spare.take() {
            Some(old) => ActiveTable::recycled(old, capacity, start),
            None => ActiveTable::new(capacity, start),
        };
        state.sealing = Some(Rc::new(std::mem::replace(&mut state.active, fresh)));
        true
    }

    /// True while a table set aside by [`Self::begin_seal`] is not written yet.
    #[must_use]
    pub fn is_sealing(&self) -> bool {
        self.state.borrow().sealing.is_some()
    }

    /// Writes the table set aside by [`Self::begin_seal`], if any (one writer at a time).
    ///
    /// # Errors
    /// I/O errors writing the file; the table then stays set aside.
    pub async fn write_sealing(&self) -> Result<()> {
        let _guard = self.seal_lock.lock().await;
        let Some(table) = self.state.borrow().sealing.clone() else {
            return Ok(());
        };
        let file = self.write_sealed(&table).await?;
        let mut state = self.state.borrow_mut();
        state.sealing = None;
        state.sealed.push(file);
        // Queries borrow the table only while the state is borrowed, so this is the last
        // reference; were it not, the memory would simply be freed with the last one.
        if let Ok(table) = Rc::try_unwrap(table) {
            state.spare = Some(table);
        }
        Ok(())
    }

    async fn write_sealed(&self, table: &ActiveTable) -> Result<SealedFile> {
        let header = sealed::header_for(table);
        let size = usize::try_from(header.file_size()).expect("sealed file fits memory");
        // A pooled block (the read pool's), zeroed here: a fresh one faulted in a zero page and
        // then a copy-on-write page per 4 KiB of a ~10 MiB file.
        let mut buffer = AlignedBuf::for_read(size, BLOCK_SIZE);
        let out = &mut buffer.as_full_mut_slice()[..size];
        out.fill(0);
        let written = sealed::encode_file(table, out);
        assert_eq!(written, header, "encoded header matches the planned one");
        buffer.set_len_initialised(size);
        let name = file_name(header.covered_begin);
        let path = self.config.root.join(&name);
        let temp = self.config.root.join(format!("{name}.tmp"));
        self.disk.remove_file(&temp).await?;
        let file = self
            .disk
            .open(&temp, OpenMode::CreateNew, BLOCK_SIZE)
            .await?;
        let (result, _) = file.write_all_at(buffer, 0).await;
        result?;
        file.sync_data().await?;
        drop(file);
        self.disk.rename(&temp, &path).await?;
        self.disk.sync_dir(&self.config.root).await?;
        let uid = {
            let mut state = self.state.borrow_mut();
            state.next_uid += 1;
            state.next_uid
        };
        Ok(SealedFile { path, header, uid })
    }

    /// CommitLog offsets of records indexed under `topic#key` with a store time in
    /// `[begin, end]`, newest first, at most `limit` (capped at [`INDEX_QUERY_RESULTS_MAX`]).
    /// Candidates only: a different key with the same 64-bit hash may appear; the caller
    /// verifies each record.
    ///
    /// # Errors
    /// I/O errors, or [`StorageError::Corrupt`] when a sealed block fails its CRC.
    pub async fn query(
        &self,
        topic: &str,
        key: &str,
        begin: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<u64>> {
        let limit = limit.min(INDEX_QUERY_RESULTS_MAX);
        let key_hash = key::key_hash(topic, key);
        let mut out = Vec::new();
        let files: Vec<SealedFile> = {
            let state = self.state.borrow();
            state.active.query(key_hash, begin, end, limit, &mut out);
            if let Some(table) = &state.sealing {
                table.query(key_hash, begin, end, limit, &mut out);
            }
            state
                .sealed
                .iter()
                .rev()
                .filter(|file| file.header.overlaps(begin, end))
                .cloned()
                .collect()
        };
        for file in files {
            if out.len() >= limit {
                break;
            }
            self.query_file(&file, key_hash, begin, end, limit, &mut out)
                .await?;
        }
        Ok(out)
    }

    async fn query_file(
        &self,
        file: &SealedFile,
        key_hash: u64,
        begin: i64,
        end: i64,
        limit: usize,
        out: &mut Vec<u64>,
    ) -> Result<()> {
        let header = &file.header;
        let slot = header.slot_of(key_hash);
        let (slot_block, _) = header.slot_location(slot);
        let block = self.block(file, slot_block).await?;
        let (first, count) =
            sealed::decode_slot(header, &block, slot).map_err(|e| corrupt(file, &e))?;
        let mut current: Option<(u64, Rc<[u8]>)> = None;
        for number in first..first + count {
            let block_number = header.entry_block(number);
            let block = match &current {
                Some((loaded, block)) if *loaded == block_number => Rc::clone(block),
                _ => {
                    let block = self.block(file, block_number).await?;
                    current = Some((block_number, Rc::clone(&block)));
                    block
                }
            };
            let found = sealed::decode_entry(&block, number).map_err(|e| corrupt(file, &e))?;
            if found.key_hash > key_hash || out.len() >= limit {
                break;
            }
            if found.key_hash == key_hash && (begin..=end).contains(&found.store_timestamp) {
                out.push(found.phys_offset);
            }
        }
        Ok(())
    }

    async fn block(&self, file: &SealedFile, number: u64) -> Result<Rc<[u8]>> {
        if let Some(block) = self.state.borrow_mut().cache.get((file.uid, number)) {
            return Ok(block);
        }
        let handle = self
            .disk
            .open(&file.path, OpenMode::ReadOnly, BLOCK_SIZE)
            .await?;
        let buffer = AlignedBuf::new_zeroed(BLOCK_SIZE, BLOCK_SIZE);
        let (result, buffer) = handle
            .read_exact_at(buffer, number * BLOCK_SIZE as u64, BLOCK_SIZE)
            .await;
        result?;
        if buffer.len() != BLOCK_SIZE {
            return Err(StorageError::Corrupt {
                path: file.path.clone(),
                offset: number * BLOCK_SIZE as u64,
                reason: "sealed index file shorter than its header says".into(),
            });
        }
        let block: Rc<[u8]> = Rc::from(buffer.as_slice());
        self.state
            .borrow_mut()
            .cache
            .insert((file.uid, number), Rc::clone(&block));
        Ok(block)
    }

    /// Retention: deletes sealed files whose records all lie before `commitlog_min`.
    ///
    /// # Errors
    /// I/O errors removing files.
    pub async fn apply_commitlog_min(&self, commitlog_min: u64) -> Result<usize> {
        let _guard = self.seal_lock.lock().await;
        let doomed: Vec<SealedFile> = {
            let mut state = self.state.borrow_mut();
            let keep_from = state
                .sealed
                .iter()
                .position(|file| file.header.covered_end > commitlog_min);
            let cut = keep_from.unwrap_or(state.sealed.len());
            let doomed: Vec<SealedFile> = state.sealed.drain(..cut).collect();
            for file in &doomed {
                state.cache.remove_owner(file.uid);
            }
            doomed
        };
        for file in &doomed {
            self.disk.remove_file(&file.path).await?;
        }
        if !doomed.is_empty() {
            self.disk.sync_dir(&self.config.root).await?;
        }
        Ok(doomed.len())
    }

    /// Drops the entries of records at or after `phys` (the CommitLog is being truncated
    /// there), in memory: sealed files covering anything at or past it leave the index (their
    /// files are deleted by [`Self::remove_cut_files`], after the store checkpoint no longer
    /// relies on them), and the active table is cut. Returns where the records below `phys`
    /// must be offered again (to [`Self::dispatch`] / [`Self::advance`]) when a dropped file
    /// also covered records before `phys`. A table set aside for sealing is written first.
    ///
    /// # Errors
    /// I/O errors writing the set-aside table (nothing changed then).
    pub async fn truncate(&self, phys: u64) -> Result<IndexCut> {
        self.write_sealing().await?;
        let _guard = self.seal_lock.lock().await;
        let mut state = self.state.borrow_mut();
        assert!(
            state.sealing.is_none(),
            "no dispatch (and so no seal) while the index is truncated"
        );
        let keep = state
            .sealed
            .iter()
            .position(|file| file.header.covered_end > phys)
            .unwrap_or(state.sealed.len());
        let dropped: Vec<SealedFile> = state.sealed.drain(keep..).collect();
        for file in &dropped {
            state.cache.remove_owner(file.uid);
        }
        let capacity = self.config.active_entries_max;
        let rebuild_from = match dropped.first() {
            Some(first) => {
                let begin = first.header.covered_begin;
                state.active = ActiveTable::new(capacity, begin.min(phys));
                (begin < phys).then_some(begin)
            }
            None if state.active.covered().0 >= phys => {
                state.active = ActiveTable::new(capacity, phys);
                None
            }
            None => {
                state.active.truncate(phys);
                None
            }
        };
        Ok(IndexCut {
            rebuild_from,
            files: dropped.into_iter().map(|file| file.path).collect(),
        })
    }

    /// Deletes the files a [`Self::truncate`] dropped (skipping any name a seal has used again
    /// since: it is a new, valid file).
    ///
    /// # Errors
    /// I/O errors deleting files.
    pub async fn remove_cut_files(&self, files: &[PathBuf]) -> Result<()> {
        let _guard = self.seal_lock.lock().await;
        let mut removed = 0;
        for path in files {
            let reused = self
                .state
                .borrow()
                .sealed
                .iter()
                .any(|file| &file.path == path);
            if !reused {
                self.disk.remove_file(path).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.disk.sync_dir(&self.config.root).await?;
        }
        Ok(())
    }

    /// The directory of sealed files.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.config.root
    }
}

fn corrupt(file: &SealedFile, error: &sealed::FormatError) -> StorageError {
    StorageError::Corrupt {
        path: file.path.clone(),
        offset: 0,
        reason: error.to_string(),
    }
}

async fn load_header(disk: &Disk, path: &Path, len: u64) -> Result<Option<SealedHeader>> {
    if len < BLOCK_SIZE as u64 {
        return Ok(None);
    }
    let file = disk.open(path, OpenMode::ReadOnly, BLOCK_SIZE).await?;
    let buffer = AlignedBuf::new_zeroed(BLOCK_SIZE, BLOCK_SIZE);
    let (result, buffer) = file.read_exact_at(buffer, 0, BLOCK_SIZE).await;
    result?;
    let Ok(header) = sealed::decode_header(buffer.as_slice()) else {
        return Ok(None);
    };
    Ok((len >= header.file_size()).then_some(header))
}
