//! Issue 13's SYNC_MASTER + SYNC_FLUSH kill loop driven by real clients across network
//! namespaces (tests/common/replica.rs): a NameServer, a SYNC_MASTER and its SLAVE (both
//! SYNC_FLUSH), each `rmq` in its own namespace; rocketmq-client-rust producers in the test
//! process (root namespace) and an ali-ons consumer in a `client` namespace.
//!
//! `sync_master_kill_loop_every_send_ok_is_on_the_slave`, ten rounds, each on a new topic:
//! 1. Three producers keep many sends in flight: two with 12 concurrent synchronous senders
//!    each, one with up to 24 asynchronous sends (callbacks) outstanding; no client retries.
//! 2. The master is SIGKILLed at a random moment (300..1500 ms into the load).
//! 3. With the master dead (the route lists the slave alone), a new ali-ons group consumes the
//!    topic from the slave, in the `client` namespace, until it has every message the slave
//!    holds (its max offsets).
//! 4. Asserted: every send whose result was SEND_OK (`SendStatus::SendOk`) was received from
//!    the slave with the same msgId (`UNIQ_KEY`), queue, queue offset and body, byte for byte,
//!    and the same offset msgId (store host and commit-log offset, read from the slave's copy of
//!    the record: the master's record at the master's position), below the slave's max offset
//!    of its queue; no position was received twice.
//! 5. The master restarts on its store.
//!
//! Unlike `tests/ha_netns.rs` (our own client, addressing the slave directly), no round kills
//! the slave too: with master and slave both gone the NameServer drops the broker name's queue
//! data, and a slave registering alone does not bring it back (only broker id 0 registers queue
//! data, as Java 4.x without `enableActingMaster`), so no real client finds a route to it.
//!
//! The master's `syncFlushTimeout` (2 s) is below the client's send timeout (3 s): a slow
//! slave ack is answered FLUSH_SLAVE_TIMEOUT (not SEND_OK) before the client gives up.
//! Takes about 75 s (7 s a round) on a 2-core machine. Needs root (`RMQ_NETNS_SKIP=1` skips).

#![recursion_limit = "512"]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::replica::{mismatches, ReplicaCluster};
use common::*;
use rmq_interop_rust_client::max_offset;
use rocketmq_client_rust::{ClientError, DefaultMQProducer, SendResult};

/// Kill rounds (the issue asks for at least ten).
const ROUNDS: usize = 10;
/// Queues of each round's topic.
const QUEUES: i32 = 4;
/// Concurrent synchronous senders per synchronous producer.
const SYNC_LANES: usize = 12;
/// Asynchronous sends outstanding at most on the callback producer.
const ASYNC_WINDOW: usize = 24;
/// The load runs this long at least, plus a random part below [`KILL_SPREAD_MS`].
const KILL_AFTER_MIN_MS: u64 = 300;
const KILL_SPREAD_MS: u64 = 1_200;
/// Client work of one round: the probe (the slave reconnects to a restarted master within a
/// second or two), the load, and the drain of in-flight sends after the kill.
const ROUND_BUDGET: Duration = Duration::from_secs(90);
/// How long the first SEND_OK may take after the master (re)started.
const PROBE_TIMEOUT: Duration = Duration::from_secs(40);
/// How long in-flight sends may take to end after the kill (the client's send timeout plus
/// slack: a send whose connection died fails at once, one already written at its timeout).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the route may take to list the slave alone after the kill (the NameServer drops
/// the master when its registration connection closes, within milliseconds).
const SLAVE_ROUTE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the ali-ons consumer may take to read a round's topic from the slave.
const ALI_ONS_TIMEOUT: Duration = Duration::from_secs(40);

/// What one round's producers saw.
struct RoundLoad {
    /// Every SEND_OK.
    acked: Vec<Sent>,
    /// Other outcomes by kind (send status or error), for the log.
    others: BTreeMap<String, usize>,
    /// How long the load ran before the kill.
    killed_after: Duration,
}

type Outcomes = Arc<Mutex<(Vec<Sent>, BTreeMap<String, usize>)>>;

