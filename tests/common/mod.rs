//! Shared helpers for black-box tests: start the built `rmq` binary on ephemeral ports, wait
//! for its READY line, kill it on drop; a standalone broker over a temporary store; request
//! builders and reply decoders for the broker's data path (send, pull, offsets, clients); a
//! blocking raw-frame connection for malformed and oneway traffic.

#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rmq_net::codec::body::heartbeat::{ConsumerData, HeartbeatData, ProducerData};
use rmq_net::codec::body::route::TopicRouteData;
use rmq_net::codec::body::subscription::SubscriptionData;
use rmq_net::codec::body::topic::{TopicConfigAndMappingSerializeWrapper, TopicFilterType};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::frame;
use rmq_net::codec::header::admin::CreateTopicRequestHeader;
use rmq_net::codec::header::namesrv::GetRouteInfoRequestHeader;
use rmq_net::codec::header::offset::{
    QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use rmq_net::codec::header::pull::{PullMessageRequestHeader, PullMessageResponseHeader};
use rmq_net::codec::header::send::{
    SendHeaderForm, SendMessageRequestHeader, SendMessageResponseHeader,
};
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::codec::message::{decode_all, keys, CrcCheck, MessageRecord, Properties};
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};

/// A running `rmq` child process; killed when dropped.
pub struct Server {
    child: Child,
    /// Addresses announced on READY lines, by role (`namesrv`, `broker`).
    pub addrs: Vec<(String, SocketAddr)>,
    /// The process's log lines (stderr), when started with [`Server::start_logged`].
    pub log: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

impl Server {
    /// Starts `rmq <args>` and waits until it printed `expect` READY lines.
    pub fn start(args: &[&str], expect: usize) -> Self {
        Self::start_logged(args, expect, None)
    }

    /// [`Server::start`]; with `log_level`, the process logs at that level and its stderr lines
    /// are kept in [`Server::log`] (and echoed).
    pub fn start_logged(args: &[&str], expect: usize, log_level: Option<&str>) -> Self {
        Self::start_limited(args, expect, log_level, None)
    }

    /// [`Server::start_logged`] with both open-files limits (soft and hard) set to
    /// `open_files` in the child, so it cannot raise them.
    pub fn start_limited(
        args: &[&str],
        expect: usize,
        log_level: Option<&str>,
        open_files: Option<u64>,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rmq"));
        if let Some(open_files) = open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: open_files,
                rlim_max: open_files,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads the copied struct.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command.args(args);
        Self::start_command(command, expect, log_level)
    }

    /// Starts a prepared `command` running `rmq` (its arguments set; for instance inside a
    /// network namespace) and waits until it printed `expect` READY lines. Its stdout, stderr
    /// and `RUST_LOG` are set here, `log_level` as in [`Server::start_logged`].
    pub fn start_command(mut command: Command, expect: usize, log_level: Option<&str>) -> Self {
        let level = log_level.map_or_else(
            || std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            str::to_owned,
        );
        let shown = format!("{command:?}");
        let mut child = command
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(if log_level.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
        let log = child.stderr.take().map(|stderr| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = std::sync::Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    sink.lock().expect("log lines").push(line);
                }
            });
            lines
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("READY ") {
                    let mut parts = rest.split_whitespace();
                    if let (Some(role), Some(addr)) = (parts.next(), parts.next()) {
                        let addr: SocketAddr = addr.parse().expect("READY address");
                        if tx.send((role.to_owned(), addr)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut addrs = Vec::new();
        while addrs.len() < expect {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(entry) => addrs.push(entry),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{shown} did not print {expect} READY lines within 30 s");
                }
            }
        }
        Self { child, addrs, log }
    }

    /// Kept log lines containing every one of `needles` (see [`Server::start_logged`]).
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        let log = self.log.as_ref().expect("started with start_logged");
        log.lock()
            .expect("log lines")
            .iter()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .cloned()
            .collect()
    }

    /// The address announced for `role`.
    pub fn addr(&self, role: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, a)| *a)
            .expect("role announced")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits up to 60 s for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory is passed.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How long one request may take in tests (a held pull is given its own bound).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// CommitLog segment size of test stores: the default (1 GiB) is zero-filled at start.
