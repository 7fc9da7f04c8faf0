//! The write path of the store: queue-offset assignment, CommitLog placement, reput (read the
//! records back in log order and dispatch them into consume queues, index and long-poll
//! waiters), and the durability wait.
//!
//! A record this task has just placed is dispatched from the fields it was encoded from when
//! the reput has reached it and no other task is dispatching (`reput_placed`); records placed
//! by others, fillers, and records after a restart are read back from the CommitLog.
//!
//! Must never: await between assigning a queue offset and placing its record (queue offsets
//! must follow CommitLog order), dispatch out of log order, or let a dispatched consume-queue
//! entry differ from what was appended (pair assertion).

use crate::FastMap;
use std::rc::Rc;
use std::time::Instant;

use crate::commitlog::record::RecordView;
use crate::commitlog::{AppendRecord, Appended, FlushPolicy, StoredRecord};
use crate::consume_queue::entry::CqEntry;
use crate::consume_queue::ops::EntryRead;
use crate::consume_queue::Dispatched;
use crate::error::{Result, StorageError};
use crate::index::key::hash_keys;
use crate::index::INDEX_KEYS_PER_RECORD_MAX;

use super::failure_log::Report;
use super::{
    checked_topic, now_ms, validate_queue_id, validate_topic, AppendMessage, AppendOutcome,
    BatchMessage, BatchOutcome, Durability, Store, WaitForFlush, REPUT_BATCH_BYTES,
};

/// Records per [`Store::dispatch_window`]: enough to overlap their index inserts' cache misses.
pub(super) const DISPATCH_WINDOW_RECORDS: usize = 16;

/// Key hashes a dispatch window computes ahead (four per record on average; a record whose keys
/// do not fit is hashed at its own dispatch).
const DISPATCH_WINDOW_KEYS: usize = 4 * DISPATCH_WINDOW_RECORDS;

/// Which structures a dispatched record goes to (recovery replays may skip one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Targets {
    pub(super) consume_queue: bool,
    pub(super) index: bool,
}

pub(super) const DISPATCH_ALL: Targets = Targets {
    consume_queue: true,
    index: true,
};

/// What the reput needs of one record: its place in the log and the fields that route it to a
/// consume queue and the index. Built from a record read back from the CommitLog, or from a
/// replicated record checked (CRC included) right before it was placed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dispatch<'a> {
    pub(super) phys_offset: u64,
    pub(super) size: u32,
    pub(super) queue_id: i32,
    pub(super) queue_offset: i64,
    pub(super) tags_code: i64,
    pub(super) store_timestamp_ms: i64,
    pub(super) topic: &'a [u8],
    pub(super) keys: &'a [u8],
    /// The keys' index hashes when the appending task computed them already (and prefetched
    /// the chain heads they update, see [`Store::append_waiting`]); `None`: hashed at dispatch.
    pub(super) key_hashes: Option<&'a [u64]>,
}

impl Dispatch<'_> {
    pub(super) fn end_offset(&self) -> u64 {
        self.phys_offset + u64::from(self.size)
    }
}

impl<'a> Dispatch<'a> {
    /// A record this task just placed (at `queue_offset` of `topic`/`queue_id`, stored at
    /// `store_timestamp_ms`), from the fields it was encoded from.
    fn placed(
        appended: &Appended,
        topic: &'a str,
        queue_id: i32,
        queue_offset: u64,
        message: &BatchMessage<'a>,
        store_timestamp_ms: i64,
        key_hashes: Option<&'a [u64]>,
    ) -> Self {
        Self {
            phys_offset: appended.phys_offset,
            size: appended.size,
            queue_id,
            queue_offset: i64::try_from(queue_offset).expect("queue offsets stay below 2^63"),
            tags_code: message.tags_code,
            store_timestamp_ms,
            topic: topic.as_bytes(),
            keys: message.keys.as_bytes(),
            key_hashes,
        }
    }
}

impl<'a> From<&'a StoredRecord> for Dispatch<'a> {
    fn from(record: &'a StoredRecord) -> Self {
        Self {
            phys_offset: record.phys_offset,
            size: record.size,
            queue_id: record.queue_id,
            queue_offset: record.queue_offset,
            tags_code: record.tags_code,
            store_timestamp_ms: record.store_timestamp_ms,
            topic: &record.topic,
            keys: &record.keys,
            key_hashes: None,
        }
    }
}

