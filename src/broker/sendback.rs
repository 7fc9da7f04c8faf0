//! Failed-message handling on the consumer side (PROTOCOL.md §4.2, Java
//! `consumerSendMsgBack` and `handleRetryAndDLQ`): CONSUMER_SEND_MSG_BACK (36), run on the
//! shard whose CommitLog holds the original message (its physical offset carries the shard),
//! re-stores the message in `%RETRY%<group>` through the delay schedule, or in `%DLQ%<group>`
//! once its retries are used up; and a plain send to `%RETRY%<group>` past its
//! `maxReconsumeTimes` (§4.1 step 5) is diverted to the DLQ.
//!
//! Group and retry/DLQ topic lookups that miss this shard's snapshot go to the control shard
//! (which auto-creates, persists and broadcasts, as Java's `findSubscriptionGroupConfig` and
//! `createTopicInSendMessageBackMethod` do). A SLAVE refuses send-backs before any lookup
//! (SERVICE_NOT_AVAILABLE, `append::refuse_on_slave`). Must never: read a record from another
//! shard's store (the dispatcher routes by the offset's shard bits; asserted), or store a
//! send-back anywhere but its retry queue's schedule level or its DLQ.

use std::rc::Rc;

use rmq_net::codec::body::topic::{perm, TopicConfig};
use rmq_net::codec::codes::{ResponseCode, VERSION_V3_4_9};
use rmq_net::codec::header::send::{ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::{keys, msg_id, tags_code_of, CrcCheck, MessageRecord, Properties};
use rmq_net::RemotingCommand;
use rmq_storage::store::AppendMessage;

use crate::runtime::clock::now_ms;
use crate::runtime::mesh::submit_to;
use crate::runtime::placement::split_offset;
use crate::runtime::ShardId;
use crate::tables::groups::{GroupLookup, SubscriptionGroupConfig};
use crate::tables::topics::{dlq_topic, retry_topic, SCHEDULE_TOPIC};

use super::control::register;
use super::message::{encode_payload, index_keys, Inbound};
use super::shard::{Shard, CONTROL_SHARD};
use super::{replicate, schedule, success, Failure, Outcome};

/// The DLQ queue every diverted message goes to (`%DLQ%` topics have one queue).
pub const DLQ_QUEUE_ID: i32 = 0;
/// First automatic retry level: a send-back with `delayLevel` 0 is delayed `3 + reconsumeTimes`.
pub const RETRY_LEVEL_BASE: i32 = 3;

/// The shard holding the record a send-back names (its physical offset's shard bits).
///
/// # Errors
/// SYSTEM_ERROR for a missing, negative or out-of-range offset (Java: the lookup fails).
pub fn owner(request: &RemotingCommand, shards: usize) -> Result<ShardId, Failure> {
    let offset = request
        .ext("offset")
        .and_then(|o| o.trim().parse::<i64>().ok())
        .unwrap_or(-1);
    match split_offset(offset) {
        Some((owner, _)) if owner.0 < shards => Ok(owner),
        _ => Err(lookup_failed(offset)),
    }
}

fn lookup_failed(offset: i64) -> Failure {
    Failure::Code(
        ResponseCode::SystemError,
        format!("look message by offset failed, {offset}"),
    )
}

/// CONSUMER_SEND_MSG_BACK on the shard that holds the original record.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = ConsumerSendMsgBackRequestHeader::decode_command(request)?;
    // Before the group and retry-topic lookups, which may create them.
    super::append::refuse_on_slave(&shard.config)?;
    let group = group_config(shard, &header.group).await?;
    if !perm::is_writeable(shard.live.broker_permission()) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] sending message is forbidden",
                shard.config.broker_ip1
            ),
        ));
    }
    if group.retry_queue_nums <= 0 {
        return Ok(success(request));
    }
    let retry = ensure_group_topic(shard, GroupTopic::Retry, &group).await?;
    if !perm::is_writeable(retry.perm) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!(
                "the topic[{}] sending message is forbidden",
                retry.topic_name
            ),
        ));
    }
    let record = read_original(shard, &header).await?;
    let max_reconsume_times = if request.version >= VERSION_V3_4_9 {
        header.max_reconsume_times.unwrap_or(group.retry_max_times)
    } else {
        group.retry_max_times
    };
    let to_dlq = record.reconsume_times >= max_reconsume_times || header.delay_level < 0;
    let (topic, queue_id, level) = if to_dlq {
        ensure_group_topic(shard, GroupTopic::Dlq, &group).await?;
        (dlq_topic(&header.group), DLQ_QUEUE_ID, 0)
    } else {
        let level = if header.delay_level == 0 {
            RETRY_LEVEL_BASE.saturating_add(record.reconsume_times)
        } else {
            header.delay_level
        };
        let queues = group.retry_queue_nums.unsigned_abs();
        let queue_id = i32::try_from(rand::random::<u32>() % queues).expect("below an i32");
        (retry.topic_name, queue_id, level)
    };
    let origin_msg_id = msg_id::encode(record.store_host, header.offset);
    store_back(shard, record, (&topic, queue_id), level, &origin_msg_id).await?;
    Ok(success(request))
}

