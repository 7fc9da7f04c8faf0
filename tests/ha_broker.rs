//! Master/slave replication between real broker processes on loopback (issue 13): a NameServer,
//! a master and a slave started from broker.conf files as an operator would; the slave learns
//! its master from the NameServer and follows it per shard.
//!
//! - SYNC_MASTER (ASYNC_FLUSH on 1 shard, SYNC_FLUSH on both sides on 2 shards): sends are
//!   answered SUCCESS once the slave has them; the slave serves the same
//!   messages (every field of every record) as the master.
//! - Without its slave a SYNC_MASTER answers SLAVE_NOT_AVAILABLE (the message is stored on the
//!   master); a restarted slave catches up and sends are SUCCESS again.
//! - A slave with another shard count is refused, and both sides say why.
//! - Divergence: an ASYNC_FLUSH master killed with its tail unwritten restarts with less than
//!   its slave holds; the slave truncates to the master's log and then equals it.
//!
//! Network faults between hosts (partitions, kill loops) are in the network-namespace tests.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    assert_code, block_on, create_topic, free_port, properties, send_v2, start_namesrv, Server,
    TempDir,
};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::MessageRecord;
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::RemotingCommand;

const TOPIC: &str = "HaTopic";
const QUEUES: i32 = 4;

/// One broker process of the pair: its store and conf survive restarts.
struct Node {
    _dir: TempDir,
    conf: PathBuf,
    shards: usize,
    server: Option<Server>,
}

impl Node {
    /// Writes the broker.conf of a master (`role`) or slave (`SLAVE`, id 1) and starts it.
    fn start(namesrv: SocketAddr, role: &str, shards: usize, extra: &str) -> Self {
        let dir = TempDir::new(if role == "SLAVE" { "slave" } else { "master" });
        let id = u8::from(role == "SLAVE");
        // listenPort must name a port (0 is refused, as Java's range check does).
        let port = if extra.contains("listenPort=") {
            String::new()
        } else {
            format!("listenPort={}\nhaListenPort={}\n", free_port(), free_port())
        };
        let conf = common::write_broker_conf(
            dir.path(),
            &format!(
                "brokerRole={role}\nbrokerId={id}\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
                 namesrvAddr={namesrv}\nstorePathRootDir={}\n{port}{extra}\n",
                dir.path().join("store").display()
            ),
        );
        let mut node = Self {
            _dir: dir,
            conf,
            shards,
            server: None,
        };
        node.restart();
        node
    }

    fn restart(&mut self) {
        let shards = self.shards.to_string();
        self.server = Some(Server::start_logged(
            &[
                "broker",
                "-c",
                self.conf.to_str().expect("utf-8"),
                "--shards",
                &shards,
            ],
            1,
            Some("info"),
        ));
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    fn addr(&self) -> SocketAddr {
        self.server().addr("broker")
    }

    fn client(&self) -> RemotingClient {
        RemotingClient::new(self.addr().to_string(), ClientConfig::default())
    }

    fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
    }

    fn log_has(&self, needles: &[&str]) -> bool {
        !self.server().log_lines_with(needles).is_empty()
    }
}

fn body_of(i: usize) -> Vec<u8> {
    format!("ha-message-{i}-{}", "x".repeat(i % 300)).into_bytes()
}

async fn send(client: &RemotingClient, i: usize) -> RemotingCommand {
    let queue = i32::try_from(i).expect("small") % QUEUES;
    send_v2(
        client,
        TOPIC,
        queue,
        &body_of(i),
        &properties(None, None, None),
    )
    .await
}

