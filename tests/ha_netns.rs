//! Replication across hosts (issue 13): a NameServer, a master and a slave, each in its own
//! network namespace (tests/common/netns.rs), driven from the root namespace by address.
//!
//! - SYNC_MASTER + SYNC_FLUSH (both sides): producers with many sends in flight, the master
//!   SIGKILLed at a random moment, ten times (every other time the slave right after it, then
//!   restarted): every send answered SUCCESS is on the slave, byte for byte (body, queue
//!   offset), before the master comes back.
//! - ASYNC_MASTER: the master SIGKILLed under load; what the slave lacks is counted and is a
//!   suffix of each queue within `haMaxGapNotInSync` (the documented bound).
//! - SYNC_MASTER with its slave partitioned (link down): every send is answered
//!   FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE within `syncFlushTimeout` (nothing hangs);
//!   when the link returns the slave catches up and sends are SUCCESS again.
//! - Divergence: an ASYNC_FLUSH master killed with its tail unwritten restarts behind its
//!   slave; the slave truncates and then equals it.
//! - (Ignored by default) a wiped slave catching up on gigabytes, the master's RSS flat.
//!
//! The kill loop and the consumer failover with real clients (rocketmq-client-rust producers
//! and push consumer, ali-ons reading from the slave) run in the same kind of topology in
//! `interop/rust-client/tests/ha_kill_loop.rs` and `failover.rs` (scripts/interop.sh).
//!
//! Needs root (`RMQ_NETNS_SKIP=1` skips, see `netns::require`).

#[path = "common/netns.rs"]
mod netns;

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{
    assert_code, block_on, create_topic, properties, pull_all, send_v2, write_broker_conf, Server,
    TempDir,
};
use netns::Topology;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::send::SendMessageResponseHeader;
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::MessageRecord;
use rmq_net::conn::{ClientConfig, RemotingClient};

const TOPIC: &str = "HaNetnsTopic";
const QUEUES: i32 = 4;
/// Every node has its own port space.
const NAMESRV_PORT: u16 = 9876;
const BROKER_PORT: u16 = 10911;
const HA_PORT: u16 = 10912;
/// Client-side bound of one request: above `syncFlushTimeout`, so a timeout here means the
/// broker hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

fn socket(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

fn client(addr: SocketAddr) -> RemotingClient {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    RemotingClient::new(addr.to_string(), config)
}

/// NameServer, master and slave on three nodes. Fields drop in order: processes, files,
/// namespaces.
struct Cluster {
    _namesrv: Server,
    master: Option<Server>,
    slave: Option<Server>,
    master_conf: PathBuf,
    slave_conf: PathBuf,
    _dir: TempDir,
    topology: Topology,
}

impl Cluster {
    /// `None` when namespaces are unusable and `RMQ_NETNS_SKIP=1`.
    fn start(master_extra: &str, slave_extra: &str) -> Option<Self> {
        if !netns::require() {
            return None;
        }
        let topology = Topology::new(&["ns", "master", "slave"]).expect("topology");
        let dir = TempDir::new("ha-netns");
        let ns_ip = topology.node_ip("ns");
        let mut command = topology.command("ns", env!("CARGO_BIN_EXE_rmq"));
        command.args(["namesrv", "--bind", &ns_ip.to_string()]);
        command.args(["--port", &NAMESRV_PORT.to_string(), "--kv-config"]);
        command.arg(dir.path().join("kv.json"));
        let namesrv = Server::start_command(command, 1, None);
        let conf = |node: &str, extra: &str| {
            let node_dir = dir.path().join(node);
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let ip = topology.node_ip(node);
            write_broker_conf(
                &node_dir,
                &format!(
                    "namesrvAddr={ns_ip}:{NAMESRV_PORT}\nbrokerIP1={ip}\nbrokerIP2={ip}\n\
                     listenPort={BROKER_PORT}\nhaListenPort={HA_PORT}\n\
                     storePathRootDir={}\n{extra}\n",
                    node_dir.join("store").display()
                ),
            )
        };
        let master_conf = conf("master", master_extra);
        let slave_conf = conf(
            "slave",
            &format!("brokerRole=SLAVE\nbrokerId=1\n{slave_extra}"),
        );
        let mut cluster = Self {
            _namesrv: namesrv,
            master: None,
            slave: None,
            master_conf,
            slave_conf,
            _dir: dir,
            topology,
        };
        cluster.start_master();
        cluster.start_slave();
        Some(cluster)
    }

    fn start_node(&self, node: &str, conf: &PathBuf) -> Server {
        // `RMQ_TEST_BIN` runs another build (e.g. release, for the catch-up measurement).
        let binary =
            std::env::var("RMQ_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rmq").into());
        let mut command = self.topology.command(node, binary);
        command.args(["broker", "--shards", "1", "-c"]).arg(conf);
        Server::start_command(command, 1, Some("info"))
    }

    fn start_master(&mut self) {
        self.master = Some(self.start_node("master", &self.master_conf));
    }

    fn start_slave(&mut self) {
        self.slave = Some(self.start_node("slave", &self.slave_conf));
    }

    fn master_client(&self) -> RemotingClient {
        client(socket(self.topology.node_ip("master"), BROKER_PORT))
    }

    fn slave_client(&self) -> RemotingClient {
        client(socket(self.topology.node_ip("slave"), BROKER_PORT))
    }

    fn kill_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            master.kill();
        }
    }
}

