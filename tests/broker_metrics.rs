//! Black-box tests of the Prometheus exporter (`metricsExporterType=PROM`): known traffic
//! through our own client, then a real HTTP scrape parsed by a Prometheus text-format parser
//! (the `prometheus-parse` crate; and `promtool check metrics` when `promtool` is installed,
//! required when `RMQ_REQUIRE_PROMTOOL=1`, as CI sets it), values checked against the
//! traffic; with 1 and 2 shards. Also: replication lag on a master and its slave, the HTTP
//! answers to bad requests, and the start error for an unsupported exporter type.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    block_on, call, create_topic, pull, send_v2, update_offset_request, write_broker_conf,
    PullSpec, Server, TempDir,
};
use prometheus_parse::{Sample, Scrape, Value};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::conn::{ClientConfig, RemotingClient};

const TOPIC: &str = "MetricsTopic";
const GROUP: &str = "MetricsGroup";
const QUEUES: i32 = 4;

/// `rmq standalone` with the exporter on loopback, any free port: (server, broker, metrics).
fn start(dir: &TempDir, shards: usize) -> (Server, SocketAddr, SocketAddr) {
    let conf = write_broker_conf(
        dir.path(),
        "brokerClusterName=MetricsCluster\nmetricsExporterType=PROM\n\
         metricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0",
    );
    let store = dir.path().join("store");
    let shards = shards.to_string();
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
            &shards,
        ],
        3,
    );
    let (broker, metrics) = (server.addr("broker"), server.addr("metrics"));
    (server, broker, metrics)
}

/// Sends `request` over a fresh connection and returns the whole answer (the server closes).
fn http(addr: SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the exporter");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request).expect("write request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    let answer = String::from_utf8(answer).expect("utf-8 answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_owned(), body.to_owned())
}

/// Scrapes `/metrics`, checks the HTTP head, runs promtool when present, and parses the text.
fn scrape_metrics(addr: SocketAddr) -> Scrape {
    let (head, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    promtool_check(&body);
    Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).expect("text format parses")
}

/// `promtool check metrics` on `text` (lint included) when promtool is installed.
fn promtool_check(text: &str) {
    let required = std::env::var("RMQ_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            assert!(!required, "RMQ_REQUIRE_PROMTOOL=1 but promtool: {err}");
            eprintln!("promtool not installed: parsed with prometheus-parse only");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool ran");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The samples of `metric` whose labels include every pair in `labels`.
fn samples<'a>(
    scrape: &'a Scrape,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> + 'a {
    scrape.samples.iter().filter(move |sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
    })
}

/// The one counter or gauge value of `metric` with `labels`.
#[track_caller]
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples(scrape, metric, labels).collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    match &found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric} is not a number: {other:?}"),
    }
}

/// The sum over shards of a per-shard gauge.
fn shard_sum(scrape: &Scrape, metric: &str) -> f64 {
    samples(scrape, metric, &[])
        .map(|sample| match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{metric} is a number"),
        })
        .sum()
}

/// The observation count (the `+Inf` bucket) of a histogram series.
#[track_caller]
fn histogram_count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples(scrape, metric, labels).collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    let Value::Histogram(buckets) = &found[0].value else {
        panic!("{metric} is not a histogram");
    };
    assert!(
        buckets
            .windows(2)
            .all(|pair| pair[0].count <= pair[1].count),
        "buckets are cumulative"
    );
    buckets
        .iter()
        .find(|bucket| bucket.less_than.is_infinite())
        .expect("+Inf bucket")
        .count
}

