//! Black-box tests of timer messages (docs/timer.md), each with 1 and 2 shards: malformed,
//! too-long, batch and half timers are refused with MESSAGE_ILLEGAL; `TIMER_DELAY_MS`,
//! `TIMER_DELAY_SEC`, `TIMER_DELIVER_MS` and `__STARTDELIVERTIME` are delivered to their real
//! queue, never before their time, with their properties and `TIMER_OUT_MS`; a pending timer
//! survives a SIGKILL and is delivered after the restart, a delivered one is not delivered
//! again; a 30-day timer is accepted, survives a restart and shows in TIMER_STATUS and in
//! `rmq admin timer-status`. The scale scenario (many timers over a range with a SIGKILL in
//! the middle) runs in a CI size here and in the size behind `#[ignore]`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{
    assert_code, block_on, call, create_and_wait, props, pull_records, send_header, send_request,
    send_v2, sent, timer_status, Broker,
};
use rmq::broker::timer::admin::TimerReport;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::message::{encode_batch, keys, BatchEntry, MessageRecord, Properties};
use rmq_net::conn::RemotingClient;

/// 40 days of maximum delay (the "at least 40 days"), durable sends.
const EXTRA_CONF: &str = "timerMaxDelaySec=3456000\nflushDiskType=SYNC_FLUSH";
/// Longest wait for a due timer in these tests.
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Waits until `topic`/`queue_id` holds at least `count` records; returns them.
async fn wait_for(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
    count: usize,
) -> Vec<MessageRecord> {
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    loop {
        let found = pull_records(client, topic, queue_id).await;
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}/{queue_id} holds {} of {count} within {DELIVERY_WAIT_MAX:?}",
            found.len()
        );
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refused(client: &RemotingClient, topic: &str, properties: &Properties, needle: &str) {
    let reply = send_v2(client, topic, 0, b"refused", properties).await;
    assert_code(&reply, ResponseCode::MessageIllegal);
    let remark = reply.remark.clone().unwrap_or_default();
    assert!(
        remark.contains(needle),
        "remark {remark:?} lacks {needle:?}"
    );
}

async fn rejections(client: &RemotingClient, topic: &str) {
    let now = common::now_ms();
    for name in [
        keys::TIMER_DELIVER_MS,
        keys::TIMER_DELAY_SEC,
        keys::TIMER_DELAY_MS,
        keys::START_DELIVER_TIME,
    ] {
        refused(client, topic, &props(&[(name, "tomorrow")]), name).await;
    }
    let too_far = (now + 41 * DAY_MS).to_string();
    let beyond = props(&[(keys::TIMER_DELIVER_MS, too_far.as_str())]);
    refused(client, topic, &beyond, "max delay").await;
    refused(
        client,
        topic,
        &props(&[(keys::TIMER_DELAY_SEC, "3456001")]),
        "max delay",
    )
    .await;
    // A batch whose batch-level properties, or one of whose entries, carry a timer.
    let entry = BatchEntry {
        flag: 0,
        properties: props(&[(keys::TIMER_DELAY_SEC, "5")]),
        body: Bytes::from_static(b"b"),
    };
    let plain = BatchEntry {
        properties: Properties::new(),
        ..entry.clone()
    };
    for (batch_properties, entries) in [
        (props(&[(keys::TIMER_DELAY_SEC, "5")]), vec![plain.clone()]),
        (Properties::new(), vec![plain, entry]),
    ] {
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body).expect("batch");
        let mut header = send_header(topic, 0, &batch_properties);
        header.batch = Some(true);
        let reply = call(
            client,
            send_request(RequestCode::SendBatchMessage, &header, body.freeze()),
        )
        .await;
        assert_code(&reply, ResponseCode::MessageIllegal);
        assert!(reply.remark.unwrap_or_default().contains("batch"));
    }
    let half = props(&[(keys::TRAN_MSG, "true"), (keys::TIMER_DELAY_SEC, "5")]);
    let mut header = send_header(topic, 0, &half);
    header.sys_flag = rmq_net::codec::message::sysflag::TRANSACTION_PREPARED_TYPE;
    let reply = call(
        client,
        send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::from_static(b"h"),
        ),
    )
    .await;
    assert_code(&reply, ResponseCode::MessageIllegal);
}

