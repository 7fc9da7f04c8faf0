//! Black-box tests of back-tracking and request-reply with our own client, each with 1 and 2
//! shards (docs/reset-and-reply.md):
//! - INVOKE_BROKER_TO_RESET_OFFSET (222) moves a group's offsets to the first message stored at
//!   or after a time, tells the live member with RESET_CONSUMER_CLIENT_OFFSET (220, oneway,
//!   Java's body), never moves forward unless forced, changes an offline group's stored
//!   offsets, and refuses an unknown topic or group with a code and remark, storing nothing;
//! - `rmq admin reset-offset-by-time` prints old and new offsets (table and `--json`);
//! - SEND_REPLY_MESSAGE_V2 (325) pushes PUSH_REPLY_MESSAGE_TO_CLIENT (326) to the requester's
//!   connection (on another shard too, checked in the broker log) and stores the reply; a
//!   reply to a requester that is gone gets SYSTEM_ERROR and nothing is stored;
//! - INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223) asks each live member with
//!   GET_CONSUMER_STATUS_FROM_CLIENT (221) and reports those that answered
//!   (`rmq admin consumer-status` too).

mod common;

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    assert_code, block_on, call, create_topic, eventually, heartbeat_request, offset_of,
    properties, pull_all, query_offset_request, recording_client, send_request, send_v2,
    update_offset_request, Broker, Inbox, BROKER_NAME, CLUSTER_NAME,
};
use rmq_net::codec::body::heartbeat::{HeartbeatData, ProducerData};
use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::stats::{GetConsumerStatusBody, ResetOffsetBody};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::reset::{
    GetConsumerStatusRequestHeader, ReplyMessageRequestHeader, ResetOffsetRequestHeader,
};
use rmq_net::codec::header::send::SendMessageRequestHeader;
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::{keys, Properties};
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};

const QUEUES: i32 = 4;
const SETTLE: Duration = Duration::from_secs(5);

fn reset_request(topic: &str, group: &str, timestamp: i64, force: bool) -> RemotingCommand {
    let header = ResetOffsetRequestHeader {
        topic: topic.into(),
        group: group.into(),
        timestamp,
        is_force: force,
    };
    RemotingCommand::request(RequestCode::InvokeBrokerToResetOffset, header.to_ext())
}

fn table(reply: &RemotingCommand) -> Vec<(i32, i64)> {
    assert_code(reply, ResponseCode::Success);
    let body = ResetOffsetBody::from_json(&reply.body).expect("ResetOffsetBody");
    body.offset_table
        .iter()
        .map(|(mq, offset)| {
            assert_eq!(mq.broker_name, BROKER_NAME);
            (mq.queue_id, *offset)
        })
        .collect()
}

async fn committed(client: &RemotingClient, group: &str, topic: &str) -> Vec<i64> {
    let mut offsets = Vec::new();
    for queue in 0..QUEUES {
        let reply = call(
            client,
            query_offset_request(group, topic, queue, Some(false)),
        )
        .await;
        offsets.push(offset_of(&reply));
    }
    offsets
}