impl<'a> From<&RecordView<'a>> for Dispatch<'a> {
    fn from(record: &RecordView<'a>) -> Self {
        Self {
            phys_offset: record.phys_offset,
            size: record.total_len,
            queue_id: record.queue_id,
            queue_offset: record.queue_offset,
            tags_code: record.tags_code,
            store_timestamp_ms: record.store_timestamp_ms,
            topic: record.topic,
            keys: record.keys,
            key_hashes: None,
        }
    }
}

/// Next queue offset of queues whose placed records are not all dispatched yet.
///
/// A topic's entry stays, emptied, once its queues catch up: a stream of single sends to one
/// topic then neither allocates nor frees here per message (the entry's `Rc<str>` key and
/// its queue map were two allocations and two frees per send). Bounded by the topics placed to and not
/// removed ([`Inflight::remove_topic`]), plus one slot per queue with undispatched records.
#[derive(Debug, Default)]
pub(super) struct Inflight {
    topics: FastMap<Rc<str>, FastMap<i32, u64>>,
    /// Queues in `topics` with undispatched records.
    pending: usize,
}

impl Inflight {
    pub(super) fn placed(&mut self, topic: &str, queue_id: i32, queue_offset: u64) {
        let next = queue_offset + 1;
        let added = match self.topics.get_mut(topic) {
            Some(queues) => queues.insert(queue_id, next).is_none(),
            None => {
                self.topics
                    .insert(Rc::from(topic), FastMap::from_iter([(queue_id, next)]));
                true
            }
        };
        if added {
            self.pending += 1;
        }
    }

    pub(super) fn next(&self, topic: &str, queue_id: i32) -> Option<u64> {
        self.topics.get(topic)?.get(&queue_id).copied()
    }

    fn dispatched(&mut self, topic: &str, queue_id: i32, queue_offset: u64) {
        let Some(queues) = self.topics.get_mut(topic) else {
            return;
        };
        if queues
            .get(&queue_id)
            .is_some_and(|&next| next <= queue_offset + 1)
        {
            queues.remove(&queue_id);
            assert!(self.pending > 0, "a pending queue was counted");
            self.pending -= 1;
        }
    }

    pub(super) fn remove_topic(&mut self, topic: &str) {
        if let Some(queues) = self.topics.remove(topic) {
            self.pending -= queues.len();
        }
    }

    /// True when every placed record is dispatched.
    pub(super) fn is_empty(&self) -> bool {
        self.pending == 0
    }
}

impl Store {
    /// Appends one message: assigns its queue offset, places it in the CommitLog, dispatches it
    /// (so it is pullable when this returns) and, under SYNC_FLUSH, waits for durability.
    ///
    /// # Errors
    /// [`StorageError::InvalidRecord`] (bad topic or queue id), [`StorageError::QueuesExhausted`]
    /// (a new queue past `queues_max`), [`StorageError::RecordTooLarge`],
    /// [`StorageError::DiskFull`], [`StorageError::Poisoned`],
    /// [`StorageError::Closed`], or consume-queue write errors that exhausted the pending budget
    /// (nothing is appended then).
    pub async fn append(&self, message: &AppendMessage<'_>) -> Result<AppendOutcome> {
        self.append_waiting(message, WaitForFlush::AsPolicy).await
    }

