//! Producer loops on one harness thread: each producer round-robins over the write queues
//! and sends through its connection in one of three modes: sync (one request outstanding),
//! async (requests outstanding bounded by the connection's [`Window`]) or oneway. Every
//! outcome goes into the thread's [`IntervalStats`]; nothing is kept per message.
//! Async and sync sends take the lean path ([`crate::lean`]): frames rendered from templates
//! into the connection's buffer, responses read in place; a sync producer holds a window of
//! one, so it waits for each acknowledgement. Transactional sync sends and oneway sends use
//! `RemotingClient`.
//! Must never retry a send (a failure is counted, the next message goes on), nor outlive the
//! stop event by more than the request timeout.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::{select, Either};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::command::RemotingCommand;
use rmq_net::conn::{ClientError, RemotingClient};

use crate::cli::SendMode;
use crate::lean::conn::{LeanLinks, Queued};
use crate::lean::request::LeanRequests;
use crate::message::MessageFactory;
use crate::rate::TokenBucket;
use crate::route::QueueTarget;
use crate::stats::{record_latency, IntervalStats};
use crate::sync::{Event, Window};

/// Pause after a connection-level failure before the next send, so a dead broker costs a
/// few error counts per second instead of a busy loop.
pub const CONNECTION_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// One producer connection: a client per broker address, and the async window they share.
#[derive(Debug, Clone)]
pub struct ProducerConnection {
    /// Client per broker address.
    pub clients: Rc<BTreeMap<String, RemotingClient>>,
    /// Async mode: bounds requests in flight on this connection.
    pub window: Option<Window>,
    /// Async mode: the lean connection per broker address.
    pub lean: Option<Rc<LeanLinks>>,
}

/// What a producer shares with the rest of its thread.
#[derive(Debug, Clone)]
pub struct ProducerContext {
    /// The thread's stats.
    pub stats: Rc<RefCell<IntervalStats>>,
    /// Set when producers must stop.
    pub stop: Event,
    /// The thread's share of `--rate`, if any.
    pub bucket: Option<Rc<RefCell<TokenBucket>>>,
    /// Timeout of each send.
    pub timeout: Duration,
    /// Send mode.
    pub mode: SendMode,
    /// `--transactional`: the producer group every half message is committed for.
    pub transaction_group: Option<String>,
}

/// One producer: its queues, its quota and its message factory.
#[derive(Debug)]
pub struct Producer {
    /// Builds requests.
    pub factory: MessageFactory,
    /// Write queues, in the order the factory knows them.
    pub queues: Rc<Vec<QueueTarget>>,
    /// Index of the next queue (starts at the producer's index, so producers spread).
    pub next_queue: usize,
    /// Messages this producer may send; `None` = until stopped.
    pub quota: Option<u64>,
    /// Messages per request.
    pub batch: u32,
    /// Async and sync mode: the same requests, rendered from templates.
    pub lean: Option<LeanRequests>,
    /// Sync mode on the lean path: this producer's own window of one request, so it waits
    /// for each acknowledgement before the next send (the connection's window is for async).
    pub own_window: Option<Window>,
}

/// Wall clock, ms since the epoch (the born timestamp).
#[must_use]
pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Wall clock, µs since the epoch.
#[must_use]
pub fn wall_clock_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

/// Sleeps for `duration` unless `stop` is set first; returns whether it slept fully.
pub async fn sleep_unless(stop: &Event, duration: Duration) -> bool {
    let sleep = std::pin::pin!(compio::time::sleep(duration));
    let stopped = std::pin::pin!(stop.wait());
    matches!(select(sleep, stopped).await, Either::Left(_))
}

/// Takes `count` tokens from the bucket, waiting as needed; false if stopped first.
async fn take_tokens(context: &ProducerContext, count: u32) -> bool {
    let Some(bucket) = &context.bucket else {
        return !context.stop.is_set();
    };
    loop {
        let outcome = bucket.borrow_mut().try_take(count, Instant::now());
        match outcome {
            Ok(()) => return !context.stop.is_set(),
            Err(wait) => {
                if !sleep_unless(&context.stop, wait).await {
                    return false;
                }
            }
        }
    }
}

