//! SEND_REPLY_MESSAGE (324) / SEND_REPLY_MESSAGE_V2 (325): request-reply (RocketMQ 4.6+). A
//! responder sends the reply to `<cluster>_REPLY_TOPIC` with the request's CORRELATION_ID and
//! REPLY_TO_CLIENT; this broker finds a connection of the client named by REPLY_TO_CLIENT
//! (its producer or consumer registration on the control shard, wherever the connection
//! lives), pushes the reply there with PUSH_REPLY_MESSAGE_TO_CLIENT (326) and awaits the
//! client's answer, then stores the reply in the reply topic like a send (on the queue's
//! owner shard).
//!
//! Runs on the shard that accepted the responder's connection; the lookup, the push and the
//! store each cross the mesh to their owner.
//!
//! Must never: store a reply it could not deliver (the responder hears SYSTEM_ERROR with the
//! reason and can retry; Java stores it anyway), push a reply that fails the send checks
//! (size, properties, topic), or wait for a client longer than [`REPLY_PUSH_TIMEOUT`].

use std::rc::Rc;

use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::reset::ReplyMessageRequestHeader;
use rmq_net::codec::header::send::SendMessageResponseHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::limits::PROPERTIES_SIZE_MAX;
use rmq_net::codec::message::{keys, Properties};
use rmq_net::RemotingCommand;

use crate::limits::REPLY_PUSH_TIMEOUT;
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::{submit_to, ClientMeta};

use super::send::{self, SendPlan};
use super::shard::{Shard, CONTROL_SHARD};
use super::to_client;
use super::{success, Failure, Outcome};

/// Characters of a REPLY_TO_CLIENT a warning logs (a hostile 32 KB id is not logged whole per
/// request).
const REPLY_TO_LOGGED_CHARS_MAX: usize = 128;

/// SEND_REPLY_MESSAGE(_V2) on the accepting shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand, client: &ClientMeta) -> Outcome {
    assert!(matches!(
        request.request_code(),
        RequestCode::SendReplyMessage | RequestCode::SendReplyMessageV2
    ));
    let plan = send::plan(shard, request).await?;
    let text = plan.header.properties.as_deref().unwrap_or("");
    check_reply(shard, request, &plan, text)?;
    let mut properties = Properties::decode(text);
    let Some(reply_to) = properties.get(keys::REPLY_TO_CLIENT).map(str::to_owned) else {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!(
                "reply message properties[{}] is null",
                keys::REPLY_TO_CLIENT
            ),
        ));
    };
    let lookup = reply_to.clone();
    // Logs name the requester by a bounded prefix: REPLY_TO_CLIENT is up to 32 KB of client text.
    let logged: String = reply_to.chars().take(REPLY_TO_LOGGED_CHARS_MAX).collect();
    let requester = submit_to(shard, CONTROL_SHARD, move |control: Rc<Shard>| async move {
        control
            .control()
            .clients
            .borrow()
            .find_client_connection(&lookup)
    })
    .await?;
    let Some(requester) = requester else {
        tracing::warn!(reply_to = %logged, "push reply message fail: requester not online");
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!("push reply message fail, channel of <{reply_to}> not found."),
        ));
    };
    properties
        .insert(keys::PUSH_REPLY_TIME, now_ms().to_string())
        .map_err(|e| Failure::Code(ResponseCode::MessageIllegal, e.to_string()))?;
    let push = push_command(shard, request, &plan, &properties, client);
    let pushed = to_client::invoke(shard, requester, push, REPLY_PUSH_TIMEOUT).await;
    match pushed {
        Ok(answer) if answer.response_code() == ResponseCode::Success => {
            // Tests read this line to see which shards the two connections live on.
            tracing::debug!(
                reply_to,
                correlation_id = properties.get(keys::CORRELATION_ID).unwrap_or(""),
                requester_shard = requester.shard.0,
                responder_shard = client.key.shard.0,
                "reply pushed"
            );
        }
        Ok(answer) => {
            tracing::warn!(reply_to = %logged, code = answer.code, remark = ?answer.remark, "push reply message refused");
            return Err(push_failed(&reply_to));
        }
        Err(err) => {
            tracing::warn!(reply_to = %logged, %err, "push reply message failed");
            return Err(push_failed(&reply_to));
        }
    }
    store(shard, request, plan, client).await
}

