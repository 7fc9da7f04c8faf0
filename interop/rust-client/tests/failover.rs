//! Master failover seen through real clients across hosts: a NameServer, an ASYNC_MASTER and
//! its SLAVE (`rmq broker -c`, one shard each), each in its own network namespace
//! (tests/common/replica.rs, on the root crate's netns harness); the master is SIGKILLed with
//! messages the consumer has not read yet, which the slave holds. rocketmq-client-rust runs in
//! the test process (the root namespace, which reaches every node by address); ali-ons runs in
//! a `client` namespace. Needs root (`RMQ_NETNS_SKIP=1` skips).
//!
//! - `running_consumer_fails_over_to_the_slave`: a rocketmq-client-rust push consumer that
//!   consumed (and committed to the master) a first batch keeps consuming from the slave after
//!   the master dies: it gets every message of the second batch and no message twice (0 of the
//!   committed first batch again); restarted afterwards, it resumes from the offsets it
//!   committed to the slave after the failover. Then a new ali-ons group, with the master still
//!   dead, reads every acknowledged message (both batches and the fences) from the slave, byte
//!   for byte.
//! - `restarted_consumer_resumes_from_master_commits_on_the_slave`: a consumer started only
//!   after the master died (the slave synced the group's offsets from its master)
//!   reads the offsets the group committed to the master from the slave, and does not start
//!   again from offset 0.
//!
//! How the client fails over (rocketmq-client-rust 1.0.0, as Java's client): pulls go to the
//! broker id the last pull reply suggested (`suggestWhichBrokerId`, master 0 at first) through
//! `findBrokerAddressInSubscribe(name, id, false)`, which falls back to any address of the
//! broker name when that id is absent. The killed master's connection to the NameServer
//! closes, so the NameServer drops it from the route at once (the slave and the topic's queue
//! data stay); the client sees that route on its next poll (`pollNameServerInterval`, 30 s by
//! default, left at the default here), and until then its pulls to the dead master fail and are
//! retried 3 s later. Its queues stay assigned (same broker name, same queue ids), so the pull
//! requests keep their in-memory offsets: no offset is read from the slave for them.
//!
//! The topic is created on both brokers (`rmq admin update-topic -b`), so the test does not wait
//! for the slave's periodic sync of topic configs (`slaveSyncIntervalMillis`).

#![recursion_limit = "512"]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::replica::{broker_ids, mismatches, ReplicaCluster};
use common::*;
use rmq_interop_rust_client::{committed_offset, max_offset};
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;

/// Client-work budget of one scenario (the failover alone may take the client's 30 s route
/// poll plus its 3 s pull-retry delay).
const BUDGET: Duration = Duration::from_secs(240);
/// Messages per batch.
const BATCH: usize = 100;
/// Queues of the test topic (on both brokers).
const QUEUES: i32 = 4;
/// How long a batch may take to be consumed from a live master.
const BATCH_CONSUME_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest a suspended consumer's pull can stay parked on the broker: the client's long-poll
/// suspend time (15 s) plus slack. After it, no pull issued before `suspend()` is in flight.
const PARKED_PULL_MAX: Duration = Duration::from_secs(18);
/// How long the group's commits (every `PERSIST_OFFSET_INTERVAL_MS` = 1 s) may take to reach
/// the broker.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the slave may take to hold everything the master has (ASYNC_MASTER lag on an idle
/// loopback pair is milliseconds; slack for a loaded 2-core machine).
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the NameServer may take to drop the killed master (it does on the closed
/// registration connection; its 120 s heartbeat expiry would be far later).
const ROUTE_DROP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the consumer may take, after the kill, to receive the second batch from the slave:
/// the client's 30 s route poll + its 3 s pull-exception delay + slack.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a restarted consumer is watched for re-deliveries: its first rebalance and pulls
/// take about a second; stale offsets would show within this.
const RESTART_WATCH: Duration = Duration::from_secs(10);
/// How long the ali-ons consumer may take to read the topic from the slave.
const ALI_ONS_TIMEOUT: Duration = Duration::from_secs(40);
/// How long the slave is given to learn the group's offsets from its master (Java's slave
/// syncs them every 10 s).
const OFFSET_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a blocking probe off the client runtime's async threads.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("probe task: {e}"))?
        .map_err(|e| format!("probe: {e}"))
}

