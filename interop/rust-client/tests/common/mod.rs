//! Client-side helpers shared by the interop test binaries: run one scenario on its own
//! rocketmq-client-rust runtime under a hard deadline, build producers and push consumers the
//! way an application would, and record what listeners receive for the assertions.
//!
//! Scenario bodies return `Result<T, String>` and never assert inside the client runtime: the
//! test asserts on the returned observations after the clients were shut down, so a failed
//! assertion never leaves a half-stopped client behind. Must never: wait without a bound.

#![allow(dead_code)]

/// The root crate's network-namespace topology (std only, shared rather than copied).
#[path = "../../../../tests/common/netns.rs"]
pub mod netns;
pub mod replica;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::{Duration, Instant};

use rocketmq_client_rust::{
    ClientConfig, ClientError, ClientResult, ClientRuntime, ClientRuntimeConfig,
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, ConsumeOrderlyContext,
    ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently, MessageListenerOrderly, MessageQueueListener, MessageSelector,
    SendStatus,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendResult;
use rocketmq_observability::TelemetryRuntimeGuard;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::RuntimeOwner;

/// Queue depth of the client runtime's blocking lane that runs listener calls. Its default
/// (16 on a 2-core machine) is below the push consumer's 20 concurrent listener calls, and
/// rocketmq-client-rust 1.0.0 answers a refused call by sending the message back to
/// `%RETRY%` unconsumed (`consume_message_concurrently_service.rs`, `consume_message task
/// panicked` + `consumeMessage return null`): a client defect, not broker behaviour.
const CLIENT_LISTENER_QUEUE_DEPTH: usize = 1024;

#[allow(unused_imports)]
pub use rmq_interop_rust_client::{
    fnv1a, fresh_dir, run_token, standalone_mode, wait_route, Mode, Rmq, Scratch,
};

/// Per-request timeout the producers use (the client default).
pub const SEND_TIMEOUT_MS: u64 = 3000;
/// How long a new topic's route may take to reach the NameServer after auto-create.
pub const TOPIC_ROUTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long two consumers of one group may take to split the queues. A real broker sends
/// NOTIFY_CONSUMER_IDS_CHANGED when the second one registers, so this takes about a second;
/// the slack covers the clients' periodic 20 s rebalance if the notification is lost.
pub const ALLOCATION_TIMEOUT: Duration = Duration::from_secs(25);
/// Allocation slower than this is reported as a likely missing NOTIFY_CONSUMER_IDS_CHANGED.
pub const ALLOCATION_EXPECTED: Duration = Duration::from_secs(5);
/// How long consumers may take to receive everything that was sent.
pub const CONSUME_TIMEOUT: Duration = Duration::from_secs(20);
/// Extra wait after the expected messages arrived, to catch duplicates and strays.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Extra time the scenario thread gets beyond its budget for client shutdown.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(20);
/// Per-request timeout of the client's own control calls (route, heartbeat, offsets).
const CLIENT_API_TIMEOUT_MS: u64 = 3000;
/// How often consumers commit offsets to the broker (the client's minimum is 1000 ms).
pub const PERSIST_OFFSET_INTERVAL_MS: u32 = 1000;
/// Body of the message that auto-creates a topic before consumers subscribe; it may be seen
/// by several consumers during their first rebalance, so assertions ignore it.
pub const WARMUP_BODY: &str = "warmup";

/// Runs `body` on a fresh client runtime in its own thread and returns its observations.
/// The body gets `budget`; the thread gets `budget` plus shutdown slack, after which the test
/// fails even if the client hangs (the `rmq` child is still killed by its guard).
///
/// # Panics
/// If the runtime cannot start, the body errs or times out, or the thread overruns.
pub fn scenario<T, F, Fut>(name: &str, budget: Duration, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Arc<ClientRuntime>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, String>>,
{
    set_local_offset_dir();
    let (tx, rx) = mpsc::channel();
    let label = name.to_owned();
    std::thread::spawn(move || {
        let result = run_on_client_runtime(budget, body);
        let _ = tx.send(result);
    });
    let started = Instant::now();
    match rx.recv_timeout(budget + SHUTDOWN_SLACK) {
        Ok(Ok(value)) => {
            eprintln!("[{label}] finished in {:.1?}", started.elapsed());
            value
        }
        Ok(Err(e)) => panic!("[{label}] {e}"),
        Err(_) => panic!("[{label}] client did not finish within {budget:?} + {SHUTDOWN_SLACK:?}"),
    }
}

fn run_on_client_runtime<T, F, Fut>(budget: Duration, body: F) -> Result<T, String>
where
    F: FnOnce(Arc<ClientRuntime>) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    // rocketmq-client-rust 1.0.0 runs listeners on the runtime's metadata_io lane and turns a
    // full lane queue into ReconsumeLater + send-back without calling the listener (see
    // CLIENT_LISTENER_QUEUE_DEPTH); give that lane room for every listener call the consumer
    // allows, as Java's unbounded consume queue does.
    let mut config = rocketmq_runtime::RuntimeConfig::default();
    config.blocking_lane_policies.metadata_io.max_queue_depth = CLIENT_LISTENER_QUEUE_DEPTH;
    let owner = RuntimeOwner::plan(config)
        .map_err(|e| format!("client runtime plan: {e:?}"))?
        .build()
        .map_err(|e| format!("client runtime: {e}"))?;
    let telemetry = TelemetryRuntimeGuard::noop();
    let client_runtime = ClientRuntime::try_new(
        owner.root_context().component("interop"),
        ClientRuntimeConfig::default(),
        telemetry.handle(),
    )
    .map_err(|e| format!("client runtime: {e}"))?;
    let result = owner.block_on(async {
        let result = match tokio::time::timeout(budget, body(client_runtime.clone())).await {
            Ok(result) => result,
            Err(_) => Err(format!("scenario exceeded its {budget:?} budget")),
        };
        let report = client_runtime.shutdown().await;
        if !report.is_healthy() {
            eprintln!(
                "warning: client runtime shutdown not healthy: {}",
                report.to_json()
            );
        }
        result
    });
    let _ = owner.shutdown_runtime_blocking_with_timeout(Duration::from_secs(10));
    result
}

/// Broadcasting consumers keep offsets in local files; keep those under this crate's target
/// dir (fresh per process) instead of `~/.rocketmq_offsets`.
fn set_local_offset_dir() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = fresh_dir("client-offsets");
        let path: PathBuf = dir.path().to_owned();
        // Lives for the whole test process; the next run's scripts/interop.sh clears it.
        std::mem::forget(dir);
        std::env::set_var("rocketmq.client.localOffsetStoreDir", path);
    });
}

