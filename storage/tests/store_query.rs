//! Queries through the store facade: by key (time range, limit, topic isolation, sealed index
//! files, bounded index memory), by physical offset, by store timestamp.

mod store_support;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::consume_queue::search::Boundary;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use store_support::{append, open, payload, run};

#[test]
fn query_by_key_with_range_limit_and_topic_isolation() {
    let root = scratch_dir_on_real_disk("store-query").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        let mut phys = Vec::new();
        for i in 0..500 {
            phys.push(append(&store, "T", 0, i).await.phys_offset);
            append(&store, "U", 0, i).await; // same keys, other topic
            assert!(
                store.index_active_entries() <= 64,
                "active index table bounded"
            );
        }
        assert!(
            store.index_sealed_files() > 10,
            "the 64-entry table was sealed many times"
        );
        // biz2: messages 2, 7, 12, ... of T only, newest first.
        let all = store
            .query_by_key("T", "biz2", 1000, 0, i64::MAX)
            .await
            .expect("query");
        let expected: Vec<u64> = (0..500u64)
            .rev()
            .filter(|i| i % 5 == 2)
            .map(|i| phys[i as usize])
            .collect();
        let found: Vec<u64> = all
            .records
            .iter()
            .map(|record| record.phys_offset)
            .collect();
        assert_eq!(found, expected);
        assert!(all.records.iter().all(|record| &record.topic[..] == b"T"));
        assert!(all.index_last_update_phys_offset >= *phys.last().expect("appended"));
        // Time range [1100, 1200] ms = messages 100..=200.
        let ranged = store
            .query_by_key("T", "biz2", 1000, 1100, 1200)
            .await
            .expect("query");
        let in_range: Vec<u64> = (100..=200u64)
            .rev()
            .filter(|i| i % 5 == 2)
            .map(|i| phys[i as usize])
            .collect();
        assert_eq!(
            ranged
                .records
                .iter()
                .map(|record| record.phys_offset)
                .collect::<Vec<_>>(),
            in_range
        );
        // Limit.
        let limited = store
            .query_by_key("T", "biz2", 3, 0, i64::MAX)
            .await
            .expect("query");
        assert_eq!(limited.records.len(), 3);
        assert_eq!(limited.records[0].phys_offset, expected[0]);
        // Unique key, unknown key, key of another topic.
        let unique = store
            .query_by_key("T", "uniq-T-0-123", 10, 0, i64::MAX)
            .await
            .expect("query");
        assert_eq!(unique.records.len(), 1);
        assert_eq!(&unique.records[0].payload[..], &payload("T", 0, 123)[..]);
        assert!(store
            .query_by_key("T", "uniq-U-0-123", 10, 0, i64::MAX)
            .await
            .expect("q")
            .records
            .is_empty());
        assert!(store
            .query_by_key("T", "nope", 10, 0, i64::MAX)
            .await
            .expect("q")
            .records
            .is_empty());
        assert!(store
            .query_by_key("T", "biz2", 0, 0, i64::MAX)
            .await
            .expect("q")
            .records
            .is_empty());
    });
}

#[test]
fn read_by_phys_offset_and_search_by_timestamp() {
    let root = scratch_dir_on_real_disk("store-phys-time").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        let mut outcomes = Vec::new();
        for i in 0..600 {
            outcomes.push(append(&store, "T", 0, i).await); // store time 1000 + i
        }
        let record = store
            .read_by_phys_offset(outcomes[17].phys_offset)
            .await
            .expect("read");
        assert_eq!(record.queue_offset, 17);
        assert_eq!(&record.payload[..], &payload("T", 0, 17)[..]);
        assert!(store
            .read_by_phys_offset(outcomes[17].phys_offset + 1)
            .await
            .is_err());
        assert!(store.read_by_phys_offset(1 << 40).await.is_err());

        let search = |ts, boundary| store.search_offset_by_timestamp("T", 0, ts, boundary);
        assert_eq!(search(1_250, Boundary::Lower).await.expect("search"), 250);
        assert_eq!(search(1_250, Boundary::Upper).await.expect("search"), 250);
        assert_eq!(search(0, Boundary::Lower).await.expect("search"), 0);
        assert_eq!(search(0, Boundary::Upper).await.expect("search"), 0);
        assert_eq!(search(10_000, Boundary::Lower).await.expect("search"), 600);
        assert_eq!(search(10_000, Boundary::Upper).await.expect("search"), 599);
        assert_eq!(
            store
                .search_offset_by_timestamp("T", 9, 1_250, Boundary::Lower)
                .await
                .expect("s"),
            0
        );
        assert_eq!(
            store.earliest_store_time("T", 0).await.expect("time"),
            Some(1_000)
        );
        assert_eq!(store.earliest_store_time("T", 9).await.expect("time"), None);
        assert_eq!(
            (store.min_offset("T", 0), store.max_offset("T", 0)),
            (0, 600)
        );
        assert_eq!((store.min_offset("T", 9), store.max_offset("T", 9)), (0, 0));
        assert_eq!(store.queue_ids("T"), [0]);
    });
}

#[test]
fn invalid_input_is_rejected_without_side_effects() {
    let root = scratch_dir_on_real_disk("store-invalid").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        let message = rmq_storage::store::AppendMessage {
            topic: "../etc",
            queue_id: 0,
            tags_code: 0,
            keys: "",
            store_timestamp_ms: None,
            sys_flag: 0,
            payload: b"x",
        };
        assert!(
            store.append(&message).await.is_err(),
            "topic outside the charset"
        );
        let negative = rmq_storage::store::AppendMessage {
            topic: "T",
            queue_id: -1,
            ..message
        };
        assert!(store.append(&negative).await.is_err());
        let big = vec![0u8; 64 * 1024];
        let too_large = rmq_storage::store::AppendMessage {
            topic: "T",
            payload: &big,
            ..message
        };
        assert!(store.append(&too_large).await.is_err());
        assert_eq!(
            store.offsets("T", 0),
            None,
            "a refused append creates no queue"
        );
        let ok = rmq_storage::store::AppendMessage {
            topic: "T",
            ..message
        };
        let outcome = store.append(&ok).await.expect("append");
        assert_eq!(outcome.durability, rmq_storage::store::Durability::Appended);
        assert!(
            outcome.store_timestamp_ms > 1_600_000_000_000,
            "store time defaults to now"
        );
    });
}

#[test]
fn sync_flush_reports_durable() {
    let root = scratch_dir_on_real_disk("store-sync").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        let outcome = append(&store, "T", 0, 0).await;
        assert_eq!(outcome.durability, rmq_storage::store::Durability::Durable);
        assert!(
            store.commitlog().durable_offset() >= outcome.phys_offset + u64::from(outcome.size)
        );
    });
}
