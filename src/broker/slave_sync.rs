//! A slave's copy of its master's metadata (Java `SlaveSynchronize.syncAll`): topic configs
//! (GET_ALL_TOPIC_CONFIG, 21), consumer offsets (GET_ALL_CONSUMER_OFFSET, 43), delay-level
//! offsets (GET_ALL_DELAY_OFFSET, 45) and subscription groups
//! (GET_ALL_SUBSCRIPTIONGROUP_CONFIG, 201), in Java's order, as soon as the master's remoting
//! address is known (learnt from the NameServer, [`super::ha`]) and every
//! `slaveSyncIntervalMillis` after (10 s, Java 4.x's period).
//!
//! What is applied, and how:
//! - topics and groups replace the slave's tables whole (entries the master lacks are
//!   removed) through the one publish path of an admin change (journal, then install on every
//!   shard), only when the master's `dataVersion` or the slave's own table moved since the
//!   last copy; a topic removed this way loses its queues and offsets here as on the master;
//! - consumer offsets overwrite, per `topic@group`, the offsets of the shards owning each
//!   queue, as Java's `putAll` does: an offset a consumer committed on this slave gives way
//!   to the master's, and pairs the master lacks stay;
//! - delay offsets are set per level on the shard owning the level's schedule queue and
//!   persisted (levels the master lacks stay).
//!
//! Runs as one task on a slave's control shard. Must never: run on a master (asserted), ask
//! this broker itself, take more than one frame per table from the master (the client's frame
//! limit), apply an entry a table's checks refuse, or stop on a failure: failures are logged
//! at most once per [`SLAVE_SYNC_FAILURE_LOG_INTERVAL`] and the next period retries.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_net::codec::body::offsets::{ConsumerOffsetSerializeWrapper, DelayOffsetSerializeWrapper};
use rmq_net::codec::body::topic::{DataVersion, TopicConfigAndMappingSerializeWrapper};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::conn::{ClientConfig, ClientError, RemotingClient};
use rmq_net::{CodecError, ExtFields, RemotingCommand};

use crate::limits::{
    SLAVE_SYNC_FAILURE_LOG_INTERVAL, SLAVE_SYNC_MASTER_POLL_INTERVAL, SLAVE_SYNC_REQUEST_TIMEOUT,
};
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::MeshError;
use crate::tables::groups::SubscriptionGroupWrapper;
use crate::tables::replicated::ReplaceOutcome;

use super::control::topics::drop_topic_data;
use super::offset_tables::{
    apply_consumer_offsets, apply_delay_offsets, check_consumer_offsets, Applied,
};
use super::replicate;
use super::shard::{Shard, CONTROL_SHARD};

/// Why one table of a sync was not (fully) copied.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request did not get an answer.
    #[error("{table}: request to the master failed: {source}")]
    Request {
        /// The table.
        table: &'static str,
        /// Why.
        source: ClientError,
    },
    /// The master answered with another code than SUCCESS.
    #[error("{table}: the master answered {code}: {remark}")]
    Refused {
        /// The table.
        table: &'static str,
        /// The response code.
        code: i32,
        /// Its remark.
        remark: String,
    },
    /// The body is not the table's JSON.
    #[error("{table}: unreadable body from the master: {source}")]
    Body {
        /// The table.
        table: &'static str,
        /// Why.
        source: CodecError,
    },
    /// A shard could not be reached to apply its part (the others applied theirs).
    #[error("{table}: not applied on every shard: {source}")]
    Mesh {
        /// The table.
        table: &'static str,
        /// Why.
        source: MeshError,
    },
    /// Entries the master sent that this slave refused (bad names, a full table).
    #[error("{table}: {count} entries not taken (first: {first})")]
    Refusals {
        /// The table.
        table: &'static str,
        /// How many.
        count: usize,
        /// The first one and why.
        first: String,
    },
}

/// A table version the last copy applied: the master's `dataVersion`, and this slave's own
/// table version right after (an admin change made on the slave itself moves it, and the
/// next sync then copies the master's table again, as Java's version comparison does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AppliedVersion {
    master: DataVersion,
    local: DataVersion,
}

/// Rate-limits the failure log: the first failure is logged, then at most one per interval
/// with how many were not; a success after failures is logged once.
#[derive(Debug, Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

impl FailureLog {
    /// A sync failed at `now`: `Some(failures not logged since the last log)` if this one is
    /// to be logged.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        self.failing = true;
        let due = self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= SLAVE_SYNC_FAILURE_LOG_INTERVAL);
        if !due {
            self.suppressed += 1;
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// A sync succeeded: whether it ends a run of failures.
    fn succeeded(&mut self) -> bool {
        self.suppressed = 0;
        self.last_logged = None;
        std::mem::take(&mut self.failing)
    }
}

/// The sync loop's own state (nothing else reads it).
#[derive(Debug, Default)]
struct SyncState {
    /// The master the state below is about.
    master: Option<String>,
    client: Option<RemotingClient>,
    last_sync: Option<Instant>,
    topics: Option<AppliedVersion>,
    groups: Option<AppliedVersion>,
    failures: FailureLog,
}

