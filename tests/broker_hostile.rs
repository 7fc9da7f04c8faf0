//! Hostile or unlucky use of a single node, against the built binary: what an operator or a
//! careless client can do that must not hurt the broker. (The start of the hardening suite.)
//!
//! - System topics cannot be deleted (or re-created with other permissions): delayed messages,
//!   auto-create and transactions depend on them.
//! - A second broker on the same store, or on the same port, and a second NameServer on the same
//!   port are refused at start with a clear message; the first keeps serving.
//! - READY means registered with the NameServer; a pull at a negative offset is moved to the
//!   queue's minimum (PULL_OFFSET_MOVED), not served from 0.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    all_topics, assert_code, block_on, call, create_topic_request, properties, pull, send_v2,
    Broker, PullSpec,
};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::DeleteTopicRequestHeader;
use rmq_net::codec::header::namesrv::GetRouteInfoRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;

/// Runs `rmq <args>` expecting it to fail at start: returns its stderr. Panics if it is still
/// running after `limit` (it must refuse, not serve) or exits successfully.
fn refused_start(args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rmq");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(
                !status.success(),
                "rmq {args:?} started instead of refusing"
            );
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
                .expect("read stderr");
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rmq {args:?} still running after {limit:?}: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn delete_topic_request(topic: &str) -> RemotingCommand {
    let header = DeleteTopicRequestHeader {
        topic: topic.to_owned(),
    };
    RemotingCommand::request(RequestCode::DeleteTopicInBroker, header.to_ext())
}

fn check_system_topics_are_not_deleted(shards: usize) {
    let broker = Broker::start(shards, "");
    let client = broker.client();
    let system = [
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "DefaultCluster",
        "broker-a",
    ];
    let before = all_topics(&broker).topic_config_table;
    block_on(async {
        for topic in system {
            let reply = call(&client, delete_topic_request(topic)).await;
            assert_code(&reply, ResponseCode::NoPermission);
            let remark = reply.remark.clone().unwrap_or_default();
            assert!(remark.contains("system topic"), "{topic}: {remark}");
            // Nor can its permissions be taken away.
            let reply = call(&client, create_topic_request(topic, 1, 0)).await;
            assert_code(&reply, ResponseCode::NoPermission);
        }
    });
    let after = all_topics(&broker).topic_config_table;
    assert_eq!(before, after, "no system topic changed");
    // Auto-create (from TBW102) still works for producers, and an ordinary topic can still be
    // deleted.
    block_on(async {
        let props = properties(Some("TagA"), None, None);
        let reply = send_v2(&client, "AutoCreatedAfterDeleteAttempts", -1, b"x", &props).await;
        assert_code(&reply, ResponseCode::Success);
        let reply = call(
            &client,
            delete_topic_request("AutoCreatedAfterDeleteAttempts"),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
    });
    assert!(!all_topics(&broker)
        .topic_config_table
        .contains_key("AutoCreatedAfterDeleteAttempts"));
}

#[test]
fn system_topics_are_not_deleted_one_shard() {
    check_system_topics_are_not_deleted(1);
}

#[test]
fn system_topics_are_not_deleted_two_shards() {
    check_system_topics_are_not_deleted(2);
}

#[test]
fn a_second_broker_on_the_same_store_or_port_is_refused() {
    let broker = Broker::start(2, "");
    let store = broker.store_dir();
    let store = store.to_str().expect("utf-8");
    // Same store, other ports.
    let stderr = refused_start(
        &[
            "standalone",
            "--namesrv-port",
            "0",
            "--broker-port",
            "0",
            "--store-dir",
            store,
        ],
        Duration::from_secs(30),
    );
    assert!(stderr.contains("in use by another broker"), "{stderr}");
    // Same broker port, its own store.
    let other = common::TempDir::new("second-broker");
    let port = broker.addr.port().to_string();
    let stderr = refused_start(
        &[
            "standalone",
            "--namesrv-port",
            "0",
            "--broker-port",
            &port,
            "--store-dir",
            other.path().join("store").to_str().expect("utf-8"),
        ],
        Duration::from_secs(30),
    );
    assert!(stderr.contains("listenPort"), "{stderr}");
    // Same NameServer port.
    let namesrv_port = broker.namesrv.port().to_string();
    let stderr = refused_start(
        &[
            "namesrv",
            "--port",
            &namesrv_port,
            "--kv-config",
            other.path().join("kv.json").to_str().expect("utf-8"),
        ],
        Duration::from_secs(30),
    );
    assert!(stderr.to_lowercase().contains("address"), "{stderr}");
    // The first broker still serves everything.
    block_on(async {
        let props = properties(None, None, None);
        let reply = send_v2(&broker.client(), "StillServing", -1, b"y", &props).await;
        assert_code(&reply, ResponseCode::Success);
    });
}

fn route_request(topic: &str) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader {
        topic: topic.to_owned(),
        accept_standard_json_only: None,
    };
    RemotingCommand::request(RequestCode::GetRouteinfoByTopic, header.to_ext())
}