/// Sends `per_queue` messages to each queue.
async fn fill(client: &RemotingClient, topic: &str, per_queue: usize, tag: &str) {
    for queue in 0..QUEUES {
        for i in 0..per_queue {
            let body = format!("{tag}-{queue}-{i}");
            let reply = send_v2(
                client,
                topic,
                queue,
                body.as_bytes(),
                &properties(None, None, None),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
    }
}

fn reset_moves_offsets_and_tells_the_live_member(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "ResetTopic";
        let group = "reset_group";
        create_topic(&client, topic, QUEUES, 6).await;
        fill(&client, topic, 3, "early").await;
        compio::time::sleep(Duration::from_millis(30)).await;
        let cut = common::now_ms();
        compio::time::sleep(Duration::from_millis(30)).await;
        fill(&client, topic, 2, "late").await;
        // A live member that has consumed everything.
        let (member, inbox) = recording_client(broker.addr);
        let joined = call(&member, heartbeat_request("member@1", group, topic, "*")).await;
        assert_code(&joined, ResponseCode::Success);
        for queue in 0..QUEUES {
            let reply = call(&client, update_offset_request(group, topic, queue, 5)).await;
            assert_code(&reply, ResponseCode::Success);
        }

        let reply = call(&client, reset_request(topic, group, cut, false)).await;
        let expected: Vec<(i32, i64)> = (0..QUEUES).map(|q| (q, 3)).collect();
        assert_eq!(
            table(&reply),
            expected,
            "first offset stored at or after the cut"
        );
        assert_eq!(committed(&client, group, topic).await, vec![3; 4]);
        let told = eventually(SETTLE, || resets(&inbox).len() == 1).await;
        assert!(told, "member told once: {:?}", resets(&inbox));
        let notice = resets(&inbox).remove(0);
        assert!(notice.is_oneway());
        assert_eq!(notice.ext("topic"), Some(topic));
        assert_eq!(notice.ext("group"), Some(group));
        assert_eq!(notice.ext("timestamp"), Some(cut.to_string().as_str()));
        assert_eq!(notice.ext("isForce"), Some("false"));
        let body = ResetOffsetBody::from_json(&notice.body).expect("notice body");
        assert_eq!(
            body.offset_table
                .get(&MessageQueue::new(topic, BROKER_NAME, 2)),
            Some(&3)
        );

        // -1 (max offsets) is forward: not without force, yes with it.
        let reply = call(&client, reset_request(topic, group, -1, false)).await;
        assert_eq!(table(&reply), expected, "never forward unless forced");
        assert_eq!(committed(&client, group, topic).await, vec![3; 4]);
        let reply = call(&client, reset_request(topic, group, -1, true)).await;
        let at_max: Vec<(i32, i64)> = (0..QUEUES).map(|q| (q, 5)).collect();
        assert_eq!(table(&reply), at_max);
        assert_eq!(committed(&client, group, topic).await, vec![5; 4]);
        // Back to the beginning.
        let reply = call(&client, reset_request(topic, group, 0, false)).await;
        assert_eq!(
            table(&reply),
            (0..QUEUES).map(|q| (q, 0)).collect::<Vec<_>>()
        );
        assert!(eventually(SETTLE, || resets(&inbox).len() == 4).await);
    });
}

fn resets(inbox: &Inbox) -> Vec<RemotingCommand> {
    inbox
        .borrow()
        .iter()
        .filter(|r| r.request_code() == RequestCode::ResetConsumerClientOffset)
        .cloned()
        .collect()
}

#[test]
fn reset_moves_offsets_and_tells_the_live_member_1_shard() {
    reset_moves_offsets_and_tells_the_live_member(1);
}

#[test]
fn reset_moves_offsets_and_tells_the_live_member_2_shards() {
    reset_moves_offsets_and_tells_the_live_member(2);
}

fn reset_errors_and_offline_groups(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "ResetErrTopic";
        create_topic(&client, topic, QUEUES, 6).await;
        fill(&client, topic, 2, "m").await;

        let reply = call(&client, reset_request("NoSuchTopic", "g1", 0, true)).await;
        assert_code(&reply, ResponseCode::TopicNotExist);
        let remark = reply.remark.clone().unwrap_or_default();
        assert!(
            remark.contains("no topic in this broker. topic=NoSuchTopic"),
            "{remark}"
        );

        let reply = call(&client, reset_request(topic, "never_seen_group", 0, true)).await;
        assert_code(&reply, ResponseCode::SubscriptionGroupNotExist);
        let remark = reply.remark.clone().unwrap_or_default();
        assert!(remark.contains("<never_seen_group> not exist"), "{remark}");
        for queue in 0..QUEUES {
            let query = query_offset_request("never_seen_group", topic, queue, Some(false));
            let reply = call(&client, query).await;
            assert_code(&reply, ResponseCode::QueryNotFound);
        }

        let reply = call(&client, reset_request(topic, "bad group!", 0, true)).await;
        assert_code(&reply, ResponseCode::InvalidParameter);
        let reply = call(&client, reset_request(topic, "offline_group", -7, true)).await;
        assert_code(&reply, ResponseCode::InvalidParameter);

        // An offline group (known, no member): its stored offsets change, nobody is told.
        let member = broker.client();
        let joined = call(
            &member,
            heartbeat_request("gone@1", "offline_group", topic, "*"),
        )
        .await;
        assert_code(&joined, ResponseCode::Success);
        member.close();
        for queue in 0..QUEUES {
            let reply = call(
                &client,
                update_offset_request("offline_group", topic, queue, 2),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
        let reply = call(&client, reset_request(topic, "offline_group", 0, false)).await;
        assert_eq!(
            table(&reply),
            (0..QUEUES).map(|q| (q, 0)).collect::<Vec<_>>()
        );
        assert_eq!(committed(&client, "offline_group", topic).await, vec![0; 4]);

        // The CLI: old and new offsets per queue, as a table and as JSON.
        let output = rmq_admin(
            &broker,
            &["-t", topic, "-g", "offline_group", "-s", "-1", "--json"],
        );
        let rows: serde_json::Value = serde_json::from_str(&output).expect("JSON rows");
        let rows = rows.as_array().expect("array");
        assert_eq!(rows.len(), QUEUES as usize);
        for row in rows {
            assert_eq!(row["brokerName"], BROKER_NAME);
            assert_eq!(row["oldOffset"], 0);
            assert_eq!(row["newOffset"], 2, "mqadmin's default force moves forward");
        }
        let output = rmq_admin(
            &broker,
            &["-t", topic, "-g", "offline_group", "-s", "0", "-f", "false"],
        );
        let lines: Vec<&str> = output.lines().collect();
        assert!(lines[0].starts_with("#brokerName"), "{output}");
        assert_eq!(lines.len(), 1 + QUEUES as usize, "{output}");
        assert!(
            lines[1].split_whitespace().eq([BROKER_NAME, "0", "2", "0"]),
            "{output}"
        );
        let failed = Command::new(env!("CARGO_BIN_EXE_rmq"))
            .args([
                "admin",
                "reset-offset-by-time",
                "-n",
                &broker.namesrv.to_string(),
            ])
            .args([
                "-b",
                &broker.addr.to_string(),
                "-t",
                topic,
                "-g",
                "nobody",
                "-s",
                "now",
            ])
            .output()
            .expect("rmq admin runs");
        assert!(!failed.status.success());
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(stderr.contains("<nobody> not exist"), "{stderr}");
    });
}

