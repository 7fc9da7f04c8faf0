//! Loading consume queues at store open: trust the checkpointed offsets only as far as the
//! files prove them (every file present, entries CRC-valid, records inside the recovered
//! CommitLog), truncate the rest, and say from where the CommitLog must be replayed to rebuild
//! what was lost. Removes queue directories the checkpoint does not know (queues created after
//! it, or deleted topics): replay re-creates the former from the CommitLog.
//!
//! Must never: keep an entry that fails its CRC or points at or past the CommitLog's end, or
//! read more than O(log n) blocks per queue (startup time must not grow with the backlog).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::Result;

use super::entry::{self, CqEntry, BLOCK_SIZE, ENTRIES_PER_BLOCK};
use super::io;
use super::ops::{list_subdirs, remove_dir_all, CqStore};
use super::queue::{file_name, QueueState};
use super::QueueSnapshot;

/// From where the CommitLog must be replayed to rebuild a queue that lost entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairFrom {
    /// From this CommitLog offset (the end of the queue's last valid entry).
    Phys(u64),
    /// From the CommitLog's first record (the queue lost everything).
    CommitLogStart,
}

/// Reads and checks entries of one queue directory during recovery (no cache, no state).
struct Prober<'a> {
    store: &'a CqStore,
    dir: PathBuf,
    entries_per_file: u64,
    /// Entries must end at or before this CommitLog offset.
    phys_limit: u64,
}

impl Prober<'_> {
    fn file_first(&self, offset: u64) -> u64 {
        offset - offset % self.entries_per_file
    }

    async fn block(&self, block_first: u64) -> Result<Option<Box<[u8]>>> {
        let file_first = self.file_first(block_first);
        let path = self.dir.join(file_name(file_first));
        let position = (block_first - file_first) * entry::ENTRY_SIZE as u64;
        let block = io::read_block(self.store.disk(), &path, position).await?;
        Ok(block.map(|bytes| Box::from(&bytes[..])))
    }

    fn check(&self, block: &[u8], block_first: u64, offset: u64) -> Option<CqEntry> {
        let found = entry::decode(offset, entry::slot(block, block_first, offset))?;
        (found.phys_end() <= self.phys_limit).then_some(found)
    }

    async fn probe(&self, offset: u64) -> Result<Option<CqEntry>> {
        let block_first = offset - offset % ENTRIES_PER_BLOCK;
        Ok(self
            .block(block_first)
            .await?
            .and_then(|block| self.check(&block, block_first, offset)))
    }
}

impl CqStore {
    /// Loads one queue named by the checkpoint, truncating it to what its files prove and to
    /// records ending at or before `phys_limit` (the recovered CommitLog end). Returns where
    /// replay must start to rebuild lost entries, `None` if nothing was lost.
    ///
    /// # Errors
    /// I/O errors reading or deleting files; the queue limit.
    pub async fn load_queue(
        &self,
        snapshot: &QueueSnapshot,
        phys_limit: u64,
    ) -> Result<Option<RepairFrom>> {
        let (topic, queue_id) = (snapshot.topic.as_str(), snapshot.queue_id);
        let (dir, entries_per_file, uid) = self.with(|queues| {
            (
                queues.queue_dir(topic, queue_id),
                queues.config().entries_per_file,
                queues.new_uid(),
            )
        });
        let prober = Prober {
            store: self,
            dir: dir.clone(),
            entries_per_file,
            phys_limit,
        };
        let files = list_files(self, &dir).await?;
        let (min_offset, max_offset) = (
            snapshot.min_offset,
            snapshot.max_offset.max(snapshot.min_offset),
        );
        let end = valid_end(&prober, &files, min_offset, max_offset).await?;
        let (last, end) = tail_block(&prober, min_offset, end).await?;
        // Entries past `end` are dropped: files after the one holding `end` are stale.
        let end_file = prober.file_first(end);
        for &file_first in files.iter().filter(|&&file_first| file_first > end_file) {
            self.disk()
                .remove_file(&dir.join(file_name(file_first)))
                .await?;
        }
        // The tail block stays on disk (an idle queue holds no block in memory); the first
        // dispatch into the queue reads it back.
        let state = QueueState::new(uid, entries_per_file, (min_offset, end), None, last);
        self.with(|queues| queues.insert_loaded(topic, queue_id, state))?;
        if end == max_offset {
            return Ok(None);
        }
        tracing::warn!(
            topic,
            queue_id,
            end,
            max_offset,
            "consume queue truncated; rebuilding"
        );
        Ok(Some(last.map_or(RepairFrom::CommitLogStart, |last| {
            RepairFrom::Phys(last.phys_end())
        })))
    }

