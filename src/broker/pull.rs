//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) on the shard that owns the queue
//! (PROTOCOL.md §4.4): subscription from the request or from the heartbeat registry, tag
//! filtering by hash in the store, SQL92 filtering on the records' properties ([`sql92`]), commit-offset piggyback, the GetMessageStatus → response
//! code table, long polling parked on the store's per-queue notifier, and the reply's
//! `suggestWhichBrokerId` with the slave's rules ([`advise`], Java 4.x `PullMessageProcessor`).
//!
//! Must never: hold a pull longer than its `suspendTimeoutMillis` (bounded by
//! [`SUSPEND_TIMEOUT_MAX`]), return a record of another topic or queue, or store a commit
//! offset on a slave (its offsets follow the master's).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmq_net::codec::body::subscription::{SubscriptionData, EXPRESSION_TYPE_SQL92};
use rmq_net::codec::body::topic::perm;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PullSysFlag,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::sql92::Selector;
use rmq_net::RemotingCommand;
use rmq_storage::store::{GetRequest, GetResult, GetStatus, TagFilter, WaitOutcome};

use crate::runtime::memory::is_cold;

use super::message::serve_record;
use super::shard::Shard;
use super::sql92;
use super::{storage_failure, success, Failure, Outcome};

pub use crate::limits::{PULL_BYTES_MAX, PULL_MESSAGES_MAX, SUSPEND_TIMEOUT_MAX};

