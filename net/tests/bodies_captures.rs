//! JSON bodies against real client bytes (`shared/wire-captures`) and the byte-exact examples of
//! PROTOCOL.md §4.10.4 and §5.1, through the public API only.

use std::path::PathBuf;

use rmq_net::codec::body::heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, MessageModel, ProducerData,
};
use rmq_net::codec::body::lenient::normalize;
use rmq_net::codec::body::route::{
    BrokerData, ClusterInfo, QueueData, RouteJsonStyle, TopicRouteData,
};
use rmq_net::codec::body::subscription::SubscriptionData;
use rmq_net::codec::body::{parse_lenient, JsonBody};
use rmq_net::codec::frame;
use rmq_net::codec::limits::FrameLimits;

/// The body of the first HEART_BEAT (34) frame in a capture file.
fn first_heartbeat_body(relative: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/wire-captures")
        .join(relative);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("wire capture {} missing: {e}", path.display()));
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let (command, used) = frame::decode(rest, &FrameLimits::default())
            .expect("captured frame decodes")
            .expect("captured frame is complete");
        if command.code == 34 {
            return command.body.to_vec();
        }
        rest = &rest[used..];
    }
    panic!("no heartbeat in {relative}");
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8 JSON")
}

#[test]
fn rust_client_producer_heartbeat() {
    let body =
        first_heartbeat_body("rocketmq-client-rust/route-mode-broker-conn-heartbeat-send-v1.bin");
    assert_eq!(
        text(&body),
        r#"{"clientID":"192.0.2.2@6900#1795309251541854339","producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"rust_smoke_pg"}],"consumerDataSet":[],"heartbeatFingerprint":0,"withoutSub":false}"#
    );
    let data = HeartbeatData::from_json(&body).expect("valid heartbeat");
    assert_eq!(
        data,
        HeartbeatData {
            client_id: "192.0.2.2@6900#1795309251541854339".into(),
            consumer_data_set: Vec::new(),
            heartbeat_fingerprint: 0,
            producer_data_set: vec![
                ProducerData {
                    group_name: "CLIENT_INNER_PRODUCER".into()
                },
                ProducerData {
                    group_name: "rust_smoke_pg".into()
                },
            ],
            without_sub: false,
        }
    );
    // Re-encoded in fastjson's key order.
    assert_eq!(
        text(&data.to_json()),
        r#"{"clientID":"192.0.2.2@6900#1795309251541854339","consumerDataSet":[],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"rust_smoke_pg"}],"withoutSub":false}"#
    );
}

fn all_subscription(topic: &str, sub_version: i64) -> SubscriptionData {
    SubscriptionData {
        sub_string: "*".into(),
        sub_version,
        topic: topic.into(),
        ..SubscriptionData::default()
    }
}

#[test]
fn ali_ons_consumer_heartbeat_defaults_missing_fields() {
    let body = first_heartbeat_body("ali-ons/route-mode-push-consumer-broker-conn.bin");
    let mut data = HeartbeatData::from_json(&body).expect("valid heartbeat");
    data.recompute_tags();
    assert_eq!(
        data,
        HeartbeatData {
            client_id: "192.0.2.2@ali-ons-smoke-29450".into(),
            consumer_data_set: vec![ConsumerData {
                consume_from_where: ConsumeFromWhere::ConsumeFromFirstOffset,
                consume_type: ConsumeType::ConsumePassively,
                group_name: "ali_ons_smoke_cg".into(),
                message_model: MessageModel::Clustering,
                subscription_data_set: vec![
                    all_subscription("%RETRY%ali_ons_smoke_cg", 1_795_307_114_694),
                    all_subscription("TopicTest", 1_795_307_114_694),
                ],
                unit_mode: false,
            }],
            heartbeat_fingerprint: 0,
            producer_data_set: vec![ProducerData {
                group_name: "CLIENT_INNER_PRODUCER".into()
            }],
            without_sub: false,
        }
    );
}

#[test]
fn rust_client_consumer_heartbeat() {
    let body =
        first_heartbeat_body("rocketmq-client-rust/route-mode-push-consumer-broker-conn.bin");
    let data = HeartbeatData::from_json(&body).expect("valid heartbeat");
    let consumer = &data.consumer_data_set[0];
    assert_eq!(consumer.group_name, "rust_smoke_cg");
    assert_eq!(
        consumer.consume_from_where,
        ConsumeFromWhere::ConsumeFromFirstOffset
    );
    assert_eq!(
        consumer.subscription_data_set,
        vec![
            all_subscription("%RETRY%rust_smoke_cg", 0),
            all_subscription("TopicTest", 0)
        ]
    );
    assert_eq!(data.producer_data_set.len(), 1);
}

