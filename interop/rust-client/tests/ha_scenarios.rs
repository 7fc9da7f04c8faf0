//! Issue 13's replication scenarios driven by real clients, across hosts: a NameServer, a
//! master and its slave (`rmq broker -c`), each in its own network namespace
//! (tests/common/replica.rs on the root crate's netns harness). rocketmq-client-rust producers
//! and push consumers run in the test process (the root namespace, which reaches every node by
//! address); ali-ons runs under `ip netns exec` in a `client` namespace. The same scenarios with
//! our own remoting client are in the root crate's `tests/ha_netns.rs`.
//!
//! - `async_master_kill_loses_at_most_the_lag`: ASYNC_MASTER + SYNC_FLUSH master, producers
//!   with 40 sends in flight; the slave's link is cut (its acks stop, so the master's
//!   `haSlaveAckOffset` read then is its acknowledged end at the kill) and the master is
//!   SIGKILLed 1.5 s later. Asserted (docs/replication.md, "Lag bound"): the slave kept
//!   everything it acknowledged; the lag at the kill (the restarted master's end, which
//!   SYNC_FLUSH makes hold every acknowledged byte, minus that ack) is within the configured
//!   `haMaxGapNotInSync`; what the slave lacks is a suffix of the log and of every queue (each
//!   SEND_OK below the slave's CommitLog end is read from it by ali-ons byte for byte, none
//!   above); the count and bytes it lacks are printed.
//! - `partitioned_slave_sync_sends_fail_fast_then_recover`: SYNC_MASTER; the slave's link is
//!   cut under load. Every send returns within `syncFlushTimeout` plus a margin; those started
//!   during the cut are FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE. When the link returns,
//!   sends are SEND_OK again, the slave's CommitLog end equals the master's, and ali-ons reads
//!   every send that carried a result (SEND_OK and the 11/12 ones, stored on the master) from
//!   the master.
//! - `slave_ahead_of_restarted_master_truncates`: ASYNC_MASTER + ASYNC_FLUSH master that
//!   writes its log only every hour after a durable prefix; the slave receives a tail the
//!   master never wrote; the master is SIGKILLed and restarted without it; the slave truncates
//!   to the master's log (its WARN line). Then ali-ons and rocketmq-client-rust consumers,
//!   new groups, read the topic from the master, and (master killed again) from the slave:
//!   each reads exactly the master's messages (the prefix and the later sends, which took the
//!   lost tail's queue offsets), never one of the lost tail.
//!
//! How rocketmq-client-rust 1.0.0 reports FLUSH_SLAVE_TIMEOUT (12) and SLAVE_NOT_AVAILABLE
//! (11): as Java's client, not as an error. The synchronous `send_with_timeout` returns
//! `Ok(Some(SendResult))` with `send_status` `SendStatus::FlushSlaveTimeout` /
//! `SendStatus::SlaveNotAvailable` (and the msgId, offset msgId, queue and queue offset: the
//! message is stored on the master); an asynchronous send's callback gets `(Some(result),
//! None)` the same way (`mq_client_api_impl/producer.rs`). With
//! `retryAnotherBrokerWhenNotStoreOK` off (its default) the client does not retry them. The
//! partition test asserts exactly this shape.
//!
//! Each runs with one shard per broker and again with two (`*_two_shards`: `shards=2` on both
//! nodes; offsets, acks and ends are compared per shard, a record's shard read from the top 8
//! bits of its offset msgId). About 95 s for the six on a 2-core machine.
//!
//! Must never: assert on speed (only on bounds a hang would pass), or leave the slave's link
//! down (the thread that cuts it restores it whatever the load did).
//!
//! Needs root (`RMQ_NETNS_SKIP=1` skips, see `netns::require`).

#![recursion_limit = "512"]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::replica::{
    max_offsets, mismatches, runtime_i64, runtime_info, AliOnsMessage, ReplicaCluster,
};
use common::*;
use rocketmq_client_rust::{ClientError, ClientRuntime, DefaultMQProducer, SendStatus};
use rocketmq_model::result::SendResult;

/// Queues of each scenario's topic.
const QUEUES: i32 = 4;
/// How long the route may take to list the slave alone after the master's SIGKILL (the
/// NameServer drops the master when its registration connection closes).
const SLAVE_ROUTE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an ali-ons consumer may take to read a topic.
const ALI_ONS_TIMEOUT: Duration = Duration::from_secs(40);
/// How long in-flight sends may take to end once the load stops (the client's send timeout
/// plus slack).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first SEND_OK may take after a (re)start, and the slave to (re)connect.
const READY_TIMEOUT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// Load: synchronous lanes and an asynchronous window, every outcome recorded.

/// One send as the client reported it.
#[derive(Debug, Clone)]
struct Outcome {
    body: String,
    /// When the send started and how long it took.
    started: Instant,
    took: Duration,
    /// The result's status and what it carried, or the client error (described).
    result: Result<(SendStatus, Sent), String>,
}

type Outcomes = Arc<Mutex<Vec<Outcome>>>;

/// A send result of any status, flattened (`sent_ok` requires SEND_OK).
fn flatten(body: &str, r: &SendResult) -> Result<Sent, String> {
    let queue = r
        .message_queue
        .as_ref()
        .ok_or_else(|| format!("{:?} result without a queue", r.send_status))?;
    let msg_id = r.msg_id.as_ref().map(|m| m.to_string()).unwrap_or_default();
    let offset_msg_id = r.offset_msg_id.clone().unwrap_or_default();
    if msg_id.is_empty() || offset_msg_id.is_empty() {
        return Err(format!("{:?} result without ids", r.send_status));
    }
    Ok(Sent {
        body: body.to_owned(),
        msg_id,
        offset_msg_id,
        queue_id: queue.queue_id(),
        queue_offset: r.queue_offset,
    })
}