/// Sends one timer per property form to queues 0..4 and checks each arrives, not early, with
/// its properties; then checks a delivered timer is not delivered again after a SIGKILL.
fn timers_are_delivered(shards: usize) {
    let mut broker = Broker::start(shards, EXTRA_CONF);
    let topic = "TimerTopic";
    block_on(async {
        let client = broker.client();
        create_and_wait(&client, topic, 4).await;
        rejections(&client, topic).await;
        let now = common::now_ms();
        let deliver_at = (now + 2_000).to_string();
        let start_at = (now + 1_500).to_string();
        let forms = [
            (keys::TIMER_DELAY_MS, "1200".to_owned(), now + 1_200),
            (keys::TIMER_DELAY_SEC, "2".to_owned(), now + 2_000),
            (keys::TIMER_DELIVER_MS, deliver_at, now + 2_000),
            (keys::START_DELIVER_TIME, start_at, now + 1_500),
        ];
        for (queue_id, (name, value, _)) in (0..).zip(&forms) {
            let properties = props(&[(name, value.as_str()), ("user", "u"), (keys::TAGS, "TT")]);
            let reply = send_v2(&client, topic, queue_id, b"timer body", &properties).await;
            let sent = sent(&reply, b"timer body");
            assert_eq!(
                sent.header.queue_id, queue_id,
                "the reply names the real queue"
            );
        }
        for queue_id in 0..4 {
            assert!(
                pull_records(&client, topic, queue_id).await.is_empty(),
                "not yet due"
            );
        }
        for (queue_id, (name, _, due)) in (0..).zip(&forms) {
            let found = wait_for(&client, topic, queue_id, 1).await;
            assert_eq!(found.len(), 1, "{name}: one delivery");
            let record = &found[0];
            assert_eq!(&record.body[..], b"timer body");
            assert!(
                record.store_timestamp >= *due,
                "{name}: stored at {} before its time {due}",
                record.store_timestamp
            );
            assert_eq!(record.properties.get("user"), Some("u"));
            assert_eq!(record.properties.get(keys::TAGS), Some("TT"));
            assert_eq!(record.properties.get(keys::REAL_TOPIC), None);
            let out: i64 = record
                .properties
                .get(keys::TIMER_OUT_MS)
                .expect("TIMER_OUT_MS")
                .parse()
                .expect("a number");
            assert!(out >= *due);
            let deliver: i64 = record
                .properties
                .get(keys::TIMER_DELIVER_MS)
                .expect("the absolute due time is recorded")
                .parse()
                .expect("a number");
            assert!((deliver - due).abs() < 1_000, "{name}: {deliver} vs {due}");
        }
        let status = timer_status(&client).await;
        assert_eq!(status.pending, 0, "{status:?}");
        assert_eq!(status.shards.len(), shards);
        let delivered: u64 = status.shards.iter().map(|s| s.delivered_since_start).sum();
        assert_eq!(delivered, 4);
    });
    // The checkpoint (every second) passed the deliveries: a SIGKILL does not repeat them.
    std::thread::sleep(Duration::from_millis(2_500));
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        compio::time::sleep(Duration::from_secs(3)).await;
        for queue_id in 0..4 {
            assert_eq!(
                pull_records(&client, topic, queue_id).await.len(),
                1,
                "no re-delivery"
            );
        }
    });
}

#[test]
fn timers_are_delivered_with_one_shard() {
    timers_are_delivered(1);
}

#[test]
fn timers_are_delivered_with_two_shards() {
    timers_are_delivered(2);
}

/// A pending 3 s timer survives a SIGKILL right after its ack; a 30-day timer is accepted,
/// survives the restart and shows in TIMER_STATUS and `rmq admin timer-status`.
fn timers_survive_sigkill(shards: usize) {
    let mut broker = Broker::start(shards, EXTRA_CONF);
    let topic = "TimerKill";
    let long = "TimerLong";
    let now = common::now_ms();
    let thirty_days = now + 30 * DAY_MS;
    block_on(async {
        let client = broker.client();
        create_and_wait(&client, topic, 2).await;
        create_and_wait(&client, long, 1).await;
        let far = thirty_days.to_string();
        let reply = send_v2(
            &client,
            long,
            0,
            b"later",
            &props(&[(keys::TIMER_DELIVER_MS, &far)]),
        )
        .await;
        sent(&reply, b"later");
        for queue_id in 0..2 {
            let reply = send_v2(
                &client,
                topic,
                queue_id,
                b"soon",
                &props(&[(keys::TIMER_DELAY_SEC, "3")]),
            )
            .await;
            sent(&reply, b"soon");
        }
    });
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        for queue_id in 0..2 {
            let found = wait_for(&client, topic, queue_id, 1).await;
            assert_eq!(found.len(), 1);
            assert!(found[0].store_timestamp >= now + 3_000);
        }
        assert!(pull_records(&client, long, 0).await.is_empty());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let status = timer_status(&client).await;
            if status.pending == 1 || Instant::now() > deadline {
                break status;
            }
            compio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status.pending, 1, "{status:?}");
        assert_eq!(
            status.pending_by_topic,
            BTreeMap::from([(long.to_owned(), 1)])
        );
        // Further than the roll window (half of the default 72 h retention): its next wheel
        // slot is its first roll, 36 h after it was stored (docs/timer.md, "Roll").
        let due = status.next_due_ms.expect("a next due time");
        let first_roll = now + 36 * 3_600_000;
        assert!(
            due <= thirty_days && (due - first_roll).abs() < 3_600_000,
            "{due} vs the roll at {first_roll}"
        );
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args([
            "admin",
            "timer-status",
            "-b",
            &broker.addr.to_string(),
            "--json",
        ])
        .output()
        .expect("run rmq admin");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: TimerReport = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report.pending_by_topic.get(long), Some(&1));
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(["admin", "timer-status", "-b", &broker.addr.to_string()])
        .output()
        .expect("run rmq admin");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(long) && text.contains("pending=1"), "{text}");
}

