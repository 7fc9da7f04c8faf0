//! End-to-end runs of the harness against its in-process echo server: every send mode,
//! batches, the rate cap, busy-polling threads, consumers, the TBW102 route fallback, and the
//! binary writing its report. Threads are not pinned so parallel tests do not fight over
//! cores.

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use rmq_bench::cli::BenchArgs;
use rmq_bench::echo::{EchoConfig, EchoRoutes, EchoServer};
use rmq_bench::route::{resolve, RouteSource};
use rmq_bench::run::{run, RunOutcome};
use rmq_net::conn::{ClientConfig, RemotingClient};

fn echo_run(extra: &[&str]) -> RunOutcome {
    let args = BenchArgs::parse_from(
        [
            "rmq-bench",
            "--mode",
            "echo",
            "--no-pin",
            "--quiet",
            "--size",
            "128",
        ]
        .iter()
        .chain(extra)
        .copied(),
    );
    let mut seconds = 0;
    let outcome = run(&args, &mut |_progress| seconds += 1).expect("echo run succeeds");
    assert_eq!(
        outcome.samples.len(),
        seconds,
        "one progress call per sample"
    );
    outcome
}

#[test]
fn sync_sends_are_all_acknowledged_and_echoed() {
    let outcome = echo_run(&[
        "--producers",
        "4",
        "--connections",
        "2",
        "--count",
        "2000",
        "--queues",
        "4",
    ]);
    let stats = &outcome.stats;
    assert_eq!(stats.sent.messages, 2000);
    assert_eq!(stats.acked.messages, 2000);
    assert_eq!(stats.acked.bytes, 2000 * 128);
    assert_eq!(stats.send_latency.len(), 2000);
    assert_eq!(stats.errors.total(), 0, "{:?}", stats.errors);
    let echo = outcome.echo.expect("echo stats");
    assert_eq!(echo.send_messages, 2000);
    assert_eq!(echo.send_requests, 2000);
    assert_eq!(outcome.route.write_queues.len(), 4);
    assert_eq!(outcome.threads.len(), 1);
    assert!(outcome.threads[0].cpu_ns > 0);
}

#[test]
fn async_batches_and_oneway_reach_the_server() {
    let batched = echo_run(&[
        "--send-mode",
        "async",
        "--inflight",
        "16",
        "--batch",
        "8",
        "--count",
        "1003",
        "--threads",
        "2",
        "--producers",
        "2",
    ]);
    assert_eq!(batched.stats.acked.messages, 1003);
    // 1003 over two producers: 502 = 62 x 8 + 6, 501 = 62 x 8 + 5.
    assert_eq!(batched.stats.acked.requests, 126);
    assert_eq!(batched.echo.expect("echo").send_messages, 1003);

    let oneway = echo_run(&["--send-mode", "oneway", "--count", "3000"]);
    assert_eq!(oneway.stats.sent.messages, 3000);
    assert_eq!(oneway.stats.acked.messages, 0);
    assert!(oneway.stats.send_latency.is_empty());
    // The server has every oneway send once the connection closes cleanly after the run.
    let echo = oneway.echo.expect("echo");
    assert_eq!(echo.send_messages, 3000, "{echo:?}");
}

#[test]
fn duration_and_rate_cap_hold() {
    // A rate far below what even a starved debug build sustains, so only the cap limits it.
    let outcome = echo_run(&["--duration", "1.5", "--rate", "400", "--producers", "2"]);
    let acked = outcome.stats.acked.messages;
    // 1.5 s at 400/s, plus the bucket's initial burst (4 tokens); allow timer slack.
    assert!((560..=640).contains(&acked), "acked {acked}");
    assert!(
        outcome.produce_secs >= 1.5 && outcome.produce_secs < 3.0,
        "{}",
        outcome.produce_secs
    );
    assert!(outcome.samples.len() >= 2);
    let full_second = &outcome.samples[0];
    assert!(
        (360.0..=440.0).contains(&full_second.acked_msgs_per_s),
        "{full_second:?}"
    );
}

