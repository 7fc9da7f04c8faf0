//! Pulls through the store facade: PROTOCOL.md §4.4's status / nextBeginOffset table case by
//! case, count and byte limits, tag filtering, long-poll wakeups, batches.

mod store_support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{
    BatchMessage, GetRequest, GetResult, GetStatus, Store, TagFilter, WaitOutcome,
};
use store_support::{append, open, payload, run};

async fn get(store: &Store, queue_offset: u64, max_count: u32, filter: TagFilter<'_>) -> GetResult {
    let request = GetRequest {
        topic: "T",
        queue_id: 0,
        queue_offset,
        max_count,
        max_bytes: 1 << 20,
        filter,
    };
    store.get_messages(&request).await.expect("get")
}

fn queue_offsets(result: &GetResult) -> Vec<i64> {
    result
        .records
        .iter()
        .map(|record| record.queue_offset)
        .collect()
}

#[test]
fn status_table_case_by_case() {
    let root = scratch_dir_on_real_disk("store-status").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        // Unknown queue: offset 0 -> NOT_FOUND at 0; other offsets are corrected to 0.
        let unknown = get(&store, 0, 32, TagFilter::All).await;
        assert_eq!(
            (unknown.status, unknown.next_begin_offset),
            (GetStatus::NoMatchedLogicQueue, 0)
        );
        let unknown = get(&store, 7, 32, TagFilter::All).await;
        assert_eq!(
            (unknown.status, unknown.next_begin_offset),
            (GetStatus::NoMatchedLogicQueue, 0)
        );
        // Known but never written.
        store.create_queue("T", 0).expect("create");
        let empty = get(&store, 5, 32, TagFilter::All).await;
        assert_eq!(
            (empty.status, empty.next_begin_offset),
            (GetStatus::NoMessageInQueue, 0)
        );
        assert_eq!((empty.min_offset, empty.max_offset), (0, 0));

        for i in 0..10 {
            let outcome = append(&store, "T", 0, i).await;
            assert_eq!(outcome.queue_offset, i);
        }
        // Found: next is after the last returned.
        let found = get(&store, 2, 3, TagFilter::All).await;
        assert_eq!(found.status, GetStatus::Found);
        assert_eq!(queue_offsets(&found), [2, 3, 4]);
        assert_eq!(found.next_begin_offset, 5);
        assert_eq!((found.min_offset, found.max_offset), (0, 10));
        assert_eq!(&found.records[0].payload[..], &payload("T", 0, 2)[..]);
        // Caught up: offset == max.
        let caught_up = get(&store, 10, 32, TagFilter::All).await;
        assert_eq!(
            (caught_up.status, caught_up.next_begin_offset),
            (GetStatus::OffsetOverflowOne, 10)
        );
        assert!(caught_up.records.is_empty());
        // Overflow badly: corrected to max.
        let badly = get(&store, 15, 32, TagFilter::All).await;
        assert_eq!(
            (badly.status, badly.next_begin_offset),
            (GetStatus::OffsetOverflowBadly, 10)
        );
        // Reading to the end stops at max.
        let rest = get(&store, 8, 32, TagFilter::All).await;
        assert_eq!(queue_offsets(&rest), [8, 9]);
        assert_eq!(rest.next_begin_offset, 10);
    });
}

#[test]
fn byte_limit_returns_at_least_one() {
    let root = scratch_dir_on_real_disk("store-bytes").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        for i in 0..5 {
            append(&store, "T", 0, i).await;
        }
        let request = GetRequest {
            topic: "T",
            queue_id: 0,
            queue_offset: 0,
            max_count: 32,
            max_bytes: 1,
            filter: TagFilter::All,
        };
        let one = store.get_messages(&request).await.expect("get");
        assert_eq!((queue_offsets(&one), one.next_begin_offset), (vec![0], 1));
        let all = store
            .get_messages(&GetRequest {
                max_bytes: 1 << 20,
                ..request
            })
            .await
            .expect("get");
        assert_eq!(all.records.len(), 5);
        let three: u64 = all.records[..3]
            .iter()
            .map(|record| u64::from(record.size))
            .sum();
        // Room for three records and a part of the fourth: exactly three come back.
        let request = GetRequest {
            max_bytes: three + u64::from(all.records[3].size) - 1,
            ..request
        };
        let some = store.get_messages(&request).await.expect("get");
        assert_eq!(
            (queue_offsets(&some), some.next_begin_offset),
            (vec![0, 1, 2], 3)
        );
    });
}