/// How one send ended, for the stats.
fn record_outcome(
    stats: &RefCell<IntervalStats>,
    result: &Result<RemotingCommand, ClientError>,
    started: Instant,
    messages: u64,
    bytes: u64,
) {
    let mut stats = stats.borrow_mut();
    match result {
        Ok(response) => match response.response_code() {
            ResponseCode::Success => {
                stats.acked.add(messages, bytes);
                let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                record_latency(&mut stats.send_latency, elapsed);
            }
            ResponseCode::FlushDiskTimeout
            | ResponseCode::FlushSlaveTimeout
            | ResponseCode::SlaveNotAvailable => {
                // Stored, but not as durably as asked (PROTOCOL.md §4.1).
                stats.acked.add(messages, bytes);
                stats.events.add(&format!("send:code:{}", response.code), 1);
            }
            _ => stats.errors.add(&format!("send:code:{}", response.code), 1),
        },
        Err(error) => stats.errors.add(client_error_kind("send", error), 1),
    }
}

/// A short, bounded name for a client error.
#[must_use]
pub fn client_error_kind(operation: &str, error: &ClientError) -> &'static str {
    match (operation, error) {
        ("send", ClientError::Timeout { .. }) => "send:timeout",
        ("send", ClientError::PendingFull { .. } | ClientError::WriteQueueFull { .. }) => {
            "send:queue-full"
        }
        ("send", ClientError::Encode(_)) => "send:encode",
        ("send", _) => "send:connection",
        ("pull", ClientError::Timeout { .. }) => "pull:timeout",
        ("pull", _) => "pull:connection",
        (_, ClientError::Timeout { .. }) => "request:timeout",
        _ => "request:connection",
    }
}

fn is_connection_failure(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::ConnectionClosed { .. }
    )
}

impl Producer {
    /// Sends until the quota is used up or `context.stop` is set; in async mode, then waits
    /// for this connection's requests in flight.
    pub async fn run(mut self, connection: ProducerConnection, context: ProducerContext) {
        let mut sent: u64 = 0;
        let size = self.factory.size() as u64;
        loop {
            let remaining = self.quota.map_or(u64::MAX, |quota| quota - sent);
            if remaining == 0 || context.stop.is_set() {
                break;
            }
            let messages = u32::try_from(remaining.min(u64::from(self.batch)))
                .expect("at most the batch size, a u32");
            if !take_tokens(&context, messages).await {
                break;
            }
            let queue_index = self.next_queue % self.queues.len();
            self.next_queue = self.next_queue.wrapping_add(1);
            let window = self.own_window.as_ref().or(connection.window.as_ref());
            if let (Some(requests), Some(links), Some(window)) =
                (&mut self.lean, &connection.lean, window)
            {
                let count = u64::from(messages);
                sent += count;
                let send = LeanSend {
                    queue_index,
                    messages,
                    bytes: count * size,
                };
                if !send_lean(requests, links, window, &self.queues, send, &context).await
                    && !sleep_unless(&context.stop, CONNECTION_ERROR_BACKOFF).await
                {
                    break;
                }
                continue;
            }
            let request = match self.factory.request(queue_index, messages, wall_clock_ms()) {
                Ok(request) => request,
                Err(_error) => {
                    // Cannot happen within the CLI limits; counted so the report shows it.
                    context.stats.borrow_mut().errors.add("send:encode", 1);
                    break;
                }
            };
            let client = connection
                .clients
                .get(&self.queues[queue_index].broker_addr)
                .expect("every queue's broker has a client on every connection")
                .clone();
            let count = u64::from(messages);
            let bytes = count * size;
            sent += count;
            context.stats.borrow_mut().sent.add(count, bytes);
            let healthy = match context.mode {
                SendMode::Sync => send_sync(&client, request, &context, count, bytes).await,
                SendMode::Async => {
                    let window = connection.window.as_ref().expect("async mode has a window");
                    send_async(&client, window, request, &context, count, bytes).await
                }
                SendMode::Oneway => send_oneway(&client, request, &context).await,
            };
            if !healthy && !sleep_unless(&context.stop, CONNECTION_ERROR_BACKOFF).await {
                break;
            }
        }
        if let Some(window) = self.own_window.as_ref().or(connection.window.as_ref()) {
            window.drained().await;
        }
    }
}

