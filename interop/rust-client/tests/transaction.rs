//! rocketmq-client-rust's TransactionMQProducer against `rmq standalone`, with 1 and 2
//! shards: a committed transaction is consumed exactly once and a rolled-back one never; a
//! local state UNKNOW is resolved by the broker's check-back (CHECK_TRANSACTION_STATE) and
//! the producer's COMMIT answer; with the producer gone the half message is checked
//! `transactionCheckMax` times and then discarded to TRANS_CHECK_MAX_TIME_TOPIC; a kill -9 of
//! the broker between half message and commit loses no committed message and delivers no
//! rolled-back one (the check-back after restart resolves what was open).

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rmq_interop_rust_client::{max_offset, request};
use rocketmq_client_rust::{
    ClientRuntime, LocalTransactionState, TransactionListener, TransactionMQProducer,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;

/// Our private admin code: the broker's pending transactions (docs/transactions.md).
const TRANSACTION_PENDING_STATS: i32 = 60_000;
/// Where half messages that used up their check-backs go.
const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(60);

/// Decides a transaction from its body: `commit-*` commits, `rollback-*` rolls back, anything
/// else (and every first answer when `unknown_first`) is UNKNOW. Counts the check-backs.
struct ByBody {
    unknown_first: bool,
    checks: Arc<AtomicU32>,
}

fn decide(body: &str) -> LocalTransactionState {
    if body.starts_with("commit-") {
        LocalTransactionState::CommitMessage
    } else if body.starts_with("rollback-") {
        LocalTransactionState::RollbackMessage
    } else {
        LocalTransactionState::Unknown
    }
}

fn body_of(msg: &dyn MessageTrait) -> String {
    msg.get_body()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

impl TransactionListener for ByBody {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        if self.unknown_first {
            return LocalTransactionState::Unknown;
        }
        decide(&body_of(msg))
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        self.checks.fetch_add(1, Ordering::SeqCst);
        let body = msg
            .body()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        decide(&body)
    }
}

async fn transaction_producer(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    group: &str,
    listener: ByBody,
) -> Result<TransactionMQProducer, String> {
    let mut producer = TransactionMQProducer::builder(rt.clone())
        .producer_group(group)
        .name_server_addr(namesrv)
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .retry_times_when_send_failed(0)
        .transaction_listener(listener)
        .build();
    producer
        .start()
        .await
        .map_err(err("transaction producer start"))?;
    Ok(producer)
}

/// Sends every body in a transaction; returns the local states the client reported.
async fn send_all(
    producer: &TransactionMQProducer,
    topic: &str,
    bodies: &[String],
) -> Result<Vec<LocalTransactionState>, String> {
    let mut states = Vec::new();
    for body in bodies {
        let result = producer
            .send_message_in_transaction::<(), _>(message(topic, "TagT", body, body), None)
            .await
            .map_err(|e| format!("transaction send of {body}: {}", describe(&e)))?;
        let send = result
            .send_result
            .as_ref()
            .ok_or_else(|| format!("{body}: no send result"))?;
        sent_ok(body, Some(send))?;
        states.push(
            result
                .local_transaction_state
                .ok_or_else(|| format!("{body}: no local state"))?,
        );
    }
    Ok(states)
}

/// A plain producer's warm-up send auto-creates `topic` and waits for its route.
async fn warm_up(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    group: &str,
) -> Result<(), String> {
    let mut plain = producer(rt, namesrv, group).await?;
    let result = create_topic_by_sending(&plain, namesrv, topic).await;
    plain.shutdown().await;
    result.map(drop)
}

/// The broker's pending-transactions report (TRANSACTION_PENDING_STATS).
fn pending_report(broker: SocketAddr) -> serde_json::Value {
    let reply = request(broker, TRANSACTION_PENDING_STATS, &serde_json::json!({}))
        .expect("pending stats round trip");
    assert_eq!(reply.code, 0, "pending stats: {:?}", reply.remark);
    serde_json::from_slice(&reply.body).expect("pending report JSON")
}

/// Messages stored in `topic` (queues 0..queues) as the broker's max offsets say.
fn stored(broker: SocketAddr, topic: &str, queues: i32) -> i64 {
    (0..queues)
        .map(|q| max_offset(broker, topic, q).expect("GET_MAX_OFFSET"))
        .sum()
}

fn bodies(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn commit_and_rollback(shards: &str) {
    let dir = fresh_dir(&format!("tx-commit-{shards}"));
    let server = Rmq::start(&standalone_mode(&dir, &[&format!("shards={shards}")]));
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustTx{shards}_{token}");
    let commits = bodies("commit", 8);
    let rollbacks = bodies("rollback", 8);
    let expected: BTreeSet<String> = commits.iter().cloned().collect();
    let want = expected.clone();
    let (states, received) = scenario("tx-commit", BUDGET, move |rt| async move {
        warm_up(&rt, &namesrv, &topic, &format!("pg_warm_{token}")).await?;
        let checks = Arc::new(AtomicU32::new(0));
        let listener = ByBody {
            unknown_first: false,
            checks,
        };
        let mut producer =
            transaction_producer(&rt, &namesrv, &format!("pg_tx_{token}"), listener).await?;
        let mut all = commits.clone();
        all.extend(rollbacks.iter().cloned());
        let states = send_all(&producer, &topic, &all).await;
        producer.shutdown().await;
        let states = states?;
        let received =
            consume_expected(&rt, &namesrv, &format!("cg_tx_{token}"), &topic, &want).await?;
        Ok((states, received))
    });
    assert_eq!(states.len(), 16);
    let counts = body_counts(&received);
    for body in &expected {
        assert_eq!(
            counts.get(body),
            Some(&1),
            "{body} consumed {:?} times",
            counts.get(body)
        );
    }
    assert_eq!(
        counts.len(),
        expected.len(),
        "rolled-back or unexpected bodies consumed: {counts:?}"
    );
    let report = pending_report(server.addr("broker"));
    assert_eq!(report["total"], 0, "every transaction resolved: {report}");
}

#[test]
fn commit_is_consumed_once_and_rollback_never_1_shard() {
    commit_and_rollback("1");
}

#[test]
fn commit_is_consumed_once_and_rollback_never_2_shards() {
    commit_and_rollback("2");
}

#[test]
fn unknown_state_is_resolved_by_the_check_back() {
    let dir = fresh_dir("tx-check");
    let server = Rmq::start(&standalone_mode(
        &dir,
        &[
            "shards=2",
            "transactionTimeOut=1000",
            "transactionCheckInterval=1000",
        ],
    ));
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustTxCheck_{token}");
    let commits = bodies("commit", 4);
    let rollbacks = bodies("rollback", 4);
    let expected: BTreeSet<String> = commits.iter().cloned().collect();
    let want = expected.clone();
    let (states, checks, received) = scenario("tx-check", BUDGET, move |rt| async move {
        warm_up(&rt, &namesrv, &topic, &format!("pg_warm_{token}")).await?;
        let checks = Arc::new(AtomicU32::new(0));
        let listener = ByBody {
            unknown_first: true,
            checks: Arc::clone(&checks),
        };
        let mut producer =
            transaction_producer(&rt, &namesrv, &format!("pg_txc_{token}"), listener).await?;
        let mut all = commits.clone();
        all.extend(rollbacks.iter().cloned());
        let states = send_all(&producer, &topic, &all).await;
        // The producer stays up: the broker checks back through its connection.
        let received =
            consume_expected(&rt, &namesrv, &format!("cg_txc_{token}"), &topic, &want).await;
        producer.shutdown().await;
        Ok((states?, checks.load(Ordering::SeqCst), received?))
    });
    assert!(
        states.iter().all(|s| *s == LocalTransactionState::Unknown),
        "{states:?}"
    );
    assert!(
        checks >= 8,
        "every open transaction was checked back: {checks}"
    );
    let counts = body_counts(&received);
    assert_eq!(
        counts,
        expected.iter().map(|b| (b.clone(), 1)).collect(),
        "committed once, rolled back never"
    );
    let report = pending_report(server.addr("broker"));
    assert_eq!(report["total"], 0, "{report}");
}

#[test]
fn without_a_producer_the_half_message_is_discarded_after_the_check_limit() {
    let dir = fresh_dir("tx-discard");
    let server = Rmq::start(&standalone_mode(
        &dir,
        &[
            "shards=2",
            "transactionTimeOut=500",
            "transactionCheckInterval=500",
            "transactionCheckMax=3",
        ],
    ));
    let broker = server.addr("broker");
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustTxGone_{token}");
    let topic_for_client = topic.clone();
    let states = scenario("tx-discard", BUDGET, move |rt| async move {
        warm_up(
            &rt,
            &namesrv,
            &topic_for_client,
            &format!("pg_warm_{token}"),
        )
        .await?;
        let listener = ByBody {
            unknown_first: true,
            checks: Arc::new(AtomicU32::new(0)),
        };
        let mut producer =
            transaction_producer(&rt, &namesrv, &format!("pg_gone_{token}"), listener).await?;
        let states = send_all(&producer, &topic_for_client, &bodies("open", 2)).await;
        // Gone before the first check-back (transactionTimeOut) is due.
        producer.shutdown().await;
        states
    });
    assert_eq!(states, vec![LocalTransactionState::Unknown; 2]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = pending_report(broker);
        if report["discarded"] == 2 {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never discarded: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(report["total"], 0, "{report}");
    assert!(
        report["checksSent"].as_u64().unwrap_or(0) == 0,
        "nobody to check with: {report}"
    );
    assert_eq!(
        max_offset(broker, CHECK_MAX_TOPIC, 0).expect("max offset"),
        2
    );
    assert_eq!(
        stored(broker, &topic, 4),
        1,
        "only the warm-up reached the topic"
    );
    let tail = server.log_tail();
    assert!(
        tail.contains("discarded to TRANS_CHECK_MAX_TIME_TOPIC"),
        "the discard is logged: {tail}"
    );
}

#[test]
fn a_kill_between_half_message_and_commit_loses_nothing() {
    let dir = fresh_dir("tx-kill");
    let mode = standalone_mode(
        &dir,
        &[
            "shards=2",
            "flushDiskType=SYNC_FLUSH",
            "transactionTimeOut=1000",
            "transactionCheckInterval=1000",
        ],
    );
    let mut server = Rmq::start(&mode);
    let token = run_token();
    let topic = format!("RustTxKill_{token}");
    let group = format!("pg_kill_{token}");
    let namesrv = server.namesrv();
    let (topic_a, group_a, token_a) = (topic.clone(), group.clone(), token.clone());
    // Before the kill: some resolved at once, some left open (UNKNOW).
    scenario("tx-kill-before", BUDGET, move |rt| async move {
        warm_up(&rt, &namesrv, &topic_a, &format!("pg_warm_{token_a}")).await?;
        let resolving = ByBody {
            unknown_first: false,
            checks: Arc::new(AtomicU32::new(0)),
        };
        let mut producer = transaction_producer(&rt, &namesrv, &group_a, resolving).await?;
        let mut at_once = bodies("commit-now", 3);
        at_once.extend(bodies("rollback-now", 3));
        let result = send_all(&producer, &topic_a, &at_once).await;
        producer.shutdown().await;
        result?;
        let open = ByBody {
            unknown_first: true,
            checks: Arc::new(AtomicU32::new(0)),
        };
        let mut producer = transaction_producer(&rt, &namesrv, &group_a, open).await?;
        let mut later = bodies("commit-later", 3);
        later.extend(bodies("rollback-later", 3));
        let result = send_all(&producer, &topic_a, &later).await;
        producer.shutdown().await;
        result.map(drop)
    });
    server.kill();
    let server = Rmq::start(&mode);
    let namesrv = server.namesrv();
    let mut expected: BTreeSet<String> = bodies("commit-now", 3).into_iter().collect();
    expected.extend(bodies("commit-later", 3));
    let want = expected.clone();
    let (checks, received) = scenario("tx-kill-after", BUDGET, move |rt| async move {
        let checks = Arc::new(AtomicU32::new(0));
        let listener = ByBody {
            unknown_first: true,
            checks: Arc::clone(&checks),
        };
        // The same group again: the broker checks back through this producer's connection.
        let mut producer = transaction_producer(&rt, &namesrv, &group, listener).await?;
        // The client heartbeats to brokers it has routes for; a send gives it this one's.
        let states = send_all(&producer, &topic, &bodies("commit-after", 1)).await;
        let mut want = want;
        want.extend(bodies("commit-after", 1));
        let received =
            consume_expected(&rt, &namesrv, &format!("cg_kill_{token}"), &topic, &want).await;
        producer.shutdown().await;
        states?;
        Ok((checks.load(Ordering::SeqCst), received?))
    });
    expected.extend(bodies("commit-after", 1));
    let counts = body_counts(&received);
    assert!(
        checks >= 1,
        "open transactions were checked back after the restart"
    );
    for body in &expected {
        assert_eq!(counts.get(body), Some(&1), "{body}: {counts:?}");
    }
    assert!(
        counts.keys().all(|b| !b.starts_with("rollback")),
        "no rolled-back message delivered: {counts:?}"
    );
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
    let report = pending_report(server.addr("broker"));
    assert_eq!(report["total"], 0, "{report}");
}
