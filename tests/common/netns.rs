//! Network namespaces for multi-host tests: a [`Topology`] of named nodes, each in its own
//! network namespace on one private /24, joined by a Linux bridge in a hub namespace, with a
//! link from the root namespace so the test process reaches every node by IP; faults
//! ([`Topology::link_down`], [`Topology::netem`]) act on one node's link.
//! Owns only what it created: namespaces named `rmqt-<pid>-<n>-*` and the root-side veth
//! `rmq-<R>-<S>` (alias `rmqt-<pid>-<n>`); its `Drop` and [`cleanup_stale`] remove those.
//! Must never touch a namespace, interface or route it did not create (another process's
//! live topology included), run anything but `ip`, `tc` and `kill`, or depend on more than
//! std (another crate includes this file with `#[path = ...] mod netns;`).
//!
//! Needs root. Tests call [`require`] first: it panics with a clear message when namespaces
//! are unusable, unless `RMQ_NETNS_SKIP=1` asks to skip (then it returns `false`).

#![allow(dead_code)]

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Prefix of every namespace this module creates: `rmqt-<pid>-<n>-<node>` and
/// `rmqt-<pid>-<n>-hub`. The pid lets [`cleanup_stale`] tell leftovers of dead processes.
const NAMESPACE_PREFIX: &str = "rmqt-";
/// Suffix of the hub namespace's name; no node may be called that.
const HUB_SUFFIX: &str = "hub";
/// The bridge inside the hub namespace.
const BRIDGE: &str = "br0";
/// The node end of its veth pair, inside the node's namespace (names are per namespace).
const NODE_INTERFACE: &str = "eth0";
/// The hub end of the root namespace's veth pair.
const HUB_ROOT_PORT: &str = "root";
/// Nodes a topology may have: addresses run from `.10` to `.(10 + NODES_MAX - 1)`.
const NODES_MAX: usize = 200;
/// Host part of the first node's address; `.1` is the root namespace's.
const NODE_HOST_FIRST: u8 = 10;
/// Node names become namespace names; kept short and plain so they read well in `ip netns`.
const NODE_NAME_LENGTH_MAX: usize = 32;
/// Candidate subnets tried before giving up (each is one `ip link add`).
const SUBNET_ATTEMPTS_MAX: u32 = 64;
/// How long [`Topology::new`] waits for every node to answer from the root namespace.
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A port nothing listens on in a fresh namespace: a connect there is refused at once when the
/// node is reachable (the RST proves the path without `ping`).
const PROBE_PORT: u16 = 9;
/// Interface names are at most 15 bytes (IFNAMSIZ - 1); `rmq-250-255` fits.
const INTERFACE_NAME_LENGTH_MAX: usize = 15;

/// Numbers this process's topologies (with the pid, their namespace names).
static TOPOLOGY_SEQUENCE: AtomicU32 = AtomicU32::new(0);

const _: () = assert!(
    NODE_HOST_FIRST as usize + NODES_MAX < 255,
    "node hosts fit a /24"
);

/// Why a namespace operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsError {
    /// The kernel or host lacks the feature (not root, no `ip`, no `sch_netem`); a test may
    /// skip on this.
    Unavailable(String),
    /// A command exited non-zero.
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A node did not answer from the root namespace in time.
    Unreachable {
        /// The node.
        node: String,
        /// What the last probe saw.
        detail: String,
    },
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) => write!(f, "unavailable: {reason}"),
            Self::Command {
                command,
                status,
                stderr,
            } => write!(f, "`{command}` failed ({status}): {}", stderr.trim()),
            Self::Unreachable { node, detail } => {
                write!(
                    f,
                    "node {node} unreachable from the root namespace: {detail}"
                )
            }
        }
    }
}

impl std::error::Error for NetnsError {}

/// Whether this process can build topologies: effective uid 0, `ip` present, and
/// `ip netns add` works. Probed once per process.
///
/// # Errors
/// A message saying what is missing.
pub fn available() -> Result<(), String> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED.get_or_init(probe).clone()
}

fn probe() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .ok_or("no Uid line in /proc/self/status")?;
    if effective_uid != "0" {
        return Err(format!(
            "network namespaces need root (euid is {effective_uid})"
        ));
    }
    let name = format!("{NAMESPACE_PREFIX}{}-probe", std::process::id());
    run("ip", &["netns", "add", &name]).map_err(|e| format!("`ip netns add` failed: {e}"))?;
    run("ip", &["netns", "del", &name]).map_err(|e| format!("`ip netns del` failed: {e}"))?;
    Ok(())
}

