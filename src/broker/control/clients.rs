//! Client membership on the control shard: HEART_BEAT (34), UNREGISTER_CLIENT (35),
//! GET_CONSUMER_LIST_BY_GROUP (38), LOCK_BATCH_MQ (41) / UNLOCK_BATCH_MQ (42),
//! GET_CONSUMER_CONNECTION_LIST (203), GET_PRODUCER_CONNECTION_LIST (204); what a membership
//! change causes (the subscription snapshot installed on every shard before the heartbeat is
//! answered, NOTIFY_CONSUMER_IDS_CHANGED to the group's members wherever their connections
//! live); a closed connection reported by any shard.
//!
//! Must never: answer a heartbeat before every reachable shard installed the subscriptions it
//! registered, or notify members itself (that is [`super::notify`]'s, coalesced per group).

use std::rc::Rc;

use rmq_net::codec::body::client::GetConsumerListByGroupResponseBody;
use rmq_net::codec::body::heartbeat::HeartbeatData;
use rmq_net::codec::body::queue::{
    LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody,
};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::admin::GetConsumerConnectionListRequestHeader;
use rmq_net::codec::header::client::{
    GetConsumerListByGroupRequestHeader, HeartbeatResponseHeader, UnregisterClientRequestHeader,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;

use crate::broker::replicate;
use crate::broker::shard::{Shard, CONTROL_SHARD};
use crate::broker::{success, Failure, Outcome};
use crate::limits::{CLIENT_NAME_LENGTH_MAX, CLOSED_CONNS_BATCH_DELAY};
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::{notify, submit_to, ClientMeta, ConnKey};
use crate::tables::clients::GroupChange;
use crate::tables::groups::{validate_group_name, GroupLookup};
use crate::tables::topics::{queue_id_in_range, RETRY_GROUP_TOPIC_PREFIX};

use super::{assert_control, register, required_ext};

/// HEART_BEAT: registers the client's producer and consumer groups (auto-creating groups and
/// retry topics as Java does) and answers once the changes are installed everywhere.
pub async fn heartbeat(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    client: &ClientMeta,
) -> Outcome {
    let mut data = HeartbeatData::from_json(&request.body)?;
    data.recompute_tags();
    let control = shard.control();
    let now = now_ms();
    for consumer in &data.consumer_data_set {
        let lookup = control
            .groups
            .borrow_mut()
            .find_or_auto_create(&consumer.group_name, now);
        if let Err(err) = lookup {
            tracing::warn!(%err, group = consumer.group_name, "cannot auto-create group");
        } else if let Ok(GroupLookup::Created(_)) = lookup {
            tracing::info!(
                group = consumer.group_name,
                "subscription group auto-created"
            );
        }
    }
    let outcome = {
        let groups = control.groups.borrow();
        control
            .clients
            .borrow_mut()
            .heartbeat(client, &data, now, |group| {
                groups.get(group).map(|g| g.client_policy())
            })
            .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?
    };
    let mut created = Vec::new();
    for retry_topic in &outcome.retry_topics_needed {
        let group = retry_topic.trim_start_matches(RETRY_GROUP_TOPIC_PREFIX);
        let queues = control
            .groups
            .borrow()
            .get(group)
            .map_or(1, |g| g.retry_queue_nums);
        match control
            .topics
            .borrow_mut()
            .create_retry_topic(group, queues, now)
        {
            Ok(ensured) if ensured.created => created.push(ensured.config.topic_name),
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, group, "cannot create retry topic"),
        }
    }
    replicate::publish_groups(shard).await;
    if !created.is_empty() {
        replicate::publish_topics(shard).await;
        register::request(shard, created);
    }
    after_membership_change(shard, &outcome.groups_changed).await;
    let reply = HeartbeatResponseHeader {
        is_support_heart_beat_v2: true,
        is_sub_change: outcome.sub_changed,
    };
    Ok(success(request).with_ext_fields(reply.to_ext()))
}

/// UNREGISTER_CLIENT.
pub async fn unregister(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    client: &ClientMeta,
) -> Outcome {
    let header = UnregisterClientRequestHeader::decode_command(request)?;
    let changes = shard.control().clients.borrow_mut().unregister(
        client.key,
        &header.client_id,
        header.producer_group.as_deref(),
        header.consumer_group.as_deref(),
    );
    after_membership_change(shard, &changes).await;
    Ok(success(request))
}

/// GET_CONSUMER_LIST_BY_GROUP.
pub fn consumer_list(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = GetConsumerListByGroupRequestHeader::decode_command(request)?;
    let ids = shard
        .control()
        .clients
        .borrow()
        .consumer_ids(&header.consumer_group);
    if ids.is_empty() {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!("no consumer for this group, {}", header.consumer_group),
        ));
    }
    let body = GetConsumerListByGroupResponseBody {
        consumer_id_list: ids,
    };
    Ok(success(request).with_body(body.to_json()))
}

