//! INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223), for admin tools (`rmq admin consumer-status`,
//! mqadmin `getConsumerStatus`): on the control shard, asks each live member of the group (or
//! only the client id the admin named) for its offsets of the topic with
//! GET_CONSUMER_STATUS_FROM_CLIENT (221), one after another as Java does, each bounded by
//! [`CONSUMER_STATUS_TIMEOUT`], and answers `GetConsumerStatusBody` with a `consumerTable` of
//! the members that answered.
//!
//! Must never: run off the control shard, wait on a member longer than the timeout, or fail
//! the whole request because one member did not answer (it is left out, as in Java).

use std::rc::Rc;

use rmq_net::codec::body::stats::GetConsumerStatusBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::reset::GetConsumerStatusRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;

use crate::limits::CONSUMER_STATUS_TIMEOUT;
use crate::runtime::mesh::ConnKey;

use super::shard::{Shard, CONTROL_SHARD};
use super::{success, to_client, Failure, Outcome};

/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS on the control shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    assert_eq!(
        shard.id, CONTROL_SHARD,
        "consumer status off the control shard"
    );
    let header = GetConsumerStatusRequestHeader::decode_command(request)?;
    let only = header
        .client_addr
        .as_deref()
        .filter(|id| !id.trim().is_empty());
    let members: Vec<(ConnKey, String)> = shard
        .control()
        .clients
        .borrow()
        .consumer_group(&header.group)
        .map(|info| {
            info.members()
                .iter()
                .filter(|(_, member)| only.is_none_or(|id| id == member.client_id))
                .map(|(key, member)| (*key, member.client_id.clone()))
                .collect()
        })
        .unwrap_or_default();
    if members.is_empty() {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!(
                "No Any Consumer online in the consumer group: [{}]",
                header.group
            ),
        ));
    }
    let ask = GetConsumerStatusRequestHeader {
        topic: header.topic.clone(),
        group: header.group.clone(),
        client_addr: None,
    };
    let mut body = GetConsumerStatusBody::default();
    for (key, client_id) in members {
        let command =
            RemotingCommand::request(RequestCode::GetConsumerStatusFromClient, ask.to_ext());
        match to_client::invoke(shard, key, command, CONSUMER_STATUS_TIMEOUT).await {
            Ok(answer) if answer.response_code() == ResponseCode::Success => {
                match GetConsumerStatusBody::from_json(&answer.body) {
                    Ok(status) => {
                        body.consumer_table
                            .insert(client_id, status.message_queue_table);
                    }
                    Err(err) => tracing::warn!(client_id, %err, "malformed consumer status"),
                }
            }
            Ok(answer) => {
                tracing::info!(client_id, code = answer.code, "consumer status refused");
            }
            Err(err) => tracing::info!(client_id, %err, "consumer status not answered"),
        }
    }
    Ok(success(request).with_body(body.to_json()))
}
