//! INVOKE_BROKER_TO_RESET_OFFSET (222): back-tracking a consumer group's offsets of one topic
//! to a store time, on the control shard (it owns the topic, group and client tables).
//!
//! Per queue `0..writeQueueNums` (as Java's `Broker2Client.resetOffset`), on the shard owning
//! the queue: the target is the first offset stored at or after `timestamp` (`-1`: the queue's
//! max offset); the group's committed offset moves there if `isForce`, or if the target is
//! below the committed offset, or if the group has none; otherwise it stays. The new offsets
//! are stored first, then every live member of the group gets RESET_CONSUMER_CLIENT_OFFSET
//! (oneway, [`super::to_client`]) with the table, so it drops what it holds and pulls from
//! there. A group with no live member only gets its stored offsets changed (Java answers
//! CONSUMER_NOT_ONLINE and changes nothing). The reply carries the chosen table
//! (`ResetOffsetBody`), as Java's.
//!
//! Must never: run off the control shard, change an offset on a shard that does not own its
//! queue, move an offset forward unless forced, or touch a group or topic that does not exist.

use std::collections::BTreeMap;
use std::rc::Rc;

use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::stats::ResetOffsetBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::reset::ResetOffsetRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;
use rmq_storage::consume_queue::search::Boundary;

use crate::limits::QUEUE_NUMS_MAX;
use crate::runtime::mesh::{submit_to, ConnKey};
use crate::runtime::placement::shard_for;
use crate::runtime::ShardId;
use crate::tables::groups::validate_group_name;

use super::shard::{Shard, CONTROL_SHARD};
use super::{storage_failure, success, Failure, Outcome};

/// What a reset did to one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueReset {
    /// Queue id.
    pub queue_id: i32,
    /// Committed offset before (`None`: the group had none).
    pub previous: Option<i64>,
    /// Offset the group consumes from now.
    pub offset: i64,
}

/// The offset a queue resets to: `target` when forced, when below the committed offset, or
/// when nothing is committed; the committed offset otherwise (never forward unless forced).
#[must_use]
pub fn chosen_offset(previous: Option<i64>, target: i64, force: bool) -> i64 {
    match previous {
        Some(previous) if !force && target >= previous => previous,
        _ => target,
    }
}

/// INVOKE_BROKER_TO_RESET_OFFSET on the control shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    assert_eq!(shard.id, CONTROL_SHARD, "reset off the control shard");
    assert_eq!(
        request.request_code(),
        RequestCode::InvokeBrokerToResetOffset
    );
    let header = ResetOffsetRequestHeader::decode_command(request)?;
    super::append::refuse_on_slave(&shard.config)?;
    validate_group_name(&header.group)
        .map_err(|e| Failure::Code(ResponseCode::InvalidParameter, e.to_string()))?;
    if header.timestamp < -1 {
        return Err(Failure::Code(
            ResponseCode::InvalidParameter,
            format!(
                "[reset-offset] timestamp {} is neither a store time nor -1",
                header.timestamp
            ),
        ));
    }
    let control = shard.control();
    let queue_count = control
        .topics
        .borrow()
        .get(&header.topic)
        .map(|config| config.write_queue_nums);
    let Some(queue_count) = queue_count else {
        return Err(Failure::Code(
            ResponseCode::TopicNotExist,
            format!(
                "[reset-offset] reset offset failed, no topic in this broker. topic={}",
                header.topic
            ),
        ));
    };
    assert!((0..=QUEUE_NUMS_MAX).contains(&queue_count));
    let members: Vec<ConnKey> = control
        .clients
        .borrow()
        .consumer_group(&header.group)
        .map(|info| info.members().keys().copied().collect())
        .unwrap_or_default();
    if members.is_empty() && control.groups.borrow().get(&header.group).is_none() {
        return Err(Failure::Code(
            ResponseCode::SubscriptionGroupNotExist,
            format!("THe consumer group <{}> not exist", header.group),
        ));
    }
    let resets = reset_queues(shard, &header, queue_count).await?;
    let broker_name = &shard.config.broker_name;
    let body = ResetOffsetBody {
        offset_table: resets
            .iter()
            .map(|r| {
                let queue =
                    MessageQueue::new(header.topic.as_str(), broker_name.as_str(), r.queue_id);
                (queue, r.offset)
            })
            .collect(),
    };
    let body = body.to_json();
    if !members.is_empty() {
        let notice = ResetOffsetRequestHeader {
            topic: header.topic.clone(),
            group: header.group.clone(),
            timestamp: header.timestamp,
            is_force: false,
        };
        let command =
            RemotingCommand::request(RequestCode::ResetConsumerClientOffset, notice.to_ext())
                .with_body(body.clone());
        let handed = super::to_client::send_oneway(shard, &members, &command);
        tracing::info!(
            topic = header.topic,
            group = header.group,
            timestamp = header.timestamp,
            members = members.len(),
            handed,
            "[reset-offset] offsets reset, members told"
        );
    } else {
        tracing::info!(
            topic = header.topic,
            group = header.group,
            timestamp = header.timestamp,
            "[reset-offset] offsets reset, group offline"
        );
    }
    Ok(success(request).with_body(body))
}

