//! Process harness for the black-box interop tests: starts the built `rmq` binary (path in
//! `RMQ_BIN`) as `standalone`, `namesrv` or `broker -c CONF` on ephemeral (or picked free)
//! ports with a store directory under this crate's `target/`, parses its `READY <role> <addr>`
//! lines, waits (standalone) until the NameServer serves the route of the auto-create key topic
//! `TBW102`, and SIGKILLs the process on drop.
//!
//! It owns nothing of the client under test: no rocketmq-client-rust types appear here, so the
//! harness builds in seconds, and its probes talk to the NameServer and brokers with
//! hand-framed requests (JSON header, PROTOCOL.md §2): routes, max offsets, committed consumer
//! offsets. `rmq admin` runs as a child under a deadline. Must never: leave a child process
//! running after its [`Rmq`] is dropped, reuse a store directory it did not create (except on
//! an explicit restart), or wait without a bound.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest wait for all READY lines after spawning `rmq`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait, after READY, for the NameServer to serve the `TBW102` route (the broker's
/// first registration). A real broker registers right after start-up.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Topic whose route a producer uses to auto-create new topics (`autoCreateTopicEnable`).
pub const AUTO_CREATE_KEY_TOPIC: &str = "TBW102";
/// Largest response frame the probe accepts (the NameServer's route answers are small).
const PROBE_FRAME_MAX: usize = 16 * 1024 * 1024;
/// Request code GET_ROUTEINFO_BY_TOPIC.
const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
/// Request code QUERY_CONSUMER_OFFSET.
const QUERY_CONSUMER_OFFSET: i32 = 14;
/// Request code GET_MAX_OFFSET.
const GET_MAX_OFFSET: i32 = 30;
/// Response code SUCCESS.
pub const SUCCESS: i64 = 0;
/// Response code QUERY_NOT_FOUND (no committed offset for the group on that queue).
pub const QUERY_NOT_FOUND: i64 = 22;
/// Connect and read timeout of one probe round trip.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often [`admin`] polls its child for exit.
const ADMIN_POLL: Duration = Duration::from_millis(50);
/// Lines of the server log quoted in a start-up failure message.
const LOG_TAIL_LINES: usize = 40;

/// The `rmq` binary under test, from `RMQ_BIN`.
///
/// # Panics
/// If `RMQ_BIN` is unset or does not name a file: the tests cannot run without it.
pub fn rmq_bin() -> PathBuf {
    let Some(value) = std::env::var_os("RMQ_BIN") else {
        panic!(
            "RMQ_BIN is not set: point it at the built rmq binary, e.g. \
             RMQ_BIN=$PWD/target/debug/rmq (scripts/interop.sh does this)"
        );
    };
    let path = PathBuf::from(value);
    assert!(
        path.is_file(),
        "RMQ_BIN={} is not a file: build it first (cargo build -p rmq)",
        path.display()
    );
    path
}

/// Commit-log file size the tests configure (`mappedFileSizeCommitLog`). Brokers preallocate
/// whole files of this size (Java's default is 1 GiB, and rmq keeps one log per shard), while
/// test messages are tiny: 16 MiB keeps each store directory small.
pub const TEST_COMMIT_LOG_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// A fresh directory `target/interop/<name>-<pid>-<n>-<nanos>` under this crate, removed on
/// drop when the test passed and kept (with the server log) when it panicked.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A fresh, empty [`Scratch`] directory, unique per call within the process and across runs.
pub fn fresh_dir(name: &str) -> Scratch {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("interop")
        .join(format!("{name}-{}-{n}-{nanos}", std::process::id()));
    if path.exists() {
        fs::remove_dir_all(&path).expect("remove stale interop dir");
    }
    fs::create_dir_all(&path).expect("create interop dir");
    Scratch { path }
}