#[test]
fn tag_filter_skips_and_moves_next_past() {
    let root = scratch_dir_on_real_disk("store-tags").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        for i in 0..1000 {
            append(&store, "T", 0, i).await; // tag code i % 3
        }
        let twos = [2i64];
        let matched = get(&store, 0, 4, TagFilter::Codes(&twos)).await;
        assert_eq!(matched.status, GetStatus::Found);
        assert_eq!(queue_offsets(&matched), [2, 5, 8, 11]);
        assert_eq!(matched.next_begin_offset, 12, "after the last returned");
        let several = [0i64, 1];
        let mixed = get(&store, 0, 4, TagFilter::Codes(&several)).await;
        assert_eq!(queue_offsets(&mixed), [0, 1, 3, 4]);
        // Nothing matches: the scan is bounded and next moves past what was scanned.
        let none = [99i64];
        let nothing = get(&store, 10, 32, TagFilter::Codes(&none)).await;
        assert_eq!(nothing.status, GetStatus::NoMatchedMessage);
        assert!(nothing.records.is_empty());
        assert_eq!(
            nothing.next_begin_offset,
            10 + rmq_storage::store::GET_SCAN_ENTRIES_MAX
        );
        let tail = get(&store, 990, 32, TagFilter::Codes(&none)).await;
        assert_eq!(
            (tail.status, tail.next_begin_offset),
            (GetStatus::NoMatchedMessage, 1000)
        );
        // How far the scan read (Java's maxPhyOffsetPulling): filtered entries count, and so
        // does the entry that no longer fit the batch.
        let phys_of = |result: &GetResult| result.records[0].phys_offset;
        let last = get(&store, 999, 1, TagFilter::All).await;
        assert_eq!(tail.last_scanned_phys_offset, Some(phys_of(&last)));
        let twelfth = get(&store, 12, 1, TagFilter::All).await;
        assert_eq!(matched.last_scanned_phys_offset, Some(phys_of(&twelfth)));
        let past_end = get(&store, 1000, 1, TagFilter::All).await;
        assert_eq!(past_end.last_scanned_phys_offset, None, "nothing read");
    });
}

#[test]
fn offset_too_small_and_message_removing_after_retention() {
    let root = scratch_dir_on_real_disk("store-retention").expect("scratch");
    run(async {
        let faults = rmq_storage::file::FaultInjector::new();
        let mut config = store_support::config(&root, FlushPolicy::Async);
        config.commitlog.checkpoint_interval_ms = 0;
        let (store, _) = Store::open(config, Disk::with_faults(faults.clone()))
            .await
            .expect("open");
        // 6000 records of ~130 bytes: several 256 KiB segments.
        for i in 0..6000 {
            append(&store, "T", 0, i).await;
        }
        store.checkpoint().await.expect("checkpoint");
        // Let the CommitLog's own checkpoint task catch up (retention never passes it).
        compio::time::sleep(std::time::Duration::from_millis(100)).await;
        let segments_before = store.commitlog().segment_starts().len();
        assert!(segments_before >= 2);
        // The disk is "full": retention deletes the oldest segments regardless of age. First
        // only the CommitLog, as if a pull raced retention: entries point at deleted records.
        faults.set_disk_used_percent(Some(99));
        let clock = rmq_storage::commitlog::RetentionClock {
            now: std::time::SystemTime::now(),
            local_hour: 12,
        };
        let policy = rmq_storage::commitlog::RetentionPolicy::default();
        let outcome = store
            .commitlog()
            .delete_expired(clock, &policy)
            .await
            .expect("retention");
        assert!(!outcome.deleted_segments.is_empty(), "{outcome:?}");
        let removing = get(&store, 0, 4, TagFilter::All).await;
        assert_eq!(removing.status, GetStatus::MessageWasRemoving);
        assert!(removing.next_begin_offset > 0);
        // Now through the store: queue min offsets follow the CommitLog.
        store
            .delete_expired(clock, &policy)
            .await
            .expect("retention");
        let (min, max) = store.offsets("T", 0).expect("queue");
        assert!(min > 0 && max == 6000, "min {min} max {max}");
        let small = get(&store, 0, 4, TagFilter::All).await;
        assert_eq!(
            (small.status, small.next_begin_offset),
            (GetStatus::OffsetTooSmall, min)
        );
        let first = get(&store, min, 1, TagFilter::All).await;
        assert_eq!(first.status, GetStatus::Found);
        assert!(
            store.earliest_store_time("T", 0).await.expect("time")
                >= Some(1_000 + i64::try_from(min).expect("small"))
        );
    });
}

