//! Black-box tests of the broker's data path, each with 1 and 2 shards: SEND_MESSAGE (V1),
//! SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE replies; pulls returning exactly what was sent from
//! every queue; VIEW_MESSAGE_BY_ID; min/max/search offsets; tag filtering and the pull status
//! table; long polling; consumer offsets (PROTOCOL.md §4.1, §4.4, §4.5, §4.8).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{
    assert_code, block_on, call, create_topic, offset_of, properties, pull, pull_all,
    query_offset_request, queue_request, send_header, send_request, send_v2, sent, shard_of_offset,
    update_offset_request, Broker, PullSpec, CLUSTER_NAME,
};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::pull::PullSysFlag;
use rmq_net::codec::message::{
    decode_all, encode_batch, keys, msg_id, BatchEntry, CrcCheck, MessageRecord, Properties,
};
use rmq_net::conn::RemotingClient;
use rmq_net::RemotingCommand;

/// Queues of the topics used here: with 2 shards, consecutive queues land on both.
const QUEUES: i32 = 4;

/// What a test expects to read back for one sent message.
#[derive(Debug, Clone)]
struct Expected {
    body: Bytes,
    tags: Option<String>,
    keys: Option<String>,
    uniq: String,
    flag: i32,
    queue_offset: i64,
    physical_offset: i64,
}

/// Checks the fields every send reply carries and returns the decoded offset msgIds.
fn check_reply(broker: &Broker, reply: &RemotingCommand, queue_id: i32) -> Vec<i64> {
    assert_code(reply, ResponseCode::Success);
    assert_eq!(reply.ext("MSG_REGION"), Some("DefaultRegion"));
    assert_eq!(reply.ext("TRACE_ON"), Some("true"));
    assert_eq!(reply.ext("queueId"), Some(queue_id.to_string().as_str()));
    let ids = reply.ext("msgId").expect("msgId");
    ids.split(',')
        .map(|id| {
            let (host, offset) = msg_id::decode(id).expect("offset msgId decodes");
            assert_eq!(host, broker.addr, "msgId carries the broker's address");
            assert!(offset >= 0);
            offset
        })
        .collect()
}

async fn send_all_forms(
    broker: &Broker,
    client: &RemotingClient,
    topic: &str,
) -> Vec<Vec<Expected>> {
    let mut expected: Vec<Vec<Expected>> = vec![Vec::new(); QUEUES as usize];
    for queue_id in 0..QUEUES {
        let queue = &mut expected[queue_id as usize];
        // SEND_MESSAGE (10), long header names, with a client UNIQ_KEY.
        let uniq = format!("C0A8000100002A9F00000000000000{queue_id:02}");
        let props = properties(Some("TagA"), Some("k1 k2"), Some(&uniq));
        let mut header = send_header(topic, queue_id, &props);
        header.flag = 7;
        let body = Bytes::from(format!("v1-{queue_id}"));
        let reply = call(
            client,
            send_request(RequestCode::SendMessage, &header, body.clone()),
        )
        .await;
        let offsets = check_reply(broker, &reply, queue_id);
        let v1 = sent(&reply, &body);
        assert_eq!(v1.header.queue_offset, 0, "first message of the queue");
        assert_eq!(v1.header.transaction_id.as_deref(), Some(uniq.as_str()));
        queue.push(Expected {
            body,
            tags: Some("TagA".into()),
            keys: Some("k1 k2".into()),
            uniq,
            flag: 7,
            queue_offset: 0,
            physical_offset: offsets[0],
        });

        // SEND_MESSAGE_V2 (310) without UNIQ_KEY: the broker generates one.
        let props = properties(Some("TagB"), None, None);
        let body = Bytes::from(vec![b'x'; 100 + queue_id as usize]);
        let reply = send_v2(client, topic, queue_id, &body, &props).await;
        let offsets = check_reply(broker, &reply, queue_id);
        let v2 = sent(&reply, &body);
        assert_eq!(
            v2.header.queue_offset, 1,
            "queue offsets increase per queue"
        );
        let uniq = v2
            .header
            .transaction_id
            .clone()
            .expect("generated UNIQ_KEY");
        assert!(!uniq.is_empty());
        assert!(
            offsets[0] > queue[0].physical_offset,
            "later in the queue's CommitLog"
        );
        queue.push(Expected {
            body,
            tags: Some("TagB".into()),
            keys: None,
            uniq,
            flag: 0,
            queue_offset: 1,
            physical_offset: offsets[0],
        });

        // SEND_BATCH_MESSAGE (320): three entries, one with its own UNIQ_KEY.
        let entries: Vec<BatchEntry> = (0..3)
            .map(|i| BatchEntry {
                flag: i,
                body: Bytes::from(format!("batch-{queue_id}-{i}")),
                properties: properties(
                    Some("TagC"),
                    Some(&format!("bk{i}")),
                    (i == 1).then_some("BATCHUNIQ000000000000000000000001"),
                ),
            })
            .collect();
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body).expect("encode batch");
        let mut header = send_header(topic, queue_id, &Properties::new());
        header.batch = Some(true);
        let reply = call(
            client,
            send_request(RequestCode::SendBatchMessage, &header, body.freeze()),
        )
        .await;
        let offsets = check_reply(broker, &reply, queue_id);
        assert_eq!(offsets.len(), 3, "one msgId per batch entry");
        let batch = sent(&reply, b"");
        assert_eq!(batch.header.queue_offset, 2, "first offset of the batch");
        let uniqs: Vec<String> = batch
            .header
            .transaction_id
            .expect("batch UNIQ_KEYs")
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(uniqs.len(), 3);
        assert_eq!(uniqs[1], "BATCHUNIQ000000000000000000000001");
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "batch stored in order"
        );
        for (i, entry) in entries.into_iter().enumerate() {
            queue.push(Expected {
                body: entry.body,
                tags: Some("TagC".into()),
                keys: Some(format!("bk{i}")),
                uniq: uniqs[i].clone(),
                flag: i as i32,
                queue_offset: 2 + i as i64,
                physical_offset: offsets[i],
            });
        }
    }
    expected
}

