//! Black-box tests of the broker's admin and query surface, each with 1 and 2 shards (with 2,
//! a 4-queue topic spreads over both, so every answer is a real map-reduce): QUERY_MESSAGE by
//! KEYS and by UNIQ_KEY, GET_BROKER_RUNTIME_INFO and `rmq admin broker-status`,
//! GET_BROKER_CONFIG, GET_TOPIC_STATS_INFO, GET_CONSUME_STATS and `rmq admin
//! consumer-progress`, GET_PRODUCER_CONNECTION_LIST, and subscription-group create / list /
//! delete with persistence (PROTOCOL.md §4.8, §4.9).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    assert_code, block_on, call, create_topic, now_ms, properties, pull_all, query_offset_request,
    send_v2, sent, shard_of_offset, update_offset_request, Broker, BROKER_NAME,
    TEST_SEGMENT_SIZE_BYTES,
};
use rmq::admin::{parse_consume_stats, parse_topic_stats};
use rmq::tables::groups::{SubscriptionGroupConfig, SubscriptionGroupWrapper};
use rmq_net::codec::body::client::ProducerConnection;
use rmq_net::codec::body::heartbeat::{HeartbeatData, ProducerData};
use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::table::KvTable;
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::{GetConsumeStatsRequestHeader, GetTopicStatsInfoRequestHeader};
use rmq_net::codec::header::query::{QueryMessageRequestHeader, QueryMessageResponseHeader};
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::{decode_all, msg_id, CrcCheck, MessageRecord};
use rmq_net::conn::RemotingClient;
use rmq_net::{ExtFields, RemotingCommand};

/// Queues of the test topics: with 2 shards, consecutive queues land on both.
const QUEUES: i32 = 4;

/// One message the test sent and what the broker answered.
#[derive(Debug, Clone)]
struct SentMessage {
    queue_id: i32,
    uniq: String,
    physical_offset: i64,
}

/// Sends `per_queue(q)` messages to each queue of `topic`; every message carries the shared
/// key `shared` plus `k-<q>-<i>`.
async fn send_messages(
    client: &RemotingClient,
    topic: &str,
    shared: &str,
    per_queue: impl Fn(i32) -> i32,
) -> Vec<SentMessage> {
    let mut out = Vec::new();
    for queue_id in 0..QUEUES {
        for index in 0..per_queue(queue_id) {
            let keys = format!("{shared} k-{queue_id}-{index}");
            let props = properties(Some("TagA"), Some(&keys), None);
            let body = format!("{topic}-{queue_id}-{index}");
            let reply = send_v2(client, topic, queue_id, body.as_bytes(), &props).await;
            let header = sent(&reply, body.as_bytes()).header;
            let (_, physical_offset) = msg_id::decode(&header.msg_id).expect("offset msgId");
            out.push(SentMessage {
                queue_id,
                uniq: header.transaction_id.expect("UNIQ_KEY echoed"),
                physical_offset,
            });
        }
    }
    out
}

fn query_request(topic: &str, key: &str, max_num: i32, unique: bool) -> RemotingCommand {
    let header = QueryMessageRequestHeader {
        topic: topic.into(),
        key: key.into(),
        max_num,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        unique_key_query: unique.then_some(true),
    };
    RemotingCommand::request(RequestCode::QueryMessage, header.to_ext())
}

