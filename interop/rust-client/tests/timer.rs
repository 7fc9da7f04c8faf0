//! Timer messages with rocketmq-client-rust against `rmq standalone` (1 shard and 2 shards):
//! `Message::set_deliver_time_ms` (TIMER_DELIVER_MS), `set_delay_time_sec` (TIMER_DELAY_SEC)
//! and `set_delay_time_ms` (TIMER_DELAY_MS) are each answered SEND_OK and consumed exactly once,
//! not before their time; a deliver time beyond `timerMaxDelaySec` fails the send.

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use rocketmq_model::common::message::MessageTrait;

/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(90);
/// The delay of every timer in the scenario.
const DELAY: Duration = Duration::from_secs(3);

fn epoch_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis(),
    )
    .expect("fits")
}

fn timers(name: &str, shards: &str) {
    let dir = fresh_dir(name);
    let shards_line = format!("shards={shards}");
    let server = Rmq::start(&standalone_mode(&dir, &[&shards_line]));
    let namesrv = server.namesrv();
    let token = run_token();
    let topic = format!("RustTimer_{token}");
    let (sent, received, waited) = scenario(name, BUDGET, move |rt| async move {
        let mut producer = producer(&rt, &namesrv, &format!("pg_timer_{token}")).await?;
        create_topic_by_sending(&producer, &namesrv, &topic).await?;
        let started = Instant::now();
        let mut sent = Vec::new();
        let delay_ms = u64::try_from(DELAY.as_millis()).expect("small");
        for (form, body) in [
            ("deliver", "timer-deliver"),
            ("sec", "timer-sec"),
            ("ms", "timer-ms"),
        ] {
            let mut msg = message(&topic, "TagT", body, body);
            match form {
                "deliver" => msg.set_deliver_time_ms(epoch_ms() + delay_ms),
                "sec" => msg.set_delay_time_sec(delay_ms / 1_000),
                _ => msg.set_delay_time_ms(delay_ms),
            }
            let result = producer
                .send_with_timeout(msg, SEND_TIMEOUT_MS)
                .await
                .map_err(|e| format!("send of {body}: {}", describe(&e)))?;
            sent.push(sent_ok(body, result.as_ref())?);
        }
        let mut too_far = message(&topic, "TagT", "too-far", "too-far");
        too_far.set_deliver_time_ms(epoch_ms() + 50 * 24 * 3600 * 1000);
        let refused = producer.send_with_timeout(too_far, SEND_TIMEOUT_MS).await;
        if refused.is_ok() {
            return Err("a timer beyond timerMaxDelaySec was accepted".into());
        }
        producer.shutdown().await;
        let expected: BTreeSet<String> = sent.iter().map(|s| s.body.clone()).collect();
        let received = consume_expected(
            &rt,
            &namesrv,
            &format!("cg_timer_{token}"),
            &topic,
            &expected,
        )
        .await?;
        Ok((sent, received, started.elapsed()))
    });
    let counts = body_counts(&received);
    for s in &sent {
        assert_eq!(counts.get(&s.body), Some(&1), "{} once", s.body);
        assert!(
            (0..4).contains(&s.queue_id),
            "{}: queue {}",
            s.body,
            s.queue_id
        );
    }
    assert!(
        waited >= DELAY - Duration::from_millis(100),
        "timers consumed after {waited:?}, before their {DELAY:?}"
    );
    drop(server);
}

#[test]
fn timer_messages_with_one_shard() {
    timers("timer-1", "1");
}

#[test]
fn timer_messages_with_two_shards() {
    timers("timer-2", "2");
}
