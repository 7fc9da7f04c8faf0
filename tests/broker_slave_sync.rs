//! A slave's duties against the built binary, each with 1 and 2 shards (with 2, the test
//! topics' queues and the delay levels spread over both, so every table is a real
//! map-reduce and every apply a real scatter):
//!
//! - a master answers GET_ALL_CONSUMER_OFFSET (43) and GET_ALL_DELAY_OFFSET (45) with Java's
//!   bodies, gathered from every shard;
//! - a slave (NameServer, master and slave on loopback, ephemeral ports) copies its master's
//!   topics, subscription groups, consumer offsets and delay offsets as soon as it learns the
//!   master, and follows later changes within its sync period; an offset committed on the
//!   slave gives way to the master's (Java's overwrite), a pull's piggybacked commit is not
//!   stored on a slave, and a slave never moves a consumer's offset (PULL_RETRY_IMMEDIATELY);
//! - `suggestWhichBrokerId` in pull replies: with `slaveReadEnable`, a cold read (a small
//!   `accessMessageInMemoryMaxRatio` makes every read cold) suggests the group's
//!   `whichBrokerWhenConsumeSlowly`, a warm one the group's `brokerId`; without it, 0.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    assert_code, block_on, call, create_topic, offset_of, properties, pull, query_offset_request,
    send_v2, sent, update_offset_request, Broker, PullSpec, Server, TempDir,
};
use rmq::tables::groups::{SubscriptionGroupConfig, SubscriptionGroupWrapper};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::pull::PullSysFlag;
use rmq_net::codec::message::keys;
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};
use serde_json::Value;

/// The slave's `slaveSyncIntervalMillis`: short, so following a change is quick to observe.
const SYNC_INTERVAL_MS: u64 = 500;
/// How long a change may take to reach the slave: the period plus a sync that waits for a
/// busy machine.
const FOLLOW_WAIT: Duration = Duration::from_secs(10);
/// Queues of the test topics (with 2 shards they land on both).
const QUEUES: i32 = 4;

/// A slave of `broker-a` syncing every [`SYNC_INTERVAL_MS`]; `extra` is appended to its
/// broker.conf.
fn start_slave(dir: &TempDir, namesrv: SocketAddr, shards: usize, extra: &str) -> Server {
    let extra = format!("slaveSyncIntervalMillis={SYNC_INTERVAL_MS}\n{extra}");
    common::start_slave(dir, namesrv, 1, shards, &extra, None)
}

fn table_request(code: RequestCode) -> RemotingCommand {
    RemotingCommand::request(code, ExtFields::new())
}

/// A whole-table reply's body as standard JSON (so integer keys must be quoted).
async fn table_json(client: &RemotingClient, code: RequestCode) -> Value {
    let reply = call(client, table_request(code)).await;
    assert_code(&reply, ResponseCode::Success);
    serde_json::from_slice(&reply.body).expect("standard JSON")
}

/// `offsetTable` of GET_ALL_CONSUMER_OFFSET.
async fn consumer_offsets(client: &RemotingClient) -> Value {
    table_json(client, RequestCode::GetAllConsumerOffset).await["offsetTable"].clone()
}

/// `offsetTable` of GET_ALL_DELAY_OFFSET.
async fn delay_offsets(client: &RemotingClient) -> Value {
    table_json(client, RequestCode::GetAllDelayOffset).await["offsetTable"].clone()
}

