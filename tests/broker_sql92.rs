//! SQL92 property filtering against the built broker, with 1 and 2 shards: pulls with the
//! expression in the header and from the heartbeat registry return only matching messages and
//! advance `nextBeginOffset` past the rest; a held pull wakes for a matching message only;
//! CHECK_CLIENT_CONFIG answers; with `enablePropertyFilter` off both get Java's refusal.

mod common;

use std::time::Duration;

use common::{
    assert_code, block_on, call, create_topic, heartbeat_request, now_ms, properties, pulled,
    send_v2, Broker, Pulled,
};
use rmq_net::codec::body::client::CheckClientRequestBody;
use rmq_net::codec::body::heartbeat::HeartbeatData;
use rmq_net::codec::body::subscription::{SubscriptionData, EXPRESSION_TYPE_SQL92};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::pull::{PullMessageRequestHeader, PullSysFlag};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::MessageRecord;
use rmq_net::conn::RemotingClient;
use rmq_net::{ExtFields, RemotingCommand};

const TOPIC: &str = "SqlTopic";
const GROUP: &str = "SqlGroup";
const QUEUES: i32 = 2;
const MESSAGES: i64 = 100;
const ON: &str = "enablePropertyFilter=true\n";

/// A SQL92 pull; `expression` travels in the header (SUBSCRIPTION flag) when given, else the
/// broker takes the group's registered subscription.
fn sql_pull(
    queue_id: i32,
    offset: i64,
    max: i32,
    expression: Option<&str>,
    suspend_ms: i64,
) -> RemotingCommand {
    let header = PullMessageRequestHeader {
        consumer_group: GROUP.into(),
        topic: TOPIC.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: max,
        sys_flag: PullSysFlag::build(false, suspend_ms > 0, expression.is_some(), false).0,
        commit_offset: 0,
        suspend_timeout_millis: suspend_ms,
        subscription: expression.map(str::to_owned),
        sub_version: 0,
        expression_type: Some(EXPRESSION_TYPE_SQL92.into()),
        max_msg_bytes: None,
        request_source: None,
        proxy_froward_client_id: None,
    };
    RemotingCommand::request(RequestCode::PullMessage, header.to_ext())
}

async fn pull_sql(
    client: &RemotingClient,
    queue_id: i32,
    offset: i64,
    max: i32,
    expression: Option<&str>,
) -> Pulled {
    pulled(&call(client, sql_pull(queue_id, offset, max, expression, 0)).await)
}

fn numbers(records: &[MessageRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r.properties.get("n").expect("n").parse().expect("number"))
        .collect()
}

/// Sends `MESSAGES` messages to every queue with properties `n` = 0.. and `color`.
async fn fill(client: &RemotingClient) {
    create_topic(client, TOPIC, QUEUES, 6).await;
    for queue_id in 0..QUEUES {
        for n in 0..MESSAGES {
            let mut props = properties(Some(if n % 2 == 0 { "even" } else { "odd" }), None, None);
            props.insert("n", n.to_string()).expect("n");
            if n % 10 == 0 {
                props.insert("color", "red").expect("color");
            }
            assert_code(
                &send_v2(client, TOPIC, queue_id, b"m", &props).await,
                ResponseCode::Success,
            );
        }
    }
}

fn check_request(expression_type: &str, expression: &str) -> RemotingCommand {
    let mut subscription = SubscriptionData::new_tag(TOPIC, "*", now_ms());
    subscription.expression_type = expression_type.into();
    subscription.sub_string = expression.into();
    let body = CheckClientRequestBody {
        client_id: "127.0.0.1@sql".into(),
        group: GROUP.into(),
        namespace: None,
        subscription_data: Some(subscription),
    };
    RemotingCommand::request(RequestCode::CheckClientConfig, ExtFields::new())
        .with_body(body.to_json())
}

