//! Recovery through the store facade: crash without close, power loss that reverts unsynced
//! consume-queue writes, consume queues lost or truncated on disk, a lost checkpoint, and a
//! deleted topic that must stay deleted.

mod store_support;

use std::path::Path;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, CrashMode, Disk, FaultInjector};
use rmq_storage::store::{GetRequest, GetStatus, Store, TagFilter};
use store_support::{append, keys, open, payload, run};

/// Queues written by [`write_messages`]: (topic, queue id, messages).
const QUEUES: [(&str, i32, u64); 3] = [("T", 0, 400), ("T", 1, 300), ("Other", 0, 150)];

/// Appends messages `range` of each queue (interleaved, as producers would).
async fn write_messages(store: &Store, range: std::ops::Range<u64>) {
    for i in range {
        for (topic, queue_id, count) in QUEUES {
            if i < count {
                let outcome = append(store, topic, queue_id, i).await;
                assert_eq!(outcome.queue_offset, i);
            }
        }
    }
}

/// Every queue holds exactly its messages `0..upto.min(count)`, readable in order with the
/// right payloads, and every unique key finds its message.
async fn verify(store: &Store, upto: u64) {
    for (topic, queue_id, count) in QUEUES {
        let expected = upto.min(count);
        assert_eq!(
            store.offsets(topic, queue_id),
            Some((0, expected)),
            "{topic}/{queue_id}"
        );
        let mut offset = 0;
        while offset < expected {
            let request = GetRequest {
                topic,
                queue_id,
                queue_offset: offset,
                max_count: 32,
                max_bytes: 1 << 20,
                filter: TagFilter::All,
            };
            let result = store.get_messages(&request).await.expect("get");
            assert_eq!(
                result.status,
                GetStatus::Found,
                "{topic}/{queue_id} at {offset}"
            );
            for record in &result.records {
                let i = u64::try_from(record.queue_offset).expect("non-negative");
                assert_eq!(i, offset);
                assert_eq!(&record.payload[..], &payload(topic, queue_id, i)[..]);
                offset += 1;
            }
            assert_eq!(result.next_begin_offset, offset);
        }
        for i in [0, expected / 2, expected.saturating_sub(1)] {
            let unique = format!("uniq-{topic}-{queue_id}-{i}");
            let found = store
                .query_by_key(topic, &unique, 10, 0, i64::MAX)
                .await
                .expect("query");
            assert_eq!(found.records.len(), 1, "{unique}");
            assert_eq!(
                &found.records[0].keys[..],
                keys(topic, queue_id, i).as_bytes()
            );
        }
    }
    // A shared key: every message with it, once (no duplicates after replay).
    let biz = store
        .query_by_key("T", "biz3", 10_000, 0, i64::MAX)
        .await
        .expect("query");
    let expected: u64 = QUEUES
        .iter()
        .filter(|(topic, _, _)| *topic == "T")
        .map(|&(_, _, count)| (0..upto.min(count)).filter(|i| i % 5 == 3).count() as u64)
        .sum();
    assert_eq!(biz.records.len() as u64, expected);
    let mut phys: Vec<u64> = biz
        .records
        .iter()
        .map(|record| record.phys_offset)
        .collect();
    assert!(
        phys.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first, no duplicates"
    );
    phys.dedup();
    assert_eq!(phys.len() as u64, expected);
}

#[test]
fn crash_without_close_recovers_queues_and_index() {
    let root = scratch_dir_on_real_disk("store-crash").expect("scratch");
    run(async {
        let (store, recovery) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert!(!recovery.checkpoint_found);
        write_messages(&store, 0..200).await;
        store.checkpoint().await.expect("checkpoint");
        write_messages(&store, 200..400).await;
        assert!(store.index_active_entries() <= 64, "index memory bounded");
        verify(&store, 400).await;
        drop(store); // crash: no close, no final checkpoint

        let (store, recovery) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert!(recovery.checkpoint_found);
        assert!(!recovery.commitlog.clean_shutdown);
        assert!(
            recovery.records_replayed > 0,
            "records past the checkpoint were replayed"
        );
        verify(&store, 400).await;
        // Appends continue at the right offsets.
        assert_eq!(append(&store, "T", 0, 400).await.queue_offset, 400);
        store.close().await.expect("close");

        let (store, recovery) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert!(recovery.commitlog.clean_shutdown);
        assert_eq!(
            recovery.records_replayed, 0,
            "a clean close leaves nothing to replay"
        );
        assert_eq!(store.offsets("T", 0), Some((0, 401)));
    });
}

