//! rocketmq-client-rust producers against `rmq standalone`: sync, async (callback), oneway and
//! batch sends to auto-created topics. Each test checks what the send results claim (SEND_OK,
//! ids, queue offsets) and then consumes the topic with a fresh group to check the broker
//! stored exactly what it acknowledged, where it said it did.

#![recursion_limit = "512"]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// Messages per single-message scenario (6 per queue of an auto-created 4-queue topic).
const COUNT: usize = 24;
/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(45);

/// A standalone server in a fresh scratch directory (removed after a passing test).
fn standalone(name: &str) -> (Scratch, Rmq) {
    let dir = fresh_dir(name);
    let server = Rmq::start(&standalone_mode(&dir, &[]));
    (dir, server)
}

/// Per queue, the offsets must be exactly 0, 1, 2, ... (a fresh topic, only our sends).
fn assert_offsets_contiguous_per_queue(sent: &[Sent]) {
    let mut per_queue: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for s in sent {
        per_queue
            .entry(s.queue_id)
            .or_default()
            .push(s.queue_offset);
    }
    for (queue, offsets) in &mut per_queue {
        offsets.sort_unstable();
        let want: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(*offsets, want, "queue {queue}: offsets not 0..n");
    }
    assert!(
        per_queue.keys().all(|q| (0..4).contains(q)),
        "an auto-created topic has 4 queues, got {:?}",
        per_queue.keys()
    );
    assert!(
        per_queue.len() >= 2,
        "round-robin sends should use several queues, used {:?}",
        per_queue.keys()
    );
}

/// Every id is an offset message id of the broker's store host (brokerIP1:listenPort);
/// returns the commit-log offsets.
fn assert_offset_ids_of(server: &Rmq, ids: &[&str]) -> Vec<u64> {
    let broker = server.addr("broker");
    ids.iter()
        .map(|id| {
            let (host, offset) = decode_offset_msg_id(id)
                .unwrap_or_else(|| panic!("offsetMsgId {id:?} is not an IPv4 offset message id"));
            assert_eq!(
                host, broker,
                "offsetMsgId {id} names store host {host}, want {broker}"
            );
            offset
        })
        .collect()
}

/// The consumer saw every sent message exactly once, with the producer's UNIQ_KEY, in the
/// queue and at the offset the send result named.
fn assert_received_as_sent(sent: &[Sent], received: &[Received]) {
    let counts = body_counts(received);
    for s in sent {
        assert_eq!(
            counts.get(&s.body),
            Some(&1),
            "{} received {:?} times",
            s.body,
            counts.get(&s.body)
        );
    }
    assert_eq!(
        counts.len(),
        sent.len(),
        "unexpected extra bodies: {counts:?}"
    );
    for r in received.iter().filter(|r| r.body != WARMUP_BODY) {
        let s = sent
            .iter()
            .find(|s| s.body == r.body)
            .expect("counted above");
        assert_eq!(
            r.uniq_key, s.msg_id,
            "{}: UNIQ_KEY differs from SendResult.msgId",
            r.body
        );
        assert_eq!(
            r.queue_id, s.queue_id,
            "{}: stored in another queue",
            r.body
        );
        assert_eq!(
            r.queue_offset as u64, s.queue_offset,
            "{}: other queue offset",
            r.body
        );
    }
}