/// A standalone [`Mode`] in `dir`: store in `dir/store`, and `dir/broker.conf` holding
/// [`TEST_COMMIT_LOG_FILE_SIZE`] plus `extra_config` lines (`key=value`).
pub fn standalone_mode(dir: &Scratch, extra_config: &[&str]) -> Mode {
    let config = dir.path().join("broker.conf");
    let mut text = format!("mappedFileSizeCommitLog={TEST_COMMIT_LOG_FILE_SIZE}\n");
    for line in extra_config {
        assert!(line.contains('='), "broker.conf line {line:?} is key=value");
        text.push_str(line);
        text.push('\n');
    }
    fs::write(&config, text).expect("write broker.conf");
    Mode::Standalone {
        store_dir: dir.path().join("store"),
        config: Some(config),
    }
}

/// A short token unique to this test process run, for topic and group names that must not
/// collide with client-side state left by earlier runs (local offset files).
pub fn run_token() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{}_{}", std::process::id(), secs % 100_000)
}

/// FNV-1a, the stable hash the orderly scenario uses to pick `queue = hash(key) % n`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// How to start `rmq`.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `rmq standalone --namesrv-port 0 --broker-port 0 --store-dir DIR [-c CONF]`.
    Standalone {
        /// Broker store directory (kept across restarts by the caller).
        store_dir: PathBuf,
        /// Optional `broker.conf`.
        config: Option<PathBuf>,
    },
    /// `rmq namesrv --port 0 --bind 127.0.0.1 --kv-config DIR/kv.json` (log in `DIR/rmq.log`).
    NameServer {
        /// Directory for the KV config file.
        dir: PathBuf,
    },
    /// `rmq namesrv --port PORT --bind IP --kv-config DIR/kv.json` (log in `DIR/rmq.log`): a
    /// NameServer on a fixed address, e.g. inside a network namespace ([`Rmq::try_start_via`]).
    NameServerAt {
        /// Directory for the KV config file.
        dir: PathBuf,
        /// Address to bind and announce.
        addr: SocketAddr,
    },
    /// `rmq broker -c CONFIG` (log next to it: `CONFIG` with extension `log`). The config
    /// names everything: ports (`listenPort` must be a real port, see [`free_port`]), store,
    /// role, NameServer. Start-up waits for the READY line only: what the broker registered
    /// is for the caller to wait on (e.g. [`topic_route`]).
    Broker {
        /// The broker.conf.
        config: PathBuf,
    },
}

/// A running `rmq` child; SIGKILLed and reaped when dropped.
pub struct Rmq {
    child: Child,
    log: PathBuf,
    addrs: HashMap<String, SocketAddr>,
}

impl Rmq {
    /// Starts `rmq` in `mode`, waits for its READY lines (one per role) and, for a standalone
    /// process, for the NameServer to serve the `TBW102` route. Server stdout/stderr are
    /// appended to `<store_dir>.log` (or `DIR/rmq.log`), across restarts.
    ///
    /// # Panics
    /// If the process does not start, exits, or is not ready within the timeouts; the message
    /// quotes the tail of its log.
    pub fn start(mode: &Mode) -> Self {
        Self::try_start(mode).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Rmq::start`] through a launcher (see [`Rmq::try_start_via`]).
    ///
    /// # Panics
    /// As [`Rmq::start`].
    pub fn start_via(mode: &Mode, launcher: &[&str]) -> Self {
        Self::try_start_via(mode, launcher).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Rmq::start`], returning the failure (with the log tail) instead of panicking, for
    /// callers that retry, e.g. when a port picked by [`free_port`] was taken meanwhile.
    ///
    /// # Errors
    /// The process did not start, exited, or was not ready within the timeouts.
    pub fn try_start(mode: &Mode) -> Result<Self, String> {
        Self::try_start_via(mode, &[])
    }