/// For tests: `true` when topologies can be built. Otherwise panics naming the reason, unless
/// `RMQ_NETNS_SKIP=1`, when it prints the reason and returns `false` (the test then returns).
///
/// # Panics
/// When namespaces are unusable and `RMQ_NETNS_SKIP` is not `1`.
pub fn require() -> bool {
    match available() {
        Ok(()) => true,
        Err(reason) if std::env::var("RMQ_NETNS_SKIP").as_deref() == Ok("1") => {
            eprintln!("SKIP (RMQ_NETNS_SKIP=1): network namespaces unusable: {reason}");
            false
        }
        Err(reason) => panic!(
            "network namespaces unusable: {reason}. These tests need root, iproute2 and \
             CONFIG_NET_NS/VETH/BRIDGE; set RMQ_NETNS_SKIP=1 to skip them instead"
        ),
    }
}

/// One node: its namespace, address, and the hub-side port of its link.
#[derive(Debug)]
struct Node {
    name: String,
    namespace: String,
    ip: Ipv4Addr,
    hub_port: String,
}

/// A set of nodes in their own network namespaces, bridged on one /24, reachable from the
/// root namespace. Dropping it kills what still runs in its namespaces and removes them.
#[derive(Debug)]
pub struct Topology {
    /// `rmqt-<pid>-<n>`: the prefix of every namespace of this topology.
    id: String,
    hub: String,
    /// The root namespace's veth (`rmq-<R>-<S>`), once created.
    root_interface: Option<String>,
    subnet: [u8; 3],
    nodes: Vec<Node>,
    /// Namespaces created so far (the hub first), for `Drop` after a partial build.
    created: Vec<String>,
}

impl Topology {
    /// Builds the topology: hub namespace with a bridge, one namespace per node linked to it,
    /// and a link from the root namespace; node `i` gets `.(10 + i)`, the root `.1`. Checks
    /// that every node answers from the root namespace before returning. Removes leftovers of
    /// dead processes first ([`cleanup_stale`]).
    ///
    /// # Errors
    /// When a command fails or a node stays unreachable; what was built is removed.
    ///
    /// # Panics
    /// On bad node names (empty, `hub`, duplicate, not `[a-z0-9_-]`, too long) or more than
    /// 200 nodes: caller bugs.
    pub fn new(nodes: &[&str]) -> Result<Self, NetnsError> {
        check_node_names(nodes);
        cleanup_stale();
        let sequence = TOPOLOGY_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let id = format!("{NAMESPACE_PREFIX}{pid}-{sequence}");
        let mut topology = Self {
            hub: format!("{id}-{HUB_SUFFIX}"),
            id,
            root_interface: None,
            subnet: [10, 0, 0],
            nodes: Vec::with_capacity(nodes.len()),
            created: Vec::new(),
        };
        // On any error `topology` drops here and removes what was made.
        topology.add_namespace(&topology.hub.clone())?;
        topology.claim_subnet(pid, sequence)?;
        topology.build_hub()?;
        for (index, name) in nodes.iter().enumerate() {
            topology.add_node(index, name)?;
        }
        topology.wait_reachable()?;
        Ok(topology)
    }

    /// The address of `node`.
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn node_ip(&self, node: &str) -> Ipv4Addr {
        self.node(node).ip
    }

    /// The root namespace's address on the topology's subnet (where the test process's
    /// connections to nodes come from).
    pub fn root_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The namespace name of `node` (for `ip netns exec`, `ip -n`, `tc -n`).
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn namespace(&self, node: &str) -> &str {
        &self.node(node).namespace
    }

    /// Every namespace of the topology, the hub's first (to check that none outlives it).
    pub fn namespaces(&self) -> Vec<String> {
        self.created.clone()
    }

    /// The root namespace's end of the link to the hub (`rmq-<R>-<S>`).
    pub fn root_interface(&self) -> &str {
        self.root_interface
            .as_deref()
            .expect("set by Topology::new")
    }

