//! A replica pair across hosts for the replication interop tests: a NameServer, a master and
//! its slave, each `rmq` process in its own network namespace (the root crate's
//! `tests/common/netns.rs` topology, included as [`super::netns`]), plus a `client` namespace
//! for client processes (ali-ons under `ip netns exec`). The test process itself (where
//! rocketmq-client-rust runs) sits in the root namespace, which reaches every node by address.
//! Brokers listen on fixed ports of their own address and advertise it (`brokerIP1`), so the
//! routes the clients get name namespace addresses.
//!
//! Must never: outlive its namespaces (the [`Topology`] is dropped last and kills what still
//! runs in them), or wait without a bound.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_interop_rust_client::{
    admin, broker_mode, fresh_dir, route_broker_addrs, topic_route, Mode, Rmq, Scratch,
};

use super::netns::{self, Topology};
use super::Sent;

/// Cluster name of the replica pair.
pub const CLUSTER: &str = "HaCluster";
/// Broker name of the replica pair (master and slave).
pub const BROKER_NAME: &str = "broker-ha";
/// Every node has its own address, so the ports are fixed (nothing else binds there).
const NAMESRV_PORT: u16 = 9876;
const BROKER_PORT: u16 = 10911;
const HA_PORT: u16 = 10912;
/// Bound on `rmq admin` runs.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a topic's route may take to list both brokers after its creation (the slave
/// registers it on its next registration; the admin tool creates it on both at once).
const ROUTE_BOTH_TIMEOUT: Duration = Duration::from_secs(35);
/// Nodes of the topology: three servers and one host for client processes.
const NODES: [&str; 4] = ["ns", "master", "slave", "client"];

/// NameServer, master and slave in namespaces. Field order is drop order: processes, then the
/// scratch directory, then the namespaces.
pub struct ReplicaCluster {
    pub namesrv: Rmq,
    /// Shared with scenario threads, which kill (and restart) it.
    pub master: Arc<Mutex<Rmq>>,
    pub slave: Rmq,
    pub namesrv_addr: SocketAddr,
    pub master_addr: SocketAddr,
    pub slave_addr: SocketAddr,
    master_mode: Mode,
    master_launcher: Vec<String>,
    pub dir: Scratch,
    pub topology: Topology,
}

impl ReplicaCluster {
    /// Starts the cluster: `master_role` (`SYNC_MASTER`, `ASYNC_MASTER`) and `master_extra`
    /// config lines for the master, `slave_extra` for the slave. `None` when namespaces are unusable
    /// and `RMQ_NETNS_SKIP=1` (the test then returns).
    ///
    /// # Panics
    /// When namespaces are unusable otherwise, or a process does not start.
    pub fn start(
        name: &str,
        master_role: &str,
        master_extra: &[&str],
        slave_extra: &[&str],
    ) -> Option<Self> {
        if !netns::require() {
            return None;
        }
        let topology = Topology::new(&NODES).expect("network namespaces");
        let dir = fresh_dir(name);
        let ip = |node: &str| IpAddr::V4(topology.node_ip(node));
        let namesrv_addr = SocketAddr::new(ip("ns"), NAMESRV_PORT);
        let namesrv = Rmq::start_via(
            &Mode::NameServerAt {
                dir: dir.path().to_owned(),
                addr: namesrv_addr,
            },
            &as_strs(&launcher(&topology, "ns")),
        );
        let node_mode = |node: &str, role: &[String], extra: &[&str]| {
            let node_ip = ip(node);
            let mut lines: Vec<String> = vec![
                format!("brokerClusterName={CLUSTER}"),
                format!("brokerName={BROKER_NAME}"),
                format!("listenPort={BROKER_PORT}"),
                format!("haListenPort={HA_PORT}"),
                format!("brokerIP1={node_ip}"),
                format!("brokerIP2={node_ip}"),
                format!("namesrvAddr={namesrv_addr}"),
                format!(
                    "storePathRootDir={}",
                    dir.path().join(format!("{node}-store")).display()
                ),
                // Master and slave must run the same shard count; one keeps the 2-core CI light.
                "shards=1".into(),
            ];
            lines.extend(role.iter().cloned());
            lines.extend(extra.iter().map(|l| (*l).to_owned()));
            broker_mode(dir.path(), node, &lines)
        };
        let master_mode = node_mode(
            "master",
            &[format!("brokerRole={master_role}"), "brokerId=0".into()],
            master_extra,
        );
        let slave_mode = node_mode(
            "slave",
            &["brokerRole=SLAVE".into(), "brokerId=1".into()],
            slave_extra,
        );
        let master_launcher = launcher(&topology, "master");
        let master = Rmq::start_via(&master_mode, &as_strs(&master_launcher));
        let slave = Rmq::start_via(&slave_mode, &as_strs(&launcher(&topology, "slave")));
        Some(Self {
            namesrv,
            master: Arc::new(Mutex::new(master)),
            slave,
            namesrv_addr,
            master_addr: SocketAddr::new(ip("master"), BROKER_PORT),
            slave_addr: SocketAddr::new(ip("slave"), BROKER_PORT),
            master_mode,
            master_launcher,
            dir,
            topology,
        })
    }