#[test]
fn cpp_consumer_heartbeat_uses_ordinals_and_string_numbers() {
    let body = first_heartbeat_body("rocketmq-cpp-py/route-mode-push-consumer-broker-conn.bin");
    assert!(text(&body).contains(r#""consumeFromWhere":0,"consumeType":1"#));
    let mut data = HeartbeatData::from_json(&body).expect("valid heartbeat");
    let consumer = &data.consumer_data_set[0];
    assert_eq!(
        consumer.consume_from_where,
        ConsumeFromWhere::ConsumeFromLastOffset
    );
    assert_eq!(consumer.consume_type, ConsumeType::ConsumePassively);
    assert_eq!(consumer.message_model, MessageModel::Clustering);
    assert_eq!(
        consumer.subscription_data_set[1].sub_version,
        1_795_307_131_724
    );
    assert_eq!(consumer.subscription_data_set[1].expression_type, "TAG");
    data.recompute_tags();
    assert_eq!(
        data.consumer_data_set[0].subscription_data_set,
        vec![
            all_subscription("%RETRY%cpp_smoke_cg", 1_795_307_131_724),
            all_subscription("TopicTest", 1_795_307_131_724),
        ]
    );
    assert!(data.producer_data_set.is_empty());
}

#[test]
fn tagged_heartbeat_codes_are_recomputed() {
    let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"T","subString":"TagA || TagB","codeSet":[1,2]}]}]}"#;
    let mut data = HeartbeatData::from_json(body).expect("valid heartbeat");
    data.recompute_tags();
    let sub = &data.consumer_data_set[0].subscription_data_set[0];
    assert_eq!(sub.tags_set, ["TagA", "TagB"]);
    assert_eq!(sub.code_set, [2_598_919, 2_598_920]);
}

fn protocol_route() -> TopicRouteData {
    TopicRouteData {
        broker_datas: vec![BrokerData {
            broker_addrs: [
                (0, "10.0.0.1:10911".to_owned()),
                (1, "10.0.0.2:10911".to_owned()),
            ]
            .into_iter()
            .collect(),
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            enable_acting_master: false,
            zone_name: None,
        }],
        queue_datas: vec![QueueData {
            broker_name: "broker-a".into(),
            perm: 6,
            read_queue_nums: 4,
            topic_sys_flag: 0,
            write_queue_nums: 4,
        }],
        ..TopicRouteData::default()
    }
}

/// PROTOCOL.md §5.1, standard form.
const ROUTE_STANDARD: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

/// PROTOCOL.md §5.1, legacy form: identical except unquoted `brokerAddrs` keys.
const ROUTE_LEGACY: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

#[test]
fn route_json_both_styles_byte_for_byte() {
    let route = protocol_route();
    assert_eq!(
        text(&route.to_json_in(RouteJsonStyle::Standard)),
        ROUTE_STANDARD
    );
    assert_eq!(
        text(&route.to_json_in(RouteJsonStyle::Legacy)),
        ROUTE_LEGACY
    );
    // Style per client: Java 5.x (479) standard; Go (317), ali-ons (121), C++ (63) legacy.
    assert_eq!(
        text(&route.to_json_in(RouteJsonStyle::for_request(479, false))),
        ROUTE_STANDARD
    );
    for version in [317, 121, 63] {
        assert_eq!(
            text(&route.to_json_in(RouteJsonStyle::for_request(version, false))),
            ROUTE_LEGACY
        );
    }
    assert_eq!(
        text(&route.to_json_in(RouteJsonStyle::for_request(63, true))),
        ROUTE_STANDARD
    );
    // Both parse back.
    assert_eq!(
        TopicRouteData::from_json(ROUTE_STANDARD.as_bytes()),
        Ok(route.clone())
    );
    assert_eq!(
        TopicRouteData::from_json(ROUTE_LEGACY.as_bytes()),
        Ok(route)
    );
}

#[test]
fn cluster_info_legacy_matches_protocol_example() {
    let expected = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;
    let mut info = ClusterInfo::default();
    info.broker_addr_table
        .insert("broker-a".into(), protocol_route().broker_datas.remove(0));
    info.cluster_addr_table
        .entry("DefaultCluster".into())
        .or_default()
        .insert("broker-a".into());
    assert_eq!(text(&info.to_json()), expected);
    assert_eq!(ClusterInfo::from_json(expected.as_bytes()), Ok(info));
}

#[test]
fn lenient_parser_on_fastjson_quirks() {
    // Unquoted integer keys, nested; keys inside string values untouched.
    let input = br#"{"a":{1:{"b":{-2:"x"}},"s":"{3:\"q\"}"},"n":[4,{5:6}]}"#;
    assert_eq!(
        text(&normalize(input)),
        r#"{"a":{"1":{"b":{"-2":"x"}},"s":"{3:\"q\"}"},"n":[4,{"5":6}]}"#
    );
    let value: serde_json::Value = parse_lenient("test", input).expect("lenient JSON");
    assert_eq!(value["a"]["1"]["b"]["-2"], "x");
    assert_eq!(value["a"]["s"], "{3:\"q\"}");
    assert_eq!(value["n"][1]["5"], 6);
    // Unknown fields ignored, nulls read as defaults.
    let broker = BrokerData::from_json(
        br#"{"brokerAddrs":{0:"a:1"},"brokerName":null,"cluster":"c","futureField":{7:[]},"enableActingMaster":null}"#,
    )
    .expect("lenient BrokerData");
    assert_eq!(broker.broker_addrs.get(&0).map(String::as_str), Some("a:1"));
    assert_eq!(broker.broker_name, "");
    assert!(!broker.enable_acting_master);
    // Malformed input is an error, never a panic.
    assert!(HeartbeatData::from_json(b"{\"clientID\":").is_err());
    assert!(HeartbeatData::from_json(b"\"text\"").is_err());
}
