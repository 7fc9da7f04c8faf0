//! Black-box tests of client management and route registration, each with 1 and 2 shards:
//! HEART_BEAT, GET_CONSUMER_LIST_BY_GROUP, NOTIFY_CONSUMER_IDS_CHANGED on join and on close,
//! pulls filtered by the heartbeat-registered subscription, and the routes the broker
//! registers with the NameServer after `rmq admin update-topic`, auto-create and
//! `rmq admin delete-topic` (PROTOCOL.md §4.6, §4.10).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    assert_code, await_route, block_on, call, create_topic, eventually, heartbeat_request,
    properties, pull, recording_client, send_v2, Broker, Inbox, PullSpec, BROKER_NAME,
    CLUSTER_NAME,
};
use rmq_net::codec::body::client::GetConsumerListByGroupResponseBody;
use rmq_net::codec::body::heartbeat::HeartbeatData;
use rmq_net::codec::body::route::{ClusterInfo, TopicRouteData};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::client::{
    GetConsumerListByGroupRequestHeader, HeartbeatResponseHeader, UnregisterClientRequestHeader,
};
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::conn::RemotingClient;
use rmq_net::{ExtFields, RemotingCommand};

/// How long a test waits for an asynchronous effect (a notify, a registration).
const SETTLE: Duration = Duration::from_secs(5);

fn consumer_list_request(group: &str) -> RemotingCommand {
    let header = GetConsumerListByGroupRequestHeader {
        consumer_group: group.into(),
    };
    RemotingCommand::request(RequestCode::GetConsumerListByGroup, header.to_ext())
}

async fn consumer_ids(client: &RemotingClient, group: &str) -> Vec<String> {
    let reply = call(client, consumer_list_request(group)).await;
    assert_code(&reply, ResponseCode::Success);
    let mut ids = GetConsumerListByGroupResponseBody::from_json(&reply.body)
        .expect("consumer list body")
        .consumer_id_list;
    ids.sort();
    ids
}

/// NOTIFY_CONSUMER_IDS_CHANGED requests for `group` in `inbox`; every one must be oneway.
fn notifications(inbox: &Inbox, group: &str) -> usize {
    inbox
        .borrow()
        .iter()
        .filter(|r| r.request_code() == RequestCode::NotifyConsumerIdsChanged)
        .inspect(|r| {
            assert!(r.is_oneway(), "notify is oneway");
            assert_eq!(r.ext("consumerGroup"), Some(group));
        })
        .count()
}

