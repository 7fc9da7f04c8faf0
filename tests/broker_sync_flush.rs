//! Black-box tests of SYNC_FLUSH replies (`src/broker/durable_replies.rs`), with 1 and 2
//! shards: sends pipelined on several connections are each answered once, SUCCESS with their
//! own offsets, and everything answered is stored; a flush wait that times out
//! (`syncFlushTimeout=1`) answers FLUSH_DISK_TIMEOUT, and such a message (or batch) is stored
//! all the same (Java's meaning of the code); a clean stop answers every send it stored; a
//! client that pipelines more sends than the shard parks (`PARKED_REPLIES_MAX`) and does not
//! read its replies holds up no other client, and still gets every reply once it reads.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{
    block_on, call, create_topic, properties, pull_all, send_header, send_request, send_v2, sent,
    Broker, TIMEOUT,
};
use futures_util::future::join_all;
use rmq::broker::durable_replies::PARKED_REPLIES_MAX;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::frame;
use rmq_net::codec::header::send::SendMessageResponseHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::codec::message::{encode_batch, BatchEntry};
use rmq_net::conn::{ClientConfig, RemotingClient};

const TOPIC: &str = "SyncFlushReplies";
const QUEUES: i32 = 4;
/// Connections sending at once.
const CONNECTIONS: usize = 3;
/// Sends each connection has in flight at once.
const PIPELINED: usize = 64;
/// Rounds of `PIPELINED` sends per connection.
const ROUNDS: usize = 3;
/// Most rounds of pipelined sends waiting for one to time out with a 1 ms flush timeout.
const TIMEOUT_ROUNDS_MAX: usize = 200;

fn body_of(conn: usize, index: usize) -> Vec<u8> {
    format!("sync-flush-{conn}-{index}-{}", "x".repeat(index % 97)).into_bytes()
}

fn pipelined_sends_are_answered_once_each(shards: usize) {
    let broker = Broker::start(shards, "flushDiskType=SYNC_FLUSH");
    let clients: Vec<_> = (0..CONNECTIONS).map(|_| broker.client()).collect();
    block_on(async {
        create_topic(&clients[0], TOPIC, QUEUES, 6).await;
        let mut answered = Vec::new();
        for round in 0..ROUNDS {
            let sends = clients.iter().enumerate().flat_map(|(conn, client)| {
                (0..PIPELINED).map(move |i| {
                    let index = round * PIPELINED + i;
                    let body = body_of(conn, index);
                    let queue_id = (index % QUEUES as usize) as i32;
                    async move {
                        let props =
                            properties(Some("TagA"), Some(&format!("k-{conn}-{index}")), None);
                        let reply = send_v2(client, TOPIC, queue_id, &body, &props).await;
                        (queue_id, sent(&reply, &body))
                    }
                })
            });
            answered.extend(join_all(sends).await);
        }
        assert_eq!(answered.len(), CONNECTIONS * PIPELINED * ROUNDS);
        let mut places = HashSet::new();
        for (queue_id, sent) in &answered {
            assert_eq!(sent.header.queue_id, *queue_id);
            assert!(
                places.insert((*queue_id, sent.header.queue_offset)),
                "two sends answered with one queue offset: {:?}",
                sent.header
            );
        }
        for queue_id in 0..QUEUES {
            let records = pull_all(&clients[0], TOPIC, queue_id).await;
            let expected = answered.iter().filter(|(q, _)| *q == queue_id).count();
            assert_eq!(
                records.len(),
                expected,
                "queue {queue_id}: every answered send stored"
            );
            for (queue_id_sent, sent) in answered.iter().filter(|(q, _)| *q == queue_id) {
                let record = &records[usize::try_from(sent.header.queue_offset).unwrap()];
                assert_eq!(record.queue_id, *queue_id_sent);
                assert_eq!(
                    record.body, sent.body,
                    "the answered offset holds that body"
                );
            }
        }
    });
}

#[test]
fn pipelined_sends_are_answered_once_each_1_shard() {
    pipelined_sends_are_answered_once_each(1);
}

#[test]
fn pipelined_sends_are_answered_once_each_2_shards() {
    pipelined_sends_are_answered_once_each(2);
}