/// Max offset of every queue of `topic` on `broker`.
async fn max_offsets(broker: SocketAddr, topic: &str) -> Result<Vec<i64>, String> {
    let topic = topic.to_owned();
    off_thread(move || (0..QUEUES).map(|q| max_offset(broker, &topic, q)).collect()).await
}

/// The offsets `group` committed on `broker`, per queue (`None`: QUERY_NOT_FOUND).
async fn committed_offsets(
    broker: SocketAddr,
    group: &str,
    topic: &str,
) -> Result<Vec<Option<i64>>, String> {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    off_thread(move || {
        (0..QUEUES)
            .map(|q| committed_offset(broker, &group, &topic, q))
            .collect()
    })
    .await
}

/// Polls `probe` every 200 ms until it returns a value `done` accepts or `timeout` passes;
/// returns the last value and whether it was accepted.
async fn poll_until<T, Fut>(
    timeout: Duration,
    mut probe: impl FnMut() -> Fut,
    done: impl Fn(&T) -> bool,
) -> Result<(T, bool), String>
where
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe().await?;
        if done(&value) {
            return Ok((value, true));
        }
        if Instant::now() >= deadline {
            return Ok((value, false));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `count` messages `<prefix>-<i>` synchronously (the client spreads them over the
/// queues); every send must be SEND_OK.
async fn send_batch(
    producer: &DefaultMQProducer,
    topic: &str,
    prefix: &str,
    count: usize,
) -> Result<Vec<Sent>, String> {
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        sent.push(send_sync(producer, topic, "TagA", &format!("{prefix}-{i}")).await?);
    }
    Ok(sent)
}

/// Sends `body` to queue `queue_id` (a MessageQueueSelector picking it).
async fn send_to_queue(
    producer: &DefaultMQProducer,
    topic: &str,
    queue_id: i32,
    body: &str,
) -> Result<Sent, String> {
    let selector = |mqs: &[MessageQueue], _msg: &Message, queue_id: &i32| {
        mqs.iter().find(|mq| mq.queue_id() == *queue_id).cloned()
    };
    let result = producer
        .send_with_selector_timeout(
            message(topic, "TagA", body, body),
            selector,
            queue_id,
            SEND_TIMEOUT_MS,
        )
        .await
        .map_err(|e| format!("send of {body}: {}", describe(&e)))?;
    sent_ok(body, result.as_ref())
}

/// Per queue, the offset after the last message received from it (what a consumer that
/// acknowledged all of them commits); queues it received nothing from are absent.
fn consumed_up_to(received: &[Received]) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for r in received {
        let entry = next.entry(r.queue_id).or_insert(0);
        *entry = (*entry).max(r.queue_offset + 1);
    }
    next
}

fn bodies(sent: &[Sent]) -> BTreeSet<String> {
    sent.iter().map(|s| s.body.clone()).collect()
}

/// Receptions beyond the first of each body in `of` (0 = each at most once).
fn duplicates(received: &[Received], of: &BTreeSet<String>) -> usize {
    body_counts(received)
        .iter()
        .filter(|(body, _)| of.contains(*body))
        .map(|(_, n)| n - 1)
        .sum()
}

/// Addresses and names one scenario works with (cloned into the client thread).
#[derive(Clone)]
struct Ctx {
    ns: String,
    namesrv_addr: SocketAddr,
    master_addr: SocketAddr,
    slave_addr: SocketAddr,
    master: Arc<Mutex<Rmq>>,
    topic: String,
    group: String,
    token: String,
}

impl Ctx {
    fn new(pair: &ReplicaCluster, token: &str, topic: String, group: String) -> Self {
        Self {
            ns: pair.ns(),
            namesrv_addr: pair.namesrv_addr,
            master_addr: pair.master_addr,
            slave_addr: pair.slave_addr,
            master: pair.master.clone(),
            topic,
            group,
            token: token.to_owned(),
        }
    }