fn known_traffic_is_exported(shards: usize) {
    let dir = TempDir::new("metrics");
    let (_server, broker, metrics) = start(&dir, shards);
    let client = RemotingClient::new(broker.to_string(), ClientConfig::default());
    // Per queue q: q + 2 messages of 100 + q bytes.
    let mut sent = 0u64;
    let mut sent_bytes = 0u64;
    block_on(async {
        create_topic(&client, TOPIC, QUEUES, 6).await;
        for queue in 0..QUEUES {
            let count = u64::try_from(queue).expect("small") + 2;
            let size = 100 + usize::try_from(queue).expect("small");
            for _ in 0..count {
                let reply = send_v2(
                    &client,
                    TOPIC,
                    queue,
                    &vec![b'x'; size],
                    &Default::default(),
                )
                .await;
                common::assert_code(&reply, ResponseCode::Success);
                sent += 1;
                sent_bytes += size as u64;
            }
        }
    });
    // Pull everything of queues 0 and 1 once (plus one pull past the end), commit queue 0 at 1.
    let (mut pulled, mut pulled_bytes, mut pull_hits) = (0u64, 0u64, 0u64);
    block_on(async {
        for queue in 0..2 {
            let spec = PullSpec {
                group: GROUP,
                ..PullSpec::new(TOPIC, queue, 0)
            };
            let reply = call(&client, spec.request()).await;
            common::assert_code(&reply, ResponseCode::Success);
            pulled_bytes += reply.body.len() as u64;
            pull_hits += 1;
            pulled += common::pulled(&reply).records.len() as u64;
        }
        let past = PullSpec {
            group: GROUP,
            ..PullSpec::new(TOPIC, 0, 2)
        };
        assert_ne!(pull(&client, &past).await.code, ResponseCode::Success);
        let commit = call(&client, update_offset_request(GROUP, TOPIC, 0, 1)).await;
        common::assert_code(&commit, ResponseCode::Success);
        let commit = call(&client, update_offset_request(GROUP, TOPIC, 2, 0)).await;
        common::assert_code(&commit, ResponseCode::Success);
    });
    assert_eq!(pulled, 2 + 3, "queues 0 and 1 hold 2 and 3 messages");

    let scrape = scrape_metrics(metrics);
    let identity = [
        ("cluster", "MetricsCluster"),
        ("node_type", "broker"),
        ("node_id", common::BROKER_NAME),
    ];
    let topic = [identity.as_slice(), &[("topic", TOPIC)]].concat();
    let consumed = [topic.as_slice(), &[("consumer_group", GROUP)]].concat();
    assert_eq!(
        value(&scrape, "rocketmq_messages_in_total", &topic),
        sent as f64
    );
    assert_eq!(
        value(&scrape, "rocketmq_throughput_in_total", &topic),
        sent_bytes as f64
    );
    assert_eq!(
        histogram_count(&scrape, "rocketmq_message_size", &identity),
        sent as f64
    );
    assert_eq!(
        value(&scrape, "rocketmq_messages_out_total", &consumed),
        pulled as f64
    );
    assert_eq!(
        value(&scrape, "rocketmq_throughput_out_total", &consumed),
        pulled_bytes as f64
    );
    let send_ok = [
        ("request_code", "send_message_v2"),
        ("response_code", "success"),
    ];
    assert_eq!(
        histogram_count(&scrape, "rocketmq_rpc_latency", &send_ok),
        sent as f64
    );
    let pull_ok = [
        ("request_code", "pull_message"),
        ("response_code", "success"),
    ];
    assert_eq!(
        histogram_count(&scrape, "rocketmq_rpc_latency", &pull_ok),
        pull_hits as f64
    );
    // Committed: queue 0 at 1 (2 stored: lag 1), queue 2 at 0 (4 stored: lag 4).
    assert_eq!(
        value(&scrape, "rocketmq_consumer_lag_messages", &consumed),
        5.0
    );
    let latency_ms = value(&scrape, "rocketmq_consumer_lag_latency", &consumed);
    assert!(
        (0.0..600_000.0).contains(&latency_ms),
        "the oldest uncommitted message was stored during this test: {latency_ms} ms"
    );
    assert_eq!(
        samples(&scrape, "rmq_commitlog_size_bytes", &[]).count(),
        shards,
        "one CommitLog series per shard"
    );
    assert!(shard_sum(&scrape, "rmq_commitlog_size_bytes") >= sent_bytes as f64);
    assert_eq!(
        samples(&scrape, "rmq_shard_busy_seconds_total", &[]).count(),
        shards
    );
    assert!(shard_sum(&scrape, "rmq_shard_busy_seconds_total") > 0.0);
    assert_eq!(
        samples(&scrape, "rmq_mesh_queue_depth", &[]).count(),
        shards
    );
    assert!(value(&scrape, "process_resident_memory_bytes", &identity) > 1e6);
    let free = value(&scrape, "rmq_commitlog_disk_free_ratio", &identity);
    assert!((0.0..=1.0).contains(&free), "{free}");
    // A master: every shard reports its replication state (no slave connected here).
    assert_eq!(
        samples(&scrape, "rmq_replication_lag_bytes", &[]).count(),
        shards
    );
    assert_eq!(shard_sum(&scrape, "rmq_replication_connected"), 0.0);

    // Counters only grow: one more send shows in the next scrape, taken while the client's
    // connection is open (it closes with the runtime of each `block_on`).
    let again = block_on(async {
        let reply = send_v2(&client, TOPIC, 0, b"one more", &Default::default()).await;
        common::assert_code(&reply, ResponseCode::Success);
        scrape_metrics(metrics)
    });
    assert!(
        shard_sum(&again, "rmq_connections") >= 1.0,
        "our client's connection"
    );
    assert!(
        samples(&again, "rmq_connections", &[]).all(|sample| sample
            .labels
            .get("language")
            .is_some()
            && sample.labels.get("version").is_some()),
        "connections are labelled by language and version"
    );
    assert_eq!(
        value(&again, "rocketmq_messages_in_total", &topic),
        (sent + 1) as f64
    );
    // The flusher fdatasyncs within flushIntervalCommitLog (500 ms): the rounds show in the
    // flush latency histogram and nothing stays pending.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = scrape_metrics(metrics);
        let rounds = histogram_count(&now, "rmq_flush_latency", &identity);
        let pending = shard_sum(&now, "rmq_flush_pending_bytes");
        if rounds >= 1.0 && pending == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flushed: {rounds} rounds, {pending} bytes pending"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn known_traffic_is_exported_with_one_shard() {
    known_traffic_is_exported(1);
}