fn note(
    outcomes: &Outcomes,
    body: &str,
    started: Instant,
    result: Option<&SendResult>,
    error: Option<&ClientError>,
) {
    let result = match (result, error) {
        (_, Some(e)) => Err(describe(e)),
        (Some(r), None) => flatten(body, r).map(|sent| (r.send_status, sent)),
        (None, None) => Err("neither a result nor an error".to_owned()),
    };
    outcomes.lock().expect("outcomes lock").push(Outcome {
        body: body.to_owned(),
        started,
        took: started.elapsed(),
        result,
    });
}

/// Running producers: `sync_lanes` synchronous senders on each producer but the last, and at
/// most `async_window` callback sends outstanding on the last one.
struct Load {
    stop: Arc<AtomicBool>,
    lanes: Vec<tokio::task::JoinHandle<()>>,
    window: Arc<tokio::sync::Semaphore>,
    async_window: usize,
}

fn body_of(label: &str, producer: usize, lane: usize, seq: usize) -> String {
    let pad = "0123456789".repeat((seq * 7 + lane) % 30);
    format!("{label}-p{producer}-l{lane}-m{seq}-{pad}")
}

fn start_load(
    producers: &[DefaultMQProducer],
    topic: &str,
    label: &str,
    sync_lanes: usize,
    async_window: usize,
    outcomes: &Outcomes,
) -> Load {
    assert!(
        producers.len() >= 2,
        "sync producers plus one async producer"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(tokio::sync::Semaphore::new(async_window));
    let mut lanes = Vec::new();
    let (sync_producers, async_producer) = producers.split_at(producers.len() - 1);
    for (p, producer) in sync_producers.iter().enumerate() {
        for lane in 0..sync_lanes {
            let (producer, outcomes, stop) = (producer.clone(), outcomes.clone(), stop.clone());
            let (topic, label) = (topic.to_owned(), label.to_owned());
            lanes.push(tokio::spawn(async move {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = body_of(&label, p, lane, seq);
                    seq += 1;
                    let msg = message(&topic, "TagA", &body, &body);
                    let started = Instant::now();
                    match producer.send_with_timeout(msg, SEND_TIMEOUT_MS).await {
                        Ok(result) => note(&outcomes, &body, started, result.as_ref(), None),
                        Err(e) => {
                            note(&outcomes, &body, started, None, Some(&e));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
    }
    let p = sync_producers.len();
    let (producer, outcomes, stop_flag) =
        (async_producer[0].clone(), outcomes.clone(), stop.clone());
    let (topic, label, permits) = (topic.to_owned(), label.to_owned(), window.clone());
    lanes.push(tokio::spawn(async move {
        let mut seq = 0;
        while !stop_flag.load(Ordering::Relaxed) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let body = body_of(&label, p, 0, seq);
            seq += 1;
            let msg = message(&topic, "TagA", &body, &body);
            let (sink, callback_body) = (outcomes.clone(), body.clone());
            let permit = Mutex::new(Some(permit));
            let started = Instant::now();
            let callback = move |r: Option<&SendResult>, e: Option<&ClientError>| {
                note(&sink, &callback_body, started, r, e);
                drop(permit.lock().expect("permit lock").take());
            };
            if let Err(e) = producer
                .send_with_callback_timeout(msg, callback, SEND_TIMEOUT_MS)
                .await
            {
                note(&outcomes, &body, started, None, Some(&e));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }));
    Load {
        stop,
        lanes,
        window,
        async_window,
    }
}

impl Load {
    /// Stops sending and waits (bounded) until every send ended; returns whether all did.
    async fn stop(self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let window = self.window;
        let permits = u32::try_from(self.async_window).expect("window fits u32");
        tokio::time::timeout(DRAIN_TIMEOUT, async move {
            for lane in self.lanes {
                let _ = lane.await;
            }
            // Every callback ran once all permits are back.
            let _ = window.acquire_many(permits).await;
        })
        .await
        .is_ok()
    }
}

async fn producers(
    rt: &Arc<ClientRuntime>,
    ns: &str,
    group: &str,
    count: usize,
) -> Result<Vec<DefaultMQProducer>, String> {
    let mut all = Vec::new();
    for p in 0..count {
        all.push(producer(rt, ns, &format!("{group}_{p}")).await?);
    }
    Ok(all)
}

async fn shutdown(producers: Vec<DefaultMQProducer>) {
    for mut producer in producers {
        producer.shutdown().await;
    }
}

/// Sends until SEND_OK, up to [`READY_TIMEOUT`].
async fn probe(producer: &DefaultMQProducer, topic: &str, label: &str) -> Result<Sent, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut attempt = 0;
    loop {
        let body = format!("{label}-probe-{attempt}");
        attempt += 1;
        match send_sync(producer, topic, "Probe", &body).await {
            Ok(sent) => return Ok(sent),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no SEND_OK within {READY_TIMEOUT:?}: last {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Runs a blocking probe off the client's async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("blocking task: {e}"))?
}

/// Polls `master`'s runtime info until the slave is connected on every shard.
async fn await_slave_connected(master: SocketAddr, shards: usize) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let want = i64::try_from(shards).expect("shard count");
    loop {
        if blocking(move || runtime_i64(master, "haConnectedShards")).await == Ok(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no slave connected to {master} within {READY_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until `what()` holds, up to `timeout`; returns whether it did.
fn wait_for(timeout: Duration, mut what: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if what() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `shard<N>.<key>` of every shard, as integers, from one runtime info.
///
/// # Errors
/// As [`runtime_info`], or a shard lacks the key.
fn per_shard(broker: SocketAddr, key: &str, shards: usize) -> Result<Vec<i64>, String> {
    let info = runtime_info(broker)?;
    (0..shards)
        .map(|n| {
            info.get(&format!("shard{n}.{key}"))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("runtime info of {broker}: shard{n}.{key} absent"))
        })
        .collect()
}

/// One key of a broker's runtime info (`None` when it does not answer or lacks the key).
fn runtime_info_key(broker: SocketAddr, key: &str) -> Option<String> {
    runtime_info(broker).ok()?.remove(key)
}

fn count_by_kind(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for o in outcomes {
        let kind = match &o.result {
            Ok((status, _)) => format!("{status:?}"),
            Err(e) => format!("error: {}", e.chars().take(80).collect::<String>()),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

fn acked(outcomes: &[Outcome]) -> Vec<Sent> {
    outcomes
        .iter()
        .filter_map(|o| match &o.result {
            Ok((SendStatus::SendOk, sent)) => Some(sent.clone()),
            _ => None,
        })
        .collect()
}

/// The record's shard and shard-local CommitLog offset, from its offset msgId (the shard is
/// in the physical offset's top 8 bits, docs/architecture.md).
fn commit_offset(sent: &Sent) -> (usize, i64) {
    let offset = decode_offset_msg_id(&sent.offset_msg_id)
        .unwrap_or_else(|| panic!("offset msgId {} does not decode", sent.offset_msg_id))
        .1;
    let shard = usize::try_from(offset >> 56).expect("shard fits usize");
    let local = i64::try_from(offset & ((1 << 56) - 1)).expect("56 bits fit i64");
    (shard, local)
}

/// The config line every node of a `shards`-shard replica pair gets (it overrides the
/// harness's `shards=1`: later keys win).
fn shards_line(shards: usize) -> String {
    format!("shards={shards}")
}

/// With the master dead: waits until the route lists the slave alone, then a new ali-ons group
/// reads everything the slave's queues hold. Returns the slave's max offsets and the reads.
fn on_slave(cluster: &ReplicaCluster, topic: &str, group: &str) -> (Vec<i64>, Vec<AliOnsMessage>) {
    let alone = BTreeMap::from([(1, cluster.slave_addr.to_string())]);
    assert!(
        cluster.await_route(topic, &alone, SLAVE_ROUTE_TIMEOUT),
        "the route of {topic} never listed the slave alone"
    );
    let slave_max = max_offsets(cluster.slave_addr, topic, QUEUES).expect("slave max offsets");
    let total: i64 = slave_max.iter().sum();
    let received = cluster
        .ali_ons_consume(
            topic,
            group,
            u64::try_from(total).expect("non-negative"),
            ALI_ONS_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("ali-ons from the slave: {e}"));
    (slave_max, received)
}

// ---------------------------------------------------------------------------------------------
// 1. ASYNC_MASTER killed: what the slave lacks.

/// The lag bound configured on the master (`haMaxGapNotInSync`, bytes).
const MAX_GAP_BYTES: i64 = 8 * 1024 * 1024;
/// How long the load runs with the slave's link cut before the master is killed: the lag the
/// kill turns into loss (ASYNC_MASTER answers SEND_OK without the slave).
const CUT_BEFORE_KILL: Duration = Duration::from_millis(1_500);

/// When each shard (by the offset msgId of the result) first answered SEND_OK to a send
/// started after `since`: the end of that send.
fn first_ok_per_shard(outcomes: &[Outcome], since: Instant) -> BTreeMap<usize, Instant> {
    let mut first = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.started > since) {
        if let Ok((SendStatus::SendOk, sent)) = &o.result {
            let at = o.started + o.took;
            let entry = first.entry(commit_offset(sent).0).or_insert(at);
            *entry = (*entry).min(at);
        }
    }
    first
}

/// Steps of scenario 1, shared by the load (in the client runtime) and the thread that cuts
/// and restores the slave's link.
#[derive(Default)]
struct KillSteps {
    load_running: AtomicBool,
    link_down: AtomicBool,
    master_killed: AtomicBool,
}

/// What the load of scenario 1 saw.
struct AsyncLoad {
    outcomes: Vec<Outcome>,
    /// `shard<N>.haSlaveAckOffset` read after the link went down: no Ack arrives after it, so
    /// it is the slave's acknowledged end (per shard) when the master dies.
    last_ack: Vec<i64>,
    /// `slaveFallBehindMuch` (all shards) read just before the kill.
    behind_before_kill: i64,
}

async fn async_load_until_killed(
    rt: Arc<ClientRuntime>,
    cluster_ns: String,
    master: Arc<Mutex<Rmq>>,
    master_addr: SocketAddr,
    topic: String,
    shards: usize,
    steps: Arc<KillSteps>,
) -> Result<AsyncLoad, String> {
    let all = producers(&rt, &cluster_ns, &format!("pg_lag_{}", run_token()), 3).await?;
    let outcomes: Outcomes = Arc::default();
    let result = async {
        probe(&all[0], &topic, "lag").await?;
        await_slave_connected(master_addr, shards).await?;
        let load = start_load(&all, &topic, "lag", 8, 24, &outcomes);
        steps.load_running.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !steps.link_down.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                return Err("the slave's link never went down".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Acks in flight when the link went down are lost with it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last_ack = blocking(move || per_shard(master_addr, "haSlaveAckOffset", shards)).await?;
        tokio::time::sleep(CUT_BEFORE_KILL).await;
        let behind_before_kill =
            blocking(move || runtime_i64(master_addr, "slaveFallBehindMuch")).await?;
        master.lock().map_err(|_| "master lock poisoned")?.kill();
        steps.master_killed.store(true, Ordering::Relaxed);
        if !load.stop().await {
            eprintln!("some sends still in flight {DRAIN_TIMEOUT:?} after the kill");
        }
        let outcomes = outcomes.lock().expect("outcomes lock").clone();
        Ok(AsyncLoad {
            outcomes,
            last_ack,
            behind_before_kill,
        })
    }
    .await;
    shutdown(all).await;
    result
}

#[test]
fn async_master_kill_loses_at_most_the_lag() {
    async_master_lag(1);
}

#[test]
fn async_master_kill_loses_at_most_the_lag_two_shards() {
    async_master_lag(2);
}

fn async_master_lag(shards: usize) {
    let (gap, shards_conf) = (
        format!("haMaxGapNotInSync={MAX_GAP_BYTES}"),
        shards_line(shards),
    );
    let Some(cluster) = ReplicaCluster::start(
        &format!("ha-async-lag-{shards}"),
        "ASYNC_MASTER",
        &["flushDiskType=SYNC_FLUSH", &gap, &shards_conf],
        &[&shards_conf],
    ) else {
        return;
    };
    let started = Instant::now();
    let topic = format!("HaLag_{}", run_token());
    cluster.create_topic(&topic, QUEUES);
    let steps = Arc::new(KillSteps::default());
    let load = std::thread::scope(|scope| {
        let toggler = scope.spawn(|| {
            let running = wait_for(READY_TIMEOUT * 2, || {
                steps.load_running.load(Ordering::Relaxed)
            });
            if running {
                std::thread::sleep(Duration::from_millis(500));
                cluster.topology.link_down("slave").expect("link down");
                steps.link_down.store(true, Ordering::Relaxed);
                wait_for(Duration::from_secs(30), || {
                    steps.master_killed.load(Ordering::Relaxed)
                });
            }
            cluster.topology.link_up("slave").expect("link up");
        });
        let (ns, master, master_addr) = (cluster.ns(), cluster.master.clone(), cluster.master_addr);
        let (load_topic, load_steps) = (topic.clone(), steps.clone());
        let load = scenario("async-lag", Duration::from_secs(90), move |rt| {
            async_load_until_killed(rt, ns, master, master_addr, load_topic, shards, load_steps)
        });
        toggler.join().expect("link toggler");
        load
    });
    // The slave reads what reached its socket before the link went down (and what the dead
    // master's kernel still delivers); its session ends at the end of that stream.
    let ended = wait_for(Duration::from_secs(30), || {
        (0..shards).all(|n| {
            runtime_info_key(cluster.slave_addr, &format!("shard{n}.haConnected")).as_deref()
                == Some("false")
        })
    });
    assert!(
        ended,
        "the slave's sessions with the dead master never ended"
    );
    let slave_end =
        per_shard(cluster.slave_addr, "commitLogMaxOffset", shards).expect("slave ends");
    let (slave_max, received) = on_slave(&cluster, &topic, &format!("cg_lag_{}", run_token()));
    // SYNC_FLUSH: the restarted master holds every byte it acknowledged before the kill.
    cluster.restart_master();
    let master_end =
        per_shard(cluster.master_addr, "commitLogMaxOffset", shards).expect("master ends");
    let acked = acked(&load.outcomes);
    let (held, lost): (Vec<Sent>, Vec<Sent>) = acked.iter().cloned().partition(|s| {
        let (shard, local) = commit_offset(s);
        local < slave_end[shard]
    });
    let lost_bytes: Vec<i64> = (0..shards).map(|n| master_end[n] - slave_end[n]).collect();
    let lag_at_death: Vec<i64> = (0..shards)
        .map(|n| master_end[n] - load.last_ack[n])
        .collect();
    eprintln!(
        "ASYNC_MASTER ({shards} shards) killed {CUT_BEFORE_KILL:?} after the slave's link was \
         cut: {} SEND_OK (outcomes {:?}); the slave acknowledged up to {:?} (per shard), so the \
         lag at the kill was at least {lag_at_death:?} B (slaveFallBehindMuch {} B just \
         before; bound haMaxGapNotInSync {MAX_GAP_BYTES} B per shard); the slave kept up to \
         {slave_end:?}, the restarted master ends at {master_end:?}: the slave lacks \
         {lost_bytes:?} B = {} SEND_OK; slave max offsets {slave_max:?}; ali-ons read {} from \
         the slave; took {:.1?}",
        acked.len(),
        count_by_kind(&load.outcomes),
        load.last_ack,
        load.behind_before_kill,
        lost.len(),
        received.len(),
        started.elapsed()
    );
    assert!(
        acked.len() > 100,
        "the load acknowledged too little to mean anything"
    );
    for n in 0..shards {
        // The documented bound: an ASYNC_MASTER loses at most what its slave had not
        // acknowledged.
        assert!(
            slave_end[n] >= load.last_ack[n],
            "shard {n}: the slave lost bytes it acknowledged: end {} < ack {}",
            slave_end[n],
            load.last_ack[n]
        );
        assert!(
            master_end[n] >= slave_end[n],
            "shard {n}: the slave ({}) is ahead of its SYNC_FLUSH master ({})",
            slave_end[n],
            master_end[n]
        );
        assert!(
            lag_at_death[n] <= MAX_GAP_BYTES,
            "shard {n}: the lag at the kill, {} B, passed haMaxGapNotInSync {MAX_GAP_BYTES}",
            lag_at_death[n]
        );
    }
    assert!(
        !lost.is_empty(),
        "the slave lacks no SEND_OK: the cut lost nothing"
    );
    // Every SEND_OK below the slave's end is there as sent; every one above is absent.
    let wrong = mismatches(&held, &received);
    assert!(
        wrong.is_empty(),
        "{} of {} SEND_OK below the slave's end were not read from it as sent; e.g. {:?}",
        wrong.len(),
        held.len(),
        wrong.first()
    );
    let keys: BTreeSet<&str> = received.iter().map(|m| m.uniq_key.as_str()).collect();
    let present: Vec<&Sent> = lost
        .iter()
        .filter(|s| keys.contains(s.msg_id.as_str()))
        .collect();
    assert!(
        present.is_empty(),
        "SEND_OK above the slave's end read from it: {:?}",
        present.first()
    );
    // What the slave lacks is the newest of each queue: a suffix.
    for sent in &lost {
        let max = slave_max[usize::try_from(sent.queue_id).expect("queue id")];
        assert!(
            i64::try_from(sent.queue_offset).expect("offset") >= max,
            "queue {}: offset {} lost below the slave's max offset {max}",
            sent.queue_id,
            sent.queue_offset
        );
    }
    assert_eq!(
        u64::try_from(slave_max.iter().sum::<i64>()).expect("non-negative"),
        u64::try_from(received.len()).expect("count"),
        "ali-ons read the slave's messages once each"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. SYNC_MASTER with its slave partitioned.

/// The master's `syncFlushTimeout` (ms), below the client's 3 s send timeout.
const SYNC_FLUSH_TIMEOUT_MS: u64 = 1_000;
/// What a send may take beyond `syncFlushTimeout` on a loaded 2-core machine.
const SEND_MARGIN: Duration = Duration::from_millis(1_500);
/// How long the link stays cut.
const PARTITION: Duration = Duration::from_secs(7);
/// The master's `haMaxGapNotInSync` in the partition test: above what 12 sends in flight put
/// between the master and a connected slave (about 10 KiB of records), below what the cut
/// piles up (12 sends a second of about 850 B each wait `syncFlushTimeout` and fail), so the
/// cut shows FLUSH_SLAVE_TIMEOUT first and SLAVE_NOT_AVAILABLE once the gap passes 32 KiB.
const PARTITION_MAX_GAP_BYTES: u64 = 32 * 1024;

/// When the link went down and came back (set by the thread that toggles it).
#[derive(Default)]
struct LinkTimes {
    load_running: AtomicBool,
    down: Mutex<Option<Instant>>,
    up_started: Mutex<Option<Instant>>,
}

async fn partitioned_load(
    rt: Arc<ClientRuntime>,
    ns: String,
    topic: String,
    tag: String,
    shards: usize,
    link: Arc<LinkTimes>,
) -> Result<Vec<Outcome>, String> {
    let all = producers(&rt, &ns, &format!("pg_part_{tag}"), 3).await?;
    let outcomes: Outcomes = Arc::default();
    let result = async {
        probe(&all[0], &topic, "part").await?;
        let load = start_load(&all, &topic, "part", 4, 8, &outcomes);
        link.load_running.store(true, Ordering::Relaxed);
        // Run until the link came back and sends were SEND_OK again on every shard (each
        // shard's slave session reconnects on its own), then for a while more.
        let deadline = Instant::now() + Duration::from_secs(60);
        let healed = loop {
            let up = *link.up_started.lock().expect("link lock");
            let healed_shards = up.map_or(0, |up| {
                first_ok_per_shard(&outcomes.lock().expect("outcomes lock"), up).len()
            });
            if healed_shards == shards {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if healed {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let drained = load.stop().await;
        let outcomes = outcomes.lock().expect("outcomes lock").clone();
        if !drained {
            return Err(format!(
                "sends still unanswered {DRAIN_TIMEOUT:?} after the load stopped: {:?}",
                count_by_kind(&outcomes)
            ));
        }
        Ok(outcomes)
    }
    .await;
    shutdown(all).await;
    result
}

#[test]
fn partitioned_slave_sync_sends_fail_fast_then_recover() {
    partitioned_slave(1);
}

#[test]
fn partitioned_slave_sync_sends_fail_fast_then_recover_two_shards() {
    partitioned_slave(2);
}

fn partitioned_slave(shards: usize) {
    let timeout = format!("syncFlushTimeout={SYNC_FLUSH_TIMEOUT_MS}");
    // The gap is per shard; each shard sees its share of the sends in flight.
    let gap = format!(
        "haMaxGapNotInSync={}",
        PARTITION_MAX_GAP_BYTES / u64::try_from(shards).expect("shard count")
    );
    let shards_conf = shards_line(shards);
    let Some(cluster) = ReplicaCluster::start(
        &format!("ha-partition-{shards}"),
        "SYNC_MASTER",
        &[&timeout, &gap, &shards_conf],
        &[&shards_conf],
    ) else {
        return;
    };
    let started = Instant::now();
    let token = run_token();
    let topic = format!("HaPart_{token}");
    cluster.create_topic(&topic, QUEUES);
    let link = Arc::new(LinkTimes::default());
    let outcomes = std::thread::scope(|scope| {
        let toggler = scope.spawn(|| {
            assert!(
                wait_for(READY_TIMEOUT * 2, || link
                    .load_running
                    .load(Ordering::Relaxed)),
                "the load never started"
            );
            std::thread::sleep(Duration::from_secs(1));
            cluster.topology.link_down("slave").expect("link down");
            *link.down.lock().expect("link lock") = Some(Instant::now());
            std::thread::sleep(PARTITION);
            *link.up_started.lock().expect("link lock") = Some(Instant::now());
            cluster.topology.link_up("slave").expect("link up");
        });
        let (ns, load_topic, load_link) = (cluster.ns(), topic.clone(), link.clone());
        let outcomes = scenario("partition", Duration::from_secs(120), move |rt| {
            partitioned_load(rt, ns, load_topic, token, shards, load_link)
        });
        toggler.join().expect("link toggler");
        outcomes
    });
    let down = link
        .down
        .lock()
        .expect("link lock")
        .expect("link went down");
    let up = link
        .up_started
        .lock()
        .expect("link lock")
        .expect("link came up");
    let bound = Duration::from_millis(SYNC_FLUSH_TIMEOUT_MS) + SEND_MARGIN;
    let during: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started > down && o.started + o.took < up)
        .collect();
    let first_ok_after = first_ok_per_shard(&outcomes, up);
    assert_eq!(
        first_ok_after.len(),
        shards,
        "not every shard answered SEND_OK after the link returned"
    );
    // On each shard, the sends started after its first SEND_OK since the link returned.
    let after: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| match &o.result {
            Ok((_, sent)) => o.started > first_ok_after[&commit_offset(sent).0],
            Err(_) => false,
        })
        .collect();
    let healed_after: Vec<Duration> = first_ok_after.values().map(|at| *at - up).collect();
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap_or_default();
    let during_kinds = count_by_kind(&during.iter().map(|o| (*o).clone()).collect::<Vec<_>>());
    eprintln!(
        "partition ({shards} shards, {gap}): {} sends, all outcomes {:?}; during the cut \
         {during_kinds:?}; slowest send \
         {slowest:?} (bound {bound:?}); first SEND_OK per shard {healed_after:?} after the link \
         returned; {} sends after those",
        outcomes.len(),
        count_by_kind(&outcomes),
        after.len()
    );
    // Nothing hangs, and no send failed as an error: each carried a result.
    for o in &outcomes {
        assert!(
            o.took < bound,
            "send {} took {:?} (syncFlushTimeout {SYNC_FLUSH_TIMEOUT_MS} ms)",
            o.body,
            o.took
        );
        assert!(o.result.is_ok(), "send {}: {:?}", o.body, o.result);
    }
    assert!(
        during.len() > 5,
        "too few sends during the cut: {}",
        during.len()
    );
    for o in &during {
        let status = o.result.as_ref().map(|(s, _)| *s).expect("checked above");
        assert!(
            matches!(
                status,
                SendStatus::FlushSlaveTimeout | SendStatus::SlaveNotAvailable
            ),
            "send {} during the cut answered {status:?}",
            o.body
        );
    }
    for kind in ["FlushSlaveTimeout", "SlaveNotAvailable"] {
        assert!(
            during_kinds.contains_key(kind),
            "no {kind} during the cut: {during_kinds:?}"
        );
    }
    assert!(
        after.len() > 5,
        "too few sends after the heal: {}",
        after.len()
    );
    for o in &after {
        let status = o.result.as_ref().map(|(s, _)| *s).expect("checked above");
        assert_eq!(status, SendStatus::SendOk, "send {} after the heal", o.body);
    }
    // The slave caught up: its CommitLog ends where the master's does.
    let mut ends = (Vec::new(), Vec::new());
    let caught_up = wait_for(Duration::from_secs(30), || {
        ends = (
            per_shard(cluster.master_addr, "commitLogMaxOffset", shards).unwrap_or_default(),
            per_shard(cluster.slave_addr, "commitLogMaxOffset", shards).unwrap_or_default(),
        );
        ends.0.len() == shards && ends.0 == ends.1
    });
    eprintln!("commit log ends (master, slave): {ends:?}");
    assert!(
        caught_up,
        "the slave never caught up: (master, slave) ends {ends:?}"
    );
    // Every send that carried a result is stored on the master, readable by ali-ons.
    let stored: Vec<Sent> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|(_, sent)| sent.clone()))
        .collect();
    let master_max = max_offsets(cluster.master_addr, &topic, QUEUES).expect("master offsets");
    let total: i64 = master_max.iter().sum();
    let received = cluster
        .ali_ons_consume(
            &topic,
            &format!("cg_part_{}", run_token()),
            u64::try_from(total).expect("non-negative"),
            ALI_ONS_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("ali-ons from the master: {e}"));
    let wrong = mismatches(&stored, &received);
    eprintln!(
        "ali-ons read {} from the master (max offsets {master_max:?}); {} sends with a result; \
         scenario took {:.1?}",
        received.len(),
        stored.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} stored sends not read from the master as sent; e.g. {:?}",
        wrong.len(),
        stored.len(),
        wrong.first()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Divergence: the slave ahead of its restarted master.

/// Messages of the durable prefix, of the tail the master loses, and sent after the restart.
const PREFIX: usize = 40;
const LOST: usize = 120;
const AFTER: usize = 60;

/// A probe (sent until SEND_OK), then `count` numbered messages synchronously, each SEND_OK;
/// returns them all.
async fn send_numbered(
    rt: Arc<ClientRuntime>,
    ns: String,
    topic: String,
    label: String,
    count: usize,
) -> Result<Vec<Sent>, String> {
    let producer = producer(&rt, &ns, &format!("pg_div_{label}_{}", run_token())).await?;
    let result = async {
        // The probe is stored too: it counts among what the master holds.
        let mut sent = vec![probe(&producer, &topic, &label).await?];
        for i in 0..count {
            sent.push(send_sync(&producer, &topic, "TagA", &format!("{label}-{i}")).await?);
        }
        Ok(sent)
    }
    .await;
    shutdown(vec![producer]).await;
    result
}

/// A rocketmq-client-rust push consumer in a new group reads `topic` until it has `expected`
/// distinct positions (plus [`SETTLE`] for strays).
async fn rust_consume(
    rt: Arc<ClientRuntime>,
    ns: String,
    topic: String,
    group: String,
    expected: usize,
) -> Result<Vec<Received>, String> {
    let inbox = inbox();
    let spec = ConsumerSpec::new(&ns, &group, &group, &topic);
    let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
    let positions = |inbox: &Inbox| {
        snapshot(inbox)
            .iter()
            .map(|r| (r.queue_id, r.queue_offset))
            .collect::<BTreeSet<_>>()
            .len()
    };
    let all = wait_until(Duration::from_secs(40), || positions(&inbox) >= expected).await;
    if all {
        tokio::time::sleep(SETTLE).await;
    }
    consumer.shutdown().await;
    if !all {
        return Err(format!(
            "{group} read {}/{expected} positions",
            positions(&inbox)
        ));
    }
    Ok(snapshot(&inbox))
}

/// What a consumer read, as (UNIQ_KEY, body, queue, queue offset), sorted.
type Reads = BTreeSet<(String, Vec<u8>, i32, i64)>;

fn ali_reads(received: &[AliOnsMessage]) -> Reads {
    received
        .iter()
        .map(|m| {
            (
                m.uniq_key.clone(),
                m.body.clone(),
                m.queue_id,
                m.queue_offset,
            )
        })
        .collect()
}

fn rust_reads(received: &[Received]) -> Reads {
    received
        .iter()
        .map(|r| {
            (
                r.uniq_key.clone(),
                r.body.clone().into_bytes(),
                r.queue_id,
                r.queue_offset,
            )
        })
        .collect()
}

fn sent_reads(sent: &[Sent]) -> Reads {
    sent.iter()
        .map(|s| {
            (
                s.msg_id.clone(),
                s.body.clone().into_bytes(),
                s.queue_id,
                i64::try_from(s.queue_offset).expect("offset"),
            )
        })
        .collect()
}

fn run_sends(cluster: &ReplicaCluster, topic: &str, label: &str, count: usize) -> Vec<Sent> {
    let (ns, topic, label_owned) = (cluster.ns(), topic.to_owned(), label.to_owned());
    scenario(label, Duration::from_secs(90), move |rt| {
        send_numbered(rt, ns, topic, label_owned, count)
    })
}

fn run_rust_consumer(cluster: &ReplicaCluster, topic: &str, group: &str, n: usize) -> Reads {
    let (ns, topic, group) = (cluster.ns(), topic.to_owned(), group.to_owned());
    let label = group.clone();
    let received = scenario(&label, Duration::from_secs(60), move |rt| {
        rust_consume(rt, ns, topic, group, n)
    });
    let reads = rust_reads(&received);
    assert_eq!(
        reads.len(),
        received
            .iter()
            .map(|r| (r.queue_id, r.queue_offset))
            .collect::<BTreeSet<_>>()
            .len(),
        "one message per position"
    );
    reads
}

fn await_slave_offsets(cluster: &ReplicaCluster, topic: &str, want: &[i64]) {
    let mut got = Vec::new();
    assert!(
        wait_for(Duration::from_secs(30), || {
            got = max_offsets(cluster.slave_addr, topic, QUEUES).unwrap_or_default();
            got == want
        }),
        "the slave's max offsets {got:?} never reached {want:?}"
    );
}

#[test]
fn slave_ahead_of_restarted_master_truncates() {
    divergence(1);
}

#[test]
fn slave_ahead_of_restarted_master_truncates_two_shards() {
    divergence(2);
}

fn divergence(shards: usize) {
    let shards_conf = shards_line(shards);
    let Some(cluster) = ReplicaCluster::start(
        &format!("ha-divergence-{shards}"),
        "ASYNC_MASTER",
        &["flushDiskType=ASYNC_FLUSH", &shards_conf],
        &[&shards_conf],
    ) else {
        return;
    };
    let started = Instant::now();
    let token = run_token();
    let topic = format!("HaDiv_{token}");
    cluster.create_topic(&topic, QUEUES);
    // The prefix: written within commitIntervalCommitLog (10 ms), so it survives a SIGKILL.
    let prefix = run_sends(&cluster, &topic, "prefix", PREFIX);
    let prefix_max = max_offsets(cluster.master_addr, &topic, QUEUES).expect("master offsets");
    await_slave_offsets(&cluster, &topic, &prefix_max);
    cluster.kill_master();
    // From now on the master writes its log only every hour: the next tail stays in memory.
    cluster.set_master_config("commitIntervalCommitLog", "3600000");
    cluster.set_master_config("flushIntervalCommitLog", "3600000");
    cluster.restart_master();
    let restarted = max_offsets(cluster.master_addr, &topic, QUEUES).expect("master offsets");
    assert_eq!(
        restarted, prefix_max,
        "the written prefix survived the SIGKILL"
    );
    let lost = run_sends(&cluster, &topic, "lost", LOST);
    let lost_max = max_offsets(cluster.master_addr, &topic, QUEUES).expect("master offsets");
    await_slave_offsets(&cluster, &topic, &lost_max);
    let slave_end_before =
        per_shard(cluster.slave_addr, "commitLogMaxOffset", shards).expect("slave ends");
    cluster.kill_master();
    cluster.restart_master();
    let kept = max_offsets(cluster.master_addr, &topic, QUEUES).expect("master offsets");
    let master_end =
        per_shard(cluster.master_addr, "commitLogMaxOffset", shards).expect("master ends");
    assert_eq!(
        kept, prefix_max,
        "the master lost exactly its unwritten tail"
    );
    let ahead = (0..shards)
        .filter(|n| master_end[*n] < slave_end_before[*n])
        .count();
    assert!(ahead > 0, "the slave is ahead of its master on some shard");
    assert!(
        (0..shards).all(|n| master_end[n] <= slave_end_before[n]),
        "the slave is never behind a master it had followed: {slave_end_before:?} vs \
         {master_end:?}"
    );
    // The slave reconnects and is told to truncate to the master's log.
    let truncation = "truncating this slave's log to the master's";
    assert!(
        wait_for(READY_TIMEOUT, || {
            cluster.slave_log_lines_with(truncation).len() >= ahead
        }),
        "the slave did not truncate on each of the {ahead} shards it was ahead on"
    );
    let after = run_sends(&cluster, &topic, "after", AFTER);
    let master_max = max_offsets(cluster.master_addr, &topic, QUEUES).expect("master offsets");
    await_slave_offsets(&cluster, &topic, &master_max);
    let ends = (
        per_shard(cluster.master_addr, "commitLogMaxOffset", shards).expect("master ends"),
        per_shard(cluster.slave_addr, "commitLogMaxOffset", shards).expect("slave ends"),
    );
    assert_eq!(
        ends.0, ends.1,
        "(master, slave) CommitLog ends after the catch-up"
    );
    // The later sends took the lost tail's positions (new records at the same offsets).
    let lost_positions: BTreeSet<(i32, u64)> =
        lost.iter().map(|s| (s.queue_id, s.queue_offset)).collect();
    let reused = after
        .iter()
        .filter(|s| lost_positions.contains(&(s.queue_id, s.queue_offset)))
        .count();
    let mut master_has = prefix.clone();
    master_has.extend(after.iter().cloned());
    let want = sent_reads(&master_has);
    let lost_keys: BTreeSet<&str> = lost.iter().map(|s| s.msg_id.as_str()).collect();
    let total = usize::try_from(master_max.iter().sum::<i64>()).expect("count");
    assert_eq!(
        total,
        master_has.len(),
        "the master holds the prefix and the later sends (each with its probe)"
    );
    let mut reads: Vec<(&str, Reads, Vec<AliOnsMessage>)> = Vec::new();
    // From the master (alive: pulls go to broker id 0).
    let from_master = cluster
        .ali_ons_consume(
            &topic,
            &format!("cg_div_m_{token}"),
            u64::try_from(total).expect("count"),
            ALI_ONS_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("ali-ons from the master: {e}"));
    reads.push(("ali-ons, master", ali_reads(&from_master), from_master));
    let rust_master = run_rust_consumer(&cluster, &topic, &format!("cg_div_rm_{token}"), total);
    reads.push(("rocketmq-client-rust, master", rust_master, Vec::new()));
    // From the slave alone (the master killed again; its log stays as it is).
    cluster.kill_master();
    let (slave_max, from_slave) = on_slave(&cluster, &topic, &format!("cg_div_s_{token}"));
    assert_eq!(
        slave_max, master_max,
        "the slave's queues end where the master's do"
    );
    reads.push(("ali-ons, slave", ali_reads(&from_slave), from_slave));
    let rust_slave = run_rust_consumer(&cluster, &topic, &format!("cg_div_rs_{token}"), total);
    reads.push(("rocketmq-client-rust, slave", rust_slave, Vec::new()));
    eprintln!(
        "divergence ({shards} shards): prefix {PREFIX}, lost {LOST}, after {AFTER} ({reused} \
         took a lost \
         position); slave ends {slave_end_before:?} before, master ends {master_end:?} after the \
         restart; truncation lines {:?}; took {:.1?}",
        cluster.slave_log_lines_with(truncation),
        started.elapsed()
    );
    assert!(reused > 0, "no later send took a lost position");
    for (who, got, ali) in &reads {
        let read_lost: Vec<&str> = got
            .iter()
            .map(|(key, _, _, _)| key.as_str())
            .filter(|key| lost_keys.contains(key))
            .collect();
        assert!(
            read_lost.is_empty(),
            "{who} read lost messages: {read_lost:?}"
        );
        assert_eq!(got.len(), total, "{who} read every position once");
        assert_eq!(got, &want, "{who} read exactly the master's messages");
        // ali-ons also derives the offset msgId from the record: the master's position.
        let wrong = mismatches(&master_has, ali);
        assert!(
            ali.is_empty() || wrong.is_empty(),
            "{who}: {:?}",
            wrong.first()
        );
    }
    let by_who: HashMap<&str, usize> = reads.iter().map(|(w, r, _)| (*w, r.len())).collect();
    eprintln!("reads: {by_who:?}");
}