    /// The route's broker ids -> addresses, probed off the async threads.
    async fn route_ids(&self) -> Result<Option<BTreeMap<u64, String>>, String> {
        let (namesrv, topic) = (self.namesrv_addr, self.topic.clone());
        off_thread(move || Ok(broker_ids(namesrv, &topic))).await
    }

    /// Waits until the group's commits on `broker` equal `want` per queue.
    async fn await_commits(
        &self,
        broker: SocketAddr,
        want: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<(Vec<Option<i64>>, bool), String> {
        poll_until(
            timeout,
            || committed_offsets(broker, &self.group, &self.topic),
            |c: &Vec<Option<i64>>| (0..QUEUES).all(|q| c[q as usize] == want.get(&q).copied()),
        )
        .await
    }

    /// Waits until the slave's max offsets equal the master's (call while the master lives).
    async fn await_slave_caught_up(&self) -> Result<Vec<i64>, String> {
        let master_max = max_offsets(self.master_addr, &self.topic).await?;
        let (slave_max, caught_up) = poll_until(
            REPLICATION_TIMEOUT,
            || max_offsets(self.slave_addr, &self.topic),
            |m: &Vec<i64>| *m == master_max,
        )
        .await?;
        if caught_up {
            Ok(slave_max)
        } else {
            Err(format!(
                "the slave never held what the master has within {REPLICATION_TIMEOUT:?}: \
                 slave {slave_max:?}, master {master_max:?}"
            ))
        }
    }

    /// SIGKILLs the master and waits until the NameServer's route lists the slave alone;
    /// returns how long that took (`None`: not within [`ROUTE_DROP_TIMEOUT`]).
    async fn kill_master(&self) -> Result<Option<Duration>, String> {
        self.master
            .lock()
            .map_err(|_| "master lock poisoned".to_owned())?
            .kill();
        let killed = Instant::now();
        let (_, dropped) = poll_until(
            ROUTE_DROP_TIMEOUT,
            || self.route_ids(),
            |ids: &Option<BTreeMap<u64, String>>| {
                ids.as_ref().is_some_and(|ids| ids.keys().eq([&1]))
            },
        )
        .await?;
        Ok(dropped.then(|| killed.elapsed()))
    }

    /// Starts a consumer of the group (instance `instance`) while only the slave is up and
    /// returns what it received within [`RESTART_WATCH`].
    async fn watch_restarted(
        &self,
        rt: &Arc<rocketmq_client_rust::ClientRuntime>,
        instance: &str,
    ) -> Result<Vec<Received>, String> {
        let inbox = inbox();
        let spec = ConsumerSpec::new(&self.ns, &self.group, instance, &self.topic);
        let (mut consumer, _) = start_consumer(rt, &spec, &inbox).await?;
        tokio::time::sleep(RESTART_WATCH).await;
        consumer.shutdown().await;
        Ok(snapshot(&inbox))
    }
}

/// Waits until `inbox` holds every body of `want`; returns whether it did.
async fn await_bodies(inbox: &Inbox, want: &BTreeSet<String>, timeout: Duration) -> bool {
    wait_until(timeout, || distinct_bodies(inbox, None).is_superset(want)).await
}

/// What the running-consumer scenario observed.
struct FailoverRun {
    batch1: Vec<Sent>,
    fences: Vec<Sent>,
    batch2: Vec<Sent>,
    /// Everything received before the master was killed.
    before_kill: Vec<Received>,
    /// Everything the first consumer received (before and after the kill).
    all: Vec<Received>,
    /// The group's commits on the master just before the kill.
    master_committed: Vec<Option<i64>>,
    /// The slave's max offsets at the kill (equal to the master's).
    slave_max: Vec<i64>,
    /// Kill -> the NameServer's route listing the slave alone.
    route_dropped: Option<Duration>,
    /// Resume -> first, and all, second-batch messages received.
    first_after_resume: Option<Duration>,
    all_after_resume: Duration,
    /// The group's commits on the slave after the first consumer shut down.
    slave_committed: Vec<Option<i64>>,
    /// What a consumer of the group started afterwards (master still dead) received.
    restarted: Vec<Received>,
}

/// Phases 1-3 of [`running_consumer_fails_over_to_the_slave`] with the first consumer
/// running; fills everything but the restart fields.
async fn fail_over_running(
    ctx: &Ctx,
    producer: &DefaultMQProducer,
    consumer: &mut rocketmq_client_rust::DefaultMQPushConsumer,
    inbox: &Inbox,
    batch1: Vec<Sent>,
) -> Result<FailoverRun, String> {
    let want1 = bodies(&batch1);
    if !await_bodies(inbox, &want1, BATCH_CONSUME_TIMEOUT).await {
        return Err(format!(
            "the first batch was not consumed from the live master within \
             {BATCH_CONSUME_TIMEOUT:?}: {}/{BATCH}",
            distinct_bodies(inbox, None).intersection(&want1).count()
        ));
    }
    consumer.suspend().await;
    let mut fences = Vec::new();
    for q in 0..QUEUES {
        fences.push(send_to_queue(producer, &ctx.topic, q, &format!("fence-{q}")).await?);
    }
    // A pull parked on the master before the suspension returns its queue's fence; a queue
    // whose pull was not parked then gets none now, and waiting out the long-poll bound
    // covers that case.
    await_bodies(inbox, &bodies(&fences), PARKED_PULL_MAX).await;
    let consumed = consumed_up_to(&snapshot(inbox));
    let (master_committed, committed) = ctx
        .await_commits(ctx.master_addr, &consumed, COMMIT_TIMEOUT)
        .await?;
    if !committed {
        return Err(format!(
            "the group's commits on the master never reached what it consumed within \
             {COMMIT_TIMEOUT:?}: committed {master_committed:?}, consumed up to {consumed:?}"
        ));
    }
    let batch2 = send_batch(producer, &ctx.topic, "two", BATCH).await?;
    let slave_max = ctx.await_slave_caught_up().await?;
    let before_kill = snapshot(inbox);
    let route_dropped = ctx.kill_master().await?;
    consumer.resume().await;
    let resumed = Instant::now();
    let want2 = bodies(&batch2);
    let mut first_after_resume = None;
    let all = wait_until(FAILOVER_TIMEOUT, || {
        let got = distinct_bodies(inbox, None);
        if first_after_resume.is_none() && got.iter().any(|b| want2.contains(b)) {
            first_after_resume = Some(resumed.elapsed());
        }
        got.is_superset(&want2)
    })
    .await;
    let all_after_resume = resumed.elapsed();
    if !all {
        let got = distinct_bodies(inbox, None);
        let slave_now = max_offsets(ctx.slave_addr, &ctx.topic).await;
        let slave_commits = committed_offsets(ctx.slave_addr, &ctx.group, &ctx.topic).await;
        return Err(format!(
            "after the master's kill the consumer received {}/{BATCH} of the second batch \
             within {FAILOVER_TIMEOUT:?} of resuming (first one after {first_after_resume:?}); \
             route now {:?} (dropped after {route_dropped:?}); slave max offsets {slave_now:?} \
             (at the kill {slave_max:?}); group commits on the slave {slave_commits:?}; \
             missing e.g. {:?}",
            got.intersection(&want2).count(),
            ctx.route_ids().await,
            want2.difference(&got).take(8).collect::<Vec<_>>()
        ));
    }
    // Catch late duplicates, and let a commit or two reach the slave.
    tokio::time::sleep(SETTLE + Duration::from_secs(1)).await;
    Ok(FailoverRun {
        batch1,
        fences,
        batch2,
        before_kill,
        all: snapshot(inbox),
        master_committed,
        slave_max,
        route_dropped,
        first_after_resume,
        all_after_resume,
        slave_committed: Vec::new(),
        restarted: Vec::new(),
    })
}

/// A running consumer fails over to the slave.
///
/// 1. 100 messages are sent and consumed from the master; the consumer is suspended (its
///    pulls stop; its queues, offsets and periodic commits stay); a fence message per queue
///    wakes the pulls parked on the master before the suspension, so no pull reads the next
///    batch; the group's commits on the master reach what it consumed.
/// 2. 100 more are sent, the slave holds all of them, and the master is SIGKILLed.
/// 3. The consumer is resumed: it must receive every message of the second batch (from the
///    slave: the master is dead and nothing of that batch was received before the kill).
/// 4. It is shut down (committing to the only broker left, the slave), and a new consumer of
///    the group is started: it must resume from those commits and receive nothing.
///
/// Duplicate bound: 0. Every message of the first batch was acknowledged and its offset
/// committed to the master before the kill (checked), and the running consumer keeps its
/// queues and in-memory offsets through the failover: a re-delivery could only come from a
/// queue re-read from a broker's committed offset, which after the kill is the slave's (none
/// before step 4: offsets are not yet synced from the master), i.e. offset 0 and the whole
/// first batch again: the failure this test exists to catch. Each second-batch message is
/// pulled once from the slave; nothing makes the client pull an offset twice.
#[test]
fn running_consumer_fails_over_to_the_slave() {
    let Some(pair) = ReplicaCluster::start("failover-running", "ASYNC_MASTER", &[], &[]) else {
        return;
    };
    let token = run_token();
    let ctx = Ctx::new(
        &pair,
        &token,
        format!("RustFailover_{token}"),
        format!("cg_failover_{token}"),
    );
    pair.create_topic(&ctx.topic, QUEUES);
    let topic = ctx.topic.clone();
    let started = Instant::now();
    let run = scenario("failover-running", BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &ctx.ns, &format!("pg_failover_{}", ctx.token)).await?;
        let outcome = async {
            let batch1 = send_batch(&producer, &ctx.topic, "one", BATCH).await?;
            let inbox = inbox();
            let spec = ConsumerSpec::new(&ctx.ns, &ctx.group, "failover_a", &ctx.topic);
            let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
            let run = fail_over_running(&ctx, &producer, &mut consumer, &inbox, batch1).await;
            // Shutdown commits the consumed offsets to the only broker left, the slave.
            consumer.shutdown().await;
            let mut run = run?;
            run.slave_committed = committed_offsets(ctx.slave_addr, &ctx.group, &ctx.topic).await?;
            run.restarted = ctx.watch_restarted(&rt, "failover_b").await?;
            Ok(run)
        }
        .await;
        producer.shutdown().await;
        outcome
    });
    let took = started.elapsed();
    let want1 = bodies(&run.batch1);
    let want2 = bodies(&run.batch2);
    let fences = bodies(&run.fences);
    let dups1 = duplicates(&run.all, &want1);
    let dups2 = duplicates(&run.all, &want2);
    let dups_fences = duplicates(&run.all, &fences);
    eprintln!(
        "[failover-running] total {took:.1?}; route dropped {:?} after the kill; second batch \
         from the slave: first after {:?}, all after {:.1?} of resuming; duplicates: first \
         batch {dups1}, fences {dups_fences}, second batch {dups2}; commits on the master at \
         the kill {:?}, on the slave after shutdown {:?} (slave max {:?}); restarted consumer \
         received {}",
        run.route_dropped,
        run.first_after_resume,
        run.all_after_resume,
        run.master_committed,
        run.slave_committed,
        run.slave_max,
        run.restarted.len()
    );
    // The scenario did what it claims: batch one (and the fences) came from the live master,
    // nothing of batch two was read before the kill.
    let before = distinct_bodies_of(&run.before_kill);
    assert!(
        before.is_superset(&want1),
        "batch one consumed before the kill"
    );
    let early: Vec<_> = before.intersection(&want2).collect();
    assert!(
        early.is_empty(),
        "second-batch messages received before the kill (the suspended consumer pulled from \
         the master): {early:?}"
    );
    assert!(
        run.route_dropped.is_some(),
        "the NameServer still listed the killed master {ROUTE_DROP_TIMEOUT:?} after the kill"
    );
    // The failover: all of batch two (and any fence not read before) from the slave.
    let got = distinct_bodies_of(&run.all);
    assert!(got.is_superset(&want2), "every second-batch message");
    assert!(got.is_superset(&fences), "every fence message");
    let strays: Vec<_> = got
        .iter()
        .filter(|b| !want1.contains(*b) && !want2.contains(*b) && !fences.contains(*b))
        .collect();
    assert!(strays.is_empty(), "messages nobody sent: {strays:?}");
    // Not from offset 0 again, and no duplicates at all (bound justified above).
    assert_eq!(
        dups1, 0,
        "first-batch messages re-delivered after the failover (all were committed to the \
         master before the kill): the consumer re-read a queue's offset from the slave, which \
         knows no commit of the group from before the kill (so: from offset 0)"
    );
    assert_eq!(dups_fences, 0, "fence messages delivered twice");
    assert_eq!(dups2, 0, "second-batch messages delivered twice");
    // The commits the first consumer made after the failover reached the slave, and a
    // consumer restarted on the slave alone resumes from them.
    let on_slave: Vec<Option<i64>> = run.slave_max.iter().map(|m| Some(*m)).collect();
    assert_eq!(
        run.slave_committed, on_slave,
        "after the failover the group commits to the slave (UPDATE_CONSUMER_OFFSET there): \
         committed per queue vs slave max offsets"
    );
    let again = distinct_bodies_of(&run.restarted);
    assert!(
        run.restarted.is_empty(),
        "a consumer restarted on the slave alone re-received {} messages ({} of batch one, {} \
         of batch two): it did not resume from the group's commits on the slave",
        run.restarted.len(),
        again.intersection(&want1).count(),
        again.intersection(&want2).count()
    );
    // ali-ons, a new group in the client namespace, with the master still dead: every
    // acknowledged message, from the slave, as sent.
    let acked: Vec<Sent> = run
        .batch1
        .iter()
        .chain(&run.fences)
        .chain(&run.batch2)
        .cloned()
        .collect();
    let on_slave = u64::try_from(run.slave_max.iter().sum::<i64>()).expect("non-negative");
    let ali_started = Instant::now();
    let received = pair
        .ali_ons_consume(
            &topic,
            &format!("cg_failover_ons_{token}"),
            on_slave,
            ALI_ONS_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("ali-ons after the failover: {e}"));
    let wrong = mismatches(&acked, &received);
    eprintln!(
        "[failover-running] ali-ons read {} messages from the slave in {:.1?}",
        received.len(),
        ali_started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "ali-ons did not read {} of the {} acknowledged messages from the slave as sent; e.g. \
         {:?}",
        wrong.len(),
        acked.len(),
        wrong.first()
    );
}