    /// [`Rmq::try_start`] with `rmq` run by a launcher that execs it in place, e.g.
    /// `["ip", "netns", "exec", NAMESPACE]` to run it inside a network namespace (the child's
    /// pid is then `rmq`'s own, so [`Rmq::kill`] still SIGKILLs the server). An empty
    /// `launcher` runs `rmq` directly.
    ///
    /// # Errors
    /// As [`Rmq::try_start`].
    pub fn try_start_via(mode: &Mode, launcher: &[&str]) -> Result<Self, String> {
        let (args, log, roles): (Vec<String>, PathBuf, &[&str]) = match mode {
            Mode::Standalone { store_dir, config } => {
                let mut args: Vec<String> = [
                    "standalone",
                    "--namesrv-port",
                    "0",
                    "--broker-port",
                    "0",
                    "--store-dir",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
                args.push(store_dir.display().to_string());
                if let Some(config) = config {
                    args.push("-c".into());
                    args.push(config.display().to_string());
                }
                (
                    args,
                    store_dir.with_extension("log"),
                    &["namesrv", "broker"],
                )
            }
            Mode::NameServer { dir } => {
                let kv = dir.join("kv.json").display().to_string();
                let args = [
                    "namesrv",
                    "--port",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--kv-config",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([kv])
                .collect();
                (args, dir.join("rmq.log"), &["namesrv"])
            }
            Mode::NameServerAt { dir, addr } => {
                let args = vec![
                    "namesrv".to_owned(),
                    "--port".into(),
                    addr.port().to_string(),
                    "--bind".into(),
                    addr.ip().to_string(),
                    "--kv-config".into(),
                    dir.join("kv.json").display().to_string(),
                ];
                (args, dir.join("rmq.log"), &["namesrv"])
            }
            Mode::Broker { config } => {
                let args = vec![
                    "broker".to_owned(),
                    "-c".into(),
                    config.display().to_string(),
                ];
                (args, config.with_extension("log"), &["broker"])
            }
        };
        let mut log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open server log");
        writeln!(log_file, "=== rmq {}", args.join(" ")).expect("write server log");
        let stderr = log_file.try_clone().expect("clone server log handle");
        let mut command = match launcher.split_first() {
            Some((program, launcher_args)) => {
                let mut command = Command::new(program);
                command.args(launcher_args).arg(rmq_bin());
                command
            }
            None => Command::new(rmq_bin()),
        };
        let mut child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {} {args:?}: {e}", rmq_bin().display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the life of the process (so it never blocks on a full pipe),
        // copying every line to the log and forwarding READY lines.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log_file, "{line}");
                if let Some(entry) = parse_ready(&line) {
                    let _ = tx.send(entry);
                }
            }
        });
        let mut this = Self {
            child,
            log,
            addrs: HashMap::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while roles.iter().any(|r| !this.addrs.contains_key(*r)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((role, addr)) => {
                    this.addrs.insert(role, addr);
                }
                Err(_) => {
                    let status = this.child.try_wait().ok().flatten();
                    let what = format!(
                        "did not print READY lines for {roles:?} within {READY_TIMEOUT:?} \
                         (got {:?}; exit status {status:?})",
                        this.addrs
                    );
                    return Err(this.fail(&what));
                }
            }
        }
        if matches!(mode, Mode::Standalone { .. }) {
            let namesrv = this.addr("namesrv");
            if let Err(e) = wait_route(namesrv, AUTO_CREATE_KEY_TOPIC, ROUTE_TIMEOUT) {
                return Err(this.fail(&format!(
                    "NameServer {namesrv} never served the {AUTO_CREATE_KEY_TOPIC} route \
                     (the broker's registration): {e}"
                )));
            }
        }
        Ok(this)
    }

    /// The address announced for `role` (`namesrv`, `broker`).
    ///
    /// # Panics
    /// If the role was not announced.
    pub fn addr(&self, role: &str) -> SocketAddr {
        *self
            .addrs
            .get(role)
            .unwrap_or_else(|| panic!("rmq did not announce a {role} address"))
    }

    /// The NameServer address as clients take it (`host:port`).
    pub fn namesrv(&self) -> String {
        self.addr("namesrv").to_string()
    }

    /// Path of the server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[from..].join("\n")
    }

    /// SIGKILLs the process (no shutdown hooks run) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process and describes the failure with the tail of its log.
    fn fail(&mut self, what: &str) -> String {
        self.kill();
        format!(
            "rmq {what}\n--- tail of {} ---\n{}",
            self.log.display(),
            self.log_tail()
        )
    }
}