async fn all_groups(client: &RemotingClient) -> SubscriptionGroupWrapper {
    let reply = call(
        client,
        table_request(RequestCode::GetAllSubscriptionGroupConfig),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    SubscriptionGroupWrapper::from_json(&reply.body).expect("SubscriptionGroupWrapper")
}

async fn create_group(client: &RemotingClient, config: &SubscriptionGroupConfig) {
    let request =
        table_request(RequestCode::UpdateAndCreateSubscriptionGroup).with_body(config.to_json());
    assert_code(&call(client, request).await, ResponseCode::Success);
}

async fn delete_group(client: &RemotingClient, group: &str) {
    let mut ext = ExtFields::new();
    ext.insert("groupName", group);
    let request = RemotingCommand::request(RequestCode::DeleteSubscriptionGroup, ext);
    assert_code(&call(client, request).await, ResponseCode::Success);
}

async fn commit(client: &RemotingClient, group: &str, topic: &str, queue_id: i32, offset: i64) {
    let reply = call(
        client,
        update_offset_request(group, topic, queue_id, offset),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
}

/// The committed offset, or `None` for QUERY_NOT_FOUND.
async fn committed(
    client: &RemotingClient,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> Option<i64> {
    let reply = call(
        client,
        query_offset_request(group, topic, queue_id, Some(false)),
    )
    .await;
    if reply.response_code() == ResponseCode::QueryNotFound {
        return None;
    }
    Some(offset_of(&reply))
}

/// Sends one message with `DELAY=1` to `topic`/0 and waits until the master delivered it
/// (level 1's offset is 1 in GET_ALL_DELAY_OFFSET).
async fn deliver_one_delayed(client: &RemotingClient, topic: &str) {
    let mut props = properties(None, None, None);
    props.insert(keys::DELAY, "1").expect("property");
    sent(
        &send_v2(client, topic, 0, b"delayed", &props).await,
        b"delayed",
    );
    let delivered = poll(Duration::from_secs(15), || async {
        delay_offsets(client).await.get("1") == Some(&Value::from(1))
    })
    .await;
    assert!(
        delivered,
        "level 1 delivered: {}",
        delay_offsets(client).await
    );
}

/// Evaluates `check` every 50 ms until it holds or `limit` passes; returns whether it held.
async fn poll<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- GET_ALL_CONSUMER_OFFSET and GET_ALL_DELAY_OFFSET on a master ------------------------

fn offset_tables_of_a_master(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, "FmtTopic", QUEUES, 6).await;
        let reply = call(&client, table_request(RequestCode::GetAllConsumerOffset)).await;
        assert_code(&reply, ResponseCode::Success);
        let empty: Value = serde_json::from_slice(&reply.body).expect("standard JSON");
        assert_eq!(empty["offsetTable"], serde_json::json!({}));
        assert!(
            empty["dataVersion"]["timestamp"].as_i64().is_some(),
            "{empty}"
        );
        assert_eq!(delay_offsets(&client).await, serde_json::json!({}));

        for queue_id in 0..QUEUES {
            commit(
                &client,
                "FmtGroup",
                "FmtTopic",
                queue_id,
                100 + i64::from(queue_id),
            )
            .await;
        }
        commit(&client, "OtherGroup", "FmtTopic", 1, 7).await;
        let body = table_json(&client, RequestCode::GetAllConsumerOffset).await;
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["dataVersion", "offsetTable"], "Java's field names");
        assert_eq!(
            body["offsetTable"],
            serde_json::json!({
                "FmtTopic@FmtGroup": {"0": 100, "1": 101, "2": 102, "3": 103},
                "FmtTopic@OtherGroup": {"1": 7},
            }),
            "every shard's queues under one topic@group key"
        );
        // The typed reader a slave uses reads the same body.
        let reply = call(&client, table_request(RequestCode::GetAllConsumerOffset)).await;
        let typed =
            rmq_net::codec::body::offsets::ConsumerOffsetSerializeWrapper::from_json(&reply.body)
                .expect("ConsumerOffsetSerializeWrapper");
        assert_eq!(typed.entries(), 5);

        deliver_one_delayed(&client, "FmtTopic").await;
        let body = table_json(&client, RequestCode::GetAllDelayOffset).await;
        assert_eq!(
            body["offsetTable"],
            serde_json::json!({"1": 1}),
            "keyed by delay level"
        );
        assert!(body["dataVersion"].is_object(), "{body}");
    });
}