fn check_record(
    broker: &Broker,
    topic: &str,
    queue_id: i32,
    record: &MessageRecord,
    want: &Expected,
) {
    assert_eq!(record.topic, topic);
    assert_eq!(record.queue_id, queue_id);
    assert_eq!(record.queue_offset, want.queue_offset);
    assert_eq!(
        record.physical_offset, want.physical_offset,
        "offset msgId points at the record"
    );
    assert_eq!(record.body, want.body);
    assert_eq!(record.flag, want.flag);
    assert_eq!(record.store_host, broker.addr);
    assert_eq!(record.properties.tags(), want.tags.as_deref());
    assert_eq!(record.properties.get(keys::KEYS), want.keys.as_deref());
    assert_eq!(record.properties.uniq_key(), Some(want.uniq.as_str()));
    assert_eq!(record.properties.get("CLUSTER"), Some(CLUSTER_NAME));
    assert!(record.store_timestamp > 0);
}

fn send_forms_and_pull_round_trip(shards: usize, extra: &str) {
    let broker = Broker::start(shards, extra);
    block_on(async {
        let client = broker.client();
        let topic = "SendPull";
        create_topic(&client, topic, QUEUES, 6).await;
        let expected = send_all_forms(&broker, &client, topic).await;
        let owners: BTreeSet<i64> = expected
            .iter()
            .flatten()
            .map(|e| shard_of_offset(e.physical_offset))
            .collect();
        let all: BTreeSet<i64> = (0..shards as i64).collect();
        assert_eq!(owners, all, "the topic's queues are stored on every shard");

        for queue_id in 0..QUEUES {
            let want = &expected[queue_id as usize];
            let records = pull_all(&client, topic, queue_id).await;
            assert_eq!(
                records.len(),
                want.len(),
                "queue {queue_id}: exactly what was sent"
            );
            for (record, want) in records.iter().zip(want) {
                check_record(&broker, topic, queue_id, record, want);
                // VIEW_MESSAGE_BY_ID with the msgId's offset returns the same record.
                let mut ext = rmq_net::ExtFields::new();
                ext.insert("offset", want.physical_offset.to_string());
                let reply = call(
                    &client,
                    RemotingCommand::request(RequestCode::ViewMessageById, ext),
                )
                .await;
                assert_code(&reply, ResponseCode::Success);
                let viewed = decode_all(&reply.body, CrcCheck::Verify).expect("view body");
                assert_eq!(viewed.as_slice(), std::slice::from_ref(record));
            }

            let max = offset_of(
                &call(
                    &client,
                    queue_request(RequestCode::GetMaxOffset, topic, queue_id),
                )
                .await,
            );
            assert_eq!(max, want.len() as i64);
            let min = offset_of(
                &call(
                    &client,
                    queue_request(RequestCode::GetMinOffset, topic, queue_id),
                )
                .await,
            );
            assert_eq!(min, 0);

            // SEARCH_OFFSET_BY_TIMESTAMP: lower = first offset stored at or after the time,
            // upper = last offset stored at or before it; older than all → 0, newer → max.
            let search = |timestamp: i64, boundary: Option<&str>| {
                let mut request =
                    queue_request(RequestCode::SearchOffsetByTimestamp, topic, queue_id);
                request
                    .ext_fields
                    .insert("timestamp", timestamp.to_string());
                if let Some(boundary) = boundary {
                    request.ext_fields.insert("boundaryType", boundary);
                }
                request
            };
            assert_eq!(offset_of(&call(&client, search(0, None)).await), 0);
            let future = records.last().expect("records").store_timestamp + 3_600_000;
            assert_eq!(offset_of(&call(&client, search(future, None)).await), max);
            let middle = records[2].store_timestamp;
            let lower = records
                .iter()
                .position(|r| r.store_timestamp >= middle)
                .expect("lower") as i64;
            let upper = records
                .iter()
                .rposition(|r| r.store_timestamp <= middle)
                .expect("upper") as i64;
            assert_eq!(
                offset_of(&call(&client, search(middle, Some("lower"))).await),
                lower
            );
            assert_eq!(
                offset_of(&call(&client, search(middle, Some("upper"))).await),
                upper
            );
        }

        // A message whose msgId names no stored record.
        let mut ext = rmq_net::ExtFields::new();
        ext.insert("offset", (1i64 << 40).to_string());
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::ViewMessageById, ext),
        )
        .await;
        assert_code(&reply, ResponseCode::SystemError);
        let mut ext = rmq_net::ExtFields::new();
        ext.insert("offset", (5i64 << 56).to_string());
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::ViewMessageById, ext),
        )
        .await;
        assert_code(&reply, ResponseCode::SystemError);
    });
}

