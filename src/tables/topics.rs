//! The broker's topic-configuration table (PROTOCOL.md §4.1 steps 2–4, §4.9, §5.3, §7.1,
//! §7.2): topic name -> [`TopicConfig`] plus a [`DataVersion`] bumped on every change, the
//! system topics Java registers at start, name validation, auto-create from a template
//! (`TBW102`), retry/DLQ topic creation, the REGISTER_BROKER wrapper, and `topics.json`.
//!
//! Owned by the control shard, which applies every change and broadcasts an immutable
//! [`TopicSnapshot`] to the other shards (they read only snapshots). Pure and synchronous:
//! time comes in as `now_ms`; mutations never persist by themselves, the caller saves with
//! [`TopicTable::save`] (off the data path) and broadcasts. Must never: hold more than
//! [`TOPICS_MAX`] topics, create a topic whose name fails validation (the system topics and
//! a loaded `topics.json` are taken as they are, as in Java), or let two shards mutate one
//! table.
//!
//! Errors map to response codes in the processor: [`TopicError::InvalidName`] and
//! [`TopicError::InvalidConfig`] -> INVALID_PARAMETER; [`TopicError::SystemTopic`] ->
//! INVALID_PARAMETER on admin creates (sends to [`is_send_forbidden_system_topic`] topics get
//! NO_PERMISSION before any lookup); [`TopicError::NotExist`],
//! [`TopicError::TemplateNotExist`] and [`TopicError::NoInheritTemplate`] -> TOPIC_NOT_EXIST;
//! [`TopicError::Limit`] and [`TopicError::Persist`] -> SYSTEM_ERROR with the message as
//! remark.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use rmq_net::codec::body::topic::{
    perm, DataVersion, TopicConfig, TopicConfigAndMappingSerializeWrapper,
    TopicConfigSerializeWrapper,
};

use super::journal;
use super::persist::{self, PersistError};
use super::replicated::{Entries, HasTable, LoadError, ReplaceOutcome, Snapshot, Table};
use crate::config::BrokerConfig;

pub use crate::limits::{
    QUEUE_NUMS_MAX, RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX, TOPICS_MAX, TOPIC_NAME_LENGTH_MAX,
};

/// Prefix of per-group retry topics.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of per-group dead-letter topics.
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Prefix that makes any topic a system topic.
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";
/// The auto-create template topic.
pub const AUTO_CREATE_TOPIC_KEY_TOPIC: &str = "TBW102";
/// Delay-level parking topic.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// 5.x second schedule topic.
pub const SCHEDULE_TOPIC_V2: &str = "SCHEDULE_TOPIC_XXXX_V2";
/// Benchmark topic.
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
/// Transaction half messages.
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Transaction commit/rollback op records.
pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Half messages that used up their check-backs.
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Default message-trace topic.
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// Self-test topic.
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// Offset-moved events.
pub const OFFSET_MOVED_EVENT_TOPIC: &str = "OFFSET_MOVED_EVENT";
/// 5.x RocksDB offset checkpoint topic.
pub const CHECKPOINT_TOPIC: &str = "CHECKPOINT_TOPIC";
/// Queue count of [`SCHEDULE_TOPIC`]: one per delay level.
pub const SCHEDULE_TOPIC_QUEUE_NUMS: i32 = 18;
/// Queue count of a `%DLQ%` topic (Java `DLQ_NUMS_PER_GROUP`).
pub const DLQ_QUEUE_NUMS: i32 = 1;
/// Queue count of the 5.x POP revive topic (Java `reviveQueueNum` default).
pub const REVIVE_QUEUE_NUMS: i32 = 8;

/// Topics a client may never send to (Java `NOT_ALLOWED_SEND_TOPIC_SET`, 4.x/5.x base set).
const SEND_FORBIDDEN_TOPICS: &[&str] = &[
    SCHEDULE_TOPIC,
    SCHEDULE_TOPIC_V2,
    TRANS_HALF_TOPIC,
    TRANS_OP_HALF_TOPIC,
    TRANS_CHECK_MAX_TIME_TOPIC,
    SELF_TEST_TOPIC,
    OFFSET_MOVED_EVENT_TOPIC,
];

/// Fixed-name system topics (Java `SYSTEM_TOPIC_SET`); the broker adds the names it registers.
const FIXED_SYSTEM_TOPICS: &[&str] = &[
    AUTO_CREATE_TOPIC_KEY_TOPIC,
    SCHEDULE_TOPIC,
    SCHEDULE_TOPIC_V2,
    BENCHMARK_TOPIC,
    TRANS_HALF_TOPIC,
    TRACE_TOPIC,
    TRANS_OP_HALF_TOPIC,
    TRANS_CHECK_MAX_TIME_TOPIC,
    SELF_TEST_TOPIC,
    OFFSET_MOVED_EVENT_TOPIC,
    CHECKPOINT_TOPIC,
];

