//! Black-box tests of failed-message handling, each with 1 and 2 shards (PROTOCOL.md §4.1
//! steps 5 and 8, §4.2, §7.4): a `DELAY` message is held in the schedule and then delivered
//! to its topic with its body and properties; CONSUMER_SEND_MSG_BACK puts a pulled message in
//! `%RETRY%<group>` after the retry delay, and in `%DLQ%<group>` once its retries are used
//! up; a retry-topic send past its `maxReconsumeTimes` lands in the DLQ; a pending delay
//! survives a SIGKILL and restart, and delivered levels are not delivered again.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{
    assert_code, block_on, call, create_and_wait_within, props, pull, pull_all, send_header,
    send_request, send_v2, sent, shard_of_offset, Broker, PullSpec,
};
use rmq::runtime::placement::shard_for;
use rmq::tables::topics::{dlq_topic, retry_topic, SCHEDULE_TOPIC};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::send::ConsumerSendMsgBackRequestHeader;
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::{encode_batch, keys, msg_id, BatchEntry, MessageRecord, Properties};
use rmq_net::conn::RemotingClient;

/// Short levels keep the test fast: level 1 = 1 s, 2 = 2 s, 3 = 3 s (the highest).
const EXTRA_CONF: &str = "messageDelayLevel=1s 2s 3s\nflushDiskType=SYNC_FLUSH";
/// Longest wait for a delayed message (the longest level is 3 s).
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(20);
/// Consumer group of the send-back tests.
const GROUP: &str = "GRetry";

/// A topic whose queue 0 is owned by a different shard than schedule level `level`'s queue
/// when there are several shards, so delivery crosses the mesh.
fn cross_shard_topic(prefix: &str, level: i32, shards: usize) -> String {
    let schedule_owner = shard_for(SCHEDULE_TOPIC, level - 1, shards);
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|topic| shards == 1 || shard_for(topic, 0, shards) != schedule_owner)
        .expect("some name lands elsewhere")
}

/// Creates `topic` (4 queues) and waits until every shard serves pulls of it.
async fn create_and_wait(client: &RemotingClient, topic: &str) {
    create_and_wait_within(client, topic, 4, Duration::from_secs(5)).await;
}

/// Asserts `topic`/`queue_id` holds nothing yet (an unknown topic counts as empty).
async fn assert_empty(client: &RemotingClient, topic: &str, queue_id: i32) {
    let reply = pull(client, &PullSpec::new(topic, queue_id, 0)).await;
    match reply.code {
        ResponseCode::PullNotFound => assert_eq!(reply.header.max_offset, 0, "{topic} empty"),
        ResponseCode::TopicNotExist => {}
        other => panic!("{topic}/{queue_id} must be empty, got {other:?}"),
    }
}

