//! Crash restarts of `rmq standalone` seen through rocketmq-client-rust: with
//! `flushDiskType=SYNC_FLUSH` every send the broker acknowledged survives a SIGKILL (same
//! queue, same offset, same UNIQ_KEY), and consumer offsets a group committed survive one too.
//!
//! Each test restarts on the same store directory; the ports change on every start (both are
//! ephemeral) and the clients simply get the new NameServer address.

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Per-phase budget for the client work.
const BUDGET: Duration = Duration::from_secs(40);
/// How long to wait, after a group's final offset commit, before killing the broker.
///
/// RocketMQ semantics: a consumer commits offsets to the broker (UPDATE_CONSUMER_OFFSET every
/// `persistConsumerOffsetInterval`, on shutdown, and in pull requests); the broker keeps them
/// in memory and writes `consumerOffset.json` every `flushConsumerOffsetInterval` (5 s by
/// default) and on a clean shutdown. A SIGKILL loses commits made since the last write, and
/// redelivering those messages would then be correct at-least-once behaviour. Waiting longer
/// than one flush interval after the commit closes that window, so in this test the only
/// correct outcome is no redelivery at all.
const BROKER_OFFSET_FLUSH_WAIT: Duration = Duration::from_secs(7);

/// A scratch directory and a standalone mode with `flushDiskType=SYNC_FLUSH`.
fn sync_flush_setup(name: &str) -> (Scratch, Mode) {
    let dir = fresh_dir(name);
    let mode = standalone_mode(&dir, &["flushDiskType=SYNC_FLUSH"]);
    (dir, mode)
}

fn produce(
    name: &str,
    server: &Rmq,
    topic: &str,
    group: &str,
    bodies: Vec<String>,
) -> Vec<Result<Sent, String>> {
    let namesrv = server.namesrv();
    let topic = topic.to_owned();
    let group = group.to_owned();
    scenario(name, BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &namesrv, &group).await?;
        let mut outcomes = Vec::new();
        // Keep sending after a failure: the durability check is about what was acknowledged.
        for body in &bodies {
            outcomes.push(send_sync(&producer, &topic, "TagA", body).await);
        }
        producer.shutdown().await;
        Ok(outcomes)
    })
}

fn consume(
    name: &str,
    server: &Rmq,
    topic: &str,
    group: &str,
    expected: BTreeSet<String>,
) -> Vec<Received> {
    let namesrv = server.namesrv();
    let topic = topic.to_owned();
    let group = group.to_owned();
    scenario(name, BUDGET, move |rt| async move {
        wait_topic_route(&namesrv, &topic).await?;
        consume_expected(&rt, &namesrv, &group, &topic, &expected).await
    })
}

#[test]
fn sync_flush_acknowledged_messages_survive_sigkill() {
    const COUNT: usize = 200;
    let (_dir, mode) = sync_flush_setup("restart-durable");
    let token = run_token();
    let topic = format!("RustDurable_{token}");
    let mut server = Rmq::start(&mode);
    let bodies: Vec<String> = (0..COUNT).map(|i| format!("durable-{i}")).collect();
    let outcomes = produce(
        "durable-produce",
        &server,
        &topic,
        &format!("pg_durable_{token}"),
        bodies,
    );
    server.kill();
    let acked: Vec<Sent> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().cloned())
        .collect();
    assert!(
        !acked.is_empty(),
        "no send was acknowledged: {:?}",
        outcomes.first()
    );

    let server = Rmq::start(&mode);
    let expected: BTreeSet<String> = acked.iter().map(|s| s.body.clone()).collect();
    let received = consume(
        "durable-consume",
        &server,
        &topic,
        &format!("cg_durable_{token}"),
        expected,
    );
    let counts = body_counts(&received);
    for s in &acked {
        assert_eq!(
            counts.get(&s.body),
            Some(&1),
            "{} acknowledged, then received {:?} times",
            s.body,
            counts.get(&s.body)
        );
        let r = received
            .iter()
            .find(|r| r.body == s.body)
            .expect("counted above");
        assert_eq!(
            (r.queue_id, r.queue_offset as u64),
            (s.queue_id, s.queue_offset),
            "{}: position after recovery",
            s.body
        );
        assert_eq!(r.uniq_key, s.msg_id, "{}: UNIQ_KEY after recovery", s.body);
    }
    // A healthy broker acknowledges every send (checked after durability, the main property).
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {COUNT} sends failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

#[test]
fn committed_consumer_offsets_survive_sigkill() {
    const BEFORE: usize = 40;
    const AFTER: usize = 12;
    let (_dir, mode) = sync_flush_setup("restart-offsets");
    let token = run_token();
    let topic = format!("RustOffsets_{token}");
    let group = format!("cg_offsets_{token}");
    let producer_group = format!("pg_offsets_{token}");

    let mut server = Rmq::start(&mode);
    let before: Vec<String> = (0..BEFORE).map(|i| format!("before-{i}")).collect();
    let outcomes = produce(
        "offsets-produce-1",
        &server,
        &topic,
        &producer_group,
        before.clone(),
    );
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(failed.is_empty(), "sends failed: {failed:?}");
    // The group consumes everything; its consumer commits and shuts down cleanly.
    let first = consume(
        "offsets-consume-1",
        &server,
        &topic,
        &group,
        before.iter().cloned().collect(),
    );
    assert_eq!(body_counts(&first).len(), BEFORE);
    std::thread::sleep(BROKER_OFFSET_FLUSH_WAIT);
    server.kill();

    let server = Rmq::start(&mode);
    let after: Vec<String> = (0..AFTER).map(|i| format!("after-{i}")).collect();
    let outcomes = produce(
        "offsets-produce-2",
        &server,
        &topic,
        &producer_group,
        after.clone(),
    );
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(failed.is_empty(), "sends after restart failed: {failed:?}");
    // A new consumer of the same group, CONSUME_FROM_FIRST_OFFSET: that setting applies only
    // to queues without a committed offset, so it must resume after the old messages.
    let second = consume(
        "offsets-consume-2",
        &server,
        &topic,
        &group,
        after.iter().cloned().collect(),
    );
    let redelivered: Vec<&str> = second
        .iter()
        .filter(|r| r.body.starts_with("before-"))
        .map(|r| r.body.as_str())
        .collect();
    assert!(
        redelivered.is_empty(),
        "committed offsets lost across the restart: {} old messages redelivered, e.g. {:?}",
        redelivered.len(),
        redelivered.iter().take(5).collect::<Vec<_>>()
    );
    let counts = body_counts(&second);
    let want: BTreeSet<String> = after.into_iter().collect();
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "exactly the new messages"
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "no duplicates: {counts:?}"
    );
}
