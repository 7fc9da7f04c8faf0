//! Consumer loops on one harness thread: one pull loop per (group, queue), as a Java push
//! consumer runs them (PROTOCOL.md §4.4, §9.2): PULL_MESSAGE with the subscription in the
//! request (`SUBSCRIPTION|SUSPEND`, plus `COMMIT_OFFSET` once past 0), long-polled, bodies
//! decoded with `RecordIter`, end-to-end latency taken from each record's born timestamp (a
//! delivered timer message's from its due time, `TIMER_DELIVER_MS`: its lateness).
//! Start offsets come from QUERY_CONSUMER_OFFSET / GET_MAX_OFFSET or 0; the final offset is
//! committed with UPDATE_CONSUMER_OFFSET. Keeps counters and histograms only.
//! Must never keep a message, nor stop counting on a malformed body (it is counted as an
//! error and the loop moves on from `nextBeginOffset`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use rmq_net::codec::body::heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, MessageModel,
};
use rmq_net::codec::body::subscription::{
    SubscriptionData, EXPRESSION_TYPE_SQL92, EXPRESSION_TYPE_TAG,
};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::command::RemotingCommand;
use rmq_net::codec::header::offset::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use rmq_net::codec::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PullSysFlag,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::{keys, CrcCheck, RecordIter};
use rmq_net::conn::{ClientError, RemotingClient};

use crate::cli::ConsumeFrom;
use crate::producer::{client_error_kind, sleep_unless, wall_clock_us};
use crate::route::QueueTarget;
use crate::stats::{record_latency, IntervalStats};
use crate::sync::Event;

/// Extra time a pull may take beyond the long-poll hold before the client gives up (Java:
/// 15 s hold, 30 s socket timeout).
pub const PULL_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

/// Pause after a failed pull (Java waits 3 s; a benchmark wants to notice recovery sooner).
pub const PULL_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A PULL_NOT_FOUND answered faster than this was not long-polled; the loop pauses
/// [`NOT_HELD_PAUSE`] so a broker without long polling does not make it spin.
pub const NOT_HELD_THRESHOLD: Duration = Duration::from_millis(2);

/// See [`NOT_HELD_THRESHOLD`].
pub const NOT_HELD_PAUSE: Duration = Duration::from_millis(1);

/// Heartbeat period (Java `heartbeatBrokerInterval`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// What every pull loop of a run shares.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Topic.
    pub topic: String,
    /// Subscription expression (TAG type, or SQL92 with `sql92`).
    pub subscription: String,
    /// `expressionType=SQL92`.
    pub sql92: bool,
    /// Subscription version: the run's start, ms.
    pub sub_version: i64,
    /// Messages per pull.
    pub pull_batch: u32,
    /// Long-poll hold, ms.
    pub long_poll_ms: u64,
    /// Timeout of offset requests and heartbeats.
    pub timeout: Duration,
    /// Where a group starts.
    pub consume_from: ConsumeFrom,
}

impl ConsumerSpec {
    /// The pull header's `expressionType`.
    #[must_use]
    pub fn expression_type(&self) -> &'static str {
        if self.sql92 {
            EXPRESSION_TYPE_SQL92
        } else {
            EXPRESSION_TYPE_TAG
        }
    }
}

/// Why a consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// A request failed.
    #[error("{what} for {group} {topic}:{queue_id} failed: {source}")]
    Client {
        /// Request name.
        what: &'static str,
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: i32,
        /// Cause.
        source: ClientError,
    },
    /// The broker answered an unexpected code.
    #[error("{what} for {group} {topic}:{queue_id}: code {code}, remark {remark:?}")]
    Code {
        /// Request name.
        what: &'static str,
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: i32,
        /// Response code.
        code: i32,
        /// Remark.
        remark: Option<String>,
    },
}