#[test]
fn send_forms_and_pull_round_trip_1_shard() {
    send_forms_and_pull_round_trip(1, "");
}

#[test]
fn send_forms_and_pull_round_trip_2_shards() {
    send_forms_and_pull_round_trip(2, "");
}

/// Under SYNC_FLUSH every form is answered once its record is durable (single sends and
/// batches parked for their fdatasync, `src/broker/durable_replies.rs`).
#[test]
fn send_forms_and_pull_round_trip_sync_flush_1_shard() {
    send_forms_and_pull_round_trip(1, "flushDiskType=SYNC_FLUSH");
}

#[test]
fn send_forms_and_pull_round_trip_sync_flush_2_shards() {
    send_forms_and_pull_round_trip(2, "flushDiskType=SYNC_FLUSH");
}

/// The shards' polling event loop (`idlePollMicros`) serves the same requests.
#[test]
fn send_forms_and_pull_round_trip_2_polling_shards() {
    send_forms_and_pull_round_trip(2, "idlePollMicros=50");
}

fn tag_filter_and_pull_statuses(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "Tags";
        create_topic(&client, topic, 2, 6).await;
        for tag in ["TagA", "TagC", "TagC", "TagB", "TagC"] {
            let reply = send_v2(
                &client,
                topic,
                0,
                tag.as_bytes(),
                &properties(Some(tag), None, None),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
        }
        let filtered = |offset| PullSpec {
            subscription: Some("TagA || TagB"),
            ..PullSpec::new(topic, 0, offset)
        };
        let reply = pull(&client, &filtered(0)).await;
        assert_eq!(reply.code, ResponseCode::Success);
        let got: Vec<(i64, Option<&str>)> = reply
            .records
            .iter()
            .map(|r| (r.queue_offset, r.properties.tags()))
            .collect();
        assert_eq!(got, [(0, Some("TagA")), (3, Some("TagB"))], "TagC skipped");
        assert_eq!(
            reply.header.next_begin_offset, 5,
            "moves past the skipped TagC"
        );
        assert_eq!(reply.header.max_offset, 5);
        assert_eq!(reply.header.min_offset, 0);

        // maxMsgNums bounds a batch.
        let reply = pull(
            &client,
            &PullSpec {
                max: 2,
                ..PullSpec::new(topic, 0, 0)
            },
        )
        .await;
        assert_eq!(reply.code, ResponseCode::Success);
        let offsets: Vec<i64> = reply.records.iter().map(|r| r.queue_offset).collect();
        assert_eq!(offsets, [0, 1]);
        assert_eq!(reply.header.next_begin_offset, 2);

        // Only non-matching messages left: PULL_RETRY_IMMEDIATELY, offset moved past them.
        let reply = pull(&client, &filtered(4)).await;
        assert_eq!(reply.code, ResponseCode::PullRetryImmediately);
        assert_eq!(reply.header.next_begin_offset, 5);

        // Caught up, no SUSPEND flag: PULL_NOT_FOUND at once, offset unchanged.
        let started = Instant::now();
        let reply = pull(&client, &PullSpec::new(topic, 0, 5)).await;
        assert_eq!(reply.code, ResponseCode::PullNotFound);
        assert_eq!(reply.header.next_begin_offset, 5);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not held without SUSPEND"
        );

        // Past the max offset: PULL_OFFSET_MOVED to max.
        let reply = pull(&client, &PullSpec::new(topic, 0, 15)).await;
        assert_eq!(reply.code, ResponseCode::PullOffsetMoved);
        assert_eq!(reply.header.next_begin_offset, 5);

        // Empty queue: offset 0 is PULL_NOT_FOUND, another offset is moved back to 0.
        let reply = pull(&client, &PullSpec::new(topic, 1, 0)).await;
        assert_eq!(reply.code, ResponseCode::PullNotFound);
        assert_eq!(reply.header.next_begin_offset, 0);
        let reply = pull(&client, &PullSpec::new(topic, 1, 3)).await;
        assert_eq!(reply.code, ResponseCode::PullOffsetMoved);
        assert_eq!(reply.header.next_begin_offset, 0);

        // Queue outside [0, readQueueNums).
        let reply = call(&client, PullSpec::new(topic, 2, 0).request()).await;
        assert_code(&reply, ResponseCode::InvalidParameter);
        // No SUBSCRIPTION flag and no heartbeat-registered subscription.
        let spec = PullSpec {
            sys_flag: 0,
            subscription: None,
            ..PullSpec::new(topic, 0, 0)
        };
        let reply = call(&client, spec.request()).await;
        assert_code(&reply, ResponseCode::SubscriptionNotExist);
        // Unknown topic.
        let reply = call(&client, PullSpec::new("NoSuchTopic", 0, 0).request()).await;
        assert_code(&reply, ResponseCode::TopicNotExist);
    });
}

