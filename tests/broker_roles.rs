//! Broker roles from broker.conf (`brokerRole`, `brokerId`), against the built binary:
//!
//! - A SLAVE refuses every client write as Java's store does (SERVICE_NOT_AVAILABLE): single
//!   sends, batches and CONSUMER_SEND_MSG_BACK, before creating any topic or group; it still
//!   serves pulls of what its log holds.
//! - Each broker registers its configured `brokerId` with the NameServer: the route of a topic
//!   lists the master under 0 and a slave of the same `brokerName` under its id.
//! - Contradicting role keys stop the start with the key named.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{
    all_topics, assert_code, block_on, call, create_topic, properties, pull_all, send_header,
    send_request, send_v2, sent, topic_route, Broker, TempDir, BROKER_NAME,
};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::send::ConsumerSendMsgBackRequestHeader;
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::{encode_batch, BatchEntry, Properties};
use rmq_net::RemotingCommand;

const TOPIC: &str = "RolesTopic";
const GROUP: &str = "RolesGroup";
/// The remark of a write refused on a slave (the words Java's store logs for it).
const SLAVE_REMARK: &str = "message store is slave mode, so putMessage is forbidden";

#[track_caller]
fn assert_refused_as_slave(reply: &RemotingCommand) {
    assert_code(reply, ResponseCode::ServiceNotAvailable);
    assert_eq!(reply.remark.as_deref(), Some(SLAVE_REMARK));
}

fn batch_request(topic: &str) -> RemotingCommand {
    let entries: Vec<BatchEntry> = (0..2)
        .map(|i| BatchEntry {
            flag: 0,
            body: Bytes::from(format!("batch-{i}")),
            properties: properties(Some("TagB"), None, None),
        })
        .collect();
    let mut body = BytesMut::new();
    encode_batch(&entries, &mut body).expect("encode batch");
    let mut header = send_header(topic, 0, &Properties::new());
    header.batch = Some(true);
    send_request(RequestCode::SendBatchMessage, &header, body.freeze())
}

fn send_back_request(offset: i64, topic: &str) -> RemotingCommand {
    let header = ConsumerSendMsgBackRequestHeader {
        offset,
        group: GROUP.into(),
        delay_level: 0,
        origin_msg_id: None,
        origin_topic: Some(topic.into()),
        unit_mode: false,
        max_reconsume_times: Some(16),
        broker_name: None,
    };
    RemotingCommand::request(RequestCode::ConsumerSendMsgBack, header.to_ext())
}

/// A broker stores three messages as a master, is restarted on the same store as
/// `brokerRole=SLAVE`, `brokerId=1`: every write is refused with nothing created, and the three
/// messages are still pulled.
fn slave_refuses_writes_and_serves_pulls(shards: usize) {
    let mut broker = Broker::start(shards, "");
    let bodies: Vec<String> = (0..3).map(|i| format!("stored-as-master-{i}")).collect();
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 1, 6).await;
        let props = properties(None, None, None);
        for body in &bodies {
            let reply = send_v2(&client, TOPIC, 0, body.as_bytes(), &props).await;
            sent(&reply, body.as_bytes());
        }
    });
    broker.rewrite_conf("brokerRole=SLAVE\nbrokerId=1");
    broker.terminate_and_restart();
    let topics_before = all_topics(&broker).topic_config_table;
    block_on(async {
        let client = broker.client();
        let props = properties(Some("TagA"), None, None);
        assert_refused_as_slave(&send_v2(&client, TOPIC, 0, b"refused", &props).await);
        // SEND_MESSAGE (10) and a queue picked by the broker: refused the same way.
        let header = send_header(TOPIC, -1, &props);
        let v1 = send_request(RequestCode::SendMessage, &header, Bytes::from_static(b"v1"));
        assert_refused_as_slave(&call(&client, v1).await);
        // A topic the slave does not know: refused before auto-creation.
        assert_refused_as_slave(&send_v2(&client, "NewOnSlave", -1, b"x", &props).await);
        assert_refused_as_slave(&call(&client, batch_request(TOPIC)).await);
        let stored = pull_all(&client, TOPIC, 0).await;
        let pulled: Vec<&[u8]> = stored.iter().map(|r| &r.body[..]).collect();
        let expected: Vec<&[u8]> = bodies.iter().map(String::as_bytes).collect();
        assert_eq!(pulled, expected, "the slave serves what its log holds");
        // Sending a stored message back (consumer failure): refused before the group or its
        // retry topic are created.
        let offset = stored[0].physical_offset;
        assert_refused_as_slave(&call(&client, send_back_request(offset, TOPIC)).await);
        assert_eq!(
            pull_all(&client, TOPIC, 0).await.len(),
            3,
            "nothing was appended"
        );
    });
    let topics_after = all_topics(&broker).topic_config_table;
    assert_eq!(
        topics_after.keys().collect::<Vec<_>>(),
        topics_before.keys().collect::<Vec<_>>(),
        "no topic created by a refused write (NewOnSlave, %RETRY%{GROUP})"
    );
}

