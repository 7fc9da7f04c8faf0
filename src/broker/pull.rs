//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) on the shard that owns the queue
//! (PROTOCOL.md §4.4): subscription from the request or from the heartbeat registry, tag
//! filtering by hash in the store, commit-offset piggyback, the GetMessageStatus → response
//! code table, and long polling parked on the store's per-queue notifier.
//!
//! Must never: hold a pull longer than its `suspendTimeoutMillis` (bounded by
//! [`SUSPEND_TIMEOUT_MAX`]), or return a record of another topic or queue.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use rmq_net::codec::body::subscription::SubscriptionData;
use rmq_net::codec::body::topic::perm;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PullSysFlag,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;
use rmq_storage::store::{GetRequest, GetResult, GetStatus, TagFilter, WaitOutcome};

use super::message::serve_record;
use super::shard::Shard;
use super::{storage_failure, success, Failure, Outcome};

pub use crate::limits::{PULL_BYTES_MAX, PULL_MESSAGES_MAX, SUSPEND_TIMEOUT_MAX};

/// Processes a pull on the queue's owner shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = PullMessageRequestHeader::decode_command(request)?;
    let flags = PullSysFlag(header.sys_flag);
    if !perm::is_readable(shard.config.broker_permission) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] pulling message is forbidden",
                shard.config.broker_name
            ),
        ));
    }
    // Every acknowledged topic creation is installed on every shard before it is acknowledged,
    // so a topic this shard's replica lacks does not exist (or its install was refused by a
    // busy shard, which shard 0 re-installs within seconds): no need to ask shard 0.
    let topic = shard.topics.entry(&header.topic).ok_or_else(|| {
        Failure::Code(
            ResponseCode::TopicNotExist,
            format!("topic[{}] not exist, apply first please!", header.topic),
        )
    })?;
    if !perm::is_readable(topic.perm) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!("the topic[{}] pulling message is forbidden", header.topic),
        ));
    }
    if header.queue_id < 0 || header.queue_id >= topic.read_queue_nums {
        return Err(Failure::Code(
            ResponseCode::InvalidParameter,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                header.queue_id, header.topic, topic.read_queue_nums
            ),
        ));
    }
    if !flags.has_subscription() && !subscription_known(shard, &header) {
        super::control::refresh_subscriptions(shard).await;
    }
    let subscription = subscription_for(shard, &header, flags)?;
    if flags.has_commit_offset() && header.commit_offset >= 0 {
        let committed = shard.offsets.borrow_mut().commit(
            &header.topic,
            &header.consumer_group,
            header.queue_id,
            header.commit_offset,
        );
        if let Err(err) = committed {
            tracing::warn!(%err, "commit offset refused");
        }
    }
    if header.queue_offset < 0 {
        // Java: an offset below the queue's minimum is OFFSET_TOO_SMALL (an empty queue asked
        // at an offset other than 0, NO_MESSAGE_IN_QUEUE): PULL_OFFSET_MOVED to the minimum.
        // Never read from 0 as if the client had asked for it.
        let min_offset = shard.store.min_offset(&header.topic, header.queue_id);
        let result = GetResult {
            status: GetStatus::OffsetTooSmall,
            next_begin_offset: min_offset,
            min_offset,
            max_offset: shard.store.max_offset(&header.topic, header.queue_id),
            records: Vec::new(),
            last_scanned_phys_offset: None,
        };
        return respond(shard, request, &header, result);
    }
    let codes: Vec<i64> = subscription
        .code_set
        .iter()
        .map(|c| i64::from(*c))
        .collect();
    let filter = if subscription.is_sub_all() {
        TagFilter::All
    } else {
        TagFilter::Codes(&codes)
    };
    let max_count = u32::try_from(header.max_msg_nums.max(1))
        .unwrap_or(1)
        .min(PULL_MESSAGES_MAX);
    let max_bytes = header
        .max_msg_bytes
        .and_then(|b| u64::try_from(b).ok())
        .filter(|b| *b > 0)
        .map_or(PULL_BYTES_MAX, |b| b.min(PULL_BYTES_MAX));
    let get = GetRequest {
        topic: &header.topic,
        queue_id: header.queue_id,
        queue_offset: u64::try_from(header.queue_offset).unwrap_or(0),
        max_count,
        max_bytes,
        filter,
    };
    let mut result = shard
        .store
        .get_messages(&get)
        .await
        .map_err(|e| storage_failure(&e))?;
    // Only a pull whose answer would be PULL_NOT_FOUND is held (Java): caught up at the max
    // offset, or an empty queue asked from offset 0. An empty queue asked from elsewhere is
    // PULL_OFFSET_MOVED at once.
    let caught_up = match result.status {
        GetStatus::OffsetOverflowOne => true,
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue => header.queue_offset == 0,
        _ => false,
    };
    if caught_up && flags.has_suspend() {
        // Long polling holds up to the client's suspend timeout; with `longPollingEnable=false`
        // Java holds every pull for `shortPollingTimeMills` instead (short polling).
        let hold = if shard.config.long_polling_enable {
            Duration::from_millis(u64::try_from(header.suspend_timeout_millis).unwrap_or(0))
                .min(SUSPEND_TIMEOUT_MAX)
        } else {
            shard.config.short_polling_time.min(SUSPEND_TIMEOUT_MAX)
        };
        let wait = shard
            .store
            .wait_for_message(&header.topic, header.queue_id, get.queue_offset);
        // Shutdown answers a held pull at once (nothing new), so the drain does not wait.
        let stopping = std::pin::pin!(shard.stopping.wait());
        let held = std::pin::pin!(compio::time::timeout(hold, wait));
        let outcome = match futures_util::future::select(held, stopping).await {
            futures_util::future::Either::Left((outcome, _)) => outcome,
            futures_util::future::Either::Right(((), _)) => Ok(WaitOutcome::Closed),
        };
        match outcome {
            Ok(WaitOutcome::Arrived) => {
                result = shard
                    .store
                    .get_messages(&get)
                    .await
                    .map_err(|e| storage_failure(&e))?;
            }
            Ok(WaitOutcome::Overloaded | WaitOutcome::Closed) | Err(_) => {}
        }
    }
    respond(shard, request, &header, result)
}

