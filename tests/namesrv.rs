//! Black-box tests of `rmq namesrv`: a broker registers, clients get routes in both JSON key
//! forms, bad input gets the right codes or a clean close, and expiry follows the connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use rmq_net::codec::body::register::RegisterBrokerBody;
use rmq_net::codec::body::topic::{TopicConfig, TopicConfigAndMappingSerializeWrapper};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{LanguageCode, RequestCode, ResponseCode, SerializeType};
use rmq_net::codec::header::namesrv::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};

const TIMEOUT: Duration = Duration::from_secs(5);

fn register_request(topics: &[&str]) -> RemotingCommand {
    let header = RegisterBrokerRequestHeader {
        broker_name: "broker-a".into(),
        broker_addr: "10.0.0.1:10911".into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "10.0.0.1:10912".into(),
        broker_id: 0,
        heartbeat_timeout_millis: None,
        enable_acting_master: Some(false),
        compressed: false,
        body_crc32: 0,
        zone_name: None,
    };
    let mut wrapper = TopicConfigAndMappingSerializeWrapper::default();
    for topic in topics {
        let mut config = TopicConfig::new(*topic);
        config.read_queue_nums = 4;
        config.write_queue_nums = 4;
        wrapper
            .topic_config_table
            .insert((*topic).to_owned(), config);
    }
    wrapper.data_version.counter = 1;
    let body = RegisterBrokerBody {
        filter_server_list: vec![],
        topic_config_serialize_wrapper: wrapper,
    };
    RemotingCommand::request(RequestCode::RegisterBroker, header.to_ext()).with_body(body.to_json())
}

fn route_request(topic: &str, version: i32) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: None,
    };
    let mut request = RemotingCommand::request(RequestCode::GetRouteinfoByTopic, header.to_ext());
    request.version = version;
    request.language = LanguageCode::Java;
    request
}

#[test]
fn broker_registers_and_clients_get_both_route_forms() {
    let server = Server::start(
        &[
            "namesrv",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--kv-config",
            "target/test-namesrv-kv.json",
        ],
        1,
    );
    let addr = server.addr("namesrv").to_string();
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let broker = RemotingClient::new(addr.clone(), ClientConfig::default());
        let reply = broker.invoke(register_request(&["TopicTest", "TBW102"]), TIMEOUT).await.expect("register");
        assert_eq!(reply.response_code(), ResponseCode::Success, "{:?}", reply.remark);

        let client = RemotingClient::new(addr.clone(), ClientConfig::default());
        let modern = client.invoke(route_request("TopicTest", 479), TIMEOUT).await.expect("route");
        assert_eq!(modern.response_code(), ResponseCode::Success);
        assert_eq!(
            std::str::from_utf8(&modern.body).expect("utf8"),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        let legacy = client.invoke(route_request("TopicTest", 121), TIMEOUT).await.expect("route");
        assert!(
            std::str::from_utf8(&legacy.body).expect("utf8").contains(r#""brokerAddrs":{0:"10.0.0.1:10911"}"#),
            "legacy form for old clients"
        );

        // Binary header request gets a binary header response.
        let binary = RemotingClient::new(
            addr.clone(),
            ClientConfig { serialize_type: SerializeType::RocketMq, ..ClientConfig::default() },
        );
        let reply = binary.invoke(route_request("TopicTest", 479), TIMEOUT).await.expect("route");
        assert_eq!(reply.serialize_type, SerializeType::RocketMq);
        assert_eq!(reply.body, modern.body);

        let missing = client.invoke(route_request("NoSuchTopic", 479), TIMEOUT).await.expect("route");
        assert_eq!(missing.response_code(), ResponseCode::TopicNotExist);
        assert!(missing.body.is_empty());

        let unknown = RemotingCommand::request(RequestCode::Unknown(4242), ExtFields::new());
        let reply = client.invoke(unknown, TIMEOUT).await.expect("reply");
        assert_eq!(reply.response_code(), ResponseCode::RequestCodeNotSupported);

        // A missing required header field is a SYSTEM_ERROR with a remark, not a dropped connection.
        let bad = RemotingCommand::request(RequestCode::GetRouteinfoByTopic, ExtFields::new());
        let reply = client.invoke(bad, TIMEOUT).await.expect("reply");
        assert_eq!(reply.response_code(), ResponseCode::SystemError);
        assert!(reply.remark.unwrap_or_default().contains("topic"));

        // The broker's connection closes: its routes disappear at once.
        broker.close();
        let mut gone = false;
        for _ in 0..50 {
            let reply = client.invoke(route_request("TopicTest", 479), TIMEOUT).await.expect("route");
            if reply.response_code() == ResponseCode::TopicNotExist {
                gone = true;
                break;
            }
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "route removed after the broker connection closed");
    });
}

#[test]
fn garbage_and_oversized_frames_are_closed_while_others_are_served() {
    let server = Server::start(
        &[
            "namesrv",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--kv-config",
            "target/test-namesrv-kv2.json",
        ],
        1,
    );
    let addr = server.addr("namesrv");
    // Garbage: a negative length word.
    let mut garbage = TcpStream::connect(addr).expect("connect");
    garbage.write_all(&[0xFF; 64]).expect("write");
    garbage.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(
        garbage.read(&mut buf).expect("closed, not reset"),
        0,
        "server closed the connection"
    );
    // Over the 16 MiB frame limit: closed before the body is sent.
    let mut big = TcpStream::connect(addr).expect("connect");
    big.write_all(&(17 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    big.write_all(&[0, 0, 0, 10]).expect("write");
    big.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    assert_eq!(big.read(&mut buf).unwrap_or(0), 0, "oversized frame closed");
    // A well-behaved client is unaffected.
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
        let reply = client
            .invoke(
                RemotingCommand::request(
                    RequestCode::GetAllTopicListFromNameserver,
                    ExtFields::new(),
                ),
                TIMEOUT,
            )
            .await
            .expect("served");
        assert_eq!(reply.response_code(), ResponseCode::Success);
        assert_eq!(reply.body, Bytes::from_static(br#"{"topicList":[]}"#));
    });
}