#[test]
fn tag_filter_and_pull_statuses_1_shard() {
    tag_filter_and_pull_statuses(1);
}

#[test]
fn tag_filter_and_pull_statuses_2_shards() {
    tag_filter_and_pull_statuses(2);
}

fn long_polling(shards: usize, extra: &str) {
    let broker = Broker::start(shards, extra);
    block_on(async {
        let client = broker.client();
        let topic = "LongPoll";
        create_topic(&client, topic, QUEUES, 6).await;
        let held = |queue_id, offset, suspend_ms| PullSpec {
            sys_flag: PullSysFlag::build(false, true, true, false).0,
            suspend_ms,
            ..PullSpec::new(topic, queue_id, offset)
        };
        // One held pull per queue, all on the connection the sends use afterwards.
        let mut pending: Vec<_> = (0..QUEUES)
            .map(|queue_id| {
                let (client, request) = (client.clone(), held(queue_id, 0, 5000).request());
                compio::runtime::spawn(async move {
                    let reply = client.invoke(request, Duration::from_secs(10)).await;
                    (reply, Instant::now())
                })
            })
            .collect();
        compio::time::sleep(Duration::from_millis(300)).await;
        for queue_id in 0..QUEUES as usize {
            for (other, task) in pending.iter().enumerate().skip(queue_id) {
                assert!(
                    !task.is_finished(),
                    "pull on queue {other} held until its message arrives"
                );
            }
            let body = format!("wake-{queue_id}");
            let sent_at = Instant::now();
            let reply = send_v2(
                &client,
                topic,
                queue_id as i32,
                body.as_bytes(),
                &properties(None, None, None),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let task = &mut pending[queue_id];
            let (reply, answered_at) = compio::time::timeout(Duration::from_secs(2), task)
                .await
                .expect("held pull answered within 2 s of the send")
                .expect("task");
            let pulled = common::pulled(&reply.expect("pull reply"));
            assert_eq!(pulled.code, ResponseCode::Success);
            assert_eq!(pulled.records.len(), 1);
            assert_eq!(pulled.records[0].body, Bytes::from(body));
            assert_eq!(pulled.header.next_begin_offset, 1);
            assert!(answered_at >= sent_at, "answered after the send");
        }

        // A suspendable pull past the max offset is answered PULL_OFFSET_MOVED at once.
        for queue_id in 0..QUEUES {
            let started = Instant::now();
            let reply = pull(&client, &held(queue_id, 9, 5000)).await;
            assert_eq!(reply.code, ResponseCode::PullOffsetMoved);
            assert_eq!(reply.header.next_begin_offset, 1);
            assert!(started.elapsed() < Duration::from_secs(1), "not held");
        }

        // Nothing arrives: answered PULL_NOT_FOUND around the (short) suspend timeout.
        for queue_id in 0..QUEUES {
            let started = Instant::now();
            let reply = pull(&client, &held(queue_id, 1, 300)).await;
            let waited = started.elapsed();
            assert_eq!(reply.code, ResponseCode::PullNotFound);
            assert_eq!(reply.header.next_begin_offset, 1);
            assert!(
                waited >= Duration::from_millis(250),
                "held for the suspend time ({waited:?})"
            );
            assert!(
                waited < Duration::from_secs(2),
                "released at the timeout ({waited:?})"
            );
        }
    });
}

#[test]
fn long_polling_1_shard() {
    long_polling(1, "");
}

#[test]
fn long_polling_2_shards() {
    long_polling(2, "");
}

/// Held pulls and their timeouts on polling shards (`idlePollMicros`): a shard that polls
/// still sleeps, and still wakes for a timer.
#[test]
fn long_polling_2_polling_shards() {
    long_polling(2, "idlePollMicros=50");
}

/// A held pull with a tag filter: any new message on the queue wakes it (the store's
/// per-queue notifier does not look at tags), so a non-matching message answers it at once
/// with PULL_RETRY_IMMEDIATELY and `nextBeginOffset` past that message (PROTOCOL.md §4.4).
/// Java differs here: `PullRequestHoldService` checks the tag code before waking and keeps
/// the pull held until a matching message or its 5 s hold check. A matching message answers
/// the pull re-held at the new offset with exactly that message.
fn held_pull_with_tag_filter(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "LongPollTags";
        create_topic(&client, topic, QUEUES, 6).await;
        let hold = |queue_id, offset| {
            let spec = PullSpec {
                sys_flag: PullSysFlag::build(false, true, true, false).0,
                suspend_ms: 5000,
                subscription: Some("TagA"),
                ..PullSpec::new(topic, queue_id, offset)
            };
            let (client, request) = (client.clone(), spec.request());
            compio::runtime::spawn(
                async move { client.invoke(request, Duration::from_secs(10)).await },
            )
        };
        for queue_id in 0..QUEUES {
            let mut task = hold(queue_id, 0);
            compio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                !task.is_finished(),
                "queue {queue_id}: held while nothing arrives"
            );
            let reply = send_v2(
                &client,
                topic,
                queue_id,
                b"b",
                &properties(Some("TagB"), None, None),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let reply = compio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .expect("woken by the TagB message")
                .expect("task")
                .expect("pull reply");
            let reply = common::pulled(&reply);
            assert_eq!(
                reply.code,
                ResponseCode::PullRetryImmediately,
                "queue {queue_id}: a non-matching message answers the held pull"
            );
            assert!(reply.records.is_empty(), "queue {queue_id}: no TagB record");
            assert_eq!(reply.header.next_begin_offset, 1, "past the TagB message");
            task = hold(queue_id, 1);
            compio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                !task.is_finished(),
                "queue {queue_id}: held again at offset 1"
            );
            let reply = send_v2(
                &client,
                topic,
                queue_id,
                b"a",
                &properties(Some("TagA"), None, None),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let reply = compio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .expect("woken by the TagA message")
                .expect("task")
                .expect("pull reply");
            let reply = common::pulled(&reply);
            assert_eq!(reply.code, ResponseCode::Success);
            let offsets: Vec<i64> = reply.records.iter().map(|r| r.queue_offset).collect();
            assert_eq!(offsets, [1], "only the TagA message");
            assert_eq!(reply.header.next_begin_offset, 2);
        }
    });
}