fn rmq_admin(broker: &Broker, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args([
            "admin",
            "reset-offset-by-time",
            "-n",
            &broker.namesrv.to_string(),
        ])
        .args(args)
        .output()
        .expect("rmq admin runs");
    assert!(
        output.status.success(),
        "rmq admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn reset_errors_and_offline_groups_1_shard() {
    reset_errors_and_offline_groups(1);
}

#[test]
fn reset_errors_and_offline_groups_2_shards() {
    reset_errors_and_offline_groups(2);
}

// ---- request-reply ----

fn reply_topic() -> String {
    format!("{CLUSTER_NAME}_REPLY_TOPIC")
}

/// A client that answers every server request SUCCESS and records it.
fn answering_client(addr: std::net::SocketAddr) -> (RemotingClient, Inbox) {
    let inbox: Inbox = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&inbox);
    let client = RemotingClient::with_request_callback(
        addr.to_string(),
        ClientConfig::default(),
        Rc::new(move |_ctx, request: RemotingCommand| {
            let answer = RemotingCommand::response_to(&request, ResponseCode::Success);
            sink.borrow_mut().push(request);
            Some(answer)
        }),
    );
    (client, inbox)
}

fn producer_heartbeat(client_id: &str) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.into(),
        producer_data_set: vec![ProducerData {
            group_name: "requester_group".into(),
        }],
        ..HeartbeatData::default()
    };
    RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new()).with_body(data.to_json())
}

fn reply_request(reply_to: &str, correlation: &str, body: &str) -> RemotingCommand {
    let mut props = Properties::new();
    for (name, value) in [
        (keys::MSG_TYPE, keys::MSG_TYPE_REPLY),
        (keys::REPLY_TO_CLIENT, reply_to),
        (keys::CORRELATION_ID, correlation),
        (keys::TTL, "3000"),
    ] {
        props.insert(name, value).expect("valid property");
    }
    let header = SendMessageRequestHeader {
        producer_group: "responder_group".into(),
        ..common::send_header(&reply_topic(), -1, &props)
    };
    send_request(
        RequestCode::SendReplyMessageV2,
        &header,
        Bytes::copy_from_slice(body.as_bytes()),
    )
}

/// The (requester, responder) shards the broker logged for the push of `correlation` (the
/// log is copied from the broker's stderr by a thread: the line may trail the reply a little).
async fn pushed_shards(broker: &Broker, correlation: &str) -> (usize, usize) {
    let needle = format!("correlation_id=\"{correlation}\"");
    let needles = ["reply pushed", needle.as_str()];
    let logged = eventually(SETTLE, || {
        !broker.server.log_lines_with(&needles).is_empty()
    })
    .await;
    assert!(logged, "push of {correlation} logged");
    let lines = broker.server.log_lines_with(&needles);
    let line = &lines[0];
    let field = |name: &str| -> usize {
        let start = line.find(&format!("{name}=")).expect("field logged") + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("shard number")
    };
    (field("requester_shard"), field("responder_shard"))
}