    /// The node names, in the order given to [`Topology::new`].
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|node| node.name.as_str())
    }

    /// A command running `program` inside `node`'s namespace (`ip netns exec NS program`).
    /// `ip netns exec` execs `program` in place, so the child's pid is the program's: killing
    /// it kills the program. Add arguments, env, stdio, `pre_exec` as for any `Command`
    /// (`pre_exec` runs before `ip`, still in the root namespace; rlimits set there stay).
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn command(&self, node: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(node)])
            .arg(program);
        command
    }

    /// Cuts `node` off: its bridge port goes down, so nothing reaches it or leaves it (its
    /// own interface loses carrier). Connections stay open on both ends and time out as
    /// after a cable pull; nothing is reset.
    ///
    /// # Errors
    /// When `ip` fails.
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn link_down(&self, node: &str) -> Result<(), NetnsError> {
        let port = &self.node(node).hub_port;
        ip_in(&self.hub, &["link", "set", "dev", port, "down"])
    }

    /// Reconnects `node` after [`Topology::link_down`].
    ///
    /// # Errors
    /// When `ip` fails.
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn link_up(&self, node: &str) -> Result<(), NetnsError> {
        let port = &self.node(node).hub_port;
        ip_in(&self.hub, &["link", "set", "dev", port, "up"])
    }

    /// Applies a netem qdisc to what `node` sends (`tc qdisc replace dev eth0 root netem
    /// <spec>`), e.g. `"delay 50ms"` or `"loss 30%"`: a delay of D adds D to every round trip
    /// with the node. Replaces the previous spec.
    ///
    /// # Errors
    /// [`NetnsError::Unavailable`] when the kernel has no `sch_netem` (tests skip on it);
    /// [`NetnsError::Command`] on a bad spec.
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn netem(&self, node: &str, spec: &str) -> Result<(), NetnsError> {
        let namespace = &self.node(node).namespace;
        let mut args = vec!["-n", namespace, "qdisc", "replace", "dev", NODE_INTERFACE];
        args.extend(["root", "netem"]);
        args.extend(spec.split_whitespace());
        // The kernel loads sch_netem itself when it can; ENOENT (kernels without extack say
        // only that) means it has none, as eth0 exists.
        let missing = |stderr: &str| {
            stderr.contains("kind is unknown") || stderr.contains("No such file or directory")
        };
        run("tc", &args).map_err(|error| match error {
            NetnsError::Command { stderr, .. } if missing(&stderr) => {
                NetnsError::Unavailable(format!(
                    "the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): {}",
                    stderr.trim()
                ))
            }
            other => other,
        })
    }

    /// Removes `node`'s netem qdisc (back to the default); a node without one is fine.
    ///
    /// # Errors
    /// When `tc` fails for another reason.
    ///
    /// # Panics
    /// When the topology has no such node.
    pub fn clear_netem(&self, node: &str) -> Result<(), NetnsError> {
        let namespace = &self.node(node).namespace;
        let args = [
            "-n",
            namespace,
            "qdisc",
            "del",
            "dev",
            NODE_INTERFACE,
            "root",
        ];
        match run("tc", &args) {
            // Deleting the default qdisc: nothing was set.
            Err(NetnsError::Command { stderr, .. })
                if stderr.contains("Cannot delete qdisc with handle of zero") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn node(&self, node: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .unwrap_or_else(|| panic!("topology {} has no node {node:?}", self.id))
    }

    fn add_namespace(&mut self, namespace: &str) -> Result<(), NetnsError> {
        run("ip", &["netns", "add", namespace])?;
        self.created.push(namespace.to_owned());
        ip_in(namespace, &["link", "set", "dev", "lo", "up"])
    }

    /// Picks a /24 from the pid and sequence, skipping any that overlaps a root route, and
    /// claims it by creating the root veth named after it: interface names are unique in the
    /// root namespace, so two topologies (any process) can never hold the same subnet.
    fn claim_subnet(&mut self, pid: u32, sequence: u32) -> Result<(), NetnsError> {
        let routes = root_routes();
        let mut seed = (u64::from(pid) << 32) | u64::from(sequence);
        for _ in 0..SUBNET_ATTEMPTS_MAX {
            seed = splitmix64(seed);
            // 10.R.S.0/24 with R in 1..=250: 64000 subnets.
            let second = u8::try_from(1 + (seed >> 8) % 250).expect("at most 250");
            let third = u8::try_from(seed & 0xff).expect("one byte");
            let subnet = [10, second, third];
            if routes.iter().any(|&route| overlaps(route, subnet)) {
                continue;
            }
            let name = format!("rmq-{second}-{third}");
            assert!(name.len() <= INTERFACE_NAME_LENGTH_MAX, "{name} too long");
            let peer = ["peer", "name", HUB_ROOT_PORT, "netns", &self.hub];
            let mut args = vec!["link", "add", &name, "type", "veth"];
            args.extend(peer);
            match run("ip", &args) {
                Ok(()) => {}
                Err(NetnsError::Command { stderr, .. }) if stderr.contains("File exists") => {
                    continue
                }
                Err(other) => return Err(other),
            }
            self.root_interface = Some(name.clone());
            self.subnet = subnet;
            run("ip", &["link", "set", "dev", &name, "alias", &self.id])?;
            let address = format!("{}/24", self.root_ip());
            run("ip", &["link", "set", "dev", &name, "addrgenmode", "none"])?;
            run("ip", &["addr", "add", &address, "dev", &name])?;
            return run("ip", &["link", "set", "dev", &name, "up"]);
        }
        Err(NetnsError::Unavailable(format!(
            "no free 10.x.y.0/24 after {SUBNET_ATTEMPTS_MAX} attempts"
        )))
    }

    /// The bridge, with the root link's hub end as its first port. No STP and no forward
    /// delay: a port forwards as soon as it is up.
    fn build_hub(&self) -> Result<(), NetnsError> {
        let hub = self.hub.as_str();
        let bridge = ["link", "add", BRIDGE, "type", "bridge"];
        ip_in(
            hub,
            &[&bridge[..], &["stp_state", "0", "forward_delay", "0"]].concat(),
        )?;
        ip_in(hub, &["link", "set", "dev", BRIDGE, "addrgenmode", "none"])?;
        ip_in(hub, &["link", "set", "dev", BRIDGE, "up"])?;
        attach_port(hub, HUB_ROOT_PORT)
    }

    /// Node `index`: its namespace, a veth pair `p<index>` (hub, on the bridge) to `eth0`
    /// (node), and the address `.(10 + index)/24`.
    fn add_node(&mut self, index: usize, name: &str) -> Result<(), NetnsError> {
        let namespace = format!("{}-{name}", self.id);
        self.add_namespace(&namespace)?;
        let hub_port = format!("p{index}");
        let peer = ["peer", "name", NODE_INTERFACE, "netns", &namespace];
        let veth = ["link", "add", &hub_port, "type", "veth"];
        ip_in(&self.hub, &[&veth[..], &peer[..]].concat())?;
        attach_port(&self.hub, &hub_port)?;
        let host = NODE_HOST_FIRST + u8::try_from(index).expect("at most NODES_MAX nodes");
        let [a, b, c] = self.subnet;
        let ip = Ipv4Addr::new(a, b, c, host);
        let device = ["dev", NODE_INTERFACE];
        ip_in(
            &namespace,
            &[&["link", "set"][..], &device, &["addrgenmode", "none"]].concat(),
        )?;
        ip_in(
            &namespace,
            &[&["addr", "add", &format!("{ip}/24")][..], &device].concat(),
        )?;
        ip_in(
            &namespace,
            &[&["link", "set"][..], &device, &["up"]].concat(),
        )?;
        self.nodes.push(Node {
            name: name.to_owned(),
            namespace,
            ip,
            hub_port,
        });
        Ok(())
    }

    /// Connects from the root namespace to a closed port of every node until each refuses
    /// (an RST came back through the bridge), or [`REACHABLE_TIMEOUT`] passes.
    fn wait_reachable(&self) -> Result<(), NetnsError> {
        let deadline = Instant::now() + REACHABLE_TIMEOUT;
        for node in &self.nodes {
            let target = SocketAddr::V4(SocketAddrV4::new(node.ip, PROBE_PORT));
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let detail = match TcpStream::connect_timeout(&target, left.max(ms(1))) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                    Ok(_) => format!("something listens on {target}"),
                    Err(e) => format!("connect {target}: {e}"),
                };
                if Instant::now() >= deadline {
                    let node = node.name.clone();
                    return Err(NetnsError::Unreachable { node, detail });
                }
                std::thread::sleep(ms(20));
            }
        }
        Ok(())
    }
}

