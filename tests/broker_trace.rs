//! Black-box tests of message traces against `rmq standalone`, with 1 and 2 shards:
//! `traceTopicEnable=true` creates `RMQ_SYS_TRACE_TOPIC` (or `msgTraceTopicName`) with one
//! queue and the NameServer routes it; trace messages sent there (bodies in
//! rocketmq-client-rust 1.0.0's encoding, keys = the traced msgIds as its dispatcher sets them)
//! are found by `rmq admin query-msg-trace -i MSGID`, which prints the Pub and SubAfter
//! records of exactly that message as mqadmin's table and as JSON. Every stored message
//! carries Java's broker-added `MSG_REGION` and `TRACE_ON` properties (consumers' trace
//! hooks read them).

mod common;

use std::process::Command;

use common::{all_topics, block_on, call, properties, pulled, send_v2, sent, Broker, PullSpec};
use serde_json::Value;

const C1: char = '\u{1}';
const C2: char = '\u{2}';

fn admin(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .arg("admin")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rmq admin");
    assert!(
        output.status.success(),
        "rmq admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 stdout")
}

/// A Pub record as rocketmq-client-rust 1.0.0 encodes it (15 fields, clientHost last).
fn pub_record(group: &str, topic: &str, msg_id: &str, keys: &str, cost_ms: u32) -> String {
    let fields = [
        "Pub",
        "1796579294678",
        "DefaultRegion",
        group,
        topic,
        msg_id,
        "TagTrace",
        keys,
        "127.0.0.1:10911",
        "11",
        &cost_ms.to_string(),
        "0",
        "7F0000010000950F0000000000000000",
        "true",
        "192.0.2.2",
    ];
    format!("{}{C2}", fields.join(&C1.to_string()))
}

/// SubBefore and SubAfter records of one consume (9-field SubAfter, with time and group).
fn sub_records(group: &str, msg_id: &str, keys: &str, success: bool) -> String {
    let before = [
        "SubBefore",
        "1796579295000",
        "DefaultRegion",
        group,
        "REQ1",
        msg_id,
        "0",
        keys,
    ];
    let after = [
        "SubAfter",
        "REQ1",
        msg_id,
        "7",
        if success { "true" } else { "false" },
        keys,
        "0",
        "1796579295007",
        group,
    ];
    format!(
        "{}{C2}{}{C2}",
        before.join(&C1.to_string()),
        after.join(&C1.to_string())
    )
}

/// Sends one trace message to `trace_topic` whose KEYS are `keys` (space separated).
fn send_trace(broker: &Broker, trace_topic: &str, keys: &str, body: &str) {
    let client = broker.client();
    let props = properties(None, Some(keys), Some(&format!("TRACE{}", body.len())));
    let reply = block_on(send_v2(&client, trace_topic, 0, body.as_bytes(), &props));
    sent(&reply, body.as_bytes());
}