    /// Like [`Store::append`], but `wait` may skip the SYNC_FLUSH durability wait (RocketMQ's
    /// `WAIT=false` property): the outcome is then [`Durability::Appended`] and the flusher is
    /// asked to run at once.
    ///
    /// # Errors
    /// As [`Store::append`].
    pub async fn append_waiting(
        &self,
        message: &AppendMessage<'_>,
        wait: WaitForFlush,
    ) -> Result<AppendOutcome> {
        validate_topic(message.topic)?;
        validate_queue_id(message.queue_id)?;
        // The index chain heads this record's keys will update are loaded while the record is
        // placed: the insert at dispatch was a cache miss of its own for every unbatched send
        // (the heads span MiBs; a batch's window prefetches its heads together instead).
        let mut own_hashes = [0u64; INDEX_KEYS_PER_RECORD_MAX];
        let key_count = hash_keys(message.topic, message.keys.as_bytes(), &mut own_hashes);
        let key_hashes = &own_hashes[..key_count];
        self.index.prefetch(key_hashes);
        self.ensure_dispatch_room().await?;
        // An idle queue's tail block is read back before the record is placed, so a failed
        // read refuses the append with nothing stored (the reput would otherwise fail after).
        self.cqs
            .ensure_tail(message.topic, message.queue_id)
            .await?;
        let store_timestamp_ms = message.store_timestamp_ms.unwrap_or_else(now_ms);
        let batch = BatchMessage {
            tags_code: message.tags_code,
            keys: message.keys,
            sys_flag: message.sys_flag,
            payload: message.payload,
        };
        let (appended, queue_offset) = {
            let _guard = self.append_lock.lock().await;
            self.place(message.topic, message.queue_id, &batch, store_timestamp_ms)
                .await?
        };
        let placed = Dispatch::placed(
            &appended,
            message.topic,
            message.queue_id,
            queue_offset,
            &batch,
            store_timestamp_ms,
            Some(key_hashes),
        );
        self.reput_placed(std::slice::from_ref(&placed)).await?;
        self.check_dispatched(message.topic, message.queue_id, queue_offset, &appended)
            .await?;
        let durability = self.durability_for(wait, appended.end_offset).await?;
        Ok(AppendOutcome {
            phys_offset: appended.phys_offset,
            queue_offset,
            size: appended.size,
            store_timestamp_ms,
            durability,
        })
    }