fn heartbeat_membership_and_notify(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let admin = broker.client();
        let (topic, group) = ("Members", "MG");
        create_topic(&admin, topic, 4, 6).await;

        for queue_id in 0..4 {
            for tag in ["TagB", "TagA"] {
                let reply = send_v2(
                    &admin,
                    topic,
                    queue_id,
                    tag.as_bytes(),
                    &properties(Some(tag), None, None),
                )
                .await;
                assert_code(&reply, ResponseCode::Success);
            }
        }

        let (first, first_inbox) = recording_client(broker.addr);
        let reply = call(
            &first,
            heartbeat_request("10.0.0.1@A", group, topic, "TagA"),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        let header = HeartbeatResponseHeader::decode_command(&reply).expect("heartbeat header");
        assert!(header.is_support_heart_beat_v2);
        // Once the heartbeat is answered, pulls without a subscription use the registered one
        // (TagA) on every queue, whichever shard owns it.
        for queue_id in 0..4 {
            let spec = PullSpec {
                group,
                sys_flag: 0,
                subscription: None,
                ..PullSpec::new(topic, queue_id, 0)
            };
            let reply = pull(&admin, &spec).await;
            assert_eq!(reply.code, ResponseCode::Success, "queue {queue_id}");
            let tags: Vec<_> = reply.records.iter().map(|r| r.properties.tags()).collect();
            assert_eq!(
                tags,
                [Some("TagA")],
                "queue {queue_id}: filtered by the heartbeat's TagA"
            );
            assert_eq!(reply.header.next_begin_offset, 2);
        }
        // ... and the group's retry topic exists.
        let retry = format!("%RETRY%{group}");
        let reply = pull(&admin, &PullSpec::new(&retry, 0, 0)).await;
        assert_eq!(
            reply.code,
            ResponseCode::PullNotFound,
            "{retry} exists and is empty"
        );

        assert_eq!(consumer_ids(&admin, group).await, ["10.0.0.1@A"]);
        // A producer-only heartbeat is accepted too.
        let mut producer = heartbeat_request("10.0.0.9@P", group, topic, "*");
        let mut data = HeartbeatData::from_json(&producer.body).expect("body");
        data.consumer_data_set.clear();
        producer.body = data.to_json().into();
        assert_code(&call(&admin, producer).await, ResponseCode::Success);
        assert_eq!(
            consumer_ids(&admin, group).await,
            ["10.0.0.1@A"],
            "producers are not consumers"
        );

        // A heartbeat body that is not JSON is an error reply, not a dropped connection.
        let bad = RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new())
            .with_body(&b"not json"[..]);
        assert_code(&call(&admin, bad).await, ResponseCode::SystemError);

        // Wait for the first member's own notifications to settle; a repeated heartbeat of
        // the same member (only its subVersion is newer) changes nothing, so no notify.
        compio::time::sleep(Duration::from_millis(200)).await;
        let before = notifications(&first_inbox, group);
        let reply = call(
            &first,
            heartbeat_request("10.0.0.1@A", group, topic, "TagA"),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        compio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            notifications(&first_inbox, group),
            before,
            "unchanged membership: no notify"
        );

        // A second consumer joins.
        let (second, _second_inbox) = recording_client(broker.addr);
        let reply = call(
            &second,
            heartbeat_request("10.0.0.2@B", group, topic, "TagA"),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        assert!(
            eventually(SETTLE, || notifications(&first_inbox, group) > before).await,
            "the first consumer is told the membership changed"
        );
        assert_eq!(
            consumer_ids(&admin, group).await,
            ["10.0.0.1@A", "10.0.0.2@B"]
        );

        // The second consumer's connection closes: notified again, and it leaves the list.
        compio::time::sleep(Duration::from_millis(200)).await;
        let before = notifications(&first_inbox, group);
        second.close();
        assert!(
            eventually(SETTLE, || notifications(&first_inbox, group) > before).await,
            "the first consumer is told the second left"
        );
        assert_eq!(consumer_ids(&admin, group).await, ["10.0.0.1@A"]);

        // A third consumer joins, then leaves with UNREGISTER_CLIENT on a live connection.
        let third = broker.client();
        let reply = call(
            &third,
            heartbeat_request("10.0.0.3@C", group, topic, "TagA"),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        assert_eq!(
            consumer_ids(&admin, group).await,
            ["10.0.0.1@A", "10.0.0.3@C"]
        );
        compio::time::sleep(Duration::from_millis(200)).await;
        let before = notifications(&first_inbox, group);
        let header = UnregisterClientRequestHeader {
            client_id: "10.0.0.3@C".into(),
            producer_group: None,
            consumer_group: Some(group.into()),
        };
        let reply = call(
            &third,
            RemotingCommand::request(RequestCode::UnregisterClient, header.to_ext()),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        assert!(
            eventually(SETTLE, || notifications(&first_inbox, group) > before).await,
            "the first consumer is told the third unregistered"
        );
        assert_eq!(consumer_ids(&admin, group).await, ["10.0.0.1@A"]);

        // A group without consumers.
        let reply = call(&admin, consumer_list_request("NobodyHere")).await;
        assert_code(&reply, ResponseCode::SystemError);
        assert!(reply
            .remark
            .unwrap_or_default()
            .contains("no consumer for this group"));
    });
}

#[test]
fn heartbeat_membership_and_notify_1_shard() {
    heartbeat_membership_and_notify(1);
}

#[test]
fn heartbeat_membership_and_notify_2_shards() {
    heartbeat_membership_and_notify(2);
}

fn rmq_admin(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .arg("admin")
        .args(args)
        .output()
        .expect("run rmq admin");
    assert!(
        output.status.success(),
        "rmq admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn queues_of(route: &TopicRouteData) -> (i32, i32, i32) {
    assert_eq!(route.queue_datas.len(), 1);
    let queues = &route.queue_datas[0];
    assert_eq!(queues.broker_name, BROKER_NAME);
    (queues.read_queue_nums, queues.write_queue_nums, queues.perm)
}

fn route_registration(shards: usize) {
    let broker = Broker::start(shards, "");
    let namesrv_addr = broker.namesrv.to_string();
    let broker_addr = broker.addr.to_string();
    // The broker registers at start: the cluster lists it.
    block_on(async {
        let namesrv = broker.namesrv_client();
        let mut registered = false;
        for _ in 0..250 {
            let reply = call(
                &namesrv,
                RemotingCommand::request(RequestCode::GetBrokerClusterInfo, ExtFields::new()),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let info = ClusterInfo::from_json(&reply.body).expect("cluster info");
            if let Some(data) = info.broker_addr_table.get(BROKER_NAME) {
                assert_eq!(data.broker_addrs.get(&0), Some(&broker_addr));
                assert!(info.cluster_addr_table[CLUSTER_NAME].contains(BROKER_NAME));
                registered = true;
                break;
            }
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(registered, "broker registered with the NameServer");
    });

    rmq_admin(&[
        "update-topic",
        "-n",
        &namesrv_addr,
        "-t",
        "RouteT",
        "-r",
        "4",
        "-w",
        "4",
        "-p",
        "6",
    ]);
    block_on(async {
        let namesrv = broker.namesrv_client();
        let route = await_route(&namesrv, "RouteT", Option::is_some)
            .await
            .expect("route");
        assert_eq!(route.broker_datas.len(), 1);
        let data = &route.broker_datas[0];
        assert_eq!(data.broker_name, BROKER_NAME);
        assert_eq!(data.cluster, CLUSTER_NAME);
        assert_eq!(data.broker_addrs.get(&0), Some(&broker_addr));
        assert_eq!(queues_of(&route), (4, 4, 6));
    });

    // An update is registered too.
    rmq_admin(&[
        "update-topic",
        "-n",
        &namesrv_addr,
        "-t",
        "RouteT",
        "-r",
        "8",
        "-w",
        "8",
        "-p",
        "4",
    ]);
    block_on(async {
        let namesrv = broker.namesrv_client();
        await_route(&namesrv, "RouteT", |r| {
            r.as_ref().is_some_and(|r| queues_of(r) == (8, 8, 4))
        })
        .await;

        // Auto-created by a send: min(defaultTopicQueueNums 4, TBW102's 8) queues, perm 6.
        let client = broker.client();
        let reply = send_v2(&client, "AutoT", -1, b"auto", &properties(None, None, None)).await;
        assert_code(&reply, ResponseCode::Success);
        let route = await_route(&namesrv, "AutoT", Option::is_some)
            .await
            .expect("route");
        assert_eq!(queues_of(&route), (4, 4, 6));
    });

    rmq_admin(&["delete-topic", "-n", &namesrv_addr, "-t", "RouteT"]);
    block_on(async {
        let namesrv = broker.namesrv_client();
        await_route(&namesrv, "RouteT", Option::is_none).await;
        // The broker forgot it too: a pull says the topic does not exist.
        let reply = call(&broker.client(), PullSpec::new("RouteT", 0, 0).request()).await;
        assert_code(&reply, ResponseCode::TopicNotExist);
    });
}

#[test]
fn route_registration_1_shard() {
    route_registration(1);
}

#[test]
fn route_registration_2_shards() {
    route_registration(2);
}
