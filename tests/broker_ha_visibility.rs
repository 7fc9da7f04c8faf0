//! Replication as operators see it, against the built binary (`docs/replication.md`,
//! "Visibility"): a master (`rmq standalone`, ASYNC_MASTER) and a slave (`rmq broker`,
//! brokerRole=SLAVE, brokerId=1, same brokerName and cluster) that learns its master from the
//! NameServer.
//!
//! - Once the slave follows and the messages sent to the master are replicated, both brokers'
//!   runtime info (GET_BROKER_RUNTIME_INFO) show it per shard: on the master the slave's id,
//!   address, acked offset equal to the shard's end, lag 0 bytes and 0 ms; on the slave
//!   connected, caught up, the master's end equal to its own, 0 bytes behind.
//! - `rmq admin cluster-list` lists both brokers with their roles and per-shard lag.
//! - Connect and catch-up are logged on both sides.
//! - A slave stopped (SIGSTOP) while the master takes messages raises the master's lag alarm
//!   past `haMaxLagMillis` (WARN, `haLagAlarm=true`); resumed, it catches up and the alarm
//!   ends (INFO).
//! - A killed slave leaves the master with no slave in its keys (`no-slave` in cluster-list)
//!   and a growing `slaveFallBehindMuch`.
//!
//! Each scenario runs with 1 and 2 shards.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    assert_code, block_on, call, create_topic, properties, send_v2, sent, Broker, Server, TempDir,
};
use rmq_net::codec::body::table::KvTable;
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};

const TOPIC: &str = "HaVisibleTopic";
const QUEUES: i32 = 8;
/// How long replication may take to show in the keys (a bound so a bug fails, not a target).
const LIMIT: Duration = Duration::from_secs(30);
/// The master's `haMaxLagMillis` in these tests.
const MAX_LAG_MS: u64 = 1000;

type Keys = BTreeMap<String, String>;

fn runtime_info(addr: SocketAddr) -> Keys {
    block_on(async {
        let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
        let request = RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo, ExtFields::new());
        let reply = call(&client, request).await;
        assert_code(&reply, ResponseCode::Success);
        KvTable::from_json(&reply.body).expect("KvTable").table
    })
}

/// Polls `addr`'s runtime info until `holds` accepts it; panics with the last keys after
/// [`LIMIT`].
#[track_caller]
fn wait_keys(addr: SocketAddr, what: &str, holds: impl Fn(&Keys) -> bool) -> Keys {
    let deadline = Instant::now() + LIMIT;
    loop {
        let keys = runtime_info(addr);
        if holds(&keys) {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {LIMIT:?}; runtime info of {addr}: {keys:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn key<'a>(keys: &'a Keys, name: &str) -> &'a str {
    keys.get(name).map_or("<absent>", String::as_str)
}

fn shard_key<'a>(keys: &'a Keys, shard: usize, name: &str) -> &'a str {
    key(keys, &format!("shard{shard}.{name}"))
}

/// Every shard of a master has slave 1 connected and acknowledging its whole log.
fn master_in_sync(keys: &Keys, shards: usize) -> bool {
    (0..shards).all(|s| {
        shard_key(keys, s, "haSlaveBrokerId") == "1"
            && shard_key(keys, s, "haLagBytes") == "0"
            && shard_key(keys, s, "haSlaveAckOffset") == shard_key(keys, s, "commitLogMaxOffset")
    })
}

/// Every shard of a slave is connected, caught up and not behind.
fn slave_in_sync(keys: &Keys, shards: usize) -> bool {
    (0..shards).all(|s| {
        shard_key(keys, s, "haConnected") == "true"
            && shard_key(keys, s, "haCaughtUp") == "true"
            && shard_key(keys, s, "haMasterBehindBytes") == "0"
    })
}

/// Sends `count` messages round the topic's queues (so every shard gets some).
fn send_messages(master: &Broker, count: usize, tag: &str) {
    block_on(async {
        let client = master.client();
        let props = properties(Some(tag), None, None);
        for i in 0..count {
            let body = format!("{tag}-{i}");
            let queue = i32::try_from(i).expect("small") % QUEUES;
            let reply = send_v2(&client, TOPIC, queue, body.as_bytes(), &props).await;
            sent(&reply, body.as_bytes());
        }
    });
}