fn push_failed(reply_to: &str) -> Failure {
    // Java's remark, missing space included.
    Failure::Code(
        ResponseCode::SystemError,
        format!("push reply message to {reply_to}fail."),
    )
}

/// What a send would refuse is refused before the push, so nothing is delivered that could
/// not be stored: batches, an oversized body or properties.
fn check_reply(
    shard: &Shard,
    request: &RemotingCommand,
    plan: &SendPlan,
    properties: &str,
) -> Result<(), Failure> {
    if plan.header.is_batch() {
        return Err(Failure::Code(
            ResponseCode::MessageIllegal,
            "a reply message cannot be a batch".into(),
        ));
    }
    if properties.len() > PROPERTIES_SIZE_MAX {
        return Err(Failure::Code(
            ResponseCode::MessageIllegal,
            format!(
                "the message properties length {} too long",
                properties.len()
            ),
        ));
    }
    if request.body.len() > shard.config.max_message_size {
        return Err(Failure::Code(
            ResponseCode::MessageIllegal,
            format!(
                "the message body size over max value, MAX: {}",
                shard.config.max_message_size
            ),
        ));
    }
    Ok(())
}

/// PUSH_REPLY_MESSAGE_TO_CLIENT with the reply's header fields and body. Hosts are written
/// `ip:port` (Java writes `/ip:port`, which rocketmq-client-rust cannot parse; Java clients
/// accept either form).
fn push_command(
    shard: &Shard,
    request: &RemotingCommand,
    plan: &SendPlan,
    properties: &Properties,
    client: &ClientMeta,
) -> RemotingCommand {
    let header = &plan.header;
    let push = ReplyMessageRequestHeader {
        producer_group: header.producer_group.clone(),
        topic: header.topic.clone(),
        default_topic: header.default_topic.clone(),
        default_topic_queue_nums: header.default_topic_queue_nums,
        queue_id: plan.queue_id,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        flag: header.flag,
        properties: Some(properties.to_wire_string()),
        reconsume_times: header.reconsume_times,
        unit_mode: header.unit_mode,
        born_host: client.peer_addr.to_string(),
        store_host: shard.store_host.to_string(),
        store_timestamp: now_ms(),
    };
    RemotingCommand::request(RequestCode::PushReplyMessageToClient, push.to_ext())
        .with_body(request.body.clone())
}

/// Stores the delivered reply in the reply topic on its queue's owner. A store failure after a
/// delivery is logged and answered SUCCESS with msgId "0" (Java's answer: the reply reached
/// its requester; a retry would deliver it twice).
async fn store(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    plan: SendPlan,
    client: &ClientMeta,
) -> Outcome {
    let owner = plan.owner(shard.shard_count());
    let queue_id = plan.queue_id;
    let forwarded = request.clone();
    let born_host = client.peer_addr;
    let stored = submit_to(shard, owner, move |owner: Rc<Shard>| async move {
        send::process(&owner, &forwarded, plan, born_host).await
    })
    .await
    .map_err(Failure::from)
    .and_then(|outcome| outcome);
    match stored {
        Ok(response) => Ok(response),
        Err(Failure::Code(code, remark)) => {
            tracing::warn!(?code, remark, "reply delivered but not stored");
            let header = SendMessageResponseHeader {
                msg_id: "0".into(),
                queue_id,
                queue_offset: 0,
                transaction_id: None,
                batch_uniq_id: None,
                recall_handle: None,
                msg_region: rmq_net::codec::header::send::DEFAULT_REGION.into(),
                trace_on: true,
            };
            Ok(success(request).with_ext_fields(header.to_ext()))
        }
    }
}
