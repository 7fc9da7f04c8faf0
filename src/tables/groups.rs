//! Subscription-group configuration (PROTOCOL.md §4.6, §4.9, §5.8): group name ->
//! [`SubscriptionGroupConfig`] with Java's defaults, find-or-auto-create on heartbeat and
//! pull, admin update/delete, the system groups Java registers at start, and
//! `subscriptionGroup.json`.
//!
//! Owned by the control shard, which applies every change and broadcasts an immutable
//! [`GroupSnapshot`]; other shards only read snapshots. Pure and synchronous: time comes in as
//! `now_ms`; mutations never persist by themselves (the caller saves with
//! [`SubscriptionGroupTable::save`], off the data path). Must never: hold more than
//! [`GROUPS_MAX`] groups, or auto-create a group whose name is illegal.
//!
//! Errors map to response codes in the processor: [`GroupError::InvalidName`] ->
//! INVALID_PARAMETER; [`GroupError::NotExist`] -> SUBSCRIPTION_GROUP_NOT_EXIST;
//! [`GroupError::Limit`] and [`GroupError::Persist`] -> SYSTEM_ERROR with the message as
//! remark.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rmq_net::codec::body::lenient;
use rmq_net::codec::body::topic::DataVersion;
use rmq_net::codec::body::{parse_lenient, JsonBody};
use rmq_net::CodecError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clients::GroupPolicy;
use super::journal;
use super::persist::{self, PersistError};
use super::replicated::{HasTable, LoadError, ReplaceOutcome, Snapshot, Table};
use super::topics::is_legal_name_character;

pub use crate::limits::{GROUPS_MAX, GROUP_NAME_LENGTH_MAX};
/// Prefix of system consumer groups, auto-created even when auto-create is off.
pub const SYSTEM_CONSUMER_GROUP_PREFIX: &str = "CID_RMQ_SYS_";

/// Groups Java's `SubscriptionGroupManager.init` registers (all with default settings).
const SYSTEM_GROUPS: &[&str] = &[
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "SELF_TEST_C_GROUP",
    "CID_ONS-HTTP-PROXY",
    "CID_ONSAPI_PULL",
    "CID_ONSAPI_PERMISSION",
    "CID_ONSAPI_OWNER",
    "CID_RMQ_SYS_TRANS",
];

const _: () = assert!(SYSTEM_GROUPS.len() < GROUPS_MAX);

/// Why a group operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Blank, too long, or characters outside `[%|a-zA-Z0-9_-]`.
    #[error("invalid group name `{group}`: {reason}")]
    InvalidName {
        /// The offending name.
        group: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The group does not exist (and was not auto-created).
    #[error("subscription group `{0}` does not exist")]
    NotExist(String),
    /// The table already holds [`GROUPS_MAX`] groups.
    #[error(
        "cannot create subscription group `{group}`: the broker already holds {GROUPS_MAX} groups"
    )]
    Limit {
        /// The group that did not fit.
        group: String,
    },
    /// Reading or writing `subscriptionGroup.json` failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// Validates a group name: not blank, only `[%|a-zA-Z0-9_-]`, at most
/// [`GROUP_NAME_LENGTH_MAX`] characters (the checks Java's auto-create makes).
///
/// # Errors
/// [`GroupError::InvalidName`].
pub fn validate_group_name(group: &str) -> Result<(), GroupError> {
    let invalid = |reason| {
        Err(GroupError::InvalidName {
            group: group.to_owned(),
            reason,
        })
    };
    if group.trim().is_empty() {
        return invalid("the group name is blank");
    }
    if !group.bytes().all(is_legal_name_character) {
        return invalid("only ^[%|a-zA-Z0-9_-]+$ is allowed");
    }
    if group.len() > GROUP_NAME_LENGTH_MAX {
        return invalid("the group name is longer than its maximum length");
    }
    Ok(())
}

/// Whether `group` is a system consumer group (`CID_RMQ_SYS_*`).
#[must_use]
pub fn is_system_consumer_group(group: &str) -> bool {
    group.starts_with(SYSTEM_CONSUMER_GROUP_PREFIX)
}

fn default_retry_policy() -> Value {
    serde_json::json!({ "type": "CUSTOMIZED" })
}

