//! rocketmq-client-rust against `rmq namesrv` with no broker registered: the client starts,
//! asks for routes, and gets a clean "no route" error rather than a hang or a decode failure.
//! Runs without the broker, so it also checks the harness and the client build themselves.

#![recursion_limit = "512"]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rmq_interop_rust_client::route_code;

/// TOPIC_NOT_EXIST, the NameServer's answer for a topic nobody registered.
const TOPIC_NOT_EXIST: i64 = 17;

#[test]
fn client_gets_clean_no_route_errors_from_a_brokerless_namesrv() {
    let dir = fresh_dir("namesrv-only");
    let server = Rmq::start(&Mode::NameServer {
        dir: dir.path().to_owned(),
    });
    let addr = server.addr("namesrv");
    assert_eq!(
        route_code(addr, "TBW102").expect("route probe"),
        TOPIC_NOT_EXIST,
        "no broker registered TBW102 yet"
    );
    let namesrv = server.namesrv();
    let token = run_token();
    let (queues, send, took) = scenario(
        "namesrv-only",
        Duration::from_secs(30),
        move |rt| async move {
            let mut producer = producer(&rt, &namesrv, &format!("pg_nsonly_{token}")).await?;
            let started = Instant::now();
            let queues = producer
                .fetch_publish_message_queues(&format!("NoSuchTopic_{token}"))
                .await
                .map(|q| q.len())
                .map_err(|e| describe(&e));
            let send = producer
                .send_with_timeout(
                    message(&format!("NoSuchTopic_{token}"), "TagA", "k", "body"),
                    SEND_TIMEOUT_MS,
                )
                .await
                .map(|r| r.map(|r| format!("{:?}", r.send_status)))
                .map_err(|e| describe(&e));
            let took = started.elapsed();
            producer.shutdown().await;
            Ok((queues, send, took))
        },
    );
    assert!(
        queues.is_err(),
        "no queues without a broker, got {queues:?}"
    );
    // The client redacts error details, so only the failure itself and its promptness are
    // observable: no hang waiting for a broker that is not there.
    let send_error = send.expect_err("a send without any route must fail");
    assert!(
        took < Duration::from_secs(15),
        "errors come promptly, took {took:?}: {send_error}"
    );
}