#[test]
fn a_slave_refuses_writes_and_serves_pulls_1_shard() {
    slave_refuses_writes_and_serves_pulls(1);
}

#[test]
fn a_slave_refuses_writes_and_serves_pulls_2_shards() {
    slave_refuses_writes_and_serves_pulls(2);
}

/// The master (standalone, id 0) and a slave of the same brokerName (id 1) both register: the
/// NameServer's route of the master's topic lists each under its configured id.
#[test]
fn each_broker_registers_its_configured_broker_id() {
    let master = Broker::start(1, "");
    block_on(create_topic(&master.client(), TOPIC, 2, 6));
    let slave_dir = TempDir::new("slave");
    let slave = common::start_slave(&slave_dir, master.namesrv, 1, 1, "", None);
    let slave_addr = slave.addr("broker");
    block_on(async {
        let namesrv = master.namesrv_client();
        let route = topic_route(&namesrv, TOPIC).await.expect("a route");
        assert_eq!(route.broker_datas.len(), 1, "{route:?}");
        let data = &route.broker_datas[0];
        assert_eq!(data.broker_name, BROKER_NAME);
        let addrs: Vec<(i64, String)> = data
            .broker_addrs
            .iter()
            .map(|(id, addr)| (*id, addr.clone()))
            .collect();
        assert_eq!(
            addrs,
            vec![(0, master.addr.to_string()), (1, slave_addr.to_string())],
            "master under 0, the slave under its brokerId"
        );
        // The queues come from the master's registration only (as Java's NameServer).
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].write_queue_nums, 2);
    });
}

/// Runs `rmq broker -c <conf>` expecting it to refuse to start; returns its stderr.
fn refused_start(conf: &std::path::Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args([
            "broker",
            "-c",
            conf.to_str().expect("utf-8"),
            "--shards",
            "1",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rmq");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "rmq started with {}", conf.display());
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
                .expect("read stderr");
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rmq still running with {}: it must refuse", conf.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Contradicting keys stop `rmq broker` before it binds or opens a store, naming the key.
#[test]
fn contradicting_role_keys_stop_the_start_naming_the_key() {
    let dir = TempDir::new("roles-refused");
    let store = dir.path().join("store");
    for (extra, key) in [
        ("brokerRole=SLAVE\nbrokerId=0", "brokerId"),
        ("brokerRole=SYNC_MASTER\nbrokerId=2", "brokerId"),
        ("listenPort=20911\nhaListenPort=20911", "haListenPort"),
        ("haMasterAddress=10.0.0.1:10912", "haMasterAddress"),
        (
            "brokerRole=SLAVE\nbrokerId=1\nhaMasterAddress=10.0.0.1",
            "haMasterAddress",
        ),
    ] {
        let conf = common::write_broker_conf(
            dir.path(),
            &format!("{extra}\nstorePathRootDir={}\n", store.display()),
        );
        let stderr = refused_start(&conf);
        assert!(
            stderr.contains(&format!("config key `{key}`")),
            "{extra:?}: {stderr}"
        );
        assert!(!stderr.contains("stack backtrace"), "{stderr}");
        assert!(!store.exists(), "refused before the store was created");
    }
}
