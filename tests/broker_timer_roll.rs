//! Black-box tests of rolled timers (docs/timer.md, "Roll"), with 1 and 2 shards: with a two-
//! slot roll window (`timerRollWindowSlot=2`), an 11 s timer is re-stored in the timer queue
//! every two seconds until it is due; across two SIGKILLs taken right after rolls it is
//! delivered exactly once, not early, with its body, its user properties, keys and tags, and
//! `TIMER_ROLL_TIMES` counting its rolls (the broker's roll-origin property, `REAL_TOPIC` and
//! `REAL_QID` removed). A timer shorter than the window is delivered without rolling.

mod common;

use std::time::{Duration, Instant};

use common::{block_on, create_and_wait, props, pull_records, send_v2, sent, timer_status, Broker};
use rmq::broker::timer::admin::TimerReport;
use rmq::broker::timer::roll::ROLL_FROM;
use rmq_net::codec::message::{keys, MessageRecord};
use rmq_net::conn::RemotingClient;

/// A roll every two 1 s slots; durable sends.
const ROLL_CONF: &str = "timerRollWindowSlot=2\nflushDiskType=SYNC_FLUSH";
/// The long timers' delay: five roll windows and a half.
const LONG_DELAY_MS: i64 = 11_000;
/// Longest wait for a due timer.
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(40);

async fn wait_for(client: &RemotingClient, topic: &str, queue_id: i32) -> Vec<MessageRecord> {
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    loop {
        let found = pull_records(client, topic, queue_id).await;
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}/{queue_id}: nothing within {DELIVERY_WAIT_MAX:?}"
        );
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the broker (since its start) rolled at least `count` copies.
async fn wait_rolled(client: &RemotingClient, count: u64) -> TimerReport {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = timer_status(client).await;
        let rolled: u64 = status.shards.iter().map(|s| s.rolled_since_start).sum();
        if rolled >= count {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{rolled} of {count} rolls: {status:?}"
        );
        compio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn long_timers_roll_and_survive_sigkills(shards: usize) {
    let mut broker = Broker::start(shards, ROLL_CONF);
    let topic = "TimerRoll";
    let short = "TimerNoRoll";
    let queues = 2;
    let sent_at = common::now_ms();
    let due = sent_at + LONG_DELAY_MS;
    block_on(async {
        let client = broker.client();
        create_and_wait(&client, topic, queues).await;
        create_and_wait(&client, short, 1).await;
        for queue_id in 0..queues {
            let body = format!("rolled body {queue_id}");
            let delay = LONG_DELAY_MS.to_string();
            let properties = props(&[
                (keys::TIMER_DELAY_MS, delay.as_str()),
                ("user", "u"),
                (keys::TAGS, "TT"),
                (keys::KEYS, "k1"),
            ]);
            let reply = send_v2(&client, topic, queue_id, body.as_bytes(), &properties).await;
            sent(&reply, body.as_bytes());
        }
        // Due at once: delivered and checkpointed (every second) well before the first kill,
        // which comes after the first rolls (two seconds), so it is not delivered again.
        let reply = send_v2(
            &client,
            short,
            0,
            b"short",
            &props(&[(keys::TIMER_DELAY_MS, "300")]),
        )
        .await;
        sent(&reply, b"short");
        let status = wait_rolled(&client, u64::try_from(queues).expect("small")).await;
        assert!(
            pull_records(&client, topic, 0).await.is_empty(),
            "{status:?}"
        );
    });
    // Killed right after the first rolls (likely before their checkpoint), then once more
    // after the restarted broker rolled again.
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        let status = wait_rolled(&client, 1).await;
        let repeated: u64 = status
            .shards
            .iter()
            .map(|s| s.rolls_deduplicated_since_start)
            .sum();
        // Usually the kill came before the rolls' checkpoint, so the restart found them again.
        eprintln!("shards={shards} rolls not repeated after the first SIGKILL: {repeated}");
    });
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        let found = wait_for(&client, short, 0).await;
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].properties.get(keys::TIMER_ROLL_TIMES),
            None,
            "a timer shorter than the window never rolls"
        );
        for queue_id in 0..queues {
            let found = wait_for(&client, topic, queue_id).await;
            let record = &found[0];
            assert_eq!(record.body, format!("rolled body {queue_id}").as_bytes());
            assert!(
                record.store_timestamp >= due,
                "delivered at {} before its time {due}",
                record.store_timestamp
            );
            assert_eq!(record.properties.get("user"), Some("u"));
            assert_eq!(record.properties.get(keys::TAGS), Some("TT"));
            assert_eq!(record.properties.get(keys::KEYS), Some("k1"));
            assert_eq!(record.properties.get(keys::REAL_TOPIC), None);
            assert_eq!(record.properties.get(keys::REAL_QID), None);
            assert_eq!(record.properties.get(ROLL_FROM), None);
            let rolls: u32 = record
                .properties
                .get(keys::TIMER_ROLL_TIMES)
                .expect("a rolled timer counts its rolls")
                .parse()
                .expect("a number");
            assert!(rolls >= 2, "rolled {rolls} times");
            let out: i64 = record
                .properties
                .get(keys::TIMER_OUT_MS)
                .expect("TIMER_OUT_MS")
                .parse()
                .expect("a number");
            assert!((out - due).abs() < 1_000, "TIMER_OUT_MS {out} vs {due}");
        }
        // Two more roll windows: a repeated roll would have delivered a second copy by now.
        compio::time::sleep(Duration::from_secs(4)).await;
        for queue_id in 0..queues {
            assert_eq!(
                pull_records(&client, topic, queue_id).await.len(),
                1,
                "{topic}/{queue_id}: delivered once"
            );
        }
        let status = timer_status(&client).await;
        assert_eq!(status.pending, 0, "{status:?}");
        let dropped: u64 = status.shards.iter().map(|s| s.dropped_since_start).sum();
        assert_eq!(dropped, 0, "{status:?}");
    });
}

#[test]
fn long_timers_roll_and_survive_sigkills_with_one_shard() {
    long_timers_roll_and_survive_sigkills(1);
}

#[test]
fn long_timers_roll_and_survive_sigkills_with_two_shards() {
    long_timers_roll_and_survive_sigkills(2);
}