/// How a system topic's name is formed.
#[derive(Debug, Clone, Copy)]
enum SpecName {
    Fixed(&'static str),
    /// `msgTraceTopicName` (default [`TRACE_TOPIC`]).
    Trace,
    Cluster,
    Broker,
    ClusterThen(&'static str),
    ThenCluster(&'static str),
    ThenBroker(&'static str),
}

/// How many queues a system topic gets.
#[derive(Debug, Clone, Copy)]
enum SpecQueues {
    Fixed(i32),
    DefaultTopicQueueNums,
}

/// When a system topic is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpecWhen {
    Always,
    AutoCreateTopicEnabled,
    TraceTopicEnabled,
}

#[derive(Debug, Clone, Copy)]
struct SystemTopicSpec {
    name: SpecName,
    queues: SpecQueues,
    perm: i32,
    when: SpecWhen,
}

const fn spec(name: SpecName, queues: SpecQueues, perm: i32, when: SpecWhen) -> SystemTopicSpec {
    SystemTopicSpec {
        name,
        queues,
        perm,
        when,
    }
}

const RW: i32 = perm::READ_WRITE;
const RWI: i32 = perm::READ_WRITE | perm::INHERIT;

/// The topics Java's `TopicConfigManager.init` registers, in its order. The cluster and broker
/// topics carry INHERIT|READ|WRITE (`clusterTopicEnable`/`brokerTopicEnable` default true);
/// the cluster topic keeps TopicConfig's default 16 queues.
const SYSTEM_TOPICS: &[SystemTopicSpec] = &[
    spec(
        SpecName::Fixed(SELF_TEST_TOPIC),
        SpecQueues::Fixed(1),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Fixed(AUTO_CREATE_TOPIC_KEY_TOPIC),
        SpecQueues::DefaultTopicQueueNums,
        RWI,
        SpecWhen::AutoCreateTopicEnabled,
    ),
    spec(
        SpecName::Fixed(BENCHMARK_TOPIC),
        SpecQueues::Fixed(1024),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Cluster,
        SpecQueues::Fixed(16),
        RWI,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Broker,
        SpecQueues::Fixed(1),
        RWI,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Fixed(OFFSET_MOVED_EVENT_TOPIC),
        SpecQueues::Fixed(1),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Fixed(SCHEDULE_TOPIC),
        SpecQueues::Fixed(SCHEDULE_TOPIC_QUEUE_NUMS),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Trace,
        SpecQueues::Fixed(1),
        RW,
        SpecWhen::TraceTopicEnabled,
    ),
    spec(
        SpecName::ClusterThen("_REPLY_TOPIC"),
        SpecQueues::Fixed(1),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::ThenCluster("rmq_sys_REVIVE_LOG_"),
        SpecQueues::Fixed(REVIVE_QUEUE_NUMS),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::ThenBroker("rmq_sys_SYNC_BROKER_MEMBER_"),
        SpecQueues::Fixed(1),
        perm::INHERIT,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Fixed(TRANS_HALF_TOPIC),
        SpecQueues::Fixed(1),
        RW,
        SpecWhen::Always,
    ),
    spec(
        SpecName::Fixed(TRANS_OP_HALF_TOPIC),
        SpecQueues::Fixed(1),
        RW,
        SpecWhen::Always,
    ),
];

const _: () = assert!(
    SYSTEM_TOPICS.len() < TOPICS_MAX,
    "system topics must leave room for user topics"
);
const _: () = assert!(
    TOPIC_NAME_LENGTH_MAX < RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX,
    "retry/DLQ names embed a group name, so their limit is the larger one"
);

/// Why a topic operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name is empty, too long, or has characters outside `[%|a-zA-Z0-9_-]`.
    #[error("invalid topic name `{topic}`: {reason}")]
    InvalidName {
        /// The offending name.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The name belongs to a system topic (admin creates only).
    #[error("the topic `{0}` conflicts with a system topic")]
    SystemTopic(String),
    /// The topic does not exist.
    #[error("topic `{0}` does not exist")]
    NotExist(String),
    /// Auto-create was asked for with a template that does not exist.
    #[error("cannot auto-create topic `{topic}`: default topic `{template}` does not exist")]
    TemplateNotExist {
        /// The topic to create.
        topic: String,
        /// The template named by the producer.
        template: String,
    },
    /// The template lacks PERM_INHERIT (or is TBW102 while auto-create is disabled).
    #[error(
        "cannot auto-create topic `{topic}`: default topic `{template}` has no INHERIT permission"
    )]
    NoInheritTemplate {
        /// The topic to create.
        topic: String,
        /// The template named by the producer.
        template: String,
    },
    /// Queue counts or permission out of range.
    #[error("invalid config for topic `{topic}`: {reason}")]
    InvalidConfig {
        /// The topic.
        topic: String,
        /// What is out of range.
        reason: String,
    },
    /// Auto-create refused: the broker holds `autoCreateTopicMax` ordinary topics already.
    #[error(
        "cannot auto-create topic `{topic}`: the broker already holds {limit} topics \
         (autoCreateTopicMax); create it with update-topic"
    )]
    AutoCreateLimit {
        /// The topic that was not created.
        topic: String,
        /// `autoCreateTopicMax`.
        limit: usize,
    },
    /// The table already holds [`TOPICS_MAX`] topics.
    #[error("cannot create topic `{topic}`: the broker already holds {TOPICS_MAX} topics")]
    Limit {
        /// The topic that did not fit.
        topic: String,
    },
    /// Reading or writing `topics.json` failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// Java's topic/group name rule, `^[%|a-zA-Z0-9_-]+$`, checked bytewise.
#[must_use]
pub fn is_legal_name_character(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-')
}

/// Validates a topic name as Java's `TopicValidator.validateTopic`: not blank, only
/// `[%|a-zA-Z0-9_-]`, at most [`TOPIC_NAME_LENGTH_MAX`] characters, or
/// [`RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX`] for `%RETRY%`/`%DLQ%` topics.
///
/// # Errors
/// [`TopicError::InvalidName`] saying which rule failed.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    let invalid = |reason| {
        Err(TopicError::InvalidName {
            topic: topic.to_owned(),
            reason,
        })
    };
    if topic.trim().is_empty() {
        return invalid("the topic name is blank");
    }
    if !topic.bytes().all(is_legal_name_character) {
        return invalid("only ^[%|a-zA-Z0-9_-]+$ is allowed");
    }
    let max = if is_retry_topic(topic) || is_dlq_topic(topic) {
        RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX
    } else {
        TOPIC_NAME_LENGTH_MAX
    };
    // Every accepted byte is ASCII, so bytes == characters here.
    if topic.len() > max {
        return invalid("the topic name is longer than its maximum length");
    }
    Ok(())
}

/// Whether clients may never send to `topic` (PROTOCOL.md §4.1 step 2: NO_PERMISSION).
#[must_use]
pub fn is_send_forbidden_system_topic(topic: &str) -> bool {
    SEND_FORBIDDEN_TOPICS.contains(&topic)
}

/// `%RETRY%<group>`.
#[must_use]
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// `%DLQ%<group>`.
#[must_use]
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// Whether `topic` is a `%RETRY%` topic.
#[must_use]
pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
}

/// Whether `topic` is a `%DLQ%` topic.
#[must_use]
pub fn is_dlq_topic(topic: &str) -> bool {
    topic.starts_with(DLQ_GROUP_TOPIC_PREFIX)
}

/// Whether `queue_id` addresses a queue of `config` (PROTOCOL.md §4.1 step 4: below
/// `max(writeQueueNums, readQueueNums)`; negative ids mean "broker picks" and are not valid
/// here).
#[must_use]
pub fn queue_id_in_range(config: &TopicConfig, queue_id: i32) -> bool {
    queue_id >= 0 && queue_id < config.read_queue_nums.max(config.write_queue_nums)
}

/// Broker facts the table is built from (a subset of `broker.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTableOptions {
    /// `brokerClusterName`: also a system topic.
    pub cluster_name: String,
    /// `brokerName`: also a system topic.
    pub broker_name: String,
    /// `autoCreateTopicEnable`: registers TBW102 with INHERIT.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums`: TBW102's queue count.
    pub default_topic_queue_nums: i32,
    /// `autoCreateTopicMax`: ordinary topics held past which auto-create is refused.
    pub auto_create_topic_max: usize,
    /// `brokerPermission`: masks topic perms in registrations when not read-write.
    pub broker_permission: i32,
    /// `traceTopicEnable` (Java default false): registers the trace topic.
    pub trace_topic_enable: bool,
    /// `msgTraceTopicName`: the trace topic's name (default [`TRACE_TOPIC`]).
    pub trace_topic_name: String,
}

impl TopicTableOptions {
    /// The options of a parsed broker config.
    #[must_use]
    pub fn from_config(config: &BrokerConfig) -> Self {
        Self {
            cluster_name: config.broker_cluster_name.clone(),
            broker_name: config.broker_name.clone(),
            auto_create_topic_enable: config.auto_create_topic_enable,
            default_topic_queue_nums: config.default_topic_queue_nums,
            auto_create_topic_max: config.auto_create_topic_max,
            broker_permission: config.broker_permission,
            trace_topic_enable: config.trace_topic_enable,
            trace_topic_name: config.msg_trace_topic_name.clone(),
        }
    }

