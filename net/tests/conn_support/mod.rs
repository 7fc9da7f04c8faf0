//! Shared fixtures for the `conn_*` tests: a scriptable handler, a server on 127.0.0.1:0 and
//! raw-socket helpers. Every test runs on one compio runtime thread.

#![allow(dead_code)] // each test crate uses a different subset

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use compio::runtime::JoinHandle;
use rmq_net::codec::codes::{RequestCode, ResponseCode, SerializeType};
use rmq_net::codec::frame;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::conn::{serve, ClientError, ConnContext, ConnHandle, Handler, ServeConfig};
use rmq_net::{ExtFields, RemotingCommand};

/// Echoes `seq` and the body.
pub const CODE_ECHO: i32 = 9001;
/// Echoes after `delay_ms` milliseconds.
pub const CODE_DELAY: i32 = 9002;
/// Waits for one release on the handler's gate, then echoes.
pub const CODE_BLOCK: i32 = 9003;
/// Sends a oneway NOTIFY_CONSUMER_IDS_CHANGED back to the caller, then echoes.
pub const CODE_NOTIFY_BACK: i32 = 9004;
/// Invokes GET_CONSUMER_RUNNING_INFO on the caller and answers with its body.
pub const CODE_ASK_BACK: i32 = 9005;
/// Calls `try_send_oneway` `count` times without yielding; answers with extFields `sent`
/// and `full` (how many were queued and how many found the write queue full).
pub const CODE_FLOOD: i32 = 9006;

/// A handler whose behaviour the request code picks; counts calls.
pub struct ScriptedHandler {
    pub calls: Cell<usize>,
    /// Calls that ran to their end (those answered with the echo).
    pub completed: Cell<usize>,
    /// Every connection a request came in on, by id.
    pub connections: RefCell<HashMap<u64, ConnHandle>>,
    pub gate: flume::Receiver<()>,
    pub release: flume::Sender<()>,
}

impl ScriptedHandler {
    pub fn new() -> Rc<Self> {
        let (release, gate) = flume::unbounded();
        Rc::new(Self {
            calls: Cell::new(0),
            completed: Cell::new(0),
            connections: RefCell::new(HashMap::new()),
            gate,
            release,
        })
    }
}

/// Echoes `seq` and the body. With extField `sloppy`, the response carries the wrong
/// serialize type, opaque and flag, which the connection must correct.
fn echo(request: &RemotingCommand) -> RemotingCommand {
    let mut ext = ExtFields::new();
    if let Some(seq) = request.ext("seq") {
        ext.insert("seq", seq);
    }
    let mut response = RemotingCommand::response_to(request, ResponseCode::Success)
        .with_ext_fields(ext)
        .with_body(request.body.clone());
    if request.ext("sloppy").is_some() {
        response.serialize_type = match request.serialize_type {
            SerializeType::Json => SerializeType::RocketMq,
            SerializeType::RocketMq => SerializeType::Json,
        };
        response.opaque = request.opaque.wrapping_add(1_000_000);
        response.flag = 0;
    }
    response
}

impl Handler for ScriptedHandler {
    async fn handle(&self, ctx: &ConnContext, request: RemotingCommand) -> Option<RemotingCommand> {
        self.calls.set(self.calls.get() + 1);
        self.connections
            .borrow_mut()
            .insert(ctx.handle().id(), ctx.handle().clone());
        match request.code {
            CODE_DELAY => {
                let delay_ms: u64 = request
                    .ext("delay_ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                compio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            CODE_BLOCK => {
                self.gate
                    .recv_async()
                    .await
                    .expect("gate sender lives in the handler");
            }
            CODE_NOTIFY_BACK => {
                let mut ext = ExtFields::new();
                ext.insert("consumerGroup", "G");
                let notify = RemotingCommand::request(RequestCode::NotifyConsumerIdsChanged, ext);
                ctx.handle()
                    .send_oneway(notify)
                    .await
                    .expect("connection is open");
            }
            CODE_ASK_BACK => {
                let ask =
                    RemotingCommand::request(RequestCode::GetConsumerRunningInfo, ExtFields::new());
                let answer = ctx.handle().invoke(ask, Duration::from_secs(5)).await;
                let reply = match answer {
                    Ok(answer) => RemotingCommand::response_to(&request, answer.response_code())
                        .with_body(answer.body),
                    Err(error) => RemotingCommand::response_to(&request, ResponseCode::SystemError)
                        .with_remark(error.to_string()),
                };
                return Some(reply);
            }
            CODE_FLOOD => {
                let count: usize = request
                    .ext("count")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let (mut sent, mut full) = (0, 0);
                for _ in 0..count {
                    let notify = RemotingCommand::request(
                        RequestCode::NotifyConsumerIdsChanged,
                        ExtFields::new(),
                    );
                    match ctx.handle().try_send_oneway(notify) {
                        Ok(()) => sent += 1,
                        Err(ClientError::WriteQueueFull { .. }) => full += 1,
                        Err(other) => panic!("unexpected send error {other}"),
                    }
                }
                let mut ext = ExtFields::new();
                ext.insert("sent", sent.to_string());
                ext.insert("full", full.to_string());
                let response = RemotingCommand::response_to(&request, ResponseCode::Success);
                return Some(response.with_ext_fields(ext));
            }
            _ => {}
        }
        self.completed.set(self.completed.get() + 1);
        Some(echo(&request))
    }
}

/// A request with code `code` and extFields `seq` (and more).
pub fn request(code: i32, seq: usize, more: &[(&str, &str)]) -> RemotingCommand {
    let mut ext = ExtFields::new();
    ext.insert("seq", seq.to_string());
    for (key, value) in more {
        ext.insert(*key, *value);
    }
    RemotingCommand::request(RequestCode::from_value(code), ext)
}

/// Binds 127.0.0.1:0 and serves `handler` in a task; drop or cancel the task to kill it.
pub async fn start_server<H: Handler + 'static>(
    handler: Rc<H>,
    config: ServeConfig,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let task = compio::runtime::spawn(async move { serve(&listener, handler, config).await });
    (addr, task)
}

/// Encodes `command` as raw frame bytes.
pub fn frame_bytes(command: &RemotingCommand) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame::encode(command, &mut out).expect("test command encodes");
    out.to_vec()
}

/// Writes raw bytes.
pub async fn write_raw(stream: &mut TcpStream, bytes: Vec<u8>) {
    let BufResult(result, _) = stream.write_all(bytes).await;
    result.expect("raw write");
}

/// How a raw read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RawEnd {
    /// The server closed the socket (EOF or reset).
    Closed,
    /// Nothing happened within the wait.
    StillOpen,
}

/// Reads frames until `wait` passes or the socket closes; returns the decoded frames.
pub async fn read_frames(stream: &mut TcpStream, wait: Duration) -> (Vec<RemotingCommand>, RawEnd) {
    let deadline = Instant::now() + wait;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut frames = Vec::new();
    loop {
        while let Some(command) =
            frame::decode_from(&mut buf, &FrameLimits::default()).expect("server frames decode")
        {
            frames.push(command);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        buf.reserve(64 * 1024);
        match compio::time::timeout(remaining, stream.append(buf)).await {
            Err(_elapsed) => return (frames, RawEnd::StillOpen),
            Ok(BufResult(Ok(0), _)) | Ok(BufResult(Err(_), _)) => return (frames, RawEnd::Closed),
            Ok(BufResult(Ok(_), returned)) => buf = returned,
        }
    }
}

/// Polls `condition` every 5 ms until it holds or `wait` passes.
pub async fn eventually(wait: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        compio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}
