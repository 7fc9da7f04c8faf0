//! Many queues on one store: what an idle consume queue costs in memory (measured with a
//! counting allocator) and that no queue holds a file descriptor, so tens of thousands of queues
//! fit in a shard's memory and RLIMIT_NOFILE; past the limit, `QueuesExhausted`.

mod store_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::path::{Path, PathBuf};

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::consume_queue::CQ_QUEUES_MAX;
use rmq_storage::error::StorageError;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{AppendMessage, Store};
use store_support::{config, run};

/// Bytes currently allocated through the global allocator (all threads).
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's (valid, non-zero-size) layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (forwarded from `alloc`).
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; `ptr` and `layout` come from an earlier `alloc`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The counter is process-wide: the tests of this file measure one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

fn measuring() -> MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues created empty (no message yet).
const EMPTY_QUEUES: usize = 20_000;
/// Queues that each got a few messages, then went idle (every one has a file on disk). Their
/// first checkpoint creates a file and a directory each, about 1 ms apiece here: this keeps
/// the test within a few seconds.
const USED_QUEUES: usize = 1_000;
/// Queue ids per topic, as a topic with 4 queues.
const QUEUES_PER_TOPIC: usize = 4;
/// What an idle queue may cost, all its memory counted (state, map slot, its share of the
/// topic's entry): measured at about 200 bytes; the bound leaves room for hash-table growth
/// steps. Before the tail block was dropped when idle, a queue cost 4.8 KiB.
const IDLE_QUEUE_BYTES_MAX: isize = 320;

fn queue(index: usize) -> (String, i32) {
    let topic = format!("Topic-{:05}", index / QUEUES_PER_TOPIC);
    let queue_id = i32::try_from(index % QUEUES_PER_TOPIC).expect("small");
    (topic, queue_id)
}

fn message<'a>(topic: &'a str, queue_id: i32, payload: &'a [u8]) -> AppendMessage<'a> {
    AppendMessage {
        topic,
        queue_id,
        tags_code: 0,
        keys: "",
        store_timestamp_ms: Some(1_000),
        sys_flag: 0,
        payload,
    }
}

/// Open file descriptors pointing under `dir`.
fn fds_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect()
}