impl Drop for Rmq {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Parses `READY <role> <ip:port>`.
fn parse_ready(line: &str) -> Option<(String, SocketAddr)> {
    let mut parts = line.strip_prefix("READY ")?.split_whitespace();
    let role = parts.next()?.to_owned();
    let addr = parts.next()?.parse().ok()?;
    Some((role, addr))
}

/// Polls the NameServer until it answers GET_ROUTEINFO_BY_TOPIC for `topic` with SUCCESS.
///
/// # Errors
/// The last response code or I/O error when `timeout` passes first.
pub fn wait_route(namesrv: SocketAddr, topic: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match route_code(namesrv, topic) {
            Ok(SUCCESS) => return Ok(()),
            Ok(code) => format!("response code {code}"),
            Err(e) => format!("probe error: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One GET_ROUTEINFO_BY_TOPIC round trip; returns the response `code`.
///
/// # Errors
/// I/O errors, an oversized frame, or a header without a numeric `code`.
pub fn route_code(namesrv: SocketAddr, topic: &str) -> std::io::Result<i64> {
    let reply = request(
        namesrv,
        GET_ROUTEINFO_BY_TOPIC,
        &serde_json::json!({ "topic": topic }),
    )?;
    Ok(reply.code)
}

/// A response to a hand-framed [`request`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// Response code.
    pub code: i64,
    /// Remark, if any.
    pub remark: Option<String>,
    /// `extFields` (values as sent: RocketMQ sends strings).
    pub ext: serde_json::Map<String, serde_json::Value>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// An `extFields` entry as an integer (sent as a string or a number).
    pub fn ext_i64(&self, key: &str) -> Option<i64> {
        match self.ext.get(key)? {
            serde_json::Value::String(s) => s.parse().ok(),
            v => v.as_i64(),
        }
    }
}

/// One request/response round trip with a JSON header (`language` JAVA, version 401) on a
/// fresh connection, bounded by [`PROBE_TIMEOUT`] for connect and read.
///
/// # Errors
/// I/O errors, an oversized frame, or a header that is not JSON with a numeric `code`.
pub fn request(addr: SocketAddr, code: i32, ext: &serde_json::Value) -> std::io::Result<Reply> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    let header = serde_json::json!({
        "code": code,
        "language": "JAVA",
        "version": 401,
        "opaque": 1,
        "flag": 0,
        "extFields": ext,
    })
    .to_string();
    let header_len = u32::try_from(header.len()).map_err(|_| bad("header too long"))?;
    assert!(header_len < 1 << 24, "header length fits the 24-bit field");
    let mut frame = Vec::with_capacity(8 + header.len());
    frame.extend_from_slice(&(4 + header_len).to_be_bytes());
    // Serialize type JSON (0) in the top byte, header length below it.
    frame.extend_from_slice(&header_len.to_be_bytes());
    frame.extend_from_slice(header.as_bytes());
    stream.write_all(&frame)?;
    let mut word = [0u8; 4];
    stream.read_exact(&mut word)?;
    let total = u32::from_be_bytes(word) as usize;
    if !(4..=PROBE_FRAME_MAX).contains(&total) {
        return Err(bad("response frame length out of range"));
    }
    let mut rest = vec![0u8; total];
    stream.read_exact(&mut rest)?;
    let mark = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if mark >> 24 != 0 {
        return Err(bad("response header is not JSON"));
    }
    let len = (mark & 0x00ff_ffff) as usize;
    let header = rest
        .get(4..4 + len)
        .ok_or_else(|| bad("header overruns frame"))?;
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|_| bad("response header is not JSON"))?;
    let code = value
        .get("code")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| bad("response header has no numeric code"))?;
    Ok(Reply {
        code,
        remark: value
            .get("remark")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        ext: value
            .get("extFields")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default(),
        body: rest[4 + len..].to_vec(),
    })
}