fn scenario(shards: usize, trace_topic: Option<&str>) {
    let conf = match trace_topic {
        Some(name) => format!("traceTopicEnable=true\nmsgTraceTopicName={name}\n"),
        None => "traceTopicEnable=true\n".to_owned(),
    };
    let topic_name = trace_topic.unwrap_or("RMQ_SYS_TRACE_TOPIC");
    let broker = Broker::start(shards, &conf);
    let topics = all_topics(&broker);
    let config = topics
        .topic_config_table
        .get(topic_name)
        .unwrap_or_else(|| panic!("{topic_name} created at start"));
    assert_eq!(
        (config.read_queue_nums, config.write_queue_nums),
        (1, 1),
        "Java gives the trace topic one queue"
    );
    let ns = broker.namesrv.to_string();
    let config: Value =
        serde_json::from_str(&admin(&["get-broker-config", "-n", &ns, "--json"])).expect("json");
    let config = config
        .as_object()
        .and_then(|brokers| brokers.values().next())
        .expect("one broker's config");
    assert_eq!(config["traceTopicEnable"], "true", "{config}");
    assert_eq!(config["msgTraceTopicName"], topic_name, "{config}");
    let route = admin(&["topic-route", "-n", &ns, "-t", topic_name, "--json"]);
    assert!(route.contains("queueDatas"), "{topic_name} routed: {route}");

    let (wanted, other) = (
        "C0A8000100002A9F0000000000000001",
        "C0A8000100002A9F0000000000000002",
    );
    // One trace message per client side, as the dispatchers batch them: the producer's
    // carries both messages' Pub records, the consumer's the consume of `wanted`.
    let pub_body = format!(
        "{}{}",
        pub_record("PG_T", "OrderTopic", wanted, "order-1", 4),
        pub_record("PG_T", "OrderTopic", other, "order-2", 5)
    );
    send_trace(
        &broker,
        topic_name,
        &format!("{wanted} order-1 {other} order-2"),
        &pub_body,
    );
    send_trace(
        &broker,
        topic_name,
        &format!("{wanted} order-1"),
        &sub_records("CG_T", wanted, "order-1", true),
    );

    let mut args = vec!["query-msg-trace", "-n", &ns, "-i", wanted];
    if trace_topic.is_some() {
        args.extend(["-t", topic_name]);
    }
    let table = admin(&args);
    let lines: Vec<&str> = table.lines().collect();
    let header_pub = format!(
        "{:<10} {:<20} {:<20} {:<20} {:<10} {:<10}",
        "#Type", "#ProducerGroup", "#ClientHost", "#SendTime", "#CostTimes", "#Status"
    );
    assert_eq!(lines[0], header_pub, "{table}");
    let pub_cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(pub_cells[0], "Pub", "{table}");
    assert_eq!(pub_cells[1], "PG_T");
    assert_eq!(
        pub_cells[3..],
        ["2026-12-06", "17:48:14", "4ms", "success"],
        "{table}"
    );
    assert!(
        lines[3].starts_with("#Type") && lines[3].contains("#ConsumerGroup"),
        "{table}"
    );
    let sub_cells: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(sub_cells[..2], ["Sub", "CG_T"], "{table}");
    assert_eq!(
        sub_cells[3..],
        ["2026-12-06", "17:48:15", "7ms", "success"],
        "{table}"
    );
    assert!(
        !table.contains("5ms"),
        "the other message's Pub is not printed: {table}"
    );

    args.push("--json");
    let doc: Value = serde_json::from_str(&admin(&args)).expect("query-msg-trace --json");
    let traces = doc["traces"].as_array().expect("traces");
    let kinds: Vec<&str> = traces
        .iter()
        .map(|t| t["traceType"].as_str().expect("traceType"))
        .collect();
    assert_eq!(kinds, ["Pub", "SubBefore", "SubAfter"], "{doc}");
    assert!(traces.iter().all(|t| t["msgId"] == wanted), "{doc}");
    assert_eq!(traces[0]["offsetMsgId"], "7F0000010000950F0000000000000000");
    assert_eq!(traces[0]["topic"], "OrderTopic");
    assert_eq!(traces[2]["groupName"], "CG_T");
    assert_eq!(traces[2]["costTime"], 7);
    assert_eq!(doc["skippedRecords"], 0);

    // A msgId with no trace: an empty table, not an error.
    let none = admin(&[
        "query-msg-trace",
        "-n",
        &ns,
        "-i",
        "C0A8000100002A9F00000000000000FF",
        "-t",
        topic_name,
    ]);
    assert_eq!(none, "", "no trace, nothing printed");
}

#[test]
fn trace_topic_created_and_traces_found_by_msg_id_one_shard() {
    scenario(1, None);
}

#[test]
fn trace_topic_created_and_traces_found_by_msg_id_two_shards() {
    scenario(2, None);
}

#[test]
fn msg_trace_topic_name_names_the_trace_topic() {
    scenario(2, Some("MyTraceTopic"));
}

#[test]
fn trace_topic_absent_by_default() {
    let broker = Broker::start(1, "");
    assert!(
        !all_topics(&broker)
            .topic_config_table
            .contains_key("RMQ_SYS_TRACE_TOPIC"),
        "traceTopicEnable defaults to false"
    );
}

#[test]
fn stored_messages_carry_msg_region_and_trace_on() {
    let broker = Broker::start(2, "");
    let client = broker.client();
    let records = block_on(async {
        // A client-supplied region is replaced by the broker's, as Java's `put` does.
        let mut props = properties(Some("TagA"), Some("k1"), None);
        props.insert("MSG_REGION", "ClientRegion").expect("valid");
        let reply = send_v2(&client, "RegionT", 0, b"body", &props).await;
        sent(&reply, b"body");
        pulled(&call(&client, PullSpec::new("RegionT", 0, 0).request()).await).records
    });
    assert_eq!(records.len(), 1);
    let props = &records[0].properties;
    assert_eq!(props.get("MSG_REGION"), Some("DefaultRegion"), "{props:?}");
    assert_eq!(props.get("TRACE_ON"), Some("true"), "{props:?}");
    assert_eq!(props.get("KEYS"), Some("k1"));
}
