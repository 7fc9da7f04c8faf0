//! Appends from many concurrent tasks, single and batched, over small segments: a record is
//! dispatched straight from its append when the reput has reached it and is free (a batch in
//! windows whose keys are hashed ahead), and read back from the CommitLog otherwise (another
//! task dispatching, a filler before it). Whichever path
//! each took, every queue must hold exactly the records its appends reported, in order, with the
//! right payloads, tags and store times, every key must be indexed once, and a reopened store
//! (which rebuilds nothing that was dispatched, and replays what was not) must agree.

mod store_support;

use std::cell::RefCell;
use std::collections::HashMap;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{AppendMessage, BatchMessage, GetRequest, GetResult, Store, TagFilter};
use store_support::run;

const QUEUES: [(&str, i32); 3] = [("T", 0), ("T", 1), ("U", 0)];
const TASKS: u64 = 6;
const ROUNDS: u64 = 60;

/// What an append reported for one message, and what it stored.
#[derive(Debug, Clone)]
struct Sent {
    phys_offset: u64,
    size: u32,
    tags_code: i64,
    store_timestamp_ms: i64,
    payload: Vec<u8>,
    unique: String,
}

type Sent3 = HashMap<(&'static str, i32), Vec<(u64, Sent)>>;

fn message(task: u64, round: u64, item: u64) -> (Vec<u8>, String, i64) {
    let serial = (task * 1_000 + round) * 100 + item;
    let payload = format!(
        "t{task}r{round}i{item}:{}",
        "p".repeat((serial % 1_400) as usize)
    );
    (
        payload.into_bytes(),
        format!("u{serial}"),
        (serial % 4) as i64,
    )
}

async fn append_task(store: &Store, task: u64, sent: &RefCell<Sent3>) {
    for round in 0..ROUNDS {
        let (topic, queue_id) = QUEUES[((task + round) % QUEUES.len() as u64) as usize];
        let store_timestamp_ms = 10_000 + (task * 1_000 + round) as i64;
        if round % 3 == 2 {
            // Some batches span several dispatch windows (16 records); some carry 20 keys per
            // message, more than a window hashes ahead (the rest are hashed at dispatch).
            let count = if round % 9 == 8 { 37 } else { 1 + (round % 5) };
            let items: Vec<_> = (0..count).map(|i| message(task, round, i)).collect();
            let many = round % 6 == 5;
            let keys: Vec<String> = items
                .iter()
                .map(|(_, u, _)| {
                    if many {
                        let extra: Vec<String> = (0..19).map(|x| format!("x{x}{u}")).collect();
                        format!("k {u} {}", extra.join(" "))
                    } else {
                        format!("k {u}")
                    }
                })
                .collect();
            let batch: Vec<BatchMessage<'_>> = items
                .iter()
                .zip(&keys)
                .map(|((payload, _, tags_code), keys)| BatchMessage {
                    tags_code: *tags_code,
                    keys,
                    sys_flag: 0,
                    payload,
                })
                .collect();
            let outcome = store
                .append_batch(topic, queue_id, &batch, Some(store_timestamp_ms))
                .await
                .expect("batch");
            let mut sent = sent.borrow_mut();
            let queue = sent.entry((topic, queue_id)).or_default();
            for (index, ((payload, unique, tags_code), (phys_offset, size))) in
                items.into_iter().zip(outcome.records).enumerate()
            {
                let queue_offset = outcome.first_queue_offset + index as u64;
                queue.push((
                    queue_offset,
                    Sent {
                        phys_offset,
                        size,
                        tags_code,
                        store_timestamp_ms,
                        payload,
                        unique,
                    },
                ));
            }
        } else {
            let (payload, unique, tags_code) = message(task, round, 0);
            let keys = format!("k {unique}");
            let outcome = store
                .append(&AppendMessage {
                    topic,
                    queue_id,
                    tags_code,
                    keys: &keys,
                    store_timestamp_ms: Some(store_timestamp_ms),
                    sys_flag: 0,
                    payload: &payload,
                })
                .await
                .expect("append");
            sent.borrow_mut()
                .entry((topic, queue_id))
                .or_default()
                .push((
                    outcome.queue_offset,
                    Sent {
                        phys_offset: outcome.phys_offset,
                        size: outcome.size,
                        tags_code,
                        store_timestamp_ms,
                        payload,
                        unique,
                    },
                ));
        }
        if round % 7 == task % 7 {
            // Let the others run between appends too, not only at the store's own awaits.
            compio::runtime::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// Up to 32 records of a queue from `queue_offset`.
async fn pull(
    store: &Store,
    topic: &str,
    queue_id: i32,
    queue_offset: u64,
    filter: TagFilter<'_>,
) -> GetResult {
    let request = GetRequest {
        topic,
        queue_id,
        queue_offset,
        max_count: 32,
        max_bytes: 1 << 20,
        filter,
    };
    store.get_messages(&request).await.expect("get")
}

async fn check(store: &Store, sent: &Sent3) {
    for (&(topic, queue_id), messages) in sent {
        let mut messages = messages.clone();
        messages.sort_by_key(|(queue_offset, _)| *queue_offset);
        for (expected, (queue_offset, _)) in messages.iter().enumerate() {
            assert_eq!(
                *queue_offset, expected as u64,
                "{topic}/{queue_id} offsets dense"
            );
        }
        let mut next = 0u64;
        while next < messages.len() as u64 {
            let result = pull(store, topic, queue_id, next, TagFilter::All).await;
            assert_eq!(
                result.max_offset,
                messages.len() as u64,
                "{topic}/{queue_id}"
            );
            assert!(!result.records.is_empty(), "{topic}/{queue_id} at {next}");
            for record in &result.records {
                let (queue_offset, want) = &messages[next as usize];
                assert_eq!(record.queue_offset, *queue_offset as i64);
                assert_eq!(
                    (record.phys_offset, record.size),
                    (want.phys_offset, want.size)
                );
                assert_eq!(record.tags_code, want.tags_code);
                assert_eq!(record.store_timestamp_ms, want.store_timestamp_ms);
                assert_eq!(&record.payload[..], &want.payload[..]);
                next += 1;
            }
        }
        // The consume-queue entries' tag codes: a filtered pull returns exactly the matches.
        for code in 0..4i64 {
            let codes = [code];
            let mut got = Vec::new();
            let mut next = 0u64;
            while next < messages.len() as u64 {
                let result = pull(store, topic, queue_id, next, TagFilter::Codes(&codes)).await;
                got.extend(result.records.iter().map(|r| r.phys_offset));
                assert!(result.next_begin_offset > next, "the scan advances");
                next = result.next_begin_offset;
            }
            let want: Vec<u64> = messages
                .iter()
                .filter(|(_, m)| m.tags_code == code)
                .map(|(_, m)| m.phys_offset)
                .collect();
            assert_eq!(got, want, "{topic}/{queue_id} tag {code}");
        }
        // The index entries' keys and store times: found in a window of exactly that time.
        for (_, want) in messages.iter().step_by(3) {
            let at = want.store_timestamp_ms;
            let found = store
                .query_by_key(topic, &want.unique, 4, at, at)
                .await
                .expect("query");
            assert_eq!(found.records.len(), 1, "{} indexed once", want.unique);
            assert_eq!(found.records[0].phys_offset, want.phys_offset);
        }
    }
}

#[test]
fn concurrent_appends_dispatch_exactly_what_they_placed() {
    for flush in [FlushPolicy::Async, FlushPolicy::Sync] {
        let root = scratch_dir_on_real_disk("store-concurrent-dispatch").expect("scratch");
        run(async {
            let (store, _) = store_support::open(&root, flush, Disk::real()).await;
            let sent = RefCell::new(Sent3::new());
            futures_util::future::join_all((0..TASKS).map(|task| append_task(&store, task, &sent)))
                .await;
            let sent = sent.into_inner();
            let total: usize = sent.values().map(Vec::len).sum();
            let end = store.commitlog().appended_offset();
            let segment = store_support::config(&root, flush)
                .commitlog
                .segment_size_bytes;
            assert!(end > segment, "{total} records ({end} B) span segments");
            check(&store, &sent).await;
            store.close().await.expect("close");
            let (store, _) = store_support::open(&root, flush, Disk::real()).await;
            check(&store, &sent).await;
            store.close().await.expect("close");
        });
        std::fs::remove_dir_all(&root).ok();
    }
}
