//! Record-filtered pulls (`TagFilter::Records`, the SQL92 path): only accepted records come
//! back, `nextBeginOffset` moves past every rejected entry and stops at the first match left
//! out for lack of room, and one pull's scan is bounded.

mod store_support;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{
    GetRequest, GetResult, GetStatus, RecordFilter, Store, TagFilter, GET_SCAN_ENTRIES_MAX,
};
use store_support::{append, open, run};

/// Accepts the messages whose index (the number in `T/0/<i>:…`) is `i % modulus == rest`.
#[derive(Debug)]
struct EveryNth {
    modulus: u64,
    rest: u64,
}

impl RecordFilter for EveryNth {
    fn accepts(&self, payload: &[u8]) -> bool {
        let text = std::str::from_utf8(payload).expect("test payloads are text");
        let index: u64 = text
            .split('/')
            .nth(2)
            .and_then(|s| s.split(':').next())
            .and_then(|s| s.parse().ok())
            .expect("test payload shape");
        index % self.modulus == self.rest
    }
}

async fn get(
    store: &Store,
    queue_offset: u64,
    max_count: u32,
    max_bytes: u64,
    filter: &dyn RecordFilter,
) -> GetResult {
    let request = GetRequest {
        topic: "T",
        queue_id: 0,
        queue_offset,
        max_count,
        max_bytes,
        filter: TagFilter::Records(filter),
    };
    store.get_messages(&request).await.expect("get")
}

fn offsets(result: &GetResult) -> Vec<i64> {
    result.records.iter().map(|r| r.queue_offset).collect()
}

#[test]
fn filtered_pulls_skip_rejected_records_and_advance_the_offset() {
    let root = scratch_dir_on_real_disk("store-records").expect("scratch");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, Disk::real()).await;
        let total = 1000u64;
        for i in 0..total {
            append(&store, "T", 0, i).await;
        }
        let tenth = EveryNth {
            modulus: 10,
            rest: 3,
        };
        // Count-limited: the fifth match is the last; next is past it and past at most the
        // rejected entries before the next match (never past a match).
        let five = get(&store, 0, 5, 1 << 20, &tenth).await;
        assert_eq!(five.status, GetStatus::Found);
        assert_eq!(offsets(&five), [3, 13, 23, 33, 43]);
        assert!(
            (44..=53).contains(&five.next_begin_offset),
            "{}",
            five.next_begin_offset
        );
        // Reading on from there continues with the next match.
        let more = get(&store, five.next_begin_offset, 2, 1 << 20, &tenth).await;
        assert_eq!(offsets(&more), [53, 63]);
        assert!(
            (64..=73).contains(&more.next_begin_offset),
            "{}",
            more.next_begin_offset
        );
        // Byte-limited: the first match always comes back; the next match not fitting is
        // where the next pull starts (not past it).
        let one = get(&store, 0, 32, 1, &tenth).await;
        assert_eq!(offsets(&one), [3]);
        assert_eq!(one.next_begin_offset, 13);
        // Nothing matches: the scan stops at its bound and moves the consumer past it.
        let none = EveryNth {
            modulus: total * 2,
            rest: total + 1,
        };
        let empty = get(&store, 0, 32, 1 << 20, &none).await;
        assert_eq!(empty.status, GetStatus::NoMatchedMessage);
        assert!(empty.records.is_empty());
        assert_eq!(empty.next_begin_offset, GET_SCAN_ENTRIES_MAX);
        let tail = get(&store, GET_SCAN_ENTRIES_MAX, 32, 1 << 20, &none).await;
        assert_eq!(
            (tail.status, tail.next_begin_offset),
            (GetStatus::NoMatchedMessage, total)
        );
        // Accept-all behaves as an unfiltered pull.
        let all = EveryNth {
            modulus: 1,
            rest: 0,
        };
        let three = get(&store, 7, 3, 1 << 20, &all).await;
        assert_eq!(three.status, GetStatus::Found);
        assert_eq!(
            (offsets(&three), three.next_begin_offset),
            (vec![7, 8, 9], 10)
        );
        // Walking the whole queue with small pulls returns every match exactly once.
        let mut offset = 0;
        let mut seen = Vec::new();
        while offset < total {
            let page = get(&store, offset, 7, 1 << 20, &tenth).await;
            assert!(page.next_begin_offset > offset, "every pull makes progress");
            seen.extend(offsets(&page));
            offset = page.next_begin_offset;
        }
        let want: Vec<i64> = (0..1000).filter(|i| i % 10 == 3).collect();
        assert_eq!(seen, want);
    });
}