/// With a 1 ms flush timeout (the least `syncFlushTimeout`) some sends' waits expire before
/// their group commit ends: they are answered FLUSH_DISK_TIMEOUT, with the send header (the
/// message is stored, as Java's reply means). Rounds of pipelined sends continue until one
/// was, at most [`TIMEOUT_ROUNDS_MAX`].
fn flush_timeout_answers_flush_disk_timeout(shards: usize) {
    let broker = Broker::start(shards, "flushDiskType=SYNC_FLUSH\nsyncFlushTimeout=1");
    let client = broker.client();
    block_on(async {
        create_topic(&client, TOPIC, 1, 6).await;
        let mut timeouts = 0;
        let mut replies = Vec::new();
        for round in 0..TIMEOUT_ROUNDS_MAX {
            let sends = (0..PIPELINED).map(|index| {
                let client = &client;
                async move {
                    let body = body_of(round, index);
                    let props = properties(None, None, None);
                    (send_v2(client, TOPIC, 0, &body, &props).await, body)
                }
            });
            for (reply, body) in join_all(sends).await {
                match reply.response_code() {
                    ResponseCode::Success => {}
                    ResponseCode::FlushDiskTimeout => timeouts += 1,
                    other => panic!("a send answered {other:?}: {:?}", reply.remark),
                }
                replies.push((reply, body));
            }
            if timeouts > 0 {
                break;
            }
        }
        assert!(timeouts > 0, "no send timed out waiting for its fdatasync");
        let records = pull_all(&client, TOPIC, 0).await;
        assert_eq!(
            records.len(),
            replies.len(),
            "timed-out sends are stored too"
        );
        let mut offsets = HashSet::new();
        for (reply, body) in &replies {
            let header = SendMessageResponseHeader::decode_command(reply)
                .expect("a stored send's reply carries its send header");
            assert!(offsets.insert(header.queue_offset), "one offset per send");
            let record = &records[usize::try_from(header.queue_offset).unwrap()];
            assert_eq!(record.body.as_ref(), body.as_slice());
        }
    });
}

/// A SYNC_FLUSH batch is answered the same way: FLUSH_DISK_TIMEOUT with one msgId per entry,
/// every entry stored.
fn batch_flush_timeout_answers_flush_disk_timeout(shards: usize) {
    const ENTRIES: usize = 3;
    let broker = Broker::start(shards, "flushDiskType=SYNC_FLUSH\nsyncFlushTimeout=1");
    let client = broker.client();
    block_on(async {
        create_topic(&client, TOPIC, 1, 6).await;
        let mut stored = 0;
        for round in 0..TIMEOUT_ROUNDS_MAX {
            let sends = (0..PIPELINED / 8).map(|index| {
                let client = &client;
                async move {
                    let entries: Vec<BatchEntry> = (0..ENTRIES)
                        .map(|entry| BatchEntry {
                            flag: 0,
                            body: Bytes::from(body_of(round, index * ENTRIES + entry)),
                            properties: properties(None, None, None),
                        })
                        .collect();
                    let mut body = BytesMut::new();
                    encode_batch(&entries, &mut body).expect("encode batch");
                    let mut header = send_header(TOPIC, 0, &properties(None, None, None));
                    header.batch = Some(true);
                    let request =
                        send_request(RequestCode::SendBatchMessage, &header, body.freeze());
                    call(client, request).await
                }
            });
            let mut timed_out = false;
            for reply in join_all(sends).await {
                match reply.response_code() {
                    ResponseCode::Success => {}
                    ResponseCode::FlushDiskTimeout => timed_out = true,
                    other => panic!("a batch answered {other:?}: {:?}", reply.remark),
                }
                let header = SendMessageResponseHeader::decode_command(&reply)
                    .expect("a stored batch's reply carries its send header");
                assert_eq!(
                    header.msg_id.split(',').count(),
                    ENTRIES,
                    "one msgId per entry"
                );
                stored += ENTRIES;
            }
            if timed_out {
                let records = pull_all(&client, TOPIC, 0).await;
                assert_eq!(records.len(), stored, "timed-out batches are stored too");
                return;
            }
        }
        panic!("no batch timed out waiting for its fdatasync");
    });
}

#[test]
fn batch_flush_timeout_answers_flush_disk_timeout_1_shard() {
    batch_flush_timeout_answers_flush_disk_timeout(1);
}

#[test]
fn batch_flush_timeout_answers_flush_disk_timeout_2_shards() {
    batch_flush_timeout_answers_flush_disk_timeout(2);
}

#[test]
fn flush_timeout_answers_flush_disk_timeout_1_shard() {
    flush_timeout_answers_flush_disk_timeout(1);
}

#[test]
fn flush_timeout_answers_flush_disk_timeout_2_shards() {
    flush_timeout_answers_flush_disk_timeout(2);
}