/// READY is printed only after the broker registered with its NameServer, so a script acting on
/// READY finds the broker in the routes at once (it used to race the first registration).
#[test]
fn ready_means_registered_with_the_namesrv() {
    for shards in [1, 2] {
        let broker = Broker::start(shards, "");
        let reply = block_on(call(&broker.namesrv_client(), route_request("TBW102")));
        assert_code(&reply, ResponseCode::Success);
    }
}

/// A pull at a negative offset is PULL_OFFSET_MOVED to the queue's minimum, as in Java; it used
/// to be served from offset 0 as if asked for.
#[test]
fn a_pull_at_a_negative_offset_is_moved_to_the_minimum() {
    let broker = Broker::start(2, "");
    let client = broker.client();
    block_on(async {
        let props = properties(None, None, None);
        for queue in 0..2 {
            let reply = send_v2(&client, "NegativePull", queue, b"z", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
        for queue in 0..2 {
            for offset in [-1, i64::MIN] {
                let pulled = pull(&client, &PullSpec::new("NegativePull", queue, offset)).await;
                assert_eq!(
                    pulled.code,
                    ResponseCode::PullOffsetMoved,
                    "offset {offset}"
                );
                assert!(pulled.records.is_empty());
                assert_eq!(pulled.header.next_begin_offset, 0);
                assert_eq!(pulled.header.max_offset, 1);
            }
        }
    });
}

/// The local addresses `pid`'s listening TCP sockets are bound to, from /proc/net/tcp.
fn listening_addresses(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let text = target.to_string_lossy().into_owned();
            text.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            (fields.get(3) == Some(&"0A")
                && inodes.iter().any(|i| Some(&i.as_str()) == fields.get(9)))
            .then(|| fields[1].to_owned())
        })
        .collect()
}

/// `rmq standalone` (the development command, brokerIP1 = 127.0.0.1) listens on loopback only,
/// NameServer and broker alike.
#[test]
fn standalone_listens_on_loopback() {
    let broker = Broker::start(2, "");
    let listening = listening_addresses(broker.server.pid());
    assert!(
        listening.len() >= 3,
        "namesrv + 2 shard listeners: {listening:?}"
    );
    for address in &listening {
        // /proc/net/tcp prints the IPv4 address as little-endian hex: 127.0.0.1 is 0100007F.
        assert!(
            address.starts_with("0100007F:"),
            "not loopback: {address} in {listening:?}"
        );
    }
}

/// With `longPollingEnable=false` a caught-up pull is held for `shortPollingTimeMills` (short
/// polling, as Java) instead of its suspend timeout; it used to be answered at once.
#[test]
fn short_polling_holds_a_caught_up_pull_for_the_short_polling_time() {
    let broker = Broker::start(1, "longPollingEnable=false\nshortPollingTimeMills=700\n");
    let client = broker.client();
    block_on(async {
        let props = properties(None, None, None);
        let reply = send_v2(&client, "ShortPolling", 0, b"s", &props).await;
        assert_code(&reply, ResponseCode::Success);
        let mut spec = PullSpec::new("ShortPolling", 0, 1);
        spec.suspend_ms = 20_000;
        spec.sys_flag |= rmq_net::codec::header::pull::PullSysFlag::SUSPEND;
        let started = Instant::now();
        let pulled = pull(&client, &spec).await;
        let held = started.elapsed();
        assert_eq!(pulled.code, ResponseCode::PullNotFound);
        assert!(
            held >= Duration::from_millis(600),
            "answered after {held:?}"
        );
        assert!(
            held < Duration::from_secs(10),
            "held for the suspend timeout: {held:?}"
        );
    });
}

