//! rocketmq-client-rust push consumers against `rmq standalone`: two clustering consumers of
//! one group split the queues and together get every message exactly once; a broadcasting
//! pair each get everything; an orderly consumer sees each key's messages in send order after
//! a MessageQueueSelector put each key on one queue; `TagA || TagB` filters out TagC.

#![recursion_limit = "512"]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;

/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(50);
/// Queues of an auto-created topic (`defaultTopicQueueNums`).
const QUEUES: i32 = 4;

/// A standalone server in a fresh scratch directory (removed after a passing test).
fn standalone(name: &str) -> (Scratch, Rmq) {
    let dir = fresh_dir(name);
    let server = Rmq::start(&standalone_mode(&dir, &[]));
    (dir, server)
}

/// What a pair of consumers observed.
struct PairRun {
    received: Vec<Received>,
    assigned: [BTreeSet<i32>; 2],
    allocation_took: Duration,
    sent: Vec<Sent>,
}

/// One two-consumer run: auto-create `topic`, start consumers `<group>_a` and `<group>_b`
/// with `model`, wait until `allocated` holds for their assignments, send `count` messages and
/// wait until `done` holds for the inbox (then [`SETTLE`]).
struct Pair {
    namesrv: String,
    topic: String,
    group: String,
    model: MessageModel,
    count: usize,
    allocated: fn(&BTreeSet<i32>, &BTreeSet<i32>) -> bool,
    done: fn(&Inbox, usize) -> bool,
}

