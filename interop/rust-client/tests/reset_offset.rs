//! Back-tracking with a rocketmq-client-rust push consumer against `rmq standalone`, with 1
//! and 2 shards: a consumer that consumed (and committed) everything gets its group reset by
//! `rmq admin reset-offset-by-time` to a time between two batches; the broker tells it with
//! RESET_CONSUMER_CLIENT_OFFSET and it re-receives exactly the messages stored after that
//! time, each once, and none stored before. The admin output shows each queue's old offset
//! (everything consumed) and new offset (the first late message of the queue); then
//! `rmq admin consumer-status` (INVOKE_BROKER_TO_GET_CONSUMER_STATUS, answered by the client's
//! GET_CONSUMER_STATUS_FROM_CLIENT) shows the consumer's own offsets at the end again.

#![recursion_limit = "512"]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use rmq_interop_rust_client::{admin, committed_offset, max_offset};

/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(90);
/// Queues of an auto-created topic (`defaultTopicQueueNums`).
const QUEUES: i32 = 4;
const EARLY: usize = 8;
const LATE: usize = 6;
/// How long the reset consumer may take to re-receive the late messages.
const RECONSUME_TIMEOUT: Duration = Duration::from_secs(30);

/// What the scenario observed.
struct Run {
    early: Vec<Sent>,
    late: Vec<Sent>,
    admin_output: String,
    after_reset: Vec<Received>,
    status_output: String,
}

async fn committed_everything(broker: std::net::SocketAddr, group: &str, topic: &str) -> bool {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        (0..QUEUES).all(|q| {
            let max = max_offset(broker, &topic, q).unwrap_or(-1);
            committed_offset(broker, &group, &topic, q).ok().flatten() == Some(max)
        })
    })
    .await
    .unwrap_or(false)
}

