//! Request-reply (RocketMQ 4.6+) with rocketmq-client-rust against `rmq standalone`: a
//! requester's `DefaultMQProducer::request` sends a request message; a responder (a push
//! consumer handing each request to its own producer) answers with
//! `MessageUtil::create_reply_message`, which the client sends with SEND_REPLY_MESSAGE(_V2) to
//! `DefaultCluster_REPLY_TOPIC`; the broker pushes the reply to the requester's connection
//! (PUSH_REPLY_MESSAGE_TO_CLIENT) and `request` returns it. With 2 shards, responder producers
//! are replaced (new instance, new connection) until the broker log shows the reply crossing
//! from one shard to the other, so the cross-shard push is asserted, not left to luck.

#![recursion_limit = "512"]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
    MessageUtil,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use tokio::sync::mpsc;

/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(150);
/// `request` timeout, ms.
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Responder connections tried with 2 shards before giving up on crossing shards (each lands
/// on either shard; 16 misses in a row has odds 2^-16).
const CROSS_ATTEMPTS: usize = 16;

/// Hands every request message to the responder task.
struct Forward {
    requests: mpsc::UnboundedSender<MessageExt>,
}

impl MessageListenerConcurrently for Forward {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        for msg in msgs {
            let _ = self.requests.send((*msg).clone());
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

fn property(msg: &dyn MessageTrait, name: &str) -> Option<String> {
    msg.get_properties()
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .map(|(_, v)| v.to_string())
}

fn body_text(msg: &dyn MessageTrait) -> String {
    msg.get_body()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

async fn producer_named(
    rt: &Arc<rocketmq_client_rust::ClientRuntime>,
    namesrv: &str,
    group: &str,
    instance: &str,
) -> Result<DefaultMQProducer, String> {
    let config = ClientConfig::builder()
        .namesrv_addr(namesrv)
        .instance_name(instance)
        .build()
        .map_err(err("client config"))?;
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config)
        .producer_group(group)
        .name_server_addr(namesrv)
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .retry_times_when_send_failed(0)
        .build();
    producer.start().await.map_err(err("producer start"))?;
    Ok(producer)
}

/// One round trip as observed.
#[derive(Debug)]
struct Trip {
    request_body: String,
    reply_body: String,
    correlation_id: String,
    reply_topic: String,
}

/// One request answered by `responder`: runs the requester's `request` and the responder's
/// reply side by side.
async fn round_trip(
    requester: &DefaultMQProducer,
    responder: &DefaultMQProducer,
    requests: &mut mpsc::UnboundedReceiver<MessageExt>,
    topic: &str,
    index: usize,
) -> Result<Trip, String> {
    let request_body = format!("question-{index}");
    let ask = requester.request(
        message(topic, "Req", &request_body, &request_body),
        REQUEST_TIMEOUT_MS,
    );
    let answer = async {
        let request = tokio::time::timeout(Duration::from_secs(20), requests.recv())
            .await
            .map_err(|_| "the responder never got the request".to_owned())?
            .ok_or("request channel closed")?;
        let text = format!("answer-to-{}", body_text(&request));
        let reply = MessageUtil::create_reply_message(&request.message, text.as_bytes())
            .map_err(err("create reply"))?;
        responder
            .send_with_timeout(reply, SEND_TIMEOUT_MS)
            .await
            .map_err(err("send reply"))?;
        Ok::<_, String>(())
    };
    let (asked, answered) = tokio::join!(ask, answer);
    answered?;
    let reply = asked.map_err(err("request"))?;
    Ok(Trip {
        request_body,
        reply_body: body_text(reply.as_ref()),
        correlation_id: property(reply.as_ref(), "CORRELATION_ID").unwrap_or_default(),
        reply_topic: reply.topic().to_string(),
    })
}

/// The shards of the push the broker logged for `correlation_id`: (requester, responder).
fn pushed_shards(log: &std::path::Path, correlation_id: &str) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(log).ok()?;
    let needle = format!("correlation_id=\"{correlation_id}\"");
    let line = text
        .lines()
        .find(|l| l.contains("reply pushed") && l.contains(&needle))?;
    let field = |name: &str| -> Option<usize> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("requester_shard")?, field("responder_shard")?))
}

