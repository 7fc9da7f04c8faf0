//! The trivial echo path: an in-process server on its own pinned thread that answers every
//! request the harness makes without storing anything, so a run against it measures the
//! harness's own cost per message. Sends get SUCCESS and a plausible
//! `SendMessageResponseHeader`; route lookups get a route naming this server as the only
//! broker; pulls get `maxMsgNums` freshly stamped synthetic records; offset, heartbeat and
//! commit requests get the answers a new group would. Counts what it served.
//! Must never store a message, nor answer a oneway request.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use compio::net::TcpListener;
use futures_util::future::{select, Either};
use rmq_net::codec::body::route::{BrokerData, QueueData, TopicRouteData};
use rmq_net::codec::body::topic::perm;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::command::RemotingCommand;
use rmq_net::codec::header::offset::{
    GetMaxOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
};
use rmq_net::codec::header::pull::{PullMessageRequestHeader, PullMessageResponseHeader};
use rmq_net::codec::header::send::SendMessageResponseHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::layout::BORN_TIMESTAMP_OFFSET;
use rmq_net::codec::message::{patch_offsets, MessageRecord, Properties};
use rmq_net::conn::{serve, ConnContext, Handler, ServeConfig};
use serde::Serialize;

use crate::message::payload;
use crate::producer::wall_clock_ms;
use crate::route::{DEFAULT_TOPIC, MASTER_ID};
use crate::usage::ThreadUsage;

/// Broker name the echo route announces.
pub const ECHO_BROKER_NAME: &str = "echo-broker";
/// Cluster name the echo route announces.
pub const ECHO_CLUSTER: &str = "EchoCluster";
/// Most records one echoed pull returns, whatever `maxMsgNums` asks (Java's cap).
pub const ECHO_PULL_RECORDS_MAX: usize = 1024;

/// Which topics the echo NameServer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoRoutes {
    /// Every topic has a route to this server.
    AllTopics,
    /// Only `TBW102`: other topics get TOPIC_NOT_EXIST, as on a fresh cluster.
    DefaultTopicOnly,
}

/// How the echo server behaves.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Queues in every route it gives.
    pub queues: i32,
    /// Which topics have routes.
    pub routes: EchoRoutes,
    /// Body size of the synthetic records pulls return.
    pub pull_message_size: usize,
    /// Core to pin the server thread to.
    pub core: Option<usize>,
}

/// What the echo server served.
#[derive(Debug, Default)]
struct EchoCounters {
    requests: AtomicU64,
    send_requests: AtomicU64,
    send_messages: AtomicU64,
    pull_requests: AtomicU64,
    pulled_messages: AtomicU64,
}

/// The echo server's totals and its thread's CPU use, at stop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EchoStats {
    /// Requests of any kind.
    pub requests: u64,
    /// Send requests (oneway ones included).
    pub send_requests: u64,
    /// Messages in those sends (batch entries counted one by one).
    pub send_messages: u64,
    /// Pull requests.
    pub pull_requests: u64,
    /// Synthetic records returned.
    pub pulled_messages: u64,
    /// The server thread's CPU use.
    pub usage: ThreadUsage,
}

/// A running echo server.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    counters: Arc<EchoCounters>,
    shutdown: flume::Sender<()>,
    thread: JoinHandle<ThreadUsage>,
}

impl EchoServer {
    /// Starts the server thread and waits until it listens on 127.0.0.1 (any port).
    ///
    /// # Errors
    /// When the thread, runtime or listener cannot be created.
    pub fn start(config: EchoConfig) -> std::io::Result<Self> {
        let counters = Arc::new(EchoCounters::default());
        let (shutdown, shutdown_rx) = flume::bounded::<()>(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("rmq-bench-echo".into())
            .spawn(move || {
                if let Some(core) = config.core {
                    crate::worker::pin_to_core(core);
                }
                let start = ThreadUsage::of_current_thread().unwrap_or_default();
                let runtime = match compio::runtime::Runtime::new() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return ThreadUsage::default();
                    }
                };
                runtime.block_on(serve_until(config, thread_counters, ready_tx, shutdown_rx));
                ThreadUsage::of_current_thread()
                    .unwrap_or_default()
                    .since(start)
            })?;
        let addr = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("echo server thread died before listening"))??;
        Ok(Self {
            addr,
            counters,
            shutdown,
            thread,
        })
    }

    /// The address it listens on (use it as both NameServer and broker).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and returns what it served.
    ///
    /// # Panics
    /// If the server thread panicked.
    #[must_use]
    pub fn stop(self) -> EchoStats {
        // The thread may already be gone; a failed send then changes nothing.
        let _ = self.shutdown.send(());
        let usage = self.thread.join().expect("echo server thread panicked");
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EchoStats {
            requests: load(&self.counters.requests),
            send_requests: load(&self.counters.send_requests),
            send_messages: load(&self.counters.send_messages),
            pull_requests: load(&self.counters.pull_requests),
            pulled_messages: load(&self.counters.pulled_messages),
            usage,
        }
    }
}