#[test]
fn sync_send_results_are_ok_with_ids_and_increasing_offsets() {
    let (_dir, server) = standalone("produce-sync");
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustSync_{token}");
    let (sent, received) = scenario("sync", BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &namesrv, &format!("pg_sync_{token}")).await?;
        let mut sent = Vec::new();
        let mut result = Ok(());
        for i in 0..COUNT {
            match send_sync(&producer, &topic, "TagA", &format!("sync-{i}")).await {
                Ok(s) => sent.push(s),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        producer.shutdown().await;
        result?;
        wait_topic_route(&namesrv, &topic).await?;
        let expected = sent.iter().map(|s| s.body.clone()).collect();
        let received = consume_expected(
            &rt,
            &namesrv,
            &format!("cg_sync_{token}"),
            &topic,
            &expected,
        )
        .await?;
        Ok((sent, received))
    });
    assert_eq!(sent.len(), COUNT);
    let ids: BTreeSet<&str> = sent.iter().map(|s| s.msg_id.as_str()).collect();
    assert_eq!(ids.len(), COUNT, "msgIds must be distinct");
    assert_offsets_contiguous_per_queue(&sent);
    let offset_ids: Vec<&str> = sent.iter().map(|s| s.offset_msg_id.as_str()).collect();
    let physical = assert_offset_ids_of(&server, &offset_ids);
    // Within a queue, later sends sit later in the log. Across queues there is no order to
    // check: rmq keeps one commit log per shard and puts the shard in the offset's top byte.
    let mut last: BTreeMap<i32, u64> = BTreeMap::new();
    for (s, offset) in sent.iter().zip(&physical) {
        if let Some(prev) = last.insert(s.queue_id, *offset) {
            assert!(
                *offset > prev,
                "{}: commit-log offset {offset} after {prev}",
                s.body
            );
        }
    }
    assert_eq!(
        physical.iter().collect::<BTreeSet<_>>().len(),
        COUNT,
        "distinct offsets"
    );
    assert_received_as_sent(&sent, &received);
}

#[test]
fn async_send_callbacks_all_report_send_ok() {
    let (_dir, server) = standalone("produce-async");
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustAsync_{token}");
    let (sent, received) = scenario("async", BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &namesrv, &format!("pg_async_{token}")).await?;
        let results: Arc<Mutex<Vec<Result<Sent, String>>>> = Arc::default();
        let mut dispatch = Ok(());
        for i in 0..COUNT {
            let body = format!("async-{i}");
            let sink = results.clone();
            let callback_body = body.clone();
            let callback =
                move |r: Option<&rocketmq_client_rust::SendResult>,
                      e: Option<&rocketmq_client_rust::ClientError>| {
                    let outcome = match e {
                        Some(e) => Err(format!("send of {callback_body}: {}", describe(e))),
                        None => sent_ok(&callback_body, r),
                    };
                    sink.lock().expect("results lock poisoned").push(outcome);
                };
            let msg = message(&topic, "TagA", &body, &body);
            if let Err(e) = producer
                .send_with_callback_timeout(msg, callback, SEND_TIMEOUT_MS)
                .await
            {
                dispatch = Err(format!("dispatch of {body}: {}", describe(&e)));
                break;
            }
        }
        let all = wait_until(Duration::from_secs(15), || {
            results.lock().expect("results lock poisoned").len() >= COUNT
        })
        .await;
        producer.shutdown().await;
        dispatch?;
        let outcomes = results.lock().expect("results lock poisoned").clone();
        if !all {
            return Err(format!("only {}/{COUNT} callbacks fired", outcomes.len()));
        }
        let sent = outcomes
            .into_iter()
            .collect::<Result<Vec<Sent>, String>>()?;
        wait_topic_route(&namesrv, &topic).await?;
        let expected = sent.iter().map(|s| s.body.clone()).collect();
        let received = consume_expected(
            &rt,
            &namesrv,
            &format!("cg_async_{token}"),
            &topic,
            &expected,
        )
        .await?;
        Ok((sent, received))
    });
    assert_eq!(sent.len(), COUNT, "one callback per send");
    let bodies: BTreeSet<&str> = sent.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(bodies.len(), COUNT, "each callback for a distinct message");
    let ids: BTreeSet<&str> = sent.iter().map(|s| s.msg_id.as_str()).collect();
    assert_eq!(ids.len(), COUNT, "msgIds must be distinct");
    // Async sends may be stored in any order, but per queue they still fill 0..n.
    assert_offsets_contiguous_per_queue(&sent);
    let offset_ids: Vec<&str> = sent.iter().map(|s| s.offset_msg_id.as_str()).collect();
    let physical: BTreeSet<u64> = assert_offset_ids_of(&server, &offset_ids)
        .into_iter()
        .collect();
    assert_eq!(physical.len(), COUNT, "distinct commit-log offsets");
    assert_received_as_sent(&sent, &received);
}

