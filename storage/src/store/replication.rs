//! The store's replication primitives (RocketMQ HA, per shard, sans network): the master reads
//! raw CommitLog entries to ship; the slave appends them verbatim at the same offsets and
//! dispatches them as local appends, so its consume queues and index answer as the master's;
//! either side truncates to a common prefix after a divergence. See
//! `docs/replication-storage.md`.
//!
//! Owns `read_log`, `entry_header_at`, `append_replicated` and `truncate_to`. A chunk is
//! checked whole (entries, generations, segment geometry, queue offsets, queue capacity)
//! before any of it is placed. A truncation plans every cut first (changing nothing), then
//! cuts consume queues and index, writes the store checkpoint, and truncates the CommitLog
//! last, so a crash at any point recovers a consistent store; a failure after the first change
//! poisons the CommitLog (appends refused until the store is reopened and recovers).
//!
//! Must never: place part of a chunk that failed a check, dispatch a replicated record to a
//! queue offset other than the one it carries, or let a consume queue, the index or the store
//! checkpoint point at or past a truncation point once `truncate_to` returned.

use crate::FastMap;

use crate::commitlog::{Appended, FlushPolicy};
use crate::commitlog::{EntryHeader, LogChunk, ReplicatedEntry, ShipLimit};
use crate::error::{ReplicationRefusal, Result, StorageError};

use super::append::{Dispatch, DISPATCH_WINDOW_RECORDS};
use super::{checked_topic, Store, WaitForFlush};

/// A replicated chunk placed in the CommitLog by [`Store::place_replicated`] whose records are
/// not dispatched yet: hand it to [`Store::dispatch_replicated`] with the same bytes. Holds
/// each record's routing fields and byte ranges in the chunk (no copy of the bytes).
#[derive(Debug)]
#[must_use = "placed records stay undispatched (unpullable) until the chunk is dispatched"]
pub struct PlacedChunk {
    start: u64,
    end: u64,
    /// The store's truncation count when the chunk was placed.
    truncations: u64,
    /// Address and length of the chunk's bytes (the pair check of the dispatch).
    chunk: (usize, usize),
    records: Vec<PlacedRecord>,
    /// Per queue the chunk writes to, the index in `records` of its last record.
    queue_last: Vec<usize>,
}

impl PlacedChunk {
    /// The log offset the chunk was placed at.
    #[must_use]
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The append mark after the chunk (equal to [`Self::start`] for an empty chunk).
    #[must_use]
    pub fn end(&self) -> u64 {
        self.end
    }
}

/// One placed replicated record: its routing fields, and where its topic and keys sit in the
/// chunk's bytes.
#[derive(Debug, Clone, Copy)]
struct PlacedRecord {
    phys_offset: u64,
    size: u32,
    queue_id: i32,
    queue_offset: i64,
    tags_code: i64,
    store_timestamp_ms: i64,
    topic: (usize, usize),
    keys: (usize, usize),
}

impl PlacedRecord {
    fn of(chunk: &[u8], record: &crate::commitlog::record::RecordView<'_>) -> Self {
        let base = chunk.as_ptr() as usize;
        let range = |field: &[u8]| (field.as_ptr() as usize - base, field.len());
        Self {
            phys_offset: record.phys_offset,
            size: record.total_len,
            queue_id: record.queue_id,
            queue_offset: record.queue_offset,
            tags_code: record.tags_code,
            store_timestamp_ms: record.store_timestamp_ms,
            topic: range(record.topic),
            keys: range(record.keys),
        }
    }

    fn dispatch<'a>(&self, chunk: &'a [u8]) -> Dispatch<'a> {
        Dispatch {
            phys_offset: self.phys_offset,
            size: self.size,
            queue_id: self.queue_id,
            queue_offset: self.queue_offset,
            tags_code: self.tags_code,
            store_timestamp_ms: self.store_timestamp_ms,
            topic: &chunk[self.topic.0..self.topic.0 + self.topic.1],
            keys: &chunk[self.keys.0..self.keys.0 + self.keys.1],
            key_hashes: None,
        }
    }
}

/// A queue a replicated chunk writes to, and the offset of its last record in the chunk.
struct QueueUse<'a> {
    topic: &'a str,
    queue_id: i32,
    last: Appended,
    last_queue_offset: u64,
}