/// `rmq admin cluster-list -n <namesrv>`: its stdout.
fn cluster_list(namesrv: SocketAddr) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(["admin", "cluster-list", "-n", &namesrv.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rmq admin cluster-list");
    assert!(
        output.status.success(),
        "cluster-list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The cluster-list line of the broker at `addr`.
#[track_caller]
fn line_of(listing: &str, addr: SocketAddr) -> Vec<String> {
    let addr = addr.to_string();
    let line = listing
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == addr))
        .unwrap_or_else(|| panic!("{addr} not listed:\n{listing}"));
    line.split_whitespace().map(str::to_owned).collect()
}

fn signal(server: &Server, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(server.pid()).expect("pid");
    // SAFETY: kill(2) on our own child's pid; no memory is passed.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({signal})");
}

#[track_caller]
fn assert_logged(server: &Server, who: &str, needles: &[&str]) {
    let deadline = Instant::now() + LIMIT;
    while server.log_lines_with(needles).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{who} did not log {needles:?} within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn replication_is_visible(shards: usize) {
    let master = Broker::start_logged(
        shards,
        &format!("brokerRole=ASYNC_MASTER\nhaMaxLagMillis={MAX_LAG_MS}"),
        Some("info"),
    );
    block_on(create_topic(&master.client(), TOPIC, QUEUES, 6));
    let slave_dir = TempDir::new("ha-visible-slave");
    let mut slave = common::start_slave(&slave_dir, master.namesrv, 1, shards, "", Some("info"));
    let slave_addr = slave.addr("broker");
    // Sent once the slave follows, so no backlog's age raises the alarm before the stall.
    wait_keys(master.addr, "the slave connects on every shard", |keys| {
        key(keys, "haConnectedShards") == shards.to_string()
    });
    send_messages(&master, 40, "first");

    // Replicated: both sides say so, shard by shard.
    let on_master = wait_keys(master.addr, "master sees its slave in sync", |keys| {
        master_in_sync(keys, shards)
    });
    let on_slave = wait_keys(slave_addr, "slave in sync with its master", |keys| {
        slave_in_sync(keys, shards)
    });
    assert_eq!(key(&on_master, "brokerRole"), "ASYNC_MASTER");
    assert_eq!(key(&on_master, "haConnectedShards"), shards.to_string());
    assert_eq!(key(&on_master, "slaveFallBehindMuch"), "0");
    assert_eq!(key(&on_master, "haLagAlarm"), "false");
    assert_eq!(key(&on_slave, "brokerRole"), "SLAVE");
    assert_eq!(key(&on_slave, "haConnectedShards"), shards.to_string());
    assert_eq!(key(&on_slave, "haMasterBehindBytes"), "0");
    assert_eq!(key(&on_slave, "masterAddr"), master.addr.to_string());
    assert!(on_slave.contains_key("haMasterAddr"), "{on_slave:#?}");
    for s in 0..shards {
        let end = shard_key(&on_master, s, "commitLogMaxOffset");
        assert_ne!(end, "0", "shard {s} took messages");
        assert_eq!(shard_key(&on_master, s, "haLagMillis"), "0");
        assert_eq!(shard_key(&on_master, s, "haLagAlarm"), "false");
        assert_eq!(shard_key(&on_master, s, "slaveFallBehindMuch"), "0");
        let slave_peer: SocketAddr = shard_key(&on_master, s, "haSlaveAddr")
            .parse()
            .expect("haSlaveAddr is an address");
        assert!(slave_peer.ip().is_loopback());
        let ack_ago: u64 = shard_key(&on_master, s, "haLastAckMillisAgo")
            .parse()
            .expect("an ack arrived");
        assert!(ack_ago < 30_000, "acks arrive every heartbeat: {ack_ago}");
        assert_eq!(shard_key(&on_slave, s, "haMasterEnd"), end, "shard {s}");
        assert_eq!(shard_key(&on_slave, s, "commitLogMaxOffset"), end);
        assert_eq!(shard_key(&on_slave, s, "haTruncations"), "0");
    }

    // cluster-list: both brokers, their roles and per-shard lag.
    let listing = cluster_list(master.namesrv);
    let master_line = line_of(&listing, master.addr);
    let slave_line = line_of(&listing, slave_addr);
    assert_eq!(master_line[2], "0", "{listing}");
    assert_eq!(slave_line[2], "1", "{listing}");
    assert!(
        master_line.contains(&"ASYNC_MASTER".to_owned()),
        "{listing}"
    );
    assert!(slave_line.contains(&"SLAVE".to_owned()), "{listing}");
    for s in 0..shards {
        assert!(
            master_line.contains(&format!("s{s}:slave1,0B,0ms")),
            "{listing}"
        );
        assert!(slave_line.contains(&format!("s{s}:up,0B")), "{listing}");
    }

    // Logs: connect and catch-up on both sides, per shard.
    for s in 0..shards {
        let shard = format!("shard={s}");
        assert_logged(&master.server, "master", &["HA slave connected", &shard]);
        assert_logged(&master.server, "master", &["HA slave caught up", &shard]);
        assert_logged(&slave, "slave", &["HA: connected to the master", &shard]);
        assert_logged(&slave, "slave", &["HA: caught up with the master", &shard]);
    }

    // A stalled slave: the master's lag in time passes haMaxLagMillis and the alarm rises.
    signal(&slave, libc::SIGSTOP);
    send_messages(
        &master,
        2 * usize::try_from(QUEUES).expect("small"),
        "stalled",
    );
    let stalled = wait_keys(master.addr, "lag alarm raised", |keys| {
        key(keys, "haLagAlarm") == "true"
    });
    let lagging = (0..shards)
        .find(|s| shard_key(&stalled, *s, "haLagAlarm") == "true")
        .expect("a shard raised it");
    let lag_ms: u64 = shard_key(&stalled, lagging, "haLagMillis")
        .parse()
        .expect("a lag in ms");
    assert!(lag_ms > MAX_LAG_MS, "{stalled:#?}");
    assert_ne!(shard_key(&stalled, lagging, "haLagBytes"), "0");
    assert_ne!(key(&stalled, "slaveFallBehindMuch"), "0");
    assert_logged(
        &master.server,
        "master",
        &["the slave is past the lag bound", "WARN"],
    );
    signal(&slave, libc::SIGCONT);
    wait_keys(master.addr, "alarm ends once the slave caught up", |keys| {
        key(keys, "haLagAlarm") == "false" && master_in_sync(keys, shards)
    });
    assert_logged(
        &master.server,
        "master",
        &["back within the lag bound", "INFO"],
    );

    // A killed slave: the master shows no slave, and what it would lose grows.
    slave.kill();
    let alone = wait_keys(master.addr, "no slave after the kill", |keys| {
        key(keys, "haConnectedShards") == "0"
    });
    for s in 0..shards {
        for gone in [
            "haSlaveBrokerId",
            "haSlaveAddr",
            "haLagBytes",
            "haLagMillis",
        ] {
            assert_eq!(shard_key(&alone, s, gone), "<absent>", "shard {s}: {gone}");
        }
        assert_eq!(shard_key(&alone, s, "haLagAlarm"), "false");
    }
    assert_logged(&master.server, "master", &["HA slave disconnected"]);
    send_messages(&master, 4, "alone");
    let after = runtime_info(master.addr);
    let unacked: u64 = key(&after, "slaveFallBehindMuch")
        .parse()
        .expect("a byte count");
    assert!(unacked > 0, "{after:#?}");
    let listing = cluster_list(master.namesrv);
    let master_line = line_of(&listing, master.addr);
    for s in 0..shards {
        assert!(master_line.contains(&format!("s{s}:no-slave")), "{listing}");
    }
    // The NameServer drops a broker whose connection closed; until then it is unreachable.
    if listing.contains(&slave_addr.to_string()) {
        assert!(
            line_of(&listing, slave_addr).contains(&"unreachable:".to_owned()),
            "{listing}"
        );
    }
}

#[test]
fn replication_is_visible_1_shard() {
    replication_is_visible(1);
}

#[test]
fn replication_is_visible_2_shards() {
    replication_is_visible(2);
}