    /// Deletes topic and queue directories the loaded state does not know.
    ///
    /// # Errors
    /// I/O errors listing or deleting.
    pub async fn remove_unknown_dirs(&self) -> Result<()> {
        let root = self.with(|queues| queues.config().root.clone());
        for topic in list_subdirs(&root).await? {
            let known = self.with(|queues| queues.queue_ids(&topic));
            let topic_dir = root.join(&topic);
            if known.is_empty() {
                tracing::info!(topic, "removing consume queues unknown to the checkpoint");
                remove_dir_all(&topic_dir).await?;
                continue;
            }
            for queue in list_subdirs(&topic_dir).await? {
                let keep = queue.parse::<i32>().is_ok_and(|id| known.contains(&id));
                if !keep {
                    remove_dir_all(&topic_dir.join(&queue)).await?;
                }
            }
        }
        self.disk().sync_dir(&root).await
    }
}

async fn list_files(store: &CqStore, dir: &Path) -> Result<BTreeSet<u64>> {
    if !store.disk().exists(dir).await {
        return Ok(BTreeSet::new());
    }
    let listed = store.disk().list_dir(dir).await?;
    Ok(listed
        .into_iter()
        .filter(|file| file.name.len() == 20)
        .filter_map(|file| file.name.parse::<u64>().ok())
        .collect())
}

/// The end of the valid prefix of `[min, max)`: stops at the first missing file, then checks
/// the last entry and, if it is bad, binary-searches the last good one.
async fn valid_end(prober: &Prober<'_>, files: &BTreeSet<u64>, min: u64, max: u64) -> Result<u64> {
    let mut end = max;
    let mut file_first = prober.file_first(min);
    while file_first < end {
        if !files.contains(&file_first) {
            end = file_first.max(min);
            break;
        }
        file_first += prober.entries_per_file;
    }
    if end == min || prober.probe(end - 1).await?.is_some() {
        return Ok(end);
    }
    if prober.probe(min).await?.is_none() {
        return Ok(min);
    }
    // Invariant: `low` is valid, `high` is not.
    let (mut low, mut high) = (min, end - 1);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if prober.probe(mid).await?.is_some() {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(low + 1)
}

/// The last entry and the final end of a queue ending at `end`: if an entry inside the tail
/// block is bad, the queue ends before it (every entry of the tail block must be valid: it is
/// read back whole before the next push).
async fn tail_block(prober: &Prober<'_>, min: u64, end: u64) -> Result<(Option<CqEntry>, u64)> {
    let block_first = end - end % ENTRIES_PER_BLOCK;
    let mut tail = vec![0u8; BLOCK_SIZE].into_boxed_slice();
    if end > block_first {
        if let Some(block) = prober.block(block_first).await? {
            let start = usize::try_from(end - block_first).expect("< 128") * entry::ENTRY_SIZE;
            tail[..start].copy_from_slice(&block[..start]);
        }
    }
    let mut new_end = end;
    for offset in min.max(block_first)..end {
        if prober.check(&tail, block_first, offset).is_none() {
            new_end = offset;
            break;
        }
    }
    let last = if new_end > min {
        prober.probe(new_end - 1).await?
    } else {
        None
    };
    if new_end > min && last.is_none() {
        // The entry before the tail block went bad between two reads: trust nothing.
        return Ok((None, min));
    }
    Ok((last, new_end))
}
