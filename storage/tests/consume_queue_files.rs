//! Consume queues on a real disk: append across block and file boundaries, O(1) lookup from
//! memory and from O_DIRECT blocks, flush + reload (the recovery path), truncation of damaged
//! files, timestamp search edge cases, retention.

use std::path::{Path, PathBuf};

use rmq_storage::consume_queue::entry::CqEntry;
use rmq_storage::consume_queue::ops::{CqStore, EntryRead};
use rmq_storage::consume_queue::recovery::RepairFrom;
use rmq_storage::consume_queue::search::Boundary;
use rmq_storage::consume_queue::{ConsumeQueueConfig, Dispatched, QueueSnapshot};
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};

const PER_FILE: u64 = 256;

fn run<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(future)
}

fn config(root: &Path) -> ConsumeQueueConfig {
    let mut config = ConsumeQueueConfig::new(root.to_path_buf());
    config.entries_per_file = PER_FILE;
    config.block_cache_blocks = 4;
    config
}

/// Entry for queue offset `k`: records of 100 bytes back to back, 10 ms apart, tag k % 3.
fn cq_entry(k: u64) -> CqEntry {
    let k_signed = i64::try_from(k).expect("small");
    CqEntry {
        phys_offset: k * 100,
        size: 100,
        tags_code: k_signed % 3,
        store_timestamp: 10 * k_signed,
    }
}

async fn fill(store: &CqStore, topic: &str, queue_id: i32, range: std::ops::Range<u64>) {
    for k in range {
        let outcome = store.dispatch(topic, queue_id, k, &cq_entry(k)).await;
        assert_eq!(outcome.expect("dispatch"), Dispatched::Appended);
        store.write_pending().await.expect("write pending");
    }
}

async fn expect_entries(store: &CqStore, topic: &str, queue_id: i32, range: std::ops::Range<u64>) {
    for k in range {
        match store.read_entry(topic, queue_id, k).await.expect("read") {
            EntryRead::Found(found) => assert_eq!(found, cq_entry(k), "offset {k}"),
            other => panic!("offset {k}: {other:?}"),
        }
    }
}

async fn reopen(
    root: &Path,
    snapshots: &[QueueSnapshot],
    phys_limit: u64,
) -> (CqStore, Vec<Option<RepairFrom>>) {
    let store = CqStore::new(Disk::real(), config(root)).expect("store");
    let mut repairs = Vec::new();
    for snapshot in snapshots {
        repairs.push(store.load_queue(snapshot, phys_limit).await.expect("load"));
    }
    store.remove_unknown_dirs().await.expect("cleanup");
    (store, repairs)
}

fn queue_file(root: &Path, topic: &str, queue_id: i32, first: u64) -> PathBuf {
    root.join(topic)
        .join(queue_id.to_string())
        .join(format!("{first:020}"))
}

#[test]
fn append_lookup_across_files_and_reload() {
    let root = scratch_dir_on_real_disk("cq-files").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        fill(&store, "T", 0, 0..700).await;
        fill(&store, "T", 1, 0..5).await;
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((0, 700)));
        assert!(store.with(|queues| queues.offsets("T", 9)).is_none());
        // Full blocks were written as they filled; lookups of old blocks hit the disk.
        expect_entries(&store, "T", 0, 0..700).await;
        assert!(
            queue_file(&root, "T", 0, 512).exists(),
            "third file created"
        );
        assert_eq!(
            store.read_entry("T", 0, 700).await.expect("read"),
            EntryRead::OutOfRange
        );
        let (hits, misses) = store.with(|queues| queues.cache_stats());
        assert!(
            misses > 0 && hits > 0,
            "cache used: hits {hits} misses {misses}"
        );
        store.flush().await.expect("flush");
        let snapshots = store.with(|queues| queues.snapshot());
        drop(store);

        let (store, repairs) = reopen(&root, &snapshots, u64::MAX).await;
        assert_eq!(repairs, [None, None]);
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((0, 700)));
        expect_entries(&store, "T", 0, 0..700).await;
        expect_entries(&store, "T", 1, 0..5).await;
        // Appends continue after a reload, across the partly filled tail block.
        fill(&store, "T", 0, 700..800).await;
        expect_entries(&store, "T", 0, 650..800).await;
    });
}