/// One pull loop's target.
#[derive(Debug, Clone)]
pub struct QueueConsumer {
    /// Connection to the queue's broker.
    pub client: RemotingClient,
    /// Group.
    pub group: String,
    /// Queue.
    pub queue: QueueTarget,
    /// Next offset to pull.
    pub offset: i64,
}

impl QueueConsumer {
    fn client_error(&self, what: &'static str, topic: &str, source: ClientError) -> ConsumerError {
        ConsumerError::Client {
            what,
            group: self.group.clone(),
            topic: topic.to_owned(),
            queue_id: self.queue.queue_id,
            source,
        }
    }

    fn code_error(
        &self,
        what: &'static str,
        topic: &str,
        response: RemotingCommand,
    ) -> ConsumerError {
        ConsumerError::Code {
            what,
            group: self.group.clone(),
            topic: topic.to_owned(),
            queue_id: self.queue.queue_id,
            code: response.code,
            remark: response.remark,
        }
    }

    /// Sets the start offset as `spec.consume_from` says.
    ///
    /// # Errors
    /// [`ConsumerError`] if an offset request fails or is refused.
    pub async fn init_offset(&mut self, spec: &ConsumerSpec) -> Result<(), ConsumerError> {
        self.offset = match spec.consume_from {
            ConsumeFrom::First => 0,
            ConsumeFrom::Last => self.max_offset(spec).await?,
            ConsumeFrom::Committed => match self.committed_offset(spec).await? {
                Some(offset) => offset,
                None => self.max_offset(spec).await?,
            },
        };
        assert!(self.offset >= 0, "offsets are non-negative");
        Ok(())
    }

