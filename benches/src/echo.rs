//! The trivial echo path: an in-process server on its own pinned thread that answers every
//! request the harness makes without storing anything, so a run against it measures the
//! harness's own cost per message. Sends get SUCCESS and a plausible
//! `SendMessageResponseHeader`; route lookups get a route naming this server as the only
//! broker; pulls get `maxMsgNums` freshly stamped synthetic records; offset, heartbeat and
//! commit requests get the answers a new group would. Counts what it served.
//! Send requests take a lean path (header fields read in place, the answer rendered from a
//! template, many answers per write) so the server outpaces one harness core; every other
//! request is decoded and encoded by `rmq-net` as a broker would.
//! Must never store a message, nor answer a oneway request.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{select, Either};
use rmq_net::codec::body::route::{BrokerData, QueueData, TopicRouteData};
use rmq_net::codec::body::topic::perm;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::SerializeType;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::command::{RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};
use rmq_net::codec::frame;
use rmq_net::codec::header::offset::{
    GetMaxOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
};
use rmq_net::codec::header::pull::{PullMessageRequestHeader, PullMessageResponseHeader};
use rmq_net::codec::header::send::SendMessageResponseHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::codec::message::layout::BORN_TIMESTAMP_OFFSET;
use rmq_net::codec::message::{patch_offsets, MessageRecord, Properties};
use serde::Serialize;

use crate::lean::template::{signed_decimal, FrameTemplate, DECIMAL_TEXT_MAX};
use crate::lean::wire::{next_frame, RawFrame};
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
/// Bytes read per read syscall on an echo connection.
const ECHO_READ_CHUNK_SIZE: usize = 64 * 1024;

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
    let served = std::pin::pin!(accept_loop(&listener, handler));
    let stopped = std::pin::pin!(shutdown.recv_async());
    match select(served, stopped).await {
        Either::Left(((), _)) | Either::Right(_) => {}
    }
}

/// Accepts connections until the listener fails; each gets its own task, cancelled with
/// this future.
async fn accept_loop(listener: &TcpListener, handler: Rc<EchoHandler>) {
    let mut connections = Vec::new();
    while let Ok((stream, _)) = listener.accept().await {
        connections.retain(|task: &compio::runtime::JoinHandle<()>| !task.is_finished());
        connections.push(compio::runtime::spawn(echo_connection(
            stream,
            handler.clone(),
        )));
    }
}

/// Reads requests in bulk, answers every whole frame of a read, and writes the answers in
/// one write; ends at EOF, on an I/O error or on a malformed frame.
async fn echo_connection(stream: TcpStream, handler: Rc<EchoHandler>) {
    // Without it a small answer can wait for the client's delayed ACK.
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let limits = FrameLimits::default();
    let mut io = &stream;
    let mut input: Vec<u8> = Vec::with_capacity(ECHO_READ_CHUNK_SIZE);
    let mut output: Vec<u8> = Vec::with_capacity(ECHO_READ_CHUNK_SIZE);
    loop {
        if input.capacity() - input.len() < ECHO_READ_CHUNK_SIZE / 4 {
            input.reserve(ECHO_READ_CHUNK_SIZE);
        }
        let BufResult(result, returned) = io.append(input).await;
        input = returned;
        if !matches!(result, Ok(read) if read > 0) {
            return;
        }
        let mut consumed = 0;
        while let Ok(Some(frame)) = next_frame(&input[consumed..], &limits) {
            consumed += frame.bytes.len();
            if handler.answer_frame(&frame, &limits, &mut output).is_err() {
                return;
            }
        }
        if next_frame(&input[consumed..], &limits).is_err() {
            return;
        }
        input.drain(..consumed);
        if !output.is_empty() {
            let BufResult(result, returned) = io.write_all(output).await;
            output = returned;
            output.clear();
            if result.is_err() {
                return;
            }
        }
    }
}