impl SyncState {
    /// Whether a sync with `master` is due at `now`: at once for a new master, else once
    /// `interval` passed since the last one ended.
    fn due(&self, master: &str, now: Instant, interval: Duration) -> bool {
        self.master.as_deref() != Some(master)
            || self
                .last_sync
                .is_none_or(|last| now.duration_since(last) >= interval)
    }

    /// Points the state at `master` (a new client, nothing applied yet) if it changed.
    fn follow(&mut self, master: &str) -> RemotingClient {
        if self.master.as_deref() != Some(master) {
            tracing::info!(master, "slave sync: copying metadata from the master");
            *self = Self {
                master: Some(master.to_owned()),
                client: Some(RemotingClient::new(master, ClientConfig::default())),
                failures: std::mem::take(&mut self.failures),
                ..Self::default()
            };
        }
        self.client
            .clone()
            .expect("a client exists once a master is followed")
    }
}

/// The sync loop of a slave's control shard, until shutdown begins.
///
/// # Panics
/// On a master, or on another shard than the control shard (a start-up bug).
pub async fn run(shard: Rc<Shard>) {
    assert_eq!(
        shard.id, CONTROL_SHARD,
        "the slave sync runs on the control shard"
    );
    assert!(
        !shard.config.broker_role.is_master(),
        "only a slave copies its master's metadata"
    );
    let own = shard.store_host.to_string();
    let interval = shard.config.slave_sync_interval;
    let mut state = SyncState::default();
    while !shard.stopping.is_set() {
        let master = shard.ha.master_addr().filter(|addr| *addr != own);
        if let Some(master) = master {
            if state.due(&master, Instant::now(), interval) {
                let client = state.follow(&master);
                let errors = sync_all(&shard, &client, &mut state).await;
                state.last_sync = Some(Instant::now());
                report(&mut state.failures, &master, &errors);
            }
        }
        compio::time::sleep(SLAVE_SYNC_MASTER_POLL_INTERVAL).await;
    }
}

fn report(failures: &mut FailureLog, master: &str, errors: &[SyncError]) {
    if errors.is_empty() {
        if failures.succeeded() {
            tracing::info!(master, "slave sync: copying from the master works again");
        }
        return;
    }
    if let Some(not_logged) = failures.failed(Instant::now()) {
        for err in errors {
            tracing::warn!(master, %err, failures_not_logged = not_logged, "slave sync failed; retried next period");
        }
    }
}

/// One round, Java's order: topics, consumer offsets, delay offsets, groups. Each table is
/// independent: one failing does not stop the others.
async fn sync_all(
    shard: &Rc<Shard>,
    client: &RemotingClient,
    state: &mut SyncState,
) -> Vec<SyncError> {
    let mut errors = Vec::new();
    if let Err(err) = sync_topics(shard, client, &mut state.topics).await {
        errors.push(err);
    }
    if let Err(err) = sync_consumer_offsets(shard, client).await {
        errors.push(err);
    }
    if let Err(err) = sync_delay_offsets(shard, client).await {
        errors.push(err);
    }
    if let Err(err) = sync_groups(shard, client, &mut state.groups).await {
        errors.push(err);
    }
    errors
}

/// Asks the master for one table; its body on SUCCESS.
async fn fetch(
    client: &RemotingClient,
    code: RequestCode,
    table: &'static str,
) -> Result<Bytes, SyncError> {
    let request = RemotingCommand::request(code, ExtFields::new());
    let reply = client
        .invoke(request, SLAVE_SYNC_REQUEST_TIMEOUT)
        .await
        .map_err(|source| SyncError::Request { table, source })?;
    if reply.response_code() != ResponseCode::Success {
        return Err(SyncError::Refused {
            table,
            code: reply.code,
            remark: reply.remark.unwrap_or_default(),
        });
    }
    Ok(reply.body)
}

fn parse<T: JsonBody>(table: &'static str, body: &[u8]) -> Result<T, SyncError> {
    T::from_json(body).map_err(|source| SyncError::Body { table, source })
}

/// Logs what a table replacement did; its refusals as an error.
fn replaced(table: &'static str, outcome: &ReplaceOutcome) -> Result<(), SyncError> {
    if outcome.changed() {
        tracing::info!(
            table,
            written = outcome.written.len(),
            deleted = outcome.deleted.len(),
            "slave sync: table copied from the master"
        );
    }
    match outcome.refused.first() {
        None => Ok(()),
        Some((name, why)) => Err(SyncError::Refusals {
            table,
            count: outcome.refused.len(),
            first: format!("{name}: {why}"),
        }),
    }
}