#[test]
fn reload_truncates_to_commitlog_end_and_damaged_files() {
    let root = scratch_dir_on_real_disk("cq-truncate").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        fill(&store, "T", 0, 0..600).await;
        fill(&store, "U", 3, 0..300).await;
        store.flush().await.expect("flush");
        let snapshots = store.with(|queues| queues.snapshot());
        drop(store);

        // The CommitLog came back shorter: entries whose record ends past 45_050 go.
        let (store, repairs) = reopen(&root, &snapshots, 45_050).await;
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((0, 450)));
        assert_eq!(store.with(|queues| queues.offsets("U", 3)), Some((0, 300)));
        assert_eq!(repairs, [Some(RepairFrom::Phys(45_000)), None]);
        expect_entries(&store, "T", 0, 0..450).await;
        assert!(
            !queue_file(&root, "T", 0, 512).exists(),
            "file past the end removed"
        );
        // The truncated tail is rebuilt by dispatching again.
        fill(&store, "T", 0, 450..600).await;
        store.flush().await.expect("flush");
        let snapshots = store.with(|queues| queues.snapshot());
        drop(store);

        // A lost middle file: the queue is cut where the hole starts.
        std::fs::remove_file(queue_file(&root, "T", 0, 256)).expect("remove");
        // A torn last block in U: zero the second block of its file.
        let path = queue_file(&root, "U", 3, 256);
        let mut bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 4096, "U/3 file 256 holds one (tail) block");
        bytes[20 * 32 + 3] ^= 0xff; // entry 276 damaged
        std::fs::write(&path, &bytes).expect("write");
        let (store, repairs) = reopen(&root, &snapshots, u64::MAX).await;
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((0, 256)));
        assert_eq!(store.with(|queues| queues.offsets("U", 3)), Some((0, 276)));
        assert_eq!(
            repairs,
            [
                Some(RepairFrom::Phys(25_600)),
                Some(RepairFrom::Phys(27_600))
            ]
        );
        expect_entries(&store, "U", 3, 0..276).await;
        // Entries after the damage are accepted again in order.
        fill(&store, "U", 3, 276..300).await;
        expect_entries(&store, "U", 3, 270..300).await;
    });
}

#[test]
fn lost_queue_and_unknown_dirs() {
    let root = scratch_dir_on_real_disk("cq-lost").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        fill(&store, "T", 0, 0..10).await;
        fill(&store, "Late", 0, 0..10).await;
        store.flush().await.expect("flush");
        let snapshots: Vec<_> = store
            .with(|queues| queues.snapshot())
            .into_iter()
            .filter(|s| s.topic == "T")
            .collect();
        drop(store);
        std::fs::remove_dir_all(root.join("T")).expect("lose the queue");
        let (store, repairs) = reopen(&root, &snapshots, u64::MAX).await;
        assert_eq!(repairs, [Some(RepairFrom::CommitLogStart)]);
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((0, 0)));
        assert!(
            !root.join("Late").exists(),
            "queue unknown to the checkpoint removed"
        );
        // A rebuild from a CommitLog whose first records are gone restarts the empty queue.
        let restarted = store.dispatch("T", 0, 5, &cq_entry(5)).await;
        assert_eq!(restarted.expect("dispatch"), Dispatched::Restarted);
        let again = store.dispatch("T", 0, 5, &cq_entry(5)).await;
        assert_eq!(again.expect("dispatch"), Dispatched::AlreadyPresent);
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((5, 6)));
        // A gap in a non-empty queue is corruption, not silently accepted.
        let gap = store.dispatch("T", 0, 9, &cq_entry(9)).await;
        assert!(gap.is_err());
        // An empty queue whose range starts inside a block never written (its files lost)
        // takes its next entry: none of that block's entries is needed.
        drop(store);
        assert!(!root.join("T").exists(), "nothing of the queue was written");
        let empty_inside_a_block = [QueueSnapshot {
            topic: "T".into(),
            queue_id: 0,
            min_offset: 6,
            max_offset: 6,
        }];
        let (store, repairs) = reopen(&root, &empty_inside_a_block, u64::MAX).await;
        assert_eq!(repairs, [None]);
        let appended = store.dispatch("T", 0, 6, &cq_entry(6)).await;
        assert_eq!(appended.expect("dispatch"), Dispatched::Appended);
        expect_entries(&store, "T", 0, 6..7).await;
    });
}