/// A clean stop (SIGTERM) while sends wait for their fdatasync answers every send it stored
/// before the connections close: after a restart, the stored messages are exactly the ones
/// answered SUCCESS (a stored send left unanswered would be stored without its SUCCESS).
#[test]
fn clean_stop_answers_every_stored_send() {
    let mut broker = Broker::start(1, "flushDiskType=SYNC_FLUSH");
    block_on(create_topic(&broker.client(), TOPIC, 1, 6));
    let addr = broker.addr.to_string();
    let acknowledged = std::thread::scope(|scope| {
        let sending = scope.spawn(move || {
            let client = RemotingClient::new(addr, ClientConfig::default());
            block_on(async {
                let mut acknowledged = HashSet::new();
                for round in 0.. {
                    let sends = (0..PIPELINED).map(|i| {
                        let client = &client;
                        async move {
                            let body = body_of(round, i);
                            let header = send_header(TOPIC, 0, &properties(None, None, None));
                            let request = send_request(
                                RequestCode::SendMessageV2,
                                &header,
                                Bytes::from(body.clone()),
                            );
                            (client.invoke(request, TIMEOUT).await, body)
                        }
                    });
                    let mut stopped = false;
                    for (reply, body) in join_all(sends).await {
                        match reply.map(|reply| reply.response_code()) {
                            Ok(ResponseCode::Success) => {
                                acknowledged.insert(body);
                            }
                            Ok(ResponseCode::ServiceNotAvailable) | Err(_) => stopped = true,
                            Ok(other) => panic!("a send answered {other:?}"),
                        }
                    }
                    if stopped {
                        return acknowledged;
                    }
                }
                unreachable!("the broker stops")
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        broker.terminate_and_restart();
        sending.join().expect("sender thread")
    });
    assert!(
        !acknowledged.is_empty(),
        "sends were answered before the stop"
    );
    let stored: HashSet<Vec<u8>> = block_on(pull_all(&broker.client(), TOPIC, 0))
        .into_iter()
        .map(|record| record.body.to_vec())
        .collect();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "stored messages are exactly the acknowledged ones ({} stored, {} acknowledged)",
        stored.len(),
        acknowledged.len()
    );
    assert_eq!(stored, acknowledged);
}

/// Sends the hostile client pipelines without reading a reply: more than one shard parks, so
/// both the full-queue fallback (a send waiting in its request) and the replies waiting for
/// room in the reader's write queue are reached.
const UNREAD_SENDS: usize = PARKED_REPLIES_MAX * 2 + 8_192;
/// The hostile connection's receive buffer: small, so its replies back up into the broker.
const UNREAD_RECEIVE_BUFFER: usize = 4096;
/// How long the hostile client keeps writing before the others are checked (it blocks once
/// the broker stops reading it).
const UNREAD_WRITE_GRACE: Duration = Duration::from_secs(3);

/// A client pipelines [`UNREAD_SENDS`] SYNC_FLUSH sends on one connection and reads none of
/// the replies. Meanwhile another connection's sends are answered SUCCESS. Once the hostile
/// client reads, it gets every reply exactly once, SUCCESS, and everything answered is stored.
fn a_client_that_does_not_read_holds_up_no_one(shards: usize) {
    let broker = Broker::start(shards, "flushDiskType=SYNC_FLUSH");
    let client = broker.client();
    block_on(create_topic(&client, TOPIC, QUEUES, 6));
    let mut frames = BytesMut::new();
    for index in 0..UNREAD_SENDS {
        let queue_id = (index % QUEUES as usize) as i32;
        let header = send_header(TOPIC, queue_id, &properties(None, None, None));
        let mut request = send_request(
            RequestCode::SendMessageV2,
            &header,
            Bytes::from(body_of(0, index)),
        );
        request.opaque = i32::try_from(index).expect("opaque");
        frame::encode(&request, &mut frames).expect("encode");
    }
    let stream =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    stream
        .set_recv_buffer_size(UNREAD_RECEIVE_BUFFER)
        .expect("SO_RCVBUF");
    stream.connect(&broker.addr.into()).expect("connect");
    let mut stream = TcpStream::from(stream);
    let mut writer = stream.try_clone().expect("clone");
    let writing = std::thread::spawn(move || writer.write_all(&frames).expect("write sends"));
    let started = Instant::now();
    while !writing.is_finished() && started.elapsed() < UNREAD_WRITE_GRACE {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The broker serves another connection while the hostile one's replies pile up.
    let others = block_on(async {
        let sends = (0..PIPELINED).map(|index| {
            let client = &client;
            async move {
                let body = body_of(1, index);
                let props = properties(None, None, None);
                let reply = send_v2(client, TOPIC, (index % 2) as i32, &body, &props).await;
                sent(&reply, &body)
            }
        });
        join_all(sends).await
    });
    // Now the hostile client reads: every send answered once, SUCCESS.
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let limits = FrameLimits::default();
    let mut answered = vec![false; UNREAD_SENDS];
    let mut buffer = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut count = 0;
    while count < UNREAD_SENDS {
        let read = stream.read(&mut chunk).expect("read replies");
        assert!(read > 0, "closed after {count} replies");
        buffer.extend_from_slice(&chunk[..read]);
        while let Some(reply) = frame::decode_from(&mut buffer, &limits).expect("reply frame") {
            let index = usize::try_from(reply.opaque).expect("opaque");
            assert_eq!(reply.response_code(), ResponseCode::Success, "send {index}");
            assert!(!answered[index], "send {index} answered twice");
            answered[index] = true;
            count += 1;
        }
    }
    writing.join().expect("writer thread");
    let stored: usize = block_on(async {
        let mut stored = 0;
        for queue_id in 0..QUEUES {
            stored += pull_all(&client, TOPIC, queue_id).await.len();
        }
        stored
    });
    assert_eq!(
        stored,
        UNREAD_SENDS + others.len(),
        "every answered send stored"
    );
}

#[test]
fn a_client_that_does_not_read_holds_up_no_one_1_shard() {
    a_client_that_does_not_read_holds_up_no_one(1);
}

#[test]
fn a_client_that_does_not_read_holds_up_no_one_2_shards() {
    a_client_that_does_not_read_holds_up_no_one(2);
}