/// Processes a pull on the queue's owner shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = PullMessageRequestHeader::decode_command(request)?;
    let flags = PullSysFlag(header.sys_flag);
    if !perm::is_readable(shard.live.broker_permission()) {
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
    let (subscription, selector) = subscription_for(shard, &header, flags)?;
    // Java 4.x stores the piggybacked offset on a master only: a slave's offsets are copied
    // from its master (src/broker/slave_sync.rs), and a consumer reading a slave commits
    // through UPDATE_CONSUMER_OFFSET.
    let store_commit = shard.config.broker_role.is_master();
    if store_commit && flags.has_commit_offset() && header.commit_offset >= 0 {
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
    let property_filter = selector.map(sql92::PropertyFilter);
    let filter = if let Some(property_filter) = &property_filter {
        TagFilter::Records(property_filter)
    } else if subscription.is_sub_all() {
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
    let mut get = GetRequest {
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
        let deadline = Instant::now() + hold;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait =
                shard
                    .store
                    .wait_for_message(&header.topic, header.queue_id, get.queue_offset);
            // Shutdown answers a held pull at once (nothing new), so the drain does not wait.
            let stopping = std::pin::pin!(shard.stopping.wait());
            let held = std::pin::pin!(compio::time::timeout(remaining, wait));
            let outcome = match futures_util::future::select(held, stopping).await {
                futures_util::future::Either::Left((outcome, _)) => outcome,
                futures_util::future::Either::Right(((), _)) => Ok(WaitOutcome::Closed),
            };
            let Ok(WaitOutcome::Arrived) = outcome else {
                break;
            };
            let fresh = shard
                .store
                .get_messages(&get)
                .await
                .map_err(|e| storage_failure(&e))?;
            // SQL92: only new messages the filter rejects, and the scan reached the end: keep
            // holding from past them, so the consumer wakes for a matching message (Java's
            // hold service checks the filter on arrival). Answered at the deadline as caught
            // up at the new offset. (A tag pull keeps answering such a wake-up with
            // PULL_RETRY_IMMEDIATELY, as tests/broker_send_pull.rs pins.)
            let skipped_to_end = property_filter.is_some()
                && fresh.status == GetStatus::NoMatchedMessage
                && fresh.next_begin_offset > get.queue_offset
                && fresh.next_begin_offset >= fresh.max_offset;
            if skipped_to_end && !remaining.is_zero() {
                get.queue_offset = fresh.next_begin_offset;
                result = GetResult {
                    status: GetStatus::OffsetOverflowOne,
                    records: Vec::new(),
                    ..fresh
                };
                continue;
            }
            result = fresh;
            break;
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

/// The pull's subscription, and its compiled selector when it is SQL92 (Java's order: a bad
/// expression is SUBSCRIPTION_PARSE_FAILED from the header, FILTER_DATA_NOT_EXIST from the
/// registry; then `enablePropertyFilter=false` is SYSTEM_ERROR).
fn subscription_for(
    shard: &Shard,
    header: &PullMessageRequestHeader,
    flags: PullSysFlag,
) -> Result<(SubscriptionData, Option<Rc<Selector>>), Failure> {
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
    if subscription.is_tag_type() {
        return Ok((subscription, None));
    }
    let compiled = if subscription.expression_type == EXPRESSION_TYPE_SQL92 {
        sql92::selector(&subscription.sub_string).ok()
    } else {
        None
    };
    let Some(compiled) = compiled else {
        return Err(if flags.has_subscription() {
            Failure::Code(
                ResponseCode::SubscriptionParseFailed,
                "parse the consumer's subscription failed".into(),
            )
        } else {
            Failure::Code(
                ResponseCode::FilterDataNotExist,
                "The broker's consumer filter data is not exist!Your expression may be wrong!"
                    .into(),
            )
        });
    };
    if !shard.config.enable_property_filter {
        return Err(sql92::disabled(&subscription.expression_type));
    }
    Ok((subscription, Some(compiled)))
}

/// Java's `MixAll.MASTER_ID`: the broker id consumers are sent back to the master with.
pub const MASTER_ID: i64 = 0;

/// What the broker's role and settings say about pull replies ([`advise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRules {
    /// `brokerRole=SLAVE`.
    pub slave: bool,
    /// `slaveReadEnable`.
    pub slave_read_enable: bool,
    /// `offsetCheckInSlave`.
    pub offset_check_in_slave: bool,
}

/// The consumer group's broker choices (its `SubscriptionGroupConfig`; Java's defaults when
/// the group is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBrokers {
    /// `brokerId`: where a consumer reading warm data is sent (0, the master, by default).
    pub broker_id: i64,
    /// `whichBrokerWhenConsumeSlowly`: where a consumer reading cold data is sent (1).
    pub which_broker_when_consume_slowly: i64,
}

impl Default for GroupBrokers {
    fn default() -> Self {
        let defaults = crate::tables::groups::SubscriptionGroupConfig::default();
        Self {
            broker_id: defaults.broker_id,
            which_broker_when_consume_slowly: defaults.which_broker_when_consume_slowly,
        }
    }
}

/// A pull reply's code and `suggestWhichBrokerId`, from the code the store status maps to,
/// whether the pull read cold data ([`crate::runtime::memory::is_cold`]), the group and the
/// broker's rules (Java 4.x `PullMessageProcessor`):
/// - `slaveReadEnable` off: always [`MASTER_ID`] (a slave then still serves the pull);
/// - on: the group's `whichBrokerWhenConsumeSlowly` for a cold read, else its `brokerId`, on a
///   master and a slave alike (each judges by its own CommitLog);
/// - on a slave without `offsetCheckInSlave`, PULL_OFFSET_MOVED becomes PULL_RETRY_IMMEDIATELY
///   suggesting the group's `brokerId`: a slave may be behind its master, so it never moves a
///   consumer's offset.
#[must_use]
pub fn advise(
    code: ResponseCode,
    cold: bool,
    group: GroupBrokers,
    rules: PullRules,
) -> (ResponseCode, i64) {
    let suggested = match (rules.slave_read_enable, cold) {
        (false, _) => MASTER_ID,
        (true, true) => group.which_broker_when_consume_slowly,
        (true, false) => group.broker_id,
    };
    if rules.slave && !rules.offset_check_in_slave && code == ResponseCode::PullOffsetMoved {
        return (ResponseCode::PullRetryImmediately, group.broker_id);
    }
    (code, suggested)
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
    let cold = result.last_scanned_phys_offset.is_some_and(|pulled| {
        is_cold(
            shard.store.commitlog().appended_offset(),
            pulled,
            shard.in_memory_window_bytes,
        )
    });
    let group = shard.groups.get().get(&header.consumer_group).map_or_else(
        GroupBrokers::default,
        |config| GroupBrokers {
            broker_id: config.broker_id,
            which_broker_when_consume_slowly: config.which_broker_when_consume_slowly,
        },
    );
    let config = &shard.config;
    let rules = PullRules {
        slave: !config.broker_role.is_master(),
        slave_read_enable: shard.live.slave_read_enable(),
        offset_check_in_slave: config.offset_check_in_slave,
    };
    let (code, suggest_which_broker_id) = advise(code, cold, group, rules);
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
        suggest_which_broker_id,
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

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: GroupBrokers = GroupBrokers {
        broker_id: 3,
        which_broker_when_consume_slowly: 2,
    };

    fn rules(slave: bool, slave_read_enable: bool, offset_check_in_slave: bool) -> PullRules {
        PullRules {
            slave,
            slave_read_enable,
            offset_check_in_slave,
        }
    }

    #[test]
    fn without_slave_read_every_reply_names_the_master() {
        for slave in [false, true] {
            for cold in [false, true] {
                let advice = advise(
                    ResponseCode::Success,
                    cold,
                    GROUP,
                    rules(slave, false, false),
                );
                assert_eq!(
                    advice,
                    (ResponseCode::Success, MASTER_ID),
                    "slave={slave} cold={cold}"
                );
            }
        }
    }

    #[test]
    fn with_slave_read_cold_reads_go_to_the_slow_broker_and_warm_ones_to_the_group_broker() {
        for slave in [false, true] {
            let on = rules(slave, true, false);
            assert_eq!(
                advise(ResponseCode::Success, true, GROUP, on),
                (ResponseCode::Success, 2)
            );
            assert_eq!(
                advise(ResponseCode::Success, false, GROUP, on),
                (ResponseCode::Success, 3)
            );
            assert_eq!(
                advise(
                    ResponseCode::PullNotFound,
                    true,
                    GroupBrokers::default(),
                    on
                ),
                (ResponseCode::PullNotFound, 1),
                "Java's default whichBrokerWhenConsumeSlowly"
            );
            assert_eq!(
                advise(ResponseCode::Success, false, GroupBrokers::default(), on),
                (ResponseCode::Success, MASTER_ID)
            );
        }
    }

    #[test]
    fn a_slave_never_moves_a_consumer_offset_unless_told_to() {
        for slave_read_enable in [false, true] {
            for cold in [false, true] {
                let slave = rules(true, slave_read_enable, false);
                assert_eq!(
                    advise(ResponseCode::PullOffsetMoved, cold, GROUP, slave),
                    (ResponseCode::PullRetryImmediately, 3),
                    "suggests the group's brokerId"
                );
                let checking = rules(true, slave_read_enable, true);
                assert_eq!(
                    advise(ResponseCode::PullOffsetMoved, cold, GROUP, checking).0,
                    ResponseCode::PullOffsetMoved
                );
                let master = rules(false, slave_read_enable, false);
                assert_eq!(
                    advise(ResponseCode::PullOffsetMoved, cold, GROUP, master).0,
                    ResponseCode::PullOffsetMoved
                );
            }
        }
    }
}
