//! Hostile clients against the limits of the latest features, black box against the built
//! binary: each test drives one limit or path with bad input, asserts the exact response code
//! and remark, and that a well-behaved client on another connection is served during and after.
//!
//! - The Prometheus exporter's HTTP port: more idle connections than
//!   `METRICS_HTTP_CONNECTIONS_MAX` (the oldest idle one gives its slot to a newcomer, so a
//!   scraper is served while they are held), a slowloris head, an oversized head (431), garbage
//!   methods and request lines (405/400).
//! - METRICS_CONSUMER_SERIES_MAX: pulls by more (topic, group) pairs than the exporter keeps
//!   series for; the rest is summed under `_other`, totals stay exact, the scrape stays valid.
//! - SQL92 selectors: 100,000 nested parentheses or NOTs, over-long IN lists and literals
//!   (SUBSCRIPTION_PARSE_FAILED naming the limit, never a crashed shard), and more distinct
//!   expressions than `SQL92_SELECTOR_CACHE_MAX` through CHECK_CLIENT_CONFIG and pulls.
//! - END_TRANSACTION for negative, huge, mid-record, other-shard and wrong-group offsets, and
//!   unknown outcomes; TRANSACTION_PENDING_STATS (60000) stays exact.
//! - Timer properties overflowing i64, not numbers, negative, far past, on batches and half
//!   messages; TIMER_STATUS (60001) with malformed input.
//! - UPDATE_BROKER_CONFIG with too many keys, unknown keys (a huge name is not echoed whole),
//!   huge values, non-UTF-8 bodies; reset-offset-by-time with absurd timestamps;
//!   SEND_REPLY_MESSAGE to nobody, or to a requester that vanishes mid-push; broker-to-client
//!   codes sent to the broker and the private admin codes sent to the NameServer.
//! - TIMER_TOPICS_COUNTED_MAX (ignored: long, run by hand): timers over 4,097 topics.
//! - STATS_ITEM_KEYS_MAX: pulls by more distinct groups than the per-shard cap of
//!   VIEW_BROKER_STATS_DATA keys; the first keep counting, the rest answer "not exist".
//! - A `plain_acl.yml` replaced by a deeply nested, an aliased ("billion laughs") or an
//!   oversized file: the broker keeps the previous accounts and keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{
    assert_code, block_on, call, create_topic, now_ms, properties, pull, send_header, send_request,
    send_v2, timer_status, write_broker_conf, Broker, PullSpec, Server, TempDir,
};
use rmq_net::codec::body::client::CheckClientRequestBody;
use rmq_net::codec::body::subscription::{SubscriptionData, EXPRESSION_TYPE_SQL92};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::pull::{PullMessageRequestHeader, PullSysFlag};
use rmq_net::codec::header::reset::ResetOffsetRequestHeader;
use rmq_net::codec::header::send::SendHeaderForm;
use rmq_net::codec::header::transaction::{
    EndTransactionRequestHeader, TRANSACTION_COMMIT_TYPE, TRANSACTION_ROLLBACK_TYPE,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::{encode_batch, keys, msg_id, sysflag, BatchEntry, Properties};
use rmq_net::conn::RemotingClient;
use rmq_net::{ExtFields, RemotingCommand};

const TOPIC: &str = "HostileTopic";

fn remark(reply: &RemotingCommand) -> String {
    reply.remark.clone().unwrap_or_default()
}

/// Asserts `reply` is `code` with a remark containing `needle`.
#[track_caller]
fn assert_refused(reply: &RemotingCommand, code: ResponseCode, needle: &str) {
    assert_code(reply, code);
    let text = remark(reply);
    assert!(text.contains(needle), "remark {text:?} lacks {needle:?}");
}

/// The well-behaved client: a send and a pull of it on its own connection.
async fn still_served(broker: &Broker, round: u32) {
    let client = broker.client();
    let body = format!("well-behaved {round}");
    let reply = send_v2(
        &client,
        TOPIC,
        0,
        body.as_bytes(),
        &properties(None, None, None),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    let offset = rmq_net::codec::header::send::SendMessageResponseHeader::decode_command(&reply)
        .expect("send header")
        .queue_offset;
    let pulled = pull(&client, &PullSpec::new(TOPIC, 0, offset)).await;
    assert_eq!(pulled.code, ResponseCode::Success);
    assert_eq!(pulled.records[0].body, Bytes::from(body));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

// ---- the Prometheus exporter's HTTP port ------------------------------------------------------

fn start_with_metrics(dir: &TempDir) -> (Server, SocketAddr, SocketAddr) {
    let conf = write_broker_conf(
        dir.path(),
        "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0",
    );
    let store = dir.path().join("store");
    let server = Server::start(
        &[
            "standalone",
            "--namesrv-port",
            "0",
            "--broker-port",
            "0",
            "--store-dir",
            store.to_str().expect("utf-8"),
            "-c",
            conf.to_str().expect("utf-8"),
            "--shards",
            "2",
        ],
        3,
    );
    let (broker, metrics) = (server.addr("broker"), server.addr("metrics"));
    (server, broker, metrics)
}

/// One request on a fresh connection; the whole answer (the exporter closes after it).
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    String::from_utf8_lossy(&answer).into_owned()
}

fn scrape_ok(addr: SocketAddr) {
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 200 OK"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.contains("rocketmq_"), "a scrape carries the series");
}

/// Whether the server closed `stream` (EOF) within `wait`.
fn closed(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut byte = [0u8; 64];
    matches!(stream.read(&mut byte), Ok(0))
        || matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

#[test]
fn the_metrics_port_serves_scrapers_past_idle_slowloris_and_garbage_clients() {
    let dir = TempDir::new("hostile-metrics");
    let (_server, broker_addr, metrics) = start_with_metrics(&dir);
    // Twice the connection cap of idle sockets, and a slowloris holding half a head.
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(metrics).expect("idle connect"))
        .collect();
    let mut slow = TcpStream::connect(metrics).expect("slow connect");
    slow.write_all(b"GET /metr").expect("half a head");
    std::thread::sleep(Duration::from_millis(200));
    // A scraper is served while all of them are held (the oldest idle ones gave up their slots).
    scrape_ok(metrics);
    assert!(
        closed(&mut idle[0], Duration::from_secs(5)),
        "the oldest idle connection was closed for a newer one"
    );
    // Garbage and oversized heads get their HTTP errors.
    let cases: [(&[u8], &str); 4] = [
        (
            b"BREW /metrics HTTP/1.1\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"\x00\x01\x02\xff\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /metrics HTTP/9\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (
            b"GET  /metrics HTTP/1.1 extra\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
        ),
    ];
    for (request, status) in cases {
        let answer = http(metrics, request);
        assert!(answer.starts_with(status), "{request:?}: {answer}");
    }
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.resize(64 * 1024, b'h');
    let mut stream = TcpStream::connect(metrics).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The server answers after 8 KiB and closes; the rest of the write may be refused.
    let _ = stream.write_all(&huge);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{answer}"
    );
    // A burst of connections that each say nothing, then the scraper again.
    for _ in 0..32 {
        idle.push(TcpStream::connect(metrics).expect("burst connect"));
    }
    scrape_ok(metrics);
    drop(idle);
    drop(slow);
    scrape_ok(metrics);
    // The broker port never noticed.
    let client = RemotingClient::new(broker_addr.to_string(), Default::default());
    block_on(async {
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo, ExtFields::new()),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
    });
}

/// `src/limits.rs` `METRICS_CONSUMER_SERIES_MAX` (per shard, and per scrape).
const METRICS_CONSUMER_SERIES_MAX: usize = 10_000;

/// `(labels, value)` of every sample of `metric` in a scrape's text.
fn metric_samples<'a>(text: &'a str, metric: &str) -> Vec<(&'a str, f64)> {
    let prefix = format!("{metric}{{");
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").expect("labels and value");
            (labels, value.trim().parse().expect("a number"))
        })
        .collect()
}

