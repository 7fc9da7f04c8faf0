//! rocketmq-client-rust with an SQL92 selector (`MessageSelector::by_sql`) against
//! `rmq standalone` with `enablePropertyFilter=true`: the push consumer (CHECK_CLIENT_CONFIG,
//! then heartbeats carrying the SQL92 subscription and pulls filtered on the broker) receives
//! exactly the messages whose user property `n` matches, none of the others.

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use rocketmq_model::common::message::message_single::Message;

/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(50);
/// Messages sent; the selector matches `n` in 10..=19 with tag TagA.
const COUNT: usize = 40;
const SELECTOR: &str = "n BETWEEN 10 AND 19 AND TAGS = 'TagA'";

fn wanted(i: usize) -> bool {
    (10..=19).contains(&i) && i % 2 == 0
}

#[test]
fn sql92_selector_delivers_only_matching_messages() {
    let dir = fresh_dir("sql92");
    let server = Rmq::start(&standalone_mode(&dir, &["enablePropertyFilter=true"]));
    let namesrv = server.namesrv();
    let token = run_token();
    let (want, received) = scenario("sql92", BUDGET, move |rt| async move {
        let topic = format!("RustSql_{token}");
        let group = format!("cg_sql_{token}");
        let mut producer = producer(&rt, &namesrv, &format!("pg_sql_{token}")).await?;
        let mut want = BTreeSet::new();
        let mut outcome = Ok(());
        for i in 0..COUNT {
            let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
            let body = format!("sql-{i}");
            let message: Message = Message::builder()
                .topic(topic.as_str())
                .tags(tag)
                .body_slice(body.as_bytes())
                .raw_property("n", i.to_string())
                .map_err(|e| format!("property: {e}"))?
                .build_unchecked();
            match producer.send_with_timeout(message, 5000).await {
                Ok(_) => {
                    if wanted(i) {
                        want.insert(body);
                    }
                }
                Err(e) => {
                    outcome = Err(format!("send {body}: {}", describe(&e)));
                    break;
                }
            }
        }
        producer.shutdown().await;
        outcome?;
        wait_topic_route(&namesrv, &topic).await?;
        let inbox = inbox();
        let mut spec = ConsumerSpec::new(&namesrv, &group, &group, &topic);
        spec.sql = Some(SELECTOR);
        let (mut consumer, _) = start_consumer(&rt, &spec, &inbox).await?;
        let all = wait_until(CONSUME_TIMEOUT, || {
            distinct_bodies(&inbox, None).len() >= want.len()
        })
        .await;
        // Wait on even when all arrived: a non-matching message delivered late must be caught.
        tokio::time::sleep(SETTLE).await;
        consumer.shutdown().await;
        if !all {
            return Err(format!(
                "SQL92 consumer got {:?} of {want:?} within {CONSUME_TIMEOUT:?}",
                distinct_bodies(&inbox, None)
            ));
        }
        Ok((want, snapshot(&inbox)))
    });
    let got: BTreeSet<String> = received.iter().map(|r| r.body.clone()).collect();
    assert_eq!(got, want, "exactly the messages the selector matches");
    assert_eq!(want.len(), 5, "n = 10, 12, 14, 16, 18");
}