pub const TEST_SEGMENT_SIZE_BYTES: u64 = 16 * 1024 * 1024;
/// Broker name written into every test broker.conf.
pub const BROKER_NAME: &str = "broker-a";
/// Cluster name of test brokers (the default).
pub const CLUSTER_NAME: &str = "DefaultCluster";

/// A directory under Cargo's per-target temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "{prefix}-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes `<dir>/broker.conf`: a small CommitLog segment, a fixed broker name, then `extra`
/// (more `key=value` lines). Returns its path.
pub fn write_broker_conf(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("broker.conf");
    let text = format!(
        "brokerName={BROKER_NAME}\nmappedFileSizeCommitLog={TEST_SEGMENT_SIZE_BYTES}\n{extra}\n"
    );
    std::fs::write(&path, text).expect("write broker.conf");
    path
}

/// A free TCP port on loopback (bound and released: a test that needs a fixed port across
/// restarts takes one; racing another process for it is possible but unlikely).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// `rmq namesrv` on an ephemeral loopback port, its KV config in `dir`.
pub fn start_namesrv(dir: &TempDir) -> Server {
    let kv = dir.path().join("kv.json");
    Server::start(
        &[
            "namesrv",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--kv-config",
            kv.to_str().expect("utf-8"),
        ],
        1,
    )
}

/// A SLAVE (`rmq broker -c`, brokerId `id`) of [`BROKER_NAME`] on loopback (any free port)
/// over its own store in `dir`, registering with `namesrv` (it learns its master from the
/// NameServer); `extra` is appended to its broker.conf; with `log_level` its log is kept
/// ([`Server::start_logged`]).
pub fn start_slave(
    dir: &TempDir,
    namesrv: SocketAddr,
    id: u32,
    shards: usize,
    extra: &str,
    log_level: Option<&str>,
) -> Server {
    let conf = write_broker_conf(
        dir.path(),
        &format!(
            "brokerRole=SLAVE\nbrokerId={id}\nlistenPort=0\nbrokerIP1=127.0.0.1\n\
             namesrvAddr={namesrv}\nstorePathRootDir={}\n{extra}\n",
            dir.path().join("store").display()
        ),
    );
    let shards = shards.to_string();
    Server::start_logged(
        &[
            "broker",
            "-c",
            conf.to_str().expect("utf-8"),
            "--shards",
            &shards,
        ],
        1,
        log_level,
    )
}

/// `rmq standalone` (NameServer + broker) on ephemeral ports over a temporary store.
pub struct Broker {
    /// The running process (declared before `dir`, so it dies before the store is removed).
    pub server: Server,
    /// Shard count it runs with.
    pub shards: usize,
    /// NameServer address.
    pub namesrv: SocketAddr,
    /// Broker address (`brokerIP1:port`, the store host in records and msgIds).
    pub addr: SocketAddr,
    dir: TempDir,
    conf: PathBuf,
    /// `RUST_LOG` for the process with its log kept ([`Server::start_logged`]).
    pub log_level: Option<&'static str>,
    /// Open-files limit of the process ([`Server::start_limited`]).
    pub open_files: Option<u64>,
}

impl Broker {
    /// Starts a standalone broker with `shards` shards; `extra_conf` is appended to broker.conf.
    pub fn start(shards: usize, extra_conf: &str) -> Self {
        Self::start_logged(shards, extra_conf, None)
    }

    /// [`Broker::start`] logging at `log_level` into [`Server::log`] (every restart too).
    pub fn start_logged(shards: usize, extra_conf: &str, log_level: Option<&'static str>) -> Self {
        Self::start_limited(shards, extra_conf, log_level, None)
    }

    /// [`Broker::start_logged`] under an open-files limit ([`Server::start_limited`]).
    pub fn start_limited(
        shards: usize,
        extra_conf: &str,
        log_level: Option<&'static str>,
        open_files: Option<u64>,
    ) -> Self {
        let dir = TempDir::new("broker");
        let conf = write_broker_conf(dir.path(), extra_conf);
        let server = Self::spawn(&dir, &conf, shards, log_level, open_files);
        let (namesrv, addr) = (server.addr("namesrv"), server.addr("broker"));
        Self {
            server,
            shards,
            namesrv,
            addr,
            dir,
            conf,
            log_level,
            open_files,
        }
    }