fn request_reply(shards: usize) {
    // The broker logs each push with both connections' shards at debug level.
    std::env::set_var("RUST_LOG", "info,rmq::broker::reply=debug");
    let dir = fresh_dir(&format!("reply-{shards}"));
    let shards_line = format!("shards={shards}");
    let server = Rmq::start(&standalone_mode(&dir, &[&shards_line]));
    let namesrv = server.namesrv();
    let log = server.log_path().to_owned();
    let token = run_token();
    let topic = format!("RequestTopic_{shards}_{token}");
    let group = format!("responder_group_{shards}_{token}");
    let (trips, crossings) = scenario("request-reply", BUDGET, {
        let (namesrv, topic, group) = (namesrv.clone(), topic.clone(), group.clone());
        move |rt| async move {
            let mut requester =
                producer_named(&rt, &namesrv, &format!("requester_{token}"), "requester").await?;
            let (tx, mut requests) = mpsc::unbounded_channel();
            let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
                .client_config(
                    ClientConfig::builder()
                        .namesrv_addr(namesrv.as_str())
                        .instance_name("responder-consumer")
                        .build()
                        .map_err(err("client config"))?,
                )
                .name_server_addr(namesrv.as_str())
                .consumer_group(group.as_str())
                .consume_from_where(ConsumeFromWhere::ConsumeFromLastOffset)
                .build();
            let result = async {
                create_topic_by_sending(&requester, &namesrv, &topic).await?;
                consumer
                    .subscribe(topic.as_str(), "Req")
                    .await
                    .map_err(err("subscribe"))?;
                consumer.register_message_listener_concurrently(Forward { requests: tx });
                consumer.start().await.map_err(err("consumer start"))?;
                let attempts = if shards == 1 { 2 } else { CROSS_ATTEMPTS };
                let mut trips = Vec::new();
                let mut crossings = Vec::new();
                for attempt in 0..attempts {
                    let mut responder = producer_named(
                        &rt,
                        &namesrv,
                        &format!("replier_{token}"),
                        &format!("responder-{attempt}"),
                    )
                    .await?;
                    let trip =
                        round_trip(&requester, &responder, &mut requests, &topic, attempt).await;
                    responder.shutdown().await;
                    let trip = trip?;
                    // The broker logs the push before sending it; a short wait covers a
                    // slow file system all the same.
                    let mut shards_seen = None;
                    for _ in 0..50 {
                        shards_seen = pushed_shards(&log, &trip.correlation_id);
                        if shards_seen.is_some() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let shards_seen =
                        shards_seen.ok_or_else(|| format!("no push logged for {trip:?}"))?;
                    trips.push(trip);
                    crossings.push(shards_seen);
                    if shards > 1 && shards_seen.0 != shards_seen.1 {
                        break;
                    }
                }
                Ok((trips, crossings))
            }
            .await;
            consumer.shutdown().await;
            requester.shutdown().await;
            result
        }
    });
    for trip in &trips {
        assert_eq!(trip.reply_body, format!("answer-to-{}", trip.request_body));
        assert!(!trip.correlation_id.is_empty(), "{trip:?}");
        assert_eq!(trip.reply_topic, "DefaultCluster_REPLY_TOPIC");
    }
    if shards > 1 {
        assert!(
            crossings.iter().any(|(a, b)| a != b),
            "no reply crossed shards in {} attempts: {crossings:?}",
            crossings.len()
        );
    }
    eprintln!(
        "[request-reply {shards} shard(s)] {} round trips, (requester, responder) shards {crossings:?}",
        trips.len()
    );
}

#[test]
fn request_reply_round_trip_1_shard() {
    request_reply(1);
}

#[test]
fn request_reply_round_trip_2_shards_requester_and_responder_on_different_shards() {
    request_reply(2);
}