#[test]
fn held_pull_with_tag_filter_1_shard() {
    held_pull_with_tag_filter(1);
}

#[test]
fn held_pull_with_tag_filter_2_shards() {
    held_pull_with_tag_filter(2);
}

/// Java suspends only a pull whose answer would be PULL_NOT_FOUND; on an empty queue an
/// offset other than 0 is PULL_OFFSET_MOVED (PROTOCOL.md §4.4 status table) and must be
/// answered at once, not after `suspendTimeoutMillis`.
fn suspended_pull_on_empty_queue_is_moved_at_once(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "LongPollEmpty";
        create_topic(&client, topic, QUEUES, 6).await;
        for queue_id in 0..QUEUES {
            let spec = PullSpec {
                sys_flag: PullSysFlag::build(false, true, true, false).0,
                suspend_ms: 3000,
                ..PullSpec::new(topic, queue_id, 3)
            };
            let started = Instant::now();
            let reply = client
                .invoke(spec.request(), Duration::from_secs(10))
                .await
                .expect("pull reply");
            let waited = started.elapsed();
            let reply = common::pulled(&reply);
            assert_eq!(reply.code, ResponseCode::PullOffsetMoved);
            assert_eq!(reply.header.next_begin_offset, 0);
            assert!(
                waited < Duration::from_secs(1),
                "queue {queue_id}: PULL_OFFSET_MOVED answered at once, not held ({waited:?})"
            );
        }
    });
}