/// Distinct non-warm-up bodies of a reception log.
fn distinct_bodies_of(received: &[Received]) -> BTreeSet<String> {
    body_counts(received).into_keys().collect()
}

/// What the restart scenario observed.
struct RestartRun {
    batch1: Vec<Sent>,
    batch2: Vec<Sent>,
    /// The group's commits on the master before the kill (all of batch one).
    master_committed: Vec<Option<i64>>,
    /// The group's offsets on the slave when the master was killed, and whether they had
    /// become equal to the master's commits.
    slave_committed: Vec<Option<i64>>,
    slave_synced: bool,
    /// What the consumer started after the kill received.
    restarted: Vec<Received>,
}

/// A consumer started only after the master died resumes from what its group committed to the
/// master, read from the slave.
///
/// 1. 100 messages are consumed from the master by a consumer that then shuts down, having
///    committed all of them to the master (checked).
/// 2. 100 more are sent; the slave holds them; the slave is given time to learn the group's
///    offsets from its master; the master is SIGKILLed.
/// 3. A new consumer of the group starts: the slave is the only broker. It must receive every
///    second-batch message and none of the first batch.
///
/// Relies on the slave's offset sync: a slave knows a group's offsets only because it syncs
/// them from its master (Java: `SlaveSynchronize`, GET_ALL_CONSUMER_OFFSET every 10 s). Without it
/// the slave answers QUERY_CONSUMER_OFFSET with QUERY_NOT_FOUND (or offset 0 under the
/// client's default `setZeroIfNotFound`), and the client (CONSUME_FROM_FIRST_OFFSET) starts
/// again from offset 0: the whole first batch is re-delivered. Duplicate bound once synced: 0,
/// as every first-batch offset was committed before the kill and synced before it too.
#[test]
fn restarted_consumer_resumes_from_master_commits_on_the_slave() {
    let Some(pair) = ReplicaCluster::start("failover-restart", "ASYNC_MASTER", &[], &[]) else {
        return;
    };
    let token = run_token();
    let ctx = Ctx::new(
        &pair,
        &token,
        format!("RustFailoverRestart_{token}"),
        format!("cg_failover_restart_{token}"),
    );
    pair.create_topic(&ctx.topic, QUEUES);
    let started = Instant::now();
    let run = scenario("failover-restart", BUDGET, move |rt| async move {
        let mut producer =
            producer(&rt, &ctx.ns, &format!("pg_failover_restart_{}", ctx.token)).await?;
        let outcome = async {
            let batch1 = send_batch(&producer, &ctx.topic, "one", BATCH).await?;
            let want1 = bodies(&batch1);
            let first = inbox();
            let spec = ConsumerSpec::new(&ctx.ns, &ctx.group, "restart_a", &ctx.topic);
            let (mut consumer, _) = start_consumer(&rt, &spec, &first).await?;
            let consumed = await_bodies(&first, &want1, BATCH_CONSUME_TIMEOUT).await;
            consumer.shutdown().await;
            if !consumed {
                return Err(format!(
                    "the first batch was not consumed from the live master within \
                     {BATCH_CONSUME_TIMEOUT:?}"
                ));
            }
            let up_to = consumed_up_to(&snapshot(&first));
            let (master_committed, committed) = ctx
                .await_commits(ctx.master_addr, &up_to, COMMIT_TIMEOUT)
                .await?;
            if !committed {
                return Err(format!(
                    "the group's commits on the master never reached what it consumed: \
                     {master_committed:?} vs {up_to:?}"
                ));
            }
            let batch2 = send_batch(&producer, &ctx.topic, "two", BATCH).await?;
            ctx.await_slave_caught_up().await?;
            let (slave_committed, slave_synced) = ctx
                .await_commits(ctx.slave_addr, &up_to, OFFSET_SYNC_TIMEOUT)
                .await?;
            if ctx.kill_master().await?.is_none() {
                return Err("the NameServer kept the killed master in the route".into());
            }
            let restarted = {
                let inbox = inbox();
                let spec = ConsumerSpec::new(&ctx.ns, &ctx.group, "restart_b", &ctx.topic);
                let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
                let want2 = bodies(&batch2);
                // Wait for batch two; a consumer that starts from 0 also gets batch one, so
                // settle to catch it either way.
                await_bodies(&inbox, &want2, FAILOVER_TIMEOUT).await;
                tokio::time::sleep(SETTLE).await;
                consumer.shutdown().await;
                snapshot(&inbox)
            };
            Ok(RestartRun {
                batch1,
                batch2,
                master_committed,
                slave_committed,
                slave_synced,
                restarted,
            })
        }
        .await;
        producer.shutdown().await;
        outcome
    });
    let want1 = bodies(&run.batch1);
    let want2 = bodies(&run.batch2);
    let got = distinct_bodies_of(&run.restarted);
    let redelivered = got.intersection(&want1).count();
    eprintln!(
        "[failover-restart] total {:.1?}; group commits on the master {:?}, on the slave at \
         the kill {:?} (synced: {}); the consumer started after the kill received {} of batch \
         two and re-received {redelivered} of batch one",
        started.elapsed(),
        run.master_committed,
        run.slave_committed,
        run.slave_synced,
        got.intersection(&want2).count()
    );
    assert!(
        run.slave_synced,
        "the slave never learned the group's committed offsets from its master within \
         {OFFSET_SYNC_TIMEOUT:?} (slave {:?} vs master {:?}): the consumer started after the \
         kill therefore re-received {redelivered}/{BATCH} first-batch messages (from offset 0)",
        run.slave_committed, run.master_committed
    );
    assert!(got.is_superset(&want2), "every second-batch message");
    assert_eq!(
        redelivered, 0,
        "first-batch messages re-delivered although their offsets were committed (and synced \
         to the slave) before the kill"
    );
    assert_eq!(
        duplicates(&run.restarted, &want2),
        0,
        "second-batch messages delivered twice"
    );
}