async fn serve_until(
    config: EchoConfig,
    counters: Arc<EchoCounters>,
    ready: std::sync::mpsc::Sender<std::io::Result<SocketAddr>>,
    shutdown: flume::Receiver<()>,
) {
    let bound = TcpListener::bind("127.0.0.1:0").await;
    let listener =
        match bound.and_then(|listener| listener.local_addr().map(|addr| (listener, addr))) {
            Ok(pair) => pair,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
    let (listener, addr) = listener;
    let handler = Rc::new(EchoHandler::new(&config, addr, counters));
    let _ = ready.send(Ok(addr));
    let served = std::pin::pin!(serve(&listener, handler, ServeConfig::default()));
    let stopped = std::pin::pin!(shutdown.recv_async());
    match select(served, stopped).await {
        Either::Left(((), _)) | Either::Right(_) => {}
    }
}

/// Answers requests; see the module doc.
struct EchoHandler {
    queues: i32,
    routes: EchoRoutes,
    addr: SocketAddr,
    counters: Arc<EchoCounters>,
    /// One encoded synthetic record, copied and re-stamped per pulled message.
    record: Bytes,
    /// Fixed offset message id in every send response.
    msg_id: String,
    /// Queue offsets handed out (echo has no queues; this only makes replies plausible).
    next_queue_offset: std::cell::Cell<i64>,
}

impl EchoHandler {
    fn new(config: &EchoConfig, addr: SocketAddr, counters: Arc<EchoCounters>) -> Self {
        let record = MessageRecord {
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: addr,
            store_timestamp: 0,
            store_host: addr,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::from(payload(config.pull_message_size)),
            topic: "echo".into(),
            properties: Properties::new(),
        };
        let mut encoded = BytesMut::with_capacity(record.encoded_len());
        record
            .encode(&mut encoded)
            .expect("a synthetic record within the CLI size limit encodes");
        Self {
            queues: config.queues,
            routes: config.routes,
            addr,
            counters,
            record: encoded.freeze(),
            msg_id: format!("7F00000100002A9F{:016X}", 0),
            next_queue_offset: std::cell::Cell::new(0),
        }
    }

    /// Counts a send request; returns its message count.
    fn count_send(&self, request: &RemotingCommand) -> u64 {
        let messages = if request.ext("m") == Some("true") || request.ext("batch") == Some("true") {
            count_batch_entries(&request.body)
        } else {
            1
        };
        self.counters.send_requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .send_messages
            .fetch_add(messages, Ordering::Relaxed);
        messages
    }

    fn send(&self, request: &RemotingCommand) -> RemotingCommand {
        let messages = self.count_send(request);
        let queue_id = request
            .ext("e")
            .or_else(|| request.ext("queueId"))
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        let queue_offset = self.next_queue_offset.get();
        self.next_queue_offset
            .set(queue_offset + i64::try_from(messages).unwrap_or(1));
        let header = SendMessageResponseHeader {
            msg_id: self.msg_id.clone(),
            queue_id,
            queue_offset,
            ..SendMessageResponseHeader::default()
        };
        RemotingCommand::response_to(request, ResponseCode::Success)
            .with_ext_fields(header.to_ext())
    }

    fn route(&self, request: &RemotingCommand) -> RemotingCommand {
        let topic = request.ext("topic").unwrap_or_default();
        let is_default = topic == DEFAULT_TOPIC;
        if !is_default && self.routes == EchoRoutes::DefaultTopicOnly {
            return RemotingCommand::response_to(request, ResponseCode::TopicNotExist).with_remark(
                format!("No topic route info in name server for the topic: {topic}"),
            );
        }
        let route = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [(MASTER_ID, self.addr.to_string())].into_iter().collect(),
                broker_name: ECHO_BROKER_NAME.into(),
                cluster: ECHO_CLUSTER.into(),
                ..BrokerData::default()
            }],
            queue_datas: vec![QueueData {
                broker_name: ECHO_BROKER_NAME.into(),
                perm: if is_default {
                    perm::READ_WRITE | perm::INHERIT
                } else {
                    perm::READ_WRITE
                },
                read_queue_nums: self.queues,
                write_queue_nums: self.queues,
                topic_sys_flag: 0,
            }],
            ..TopicRouteData::default()
        };
        RemotingCommand::response_to(request, ResponseCode::Success).with_body(route.to_json())
    }

    fn pull(&self, request: &RemotingCommand) -> RemotingCommand {
        let Ok(header) = PullMessageRequestHeader::decode_command(request) else {
            return RemotingCommand::response_to(request, ResponseCode::RequestCodeNotSupported);
        };
        let count = usize::try_from(header.max_msg_nums)
            .unwrap_or(0)
            .clamp(1, ECHO_PULL_RECORDS_MAX);
        let now_ms = wall_clock_ms();
        let mut body = BytesMut::with_capacity(self.record.len() * count);
        for index in 0..count {
            let start = body.len();
            body.extend_from_slice(&self.record);
            let record = &mut body[start..];
            let offset = header.queue_offset + index as i64;
            patch_offsets(record, offset, offset).expect("the template is a valid record");
            record[BORN_TIMESTAMP_OFFSET..BORN_TIMESTAMP_OFFSET + 8]
                .copy_from_slice(&now_ms.to_be_bytes());
        }
        self.counters.pull_requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .pulled_messages
            .fetch_add(count as u64, Ordering::Relaxed);
        let next = header.queue_offset + count as i64;
        let response_header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: next,
            min_offset: 0,
            max_offset: next,
            ..PullMessageResponseHeader::default()
        };
        RemotingCommand::response_to(request, ResponseCode::Success)
            .with_ext_fields(response_header.to_ext())
            .with_body(body.freeze())
    }

    fn answer(&self, request: &RemotingCommand) -> RemotingCommand {
        match request.request_code() {
            RequestCode::SendMessage
            | RequestCode::SendMessageV2
            | RequestCode::SendBatchMessage => self.send(request),
            RequestCode::PullMessage => self.pull(request),
            RequestCode::GetRouteinfoByTopic => self.route(request),
            RequestCode::HeartBeat | RequestCode::UpdateConsumerOffset => {
                RemotingCommand::response_to(request, ResponseCode::Success)
            }
            RequestCode::QueryConsumerOffset
                if QueryConsumerOffsetRequestHeader::decode_command(request).is_ok() =>
            {
                RemotingCommand::response_to(request, ResponseCode::QueryNotFound)
            }
            RequestCode::GetMaxOffset => {
                RemotingCommand::response_to(request, ResponseCode::Success)
                    .with_ext_fields(GetMaxOffsetResponseHeader { offset: 0 }.to_ext())
            }
            _ => RemotingCommand::response_to(request, ResponseCode::RequestCodeNotSupported)
                .with_remark(format!(" request type {} not supported", request.code)),
        }
    }
}