/// `--busy-poll` threads never sleep, yet their timers still fire: a counted run ends with
/// every send acknowledged, and a rate-capped run holds its cap and its duration.
#[test]
fn busy_polling_threads_send_and_keep_their_timers() {
    let counted = echo_run(&["--busy-poll", "--count", "500"]);
    assert_eq!(counted.stats.acked.messages, 500);
    assert_eq!(
        counted.stats.errors.total(),
        0,
        "{:?}",
        counted.stats.errors
    );
    let capped = echo_run(&["--busy-poll", "--duration", "1", "--rate", "400"]);
    let acked = capped.stats.acked.messages;
    // 1 s at 400/s, plus the bucket's initial burst; allow timer slack.
    assert!((360..=440).contains(&acked), "acked {acked}");
    assert!(
        capped.produce_secs >= 1.0 && capped.produce_secs < 2.5,
        "{}",
        capped.produce_secs
    );
}

#[test]
fn consumers_pull_decode_and_time_messages() {
    let outcome = echo_run(&[
        "--count",
        "500",
        "--consumers",
        "2",
        "--groups",
        "2",
        "--queues",
        "2",
        "--pull-batch",
        "16",
        "--tags",
        "a,b",
        "--key-space",
        "10",
    ]);
    let stats = &outcome.stats;
    assert_eq!(stats.acked.messages, 500);
    assert!(
        stats.consumed.messages > 0,
        "consumers received echoed records"
    );
    assert_eq!(stats.consumed.bytes, stats.consumed.messages * 128);
    assert_eq!(stats.end_to_end_latency.len(), stats.consumed.messages);
    assert!(stats.pull_latency.len() >= stats.consumed.requests);
    assert_eq!(stats.errors.total(), 0, "{:?}", stats.errors);
    let echo = outcome.echo.expect("echo");
    assert!(echo.pull_requests > 0);
    // Pulls in flight when the consumers stopped were answered but never read: at most one
    // per pull loop (2 groups x 2 queues), 16 records each.
    let unread = echo.pulled_messages - stats.consumed.messages;
    assert!(
        unread <= 4 * 16,
        "served {} consumed {}",
        echo.pulled_messages,
        stats.consumed.messages
    );
}

#[test]
fn unknown_topic_borrows_the_default_route() {
    let server = EchoServer::start(EchoConfig {
        queues: 8,
        routes: EchoRoutes::DefaultTopicOnly,
        pull_message_size: 16,
        core: None,
    })
    .expect("echo server");
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    let route = runtime
        .block_on(async {
            let client = RemotingClient::new(server.addr().to_string(), ClientConfig::default());
            resolve(&client, "NewTopic", 3, Duration::from_secs(3)).await
        })
        .expect("resolves through TBW102");
    assert_eq!(route.source, RouteSource::DefaultTopic);
    assert_eq!(route.write_queues.len(), 3);
    assert_eq!(route.read_queues.len(), 3);
    assert_eq!(route.write_queues[0].broker_addr, server.addr().to_string());
    let stats = server.stop();
    assert_eq!(stats.requests, 2, "topic, then TBW102");
}

#[test]
fn binary_writes_report_and_plots() {
    let dir = std::env::temp_dir().join(format!("rmq-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let report = dir.join("echo.json");
    let output = Command::new(env!("CARGO_BIN_EXE_rmq-bench"))
        .args([
            "--mode",
            "echo",
            "--no-pin",
            "--duration",
            "1",
            "--size",
            "256",
            "--send-mode",
            "async",
        ])
        .args(["--label", "e2e", "--store-dir"])
        .arg(&dir)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("runs the binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.contains("acked") && stdout.contains("p99.9"),
        "{stdout}"
    );
    assert!(
        stderr.contains("msg/s"),
        "progress line on stderr: {stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    let acked = json["results"]["acked"]["messages"]
        .as_u64()
        .expect("acked count");
    assert!(acked > 100, "acked {acked}");
    assert_eq!(
        json["results"]["echo"]["send_messages"].as_u64(),
        Some(acked)
    );
    assert_eq!(json["label"], "e2e");
    assert_eq!(json["parameters"]["send_mode"], "async");
    assert!(json["store"]["filesystem"]["fs_type"].is_string());
    assert!(json["command"]
        .as_array()
        .is_some_and(|argv| argv.len() > 5));
    for plot in ["echo.throughput.svg", "echo.p99.svg", "echo.latency.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot)).expect("plot written");
        assert!(svg.contains("<polyline"), "{plot}");
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}