async fn power_loss(root: &Path, mode: CrashMode) {
    let faults = FaultInjector::new();
    faults.track_unsynced(true);
    let (store, _) = open(root, FlushPolicy::Sync, Disk::with_faults(faults.clone())).await;
    write_messages(&store, 0..150).await;
    store.checkpoint().await.expect("checkpoint");
    write_messages(&store, 150..400).await;
    assert!(
        faults.unsynced_bytes() > 0,
        "consume-queue blocks were written, not synced"
    );
    store.abandon().await;
    faults.crash(mode).expect("crash");
}

#[test]
fn power_loss_reverting_unsynced_writes_is_recovered() {
    let root = scratch_dir_on_real_disk("store-power-loss").expect("scratch");
    run(async {
        power_loss(&root, CrashMode::DropUnsynced).await;
        // SYNC_FLUSH acknowledged every append, so every message must come back.
        let (store, recovery) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert!(recovery.records_replayed > 0);
        verify(&store, 400).await;
    });
}

#[test]
fn power_loss_tearing_unsynced_blocks_is_recovered() {
    for seed in [1, 7, 42] {
        let root = scratch_dir_on_real_disk("store-torn").expect("scratch");
        run(async {
            power_loss(&root, CrashMode::Torn { seed }).await;
            let (store, _) = open(&root, FlushPolicy::Sync, Disk::real()).await;
            verify(&store, 400).await;
        });
    }
}

fn queue_dir(root: &Path, topic: &str, queue_id: i32) -> std::path::PathBuf {
    root.join("consumequeue")
        .join(topic)
        .join(queue_id.to_string())
}

#[test]
fn lost_or_truncated_consume_queues_are_rebuilt() {
    let root = scratch_dir_on_real_disk("store-lost-cq").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        write_messages(&store, 0..400).await;
        store.close().await.expect("close");
        // T/0 loses everything, T/1 loses its last file and part of the one before.
        std::fs::remove_dir_all(queue_dir(&root, "T", 0)).expect("remove");
        std::fs::remove_file(queue_dir(&root, "T", 1).join(format!("{:020}", 256)))
            .expect("remove");
        let file = queue_dir(&root, "T", 1).join(format!("{:020}", 0));
        let len = std::fs::metadata(&file).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("open")
            .set_len(len - 4096)
            .expect("truncate");

        let (store, recovery) = open(&root, FlushPolicy::Async, Disk::real()).await;
        assert_eq!(recovery.queues_repaired, 2);
        assert_eq!(
            recovery.replay_from, 0,
            "a queue lost everything: replay from the log start"
        );
        verify(&store, 400).await;
        store.close().await.expect("close");
        let (store, recovery) = open(&root, FlushPolicy::Async, Disk::real()).await;
        assert_eq!(recovery.queues_repaired, 0, "the rebuild was checkpointed");
        verify(&store, 400).await;
    });
}

#[test]
fn lost_checkpoint_and_derived_files_are_rebuilt() {
    let root = scratch_dir_on_real_disk("store-lost-all").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        write_messages(&store, 0..400).await;
        store.close().await.expect("close");
        std::fs::remove_file(root.join("store.checkpoint")).expect("remove");
        std::fs::remove_dir_all(root.join("consumequeue")).expect("remove");
        std::fs::remove_dir_all(root.join("index")).expect("remove");
        let (store, recovery) = open(&root, FlushPolicy::Async, Disk::real()).await;
        assert!(!recovery.checkpoint_found);
        assert_eq!(recovery.records_replayed, 850);
        verify(&store, 400).await;
    });
}

#[test]
fn deleted_topic_stays_deleted_after_a_crash() {
    let root = scratch_dir_on_real_disk("store-delete-topic").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        write_messages(&store, 0..50).await;
        assert!(store.delete_topic("Other").await.expect("delete"));
        assert!(!store.delete_topic("Other").await.expect("delete again"));
        assert_eq!(store.offsets("Other", 0), None);
        assert!(!queue_dir(&root, "Other", 0).exists());
        drop(store);
        let (store, _) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert_eq!(store.offsets("Other", 0), None);
        assert_eq!(store.offsets("T", 0), Some((0, 50)));
        // The topic can be written again from offset 0.
        assert_eq!(append(&store, "Other", 0, 0).await.queue_offset, 0);
    });
}