/// Pulls `topic`/`queue_id` from offset 0 until a message is there; returns the messages of
/// that first successful pull.
async fn wait_for_messages(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
) -> Vec<MessageRecord> {
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    loop {
        let reply = pull(client, &PullSpec::new(topic, queue_id, 0)).await;
        match reply.code {
            ResponseCode::Success => return reply.records,
            ResponseCode::PullNotFound | ResponseCode::TopicNotExist => {}
            other => panic!("pull {topic}/{queue_id}: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived in {topic}/{queue_id} within {DELIVERY_WAIT_MAX:?}"
        );
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send_back_request(
    offset: i64,
    group: &str,
    delay_level: i32,
    origin_topic: &str,
    max_reconsume_times: i32,
) -> rmq_net::RemotingCommand {
    let header = ConsumerSendMsgBackRequestHeader {
        offset,
        group: group.into(),
        delay_level,
        origin_msg_id: None,
        origin_topic: Some(origin_topic.into()),
        unit_mode: false,
        max_reconsume_times: Some(max_reconsume_times),
        broker_name: None,
    };
    rmq_net::RemotingCommand::request(RequestCode::ConsumerSendMsgBack, header.to_ext())
}

/// DELAY=1 is held about a second, then arrives with its body and properties; DELAY past
/// the highest level waits the highest level; a batch may not carry DELAY.
async fn delayed_messages(broker: &Broker, client: &RemotingClient) -> MessageRecord {
    let topic = cross_shard_topic("Delayed", 1, broker.shards);
    create_and_wait(client, &topic).await;
    let body = b"delayed body".as_slice();
    let properties = props(&[
        (keys::TAGS, "TagD"),
        (keys::KEYS, "kd"),
        ("user", "42"),
        (keys::DELAY, "1"),
    ]);
    let started = Instant::now();
    let reply = send_v2(client, &topic, 0, body, &properties).await;
    let capped = send_v2(client, &topic, 1, b"capped", &props(&[(keys::DELAY, "9")])).await;
    let sent_delayed = sent(&reply, body);
    sent(&capped, b"capped");
    assert_eq!(
        sent_delayed.header.queue_id, 0,
        "the reply names the real queue"
    );
    let (host, schedule_offset) = msg_id::decode(&sent_delayed.header.msg_id).expect("msgId");
    assert_eq!(host, broker.addr);
    assert_eq!(
        shard_of_offset(schedule_offset),
        shard_for(SCHEDULE_TOPIC, 0, broker.shards).0 as i64,
        "a delayed message is stored by the shard owning its schedule level"
    );
    assert_empty(client, &topic, 0).await;
    assert_empty(client, &topic, 1).await;

    let records = wait_for_messages(client, &topic, 0).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "delivered after {waited:?}"
    );
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert!(
        record.store_timestamp >= record.born_timestamp + 1_000,
        "re-stored a level delay after it was born"
    );
    assert_eq!(record.topic, topic);
    assert_eq!(record.queue_id, 0);
    assert_eq!(record.queue_offset, 0);
    assert_eq!(record.body, Bytes::from_static(b"delayed body"));
    assert_eq!(record.reconsume_times, 0);
    let p = &record.properties;
    assert_eq!(p.get(keys::TAGS), Some("TagD"));
    assert_eq!(p.get(keys::KEYS), Some("kd"));
    assert_eq!(p.get("user"), Some("42"));
    assert_eq!(
        p.uniq_key(),
        sent_delayed.header.transaction_id.as_deref(),
        "the msgId users see is unchanged"
    );
    assert_eq!(p.get(keys::DELAY), None, "DELAY is removed on delivery");
    assert_eq!(p.get(keys::REAL_TOPIC), Some(topic.as_str()));
    assert_eq!(p.get(keys::REAL_QID), Some("0"));
    assert!(p.get(keys::CLUSTER).is_some());
    // The delivered consume-queue entry carries the tag hash again (not the delivery time).
    let mut tagged = PullSpec::new(&topic, 0, 0);
    tagged.subscription = Some("TagD");
    let by_tag = pull(client, &tagged).await;
    assert_eq!(by_tag.code, ResponseCode::Success);
    assert_eq!(by_tag.records.len(), 1);

    let capped_records = wait_for_messages(client, &topic, 1).await;
    assert_eq!(capped_records.len(), 1);
    let capped = &capped_records[0];
    assert_eq!(capped.body, Bytes::from_static(b"capped"));
    assert!(
        capped.store_timestamp >= capped.born_timestamp + 3_000,
        "DELAY=9 is capped at the highest level (3 s)"
    );

    let entries = vec![BatchEntry {
        flag: 0,
        body: Bytes::from_static(b"b"),
        properties: Properties::new(),
    }];
    let mut batch = BytesMut::new();
    encode_batch(&entries, &mut batch).expect("encode batch");
    let mut header = send_header(&topic, 2, &props(&[(keys::DELAY, "1")]));
    header.batch = Some(true);
    let refused = call(
        client,
        send_request(RequestCode::SendBatchMessage, &header, batch.freeze()),
    )
    .await;
    assert_code(&refused, ResponseCode::MessageIllegal);
    records[0].clone()
}

/// Send-back with delayLevel 0 goes to `%RETRY%<group>` after level 3 + reconsumeTimes (capped
/// at 3 s here); sending the retried message back past maxReconsumeTimes, or with a negative
/// level, goes to `%DLQ%<group>` at once.
async fn send_back(client: &RemotingClient, original: &MessageRecord) {
    let origin_topic = original.topic.as_str();
    let started = Instant::now();
    let reply = call(
        client,
        send_back_request(original.physical_offset, GROUP, 0, origin_topic, 16),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    assert!(reply.ext_fields.is_empty(), "no response header");
    let retry = retry_topic(GROUP);
    assert_empty(client, &retry, 0).await;
    let retried = wait_for_messages(client, &retry, 0).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2_900),
        "retried after {waited:?}"
    );
    assert_eq!(retried.len(), 1);
    let retried = &retried[0];
    let origin_msg_id = msg_id::encode(original.store_host, original.physical_offset);
    assert_eq!(retried.topic, retry);
    assert_eq!(retried.body, original.body);
    assert_eq!(retried.reconsume_times, 1);
    assert_eq!(retried.born_timestamp, original.born_timestamp);
    let p = &retried.properties;
    assert_eq!(p.get(keys::RETRY_TOPIC), Some(origin_topic));
    assert_eq!(p.get(keys::ORIGIN_MESSAGE_ID), Some(origin_msg_id.as_str()));
    assert_eq!(p.uniq_key(), original.properties.uniq_key());
    assert_eq!(p.get(keys::TAGS), Some("TagD"));
    assert_eq!(p.get(keys::DELAY), None);

    // Java clients name the restored topic as originTopic; 1 retry is the limit here.
    let reply = call(
        client,
        send_back_request(retried.physical_offset, GROUP, 0, origin_topic, 1),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    let dlq = dlq_topic(GROUP);
    let dead = wait_for_messages(client, &dlq, 0).await;
    assert_eq!(dead.len(), 1, "no delay on the way to the DLQ");
    let dead = &dead[0];
    assert_eq!(dead.topic, dlq);
    assert_eq!(dead.reconsume_times, 2);
    assert_eq!(dead.body, original.body);
    let p = &dead.properties;
    assert_eq!(p.get(keys::RETRY_TOPIC), Some(origin_topic));
    assert_eq!(p.get(keys::ORIGIN_MESSAGE_ID), Some(origin_msg_id.as_str()));
    assert_eq!(p.get(keys::DELAY), Some("0"));

    let reply = call(
        client,
        send_back_request(original.physical_offset, GROUP, -1, origin_topic, 16),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    let dead = pull_all(client, &dlq, 0).await;
    assert_eq!(dead.len(), 2, "a negative level goes straight to the DLQ");
    assert_eq!(dead[1].reconsume_times, 1);
    assert_eq!(dead[1].body, original.body);

    let unknown_group = call(
        client,
        send_back_request(
            original.physical_offset,
            "no such group",
            0,
            origin_topic,
            16,
        ),
    )
    .await;
    assert_code(&unknown_group, ResponseCode::SubscriptionGroupNotExist);
    let wrong_topic = call(
        client,
        send_back_request(original.physical_offset, GROUP, 0, "OtherTopic", 16),
    )
    .await;
    assert_code(&wrong_topic, ResponseCode::SystemError);
    let nowhere = original.physical_offset + (1 << 40);
    let missing = call(
        client,
        send_back_request(nowhere, GROUP, 0, origin_topic, 16),
    )
    .await;
    assert_code(&missing, ResponseCode::SystemError);
}

/// The client's fallback re-send to `%RETRY%<group>`: past maxReconsumeTimes it lands in the
/// DLQ with DELAY=-1; within it, it goes through the schedule into the retry topic.
async fn retry_topic_sends(client: &RemotingClient) {
    let retry = retry_topic(GROUP);
    let dlq = dlq_topic(GROUP);
    let before_dlq = pull_all(client, &dlq, 0).await.len();
    let before_retry = pull_all(client, &retry, 0).await.len();
    let retry_props = |delay: &str| {
        props(&[
            (keys::RETRY_TOPIC, "Origin"),
            (keys::DELAY, delay),
            (keys::MAX_RECONSUME_TIMES, "2"),
        ])
    };
    let mut header = send_header(&retry, 0, &retry_props("6"));
    header.reconsume_times = Some(3);
    header.max_reconsume_times = Some(2);
    let reply = call(
        client,
        send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::from_static(b"over"),
        ),
    )
    .await;
    sent(&reply, b"over");
    let dead = pull_all(client, &dlq, 0).await;
    assert_eq!(dead.len(), before_dlq + 1, "diverted to the DLQ at once");
    let dead = dead.last().expect("the diverted message");
    assert_eq!(dead.topic, dlq);
    assert_eq!(dead.body, Bytes::from_static(b"over"));
    assert_eq!(dead.reconsume_times, 3);
    assert_eq!(dead.properties.get(keys::DELAY), Some("-1"));
    assert_eq!(dead.properties.get(keys::RETRY_TOPIC), Some("Origin"));

    let mut header = send_header(&retry, 0, &retry_props("1"));
    header.reconsume_times = Some(2);
    header.max_reconsume_times = Some(2);
    let reply = call(
        client,
        send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::from_static(b"within"),
        ),
    )
    .await;
    sent(&reply, b"within");
    assert_eq!(pull_all(client, &dlq, 0).await.len(), before_dlq + 1);
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    let retried = loop {
        let records = pull_all(client, &retry, 0).await;
        if records.len() > before_retry {
            break records;
        }
        assert!(Instant::now() < deadline, "the retry send never arrived");
        compio::time::sleep(Duration::from_millis(50)).await;
    };
    let last = retried.last().expect("the retried message");
    assert_eq!(last.body, Bytes::from_static(b"within"));
    assert_eq!(last.reconsume_times, 2);
    assert!(last.store_timestamp >= last.born_timestamp + 1_000);
}

/// Waits until the shard owning `level` persisted a delivery offset of at least `offset` in
/// its `config/delayOffset-<shard>.json` (Java layout).
async fn wait_for_persisted_level(broker: &Broker, level: i32, offset: i64) {
    let owner = shard_for(SCHEDULE_TOPIC, level - 1, broker.shards);
    let path = broker
        .store_dir()
        .join("config")
        .join(format!("delayOffset-{}.json", owner.0));
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    loop {
        let persisted = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|value| value["offsetTable"][level.to_string()].as_i64());
        if persisted.is_some_and(|persisted| persisted >= offset) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never recorded level {level} at {offset}",
            path.display()
        );
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn failed_message_handling(shards: usize) {
    let mut broker = Broker::start(shards, EXTRA_CONF);
    let (delivered_topic, pending_topic) = block_on(async {
        let client = broker.client();
        let original = delayed_messages(&broker, &client).await;
        send_back(&client, &original).await;
        retry_topic_sends(&client).await;
        // The first delivery (level 1, offset 0) is on disk before the crash below.
        wait_for_persisted_level(&broker, 1, 1).await;
        let pending = cross_shard_topic("Pending", 3, broker.shards);
        create_and_wait(&client, &pending).await;
        let reply = send_v2(
            &client,
            &pending,
            0,
            b"survives",
            &props(&[(keys::DELAY, "3")]),
        )
        .await;
        sent(&reply, b"survives");
        assert_empty(&client, &pending, 0).await;
        (original.topic, pending)
    });
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        let records = wait_for_messages(&client, &pending_topic, 0).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].body, Bytes::from_static(b"survives"));
        assert!(records[0].store_timestamp >= records[0].born_timestamp + 3_000);
        compio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pull_all(&client, &pending_topic, 0).await.len(), 1);
        assert_eq!(
            pull_all(&client, &delivered_topic, 0).await.len(),
            1,
            "a delivery persisted before the restart is not delivered again"
        );
    });
}

#[test]
fn failed_message_handling_with_one_shard() {
    failed_message_handling(1);
}

#[test]
fn failed_message_handling_with_two_shards() {
    failed_message_handling(2);
}