impl Handler for EchoHandler {
    fn handle(
        &self,
        _ctx: &ConnContext,
        request: RemotingCommand,
    ) -> impl std::future::Future<Output = Option<RemotingCommand>> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if request.is_oneway() {
            // No response goes back; only the count matters.
            if is_send(request.request_code()) {
                self.count_send(&request);
            }
            return std::future::ready(None);
        }
        std::future::ready(Some(self.answer(&request)))
    }
}

fn is_send(code: RequestCode) -> bool {
    matches!(
        code,
        RequestCode::SendMessage | RequestCode::SendMessageV2 | RequestCode::SendBatchMessage
    )
}

/// Entries of a batch body, found by hopping over each entry's TOTALSIZE (no decoding).
fn count_batch_entries(body: &[u8]) -> u64 {
    let mut position = 0;
    let mut entries = 0;
    while let Some(size) = body.get(position..position + 4) {
        let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        if size == 0 {
            break;
        }
        position += size;
        entries += 1;
    }
    entries
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::message::{encode_batch, BatchEntry};

    use super::*;

    #[test]
    fn batch_entries_are_counted_without_decoding() {
        let entries: Vec<BatchEntry> = (0..7)
            .map(|index| BatchEntry {
                flag: 0,
                body: Bytes::from(vec![b'x'; index * 3]),
                properties: Properties::new(),
            })
            .collect();
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body).expect("encodes");
        assert_eq!(count_batch_entries(&body), 7);
        assert_eq!(count_batch_entries(&[]), 0);
        assert_eq!(count_batch_entries(&[0, 0, 0]), 0);
    }
}
