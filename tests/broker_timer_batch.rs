//! Black-box test of batched timer delivery (src/broker/timer/mod.rs `deliver_batch`), with 1
//! and 2 shards: two slots whose timer-queue copies interleave (every other offset: reads in
//! flight together) and then run in long consecutive blocks (ranged reads, longer than a
//! delivery window and a chain batch) are each delivered exactly once, to their real queue,
//! never before their due time, with their bodies and `TIMER_DELIVER_MS`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{assert_code, block_on, create_and_wait, pull_records, send_v2, timer_status, Broker};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::{keys, Properties};

const TOPIC: &str = "TimerBatch";
const QUEUES: i32 = 2;
/// Timers of slots A and B alternating, then a block of A, then a block of B.
const INTERLEAVED: usize = 200;
const BLOCK_A: usize = 300;
const BLOCK_B: usize = 100;
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(60);

fn interleaved_and_blocked_slots_deliver_exactly_once(shards: usize) {
    let broker = Broker::start(shards, "flushDiskType=ASYNC_FLUSH");
    block_on(async {
        let client = broker.client();
        create_and_wait(&client, TOPIC, QUEUES).await;
        let total = INTERLEAVED + BLOCK_A + BLOCK_B;
        // Slots A and B 2 s apart, late enough for every send (debug build, one connection).
        let due_a = common::now_ms() + 8_000;
        let due_b = due_a + 2_000;
        let mut expected: BTreeMap<String, (i64, i32)> = BTreeMap::new();
        for i in 0..total {
            let slot_a = if i < INTERLEAVED {
                i % 2 == 0
            } else {
                i < INTERLEAVED + BLOCK_A
            };
            let due = if slot_a { due_a } else { due_b };
            let queue_id = i32::try_from(i).expect("small") % QUEUES;
            let body = format!("{}-{i}", if slot_a { 'A' } else { 'B' });
            let mut properties = Properties::new();
            properties
                .insert(keys::TIMER_DELIVER_MS, due.to_string())
                .expect("valid property");
            let reply = send_v2(&client, TOPIC, queue_id, body.as_bytes(), &properties).await;
            assert_code(&reply, ResponseCode::Success);
            expected.insert(body, (due, queue_id));
        }
        assert!(common::now_ms() < due_a, "sending outlasted the slack");
        let deadline = Instant::now() + DELIVERY_WAIT_MAX;
        loop {
            let status = timer_status(&client).await;
            if status.pending == 0 && status.shards.iter().all(|s| s.unenqueued == 0) {
                let delivered: u64 = status.shards.iter().map(|s| s.delivered_since_start).sum();
                let dropped: u64 = status.shards.iter().map(|s| s.dropped_since_start).sum();
                assert_eq!(delivered, total as u64, "every timer delivered once");
                assert_eq!(dropped, 0, "none dropped");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} timers still pending after {DELIVERY_WAIT_MAX:?}",
                status.pending
            );
            compio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for queue_id in 0..QUEUES {
            for record in pull_records(&client, TOPIC, queue_id).await {
                let body = String::from_utf8(record.body.to_vec()).expect("utf-8 body");
                let &(due, queue) = expected.get(&body).expect("a body that was sent");
                assert_eq!(queue, queue_id, "{body} delivered to its real queue");
                assert!(record.store_timestamp >= due, "{body} delivered early");
                let due_text = due.to_string();
                assert_eq!(
                    record.properties.get(keys::TIMER_DELIVER_MS),
                    Some(due_text.as_str()),
                    "{body}"
                );
                assert_eq!(record.properties.get(keys::REAL_TOPIC), None, "{body}");
                *seen.entry(body).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), total, "every body delivered");
        assert!(
            seen.values().all(|n| *n == 1),
            "a body delivered twice: {:?}",
            seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
        );
    });
}

#[test]
fn interleaved_and_blocked_slots_deliver_exactly_once_with_one_shard() {
    interleaved_and_blocked_slots_deliver_exactly_once(1);
}

#[test]
fn interleaved_and_blocked_slots_deliver_exactly_once_with_two_shards() {
    interleaved_and_blocked_slots_deliver_exactly_once(2);
}