fn reset_by_time(shards: usize) {
    let dir = fresh_dir(&format!("reset-{shards}"));
    let shards_line = format!("shards={shards}");
    let server = Rmq::start(&standalone_mode(&dir, &[&shards_line]));
    let namesrv = server.namesrv();
    let broker = server.addr("broker");
    let token = run_token();
    let topic = format!("ResetTopic_{shards}_{token}");
    let group = format!("reset_group_{shards}_{token}");
    let run = scenario("reset-by-time", BUDGET, {
        let (namesrv, topic, group) = (namesrv.clone(), topic.clone(), group.clone());
        move |rt| async move {
            let mut producer = producer(&rt, &namesrv, &format!("pg_{group}")).await?;
            let inbox = inbox();
            let result = async {
                create_topic_by_sending(&producer, &namesrv, &topic).await?;
                let mut early = Vec::new();
                for i in 0..EARLY {
                    early.push(send_sync(&producer, &topic, "Early", &format!("early-{i}")).await?);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let cut = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?
                    .as_millis();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut late = Vec::new();
                for i in 0..LATE {
                    late.push(send_sync(&producer, &topic, "Late", &format!("late-{i}")).await?);
                }
                let spec = ConsumerSpec::new(&namesrv, &group, &group, &topic);
                let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
                let everything: BTreeSet<String> =
                    early.iter().chain(&late).map(|s| s.body.clone()).collect();
                let all = wait_until(CONSUME_TIMEOUT, || {
                    distinct_bodies(&inbox, None).is_superset(&everything)
                })
                .await;
                if !all {
                    consumer.shutdown().await;
                    return Err("the consumer never received every message".into());
                }
                // Its committed offsets reach the end before the reset (persisted every 1 s).
                let mut committed = false;
                for _ in 0..100 {
                    if committed_everything(broker, &group, &topic).await {
                        committed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if !committed {
                    consumer.shutdown().await;
                    return Err("the consumer never committed every offset".into());
                }
                let seen_before = snapshot(&inbox).len();
                let args = [
                    "reset-offset-by-time".to_owned(),
                    "-n".into(),
                    namesrv.clone(),
                    "-g".into(),
                    group.clone(),
                    "-t".into(),
                    topic.clone(),
                    "-s".into(),
                    cut.to_string(),
                ];
                let admin_output = tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    admin(&args, Duration::from_secs(30))
                })
                .await
                .map_err(|e| format!("admin task: {e}"))??;
                let late_bodies: BTreeSet<String> = late.iter().map(|s| s.body.clone()).collect();
                let again = wait_until(RECONSUME_TIMEOUT, || {
                    let after: BTreeSet<String> = snapshot(&inbox)[seen_before..]
                        .iter()
                        .map(|r| r.body.clone())
                        .collect();
                    after.is_superset(&late_bodies)
                })
                .await;
                if again {
                    tokio::time::sleep(SETTLE * 2).await;
                }
                // The live member's own offsets, through INVOKE_BROKER_TO_GET_CONSUMER_STATUS.
                let args = [
                    "consumer-status".to_owned(),
                    "-n".into(),
                    namesrv.clone(),
                    "-g".into(),
                    group.clone(),
                    "-t".into(),
                    topic.clone(),
                    "--json".into(),
                ];
                let status_output = tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    admin(&args, Duration::from_secs(30))
                })
                .await
                .map_err(|e| format!("admin task: {e}"));
                consumer.shutdown().await;
                let status_output = status_output??;
                let after_reset = snapshot(&inbox)[seen_before..].to_vec();
                if !again {
                    return Err(format!(
                        "after the reset the consumer re-received {after_reset:?}, not every \
                         late message; admin said:\n{admin_output}"
                    ));
                }
                Ok(Run {
                    early,
                    late,
                    admin_output,
                    after_reset,
                    status_output,
                })
            }
            .await;
            producer.shutdown().await;
            result
        }
    });

    // Exactly the late messages, each once.
    let counts = body_counts(&run.after_reset);
    let expected: BTreeMap<String, usize> = run.late.iter().map(|s| (s.body.clone(), 1)).collect();
    assert_eq!(counts, expected, "re-received after the reset");

    // The admin table: old = everything consumed, new = first late offset of each queue.
    let mut first_late: BTreeMap<i32, u64> = BTreeMap::new();
    for sent in &run.late {
        let slot = first_late.entry(sent.queue_id).or_insert(sent.queue_offset);
        *slot = (*slot).min(sent.queue_offset);
    }
    let rows: Vec<Vec<&str>> = run
        .admin_output
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), QUEUES as usize, "{}", run.admin_output);
    for row in &rows {
        let queue: i32 = row[1].parse().expect("queue id");
        let old: i64 = row[2].parse().expect("old offset");
        let new: u64 = row[3].parse().expect("new offset");
        let max = max_offset(broker, &topic, queue).expect("max offset");
        assert_eq!(
            old, max,
            "queue {queue}: the consumer had committed everything"
        );
        let want = first_late
            .get(&queue)
            .copied()
            .unwrap_or_else(|| u64::try_from(max).expect("max >= 0"));
        assert_eq!(new, want, "queue {queue}: {}", run.admin_output);
    }
    assert_eq!(run.early.len(), EARLY);

    // The consumer answered GET_CONSUMER_STATUS_FROM_CLIENT: one row per queue, its client id,
    // offsets at the end (it re-consumed everything after the reset).
    let status: serde_json::Value =
        serde_json::from_str(&run.status_output).expect("consumer-status JSON");
    let status = status.as_array().expect("rows");
    assert_eq!(status.len(), QUEUES as usize, "{}", run.status_output);
    for row in status {
        let client = row["clientId"].as_str().unwrap_or_default();
        assert!(client.contains('@'), "client id {client:?}");
        let queue = i32::try_from(row["queueId"].as_i64().expect("queue")).expect("queue id");
        let max = max_offset(broker, &topic, queue).expect("max offset");
        assert_eq!(row["offset"].as_i64(), Some(max), "{}", run.status_output);
    }
    eprintln!(
        "[reset-by-time {shards} shard(s)] re-received {} late messages; admin:\n{}",
        run.after_reset.len(),
        run.admin_output
    );
}

#[test]
fn reset_by_time_reconsumes_exactly_the_later_messages_1_shard() {
    reset_by_time(1);
}

#[test]
fn reset_by_time_reconsumes_exactly_the_later_messages_2_shards() {
    reset_by_time(2);
}
