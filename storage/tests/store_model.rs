//! Model-based test: random appends (single and batch), pulls with filters, key queries,
//! checkpoints, clean reopens, crashes (drop without close) and power losses (unsynced writes
//! reverted) against a plain in-memory model. SYNC_FLUSH, so every acknowledged append must
//! survive every crash.

mod store_support;

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, CrashMode, Disk, FaultInjector};
use rmq_storage::store::{AppendMessage, BatchMessage, GetRequest, GetStatus, Store, TagFilter};
use store_support::run;

const QUEUES: [(&str, i32); 4] = [("A", 0), ("A", 1), ("B", 0), ("B", 3)];

/// What the model remembers of a message.
#[derive(Debug, Clone)]
struct Model {
    payload: Vec<u8>,
    tags_code: i64,
    unique: String,
}

fn message_payload(rng: &mut StdRng, serial: u64) -> Vec<u8> {
    let extra = rng.gen_range(0..300);
    format!("m{serial}:{}", "y".repeat(extra)).into_bytes()
}

async fn check_pull(store: &Store, model: &HashMap<(&str, i32), Vec<Model>>, rng: &mut StdRng) {
    let (topic, queue_id) = QUEUES[rng.gen_range(0..QUEUES.len())];
    let messages = model.get(&(topic, queue_id)).map_or(&[][..], Vec::as_slice);
    let max = messages.len() as u64;
    let offset = rng.gen_range(0..=max + 2);
    let codes = [rng.gen_range(0..4i64)];
    let filtered = rng.gen_bool(0.3);
    let filter = if filtered {
        TagFilter::Codes(&codes)
    } else {
        TagFilter::All
    };
    let max_count = rng.gen_range(1..40);
    let request = GetRequest {
        topic,
        queue_id,
        queue_offset: offset,
        max_count,
        max_bytes: 1 << 20,
        filter,
    };
    let result = store.get_messages(&request).await.expect("get");
    if max == 0 {
        assert!(matches!(
            result.status,
            GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue
        ));
        assert_eq!(result.next_begin_offset, 0);
        return;
    }
    assert_eq!((result.min_offset, result.max_offset), (0, max));
    if offset >= max {
        let status = if offset == max {
            GetStatus::OffsetOverflowOne
        } else {
            GetStatus::OffsetOverflowBadly
        };
        assert_eq!(
            (result.status, result.next_begin_offset),
            (status, max.min(offset))
        );
        return;
    }
    // Expected: the first `max_count` matching messages within the scan window.
    let window_end =
        max.min(offset + rmq_storage::store::GET_SCAN_ENTRIES_MAX.max(u64::from(max_count)));
    let matching: Vec<u64> = (offset..window_end)
        .filter(|&i| !filtered || messages[i as usize].tags_code == codes[0])
        .take(max_count as usize)
        .collect();
    let got: Vec<u64> = result
        .records
        .iter()
        .map(|record| record.queue_offset as u64)
        .collect();
    assert_eq!(got, matching, "{topic}/{queue_id} from {offset}");
    for record in &result.records {
        let expected = &messages[record.queue_offset as usize];
        assert_eq!(&record.payload[..], &expected.payload[..]);
    }
    if matching.is_empty() {
        assert_eq!(
            (result.status, result.next_begin_offset),
            (GetStatus::NoMatchedMessage, window_end)
        );
    } else {
        assert_eq!(result.status, GetStatus::Found);
        let last = *matching.last().expect("non-empty");
        let next = if matching.len() == max_count as usize {
            last + 1
        } else {
            window_end
        };
        assert_eq!(result.next_begin_offset, next);
    }
}

async fn check_query(store: &Store, model: &HashMap<(&str, i32), Vec<Model>>, rng: &mut StdRng) {
    let (topic, queue_id) = QUEUES[rng.gen_range(0..QUEUES.len())];
    let Some(messages) = model
        .get(&(topic, queue_id))
        .filter(|messages| !messages.is_empty())
    else {
        return;
    };
    let pick = &messages[rng.gen_range(0..messages.len())];
    let found = store
        .query_by_key(topic, &pick.unique, 5, 0, i64::MAX)
        .await
        .expect("query");
    assert_eq!(found.records.len(), 1, "{}", pick.unique);
    assert_eq!(&found.records[0].payload[..], &pick.payload[..]);
}