/// Queries until at least `want` records come back (the index is built right after the
/// append) or 5 s pass; returns the last reply's records.
async fn query(
    client: &RemotingClient,
    request: &RemotingCommand,
    want: usize,
) -> Vec<MessageRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = call(client, request.clone()).await;
        let records = if reply.response_code() == ResponseCode::Success {
            let header = QueryMessageResponseHeader::decode_command(&reply).expect("header");
            assert!(header.index_last_update_timestamp > 0, "index mark set");
            decode_all(&reply.body, CrcCheck::Verify).expect("query body decodes")
        } else {
            assert_code(&reply, ResponseCode::QueryNotFound);
            Vec::new()
        };
        if records.len() >= want || Instant::now() >= deadline {
            return records;
        }
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_query_by_key_and_uniq_key(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, "QueryTopic", QUEUES, 6).await;
        let messages = send_messages(&client, "QueryTopic", "order-1", |_| 1).await;
        let shards_used: BTreeSet<i64> = messages
            .iter()
            .map(|m| shard_of_offset(m.physical_offset))
            .collect();
        assert_eq!(
            shards_used.len(),
            shards,
            "the topic's queues span every shard"
        );

        // KEYS shared by all four messages: found on every shard, newest first.
        let records = query(
            &client,
            &query_request("QueryTopic", "order-1", 32, false),
            4,
        )
        .await;
        assert_eq!(records.len(), 4);
        let found: BTreeSet<i64> = records.iter().map(|r| r.physical_offset).collect();
        let expected: BTreeSet<i64> = messages.iter().map(|m| m.physical_offset).collect();
        assert_eq!(
            found, expected,
            "every sent message, with its client-visible offset"
        );
        assert!(records
            .windows(2)
            .all(|w| w[0].store_timestamp >= w[1].store_timestamp));
        for record in &records {
            assert_eq!(record.topic, "QueryTopic");
            assert!(record.properties.message_keys().any(|k| k == "order-1"));
            assert_eq!(record.store_host, broker.addr);
        }
        // maxNum caps the merged answer.
        let capped = query(
            &client,
            &query_request("QueryTopic", "order-1", 2, false),
            2,
        )
        .await;
        assert_eq!(capped.len(), 2);
        assert_eq!(capped, records[..2].to_vec(), "the newest two");
        // A per-message key finds exactly its message.
        let one = query(&client, &query_request("QueryTopic", "k-2-0", 32, false), 1).await;
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].queue_id, 2);

        // UNIQ_KEY query: the broker's own max number applies (maxNum 0 is ignored).
        for message in &messages {
            let request = query_request("QueryTopic", &message.uniq, 0, true);
            let records = query(&client, &request, 1).await;
            assert_eq!(records.len(), 1, "UNIQ_KEY {}", message.uniq);
            assert_eq!(
                records[0].properties.uniq_key(),
                Some(message.uniq.as_str())
            );
            assert_eq!(records[0].physical_offset, message.physical_offset);
            assert_eq!(records[0].queue_id, message.queue_id);
        }

        // Nothing matches: QUERY_NOT_FOUND with Java's remark and the index mark.
        for request in [
            query_request("QueryTopic", "no-such-key", 32, false),
            query_request("OtherTopic", "order-1", 32, false),
            query_request("QueryTopic", "order-1", 0, false),
        ] {
            let reply = call(&client, request).await;
            assert_code(&reply, ResponseCode::QueryNotFound);
            assert_eq!(
                reply.remark.as_deref(),
                Some("can not find message, maybe time range not correct")
            );
            let header = QueryMessageResponseHeader::decode_command(&reply).expect("header");
            assert!(header.index_last_update_timestamp > 0);
        }
        let mut future = QueryMessageRequestHeader::decode_command(&query_request(
            "QueryTopic",
            "order-1",
            32,
            false,
        ))
        .expect("header");
        future.begin_timestamp = now_ms() + 3_600_000;
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::QueryMessage, future.to_ext()),
        )
        .await;
        assert_code(&reply, ResponseCode::QueryNotFound);
    });
}

#[test]
fn query_message_by_key_and_uniq_key_one_shard() {
    check_query_by_key_and_uniq_key(1);
}

#[test]
fn query_message_by_key_and_uniq_key_two_shards() {
    check_query_by_key_and_uniq_key(2);
}

async fn runtime_info(client: &RemotingClient) -> BTreeMap<String, String> {
    let reply = call(
        client,
        RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo, ExtFields::new()),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    KvTable::from_json(&reply.body).expect("KVTable").table
}

fn number(table: &BTreeMap<String, String>, key: &str) -> i64 {
    table
        .get(key)
        .unwrap_or_else(|| panic!("runtime key {key} missing"))
        .parse()
        .unwrap_or_else(|e| panic!("runtime key {key}: {e}"))
}

