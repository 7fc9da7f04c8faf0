//! The cost of a Prometheus scrape with 10,000 topics (issue 17's bound): a broker with one
//! message in each of `RMQ_SCRAPE_TOPICS` topics (10,000 by default) and a consumer group's
//! committed offset on each (so every topic has in-traffic and consumer-lag series, and every
//! scrape reads one stored message per topic for the lag latency; `RMQ_SCRAPE_COMMIT=0` leaves
//! them out), scraped `RMQ_SCRAPE_ROUNDS` times. Prints the time and bytes of each scrape; asserts only what the scrape must hold
//! (every topic's series, parsed by prometheus-parse), never a speed. A benchmark, so ignored
//! by default:
//!
//! ```sh
//! cargo test --release -p rmq --test metrics_scrape_cost -- --ignored --nocapture
//! ```
//!
//! perf-reports/2026-12-06-metrics/ holds the numbers.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{block_on, call, send_v2, update_offset_request, write_broker_conf, Server, TempDir};
use prometheus_parse::Scrape;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::conn::{ClientConfig, RemotingClient};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn get_metrics(addr: SocketAddr) -> (Duration, String) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .expect("request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer");
    let elapsed = started.elapsed();
    let answer = String::from_utf8(answer).expect("utf-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    (elapsed, body.to_owned())
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn scrape_cost_with_ten_thousand_topics() {
    let topics = env_or("RMQ_SCRAPE_TOPICS", 10_000);
    let rounds = env_or("RMQ_SCRAPE_ROUNDS", 10);
    let shards = env_or("RMQ_SCRAPE_SHARDS", 2);
    // 0: no committed offsets, so no consumer-lag series and no store reads in the scrape.
    let commit = env_or("RMQ_SCRAPE_COMMIT", 1) == 1;
    let dir = TempDir::new("scrape-cost");
    let conf = write_broker_conf(
        dir.path(),
        &format!(
            "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\n\
             metricsPromExporterPort=0\nautoCreateTopicMax={}\ndefaultTopicQueueNums=1",
            topics + 16
        ),
    );
    let store = dir.path().join("store");
    let shards_arg = shards.to_string();
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
            &shards_arg,
        ],
        3,
    );
    let (broker, metrics) = (server.addr("broker"), server.addr("metrics"));
    let client = RemotingClient::new(broker.to_string(), ClientConfig::default());
    let loaded = Instant::now();
    block_on(async {
        for index in 0..topics {
            let topic = format!("ScrapeTopic{index:05}");
            let reply = send_v2(&client, &topic, 0, b"scrape-cost", &Default::default()).await;
            common::assert_code(&reply, ResponseCode::Success);
            if commit {
                let reply = call(&client, update_offset_request("ScrapeGroup", &topic, 0, 0)).await;
                common::assert_code(&reply, ResponseCode::Success);
            }
        }
    });
    println!(
        "loaded {topics} topics (one message each, committed offsets: {commit}) in {:.1} s, {shards} shards",
        loaded.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut bytes = 0;
    for round in 0..rounds {
        let (elapsed, body) = get_metrics(metrics);
        bytes = body.len();
        times.push(elapsed);
        println!(
            "scrape {round}: {:.2} ms, {} bytes, {} lines",
            elapsed.as_secs_f64() * 1000.0,
            body.len(),
            body.lines().count()
        );
        if round == 0 {
            let parsed = Scrape::parse(body.lines().map(|line| Ok(line.to_owned())))
                .expect("the text parses");
            let count = |metric: &str| {
                parsed
                    .samples
                    .iter()
                    .filter(|sample| {
                        sample.metric == metric
                            && sample
                                .labels
                                .get("topic")
                                .is_some_and(|topic| topic.starts_with("ScrapeTopic"))
                    })
                    .count()
            };
            assert_eq!(count("rocketmq_messages_in_total"), topics);
            let lagging = if commit { topics } else { 0 };
            assert_eq!(count("rocketmq_consumer_lag_messages"), lagging);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "SCRAPE topics={topics} shards={shards} commit={commit} rounds={rounds} median_ms={:.2} min_ms={:.2} max_ms={:.2} bytes={bytes}",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
    );
}
