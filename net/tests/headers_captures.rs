//! Typed headers decoded from what real clients sent (`shared/wire-captures`), through the
//! public API only: frames are read with `codec::frame::decode`, then each request's extFields
//! go through its typed header.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rmq_net::codec::body::heartbeat::HeartbeatData;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::RequestCode;
use rmq_net::codec::frame;
use rmq_net::codec::header::client::{
    GetConsumerListByGroupRequestHeader, UnregisterClientRequestHeader,
};
use rmq_net::codec::header::namesrv::GetRouteInfoRequestHeader;
use rmq_net::codec::header::send::{SendHeaderForm, SendMessageRequestHeader};
use rmq_net::codec::header::{CommandHeader, ACL_KEYS, RPC_EXTRA_KEYS};
use rmq_net::codec::limits::FrameLimits;
use rmq_net::{CodecError, ExtFields, RemotingCommand};

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/wire-captures")
}

/// Every frame of one capture file.
fn frames(relative: &str) -> Vec<RemotingCommand> {
    let path = captures_dir().join(relative);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("wire capture {} missing: {e}", path.display()));
    let mut rest = bytes.as_slice();
    let mut commands = Vec::new();
    while !rest.is_empty() {
        let (command, used) = frame::decode(rest, &FrameLimits::default())
            .expect("captured frame decodes")
            .expect("captured frame is complete");
        commands.push(command);
        rest = &rest[used..];
    }
    commands
}

fn ext(pairs: &[(&str, &str)]) -> ExtFields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn every_captured_request_decodes_to_its_typed_header() {
    let mut decoded: BTreeMap<i32, usize> = BTreeMap::new();
    for dir in ["ali-ons", "rocketmq-client-rust", "rocketmq-cpp-py"] {
        let entries = std::fs::read_dir(captures_dir().join(dir)).expect("capture dir");
        for entry in entries {
            let name = entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name");
            if !name.ends_with(".bin") {
                continue;
            }
            for command in frames(&format!("{dir}/{name}")) {
                let code = command.request_code();
                match code {
                    RequestCode::SendMessage
                    | RequestCode::SendMessageV2
                    | RequestCode::SendBatchMessage => {
                        let header =
                            SendMessageRequestHeader::decode_for_code(code, &command.ext_fields)
                                .unwrap_or_else(|e| panic!("{name}: send header: {e}"));
                        assert_eq!(header.topic, "TopicTest", "{name}");
                        assert_eq!(header.default_topic, "TBW102", "{name}");
                        assert_eq!(header.default_topic_queue_nums, 4, "{name}");
                    }
                    RequestCode::UnregisterClient => {
                        let header = UnregisterClientRequestHeader::decode_command(&command)
                            .unwrap_or_else(|e| panic!("{name}: unregister: {e}"));
                        assert!(header.client_id.contains('@'), "{name}");
                    }
                    RequestCode::GetConsumerListByGroup => {
                        let header = GetConsumerListByGroupRequestHeader::decode_command(&command)
                            .unwrap_or_else(|e| panic!("{name}: consumer list: {e}"));
                        assert!(header.consumer_group.ends_with("_smoke_cg"), "{name}");
                    }
                    RequestCode::GetRouteinfoByTopic => {
                        let header = GetRouteInfoRequestHeader::decode_command(&command)
                            .unwrap_or_else(|e| panic!("{name}: route: {e}"));
                        assert!(!header.topic.is_empty(), "{name}");
                    }
                    RequestCode::HeartBeat => {
                        let data = HeartbeatData::from_json(&command.body)
                            .unwrap_or_else(|e| panic!("{name}: heartbeat body: {e}"));
                        assert!(!data.client_id.is_empty(), "{name}");
                    }
                    other => panic!("{name}: unexpected request code {other:?}"),
                }
                *decoded.entry(command.code).or_default() += 1;
            }
        }
    }
    for code in [10, 310, 34, 35, 38, 105] {
        assert!(
            decoded.get(&code).copied().unwrap_or(0) > 0,
            "no capture exercised code {code}"
        );
    }
}