/// A send answered SUCCESS: what the slave must hold.
#[derive(Debug, Clone)]
struct Acked {
    body: Vec<u8>,
    queue_id: i32,
    queue_offset: i64,
}

fn body_of(producer: usize, seq: usize) -> Vec<u8> {
    format!("p{producer}-m{seq}-{}", "y".repeat(seq % 200)).into_bytes()
}

/// Creates the topic on both brokers (the slave is told too, in case its table sync has not
/// run yet) and waits until a send is SUCCESS (the slave follows).
async fn prepare(cluster: &Cluster, want_success: bool) {
    let master = cluster.master_client();
    create_topic(&master, TOPIC, QUEUES, 6).await;
    create_topic(&cluster.slave_client(), TOPIC, QUEUES, 6).await;
    if !want_success {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = send_v2(&master, TOPIC, 0, b"probe", &properties(None, None, None)).await;
        if reply.response_code() == ResponseCode::Success {
            return;
        }
        assert!(Instant::now() < deadline, "the slave never acknowledged");
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `producers` tasks, each keeping `in_flight` sends outstanding, until the master is
/// killed after `run_for`; returns every SUCCESS and the count of other answers by code.
async fn produce_until_killed(
    cluster: &mut Cluster,
    producers: usize,
    in_flight: usize,
    run_for: Duration,
) -> (Vec<Acked>, HashMap<String, usize>) {
    let acked = Rc::new(RefCell::new(Vec::new()));
    let others = Rc::new(RefCell::new(HashMap::<String, usize>::new()));
    let stop = Rc::new(std::cell::Cell::new(false));
    let mut tasks = Vec::new();
    for producer in 0..producers {
        let connection = Rc::new(cluster.master_client());
        for lane in 0..in_flight {
            let (connection, acked, others, stop) = (
                Rc::clone(&connection),
                Rc::clone(&acked),
                Rc::clone(&others),
                Rc::clone(&stop),
            );
            tasks.push(compio::runtime::spawn(async move {
                let mut seq = lane;
                while !stop.get() {
                    let body = body_of(producer, seq);
                    let queue_id = i32::try_from(seq).expect("small") % QUEUES;
                    seq += in_flight;
                    let request = common::send_request(
                        rmq_net::codec::codes::RequestCode::SendMessageV2,
                        &common::send_header(TOPIC, queue_id, &properties(None, None, None)),
                        bytes::Bytes::from(body.clone()),
                    );
                    match connection.invoke(request, REQUEST_TIMEOUT).await {
                        Ok(reply) if reply.response_code() == ResponseCode::Success => {
                            let header = SendMessageResponseHeader::decode_command(&reply)
                                .expect("send reply header");
                            acked.borrow_mut().push(Acked {
                                body,
                                queue_id: header.queue_id,
                                queue_offset: header.queue_offset,
                            });
                        }
                        Ok(reply) => {
                            *others
                                .borrow_mut()
                                .entry(format!("{:?}", reply.response_code()))
                                .or_default() += 1;
                        }
                        Err(_) => {
                            *others.borrow_mut().entry("transport".into()).or_default() += 1;
                            // The master is gone: stop this lane.
                            if stop.get() {
                                return;
                            }
                            compio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
    }
    compio::time::sleep(run_for).await;
    cluster.kill_master();
    stop.set(true);
    for task in tasks {
        let _ = task.await;
    }
    let acked = acked.borrow().clone();
    let others = others.borrow().clone();
    (acked, others)
}

/// Sends `count` messages with bodies `{prefix}-{i}`, round robin over the queues; each must
/// be answered SUCCESS.
async fn send_numbered(client: &RemotingClient, prefix: &str, count: i32) {
    for i in 0..count {
        let body = format!("{prefix}-{i}");
        let reply = send_v2(
            client,
            TOPIC,
            i % QUEUES,
            body.as_bytes(),
            &properties(None, None, None),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
    }
}

/// Every queue's records on `client`, by (queue, offset).
async fn records_by_position(client: &RemotingClient) -> HashMap<(i32, i64), MessageRecord> {
    let mut all = HashMap::new();
    for queue in 0..QUEUES {
        for record in pull_all(client, TOPIC, queue).await {
            all.insert((queue, record.queue_offset), record);
        }
    }
    all
}

/// The acknowledged sends the slave does not hold byte for byte.
fn missing_on(slave: &HashMap<(i32, i64), MessageRecord>, acked: &[Acked]) -> Vec<Acked> {
    acked
        .iter()
        .filter(|sent| {
            slave
                .get(&(sent.queue_id, sent.queue_offset))
                .is_none_or(|record| record.body.as_ref() != sent.body.as_slice())
        })
        .cloned()
        .collect()
}

#[test]
fn sync_master_sync_flush_loses_no_acknowledged_message_across_master_kills() {
    let flush = "flushDiskType=SYNC_FLUSH\n";
    // syncFlushTimeout below the clients' request timeout (REQUEST_TIMEOUT, and the 5 s of
    // common::call): a slow ack is answered FLUSH_SLAVE_TIMEOUT before a client gives up.
    let master = format!("brokerRole=SYNC_MASTER\nsyncFlushTimeout=2000\n{flush}");
    let Some(mut cluster) = Cluster::start(&master, flush) else {
        return;
    };
    let mut total_acked = 0;
    for round in 0..10 {
        let run_for = Duration::from_millis(300 + rand::random::<u64>() % 1_200);
        let (acked, others) = block_on(async {
            prepare(&cluster, true).await;
            produce_until_killed(&mut cluster, 4, 16, run_for).await
        });
        assert!(!acked.is_empty(), "round {round}: nothing acknowledged");
        // Every other round the slave dies too, right after its master: a SYNC_FLUSH slave
        // acknowledged only what it had made durable, so its restart still has everything.
        let slave_killed = round % 2 == 1;
        if slave_killed {
            if let Some(mut slave) = cluster.slave.take() {
                slave.kill();
            }
            cluster.start_slave();
        }
        let on_slave = block_on(records_by_position(&cluster.slave_client()));
        let missing = missing_on(&on_slave, &acked);
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged sends are not on the slave, e.g. {:?}",
            missing.len(),
            acked.len(),
            missing.first()
        );
        eprintln!(
            "round {round}: killed after {run_for:?} (slave killed too: {slave_killed}), {} SUCCESS all on the slave ({} records there); other answers {others:?}",
            acked.len(),
            on_slave.len()
        );
        total_acked += acked.len();
        cluster.start_master();
    }
    assert!(total_acked > 0);
}

#[test]
fn async_master_loses_at_most_the_replication_lag() {
    let Some(mut cluster) = Cluster::start("brokerRole=ASYNC_MASTER\n", "") else {
        return;
    };
    let (acked, _) = block_on(async {
        prepare(&cluster, false).await;
        // The slave connects within its first backoff.
        compio::time::sleep(Duration::from_secs(2)).await;
        produce_until_killed(&mut cluster, 4, 16, Duration::from_millis(1_500)).await
    });
    let on_slave = block_on(records_by_position(&cluster.slave_client()));
    let missing = missing_on(&on_slave, &acked);
    let missing_bytes: usize = missing.iter().map(|m| m.body.len() + 200).sum();
    eprintln!(
        "ASYNC_MASTER killed: {} acknowledged, {} not on the slave (~{missing_bytes} B of log)",
        acked.len(),
        missing.len()
    );
    // The documented bound: at most haMaxGapNotInSync (256 MiB default) behind.
    assert!(missing_bytes as u64 <= 256 * 1024 * 1024);
    // What is missing is the newest of each queue: the slave holds a prefix.
    for queue in 0..QUEUES {
        let newest_held = on_slave
            .keys()
            .filter(|(q, _)| *q == queue)
            .map(|(_, offset)| *offset)
            .max();
        for lost in missing.iter().filter(|m| m.queue_id == queue) {
            assert!(
                newest_held.is_none_or(|held| lost.queue_offset > held),
                "queue {queue}: offset {} lost below a held {newest_held:?}",
                lost.queue_offset
            );
        }
    }
}

#[test]
fn a_partitioned_slave_makes_sync_sends_fail_fast_and_catches_up_after() {
    let master_conf = "brokerRole=SYNC_MASTER\nsyncFlushTimeout=1000\n";
    let Some(cluster) = Cluster::start(master_conf, "") else {
        return;
    };
    block_on(prepare(&cluster, true));
    cluster.topology.link_down("slave").expect("link down");
    let sent_during = block_on(async {
        let master = cluster.master_client();
        let mut codes = HashMap::<String, usize>::new();
        let until = Instant::now() + Duration::from_secs(4);
        let mut i = 0;
        while Instant::now() < until {
            let started = Instant::now();
            let reply = send_v2(
                &master,
                TOPIC,
                i % QUEUES,
                format!("partitioned-{i}").as_bytes(),
                &properties(None, None, None),
            )
            .await;
            i += 1;
            let took = started.elapsed();
            let code = reply.response_code();
            assert!(
                matches!(
                    code,
                    ResponseCode::FlushSlaveTimeout | ResponseCode::SlaveNotAvailable
                ),
                "send {i} during the partition: {code:?} {:?}",
                reply.remark
            );
            assert!(
                took < Duration::from_millis(2_500),
                "send {i} took {took:?} (syncFlushTimeout is 1 s)"
            );
            *codes.entry(format!("{code:?}")).or_default() += 1;
        }
        eprintln!("during the partition: {codes:?}");
        i
    });
    assert!(sent_during > 0);
    cluster.topology.link_up("slave").expect("link up");
    block_on(async {
        let master = cluster.master_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = send_v2(&master, TOPIC, 0, b"healed", &properties(None, None, None)).await;
            if reply.response_code() == ResponseCode::Success {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sends never SUCCESS after the link returned"
            );
            compio::time::sleep(Duration::from_millis(200)).await;
        }
        send_numbered(&master, "after", 20).await;
        // The slave holds everything the master does, the partition's sends included.
        common::slave_equals_master(
            &master,
            &cluster.slave_client(),
            TOPIC,
            QUEUES,
            Duration::from_secs(20),
        )
        .await;
    });
}

/// Resident set size of `pid`, in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Each queue's (min, max) offsets on `client`.
async fn queue_bounds(client: &RemotingClient) -> Vec<(i64, i64)> {
    use rmq_net::codec::codes::RequestCode;
    let mut bounds = Vec::new();
    for queue in 0..QUEUES {
        let min = common::call(
            client,
            common::queue_request(RequestCode::GetMinOffset, TOPIC, queue),
        )
        .await;
        let max = common::call(
            client,
            common::queue_request(RequestCode::GetMaxOffset, TOPIC, queue),
        )
        .await;
        bounds.push((common::offset_of(&min), common::offset_of(&max)));
    }
    bounds
}

/// The catch-up check: a master holding `CATCH_UP_GIB` GiB of log, an empty slave
/// started against it. The slave catches up (its consume queues' bounds equal the master's,
/// and records sampled at the start, middle and end of every queue are identical) while the
/// master's RSS stays flat (old bytes are read from disk with O_DIRECT, not buffered).
/// Ignored by default: filling 5 GiB through a debug broker takes minutes on a 2-core
/// machine. Run: `cargo test --test ha_netns -- --ignored --nocapture`
/// (`RMQ_CATCH_UP_GIB` overrides the size; `RMQ_TEST_BIN=target/release/rmq` measures a
/// release build).
#[test]
#[ignore = "fills 5 GiB; run by hand (see the doc comment)"]
fn a_wiped_slave_catches_up_on_gigabytes_with_the_master_rss_flat() {
    let gib: u64 = std::env::var("RMQ_CATCH_UP_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let Some(mut cluster) = Cluster::start("brokerRole=ASYNC_MASTER\n", "") else {
        return;
    };
    // Only the master runs while it is filled.
    if let Some(mut slave) = cluster.slave.take() {
        slave.kill();
    }
    let store = cluster.slave_conf.parent().expect("node dir").join("store");
    let _ = std::fs::remove_dir_all(&store);
    let body = vec![b'z'; 1 << 20];
    let messages = gib * 1024;
    let filled = Instant::now();
    block_on(async {
        let master = Rc::new(cluster.master_client());
        create_topic(&master, TOPIC, QUEUES, 6).await;
        let next = Rc::new(std::cell::Cell::new(0_u64));
        let mut lanes = Vec::new();
        for _ in 0..8 {
            let (master, next, body) = (Rc::clone(&master), Rc::clone(&next), body.clone());
            lanes.push(compio::runtime::spawn(async move {
                loop {
                    let i = next.get();
                    if i >= messages {
                        return;
                    }
                    next.set(i + 1);
                    let queue = i32::try_from(i % 4).expect("small");
                    let request = common::send_request(
                        rmq_net::codec::codes::RequestCode::SendMessageV2,
                        &common::send_header(TOPIC, queue, &properties(None, None, None)),
                        bytes::Bytes::from(body.clone()),
                    );
                    let reply = master
                        .invoke(request, Duration::from_secs(30))
                        .await
                        .expect("send");
                    assert_code(&reply, ResponseCode::Success);
                }
            }));
        }
        for lane in lanes {
            lane.await.expect("lane");
        }
    });
    let fill_took = filled.elapsed();
    let master_pid = cluster.master.as_ref().expect("master").pid();
    let rss_before = rss_kib(master_pid);
    cluster.start_slave();
    let started = Instant::now();
    let mut rss = (rss_before, rss_before);
    block_on(async {
        create_topic(&cluster.slave_client(), TOPIC, QUEUES, 6).await;
        let master_bounds = queue_bounds(&cluster.master_client()).await;
        let deadline = Instant::now() + Duration::from_secs(1_800);
        loop {
            let now = rss_kib(master_pid);
            rss = (rss.0.min(now), rss.1.max(now));
            if queue_bounds(&cluster.slave_client()).await == master_bounds {
                break;
            }
            assert!(Instant::now() < deadline, "no catch-up within 30 min");
            compio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let took = started.elapsed();
    let mb = (gib * 1024) as f64;
    eprintln!(
        "{gib} GiB filled in {fill_took:?}; slave caught up in {took:?} ({:.0} MiB/s); master RSS {} MiB before, {}..{} MiB during",
        mb / took.as_secs_f64(),
        rss_before / 1024,
        rss.0 / 1024,
        rss.1 / 1024
    );
    assert!(
        rss.1.saturating_sub(rss_before) < 128 * 1024,
        "master RSS grew from {rss_before} KiB to {} KiB during catch-up",
        rss.1
    );
    // Samples: first, middle and last record of every queue are identical on both.
    block_on(async {
        let (master, slave) = (cluster.master_client(), cluster.slave_client());
        let bounds = queue_bounds(&master).await;
        for (queue, (min, max)) in (0..QUEUES).zip(bounds) {
            for offset in [min, (min + max) / 2, max - 1] {
                let spec = common::PullSpec {
                    max: 1,
                    ..common::PullSpec::new(TOPIC, queue, offset)
                };
                let on_master = common::pull(&master, &spec).await;
                let on_slave = common::pull(&slave, &spec).await;
                assert_eq!(
                    on_master.records, on_slave.records,
                    "queue {queue} offset {offset}"
                );
                assert_eq!(on_master.records.len(), 1);
            }
        }
    });
}

/// Divergence across hosts: an ASYNC_FLUSH master that writes its tail only every 30 s is
/// SIGKILLed after its slave received everything; it restarts with less. The slave is told to
/// truncate to the master's log, and from then on serves exactly the master's messages (the
/// lost tail is gone from both; new messages take its offsets with a new generation).
#[test]
fn a_slave_ahead_of_its_restarted_master_truncates_to_it() {
    let master_conf = "brokerRole=ASYNC_MASTER\nflushDiskType=ASYNC_FLUSH\n\
                       commitIntervalCommitLog=30000\nflushIntervalCommitLog=30000\n";
    let Some(mut cluster) = Cluster::start(master_conf, "") else {
        return;
    };
    block_on(async {
        prepare(&cluster, false).await;
        let master = cluster.master_client();
        send_numbered(&master, "before", 200).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while records_by_position(&cluster.slave_client()).await.len() < 200 {
            assert!(Instant::now() < deadline, "the slave never had the 200");
            compio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    cluster.kill_master();
    cluster.start_master();
    let kept = block_on(async {
        let master = cluster.master_client();
        let kept = records_by_position(&master).await.len();
        assert!(kept < 200, "the kill lost the unwritten tail ({kept} kept)");
        send_numbered(&master, "after", 50).await;
        common::slave_equals_master(
            &master,
            &cluster.slave_client(),
            TOPIC,
            QUEUES,
            Duration::from_secs(30),
        )
        .await;
        kept
    });
    let slave = cluster.slave.as_ref().expect("slave");
    assert!(
        !slave
            .log_lines_with(&["truncating this slave's log to the master's"])
            .is_empty(),
        "the slave truncated (the master kept {kept} of 200)"
    );
}