/// Whether this shard holds the group's subscription to the topic at the pull's version or
/// newer.
fn subscription_known(shard: &Shard, header: &PullMessageRequestHeader) -> bool {
    shard
        .subscriptions
        .get()
        .subscription(&header.consumer_group, &header.topic)
        .is_some_and(|data| data.sub_version >= header.sub_version)
}

fn subscription_for(
    shard: &Shard,
    header: &PullMessageRequestHeader,
    flags: PullSysFlag,
) -> Result<SubscriptionData, Failure> {
    let subscription = if flags.has_subscription() {
        let mut data = SubscriptionData::new_tag(
            header.topic.clone(),
            header.subscription.clone().unwrap_or_default(),
            header.sub_version,
        );
        if let Some(kind) = header.expression_type.clone().filter(|k| !k.is_empty()) {
            data.expression_type = kind;
        }
        data
    } else {
        let registered = shard
            .subscriptions
            .get()
            .subscription(&header.consumer_group, &header.topic)
            .cloned();
        let Some(data) = registered else {
            return Err(Failure::Code(
                ResponseCode::SubscriptionNotExist,
                format!(
                    "the consumer's subscription not exist, group: {}",
                    header.consumer_group
                ),
            ));
        };
        if data.sub_version < header.sub_version {
            return Err(Failure::Code(
                ResponseCode::SubscriptionNotLatest,
                format!(
                    "the consumer's subscription not latest, group: {}",
                    header.consumer_group
                ),
            ));
        }
        data
    };
    if !subscription.is_tag_type() {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            "SQL92 filtering is not supported by this broker".into(),
        ));
    }
    Ok(subscription)
}

fn respond(
    shard: &Shard,
    request: &RemotingCommand,
    header: &PullMessageRequestHeader,
    result: GetResult,
) -> Outcome {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (code, next) = match result.status {
        GetStatus::Found => (ResponseCode::Success, result.next_begin_offset),
        GetStatus::NoMatchedMessage | GetStatus::MessageWasRemoving => {
            (ResponseCode::PullRetryImmediately, result.next_begin_offset)
        }
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue => {
            if header.queue_offset == 0 {
                (ResponseCode::PullNotFound, 0)
            } else {
                (ResponseCode::PullOffsetMoved, result.next_begin_offset)
            }
        }
        GetStatus::OffsetFoundNull | GetStatus::OffsetOverflowOne => {
            (ResponseCode::PullNotFound, result.next_begin_offset)
        }
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => {
            (ResponseCode::PullOffsetMoved, result.next_begin_offset)
        }
    };
    let mut response = success(request);
    response.code = code.value();
    if code == ResponseCode::Success {
        let size: usize = result.records.iter().map(|r| r.payload.len()).sum();
        let mut body = BytesMut::with_capacity(size);
        for record in &result.records {
            assert_eq!(
                record.queue_id, header.queue_id,
                "store returned a record of another queue"
            );
            serve_record(&mut body, record, shard.id)?;
        }
        response.body = body.freeze();
    }
    let reply = PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: to_i64(next),
        min_offset: to_i64(result.min_offset),
        max_offset: to_i64(result.max_offset),
        offset_delta: None,
        topic_sys_flag: None,
        group_sys_flag: None,
        forbidden_type: None,
    };
    Ok(response.with_ext_fields(reply.to_ext()))
}