impl Store {
    /// Master side: whole CommitLog entries from `from` (an entry boundary) for shipping, at
    /// most `max_bytes` of them (a single larger entry comes whole), up to the append mark or
    /// the durable mark. See [`crate::commitlog::CommitLog::read_log`].
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`], [`StorageError::NotAnEntry`] (bad `from`),
    /// [`StorageError::Corrupt`], [`StorageError::Io`].
    pub async fn read_log(
        &self,
        from: u64,
        max_bytes: usize,
        limit: ShipLimit,
    ) -> Result<LogChunk> {
        self.log.read_log(from, max_bytes, limit).await
    }

    /// The header of the entry at `offset` (span, generation, stored CRC): what a divergence
    /// check compares between master and slave.
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`], [`StorageError::NotAnEntry`], [`StorageError::Io`].
    pub async fn entry_header_at(&self, offset: u64) -> Result<EntryHeader> {
        self.log.entry_header_at(offset).await
    }

    /// Slave side: appends entries shipped by the master ([`Store::read_log`]'s bytes) at
    /// `offset`, which must be this log's end; returns the new end. Every entry is checked
    /// before anything is placed (CRC, own offset, generation not below the log's last,
    /// segment geometry equal to the master's, valid topic and queue id, queue offset equal to
    /// the queue's next one here, room for new queues); then the entries are placed byte for
    /// byte at their offsets and dispatched into consume queues and index as local appends are,
    /// so a pull here returns what the master returns. Under SYNC_FLUSH it waits (at most
    /// `sync_flush_timeout_ms`) for the fdatasync; report
    /// `commitlog().durable_offset()` to the master either way. A slave must not take local
    /// appends (the broker refuses sends on a slave): they would take the queue offsets the
    /// master's records carry.
    ///
    /// # Errors
    /// [`StorageError::ReplicationGap`], [`StorageError::ReplicationRefused`]: nothing placed.
    /// Consume-queue read errors before placing: nothing placed. Operating errors while
    /// placing ([`StorageError::DiskFull`] for the next segment, [`StorageError::Poisoned`],
    /// [`StorageError::Closed`]) can leave a prefix of the chunk placed (dispatched by the
    /// next reput): resume from `commitlog().appended_offset()`.
    pub async fn append_replicated(&self, offset: u64, bytes: &[u8]) -> Result<u64> {
        self.append_replicated_waiting(offset, bytes, WaitForFlush::AsPolicy)
            .await
    }

    /// [`Store::append_replicated`] with an explicit flush wait: with [`WaitForFlush::No`] a
    /// SYNC_FLUSH slave does not wait for the fdatasync here (the flusher is asked to run at
    /// once); it acknowledges durability later, so chunks arriving meanwhile share one
    /// fdatasync (group commit across chunks).
    ///
    /// # Errors
    /// As [`Store::append_replicated`].
    pub async fn append_replicated_waiting(
        &self,
        offset: u64,
        bytes: &[u8],
        wait: WaitForFlush,
    ) -> Result<u64> {
        let started = std::time::Instant::now();
        let placed = self.place_replicated(offset, bytes).await?;
        let end = placed.end;
        let placed_at = started.elapsed();
        self.dispatch_replicated(bytes, placed).await?;
        let dispatched_at = started.elapsed();
        match wait {
            WaitForFlush::AsPolicy if self.log.config().flush_policy == FlushPolicy::Sync => {
                self.durability(end).await?;
            }
            WaitForFlush::AsPolicy => {}
            WaitForFlush::No => self.log.request_flush(),
        }
        tracing::trace!(
            offset,
            bytes = bytes.len(),
            placed_us = placed_at.as_micros(),
            reput_us = (dispatched_at - placed_at).as_micros(),
            total_us = started.elapsed().as_micros(),
            "replicated chunk appended"
        );
        Ok(end)
    }

    /// Slave side, first half of [`Store::append_replicated`]: checks the chunk whole (as
    /// there) and places its entries in the CommitLog, without dispatching them. The returned
    /// [`PlacedChunk`] must be given to [`Store::dispatch_replicated`] with the same bytes;
    /// until then its records are in the log (acknowledgeable, flushed as any append) but in
    /// no consume queue, so no pull returns them. The next chunk may be placed before this
    /// one is dispatched: that is the point of the split (a catching-up slave places frame
    /// N + 1 while frame N's consume-queue and index work runs). A later reput (a checkpoint,
    /// a truncation, the next dispatch) dispatches whatever is left if the dispatch never
    /// comes, by reading the records back.
    ///
    /// # Errors
    /// As [`Store::append_replicated`]; an empty chunk is placed as nothing (`end == offset`).
    pub async fn place_replicated(&self, offset: u64, bytes: &[u8]) -> Result<PlacedChunk> {
        self.ensure_dispatch_room().await?;
        let _guard = self.append_lock.lock().await;
        let entries = self.log.check_replicated(offset, bytes)?;
        let mut placed = PlacedChunk {
            start: offset,
            end: offset,
            truncations: self.truncations.get(),
            chunk: (bytes.as_ptr() as usize, bytes.len()),
            records: Vec::with_capacity(entries.len()),
            queue_last: Vec::new(),
        };
        if entries.is_empty() {
            return Ok(placed);
        }
        let queues = self.check_replicated_records(&entries)?;
        for queue in &queues {
            // An idle queue's tail block is read back now, so a failed read refuses the
            // chunk with nothing placed.
            self.cqs.ensure_tail(queue.topic, queue.queue_id).await?;
        }
        for queue in &queues {
            self.cqs
                .with(|cqs| cqs.ensure_queue(queue.topic, queue.queue_id))?;
        }
        for entry in &entries {
            match self.log.place_replicated(entry).await {
                Ok(end) => placed.end = end,
                Err(error) => {
                    // The prefix placed so far stays (a later reput dispatches it): its queues'
                    // next offsets must count what no reput dispatched while it was placed.
                    let reput = self.reput_phys.get();
                    for record in placed.records.iter().filter(|r| r.phys_offset >= reput) {
                        let dispatch = record.dispatch(bytes);
                        let topic = std::str::from_utf8(dispatch.topic).expect("checked UTF-8");
                        let queue_offset =
                            u64::try_from(record.queue_offset).expect("checked >= 0");
                        self.inflight
                            .borrow_mut()
                            .placed(topic, record.queue_id, queue_offset);
                    }
                    return Err(error);
                }
            }
            if let Some(record) = &entry.record {
                placed.records.push(PlacedRecord::of(bytes, record));
            }
        }
        // Once per queue, not per record: only each queue's last placed offset counts. A read-back
        // reput (a checkpoint) that ran while the chunk was placed may have dispatched it
        // already: such a queue is not in flight.
        let reput = self.reput_phys.get();
        for queue in queues.iter().filter(|q| q.last.phys_offset >= reput) {
            self.inflight
                .borrow_mut()
                .placed(queue.topic, queue.queue_id, queue.last_queue_offset);
        }
        placed.queue_last = queues
            .iter()
            .map(|queue| {
                // Records are in log order: a binary search by offset.
                placed
                    .records
                    .binary_search_by_key(&queue.last.phys_offset, |record| record.phys_offset)
                    .expect("a queue's last record is in the chunk")
            })
            .collect();
        Ok(placed)
    }

    /// Slave side, second half of [`Store::append_replicated`]: dispatches the records of a
    /// chunk placed by [`Store::place_replicated`] into consume queues and index, from the
    /// chunk's bytes (checked, CRC included, right before they were placed) instead of
    /// reading them back from the CommitLog. Records before the chunk still undispatched are
    /// dispatched first by the read-back reput; records a reput already dispatched are
    /// skipped. Chunks are dispatched in log order (the reput lock).
    ///
    /// # Errors
    /// As the reput: [`StorageError::Corrupt`] for a consume queue that lost entries,
    /// consume-queue and CommitLog read errors.
    ///
    /// # Panics
    /// If `bytes` are not the bytes `placed` was placed from.
    pub async fn dispatch_replicated(&self, bytes: &[u8], placed: PlacedChunk) -> Result<()> {
        assert_eq!(
            placed.chunk,
            (bytes.as_ptr() as usize, bytes.len()),
            "a chunk is dispatched from the bytes it was placed from"
        );
        if placed.end == placed.start {
            return Ok(());
        }
        {
            let _guard = self.reput_lock.lock().await;
            if placed.truncations != self.truncations.get() {
                tracing::debug!(
                    start = placed.start,
                    end = placed.end,
                    "a truncation dispatched or cut this placed chunk; nothing left to dispatch"
                );
                return Ok(());
            }
            // A prefix placed by a chunk that failed part-way was never dispatched.
            self.reput_locked(placed.start).await?;
            // A read-back reput (checkpoint, truncation) may have dispatched a prefix already.
            let reput = self.reput_phys.get();
            let first = placed
                .records
                .partition_point(|record| record.phys_offset < reput);
            let mut window = Vec::with_capacity(DISPATCH_WINDOW_RECORDS);
            for records in placed.records[first..].chunks(DISPATCH_WINDOW_RECORDS) {
                window.clear();
                window.extend(records.iter().map(|record| record.dispatch(bytes)));
                self.dispatch_window(&window).await?;
            }
            if self.reput_phys.get() < placed.end {
                self.reput_phys.set(placed.end); // a trailing filler
            }
            let written = self.cqs.write_batched().await;
            self.report_block_writes(written.as_ref().err());
        }
        for &last in &placed.queue_last {
            let record = &placed.records[last];
            let dispatch = record.dispatch(bytes);
            let topic = std::str::from_utf8(dispatch.topic).expect("checked UTF-8");
            let queue_offset = u64::try_from(record.queue_offset).expect("checked >= 0");
            let appended = Appended {
                phys_offset: record.phys_offset,
                size: record.size,
                end_offset: record.phys_offset + u64::from(record.size),
            };
            self.check_dispatched(topic, record.queue_id, queue_offset, &appended)
                .await?;
        }
        Ok(())
    }

    /// Checks the records of a chunk against the consume queues: valid topic and queue id,
    /// queue offsets continuing each queue, and room for the queues it creates. Returns the
    /// queues it writes to. The caller holds the append lock.
    fn check_replicated_records<'a>(
        &self,
        entries: &[ReplicatedEntry<'a>],
    ) -> Result<Vec<QueueUse<'a>>> {
        let mut next: FastMap<(&'a str, i32), usize> = FastMap::default();
        let mut queues: Vec<QueueUse<'a>> = Vec::new();
        let mut expected_offsets: Vec<u64> = Vec::new();
        for entry in entries {
            let Some(record) = &entry.record else {
                continue;
            };
            let offset = entry.header.offset;
            let refused = |refusal| StorageError::ReplicationRefused { offset, refusal };
            let invalid =
                |field, reason: String| refused(ReplicationRefusal::InvalidField { field, reason });
            let topic = checked_topic(record.topic).ok_or_else(|| {
                let shown = String::from_utf8_lossy(record.topic);
                invalid(
                    "topic",
                    format!("{shown:?} is empty or outside [%|a-zA-Z0-9_-]"),
                )
            })?;
            if record.queue_id < 0 {
                return Err(invalid(
                    "queue_id",
                    format!("{} is negative", record.queue_id),
                ));
            }
            let slot = *next.entry((topic, record.queue_id)).or_insert_with(|| {
                let queue_offset = self.next_queue_offset_any(topic, record.queue_id);
                queues.push(QueueUse {
                    topic,
                    queue_id: record.queue_id,
                    last: placed(&entry.header),
                    last_queue_offset: queue_offset,
                });
                expected_offsets.push(queue_offset);
                queues.len() - 1
            });
            let expected = expected_offsets[slot];
            if u64::try_from(record.queue_offset) != Ok(expected) {
                return Err(refused(ReplicationRefusal::QueueOffsetMismatch {
                    topic: topic.to_owned(),
                    queue_id: record.queue_id,
                    expected,
                    got: record.queue_offset,
                }));
            }
            expected_offsets[slot] = expected + 1;
            queues[slot].last = placed(&entry.header);
            queues[slot].last_queue_offset = expected;
        }
        let (known, limit) = self.cqs.with(|cqs| (cqs.len(), cqs.config().queues_max));
        let new_queues = queues
            .iter()
            .filter(|queue| self.offsets(queue.topic, queue.queue_id).is_none())
            .count();
        let available = limit.saturating_sub(known);
        if new_queues > available {
            let offset = entries[0].header.offset;
            return Err(StorageError::ReplicationRefused {
                offset,
                refusal: ReplicationRefusal::QueuesExhausted {
                    needed: new_queues,
                    available,
                },
            });
        }
        Ok(queues)
    }

    /// Next queue offset of a queue, 0 for one that does not exist yet.
    fn next_queue_offset_any(&self, topic: &str, queue_id: i32) -> u64 {
        let max = self.offsets(topic, queue_id).map_or(0, |(_, max)| max);
        let pending = self.inflight.borrow().next(topic, queue_id);
        pending.unwrap_or(0).max(max)
    }

    /// Drops every entry at and after `offset` (an entry boundary in `[min, appended]`):
    /// consume-queue entries pointing there (queue max offsets move back; long-poll waiters
    /// keep waiting), index entries (a key query never returns a dropped record), the
    /// CommitLog tail, durable bytes included, with the checkpoints rewritten. After it returns,
    /// a reopen recovers exactly to `offset`, and [`Store::append_replicated`] continues from
    /// there. Costs: a flush, a binary search per queue whose last entry is past `offset`, a
    /// replay of the records a deleted index file covered below `offset`, and the CommitLog's
    /// truncation (see [`crate::commitlog::CommitLog::truncate`]).
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] / [`StorageError::NotAnEntry`] for a bad `offset`,
    /// and I/O errors while planning: nothing changed. An error after the first change poisons
    /// the CommitLog: reopen the store (recovery ends at `offset` or at the old end, either one
    /// consistent).
    pub async fn truncate_to(&self, offset: u64) -> Result<()> {
        let _append = self.append_lock.lock().await;
        let _checkpoint = self.checkpoint_lock.lock().await;
        let (min_offset, appended) = (self.log.min_offset(), self.log.appended_offset());
        if offset < min_offset || offset > appended {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                min_offset,
                max_offset: appended,
            });
        }
        if offset == appended {
            return Ok(());
        }
        self.log.entry_header_at(offset).await?;
        self.reput_to(appended).await?;
        let _reput = self.reput_lock.lock().await;
        assert_eq!(self.reput_phys.get(), appended, "reput caught up");
        assert!(
            self.inflight.borrow().is_empty(),
            "every placed record dispatched"
        );
        // A chunk placed before now is dispatched (above) or cut (below): its own dispatch,
        // if it is still to come, has nothing left to do.
        self.truncations.set(self.truncations.get() + 1);
        self.log.flush().await?;
        let cuts = self.cqs.plan_truncation(offset).await?;
        let result = self.truncate_planned(offset, &cuts).await;
        if let Err(error) = &result {
            self.log.poison(error);
        }
        result
    }

    async fn truncate_planned(
        &self,
        offset: u64,
        cuts: &[crate::consume_queue::QueueCut],
    ) -> Result<()> {
        self.cqs.apply_truncation(cuts).await?;
        self.reput_phys.set(offset);
        if self.last_dispatch.get().1 >= offset {
            self.last_dispatch.set((0, 0));
        }
        let index_cut = self.index.truncate(offset).await?;
        if let Some(rebuild_from) = index_cut.rebuild_from {
            // Index only: the consume queues already hold everything below `offset`.
            self.replay(rebuild_from, offset, offset, rebuild_from)
                .await?;
        }
        // The store checkpoint first: from now on recovery trusts no queue entry past the
        // cuts and no index coverage past the rebuilt table, whether or not the steps below
        // complete. Only then may the dropped index files go (the previous checkpoint counted
        // on them).
        self.write_checkpoint_snapshot().await?;
        self.index.remove_cut_files(&index_cut.files).await?;
        self.log.truncate(offset).await?;
        tracing::info!(
            store = %self.root.display(),
            offset,
            queues_cut = cuts.len(),
            "store truncated"
        );
        Ok(())
    }
}

/// The [`Appended`] of a placed replicated record (for the dispatch pair check).
fn placed(header: &EntryHeader) -> Appended {
    Appended {
        phys_offset: header.offset,
        size: u32::try_from(header.span).expect("a record fits u32"),
        end_offset: header.end(),
    }
}