/// The NameServer's route of `topic` (GET_ROUTEINFO_BY_TOPIC body), or `None` when it
/// answers anything but SUCCESS (TOPIC_NOT_EXIST).
///
/// # Errors
/// I/O errors, or a SUCCESS body that is not JSON.
pub fn topic_route(namesrv: SocketAddr, topic: &str) -> std::io::Result<Option<serde_json::Value>> {
    let reply = request(
        namesrv,
        GET_ROUTEINFO_BY_TOPIC,
        &serde_json::json!({ "topic": topic }),
    )?;
    if reply.code != SUCCESS {
        return Ok(None);
    }
    serde_json::from_slice(&reply.body).map(Some).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("route body is not JSON: {e}"),
        )
    })
}

/// Broker addresses by broker id of `broker_name` in a route (`brokerDatas[].brokerAddrs`).
pub fn route_broker_addrs(route: &serde_json::Value, broker_name: &str) -> HashMap<u64, String> {
    route
        .get("brokerDatas")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| b.get("brokerName").and_then(serde_json::Value::as_str) == Some(broker_name))
        .filter_map(|b| b.get("brokerAddrs").and_then(serde_json::Value::as_object))
        .flatten()
        .filter_map(|(id, addr)| Some((id.parse().ok()?, addr.as_str()?.to_owned())))
        .collect()
}

/// GET_MAX_OFFSET: the ConsumeQueue max offset (next offset to be written) of one queue.
///
/// # Errors
/// I/O errors, a response other than SUCCESS, or one without `offset`.
pub fn max_offset(broker: SocketAddr, topic: &str, queue_id: i32) -> std::io::Result<i64> {
    let reply = request(
        broker,
        GET_MAX_OFFSET,
        &serde_json::json!({ "topic": topic, "queueId": queue_id.to_string() }),
    )?;
    if reply.code != SUCCESS {
        return Err(std::io::Error::other(format!(
            "GET_MAX_OFFSET {topic}/{queue_id} on {broker}: code {} {:?}",
            reply.code, reply.remark
        )));
    }
    reply.ext_i64("offset").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "GET_MAX_OFFSET reply without offset",
        )
    })
}