    fn spawn(
        dir: &TempDir,
        conf: &Path,
        shards: usize,
        log_level: Option<&str>,
        open_files: Option<u64>,
    ) -> Server {
        let store = dir.path().join("store");
        let shards = shards.to_string();
        Server::start_limited(
            &[
                "standalone",
                "--namesrv-port",
                "0",
                "--broker-port",
                "0",
                "--store-dir",
                store.to_str().expect("utf-8 path"),
                "-c",
                conf.to_str().expect("utf-8 path"),
                "--shards",
                &shards,
            ],
            2,
            log_level,
            open_files,
        )
    }

    /// SIGKILLs the process, then starts it again on the same store (new ports).
    pub fn kill_and_restart(&mut self) {
        self.server.kill();
        self.server = Self::spawn(
            &self.dir,
            &self.conf,
            self.shards,
            self.log_level,
            self.open_files,
        );
        self.namesrv = self.server.addr("namesrv");
        self.addr = self.server.addr("broker");
    }

    /// Stops the process cleanly (SIGTERM), asserts it exited 0, then starts it again on the same
    /// store (new ports).
    pub fn terminate_and_restart(&mut self) {
        let status = self.server.terminate();
        assert!(status.success(), "clean shutdown exit status {status}");
        self.server = Self::spawn(
            &self.dir,
            &self.conf,
            self.shards,
            self.log_level,
            self.open_files,
        );
        self.namesrv = self.server.addr("namesrv");
        self.addr = self.server.addr("broker");
    }

    /// Rewrites broker.conf as [`write_broker_conf`] does with `extra`; the next restart
    /// ([`Broker::terminate_and_restart`], [`Broker::kill_and_restart`]) reads it.
    pub fn rewrite_conf(&mut self, extra: &str) {
        self.conf = write_broker_conf(self.dir.path(), extra);
    }

    /// `storePathRootDir`.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A client for the broker.
    pub fn client(&self) -> RemotingClient {
        RemotingClient::new(self.addr.to_string(), ClientConfig::default())
    }

    /// A client for the NameServer.
    pub fn namesrv_client(&self) -> RemotingClient {
        RemotingClient::new(self.namesrv.to_string(), ClientConfig::default())
    }
}

/// Runs `future` to completion on a fresh compio runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("io_uring runtime")
        .block_on(future)
}

/// Invokes `request` with [`TIMEOUT`]; a transport failure fails the test.
pub async fn call(client: &RemotingClient, request: RemotingCommand) -> RemotingCommand {
    let code = request.code;
    client
        .invoke(request, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("request {code}: {e}"))
}

/// Asserts `reply` has `code`, showing the remark otherwise.
#[track_caller]
pub fn assert_code(reply: &RemotingCommand, code: ResponseCode) {
    assert_eq!(
        reply.response_code(),
        code,
        "remark: {:?}, ext: {:?}",
        reply.remark,
        reply.ext_fields
    );
}

/// UPDATE_AND_CREATE_TOPIC request.
pub fn create_topic_request(topic: &str, queues: i32, perm: i32) -> RemotingCommand {
    let header = CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm,
        topic_filter_type: TopicFilterType::SingleTag,
        topic_sys_flag: Some(0),
        order: false,
        attributes: None,
        force: None,
    };
    RemotingCommand::request(RequestCode::UpdateAndCreateTopic, header.to_ext())
}

/// GET_ALL_TOPIC_CONFIG from `broker`: its whole topic table.
pub fn all_topics(broker: &Broker) -> TopicConfigAndMappingSerializeWrapper {
    let reply = block_on(call(
        &broker.client(),
        RemotingCommand::request(RequestCode::GetAllTopicConfig, ExtFields::new()),
    ));
    assert_code(&reply, ResponseCode::Success);
    TopicConfigAndMappingSerializeWrapper::from_json(&reply.body).expect("topic config body")
}

