//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320) on the shard that owns
//! the target queue (PROTOCOL.md §4.1): validate, ensure UNIQ_KEY and CLUSTER, encode the
//! §6.6 record, append to the shard's store, reply with the offset msgId.
//!
//! A SLAVE refuses every send (SERVICE_NOT_AVAILABLE, `append::refuse_on_slave`). A SYNC_MASTER
//! answers SEND_OK only once its slave acknowledged the record (`super::ha::await_slave`);
//! otherwise FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE, with the message stored.
//!
//! Must never: acknowledge a SYNC_FLUSH message before the store says it is durable (the store
//! decides; a timeout becomes FLUSH_DISK_TIMEOUT with the message stored), answer SEND_OK on a
//! SYNC_MASTER before the slave's ack, or store a message for a queue this shard does not own
//! (asserted).

use std::net::SocketAddr;
use std::rc::Rc;

use rmq_net::codec::body::topic::{perm, TopicConfig};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::limits::PROPERTIES_SIZE_MAX;
use rmq_net::codec::message::{self, keys, msg_id, BatchLimits, Properties};
use rmq_net::RemotingCommand;
use rmq_storage::store::{AppendMessage, AppendOutcome, Durability, WaitForFlush};

use crate::runtime::clock::now_ms;
use crate::runtime::placement::{global_offset, shard_for};
use crate::runtime::ShardId;
use crate::tables::topics::{is_retry_topic, queue_id_in_range, validate_topic_name};

use super::append::Settle;
use super::ha::SlaveAck;
use super::message::{encode_payload, index_keys, Inbound};
use super::shard::Shard;
use super::{storage_failure, success, Failure, Outcome};

/// `MSG_REGION` value in send replies.
pub const DEFAULT_REGION: &str = "DefaultRegion";

/// Checks every send requirement that does not depend on the queue (on the accepting shard,
/// while planning).
///
/// # Errors
/// The response Java gives.
pub fn check_topic(shard: &Shard, header: &SendMessageRequestHeader) -> Result<(), Failure> {
    validate_topic_name(&header.topic)
        .map_err(|e| Failure::Code(ResponseCode::InvalidParameter, e.to_string()))?;
    if crate::tables::topics::is_send_forbidden_system_topic(&header.topic) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!("Sending message to topic[{}] is forbidden.", header.topic),
        ));
    }
    if !perm::is_writeable(shard.live.broker_permission()) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] sending message is forbidden",
                shard.config.broker_name
            ),
        ));
    }
    Ok(())
}

/// Picks the queue for a send whose `queueId` is negative (random below writeQueueNums), and
/// checks the range (`queueId >= max(read, write)` is INVALID_PARAMETER).
///
/// # Errors
/// INVALID_PARAMETER.
pub fn resolve_queue(config: &TopicConfig, queue_id: i32) -> Result<i32, Failure> {
    if queue_id < 0 {
        let writable = config.write_queue_nums.max(1);
        return Ok(rand::random::<u32>().rem_euclid(writable.unsigned_abs()) as i32);
    }
    if !queue_id_in_range(config, queue_id) {
        return Err(Failure::Code(
            ResponseCode::InvalidParameter,
            format!(
                "request queueId[{queue_id}] is illegal, topic:{} topicConfig.writeQueueNums:{} readQueueNums:{}",
                config.topic_name, config.write_queue_nums, config.read_queue_nums
            ),
        ));
    }
    Ok(queue_id)
}

/// The queue a send goes to, from its topic's config: this shard's replica, else the control
/// shard's, which auto-creates the topic from the request's template topic when allowed
/// (PROTOCOL.md §4.1 step 3). The replica's config is read in place, not cloned.
///
/// # Errors
/// TOPIC_NOT_EXIST (no template or auto-create off) or the control shard's refusal;
/// NO_PERMISSION (the topic is not writeable); INVALID_PARAMETER (a queue id out of range).
async fn send_queue(shard: &Rc<Shard>, header: &SendMessageRequestHeader) -> Result<i32, Failure> {
    if let Some(config) = shard.topics.get().get(&header.topic) {
        return writeable_queue(config, header);
    }
    // Unknown `%RETRY%` topics are created with one queue.
    let queues = if is_retry_topic(&header.topic) {
        1
    } else {
        header.default_topic_queue_nums
    };
    let config =
        super::control::ensure_topic(shard, &header.topic, &header.default_topic, queues).await?;
    writeable_queue(&config, header)
}

