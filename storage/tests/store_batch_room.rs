//! A batch larger than the CommitLog's unwritten-bytes budget (and than a segment's room):
//! `append_batch` places part of it, waits for room, and goes on. The batch's queue offsets
//! stay consecutive, a concurrent append to the same queue lands before or after it (never
//! inside), and every record reads back with its own payload.

mod store_support;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{BatchMessage, GetRequest, Store, TagFilter};
use store_support::{append, open, payload, run};

/// 3 KiB payloads: 60 of them are 180 KiB, nearly three times the 64 KiB budget of
/// `store_support::config` and most of a 256 KiB segment.
const BATCH_LEN: u64 = 60;
const PAYLOAD_BYTES: usize = 3 * 1024;

fn batch_payload(i: u64) -> Vec<u8> {
    let mut out = format!("batch/{i}:").into_bytes();
    out.resize(PAYLOAD_BYTES, u8::try_from(i % 251).expect("small"));
    out
}

async fn read_all(store: &Store, count: u64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    while (out.len() as u64) < count {
        let request = GetRequest {
            topic: "T",
            queue_id: 0,
            queue_offset: out.len() as u64,
            max_count: 32,
            max_bytes: 1 << 20,
            filter: TagFilter::All,
        };
        let got = store.get_messages(&request).await.expect("get");
        assert!(
            !got.records.is_empty(),
            "records up to {count} are readable"
        );
        out.extend(
            got.records
                .iter()
                .map(|record| (record.queue_offset, record.payload.to_vec())),
        );
    }
    out
}

#[test]
fn a_batch_waiting_for_room_keeps_its_offsets_consecutive() {
    for flush in [FlushPolicy::Async, FlushPolicy::Sync] {
        let root = scratch_dir_on_real_disk("store-batch-room").expect("scratch");
        run(async {
            let (store, _) = open(&root, flush, Disk::real()).await;
            for i in 0..3 {
                append(&store, "T", 0, i).await;
            }
            let payloads: Vec<Vec<u8>> = (0..BATCH_LEN).map(batch_payload).collect();
            let keys: Vec<String> = (0..BATCH_LEN).map(|i| format!("bk{i}")).collect();
            let batch: Vec<BatchMessage<'_>> = payloads
                .iter()
                .zip(&keys)
                .map(|(payload, keys)| BatchMessage {
                    tags_code: 7,
                    keys,
                    sys_flag: 0,
                    payload,
                })
                .collect();
            // A single append to the same queue races the batch; it waits for the append lock.
            let (outcome, single) = futures_util::join!(
                store.append_batch("T", 0, &batch, Some(9_000)),
                append(&store, "T", 0, 3)
            );
            let outcome = outcome.expect("batch");
            assert_eq!(outcome.records.len() as u64, BATCH_LEN);
            let first = outcome.first_queue_offset;
            assert!(
                single.queue_offset < first || single.queue_offset >= first + BATCH_LEN,
                "the racing append is outside the batch's offsets"
            );
            for pair in outcome.records.windows(2) {
                assert!(
                    pair[0].0 + u64::from(pair[0].1) <= pair[1].0,
                    "records in log order"
                );
            }
            let all = read_all(&store, 4 + BATCH_LEN).await;
            for (index, (queue_offset, stored)) in all.iter().enumerate() {
                assert_eq!(*queue_offset, i64::try_from(index).expect("small"));
                let offset = index as u64;
                let expected = if (first..first + BATCH_LEN).contains(&offset) {
                    batch_payload(offset - first)
                } else if offset == single.queue_offset {
                    payload("T", 0, 3)
                } else {
                    payload("T", 0, offset)
                };
                assert_eq!(stored, &expected, "record at queue offset {offset}");
            }
            store.close().await.expect("close");
        });
    }
}