/// One request of the lean path.
#[derive(Debug, Clone, Copy)]
struct LeanSend {
    queue_index: usize,
    messages: u32,
    bytes: u64,
}

/// One async send on the lean path, once the window has room; false when the connection is
/// dead (after a reconnect attempt), so the producer backs off.
async fn send_lean(
    requests: &mut LeanRequests,
    links: &LeanLinks,
    window: &Window,
    queues: &[QueueTarget],
    send: LeanSend,
    context: &ProducerContext,
) -> bool {
    let permit = window.acquire().await;
    let addr = &queues[send.queue_index].broker_addr;
    let connection = links.get(addr);
    connection.room().await;
    let messages = u64::from(send.messages);
    context.stats.borrow_mut().sent.add(messages, send.bytes);
    let queued = connection.send(permit, messages, send.bytes, |out, opaque| {
        requests.render(
            out,
            opaque,
            send.queue_index,
            send.messages,
            wall_clock_ms(),
        );
    });
    match queued {
        Queued::Yes => true,
        Queued::ConnectionDead => {
            links.repair(addr).await;
            false
        }
    }
}

/// One sync send; false after a connection failure.
async fn send_sync(
    client: &RemotingClient,
    request: RemotingCommand,
    context: &ProducerContext,
    messages: u64,
    bytes: u64,
) -> bool {
    let started = Instant::now();
    let mut result = client.invoke(request, context.timeout).await;
    if let (Some(group), Ok(half)) = (&context.transaction_group, &result) {
        if half.response_code() == ResponseCode::Success {
            result = match end_transaction_request(half, group) {
                Some(end) => client.invoke(end, context.timeout).await,
                None => {
                    context.stats.borrow_mut().errors.add("send:half-reply", 1);
                    return true;
                }
            };
        }
    }
    record_outcome(&context.stats, &result, started, messages, bytes);
    !matches!(&result, Err(error) if is_connection_failure(error))
}

/// The two-way END_TRANSACTION that commits the half message `half` answered; `None` when
/// the reply lacks its queue offset or offset msgId.
fn end_transaction_request(half: &RemotingCommand, group: &str) -> Option<RemotingCommand> {
    use rmq_net::codec::header::transaction::{
        EndTransactionRequestHeader, TRANSACTION_COMMIT_TYPE,
    };
    use rmq_net::codec::header::CommandHeader as _;
    let offset_msg_id = half.ext("msgId")?;
    let (_, commit_log_offset) = rmq_net::codec::message::msg_id::decode(offset_msg_id).ok()?;
    let header = EndTransactionRequestHeader {
        producer_group: group.to_owned(),
        tran_state_table_offset: half.ext("queueOffset")?.parse().ok()?,
        commit_log_offset,
        commit_or_rollback: TRANSACTION_COMMIT_TYPE,
        from_transaction_check: false,
        msg_id: half.ext("transactionId").unwrap_or_default().to_owned(),
        transaction_id: half.ext("transactionId").map(str::to_owned),
        topic: None,
        broker_name: None,
    };
    Some(RemotingCommand::request(
        rmq_net::codec::codes::RequestCode::EndTransaction,
        header.to_ext(),
    ))
}

/// Starts one async send once the window has room. Always true: failures show in the stats
/// (the window bounds how fast a dead connection can fail).
async fn send_async(
    client: &RemotingClient,
    window: &Window,
    request: RemotingCommand,
    context: &ProducerContext,
    messages: u64,
    bytes: u64,
) -> bool {
    let permit = window.acquire().await;
    let stats = context.stats.clone();
    let started = Instant::now();
    client.invoke_async(request, context.timeout, move |result| {
        record_outcome(&stats, &result, started, messages, bytes);
        drop(permit);
    });
    true
}

/// One oneway send; false after a connection failure.
async fn send_oneway(
    client: &RemotingClient,
    request: RemotingCommand,
    context: &ProducerContext,
) -> bool {
    match client.invoke_oneway(request).await {
        Ok(()) => true,
        Err(error) => {
            context
                .stats
                .borrow_mut()
                .errors
                .add(client_error_kind("send", &error), 1);
            !is_connection_failure(&error)
        }
    }
}