impl Drop for Topology {
    /// Kills what still runs in the namespaces (the caller's job; this is a safety net),
    /// deletes them (the hub last), and the root veth (gone with the hub already; deleted
    /// explicitly in case). Reports failures on stderr: a panic here would abort an
    /// unwinding test.
    fn drop(&mut self) {
        for namespace in self.created.iter().rev() {
            remove_namespace(namespace);
        }
        if let Some(name) = &self.root_interface {
            if std::path::Path::new("/sys/class/net").join(name).exists() {
                if let Err(error) = run("ip", &["link", "del", "dev", name]) {
                    eprintln!("netns: removing {name}: {error}");
                }
            }
        }
    }
}

/// Removes what dead processes left: namespaces `rmqt-<pid>-*` and root veths aliased
/// `rmqt-<pid>-*` whose pid no longer runs (after a SIGKILL or abort, when no `Drop` ran).
/// Processes still inside those namespaces are killed. Live processes' topologies are left
/// alone. Best effort: failures are reported on stderr.
pub fn cleanup_stale() {
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_is_dead(&name) {
                remove_namespace(&name);
            }
        }
    }
    let Ok(interfaces) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for entry in interfaces.flatten() {
        let alias = std::fs::read_to_string(entry.path().join("ifalias")).unwrap_or_default();
        if owner_is_dead(alias.trim()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Err(error) = run("ip", &["link", "del", "dev", &name]) {
                eprintln!("netns: removing stale {name}: {error}");
            }
        }
    }
}