#[test]
fn timestamp_search_over_disk_and_memory() {
    let root = scratch_dir_on_real_disk("cq-search").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        // 600 entries at 0, 10, ..., 5990 ms, then 3 more at the same 9000 ms.
        fill(&store, "T", 0, 0..600).await;
        for k in 600..603u64 {
            let entry = CqEntry {
                store_timestamp: 9000,
                ..cq_entry(k)
            };
            store
                .with(|queues| queues.dispatch("T", 0, k, &entry))
                .expect("dispatch");
        }
        let search = |ts, boundary| store.search_by_timestamp("T", 0, ts, boundary);
        assert_eq!(
            search(-5, Boundary::Lower).await.expect("s"),
            Some(0),
            "before first"
        );
        assert_eq!(
            search(-5, Boundary::Upper).await.expect("s"),
            Some(0),
            "before first"
        );
        assert_eq!(
            search(99_999, Boundary::Lower).await.expect("s"),
            Some(603),
            "after last"
        );
        assert_eq!(
            search(99_999, Boundary::Upper).await.expect("s"),
            Some(602),
            "after last"
        );
        assert_eq!(
            search(1230, Boundary::Lower).await.expect("s"),
            Some(123),
            "exact"
        );
        assert_eq!(
            search(1230, Boundary::Upper).await.expect("s"),
            Some(123),
            "exact"
        );
        assert_eq!(
            search(1235, Boundary::Lower).await.expect("s"),
            Some(124),
            "between"
        );
        assert_eq!(
            search(1235, Boundary::Upper).await.expect("s"),
            Some(123),
            "between"
        );
        assert_eq!(
            search(9000, Boundary::Lower).await.expect("s"),
            Some(600),
            "equal run"
        );
        assert_eq!(
            search(9000, Boundary::Upper).await.expect("s"),
            Some(602),
            "equal run"
        );
        assert_eq!(
            store
                .search_by_timestamp("T", 7, 0, Boundary::Lower)
                .await
                .expect("s"),
            None
        );
        assert_eq!(store.earliest_store_time("T", 0).await.expect("e"), Some(0));
        assert_eq!(store.earliest_store_time("T", 7).await.expect("e"), None);
    });
}

#[test]
fn retention_raises_min_and_deletes_files() {
    let root = scratch_dir_on_real_disk("cq-retention").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        fill(&store, "T", 0, 0..700).await;
        store.flush().await.expect("flush");
        // The CommitLog now starts at the record of queue offset 530.
        store.apply_commitlog_min(53_000).await.expect("retention");
        assert_eq!(
            store.with(|queues| queues.offsets("T", 0)),
            Some((530, 700))
        );
        assert!(!queue_file(&root, "T", 0, 0).exists());
        assert!(!queue_file(&root, "T", 0, 256).exists());
        assert!(queue_file(&root, "T", 0, 512).exists());
        assert_eq!(
            store.read_entry("T", 0, 529).await.expect("read"),
            EntryRead::OutOfRange
        );
        expect_entries(&store, "T", 0, 530..700).await;
        assert_eq!(
            store.earliest_store_time("T", 0).await.expect("e"),
            Some(5300)
        );
        // Everything expired: the queue is empty at its max offset, the tail file stays.
        store.apply_commitlog_min(1 << 40).await.expect("retention");
        assert_eq!(
            store.with(|queues| queues.offsets("T", 0)),
            Some((700, 700))
        );
        fill(&store, "T", 0, 700..710).await;
        expect_entries(&store, "T", 0, 700..710).await;
        assert!(store.delete_topic("T").await.expect("delete"));
        assert!(!root.join("T").exists());
        assert!(store.with(|queues| queues.offsets("T", 0)).is_none());
    });
}

#[test]
fn pending_blocks_are_bounded_and_file_missing_is_reported() {
    let root = scratch_dir_on_real_disk("cq-pending").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        // Without writes, full blocks pile up only to the budget.
        for k in 0..(rmq_storage::consume_queue::CQ_PENDING_BLOCKS_MAX as u64 * 128) {
            store
                .with(|queues| queues.dispatch("T", 0, k, &cq_entry(k)))
                .expect("dispatch");
        }
        assert!(store.with(|queues| queues.pending_over_budget()));
        store.write_pending().await.expect("write");
        assert_eq!(store.with(|queues| queues.pending_blocks()), 0);
        // A file deleted under a live queue: the read says which file comes next.
        std::fs::remove_file(queue_file(&root, "T", 0, 0)).expect("remove");
        let missing = store.read_entry("T", 0, 3).await.expect("read");
        assert_eq!(
            missing,
            EntryRead::FileMissing {
                next_file_first: PER_FILE
            }
        );
    });
}