    /// The NameServer address as clients take it.
    pub fn ns(&self) -> String {
        self.namesrv_addr.to_string()
    }

    /// SIGKILLs the master (no shutdown hook runs) and reaps it.
    pub fn kill_master(&self) {
        self.master.lock().expect("master lock").kill();
    }

    /// Starts the master again on its store (after [`ReplicaCluster::kill_master`]).
    pub fn restart_master(&self) {
        let master = Rmq::start_via(&self.master_mode, &as_strs(&self.master_launcher));
        *self.master.lock().expect("master lock") = master;
    }

    /// Sets `key=value` in the master's broker.conf (replacing an earlier line of that key);
    /// it takes effect at the master's next (re)start.
    ///
    /// # Panics
    /// When the config file cannot be read or written.
    pub fn set_master_config(&self, key: &str, value: &str) {
        let Mode::Broker { config } = &self.master_mode else {
            unreachable!("the master runs `rmq broker -c`");
        };
        let text = std::fs::read_to_string(config).expect("read the master's broker.conf");
        let prefix = format!("{key}=");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| !line.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        lines.push(format!("{key}={value}"));
        std::fs::write(config, lines.join("\n") + "\n").expect("write the master's broker.conf");
    }

    /// Lines of the slave's log holding `needle` (its log spans every start).
    pub fn slave_log_lines_with(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(self.slave.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the NameServer's route of `topic` lists exactly `want` (broker id ->
    /// address); returns whether it did within `timeout`.
    pub fn await_route(
        &self,
        topic: &str,
        want: &BTreeMap<u64, String>,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if broker_ids(self.namesrv_addr, topic).as_ref() == Some(want) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates `topic` with `queues` queues on the master and on the slave (`rmq admin
    /// update-topic -b`, so nobody waits for the slave's periodic sync of topic configs), then
    /// waits until the NameServer's route of it lists both.
    ///
    /// # Panics
    /// When the admin tool fails or the route never lists both.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        let ns = self.ns();
        let queues = queues.to_string();
        for broker in [self.master_addr, self.slave_addr] {
            let broker = broker.to_string();
            let args = [
                "update-topic",
                "-n",
                &ns,
                "-b",
                &broker,
                "-t",
                topic,
                "-r",
                &queues,
                "-w",
                &queues,
            ];
            if let Err(e) = admin(&args, ADMIN_TIMEOUT) {
                panic!("{e}");
            }
        }
        let want = BTreeMap::from([
            (0, self.master_addr.to_string()),
            (1, self.slave_addr.to_string()),
        ]);
        let deadline = Instant::now() + ROUTE_BOTH_TIMEOUT;
        loop {
            let addrs = broker_ids(self.namesrv_addr, topic);
            if addrs.as_ref() == Some(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the route of {topic} never listed master and slave within \
                 {ROUTE_BOTH_TIMEOUT:?}: {addrs:?}\n--- master log ---\n{}\n--- slave log ---\n{}",
                self.master.lock().expect("master lock").log_tail(),
                self.slave.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs the ali-ons consumer (`interop/ali-ons/bin/consume-json.js`) in the `client`
    /// namespace: a new group reads `topic` from its first offset until it received `expected`
    /// distinct messages or `timeout` passed. Returns what it received.
    ///
    /// # Errors
    /// The script could not run, failed, or timed out (with its stderr and what it got).
    pub fn ali_ons_consume(
        &self,
        topic: &str,
        group: &str,
        expected: u64,
        timeout: Duration,
    ) -> Result<Vec<AliOnsMessage>, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../ali-ons/bin/consume-json.js")
            .canonicalize()
            .map_err(|e| format!("ali-ons consumer script: {e}"))?;
        let mut command: Command = self.topology.command("client", "node");
        command
            .arg(&script)
            .args([&self.ns(), topic, group, &expected.to_string()])
            .arg(timeout.as_millis().to_string())
            .stdin(Stdio::null());
        let out = run_bounded(command, timeout + Duration::from_secs(20))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let messages: Vec<AliOnsMessage> =
            stdout.lines().filter_map(AliOnsMessage::parse).collect();
        if !out.status.success() {
            return Err(format!(
                "ali-ons consumer exited {} after {} messages (expected {expected}); stderr:\n{}",
                out.status,
                messages.len(),
                tail(&stderr, 30)
            ));
        }
        // The last line counts what was printed: a short read would look like lost messages.
        let printed = stdout
            .lines()
            .find_map(|line| line.strip_prefix("DONE "))
            .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<usize>().ok());
        if printed != Some(messages.len()) {
            return Err(format!(
                "ali-ons consumer output cut short: parsed {} messages, DONE line says \
                 {printed:?}",
                messages.len()
            ));
        }
        Ok(messages)
    }
}

/// One message as the ali-ons consumer printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliOnsMessage {
    /// `msg.msgId`: the offset message id ali-ons computes from the record (store host and
    /// commit-log offset).
    pub msg_id: String,
    /// The `UNIQ_KEY` property (rocketmq-client-rust's msgId).
    pub uniq_key: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// The body, exactly.
    pub body: Vec<u8>,
}

impl AliOnsMessage {
    /// Parses one `{"msgId":..,"uniqKey":..,"queueId":..,"queueOffset":..,"bodyHex":..}` line;
    /// `None` for any other line.
    fn parse(line: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = |key: &str| value.get(key)?.as_str().map(str::to_owned);
        Some(Self {
            msg_id: text("msgId")?,
            uniq_key: text("uniqKey").unwrap_or_default(),
            queue_id: i32::try_from(value.get("queueId")?.as_i64()?).ok()?,
            queue_offset: value.get("queueOffset")?.as_i64()?,
            body: from_hex(&text("bodyHex")?)?,
        })
    }
}

/// Acknowledged sends the ali-ons consumer did not receive from the slave exactly as sent, with
/// what it got instead. Compared: the msgId (`UNIQ_KEY`), queue, queue offset and body bytes,
/// and the offset msgId: ali-ons derives it from the record's store host and commit-log offset,
/// so it equals the one the master answered only if the slave serves the master's record at
/// the master's position in the log.
pub fn mismatches<'a>(
    acked: &'a [Sent],
    received: &[AliOnsMessage],
) -> Vec<(&'a Sent, Option<AliOnsMessage>)> {
    let by_key: HashMap<&str, &AliOnsMessage> =
        received.iter().map(|m| (m.uniq_key.as_str(), m)).collect();
    acked
        .iter()
        .filter_map(|sent| match by_key.get(sent.msg_id.as_str()) {
            Some(got)
                if got.body == sent.body.as_bytes()
                    && got.msg_id.eq_ignore_ascii_case(&sent.offset_msg_id)
                    && got.queue_id == sent.queue_id
                    && u64::try_from(got.queue_offset).ok() == Some(sent.queue_offset) =>
            {
                None
            }
            other => Some((sent, other.map(|m| (*m).clone()))),
        })
        .collect()
}

/// `ip netns exec <node's namespace>`, as a launcher for [`Rmq::start_via`].
fn launcher(topology: &Topology, node: &str) -> Vec<String> {
    ["ip", "netns", "exec", topology.namespace(node)]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Broker ids -> addresses of [`BROKER_NAME`] in `topic`'s route (`None`: no route or probe
/// error).
pub fn broker_ids(namesrv: SocketAddr, topic: &str) -> Option<BTreeMap<u64, String>> {
    let route = topic_route(namesrv, topic).ok()??;
    Some(
        route_broker_addrs(&route, BROKER_NAME)
            .into_iter()
            .collect(),
    )
}

/// Runs `command` to completion with its output captured, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<std::process::Output, String> {
    let shown = format!("{command:?}");
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {shown}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.map_err(|e| format!("wait {shown}: {e}")),
        Err(_) => {
            // `ip netns exec` execs in place: the pid is the program's own.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            Err(format!("{shown} did not finish within {timeout:?}"))
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Lower-case hex (as Node's `Buffer.toString('hex')`) to bytes.
pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// GET_BROKER_RUNTIME_INFO (28): the broker's runtime keys (`commitLogMaxOffset`, the HA keys
/// of docs/replication.md), from its `{"table":{..}}` body.
///
/// # Errors
/// I/O errors, a response other than SUCCESS, or a body that is not that JSON.
pub fn runtime_info(broker: SocketAddr) -> Result<HashMap<String, String>, String> {
    const GET_BROKER_RUNTIME_INFO: i32 = 28;
    let reply =
        rmq_interop_rust_client::request(broker, GET_BROKER_RUNTIME_INFO, &serde_json::json!({}))
            .map_err(|e| format!("runtime info of {broker}: {e}"))?;
    if reply.code != rmq_interop_rust_client::SUCCESS {
        return Err(format!(
            "runtime info of {broker}: code {} {:?}",
            reply.code, reply.remark
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("runtime info of {broker}: body is not JSON: {e}"))?;
    let table = body
        .get("table")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| format!("runtime info of {broker}: no table in {body}"))?;
    Ok(table
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect())
}

/// One integer key of [`runtime_info`].
///
/// # Errors
/// As [`runtime_info`], or the key is absent or not an integer.
pub fn runtime_i64(broker: SocketAddr, key: &str) -> Result<i64, String> {
    let info = runtime_info(broker)?;
    info.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("runtime info of {broker}: {key} absent or not an integer"))
}

/// GET_MAX_OFFSET of queues `0..queues` of `topic` on `broker`.
///
/// # Errors
/// The first query that failed.
pub fn max_offsets(broker: SocketAddr, topic: &str, queues: i32) -> Result<Vec<i64>, String> {
    (0..queues)
        .map(|q| {
            rmq_interop_rust_client::max_offset(broker, topic, q)
                .map_err(|e| format!("max offset of {topic}/{q} on {broker}: {e}"))
        })
        .collect()
}