    fn spec_name(&self, name: SpecName) -> String {
        match name {
            SpecName::Fixed(fixed) => fixed.to_owned(),
            SpecName::Trace => self.trace_topic_name.clone(),
            SpecName::Cluster => self.cluster_name.clone(),
            SpecName::Broker => self.broker_name.clone(),
            SpecName::ClusterThen(suffix) => format!("{}{suffix}", self.cluster_name),
            SpecName::ThenCluster(prefix) => format!("{prefix}{}", self.cluster_name),
            SpecName::ThenBroker(prefix) => format!("{prefix}{}", self.broker_name),
        }
    }

    fn spec_enabled(&self, when: SpecWhen) -> bool {
        match when {
            SpecWhen::Always => true,
            SpecWhen::AutoCreateTopicEnabled => self.auto_create_topic_enable,
            SpecWhen::TraceTopicEnabled => self.trace_topic_enable,
        }
    }
}

/// Result of a create-if-absent operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// The topic's config (existing or new).
    pub config: TopicConfig,
    /// Whether it was created now (then: persist, broadcast, register with the namesrv).
    pub created: bool,
}

/// An immutable copy of the table, broadcast to every shard ([`Snapshot`]: receivers keep the
/// highest version, the table's `dataVersion.counter`).
pub type TopicSnapshot = Snapshot<TopicConfig>;

/// The JSON key of the entry map in `topics.json` (Java's `TopicConfigSerializeWrapper`).
pub const TOPICS_FILE_KEY: &str = "topicConfigTable";

/// The topic table of one broker. See the module docs for ownership.
#[derive(Debug)]
pub struct TopicTable {
    options: TopicTableOptions,
    topics: Table<TopicConfig>,
    /// Names registered at start (cluster, broker, ... ): system topics beyond the fixed set.
    system_names: BTreeSet<String>,
    /// [`Self::ordinary_count`] at a table version (recounted when the version moved).
    ordinary: std::cell::Cell<Option<(i64, usize)>>,
}

impl HasTable for TopicTable {
    type Entry = TopicConfig;
    const FILE_KEY: &'static str = TOPICS_FILE_KEY;

    fn table(&self) -> &Table<TopicConfig> {
        &self.topics
    }

    fn table_mut(&mut self) -> &mut Table<TopicConfig> {
        &mut self.topics
    }
}

impl TopicTable {
    /// A table holding the system topics Java registers at start (TBW102 only when
    /// auto-create is enabled), at version counter 0.
    #[must_use]
    pub fn new(options: TopicTableOptions, now_ms: i64) -> Self {
        let mut system_names = BTreeSet::new();
        let mut initial = Entries::new();
        for spec in SYSTEM_TOPICS {
            let name = options.spec_name(spec.name);
            // Java marks the name as a system topic even when the topic itself is not created.
            system_names.insert(name.clone());
            if !options.spec_enabled(spec.when) {
                continue;
            }
            let queue_nums = match spec.queues {
                SpecQueues::Fixed(count) => count,
                SpecQueues::DefaultTopicQueueNums => options.default_topic_queue_nums,
            };
            let config = TopicConfig {
                perm: spec.perm,
                read_queue_nums: queue_nums,
                write_queue_nums: queue_nums,
                ..TopicConfig::new(name.clone())
            };
            initial.insert(name, config);
        }
        assert!(initial.len() <= SYSTEM_TOPICS.len());
        Self {
            topics: Table::new(TOPICS_MAX, initial, now_ms),
            system_names,
            options,
            ordinary: std::cell::Cell::new(None),
        }
    }

    /// [`TopicTable::new`], then the topics and version persisted at `path` (Java's
    /// `topics.json`) on top, as Java's `load` does, then the changes journaled since
    /// (`topics.json.journal`). A missing file is a first start.
    ///
    /// # Errors
    /// [`TopicError::Persist`] for an unreadable or corrupt file; [`TopicError::Limit`] if the
    /// files hold more than [`TOPICS_MAX`] topics.
    pub fn load(options: TopicTableOptions, path: &Path, now_ms: i64) -> Result<Self, TopicError> {
        let mut table = Self::new(options, now_ms);
        let file = persist::read_json::<TopicConfigSerializeWrapper>(path)?;
        let file = file.map(|f| (f.data_version, f.topic_config_table));
        let rename = |config: &mut TopicConfig, name: &str| name.clone_into(&mut config.topic_name);
        table.topics.load(path, file, rename).map_err(|e| match e {
            LoadError::Persist(err) => TopicError::Persist(err),
            LoadError::Full(full) => TopicError::Limit { topic: full.name },
        })?;
        Ok(table)
    }

    /// Writes the whole table to `path` and empties its journal ([`journal::fold_blocking`]).
    ///
    /// # Errors
    /// [`TopicError::Persist`].
    pub fn save(&self, path: &Path) -> Result<(), TopicError> {
        journal::fold_blocking(path, &self.topics.file(TOPICS_FILE_KEY))?;
        Ok(())
    }

    /// The options the table was built with.
    #[must_use]
    pub fn options(&self) -> &TopicTableOptions {
        &self.options
    }

    /// Sets `brokerPermission` (UPDATE_BROKER_CONFIG): later registrations mask topic perms
    /// with it.
    pub fn set_broker_permission(&mut self, perm: i32) {
        assert!(
            (0..=7).contains(&perm),
            "brokerPermission {perm} out of range"
        );
        self.options.broker_permission = perm;
    }

    /// The current version.
    #[must_use]
    pub fn version(&self) -> DataVersion {
        self.topics.data_version()
    }

    /// A topic's config.
    #[must_use]
    pub fn get(&self, topic: &str) -> Option<&TopicConfig> {
        self.topics.get(topic)
    }

    /// A topic's config, or [`TopicError::NotExist`].
    ///
    /// # Errors
    /// [`TopicError::NotExist`].
    pub fn require(&self, topic: &str) -> Result<&TopicConfig, TopicError> {
        self.get(topic)
            .ok_or_else(|| TopicError::NotExist(topic.to_owned()))
    }

    /// Whether the topic exists.
    #[must_use]
    pub fn contains(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }

    /// Number of topics.
    #[must_use]
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Whether the table is empty (never, after [`TopicTable::new`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// All topics, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &TopicConfig)> {
        self.topics.iter()
    }

    /// Topics that are neither system nor retry/DLQ topics: what `autoCreateTopicMax` counts.
    /// Cached per table version, so refusing auto-creates at the cap costs no scan.
    #[must_use]
    pub fn ordinary_count(&self) -> usize {
        let version = self.version().counter;
        if let Some((at, count)) = self.ordinary.get() {
            if at == version {
                return count;
            }
        }
        let count = self
            .topics
            .iter()
            .filter(|(name, _)| {
                !self.is_system_topic(name) && !is_retry_topic(name) && !is_dlq_topic(name)
            })
            .count();
        self.ordinary.set(Some((version, count)));
        count
    }

    /// Java `TopicValidator.isSystemTopic`: a fixed system name, an `rmq_sys_` name, or one of
    /// the names this broker registered at start (cluster, broker, reply, ...).
    #[must_use]
    pub fn is_system_topic(&self, topic: &str) -> bool {
        FIXED_SYSTEM_TOPICS.contains(&topic)
            || topic.starts_with(SYSTEM_TOPIC_PREFIX)
            || self.system_names.contains(topic)
    }

    /// The checks UPDATE_AND_CREATE_TOPIC makes on a name before [`Self::create_or_update`].
    ///
    /// # Errors
    /// [`TopicError::InvalidName`], or [`TopicError::SystemTopic`].
    pub fn check_admin_topic(&self, topic: &str) -> Result<(), TopicError> {
        validate_topic_name(topic)?;
        if self.is_system_topic(topic) {
            return Err(TopicError::SystemTopic(topic.to_owned()));
        }
        Ok(())
    }

    /// Creates or replaces a topic (UPDATE_AND_CREATE_TOPIC, and internal creates). Returns
    /// whether anything changed; an identical config leaves the version alone.
    ///
    /// # Errors
    /// [`TopicError::InvalidName`]; [`TopicError::InvalidConfig`] for queue counts outside
    /// `1..=QUEUE_NUMS_MAX` or an invalid perm; [`TopicError::Limit`] for a new topic when
    /// the table is full.
    pub fn create_or_update(
        &mut self,
        config: TopicConfig,
        now_ms: i64,
    ) -> Result<bool, TopicError> {
        validate_topic_name(&config.topic_name)?;
        validate_queues_and_perm(&config)?;
        if self.topics.get(&config.topic_name) == Some(&config) {
            return Ok(false);
        }
        self.insert_counted(config, now_ms)?;
        Ok(true)
    }

    /// Deletes a topic (DELETE_TOPIC_IN_BROKER). Returns the removed config; the version moves
    /// only when something was removed.
    pub fn delete(&mut self, topic: &str, now_ms: i64) -> Option<TopicConfig> {
        self.topics.remove(topic, now_ms)
    }

    /// Makes the table hold exactly `topics` (a slave applying its master's
    /// GET_ALL_TOPIC_CONFIG, Java `SlaveSynchronize.syncTopicConfig`): topics absent from it
    /// are deleted first (so a full table has room), then each one is created or updated
    /// under its key's name with the checks of [`Self::create_or_update`]; one that fails them
    /// is refused and the rest applied. Identical entries leave the version alone.
    pub fn replace_with(
        &mut self,
        topics: BTreeMap<String, TopicConfig>,
        now_ms: i64,
    ) -> ReplaceOutcome {
        let mut outcome = ReplaceOutcome::default();
        let absent: Vec<String> = self
            .topics
            .iter()
            .filter(|(name, _)| !topics.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in absent {
            self.delete(&name, now_ms);
            outcome.deleted.push(name);
        }
        for (name, mut config) in topics {
            config.topic_name.clone_from(&name);
            match self.create_or_update(config, now_ms) {
                Ok(true) => outcome.written.push(name),
                Ok(false) => {}
                Err(err) => outcome.refused.push((name, err.to_string())),
            }
        }
        outcome
    }

    /// Send-path auto-create (PROTOCOL.md §4.1 step 3). If `topic` exists it is returned
    /// unchanged. Otherwise the template must exist and carry PERM_INHERIT (TBW102 counts as
    /// not inheriting while `autoCreateTopicEnable` is off, as in Java); the new topic gets
    /// `min(requested_queue_nums, template.writeQueueNums)` read and write queues, the
    /// template's perm minus INHERIT and its filter type.
    ///
    /// # Errors
    /// [`TopicError::InvalidName`]; [`TopicError::TemplateNotExist`];
    /// [`TopicError::NoInheritTemplate`]; [`TopicError::InvalidConfig`] when the queue count
    /// comes out below 1; [`TopicError::Limit`].
    pub fn auto_create_from_template(
        &mut self,
        topic: &str,
        template_name: &str,
        requested_queue_nums: i32,
        now_ms: i64,
    ) -> Result<Ensured, TopicError> {
        if let Some(existing) = self.topics.get(topic) {
            return Ok(existing_topic(existing));
        }
        validate_topic_name(topic)?;
        let template =
            self.topics
                .get(template_name)
                .ok_or_else(|| TopicError::TemplateNotExist {
                    topic: topic.to_owned(),
                    template: template_name.to_owned(),
                })?;
        let template_disabled =
            template_name == AUTO_CREATE_TOPIC_KEY_TOPIC && !self.options.auto_create_topic_enable;
        if template_disabled || !perm::is_inherited(template.perm) {
            return Err(TopicError::NoInheritTemplate {
                topic: topic.to_owned(),
                template: template_name.to_owned(),
            });
        }
        let queue_nums = requested_queue_nums
            .min(template.write_queue_nums)
            .min(QUEUE_NUMS_MAX);
        let config = TopicConfig {
            perm: template.perm & !perm::INHERIT,
            read_queue_nums: queue_nums,
            write_queue_nums: queue_nums,
            topic_filter_type: template.topic_filter_type,
            ..TopicConfig::new(topic)
        };
        assert!(
            !perm::is_inherited(config.perm),
            "auto-created topics never inherit"
        );
        validate_queues_and_perm(&config)?;
        let limit = self.options.auto_create_topic_max;
        if self.ordinary_count() >= limit {
            return Err(TopicError::AutoCreateLimit {
                topic: topic.to_owned(),
                limit,
            });
        }
        self.create_absent(config, now_ms)
    }

    /// Creates `%RETRY%<group>` with `retry_queue_nums` queues and perm 6 if it is missing
    /// (heartbeat and send-back paths, PROTOCOL.md §4.6, §7.1).
    ///
    /// # Errors
    /// [`TopicError::InvalidName`] (group name too long for a retry topic);
    /// [`TopicError::InvalidConfig`]; [`TopicError::Limit`].
    pub fn create_retry_topic(
        &mut self,
        group: &str,
        retry_queue_nums: i32,
        now_ms: i64,
    ) -> Result<Ensured, TopicError> {
        self.ensure_group_topic(retry_topic(group), retry_queue_nums, now_ms)
    }

    /// Creates `%DLQ%<group>` with one queue and perm 6 if it is missing.
    ///
    /// # Errors
    /// As [`Self::create_retry_topic`].
    pub fn create_dlq_topic(&mut self, group: &str, now_ms: i64) -> Result<Ensured, TopicError> {
        self.ensure_group_topic(dlq_topic(group), DLQ_QUEUE_NUMS, now_ms)
    }

    /// Creates `TRANS_CHECK_MAX_TIME_TOPIC` (one queue, perm 6) if it is missing: where half
    /// messages that used up their check-backs go (Java `createTopicOfTranCheckMaxTime`).
    ///
    /// # Errors
    /// As [`Self::create_retry_topic`].
    pub fn create_trans_check_max_time_topic(
        &mut self,
        now_ms: i64,
    ) -> Result<Ensured, TopicError> {
        self.ensure_group_topic(TRANS_CHECK_MAX_TIME_TOPIC.to_owned(), 1, now_ms)
    }

    fn ensure_group_topic(
        &mut self,
        topic: String,
        queue_nums: i32,
        now_ms: i64,
    ) -> Result<Ensured, TopicError> {
        if let Some(existing) = self.topics.get(&topic) {
            return Ok(existing_topic(existing));
        }
        validate_topic_name(&topic)?;
        let config = TopicConfig {
            perm: perm::READ_WRITE,
            read_queue_nums: queue_nums,
            write_queue_nums: queue_nums,
            ..TopicConfig::new(topic)
        };
        validate_queues_and_perm(&config)?;
        self.create_absent(config, now_ms)
    }

    /// Whether `queue_id` is a valid queue of `topic` ([`queue_id_in_range`]); false for an
    /// unknown topic.
    #[must_use]
    pub fn is_valid_queue_id(&self, topic: &str, queue_id: i32) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|config| queue_id_in_range(config, queue_id))
    }