/// Creates `topic` with `queues` read and write queues and `perm`; asserts SUCCESS.
pub async fn create_topic(client: &RemotingClient, topic: &str, queues: i32, perm: i32) {
    let reply = call(client, create_topic_request(topic, queues, perm)).await;
    assert_code(&reply, ResponseCode::Success);
}

/// GET_ROUTEINFO_BY_TOPIC (standard JSON) from a NameServer: the route, `None` on
/// TOPIC_NOT_EXIST; any other code fails the test.
pub async fn topic_route(namesrv: &RemotingClient, topic: &str) -> Option<TopicRouteData> {
    let header = GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: Some(true),
    };
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetRouteinfoByTopic, header.to_ext()),
    )
    .await;
    match reply.response_code() {
        ResponseCode::Success => Some(TopicRouteData::from_json(&reply.body).expect("route body")),
        ResponseCode::TopicNotExist => None,
        other => panic!("route of {topic}: {other:?}"),
    }
}

/// Waits (up to 5 s) until the route of `topic` satisfies `check`; returns the last route seen.
pub async fn await_route(
    namesrv: &RemotingClient,
    topic: &str,
    check: impl Fn(&Option<TopicRouteData>) -> bool,
) -> Option<TopicRouteData> {
    let mut last = None;
    for _ in 0..250 {
        last = topic_route(namesrv, topic).await;
        if check(&last) {
            return last;
        }
        compio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("route of {topic} never matched; last: {last:?}");
}

/// Message properties with the optional `TAGS`, `KEYS` and `UNIQ_KEY`.
pub fn properties(tags: Option<&str>, keys_value: Option<&str>, uniq: Option<&str>) -> Properties {
    let mut props = Properties::new();
    for (name, value) in [
        (keys::TAGS, tags),
        (keys::KEYS, keys_value),
        (keys::UNIQ_KEY, uniq),
    ] {
        if let Some(value) = value {
            props.insert(name, value).expect("valid property");
        }
    }
    props
}

/// A send header for `topic`/`queue_id` (negative: broker picks) with `props`.
pub fn send_header(topic: &str, queue_id: i32, props: &Properties) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "PG".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: 0,
        properties: (!props.is_empty()).then(|| props.to_wire_string()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        max_reconsume_times: None,
        batch: Some(false),
        broker_name: None,
    }
}

/// A SEND_MESSAGE (10, long names) or SEND_MESSAGE_V2 (310) / SEND_BATCH_MESSAGE (320,
/// letters) request carrying `header` and `body`.
pub fn send_request(
    code: RequestCode,
    header: &SendMessageRequestHeader,
    body: Bytes,
) -> RemotingCommand {
    let form = SendHeaderForm::for_request_code(code).expect("a send code");
    RemotingCommand::request(code, header.to_ext_in(form)).with_body(body)
}

/// Sends one message with SEND_MESSAGE_V2; returns the raw reply.
pub async fn send_v2(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    props: &Properties,
) -> RemotingCommand {
    let header = send_header(topic, queue_id, props);
    call(
        client,
        send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::copy_from_slice(body),
        ),
    )
    .await
}

/// A decoded SUCCESS send reply.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The send response header.
    pub header: SendMessageResponseHeader,
    /// The body that was sent.
    pub body: Bytes,
}

/// Decodes a send reply, asserting SUCCESS.
#[track_caller]
pub fn sent(reply: &RemotingCommand, body: &[u8]) -> Sent {
    assert_code(reply, ResponseCode::Success);
    let header = SendMessageResponseHeader::decode_command(reply).expect("send response header");
    Sent {
        header,
        body: Bytes::copy_from_slice(body),
    }
}

/// What a test pull asks for.
#[derive(Debug, Clone)]
pub struct PullSpec<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Queue.
    pub queue_id: i32,
    /// Start offset.
    pub offset: i64,
    /// Batch size.
    pub max: i32,
    /// Pull sysFlag bits ([`rmq_net::codec::header::pull::PullSysFlag`]).
    pub sys_flag: i32,
    /// `suspendTimeoutMillis`.
    pub suspend_ms: i64,
    /// Subscription expression (sent with the SUBSCRIPTION flag).
    pub subscription: Option<&'a str>,
    /// `commitOffset`.
    pub commit_offset: i64,
}