#[test]
fn consumer_series_past_the_cap_are_summed_under_other() {
    let dir = TempDir::new("hostile-metrics-series");
    let (_server, broker_addr, metrics) = start_with_metrics(&dir);
    let client = RemotingClient::new(broker_addr.to_string(), Default::default());
    let extra = 50;
    let groups = METRICS_CONSUMER_SERIES_MAX + extra;
    block_on(async {
        // One queue: every pair lands on one shard's map.
        create_topic(&client, TOPIC, 1, 6).await;
        let reply = send_v2(&client, TOPIC, 0, b"m", &properties(None, None, None)).await;
        assert_code(&reply, ResponseCode::Success);
        for i in 0..groups {
            let group = format!("HostileSeriesGroup{i}");
            let spec = PullSpec {
                group: &group,
                max: 1,
                ..PullSpec::new(TOPIC, 0, 0)
            };
            let pulled = common::pulled(&call(&client, spec.request()).await);
            assert_eq!(pulled.records.len(), 1, "group {i}");
        }
    });
    let answer = http(metrics, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{}", &answer[..200]);
    let (_, text) = answer.split_once("\r\n\r\n").expect("head and body");
    let out = metric_samples(text, "rocketmq_messages_out_total");
    let ours: Vec<_> = out
        .iter()
        .filter(|(labels, _)| labels.contains(TOPIC) || labels.contains("_other"))
        .collect();
    assert!(
        ours.len() <= METRICS_CONSUMER_SERIES_MAX + 1,
        "{} series for the pulled pairs",
        ours.len()
    );
    let other: f64 = ours
        .iter()
        .filter(|(labels, _)| labels.contains("consumer_group=\"_other\""))
        .map(|(_, value)| value)
        .sum();
    assert!(
        other >= f64::from(u32::try_from(extra).expect("small")),
        "_other holds {other}"
    );
    let total: f64 = ours.iter().map(|(_, value)| value).sum();
    assert!(
        (total - f64::from(u32::try_from(groups).expect("small"))).abs() < 0.5,
        "every pulled message is counted once: {total}"
    );
    // The broker and the exporter keep serving.
    scrape_ok(metrics);
    block_on(async {
        let reply = send_v2(&client, TOPIC, 0, b"after", &properties(None, None, None)).await;
        assert_code(&reply, ResponseCode::Success);
    });
}

// ---- SQL92 selectors --------------------------------------------------------------------------

const SQL_ON: &str = "enablePropertyFilter=true\n";

fn check_sql(expression: &str) -> RemotingCommand {
    let mut subscription = SubscriptionData::new_tag(TOPIC, "*", now_ms());
    subscription.expression_type = EXPRESSION_TYPE_SQL92.into();
    subscription.sub_string = expression.into();
    let body = CheckClientRequestBody {
        client_id: "127.0.0.1@hostile".into(),
        group: "HostileSqlGroup".into(),
        namespace: None,
        subscription_data: Some(subscription),
    };
    RemotingCommand::request(RequestCode::CheckClientConfig, ExtFields::new())
        .with_body(body.to_json())
}

fn sql_pull(expression: &str, queue_id: i32) -> RemotingCommand {
    let header = PullMessageRequestHeader {
        consumer_group: "HostileSqlGroup".into(),
        topic: TOPIC.into(),
        queue_id,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: PullSysFlag::build(false, false, true, false).0,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some(expression.to_owned()),
        sub_version: 0,
        expression_type: Some(EXPRESSION_TYPE_SQL92.into()),
        max_msg_bytes: None,
        request_source: None,
        proxy_froward_client_id: None,
    };
    RemotingCommand::request(RequestCode::PullMessage, header.to_ext())
}

fn sql92_abuse(shards: usize) {
    let broker = Broker::start(shards, SQL_ON);
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 2, 6).await;
        for queue_id in 0..2 {
            let mut props = properties(None, None, None);
            props.insert("n", "7").expect("n");
            let reply = send_v2(&client, TOPIC, queue_id, b"seven", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
        let hundred_k_parens = format!("{}n = 7{}", "(".repeat(100_000), ")".repeat(100_000));
        let hundred_k_nots = format!("{}n = 7", "NOT ".repeat(100_000));
        let deep_parens = format!("{}n = 7{}", "(".repeat(1_000), ")".repeat(1_000));
        let deep_nots = format!("{}n = 7", "NOT ".repeat(1_000));
        let deep_ands = format!("n = 7{}", " AND n = 7".repeat(400));
        let in_list = format!(
            "s IN ({})",
            (0..2_000)
                .map(|i| format!("'v{i}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let literal = format!("s = '{}'", "x".repeat(100_000));
        let cases: [(&str, &str); 7] = [
            (&hundred_k_parens, "expression longer than 4096 bytes"),
            (&hundred_k_nots, "expression longer than 4096 bytes"),
            (&deep_parens, "nesting deeper than 128"),
            (&deep_nots, "nesting deeper than 128"),
            (&deep_ands, "nesting deeper than 128"),
            (&in_list, "expression longer than 4096 bytes"),
            (&literal, "expression longer than 4096 bytes"),
        ];
        for (expression, needle) in cases {
            let reply = call(&client, check_sql(expression)).await;
            assert_refused(&reply, ResponseCode::SubscriptionParseFailed, needle);
            // Java's pull remark names no detail.
            for queue_id in 0..2 {
                let reply = call(&client, sql_pull(expression, queue_id)).await;
                assert_refused(
                    &reply,
                    ResponseCode::SubscriptionParseFailed,
                    "parse the consumer's subscription failed",
                );
            }
            still_served(&broker, 0).await;
        }
        // Within the limits: a long IN list and a long literal compile and filter.
        let fits = format!(
            "n IN ({}) AND s IS NULL",
            (0..300)
                .map(|i| format!("'{i}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(fits.len() < 4096);
        assert_code(
            &call(&client, check_sql(&fits)).await,
            ResponseCode::Success,
        );
        let reply = call(&client, sql_pull(&fits, 0)).await;
        assert_eq!(
            common::pulled(&reply).records.len(),
            1,
            "n = '7' is in the list"
        );
        // More distinct expressions than the selector cache holds (1024 per shard): each is
        // answered; the cache recycles instead of growing.
        let rss_before = rss_kib(broker.server.pid());
        for i in 0..3_000_i32 {
            let expression = format!(
                "n = {i} OR s = '{}'",
                "p".repeat(usize::try_from(i % 1_000).expect("small"))
            );
            let reply = call(&client, check_sql(&expression)).await;
            assert_code(&reply, ResponseCode::Success);
            if i % 97 == 0 {
                let reply = call(&client, sql_pull(&expression, i % 2)).await;
                assert_ne!(reply.response_code(), ResponseCode::SystemError);
            }
        }
        let rss_after = rss_kib(broker.server.pid());
        assert!(
            rss_after < rss_before + 64 * 1024,
            "3,000 selectors cost {} KiB of RSS",
            rss_after.saturating_sub(rss_before)
        );
        still_served(&broker, 1).await;
    });
}

#[test]
fn sql92_abuse_is_refused_with_one_shard() {
    sql92_abuse(1);
}

#[test]
fn sql92_abuse_is_refused_with_two_shards() {
    sql92_abuse(2);
}

// ---- END_TRANSACTION and TRANSACTION_PENDING_STATS --------------------------------------------

const TX_GROUP: &str = "HostileTxGroup";

fn end_request(
    table_offset: i64,
    commit_log_offset: i64,
    group: &str,
    outcome: i32,
) -> RemotingCommand {
    let header = EndTransactionRequestHeader {
        producer_group: group.into(),
        tran_state_table_offset: table_offset,
        commit_log_offset,
        commit_or_rollback: outcome,
        from_transaction_check: false,
        msg_id: "id".into(),
        transaction_id: None,
        topic: None,
        broker_name: None,
    };
    RemotingCommand::request(RequestCode::EndTransaction, header.to_ext())
}

/// Sends one half message; (tranStateTableOffset, commitLogOffset).
async fn send_half(client: &RemotingClient, uniq: &str) -> (i64, i64) {
    let mut props = properties(Some("TagT"), Some(uniq), Some(uniq));
    props.insert(keys::TRAN_MSG, "true").expect("insert");
    props.insert(keys::PGROUP, TX_GROUP).expect("insert");
    let mut header = send_header(TOPIC, 0, &props);
    header.sys_flag = sysflag::TRANSACTION_PREPARED_TYPE;
    header.producer_group = TX_GROUP.into();
    let request = RemotingCommand::request(
        RequestCode::SendMessageV2,
        header.to_ext_in(SendHeaderForm::V2),
    )
    .with_body(Bytes::from_static(b"half"));
    let reply = call(client, request).await;
    assert_code(&reply, ResponseCode::Success);
    let header = rmq_net::codec::header::send::SendMessageResponseHeader::decode_command(&reply)
        .expect("send header");
    let id = msg_id::decode(&header.msg_id).expect("offset msgId");
    (header.queue_offset, id.1)
}

async fn pending_total(client: &RemotingClient) -> u64 {
    let reply = call(
        client,
        RemotingCommand::request(RequestCode::TransactionPendingStats, ExtFields::new()),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    let report: serde_json::Value = serde_json::from_slice(&reply.body).expect("report json");
    report["total"].as_u64().expect("total")
}

fn end_transaction_abuse(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 2, 6).await;
        let (table, phys) = send_half(&client, "half-1").await;
        assert_eq!(pending_total(&client).await, 1);
        let not_found = "Find prepared transaction message failed";
        let other_shard = phys ^ (1 << 56) ^ (5 << 56);
        let cases: Vec<(RemotingCommand, ResponseCode, &str)> = vec![
            (
                end_request(-1, phys, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "tranStateTableOffset is negative",
            ),
            (
                end_request(i64::MIN, i64::MIN, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "tranStateTableOffset is negative",
            ),
            (
                end_request(i64::MAX, phys, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "no half message at that offset",
            ),
            (
                end_request(table + 1, phys, TX_GROUP, TRANSACTION_ROLLBACK_TYPE),
                ResponseCode::SystemError,
                "no half message at that offset",
            ),
            (
                end_request(i64::MAX, -1, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "not a half message offset",
            ),
            (
                end_request(i64::MAX, i64::MAX, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                not_found,
            ),
            (
                end_request(table + 7, other_shard, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "not a half message offset",
            ),
            (
                end_request(table, phys + 3, TX_GROUP, TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "The commit log offset wrong",
            ),
            (
                end_request(table, phys, "SomeoneElse", TRANSACTION_COMMIT_TYPE),
                ResponseCode::SystemError,
                "The producer group wrong",
            ),
            (
                end_request(table, phys, TX_GROUP, 99),
                ResponseCode::InvalidParameter,
                "commitOrRollback 99",
            ),
            (
                end_request(table, phys, TX_GROUP, -8),
                ResponseCode::InvalidParameter,
                "commitOrRollback -8",
            ),
        ];
        for (request, code, needle) in cases {
            let reply = call(&client, request).await;
            assert_refused(&reply, code, needle);
        }
        assert_eq!(
            pending_total(&client).await,
            1,
            "nothing resolved the half message"
        );
        // A header that does not decode at all.
        let mut ext = ExtFields::new();
        ext.insert("producerGroup", TX_GROUP);
        ext.insert("tranStateTableOffset", "not-a-number");
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::EndTransaction, ext),
        )
        .await;
        assert!(
            !matches!(reply.response_code(), ResponseCode::Success),
            "an undecodable header is refused: {reply:?}"
        );
        // Resolve it, then replay the outcome with offsets of no half message (mid-record,
        // one past): answered, never trusted.
        let reply = call(
            &client,
            end_request(table, phys, TX_GROUP, TRANSACTION_ROLLBACK_TYPE),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        assert_eq!(pending_total(&client).await, 0);
        let replay = call(
            &client,
            end_request(table, phys, TX_GROUP, TRANSACTION_COMMIT_TYPE),
        )
        .await;
        assert_refused(&replay, ResponseCode::Success, "already resolved");
        for delta in [1, 3, 7, 13, 64, 100] {
            let reply = call(
                &client,
                end_request(table, phys + delta, TX_GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&reply, ResponseCode::SystemError);
        }
        // A CHECK-storm's answers for nothing pending: still nothing stored in TOPIC queue 1.
        for i in 1..200 {
            let reply = call(
                &client,
                end_request(i % 5, phys + i, TX_GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_ne!(reply.response_code(), ResponseCode::Success, "offset {i}");
        }
        let pulled = pull(&client, &PullSpec::new(TOPIC, 0, 0)).await;
        assert!(pulled.records.is_empty(), "no commit stored a message");
        // TRANSACTION_PENDING_STATS with odd input.
        let mut ext = ExtFields::new();
        ext.insert("producerGroup", "x".repeat(10_000));
        let reply = call(
            &client,
            RemotingCommand::request(RequestCode::TransactionPendingStats, ext)
                .with_body(Bytes::from_static(b"\xff\xfe not json")),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
        still_served(&broker, 0).await;
    });
}

#[test]
fn end_transaction_abuse_with_one_shard() {
    end_transaction_abuse(1);
}

#[test]
fn end_transaction_abuse_with_two_shards() {
    end_transaction_abuse(2);
}

// ---- timer properties and TIMER_STATUS --------------------------------------------------------

fn props(pairs: &[(&str, &str)]) -> Properties {
    let mut props = properties(None, None, None);
    for (name, value) in pairs {
        props.insert(*name, *value).expect("insert");
    }
    props
}

fn timer_abuse(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 2, 6).await;
        let illegal = ResponseCode::MessageIllegal;
        let max = i64::MAX.to_string();
        let min = i64::MIN.to_string();
        let cases: Vec<(Properties, &str)> = vec![
            (props(&[(keys::TIMER_DELAY_SEC, &max)]), "overflows"),
            (
                props(&[(keys::TIMER_DELAY_SEC, "9223372036854775")]),
                "overflows",
            ),
            (props(&[(keys::TIMER_DELAY_MS, &max)]), "overflows"),
            (props(&[(keys::TIMER_DELAY_SEC, &min)]), "overflows"),
            (
                props(&[(keys::TIMER_DELIVER_MS, "NaN")]),
                "is not an integer",
            ),
            (
                props(&[(keys::TIMER_DELIVER_MS, "1e18")]),
                "is not an integer",
            ),
            (
                props(&[(keys::TIMER_DELIVER_MS, "99999999999999999999")]),
                "is not an integer",
            ),
            (props(&[(keys::TIMER_DELAY_MS, " ")]), "is not an integer"),
            (props(&[("__STARTDELIVERTIME", "-")]), "is not an integer"),
            (
                props(&[(keys::TIMER_DELIVER_MS, &max)]),
                "the delay time should not be bigger than the max delay",
            ),
            (
                props(&[("__STARTDELIVERTIME", &max)]),
                "the delay time should not be bigger than the max delay",
            ),
        ];
        for (props, needle) in &cases {
            let reply = send_v2(&client, TOPIC, 1, b"timer", props).await;
            assert_refused(&reply, illegal, needle);
        }
        // Negative, zero and far-past due times are ordinary sends, delivered at once.
        let past = [
            props(&[(keys::TIMER_DELAY_SEC, "-5")]),
            props(&[(keys::TIMER_DELAY_MS, &min)]),
            props(&[(keys::TIMER_DELIVER_MS, "1")]),
            props(&[(keys::TIMER_DELIVER_MS, &min)]),
            props(&[("__STARTDELIVERTIME", "0")]),
        ];
        for props in &past {
            assert_code(
                &send_v2(&client, TOPIC, 1, b"past", props).await,
                ResponseCode::Success,
            );
        }
        let pulled = pull(&client, &PullSpec::new(TOPIC, 1, 0)).await;
        assert_eq!(
            pulled.records.len(),
            past.len(),
            "past timers are delivered at once"
        );
        // A batch and a half message with timer properties are refused (Java's rules).
        let entries = vec![BatchEntry {
            flag: 0,
            body: Bytes::from_static(b"b"),
            properties: props(&[(keys::TIMER_DELAY_SEC, "10")]),
        }];
        let mut batch = BytesMut::new();
        encode_batch(&entries, &mut batch).expect("encode batch");
        let mut header = send_header(TOPIC, 1, &props(&[(keys::TIMER_DELAY_SEC, "10")]));
        header.batch = Some(true);
        let reply = call(
            &client,
            send_request(RequestCode::SendBatchMessage, &header, batch.freeze()),
        )
        .await;
        assert_refused(
            &reply,
            illegal,
            "batch messages do not support timer properties",
        );
        let mut half = props(&[(keys::TIMER_DELAY_SEC, "10"), (keys::TRAN_MSG, "true")]);
        half.insert(keys::PGROUP, TX_GROUP).expect("pgroup");
        let mut header = send_header(TOPIC, 1, &half);
        header.sys_flag = sysflag::TRANSACTION_PREPARED_TYPE;
        header.producer_group = TX_GROUP.into();
        let reply = call(
            &client,
            send_request(
                RequestCode::SendMessageV2,
                &header,
                Bytes::from_static(b"h"),
            ),
        )
        .await;
        assert_refused(
            &reply,
            illegal,
            "transaction half messages do not support timer properties",
        );
        // TIMER_STATUS with odd input: a huge topic filter, a garbage body.
        for topic in ["", "no-such-topic", &"t".repeat(20_000)] {
            let mut ext = ExtFields::new();
            ext.insert("topic", topic);
            let reply = call(
                &client,
                RemotingCommand::request(RequestCode::TimerStatus, ext)
                    .with_body(Bytes::from_static(b"{{{{")),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let report: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
            assert_eq!(report["pending"].as_u64(), Some(0), "nothing was parked");
        }
        still_served(&broker, 0).await;
    });
}

#[test]
fn timer_property_abuse_with_one_shard() {
    timer_abuse(1);
}

#[test]
fn timer_property_abuse_with_two_shards() {
    timer_abuse(2);
}

// ---- UPDATE_BROKER_CONFIG, reset-offset-by-time, SEND_REPLY_MESSAGE ---------------------------

fn update_config(body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(RequestCode::UpdateBrokerConfig, ExtFields::new())
        .with_body(Bytes::from(body))
}

#[test]
fn admin_requests_with_absurd_input_are_refused_and_change_nothing() {
    let broker = Broker::start(2, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 2, 6).await;
        still_served(&broker, 0).await;
        let many: String = (0..65)
            .map(|i| format!("brokerPermission{i}=6\n"))
            .collect();
        let reply = call(&client, update_config(many.into_bytes())).await;
        assert_refused(
            &reply,
            ResponseCode::InvalidParameter,
            "65 keys in one update; at most 64",
        );
        let reply = call(
            &client,
            update_config(b"flushDiskType=SYNC_FLUSH\n".to_vec()),
        )
        .await;
        assert_refused(
            &reply,
            ResponseCode::NoPermission,
            "can not update broker config flushDiskType",
        );
        // A huge key name: refused, and not echoed whole (the reply stays a readable frame).
        let huge_key = format!("{}=1\n", "k".repeat(1 << 20));
        let reply = call(&client, update_config(huge_key.into_bytes())).await;
        assert_refused(
            &reply,
            ResponseCode::NoPermission,
            "can not update broker config kkkk",
        );
        assert!(
            remark(&reply).len() < 4096,
            "remark of {} bytes",
            remark(&reply).len()
        );
        let huge_value = format!("brokerPermission={}\n", "9".repeat(1 << 20));
        let reply = call(&client, update_config(huge_value.into_bytes())).await;
        assert_code(&reply, ResponseCode::InvalidParameter);
        assert!(
            remark(&reply).len() < 4096,
            "remark of {} bytes",
            remark(&reply).len()
        );
        let reply = call(
            &client,
            update_config(b"brokerPermission=\xff\xfe\n".to_vec()),
        )
        .await;
        assert_refused(&reply, ResponseCode::InvalidParameter, "not UTF-8");
        let reply = call(&client, update_config(Vec::new())).await;
        assert_refused(
            &reply,
            ResponseCode::InvalidParameter,
            "no broker config key",
        );
        let reply = call(&client, update_config(b"brokerPermission=-1\n".to_vec())).await;
        assert_code(&reply, ResponseCode::InvalidParameter);
        // Nothing changed: sends still succeed.
        still_served(&broker, 1).await;

        // Reset-offset-by-time with absurd timestamps (the group exists: a member's heartbeat).
        let member = broker.client();
        let heartbeat =
            common::heartbeat_request("127.0.0.1@reset", "HostileResetGroup", TOPIC, "*");
        assert_code(&call(&member, heartbeat).await, ResponseCode::Success);
        for timestamp in [i64::MIN, -2, i64::MAX, 0] {
            let header = ResetOffsetRequestHeader {
                topic: TOPIC.into(),
                group: "HostileResetGroup".into(),
                timestamp,
                is_force: true,
            };
            let reply = call(
                &client,
                RemotingCommand::request(RequestCode::InvokeBrokerToResetOffset, header.to_ext()),
            )
            .await;
            if timestamp < -1 {
                assert_refused(
                    &reply,
                    ResponseCode::InvalidParameter,
                    "is neither a store time nor -1",
                );
            } else {
                assert_code(&reply, ResponseCode::Success);
            }
        }

        // SEND_REPLY_MESSAGE naming nobody, a huge REPLY_TO_CLIENT, and none.
        let reply_topic = format!("{}_REPLY_TOPIC", common::CLUSTER_NAME);
        let long_name = "c".repeat(30_000);
        for reply_to in [Some("nobody@nowhere"), Some(long_name.as_str()), None] {
            let mut p = props(&[(keys::CORRELATION_ID, "corr-1")]);
            if let Some(to) = reply_to {
                p.insert(keys::REPLY_TO_CLIENT, to).expect("reply to");
            }
            let header = send_header(&reply_topic, 0, &p);
            let reply = call(
                &client,
                send_request(
                    RequestCode::SendReplyMessageV2,
                    &header,
                    Bytes::from_static(b"r"),
                ),
            )
            .await;
            match reply_to {
                Some(_) => {
                    assert_refused(&reply, ResponseCode::SystemError, "push reply message fail")
                }
                None => assert_refused(&reply, ResponseCode::SystemError, "is null"),
            }
        }
        still_served(&broker, 2).await;
    });
}

/// SEND_REPLY_MESSAGE whose requester takes the push and vanishes without answering: the
/// responder is answered SYSTEM_ERROR (Java's remark), the broker keeps serving, and a later
/// reply to the same id finds nobody.
fn reply_requester_vanishes(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 2, 6).await;
        let requester_id = "127.0.0.1@vanishing-requester";
        let (requester, inbox) = common::recording_client(broker.addr);
        let heartbeat = common::heartbeat_request(requester_id, "VanishGroup", TOPIC, "*");
        assert_code(&call(&requester, heartbeat).await, ResponseCode::Success);
        let reply_topic = format!("{}_REPLY_TOPIC", common::CLUSTER_NAME);
        let mut p = props(&[(keys::CORRELATION_ID, "corr-vanish")]);
        p.insert(keys::REPLY_TO_CLIENT, requester_id)
            .expect("reply to");
        let header = send_header(&reply_topic, 0, &p);
        let request = send_request(
            RequestCode::SendReplyMessageV2,
            &header,
            Bytes::from_static(b"r"),
        );
        let responder = broker.client();
        let pending = responder.invoke(request, Duration::from_secs(30));
        let vanish = async {
            let pushed = || {
                inbox
                    .borrow()
                    .iter()
                    .any(|r| r.request_code() == RequestCode::PushReplyMessageToClient)
            };
            assert!(
                common::eventually(Duration::from_secs(10), pushed).await,
                "the push reached the requester"
            );
            requester.close();
        };
        let (answer, ()) = futures_util::future::join(pending, vanish).await;
        let answer = answer.expect("the responder is answered");
        assert_refused(
            &answer,
            ResponseCode::SystemError,
            &format!("push reply message to {requester_id}fail."),
        );
        still_served(&broker, 0).await;
        // Once the broker has seen the close, the requester is gone from the registry (until
        // then a push to the closed connection fails the same way).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let again = send_request(
                RequestCode::SendReplyMessageV2,
                &header,
                Bytes::from_static(b"r"),
            );
            let reply = call(&client, again).await;
            assert_code(&reply, ResponseCode::SystemError);
            if remark(&reply).contains("not found") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{reply:?}");
            compio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn a_reply_requester_vanishing_mid_push_with_one_shard() {
    reply_requester_vanishes(1);
}

#[test]
fn a_reply_requester_vanishing_mid_push_with_two_shards() {
    reply_requester_vanishes(2);
}

/// Codes a broker sends to clients (check-backs, reply pushes, notifications) and the private
/// admin codes sent the wrong way: REQUEST_CODE_NOT_SUPPORTED, on either port, every time.
#[test]
fn wrong_way_and_private_codes_are_not_supported() {
    let broker = Broker::start(2, "");
    block_on(async {
        let client = broker.client();
        create_topic(&client, TOPIC, 2, 6).await;
        let wrong_way = [
            RequestCode::CheckTransactionState,
            RequestCode::PushReplyMessageToClient,
            RequestCode::NotifyConsumerIdsChanged,
        ];
        for _ in 0..50 {
            for code in wrong_way {
                let mut ext = ExtFields::new();
                ext.insert("tranStateTableOffset", "0");
                ext.insert("commitLogOffset", "-1");
                let reply = call(
                    &client,
                    RemotingCommand::request(code, ext).with_body(Bytes::from_static(b"\x00")),
                )
                .await;
                assert_refused(
                    &reply,
                    ResponseCode::RequestCodeNotSupported,
                    "not supported",
                );
            }
        }
        let namesrv = broker.namesrv_client();
        for code in [
            RequestCode::TransactionPendingStats,
            RequestCode::TimerStatus,
        ] {
            let reply = call(&namesrv, RemotingCommand::request(code, ExtFields::new())).await;
            assert_code(&reply, ResponseCode::RequestCodeNotSupported);
        }
        still_served(&broker, 0).await;
    });
}

// ---- plain_acl.yml replaced by hostile files --------------------------------------------------

const ACL_GOOD: &str =
    "accounts:\n  - accessKey: admin-key\n    secretKey: admin-secret\n    admin: true\n";

#[test]
fn a_hostile_acl_file_keeps_the_previous_accounts_in_force() {
    let dir = TempDir::new("hostile-acl");
    let acl = dir.path().join("plain_acl.yml");
    std::fs::write(&acl, ACL_GOOD).expect("write acl");
    let extra = format!("aclEnable=true\naclFile={}\n", acl.display());
    let broker = Broker::start(1, &extra);
    // Unsigned requests are refused before and after every bad file.
    let refused = || {
        block_on(async {
            let reply = call(
                &broker.client(),
                RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo, ExtFields::new()),
            )
            .await;
            assert_refused(&reply, ResponseCode::NoPermission, "No accessKey");
        });
    };
    refused();
    let deep = format!("accounts:\n  {}x\n", "- ".repeat(200_000));
    let laughs = {
        let mut text = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for level in 1..10 {
            let prev = format!("*a{}", level - 1);
            text.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                vec![prev; 9].join(",")
            ));
        }
        text.push_str("accounts: *a9\n");
        text
    };
    let oversized = format!("# {}\n{ACL_GOOD}", "p".repeat(2 << 20));
    let flow = format!("accounts: {}", "[".repeat(250));
    for (name, text) in [
        ("deep", deep),
        ("laughs", laughs),
        ("oversized", oversized),
        ("flow", flow),
    ] {
        let rss_before = rss_kib(broker.server.pid());
        std::fs::write(&acl, &text).expect("write hostile acl");
        // The reload polls every second; give it three.
        std::thread::sleep(Duration::from_millis(3_000));
        refused();
        let rss_after = rss_kib(broker.server.pid());
        assert!(
            rss_after < rss_before + 128 * 1024,
            "{name}: RSS grew {} KiB",
            rss_after.saturating_sub(rss_before)
        );
    }
    // A good file afterwards still loads (the reload loop survived).
    std::fs::write(&acl, "accounts:\n  - accessKey: admin-key\n    secretKey: admin-secret\n    admin: true\nglobalWhiteRemoteAddresses:\n  - 127.0.0.1\n").expect("write");
    std::thread::sleep(Duration::from_millis(3_000));
    block_on(async {
        let reply = call(
            &broker.client(),
            RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo, ExtFields::new()),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
    });
}

// ---- STATS_ITEM_KEYS_MAX ------------------------------------------------------------------------

/// `src/limits.rs` `STATS_ITEM_KEYS_MAX` (per shard).
const STATS_ITEM_KEYS_MAX: usize = 4096;

fn view_stats(name: &str, key: &str) -> RemotingCommand {
    let header = rmq_net::codec::header::admin::ViewBrokerStatsDataRequestHeader {
        stats_name: name.into(),
        stats_key: key.into(),
    };
    RemotingCommand::request(RequestCode::ViewBrokerStatsData, header.to_ext())
}

fn stats_keys_stay_capped(shards: usize) {
    let broker = Broker::start(shards, "");
    block_on(async {
        let client = broker.client();
        // One queue: every pull lands on one shard, whose map fills.
        create_topic(&client, TOPIC, 1, 6).await;
        still_served(&broker, 0).await;
        let rss_before = rss_kib(broker.server.pid());
        let groups: Vec<String> = (0..STATS_ITEM_KEYS_MAX + 200)
            .map(|i| format!("HostileStatsGroup{i}"))
            .collect();
        for (i, group) in groups.iter().enumerate() {
            let spec = PullSpec {
                group,
                max: 1,
                ..PullSpec::new(TOPIC, 0, 0)
            };
            let pulled = common::pulled(&call(&client, spec.request()).await);
            assert_eq!(pulled.records.len(), 1, "group {i}");
            if i % 1000 == 0 {
                still_served(&broker, 1).await;
            }
        }
        let view = |group: &str| view_stats("GROUP_GET_NUMS", &format!("{TOPIC}@{group}"));
        let first = call(&client, view(&groups[0])).await;
        assert_code(&first, ResponseCode::Success);
        let last = &groups[groups.len() - 1];
        let beyond = call(&client, view(last)).await;
        assert_refused(
            &beyond,
            ResponseCode::SystemError,
            &format!("The stats <GROUP_GET_NUMS> <{TOPIC}@{last}> not exist"),
        );
        // Exactly the cap is held (the well-behaved client's group `CG` pulled first and holds
        // one key): the last counted key answers, the next does not.
        let held = STATS_ITEM_KEYS_MAX - 1;
        let counted = (0..groups.len())
            .filter(|&i| i % 50 == 0 || i + 2 >= held)
            .filter(|&i| i < held + 2)
            .map(|i| (i, &groups[i]))
            .collect::<Vec<_>>();
        for (i, group) in counted {
            let reply = call(&client, view(group)).await;
            let expected = if i < held {
                ResponseCode::Success
            } else {
                ResponseCode::SystemError
            };
            assert_eq!(reply.response_code(), expected, "group {i}: {reply:?}");
        }
        // Held keys keep counting past the cap.
        let spec = PullSpec {
            group: &groups[0],
            max: 1,
            ..PullSpec::new(TOPIC, 0, 0)
        };
        assert_eq!(
            common::pulled(&call(&client, spec.request()).await)
                .records
                .len(),
            1
        );
        let again = call(&client, view(&groups[0])).await;
        let data = rmq_net::codec::body::broker_stats::BrokerStatsData::from_json(&again.body)
            .expect("stats body");
        assert_eq!(data.stats_day.sum, 2, "{data:?}");
        let rss_after = rss_kib(broker.server.pid());
        assert!(
            rss_after < rss_before + 128 * 1024,
            "RSS grew {} KiB",
            rss_after.saturating_sub(rss_before)
        );
        still_served(&broker, 2).await;
    });
}

#[test]
fn stats_keys_stay_capped_with_one_shard() {
    stats_keys_stay_capped(1);
}

#[test]
fn stats_keys_stay_capped_with_two_shards() {
    stats_keys_stay_capped(2);
}

// ---- TIMER_TOPICS_COUNTED_MAX (long: by hand) -----------------------------------------------

/// `src/limits.rs` `TIMER_TOPICS_COUNTED_MAX` (per shard).
const TIMER_TOPICS_COUNTED_MAX: usize = 4_096;

/// Timers over more topics than the admin view counts: the view stays capped with `<other>`,
/// and once every timer is delivered it is empty again.
///
/// Regression test for `TimerState::count` filing a timer under `<other>` when the map was full
/// at enqueue but decrementing the (absent) topic at delivery, so `<other>` kept the count
/// forever (`pending` 0, `pendingByTopic` `{"<other>": 1}`). Fixed in 735c4e7; passes by hand
/// (~35 s); ignored in CI for its length.
#[test]
#[ignore = "long (creates 4,097 topics, ~35-70 s); run by hand with --ignored"]
fn timer_topics_past_the_counted_cap_fold_into_other_and_drain() {
    let broker = Broker::start(1, "");
    block_on(async {
        let client = broker.client();
        // Created first: past 4,096 topics the well-behaved client's topic could not be
        // auto-created any more (autoCreateTopicMax).
        create_topic(&client, TOPIC, 1, 6).await;
        let topics: Vec<String> = (0..=TIMER_TOPICS_COUNTED_MAX)
            .map(|i| format!("HostileTimer{i}"))
            .collect();
        for topic in &topics {
            create_topic(&client, topic, 1, 6).await;
        }
        // All are due after every send is parked (sending 4,097 takes seconds); the last topic's
        // timer is due later than the others, so it is delivered after they left the view.
        let due = now_ms() + 25_000;
        for (i, topic) in topics.iter().enumerate() {
            let at = if i == TIMER_TOPICS_COUNTED_MAX {
                due + 3_000
            } else {
                due
            };
            let properties = props(&[(keys::TIMER_DELIVER_MS, &at.to_string())]);
            let reply = send_v2(&client, topic, 0, b"t", &properties).await;
            assert_code(&reply, ResponseCode::Success);
        }
        let all = u64::try_from(topics.len()).expect("small");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while timer_status(&client).await.pending != all {
            assert!(std::time::Instant::now() < deadline, "timers not parked");
            compio::time::sleep(Duration::from_millis(200)).await;
        }
        let by_topic = timer_status(&client).await.pending_by_topic;
        assert!(
            by_topic.len() <= TIMER_TOPICS_COUNTED_MAX + 1,
            "{}",
            by_topic.len()
        );
        assert_eq!(by_topic.get("<other>"), Some(&1));
        // Everything is delivered within the delays plus a few wheel ticks.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let report = timer_status(&client).await;
            if report.pending == 0 {
                let by_topic = &report.pending_by_topic;
                assert!(
                    by_topic.is_empty(),
                    "nothing pending, yet the view holds {by_topic:?}"
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timers not delivered: {report:?}"
            );
            compio::time::sleep(Duration::from_millis(500)).await;
        }
        still_served(&broker, 0).await;
    });
}