/// Formats a client error for a scenario's `Err`.
pub fn err(what: &str) -> impl FnOnce(ClientError) -> String + '_ {
    move |e| format!("{what}: {}", describe(&e))
}

/// A client error with the broker's response code and address when it has them (the client
/// redacts the broker's remark from both Display and Debug).
pub fn describe(e: &ClientError) -> String {
    match e.broker_response_code() {
        Some(code) => format!(
            "{e} [broker response code {code} from {}]",
            e.broker_addr().unwrap_or("?")
        ),
        None => e.to_string(),
    }
}

/// A started producer in `group` (sync send timeout [`SEND_TIMEOUT_MS`], no retries, so a
/// failed send shows up as a failure rather than a silent retry).
pub async fn producer(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    group: &str,
) -> Result<DefaultMQProducer, String> {
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .producer_group(group)
        .name_server_addr(namesrv)
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .retry_times_when_send_failed(0)
        .retry_times_when_send_async_failed(0)
        .build();
    producer.start().await.map_err(err("producer start"))?;
    Ok(producer)
}

/// A message with one tag, one key and a UTF-8 body.
pub fn message(topic: &str, tag: &str, key: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic)
        .tags(tag)
        .keys(vec![key.to_owned()])
        .body_slice(body.as_bytes())
        .build_unchecked()
}

/// What a successful synchronous send returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Body sent.
    pub body: String,
    /// `SendResult.msgId` (the client's UNIQ_KEY).
    pub msg_id: String,
    /// `SendResult.offsetMsgId` (the broker's offset message id).
    pub offset_msg_id: String,
    /// Queue the broker stored into.
    pub queue_id: i32,
    /// ConsumeQueue offset the broker assigned.
    pub queue_offset: u64,
}