/// Runs `rmq <args>` to completion; returns stdout, asserting success.
fn run_cli(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rmq");
    assert!(
        output.status.success(),
        "rmq {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn check_runtime_info_and_config(shards: usize) {
    let started_ms = now_ms();
    let broker = Broker::start(shards, "");
    let sent_count = block_on(async {
        let client = broker.client();
        let before = runtime_info(&client).await;
        assert_eq!(number(&before, "msgPutTotalTodayNow"), 0);
        assert_eq!(
            number(&before, "earliestMessageTimeStamp"),
            -1,
            "empty store"
        );
        create_topic(&client, "StatsTopic", QUEUES, 6).await;
        let messages = send_messages(&client, "StatsTopic", "s", |q| q + 1).await;
        let mut pulled = 0;
        for queue_id in 0..QUEUES {
            pulled += pull_all(&client, "StatsTopic", queue_id).await.len();
        }
        assert_eq!(pulled, messages.len());

        let table = runtime_info(&client).await;
        assert_eq!(number(&table, "msgPutTotalTodayNow"), messages.len() as i64);
        assert_eq!(number(&table, "msgGetTotalTodayNow"), pulled as i64);
        assert_eq!(
            number(&table, "putMessageTimesTotal"),
            messages.len() as i64
        );
        assert!(number(&table, "msgPutTotalTodayMorning") <= number(&table, "msgPutTotalTodayNow"));
        assert!(
            number(&table, "msgPutTotalYesterdayMorning")
                <= number(&table, "msgPutTotalTodayMorning")
        );
        assert_eq!(table["brokerVersionDesc"], "V5_3_3");
        assert_eq!(number(&table, "brokerVersion"), 479);
        assert_eq!(number(&table, "shardCount"), shards as i64);
        assert_eq!(table["brokerActive"], "true");
        let boot = number(&table, "bootTimestamp");
        assert!(boot >= started_ms - 1000 && boot <= now_ms());
        assert!(table["runtime"].starts_with("[ 0 days, 0 hours, "));
        let earliest = number(&table, "earliestMessageTimeStamp");
        assert!(
            earliest >= started_ms && earliest <= now_ms(),
            "first message's store time"
        );
        // CommitLog offsets: the broker-wide pair is the sum of every shard's pair.
        let (mut min_sum, mut max_sum) = (0, 0);
        for shard in 0..shards {
            min_sum += number(&table, &format!("shard{shard}.commitLogMinOffset"));
            max_sum += number(&table, &format!("shard{shard}.commitLogMaxOffset"));
        }
        assert_eq!(number(&table, "commitLogMinOffset"), min_sum);
        assert_eq!(number(&table, "commitLogMaxOffset"), max_sum);
        assert!(max_sum - min_sum > 0, "the messages occupy CommitLog bytes");
        let ratio: f64 = table["commitLogDiskRatio"].parse().expect("ratio");
        assert!(
            ratio > 0.0 && ratio <= 1.0,
            "used fraction of the store's disk: {ratio}"
        );
        assert!(table["commitLogDirCapacity"].starts_with("Total : "));
        for key in ["putTps", "getTransferedTps"] {
            let rates: Vec<f64> = table[key]
                .split(' ')
                .map(|r| r.parse().expect("rate"))
                .collect();
            assert_eq!(rates.len(), 3, "{key}: 10 s, 1 min, 10 min");
            assert!(rates.iter().all(|r| *r >= 0.0));
        }

        // GET_BROKER_CONFIG: the effective configuration as properties text.
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::GetBrokerConfig, ExtFields::new()),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        assert!(reply.ext("version").is_some_and(|v| v.contains("counter")));
        let text = std::str::from_utf8(&reply.body).expect("UTF-8");
        let config = rmq::config::parse_properties(text).expect("properties");
        assert_eq!(config["brokerName"], BROKER_NAME);
        assert_eq!(
            config["mappedFileSizeCommitLog"],
            TEST_SEGMENT_SIZE_BYTES.to_string()
        );
        assert_eq!(config["listenPort"], broker.addr.port().to_string());
        assert_eq!(config["shards"], shards.to_string());
        assert_eq!(
            config["storePathRootDir"],
            broker.store_dir().display().to_string()
        );
        messages.len()
    });

    // `rmq admin broker-status`: the same table, one `key : value` line each.
    let output = run_cli(&["admin", "broker-status", "-b", &broker.addr.to_string()]);
    let printed: BTreeMap<&str, &str> = output
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(key, value)| (key.trim(), value))
        .collect();
    assert_eq!(printed["msgPutTotalTodayNow"], sent_count.to_string());
    assert_eq!(printed["shardCount"], shards.to_string());
    assert_eq!(printed["brokerVersionDesc"], "V5_3_3");
}