/// QUERY_CONSUMER_OFFSET with `setZeroIfNotFound=false`: the offset `group` committed on one
/// queue of `broker`, `Ok(None)` on QUERY_NOT_FOUND.
///
/// # Errors
/// I/O errors or any other response code.
pub fn committed_offset(
    broker: SocketAddr,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> std::io::Result<Option<i64>> {
    let reply = request(
        broker,
        QUERY_CONSUMER_OFFSET,
        &serde_json::json!({
            "consumerGroup": group,
            "topic": topic,
            "queueId": queue_id.to_string(),
            "setZeroIfNotFound": "false",
        }),
    )?;
    match reply.code {
        SUCCESS => Ok(reply.ext_i64("offset")),
        QUERY_NOT_FOUND => Ok(None),
        code => Err(std::io::Error::other(format!(
            "QUERY_CONSUMER_OFFSET {group} {topic}/{queue_id} on {broker}: code {code} {:?}",
            reply.remark
        ))),
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0, then released), for
/// configs that must name one (`listenPort`, `haListenPort`). Another process may take it
/// before the server binds it: start with [`Rmq::try_start`] and retry on failure.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port on 127.0.0.1")
        .port()
}

/// Writes `dir/<name>.conf` holding [`TEST_COMMIT_LOG_FILE_SIZE`] and `lines` (`key=value`)
/// and returns the [`Mode::Broker`] that starts `rmq broker -c` on it.
pub fn broker_mode(dir: &Path, name: &str, lines: &[String]) -> Mode {
    let config = dir.join(format!("{name}.conf"));
    let mut text = format!("mappedFileSizeCommitLog={TEST_COMMIT_LOG_FILE_SIZE}\n");
    for line in lines {
        assert!(line.contains('='), "broker.conf line {line:?} is key=value");
        text.push_str(line);
        text.push('\n');
    }
    fs::write(&config, text).expect("write broker.conf");
    Mode::Broker { config }
}

/// Runs `rmq admin ARGS` and returns its stdout; kills it if it runs past `timeout`.
///
/// # Errors
/// It could not be spawned, exited non-zero (with its stderr), or overran `timeout`.
pub fn admin(args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(rmq_bin())
        .arg("admin")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn rmq admin {args:?}: {e}"))?;
    // Drain both pipes off this thread so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(ADMIN_POLL),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "rmq admin {args:?} did not finish within {timeout:?}"
                ));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "rmq admin {args:?} exited {status}: {}{}",
            stderr.trim(),
            stdout.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_parse_and_others_do_not() {
        assert_eq!(
            parse_ready("READY broker 127.0.0.1:10911"),
            Some(("broker".into(), "127.0.0.1:10911".parse().expect("addr")))
        );
        assert_eq!(parse_ready("READY namesrv"), None);
        assert_eq!(parse_ready("INFO starting"), None);
        assert_eq!(parse_ready("READY broker not-an-addr"), None);
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn scratch_dirs_are_distinct_empty_and_removed_on_drop() {
        let a = fresh_dir("harness-selftest");
        let b = fresh_dir("harness-selftest");
        assert_ne!(a.path(), b.path());
        assert_eq!(fs::read_dir(a.path()).expect("read dir").count(), 0);
        let Mode::Standalone { store_dir, config } =
            standalone_mode(&a, &["flushDiskType=SYNC_FLUSH"])
        else {
            unreachable!("standalone_mode builds a standalone mode");
        };
        assert_eq!(store_dir, a.path().join("store"));
        let text = fs::read_to_string(config.expect("config")).expect("read broker.conf");
        assert_eq!(
            text,
            format!(
                "mappedFileSizeCommitLog={TEST_COMMIT_LOG_FILE_SIZE}\nflushDiskType=SYNC_FLUSH\n"
            )
        );
        let kept = a.path().to_owned();
        drop(a);
        drop(b);
        assert!(!kept.exists(), "removed on drop");
    }

    #[test]
    fn route_broker_addrs_reads_ids_of_one_broker_name() {
        let route = serde_json::json!({
            "brokerDatas": [
                {"brokerName": "a", "brokerAddrs": {"0": "127.0.0.1:1", "1": "127.0.0.1:2"}},
                {"brokerName": "b", "brokerAddrs": {"0": "127.0.0.1:3"}},
            ],
            "queueDatas": [],
        });
        let a = route_broker_addrs(&route, "a");
        assert_eq!(a.len(), 2);
        assert_eq!(a[&0], "127.0.0.1:1");
        assert_eq!(a[&1], "127.0.0.1:2");
        assert!(route_broker_addrs(&route, "c").is_empty());
        assert!(route_broker_addrs(&serde_json::json!({}), "a").is_empty());
    }

    #[test]
    fn reply_ext_integers_parse_from_strings_and_numbers() {
        let ext = serde_json::json!({"offset": "42", "n": 7, "bad": "x"});
        let reply = Reply {
            code: SUCCESS,
            remark: None,
            ext: ext.as_object().expect("object").clone(),
            body: Vec::new(),
        };
        assert_eq!(reply.ext_i64("offset"), Some(42));
        assert_eq!(reply.ext_i64("n"), Some(7));
        assert_eq!(reply.ext_i64("bad"), None);
        assert_eq!(reply.ext_i64("missing"), None);
    }

    #[test]
    fn broker_mode_writes_the_conf_it_starts_on() {
        let dir = fresh_dir("harness-selftest");
        let Mode::Broker { config } = broker_mode(dir.path(), "node", &["brokerId=1".into()])
        else {
            unreachable!("broker_mode builds a broker mode");
        };
        assert_eq!(config, dir.path().join("node.conf"));
        let text = fs::read_to_string(&config).expect("read conf");
        assert_eq!(
            text,
            format!("mappedFileSizeCommitLog={TEST_COMMIT_LOG_FILE_SIZE}\nbrokerId=1\n")
        );
        assert_ne!(free_port(), 0);
    }
}