impl<'a> PullSpec<'a> {
    /// A plain pull: SUBSCRIPTION flag with `*`, no suspend, 32 messages.
    pub fn new(topic: &'a str, queue_id: i32, offset: i64) -> Self {
        Self {
            group: "CG",
            topic,
            queue_id,
            offset,
            max: 32,
            sys_flag: rmq_net::codec::header::pull::PullSysFlag::SUBSCRIPTION,
            suspend_ms: 0,
            subscription: Some("*"),
            commit_offset: 0,
        }
    }

    /// The PULL_MESSAGE request.
    pub fn request(&self) -> RemotingCommand {
        let header = PullMessageRequestHeader {
            consumer_group: self.group.into(),
            topic: self.topic.into(),
            queue_id: self.queue_id,
            queue_offset: self.offset,
            max_msg_nums: self.max,
            sys_flag: self.sys_flag,
            commit_offset: self.commit_offset,
            suspend_timeout_millis: self.suspend_ms,
            subscription: self.subscription.map(str::to_owned),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
            request_source: None,
            proxy_froward_client_id: None,
        };
        RemotingCommand::request(RequestCode::PullMessage, header.to_ext())
    }
}

/// A decoded pull reply.
#[derive(Debug)]
pub struct Pulled {
    /// Response code.
    pub code: ResponseCode,
    /// Response header.
    pub header: PullMessageResponseHeader,
    /// Records of the body, BODYCRC verified.
    pub records: Vec<MessageRecord>,
}

/// Decodes a pull reply (records only on SUCCESS; any other code must carry no body).
#[track_caller]
pub fn pulled(reply: &RemotingCommand) -> Pulled {
    let header = PullMessageResponseHeader::decode_command(reply)
        .unwrap_or_else(|e| panic!("pull response header ({:?}): {e}", reply.remark));
    let code = reply.response_code();
    let records = if code == ResponseCode::Success {
        decode_all(&reply.body, CrcCheck::Verify).expect("pull body decodes with valid CRCs")
    } else {
        assert!(reply.body.is_empty(), "{code:?} carries no body");
        Vec::new()
    };
    Pulled {
        code,
        header,
        records,
    }
}

/// Pulls once.
pub async fn pull(client: &RemotingClient, spec: &PullSpec<'_>) -> Pulled {
    pulled(&call(client, spec.request()).await)
}

/// Pulls `topic`/`queue_id` from offset 0 until caught up (PULL_NOT_FOUND); every other code
/// fails the test.
pub async fn pull_all(client: &RemotingClient, topic: &str, queue_id: i32) -> Vec<MessageRecord> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let reply = pull(client, &PullSpec::new(topic, queue_id, offset)).await;
        match reply.code {
            ResponseCode::Success => {
                assert!(!reply.records.is_empty(), "SUCCESS with records");
                assert!(reply.header.next_begin_offset > offset, "pull progresses");
                offset = reply.header.next_begin_offset;
                records.extend(reply.records);
            }
            ResponseCode::PullNotFound => {
                assert_eq!(reply.header.next_begin_offset, offset);
                assert_eq!(reply.header.max_offset, offset, "caught up at max");
                return records;
            }
            other => panic!("pull {topic}/{queue_id}@{offset}: {other:?}"),
        }
    }
}

/// Every record of `topic`/`queue_id` from offset 0, 32 per pull; a topic that does not exist
/// (yet) has none. Other codes fail the test.
pub async fn pull_records(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
) -> Vec<MessageRecord> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let mut spec = PullSpec::new(topic, queue_id, offset);
        spec.max = 32;
        let reply = pull(client, &spec).await;
        match reply.code {
            ResponseCode::Success => {
                offset = reply.header.next_begin_offset;
                out.extend(reply.records);
            }
            ResponseCode::PullNotFound | ResponseCode::TopicNotExist => return out,
            other => panic!("pull {topic}/{queue_id}@{offset}: {other:?}"),
        }
    }
}