async fn run_pair(
    rt: std::sync::Arc<rocketmq_client_rust::ClientRuntime>,
    pair: Pair,
) -> Result<PairRun, String> {
    let Pair {
        namesrv,
        topic,
        group,
        model,
        count,
        allocated,
        done,
    } = pair;
    let mut producer = producer(&rt, &namesrv, &format!("pg_{group}")).await?;
    let inbox = inbox();
    let run = async {
        create_topic_by_sending(&producer, &namesrv, &topic).await?;
        let names = [format!("{group}_a"), format!("{group}_b")];
        let mut consumers = Vec::new();
        let mut assignments = Vec::new();
        for name in &names {
            let mut spec = ConsumerSpec::new(&namesrv, &group, name, &topic);
            spec.model = model;
            let (consumer, assigned) = start_consumer(&rt, &spec, &inbox).await?;
            consumers.push(consumer);
            assignments.push(assigned);
        }
        let started = Instant::now();
        let split = wait_until(ALLOCATION_TIMEOUT, || {
            allocated(&assigned(&assignments[0]), &assigned(&assignments[1]))
        })
        .await;
        let allocation_took = started.elapsed();
        let mut outcome = Ok(Vec::new());
        if split {
            let mut sent = Vec::new();
            for i in 0..count {
                match send_sync(&producer, &topic, "TagA", &format!("m-{i}")).await {
                    Ok(s) => sent.push(s),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            if outcome.is_ok() {
                if wait_until(CONSUME_TIMEOUT, || done(&inbox, count)).await {
                    tokio::time::sleep(SETTLE).await;
                    outcome = Ok(sent);
                } else {
                    let missing = |name: &str| {
                        let got = distinct_bodies(&inbox, Some(name));
                        sent.iter()
                            .filter(|s| !got.contains(&s.body))
                            .map(|s| format!("{}@q{}/{}", s.body, s.queue_id, s.queue_offset))
                            .collect::<Vec<_>>()
                    };
                    outcome = Err(format!(
                        "consumers did not receive all {count} messages within \
                         {CONSUME_TIMEOUT:?}: a has {}, b has {}; a misses {:?}, b misses {:?} \
                         (in clustering only the group as a whole must have them)",
                        distinct_bodies(&inbox, Some(&names[0])).len(),
                        distinct_bodies(&inbox, Some(&names[1])).len(),
                        missing(&names[0]),
                        missing(&names[1])
                    ));
                }
            }
        } else {
            outcome = Err(format!(
                "queues never allocated as required within {ALLOCATION_TIMEOUT:?}: \
                 a={:?} b={:?}; history (all, mine) a={:?} b={:?}",
                assigned(&assignments[0]),
                assigned(&assignments[1]),
                allocation_history(&assignments[0]),
                allocation_history(&assignments[1])
            ));
        }
        let assigned_now = [assigned(&assignments[0]), assigned(&assignments[1])];
        for consumer in &mut consumers {
            consumer.shutdown().await;
        }
        let sent = outcome?;
        Ok(PairRun {
            received: snapshot(&inbox),
            assigned: assigned_now,
            allocation_took,
            sent,
        })
    }
    .await;
    producer.shutdown().await;
    run
}

fn all_queues() -> BTreeSet<i32> {
    (0..QUEUES).collect()
}

#[test]
fn clustering_pair_splits_queues_and_gets_each_message_once() {
    const COUNT: usize = 40;
    let (_dir, server) = standalone("consume-clustering");
    let namesrv = server.namesrv();
    let token = run_token();
    let run = scenario("clustering", BUDGET, move |rt| {
        let pair = Pair {
            namesrv,
            topic: format!("RustCluster_{token}"),
            group: format!("cg_cluster_{token}"),
            model: MessageModel::Clustering,
            count: COUNT,
            // Disjoint, both non-empty, together all queues: both rebalanced on a 2-member view.
            allocated: |a, b| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.is_disjoint(b)
                    && a.union(b).cloned().collect::<BTreeSet<_>>() == all_queues()
            },
            done: |inbox, count| distinct_bodies(inbox, None).len() >= count,
        };
        run_pair(rt, pair)
    });
    report_allocation("clustering", run.allocation_took);
    let [a, b] = &run.assigned;
    assert!(
        !a.is_empty() && !b.is_empty() && a.is_disjoint(b),
        "split {a:?} / {b:?}"
    );
    // Exactly once across the group: every body once, nothing else.
    let counts = body_counts(&run.received);
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates across the group: {dups:?}");
    let want: BTreeSet<String> = run.sent.iter().map(|s| s.body.clone()).collect();
    let got: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(got, want, "every message received by the group");
    // Each message went to the consumer that owns its queue, and both consumers got some.
    let mut per_consumer: BTreeMap<&str, usize> = BTreeMap::new();
    for r in run.received.iter().filter(|r| r.body != WARMUP_BODY) {
        let owner = if r.consumer.ends_with("_a") { a } else { b };
        assert!(
            owner.contains(&r.queue_id),
            "{} from queue {} delivered to {}, which owns {owner:?}",
            r.body,
            r.queue_id,
            r.consumer
        );
        *per_consumer.entry(r.consumer.as_str()).or_insert(0) += 1;
    }
    assert_eq!(
        per_consumer.len(),
        2,
        "both consumers received messages: {per_consumer:?}"
    );
}

#[test]
fn broadcasting_pair_each_get_every_message() {
    const COUNT: usize = 24;
    let (_dir, server) = standalone("consume-broadcast");
    let namesrv = server.namesrv();
    let token = run_token();
    let run = scenario("broadcasting", BUDGET, move |rt| {
        let pair = Pair {
            namesrv,
            topic: format!("RustBroadcast_{token}"),
            group: format!("cg_broadcast_{token}"),
            model: MessageModel::Broadcasting,
            count: COUNT,
            // Broadcasting: every consumer is assigned every queue.
            allocated: |a, b| *a == all_queues() && *b == all_queues(),
            done: |inbox, count| {
                let bodies = snapshot(inbox);
                ["_a", "_b"].iter().all(|suffix| {
                    bodies
                        .iter()
                        .filter(|r| r.body != WARMUP_BODY && r.consumer.ends_with(suffix))
                        .map(|r| &r.body)
                        .collect::<BTreeSet<_>>()
                        .len()
                        >= count
                })
            },
        };
        run_pair(rt, pair)
    });
    let want: BTreeSet<String> = run.sent.iter().map(|s| s.body.clone()).collect();
    for suffix in ["_a", "_b"] {
        let mine: Vec<Received> = run
            .received
            .iter()
            .filter(|r| r.consumer.ends_with(suffix))
            .cloned()
            .collect();
        let counts = body_counts(&mine);
        let got: BTreeSet<String> = counts.keys().cloned().collect();
        assert_eq!(got, want, "consumer {suffix} received every message");
        assert!(
            counts.values().all(|n| *n == 1),
            "consumer {suffix} duplicates: {counts:?}"
        );
    }
}

#[test]
fn orderly_consumer_sees_each_key_in_send_order() {
    /// Keys (orders) and messages per key.
    const KEYS: usize = 8;
    const PER_KEY: usize = 15;
    let (_dir, server) = standalone("consume-orderly");
    let namesrv = server.namesrv();
    let token = run_token();
    let (sent, received) = scenario("orderly", BUDGET, move |rt| async move {
        let topic = format!("RustOrderly_{token}");
        let group = format!("cg_orderly_{token}");
        let mut producer = producer(&rt, &namesrv, &format!("pg_orderly_{token}")).await?;
        // Interleave keys so ordering within a key is not an accident of batching.
        let mut sent: Vec<(String, usize, i32)> = Vec::new();
        let mut outcome = Ok(());
        'send: for seq in 0..PER_KEY {
            for k in 0..KEYS {
                let key = format!("order-{k}");
                let body = format!("{key}:{seq}");
                let msg = message(&topic, "TagA", &key, &body);
                let hash = fnv1a(key.as_bytes());
                // MessageQueueSelector by key: queue = hash(key) % n.
                let selector = |mqs: &[MessageQueue], _msg: &Message, hash: &u64| {
                    let n = mqs.len() as u64;
                    (n > 0).then(|| mqs[(*hash % n) as usize].clone())
                };
                match producer
                    .send_with_selector_timeout(msg, selector, hash, SEND_TIMEOUT_MS)
                    .await
                {
                    Ok(r) => match sent_ok(&body, r.as_ref()) {
                        Ok(s) => sent.push((key, seq, s.queue_id)),
                        Err(e) => {
                            outcome = Err(e);
                            break 'send;
                        }
                    },
                    Err(e) => {
                        outcome = Err(format!("send of {body}: {}", describe(&e)));
                        break 'send;
                    }
                }
            }
        }
        producer.shutdown().await;
        outcome?;
        wait_topic_route(&namesrv, &topic).await?;
        let inbox = inbox();
        let mut spec = ConsumerSpec::new(&namesrv, &group, &group, &topic);
        spec.listener = Listener::Orderly;
        let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
        let total = KEYS * PER_KEY;
        let all = wait_until(CONSUME_TIMEOUT, || {
            distinct_bodies(&inbox, None).len() >= total
        })
        .await;
        if all {
            tokio::time::sleep(SETTLE).await;
        }
        consumer.shutdown().await;
        if !all {
            return Err(format!(
                "orderly consumer got {}/{total} within {CONSUME_TIMEOUT:?}",
                distinct_bodies(&inbox, None).len()
            ));
        }
        Ok((sent, snapshot(&inbox)))
    });
    assert_eq!(sent.len(), KEYS * PER_KEY);
    // The selector's choice held: each key's messages all went to one queue.
    let mut queue_of: BTreeMap<&str, i32> = BTreeMap::new();
    for (key, _, queue) in &sent {
        let first = *queue_of.entry(key.as_str()).or_insert(*queue);
        assert_eq!(
            first, *queue,
            "{key}: all of a key's messages go to one queue"
        );
    }
    let used: BTreeSet<i32> = queue_of.values().copied().collect();
    assert!(
        used.len() >= 2,
        "the {KEYS} keys hash to several queues: {used:?}"
    );
    // Per key: exactly 0, 1, .., PER_KEY-1 in arrival order, from the key's queue.
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &received {
        let (key, seq) = r.body.split_once(':').expect("body is key:seq");
        assert_eq!(
            Some(&r.queue_id),
            queue_of.get(key),
            "{}: from the key's queue",
            r.body
        );
        seen.entry(key.to_owned())
            .or_default()
            .push(seq.parse().expect("seq"));
    }
    assert_eq!(seen.len(), KEYS, "every key consumed");
    let want: Vec<usize> = (0..PER_KEY).collect();
    for (key, seqs) in &seen {
        assert_eq!(*seqs, want, "{key}: consumed in send order, each once");
    }
    // And per queue, offsets arrive strictly increasing (no rewind, no duplicate).
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &received {
        if let Some(prev) = last.insert(r.queue_id, r.queue_offset) {
            assert!(
                r.queue_offset > prev,
                "queue {}: offset {} after {prev}",
                r.queue_id,
                r.queue_offset
            );
        }
    }
}