fn filtered_pulls(shards: usize) {
    let broker = Broker::start(shards, ON);
    block_on(async {
        let client = broker.client();
        fill(&client).await;
        for queue_id in 0..QUEUES {
            // One pull scans the whole (short) queue: only matches, next past everything.
            let all = pull_sql(&client, queue_id, 0, 32, Some("n >= 95 OR n = 5")).await;
            assert_eq!(all.code, ResponseCode::Success);
            assert_eq!(numbers(&all.records), [5, 95, 96, 97, 98, 99]);
            assert_eq!(all.header.next_begin_offset, MESSAGES);
            assert!(all.records.iter().all(|r| r.queue_id == queue_id));
            // Count-limited: next is the first match not returned.
            let two = pull_sql(&client, queue_id, 0, 2, Some("n >= 95 OR n = 5")).await;
            assert_eq!(numbers(&two.records), [5, 95]);
            assert_eq!(two.header.next_begin_offset, 96);
            let rest = pull_sql(&client, queue_id, 96, 32, Some("n >= 95 OR n = 5")).await;
            assert_eq!(numbers(&rest.records), [96, 97, 98, 99]);
            // Offsets in the records are the queue offsets.
            assert_eq!(rest.records[0].queue_offset, 96);
            // Nothing matches: PULL_RETRY_IMMEDIATELY, moved past the scanned messages.
            let none = pull_sql(&client, queue_id, 0, 32, Some("n > 1000")).await;
            assert_eq!(none.code, ResponseCode::PullRetryImmediately);
            assert_eq!(none.header.next_begin_offset, MESSAGES);
            // Caught up.
            let end = pull_sql(&client, queue_id, MESSAGES, 32, Some("n > 1")).await;
            assert_eq!(end.code, ResponseCode::PullNotFound);
            // Missing properties and TAGS.
            let red = pull_sql(
                &client,
                queue_id,
                0,
                32,
                Some("color = 'red' AND TAGS = 'even' AND n BETWEEN 20 AND 40"),
            )
            .await;
            assert_eq!(numbers(&red.records), [20, 30, 40]);
            let uncolored = pull_sql(&client, queue_id, 0, 3, Some("color IS NULL")).await;
            assert_eq!(numbers(&uncolored.records), [1, 2, 3]);
            let not_red = pull_sql(&client, queue_id, 0, 3, Some("color <> 'red'")).await;
            assert_eq!(
                not_red.code,
                ResponseCode::PullRetryImmediately,
                "a missing property never matches <>"
            );
            let mismatch = pull_sql(&client, queue_id, 0, 3, Some("TAGS > 5 OR n = 7")).await;
            assert_eq!(
                mismatch.code,
                ResponseCode::PullRetryImmediately,
                "a conversion error is no match"
            );
            // Bad syntax from the header.
            let bad = call(&client, sql_pull(queue_id, 0, 32, Some("n >"), 0)).await;
            assert_code(&bad, ResponseCode::SubscriptionParseFailed);
        }
        // The registry path: a heartbeat with the SQL92 subscription, pulls without one.
        let mut heartbeat =
            HeartbeatData::from_json(&heartbeat_request("127.0.0.1@sql", GROUP, TOPIC, "*").body)
                .expect("heartbeat");
        let subscription = &mut heartbeat.consumer_data_set[0].subscription_data_set[0];
        subscription.expression_type = EXPRESSION_TYPE_SQL92.into();
        subscription.sub_string = "n IN ('3', '33') OR n = 77".into();
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new())
                .with_body(heartbeat.to_json()),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        for queue_id in 0..QUEUES {
            let registered = pull_sql(&client, queue_id, 0, 32, None).await;
            assert_eq!(
                registered.code,
                ResponseCode::Success,
                "{:?}",
                registered.header
            );
            assert_eq!(numbers(&registered.records), [3, 33, 77]);
        }
        // CHECK_CLIENT_CONFIG.
        assert_code(
            &call(&client, check_request("SQL92", "a > 1 AND b IN ('x')")).await,
            ResponseCode::Success,
        );
        assert_code(
            &call(&client, check_request("TAG", "whatever ||")).await,
            ResponseCode::Success,
        );
        let bad = call(&client, check_request("SQL92", "a >")).await;
        assert_code(&bad, ResponseCode::SubscriptionParseFailed);
        assert!(
            bad.remark
                .as_deref()
                .is_some_and(|r| r.contains("Invalid MessageSelector")),
            "{:?}",
            bad.remark
        );
        let bad = call(&client, check_request("SQL92", "a > 'x'")).await;
        assert_code(&bad, ResponseCode::SubscriptionParseFailed);
    });
}