fn note(outcomes: &Outcomes, body: &str, result: Option<&SendResult>, error: Option<&ClientError>) {
    let mut log = outcomes.lock().expect("outcomes lock");
    if let Some(e) = error {
        let kind = match e.broker_response_code() {
            Some(code) => format!("broker code {code}"),
            None => "client error".to_owned(),
        };
        *log.1.entry(kind).or_default() += 1;
        return;
    }
    match result {
        Some(r) if r.send_status == rocketmq_client_rust::SendStatus::SendOk => {
            match sent_ok(body, Some(r)) {
                Ok(sent) => log.0.push(sent),
                // A SEND_OK without ids or queue would be a broker (or client) defect: kept as
                // an outcome the assertions below refuse.
                Err(e) => *log.1.entry(format!("malformed SEND_OK: {e}")).or_default() += 1,
            }
        }
        Some(r) => *log.1.entry(format!("{:?}", r.send_status)).or_default() += 1,
        None => *log.1.entry("no result".into()).or_default() += 1,
    }
}

/// Bodies of varying length (below the client's 4 KiB compression threshold), unique per
/// round, producer, lane and sequence number.
fn body_of(round: usize, producer: usize, lane: usize, seq: usize) -> String {
    let pad = "abcdefghij".repeat((seq * 7 + lane) % 40);
    format!("r{round}-p{producer}-l{lane}-m{seq}-{pad}")
}

