//! rocketmq-client-rust 1.0.0 with message tracing on (`ClientConfig::enable_trace`, its
//! `AsyncTraceDispatcher`) against `rmq standalone` with `traceTopicEnable=true`: a traced
//! producer sends a message, a traced push consumer consumes it, and then
//! `rmq admin query-msg-trace -i MSGID` finds both the send (Pub) and the consume (SubAfter)
//! records of that message in `RMQ_SYS_TRACE_TOPIC`, as mqadmin's table and as JSON. (The
//! consumer's records depend on the broker putting Java's MSG_REGION and TRACE_ON into every
//! stored message: the client drops a consume trace without a region.)

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rmq_interop_rust_client::admin;
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;

/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(90);
/// How long the trace records may take to reach the trace topic (the dispatcher batches).
const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
/// One `rmq admin` call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// The body of the traced message.
const TRACED_BODY: &str = "traced-body";
/// The broker's default trace topic.
const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

fn traced_config(namesrv: &str, instance: &str) -> Result<ClientConfig, String> {
    ClientConfig::builder()
        .namesrv_addr(namesrv)
        .instance_name(instance)
        .enable_trace(true)
        .build()
        .map_err(err("client config"))
}

/// Records the body of every message it is handed.
struct Bodies(Arc<Mutex<BTreeSet<String>>>);

impl MessageListenerConcurrently for Bodies {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut bodies = self.0.lock().expect("bodies lock");
        for m in msgs {
            if let Some(body) = m.body() {
                bodies.insert(String::from_utf8_lossy(&body).into_owned());
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// `query-msg-trace --json` of `msg_id`, once it lists a Pub and a SubAfter record.
fn wait_trace(namesrv: &str, msg_id: &str) -> Result<serde_json::Value, String> {
    let deadline = Instant::now() + TRACE_TIMEOUT;
    loop {
        let out = admin(
            &["query-msg-trace", "-n", namesrv, "-i", msg_id, "--json"],
            ADMIN_TIMEOUT,
        )?;
        let doc: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("query-msg-trace json: {e}: {out}"))?;
        let kinds: BTreeSet<String> = doc["traces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["traceType"].as_str().map(str::to_owned))
            .collect();
        if kinds.contains("Pub") && kinds.contains("SubAfter") {
            return Ok(doc);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no Pub + SubAfter trace of {msg_id} within {TRACE_TIMEOUT:?}: {doc}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn traced_send_and_consume_are_found_by_query_msg_trace() {
    let token = run_token();
    let topic = format!("TraceRust_{token}");
    let producer_group = format!("trace_pg_{token}");
    let consumer_group = format!("trace_cg_{token}");
    let dir = fresh_dir("trace");
    let server = Rmq::start(&standalone_mode(&dir, &["traceTopicEnable=true"]));
    let namesrv = server.addr("namesrv").to_string();

    let (ns, t, pg, cg) = (
        namesrv.clone(),
        topic.clone(),
        producer_group.clone(),
        consumer_group.clone(),
    );
    let (sent, doc) = scenario("trace", BUDGET, move |rt| async move {
        let mut producer = DefaultMQProducer::builder(rt.clone())
            .client_config(traced_config(&ns, &format!("trace_p_{pg}"))?)
            .producer_group(pg.as_str())
            .name_server_addr(ns.as_str())
            .send_msg_timeout(SEND_TIMEOUT_MS as u32)
            .retry_times_when_send_failed(0)
            .build();
        producer.start().await.map_err(err("producer start"))?;
        create_topic_by_sending(&producer, &ns, &t).await?;

        let ids = Arc::new(Mutex::new(BTreeSet::new()));
        let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
            .client_config(traced_config(&ns, &format!("trace_c_{cg}"))?)
            .name_server_addr(ns.as_str())
            .consumer_group(cg.as_str())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .build();
        consumer
            .subscribe(t.as_str(), "*")
            .await
            .map_err(err("subscribe"))?;
        consumer.register_message_listener_concurrently(Bodies(ids.clone()));
        consumer.start().await.map_err(err("consumer start"))?;
        // rocketmq-client-rust registers its consume trace hook only after the consumer's
        // start returned, so a message consumed during start is not traced: send the traced
        // message once the consumer has taken the warm-up message.
        let warm = wait_until(CONSUME_TIMEOUT, || {
            ids.lock().expect("bodies lock").contains(WARMUP_BODY)
        })
        .await;
        if !warm {
            return Err(format!("warm-up not consumed within {CONSUME_TIMEOUT:?}"));
        }
        let sent = send_sync(&producer, &t, "TagTrace", TRACED_BODY).await?;
        let consumed = wait_until(CONSUME_TIMEOUT, || {
            ids.lock().expect("bodies lock").contains(TRACED_BODY)
        })
        .await;
        if !consumed {
            return Err(format!(
                "{} not consumed within {CONSUME_TIMEOUT:?}",
                sent.msg_id
            ));
        }
        // Both clients stay up until their trace records are queryable.
        let (trace_ns, msg_id) = (ns.clone(), sent.msg_id.clone());
        let doc = tokio::task::spawn_blocking(move || wait_trace(&trace_ns, &msg_id))
            .await
            .map_err(|e| format!("trace poll: {e}"))?;
        consumer.shutdown().await;
        producer.shutdown().await;
        Ok((sent, doc?))
    });

    assert_eq!(doc["traceTopic"], TRACE_TOPIC);
    let traces = doc["traces"].as_array().expect("traces array");
    assert!(
        traces.iter().all(|t| t["msgId"] == sent.msg_id.as_str()),
        "only records of the asked message: {doc}"
    );
    let pub_trace = traces
        .iter()
        .find(|t| t["traceType"] == "Pub")
        .expect("a Pub record");
    assert_eq!(pub_trace["groupName"], producer_group.as_str());
    assert_eq!(pub_trace["topic"], topic.as_str());
    assert_eq!(pub_trace["tags"], "TagTrace");
    assert_eq!(pub_trace["offsetMsgId"], sent.offset_msg_id.as_str());
    assert_eq!(pub_trace["status"], "success");
    assert_eq!(pub_trace["bodyLength"], TRACED_BODY.len());
    let sub_trace = traces
        .iter()
        .find(|t| t["traceType"] == "SubAfter")
        .expect("a SubAfter record");
    assert_eq!(sub_trace["groupName"], consumer_group.as_str());
    assert_eq!(sub_trace["status"], "success");
    assert_eq!(sub_trace["keys"], TRACED_BODY);

    // The same trace as mqadmin's table.
    let table = admin(
        &["query-msg-trace", "-n", &namesrv, "-i", &sent.msg_id],
        ADMIN_TIMEOUT,
    )
    .expect("query-msg-trace table");
    eprintln!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("#Type") && l.contains("#ProducerGroup")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Pub ") && l.contains(&producer_group) && l.contains("success")),
        "{table}"
    );

    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("#Type") && l.contains("#ConsumerGroup")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Sub ") && l.contains(&consumer_group) && l.contains("success")),
        "{table}"
    );

    // The raw trace messages, for the decoder's unit tests (printed with --nocapture).
    let raw = admin(
        &[
            "query-msg-by-key",
            "-n",
            &namesrv,
            "-t",
            TRACE_TOPIC,
            "-k",
            &sent.msg_id,
            "--json",
        ],
        ADMIN_TIMEOUT,
    )
    .expect("query the trace topic by key");
    eprintln!("raw trace messages: {raw}");
    drop(server);
    drop(dir);
}