    async fn committed_offset(&self, spec: &ConsumerSpec) -> Result<Option<i64>, ConsumerError> {
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: spec.topic.clone(),
            queue_id: self.queue.queue_id,
            set_zero_if_not_found: Some(false),
        };
        let request = RemotingCommand::request(RequestCode::QueryConsumerOffset, header.to_ext());
        let what = "QUERY_CONSUMER_OFFSET";
        let response = self
            .client
            .invoke(request, spec.timeout)
            .await
            .map_err(|source| self.client_error(what, &spec.topic, source))?;
        match response.response_code() {
            ResponseCode::Success => QueryConsumerOffsetResponseHeader::decode_command(&response)
                .map(|header| Some(header.offset.max(0)))
                .map_err(|_| self.code_error(what, &spec.topic, response)),
            ResponseCode::QueryNotFound => Ok(None),
            _ => Err(self.code_error(what, &spec.topic, response)),
        }
    }

    async fn max_offset(&self, spec: &ConsumerSpec) -> Result<i64, ConsumerError> {
        max_offset(&self.client, &spec.topic, self.queue.queue_id, spec.timeout)
            .await
            .map_err(|error| match error {
                OffsetError::Client(source) => {
                    self.client_error("GET_MAX_OFFSET", &spec.topic, source)
                }
                OffsetError::Code(response) => {
                    self.code_error("GET_MAX_OFFSET", &spec.topic, response)
                }
            })
    }

    /// Pulls until `stop` is set, then commits the offset reached.
    pub async fn run(
        mut self,
        spec: Rc<ConsumerSpec>,
        stats: Rc<RefCell<IntervalStats>>,
        stop: Event,
    ) {
        let pull_timeout = Duration::from_millis(spec.long_poll_ms) + PULL_TIMEOUT_MARGIN;
        while !stop.is_set() {
            let request = self.pull_request(&spec);
            let started = Instant::now();
            let result = {
                let pull = std::pin::pin!(self.client.invoke(request, pull_timeout));
                let stopped = std::pin::pin!(stop.wait());
                match select(pull, stopped).await {
                    Either::Left((result, _)) => result,
                    Either::Right(_) => break,
                }
            };
            let elapsed = started.elapsed();
            let pause = self.handle_pull(result, elapsed, &stats);
            if let Some(pause) = pause {
                if !sleep_unless(&stop, pause).await {
                    break;
                }
            }
        }
        self.commit(&spec, &stats).await;
    }

    fn pull_request(&self, spec: &ConsumerSpec) -> RemotingCommand {
        let flag = PullSysFlag::build(self.offset > 0, true, true, false);
        let header = PullMessageRequestHeader {
            consumer_group: self.group.clone(),
            topic: spec.topic.clone(),
            queue_id: self.queue.queue_id,
            queue_offset: self.offset,
            max_msg_nums: i32::try_from(spec.pull_batch).unwrap_or(i32::MAX),
            sys_flag: flag.0,
            commit_offset: self.offset,
            suspend_timeout_millis: i64::try_from(spec.long_poll_ms).unwrap_or(i64::MAX),
            subscription: Some(spec.subscription.clone()),
            sub_version: spec.sub_version,
            expression_type: Some(spec.expression_type().to_owned()),
            max_msg_bytes: None,
            request_source: None,
            proxy_froward_client_id: None,
        };
        RemotingCommand::request(RequestCode::PullMessage, header.to_ext())
    }

    /// Counts one pull's outcome and moves the offset; returns a pause before the next pull.
    fn handle_pull(
        &mut self,
        result: Result<RemotingCommand, ClientError>,
        elapsed: Duration,
        stats: &RefCell<IntervalStats>,
    ) -> Option<Duration> {
        let mut stats = stats.borrow_mut();
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                stats.errors.add(client_error_kind("pull", &error), 1);
                return Some(PULL_ERROR_BACKOFF);
            }
        };
        record_latency(
            &mut stats.pull_latency,
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        );
        let code = response.response_code();
        let next = match code {
            ResponseCode::Success
            | ResponseCode::PullNotFound
            | ResponseCode::PullRetryImmediately
            | ResponseCode::PullOffsetMoved => PullMessageResponseHeader::decode_command(&response)
                .ok()
                .map(|header| header.next_begin_offset),
            _ => None,
        };
        let Some(next) = next else {
            stats.errors.add(&format!("pull:code:{}", response.code), 1);
            return Some(PULL_ERROR_BACKOFF);
        };
        if next < 0 {
            stats.errors.add("pull:negative-offset", 1);
            return Some(PULL_ERROR_BACKOFF);
        }
        self.offset = next;
        match code {
            ResponseCode::Success => {
                count_records(response.body, &mut stats);
                None
            }
            ResponseCode::PullNotFound => {
                stats.events.add("pull:not-found", 1);
                (elapsed < NOT_HELD_THRESHOLD).then_some(NOT_HELD_PAUSE)
            }
            ResponseCode::PullRetryImmediately => {
                stats.events.add("pull:retry-immediately", 1);
                None
            }
            _ => {
                stats.events.add("pull:offset-moved", 1);
                None
            }
        }
    }

    /// Commits the offset reached (best effort; a failure is counted).
    async fn commit(&self, spec: &ConsumerSpec, stats: &RefCell<IntervalStats>) {
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: spec.topic.clone(),
            queue_id: self.queue.queue_id,
            commit_offset: self.offset,
        };
        let request = RemotingCommand::request(RequestCode::UpdateConsumerOffset, header.to_ext());
        match self.client.invoke(request, spec.timeout).await {
            Ok(response) if response.response_code() == ResponseCode::Success => {}
            Ok(response) => stats
                .borrow_mut()
                .errors
                .add(&format!("commit:code:{}", response.code), 1),
            Err(error) => stats
                .borrow_mut()
                .errors
                .add(client_error_kind("commit", &error), 1),
        }
    }
}