/// Whether `name` is ours (`rmqt-<pid>-...`) and its pid no longer runs.
fn owner_is_dead(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else {
        return false;
    };
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    !std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Kills every process in `namespace`, then deletes it.
fn remove_namespace(namespace: &str) {
    match output("ip", &["netns", "pids", namespace]) {
        Ok(pids) => {
            let pids: Vec<&str> = pids.split_whitespace().collect();
            if !pids.is_empty() {
                let args = [&["-9"][..], &pids].concat();
                if let Err(error) = run("kill", &args) {
                    eprintln!("netns: killing {pids:?} in {namespace}: {error}");
                }
            }
        }
        Err(error) => eprintln!("netns: listing processes of {namespace}: {error}"),
    }
    if let Err(error) = run("ip", &["netns", "del", namespace]) {
        eprintln!("netns: removing {namespace}: {error}");
    }
}

/// Puts `port` (in `hub`) on the bridge and brings it up; no IPv6 address on it.
fn attach_port(hub: &str, port: &str) -> Result<(), NetnsError> {
    ip_in(hub, &["link", "set", "dev", port, "addrgenmode", "none"])?;
    ip_in(hub, &["link", "set", "dev", port, "master", BRIDGE, "up"])
}

/// # Panics
/// On a bad node list (see [`Topology::new`]).
fn check_node_names(nodes: &[&str]) {
    assert!(nodes.len() <= NODES_MAX, "at most {NODES_MAX} nodes");
    for (index, name) in nodes.iter().enumerate() {
        assert!(!name.is_empty(), "empty node name");
        assert!(
            name.len() <= NODE_NAME_LENGTH_MAX,
            "node name {name:?} too long"
        );
        assert_ne!(*name, HUB_SUFFIX, "`hub` names the hub namespace");
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        assert!(
            name.chars().all(plain),
            "node name {name:?}: use [a-z0-9_-]"
        );
        assert!(!nodes[..index].contains(name), "duplicate node {name:?}");
    }
}

/// IPv4 routes of the root namespace's main table as (network, prefix length), default
/// route excluded (everything overlaps it, and it is fine to shadow).
fn root_routes() -> Vec<(u32, u32)> {
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Destination and Mask are little-endian hex of the network-order bytes.
            let network = u32::from_str_radix(fields.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?.swap_bytes();
            (mask != 0).then_some((network, mask.count_ones()))
        })
        .collect()
}

/// Whether `subnet`.0/24 and the route (network, prefix) share an address.
fn overlaps((network, prefix): (u32, u32), subnet: [u8; 3]) -> bool {
    let candidate = u32::from_be_bytes([subnet[0], subnet[1], subnet[2], 0]);
    let common = prefix.min(24);
    let mask = u32::MAX.checked_shl(32 - common).unwrap_or(0);
    candidate & mask == network & mask
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// `ip -n <namespace> <args>`.
fn ip_in(namespace: &str, args: &[&str]) -> Result<(), NetnsError> {
    run("ip", &[&["-n", namespace][..], args].concat())
}

fn run(program: &str, args: &[&str]) -> Result<(), NetnsError> {
    output(program, args).map(drop)
}

/// Runs `program args`, returning its stdout; a spawn failure is [`NetnsError::Unavailable`].
fn output(program: &str, args: &[&str]) -> Result<String, NetnsError> {
    let command_line = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetnsError::Unavailable(format!("cannot run `{command_line}`: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Command {
            command: command_line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