#[test]
fn known_traffic_is_exported_with_two_shards() {
    known_traffic_is_exported(2);
}

#[test]
fn bad_requests_get_http_errors_and_the_broker_keeps_serving() {
    let dir = TempDir::new("metrics-http");
    let (_server, _broker, metrics) = start(&dir, 2);
    let cases: [(&[u8], &str); 5] = [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (
            b"POST /metrics HTTP/1.1\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"hello\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"),
    ];
    for (request, status) in cases {
        let (head, body) = http(metrics, request);
        assert!(head.starts_with(status), "{request:?}: {head}");
        if request.starts_with(b"HEAD") {
            assert!(body.is_empty(), "HEAD has no body");
        }
    }
    // Exactly the head limit without its end: all of it is read, so the close is clean.
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.resize(8 * 1024, b'a');
    let (head, _) = http(metrics, &huge);
    assert!(
        head.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{head}"
    );
    // A scraper that connects and says nothing holds one slot, not the shard.
    let idle = TcpStream::connect(metrics).expect("idle connection");
    let scrape = scrape_metrics(metrics);
    assert_eq!(samples(&scrape, "rmq_commitlog_size_bytes", &[]).count(), 2);
    drop(idle);
}

#[test]
fn an_unsupported_exporter_type_is_a_start_error_naming_the_key() {
    let dir = TempDir::new("metrics-bad");
    let conf = write_broker_conf(dir.path(), "metricsExporterType=OTLP_GRPC");
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args([
            "standalone",
            "--namesrv-port",
            "0",
            "--broker-port",
            "0",
            "--store-dir",
            dir.path().join("store").to_str().expect("utf-8"),
            "-c",
            conf.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run rmq");
    assert!(!output.status.success(), "refused at start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("metricsExporterType") && stderr.contains("PROM"),
        "{stderr}"
    );
}

/// `rmq broker -c` (master, any free ports) with the exporter on: (server, broker, metrics).
fn start_master(
    dir: &TempDir,
    namesrv: SocketAddr,
    shards: usize,
) -> (Server, SocketAddr, SocketAddr) {
    let conf = write_broker_conf(
        dir.path(),
        &format!(
            "brokerRole=ASYNC_MASTER\nbrokerId=0\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
             namesrvAddr={namesrv}\nstorePathRootDir={}\nlistenPort={}\nhaListenPort={}\n{EXPORTER}",
            dir.path().join("store").display(),
            common::free_port(),
            common::free_port(),
        ),
    );
    let shards = shards.to_string();
    let server = Server::start(
        &[
            "broker",
            "-c",
            conf.to_str().expect("utf-8"),
            "--shards",
            &shards,
        ],
        2,
    );
    let (broker, metrics) = (server.addr("broker"), server.addr("metrics"));
    (server, broker, metrics)
}

const EXPORTER: &str =
    "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0\n";

#[test]
fn replication_lag_is_exported_by_master_and_slave_with_one_shard() {
    replication_lag_is_exported(1);
}

#[test]
fn replication_lag_is_exported_by_master_and_slave_with_two_shards() {
    replication_lag_is_exported(2);
}

fn replication_lag_is_exported(shards: usize) {
    let names = TempDir::new("metrics-ha-namesrv");
    let namesrv = common::start_namesrv(&names);
    let namesrv_addr = namesrv.addr("namesrv");
    let master_dir = TempDir::new("metrics-ha-master");
    let (_master, broker, master_metrics) = start_master(&master_dir, namesrv_addr, shards);
    let slave_dir = TempDir::new("metrics-ha-slave");
    // The slave prints READY metrics before READY broker; the first line is enough here.
    let slave = common::start_slave(&slave_dir, namesrv_addr, 1, shards, EXPORTER, None);
    let slave_metrics = slave.addr("metrics");
    let client = RemotingClient::new(broker.to_string(), ClientConfig::default());
    let mut sent_bytes = 0;
    block_on(async {
        create_topic(&client, TOPIC, QUEUES, 6).await;
        for index in 0..20 {
            let body = format!("replicated-{index}");
            let reply = send_v2(
                &client,
                TOPIC,
                index % QUEUES,
                body.as_bytes(),
                &Default::default(),
            )
            .await;
            common::assert_code(&reply, ResponseCode::Success);
            sent_bytes += body.len() as u64;
        }
    });
    // Both sides report one series per shard; once the slave caught up, no lag on either.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let master = scrape_metrics(master_metrics);
        let slave = scrape_metrics(slave_metrics);
        assert_eq!(
            samples(&master, "rmq_replication_lag_bytes", &[]).count(),
            shards
        );
        assert_eq!(
            samples(&slave, "rmq_replication_lag_bytes", &[]).count(),
            shards
        );
        let state = (
            shard_sum(&master, "rmq_replication_connected"),
            shard_sum(&slave, "rmq_replication_connected"),
            shard_sum(&master, "rmq_replication_lag_bytes"),
            shard_sum(&slave, "rmq_replication_lag_bytes"),
            shard_sum(&master, "rmq_commitlog_size_bytes"),
            shard_sum(&slave, "rmq_commitlog_size_bytes"),
        );
        let (master_up, slave_up, master_lag, slave_lag, master_log, slave_log) = state;
        if master_up == shards as f64
            && slave_up == shards as f64
            && master_lag == 0.0
            && slave_lag == 0.0
            && master_log == slave_log
        {
            assert!(master_log >= sent_bytes as f64, "{state:?}");
            assert_eq!(
                samples(&master, "rmq_replication_lag_seconds", &[]).count(),
                shards,
                "a master with its slave connected reports the age of the unacknowledged"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replication never caught up (connected master/slave, lag master/slave, log master/slave): {state:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