/// Rounds of block writes take the queues in turn, wrapping around: a queue early in the order
/// that keeps filling blocks cannot keep the later ones waiting.
#[test]
fn pending_block_writes_take_turns_across_queues() {
    let root = scratch_dir_on_real_disk("cq-turns").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        for queue_id in 0..12 {
            for k in 0..128 {
                store
                    .with(|q| q.dispatch("T", queue_id, k, &cq_entry(k)))
                    .expect("dispatch");
            }
        }
        let round = |max: usize| {
            store.with(|q| {
                q.next_pending_writes(max)
                    .iter()
                    .map(|(key, write)| {
                        assert_eq!(write.blocks.len(), 1);
                        key.1
                    })
                    .collect::<Vec<i32>>()
            })
        };
        assert_eq!(round(8), (0..8).collect::<Vec<_>>());
        assert_eq!(round(8), [8, 9, 10, 11, 0, 1, 2, 3]);
        assert_eq!(round(3), [4, 5, 6]);
        assert_eq!(round(20).len(), 12, "each pending queue once per round");
        store.write_pending().await.expect("write");
        assert_eq!(store.with(|q| q.pending_blocks()), 0);
    });
}

/// Full blocks of many queues are written several at once: a failed write leaves only its own
/// blocks pending (the other queues' blocks are written), the next `write_pending` writes it,
/// and every entry reads back, from memory meanwhile and from disk after a reload.
#[test]
fn concurrent_block_writes_keep_a_failed_block_pending_and_lose_nothing() {
    let root = scratch_dir_on_real_disk("cq-concurrent").expect("scratch");
    let queues = 12; // more than CQ_WRITES_IN_FLIGHT_MAX: several rounds
    let per_queue = 3 * 128; // three full blocks each
    run(async {
        let faults = rmq_storage::file::FaultInjector::new();
        let store = CqStore::new(Disk::with_faults(faults.clone()), config(&root)).expect("store");
        for queue_id in 0..queues {
            for k in 0..per_queue {
                store
                    .with(|q| q.dispatch("T", queue_id, k, &cq_entry(k)))
                    .expect("dispatch");
            }
        }
        let pending = store.with(|q| q.pending_blocks());
        assert_eq!(pending, (queues as usize) * 3);
        faults.fail_nth_write(3);
        assert!(
            store.write_pending().await.is_err(),
            "the failed write is reported"
        );
        // The first round went out together, one write per queue of its consecutive blocks up
        // to its file's end: all but the failed one of its writes completed.
        let in_flight = rmq_storage::consume_queue::CQ_WRITES_IN_FLIGHT_MAX;
        let blocks_per_write = (PER_FILE / 128).min(3) as usize;
        assert_eq!(
            store.with(|q| q.pending_blocks()),
            pending - (in_flight - 1) * blocks_per_write
        );
        for queue_id in 0..queues {
            expect_entries(&store, "T", queue_id, 0..per_queue).await;
        }
        store.write_pending().await.expect("retry");
        assert_eq!(store.with(|q| q.pending_blocks()), 0);
        store.flush().await.expect("flush");
        let snapshots = store.with(|q| q.snapshot());
        let (reopened, _) = reopen(&root, &snapshots, u64::MAX).await;
        for queue_id in 0..queues {
            expect_entries(&reopened, "T", queue_id, 0..per_queue).await;
        }
    });
}

