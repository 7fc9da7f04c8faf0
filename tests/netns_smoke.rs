//! Black-box tests of the network-namespace harness (tests/common/netns.rs) with the built
//! `rmq` binary: a NameServer and a broker on two namespace nodes, driven from the root
//! namespace by address; a cut link fails sends within the client's timeout and the healed
//! link delivers what was in flight; netem delay raises the round-trip time (skipped when the
//! kernel has no netem); the harness's own guarantees (a node command is the program, in the
//! node's namespace; nothing outlives a topology, a panic, or a dead test process).
//! Needs root: see `netns::require` (`RMQ_NETNS_SKIP=1` skips).

#[path = "common/netns.rs"]
mod netns;

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    await_route, block_on, create_topic, pull_all, send_header, send_request, send_v2, sent,
    write_broker_conf, Server, TempDir,
};
use netns::{NetnsError, Topology};
use rmq_net::codec::body::route::TopicRouteData;
use rmq_net::codec::codes::RequestCode;
use rmq_net::codec::message::Properties;
use rmq_net::conn::{ClientConfig, ClientError, RemotingClient};

const TOPIC: &str = "NetnsTopic";
/// Every node has its own port space, so the defaults serve and never collide.
const NAMESRV_PORT: u16 = 9876;
const BROKER_PORT: u16 = 10911;
/// The send timeout of the cut-link test (Java's producer default is 3 s).
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// The connect timeout of clients in these tests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How late a timed-out call may return (scheduling on a loaded 2-core machine).
const LATENESS_MAX: Duration = Duration::from_secs(1);
/// Bound on the first send after a link heals: TCP retransmits on its backed-off timer
/// (about 3 s apart after a 3 s outage), then the send completes.
const HEAL_TIMEOUT: Duration = Duration::from_secs(15);
/// netem delay of the delay test, and the round trip it must at least produce.
const NETEM_DELAY: &str = "delay 50ms";
const RTT_DELAYED_MIN: Duration = Duration::from_millis(40);

/// `rmq namesrv` on node `ns` and `rmq broker` on node `broker`, over a temporary store.
/// Fields drop in order: the processes, then their files, then the namespaces.
struct TwoNodes {
    namesrv: Server,
    broker: Server,
    _dir: TempDir,
    topology: Topology,
}

impl TwoNodes {
    /// `None` when namespaces are unusable and `RMQ_NETNS_SKIP=1` (else that panics).
    fn start() -> Option<Self> {
        if !netns::require() {
            return None;
        }
        let topology = Topology::new(&["ns", "broker"]).expect("topology");
        let dir = TempDir::new("netns");
        let ns_ip = topology.node_ip("ns");
        let kv_config = dir.path().join("kvConfig.json");
        let mut command = topology.command("ns", env!("CARGO_BIN_EXE_rmq"));
        command.args(["namesrv", "--bind", &ns_ip.to_string()]);
        command.args(["--port", &NAMESRV_PORT.to_string(), "--kv-config"]);
        command.arg(&kv_config);
        let namesrv = Server::start_command(command, 1, None);
        assert_eq!(namesrv.addr("namesrv"), socket(ns_ip, NAMESRV_PORT));
        let broker_ip = topology.node_ip("broker");
        let conf = write_broker_conf(
            dir.path(),
            &format!(
                "namesrvAddr={ns_ip}:{NAMESRV_PORT}\nbrokerIP1={broker_ip}\n\
                 listenPort={BROKER_PORT}\nstorePathRootDir={}\n",
                dir.path().join("store").display()
            ),
        );
        let mut command = topology.command("broker", env!("CARGO_BIN_EXE_rmq"));
        command.args(["broker", "--shards", "1", "-c"]).arg(&conf);
        let broker = Server::start_command(command, 1, None);
        Some(Self {
            namesrv,
            broker,
            _dir: dir,
            topology,
        })
    }

    fn broker_client(&self) -> RemotingClient {
        client(self.broker.addr("broker"))
    }
}

fn client(addr: SocketAddr) -> RemotingClient {
    let config = ClientConfig {
        connect_timeout: CONNECT_TIMEOUT,
        ..ClientConfig::default()
    };
    RemotingClient::new(addr.to_string(), config)
}