/// Reads and decodes the record at the header's offset, checking `originTopic` when given.
async fn read_original(
    shard: &Rc<Shard>,
    header: &ConsumerSendMsgBackRequestHeader,
) -> Result<MessageRecord, Failure> {
    let (holder, local) =
        split_offset(header.offset).ok_or_else(|| lookup_failed(header.offset))?;
    assert_eq!(
        holder, shard.id,
        "send-back routed to a shard that does not hold the offset"
    );
    let local = u64::try_from(local).map_err(|_| lookup_failed(header.offset))?;
    let stored = shard
        .store
        .read_by_phys_offset(local)
        .await
        .map_err(|_| lookup_failed(header.offset))?;
    let (record, _) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip)
        .map_err(|_| lookup_failed(header.offset))?;
    // Java's fence against a stray offset compares the record's topic with `originTopic`. Java
    // clients send the topic they restored from RETRY_TOPIC for a retried message, which Java
    // then refuses (the client falls back to a plain send); accepting RETRY_TOPIC as well keeps
    // the fence and spares that round trip.
    if let Some(origin) = header.origin_topic.as_deref() {
        let retried_from = record.properties.get(keys::RETRY_TOPIC);
        if record.topic != origin && retried_from != Some(origin) {
            return Err(Failure::Code(
                ResponseCode::SystemError,
                format!(
                    "look message by offset failed to check the topic name{}",
                    header.offset
                ),
            ));
        }
    }
    Ok(record)
}

/// Stores the failed `record` again: into `target` directly when `level` is 0 (DLQ), else
/// through the schedule with `DELAY=level` (its `REAL_TOPIC`/`REAL_QID` name `target`).
async fn store_back(
    shard: &Rc<Shard>,
    record: MessageRecord,
    target: (&str, i32),
    level: i32,
    origin_msg_id: &str,
) -> Result<(), Failure> {
    let illegal =
        |e: rmq_net::CodecError| Failure::Code(ResponseCode::MessageIllegal, e.to_string());
    let mut properties = record.properties;
    if !properties.contains(keys::RETRY_TOPIC) {
        properties
            .insert(keys::RETRY_TOPIC, record.topic.as_str())
            .map_err(illegal)?;
    }
    if properties
        .get(keys::ORIGIN_MESSAGE_ID)
        .is_none_or(|id| id.trim().is_empty())
    {
        properties
            .insert(keys::ORIGIN_MESSAGE_ID, origin_msg_id)
            .map_err(illegal)?;
    }
    properties
        .insert(keys::DELAY, level.to_string())
        .map_err(illegal)?;
    let now = now_ms();
    let parked = schedule::park(
        &shard.config.message_delay_level,
        record.sys_flag,
        target,
        &mut properties,
        now,
    )?;
    let (topic, queue_id, tags_code) = match parked {
        Some(parked) => (SCHEDULE_TOPIC, parked.queue_id, parked.deliver_timestamp_ms),
        None => (target.0, target.1, tags_code_of(&properties)),
    };
    let index = index_keys(&properties);
    let inbound = Inbound {
        topic,
        queue_id,
        flag: record.flag,
        sys_flag: record.sys_flag,
        born_timestamp: record.born_timestamp,
        born_host: record.born_host,
        reconsume_times: record.reconsume_times.saturating_add(1),
        properties,
        body: record.body,
    };
    let payload = encode_payload(inbound, shard.store_host, now).map_err(illegal)?;
    let message = AppendMessage {
        topic,
        queue_id,
        tags_code,
        keys: &index,
        store_timestamp_ms: Some(now),
        sys_flag: record.sys_flag,
        payload: &payload,
    };
    // Java stores send-backs without waiting for the flush: a flush timeout still succeeded.
    super::append::append_routed(shard, &message)
        .await
        .map(drop)
        .map_err(|Failure::Code(_, remark)| Failure::Code(ResponseCode::SystemError, remark))
}