/// A clean stop (SIGTERM) closes every shard's store: CommitLog flushed, index sealed,
/// checkpoint written, abort marker removed, so the next start is not a crash recovery; every
/// acknowledged message (ASYNC_FLUSH) is there after the restart.
#[test]
fn a_clean_stop_leaves_no_abort_marker_and_loses_nothing() {
    let mut broker = Broker::start(2, "");
    let client = broker.client();
    let sent = 40;
    block_on(async {
        let props = properties(None, None, None);
        for i in 0..sent {
            let reply = send_v2(&client, "CleanStop", i % 4, b"c", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
    });
    broker.terminate_and_restart();
    let client = broker.client();
    let stored: usize = block_on(async {
        let mut total = 0;
        for queue in 0..4 {
            total += common::pull_all(&client, "CleanStop", queue).await.len();
        }
        total
    });
    assert_eq!(stored, usize::try_from(sent).expect("small"));
    // A running store holds its abort marker; a clean stop removes it.
    let status = broker.server.terminate();
    assert!(status.success());
    for shard in 0..2 {
        let marker = broker
            .store_dir()
            .join(format!("shard-{shard}"))
            .join("commitlog")
            .join("abort");
        assert!(
            !marker.exists(),
            "{} left after a clean stop",
            marker.display()
        );
    }
}

/// A large consumer group (1,000 connections) joining at once: every heartbeat is answered,
/// each member gets at most one NOTIFY_CONSUMER_IDS_CHANGED per coalescing interval (not one
/// per join: ~N²/2 in all before), and SIGTERM still stops the broker cleanly.
#[test]
fn a_heartbeat_storm_of_one_group_is_answered_and_notifications_coalesce() {
    const MEMBERS: usize = 1_000;
    const INTERVAL: Duration = Duration::from_secs(1); // src/limits.rs NOTIFY_GROUP_INTERVAL
    let open_files = common::raise_open_files_limit(65_536);
    assert!(
        open_files > 3 * MEMBERS as u64,
        "RLIMIT_NOFILE hard limit {open_files} too low for this test"
    );
    let mut broker = Broker::start(2, "");
    let group = "StormGroup";
    let (storm, inboxes) = block_on(async {
        let members: Vec<_> = (0..MEMBERS)
            .map(|_| common::recording_client(broker.addr))
            .collect();
        let started = Instant::now();
        let replies = futures_util::future::join_all(members.iter().enumerate().map(
            |(i, (client, _))| async move {
                let request = common::heartbeat_request(
                    &format!("10.1.0.{i}@storm"),
                    group,
                    "StormTopic",
                    "*",
                );
                client.invoke(request, Duration::from_secs(60)).await
            },
        ))
        .await;
        let storm = started.elapsed();
        for reply in replies {
            assert_code(&reply.expect("heartbeat answered"), ResponseCode::Success);
        }
        // Trailing notifications arrive within one interval of the last join.
        compio::time::sleep(2 * INTERVAL).await;
        let admin = broker.client();
        let mut ext = rmq_net::codec::command::ExtFields::new();
        ext.insert("consumerGroup", group);
        let list = call(
            &admin,
            RemotingCommand::request(RequestCode::GetConsumerListByGroup, ext),
        )
        .await;
        assert_code(&list, ResponseCode::Success);
        let ids = String::from_utf8_lossy(&list.body)
            .matches("@storm")
            .count();
        assert_eq!(ids, MEMBERS, "every member is listed");
        let inboxes: Vec<usize> = members
            .iter()
            .map(|(_, inbox)| {
                inbox
                    .borrow()
                    .iter()
                    .filter(|r| r.request_code() == RequestCode::NotifyConsumerIdsChanged)
                    .count()
            })
            .collect();
        (storm, inboxes)
    });
    // One at once, then at most one per interval while joins continue, plus a trailing one.
    let bound = usize::try_from(storm.as_secs()).expect("small") + 3;
    let most = inboxes.iter().copied().max().unwrap_or(0);
    let total: usize = inboxes.iter().sum();
    eprintln!(
        "storm of {MEMBERS} joins took {storm:?}: {total} notifications, at most {most} per member"
    );
    assert!(
        most <= bound,
        "a member got {most} notifications for a {storm:?} storm (bound {bound})"
    );
    assert!(total >= 1, "members are told the group changed");
    assert!(
        total < MEMBERS * MEMBERS / 20,
        "{total} notifications for {MEMBERS} joins"
    );
    let status = broker.server.terminate();
    assert!(status.success(), "clean shutdown after the storm: {status}");
}

/// Producers writing to ever new topic names stop at `autoCreateTopicMax`: past it a send to a
/// new name is TOPIC_NOT_EXIST (a code clients retry and report, not MESSAGE_ILLEGAL) with a
/// remark naming the key, while admin-created topics (and existing auto-created ones) work.
fn check_auto_create_is_capped(shards: usize) {
    let broker = Broker::start(shards, "autoCreateTopicMax=12\n");
    let client = broker.client();
    block_on(async {
        let props = properties(None, None, None);
        for i in 0..12 {
            let reply = send_v2(&client, &format!("Auto{i}"), 3, b"a", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
        for i in 12..40 {
            let reply = send_v2(&client, &format!("Auto{i}"), 3, b"a", &props).await;
            assert_code(&reply, ResponseCode::TopicNotExist);
            let remark = reply.remark.unwrap_or_default();
            assert!(remark.contains("autoCreateTopicMax"), "{remark}");
        }
        // Existing auto-created topics keep working, and so does admin creation.
        let reply = send_v2(&client, "Auto0", 1, b"again", &props).await;
        assert_code(&reply, ResponseCode::Success);
        for i in 0..5 {
            let topic = format!("Admin{i}");
            let reply = call(&client, create_topic_request(&topic, 8, 6)).await;
            assert_code(&reply, ResponseCode::Success);
            let reply = send_v2(&client, &topic, 7, b"admin", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
        let topics = all_topics(&broker);
        assert!(!topics.topic_config_table.contains_key("Auto12"));
        assert!(topics.topic_config_table.contains_key("Admin4"));
    });
}

#[test]
fn auto_create_is_capped_one_shard() {
    check_auto_create_is_capped(1);
}

#[test]
fn auto_create_is_capped_two_shards() {
    check_auto_create_is_capped(2);
}

/// LOCK_BATCH_MQ for `client` in `group` over `queues` of each of `topics`; the number locked.
async fn lock_queues(
    client: &rmq_net::conn::RemotingClient,
    group: &str,
    client_id: &str,
    topics: &[String],
    queues: i32,
) -> usize {
    use rmq_net::codec::body::queue::{LockBatchRequestBody, LockBatchResponseBody, MessageQueue};
    use rmq_net::codec::body::JsonBody;
    let body = LockBatchRequestBody {
        client_id: client_id.into(),
        consumer_group: group.into(),
        mq_set: topics
            .iter()
            .flat_map(|topic| {
                (0..queues).map(move |queue_id| MessageQueue {
                    broker_name: "broker-a".into(),
                    queue_id,
                    topic: topic.clone(),
                })
            })
            .collect(),
        only_this_broker: false,
    };
    let request = RemotingCommand::request(
        RequestCode::LockBatchMq,
        rmq_net::codec::command::ExtFields::new(),
    )
    .with_body(body.to_json());
    let reply = call(client, request).await;
    assert_code(&reply, ResponseCode::Success);
    LockBatchResponseBody::from_json(&reply.body)
        .expect("lock reply")
        .lock_ok_mq_set
        .len()
}

/// Offsets and locks are bounded by what exists and by client: UPDATE_CONSUMER_OFFSET refuses
/// oversized or illegal group names, unknown topics and queues; LOCK_BATCH_MQ locks only queues
/// that exist and at most LOCKS_PER_CLIENT_MAX (16,384) for one client id, so one client
/// cannot take the slots other consumers need.
#[test]
fn offsets_and_locks_are_bounded_by_what_exists_and_by_client() {
    let broker = Broker::start(2, "");
    let client = broker.client();
    block_on(async {
        assert_code(
            &call(&client, create_topic_request("Bounded", 4, 6)).await,
            ResponseCode::Success,
        );
        let commit = |group: &str, topic: &str, queue: i32| {
            common::update_offset_request(group, topic, queue, 7)
        };
        let huge = "G".repeat(10_000);
        for (request, code) in [
            (commit("Good", "Bounded", 3), ResponseCode::Success),
            (commit(&huge, "Bounded", 0), ResponseCode::InvalidParameter),
            (
                commit("bad group!", "Bounded", 0),
                ResponseCode::InvalidParameter,
            ),
            (
                commit("Good", "NoSuchTopic", 0),
                ResponseCode::TopicNotExist,
            ),
            (commit("Good", "Bounded", 4), ResponseCode::InvalidParameter),
            (
                commit("Good", "Bounded", -1),
                ResponseCode::InvalidParameter,
            ),
        ] {
            assert_code(&call(&client, request).await, code);
        }
        let query = common::query_offset_request("Good", "Bounded", 3, None);
        assert_eq!(common::offset_of(&call(&client, query).await), 7);

        // Locks: unknown topics lock nothing; one client id stops at its cap.
        let unknown = vec!["NoSuchTopic".to_owned()];
        assert_eq!(lock_queues(&client, "LG", "c1", &unknown, 8).await, 0);
        let topics: Vec<String> = (0..17).map(|i| format!("Locks{i}")).collect();
        for topic in &topics {
            let reply = call(&client, create_topic_request(topic, 1024, 6)).await;
            assert_code(&reply, ResponseCode::Success);
        }
        assert_eq!(
            lock_queues(&client, "LG", "greedy", &topics, 1024).await,
            16_384
        );
        assert_eq!(
            lock_queues(&client, "LG2", "greedy", &topics, 1024).await,
            0,
            "the cap is per client id, across groups"
        );
        assert_eq!(
            lock_queues(&client, "LG", "other", &topics, 1024).await,
            17 * 1024 - 16_384,
            "the rest of the group's queues"
        );
        assert_eq!(
            lock_queues(&client, "LG3", "third", &topics[..2], 1024).await,
            2048,
            "other groups are not starved"
        );
    });
}

/// SIGTERM under load: requests already being handled are answered, later ones get
/// SERVICE_NOT_AVAILABLE (or find the connection closed), every acknowledged message is there
/// after the restart, and the restart replays nothing (the stop was clean).
#[test]
fn sigterm_under_load_drains_and_the_restart_replays_nothing() {
    const CONNECTIONS: usize = 4;
    const PIPELINE: usize = 64;
    let mut broker = Broker::start_logged(2, "", Some("rmq=info"));
    let pid = libc::pid_t::try_from(broker.server.pid()).expect("pid");
    let acknowledged: Vec<Vec<u8>> = block_on(async {
        let clients: Vec<_> = (0..CONNECTIONS).map(|_| broker.client()).collect();
        // Warm up: every connection is established and serving before the load starts.
        let props = properties(None, None, None);
        for client in &clients {
            assert_code(
                &send_v2(client, "Drain", 0, b"warm", &props).await,
                ResponseCode::Success,
            );
        }
        let started = Instant::now();
        let load = clients.iter().enumerate().map(|(c, client)| {
            let props = props.clone();
            async move {
                let mut acked = vec![b"warm".to_vec()];
                let mut refused = 0;
                let mut next = 0_usize;
                'rounds: loop {
                    let bodies: Vec<Vec<u8>> = (0..PIPELINE)
                        .map(|i| format!("c{c}-{}", next + i).into_bytes())
                        .collect();
                    next += PIPELINE;
                    let replies = futures_util::future::join_all(bodies.iter().map(|body| {
                        let header = common::send_header("Drain", (next % 4) as i32, &props);
                        client.invoke(
                            common::send_request(
                                RequestCode::SendMessageV2,
                                &header,
                                bytes::Bytes::copy_from_slice(body),
                            ),
                            Duration::from_secs(10),
                        )
                    }))
                    .await;
                    for (body, reply) in bodies.into_iter().zip(replies) {
                        match reply {
                            Ok(reply) if reply.code == ResponseCode::Success.value() => {
                                acked.push(body);
                            }
                            Ok(reply) => {
                                assert_eq!(
                                    reply.code,
                                    ResponseCode::ServiceNotAvailable.value(),
                                    "{:?}",
                                    reply.remark
                                );
                                refused += 1;
                            }
                            Err(_) => break 'rounds, // the connection closed
                        }
                    }
                    if refused > 0 || started.elapsed() > Duration::from_secs(20) {
                        break;
                    }
                }
                acked
            }
        });
        let sigterm = async {
            compio::time::sleep(Duration::from_millis(300)).await;
            // SAFETY: kill(2) on our own child's pid; no memory is passed.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        };
        let (acked, ()) =
            futures_util::future::join(futures_util::future::join_all(load), sigterm).await;
        acked.into_iter().flatten().collect()
    });
    eprintln!("{} sends acknowledged before the stop", acknowledged.len());
    assert!(acknowledged.len() > CONNECTIONS, "load ran before the stop");
    broker.terminate_and_restart();
    let opened = broker
        .server
        .log_lines_with(&["rmq::broker::start: store opened", "replayed="]);
    assert_eq!(opened.len(), 2, "one line per shard: {opened:?}");
    for line in &opened {
        assert!(
            line.contains("replayed=0"),
            "a clean stop replays nothing: {line}"
        );
    }
    let torn = broker.server.log_lines_with(&["truncated the tail"]);
    assert!(
        torn.is_empty(),
        "a clean stop leaves no torn tail: {torn:?}"
    );
    let client = broker.client();
    let stored: std::collections::HashSet<Vec<u8>> = block_on(async {
        let mut stored = std::collections::HashSet::new();
        for queue in 0..4 {
            for record in common::pull_all(&client, "Drain", queue).await {
                stored.insert(record.body.to_vec());
            }
        }
        stored
    });
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|body| !stored.contains(*body))
        .map(|body| String::from_utf8_lossy(body).into_owned())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged sends lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Under a low open-files limit (300), a flood of idle connections takes only the connection
/// budget: the store keeps the descriptors it needs (new consume queues, checkpoints), an
/// established client keeps being served, and once the flood is gone new clients connect.
#[test]
fn a_connection_flood_under_a_low_open_files_limit_never_starves_the_store() {
    let broker = Broker::start_limited(2, "", Some("rmq=info"), Some(300));
    let warned = broker
        .server
        .log_lines_with(&["low open-files limit", "connections_per_listener="]);
    assert_eq!(warned.len(), 1, "the budget is logged at start");
    let props = properties(None, None, None);
    // One runtime throughout: the established client's connection lives in it.
    block_on(async {
        let client = broker.client();
        assert_code(
            &send_v2(&client, "Flood0", 0, b"before", &props).await,
            ResponseCode::Success,
        );
        let flood: Vec<std::net::TcpStream> = (0..600)
            .map(|_| std::net::TcpStream::connect(broker.addr).expect("connect (backlog)"))
            .collect();
        compio::time::sleep(Duration::from_millis(300)).await;
        for topic in 0..8 {
            for queue in 0..4 {
                let reply =
                    send_v2(&client, &format!("Flood{topic}"), queue, b"during", &props).await;
                assert_code(&reply, ResponseCode::Success);
            }
        }
        // Checkpoints (every second) keep working while the flood holds its connections.
        compio::time::sleep(Duration::from_millis(2_500)).await;
        drop(flood);
        compio::time::sleep(Duration::from_millis(500)).await;
        let fresh = broker.client();
        let reply = send_v2(&fresh, "Flood7", 3, b"after", &props).await;
        assert_code(&reply, ResponseCode::Success);
        assert_eq!(common::pull_all(&fresh, "Flood7", 3).await.len(), 2);
    });
    let failures = broker.server.log_lines_with(&["failed"]);
    assert!(
        failures.iter().all(|line| !line.contains("checkpoint")),
        "{failures:?}"
    );
    let emfile = broker.server.log_lines_with(&["Too many open files"]);
    assert!(
        emfile.iter().all(|line| line.contains("accept")),
        "only accepts may meet EMFILE: {emfile:?}"
    );
}

/// A NameServer stand-in that answers every request with SUCCESS, taking `delay` for each
/// REGISTER_BROKER, and counts registrations (total and most at once).
#[derive(Default)]
struct CountingNamesrv {
    registrations: std::cell::Cell<usize>,
    in_flight: std::cell::Cell<usize>,
    most_in_flight: std::cell::Cell<usize>,
}

impl rmq_net::conn::Handler for CountingNamesrv {
    async fn handle(
        &self,
        _ctx: &rmq_net::conn::ConnContext,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        if request.request_code() == RequestCode::RegisterBroker {
            self.registrations.set(self.registrations.get() + 1);
            self.in_flight.set(self.in_flight.get() + 1);
            self.most_in_flight
                .set(self.most_in_flight.get().max(self.in_flight.get()));
            compio::time::sleep(Duration::from_millis(50)).await;
            self.in_flight.set(self.in_flight.get() - 1);
        }
        Some(RemotingCommand::response_to(
            &request,
            ResponseCode::Success,
        ))
    }
}

/// Producers auto-creating 2,000 topics as fast as they can: the broker's NameServer
/// registrations coalesce (one in flight, one pending), so the NameServer sees a few dozen
/// registrations, not one (full table) per topic.
#[test]
fn registrations_coalesce_when_thousands_of_topics_are_auto_created() {
    const TOPICS: usize = 2_000;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stats_tx, stats_rx) = std::sync::mpsc::channel::<(usize, usize)>();
    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    let namesrv = std::thread::spawn(move || {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let listener = compio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let handler = std::rc::Rc::new(CountingNamesrv::default());
            let serving = std::pin::pin!(rmq_net::conn::serve(
                &listener,
                std::rc::Rc::clone(&handler),
                rmq_net::conn::ServeConfig::default()
            ));
            let stop = std::pin::pin!(stop_rx.recv_async());
            futures_util::future::select(serving, stop).await;
            stats_tx
                .send((handler.registrations.get(), handler.most_in_flight.get()))
                .expect("send stats");
        });
    });
    let namesrv_addr = addr_rx.recv().expect("fake NameServer address");
    let dir = common::TempDir::new("coalesce");
    // Both ports picked free: a master also binds haListenPort (default listenPort + 1, which
    // may be some connection's ephemeral port on a busy test machine).
    let (port, ha_port) = (common::free_port(), common::free_port());
    let conf = common::write_broker_conf(
        dir.path(),
        &format!(
            "listenPort={port}\nhaListenPort={ha_port}\nbrokerIP1=127.0.0.1\nnamesrvAddr={namesrv_addr}\nstorePathRootDir={}\n",
            dir.path().join("store").display()
        ),
    );
    let broker = common::Server::start(
        &[
            "broker",
            "-c",
            conf.to_str().expect("utf-8"),
            "--shards",
            "2",
        ],
        1,
    );
    let addr = broker.addr("broker");
    block_on(async {
        let props = properties(None, None, None);
        let clients: Vec<_> = (0..8)
            .map(|_| rmq_net::conn::RemotingClient::new(addr.to_string(), Default::default()))
            .collect();
        let started = Instant::now();
        let sends = clients.iter().enumerate().map(|(c, client)| {
            let props = &props;
            async move {
                for i in (c..TOPICS).step_by(8) {
                    let reply = send_v2(client, &format!("Storm{i}"), 0, b"s", props).await;
                    assert_code(&reply, ResponseCode::Success);
                }
            }
        });
        futures_util::future::join_all(sends).await;
        eprintln!("{TOPICS} topics auto-created in {:?}", started.elapsed());
        // The last coalesced registration runs after the storm.
        compio::time::sleep(Duration::from_millis(500)).await;
    });
    stop_tx.send(()).expect("stop the fake NameServer");
    let (registrations, most_in_flight) = stats_rx.recv().expect("stats");
    namesrv.join().expect("fake NameServer thread");
    eprintln!("{TOPICS} auto-created topics: {registrations} registrations, at most {most_in_flight} at once");
    assert_eq!(
        most_in_flight, 1,
        "one registration in flight per NameServer"
    );
    assert!(
        registrations < TOPICS / 4,
        "{registrations} registrations for {TOPICS} new topics"
    );
    drop(broker);
}

/// 10,000 consumers of one group disconnect at once: every close reaches the control shard
/// (batched per shard, retried when its channel is full), so the group empties at once instead
/// of keeping dead members until the 120 s channel expiry.
#[test]
fn ten_thousand_connections_closing_at_once_all_leave_their_group() {
    const MEMBERS: usize = 10_000;
    let open_files = common::raise_open_files_limit(65_536);
    assert!(
        open_files > MEMBERS as u64 + 1_000,
        "RLIMIT_NOFILE {open_files} too low"
    );
    let broker = Broker::start(2, "");
    // Ten groups of 1,000 (a group holds at most CLIENTS_PER_GROUP_MAX = 4,096 members).
    let group = |c: usize| format!("WaveGroup{c}");
    block_on(async {
        let admin = broker.client();
        let consumer_count = |reply: &RemotingCommand| {
            String::from_utf8_lossy(&reply.body)
                .matches("@wave")
                .count()
        };
        let list_request = |c: usize| {
            let mut ext = rmq_net::codec::command::ExtFields::new();
            ext.insert("consumerGroup", group(c));
            RemotingCommand::request(RequestCode::GetConsumerListByGroup, ext)
        };
        let listed = || async {
            let mut total = 0;
            for c in 0..MEMBERS / 1_000 {
                // A long timeout: the control shard may be busy with the wave.
                let reply = admin
                    .invoke(list_request(c), Duration::from_secs(30))
                    .await
                    .expect("consumer list answered");
                total += consumer_count(&reply);
            }
            total
        };
        let members: Vec<_> = (0..MEMBERS).map(|_| broker.client()).collect();
        for chunk in members.chunks(1_000).enumerate() {
            let (c, clients) = chunk;
            let replies =
                futures_util::future::join_all(clients.iter().enumerate().map(|(i, client)| {
                    let id = format!("10.2.{c}.{i}@wave");
                    let group = group(c);
                    async move {
                        // Consumers only: producer groups are capped at 4,096 members too.
                        let request = common::heartbeat_request(&id, &group, "WaveTopic", "*");
                        let mut data: rmq_net::codec::body::heartbeat::HeartbeatData =
                            rmq_net::codec::body::JsonBody::from_json(&request.body)
                                .expect("heartbeat body");
                        data.producer_data_set.clear();
                        let request =
                            request.with_body(rmq_net::codec::body::JsonBody::to_json(&data));
                        client.invoke(request, Duration::from_secs(60)).await
                    }
                }))
                .await;
            for reply in replies {
                assert_code(&reply.expect("heartbeat answered"), ResponseCode::Success);
            }
        }
        assert_eq!(listed().await, MEMBERS);
        for client in &members {
            client.close();
        }
        drop(members);
        let mut left = MEMBERS;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            left = listed().await;
            if left == 0 {
                break;
            }
            compio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            left, 0,
            "members still listed after their connections closed"
        );
    });
}
