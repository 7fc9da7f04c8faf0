//! `Store::truncate_to` on a store whose index files are rebuilt by the truncation: the
//! consume queues and the index keep nothing at or past the cut (regression: the rebuild's
//! replay read past the cut, before the CommitLog was truncated, and dispatched the dropped
//! records into the consume queues and the index again).

mod store_support;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use store_support::{append, keys, open, run};

/// The unique key of message `i` of `cut/0`.
fn unique_key(i: u64) -> String {
    let keys = keys("cut", 0, i);
    keys.split(' ').nth(1).expect("a unique key").to_owned()
}

#[test]
fn truncation_drops_queue_and_index_entries_past_the_cut() {
    let root = scratch_dir_on_real_disk("store-truncate").expect("dir");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        for i in 0..300 {
            append(&store, "cut", 0, i).await;
        }
        let cut = store.commitlog().appended_offset();
        for i in 300..400 {
            append(&store, "cut", 0, i).await;
        }
        assert_eq!(store.max_offset("cut", 0), 400);
        store.truncate_to(cut).await.expect("truncate");
        assert_eq!(store.commitlog().appended_offset(), cut);
        assert_eq!(store.max_offset("cut", 0), 300, "queue cut with the log");
        let dropped = store
            .query_by_key("cut", &unique_key(350), 32, 0, i64::MAX)
            .await
            .expect("query");
        assert!(dropped.records.is_empty(), "{:?}", dropped.records);
        let kept = store
            .query_by_key("cut", &unique_key(250), 32, 0, i64::MAX)
            .await
            .expect("query");
        assert_eq!(kept.records.len(), 1);
        store.close().await.expect("close");
    });
    let _ = std::fs::remove_dir_all(&root);
}