#[test]
fn offset_tables_of_a_master_1_shard() {
    offset_tables_of_a_master(1);
}

#[test]
fn offset_tables_of_a_master_2_shards() {
    offset_tables_of_a_master(2);
}

// ---- the slave's copy ----------------------------------------------------------------------

const TOPIC: &str = "SyncTopic";
const GROUP: &str = "SyncGroup";

/// Whether the slave's four tables equal the master's (topics and groups whole; offsets by
/// their `offsetTable`).
async fn tables_equal(master: &RemotingClient, slave: &RemotingClient) -> bool {
    let topics = |client: &RemotingClient| {
        let client = client.clone();
        async move {
            let reply = call(&client, table_request(RequestCode::GetAllTopicConfig)).await;
            assert_code(&reply, ResponseCode::Success);
            rmq_net::codec::body::topic::TopicConfigAndMappingSerializeWrapper::from_json(
                &reply.body,
            )
            .expect("topic table")
            .topic_config_table
        }
    };
    topics(master).await == topics(slave).await
        && all_groups(master).await.subscription_group_table
            == all_groups(slave).await.subscription_group_table
        && consumer_offsets(master).await == consumer_offsets(slave).await
        && delay_offsets(master).await == delay_offsets(slave).await
}

fn a_slave_copies_and_follows_its_master(shards: usize) {
    let master = Broker::start(shards, "");
    let slow_group = SubscriptionGroupConfig {
        which_broker_when_consume_slowly: 2,
        ..SubscriptionGroupConfig::new(GROUP)
    };
    block_on(async {
        let client = master.client();
        create_topic(&client, TOPIC, QUEUES, 6).await;
        create_group(&client, &slow_group).await;
        for queue_id in 0..QUEUES {
            commit(&client, GROUP, TOPIC, queue_id, 10 + i64::from(queue_id)).await;
        }
        deliver_one_delayed(&client, TOPIC).await;
    });

    // Every slave read is cold (ratio 0), and slaveReadEnable is on: its pulls suggest the
    // synced group's whichBrokerWhenConsumeSlowly.
    let slave_dir = TempDir::new("slave-sync");
    let slave = start_slave(
        &slave_dir,
        master.namesrv,
        shards,
        "slaveReadEnable=true\naccessMessageInMemoryMaxRatio=0",
    );
    let slave_client =
        RemotingClient::new(slave.addr("broker").to_string(), ClientConfig::default());
    block_on(async {
        let client = master.client();
        let slave = &slave_client;
        // The first copy follows the NameServer's answer, well within one period.
        assert!(
            poll(FOLLOW_WAIT, || tables_equal(&client, slave)).await,
            "the slave copied the master's tables"
        );
        assert!(all_topics_have(slave, TOPIC).await);
        assert_eq!(
            all_groups(slave).await.subscription_group_table.get(GROUP),
            Some(&slow_group)
        );
        for queue_id in 0..QUEUES {
            assert_eq!(
                committed(slave, GROUP, TOPIC, queue_id).await,
                Some(10 + i64::from(queue_id)),
                "queue {queue_id} resumes where the master is"
            );
        }
        assert_eq!(delay_offsets(slave).await, serde_json::json!({"1": 1}));

        // Later changes on the master follow within the period.
        for queue_id in 0..QUEUES {
            commit(&client, GROUP, TOPIC, queue_id, 20 + i64::from(queue_id)).await;
        }
        create_topic(&client, "SyncTopicLater", 2, 6).await;
        create_group(&client, &SubscriptionGroupConfig::new("LaterGroup")).await;
        assert!(
            poll(FOLLOW_WAIT, || tables_equal(&client, slave)).await,
            "the slave follows the master's changes"
        );
        assert_eq!(committed(slave, GROUP, TOPIC, 3).await, Some(23));
        assert!(all_topics_have(slave, "SyncTopicLater").await);

        // A commit made on the slave gives way to the master's (Java overwrites).
        commit(slave, GROUP, TOPIC, 0, 99).await;
        assert_eq!(committed(slave, GROUP, TOPIC, 0).await, Some(99));
        assert!(
            poll(FOLLOW_WAIT, || async {
                committed(slave, GROUP, TOPIC, 0).await == Some(20)
            })
            .await,
            "the master's offset wins at the next sync"
        );

        // Deletions follow too: the group and the topic go on the slave.
        delete_group(&client, "LaterGroup").await;
        let mut ext = ExtFields::new();
        ext.insert("topic", "SyncTopicLater");
        let deleted = call(
            &client,
            RemotingCommand::request(RequestCode::DeleteTopicInBroker, ext),
        )
        .await;
        assert_code(&deleted, ResponseCode::Success);
        assert!(
            poll(FOLLOW_WAIT, || tables_equal(&client, slave)).await,
            "deletions reach the slave"
        );
        assert!(!all_topics_have(slave, "SyncTopicLater").await);
        assert!(!all_groups(slave)
            .await
            .subscription_group_table
            .contains_key("LaterGroup"));
    });
    slave_reads(&master, &slave_client);
}