#[test]
fn filtered_pulls_one_shard() {
    filtered_pulls(1);
}

#[test]
fn filtered_pulls_two_shards() {
    filtered_pulls(2);
}

#[test]
fn a_held_pull_wakes_for_a_matching_message_only() {
    for shards in [1, 2] {
        let broker = Broker::start(shards, ON);
        block_on(async {
            let client = broker.client();
            create_topic(&client, TOPIC, QUEUES, 6).await;
            for queue_id in 0..QUEUES {
                let request = sql_pull(queue_id, 0, 32, Some("n = 1000"), 5000);
                let held = client.clone();
                let mut task = compio::runtime::spawn(async move {
                    held.invoke(request, Duration::from_secs(10)).await
                });
                compio::time::sleep(Duration::from_millis(200)).await;
                for n in [1, 2, 1000] {
                    let mut props = properties(None, None, None);
                    props.insert("n", n.to_string()).expect("n");
                    assert_code(
                        &send_v2(&client, TOPIC, queue_id, b"m", &props).await,
                        ResponseCode::Success,
                    );
                    if n != 1000 {
                        compio::time::sleep(Duration::from_millis(100)).await;
                        assert!(!task.is_finished(), "shards={shards} queue {queue_id}: a non-matching message does not answer the held pull");
                    }
                }
                let reply = compio::time::timeout(Duration::from_secs(8), &mut task)
                    .await
                    .expect("answered")
                    .expect("task")
                    .expect("reply");
                let reply = pulled(&reply);
                assert_eq!(reply.code, ResponseCode::Success);
                assert_eq!(numbers(&reply.records), [1000]);
                assert_eq!(reply.header.next_begin_offset, 3);
            }
        });
    }
}

#[test]
fn filtering_disabled_gets_javas_refusal() {
    let broker = Broker::start(1, "");
    block_on(async {
        let client = broker.client();
        fill(&client).await;
        let refused = call(&client, sql_pull(0, 0, 32, Some("n > 1"), 0)).await;
        assert_code(&refused, ResponseCode::SystemError);
        assert_eq!(
            refused.remark.as_deref(),
            Some("The broker does not support consumer to filter message by SQL92")
        );
        let check = call(&client, check_request("SQL92", "n > 1")).await;
        assert_code(&check, ResponseCode::SystemError);
        assert_eq!(
            check.remark.as_deref(),
            Some("The broker does not support consumer to filter message by SQL92")
        );
        assert_code(
            &call(&client, check_request("TAG", "*")).await,
            ResponseCode::Success,
        );
        // Tag pulls are unaffected.
        let reply = call(&client, common::PullSpec::new(TOPIC, 0, 0).request()).await;
        assert_code(&reply, ResponseCode::Success);
    });
}

#[test]
fn a_held_pull_that_sees_only_rejected_messages_ends_caught_up_past_them() {
    let broker = Broker::start(2, ON);
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, QUEUES, 6).await;
        for queue_id in 0..QUEUES {
            let request = sql_pull(queue_id, 0, 32, Some("n = 1000"), 1500);
            let held = client.clone();
            let task = compio::runtime::spawn(async move {
                held.invoke(request, Duration::from_secs(10)).await
            });
            compio::time::sleep(Duration::from_millis(200)).await;
            let mut props = properties(None, None, None);
            props.insert("n", "1").expect("n");
            assert_code(
                &send_v2(&client, TOPIC, queue_id, b"m", &props).await,
                ResponseCode::Success,
            );
            let reply = task.await.expect("task").expect("reply");
            let reply = pulled(&reply);
            assert_eq!(
                reply.code,
                ResponseCode::PullNotFound,
                "queue {queue_id}: answered at the hold's end as caught up"
            );
            assert!(reply.records.is_empty());
            assert_eq!(
                reply.header.next_begin_offset, 1,
                "queue {queue_id}: past the rejected message"
            );
        }
    });
}