#[test]
fn a_reopened_store_raises_queue_min_offsets_past_segments_retention_deleted() {
    let root = scratch_dir_on_real_disk("store-retention-reopen").expect("scratch");
    run(async {
        let faults = rmq_storage::file::FaultInjector::new();
        let mut config = store_support::config(&root, FlushPolicy::Async);
        config.commitlog.checkpoint_interval_ms = 0;
        let (store, _) = Store::open(config.clone(), Disk::with_faults(faults.clone()))
            .await
            .expect("open");
        for i in 0..6000 {
            append(&store, "T", 0, i).await;
        }
        store.checkpoint().await.expect("checkpoint");
        compio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Only the CommitLog deletes (a crash before the consume queues follow).
        faults.set_disk_used_percent(Some(99));
        let clock = rmq_storage::commitlog::RetentionClock {
            now: std::time::SystemTime::now(),
            local_hour: 12,
        };
        let policy = rmq_storage::commitlog::RetentionPolicy::default();
        let outcome = store
            .commitlog()
            .delete_expired(clock, &policy)
            .await
            .expect("retention");
        assert!(!outcome.deleted_segments.is_empty(), "{outcome:?}");
        assert_eq!(
            store.offsets("T", 0).expect("queue").0,
            0,
            "not followed yet"
        );
        store.close().await.expect("close");
        drop(store);
        faults.set_disk_used_percent(None);
        let (store, _) = Store::open(config, Disk::with_faults(faults))
            .await
            .expect("reopen");
        let (min, max) = store.offsets("T", 0).expect("queue");
        assert!(min > 0 && max == 6000, "min {min} max {max}");
        let first = get(&store, min, 1, TagFilter::All).await;
        assert_eq!(first.status, GetStatus::Found);
        let below = get(&store, 0, 1, TagFilter::All).await;
        assert_eq!(
            (below.status, below.next_begin_offset),
            (GetStatus::OffsetTooSmall, min)
        );
    });
}

#[test]
fn missing_consume_queue_file_is_offset_found_null() {
    let root = scratch_dir_on_real_disk("store-found-null").expect("scratch");
    run(async {
        let mut config = store_support::config(&root, FlushPolicy::Async);
        config.cq_block_cache_blocks = 0;
        let (store, _) = Store::open(config, Disk::real()).await.expect("open");
        for i in 0..600 {
            append(&store, "T", 0, i).await;
        }
        std::fs::remove_file(root.join("consumequeue/T/0/00000000000000000256")).expect("remove");
        let null = get(&store, 300, 8, TagFilter::All).await;
        assert_eq!(
            (null.status, null.next_begin_offset),
            (GetStatus::OffsetFoundNull, 512)
        );
        let found = get(&store, 100, 8, TagFilter::All).await;
        assert_eq!(found.status, GetStatus::Found, "other files unaffected");
    });
}

#[test]
fn long_poll_wakes_on_dispatch_and_batches_are_consecutive() {
    let root = scratch_dir_on_real_disk("store-wait").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        append(&store, "T", 0, 0).await;
        // Data already beyond the offset: ready at once.
        assert_eq!(
            store.wait_for_message("T", 0, 0).await,
            WaitOutcome::Arrived
        );
        let mut wait = pin!(store.wait_for_message("T", 0, 1));
        let mut context = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut context).is_pending());
        assert_eq!(store.waiters(), 1);
        append(&store, "U", 0, 0).await; // another queue does not wake it
        assert_eq!(store.waiters(), 1);
        assert!(wait.as_mut().poll(&mut context).is_pending());
        let payloads: Vec<Vec<u8>> = (0..3).map(|i| payload("T", 0, 100 + i)).collect();
        let batch: Vec<BatchMessage<'_>> = payloads
            .iter()
            .map(|payload| BatchMessage {
                tags_code: 0,
                keys: "",
                sys_flag: 0,
                payload,
            })
            .collect();
        let outcome = store
            .append_batch("T", 0, &batch, Some(5_000))
            .await
            .expect("batch");
        assert_eq!(outcome.first_queue_offset, 1);
        assert_eq!(store.waiters(), 0, "dispatch woke and removed the waiter");
        assert_eq!(
            wait.as_mut().poll(&mut context),
            Poll::Ready(WaitOutcome::Arrived)
        );
        let all = get(&store, 0, 32, TagFilter::All).await;
        assert_eq!(queue_offsets(&all), [0, 1, 2, 3]);
        assert_eq!(&all.records[3].payload[..], &payload("T", 0, 102)[..]);
        // A dropped waiter leaves nothing behind.
        {
            let mut dropped = pin!(store.wait_for_message("T", 0, 10));
            assert!(dropped.as_mut().poll(&mut context).is_pending());
            assert_eq!(store.waiters(), 1);
        }
        assert_eq!(store.waiters(), 0);
        store.close().await.expect("close");
    });
}
