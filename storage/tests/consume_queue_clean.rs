//! Consume-queue retention run twice at once (the periodic pass and an admin's
//! CLEAN_EXPIRED_CONSUMEQUEUE may overlap): both succeed, the queue ends at the same min
//! offset, files below it are gone and entries above it are intact; a pass overlapping a
//! topic deletion finds nothing to do.

use std::path::{Path, PathBuf};

use rmq_storage::consume_queue::entry::CqEntry;
use rmq_storage::consume_queue::ops::{CqStore, EntryRead};
use rmq_storage::consume_queue::{ConsumeQueueConfig, Dispatched};
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

/// Entry for queue offset `k`: records of 100 bytes back to back.
fn cq_entry(k: u64) -> CqEntry {
    CqEntry {
        phys_offset: k * 100,
        size: 100,
        tags_code: 0,
        store_timestamp: i64::try_from(k).expect("small"),
    }
}

async fn fill(store: &CqStore, topic: &str, range: std::ops::Range<u64>) {
    for k in range {
        let outcome = store.dispatch(topic, 0, k, &cq_entry(k)).await;
        assert_eq!(outcome.expect("dispatch"), Dispatched::Appended);
        store.write_pending().await.expect("write pending");
    }
}

fn queue_file(root: &Path, topic: &str, first: u64) -> PathBuf {
    root.join(topic).join("0").join(format!("{first:020}"))
}

#[test]
fn overlapping_retention_passes_both_succeed() {
    let root = scratch_dir_on_real_disk("cq-clean-overlap").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        fill(&store, "T", 0..700).await;
        store.flush().await.expect("flush");
        assert!(
            queue_file(&root, "T", 0).exists(),
            "file naming as in the store"
        );
        let (first, second) = futures_util::future::join(
            store.apply_commitlog_min(53_000),
            store.apply_commitlog_min(53_000),
        )
        .await;
        first.expect("first pass");
        second.expect("second pass");
        assert_eq!(
            store.with(|queues| queues.offsets("T", 0)),
            Some((530, 700))
        );
        assert!(!queue_file(&root, "T", 0).exists());
        assert!(!queue_file(&root, "T", 256).exists());
        assert!(queue_file(&root, "T", 512).exists());
        for k in 530..700 {
            assert_eq!(
                store.read_entry("T", 0, k).await.expect("read"),
                EntryRead::Found(cq_entry(k)),
                "offset {k}"
            );
        }
        // A further pass with a higher start and one with a lower start, at once.
        let (higher, lower) = futures_util::future::join(
            store.apply_commitlog_min(60_000),
            store.apply_commitlog_min(54_000),
        )
        .await;
        higher.expect("higher");
        lower.expect("lower");
        assert_eq!(
            store.with(|queues| queues.offsets("T", 0)),
            Some((600, 700))
        );
    });
}

#[test]
fn retention_overlapping_a_topic_deletion_does_nothing() {
    let root = scratch_dir_on_real_disk("cq-clean-delete").expect("scratch");
    run(async {
        let store = CqStore::new(Disk::real(), config(&root)).expect("store");
        fill(&store, "D", 0..600).await;
        store.flush().await.expect("flush");
        let (retention, deleted) =
            futures_util::future::join(store.apply_commitlog_min(30_000), store.delete_topic("D"))
                .await;
        retention.expect("retention");
        assert!(deleted.expect("delete"));
        assert!(store.with(|queues| queues.offsets("D", 0)).is_none());
        assert!(!root.join("D").exists());
    });
}