/// Sends until SEND_OK (the slave follows the restarted master), up to [`PROBE_TIMEOUT`].
async fn probe(producer: &DefaultMQProducer, topic: &str, round: usize) -> Result<Sent, String> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut attempt = 0;
    loop {
        let body = format!("r{round}-probe-{attempt}");
        attempt += 1;
        match send_sync(producer, topic, "Probe", &body).await {
            Ok(sent) => return Ok(sent),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no SEND_OK within {PROBE_TIMEOUT:?}: last {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One round's load: producers started, a SEND_OK probe, then synchronous lanes and an
/// asynchronous window until the master is killed `kill_after` into it.
async fn load_until_killed(
    rt: Arc<rocketmq_client_rust::ClientRuntime>,
    cluster_ns: String,
    master: Arc<Mutex<Rmq>>,
    topic: String,
    round: usize,
    tag: String,
    kill_after: Duration,
) -> Result<RoundLoad, String> {
    let mut producers = Vec::new();
    for p in 0..3 {
        producers.push(producer(&rt, &cluster_ns, &format!("pg_kill_{tag}_{p}")).await?);
    }
    let outcomes: Outcomes = Arc::default();
    let result = async {
        let first = probe(&producers[0], &topic, round).await?;
        outcomes.lock().expect("outcomes lock").0.push(first);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped =
            |stop: &std::sync::atomic::AtomicBool| stop.load(std::sync::atomic::Ordering::Relaxed);
        let mut lanes = Vec::new();
        for (p, producer) in producers.iter().take(2).enumerate() {
            for lane in 0..SYNC_LANES {
                let (producer, outcomes, stop, topic) = (
                    producer.clone(),
                    outcomes.clone(),
                    stop.clone(),
                    topic.clone(),
                );
                lanes.push(tokio::spawn(async move {
                    let mut seq = 0;
                    while !stopped(&stop) {
                        let body = body_of(round, p, lane, seq);
                        seq += 1;
                        let msg = message(&topic, "TagA", &format!("k{p}-{lane}-{seq}"), &body);
                        match producer.send_with_timeout(msg, SEND_TIMEOUT_MS).await {
                            Ok(result) => note(&outcomes, &body, result.as_ref(), None),
                            Err(e) => {
                                note(&outcomes, &body, None, Some(&e));
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }));
            }
        }
        // The asynchronous producer: callbacks, at most ASYNC_WINDOW outstanding.
        let window = Arc::new(tokio::sync::Semaphore::new(ASYNC_WINDOW));
        {
            let (producer, outcomes, stop, topic, window) = (
                producers[2].clone(),
                outcomes.clone(),
                stop.clone(),
                topic.clone(),
                window.clone(),
            );
            lanes.push(tokio::spawn(async move {
                let mut seq = 0;
                while !stopped(&stop) {
                    let Ok(permit) = window.clone().acquire_owned().await else {
                        return;
                    };
                    let body = body_of(round, 2, 0, seq);
                    seq += 1;
                    let msg = message(&topic, "TagA", &format!("k2-{seq}"), &body);
                    let (sink, callback_body) = (outcomes.clone(), body.clone());
                    let permit = Mutex::new(Some(permit));
                    let callback = move |r: Option<&SendResult>, e: Option<&ClientError>| {
                        note(&sink, &callback_body, r, e);
                        drop(permit.lock().expect("permit lock").take());
                    };
                    if let Err(e) = producer
                        .send_with_callback_timeout(msg, callback, SEND_TIMEOUT_MS)
                        .await
                    {
                        note(&outcomes, &body, None, Some(&e));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(kill_after).await;
        master.lock().map_err(|_| "master lock poisoned")?.kill();
        let killed_after = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            for lane in lanes {
                let _ = lane.await;
            }
            // Every callback ran once all permits are back.
            let _ = window.acquire_many(ASYNC_WINDOW as u32).await;
        })
        .await;
        if drained.is_err() {
            // Sends still unanswered are not SEND_OK; what was acknowledged is what counts.
            eprintln!("round {round}: some sends still in flight {DRAIN_TIMEOUT:?} after the kill");
        }
        let (acked, others) = outcomes.lock().expect("outcomes lock").clone();
        Ok(RoundLoad {
            acked,
            others,
            killed_after,
        })
    }
    .await;
    for mut producer in producers {
        producer.shutdown().await;
    }
    result
}

#[test]
fn sync_master_kill_loop_every_send_ok_is_on_the_slave() {
    let sync = ["flushDiskType=SYNC_FLUSH", "syncFlushTimeout=2000"];
    let Some(cluster) = ReplicaCluster::start(
        "ha-kill-loop",
        "SYNC_MASTER",
        &sync,
        &["flushDiskType=SYNC_FLUSH"],
    ) else {
        return;
    };
    let token = run_token();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("kill loop seed {seed}");
    let started = Instant::now();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let round_started = Instant::now();
        let topic = format!("HaKill_{token}_{round}");
        cluster.create_topic(&topic, QUEUES);
        seed = splitmix64(seed);
        let kill_after = Duration::from_millis(KILL_AFTER_MIN_MS + seed % KILL_SPREAD_MS);
        let (ns, master, load_topic, tag) = (
            cluster.ns(),
            cluster.master.clone(),
            topic.clone(),
            format!("{token}_{round}"),
        );
        let load = scenario(&format!("kill-round-{round}"), ROUND_BUDGET, move |rt| {
            load_until_killed(rt, ns, master, load_topic, round, tag, kill_after)
        });
        // The NameServer drops the dead master at once (its registration connection closed).
        let alone = BTreeMap::from([(1, cluster.slave_addr.to_string())]);
        assert!(
            cluster.await_route(&topic, &alone, SLAVE_ROUTE_TIMEOUT),
            "round {round}: the route of {topic} never listed the slave alone"
        );
        let slave_max: Vec<i64> = (0..QUEUES)
            .map(|q| max_offset(cluster.slave_addr, &topic, q).expect("slave max offset"))
            .collect();
        let on_slave: i64 = slave_max.iter().sum();
        let received = cluster
            .ali_ons_consume(
                &topic,
                &format!("cg_kill_{token}_{round}"),
                u64::try_from(on_slave).expect("non-negative"),
                ALI_ONS_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let wrong = mismatches(&load.acked, &received);
        let mut positions: HashMap<(i32, i64), usize> = HashMap::new();
        for m in &received {
            *positions.entry((m.queue_id, m.queue_offset)).or_default() += 1;
        }
        let twice = positions.values().filter(|n| **n > 1).count();
        eprintln!(
            "round {round}: master killed {:?} into the load; {} SEND_OK, others {:?}; slave \
             max offsets {slave_max:?}; ali-ons read {} from the slave ({} positions twice); \
             round took {:.1?}",
            load.killed_after,
            load.acked.len(),
            load.others,
            received.len(),
            twice,
            round_started.elapsed()
        );
        assert!(
            load.acked.len() > 1,
            "round {round}: nothing but the probe was acknowledged"
        );
        assert!(
            wrong.is_empty(),
            "round {round}: {} of {} SEND_OK messages were not read from the slave as sent \
             (ali-ons got {} messages, the slave's max offsets are {slave_max:?}); e.g. {:?}",
            wrong.len(),
            load.acked.len(),
            received.len(),
            wrong.first()
        );
        for sent in &load.acked {
            let max = slave_max[usize::try_from(sent.queue_id).expect("queue id")];
            assert!(
                i64::try_from(sent.queue_offset).expect("offset") < max,
                "round {round}: SEND_OK at queue {} offset {} but the slave's max offset is {max}",
                sent.queue_id,
                sent.queue_offset
            );
        }
        assert_eq!(twice, 0, "round {round}: positions delivered twice");
        total_acked += load.acked.len();
        cluster.restart_master();
    }
    eprintln!(
        "kill loop: {ROUNDS} rounds, {total_acked} SEND_OK all read from the slave, in {:.1?}",
        started.elapsed()
    );
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