/// Sends until every queue answered SUCCESS in a row (the slave of every shard has connected:
/// with 2 shards one shard's slave may connect after the other's), at most `limit`.
async fn until_replicated(client: &RemotingClient, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut sent = 0;
    let mut in_a_row = 0;
    loop {
        let reply = send(client, 10_000 + sent).await;
        sent += 1;
        if reply.response_code() == ResponseCode::Success {
            in_a_row += 1;
            if in_a_row == QUEUES {
                return sent;
            }
            continue;
        }
        in_a_row = 0;
        assert!(
            matches!(
                reply.response_code(),
                ResponseCode::SlaveNotAvailable | ResponseCode::FlushSlaveTimeout
            ),
            "only the slave's absence may refuse: {:?} {:?}",
            reply.response_code(),
            reply.remark
        );
        assert!(Instant::now() < deadline, "the slave never acknowledged");
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every queue's records of the test topic.
async fn all_records(client: &RemotingClient) -> Vec<Vec<MessageRecord>> {
    common::all_records(client, TOPIC, QUEUES).await
}

/// Waits until the slave serves exactly what the master serves.
async fn slave_equals_master(master: &RemotingClient, slave: &RemotingClient, limit: Duration) {
    common::slave_equals_master(master, slave, TOPIC, QUEUES, limit).await;
}

fn sync_master_replicates_and_recovers(shards: usize, flush: &str) {
    let ns_dir = TempDir::new("ns");
    let namesrv = start_namesrv(&ns_dir);
    let ns = namesrv.addr("namesrv");
    let flush = format!("flushDiskType={flush}\n");
    let master = Node::start(ns, "SYNC_MASTER", shards, &flush);
    let mut slave = Node::start(ns, "SLAVE", shards, &flush);
    block_on(async {
        let client = master.client();
        create_topic(&client, TOPIC, QUEUES, 6).await;
        // Until the slave syncs topic configs from its master, it is told of the topic too.
        create_topic(&slave.client(), TOPIC, QUEUES, 6).await;
        until_replicated(&client, Duration::from_secs(20)).await;
        for i in 0..200 {
            let reply = send(&client, i).await;
            assert_code(&reply, ResponseCode::Success);
        }
        // SUCCESS means the slave had each record in its log when the reply left; its
        // dispatch into consume queues follows its ack, hence the short wait.
        slave_equals_master(&client, &slave.client(), Duration::from_secs(5)).await;
    });
    assert!(master.log_has(&["HA slave connected"]));
    assert!(slave.log_has(&["HA: connected to the master"]));

    // The slave dies: the master stores and answers SLAVE_NOT_AVAILABLE.
    slave.kill();
    block_on(async {
        let client = master.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut refused = 0;
        let mut i = 200;
        while refused < 20 {
            let reply = send(&client, i).await;
            i += 1;
            match reply.response_code() {
                ResponseCode::SlaveNotAvailable => {
                    refused += 1;
                    // Java's reply: stored, with its msgId and offsets.
                    assert!(reply.ext_fields.contains_key("msgId"), "{reply:?}");
                }
                ResponseCode::Success | ResponseCode::FlushSlaveTimeout => {}
                other => panic!("unexpected {other:?}"),
            }
            assert!(Instant::now() < deadline, "no SLAVE_NOT_AVAILABLE");
        }
    });
    // It comes back over its store and catches up, then sends are acknowledged again.
    slave.restart();
    block_on(async {
        let client = master.client();
        create_topic(&slave.client(), TOPIC, QUEUES, 6).await;
        until_replicated(&client, Duration::from_secs(30)).await;
        for i in 1_000..1_050 {
            assert_code(&send(&client, i).await, ResponseCode::Success);
        }
        slave_equals_master(&client, &slave.client(), Duration::from_secs(10)).await;
    });
}

#[test]
fn sync_master_replicates_and_recovers_1_shard() {
    sync_master_replicates_and_recovers(1, "ASYNC_FLUSH");
}

#[test]
fn sync_master_replicates_and_recovers_2_shards_sync_flush() {
    sync_master_replicates_and_recovers(2, "SYNC_FLUSH");
}

#[test]
fn a_slave_with_another_shard_count_is_refused_on_both_sides() {
    let ns_dir = TempDir::new("ns");
    let namesrv = start_namesrv(&ns_dir);
    let ns = namesrv.addr("namesrv");
    let master = Node::start(ns, "SYNC_MASTER", 1, "");
    let slave = Node::start(ns, "SLAVE", 2, "");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(master.log_has(&["HA slave refused", "ShardCount"])
        && slave.log_has(&["the master refused this slave", "ShardCount"]))
    {
        assert!(Instant::now() < deadline, "no refusal logged on both sides");
        std::thread::sleep(Duration::from_millis(100));
    }
    block_on(async {
        let client = master.client();
        create_topic(&client, TOPIC, QUEUES, 6).await;
        let reply = send(&client, 0).await;
        assert_code(&reply, ResponseCode::SlaveNotAvailable);
    });
}

/// An ASYNC_FLUSH master that writes its tail only every 30 s is killed: it restarts with less
/// than its slave received. The slave is told to truncate to the master's end, and afterwards
/// serves exactly the master's messages, old and new.
#[test]
fn a_slave_ahead_of_its_restarted_master_truncates_to_it() {
    let ns_dir = TempDir::new("ns");
    let namesrv = start_namesrv(&ns_dir);
    let ns = namesrv.addr("namesrv");
    // Fixed ports: the slave reconnects to the same HA address after the master restarts.
    let (port, ha_port) = (free_port(), free_port());
    let mut master = Node::start(
        ns,
        "ASYNC_MASTER",
        1,
        &format!(
            "listenPort={port}\nhaListenPort={ha_port}\nflushDiskType=ASYNC_FLUSH\n\
             commitIntervalCommitLog=30000\nflushIntervalCommitLog=30000\n"
        ),
    );
    let slave = Node::start(ns, "SLAVE", 1, "");
    block_on(async {
        let client = master.client();
        create_topic(&client, TOPIC, QUEUES, 6).await;
        create_topic(&slave.client(), TOPIC, QUEUES, 6).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !master.log_has(&["HA slave accepted"]) {
            assert!(Instant::now() < deadline, "the slave never connected");
            compio::time::sleep(Duration::from_millis(100)).await;
        }
        for i in 0..120 {
            assert_code(&send(&client, i).await, ResponseCode::Success);
        }
        // The slave has all 120 (ASYNC_MASTER: it follows on its own).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let counts: usize = all_records(&slave.client())
                .await
                .iter()
                .map(Vec::len)
                .sum();
            if counts == 120 {
                break;
            }
            assert!(Instant::now() < deadline, "slave has {counts} of 120");
            compio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    master.kill();
    master.restart();
    let master_after = block_on(async {
        let client = master.client();
        let records: usize = all_records(&client).await.iter().map(Vec::len).sum();
        assert!(
            records < 120,
            "the kill lost the unwritten tail ({records} kept)"
        );
        // New messages take the lost offsets with a new generation.
        for i in 500..530 {
            assert_code(&send(&client, i).await, ResponseCode::Success);
        }
        slave_equals_master(&client, &slave.client(), Duration::from_secs(30)).await;
        records
    });
    assert!(
        slave.log_has(&["truncating this slave's log to the master's"]),
        "the slave truncated (master kept {master_after} of 120)"
    );
}