    /// Appends messages to one queue with consecutive queue offsets (no other append to the
    /// store is placed between them). On an error part-way, the messages placed before it stay
    /// stored (as they would after a crash).
    ///
    /// # Errors
    /// As [`Store::append`]; an empty batch is [`StorageError::InvalidRecord`].
    pub async fn append_batch(
        &self,
        topic: &str,
        queue_id: i32,
        messages: &[BatchMessage<'_>],
        store_timestamp_ms: Option<i64>,
    ) -> Result<BatchOutcome> {
        self.append_batch_waiting(
            topic,
            queue_id,
            messages,
            store_timestamp_ms,
            WaitForFlush::AsPolicy,
        )
        .await
    }

    /// Like [`Store::append_batch`], but `wait` may skip the SYNC_FLUSH durability wait, as
    /// [`Store::append_waiting`] does.
    ///
    /// # Errors
    /// As [`Store::append_batch`].
    pub async fn append_batch_waiting(
        &self,
        topic: &str,
        queue_id: i32,
        messages: &[BatchMessage<'_>],
        store_timestamp_ms: Option<i64>,
        wait: WaitForFlush,
    ) -> Result<BatchOutcome> {
        validate_topic(topic)?;
        validate_queue_id(queue_id)?;
        if messages.is_empty() {
            return Err(StorageError::InvalidRecord {
                field: "batch",
                reason: "empty".into(),
            });
        }
        self.ensure_dispatch_room().await?;
        self.cqs.ensure_tail(topic, queue_id).await?;
        let store_timestamp_ms = store_timestamp_ms.unwrap_or_else(now_ms);
        let placed = {
            let _guard = self.append_lock.lock().await;
            self.place_batch(topic, queue_id, messages, store_timestamp_ms)
                .await?
        };
        let first_queue_offset = placed[0].1;
        for (index, (_, queue_offset)) in placed.iter().enumerate() {
            assert_eq!(
                *queue_offset,
                first_queue_offset + index as u64,
                "batch offsets consecutive"
            );
        }
        let end = placed.last().expect("non-empty batch").0.end_offset;
        let dispatches: Vec<Dispatch<'_>> = placed
            .iter()
            .zip(messages)
            .map(|((appended, queue_offset), message)| {
                Dispatch::placed(
                    appended,
                    topic,
                    queue_id,
                    *queue_offset,
                    message,
                    store_timestamp_ms,
                    None,
                )
            })
            .collect();
        self.reput_placed(&dispatches).await?;
        for (appended, queue_offset) in &placed {
            self.check_dispatched(topic, queue_id, *queue_offset, appended)
                .await?;
        }
        let durability = self.durability_for(wait, end).await?;
        Ok(BatchOutcome {
            first_queue_offset,
            records: placed
                .iter()
                .map(|(appended, _)| (appended.phys_offset, appended.size))
                .collect(),
            store_timestamp_ms,
            durability,
        })
    }

    /// Refuses new appends while consume-queue blocks cannot be written (memory bound).
    pub(super) async fn ensure_dispatch_room(&self) -> Result<()> {
        if self.cqs.with(|queues| queues.pending_over_budget()) {
            self.cqs.write_pending().await?;
        }
        Ok(())
    }

    /// Assigns the queue offset and places the record, waiting for CommitLog room if needed.
    /// The caller holds the append lock.
    async fn place(
        &self,
        topic: &str,
        queue_id: i32,
        message: &BatchMessage<'_>,
        store_timestamp_ms: i64,
    ) -> Result<(Appended, u64)> {
        let mut record = AppendRecord {
            topic: topic.as_bytes(),
            queue_id,
            queue_offset: 0,
            tags_code: message.tags_code,
            keys: message.keys.as_bytes(),
            store_timestamp_ms,
            sys_flag: message.sys_flag,
            payload: message.payload,
        };
        // A record the CommitLog would refuse must not create its queue.
        record.validate(self.log.config().record_size_max_bytes)?;
        self.cqs
            .with(|queues| queues.ensure_queue(topic, queue_id))?;
        loop {
            let queue_offset = self.next_queue_offset(topic, queue_id);
            record.queue_offset =
                i64::try_from(queue_offset).expect("queue offsets stay below 2^63");
            // No await between next_queue_offset and try_append: offsets follow log order.
            if let Some(appended) = self.log.try_append(&record)? {
                self.inflight
                    .borrow_mut()
                    .placed(topic, queue_id, queue_offset);
                return Ok((appended, queue_offset));
            }
            self.log.ready(record.encoded_size()).await?;
            // A topic delete may have removed the queue while we waited.
            self.cqs
                .with(|queues| queues.ensure_queue(topic, queue_id))?;
        }
    }

    /// [`Self::place`] for consecutive messages of one queue: the queue is looked up and its
    /// next offset computed once, not per message, while the CommitLog has room; after a wait
    /// for room both are done again. On an error part-way, the messages placed before it stay
    /// placed (and are recorded as in flight). The caller holds the append lock.
    async fn place_batch(
        &self,
        topic: &str,
        queue_id: i32,
        messages: &[BatchMessage<'_>],
        store_timestamp_ms: i64,
    ) -> Result<Vec<(Appended, u64)>> {
        let mut placed: Vec<(Appended, u64)> = Vec::with_capacity(messages.len());
        let record_size_max = self.log.config().record_size_max_bytes;
        // The next queue offset while no await has happened since it was computed.
        let mut next: Option<u64> = None;
        let mut index = 0;
        while index < messages.len() {
            let message = &messages[index];
            let mut record = AppendRecord {
                topic: topic.as_bytes(),
                queue_id,
                queue_offset: 0,
                tags_code: message.tags_code,
                keys: message.keys.as_bytes(),
                store_timestamp_ms,
                sys_flag: message.sys_flag,
                payload: message.payload,
            };
            // A record the CommitLog would refuse must not create its queue.
            let validated = record.validate(record_size_max);
            let queue_offset = match (validated, next) {
                (Err(error), _) => {
                    self.record_placed(topic, queue_id, placed.last());
                    return Err(error);
                }
                (Ok(_), Some(offset)) => offset,
                (Ok(_), None) => {
                    if let Err(error) = self.cqs.with(|queues| queues.ensure_queue(topic, queue_id))
                    {
                        self.record_placed(topic, queue_id, placed.last());
                        return Err(error);
                    }
                    self.next_queue_offset(topic, queue_id)
                }
            };
            record.queue_offset =
                i64::try_from(queue_offset).expect("queue offsets stay below 2^63");
            // No await between next_queue_offset and try_append: offsets follow log order.
            match self.log.try_append(&record) {
                Ok(Some(appended)) => {
                    placed.push((appended, queue_offset));
                    next = Some(queue_offset + 1);
                    index += 1;
                }
                Ok(None) => {
                    // In-flight offsets must be visible before anything else runs.
                    self.record_placed(topic, queue_id, placed.last());
                    next = None;
                    self.log.ready(record.encoded_size()).await?;
                }
                Err(error) => {
                    self.record_placed(topic, queue_id, placed.last());
                    return Err(error);
                }
            }
        }
        self.record_placed(topic, queue_id, placed.last());
        Ok(placed)
    }

    /// Records the newest placed record of a queue as in flight (what [`Self::place`] does per
    /// record), if any was placed.
    fn record_placed(&self, topic: &str, queue_id: i32, last: Option<&(Appended, u64)>) {
        if let Some((_, queue_offset)) = last {
            self.inflight
                .borrow_mut()
                .placed(topic, queue_id, *queue_offset);
        }
    }

    fn next_queue_offset(&self, topic: &str, queue_id: i32) -> u64 {
        let (_, max) = self.offsets(topic, queue_id).expect("queue ensured");
        let pending = self.inflight.borrow().next(topic, queue_id);
        pending.unwrap_or(0).max(max)
    }

    /// Pair assertion: the consume-queue entry built from the read-back record is the record
    /// this call appended.
    pub(super) async fn check_dispatched(
        &self,
        topic: &str,
        queue_id: i32,
        queue_offset: u64,
        appended: &Appended,
    ) -> Result<()> {
        match self.cqs.read_entry(topic, queue_id, queue_offset).await? {
            EntryRead::Found(found) => {
                assert_eq!(
                    found.phys_offset, appended.phys_offset,
                    "dispatched entry is the appended record"
                );
                assert_eq!(
                    found.size, appended.size,
                    "dispatched entry has the appended size"
                );
            }
            // Retention or a topic delete may have raced the append; nothing to compare.
            EntryRead::OutOfRange | EntryRead::FileMissing { .. } => {}
        }
        Ok(())
    }

    /// The durability wait of an append made with [`WaitForFlush::No`], done later by the
    /// caller (a SYNC_MASTER waits for its own flush and its slave at once): under SYNC_FLUSH
    /// it waits (at most `syncFlushTimeout`) for the fdatasync covering `end_offset`; under
    /// ASYNC_FLUSH it answers [`Durability::Appended`] at once.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`], [`StorageError::Closed`].
    ///
    /// # Panics
    /// If `end_offset` is past the append mark.
    pub async fn wait_durability(&self, end_offset: u64) -> Result<Durability> {
        self.durability(end_offset).await
    }

    /// The durability wait an append asked for: under SYNC_FLUSH, `end_offset` made durable
    /// ([`WaitForFlush::AsPolicy`]); or none, the flusher only asked to run
    /// ([`WaitForFlush::No`], [`Durability::Appended`]).
    async fn durability_for(&self, wait: WaitForFlush, end_offset: u64) -> Result<Durability> {
        match wait {
            WaitForFlush::AsPolicy => self.durability(end_offset).await,
            WaitForFlush::No => {
                self.log.request_flush();
                Ok(Durability::Appended)
            }
        }
    }

    pub(super) async fn durability(&self, end_offset: u64) -> Result<Durability> {
        self.wait_durability_since(end_offset, Instant::now()).await
    }

    /// [`Self::wait_durability`] for a wait that began at `since`: the SYNC_FLUSH timeout
    /// counts from then (a reply parked before its wait starts keeps its own deadline).
    ///
    /// # Errors
    /// As [`Self::wait_durability`].
    pub async fn wait_durability_since(
        &self,
        end_offset: u64,
        since: Instant,
    ) -> Result<Durability> {
        // Pair with `WaitForFlush::No`: only SYNC_FLUSH waits here.
        let config = self.log.config();
        if config.flush_policy == FlushPolicy::Async {
            return Ok(Durability::Appended);
        }
        let deadline = since + config.sync_flush_timeout();
        match self
            .log
            .wait_durable_until(end_offset, Some(deadline))
            .await?
        {
            crate::commitlog::FlushOutcome::Durable => Ok(Durability::Durable),
            crate::commitlog::FlushOutcome::Timeout => Ok(Durability::FlushTimeout),
        }
    }

    /// Dispatches records this task has just placed, consecutive in the log. When the reput
    /// has reached the first of them and no other task is dispatching, they are dispatched from
    /// the fields the append encoded, without reading them back from the CommitLog (the
    /// read-back and its parse were ~6 % of a loaded broker's CPU per 128 B send). Otherwise,
    /// or when a filler lies between them (a segment rolled), the reput reads the log up to
    /// their end as usual. Either way every record before their end is dispatched on return.
    pub(super) async fn reput_placed(&self, placed: &[Dispatch<'_>]) -> Result<()> {
        let (Some(first), Some(last)) = (placed.first(), placed.last()) else {
            return Ok(());
        };
        let end = last.end_offset();
        let consecutive = placed
            .windows(2)
            .all(|pair| pair[0].end_offset() == pair[1].phys_offset);
        if consecutive && self.reput_phys.get() == first.phys_offset {
            if let Some(guard) = self.reput_lock.try_lock() {
                // No await since the check: the reput is still at the first record
                // (`dispatch_window` asserts it per record).
                for window in placed.chunks(DISPATCH_WINDOW_RECORDS) {
                    self.dispatch_window(window).await?;
                }
                // Full consume-queue blocks are written without the reput lock (they have their
                // own), so the sends placed meanwhile still dispatch directly.
                drop(guard);
                let written = self.cqs.write_batched().await;
                self.report_block_writes(written.as_ref().err());
                return Ok(());
            }
        }
        self.reput_to(end).await?;
        assert!(self.reput_phys.get() >= end, "placed records dispatched");
        Ok(())
    }

    /// Dispatches every record before `target` (reput). Records are read back from the
    /// CommitLog in log order; one task dispatches at a time.
    pub(super) async fn reput_to(&self, target: u64) -> Result<()> {
        if self.reput_phys.get() >= target {
            return Ok(());
        }
        let _guard = self.reput_lock.lock().await;
        self.reput_locked(target).await
    }

    /// [`Self::reput_to`] for a caller holding the reput lock.
    pub(super) async fn reput_locked(&self, target: u64) -> Result<()> {
        while self.reput_phys.get() < target {
            let from = self.reput_phys.get();
            let batch = self.log.read_batch(from, REPUT_BATCH_BYTES).await?;
            assert!(
                batch.next_offset > from,
                "reput must make progress below the append mark"
            );
            let mut expected = from;
            for record in &batch.records {
                assert!(
                    record.phys_offset >= expected,
                    "records come back in log order"
                );
                expected = record.end_offset();
                self.dispatch_record(&Dispatch::from(record), DISPATCH_ALL)
                    .await?;
                // Per record: after an error part-way, the next reput resumes after the last
                // record dispatched, never offering a record to the index twice.
                self.reput_phys.set(expected);
            }
            assert!(
                batch.next_offset >= expected,
                "batch end covers its records"
            );
            self.reput_phys.set(batch.next_offset);
            // The records are stored whatever happens to their consume-queue blocks: a failed
            // block write stays pending (retried), and once the pending budget is exhausted new
            // appends are refused up front (`ensure_dispatch_room`) instead.
            let written = self.cqs.write_batched().await;
            self.report_block_writes(written.as_ref().err());
        }
        Ok(())
    }

    /// Logs a failed block write after a reput, rate-limited, and the recovery.
    pub(super) fn report_block_writes(&self, error: Option<&StorageError>) {
        let now = std::time::Instant::now();
        let mut streak = self.block_write_failures.borrow_mut();
        let report = match error {
            None => streak.succeeded(now),
            Some(_) => streak.failed(now),
        };
        drop(streak);
        match report {
            Report::Fine | Report::Quiet => {}
            Report::First => tracing::warn!(
                store = %self.root.display(),
                error = %error.expect("a failure"),
                "consume queue block write failed; the block stays pending and is retried"
            ),
            Report::Ongoing { failures, since } => tracing::warn!(
                store = %self.root.display(),
                error = %error.expect("a failure"),
                failures,
                failing_for_s = since.as_secs(),
                "consume queue block writes still failing"
            ),
            Report::Recovered { failures, lasted } => tracing::info!(
                store = %self.root.display(),
                failures,
                failed_for_ms = u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX),
                "consume queue block writes succeed again"
            ),
        }
    }

    /// Dispatches consecutive records (at most [`DISPATCH_WINDOW_RECORDS`]) into consume queues
    /// and index, advancing the reput past each one; the caller holds the reput lock and the
    /// reput is at the first record. Every record's keys are hashed first and the index chain
    /// heads they will update are prefetched, so the window's inserts wait for memory once, not
    /// once per key (an insert into the active table is a cache miss: its heads span MiBs).
    pub(super) async fn dispatch_window(&self, records: &[Dispatch<'_>]) -> Result<()> {
        assert!(
            records.len() <= DISPATCH_WINDOW_RECORDS,
            "a dispatch window holds at most {DISPATCH_WINDOW_RECORDS} records"
        );
        let mut pool = [0u64; DISPATCH_WINDOW_KEYS];
        let mut spans: [Option<(usize, usize)>; DISPATCH_WINDOW_RECORDS] =
            [None; DISPATCH_WINDOW_RECORDS];
        let mut used = 0;
        if records.len() > 1 {
            let mut own = [0u64; INDEX_KEYS_PER_RECORD_MAX];
            for (span, record) in spans.iter_mut().zip(records) {
                // A record with a bad topic is refused by its dispatch; one whose keys do not
                // fit the pool's rest is hashed there.
                let Some(topic) = checked_topic(record.topic) else {
                    continue;
                };
                let count = hash_keys(topic, record.keys, &mut own);
                if count <= pool.len() - used {
                    pool[used..used + count].copy_from_slice(&own[..count]);
                    *span = Some((used, used + count));
                    used += count;
                }
            }
            self.index.prefetch(&pool[..used]);
        }
        for (span, record) in spans.iter().zip(records) {
            assert_eq!(
                self.reput_phys.get(),
                record.phys_offset,
                "records dispatched in log order, none skipped"
            );
            let hashed = span
                .map(|(start, end)| &pool[start..end])
                .or(record.key_hashes);
            self.dispatch_record_hashed(record, DISPATCH_ALL, hashed)
                .await?;
            self.reput_phys.set(record.end_offset());
        }
        Ok(())
    }

    /// Dispatches one record into the consume queue and/or the index.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a record whose fields cannot belong to a queue, or a
    /// consume queue that lost entries.
    pub(super) async fn dispatch_record(
        &self,
        record: &Dispatch<'_>,
        targets: Targets,
    ) -> Result<()> {
        self.dispatch_record_hashed(record, targets, None).await
    }

    /// [`Self::dispatch_record`] with the record's key hashes computed beforehand (`None`:
    /// hashed here), as [`Self::dispatch_window`] does.
    async fn dispatch_record_hashed(
        &self,
        record: &Dispatch<'_>,
        targets: Targets,
        key_hashes: Option<&[u64]>,
    ) -> Result<()> {
        let corrupt = |reason: &str| StorageError::Corrupt {
            path: self.log_dir(),
            offset: record.phys_offset,
            reason: reason.to_string(),
        };
        let topic = checked_topic(record.topic).ok_or_else(|| corrupt("record topic invalid"))?;
        let queue_offset =
            u64::try_from(record.queue_offset).map_err(|_| corrupt("negative queue offset"))?;
        if record.queue_id < 0 {
            return Err(corrupt("record queue id invalid"));
        }
        if targets.consume_queue {
            self.dispatch_consume_queue(topic, queue_offset, record)
                .await?;
        }
        if targets.index {
            self.dispatch_index(topic, record, key_hashes).await;
        }
        self.last_dispatch
            .set((record.store_timestamp_ms, record.phys_offset));
        Ok(())
    }

    async fn dispatch_consume_queue(
        &self,
        topic: &str,
        queue_offset: u64,
        record: &Dispatch<'_>,
    ) -> Result<()> {
        let entry = CqEntry {
            phys_offset: record.phys_offset,
            size: record.size,
            tags_code: record.tags_code,
            store_timestamp: record.store_timestamp_ms,
        };
        let queue_id = record.queue_id;
        let outcome = self
            .cqs
            .dispatch(topic, queue_id, queue_offset, &entry)
            .await?;
        if outcome != Dispatched::AlreadyPresent {
            self.notifier.wake(topic, queue_id);
        }
        self.inflight
            .borrow_mut()
            .dispatched(topic, queue_id, queue_offset);
        Ok(())
    }

    async fn dispatch_index(&self, topic: &str, record: &Dispatch<'_>, hashed: Option<&[u64]>) {
        // Hashed once, from the raw bytes: a key that is not UTF-8 is indexed by its bytes
        // (no query, always UTF-8, can name it), without a validation pass per record.
        let mut own = [0u64; INDEX_KEYS_PER_RECORD_MAX];
        let key_hashes = match hashed {
            Some(key_hashes) => key_hashes,
            None => {
                let count = hash_keys(topic, record.keys, &mut own);
                &own[..count]
            }
        };
        let key_count = key_hashes.len();
        if key_count == 0 {
            self.index.advance(record.end_offset());
            return;
        }
        if self.index.needs_seal(key_count) {
            self.start_index_seal().await;
        }
        let indexed = self.index.dispatch_hashed(
            key_hashes,
            record.phys_offset,
            record.end_offset(),
            record.store_timestamp_ms,
        );
        if !indexed {
            tracing::error!(
                phys_offset = record.phys_offset,
                "index full after a failed seal; record not indexed"
            );
        }
    }

    /// Sets the full index table aside and writes it in a background task, so appends waiting
    /// on the reput never wait for the file. Waits only when the previous table is still being
    /// written (memory bound: two tables).
    async fn start_index_seal(&self) {
        if self.index.is_sealing() {
            if let Err(error) = self.index.write_sealing().await {
                tracing::error!(%error, "sealing the index failed; new keys are not indexed");
                return;
            }
        }
        if self.index.begin_seal() {
            let index = Rc::clone(&self.index);
            let task = compio::runtime::spawn(async move {
                if let Err(error) = index.write_sealing().await {
                    tracing::error!(%error, "sealing the index failed; retried at the next seal");
                }
            });
            if let Some(previous) = self.seal_task.borrow_mut().replace(task) {
                previous.detach();
            }
        }
    }

    fn log_dir(&self) -> std::path::PathBuf {
        self.root.join(super::COMMITLOG_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::Inflight;

    #[test]
    fn inflight_counts_pending_queues_and_keeps_caught_up_topics() {
        let mut inflight = Inflight::default();
        assert!(inflight.is_empty());
        inflight.placed("a", 0, 5);
        inflight.placed("a", 0, 6);
        inflight.placed("a", 1, 0);
        inflight.placed("b", 3, 9);
        assert_eq!(inflight.next("a", 0), Some(7));
        assert_eq!(inflight.pending, 3);
        // An older record's dispatch leaves the queue pending; its last one clears it.
        inflight.dispatched("a", 0, 5);
        assert_eq!(inflight.next("a", 0), Some(7));
        inflight.dispatched("a", 0, 6);
        assert_eq!(inflight.next("a", 0), None);
        inflight.dispatched("a", 1, 0);
        assert_eq!(inflight.pending, 1);
        assert!(!inflight.is_empty());
        // A caught-up topic keeps its (empty) entry; placing to it again counts again.
        assert!(inflight.topics.contains_key("a"));
        inflight.placed("a", 1, 1);
        assert_eq!(inflight.pending, 2);
        inflight.remove_topic("a");
        inflight.remove_topic("a");
        assert_eq!(inflight.pending, 1);
        inflight.dispatched("b", 3, 9);
        assert!(inflight.is_empty());
        // A dispatch of an unknown topic or queue changes nothing.
        inflight.dispatched("zzz", 0, 0);
        inflight.dispatched("b", 4, 0);
        assert!(inflight.is_empty());
    }
}