/// A frame the echo server cannot read; its connection is closed.
#[derive(Debug)]
struct Unreadable;

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
    /// SUCCESS send answers with `queueId` and `queueOffset` cut out: JSON, ROCKETMQ.
    send_answers: [FrameTemplate; 2],
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
        let msg_id = format!("7F00000100002A9F{:016X}", 0);
        let send_answer = |serialize_type| {
            let request = RemotingCommand {
                serialize_type,
                ..RemotingCommand::default()
            };
            let header = SendMessageResponseHeader {
                msg_id: msg_id.clone(),
                ..SendMessageResponseHeader::default()
            };
            let answer = RemotingCommand::response_to(&request, ResponseCode::Success)
                .with_ext_fields(header.to_ext());
            FrameTemplate::new(&answer, &["queueId", "queueOffset"])
                .expect("the send answer has no marker text")
        };
        Self {
            queues: config.queues,
            routes: config.routes,
            addr,
            counters,
            record: encoded.freeze(),
            send_answers: [
                send_answer(SerializeType::Json),
                send_answer(SerializeType::RocketMq),
            ],
            msg_id,
            next_queue_offset: std::cell::Cell::new(0),
        }
    }

    /// Answers one frame into `out`: sends from a template, anything else through the
    /// codec and [`Self::answer`]. Oneway requests are counted, never answered.
    fn answer_frame(
        &self,
        frame: &RawFrame<'_>,
        limits: &FrameLimits,
        out: &mut Vec<u8>,
    ) -> Result<(), Unreadable> {
        // V2 keys (`m`, `e`) and the V1 ones (`batch`, `queueId`), in one pass.
        let (head, [v2_batch, v1_batch, v2_queue_id, v1_queue_id]) = frame
            .fields(["m", "batch", "e", "queueId"])
            .map_err(|_| Unreadable)?;
        if head.flag & FLAG_RESPONSE != 0 {
            return Ok(());
        }
        let code = RequestCode::from_value(head.code);
        if !is_send(code) {
            let Ok(Some((request, _))) = frame::decode(frame.bytes, limits) else {
                return Err(Unreadable);
            };
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if request.is_oneway() {
                return Ok(());
            }
            let mut response = self.answer(&request);
            response.opaque = request.opaque;
            response.flag = (response.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
            response.serialize_type = request.serialize_type;
            let mut encoded = BytesMut::new();
            frame::encode(&response, &mut encoded).map_err(|_| Unreadable)?;
            out.extend_from_slice(&encoded);
            return Ok(());
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let is_batch = [v2_batch, v1_batch].contains(&Some(&b"true"[..]));
        let messages = if is_batch {
            count_batch_entries(frame.body)
        } else {
            1
        };
        self.count_messages(messages);
        if head.flag & FLAG_ONEWAY != 0 {
            return Ok(());
        }
        let queue_id: i32 = v2_queue_id
            .or(v1_queue_id)
            .and_then(|text| std::str::from_utf8(text).ok()?.parse().ok())
            .unwrap_or(0);
        let queue_offset = self.next_queue_offset.get();
        self.next_queue_offset
            .set(queue_offset + i64::try_from(messages).unwrap_or(1));
        let mut queue_id_text = [0_u8; DECIMAL_TEXT_MAX];
        let mut queue_offset_text = [0_u8; DECIMAL_TEXT_MAX];
        let queue_id_text = signed_decimal(&mut queue_id_text, i64::from(queue_id));
        let queue_offset_text = signed_decimal(&mut queue_offset_text, queue_offset);
        let template = match frame.serialize_type {
            SerializeType::Json => &self.send_answers[0],
            SerializeType::RocketMq => &self.send_answers[1],
        };
        template.render(out, head.opaque, &[queue_id_text, queue_offset_text], &[]);
        Ok(())
    }

    fn count_messages(&self, messages: u64) {
        self.counters.send_requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .send_messages
            .fetch_add(messages, Ordering::Relaxed);
    }

    /// Counts a send request; returns its message count.
    fn count_send(&self, request: &RemotingCommand) -> u64 {
        let messages = if request.ext("m") == Some("true") || request.ext("batch") == Some("true") {
            count_batch_entries(&request.body)
        } else {
            1
        };
        self.count_messages(messages);
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
    use crate::message::{MessageFactory, MessageSpec};
    use crate::route::QueueTarget;

    fn handler() -> EchoHandler {
        let config = EchoConfig {
            queues: 4,
            routes: EchoRoutes::AllTopics,
            pull_message_size: 16,
            core: None,
        };
        let addr = "127.0.0.1:1".parse().expect("addr");
        EchoHandler::new(&config, addr, Arc::default())
    }

    #[test]
    fn send_answers_from_the_template_equal_the_codec_ones() {
        let handler = handler();
        let limits = FrameLimits::default();
        let queues: Vec<QueueTarget> = (0..4)
            .map(|queue_id| QueueTarget {
                broker_name: ECHO_BROKER_NAME.into(),
                broker_addr: "127.0.0.1:1".into(),
                queue_id,
            })
            .collect();
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            for batch in [1, 5] {
                let spec = MessageSpec {
                    topic: "T".into(),
                    producer_group: "PG".into(),
                    default_queue_nums: 4,
                    size: 10,
                    batch,
                    tags: Vec::new(),
                    key_space: 0,
                    transactional: false,
                    timer: None,
                };
                let mut factory = MessageFactory::new(spec, &queues, 0, 1).expect("factory");
                let mut request = factory.request(3, batch, 2).expect("request");
                request.opaque = 4321;
                request.serialize_type = serialize_type;
                let bytes = frame::encode_to_bytes(&request).expect("encodes");
                let raw = next_frame(&bytes, &limits).expect("ok").expect("whole");
                handler.next_queue_offset.set(1_000_000_007);
                let mut out = Vec::new();
                handler
                    .answer_frame(&raw, &limits, &mut out)
                    .expect("answers");
                handler.next_queue_offset.set(1_000_000_007);
                let expected = handler.answer(&request);
                assert_eq!(expected.ext("queueId"), Some("3"));
                let expected = frame::encode_to_bytes(&expected).expect("encodes");
                assert_eq!(out, expected, "{serialize_type:?} batch {batch}");
                assert_eq!(
                    handler.next_queue_offset.get(),
                    1_000_000_007 + i64::from(batch)
                );
                // Oneway: counted, never answered.
                let oneway = frame::encode_to_bytes(&request.clone().oneway()).expect("encodes");
                let raw = next_frame(&oneway, &limits).expect("ok").expect("whole");
                out.clear();
                handler
                    .answer_frame(&raw, &limits, &mut out)
                    .expect("reads");
                assert!(out.is_empty());
            }
        }
        let counted = handler.counters.send_messages.load(Ordering::Relaxed);
        // Per encoding and batch size: the lean answer, the codec answer and the oneway.
        assert_eq!(counted, 2 * 3 * (1 + 5));
    }

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
