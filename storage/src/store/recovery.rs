//! Opening a store: CommitLog recovery, then consume queues and index loaded from their
//! checkpoint and files, then a replay of the CommitLog from the earliest point any of them
//! needs, then a fresh checkpoint.
//!
//! Replay start = min(consume-queue start, index start), where the consume-queue start is the
//! checkpoint's `dispatched_phys` lowered to the end of the last valid entry of any queue that
//! lost entries (or the CommitLog start for a queue that lost all), and the index start is the
//! end of the last sealed index file (or the checkpoint's `index_phys` if later), all clamped
//! into the CommitLog's `[min, end]`. Must never: dispatch a record twice into a queue (the
//! dispatch rules skip covered records), or start before the CommitLog's first record.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::fifo_lock::FifoLock;

use crate::commitlog::CommitLog;
use crate::consume_queue::ops::CqStore;
use crate::consume_queue::recovery::RepairFrom;
use crate::consume_queue::ConsumeQueueConfig;
use crate::error::{Result, StorageError};
use crate::file::{io_alignment, Disk};
use crate::index::{Index, IndexConfig};

use super::append::Targets;
use super::checkpoint_file::{self, StoreCheckpoint};
use super::notify::Notifier;
use super::{
    Store, StoreConfig, StoreRecovery, COMMITLOG_DIR, CONSUME_QUEUE_DIR, INDEX_DIR,
    REPUT_BATCH_BYTES,
};

/// Consume-queue and index files use 4 KiB O_DIRECT blocks: the device must accept them.
const CQ_INDEX_BLOCK_BYTES: usize = 4096;

pub(super) async fn open(config: StoreConfig, disk: Disk) -> Result<(Store, StoreRecovery)> {
    let root = config.root.clone();
    disk.create_dir_all(&root).await?;
    let alignment = io_alignment(&root).await;
    if alignment > CQ_INDEX_BLOCK_BYTES {
        return Err(StorageError::InvalidConfig(format!(
            "device logical block size {alignment} > {CQ_INDEX_BLOCK_BYTES}: consume-queue and index blocks need 4 KiB O_DIRECT"
        )));
    }
    let mut cq_config = ConsumeQueueConfig::new(root.join(CONSUME_QUEUE_DIR));
    cq_config.entries_per_file = config.cq_entries_per_file;
    cq_config.block_cache_blocks = config.cq_block_cache_blocks;
    cq_config.write_start_blocks = config.cq_write_start_blocks;
    cq_config.queues_max = config.queues_max;
    let mut index_config = IndexConfig::new(root.join(INDEX_DIR));
    index_config.active_entries_max = config.index_active_entries_max;
    cq_config.validate()?;
    index_config.validate()?;
    disk.create_dir_all(&cq_config.root).await?;

    let (log, report) = CommitLog::open(
        &root.join(COMMITLOG_DIR),
        config.commitlog.clone(),
        disk.clone(),
    )
    .await?;
    let (log_min, log_end) = (log.min_offset(), log.appended_offset());
    let checkpoint = match checkpoint_file::read(&disk, &root).await {
        Ok(found) => found,
        Err(error @ StorageError::Corrupt { .. }) => {
            tracing::warn!(%error, "store checkpoint unreadable; rebuilding from the CommitLog");
            None
        }
        Err(error) => return Err(error),
    };
    let checkpoint_found = checkpoint.is_some();
    let checkpoint = checkpoint.unwrap_or(StoreCheckpoint {
        dispatched_phys: log_min,
        ..StoreCheckpoint::default()
    });

    let cqs = Rc::new(CqStore::new(disk.clone(), cq_config)?);
    let mut cq_start = checkpoint.dispatched_phys.clamp(log_min, log_end);
    let mut queues_repaired = 0;
    for snapshot in &checkpoint.queues {
        match cqs.load_queue(snapshot, log_end).await? {
            None => {}
            Some(RepairFrom::Phys(phys)) => {
                queues_repaired += 1;
                cq_start = cq_start.min(phys.max(log_min));
            }
            Some(RepairFrom::CommitLogStart) => {
                queues_repaired += 1;
                cq_start = log_min;
            }
        }
    }
    cqs.remove_unknown_dirs().await?;

    let (index, resume) = Index::open(disk.clone(), index_config, log_end).await?;
    let mut index_start = resume.unwrap_or(log_min);
    if checkpoint.index_phys <= log_end {
        index_start = index_start.max(checkpoint.index_phys);
    }
    let index_start = index_start.clamp(log_min, log_end);
    index.start_at(index_start);

    let store = Store {
        root,
        disk,
        log,
        cqs,
        index: Rc::new(index),
        seal_task: RefCell::new(None),
        notifier: Rc::new(Notifier::default()),
        closed: Rc::new(Cell::new(false)),
        reput_phys: Cell::new(log_end),
        reput_lock: FifoLock::new(),
        append_lock: FifoLock::new(),
        checkpoint_lock: FifoLock::new(),
        inflight: RefCell::new(super::append::Inflight::default()),
        last_dispatch: Cell::new((0, 0)),
        checkpoint_failures: RefCell::default(),
        block_write_failures: RefCell::default(),
        truncations: Cell::new(0),
    };
    let replay_from = cq_start.min(index_start);
    let records_replayed = store
        .replay(replay_from, log_end, cq_start, index_start)
        .await?;
    // A crash between retention's segment deletion and the consume queues following it leaves
    // queue min offsets pointing below the CommitLog's start (Java's `correctMinOffset` at
    // recovery): raise them now, not at the first retention pass.
    store.cqs.apply_commitlog_min(log_min).await?;
    store.index.apply_commitlog_min(log_min).await?;
    store.checkpoint().await?;
    tracing::info!(
        replay_from,
        log_end,
        records_replayed,
        queues_repaired,
        "store opened"
    );
    let recovery = StoreRecovery {
        commitlog: report,
        checkpoint_found,
        replay_from,
        records_replayed,
        queues_repaired,
    };
    Ok((store, recovery))
}

impl Store {
    /// Dispatches the records in `[from, end)` again (never one at or past `end`): into
    /// consume queues from `cq_start`, into the index from `index_start`.
    pub(super) async fn replay(
        &self,
        from: u64,
        end: u64,
        cq_start: u64,
        index_start: u64,
    ) -> Result<u64> {
        let mut offset = from;
        let mut records = 0u64;
        while offset < end {
            let batch = self.log.read_batch(offset, REPUT_BATCH_BYTES).await?;
            if batch.next_offset <= offset {
                return Err(StorageError::Corrupt {
                    path: self.root.join(COMMITLOG_DIR),
                    offset,
                    reason: "replay made no progress".into(),
                });
            }
            // A batch may read past `end` (a truncation replays below bytes it has not cut
            // yet): records from `end` on are not this replay's.
            for record in batch.records.iter().take_while(|r| r.phys_offset < end) {
                let targets = Targets {
                    consume_queue: record.phys_offset >= cq_start,
                    index: record.phys_offset >= index_start,
                };
                self.dispatch_record(&super::append::Dispatch::from(record), targets)
                    .await?;
                records += 1;
            }
            offset = batch.next_offset.min(end);
            self.cqs.write_batched().await?;
        }
        Ok(records)
    }
}