/// 21,000 queues on one store: 20,000 empty ones and 1,000 that got messages and went idle
/// (their files written and synced). Each costs about 200 bytes and none holds a file
/// descriptor; a queue written to recently holds its 4 KiB tail block until it is idle for a
/// flush interval. A reopen brings every queue back.
#[test]
fn idle_queues_cost_little_memory_and_no_file_descriptor() {
    let _measuring = measuring();
    let root = scratch_dir_on_real_disk("cq-capacity").expect("scratch");
    let consume_queues = root.join("consumequeue");
    run(async {
        let (store, _) = Store::open(config(&root, FlushPolicy::Async), Disk::real())
            .await
            .expect("open");
        let before = live_bytes();
        for index in USED_QUEUES..USED_QUEUES + EMPTY_QUEUES {
            let (topic, queue_id) = queue(index);
            store.create_queue(&topic, queue_id).expect("create");
        }
        let empty_cost = (live_bytes() - before) / EMPTY_QUEUES as isize;
        let before = live_bytes();
        for index in 0..USED_QUEUES {
            let (topic, queue_id) = queue(index);
            for i in 0..3 {
                let payload = format!("{topic}/{queue_id}/{i}");
                store
                    .append(&message(&topic, queue_id, payload.as_bytes()))
                    .await
                    .expect("append");
            }
        }
        let active_cost = (live_bytes() - before) / USED_QUEUES as isize;
        // The first checkpoint writes and syncs the tails; the second finds them idle.
        store.checkpoint().await.expect("checkpoint");
        store.checkpoint().await.expect("checkpoint");
        let idle_cost = (live_bytes() - before) / USED_QUEUES as isize;
        let open_under_queues = fds_under(&consume_queues);
        eprintln!(
            "{} queues: {empty_cost} B per empty queue; {USED_QUEUES} with 3 messages: {active_cost} B each while active, {idle_cost} B each idle; fds under consumequeue: {}",
            USED_QUEUES + EMPTY_QUEUES,
            open_under_queues.len()
        );
        assert!(
            empty_cost <= IDLE_QUEUE_BYTES_MAX,
            "{empty_cost} B per empty queue"
        );
        assert!(
            idle_cost <= IDLE_QUEUE_BYTES_MAX,
            "{idle_cost} B per idle queue"
        );
        assert!(
            active_cost >= 4096,
            "the count sees the tail blocks of active queues ({active_cost} B)"
        );
        assert!(
            open_under_queues.is_empty(),
            "no consume-queue file stays open: {open_under_queues:?}"
        );
        // An idle queue's tail comes back from disk for its next message.
        let (topic, queue_id) = queue(7);
        let outcome = store
            .append(&message(&topic, queue_id, b"again"))
            .await
            .expect("append to an idle queue");
        assert_eq!(outcome.queue_offset, 3);
        store.close().await.expect("close");

        let (store, recovery) = Store::open(config(&root, FlushPolicy::Async), Disk::real())
            .await
            .expect("reopen");
        assert_eq!(recovery.queues_repaired, 0);
        for index in [
            0,
            7,
            USED_QUEUES - 1,
            USED_QUEUES,
            USED_QUEUES + EMPTY_QUEUES - 1,
        ] {
            let (topic, queue_id) = queue(index);
            let want = match index {
                7 => 4,
                _ if index < USED_QUEUES => 3,
                _ => 0,
            };
            assert_eq!(
                store.offsets(&topic, queue_id),
                Some((0, want)),
                "{topic}/{queue_id}"
            );
        }
        assert!(fds_under(&consume_queues).is_empty());
        store.close().await.expect("close");
    });
}

/// A store holds `CQ_QUEUES_MAX` (65,536) queues; the next one is refused with
/// `QueuesExhausted` and nothing is appended, while the existing queues keep working and
/// deleting a topic makes room.
#[test]
fn a_full_store_refuses_a_new_queue_with_queues_exhausted() {
    let _measuring = measuring();
    let root = scratch_dir_on_real_disk("cq-exhausted").expect("scratch");
    run(async {
        let (store, _) = Store::open(config(&root, FlushPolicy::Async), Disk::real())
            .await
            .expect("open");
        let before = live_bytes();
        for index in 0..CQ_QUEUES_MAX {
            let (topic, queue_id) = queue(index);
            store.create_queue(&topic, queue_id).expect("create");
        }
        let all_cost = live_bytes() - before;
        eprintln!(
            "{CQ_QUEUES_MAX} empty queues: {all_cost} B ({} B each)",
            all_cost / CQ_QUEUES_MAX as isize
        );
        assert!(all_cost <= IDLE_QUEUE_BYTES_MAX * CQ_QUEUES_MAX as isize);
        let refused = |error: StorageError| match error {
            StorageError::QueuesExhausted {
                topic,
                queue_id,
                limit,
            } => {
                assert_eq!((topic.as_str(), queue_id), ("Fresh", 0));
                assert_eq!(limit, CQ_QUEUES_MAX);
            }
            other => panic!("expected QueuesExhausted, got {other}"),
        };
        refused(store.create_queue("Fresh", 0).expect_err("full"));
        let end = store.commitlog().appended_offset();
        refused(
            store
                .append(&message("Fresh", 0, b"x"))
                .await
                .expect_err("full"),
        );
        assert_eq!(store.commitlog().appended_offset(), end, "nothing appended");
        let (topic, queue_id) = queue(0);
        store
            .append(&message(&topic, queue_id, b"existing"))
            .await
            .expect("an existing queue still takes messages");
        assert!(store.delete_topic(&topic).await.expect("delete"));
        store
            .append(&message("Fresh", 0, b"x"))
            .await
            .expect("room after a topic delete");
        store.close().await.expect("close");
    });
}