#[test]
fn suspended_pull_on_empty_queue_is_moved_at_once_1_shard() {
    suspended_pull_on_empty_queue_is_moved_at_once(1);
}

#[test]
fn suspended_pull_on_empty_queue_is_moved_at_once_2_shards() {
    suspended_pull_on_empty_queue_is_moved_at_once(2);
}

fn consumer_offsets(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        let topic = "Offsets";
        create_topic(&client, topic, QUEUES, 6).await;
        for queue_id in 0..QUEUES {
            // A new group on a brand-new (empty) queue starts at 0 (PROTOCOL.md §4.5) unless
            // the client says setZeroIfNotFound=false.
            let reply = call(
                &client,
                query_offset_request("NewGroup", topic, queue_id, None),
            )
            .await;
            assert_eq!(offset_of(&reply), 0);
            let reply = call(
                &client,
                query_offset_request("NewGroup", topic, queue_id, Some(true)),
            )
            .await;
            assert_eq!(offset_of(&reply), 0);
            let reply = call(
                &client,
                query_offset_request("NewGroup", topic, queue_id, Some(false)),
            )
            .await;
            assert_code(&reply, ResponseCode::QueryNotFound);
        }
        // A young queue (its first message is recent) also answers 0 for a new group.
        let reply = send_v2(&client, topic, 1, b"young", &properties(None, None, None)).await;
        assert_code(&reply, ResponseCode::Success);
        let reply = call(&client, query_offset_request("NewGroup", topic, 1, None)).await;
        assert_eq!(offset_of(&reply), 0);

        for queue_id in 0..QUEUES {
            let committed = 10 * i64::from(queue_id) + 3;
            let reply = call(
                &client,
                update_offset_request("G", topic, queue_id, committed),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let reply = call(
                &client,
                query_offset_request("G", topic, queue_id, Some(false)),
            )
            .await;
            assert_eq!(offset_of(&reply), committed);
        }
        // A rewind is stored as is.
        let reply = call(&client, update_offset_request("G", topic, 3, 1)).await;
        assert_code(&reply, ResponseCode::Success);
        assert_eq!(
            offset_of(&call(&client, query_offset_request("G", topic, 3, None)).await),
            1
        );
        // The pull COMMIT_OFFSET flag commits too.
        let spec = PullSpec {
            group: "G",
            sys_flag: PullSysFlag::build(true, false, true, false).0,
            commit_offset: 1,
            ..PullSpec::new(topic, 1, 0)
        };
        let reply = pull(&client, &spec).await;
        assert_eq!(reply.code, ResponseCode::Success);
        assert_eq!(
            offset_of(&call(&client, query_offset_request("G", topic, 1, None)).await),
            1
        );
        // An unknown topic's queue has offsets 0.
        for code in [RequestCode::GetMaxOffset, RequestCode::GetMinOffset] {
            let reply = call(&client, queue_request(code, "NoSuchTopic", 0)).await;
            assert_eq!(offset_of(&reply), 0);
        }
        // Other groups are independent.
        let reply = call(
            &client,
            query_offset_request("Other", topic, 1, Some(false)),
        )
        .await;
        assert_code(&reply, ResponseCode::QueryNotFound);
    });
}

#[test]
fn consumer_offsets_1_shard() {
    consumer_offsets(1);
}

#[test]
fn consumer_offsets_2_shards() {
    consumer_offsets(2);
}