/// One subscription group's settings (Java `SubscriptionGroupConfig`; JSON keys as fastjson
/// writes them, fields in JSON-name order). Defaults are Java's (PROTOCOL.md §4.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    /// Group attributes by bare name (5.x).
    pub attributes: BTreeMap<String, String>,
    /// Broker id consumers pull from (0 = master).
    #[serde(deserialize_with = "lenient::i64")]
    pub broker_id: i64,
    /// Whether broadcasting consumption is allowed.
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_broadcast_enable: bool,
    /// Whether the group may consume at all.
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_enable: bool,
    /// Whether a new group may start from the min offset.
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_from_min_enable: bool,
    /// Orderly consumption.
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_message_orderly: bool,
    /// Push-consumer consume timeout, minutes.
    #[serde(deserialize_with = "lenient::i32")]
    pub consume_timeout_minute: i32,
    /// Group name.
    pub group_name: String,
    /// 5.x retry policy, kept as given (`{"type":"CUSTOMIZED"}` by default).
    pub group_retry_policy: Value,
    /// Group sysFlag.
    #[serde(deserialize_with = "lenient::i32")]
    pub group_sys_flag: i32,
    /// Whether members get NOTIFY_CONSUMER_IDS_CHANGED on membership changes.
    #[serde(deserialize_with = "lenient::bool")]
    pub notify_consumer_ids_changed_enable: bool,
    /// Retries before a message goes to `%DLQ%`.
    #[serde(deserialize_with = "lenient::i32")]
    pub retry_max_times: i32,
    /// Queue count of the group's `%RETRY%` topic.
    #[serde(deserialize_with = "lenient::i32")]
    pub retry_queue_nums: i32,
    /// 5.x `SimpleSubscriptionData` set, kept as given; omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data_set: Option<Value>,
    /// Broker id to suggest when consumption is slow.
    #[serde(deserialize_with = "lenient::i64")]
    pub which_broker_when_consume_slowly: i64,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        Self {
            attributes: BTreeMap::new(),
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            consume_message_orderly: false,
            consume_timeout_minute: 15,
            group_name: String::new(),
            group_retry_policy: default_retry_policy(),
            group_sys_flag: 0,
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            subscription_data_set: None,
            which_broker_when_consume_slowly: 1,
        }
    }
}

impl SubscriptionGroupConfig {
    /// A group with Java's defaults.
    #[must_use]
    pub fn new(group_name: impl Into<String>) -> Self {
        Self {
            group_name: group_name.into(),
            ..Self::default()
        }
    }

    /// What the client registry needs to know about this group.
    #[must_use]
    pub fn client_policy(&self) -> GroupPolicy {
        GroupPolicy {
            notify_consumer_ids_changed: self.notify_consumer_ids_changed_enable,
        }
    }
}

/// The group table as Java persists it and as GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) returns
/// it: `{"dataVersion":..,"subscriptionGroupTable":{..}}`. (5.x's `forbiddenTable` is read
/// and ignored.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionGroupWrapper {
    /// Table version.
    pub data_version: DataVersion,
    /// Group name -> config.
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("string-keyed maps, numbers and strings always serialize")
}

impl JsonBody for SubscriptionGroupConfig {
    const NAME: &'static str = "SubscriptionGroupConfig";

    fn to_json(&self) -> Vec<u8> {
        to_json_bytes(self)
    }

    fn from_json(bytes: &[u8]) -> Result<Self, CodecError> {
        parse_lenient(Self::NAME, bytes)
    }
}

impl JsonBody for SubscriptionGroupWrapper {
    const NAME: &'static str = "SubscriptionGroupWrapper";

    fn to_json(&self) -> Vec<u8> {
        to_json_bytes(self)
    }

    fn from_json(bytes: &[u8]) -> Result<Self, CodecError> {
        parse_lenient(Self::NAME, bytes)
    }
}

/// The JSON key of the entry map in `subscriptionGroup.json`.
pub const GROUPS_FILE_KEY: &str = "subscriptionGroupTable";

/// Outcome of [`SubscriptionGroupTable::find_or_auto_create`].
#[derive(Debug, Clone, PartialEq)]
pub enum GroupLookup {
    /// The group existed.
    Found(SubscriptionGroupConfig),
    /// The group was auto-created now (then: persist and broadcast).
    Created(SubscriptionGroupConfig),
    /// Absent, and not auto-created (auto-create off, or an illegal name).
    NotFound,
}

impl GroupLookup {
    /// The config, if there is one.
    #[must_use]
    pub fn config(&self) -> Option<&SubscriptionGroupConfig> {
        match self {
            Self::Found(config) | Self::Created(config) => Some(config),
            Self::NotFound => None,
        }
    }
}