/// The queue a send to `config`'s topic goes to, if the topic is writeable.
fn writeable_queue(
    config: &TopicConfig,
    header: &SendMessageRequestHeader,
) -> Result<i32, Failure> {
    if !perm::is_writeable(config.perm) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!("the topic[{}] sending message is forbidden", header.topic),
        ));
    }
    resolve_queue(config, header.queue_id)
}

/// A send decoded and checked once, on the accepting shard: the header and the queue chosen.
/// It crosses the mesh with the request, so the owner neither decodes the header again nor
/// looks the topic up.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// The decoded header (`queue_id` as the client sent it).
    pub header: SendMessageRequestHeader,
    /// The queue the send goes to (picked here when the client sent a negative one).
    pub queue_id: i32,
}

/// Plans a send on the accepting shard: decodes the header, checks the broker and topic
/// permissions, auto-creates the topic through the control shard when allowed, and picks the
/// queue.
///
/// # Errors
/// The response Java gives for a bad header, a forbidden or unknown topic, a bad queue id;
/// SERVICE_NOT_AVAILABLE on a slave.
pub async fn plan(shard: &Rc<Shard>, request: &RemotingCommand) -> Result<SendPlan, Failure> {
    let header =
        SendMessageRequestHeader::decode_for_code(request.request_code(), &request.ext_fields)?;
    // Before the topic checks: a slave must not auto-create topics either.
    super::append::refuse_on_slave(&shard.config)?;
    check_topic(shard, &header)?;
    let queue_id = send_queue(shard, &header).await?;
    Ok(SendPlan { header, queue_id })
}

impl SendPlan {
    /// The shard that owns the planned queue.
    #[must_use]
    pub fn owner(&self, shards: usize) -> crate::runtime::ShardId {
        shard_for(&self.header.topic, self.queue_id, shards)
    }
}

/// Stores one planned send on its owner shard and builds the reply.
pub async fn process(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    plan: SendPlan,
    born_host: SocketAddr,
) -> Outcome {
    let (response, settle) = process_deferred(shard, request, plan, born_host).await?;
    Ok(settle.finish(shard, response).await)
}