/// Counts the records of a pull body and records their end-to-end latency: from the born
/// timestamp, or from `TIMER_DELIVER_MS` when the record carries one (a delivered timer).
fn count_records(body: bytes::Bytes, stats: &mut IntervalStats) {
    let now_us = wall_clock_us();
    for record in RecordIter::new(body, CrcCheck::Skip) {
        match record {
            Ok(record) => {
                stats.consumed.messages += 1;
                stats.consumed.bytes += record.body.len() as u64;
                let start_ms = record
                    .properties
                    .get(keys::TIMER_DELIVER_MS)
                    .and_then(|due| due.parse::<i64>().ok())
                    .unwrap_or(record.born_timestamp);
                let born_us = start_ms.saturating_mul(1_000);
                let latency_us = u64::try_from(now_us.saturating_sub(born_us)).unwrap_or(0);
                record_latency(
                    &mut stats.end_to_end_latency,
                    latency_us.saturating_mul(1_000),
                );
            }
            Err(_) => stats.errors.add("pull:decode", 1),
        }
    }
    stats.consumed.requests += 1;
}

/// Why an offset request failed.
#[derive(Debug)]
pub enum OffsetError {
    /// The request failed.
    Client(ClientError),
    /// The broker refused it (the whole response).
    Code(RemotingCommand),
}

/// GET_MAX_OFFSET of one queue.
///
/// # Errors
/// [`OffsetError`].
pub async fn max_offset(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
    timeout: Duration,
) -> Result<i64, OffsetError> {
    let header = GetMaxOffsetRequestHeader {
        topic: topic.to_owned(),
        queue_id,
        committed: true,
    };
    let request = RemotingCommand::request(RequestCode::GetMaxOffset, header.to_ext());
    let response = client
        .invoke(request, timeout)
        .await
        .map_err(OffsetError::Client)?;
    if response.response_code() != ResponseCode::Success {
        return Err(OffsetError::Code(response));
    }
    match GetMaxOffsetResponseHeader::decode_command(&response) {
        Ok(header) => Ok(header.offset),
        Err(_) => Err(OffsetError::Code(response)),
    }
}

/// The HEART_BEAT body announcing `group` as a pull consumer of `spec.topic`.
#[must_use]
pub fn heartbeat_request(client_id: &str, group: &str, spec: &ConsumerSpec) -> RemotingCommand {
    let consume_from_where = match spec.consume_from {
        ConsumeFrom::First => ConsumeFromWhere::ConsumeFromFirstOffset,
        ConsumeFrom::Last | ConsumeFrom::Committed => ConsumeFromWhere::ConsumeFromLastOffset,
    };
    let data = HeartbeatData {
        client_id: client_id.to_owned(),
        consumer_data_set: vec![ConsumerData {
            consume_from_where,
            consume_type: ConsumeType::ConsumeActively,
            group_name: group.to_owned(),
            message_model: MessageModel::Clustering,
            subscription_data_set: vec![{
                let mut data = SubscriptionData::new_tag(
                    spec.topic.clone(),
                    spec.subscription.clone(),
                    spec.sub_version,
                );
                if spec.sql92 {
                    data.expression_type = EXPRESSION_TYPE_SQL92.to_owned();
                    data.tags_set.clear();
                    data.code_set.clear();
                }
                data
            }],
            unit_mode: false,
        }],
        heartbeat_fingerprint: 0,
        producer_data_set: Vec::new(),
        without_sub: false,
    };
    RemotingCommand::request(RequestCode::HeartBeat, Default::default()).with_body(data.to_json())
}

/// Sends a heartbeat now and every [`HEARTBEAT_INTERVAL`] until `stop`; failures are counted.
pub async fn heartbeat_loop(
    client: RemotingClient,
    request: RemotingCommand,
    timeout: Duration,
    stats: Rc<RefCell<IntervalStats>>,
    stop: Event,
) {
    loop {
        let kind = match client.invoke(request.clone(), timeout).await {
            Ok(response) if response.response_code() == ResponseCode::Success => None,
            Ok(response) => Some(format!("heartbeat:code:{}", response.code)),
            Err(error) => Some(client_error_kind("heartbeat", &error).to_owned()),
        };
        if let Some(kind) = kind {
            stats.borrow_mut().errors.add(&kind, 1);
        }
        if !sleep_unless(&stop, HEARTBEAT_INTERVAL).await {
            return;
        }
    }
}