/// An immutable copy of the group table for broadcasting ([`Snapshot`]: receivers keep the
/// highest version).
pub type GroupSnapshot = Snapshot<SubscriptionGroupConfig>;

/// The subscription-group table of one broker.
#[derive(Debug)]
pub struct SubscriptionGroupTable {
    auto_create_subscription_group: bool,
    groups: Table<SubscriptionGroupConfig>,
}

impl HasTable for SubscriptionGroupTable {
    type Entry = SubscriptionGroupConfig;
    const FILE_KEY: &'static str = GROUPS_FILE_KEY;

    fn table(&self) -> &Table<SubscriptionGroupConfig> {
        &self.groups
    }

    fn table_mut(&mut self) -> &mut Table<SubscriptionGroupConfig> {
        &mut self.groups
    }
}

impl SubscriptionGroupTable {
    /// A table with Java's system groups, at version counter 0.
    /// `auto_create_subscription_group` is the `autoCreateSubscriptionGroup` broker setting.
    #[must_use]
    pub fn new(auto_create_subscription_group: bool, now_ms: i64) -> Self {
        let initial = SYSTEM_GROUPS
            .iter()
            .map(|name| ((*name).to_owned(), SubscriptionGroupConfig::new(*name)))
            .collect();
        Self {
            auto_create_subscription_group,
            groups: Table::new(GROUPS_MAX, initial, now_ms),
        }
    }

    /// [`Self::new`], then the groups and version persisted at `path` on top, then the
    /// changes journaled since. A missing file is a first start.
    ///
    /// # Errors
    /// [`GroupError::Persist`] for an unreadable or corrupt file; [`GroupError::Limit`] if the
    /// files hold more than [`GROUPS_MAX`] groups.
    pub fn load(
        auto_create_subscription_group: bool,
        path: &Path,
        now_ms: i64,
    ) -> Result<Self, GroupError> {
        let mut table = Self::new(auto_create_subscription_group, now_ms);
        let file = persist::read_json::<SubscriptionGroupWrapper>(path)?;
        let file = file.map(|f| (f.data_version, f.subscription_group_table));
        let rename = |config: &mut SubscriptionGroupConfig, name: &str| {
            name.clone_into(&mut config.group_name)
        };
        table.groups.load(path, file, rename).map_err(|e| match e {
            LoadError::Persist(err) => GroupError::Persist(err),
            LoadError::Full(full) => GroupError::Limit { group: full.name },
        })?;
        Ok(table)
    }

    /// Writes the whole table to `path` and empties its journal ([`journal::fold_blocking`]).
    ///
    /// # Errors
    /// [`GroupError::Persist`].
    pub fn save(&self, path: &Path) -> Result<(), GroupError> {
        journal::fold_blocking(path, &self.groups.file(GROUPS_FILE_KEY))?;
        Ok(())
    }

    /// The current version.
    #[must_use]
    pub fn version(&self) -> DataVersion {
        self.groups.data_version()
    }

    /// A group's config (no auto-create).
    #[must_use]
    pub fn get(&self, group: &str) -> Option<&SubscriptionGroupConfig> {
        self.groups.get(group)
    }

    /// Whether the group exists.
    #[must_use]
    pub fn contains(&self, group: &str) -> bool {
        self.groups.contains(group)
    }