/// Resets every queue on its owner shard (one mesh call per shard) and returns the outcomes
/// in queue order.
async fn reset_queues(
    shard: &Rc<Shard>,
    header: &ResetOffsetRequestHeader,
    queue_count: i32,
) -> Result<Vec<QueueReset>, Failure> {
    let shards = shard.shard_count();
    let mut by_owner: BTreeMap<ShardId, Vec<i32>> = BTreeMap::new();
    for queue_id in 0..queue_count {
        by_owner
            .entry(shard_for(&header.topic, queue_id, shards))
            .or_default()
            .push(queue_id);
    }
    let mut resets = Vec::with_capacity(queue_count.unsigned_abs() as usize);
    for (owner, queues) in by_owner {
        let topic = header.topic.clone();
        let group = header.group.clone();
        let (timestamp, force) = (header.timestamp, header.is_force);
        let done = submit_to(shard, owner, move |owner: Rc<Shard>| async move {
            let mut done = Vec::with_capacity(queues.len());
            for queue_id in queues {
                done.push(reset_queue(&owner, &topic, &group, queue_id, timestamp, force).await?);
            }
            Ok::<_, Failure>(done)
        })
        .await??;
        resets.extend(done);
    }
    resets.sort_by_key(|r| r.queue_id);
    assert_eq!(resets.len(), queue_count.unsigned_abs() as usize);
    Ok(resets)
}

/// One queue, on its owner shard.
async fn reset_queue(
    shard: &Shard,
    topic: &str,
    group: &str,
    queue_id: i32,
    timestamp: i64,
    force: bool,
) -> Result<QueueReset, Failure> {
    assert_eq!(
        shard_for(topic, queue_id, shard.shard_count()),
        shard.id,
        "queue reset on a shard that does not own it"
    );
    let target = if timestamp == -1 {
        shard.store.max_offset(topic, queue_id)
    } else {
        shard
            .store
            .search_offset_by_timestamp(topic, queue_id, timestamp, Boundary::Lower)
            .await
            .map_err(|e| storage_failure(&e))?
    };
    let target = i64::try_from(target).unwrap_or(i64::MAX);
    let previous = shard.offsets.borrow().query(topic, group, queue_id);
    let offset = chosen_offset(previous, target, force);
    if previous != Some(offset) {
        shard
            .offsets
            .borrow_mut()
            .commit(topic, group, queue_id, offset)
            .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    }
    Ok(QueueReset {
        queue_id,
        previous,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::chosen_offset;

    #[test]
    fn offsets_move_back_always_and_forward_only_when_forced() {
        assert_eq!(chosen_offset(Some(10), 4, false), 4, "back");
        assert_eq!(chosen_offset(Some(10), 14, false), 10, "not forward");
        assert_eq!(chosen_offset(Some(10), 14, true), 14, "forced forward");
        assert_eq!(chosen_offset(Some(10), 10, false), 10);
        assert_eq!(chosen_offset(None, 14, false), 14, "nothing committed");
    }
}