/// Checks a send result is SEND_OK with ids, and flattens it.
///
/// # Errors
/// A missing result, a status other than SEND_OK, or missing ids/queue.
pub fn sent_ok(body: &str, result: Option<&SendResult>) -> Result<Sent, String> {
    let r = result.ok_or_else(|| format!("send of {body}: no SendResult"))?;
    if r.send_status != SendStatus::SendOk {
        return Err(format!(
            "send of {body}: status {:?}, want SEND_OK",
            r.send_status
        ));
    }
    let msg_id = r.msg_id.as_ref().map(|m| m.to_string()).unwrap_or_default();
    let offset_msg_id = r.offset_msg_id.clone().unwrap_or_default();
    let queue = r
        .message_queue
        .as_ref()
        .ok_or_else(|| format!("send of {body}: result has no message queue"))?;
    if msg_id.is_empty() || offset_msg_id.is_empty() {
        return Err(format!("send of {body}: empty msgId/offsetMsgId in {r:?}"));
    }
    Ok(Sent {
        body: body.to_owned(),
        msg_id,
        offset_msg_id,
        queue_id: queue.queue_id(),
        queue_offset: r.queue_offset,
    })
}

/// Sends `body` synchronously and requires SEND_OK.
pub async fn send_sync(
    producer: &DefaultMQProducer,
    topic: &str,
    tag: &str,
    body: &str,
) -> Result<Sent, String> {
    let result = producer
        .send_with_timeout(message(topic, tag, body, body), SEND_TIMEOUT_MS)
        .await
        .map_err(|e| format!("send of {body}: {}", describe(&e)))?;
    sent_ok(body, result.as_ref())
}

/// Sends the warm-up message that auto-creates `topic` (via the TBW102 route), then waits
/// until the NameServer serves the topic's own route, so consumers started next find it.
pub async fn create_topic_by_sending(
    producer: &DefaultMQProducer,
    namesrv: &str,
    topic: &str,
) -> Result<Sent, String> {
    let sent = send_sync(producer, topic, "Warmup", WARMUP_BODY).await?;
    wait_topic_route(namesrv, topic).await?;
    Ok(sent)
}

/// Waits (off the async threads) until the NameServer serves `topic`'s route.
pub async fn wait_topic_route(namesrv: &str, topic: &str) -> Result<(), String> {
    let addr = namesrv
        .parse()
        .map_err(|e| format!("namesrv addr {namesrv}: {e}"))?;
    let topic_owned = topic.to_owned();
    tokio::task::spawn_blocking(move || wait_route(addr, &topic_owned, TOPIC_ROUTE_TIMEOUT))
        .await
        .map_err(|e| format!("route wait task: {e}"))?
        .map_err(|e| format!("NameServer never served the route of {topic}: {e}"))
}

/// One message as a listener saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Which consumer (its instance label).
    pub consumer: String,
    /// UTF-8 body.
    pub body: String,
    /// Tag, if any.
    pub tag: String,
    /// UNIQ_KEY property (the producer's msgId).
    pub uniq_key: String,
    /// Queue it came from.
    pub queue_id: i32,
    /// Its ConsumeQueue offset.
    pub queue_offset: i64,
}

/// Shared log of everything the listeners of one scenario received, in arrival order.
pub type Inbox = Arc<Mutex<Vec<Received>>>;

/// A new empty inbox.
pub fn inbox() -> Inbox {
    Arc::new(Mutex::new(Vec::new()))
}

fn record(inbox: &Inbox, consumer: &str, msgs: &[&MessageExt]) {
    let mut log = inbox.lock().expect("inbox lock poisoned");
    for m in msgs {
        let body = m
            .body()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let uniq_key = m
            .properties()
            .iter()
            .find(|(k, _)| k.as_str() == "UNIQ_KEY")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        log.push(Received {
            consumer: consumer.to_owned(),
            body,
            tag: m.get_tags().map(|t| t.to_string()).unwrap_or_default(),
            uniq_key,
            queue_id: m.queue_id(),
            queue_offset: m.queue_offset(),
        });
    }
}