    /// Number of groups.
    #[must_use]
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether the table is empty (never, after [`Self::new`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Java `findSubscriptionGroupConfig`: the group's config; if absent and either
    /// auto-create is on or the group is a `CID_RMQ_SYS_` group, a default config is created
    /// (only for a legal name, else [`GroupLookup::NotFound`]).
    ///
    /// # Errors
    /// [`GroupError::Limit`] when a group would be created in a full table.
    pub fn find_or_auto_create(
        &mut self,
        group: &str,
        now_ms: i64,
    ) -> Result<GroupLookup, GroupError> {
        if let Some(config) = self.groups.get(group) {
            return Ok(GroupLookup::Found(config.clone()));
        }
        let may_create = self.auto_create_subscription_group || is_system_consumer_group(group);
        if !may_create || validate_group_name(group).is_err() {
            return Ok(GroupLookup::NotFound);
        }
        let config = SubscriptionGroupConfig::new(group);
        self.insert_counted(config.clone(), now_ms)?;
        Ok(GroupLookup::Created(config))
    }

    /// Creates or replaces a group (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP). Returns whether
    /// anything changed; an identical config leaves the version alone.
    ///
    /// # Errors
    /// [`GroupError::InvalidName`]; [`GroupError::Limit`] for a new group in a full table.
    pub fn update(
        &mut self,
        config: SubscriptionGroupConfig,
        now_ms: i64,
    ) -> Result<bool, GroupError> {
        validate_group_name(&config.group_name)?;
        if self.groups.get(&config.group_name) == Some(&config) {
            return Ok(false);
        }
        self.insert_counted(config, now_ms)?;
        Ok(true)
    }

    /// Deletes a group (DELETE_SUBSCRIPTIONGROUP). Returns the removed config; the version
    /// moves only when something was removed.
    pub fn delete(&mut self, group: &str, now_ms: i64) -> Option<SubscriptionGroupConfig> {
        self.groups.remove(group, now_ms)
    }

    /// Makes the table hold exactly `groups` (a slave applying its master's
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG, Java `SlaveSynchronize.syncSubscriptionGroupConfig`):
    /// groups absent from it are deleted first, then each one is written under its key's name
    /// with the checks of [`Self::update`]; one that fails them is refused and the rest
    /// applied. Identical entries leave the version alone.
    pub fn replace_with(
        &mut self,
        groups: BTreeMap<String, SubscriptionGroupConfig>,
        now_ms: i64,
    ) -> ReplaceOutcome {
        let mut outcome = ReplaceOutcome::default();
        let absent: Vec<String> = self
            .groups
            .iter()
            .filter(|(name, _)| !groups.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in absent {
            self.delete(&name, now_ms);
            outcome.deleted.push(name);
        }
        for (name, mut config) in groups {
            config.group_name.clone_from(&name);
            match self.update(config, now_ms) {
                Ok(true) => outcome.written.push(name),
                Ok(false) => {}
                Err(err) => outcome.refused.push((name, err.to_string())),
            }
        }
        outcome
    }

    /// The table for GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201).
    #[must_use]
    pub fn to_wrapper(&self) -> SubscriptionGroupWrapper {
        SubscriptionGroupWrapper {
            data_version: self.groups.data_version(),
            subscription_group_table: self
                .groups
                .iter()
                .map(|(name, config)| (name.clone(), config.clone()))
                .collect(),
        }
    }

    /// An immutable copy for broadcasting, cached until the next change (O(1)).
    pub fn snapshot(&self) -> Arc<GroupSnapshot> {
        self.groups.snapshot()
    }

    fn insert_counted(
        &mut self,
        config: SubscriptionGroupConfig,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let name = config.group_name.clone();
        self.groups
            .put(name, config, now_ms)
            .map_err(|full| GroupError::Limit { group: full.name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::persist::test_dir;

    #[test]
    fn defaults_match_java() {
        let config = SubscriptionGroupConfig::new("G");
        assert!(config.consume_enable);
        assert!(config.consume_from_min_enable);
        assert!(config.consume_broadcast_enable);
        assert!(!config.consume_message_orderly);
        assert_eq!(config.retry_queue_nums, 1);
        assert_eq!(config.retry_max_times, 16);
        assert_eq!(config.broker_id, 0);
        assert_eq!(config.which_broker_when_consume_slowly, 1);
        assert!(config.notify_consumer_ids_changed_enable);
        assert_eq!(config.group_sys_flag, 0);
        assert_eq!(config.consume_timeout_minute, 15);
        assert_eq!(
            config.client_policy(),
            GroupPolicy {
                notify_consumer_ids_changed: true
            }
        );
    }

    #[test]
    fn json_uses_java_names_in_order_and_reads_sparse_input() {
        let json = String::from_utf8(SubscriptionGroupConfig::new("G").to_json()).expect("utf-8");
        assert_eq!(
            json,
            concat!(
                r#"{"attributes":{},"brokerId":0,"consumeBroadcastEnable":true,"#,
                r#""consumeEnable":true,"consumeFromMinEnable":true,"#,
                r#""consumeMessageOrderly":false,"consumeTimeoutMinute":15,"#,
                r#""groupName":"G","groupRetryPolicy":{"type":"CUSTOMIZED"},"groupSysFlag":0,"#,
                r#""notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,"retryQueueNums":1,"#,
                r#""whichBrokerWhenConsumeSlowly":1}"#
            )
        );
        let sparse = SubscriptionGroupConfig::from_json(
            concat!(
                r#"{"groupName":"H","retryMaxTimes":"3","consumeEnable":false,"#,
                r#""unknown":1,"subscriptionDataSet":null}"#
            )
            .as_bytes(),
        )
        .expect("lenient");
        assert_eq!(sparse.group_name, "H");
        assert_eq!(sparse.retry_max_times, 3);
        assert!(!sparse.consume_enable);
        assert_eq!(
            sparse.retry_queue_nums, 1,
            "absent fields keep Java defaults"
        );
        assert_eq!(sparse.subscription_data_set, None);
        let with_set = SubscriptionGroupConfig::from_json(
            concat!(
                r#"{"groupName":"S","subscriptionDataSet":"#,
                r#"[{"topic":"T","expressionType":"TAG","expression":"*"}]}"#
            )
            .as_bytes(),
        )
        .expect("valid");
        assert_eq!(
            SubscriptionGroupConfig::from_json(&with_set.to_json()).expect("round trip"),
            with_set
        );
    }

    #[test]
    fn replace_with_takes_the_other_table_whole() {
        let mut slave = SubscriptionGroupTable::new(true, 1_000);
        slave
            .update(SubscriptionGroupConfig::new("OnlyOnSlave"), 2_000)
            .expect("create");
        let mut master = SubscriptionGroupTable::new(true, 1_000);
        let slow = SubscriptionGroupConfig {
            which_broker_when_consume_slowly: 2,
            ..SubscriptionGroupConfig::new("G")
        };
        master.update(slow.clone(), 3_000).expect("create");
        let mut copy = master.to_wrapper().subscription_group_table;
        copy.insert(
            "bad group".into(),
            SubscriptionGroupConfig::new("bad group"),
        );
        let outcome = slave.replace_with(copy, 4_000);
        assert_eq!(outcome.deleted, vec!["OnlyOnSlave".to_owned()]);
        assert_eq!(
            outcome.written,
            vec!["G".to_owned()],
            "system groups were equal"
        );
        assert_eq!(outcome.refused.len(), 1);
        assert_eq!(slave.get("G"), Some(&slow));
        assert_eq!(
            slave.to_wrapper().subscription_group_table,
            master.to_wrapper().subscription_group_table
        );
        let version = slave.version();
        let again = slave.replace_with(master.to_wrapper().subscription_group_table, 5_000);
        assert!(!again.changed());
        assert_eq!(slave.version(), version);
    }

    #[test]
    fn group_name_validation() {
        for ok in [
            "G",
            "CID_RMQ_SYS_X",
            "a-b_c%|1",
            &"g".repeat(GROUP_NAME_LENGTH_MAX),
        ] {
            assert!(validate_group_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "a.b",
            "a@b",
            "组",
            &"g".repeat(GROUP_NAME_LENGTH_MAX + 1),
        ] {
            assert!(
                matches!(
                    validate_group_name(bad),
                    Err(GroupError::InvalidName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn system_groups_exist_at_start() {
        let table = SubscriptionGroupTable::new(true, 10);
        for name in SYSTEM_GROUPS {
            assert_eq!(table.get(name).map(|c| c.group_name.as_str()), Some(*name));
        }
        assert_eq!(table.len(), SYSTEM_GROUPS.len());
        assert_eq!(
            table.version(),
            DataVersion {
                counter: 0,
                state_version: 0,
                timestamp: 10
            }
        );
    }

    #[test]
    fn find_or_auto_create_follows_the_setting() {
        let mut auto = SubscriptionGroupTable::new(true, 0);
        let created = auto.find_or_auto_create("G", 5).expect("ok");
        assert!(matches!(created, GroupLookup::Created(ref c) if c.group_name == "G"));
        assert_eq!(auto.version().counter, 1);
        let found = auto.find_or_auto_create("G", 6).expect("ok");
        assert!(matches!(found, GroupLookup::Found(_)));
        assert_eq!(found.config().map(|c| c.retry_queue_nums), Some(1));
        assert_eq!(auto.version().counter, 1, "finding does not bump");
        assert_eq!(
            auto.find_or_auto_create("a.b", 7).expect("ok"),
            GroupLookup::NotFound
        );
        assert_eq!(GroupLookup::NotFound.config(), None);

        let mut manual = SubscriptionGroupTable::new(false, 0);
        assert_eq!(
            manual.find_or_auto_create("G", 5).expect("ok"),
            GroupLookup::NotFound
        );
        assert!(!manual.contains("G"));
        let system = manual.find_or_auto_create("CID_RMQ_SYS_X", 5).expect("ok");
        assert!(
            matches!(system, GroupLookup::Created(_)),
            "system groups are always created"
        );
    }

    #[test]
    fn update_and_delete_move_the_version_only_on_change() {
        let mut table = SubscriptionGroupTable::new(true, 0);
        let config = SubscriptionGroupConfig {
            retry_max_times: 3,
            ..SubscriptionGroupConfig::new("G")
        };
        assert!(table.update(config.clone(), 1).expect("create"));
        assert!(!table.update(config.clone(), 2).expect("same"));
        assert_eq!(table.version().counter, 1);
        let orderly = SubscriptionGroupConfig {
            consume_message_orderly: true,
            ..config
        };
        assert!(table.update(orderly, 3).expect("update"));
        assert_eq!(
            table.version(),
            DataVersion {
                counter: 2,
                state_version: 0,
                timestamp: 3
            }
        );
        assert!(matches!(
            table.update(SubscriptionGroupConfig::new("bad name"), 4),
            Err(GroupError::InvalidName { .. })
        ));
        assert!(table.delete("G", 5).is_some());
        assert_eq!(table.version().counter, 3);
        assert!(table.delete("G", 6).is_none());
        assert_eq!(table.version().counter, 3);
        assert!(!table.contains("G"));
    }

    #[test]
    fn snapshot_is_cached_until_a_change() {
        let mut table = SubscriptionGroupTable::new(true, 0);
        let first = table.snapshot();
        assert!(Arc::ptr_eq(&first, &table.snapshot()));
        table.find_or_auto_create("G", 1).expect("create");
        let second = table.snapshot();
        assert!(second.supersedes(&first));
        assert!(second.get("G").is_some());
        assert!(first.get("G").is_none());
        assert_eq!(second.len(), first.len() + 1);
        assert!(!second.is_empty());
        assert_eq!(
            second.version(),
            u64::try_from(table.version().counter).expect("positive")
        );
    }

    #[test]
    fn persistence_round_trip_and_wrapper() {
        let dir = test_dir("groups-round-trip");
        let path = dir.join("subscriptionGroup.json");
        let mut table = SubscriptionGroupTable::new(true, 0);
        let config = SubscriptionGroupConfig {
            retry_queue_nums: 2,
            ..SubscriptionGroupConfig::new("G")
        };
        table.update(config.clone(), 42).expect("create");
        table.save(&path).expect("save");
        let loaded = SubscriptionGroupTable::load(true, &path, 0).expect("load");
        assert_eq!(loaded.get("G"), Some(&config));
        assert_eq!(loaded.version(), table.version());
        assert_eq!(loaded.to_wrapper(), table.to_wrapper());

        let body = table.to_wrapper().to_json();
        let parsed = SubscriptionGroupWrapper::from_json(&body).expect("201 body parses");
        assert_eq!(parsed.subscription_group_table["G"].retry_queue_nums, 2);
        let text = String::from_utf8(body).expect("utf-8");
        assert!(
            text.starts_with(r#"{"dataVersion":{"counter":1,"#),
            "{text}"
        );

        let java = r#"{"dataVersion":{"counter":9,"timestamp":1},"forbiddenTable":{},
            "subscriptionGroupTable":{"J":{"groupName":"J","retryMaxTimes":5}}}"#;
        std::fs::write(&path, java).expect("write");
        let from_java = SubscriptionGroupTable::load(false, &path, 0).expect("load java");
        assert_eq!(from_java.get("J").map(|c| c.retry_max_times), Some(5));
        assert_eq!(from_java.version().counter, 9);
        std::fs::write(&path, "{").expect("corrupt");
        assert!(matches!(
            SubscriptionGroupTable::load(true, &path, 0),
            Err(GroupError::Persist(_))
        ));
    }

    #[test]
    fn limit_refuses_groups_beyond_max() {
        let mut table = SubscriptionGroupTable::new(true, 0);
        let mut index = 0;
        while table.len() < GROUPS_MAX {
            table
                .update(SubscriptionGroupConfig::new(format!("g{index}")), 1)
                .expect("below limit");
            index += 1;
        }
        assert!(matches!(
            table.find_or_auto_create("more", 2),
            Err(GroupError::Limit { .. })
        ));
        assert!(matches!(
            table.update(SubscriptionGroupConfig::new("more"), 2),
            Err(GroupError::Limit { .. })
        ));
        let update = SubscriptionGroupConfig {
            retry_max_times: 1,
            ..SubscriptionGroupConfig::new("g0")
        };
        assert!(table.update(update, 3).expect("update at limit"));
    }
}