#[test]
fn tag_filter_delivers_only_tag_a_and_tag_b() {
    const COUNT: usize = 30;
    let (_dir, server) = standalone("consume-tags");
    let namesrv = server.namesrv();
    let token = run_token();
    let (sent, received) = scenario("tags", BUDGET, move |rt| async move {
        let topic = format!("RustTags_{token}");
        let group = format!("cg_tags_{token}");
        let mut producer = producer(&rt, &namesrv, &format!("pg_tags_{token}")).await?;
        let mut sent = Vec::new();
        let mut outcome = Ok(());
        for i in 0..COUNT {
            let tag = ["TagA", "TagB", "TagC"][i % 3];
            match send_sync(&producer, &topic, tag, &format!("{tag}-{i}")).await {
                Ok(s) => sent.push((tag, s)),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        producer.shutdown().await;
        outcome?;
        wait_topic_route(&namesrv, &topic).await?;
        let inbox = inbox();
        let mut spec = ConsumerSpec::new(&namesrv, &group, &group, &topic);
        spec.expression = "TagA || TagB";
        let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
        let wanted = sent.iter().filter(|(tag, _)| *tag != "TagC").count();
        let all = wait_until(CONSUME_TIMEOUT, || {
            distinct_bodies(&inbox, None).len() >= wanted
        })
        .await;
        // Wait on even when all A/B arrived: a TagC delivered late must still be caught.
        tokio::time::sleep(SETTLE).await;
        consumer.shutdown().await;
        if !all {
            return Err(format!(
                "tag consumer got {}/{wanted} within {CONSUME_TIMEOUT:?}",
                distinct_bodies(&inbox, None).len()
            ));
        }
        Ok((sent, snapshot(&inbox)))
    });
    let strays: Vec<&Received> = received.iter().filter(|r| r.tag == "TagC").collect();
    assert!(
        strays.is_empty(),
        "TagC delivered to a `TagA || TagB` subscription: {strays:?}"
    );
    let want: BTreeSet<String> = sent
        .iter()
        .filter(|(tag, _)| *tag != "TagC")
        .map(|(_, s)| s.body.clone())
        .collect();
    let counts = body_counts(&received);
    let got: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(got, want, "exactly the TagA and TagB messages");
    assert!(
        counts.values().all(|n| *n == 1),
        "no duplicates: {counts:?}"
    );
    for r in &received {
        assert!(
            r.body.starts_with(&r.tag),
            "{}: carries its tag, got {}",
            r.body,
            r.tag
        );
    }
}

fn report_allocation(name: &str, took: Duration) {
    if took > ALLOCATION_EXPECTED {
        eprintln!(
            "[{name}] WARNING: queue allocation took {took:.1?} (> {ALLOCATION_EXPECTED:?}); \
             a real broker notifies consumers (NOTIFY_CONSUMER_IDS_CHANGED) so they rebalance \
             at once instead of on their 20 s timer"
        );
    } else {
        eprintln!("[{name}] queue allocation settled in {took:.1?}");
    }
}