/// Creates `topic` with `queues` queues and waits (at most 10 s) until every queue serves
/// pulls: TOPIC_NOT_EXIST until then, PULL_NOT_FOUND after.
pub async fn create_and_wait(client: &RemotingClient, topic: &str, queues: i32) {
    create_and_wait_within(client, topic, queues, Duration::from_secs(10)).await;
}

/// [`create_and_wait`] with the wait bounded by `within`.
pub async fn create_and_wait_within(
    client: &RemotingClient,
    topic: &str,
    queues: i32,
    within: Duration,
) {
    create_topic(client, topic, queues, 6).await;
    let deadline = Instant::now() + within;
    for queue_id in 0..queues {
        loop {
            let reply = pull(client, &PullSpec::new(topic, queue_id, 0)).await;
            if reply.code == ResponseCode::PullNotFound {
                break;
            }
            assert_eq!(
                reply.code,
                ResponseCode::TopicNotExist,
                "{topic}/{queue_id}"
            );
            assert!(
                Instant::now() < deadline,
                "topic {topic} never became pullable"
            );
            compio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Properties made of `pairs` (each must be a valid property).
pub fn props(pairs: &[(&str, &str)]) -> Properties {
    let mut properties = Properties::new();
    for (name, value) in pairs {
        properties.insert(*name, *value).expect("valid property");
    }
    properties
}

/// The broker's TIMER_STATUS report (must answer SUCCESS).
pub async fn timer_status(client: &RemotingClient) -> rmq::broker::timer::admin::TimerReport {
    let reply = call(
        client,
        RemotingCommand::request(RequestCode::TimerStatus, ExtFields::new()),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    serde_json::from_slice(&reply.body).expect("a timer report")
}

/// Every queue's records of `topic` (queues `0..queues`), pulled from `client`.
pub async fn all_records(
    client: &RemotingClient,
    topic: &str,
    queues: i32,
) -> Vec<Vec<MessageRecord>> {
    let mut all = Vec::new();
    for queue in 0..queues {
        all.push(pull_all(client, topic, queue).await);
    }
    all
}

/// Waits (at most `limit`) until `slave` serves exactly the records `master` serves for
/// `topic`'s queues `0..queues` (every field of every record, queue by queue).
pub async fn slave_equals_master(
    master: &RemotingClient,
    slave: &RemotingClient,
    topic: &str,
    queues: i32,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    let expected = all_records(master, topic, queues).await;
    loop {
        let Some(got) = slave_records(slave, topic, queues).await else {
            // The slave's queues moved under the pull (it was truncating): look again.
            assert!(Instant::now() < deadline, "the slave kept moving");
            compio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if got == expected {
            return;
        }
        let counts = |q: &Vec<Vec<MessageRecord>>| q.iter().map(Vec::len).collect::<Vec<_>>();
        assert!(
            Instant::now() < deadline,
            "the slave never matched the master: {:?} vs {:?}",
            counts(&got),
            counts(&expected)
        );
        compio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`all_records`] from a slave, or `None` when a queue moved under the pull: a slave answers
/// PULL_RETRY_IMMEDIATELY where a master would answer PULL_OFFSET_MOVED (it never moves a
/// consumer's offset), e.g. while it truncates its log to a restarted master's.
async fn slave_records(
    slave: &RemotingClient,
    topic: &str,
    queues: i32,
) -> Option<Vec<Vec<MessageRecord>>> {
    let mut all = Vec::new();
    for queue_id in 0..queues {
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let reply = pull(slave, &PullSpec::new(topic, queue_id, offset)).await;
            match reply.code {
                ResponseCode::Success => {
                    assert!(reply.header.next_begin_offset > offset, "pull progresses");
                    offset = reply.header.next_begin_offset;
                    records.extend(reply.records);
                }
                ResponseCode::PullNotFound => break,
                ResponseCode::PullRetryImmediately => return None,
                other => panic!("pull {topic}/{queue_id}@{offset} from the slave: {other:?}"),
            }
        }
        all.push(records);
    }
    Some(all)
}

/// QUERY_CONSUMER_OFFSET request.
pub fn query_offset_request(
    group: &str,
    topic: &str,
    queue_id: i32,
    set_zero_if_not_found: Option<bool>,
) -> RemotingCommand {
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        set_zero_if_not_found,
    };
    RemotingCommand::request(RequestCode::QueryConsumerOffset, header.to_ext())
}

/// UPDATE_CONSUMER_OFFSET request.
pub fn update_offset_request(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> RemotingCommand {
    let header = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        commit_offset: offset,
    };
    RemotingCommand::request(RequestCode::UpdateConsumerOffset, header.to_ext())
}

/// The `offset` response field of a SUCCESS reply.
#[track_caller]
pub fn offset_of(reply: &RemotingCommand) -> i64 {
    assert_code(reply, ResponseCode::Success);
    reply
        .ext("offset")
        .and_then(|o| o.parse().ok())
        .expect("offset field")
}

/// A request with only `topic` and `queueId` (GET_MAX_OFFSET, GET_MIN_OFFSET, ...).
pub fn queue_request(code: RequestCode, topic: &str, queue_id: i32) -> RemotingCommand {
    let mut ext = ExtFields::new();
    ext.insert("topic", topic);
    ext.insert("queueId", queue_id.to_string());
    RemotingCommand::request(code, ext)
}

/// HEART_BEAT request of a clustering push consumer of `group` subscribed to `topic` with
/// `expression`.
pub fn heartbeat_request(
    client_id: &str,
    group: &str,
    topic: &str,
    expression: &str,
) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.into(),
        consumer_data_set: vec![ConsumerData {
            group_name: group.into(),
            subscription_data_set: vec![SubscriptionData::new_tag(topic, expression, now_ms())],
            ..ConsumerData::default()
        }],
        producer_data_set: vec![ProducerData {
            group_name: "CLIENT_INNER_PRODUCER".into(),
        }],
        ..HeartbeatData::default()
    };
    RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new()).with_body(data.to_json())
}

/// Server-initiated requests a client received, in arrival order.
pub type Inbox = Rc<RefCell<Vec<RemotingCommand>>>;

/// A broker client that records every server-initiated request (answered with nothing).
pub fn recording_client(addr: SocketAddr) -> (RemotingClient, Inbox) {
    let inbox: Inbox = Rc::default();
    let sink = Rc::clone(&inbox);
    let client = RemotingClient::with_request_callback(
        addr.to_string(),
        ClientConfig::default(),
        Rc::new(move |_ctx, request| {
            sink.borrow_mut().push(request);
            None
        }),
    );
    (client, inbox)
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        compio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wall-clock milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The shard bits of a client-visible physical offset (top 8 bits, docs/architecture.md).
pub fn shard_of_offset(physical_offset: i64) -> i64 {
    physical_offset >> 56
}

/// A blocking connection speaking raw frames, for malformed and oneway traffic.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
    buffer: BytesMut,
}

impl RawConn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buffer: BytesMut::new(),
        }
    }

    /// Writes `command` as one frame.
    pub fn send(&mut self, command: &RemotingCommand) {
        let bytes = frame::encode_to_bytes(command).expect("encode frame");
        self.stream.write_all(&bytes).expect("write frame");
    }

    /// Reads the next frame; `None` when nothing arrives within `wait` or the peer closed.
    pub fn read(&mut self, wait: Duration) -> Option<RemotingCommand> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((command, used)) =
                frame::decode(&self.buffer, &FrameLimits::default()).expect("valid frame")
            {
                let _ = self.buffer.split_to(used);
                return Some(command);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Waits up to `wait` for the server to close the connection; returns whether it did.
    /// Bytes that arrive first are discarded.
    ///
    /// # Panics
    /// On a reset: a clean close is an EOF.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    panic!("connection reset instead of a clean close")
                }
                Err(_) => return false,
            }
        }
    }
}

/// Raises this process's RLIMIT_NOFILE to at least `want` (the hard limit too when allowed,
/// as for root; else up to the hard limit); returns the soft limit now in force. Brokers
/// started afterwards inherit it (and raise their soft limit to this hard one).
pub fn raise_open_files_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(read, 0, "getrlimit");
    if limit.rlim_cur >= want {
        return limit.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: limit.rlim_max.max(want),
    };
    // SAFETY: setrlimit reads one rlimit from a struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return want;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "setrlimit up to the hard limit");
    limit.rlim_cur
}