/// Concurrent listener that records and acknowledges every message.
struct Concurrent {
    consumer: String,
    inbox: Inbox,
}

impl MessageListenerConcurrently for Concurrent {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        record(&self.inbox, &self.consumer, msgs);
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// Orderly listener that records and acknowledges every message (auto-commit).
struct Orderly {
    consumer: String,
    inbox: Inbox,
}

impl MessageListenerOrderly for Orderly {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        ctx: &mut ConsumeOrderlyContext,
    ) -> ClientResult<ConsumeOrderlyStatus> {
        ctx.set_auto_commit(true);
        record(&self.inbox, &self.consumer, msgs);
        Ok(ConsumeOrderlyStatus::Success)
    }
}

/// One consumer's rebalance outcomes for the subscribed topic, oldest first: (all queue ids
/// it saw, queue ids assigned to it). The last entry is its current assignment.
pub type Assigned = Arc<Mutex<Vec<(BTreeSet<i32>, BTreeSet<i32>)>>>;

struct AllocationRecorder {
    topic: String,
    history: Assigned,
}

impl MessageQueueListener for AllocationRecorder {
    fn message_queue_changed(
        &self,
        topic: &str,
        mq_all: &std::collections::HashSet<MessageQueue>,
        mq_assigned: &std::collections::HashSet<MessageQueue>,
    ) {
        // The retry topic (%RETRY%group) is rebalanced too; only the subscribed topic counts.
        if topic != self.topic {
            return;
        }
        let ids = |set: &std::collections::HashSet<MessageQueue>| {
            set.iter().map(MessageQueue::queue_id).collect()
        };
        let mut history = self.history.lock().expect("allocation lock poisoned");
        history.push((ids(mq_all), ids(mq_assigned)));
    }
}

/// Which listener a consumer registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// MessageListenerConcurrently.
    Concurrently,
    /// MessageListenerOrderly.
    Orderly,
}

/// How to build one push consumer.
pub struct ConsumerSpec<'a> {
    /// NameServer address.
    pub namesrv: &'a str,
    /// Consumer group.
    pub group: &'a str,
    /// Client instance name (distinct per consumer in one process, as in Java).
    pub instance: &'a str,
    /// Topic to subscribe.
    pub topic: &'a str,
    /// Subscription expression (`*`, `TagA || TagB`).
    pub expression: &'a str,
    /// An SQL92 selector instead of `expression` (`MessageSelector::by_sql`).
    pub sql: Option<&'a str>,
    /// Clustering or broadcasting.
    pub model: MessageModel,
    /// Listener kind.
    pub listener: Listener,
}

impl<'a> ConsumerSpec<'a> {
    /// A clustering, concurrently-consuming, `*` subscription.
    pub fn new(namesrv: &'a str, group: &'a str, instance: &'a str, topic: &'a str) -> Self {
        Self {
            namesrv,
            group,
            instance,
            topic,
            expression: "*",
            sql: None,
            model: MessageModel::Clustering,
            listener: Listener::Concurrently,
        }
    }
}

/// Starts a push consumer (CONSUME_FROM_FIRST_OFFSET) recording into `inbox`; returns it with
/// its live queue assignment.
pub async fn start_consumer(
    rt: &Arc<ClientRuntime>,
    spec: &ConsumerSpec<'_>,
    inbox: &Inbox,
) -> Result<(DefaultMQPushConsumer, Assigned), String> {
    let config: ClientConfig = ClientConfig::builder()
        .namesrv_addr(spec.namesrv)
        .instance_name(spec.instance)
        .persist_consumer_offset_interval(PERSIST_OFFSET_INTERVAL_MS)
        .mq_client_api_timeout(CLIENT_API_TIMEOUT_MS)
        .build()
        .map_err(err("client config"))?;
    let assigned: Assigned = Arc::default();
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(config)
        .name_server_addr(spec.namesrv)
        .consumer_group(spec.group)
        .message_model(spec.model)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .message_queue_listener(Some(Arc::new(AllocationRecorder {
            topic: spec.topic.to_owned(),
            history: assigned.clone(),
        })))
        .build();
    match spec.sql {
        Some(sql) => consumer
            .subscribe_with_selector(spec.topic, Some(MessageSelector::by_sql(sql)))
            .await
            .map_err(err("subscribe"))?,
        None => consumer
            .subscribe(spec.topic, spec.expression)
            .await
            .map_err(err("subscribe"))?,
    }
    let label = spec.instance.to_owned();
    match spec.listener {
        Listener::Concurrently => consumer.register_message_listener_concurrently(Concurrent {
            consumer: label,
            inbox: inbox.clone(),
        }),
        Listener::Orderly => consumer.register_message_listener_orderly(Orderly {
            consumer: label,
            inbox: inbox.clone(),
        }),
    }
    consumer.start().await.map_err(err("consumer start"))?;
    Ok((consumer, assigned))
}