/// For a send to `%RETRY%<group>` (PROTOCOL.md §4.1 step 5): when `reconsumeTimes` is over
/// the limit, or the group holds unexpired orderly locks, sets `DELAY=-1` and returns the DLQ
/// queue to store into instead (creating the DLQ topic). `None`: store as sent.
///
/// # Errors
/// SUBSCRIPTION_GROUP_NOT_EXIST for an unknown group; the control shard's errors.
pub async fn divert_exhausted_retry(
    shard: &Rc<Shard>,
    version: i32,
    header: &SendMessageRequestHeader,
    properties: &mut Properties,
) -> Result<Option<(String, i32)>, Failure> {
    let group_name = header
        .topic
        .strip_prefix(crate::tables::topics::RETRY_GROUP_TOPIC_PREFIX)
        .expect("called for retry topics only");
    let (group, locked) = lookup_on_control_shard(shard, group_name)
        .await?
        .ok_or_else(|| group_not_exist(group_name))?;
    let max_reconsume_times = match header.max_reconsume_times {
        Some(times) if version >= VERSION_V3_4_9 => times,
        _ => group.retry_max_times,
    };
    if header.reconsume_times_or_zero() <= max_reconsume_times && !locked {
        return Ok(None);
    }
    ensure_group_topic(shard, GroupTopic::Dlq, &group).await?;
    properties
        .insert(keys::DELAY, "-1")
        .map_err(|e| Failure::Code(ResponseCode::MessageIllegal, e.to_string()))?;
    Ok(Some((dlq_topic(group_name), DLQ_QUEUE_ID)))
}

fn group_not_exist(group: &str) -> Failure {
    Failure::Code(
        ResponseCode::SubscriptionGroupNotExist,
        format!("subscription group not exist, {group}"),
    )
}

/// The group's config from this shard's snapshot, else from the control shard.
async fn group_config(shard: &Rc<Shard>, group: &str) -> Result<SubscriptionGroupConfig, Failure> {
    if let Some(config) = shard.groups.get().get(group) {
        return Ok(config.clone());
    }
    lookup_on_control_shard(shard, group)
        .await?
        .map(|(config, _)| config)
        .ok_or_else(|| group_not_exist(group))
}

/// `(config, has unexpired orderly locks)` of `group`, auto-creating it when the broker allows.
async fn lookup_on_control_shard(
    shard: &Rc<Shard>,
    group: &str,
) -> Result<Option<(SubscriptionGroupConfig, bool)>, Failure> {
    let group = group.to_owned();
    submit_to(shard, CONTROL_SHARD, move |control: Rc<Shard>| async move {
        lookup_group(&control, &group).await
    })
    .await?
    .map_err(|remark| Failure::Code(ResponseCode::SystemError, remark))
}