fn reply_round_trip(shards: usize) {
    let broker = Broker::start_logged(shards, "", Some("info,rmq::broker::reply=debug"));
    block_on(async {
        // Fresh requester and responder connections until the pushes crossed shards both ways
        // (SO_REUSEPORT spreads connections; the broker log names both shards of every push).
        let attempts = if shards == 1 { 2 } else { 64 };
        let mut seen = std::collections::BTreeSet::new();
        let mut requesters = Vec::new();
        for attempt in 0..attempts {
            let (requester, inbox) = answering_client(broker.addr);
            let requester_id = format!("requester@{attempt}");
            let joined = call(&requester, producer_heartbeat(&requester_id)).await;
            assert_code(&joined, ResponseCode::Success);
            let responder = broker.client();
            let correlation = format!("corr-{attempt}");
            let body = format!("answer-{attempt}");
            let reply = call(
                &responder,
                reply_request(&requester_id, &correlation, &body),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            assert_ne!(reply.ext("msgId"), Some("0"), "the reply was stored");
            responder.close();
            let push = inbox
                .borrow()
                .iter()
                .find(|r| r.request_code() == RequestCode::PushReplyMessageToClient)
                .cloned()
                .expect("the requester got the push");
            assert!(!push.is_oneway(), "a push awaits the requester's answer");
            assert_eq!(push.body.as_ref(), body.as_bytes());
            let header = ReplyMessageRequestHeader::decode_command(&push).expect("push header");
            assert_eq!(header.topic, reply_topic());
            assert_eq!(header.producer_group, "responder_group");
            assert!(header.born_host.parse::<std::net::SocketAddr>().is_ok());
            assert_eq!(header.store_host, broker.addr.to_string());
            let props = Properties::decode(header.properties.as_deref().unwrap_or(""));
            assert_eq!(props.get(keys::CORRELATION_ID), Some(correlation.as_str()));
            assert_eq!(
                props.get(keys::REPLY_TO_CLIENT),
                Some(requester_id.as_str())
            );
            assert!(props.contains(keys::PUSH_REPLY_TIME));
            seen.insert(pushed_shards(&broker, &correlation).await);
            requesters.push(requester);
            if shards > 1 && seen.contains(&(0, 1)) && seen.contains(&(1, 0)) {
                break;
            }
        }
        if shards > 1 {
            assert!(
                seen.contains(&(0, 1)) && seen.contains(&(1, 0)),
                "pushes did not cross shards both ways: {seen:?}"
            );
        }
        // Every reply is stored in the reply topic (queue 0 of 1), once.
        let stored = pull_all(&requesters[0], &reply_topic(), 0).await;
        assert_eq!(stored.len(), requesters.len());
        for (attempt, record) in stored.iter().enumerate() {
            let id = format!("requester@{attempt}");
            assert_eq!(
                record.properties.get(keys::REPLY_TO_CLIENT),
                Some(id.as_str())
            );
        }
    });
}

#[test]
fn reply_round_trip_1_shard() {
    reply_round_trip(1);
}

#[test]
fn reply_round_trip_2_shards_across_shards() {
    reply_round_trip(2);
}

fn reply_errors(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let responder = broker.client();
        // Nobody registered as requester@gone.
        let reply = call(&responder, reply_request("requester@gone", "c-gone", "x")).await;
        assert_code(&reply, ResponseCode::SystemError);
        let remark = reply.remark.clone().unwrap_or_default();
        assert_eq!(
            remark,
            "push reply message fail, channel of <requester@gone> not found."
        );
        // A requester that registered and then went away.
        let (requester, _inbox) = answering_client(broker.addr);
        let joined = call(&requester, producer_heartbeat("requester@left")).await;
        assert_code(&joined, ResponseCode::Success);
        requester.close();
        // Whether the close already reached the control shard (channel not found) or the push
        // finds the connection closed: SYSTEM_ERROR naming the requester, never SUCCESS.
        let reply = call(&responder, reply_request("requester@left", "c-left", "y")).await;
        assert_code(&reply, ResponseCode::SystemError);
        let remark = reply.remark.clone().unwrap_or_default();
        assert!(remark.contains("requester@left"), "{remark}");
        // No REPLY_TO_CLIENT at all.
        let mut header_props = Properties::new();
        header_props
            .insert(keys::MSG_TYPE, keys::MSG_TYPE_REPLY)
            .expect("prop");
        let header = common::send_header(&reply_topic(), 0, &header_props);
        let request = send_request(
            RequestCode::SendReplyMessage,
            &header,
            Bytes::from_static(b"z"),
        );
        let reply = call(&responder, request).await;
        assert_code(&reply, ResponseCode::SystemError);
        assert_eq!(
            reply.remark.as_deref(),
            Some("reply message properties[REPLY_TO_CLIENT] is null")
        );
        // Nothing was stored in the reply topic.
        let reader = broker.client();
        assert!(pull_all(&reader, &reply_topic(), 0).await.is_empty());
    });
}