    /// The whole table as it is, for GET_ALL_TOPIC_CONFIG (21; Java returns the table
    /// unmasked, unlike a registration).
    #[must_use]
    pub fn to_wrapper(&self) -> TopicConfigAndMappingSerializeWrapper {
        TopicConfigAndMappingSerializeWrapper {
            data_version: self.topics.data_version(),
            topic_config_table: self
                .topics
                .iter()
                .map(|(name, config)| (name.clone(), config.clone()))
                .collect(),
            ..TopicConfigAndMappingSerializeWrapper::default()
        }
    }

    /// The whole table for REGISTER_BROKER. When `brokerPermission` is not read-write, every
    /// topic's perm is masked by it, as Java's `registerBrokerAll` does.
    #[must_use]
    pub fn to_register_wrapper(&self) -> TopicConfigAndMappingSerializeWrapper {
        self.wrapper_of(self.topics.values())
    }

    /// An incremental REGISTER_BROKER body: only the named topics (unknown names are skipped),
    /// with the current version.
    #[must_use]
    pub fn to_register_wrapper_for(
        &self,
        topics: &[&str],
    ) -> TopicConfigAndMappingSerializeWrapper {
        self.wrapper_of(topics.iter().filter_map(|name| self.topics.get(name)))
    }

    fn wrapper_of<'a>(
        &self,
        configs: impl Iterator<Item = &'a TopicConfig>,
    ) -> TopicConfigAndMappingSerializeWrapper {
        let broker_perm = self.options.broker_permission;
        let mask = !(perm::is_readable(broker_perm) && perm::is_writeable(broker_perm));
        let topic_config_table = configs
            .map(|config| {
                let mut config = config.clone();
                if mask {
                    config.perm &= broker_perm;
                }
                (config.topic_name.clone(), config)
            })
            .collect();
        TopicConfigAndMappingSerializeWrapper {
            data_version: self.topics.data_version(),
            topic_config_table,
            ..TopicConfigAndMappingSerializeWrapper::default()
        }
    }

    /// An immutable copy for broadcasting. Cached until the next change, so repeated calls
    /// without a change return the same `Arc`; O(1) (the persistent map is shared).
    pub fn snapshot(&self) -> Arc<TopicSnapshot> {
        self.topics.snapshot()
    }

    fn create_absent(&mut self, config: TopicConfig, now_ms: i64) -> Result<Ensured, TopicError> {
        assert!(!self.topics.contains(&config.topic_name));
        self.insert_counted(config.clone(), now_ms)?;
        Ok(Ensured {
            config,
            created: true,
        })
    }

    /// Inserts or replaces under the [`TOPICS_MAX`] limit and bumps the version.
    fn insert_counted(&mut self, config: TopicConfig, now_ms: i64) -> Result<(), TopicError> {
        let name = config.topic_name.clone();
        self.topics
            .put(name, config, now_ms)
            .map_err(|full| TopicError::Limit { topic: full.name })
    }
}

fn existing_topic(config: &TopicConfig) -> Ensured {
    Ensured {
        config: config.clone(),
        created: false,
    }
}

