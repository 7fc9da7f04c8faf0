//! `WAIT=false` under SYNC_FLUSH: the append returns once appended (readable), without waiting
//! for the fdatasync; the default append waits and reports durability.

mod store_support;

use std::time::{Duration, Instant};

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk, FaultInjector};
use rmq_storage::store::{AppendMessage, Durability, WaitForFlush};
use store_support::{open, run};

#[test]
fn wait_false_skips_the_sync_flush_wait_and_the_default_waits() {
    let root = scratch_dir_on_real_disk("store-wait-false").expect("scratch");
    run(async {
        let faults = FaultInjector::new();
        let (store, _) = open(&root, FlushPolicy::Sync, Disk::with_faults(faults.clone())).await;
        // A slow device: every fdatasync takes 2 s.
        faults.set_sync_delay(Some(Duration::from_secs(2)));
        let message = AppendMessage {
            topic: "T",
            queue_id: 0,
            tags_code: 0,
            keys: "",
            store_timestamp_ms: None,
            sys_flag: 0,
            payload: b"payload",
        };
        let start = Instant::now();
        let fast = store
            .append_waiting(&message, WaitForFlush::No)
            .await
            .expect("append");
        assert_eq!(fast.durability, Durability::Appended);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "did not wait for the fdatasync"
        );
        assert_eq!(store.max_offset("T", 0), 1, "readable at once");
        let start = Instant::now();
        let waited = store.append(&message).await.expect("append");
        assert_eq!(waited.durability, Durability::Durable);
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "waited for the fdatasync"
        );
        assert!(store.commitlog().durable_offset() > fast.phys_offset);
        store.close().await.expect("close");
    });
}