#[test]
fn timers_survive_sigkill_with_one_shard() {
    timers_survive_sigkill(1);
}

#[test]
fn timers_survive_sigkill_with_two_shards() {
    timers_survive_sigkill(2);
}

/// Senders working in parallel in the scale and burst scenarios (each its own connection).
const SENDERS: usize = 16;

/// Sends `count` messages to `topic` (queues round-robin) from [`SENDERS`] connections in
/// parallel; message `i` carries the properties `properties(i)`.
async fn send_parallel(
    broker: &Broker,
    topic: &str,
    queues: i32,
    count: usize,
    properties: impl Fn(usize) -> Properties + Clone,
) {
    let workers = (0..SENDERS).map(|worker| {
        let client = broker.client();
        let properties = properties.clone();
        async move {
            for i in (worker..count).step_by(SENDERS) {
                let queue_id = i32::try_from(i % queues as usize).expect("small");
                let reply = send_v2(&client, topic, queue_id, b"t", &properties(i)).await;
                sent(&reply, b"t");
            }
        }
    });
    futures_util::future::join_all(workers).await;
}

/// What the scale scenario measured.
#[derive(Debug)]
struct ScaleOutcome {
    sent: usize,
    lost: usize,
    duplicates: usize,
    lateness_ms: Vec<i64>,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// `count` timers spread evenly over `range`, a SIGKILL at half the range, then every timer
/// must arrive (none lost), duplicates counted; lateness = store time - due time.
fn scale_scenario(shards: usize, count: usize, range: Duration, conf: &str) -> ScaleOutcome {
    let mut broker = Broker::start(shards, conf);
    let topic = "TimerScale";
    let queues = 4;
    let range_ms = i64::try_from(range.as_millis()).expect("small");
    // Due times start after the sends are done (sending is not part of the range).
    let send_estimate_ms = i64::try_from(count).expect("small") * 2 + 5_000;
    let base = common::now_ms() + send_estimate_ms;
    let started = Instant::now();
    block_on(async {
        let client = broker.client();
        create_and_wait(&client, topic, queues).await;
        send_parallel(&broker, topic, queues, count, |i| {
            let due = base
                + range_ms * i64::try_from(i).expect("small")
                    / i64::try_from(count).expect("small");
            props(&[
                (keys::TIMER_DELIVER_MS, &due.to_string()),
                ("id", &i.to_string()),
            ])
        })
        .await;
    });
    println!(
        "scale: {count} timers sent in {:.1?} ({:.0}/s from {SENDERS} connections)",
        started.elapsed(),
        count as f64 / started.elapsed().as_secs_f64()
    );
    let sent_done = common::now_ms();
    assert!(
        sent_done < base,
        "sending took longer than the estimate; due times already passed"
    );
    let kill_at = base + range_ms / 2;
    std::thread::sleep(Duration::from_millis(
        u64::try_from(kill_at - common::now_ms()).unwrap_or(0),
    ));
    broker.kill_and_restart();
    let end = base + range_ms;
    std::thread::sleep(Duration::from_millis(
        u64::try_from(end - common::now_ms()).unwrap_or(0) + 5_000,
    ));
    block_on(async {
        let client = broker.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen: BTreeMap<usize, u32> = BTreeMap::new();
        let mut lateness_ms = Vec::new();
        loop {
            seen.clear();
            lateness_ms.clear();
            for queue_id in 0..queues {
                for record in pull_records(&client, topic, queue_id).await {
                    let id: usize = record.properties.get("id").expect("id").parse().expect("n");
                    let due: i64 = record
                        .properties
                        .get(keys::TIMER_DELIVER_MS)
                        .expect("due")
                        .parse()
                        .expect("n");
                    let count = seen.entry(id).or_default();
                    *count += 1;
                    if *count == 1 {
                        lateness_ms.push(record.store_timestamp - due);
                    }
                }
            }
            if seen.len() == count || Instant::now() > deadline {
                break;
            }
            compio::time::sleep(Duration::from_millis(500)).await;
        }
        let duplicates = seen.values().map(|n| (*n - 1) as usize).sum();
        lateness_ms.sort_unstable();
        ScaleOutcome {
            sent: count,
            lost: count - seen.len(),
            duplicates,
            lateness_ms,
        }
    })
}

fn report(name: &str, outcome: &ScaleOutcome) {
    let l = &outcome.lateness_ms;
    println!(
        "{name}: sent={} lost={} duplicates={} lateness_ms p50={} p99={} max={} min={}",
        outcome.sent,
        outcome.lost,
        outcome.duplicates,
        percentile(l, 0.5),
        percentile(l, 0.99),
        l[l.len() - 1],
        l[0]
    );
    assert_eq!(outcome.lost, 0, "no timer lost");
    assert!(l[0] >= 0, "no timer delivered before its time");
    // At-least-once: only the deliveries since the last checkpoint (1 s) repeat.
    assert!(
        outcome.duplicates <= outcome.sent / 10,
        "duplicates bounded: {}",
        outcome.duplicates
    );
}

/// CI size: 2,000 timers over 20 s, SIGKILL at 10 s, 2 shards.
#[test]
fn many_timers_survive_sigkill_ci_size() {
    let outcome = scale_scenario(2, 2_000, Duration::from_secs(20), EXTRA_CONF);
    report("ci-size", &outcome);
}

/// The size: 100,000 timers over 10 minutes, SIGKILL at 5 minutes (run by hand:
/// `cargo test --release --test broker_timer -- --ignored --nocapture`).
#[test]
#[ignore = "10+ minutes; run by hand"]
fn many_timers_survive_sigkill_full_size() {
    let outcome = scale_scenario(2, 100_000, Duration::from_secs(600), EXTRA_CONF);
    report("full-size", &outcome);
}

/// Throughput, run by hand (`TIMER_BURST` timers, default 20,000, 2 shards): the rate one
/// 16 connections send plain messages and timer messages (side by side, same broker), then
/// the delivery rate of a burst of timers all due at the same instant (count / time from the
/// due instant to the last delivery) and its lateness.
#[test]
#[ignore = "a benchmark; run by hand with --nocapture"]
fn timer_burst_throughput() {
    let count: usize = std::env::var("TIMER_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let broker = Broker::start(2, "timerMaxDelaySec=3456000\nflushDiskType=ASYNC_FLUSH");
    let topic = "TimerBurst";
    let plain = "PlainBurst";
    let queues = 4;
    block_on(async {
        let client = broker.client();
        create_and_wait(&client, topic, queues).await;
        create_and_wait(&client, plain, queues).await;
        let started = Instant::now();
        send_parallel(&broker, plain, queues, count, |_| Properties::new()).await;
        let plain_rate = count as f64 / started.elapsed().as_secs_f64();
        // Due after every send is done: 3 ms per message of slack.
        let due = common::now_ms() + i64::try_from(count).expect("small") * 3 + 2_000;
        let due_text = due.to_string();
        let started = Instant::now();
        send_parallel(&broker, topic, queues, count, |_| {
            props(&[(keys::TIMER_DELIVER_MS, due_text.as_str())])
        })
        .await;
        let timer_rate = count as f64 / started.elapsed().as_secs_f64();
        assert!(common::now_ms() < due, "sending outlasted the slack");
        let status = timer_status(&client).await;
        println!(
            "burst: pending before due={} nextDueMs={:?}",
            status.pending, status.next_due_ms
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut stamps = Vec::new();
        loop {
            stamps.clear();
            for queue_id in 0..queues {
                stamps.extend(
                    pull_records(&client, topic, queue_id)
                        .await
                        .iter()
                        .map(|r| r.store_timestamp),
                );
            }
            if stamps.len() >= count || Instant::now() > deadline {
                break;
            }
            compio::time::sleep(Duration::from_millis(500)).await;
        }
        stamps.sort_unstable();
        let last = stamps[stamps.len() - 1];
        let spread_ms = (last - due).max(1);
        println!(
            "burst: count={count} plain_send_rate_per_s={plain_rate:.0} timer_send_rate_per_s={timer_rate:.0} delivered={} delivery_rate_per_s={:.0} first_late_ms={} last_late_ms={}",
            stamps.len(),
            stamps.len() as f64 * 1_000.0 / spread_ms as f64,
            stamps[0] - due,
            last - due
        );
        assert_eq!(stamps.len(), count, "every timer delivered");
        assert!(stamps[0] >= due, "none early");
    });
}