/// [`process`] up to the reply: the SYNC_FLUSH and slave waits of a record stored on this shard
/// are left to the returned [`Settle`], so the caller can drop the request before they end.
///
/// # Errors
/// The response Java gives for a refused send.
pub async fn process_deferred(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    plan: SendPlan,
    born_host: SocketAddr,
) -> Result<(RemotingCommand, Settle), Failure> {
    let SendPlan {
        header, queue_id, ..
    } = plan;
    assert_eq!(
        shard_for(&header.topic, queue_id, shard.shard_count()),
        shard.id,
        "send routed to a shard that does not own the queue"
    );
    let text = header.properties.as_deref().unwrap_or("");
    if text.len() > PROPERTIES_SIZE_MAX {
        return Err(Failure::Code(
            ResponseCode::MessageIllegal,
            format!("the message properties length {} too long", text.len()),
        ));
    }
    let mut properties = Properties::decode(text);
    // Java's buildMsgContext puts the broker's region and trace switch into every sent
    // message's properties (a batch's header properties, so each entry too); consumers'
    // trace hooks read them (rocketmq-client-rust drops consume traces without MSG_REGION).
    for (name, value) in [(keys::MSG_REGION, DEFAULT_REGION), (keys::TRACE_ON, "true")] {
        properties
            .insert(name, value)
            .map_err(|e| Failure::Code(ResponseCode::MessageIllegal, e.to_string()))?;
    }
    let half = super::transaction::is_half(&properties, header.reconsume_times_or_zero());
    if header.is_batch() {
        if half {
            return Err(Failure::Code(
                ResponseCode::MessageIllegal,
                "batch messages do not support transactions".into(),
            ));
        }
        if is_retry_topic(&header.topic) {
            return Err(Failure::Code(
                ResponseCode::MessageIllegal,
                "batch message to a retry topic is not allowed".into(),
            ));
        }
        super::schedule::reject_batch_delay(&properties)?;
        super::timer::reject_batch_timer(&properties)?;
        return send_batch(shard, request, &header, queue_id, &properties, born_host).await;
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
    let uniq = ensure_uniq_key(shard, &mut properties)?;
    properties
        .insert(keys::CLUSTER, &shard.config.broker_cluster_name)
        .map_err(|e| Failure::Code(ResponseCode::MessageIllegal, e.to_string()))?;
    if half {
        super::timer::reject_half_timer(&properties)?;
        let response =
            super::transaction::send_half(shard, request, &header, queue_id, properties, born_host)
                .await?;
        return Ok((response, Settle::Done));
    }
    let wait = wait_for_flush(properties.get(keys::WAIT));
    let now = now_ms();
    // §4.1 steps 5 and 8: an exhausted retry goes to the DLQ, a DELAY to its schedule level.
    let diverted = if is_retry_topic(&header.topic) {
        super::sendback::divert_exhausted_retry(shard, request.version, &header, &mut properties)
            .await?
    } else {
        None
    };
    let target = diverted
        .as_ref()
        .map_or((header.topic.as_str(), queue_id), |(topic, queue)| {
            (topic.as_str(), *queue)
        });
    let timer = if super::timer::timer_allowed(header.sys_flag) {
        super::timer::park(&shard.config, target, &mut properties, now)?
    } else {
        None
    };
    let delay_levels = &shard.config.message_delay_level;
    let parked = match timer {
        Some(_) => None,
        None => super::schedule::park(delay_levels, header.sys_flag, target, &mut properties, now)?,
    };
    let (store_topic, store_queue, tags_code) = match (timer, parked) {
        (Some(timer), _) => (
            super::timer::TIMER_TOPIC,
            super::timer::timer_queue(shard.id, shard.shard_count()),
            timer.deliver_ms,
        ),
        (None, Some(parked)) => (
            crate::tables::topics::SCHEDULE_TOPIC,
            parked.queue_id,
            parked.deliver_timestamp_ms,
        ),
        (None, None) => (target.0, target.1, message::tags_code_of(&properties)),
    };
    let index = index_keys(&properties);
    let inbound = Inbound {
        topic: store_topic,
        queue_id: store_queue,
        flag: header.flag,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        born_host,
        reconsume_times: header.reconsume_times_or_zero(),
        properties,
        body: request.body.clone(),
    };
    let sys_flag = header.sys_flag;
    let payload = encode_payload(inbound, shard.store_host, now)
        .map_err(|e| Failure::Code(ResponseCode::MessageIllegal, e.to_string()))?;
    let message = AppendMessage {
        topic: store_topic,
        queue_id: store_queue,
        tags_code,
        keys: &index,
        store_timestamp_ms: Some(now),
        sys_flag,
        payload: &payload,
    };
    // Local unless diverted or parked into a queue another shard owns.
    let (owner, outcome, slave, settle) =
        super::append::append_routed_deferred(shard, &message, wait).await?;
    let response = stored_reply(shard, request, owner, &outcome, &slave, queue_id, uniq);
    Ok((response, settle))
}

/// The reply to a stored send (plain, parked or half): the offset msgId of the record on the
/// shard that stored it, its queue and queue offset, and the durability and slave outcome
/// folded into the response code (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT,
/// SLAVE_NOT_AVAILABLE) as Java's `handlePutMessageResult` does.
pub(crate) fn stored_reply(
    shard: &Shard,
    request: &RemotingCommand,
    owner: ShardId,
    outcome: &AppendOutcome,
    slave: &SlaveAck,
    queue_id: i32,
    uniq: String,
) -> RemotingCommand {
    let phys = global_offset(
        owner,
        i64::try_from(outcome.phys_offset).unwrap_or(i64::MAX),
    );
    let reply = SendMessageResponseHeader {
        msg_id: msg_id::encode(shard.store_host, phys),
        queue_id,
        queue_offset: i64::try_from(outcome.queue_offset).unwrap_or(i64::MAX),
        transaction_id: Some(uniq),
        batch_uniq_id: None,
        recall_handle: None,
        msg_region: DEFAULT_REGION.into(),
        trace_on: true,
    };
    let response = with_slave_ack(with_durability(success(request), outcome.durability), slave);
    response.with_ext_fields(reply.to_ext())
}

/// `WAIT=false` (any case) skips the SYNC_FLUSH wait; absent or anything else waits (Java's
/// `isWaitStoreMsgOK` defaults to true).
fn wait_for_flush(wait: Option<&str>) -> WaitForFlush {
    match wait {
        Some(v) if v.eq_ignore_ascii_case("false") => WaitForFlush::No,
        _ => WaitForFlush::AsPolicy,
    }
}

pub(crate) fn with_durability(
    mut response: RemotingCommand,
    durability: Durability,
) -> RemotingCommand {
    if durability == Durability::FlushTimeout {
        response.code = ResponseCode::FlushDiskTimeout.value();
        response.remark = Some("flush disk timeout".into());
    }
    response
}

/// A SYNC_MASTER's answer when the slave did not acknowledge: the message is stored on the
/// master (the reply carries its msgId and offsets, as Java's does), with the code clients
/// map to `SendStatus.FLUSH_SLAVE_TIMEOUT` or `SLAVE_NOT_AVAILABLE`.
pub(crate) fn with_slave_ack(mut response: RemotingCommand, slave: &SlaveAck) -> RemotingCommand {
    match slave {
        SlaveAck::NotAsked | SlaveAck::Acked => {}
        SlaveAck::Timeout => {
            response.code = ResponseCode::FlushSlaveTimeout.value();
            response.remark = Some("flush slave timeout".into());
        }
        SlaveAck::NotAvailable(why) => {
            response.code = ResponseCode::SlaveNotAvailable.value();
            response.remark = Some(format!("slave not available: {why}"));
        }
    }
    response
}

fn ensure_uniq_key(shard: &Shard, properties: &mut Properties) -> Result<String, Failure> {
    if let Some(uniq) = properties.uniq_key().filter(|u| !u.is_empty()) {
        return Ok(uniq.to_owned());
    }
    let key = shard.uniq_keys.borrow_mut().next_key(now_ms());
    properties
        .insert(keys::UNIQ_KEY, &key)
        .map_err(|e| Failure::Code(ResponseCode::MessageIllegal, e.to_string()))?;
    Ok(key)
}

async fn send_batch(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    header: &SendMessageRequestHeader,
    queue_id: i32,
    batch_properties: &Properties,
    born_host: SocketAddr,
) -> Result<(RemotingCommand, Settle), Failure> {
    let limits = BatchLimits {
        body_size_max: shard.config.max_message_size,
        ..BatchLimits::default()
    };
    let now = now_ms();
    let context = super::send_batch::BatchContext {
        topic: &header.topic,
        queue_id,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        born_host,
        store_host: shard.store_host,
        now_ms: now,
        cluster: &shard.config.broker_cluster_name,
        properties: batch_properties,
    };
    let encoded = super::send_batch::encode(
        &context,
        &request.body,
        &limits,
        &mut shard.uniq_keys.borrow_mut(),
    )?;
    if encoded.is_empty() {
        return Err(Failure::Code(
            ResponseCode::MessageIllegal,
            "empty batch".into(),
        ));
    }
    let messages = encoded.messages(header.sys_flag);
    super::append::refuse_on_slave(&shard.config)?;
    // A SYNC_FLUSH batch's fdatasync is settled by the caller, with the slave's Ack if any
    // (so the reply can be parked): the store does not wait for it.
    let wait = wait_for_flush(batch_properties.get(keys::WAIT));
    let (append_wait, durable) = super::append::deferred_flush(shard, wait);
    let outcome = shard
        .store
        .append_batch_waiting(&header.topic, queue_id, &messages, Some(now), append_wait)
        .await
        .map_err(|e| storage_failure(&e))?;
    let end = outcome
        .records
        .iter()
        .map(|(phys, size)| phys + u64::from(*size))
        .max()
        .expect("a stored batch has records");
    let settle = Settle::after_append(shard, end, durable, wait == WaitForFlush::AsPolicy);
    let mut ids = String::new();
    for (index, (phys, _)) in outcome.records.iter().enumerate() {
        if index > 0 {
            ids.push(',');
        }
        let phys = global_offset(shard.id, i64::try_from(*phys).unwrap_or(i64::MAX));
        msg_id::encode_into(shard.store_host, phys, &mut ids);
    }
    let reply = SendMessageResponseHeader {
        msg_id: ids,
        queue_id,
        queue_offset: i64::try_from(outcome.first_queue_offset).unwrap_or(i64::MAX),
        transaction_id: Some(encoded.uniq_keys.clone()),
        batch_uniq_id: None,
        recall_handle: None,
        msg_region: DEFAULT_REGION.into(),
        trace_on: true,
    };
    let response = with_durability(success(request), outcome.durability);
    Ok((response.with_ext_fields(reply.to_ext()), settle))
}