/// On the control shard: Java `findSubscriptionGroupConfig` plus the lock state.
async fn lookup_group(
    control: &Rc<Shard>,
    group: &str,
) -> Result<Option<(SubscriptionGroupConfig, bool)>, String> {
    let now = now_ms();
    let lookup = control
        .control()
        .groups
        .borrow_mut()
        .find_or_auto_create(group, now)
        .map_err(|e| e.to_string())?;
    let config = match lookup {
        GroupLookup::Found(config) => config,
        GroupLookup::Created(config) => {
            replicate::publish_groups(control).await;
            config
        }
        GroupLookup::NotFound => return Ok(None),
    };
    let locked = control
        .control()
        .locks
        .borrow()
        .has_unexpired_locks(group, now);
    Ok(Some((config, locked)))
}

/// Which per-group topic to ensure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupTopic {
    /// `%RETRY%<group>`, `retryQueueNums` queues.
    Retry,
    /// `%DLQ%<group>`, one queue.
    Dlq,
}

/// The group's retry or DLQ topic config, created on the control shard when missing (perm 6).
async fn ensure_group_topic(
    shard: &Rc<Shard>,
    kind: GroupTopic,
    group: &SubscriptionGroupConfig,
) -> Result<TopicConfig, Failure> {
    let name = match kind {
        GroupTopic::Retry => retry_topic(&group.group_name),
        GroupTopic::Dlq => dlq_topic(&group.group_name),
    };
    if let Some(config) = shard.topics.get().get(&name) {
        return Ok(config.clone());
    }
    let (group_name, queues) = (group.group_name.clone(), group.retry_queue_nums);
    let created = submit_to(shard, CONTROL_SHARD, move |control: Rc<Shard>| async move {
        let now = now_ms();
        let ensured = {
            let mut topics = control.control().topics.borrow_mut();
            match kind {
                GroupTopic::Retry => topics.create_retry_topic(&group_name, queues, now),
                GroupTopic::Dlq => topics.create_dlq_topic(&group_name, now),
            }
        };
        let ensured = ensured.map_err(|e| e.to_string())?;
        if ensured.created {
            replicate::publish_topics(&control).await;
            register::request(&control, vec![ensured.config.topic_name.clone()]);
        }
        Ok::<_, String>((ensured.config, control.topics.get()))
    })
    .await?;
    let (config, snapshot) = created.map_err(|remark| {
        Failure::Code(
            ResponseCode::SystemError,
            format!("topic[{name}] not exist, {remark}"),
        )
    })?;
    shard.topics.install(snapshot);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_net::codec::codes::RequestCode;
    use rmq_net::ExtFields;

    use crate::runtime::placement::global_offset;

    fn send_back(offset: Option<&str>) -> RemotingCommand {
        let mut ext = ExtFields::new();
        if let Some(offset) = offset {
            ext.insert("offset", offset);
        }
        ext.insert("group", "G");
        ext.insert("delayLevel", "0");
        RemotingCommand::request(RequestCode::ConsumerSendMsgBack, ext)
    }

    #[test]
    fn send_back_routes_by_the_offset_shard_bits() {
        let offset = global_offset(ShardId(1), 4096).to_string();
        assert_eq!(owner(&send_back(Some(&offset)), 2).ok(), Some(ShardId(1)));
        let zero = global_offset(ShardId(0), 0).to_string();
        assert_eq!(owner(&send_back(Some(&zero)), 1).ok(), Some(ShardId(0)));
        for bad in [Some(offset.as_str()), Some("-1"), Some("x"), None] {
            let shards = 1;
            let Err(Failure::Code(code, remark)) = owner(&send_back(bad), shards) else {
                panic!("{bad:?} must not route with {shards} shard");
            };
            assert_eq!(code, ResponseCode::SystemError);
            assert!(
                remark.starts_with("look message by offset failed"),
                "{remark}"
            );
        }
    }
}