#[test]
fn runtime_info_and_broker_config_one_shard() {
    check_runtime_info_and_config(1);
}

#[test]
fn runtime_info_and_broker_config_two_shards() {
    check_runtime_info_and_config(2);
}

fn consume_stats_request(group: &str, topic: Option<&str>) -> RemotingCommand {
    let header = GetConsumeStatsRequestHeader {
        consumer_group: group.into(),
        topic: topic.map(str::to_owned),
        topic_list: None,
    };
    RemotingCommand::request(RequestCode::GetConsumeStats, header.to_ext())
}

/// Parses `rmq admin consumer-progress` output: rows keyed by queue id, and the total diff.
fn parse_progress(output: &str) -> (BTreeMap<i32, Vec<String>>, i64) {
    let mut lines = output.lines();
    let header = lines.next().expect("header line");
    assert!(header.starts_with("#Topic"), "{header}");
    let mut rows = BTreeMap::new();
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        let cells: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        assert_eq!(cells.len(), 7, "{line}");
        rows.insert(cells[2].parse().expect("queue id"), cells);
    }
    let total = output
        .lines()
        .find_map(|l| l.strip_prefix("Consume Diff Total: "))
        .expect("total line")
        .parse()
        .expect("total");
    (rows, total)
}

fn check_topic_and_consume_stats(shards: usize) {
    let started_ms = now_ms();
    let broker = Broker::start(shards, "");
    let group = "CG_STATS";
    // Committed offsets per queue; queue 3 never commits.
    let committed: BTreeMap<i32, i64> = [(0, 1), (1, 0), (2, 2)].into_iter().collect();
    block_on(async {
        let client = broker.client();
        create_topic(&client, "TopicStats", QUEUES, 6).await;
        send_messages(&client, "TopicStats", "t", |q| q + 1).await;

        let header = GetTopicStatsInfoRequestHeader {
            topic: "TopicStats".into(),
        };
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::GetTopicStatsInfo, header.to_ext()),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        let stats = parse_topic_stats(&reply.body).expect("TopicStatsTable");
        assert_eq!(stats.offset_table.len(), QUEUES as usize);
        for queue_id in 0..QUEUES {
            let queue = MessageQueue::new("TopicStats", BROKER_NAME, queue_id);
            let offsets = stats.offset_table[&queue];
            assert_eq!(offsets.min_offset, 0);
            assert_eq!(offsets.max_offset, i64::from(queue_id) + 1);
            assert!(offsets.last_update_timestamp >= started_ms);
            assert!(offsets.last_update_timestamp <= now_ms());
        }
        let missing = GetTopicStatsInfoRequestHeader {
            topic: "NoSuchTopic".into(),
        };
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::GetTopicStatsInfo, missing.to_ext()),
        )
        .await;
        assert_code(&reply, ResponseCode::TopicNotExist);
        assert_eq!(
            reply.remark.as_deref(),
            Some("topic[NoSuchTopic] not exist")
        );

        for (queue_id, offset) in &committed {
            let reply = call(
                &client,
                update_offset_request(group, "TopicStats", *queue_id, *offset),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
        // With the topic, and without (the group's topics are collected from every shard).
        for topic in [Some("TopicStats"), None] {
            let reply = call(&client, consume_stats_request(group, topic)).await;
            assert_code(&reply, ResponseCode::Success);
            let stats = parse_consume_stats(&reply.body).expect("ConsumeStats");
            assert_eq!(stats.offset_table.len(), QUEUES as usize, "topic {topic:?}");
            for queue_id in 0..QUEUES {
                let queue = MessageQueue::new("TopicStats", BROKER_NAME, queue_id);
                let offsets = stats.offset_table[&queue];
                let consumer = committed.get(&queue_id).copied().unwrap_or(0);
                assert_eq!(offsets.broker_offset, i64::from(queue_id) + 1);
                assert_eq!(offsets.consumer_offset, consumer);
                if consumer > 0 {
                    assert!(
                        offsets.last_timestamp >= started_ms,
                        "store time of the last consumed"
                    );
                } else {
                    assert_eq!(offsets.last_timestamp, 0);
                }
            }
        }
        let reply = call(&client, consume_stats_request("CG_NOBODY", None)).await;
        assert_code(&reply, ResponseCode::Success);
        let stats = parse_consume_stats(&reply.body).expect("ConsumeStats");
        assert!(stats.offset_table.is_empty());
    });

    // `rmq admin consumer-progress` asks every master found through the NameServer.
    let namesrv = broker.namesrv.to_string();
    for topic_args in [&["-t", "TopicStats"][..], &[][..]] {
        let mut args = vec!["admin", "consumer-progress", "-n", &namesrv, "-g", group];
        args.extend_from_slice(topic_args);
        let (rows, total) = parse_progress(&run_cli(&args));
        assert_eq!(rows.len(), QUEUES as usize);
        let mut expected_total = 0;
        for (queue_id, cells) in &rows {
            let max = i64::from(*queue_id) + 1;
            let consumer = committed.get(queue_id).copied().unwrap_or(0);
            assert_eq!(cells[0], "TopicStats");
            assert_eq!(cells[1], BROKER_NAME);
            assert_eq!(cells[3], max.to_string(), "broker offset");
            assert_eq!(cells[4], consumer.to_string(), "consumer offset");
            assert_eq!(cells[5], (max - consumer).to_string(), "diff");
            expected_total += max - consumer;
        }
        assert_eq!(total, expected_total);
    }

    // `rmq admin topic-status` (mqadmin topicStatus): queue i holds i + 1 messages.
    let status = run_cli(&["admin", "topic-status", "-n", &namesrv, "-t", "TopicStats"]);
    let rows: Vec<Vec<&str>> = status
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), QUEUES as usize, "{status}");
    for (queue_id, cells) in (0..QUEUES).zip(&rows) {
        assert_eq!(cells[0], BROKER_NAME);
        assert_eq!(cells[1], queue_id.to_string());
        assert_eq!(cells[2], "0", "min offset");
        assert_eq!(cells[3], (queue_id + 1).to_string(), "max offset");
    }
    let stored: i32 = (1..=QUEUES).sum();
    assert!(status.contains(&format!("stored={stored} ")), "{status}");
}