/// Appends one random message and records it in the model.
async fn append_one(
    store: &Store,
    model: &mut HashMap<(&'static str, i32), Vec<Model>>,
    rng: &mut StdRng,
    serial: &mut u64,
) {
    let (topic, queue_id) = QUEUES[rng.gen_range(0..QUEUES.len())];
    *serial += 1;
    let payload = message_payload(rng, *serial);
    let tags_code = rng.gen_range(0..4);
    let unique = format!("u{serial}");
    let keys = format!("shared {unique}");
    let message = AppendMessage {
        topic,
        queue_id,
        tags_code,
        keys: &keys,
        store_timestamp_ms: None,
        sys_flag: 0,
        payload: &payload,
    };
    let outcome = store.append(&message).await.expect("append");
    let queue = model.entry((topic, queue_id)).or_default();
    assert_eq!(outcome.queue_offset, queue.len() as u64);
    queue.push(Model {
        payload,
        tags_code,
        unique,
    });
}

#[test]
fn random_operations_match_the_model() {
    for seed in [3u64, 11, 2024] {
        let root = scratch_dir_on_real_disk("store-model").expect("scratch");
        run(async {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut model: HashMap<(&'static str, i32), Vec<Model>> = HashMap::new();
            let (mut store, _) = store_support::open(&root, FlushPolicy::Sync, Disk::real()).await;
            let mut serial = 0u64;
            for _step in 0..600 {
                match rng.gen_range(0..100) {
                    0..=54 => append_one(&store, &mut model, &mut rng, &mut serial).await,
                    55..=62 => {
                        let (topic, queue_id) = QUEUES[rng.gen_range(0..QUEUES.len())];
                        let count = rng.gen_range(1..6);
                        let mut items = Vec::new();
                        for _ in 0..count {
                            serial += 1;
                            let unique = format!("u{serial}");
                            let keys = format!("shared {unique}");
                            items.push((
                                message_payload(&mut rng, serial),
                                rng.gen_range(0..4),
                                unique,
                                keys,
                            ));
                        }
                        let batch: Vec<BatchMessage<'_>> = items
                            .iter()
                            .map(|(payload, tags_code, _, keys)| BatchMessage {
                                tags_code: *tags_code,
                                keys,
                                sys_flag: 0,
                                payload,
                            })
                            .collect();
                        let outcome = store
                            .append_batch(topic, queue_id, &batch, None)
                            .await
                            .expect("batch");
                        let queue = model.entry((topic, queue_id)).or_default();
                        assert_eq!(outcome.first_queue_offset, queue.len() as u64);
                        for (payload, tags_code, unique, _) in items {
                            queue.push(Model {
                                payload,
                                tags_code,
                                unique,
                            });
                        }
                    }
                    63..=80 => check_pull(&store, &model, &mut rng).await,
                    81..=89 => check_query(&store, &model, &mut rng).await,
                    90..=93 => store.checkpoint().await.expect("checkpoint"),
                    94..=95 => {
                        store.close().await.expect("close");
                        store = store_support::open(&root, FlushPolicy::Sync, Disk::real())
                            .await
                            .0;
                    }
                    96..=97 => {
                        drop(store); // crash
                        store = store_support::open(&root, FlushPolicy::Sync, Disk::real())
                            .await
                            .0;
                    }
                    _ => {
                        // Power loss: reopen on an injector, write a little, lose unsynced data.
                        drop(store);
                        let faults = FaultInjector::new();
                        faults.track_unsynced(true);
                        let disk = Disk::with_faults(faults.clone());
                        let (faulty, _) = store_support::open(&root, FlushPolicy::Sync, disk).await;
                        for _ in 0..rng.gen_range(1..20) {
                            append_one(&faulty, &mut model, &mut rng, &mut serial).await;
                        }
                        if rng.gen_bool(0.5) {
                            faulty.checkpoint().await.expect("checkpoint");
                            append_one(&faulty, &mut model, &mut rng, &mut serial).await;
                        }
                        faulty.abandon().await;
                        faults
                            .crash(CrashMode::Torn { seed: rng.gen() })
                            .expect("crash");
                        store = store_support::open(&root, FlushPolicy::Sync, Disk::real())
                            .await
                            .0;
                    }
                }
            }
            for (&(topic, queue_id), messages) in &model {
                assert_eq!(
                    store.offsets(topic, queue_id),
                    Some((0, messages.len() as u64))
                );
            }
            for _ in 0..50 {
                check_pull(&store, &model, &mut rng).await;
            }
        });
    }
}