/// LOCK_BATCH_MQ: only queues of existing topics are locked (a lock on anything else would
/// only take a slot), for a validly named group and client.
pub fn lock_batch(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let body = LockBatchRequestBody::from_json(&request.body)?;
    validate_group_name(&body.consumer_group)
        .map_err(|e| Failure::Code(ResponseCode::InvalidParameter, e.to_string()))?;
    if body.client_id.is_empty() || body.client_id.len() > CLIENT_NAME_LENGTH_MAX {
        return Err(Failure::Code(
            ResponseCode::InvalidParameter,
            format!("clientId must be 1..={CLIENT_NAME_LENGTH_MAX} bytes"),
        ));
    }
    let control = shard.control();
    let topics = control.topics.borrow();
    let existing = body.mq_set.iter().filter(|mq| {
        topics
            .get(&mq.topic)
            .is_some_and(|config| queue_id_in_range(config, mq.queue_id))
    });
    let locked = control.locks.borrow_mut().try_lock_batch(
        &body.consumer_group,
        &body.client_id,
        existing,
        now_ms(),
    );
    let reply = LockBatchResponseBody {
        lock_ok_mq_set: locked.into_iter().collect(),
    };
    Ok(success(request).with_body(reply.to_json()))
}

/// UNLOCK_BATCH_MQ.
pub fn unlock_batch(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let body = UnlockBatchRequestBody::from_json(&request.body)?;
    shard.control().locks.borrow_mut().unlock_batch(
        &body.consumer_group,
        &body.client_id,
        body.mq_set.iter(),
    );
    Ok(success(request))
}

/// GET_CONSUMER_CONNECTION_LIST (203).
pub fn consumer_connections(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = GetConsumerConnectionListRequestHeader::decode_command(request)?;
    let connection = shard
        .control()
        .clients
        .borrow()
        .consumer_connection(&header.consumer_group);
    match connection {
        Some(connection) => Ok(success(request).with_body(connection.to_json())),
        None => Err(Failure::Code(
            ResponseCode::ConsumerNotOnline,
            format!("the consumer group[{}] not online", header.consumer_group),
        )),
    }
}

/// GET_PRODUCER_CONNECTION_LIST (204): the producer group's live connections.
pub fn producer_connections(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let group = required_ext(request, "producerGroup")?;
    let connection = shard.control().clients.borrow().producer_connection(group);
    match connection {
        Some(connection) => Ok(success(request).with_body(connection.to_json())),
        None => Err(Failure::Code(
            ResponseCode::SystemError,
            format!("the producer group[{group}] not exist"),
        )),
    }
}

/// Installs the subscription snapshot on every shard if it changed, then notifies the members
/// of the changed groups (coalesced per group, see [`super::notify`]).
pub async fn after_membership_change(shard: &Rc<Shard>, changes: &[GroupChange]) {
    replicate::publish_subscriptions(shard).await;
    for change in changes {
        super::notify::group_changed(shard, &change.group, &change.notify);
    }
}

/// A connection closed on some shard: its client state is dropped on the control shard.
/// Closes are batched per shard (one notice carries every close since the last one) and a
/// batch the control shard's channel refused is retried, so 10,000 connections closing at
/// once cost a few notices and none is lost. The batch is bounded by the shard's connections.
pub fn connection_closed(shard: &Rc<Shard>, key: ConnKey) {
    shard.closed_conns.borrow_mut().push(key);
    if shard.closed_conns_flushing.replace(true) {
        return;
    }
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        loop {
            // Let the closes of this moment gather into one batch.
            compio::time::sleep(CLOSED_CONNS_BATCH_DELAY).await;
            let batch = std::mem::take(&mut *shard.closed_conns.borrow_mut());
            if batch.is_empty() {
                break;
            }
            let retry = batch.clone();
            let sent = notify(&shard, CONTROL_SHARD, move |control: Rc<Shard>| async move {
                assert_control(&control);
                let closed: std::collections::HashSet<ConnKey> = batch.into_iter().collect();
                let changes = control
                    .control()
                    .clients
                    .borrow_mut()
                    .connections_closed(&closed);
                after_membership_change(&control, &changes).await;
            });
            if let Err(err) = sent {
                tracing::debug!(%err, closes = retry.len(), "connection closes not delivered yet; retrying");
                let mut pending = shard.closed_conns.borrow_mut();
                let newer = std::mem::replace(&mut *pending, retry);
                pending.extend(newer);
            }
        }
        shard.closed_conns_flushing.set(false);
    })
    .detach();
}

/// Installs the control shard's subscription snapshot on this shard if it is newer. Pulls call
/// it when their group's subscription is missing or older than the pull's `subVersion`: the
/// documented corner where a client pulls on another shard while its heartbeat is still
/// being processed (a heartbeat is answered only after every shard installed it).
pub async fn refresh_subscriptions(shard: &Rc<Shard>) {
    let snapshot = submit_to(shard, CONTROL_SHARD, |control: Rc<Shard>| async move {
        control.control().clients.borrow().subscriptions_snapshot()
    })
    .await;
    if let Ok(snapshot) = snapshot {
        shard.subscriptions.install(snapshot);
    }
}