#[test]
fn topic_stats_and_consume_stats_one_shard() {
    check_topic_and_consume_stats(1);
}

#[test]
fn topic_stats_and_consume_stats_two_shards() {
    check_topic_and_consume_stats(2);
}

fn producer_heartbeat(client_id: &str, group: &str) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.into(),
        producer_data_set: vec![ProducerData {
            group_name: group.into(),
        }],
        ..HeartbeatData::default()
    };
    RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new()).with_body(data.to_json())
}

fn producer_list_request(group: &str) -> RemotingCommand {
    let mut ext = ExtFields::new();
    ext.insert("producerGroup", group);
    RemotingCommand::request(RequestCode::GetProducerConnectionList, ext)
}

async fn all_groups(client: &RemotingClient) -> SubscriptionGroupWrapper {
    let reply = call(
        client,
        RemotingCommand::request(RequestCode::GetAllSubscriptionGroupConfig, ExtFields::new()),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    SubscriptionGroupWrapper::from_json(&reply.body).expect("SubscriptionGroupWrapper")
}

fn delete_group_request(group: &str, clean_offset: bool) -> RemotingCommand {
    let mut ext = ExtFields::new();
    ext.insert("groupName", group);
    ext.insert("cleanOffset", clean_offset.to_string());
    RemotingCommand::request(RequestCode::DeleteSubscriptionGroup, ext)
}

/// Whether every queue of `topic` answers QUERY_NOT_FOUND for `group` (no committed offset).
async fn offsets_gone(client: &RemotingClient, group: &str, topic: &str) -> bool {
    for queue_id in 0..QUEUES {
        let reply = call(
            client,
            query_offset_request(group, topic, queue_id, Some(false)),
        )
        .await;
        if reply.response_code() != ResponseCode::QueryNotFound {
            return false;
        }
    }
    true
}

fn check_producers_and_subscription_groups(shards: usize) {
    let mut broker = Broker::start(shards, "");
    let group = "GRP_ADMIN";
    block_on(async {
        // Producer connections: several connections, so with 2 shards some land on shard 1.
        let clients: Vec<RemotingClient> = (0..4).map(|_| broker.client()).collect();
        for (index, client) in clients.iter().enumerate() {
            let reply = call(
                client,
                producer_heartbeat(&format!("10.0.0.9@p{index}"), "PG_ADMIN"),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
        let reply = call(&clients[0], producer_list_request("PG_ADMIN")).await;
        assert_code(&reply, ResponseCode::Success);
        let connections = ProducerConnection::from_json(&reply.body).expect("ProducerConnection");
        let ids: BTreeSet<String> = connections
            .connection_set
            .iter()
            .map(|c| c.client_id.clone())
            .collect();
        let expected: BTreeSet<String> = (0..4).map(|i| format!("10.0.0.9@p{i}")).collect();
        assert_eq!(ids, expected);
        assert!(connections
            .connection_set
            .iter()
            .all(|c| c.client_addr.starts_with("127.0.0.1:")));
        let reply = call(&clients[1], producer_list_request("PG_NOBODY")).await;
        assert_code(&reply, ResponseCode::SystemError);
        assert_eq!(
            reply.remark.as_deref(),
            Some("the producer group[PG_NOBODY] not exist")
        );

        // Create a group, with non-default settings.
        let client = &clients[0];
        let before = all_groups(client).await;
        assert!(!before.subscription_group_table.contains_key(group));
        let config = SubscriptionGroupConfig {
            retry_max_times: 5,
            consume_message_orderly: true,
            ..SubscriptionGroupConfig::new(group)
        };
        let request = RemotingCommand::request(
            RequestCode::UpdateAndCreateSubscriptionGroup,
            ExtFields::new(),
        )
        .with_body(config.to_json());
        assert_code(&call(client, request).await, ResponseCode::Success);
        let after = all_groups(client).await;
        assert_eq!(after.subscription_group_table.get(group), Some(&config));
        assert!(after.data_version.counter > before.data_version.counter);
        let bad = RemotingCommand::request(
            RequestCode::UpdateAndCreateSubscriptionGroup,
            ExtFields::new(),
        )
        .with_body(SubscriptionGroupConfig::new("bad name!").to_json());
        assert_code(&call(client, bad).await, ResponseCode::InvalidParameter);
    });

    // Persisted: journaled beside subscriptionGroup.json (folded into it at start and clean
    // shutdown), and a restarted broker still has the group.
    let config = broker.store_dir().join("config");
    let file = std::fs::read(config.join("subscriptionGroup.json")).expect("groups file");
    let journal = std::fs::read(config.join("subscriptionGroup.json.journal")).unwrap_or_default();
    let needle = group.as_bytes();
    assert!([file, journal]
        .iter()
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle)));
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        let groups = all_groups(&client).await;
        assert_eq!(groups.subscription_group_table[group].retry_max_times, 5);

        // Delete with cleanOffset: the group and its offsets on every shard go.
        create_topic(&client, "GroupTopic", QUEUES, 6).await;
        send_messages(&client, "GroupTopic", "g", |_| 1).await;
        for queue_id in 0..QUEUES {
            let reply = call(
                &client,
                update_offset_request(group, "GroupTopic", queue_id, 1),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
        assert!(!offsets_gone(&client, group, "GroupTopic").await);
        let reply = call(&client, delete_group_request(group, true)).await;
        assert_code(&reply, ResponseCode::Success);
        assert!(!all_groups(&client)
            .await
            .subscription_group_table
            .contains_key(group));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !offsets_gone(&client, group, "GroupTopic").await {
            assert!(
                Instant::now() < deadline,
                "offsets of the deleted group remain"
            );
            compio::time::sleep(Duration::from_millis(50)).await;
        }
        // Deleting again (or an unknown group) is a no-op SUCCESS, as in Java.
        let reply = call(&client, delete_group_request(group, false)).await;
        assert_code(&reply, ResponseCode::Success);
    });
    // The deletion is persisted too: gone after another restart.
    broker.kill_and_restart();
    block_on(async {
        let groups = all_groups(&broker.client()).await;
        assert!(!groups.subscription_group_table.contains_key(group));
    });
}

#[test]
fn producer_connections_and_subscription_groups_one_shard() {
    check_producers_and_subscription_groups(1);
}

#[test]
fn producer_connections_and_subscription_groups_two_shards() {
    check_producers_and_subscription_groups(2);
}