#[test]
fn ali_ons_v2_send_header_from_capture() {
    let commands = frames("ali-ons/route-mode-broker-conn-send-v2.bin");
    let first = &commands[0];
    assert_eq!(first.code, 310);
    // ali-ons wrote `"d":4,"k":false`; the JSON header decoder turned them into text.
    let expected_ext = ext(&[
        ("a", "ali_ons_smoke_pg"),
        ("b", "TopicTest"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "0"),
        ("f", "0"),
        ("g", "1795307075074"),
        ("h", "0"),
        ("i", "TAGS\u{1}TagA\u{2}KEYS\u{1}key-0\u{2}"),
        ("j", "0"),
        ("k", "false"),
    ]);
    assert_eq!(first.ext_fields, expected_ext);
    let header = SendMessageRequestHeader::decode_for_code(first.request_code(), &expected_ext)
        .expect("valid V2 header");
    assert_eq!(
        header,
        SendMessageRequestHeader {
            producer_group: "ali_ons_smoke_pg".into(),
            topic: "TopicTest".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 0,
            sys_flag: 0,
            born_timestamp: 1_795_307_075_074,
            flag: 0,
            properties: Some("TAGS\u{1}TagA\u{2}KEYS\u{1}key-0\u{2}".into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: None,
            broker_name: None,
        }
    );
    assert!(!header.is_batch());
    // Re-encoding in V2 gives back exactly what ali-ons sent (as text).
    assert_eq!(header.to_ext_in(SendHeaderForm::V2), expected_ext);
    // The second send picked queue 1.
    let second = SendMessageRequestHeader::decode_for_code(
        commands[1].request_code(),
        &commands[1].ext_fields,
    )
    .expect("valid V2 header");
    assert_eq!(second.queue_id, 1);
}

#[test]
fn rust_client_v1_send_header_with_bname() {
    let commands = frames("rocketmq-client-rust/route-mode-broker-conn-heartbeat-send-v1.bin");
    let send = &commands[1];
    assert_eq!(send.code, 10);
    let expected_ext = ext(&[
        ("batch", "false"),
        ("bname", "broker-a"),
        ("bornTimestamp", "1795309251553"),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("flag", "0"),
        ("producerGroup", "rust_smoke_pg"),
        (
            "properties",
            "KEYS\u{1}key-0\u{2}TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}C00002021AF4AC4C820C6C5D43E10000\u{2}",
        ),
        ("queueId", "2"),
        ("reconsumeTimes", "0"),
        ("sysFlag", "0"),
        ("topic", "TopicTest"),
        ("unitMode", "false"),
    ]);
    assert_eq!(send.ext_fields, expected_ext);
    let header = SendMessageRequestHeader::decode_for_code(RequestCode::SendMessage, &expected_ext)
        .expect("valid V1 header");
    assert_eq!(header.producer_group, "rust_smoke_pg");
    assert_eq!(header.queue_id, 2);
    assert_eq!(header.born_timestamp, 1_795_309_251_553);
    assert_eq!(header.batch, Some(false));
    assert_eq!(header.unit_mode, Some(false));
    assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
    assert_eq!(header.to_ext_in(SendHeaderForm::V1), expected_ext);
    // The same header in V2 letters decodes identically from a 310 request.
    let v2 = header.to_ext_in(SendHeaderForm::V2);
    assert_eq!(v2.get("n"), Some("broker-a"));
    assert_eq!(
        SendMessageRequestHeader::decode_for_code(RequestCode::SendMessageV2, &v2),
        Ok(header)
    );
}

#[test]
fn cpp_v1_send_header_ignores_acl_keys() {
    let commands = frames("rocketmq-cpp-py/route-mode-broker-conn-send-v1.bin");
    let send = &commands[0];
    assert_eq!(send.code, 10);
    // The C++ client mixes numbers and strings; "batch":"0" and "unitMode":"0" are false.
    let expected_ext = ext(&[
        ("AccessKey", ""),
        ("OnsChannel", "ALIYUN"),
        ("Signature", "mQDiFG3E6/SBnZ+g60BM/zsX/Kg="),
        ("batch", "0"),
        ("bornTimestamp", "1795307091670"),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("flag", "0"),
        ("producerGroup", "cpp_smoke_pg"),
        (
            "properties",
            "KEYS\u{1}key-0\u{2}TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}0100007F00006F780000569999710100\u{2}WAIT\u{1}true\u{2}",
        ),
        ("queueId", "0"),
        ("reconsumeTimes", "0"),
        ("sysFlag", "0"),
        ("topic", "TopicTest"),
        ("unitMode", "0"),
    ]);
    assert_eq!(send.ext_fields, expected_ext);
    let header = SendMessageRequestHeader::decode_for_code(RequestCode::SendMessage, &expected_ext)
        .expect("valid V1 header");
    assert_eq!(header.producer_group, "cpp_smoke_pg");
    assert_eq!(header.batch, Some(false));
    assert_eq!(header.unit_mode, Some(false));
    assert_eq!(header.broker_name, None);
    let written = header.to_ext_in(SendHeaderForm::V1);
    for key in ACL_KEYS {
        assert!(!written.contains_key(key), "{key} must not be echoed");
    }

    let unregister = &commands[2];
    let header = UnregisterClientRequestHeader::decode_command(unregister).expect("valid");
    assert_eq!(header.client_id, "29057-127.0.0.1@DEFAULT");
    assert_eq!(header.producer_group.as_deref(), Some("cpp_smoke_pg"));
    assert_eq!(header.consumer_group.as_deref(), Some(""));
}

#[test]
fn rpc_extras_are_ignored_and_required_fields_enforced() {
    let mut fields = ext(&[("topic", "TopicTest"), ("acceptStandardJsonOnly", "TRUE")]);
    for key in RPC_EXTRA_KEYS.into_iter().chain(ACL_KEYS) {
        fields.insert(key, "x");
    }
    let header = GetRouteInfoRequestHeader::from_ext_fields(&fields).expect("valid");
    assert_eq!(header.topic, "TopicTest");
    assert_eq!(header.accept_standard_json_only, Some(true));
    assert_eq!(header.to_ext().len(), 2);

    fields.remove("topic");
    assert_eq!(
        GetRouteInfoRequestHeader::from_ext_fields(&fields),
        Err(CodecError::MissingField("topic"))
    );
    let mut v2 = ext(&[
        ("a", "pg"),
        ("b", "t"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "0"),
        ("f", "0"),
        ("g", "1"),
    ]);
    assert_eq!(
        SendMessageRequestHeader::decode_for_code(RequestCode::SendMessageV2, &v2),
        Err(CodecError::MissingField("h"))
    );
    v2.insert("h", "zero");
    assert_eq!(
        SendMessageRequestHeader::decode_for_code(RequestCode::SendMessageV2, &v2),
        Err(CodecError::InvalidField {
            field: "h",
            value: "zero".into()
        })
    );
}