async fn sync_topics(
    shard: &Rc<Shard>,
    client: &RemotingClient,
    last: &mut Option<AppliedVersion>,
) -> Result<(), SyncError> {
    const TABLE: &str = "topic config";
    let body = fetch(client, RequestCode::GetAllTopicConfig, TABLE).await?;
    let wrapper: TopicConfigAndMappingSerializeWrapper = parse(TABLE, &body)?;
    let control = shard.control();
    let local = control.topics.borrow().version();
    let master = wrapper.data_version;
    if *last == Some(AppliedVersion { master, local }) {
        return Ok(());
    }
    let outcome = control
        .topics
        .borrow_mut()
        .replace_with(wrapper.topic_config_table, now_ms());
    if outcome.changed() {
        replicate::publish_topics(shard).await;
        for topic in &outcome.deleted {
            drop_topic_data(shard, topic).await;
        }
    }
    let local = control.topics.borrow().version();
    *last = Some(AppliedVersion { master, local });
    replaced(TABLE, &outcome)
}

async fn sync_groups(
    shard: &Rc<Shard>,
    client: &RemotingClient,
    last: &mut Option<AppliedVersion>,
) -> Result<(), SyncError> {
    const TABLE: &str = "subscription group";
    let body = fetch(client, RequestCode::GetAllSubscriptionGroupConfig, TABLE).await?;
    let wrapper: SubscriptionGroupWrapper = parse(TABLE, &body)?;
    let control = shard.control();
    let local = control.groups.borrow().version();
    let master = wrapper.data_version;
    if *last == Some(AppliedVersion { master, local }) {
        return Ok(());
    }
    let outcome = control
        .groups
        .borrow_mut()
        .replace_with(wrapper.subscription_group_table, now_ms());
    if outcome.changed() {
        replicate::publish_groups(shard).await;
    }
    let local = control.groups.borrow().version();
    *last = Some(AppliedVersion { master, local });
    replaced(TABLE, &outcome)
}

/// Logs what applying an offset table did; entries refused as an error.
fn applied(table: &'static str, applied: Applied, skipped: usize) -> Result<(), SyncError> {
    if applied.changed > 0 {
        tracing::debug!(
            table,
            changed = applied.changed,
            "slave sync: offsets copied from the master"
        );
    }
    let count = applied.refused + skipped;
    if count == 0 {
        return Ok(());
    }
    Err(SyncError::Refusals {
        table,
        count,
        first: "bad names, queue ids or levels, or a full offset table".into(),
    })
}

async fn sync_consumer_offsets(
    shard: &Rc<Shard>,
    client: &RemotingClient,
) -> Result<(), SyncError> {
    const TABLE: &str = "consumer offset";
    let body = fetch(client, RequestCode::GetAllConsumerOffset, TABLE).await?;
    let wrapper: ConsumerOffsetSerializeWrapper = parse(TABLE, &body)?;
    drop(body);
    let (entries, skipped) = check_consumer_offsets(wrapper);
    let result = apply_consumer_offsets(shard, entries)
        .await
        .map_err(|source| SyncError::Mesh {
            table: TABLE,
            source,
        })?;
    applied(TABLE, result, skipped)
}

async fn sync_delay_offsets(shard: &Rc<Shard>, client: &RemotingClient) -> Result<(), SyncError> {
    const TABLE: &str = "delay offset";
    let body = fetch(client, RequestCode::GetAllDelayOffset, TABLE).await?;
    let wrapper: DelayOffsetSerializeWrapper = parse(TABLE, &body)?;
    let result = apply_delay_offsets(shard, wrapper)
        .await
        .map_err(|source| SyncError::Mesh {
            table: TABLE,
            source,
        })?;
    applied(TABLE, result, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_logged_once_per_interval_with_the_count_not_logged() {
        let mut log = FailureLog::default();
        let start = Instant::now();
        assert!(!log.succeeded(), "nothing to recover from");
        assert_eq!(log.failed(start), Some(0), "the first failure is logged");
        assert_eq!(log.failed(start + Duration::from_secs(10)), None);
        assert_eq!(log.failed(start + Duration::from_secs(20)), None);
        let later = start + SLAVE_SYNC_FAILURE_LOG_INTERVAL;
        assert_eq!(log.failed(later), Some(2), "two were not logged");
        assert_eq!(log.failed(later + Duration::from_secs(1)), None);
        assert!(log.succeeded(), "a success after failures is reported once");
        assert!(!log.succeeded());
        assert_eq!(
            log.failed(later + Duration::from_secs(2)),
            Some(0),
            "a new run of failures starts logged"
        );
    }

    #[test]
    fn a_sync_is_due_for_a_new_master_at_once_and_then_every_interval() {
        let interval = Duration::from_secs(10);
        let now = Instant::now();
        let mut state = SyncState::default();
        assert!(state.due("m:1", now, interval), "first master");
        let _client = state.follow("m:1");
        state.last_sync = Some(now);
        assert!(!state.due("m:1", now + Duration::from_secs(9), interval));
        assert!(state.due("m:1", now + interval, interval));
        assert!(state.due("m:2", now, interval), "a new master at once");
        state.topics = Some(AppliedVersion {
            master: DataVersion::default(),
            local: DataVersion::default(),
        });
        let _client = state.follow("m:2");
        assert_eq!(state.master.as_deref(), Some("m:2"));
        assert_eq!(
            state.topics, None,
            "nothing applied from the new master yet"
        );
        assert_eq!(state.last_sync, None);
    }
}