async fn all_topics_have(client: &RemotingClient, topic: &str) -> bool {
    let reply = call(client, table_request(RequestCode::GetAllTopicConfig)).await;
    assert_code(&reply, ResponseCode::Success);
    rmq_net::codec::body::topic::TopicConfigAndMappingSerializeWrapper::from_json(&reply.body)
        .expect("topic table")
        .topic_config_table
        .contains_key(topic)
}

/// Pulls on the slave (slaveReadEnable, every read cold) after the master's messages reached
/// it: served with the synced group's `whichBrokerWhenConsumeSlowly`; the commit a pull
/// carries is not stored; an offset the slave cannot serve is not moved.
fn slave_reads(master: &Broker, slave: &RemotingClient) {
    block_on(async {
        let client = master.client();
        let props = properties(None, None, None);
        sent(
            &send_v2(&client, TOPIC, 1, b"plain", &props).await,
            b"plain",
        );
        let spec = PullSpec {
            group: GROUP,
            ..PullSpec::new(TOPIC, 1, 0)
        };
        let replicated = poll(FOLLOW_WAIT, || async {
            pull(slave, &spec).await.code == ResponseCode::Success
        })
        .await;
        assert!(replicated, "the message reached the slave");
        let reply = pull(slave, &spec).await;
        assert_eq!(reply.records.len(), 1);
        assert_eq!(
            reply.header.suggest_which_broker_id, 2,
            "a cold read on a slave suggests the group's whichBrokerWhenConsumeSlowly"
        );
        let unknown_group = pull(slave, &PullSpec::new(TOPIC, 1, 0)).await;
        assert_eq!(
            unknown_group.header.suggest_which_broker_id, 1,
            "Java's default"
        );

        // The commit a pull carries is stored by a master only.
        let carrying = |group| PullSpec {
            group,
            sys_flag: PullSysFlag::COMMIT_OFFSET | PullSysFlag::SUBSCRIPTION,
            commit_offset: 1,
            ..PullSpec::new(TOPIC, 1, 0)
        };
        assert_eq!(
            pull(slave, &carrying("SlaveCommitter")).await.code,
            ResponseCode::Success
        );
        assert_eq!(committed(slave, "SlaveCommitter", TOPIC, 1).await, None);
        assert_eq!(
            pull(&client, &carrying("MasterCommitter")).await.code,
            ResponseCode::Success
        );
        assert_eq!(
            committed(&client, "MasterCommitter", TOPIC, 1).await,
            Some(1)
        );

        // Past the queue's end: a master moves the consumer, a slave (maybe only behind) does
        // not.
        let past_end = PullSpec {
            group: GROUP,
            ..PullSpec::new(TOPIC, 1, 1_000)
        };
        assert_eq!(
            pull(&client, &past_end).await.code,
            ResponseCode::PullOffsetMoved
        );
        let on_slave = pull(slave, &past_end).await;
        assert_eq!(on_slave.code, ResponseCode::PullRetryImmediately);
        assert_eq!(
            on_slave.header.suggest_which_broker_id, 0,
            "the group's brokerId"
        );
    });
}