#[test]
fn oneway_sends_are_all_stored() {
    let (_dir, server) = standalone("produce-oneway");
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustOneway_{token}");
    let (expected, received) = scenario("oneway", BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &namesrv, &format!("pg_oneway_{token}")).await?;
        let mut expected = BTreeSet::new();
        let mut result = Ok(());
        for i in 0..COUNT {
            let body = format!("oneway-{i}");
            if let Err(e) = producer
                .send_oneway(message(&topic, "TagA", &body, &body))
                .await
            {
                result = Err(format!("oneway send of {body}: {}", describe(&e)));
                break;
            }
            expected.insert(body);
        }
        producer.shutdown().await;
        result?;
        // Oneway has no reply; the broker auto-creates the topic on the first one.
        wait_topic_route(&namesrv, &topic).await?;
        let received = consume_expected(
            &rt,
            &namesrv,
            &format!("cg_oneway_{token}"),
            &topic,
            &expected,
        )
        .await?;
        Ok((expected, received))
    });
    let counts = body_counts(&received);
    let got: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(got, expected, "every oneway message stored");
    assert!(
        counts.values().all(|n| *n == 1),
        "no duplicates: {counts:?}"
    );
}

#[test]
fn batch_send_stores_consecutive_offsets_in_one_queue() {
    /// Messages per batch and batches sent.
    const BATCH: usize = 10;
    const BATCHES: usize = 3;
    let (_dir, server) = standalone("produce-batch");
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustBatch_{token}");
    let (results, received) = scenario("batch", BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &namesrv, &format!("pg_batch_{token}")).await?;
        let mut results = Vec::new();
        let mut outcome = Ok(());
        for b in 0..BATCHES {
            let bodies: Vec<String> = (0..BATCH).map(|i| format!("batch{b}-{i}")).collect();
            let msgs = bodies
                .iter()
                .map(|body| message(&topic, "TagA", body, body))
                .collect();
            match producer
                .send_batch_with_timeout(msgs, SEND_TIMEOUT_MS)
                .await
            {
                Ok(r) => results.push((bodies, r)),
                Err(e) => {
                    outcome = Err(format!("batch {b}: {}", describe(&e)));
                    break;
                }
            }
        }
        producer.shutdown().await;
        outcome?;
        wait_topic_route(&namesrv, &topic).await?;
        let expected = results
            .iter()
            .flat_map(|(bodies, _)| bodies.clone())
            .collect();
        let received = consume_expected(
            &rt,
            &namesrv,
            &format!("cg_batch_{token}"),
            &topic,
            &expected,
        )
        .await?;
        Ok((results, received))
    });
    assert_eq!(results.len(), BATCHES);
    let counts = body_counts(&received);
    assert_eq!(
        counts.len(),
        BATCH * BATCHES,
        "every batched message stored: {counts:?}"
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "no duplicates: {counts:?}"
    );
    for (bodies, r) in &results {
        assert_eq!(
            r.send_status,
            rocketmq_client_rust::SendStatus::SendOk,
            "batch status"
        );
        let queue = r
            .message_queue
            .as_ref()
            .expect("batch result names a queue")
            .queue_id();
        let uniq: Vec<String> = r
            .msg_id
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(
            uniq.len(),
            BATCH,
            "batch msgId lists one UNIQ_KEY per message: {uniq:?}"
        );
        // The broker's response msgId for a batch: every offset message id, joined with ','.
        let offset_ids = r.offset_msg_id.clone().unwrap_or_default();
        let offset_ids: Vec<&str> = offset_ids.split(',').collect();
        assert_eq!(
            offset_ids.len(),
            BATCH,
            "batch offsetMsgId lists {BATCH} ids: {offset_ids:?}"
        );
        let physical = assert_offset_ids_of(&server, &offset_ids);
        assert!(
            physical.windows(2).all(|w| w[0] < w[1]),
            "increasing: {physical:?}"
        );
        for (i, body) in bodies.iter().enumerate() {
            let got = received
                .iter()
                .find(|m| &m.body == body)
                .expect("counted above");
            assert_eq!(got.queue_id, queue, "{body}: whole batch goes to one queue");
            assert_eq!(
                got.queue_offset as u64,
                r.queue_offset + i as u64,
                "{body}: batch members get consecutive offsets from the result's queueOffset"
            );
            assert_eq!(got.uniq_key, uniq[i], "{body}: UNIQ_KEY in batch order");
        }
    }
}