fn socket(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

fn send_v2_request(body: &'static [u8]) -> rmq_net::RemotingCommand {
    let header = send_header(TOPIC, 0, &Properties::new());
    send_request(
        RequestCode::SendMessageV2,
        &header,
        Bytes::from_static(body),
    )
}

/// The broker in its namespace serves the root namespace at its own address: messages go in
/// and come back stamped with both ends' namespace addresses, and the NameServer (another
/// node) routes clients to the broker's namespace address.
#[test]
fn a_broker_in_a_namespace_serves_the_root_namespace_and_registers_its_address() {
    let Some(nodes) = TwoNodes::start() else {
        return;
    };
    let broker_addr = socket(nodes.topology.node_ip("broker"), BROKER_PORT);
    assert_eq!(nodes.broker.addr("broker"), broker_addr);
    block_on(async {
        let broker = nodes.broker_client();
        create_topic(&broker, TOPIC, 2, 6).await;
        let bodies: Vec<Vec<u8>> = (0..10).map(|i| format!("netns-{i}").into_bytes()).collect();
        for body in &bodies {
            sent(
                &send_v2(&broker, TOPIC, 0, body, &Properties::new()).await,
                body,
            );
        }
        let records = pull_all(&broker, TOPIC, 0).await;
        let pulled: Vec<Vec<u8>> = records.iter().map(|r| r.body.to_vec()).collect();
        assert_eq!(pulled, bodies);
        for record in &records {
            assert_eq!(record.store_host, broker_addr, "stored by the broker node");
            assert_eq!(
                record.born_host.ip(),
                nodes.topology.root_ip(),
                "sent from root"
            );
        }
        let namesrv = client(nodes.namesrv.addr("namesrv"));
        let registered = |route: &Option<TopicRouteData>| {
            route.as_ref().is_some_and(|r| !r.broker_datas.is_empty())
        };
        let route = await_route(&namesrv, TOPIC, registered)
            .await
            .expect("route");
        let addrs: Vec<(i64, String)> = route.broker_datas[0]
            .broker_addrs
            .iter()
            .map(|(id, addr)| (*id, addr.clone()))
            .collect();
        assert_eq!(addrs, vec![(0, broker_addr.to_string())]);
    });
}

/// With the broker's link cut, a send on an open connection times out at the client's
/// timeout and a new connection fails at the connect timeout: nothing hangs. Once the link is
/// back the same connection works again, and the send that timed out is stored after all,
/// before the next one: TCP retransmitted bytes its caller had given up on.
#[test]
fn a_cut_link_fails_sends_within_the_timeout_and_the_healed_link_delivers_them() {
    let Some(nodes) = TwoNodes::start() else {
        return;
    };
    block_on(async {
        let broker = nodes.broker_client();
        create_topic(&broker, TOPIC, 1, 6).await;
        let reply = broker
            .invoke(send_v2_request(b"before"), SEND_TIMEOUT)
            .await;
        sent(&reply.expect("send before the cut"), b"before");

        nodes.topology.link_down("broker").expect("link down");
        let started = Instant::now();
        let outcome = broker
            .invoke(send_v2_request(b"during"), SEND_TIMEOUT)
            .await;
        let waited = started.elapsed();
        assert!(
            matches!(outcome, Err(ClientError::Timeout { .. })),
            "{outcome:?}"
        );
        assert!(
            waited < SEND_TIMEOUT + LATENESS_MAX,
            "timed out after {waited:?}"
        );
        let fresh = nodes.broker_client();
        let started = Instant::now();
        let outcome = fresh.invoke(send_v2_request(b"never"), SEND_TIMEOUT).await;
        let waited = started.elapsed();
        assert!(
            matches!(outcome, Err(ClientError::ConnectTimeout { .. })),
            "{outcome:?}"
        );
        assert!(
            waited < CONNECT_TIMEOUT + LATENESS_MAX,
            "failed after {waited:?}"
        );

        nodes.topology.link_up("broker").expect("link up");
        let started = Instant::now();
        let reply = broker.invoke(send_v2_request(b"after"), HEAL_TIMEOUT).await;
        sent(&reply.expect("send after the link is back"), b"after");
        eprintln!("first send after link_up took {:?}", started.elapsed());
        let pulled: Vec<Bytes> = pull_all(&broker, TOPIC, 0)
            .await
            .into_iter()
            .map(|record| record.body)
            .collect();
        assert_eq!(pulled, [&b"before"[..], b"during", b"after"]);
    });
}

/// The shortest of five TCP handshakes (refused: nothing listens) from the root namespace to
/// `node`: one round trip through the bridge.
fn round_trip(topology: &Topology, node: &str) -> Duration {
    let target = socket(topology.node_ip(node), 9);
    (0..5)
        .map(|_| {
            let started = Instant::now();
            let outcome = TcpStream::connect_timeout(&target, Duration::from_secs(2));
            let error = outcome.expect_err("nothing listens on port 9");
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
            started.elapsed()
        })
        .min()
        .expect("five samples")
}

/// netem on a node's interface: a delay shows in every round trip, total loss stops
/// handshakes, clearing restores the link. Skipped with a message when the kernel has no netem,
/// unless `RMQ_NETEM_REQUIRED=1`.
#[test]
fn netem_delay_raises_the_round_trip_and_loss_drops_everything() {
    if !netns::require() {
        return;
    }
    let topology = Topology::new(&["a"]).expect("topology");
    let baseline = round_trip(&topology, "a");
    assert!(
        baseline < RTT_DELAYED_MIN,
        "baseline round trip {baseline:?}"
    );
    topology
        .clear_netem("a")
        .expect("clearing a node without netem is fine");
    match topology.netem("a", NETEM_DELAY) {
        Err(NetnsError::Unavailable(reason))
            if std::env::var("RMQ_NETEM_REQUIRED").as_deref() != Ok("1") =>
        {
            eprintln!("SKIP (set RMQ_NETEM_REQUIRED=1 to fail instead): {reason}");
            return;
        }
        other => other.expect("netem delay"),
    }
    let delayed = round_trip(&topology, "a");
    assert!(
        delayed > RTT_DELAYED_MIN,
        "{NETEM_DELAY}: round trip {delayed:?}"
    );
    topology.netem("a", "loss 100%").expect("netem loss");
    let target = socket(topology.node_ip("a"), 9);
    let error = TcpStream::connect_timeout(&target, Duration::from_millis(500))
        .expect_err("no handshake completes");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    topology.clear_netem("a").expect("clear netem");
    let cleared = round_trip(&topology, "a");
    assert!(cleared < RTT_DELAYED_MIN, "cleared round trip {cleared:?}");
}

/// Waits until process `pid` runs `program` (after `ip netns exec` exec'd it).
fn wait_for_exec(pid: u32, program: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let comm = Path::new("/proc").join(pid.to_string()).join("comm");
    while std::fs::read_to_string(&comm).unwrap_or_default().trim() != program {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never became {program}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to 5 s for `child` to exit; returns the signal that ended it.
fn killed_by(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.signal();
        }
        assert!(Instant::now() < deadline, "child {} still runs", child.id());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[track_caller]
fn assert_removed(namespaces: &[String], root_interface: &str) {
    for namespace in namespaces {
        let path = Path::new("/run/netns").join(namespace);
        assert!(!path.exists(), "{namespace} left behind");
    }
    let path = Path::new("/sys/class/net").join(root_interface);
    assert!(!path.exists(), "{root_interface} left behind");
}

/// `command` runs the program itself (same pid, `ip netns exec` execs) inside the node's
/// namespace, so killing the child kills the program. Dropping the topology kills what the
/// caller left running and removes every namespace and the root interface.
#[test]
fn a_node_command_is_the_program_in_the_node_namespace_and_drop_removes_everything() {
    if !netns::require() {
        return;
    }
    let topology = Topology::new(&["a", "b"]).expect("topology");
    let mut sleeper = topology
        .command("a", "sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let pid = sleeper.id();
    wait_for_exec(pid, "sleep");
    let inode = std::fs::metadata(Path::new("/run/netns").join(topology.namespace("a")))
        .expect("namespace file")
        .ino();
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns link");
    assert_eq!(
        link,
        Path::new(&format!("net:[{inode}]")),
        "in node a's namespace"
    );
    sleeper.kill().expect("kill");
    assert_eq!(
        killed_by(&mut sleeper),
        Some(9),
        "SIGKILL of the child pid ended sleep"
    );

    let mut left_running = topology
        .command("b", "sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    wait_for_exec(left_running.id(), "sleep");
    let namespaces = topology.namespaces();
    let root_interface = topology.root_interface().to_owned();
    drop(topology);
    assert_eq!(
        killed_by(&mut left_running),
        Some(9),
        "Drop killed what was left"
    );
    assert_removed(&namespaces, &root_interface);
}

/// A test that panics with a topology up leaves nothing behind (Drop runs while unwinding).
#[test]
fn a_panicking_test_leaves_nothing_behind() {
    if !netns::require() {
        return;
    }
    let mut made = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let topology = Topology::new(&["a"]).expect("topology");
        made = Some((topology.namespaces(), topology.root_interface().to_owned()));
        panic!("expected: a test failing while its topology is up");
    }));
    assert!(outcome.is_err());
    let (namespaces, root_interface) = made.expect("topology built");
    assert_removed(&namespaces, &root_interface);
}

/// What a SIGKILLed test process left (a namespace with a process in it, a root veth aliased
/// with its pid) is removed by `cleanup_stale`, which every `Topology::new` calls.
#[test]
fn leftovers_of_a_dead_process_are_removed() {
    if !netns::require() {
        return;
    }
    let mut gone = Command::new("true").spawn().expect("true");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let namespace = format!("rmqt-{dead_pid}-0-leftover");
    let ip = |args: &[&str]| {
        let status = Command::new("ip").args(args).status().expect("ip");
        assert!(status.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &namespace]);
    let mut inside = Command::new("ip")
        .args(["netns", "exec", &namespace, "sleep", "60"])
        .spawn()
        .expect("sleep");
    wait_for_exec(inside.id(), "sleep");
    let interface = format!("rmqs-{dead_pid}");
    let peer = format!("{interface}p");
    ip(&[
        "link", "add", &interface, "type", "veth", "peer", "name", &peer,
    ]);
    ip(&[
        "link",
        "set",
        "dev",
        &interface,
        "alias",
        &format!("rmqt-{dead_pid}-0"),
    ]);

    netns::cleanup_stale();
    assert_eq!(
        killed_by(&mut inside),
        Some(9),
        "the process inside was killed"
    );
    assert_removed(&[namespace], &interface);
}
