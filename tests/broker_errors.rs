//! Black-box tests of the broker's answers to bad input, each with 1 and 2 shards: garbage
//! bytes and oversized frames close the connection, unknown codes and forbidden sends get
//! their response codes, while a concurrent well-behaved client keeps being served; send
//! rejections (permissions, names, system topics, queue range, auto-create off); oneway
//! requests never get a reply (PROTOCOL.md §1.1, §1.3, §1.9, §4.1).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    assert_code, block_on, call, create_topic, offset_of, properties, pull, query_offset_request,
    queue_request, send_header, send_request, send_v2, update_offset_request, Broker, PullSpec,
    RawConn,
};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::message::Properties;
use rmq_net::{ExtFields, RemotingCommand};

/// How long a test waits for the broker to close a connection.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Times the bad-input sequence repeats while the good client runs.
const BAD_INPUT_ROUNDS: usize = 10;

/// Runs every kind of bad input against `broker` from this (blocking) thread.
fn bad_inputs(broker: std::net::SocketAddr, read_only_topic: &str) {
    // Garbage: a negative length word.
    let mut garbage = RawConn::connect(broker);
    std::io::Write::write_all(&mut garbage.stream, &[0xFF; 64]).expect("write");
    assert!(
        garbage.closed_within(CLOSE_WAIT),
        "garbage: connection closed"
    );

    // A frame whose header is not JSON.
    let mut not_json = RawConn::connect(broker);
    let header = b"this is not a json header";
    let mut frame = Vec::new();
    frame.extend_from_slice(&(4 + header.len() as i32).to_be_bytes());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(header);
    std::io::Write::write_all(&mut not_json.stream, &frame).expect("write");
    assert!(
        not_json.closed_within(CLOSE_WAIT),
        "bad header: connection closed"
    );

    // An unknown serialize type.
    let mut bad_type = RawConn::connect(broker);
    std::io::Write::write_all(&mut bad_type.stream, &[0, 0, 0, 6, 7, 0, 0, 2, b'{', b'}'])
        .expect("write");
    assert!(
        bad_type.closed_within(CLOSE_WAIT),
        "bad serialize type: connection closed"
    );

    // Over the 16 MiB frame limit: closed before the body is sent.
    let mut big = RawConn::connect(broker);
    std::io::Write::write_all(&mut big.stream, &(17 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    std::io::Write::write_all(&mut big.stream, &[0, 0, 0, 10]).expect("write");
    assert!(
        big.closed_within(CLOSE_WAIT),
        "oversized frame: connection closed"
    );

    // Unknown request code: REQUEST_CODE_NOT_SUPPORTED, and the connection stays usable.
    let mut unknown = RawConn::connect(broker);
    unknown.send(
        &RemotingCommand::request(RequestCode::Unknown(4242), ExtFields::new()).with_opaque(77),
    );
    let reply = unknown.read(CLOSE_WAIT).expect("reply to an unknown code");
    assert!(reply.is_response());
    assert_eq!(reply.opaque, 77);
    assert_code(&reply, ResponseCode::RequestCodeNotSupported);
    assert!(reply.remark.unwrap_or_default().contains("4242"));
    unknown.send(&queue_request(RequestCode::GetMaxOffset, read_only_topic, 0).with_opaque(78));
    let reply = unknown
        .read(CLOSE_WAIT)
        .expect("served after an unknown code");
    assert_eq!(reply.opaque, 78);
    assert_code(&reply, ResponseCode::Success);

    // A send to a topic without write permission: NO_PERMISSION.
    let header = send_header(read_only_topic, 0, &Properties::new());
    let request = send_request(
        RequestCode::SendMessageV2,
        &header,
        Bytes::from_static(b"nope"),
    );
    unknown.send(&request.with_opaque(79));
    let reply = unknown.read(CLOSE_WAIT).expect("reply to a forbidden send");
    assert_eq!(reply.opaque, 79);
    assert_code(&reply, ResponseCode::NoPermission);
}

fn bad_input_is_refused_while_others_are_served(shards: usize) {
    let broker = Broker::start(shards, "");
    let addr = broker.addr;
    block_on(async {
        let client = broker.client();
        create_topic(&client, "ReadOnly", 4, 4).await;
        create_topic(&client, "Good", 4, 6).await;
        let reply = send_v2(
            &client,
            "Good",
            0,
            b"warm-up",
            &properties(None, None, None),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        let connection = client.connection().expect("connected").id();

        let done = Arc::new(AtomicBool::new(false));
        let bad = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                for _ in 0..BAD_INPUT_ROUNDS {
                    bad_inputs(addr, "ReadOnly");
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        // The well-behaved client sends and reads back while the bad input is handled.
        let mut sent = 1;
        while !done.load(Ordering::SeqCst) || sent < 5 {
            let queue_id = sent % 4;
            let body = format!("good-{sent}");
            let reply = send_v2(
                &client,
                "Good",
                queue_id,
                body.as_bytes(),
                &properties(None, None, None),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            sent += 1;
            assert!(sent < 100_000, "bad-input thread finishes");
        }
        bad.join().expect("bad-input checks passed");
        assert_eq!(
            client.connection().expect("still connected").id(),
            connection,
            "the good client's connection was never dropped"
        );
        let mut stored = 0;
        for queue_id in 0..4 {
            stored += common::pull_all(&client, "Good", queue_id).await.len();
        }
        assert_eq!(stored, sent as usize, "every acknowledged send is readable");
        // The forbidden send stored nothing.
        for queue_id in 0..4 {
            let max = offset_of(
                &call(
                    &client,
                    queue_request(RequestCode::GetMaxOffset, "ReadOnly", queue_id),
                )
                .await,
            );
            assert_eq!(max, 0);
        }
    });
}

#[test]
fn bad_input_is_refused_while_others_are_served_1_shard() {
    bad_input_is_refused_while_others_are_served(1);
}

#[test]
fn bad_input_is_refused_while_others_are_served_2_shards() {
    bad_input_is_refused_while_others_are_served(2);
}

fn send_rejections(shards: usize) {
    let broker = Broker::start(shards, "autoCreateTopicEnable=false\nmaxMessageSize=1024");
    block_on(async {
        let client = broker.client();
        let none = properties(None, None, None);
        // Auto-create disabled: an unknown topic does not exist.
        let reply = send_v2(&client, "Unknown", 0, b"x", &none).await;
        assert_code(&reply, ResponseCode::TopicNotExist);
        let reply = send_v2(&client, "Unknown", -1, b"x", &none).await;
        assert_code(&reply, ResponseCode::TopicNotExist);

        // Read-only topic (perm 4): sends refused, pulls allowed.
        create_topic(&client, "RO", 4, 4).await;
        for queue_id in 0..4 {
            let reply = send_v2(&client, "RO", queue_id, b"x", &none).await;
            assert_code(&reply, ResponseCode::NoPermission);
            let reply = pull(&client, &PullSpec::new("RO", queue_id, 0)).await;
            assert_eq!(reply.code, ResponseCode::PullNotFound);
        }
        // The same through SEND_MESSAGE (10).
        let header = send_header("RO", 1, &Properties::new());
        let reply = call(
            &client,
            send_request(RequestCode::SendMessage, &header, Bytes::from_static(b"x")),
        )
        .await;
        assert_code(&reply, ResponseCode::NoPermission);
        // Write-only topic (perm 2): sends accepted, pulls refused.
        create_topic(&client, "WO", 4, 2).await;
        let reply = send_v2(&client, "WO", 0, b"x", &none).await;
        assert_code(&reply, ResponseCode::Success);
        let reply = call(&client, PullSpec::new("WO", 0, 0).request()).await;
        assert_code(&reply, ResponseCode::NoPermission);

        // Invalid topic names.
        let long = "T".repeat(128);
        for topic in ["bad topic", "bad/topic", "", long.as_str()] {
            let reply = send_v2(&client, topic, 0, b"x", &none).await;
            assert_code(&reply, ResponseCode::InvalidParameter);
        }
        // System topics clients may not send to.
        for topic in ["SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC"] {
            let reply = send_v2(&client, topic, 0, b"x", &none).await;
            assert_code(&reply, ResponseCode::NoPermission);
        }

        // Queue range: [0, max(read, write)); negative lets the broker pick.
        create_topic(&client, "Q4", 4, 6).await;
        for queue_id in [4, 100] {
            let reply = send_v2(&client, "Q4", queue_id, b"x", &none).await;
            assert_code(&reply, ResponseCode::InvalidParameter);
        }
        for _ in 0..8 {
            let reply = send_v2(&client, "Q4", -1, b"x", &none).await;
            assert_code(&reply, ResponseCode::Success);
            let queue_id: i32 = reply
                .ext("queueId")
                .and_then(|q| q.parse().ok())
                .expect("queueId");
            assert!((0..4).contains(&queue_id), "picked queue {queue_id}");
        }

        // Body over maxMessageSize, and a transaction message without its producer group
        // (PGROUP), which could never be checked back.
        let reply = send_v2(&client, "Q4", 0, &[b'x'; 2000], &none).await;
        assert_code(&reply, ResponseCode::MessageIllegal);
        let mut tran = Properties::new();
        tran.insert("TRAN_MSG", "true").expect("property");
        let reply = send_v2(&client, "Q4", 0, b"x", &tran).await;
        assert_code(&reply, ResponseCode::MessageIllegal);

        // A send header without its topic: SYSTEM_ERROR, the connection stays.
        let header = send_header("Q4", 0, &Properties::new());
        let mut request = send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::from_static(b"x"),
        );
        request.ext_fields.remove("b");
        let reply = call(&client, request).await;
        assert_code(&reply, ResponseCode::SystemError);

        // Nothing refused was stored.
        for (topic, queue_id, stored) in [("RO", 0, 0), ("RO", 1, 0), ("WO", 0, 1)] {
            let max = offset_of(
                &call(
                    &client,
                    queue_request(RequestCode::GetMaxOffset, topic, queue_id),
                )
                .await,
            );
            assert_eq!(max, stored, "{topic}/{queue_id}");
        }
        let mut total = 0;
        for queue_id in 0..4 {
            total += offset_of(
                &call(
                    &client,
                    queue_request(RequestCode::GetMaxOffset, "Q4", queue_id),
                )
                .await,
            );
        }
        assert_eq!(total, 8, "only the accepted sends to Q4");
    });
}

#[test]
fn send_rejections_1_shard() {
    send_rejections(1);
}

#[test]
fn send_rejections_2_shards() {
    send_rejections(2);
}

/// Sends `request()` until its reply is SUCCESS with `offset == want` (bounded); every frame
/// read must answer the request just sent.
fn poll(
    raw: &mut RawConn,
    opaque: &mut i32,
    request: impl Fn() -> RemotingCommand,
    want: i64,
) -> bool {
    for _ in 0..100 {
        *opaque += 1;
        raw.send(&request().with_opaque(*opaque));
        let reply = raw.read(Duration::from_secs(5)).expect("reply");
        assert_eq!(reply.opaque, *opaque, "a reply to a oneway request arrived");
        if reply.response_code() == ResponseCode::Success && offset_of(&reply) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn oneway_requests_get_no_reply(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, "RO", 4, 4).await;
        create_topic(&client, "OneWay", 4, 6).await;
    });
    let mut raw = RawConn::connect(broker.addr);
    // Oneway requests that succeed, fail and are unknown.
    for queue_id in 0..4 {
        raw.send(
            &update_offset_request("OG", "OneWay", queue_id, 40 + i64::from(queue_id))
                .oneway()
                .with_opaque(1),
        );
        let header = send_header("OneWay", queue_id, &Properties::new());
        raw.send(
            &send_request(
                RequestCode::SendMessageV2,
                &header,
                Bytes::from_static(b"oneway"),
            )
            .oneway()
            .with_opaque(2),
        );
    }
    raw.send(
        &RemotingCommand::request(RequestCode::Unknown(4242), ExtFields::new())
            .oneway()
            .with_opaque(3),
    );
    let header = send_header("RO", 0, &Properties::new());
    raw.send(
        &send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::from_static(b"x"),
        )
        .oneway()
        .with_opaque(4),
    );
    raw.send(
        &send_request(
            RequestCode::SendMessageV2,
            &send_header("bad topic", 0, &Properties::new()),
            Bytes::new(),
        )
        .oneway()
        .with_opaque(5),
    );

    // Only replies to the two-way requests below ever arrive.
    let mut opaque = 100;
    for queue_id in 0..4 {
        let want = 40 + i64::from(queue_id);
        let query = || query_offset_request("OG", "OneWay", queue_id, Some(false));
        assert!(
            poll(&mut raw, &mut opaque, query, want),
            "oneway UPDATE_CONSUMER_OFFSET applied"
        );
        let max = || queue_request(RequestCode::GetMaxOffset, "OneWay", queue_id);
        assert!(poll(&mut raw, &mut opaque, max, 1), "oneway send stored");
    }
    assert!(
        raw.read(Duration::from_millis(300)).is_none(),
        "no reply to any oneway request"
    );
}

#[test]
fn oneway_requests_get_no_reply_1_shard() {
    oneway_requests_get_no_reply(1);
}

#[test]
fn oneway_requests_get_no_reply_2_shards() {
    oneway_requests_get_no_reply(2);
}