fn validate_queues_and_perm(config: &TopicConfig) -> Result<(), TopicError> {
    let invalid = |reason: String| {
        Err(TopicError::InvalidConfig {
            topic: config.topic_name.clone(),
            reason,
        })
    };
    for (what, count) in [
        ("readQueueNums", config.read_queue_nums),
        ("writeQueueNums", config.write_queue_nums),
    ] {
        if !(1..=QUEUE_NUMS_MAX).contains(&count) {
            return invalid(format!("{what} {count} is outside 1..={QUEUE_NUMS_MAX}"));
        }
    }
    if !perm::is_valid(config.perm) {
        return invalid(format!("perm {} is not a valid permission", config.perm));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::body::topic::TopicFilterType;

    use super::*;
    use crate::tables::persist::test_dir;

    fn options(auto_create: bool) -> TopicTableOptions {
        TopicTableOptions {
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            auto_create_topic_enable: auto_create,
            default_topic_queue_nums: 8,
            auto_create_topic_max: crate::limits::AUTO_CREATE_TOPICS_DEFAULT,
            broker_permission: perm::READ_WRITE,
            trace_topic_enable: false,
            trace_topic_name: TRACE_TOPIC.to_owned(),
        }
    }

    fn table() -> TopicTable {
        TopicTable::new(options(true), 1_000)
    }

    #[test]
    fn topic_name_validation_table() {
        let long =
            |prefix: &str, total: usize| format!("{prefix}{}", "a".repeat(total - prefix.len()));
        let cases: Vec<(String, bool)> = vec![
            ("T".into(), true),
            ("A-b_c%|09".into(), true),
            ("".into(), false),
            ("   ".into(), false),
            ("a.b".into(), false),
            ("a b".into(), false),
            ("topic/x".into(), false),
            ("é".into(), false),
            ("主题".into(), false),
            (long("", 127), true),
            (long("", 128), false),
            (long("%RETRY%", 255), true),
            (long("%RETRY%", 256), false),
            (long("%DLQ%", 255), true),
            (long("%DLQ%", 256), false),
            (long("%RETRX%", 128), false),
            (long("x%RETRY%", 128), false),
        ];
        for (name, ok) in cases {
            let result = validate_topic_name(&name);
            assert_eq!(result.is_ok(), ok, "{name:?} -> {result:?}");
            if !ok {
                assert!(matches!(result, Err(TopicError::InvalidName { .. })));
            }
        }
    }

    #[test]
    fn replace_with_takes_the_other_table_whole() {
        let mut slave = table();
        slave
            .create_or_update(TopicConfig::new("OnlyOnSlave"), 2_000)
            .expect("create");
        slave
            .create_or_update(TopicConfig::new("Both"), 2_000)
            .expect("create");
        let mut master = table();
        let both = TopicConfig {
            read_queue_nums: 4,
            write_queue_nums: 4,
            ..TopicConfig::new("Both")
        };
        master
            .create_or_update(both.clone(), 3_000)
            .expect("create");
        master
            .create_or_update(TopicConfig::new("OnlyOnMaster"), 3_000)
            .expect("create");
        let mut copy = master.to_wrapper().topic_config_table;
        // A key and its entry's name disagree: the key wins (as Java's loader).
        copy.insert("Renamed".into(), TopicConfig::new("Other"));
        copy.insert("bad.name".into(), TopicConfig::new("bad.name"));
        let before = slave.version().counter;
        let outcome = slave.replace_with(copy, 4_000);
        assert_eq!(outcome.deleted, vec!["OnlyOnSlave".to_owned()]);
        assert_eq!(
            outcome.written,
            vec![
                "Both".to_owned(),
                "OnlyOnMaster".to_owned(),
                "Renamed".to_owned()
            ]
        );
        assert_eq!(outcome.refused.len(), 1);
        assert_eq!(outcome.refused[0].0, "bad.name");
        assert!(outcome.changed());
        assert!(
            slave.version().counter > before,
            "the slave's own version moves"
        );
        assert_eq!(slave.get("Both"), Some(&both));
        assert_eq!(
            slave.get("Renamed").map(|c| c.topic_name.as_str()),
            Some("Renamed")
        );
        assert!(!slave.contains("OnlyOnSlave"));
        let mut expected: Vec<&String> = master.iter().map(|(name, _)| name).collect();
        expected.push(&outcome.written[2]);
        expected.sort();
        assert_eq!(
            slave.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            expected
        );
        let version = slave.version();
        let mut again = master.to_wrapper().topic_config_table;
        again.insert("Renamed".into(), TopicConfig::new("Renamed"));
        let unchanged = slave.replace_with(again, 5_000);
        assert!(!unchanged.changed(), "{unchanged:?}");
        assert_eq!(
            slave.version(),
            version,
            "an identical copy leaves the version alone"
        );
    }

    #[test]
    fn get_all_topic_config_is_unmasked_unlike_a_registration() {
        let mut read_only = TopicTable::new(
            TopicTableOptions {
                broker_permission: perm::READ,
                ..options(true)
            },
            1_000,
        );
        read_only
            .create_or_update(TopicConfig::new("T"), 2_000)
            .expect("create");
        assert_eq!(
            read_only.to_wrapper().topic_config_table["T"].perm,
            perm::READ_WRITE
        );
        assert_eq!(
            read_only.to_register_wrapper().topic_config_table["T"].perm,
            perm::READ
        );
    }

    #[test]
    fn options_from_broker_config() {
        let config = BrokerConfig {
            broker_cluster_name: "C".into(),
            broker_name: "b".into(),
            auto_create_topic_enable: false,
            default_topic_queue_nums: 4,
            broker_permission: perm::READ,
            ..BrokerConfig::default()
        };
        let options = TopicTableOptions::from_config(&config);
        assert_eq!(
            options,
            TopicTableOptions {
                cluster_name: "C".into(),
                broker_name: "b".into(),
                auto_create_topic_enable: false,
                default_topic_queue_nums: 4,
                auto_create_topic_max: crate::limits::AUTO_CREATE_TOPICS_DEFAULT,
                broker_permission: perm::READ,
                trace_topic_enable: false,
                trace_topic_name: TRACE_TOPIC.to_owned(),
            }
        );
    }

    #[test]
    fn send_forbidden_and_system_topics() {
        let table = table();
        for forbidden in [
            SCHEDULE_TOPIC,
            TRANS_HALF_TOPIC,
            TRANS_OP_HALF_TOPIC,
            SELF_TEST_TOPIC,
        ] {
            assert!(is_send_forbidden_system_topic(forbidden), "{forbidden}");
            assert!(table.is_system_topic(forbidden));
        }
        for allowed in [AUTO_CREATE_TOPIC_KEY_TOPIC, TRACE_TOPIC, "T", "%RETRY%G"] {
            assert!(!is_send_forbidden_system_topic(allowed), "{allowed}");
        }
        for system in [
            "DefaultCluster",
            "broker-a",
            "DefaultCluster_REPLY_TOPIC",
            "rmq_sys_x",
            "TBW102",
        ] {
            assert!(table.is_system_topic(system), "{system}");
            assert!(matches!(
                table.check_admin_topic(system),
                Err(TopicError::SystemTopic(_))
            ));
        }
        assert!(!table.is_system_topic("T"));
        assert!(table.check_admin_topic("T").is_ok());
        assert!(matches!(
            table.check_admin_topic("a.b"),
            Err(TopicError::InvalidName { .. })
        ));
    }

    #[test]
    fn system_topics_as_java_registers_them() {
        let table = table();
        let tbw = table
            .get(AUTO_CREATE_TOPIC_KEY_TOPIC)
            .expect("TBW102 with auto-create");
        assert_eq!(tbw.perm, 7);
        assert_eq!((tbw.read_queue_nums, tbw.write_queue_nums), (8, 8));
        let schedule = table.get(SCHEDULE_TOPIC).expect("schedule topic");
        assert_eq!(schedule.write_queue_nums, 18);
        assert_eq!(schedule.perm, 6);
        let cluster = table.get("DefaultCluster").expect("cluster topic");
        assert_eq!((cluster.perm, cluster.write_queue_nums), (7, 16));
        let broker = table.get("broker-a").expect("broker topic");
        assert_eq!((broker.perm, broker.write_queue_nums), (7, 1));
        let sync = table
            .get("rmq_sys_SYNC_BROKER_MEMBER_broker-a")
            .expect("sync topic");
        assert_eq!(sync.perm, perm::INHERIT);
        for one_queue in [
            SELF_TEST_TOPIC,
            OFFSET_MOVED_EVENT_TOPIC,
            TRANS_HALF_TOPIC,
            TRANS_OP_HALF_TOPIC,
            "DefaultCluster_REPLY_TOPIC",
        ] {
            assert_eq!(
                table.get(one_queue).map(|c| c.write_queue_nums),
                Some(1),
                "{one_queue}"
            );
        }
        assert_eq!(
            table
                .get("rmq_sys_REVIVE_LOG_DefaultCluster")
                .map(|c| c.write_queue_nums),
            Some(8)
        );
        assert_eq!(
            table.get(BENCHMARK_TOPIC).map(|c| c.write_queue_nums),
            Some(1024)
        );
        assert!(
            table.get(TRACE_TOPIC).is_none(),
            "trace topic off by default"
        );
        assert_eq!(table.version().counter, 0);
        assert_eq!(table.version().timestamp, 1_000);

        let traced = TopicTable::new(
            TopicTableOptions {
                trace_topic_enable: true,
                trace_topic_name: TRACE_TOPIC.to_owned(),
                ..options(true)
            },
            0,
        );
        assert!(traced.contains(TRACE_TOPIC));
        assert_eq!(traced.len(), table.len() + 1);

        let no_auto = TopicTable::new(options(false), 0);
        assert!(no_auto.get(AUTO_CREATE_TOPIC_KEY_TOPIC).is_none());
        assert!(no_auto.is_system_topic(AUTO_CREATE_TOPIC_KEY_TOPIC));
        assert_eq!(no_auto.len(), table.len() - 1);
    }

    #[test]
    fn auto_create_takes_min_queues_and_drops_inherit() {
        let mut table = table();
        let created = table
            .auto_create_from_template("T", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 2_000)
            .expect("created");
        assert!(created.created);
        assert_eq!(
            (
                created.config.read_queue_nums,
                created.config.write_queue_nums
            ),
            (4, 4)
        );
        assert_eq!(created.config.perm, 6);
        assert_eq!(table.get("T"), Some(&created.config));
        assert_eq!(table.version().counter, 1);
        assert_eq!(table.version().timestamp, 2_000);

        let capped = table
            .auto_create_from_template("Big", AUTO_CREATE_TOPIC_KEY_TOPIC, 64, 2_001)
            .expect("created");
        assert_eq!(capped.config.write_queue_nums, 8, "capped by the template");

        let again = table
            .auto_create_from_template("T", AUTO_CREATE_TOPIC_KEY_TOPIC, 16, 3_000)
            .expect("existing");
        assert!(!again.created);
        assert_eq!(again.config.write_queue_nums, 4);
        assert_eq!(table.version().counter, 2, "no bump for an existing topic");
    }

    #[test]
    fn auto_create_stops_at_its_cap_while_admin_creation_goes_on() {
        let mut table = TopicTable::new(
            TopicTableOptions {
                auto_create_topic_max: 3,
                ..options(true)
            },
            1_000,
        );
        assert_eq!(table.ordinary_count(), 0, "system topics are not counted");
        table
            .create_retry_topic("G", 1, 1_001)
            .expect("retry topic");
        table
            .create_or_update(TopicConfig::new("Admin1"), 1_002)
            .expect("admin");
        for name in ["A1", "A2"] {
            let made = table
                .auto_create_from_template(name, AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 1_003)
                .expect("under the cap");
            assert!(made.created);
        }
        assert_eq!(table.ordinary_count(), 3, "retry topics are not counted");
        let refused = table.auto_create_from_template("A3", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 1_004);
        assert!(
            matches!(refused, Err(TopicError::AutoCreateLimit { limit: 3, .. })),
            "{refused:?}"
        );
        // Existing topics are still found, and admin creation is not capped by it.
        assert!(table
            .auto_create_from_template("A1", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 1_005)
            .is_ok());
        table
            .create_or_update(TopicConfig::new("Admin2"), 1_006)
            .expect("admin past the auto-create cap");
        table.delete("A1", 1_007);
        table.delete("Admin1", 1_007);
        table.delete("Admin2", 1_007);
        assert!(
            table
                .auto_create_from_template("A3", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 1_008)
                .is_ok(),
            "room again after deletes"
        );
    }

    #[test]
    fn auto_create_copies_filter_type_of_custom_template() {
        let mut table = table();
        let template = TopicConfig {
            perm: 7,
            read_queue_nums: 2,
            write_queue_nums: 2,
            topic_filter_type: TopicFilterType::MultiTag,
            ..TopicConfig::new("Template")
        };
        table.create_or_update(template, 5).expect("template");
        let created = table
            .auto_create_from_template("X", "Template", 4, 6)
            .expect("created");
        assert_eq!(created.config.topic_filter_type, TopicFilterType::MultiTag);
        assert_eq!(created.config.write_queue_nums, 2);
        assert_eq!(created.config.perm, 6);
    }

    #[test]
    fn auto_create_refusals() {
        let mut table = table();
        let missing = table.auto_create_from_template("T", "NoSuch", 4, 1);
        assert!(
            matches!(missing, Err(TopicError::TemplateNotExist { .. })),
            "{missing:?}"
        );
        table
            .create_or_update(TopicConfig::new("Plain"), 1)
            .expect("plain");
        let plain = table.auto_create_from_template("T", "Plain", 4, 1);
        assert!(
            matches!(plain, Err(TopicError::NoInheritTemplate { .. })),
            "{plain:?}"
        );
        let bad_name = table.auto_create_from_template("a.b", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 1);
        assert!(matches!(bad_name, Err(TopicError::InvalidName { .. })));
        let zero = table.auto_create_from_template("Z", AUTO_CREATE_TOPIC_KEY_TOPIC, 0, 1);
        assert!(
            matches!(zero, Err(TopicError::InvalidConfig { .. })),
            "{zero:?}"
        );
        assert!(!table.contains("T") && !table.contains("Z"));

        // A TBW102 loaded from an older run does not inherit while auto-create is off.
        let mut no_auto = TopicTable::new(options(false), 0);
        let tbw = TopicConfig {
            perm: 7,
            ..TopicConfig::new(AUTO_CREATE_TOPIC_KEY_TOPIC)
        };
        no_auto.create_or_update(tbw, 1).expect("persisted TBW102");
        let refused = no_auto.auto_create_from_template("T", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 2);
        assert!(
            matches!(refused, Err(TopicError::NoInheritTemplate { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn create_or_update_versions_and_validation() {
        let mut table = table();
        let config = TopicConfig {
            read_queue_nums: 4,
            write_queue_nums: 4,
            ..TopicConfig::new("T")
        };
        assert!(table.create_or_update(config.clone(), 10).expect("create"));
        assert_eq!(table.version().counter, 1);
        assert!(!table.create_or_update(config.clone(), 11).expect("same"));
        assert_eq!(table.version().counter, 1, "identical config: no bump");
        let wider = TopicConfig {
            write_queue_nums: 8,
            ..config
        };
        assert!(table.create_or_update(wider, 12).expect("update"));
        assert_eq!(
            table.version(),
            DataVersion {
                counter: 2,
                state_version: 0,
                timestamp: 12
            }
        );

        for bad in [
            TopicConfig {
                read_queue_nums: 0,
                ..TopicConfig::new("B")
            },
            TopicConfig {
                write_queue_nums: QUEUE_NUMS_MAX + 1,
                ..TopicConfig::new("B")
            },
            TopicConfig {
                perm: 8,
                ..TopicConfig::new("B")
            },
            TopicConfig {
                perm: -1,
                ..TopicConfig::new("B")
            },
        ] {
            let result = table.create_or_update(bad, 13);
            assert!(
                matches!(result, Err(TopicError::InvalidConfig { .. })),
                "{result:?}"
            );
        }
        let unnamed = table.create_or_update(TopicConfig::default(), 13);
        assert!(matches!(unnamed, Err(TopicError::InvalidName { .. })));
        assert_eq!(table.version().counter, 2);
    }

    #[test]
    fn delete_bumps_only_when_present() {
        let mut table = table();
        table
            .create_or_update(TopicConfig::new("T"), 1)
            .expect("create");
        assert_eq!(
            table.delete("T", 2).map(|c| c.topic_name),
            Some("T".to_owned())
        );
        assert_eq!(table.version().counter, 2);
        assert_eq!(table.delete("T", 3), None);
        assert_eq!(table.version().counter, 2);
        assert!(matches!(table.require("T"), Err(TopicError::NotExist(_))));
    }

    #[test]
    fn retry_and_dlq_topics() {
        let mut table = table();
        let retry = table.create_retry_topic("G", 1, 5).expect("retry");
        assert!(retry.created);
        assert_eq!(retry.config.topic_name, "%RETRY%G");
        assert_eq!((retry.config.perm, retry.config.write_queue_nums), (6, 1));
        assert!(!table.create_retry_topic("G", 3, 6).expect("exists").created);
        let dlq = table.create_dlq_topic("G", 7).expect("dlq");
        assert_eq!(dlq.config.topic_name, "%DLQ%G");
        assert_eq!(
            (dlq.config.perm, dlq.config.read_queue_nums),
            (6, DLQ_QUEUE_NUMS)
        );
        assert_eq!(table.version().counter, 2);
        assert!(is_retry_topic("%RETRY%G") && is_dlq_topic("%DLQ%G"));
        assert!(!is_retry_topic("G") && !is_dlq_topic("%RETRY%G"));

        let too_long = "g".repeat(RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX);
        assert!(matches!(
            table.create_retry_topic(&too_long, 1, 8),
            Err(TopicError::InvalidName { .. })
        ));
        assert!(matches!(
            table.create_retry_topic("H", 0, 8),
            Err(TopicError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn queue_id_checks() {
        let mut table = table();
        let config = TopicConfig {
            read_queue_nums: 8,
            write_queue_nums: 4,
            ..TopicConfig::new("T")
        };
        table.create_or_update(config, 1).expect("create");
        assert!(table.is_valid_queue_id("T", 0));
        assert!(table.is_valid_queue_id("T", 7), "below max(read, write)");
        assert!(!table.is_valid_queue_id("T", 8));
        assert!(!table.is_valid_queue_id("T", -1));
        assert!(!table.is_valid_queue_id("Unknown", 0));
    }

    #[test]
    fn register_wrapper_masks_perm_for_a_read_only_broker() {
        let mut table = table();
        table
            .create_or_update(TopicConfig::new("T"), 3)
            .expect("create");
        let wrapper = table.to_register_wrapper();
        assert_eq!(wrapper.data_version, table.version());
        assert_eq!(wrapper.topic_config_table.len(), table.len());
        assert_eq!(wrapper.topic_config_table["TBW102"].perm, 7);

        let read_only = TopicTable::new(
            TopicTableOptions {
                broker_permission: perm::READ,
                ..options(true)
            },
            0,
        );
        let masked = read_only.to_register_wrapper();
        assert_eq!(masked.topic_config_table["TBW102"].perm, perm::READ);
        assert_eq!(masked.topic_config_table[SCHEDULE_TOPIC].perm, perm::READ);

        let partial = table.to_register_wrapper_for(&["T", "Missing"]);
        assert_eq!(partial.topic_config_table.keys().collect::<Vec<_>>(), ["T"]);
        assert_eq!(partial.data_version, table.version());
    }

    #[test]
    fn snapshot_is_cached_until_a_change() {
        let mut table = table();
        let first = table.snapshot();
        assert!(Arc::ptr_eq(&first, &table.snapshot()));
        assert_eq!(first.len(), table.len());
        table
            .create_or_update(TopicConfig::new("T"), 9)
            .expect("create");
        let second = table.snapshot();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.supersedes(&first));
        assert!(!first.supersedes(&second));
        assert_eq!(second.get("T").map(|c| c.perm), Some(6));
        assert!(first.get("T").is_none(), "old snapshots never change");
        assert_eq!(
            second.version(),
            u64::try_from(table.version().counter).expect("positive")
        );
        assert_eq!(second.iter().count(), second.len());
        assert!(!second.is_empty());
    }

    #[test]
    fn persistence_round_trip_in_java_layout() {
        let dir = test_dir("topics-round-trip");
        let path = dir.join("config").join("topics.json");
        let mut table = table();
        let config = TopicConfig {
            read_queue_nums: 3,
            write_queue_nums: 3,
            order: true,
            topic_filter_type: TopicFilterType::MultiTag,
            ..TopicConfig::new("T")
        };
        table.create_or_update(config.clone(), 77).expect("create");
        table.save(&path).expect("save");

        let text = std::fs::read_to_string(&path).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json["dataVersion"]["counter"], 1);
        assert_eq!(
            json["topicConfigTable"]["T"]["topicFilterType"],
            "MULTI_TAG"
        );

        let loaded = TopicTable::load(options(true), &path, 99).expect("load");
        assert_eq!(loaded.get("T"), Some(&config));
        assert_eq!(loaded.version(), table.version());
        assert_eq!(loaded.len(), table.len());

        let fresh =
            TopicTable::load(options(true), &dir.join("absent.json"), 5).expect("first start");
        assert_eq!(fresh.len(), table.len() - 1);
        assert_eq!(fresh.version().counter, 0);
    }

    #[test]
    fn load_reads_a_java_written_file() {
        let dir = test_dir("topics-java");
        let path = dir.join("topics.json");
        let java = r#"{"dataVersion":{"counter":41,"stateVersion":0,"timestamp":1700000000000},
            "topicConfigTable":{"J":{"order":false,"perm":6,"readQueueNums":4,
            "topicFilterType":"SINGLE_TAG","topicName":"J","topicSysFlag":0,"writeQueueNums":4}}}"#;
        std::fs::write(&path, java).expect("write");
        let loaded = TopicTable::load(options(true), &path, 0).expect("load");
        assert_eq!(loaded.version().counter, 41);
        assert_eq!(loaded.get("J").map(|c| c.write_queue_nums), Some(4));
        std::fs::write(&path, "{\"topicConfigTable\":").expect("corrupt");
        assert!(matches!(
            TopicTable::load(options(true), &path, 0),
            Err(TopicError::Persist(_))
        ));
    }

    #[test]
    fn limit_refuses_topic_beyond_max() {
        let mut table = table();
        let mut index = 0;
        while table.len() < TOPICS_MAX {
            table
                .create_or_update(TopicConfig::new(format!("t{index}")), 1)
                .expect("below limit");
            index += 1;
        }
        let refused = table.create_or_update(TopicConfig::new("one-more"), 2);
        assert!(
            matches!(refused, Err(TopicError::Limit { .. })),
            "{refused:?}"
        );
        let auto = table.auto_create_from_template("auto", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 2);
        assert!(
            matches!(auto, Err(TopicError::AutoCreateLimit { .. })),
            "the auto-create cap is below the table's"
        );
        assert!(matches!(
            table.create_retry_topic("G", 1, 2),
            Err(TopicError::Limit { .. })
        ));
        // Updating an existing topic still works at the limit.
        let update = TopicConfig {
            perm: 4,
            ..TopicConfig::new("t0")
        };
        assert!(table.create_or_update(update, 3).expect("update at limit"));
        assert_eq!(table.len(), TOPICS_MAX);
    }
}