/// An idle queue drops its tail block once it is written and a whole flush interval passed
/// without an entry; reads of the dropped tail come from disk, and the next entry reads it back
/// (every entry checked). A tail block damaged on disk meanwhile is reported, never extended.
#[test]
fn idle_tail_is_dropped_read_back_and_checked() {
    let root = scratch_dir_on_real_disk("cq-idle-tail").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        let tails = || store.with(|queues| queues.tails_in_memory());
        fill(&store, "T", 0, 0..200).await;
        fill(&store, "T", 1, 0..128).await; // ends on a block boundary: no tail at all
        assert_eq!(tails(), 1);
        store.flush().await.expect("flush");
        assert_eq!(tails(), 1, "entries came during this flush interval");
        store.flush().await.expect("flush");
        assert_eq!(tails(), 0, "idle for a whole flush interval");
        expect_entries(&store, "T", 0, 0..200).await;
        assert_eq!(tails(), 0, "reads do not bring the tail back");
        fill(&store, "T", 0, 200..300).await;
        fill(&store, "T", 1, 128..130).await;
        assert_eq!(tails(), 2);
        expect_entries(&store, "T", 0, 0..300).await;
        expect_entries(&store, "T", 1, 0..130).await;
        store.flush().await.expect("flush");
        store.flush().await.expect("flush");
        assert_eq!(tails(), 0);
        // Entry 270 lives in file 256 (256 entries per file), slot 14 of its first block.
        let file = root.join("T").join("0").join("00000000000000000256");
        let mut bytes = std::fs::read(&file).expect("read");
        bytes[14 * 32] ^= 0xff;
        std::fs::write(&file, &bytes).expect("damage");
        let error = store
            .dispatch("T", 0, 300, &cq_entry(300))
            .await
            .expect_err("damaged tail");
        assert!(
            matches!(error, rmq_storage::error::StorageError::Corrupt { .. }),
            "{error}"
        );
        assert_eq!(store.with(|queues| queues.offsets("T", 0)), Some((0, 300)));
        // The undamaged queue goes on.
        fill(&store, "T", 1, 130..131).await;
        expect_entries(&store, "T", 1, 0..131).await;
    });
}

/// The append path's `write_batched` leaves full blocks in memory (readable) until
/// `CQ_WRITE_START_BLOCKS` of them wait, then writes them all, each file's consecutive blocks
/// in one write; the checkpoint's flush writes a smaller remainder.
#[test]
fn write_batched_waits_for_a_batch_of_blocks() {
    use rmq_storage::consume_queue::CQ_WRITE_START_BLOCKS;
    let root = scratch_dir_on_real_disk("cq-batched").expect("scratch");
    let queues = 4;
    let per_queue_blocks = (CQ_WRITE_START_BLOCKS / 4) as u64;
    run(async {
        let faults = rmq_storage::file::FaultInjector::new();
        let store = CqStore::new(Disk::with_faults(faults.clone()), config(&root)).expect("store");
        let dispatch_block = |queue_id: i32, block: u64| {
            for k in block * 128..(block + 1) * 128 {
                store
                    .with(|q| q.dispatch("T", queue_id, k, &cq_entry(k)))
                    .expect("dispatch");
            }
        };
        // One block short of a batch.
        for queue_id in 0..queues {
            let blocks = if queue_id == 0 {
                per_queue_blocks - 1
            } else {
                per_queue_blocks
            };
            for block in 0..blocks {
                dispatch_block(queue_id, block);
            }
        }
        assert_eq!(
            store.with(|q| q.pending_blocks()),
            CQ_WRITE_START_BLOCKS - 1
        );
        store.write_batched().await.expect("below the batch");
        assert_eq!(faults.writes(), 0, "nothing written below a batch");
        assert!(!queue_file(&root, "T", 1, 0).exists());
        expect_entries(&store, "T", 1, 0..per_queue_blocks * 128).await;
        // The block that completes the batch: all go out, each file's run of consecutive blocks
        // in one write.
        dispatch_block(0, per_queue_blocks - 1);
        store.write_batched().await.expect("a batch");
        assert_eq!(store.with(|q| q.pending_blocks()), 0);
        let blocks_per_file = PER_FILE / 128;
        assert_eq!(
            faults.writes(),
            CQ_WRITE_START_BLOCKS as u64 / blocks_per_file,
            "one write per file"
        );
        // A remainder below the batch waits for the flush.
        dispatch_block(2, per_queue_blocks);
        store.write_batched().await.expect("below the batch");
        assert_eq!(store.with(|q| q.pending_blocks()), 1);
        store.flush().await.expect("flush");
        assert_eq!(store.with(|q| q.pending_blocks()), 0);
        let snapshots = store.with(|q| q.snapshot());
        let (reopened, _) = reopen(&root, &snapshots, u64::MAX).await;
        for queue_id in 0..queues {
            expect_entries(&reopened, "T", queue_id, 0..per_queue_blocks * 128).await;
        }
        expect_entries(
            &reopened,
            "T",
            2,
            per_queue_blocks * 128..(per_queue_blocks + 1) * 128,
        )
        .await;
    });
}
