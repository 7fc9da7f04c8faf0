//! rocketmq-client-rust 1.0.0 with its `AclClientRPCHook` (RocketMQ 4.x plain ACL signatures)
//! against `rmq standalone` with `aclEnable=true`: a permitted account auto-creates a topic by
//! sending, produces and consumes it with a push consumer; a wrong secret and a topic the
//! account has no PUB on are refused with NO_PERMISSION (16).

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rocketmq_client_rust::{
    AclClientRPCHook, ClientResult, ClientRuntime, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently, SessionCredentials,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;

/// Messages the permitted account sends.
const COUNT: usize = 12;
/// Per-scenario budget for the client work.
const BUDGET: Duration = Duration::from_secs(60);
/// Response code NO_PERMISSION.
const NO_PERMISSION: i32 = 16;

const ACCESS_KEY: &str = "rustClient";
const SECRET_KEY: &str = "rust-client-secret";

/// The account may publish and subscribe to `open`, only subscribe to `read_only`.
fn acl_yaml(open: &str, read_only: &str) -> String {
    format!(
        "globalWhiteRemoteAddresses:\naccounts:\n  - accessKey: {ACCESS_KEY}\n    secretKey: {SECRET_KEY}\n    admin: false\n    defaultTopicPerm: DENY\n    defaultGroupPerm: SUB\n    topicPerms:\n      - {open}=PUB|SUB\n      - {read_only}=SUB\n"
    )
}

fn hook(secret_key: &str) -> Arc<AclClientRPCHook> {
    Arc::new(AclClientRPCHook::new(SessionCredentials::with_keys(
        ACCESS_KEY, secret_key,
    )))
}

async fn signed_producer(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    group: &str,
    secret_key: &str,
) -> Result<DefaultMQProducer, String> {
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .producer_group(group)
        .name_server_addr(namesrv)
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .retry_times_when_send_failed(0)
        .retry_times_when_send_async_failed(0)
        .rpc_hook(hook(secret_key))
        .build();
    producer.start().await.map_err(err("producer start"))?;
    Ok(producer)
}

/// Records every body it is handed.
struct Bodies(Arc<std::sync::Mutex<BTreeSet<String>>>);

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

/// The broker's response code of a failed send of one message to `topic`.
async fn refused_code(producer: &DefaultMQProducer, topic: &str) -> Result<Option<i32>, String> {
    match producer
        .send_with_timeout(message(topic, "TagA", "k", "refused"), SEND_TIMEOUT_MS)
        .await
    {
        Ok(result) => Err(format!("a send to {topic} was accepted: {result:?}")),
        Err(e) => Ok(e.broker_response_code()),
    }
}

#[test]
fn a_signed_client_produces_and_consumes_and_refusals_are_no_permission() {
    let token = run_token();
    let open = format!("AclRustOpen_{token}");
    let read_only = format!("AclRustReadOnly_{token}");
    let dir = fresh_dir("acl");
    let acl_path = dir.path().join("plain_acl.yml");
    std::fs::write(&acl_path, acl_yaml(&open, &read_only)).expect("write plain_acl.yml");
    let acl_line = format!("aclFile={}", acl_path.display());
    let server = Rmq::start(&standalone_mode(&dir, &["aclEnable=true", &acl_line]));
    let namesrv = server.addr("namesrv").to_string();

    let (received, wrong_secret, no_pub) = scenario("acl", BUDGET, move |rt| async move {
        let producer =
            signed_producer(&rt, &namesrv, &format!("acl_pg_{token}"), SECRET_KEY).await?;
        create_topic_by_sending(&producer, &namesrv, &open).await?;
        let mut expected = BTreeSet::new();
        for i in 0..COUNT {
            let body = format!("acl-{i}");
            send_sync(&producer, &open, "TagA", &body).await?;
            expected.insert(body);
        }
        let no_pub = refused_code(&producer, &read_only).await?;

        let wrong = signed_producer(
            &rt,
            &namesrv,
            &format!("acl_pg_wrong_{token}"),
            "not-the-secret",
        )
        .await?;
        let wrong_secret = refused_code(&wrong, &open).await?;

        let bodies = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let group = format!("acl_cg_{token}");
        let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
            .name_server_addr(namesrv.as_str())
            .consumer_group(group.as_str())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .rpc_hook(Some(hook(SECRET_KEY)))
            .build();
        consumer
            .subscribe(open.as_str(), "*")
            .await
            .map_err(err("subscribe"))?;
        consumer.register_message_listener_concurrently(Bodies(bodies.clone()));
        consumer.start().await.map_err(err("consumer start"))?;
        let all = wait_until(CONSUME_TIMEOUT, || {
            bodies.lock().expect("bodies lock").is_superset(&expected)
        })
        .await;
        consumer.shutdown().await;
        if !all {
            return Err(format!(
                "consumed {} of {COUNT} within {CONSUME_TIMEOUT:?}",
                bodies
                    .lock()
                    .expect("bodies lock")
                    .intersection(&expected)
                    .count()
            ));
        }
        let received = bodies.lock().expect("bodies lock").len();
        Ok((received, wrong_secret, no_pub))
    });
    assert!(received >= COUNT, "every acknowledged message consumed");
    assert_eq!(
        wrong_secret,
        Some(NO_PERMISSION),
        "a wrong secret is refused"
    );
    assert_eq!(
        no_pub,
        Some(NO_PERMISSION),
        "a topic without PUB is refused"
    );
    drop(server);
    drop(dir);
}