/// Polls `done` every 100 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Snapshot of an inbox.
pub fn snapshot(inbox: &Inbox) -> Vec<Received> {
    inbox.lock().expect("inbox lock poisoned").clone()
}

/// A consumer's current assignment (empty before its first rebalance).
pub fn assigned(a: &Assigned) -> BTreeSet<i32> {
    let history = a.lock().expect("allocation lock poisoned");
    history
        .last()
        .map(|(_, mine)| mine.clone())
        .unwrap_or_default()
}

/// A consumer's rebalance history, for failure messages.
pub fn allocation_history(a: &Assigned) -> Vec<(BTreeSet<i32>, BTreeSet<i32>)> {
    a.lock().expect("allocation lock poisoned").clone()
}

/// Distinct non-warm-up bodies in `inbox` (optionally of one consumer).
pub fn distinct_bodies(inbox: &Inbox, consumer: Option<&str>) -> BTreeSet<String> {
    inbox
        .lock()
        .expect("inbox lock poisoned")
        .iter()
        .filter(|r| r.body != WARMUP_BODY && consumer.is_none_or(|c| r.consumer == c))
        .map(|r| r.body.clone())
        .collect()
}

/// How many times each non-warm-up body was received.
pub fn body_counts(received: &[Received]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in received.iter().filter(|r| r.body != WARMUP_BODY) {
        *counts.entry(r.body.clone()).or_insert(0) += 1;
    }
    counts
}

/// Starts one clustering consumer in a new group, waits until it received every body in
/// `expected` (plus [`SETTLE`] for strays), shuts it down and returns what it saw.
pub async fn consume_expected(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    group: &str,
    topic: &str,
    expected: &BTreeSet<String>,
) -> Result<Vec<Received>, String> {
    let inbox = inbox();
    let spec = ConsumerSpec::new(namesrv, group, group, topic);
    let (mut consumer, _) = start_consumer(rt, &spec, &inbox).await?;
    let all = wait_until(CONSUME_TIMEOUT, || {
        distinct_bodies(&inbox, None).is_superset(expected)
    })
    .await;
    if all {
        tokio::time::sleep(SETTLE).await;
    }
    consumer.shutdown().await;
    if !all {
        let got = distinct_bodies(&inbox, None);
        let missing: Vec<_> = expected.difference(&got).take(10).collect();
        return Err(format!(
            "consumer {group} received {}/{} messages within {CONSUME_TIMEOUT:?}; \
             missing e.g. {missing:?}",
            got.intersection(expected).count(),
            expected.len()
        ));
    }
    Ok(snapshot(&inbox))
}

/// Decodes an IPv4 offset message id (`ip(4) port(4) commitLogOffset(8)`, 32 hex chars).
pub fn decode_offset_msg_id(id: &str) -> Option<(std::net::SocketAddr, u64)> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok();
    let ip = std::net::Ipv4Addr::new(byte(0)?, byte(1)?, byte(2)?, byte(3)?);
    let port = u32::from_str_radix(&id[8..16], 16).ok()?;
    let offset = u64::from_str_radix(&id[16..32], 16).ok()?;
    Some((
        std::net::SocketAddr::from((ip, u16::try_from(port).ok()?)),
        offset,
    ))
}