#[test]
fn reply_errors_1_shard() {
    reply_errors(1);
}

#[test]
fn reply_errors_2_shards() {
    reply_errors(2);
}

// ---- consumer status ----

/// A consumer client answering GET_CONSUMER_STATUS_FROM_CLIENT with `answer` (its offsets of
/// the asked topic, or a refusal when `None`).
fn status_client(addr: std::net::SocketAddr, answer: Option<(String, i64)>) -> RemotingClient {
    RemotingClient::with_request_callback(
        addr.to_string(),
        ClientConfig::default(),
        Rc::new(move |_ctx, request: RemotingCommand| {
            if request.request_code() != RequestCode::GetConsumerStatusFromClient {
                return None;
            }
            let Some((broker, offset)) = answer.clone() else {
                return Some(
                    RemotingCommand::response_to(&request, ResponseCode::SystemError)
                        .with_remark("no such consumer"),
                );
            };
            let topic = request.ext("topic").unwrap_or_default().to_owned();
            let mut body = GetConsumerStatusBody::default();
            for queue in 0..QUEUES {
                let mq = MessageQueue::new(topic.as_str(), broker.as_str(), queue);
                body.message_queue_table
                    .insert(mq, offset + i64::from(queue));
            }
            Some(
                RemotingCommand::response_to(&request, ResponseCode::Success)
                    .with_body(body.to_json()),
            )
        }),
    )
}

fn status_request(topic: &str, group: &str, only: Option<&str>) -> RemotingCommand {
    let header = GetConsumerStatusRequestHeader {
        topic: topic.into(),
        group: group.into(),
        client_addr: only.map(str::to_owned),
    };
    RemotingCommand::request(
        RequestCode::InvokeBrokerToGetConsumerStatus,
        header.to_ext(),
    )
}

fn consumer_status_asks_each_member(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "StatusTopic";
        let group = "status_group";
        create_topic(&client, topic, QUEUES, 6).await;
        let answering = status_client(broker.addr, Some((BROKER_NAME.to_owned(), 10)));
        let refusing = status_client(broker.addr, None);
        for (member, id) in [(&answering, "answering@1"), (&refusing, "refusing@1")] {
            let joined = call(member, heartbeat_request(id, group, topic, "*")).await;
            assert_code(&joined, ResponseCode::Success);
        }

        let reply = call(&client, status_request(topic, group, None)).await;
        assert_code(&reply, ResponseCode::Success);
        let body = GetConsumerStatusBody::from_json(&reply.body).expect("status body");
        assert_eq!(
            body.consumer_table.keys().collect::<Vec<_>>(),
            ["answering@1"],
            "a refusing member is left out"
        );
        let table = &body.consumer_table["answering@1"];
        assert_eq!(table.len(), QUEUES as usize);
        assert_eq!(
            table.get(&MessageQueue::new(topic, BROKER_NAME, 3)),
            Some(&13)
        );

        let reply = call(&client, status_request(topic, group, Some("refusing@1"))).await;
        assert_code(&reply, ResponseCode::Success);
        let body = GetConsumerStatusBody::from_json(&reply.body).expect("status body");
        assert!(
            body.consumer_table.is_empty(),
            "only the named member is asked"
        );

        let reply = call(&client, status_request(topic, "nobody_group", None)).await;
        assert_code(&reply, ResponseCode::SystemError);
        assert_eq!(
            reply.remark.as_deref(),
            Some("No Any Consumer online in the consumer group: [nobody_group]")
        );

        // The CLI runs on its own thread: this runtime must keep answering for the members.
        let args = vec![
            "admin".to_owned(),
            "consumer-status".into(),
            "-n".into(),
            broker.namesrv.to_string(),
            "-t".into(),
            topic.into(),
            "-g".into(),
            group.into(),
            "--json".into(),
        ];
        let cli = std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_rmq"))
                .args(args)
                .output()
                .expect("rmq admin runs")
        });
        let finished = eventually(Duration::from_secs(30), || cli.is_finished()).await;
        assert!(finished, "rmq admin consumer-status did not finish");
        let output = cli.join().expect("CLI thread");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON rows");
        let rows = rows.as_array().expect("array");
        assert_eq!(rows.len(), QUEUES as usize);
        assert!(rows.iter().all(|r| r["clientId"] == "answering@1"));
        assert_eq!(rows[0]["offset"], 10);
    });
}

#[test]
fn consumer_status_asks_each_member_1_shard() {
    consumer_status_asks_each_member(1);
}

#[test]
fn consumer_status_asks_each_member_2_shards() {
    consumer_status_asks_each_member(2);
}
