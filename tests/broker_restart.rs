//! Black-box crash test, with 1 and 2 shards: under SYNC_FLUSH every acknowledged message
//! survives a SIGKILL byte for byte (body, queue offset, physical offset, UNIQ_KEY), consumer
//! offsets persisted before the kill are kept, and the restarted broker continues the queues
//! where they ended (architecture.md "Storage", PROTOCOL.md §4.1, §4.5).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    assert_code, block_on, call, create_topic, offset_of, properties, pull_all,
    query_offset_request, send_v2, sent, shard_of_offset, update_offset_request, Broker, Sent,
};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::message::{decode_all, msg_id, CrcCheck};
use rmq_net::{ExtFields, RemotingCommand};

/// Messages sent before the crash.
const MESSAGES: usize = 200;
/// Queues of the test topic.
const QUEUES: i32 = 4;
/// Longest wait for the broker's periodic consumer-offset persist (every 5 s).
const OFFSET_PERSIST_WAIT: Duration = Duration::from_secs(10);
const TOPIC: &str = "Durable";
const GROUP: &str = "DurableGroup";

fn body_of(index: usize) -> Bytes {
    let mut body = format!("durable-{index}-").into_bytes();
    body.extend((0..(index * 37) % 700).map(|i| (i % 251) as u8));
    Bytes::from(body)
}

fn committed_offset(queue_id: i32) -> i64 {
    7 + i64::from(queue_id)
}

/// Waits until every shard's consumer-offset file mentions `GROUP`.
fn await_offsets_persisted(broker: &Broker) {
    let deadline = Instant::now() + OFFSET_PERSIST_WAIT;
    let files: Vec<_> = (0..broker.shards)
        .map(|shard| {
            broker
                .store_dir()
                .join("config")
                .join(format!("consumerOffset-{shard}.json"))
        })
        .collect();
    loop {
        let persisted = files
            .iter()
            .all(|f| std::fs::read_to_string(f).is_ok_and(|text| text.contains(GROUP)));
        if persisted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumer offsets not persisted in {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends messages `range` (queue = index mod [`QUEUES`]) one by one; every one must be
/// acknowledged with SUCCESS.
async fn send_range(
    client: &rmq_net::conn::RemotingClient,
    range: std::ops::Range<usize>,
) -> Vec<(i32, Sent)> {
    let mut acknowledged = Vec::with_capacity(range.len());
    for index in range {
        let queue_id = (index % QUEUES as usize) as i32;
        let body = body_of(index);
        let props = properties(Some("TagA"), Some(&format!("key-{index}")), None);
        let reply = send_v2(client, TOPIC, queue_id, &body, &props).await;
        acknowledged.push((queue_id, sent(&reply, &body)));
    }
    acknowledged
}

fn sync_flush_restart(shards: usize) {
    let mut broker = Broker::start(shards, "flushDiskType=SYNC_FLUSH");
    let old_addr = broker.addr;
    // Phase 1: half the messages, commit offsets, wait until the offsets are on disk.
    let mut acknowledged: Vec<(i32, Sent)> = block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, QUEUES, 6).await;
        let acknowledged = send_range(&client, 0..MESSAGES / 2).await;
        for queue_id in 0..QUEUES {
            let reply = call(
                &client,
                update_offset_request(GROUP, TOPIC, queue_id, committed_offset(queue_id)),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
        acknowledged
    });
    await_offsets_persisted(&broker);
    // Phase 2: the other half, then SIGKILL right after the last acknowledgement.
    acknowledged.extend(block_on(async {
        send_range(&broker.client(), MESSAGES / 2..MESSAGES).await
    }));
    let shards_used: std::collections::BTreeSet<i64> = acknowledged
        .iter()
        .map(|(_, s)| shard_of_offset(msg_id::decode(&s.header.msg_id).expect("msgId").1))
        .collect();
    assert_eq!(shards_used.len(), shards, "messages stored on every shard");

    broker.kill_and_restart();

    block_on(async {
        let client = broker.client();
        for queue_id in 0..QUEUES {
            let want: Vec<&Sent> = acknowledged
                .iter()
                .filter(|(q, _)| *q == queue_id)
                .map(|(_, s)| s)
                .collect();
            let records = pull_all(&client, TOPIC, queue_id).await;
            assert_eq!(
                records.len(),
                want.len(),
                "queue {queue_id}: every acknowledged message"
            );
            for (record, sent) in records.iter().zip(&want) {
                let (host, physical) = msg_id::decode(&sent.header.msg_id).expect("msgId");
                assert_eq!(host, old_addr);
                assert_eq!(record.body, sent.body, "body byte for byte");
                assert_eq!(record.queue_offset, sent.header.queue_offset);
                assert_eq!(record.physical_offset, physical);
                assert_eq!(record.queue_id, queue_id);
                assert_eq!(record.topic, TOPIC);
                assert_eq!(record.store_host, old_addr, "stored before the restart");
                assert_eq!(
                    record.properties.uniq_key(),
                    sent.header.transaction_id.as_deref()
                );
            }
            let reply = call(
                &client,
                query_offset_request(GROUP, TOPIC, queue_id, Some(false)),
            )
            .await;
            assert_eq!(
                offset_of(&reply),
                committed_offset(queue_id),
                "committed offset kept"
            );
        }
        // Physical offsets still resolve.
        for (_, sent) in acknowledged.iter().step_by(37) {
            let (_, physical) = msg_id::decode(&sent.header.msg_id).expect("msgId");
            let mut ext = ExtFields::new();
            ext.insert("offset", physical.to_string());
            let reply = call(
                &client,
                RemotingCommand::request(RequestCode::ViewMessageById, ext),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let records = decode_all(&reply.body, CrcCheck::Verify).expect("view body");
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].body, sent.body);
        }
        // The queues continue where they ended, after every old record of the shard.
        for queue_id in 0..QUEUES {
            let reply = send_v2(
                &client,
                TOPIC,
                queue_id,
                b"after",
                &properties(None, None, None),
            )
            .await;
            let after = sent(&reply, b"after");
            let count = acknowledged.iter().filter(|(q, _)| *q == queue_id).count();
            assert_eq!(after.header.queue_offset, count as i64);
            let (host, physical) = msg_id::decode(&after.header.msg_id).expect("msgId");
            assert_eq!(host, broker.addr);
            let shard = shard_of_offset(physical);
            let last_before = acknowledged
                .iter()
                .map(|(_, s)| msg_id::decode(&s.header.msg_id).expect("msgId").1)
                .filter(|p| shard_of_offset(*p) == shard)
                .max()
                .expect("the shard stored messages before");
            assert!(
                physical > last_before,
                "appended after the recovered log end"
            );
        }
    });
}

#[test]
fn sync_flush_restart_1_shard() {
    sync_flush_restart(1);
}

#[test]
fn sync_flush_restart_2_shards() {
    sync_flush_restart(2);
}