#[test]
fn a_slave_copies_and_follows_its_master_1_shard() {
    a_slave_copies_and_follows_its_master(1);
}

#[test]
fn a_slave_copies_and_follows_its_master_2_shards() {
    a_slave_copies_and_follows_its_master(2);
}

// ---- suggestWhichBrokerId on a master -------------------------------------------------------

/// The `suggestWhichBrokerId` of a pull of one stored message by `group`, on a master started
/// with `conf`; `groups` are created first.
fn suggestions(
    shards: usize,
    conf: &str,
    groups: &[SubscriptionGroupConfig],
) -> BTreeMap<String, i64> {
    let broker = Broker::start(shards, conf);
    block_on(async {
        let client = broker.client();
        create_topic(&client, "SuggestTopic", QUEUES, 6).await;
        for group in groups {
            create_group(&client, group).await;
        }
        let props = properties(None, None, None);
        for queue_id in 0..QUEUES {
            sent(
                &send_v2(&client, "SuggestTopic", queue_id, b"m", &props).await,
                b"m",
            );
        }
        let mut suggested = BTreeMap::new();
        let names = groups
            .iter()
            .map(|g| g.group_name.as_str())
            .chain(["UnknownGroup"]);
        for group in names {
            for queue_id in 0..QUEUES {
                let spec = PullSpec {
                    group,
                    ..PullSpec::new("SuggestTopic", queue_id, 0)
                };
                let reply = pull(&client, &spec).await;
                assert_eq!(reply.code, ResponseCode::Success);
                let previous =
                    suggested.insert(group.to_owned(), reply.header.suggest_which_broker_id);
                assert!(
                    previous.is_none_or(|p| p == reply.header.suggest_which_broker_id),
                    "every queue, whichever shard owns it, answers alike"
                );
            }
        }
        suggested
    })
}

fn suggest_which_broker_id(shards: usize) {
    let groups = [
        SubscriptionGroupConfig {
            which_broker_when_consume_slowly: 2,
            ..SubscriptionGroupConfig::new("SlowGroup")
        },
        SubscriptionGroupConfig {
            broker_id: 3,
            ..SubscriptionGroupConfig::new("PinnedGroup")
        },
    ];
    let expect = |slow, pinned, unknown| {
        BTreeMap::from([
            ("SlowGroup".to_owned(), slow),
            ("PinnedGroup".to_owned(), pinned),
            ("UnknownGroup".to_owned(), unknown),
        ])
    };
    // Cold (every read is behind 0 % of RAM): whichBrokerWhenConsumeSlowly (default 1).
    let cold = suggestions(
        shards,
        "slaveReadEnable=true\naccessMessageInMemoryMaxRatio=0",
        &groups,
    );
    assert_eq!(cold, expect(2, 1, 1), "cold reads");
    // Warm (a few bytes behind 40 % of RAM): the group's brokerId (default 0, the master).
    let warm = suggestions(shards, "slaveReadEnable=true", &groups);
    assert_eq!(warm, expect(0, 3, 0), "warm reads");
    // slaveReadEnable off: always the master.
    let off = suggestions(shards, "accessMessageInMemoryMaxRatio=0", &groups);
    assert_eq!(off, expect(0, 0, 0), "slaveReadEnable=false");
}

#[test]
fn suggest_which_broker_id_1_shard() {
    suggest_which_broker_id(1);
}

#[test]
fn suggest_which_broker_id_2_shards() {
    suggest_which_broker_id(2);
}
