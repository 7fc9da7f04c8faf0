//! Client registry (PROTOCOL.md §4.6, §5.6): which connections belong to which consumer and
//! producer groups, each consumer group's consume type, message model, consume-from-where and
//! subscriptions, and the NOTIFY_CONSUMER_IDS_CHANGED decisions that follow from heartbeats,
//! unregisters, closed connections and the 120 s channel expiry.
//!
//! Lives on the control shard; other shards see only the versioned [`SubscriptionSnapshot`]
//! it broadcasts (the pull path filters with it). Pure and synchronous: time comes in as
//! `now_ms`, and the results say whom to notify and what to close; this module sends nothing.
//! Subscriptions are stored with `tagsSet`/`codeSet` recomputed from `subString`, never as the
//! client computed them. Must never: exceed its named limits (a heartbeat that would is
//! rejected whole, before any change), or notify members of broadcasting groups.
//!
//! [`ClientError`] maps to SYSTEM_ERROR with the message as remark in the HEART_BEAT
//! processor (Java has no dedicated code for an overloaded client table).

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rmq_net::codec::body::client::{Connection, ConsumerConnection, ProducerConnection};
use rmq_net::codec::body::heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, MessageModel,
};
use rmq_net::codec::body::subscription::SubscriptionData;
use rmq_net::codec::codes::LanguageCode;

use super::replicated::{Entries, Snapshot};
use super::topics::retry_topic;
use crate::runtime::mesh::{ClientMeta, ConnKey};

/// A channel without a heartbeat for longer than this is dropped (Java
/// `channelExpiredTimeout`); clients heartbeat every 30 s.
pub const CLIENT_CHANNEL_EXPIRY_MS: i64 = 120_000;
pub use crate::limits::{
    CLIENTS_PER_GROUP_MAX, CLIENT_NAME_LENGTH_MAX, CONSUMER_GROUPS_MAX, PRODUCER_GROUPS_MAX,
    SUBSCRIPTIONS_PER_GROUP_MAX,
};

/// Why a heartbeat was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A named limit would be exceeded.
    #[error("client registry limit: {what} (max {max})")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        max: usize,
    },
    /// A client id or group name is longer than [`CLIENT_NAME_LENGTH_MAX`].
    #[error("{what} is {length} bytes, longer than {CLIENT_NAME_LENGTH_MAX}")]
    NameTooLong {
        /// Which name.
        what: &'static str,
        /// Its length.
        length: usize,
    },
}

/// What the registry needs from a consumer group's subscription-group config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPolicy {
    /// `notifyConsumerIdsChangedEnable`.
    pub notify_consumer_ids_changed: bool,
}

/// One client connection in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientChannelInfo {
    /// The client's `clientID`.
    pub client_id: String,
    /// Language from the request header.
    pub language: LanguageCode,
    /// `MQVersion` ordinal from the request header.
    pub version: i32,
    /// Remote `ip:port`.
    pub peer_addr: String,
    /// Last heartbeat, ms.
    pub last_update_ms: i64,
}

/// A consumer group whose membership or topic set changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// The group.
    pub group: String,
    /// Connections to send NOTIFY_CONSUMER_IDS_CHANGED to: every member, for clustering
    /// groups whose `notifyConsumerIdsChangedEnable` is on; empty otherwise.
    pub notify: Vec<ConnKey>,
    /// The group lost its last member and was removed.
    pub group_removed: bool,
}

/// What a heartbeat changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatOutcome {
    /// Consumer groups whose membership or topic set changed.
    pub groups_changed: Vec<GroupChange>,
    /// The `IS_SUB_CHANGE` reply field: always true for v1 heartbeats (fingerprint 0, as
    /// Java); for v2, true when a group's fingerprint changed, or when a `withoutSub`
    /// heartbeat names a group this broker holds no subscriptions for (forces a full one).
    pub sub_changed: bool,
    /// `%RETRY%<group>` of every consumer group registered; the processor creates the missing
    /// ones (perm 6, the group's `retryQueueNums`).
    pub retry_topics_needed: Vec<String>,
    /// Consumer groups ignored because the policy lookup found no subscription group (auto
    /// create off), as Java skips them.
    pub groups_skipped: Vec<String>,
}

/// What an expiry scan removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpireOutcome {
    /// Connections that expired from at least one group: close them (as Java does).
    pub expired: Vec<ConnKey>,
    /// Consumer groups that lost members.
    pub groups_changed: Vec<GroupChange>,
}

/// One consumer group's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupInfo {
    members: BTreeMap<ConnKey, ClientChannelInfo>,
    subscriptions: BTreeMap<String, SubscriptionData>,
    consume_type: ConsumeType,
    message_model: MessageModel,
    consume_from_where: ConsumeFromWhere,
    notify_enabled: bool,
    heartbeat_fingerprint: Option<i32>,
    last_update_ms: i64,
}

impl ConsumerGroupInfo {
    fn new(data: &ConsumerData, policy: GroupPolicy, now_ms: i64) -> Self {
        Self {
            members: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            consume_type: data.consume_type,
            message_model: data.message_model,
            consume_from_where: data.consume_from_where,
            notify_enabled: policy.notify_consumer_ids_changed,
            heartbeat_fingerprint: None,
            last_update_ms: now_ms,
        }
    }

    /// Members by connection.
    #[must_use]
    pub fn members(&self) -> &BTreeMap<ConnKey, ClientChannelInfo> {
        &self.members
    }

    /// Subscriptions by topic.
    #[must_use]
    pub fn subscriptions(&self) -> &BTreeMap<String, SubscriptionData> {
        &self.subscriptions
    }

    /// Consume type of the latest heartbeat.
    #[must_use]
    pub fn consume_type(&self) -> ConsumeType {
        self.consume_type
    }

    /// Message model of the latest heartbeat.
    #[must_use]
    pub fn message_model(&self) -> MessageModel {
        self.message_model
    }

    /// Consume-from-where of the latest heartbeat.
    #[must_use]
    pub fn consume_from_where(&self) -> ConsumeFromWhere {
        self.consume_from_where
    }

    /// Time of the latest heartbeat, ms.
    #[must_use]
    pub fn last_update_ms(&self) -> i64 {
        self.last_update_ms
    }

    fn notify_list(&self) -> Vec<ConnKey> {
        if self.message_model == MessageModel::Clustering && self.notify_enabled {
            self.members.keys().copied().collect()
        } else {
            Vec::new()
        }
    }

    /// Java `updateChannel`: true only for a new connection. A known connection reporting
    /// another client id replaces its info (Java logs that as a bug and does the same).
    fn update_channel(&mut self, conn: ConnKey, channel: &ClientChannelInfo) -> bool {
        match self.members.get_mut(&conn) {
            None => {
                self.members.insert(conn, channel.clone());
                true
            }
            Some(existing) if existing.client_id != channel.client_id => {
                *existing = channel.clone();
                false
            }
            Some(existing) => {
                existing.last_update_ms = channel.last_update_ms;
                false
            }
        }
    }

    /// Java `updateSubscription`. Returns (topic set changed, an entry was replaced by a
    /// higher `subVersion`). Only the first counts as a membership change, as in Java: a
    /// changed tag expression on the same topics does not alter queue allocation.
    fn update_subscriptions(&mut self, incoming: &[SubscriptionData]) -> (bool, bool) {
        let mut latest: BTreeMap<&str, &SubscriptionData> = BTreeMap::new();
        for sub in incoming {
            let newer = latest
                .get(sub.topic.as_str())
                .is_none_or(|seen| sub.sub_version > seen.sub_version);
            if newer {
                latest.insert(sub.topic.as_str(), sub);
            }
        }
        let mut set_changed = false;
        let mut replaced = false;
        for (topic, sub) in &latest {
            match self.subscriptions.get_mut(*topic) {
                None => {
                    self.subscriptions
                        .insert((*topic).to_owned(), normalized(sub));
                    set_changed = true;
                }
                Some(old) if sub.sub_version > old.sub_version => {
                    *old = normalized(sub);
                    replaced = true;
                }
                Some(_) => {}
            }
        }
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|topic, _| latest.contains_key(topic.as_str()));
        set_changed |= self.subscriptions.len() != before;
        assert!(self.subscriptions.len() == latest.len());
        (set_changed, replaced)
    }
}

/// A subscription as stored: tag sets rebuilt from the expression (PROTOCOL.md §5.6).
fn normalized(sub: &SubscriptionData) -> SubscriptionData {
    let mut sub = sub.clone();
    sub.recompute_tags();
    sub
}

/// One consumer group as the other shards see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSubscriptions {
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// Push, pull or POP.
    pub consume_type: ConsumeType,
    /// Topic -> subscription.
    pub subscriptions: BTreeMap<String, SubscriptionData>,
}

/// Versioned copy of every live consumer group's subscriptions, broadcast to the shards
/// ([`Snapshot`]: receivers keep the highest version).
pub type SubscriptionSnapshot = Snapshot<GroupSubscriptions>;

impl Snapshot<GroupSubscriptions> {
    /// A group's subscriptions.
    #[must_use]
    pub fn group(&self, group: &str) -> Option<&GroupSubscriptions> {
        self.get(group)
    }

    /// A group's subscription to a topic.
    #[must_use]
    pub fn subscription(&self, group: &str, topic: &str) -> Option<&SubscriptionData> {
        self.get(group)?.subscriptions.get(topic)
    }
}

/// All live consumer and producer group members of the broker.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    consumers: BTreeMap<String, ConsumerGroupInfo>,
    producers: BTreeMap<String, BTreeMap<ConnKey, ClientChannelInfo>>,
    subscriptions_version: u64,
    /// Every group's subscriptions as shards see them, kept up to date per changed group so a
    /// snapshot costs O(1) and a change O(log groups).
    view: Entries<GroupSubscriptions>,
    snapshot: OnceCell<Arc<SubscriptionSnapshot>>,
}

fn check_name(what: &'static str, name: &str) -> Result<(), ClientError> {
    if name.len() > CLIENT_NAME_LENGTH_MAX {
        return Err(ClientError::NameTooLong {
            what,
            length: name.len(),
        });
    }
    Ok(())
}

impl ClientRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// HEART_BEAT (PROTOCOL.md §4.6): records `client` in every consumer group of `data` that
    /// `policy` knows (the processor finds or auto-creates the subscription group first and
    /// answers `None` for groups that do not exist) and in every producer group.
    ///
    /// # Errors
    /// [`ClientError`] if the heartbeat would exceed a limit; nothing is changed then.
    pub fn heartbeat(
        &mut self,
        client: &ClientMeta,
        data: &HeartbeatData,
        now_ms: i64,
        policy: impl Fn(&str) -> Option<GroupPolicy>,
    ) -> Result<HeartbeatOutcome, ClientError> {
        self.check_heartbeat_limits(client.key, data, &policy)?;
        let channel = ClientChannelInfo {
            client_id: data.client_id.clone(),
            language: client.language,
            version: client.version,
            peer_addr: client.peer_addr.to_string(),
            last_update_ms: now_ms,
        };
        let mut outcome = HeartbeatOutcome {
            sub_changed: data.heartbeat_fingerprint == 0,
            ..HeartbeatOutcome::default()
        };
        for consumer in &data.consumer_data_set {
            let Some(group_policy) = policy(&consumer.group_name) else {
                outcome.groups_skipped.push(consumer.group_name.clone());
                continue;
            };
            let registration = Registration {
                conn: client.key,
                channel: &channel,
                consumer,
                without_sub: data.without_sub,
                fingerprint: data.heartbeat_fingerprint,
                policy: group_policy,
                now_ms,
            };
            let (change, sub_changed) = self.register_consumer(&registration);
            outcome.sub_changed |= sub_changed;
            outcome.groups_changed.extend(change);
            outcome
                .retry_topics_needed
                .push(retry_topic(&consumer.group_name));
        }
        for producer in &data.producer_data_set {
            self.producers
                .entry(producer.group_name.clone())
                .or_default()
                .insert(client.key, channel.clone());
        }
        assert!(self.consumers.len() <= CONSUMER_GROUPS_MAX);
        assert!(self.producers.len() <= PRODUCER_GROUPS_MAX);
        Ok(outcome)
    }

    fn check_heartbeat_limits(
        &self,
        conn: ConnKey,
        data: &HeartbeatData,
        policy: &impl Fn(&str) -> Option<GroupPolicy>,
    ) -> Result<(), ClientError> {
        check_name("clientID", &data.client_id)?;
        let mut new_groups = BTreeSet::new();
        for consumer in &data.consumer_data_set {
            check_name("consumer group", &consumer.group_name)?;
            if policy(&consumer.group_name).is_none() {
                continue;
            }
            match self.consumers.get(&consumer.group_name) {
                None => {
                    new_groups.insert(consumer.group_name.as_str());
                }
                Some(info) => check_members(&info.members, conn)?,
            }
            if !data.without_sub {
                let topics: BTreeSet<&str> = consumer
                    .subscription_data_set
                    .iter()
                    .map(|sub| sub.topic.as_str())
                    .collect();
                if topics.len() > SUBSCRIPTIONS_PER_GROUP_MAX {
                    return Err(ClientError::Limit {
                        what: "subscriptions per consumer group",
                        max: SUBSCRIPTIONS_PER_GROUP_MAX,
                    });
                }
            }
        }
        if self.consumers.len() + new_groups.len() > CONSUMER_GROUPS_MAX {
            return Err(ClientError::Limit {
                what: "consumer groups",
                max: CONSUMER_GROUPS_MAX,
            });
        }
        let mut new_groups = BTreeSet::new();
        for producer in &data.producer_data_set {
            check_name("producer group", &producer.group_name)?;
            match self.producers.get(&producer.group_name) {
                None => {
                    new_groups.insert(producer.group_name.as_str());
                }
                Some(members) => check_members(members, conn)?,
            }
        }
        if self.producers.len() + new_groups.len() > PRODUCER_GROUPS_MAX {
            return Err(ClientError::Limit {
                what: "producer groups",
                max: PRODUCER_GROUPS_MAX,
            });
        }
        Ok(())
    }

    /// Java `ConsumerManager.registerConsumer` (or `registerConsumerWithoutSub`). Returns the
    /// group change, if any, and whether this group forces `IS_SUB_CHANGE`.
    fn register_consumer(
        &mut self,
        registration: &Registration<'_>,
    ) -> (Option<GroupChange>, bool) {
        let consumer = registration.consumer;
        let group = &consumer.group_name;
        let is_new_group = !self.consumers.contains_key(group);
        let info = self.consumers.entry(group.clone()).or_insert_with(|| {
            ConsumerGroupInfo::new(consumer, registration.policy, registration.now_ms)
        });
        let model_changed = info.consume_type != consumer.consume_type
            || info.message_model != consumer.message_model;
        info.consume_type = consumer.consume_type;
        info.message_model = consumer.message_model;
        info.consume_from_where = consumer.consume_from_where;
        info.notify_enabled = registration.policy.notify_consumer_ids_changed;
        info.last_update_ms = registration.now_ms;

        let member_added = info.update_channel(registration.conn, registration.channel);
        let (set_changed, replaced) = if registration.without_sub {
            (false, false)
        } else {
            info.update_subscriptions(&consumer.subscription_data_set)
        };
        let fingerprint = registration.fingerprint;
        let sub_changed = fingerprint != 0
            && match info.heartbeat_fingerprint {
                Some(previous) => previous != fingerprint,
                None => registration.without_sub,
            };
        info.heartbeat_fingerprint = Some(fingerprint);

        let change = (member_added || set_changed).then(|| GroupChange {
            group: group.clone(),
            notify: info.notify_list(),
            group_removed: false,
        });
        if is_new_group || model_changed || set_changed || replaced {
            self.subscriptions_changed(group);
        }
        (change, sub_changed)
    }

    /// UNREGISTER_CLIENT: removes the client from the named groups. A member is removed when
    /// it is this connection or carries this client id (a client leaving a group leaves it on
    /// every connection). Returns the consumer-group change, if any.
    pub fn unregister(
        &mut self,
        conn: ConnKey,
        client_id: &str,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> Vec<GroupChange> {
        let matches =
            |key: &ConnKey, info: &ClientChannelInfo| *key == conn || info.client_id == client_id;
        if let Some(group) = producer_group {
            if let Some(members) = self.producers.get_mut(group) {
                members.retain(|key, info| !matches(key, info));
                if members.is_empty() {
                    self.producers.remove(group);
                }
            }
        }
        let Some(group) = consumer_group else {
            return Vec::new();
        };
        let Some(info) = self.consumers.get_mut(group) else {
            return Vec::new();
        };
        let change = remove_members(group, info, matches);
        if change.as_ref().is_some_and(|c| c.group_removed) {
            self.consumers.remove(group);
            self.subscriptions_changed(group);
        }
        change.into_iter().collect()
    }

    /// A connection closed: it leaves every group. Returns the consumer-group changes.
    pub fn connection_closed(&mut self, conn: ConnKey) -> Vec<GroupChange> {
        self.remove_everywhere(|key, _| *key == conn)
    }

    /// Connections closed: they leave every group, in one pass over the registry (a wave of
    /// closes costs one pass per batch, not one per connection), with one change per group.
    pub fn connections_closed(
        &mut self,
        conns: &std::collections::HashSet<ConnKey>,
    ) -> Vec<GroupChange> {
        if conns.is_empty() {
            return Vec::new();
        }
        self.remove_everywhere(|key, _| conns.contains(key))
    }

    /// Drops every channel without a heartbeat for more than [`CLIENT_CHANNEL_EXPIRY_MS`].
    pub fn expire(&mut self, now_ms: i64) -> ExpireOutcome {
        let mut expired = BTreeSet::new();
        let groups_changed = self.remove_everywhere(|key, info| {
            let stale = now_ms - info.last_update_ms > CLIENT_CHANNEL_EXPIRY_MS;
            if stale {
                expired.insert(*key);
            }
            stale
        });
        ExpireOutcome {
            expired: expired.into_iter().collect(),
            groups_changed,
        }
    }

    fn remove_everywhere(
        &mut self,
        mut remove: impl FnMut(&ConnKey, &ClientChannelInfo) -> bool,
    ) -> Vec<GroupChange> {
        let mut changes = Vec::new();
        for (group, info) in &mut self.consumers {
            changes.extend(remove_members(group, info, &mut remove));
        }
        for change in changes.iter().filter(|c| c.group_removed) {
            self.consumers.remove(&change.group);
            self.subscriptions_changed(&change.group);
        }
        for members in self.producers.values_mut() {
            members.retain(|key, info| !remove(key, info));
        }
        self.producers.retain(|_, members| !members.is_empty());
        changes
    }

    /// GET_CONSUMER_LIST_BY_GROUP: the members' client ids, sorted and without duplicates
    /// (clients sort anyway; a duplicate would skew their allocation).
    #[must_use]
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let Some(info) = self.consumers.get(group) else {
            return Vec::new();
        };
        let ids: BTreeSet<&str> = info
            .members
            .values()
            .map(|c| c.client_id.as_str())
            .collect();
        ids.into_iter().map(str::to_owned).collect()
    }

    /// Whom a membership change of `group` notifies now: its members when it is a clustering
    /// group with `notifyConsumerIdsChangedEnable`, nobody otherwise (or when it is gone).
    #[must_use]
    pub fn notify_list(&self, group: &str) -> Vec<ConnKey> {
        self.consumers
            .get(group)
            .map_or_else(Vec::new, ConsumerGroupInfo::notify_list)
    }

    /// A consumer group's subscription to a topic.
    #[must_use]
    pub fn subscription(&self, group: &str, topic: &str) -> Option<&SubscriptionData> {
        self.consumers.get(group)?.subscriptions.get(topic)
    }

    /// A live consumer group.
    #[must_use]
    pub fn consumer_group(&self, group: &str) -> Option<&ConsumerGroupInfo> {
        self.consumers.get(group)
    }

    /// The connection a client id uses in a consumer group (for broker-to-client requests).
    #[must_use]
    pub fn find_consumer_channel(
        &self,
        group: &str,
        client_id: &str,
    ) -> Option<(ConnKey, &ClientChannelInfo)> {
        self.consumers
            .get(group)?
            .members
            .iter()
            .find(|(_, info)| info.client_id == client_id)
            .map(|(key, info)| (*key, info))
    }

    /// A connection of the client `client_id` in any producer group, else in any consumer
    /// group (Java's `ProducerManager.findChannel`, which PUSH_REPLY_MESSAGE_TO_CLIENT uses).
    /// A scan over the live members: bounded by the registry's group and member limits.
    #[must_use]
    pub fn find_client_connection(&self, client_id: &str) -> Option<ConnKey> {
        let producers = self.producers.values().flat_map(BTreeMap::iter);
        let consumers = self.consumers.values().flat_map(|g| g.members.iter());
        producers
            .chain(consumers)
            .find(|(_, info)| info.client_id == client_id)
            .map(|(key, _)| *key)
    }

    /// A producer group's members (CHECK_TRANSACTION_STATE picks one).
    #[must_use]
    pub fn producer_members(&self, group: &str) -> Option<&BTreeMap<ConnKey, ClientChannelInfo>> {
        self.producers.get(group)
    }

    /// Number of live consumer groups.
    #[must_use]
    pub fn consumer_group_count(&self) -> usize {
        self.consumers.len()
    }

    /// Number of live producer groups.
    #[must_use]
    pub fn producer_group_count(&self) -> usize {
        self.producers.len()
    }

    /// Change counter of the subscription data ([`SubscriptionSnapshot::version`]).
    #[must_use]
    pub fn subscriptions_version(&self) -> u64 {
        self.subscriptions_version
    }

    /// A versioned copy of every group's subscriptions for broadcasting, cached until the
    /// next change.
    pub fn subscriptions_snapshot(&self) -> Arc<SubscriptionSnapshot> {
        Arc::clone(
            self.snapshot.get_or_init(|| {
                Arc::new(Snapshot::new(self.subscriptions_version, self.view.clone()))
            }),
        )
    }

    /// GET_CONSUMER_CONNECTION_LIST (203) body; `None` (CONSUMER_NOT_ONLINE) for a group
    /// without members.
    #[must_use]
    pub fn consumer_connection(&self, group: &str) -> Option<ConsumerConnection> {
        let info = self.consumers.get(group)?;
        Some(ConsumerConnection {
            connection_set: info.members.values().map(connection).collect(),
            consume_from_where: info.consume_from_where,
            consume_type: info.consume_type,
            message_model: info.message_model,
            subscription_table: info.subscriptions.clone(),
        })
    }

    /// GET_PRODUCER_CONNECTION_LIST (204) body; `None` for a group without members.
    #[must_use]
    pub fn producer_connection(&self, group: &str) -> Option<ProducerConnection> {
        let members = self.producers.get(group)?;
        Some(ProducerConnection {
            connection_set: members.values().map(connection).collect(),
        })
    }

    /// `group`'s subscriptions changed (or the group went away): refresh its view entry.
    fn subscriptions_changed(&mut self, group: &str) {
        match self.consumers.get(group) {
            Some(info) => {
                let view = GroupSubscriptions {
                    message_model: info.message_model,
                    consume_type: info.consume_type,
                    subscriptions: info.subscriptions.clone(),
                };
                self.view.insert(group.to_owned(), view);
            }
            None => {
                self.view.remove(group);
            }
        }
        self.subscriptions_version += 1;
        self.snapshot = OnceCell::new();
    }
}

/// One consumer group's part of a heartbeat.
struct Registration<'a> {
    conn: ConnKey,
    channel: &'a ClientChannelInfo,
    consumer: &'a ConsumerData,
    without_sub: bool,
    fingerprint: i32,
    policy: GroupPolicy,
    now_ms: i64,
}

fn check_members(
    members: &BTreeMap<ConnKey, ClientChannelInfo>,
    conn: ConnKey,
) -> Result<(), ClientError> {
    if !members.contains_key(&conn) && members.len() >= CLIENTS_PER_GROUP_MAX {
        return Err(ClientError::Limit {
            what: "clients per group",
            max: CLIENTS_PER_GROUP_MAX,
        });
    }
    Ok(())
}

/// Removes matching members of one consumer group; the change, if any were removed. An
/// emptied group is reported with `group_removed` (the caller removes it).
fn remove_members(
    group: &str,
    info: &mut ConsumerGroupInfo,
    mut remove: impl FnMut(&ConnKey, &ClientChannelInfo) -> bool,
) -> Option<GroupChange> {
    let before = info.members.len();
    info.members.retain(|key, channel| !remove(key, channel));
    if info.members.len() == before {
        return None;
    }
    let group_removed = info.members.is_empty();
    Some(GroupChange {
        group: group.to_owned(),
        notify: info.notify_list(),
        group_removed,
    })
}

fn connection(info: &ClientChannelInfo) -> Connection {
    Connection {
        client_addr: info.peer_addr.clone(),
        client_id: info.client_id.clone(),
        language: info.language,
        version: info.version,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rmq_net::codec::body::heartbeat::ProducerData;
    use rmq_net::codec::codes::SerializeType;

    use super::*;
    use crate::runtime::ShardId;

    const NOTIFY: Option<GroupPolicy> = Some(GroupPolicy {
        notify_consumer_ids_changed: true,
    });

    fn conn(id: u64) -> ConnKey {
        ConnKey {
            // Ids from 1000 live on shard 1, so the registry sees keys of two shards.
            shard: ShardId(usize::from(id >= 1_000)),
            conn: id,
        }
    }

    fn meta(id: u64) -> ClientMeta {
        let octet = u8::try_from(id % 256).expect("below 256");
        let port = u16::try_from(50_000 + id % 10_000).expect("below 60000");
        let peer_addr = SocketAddr::from(([10, 0, 0, octet], port));
        ClientMeta {
            key: conn(id),
            peer_addr,
            language: LanguageCode::Java,
            version: 479,
            serialize_type: SerializeType::Json,
        }
    }

    fn consumer(group: &str, model: MessageModel, topics: &[(&str, &str, i64)]) -> ConsumerData {
        ConsumerData {
            group_name: group.into(),
            message_model: model,
            subscription_data_set: topics
                .iter()
                .map(|(topic, expression, version)| SubscriptionData {
                    topic: (*topic).into(),
                    sub_string: (*expression).into(),
                    sub_version: *version,
                    ..SubscriptionData::default()
                })
                .collect(),
            ..ConsumerData::default()
        }
    }

    fn heartbeat(
        client_id: &str,
        consumers: Vec<ConsumerData>,
        producers: &[&str],
    ) -> HeartbeatData {
        HeartbeatData {
            client_id: client_id.into(),
            consumer_data_set: consumers,
            producer_data_set: producers
                .iter()
                .map(|group| ProducerData {
                    group_name: (*group).into(),
                })
                .collect(),
            ..HeartbeatData::default()
        }
    }

    fn clustering(client_id: &str, topics: &[(&str, &str, i64)]) -> HeartbeatData {
        heartbeat(
            client_id,
            vec![consumer("G", MessageModel::Clustering, topics)],
            &[],
        )
    }

    fn beat(
        registry: &mut ClientRegistry,
        id: u64,
        data: &HeartbeatData,
        now_ms: i64,
    ) -> HeartbeatOutcome {
        registry
            .heartbeat(&meta(id), data, now_ms, |_| NOTIFY)
            .expect("within limits")
    }

    #[test]
    fn first_join_notifies_every_member_including_the_new_one() {
        let mut registry = ClientRegistry::new();
        let subs = [("T", "TagA || TagB", 1)];
        let first = beat(&mut registry, 1, &clustering("c1", &subs), 0);
        assert_eq!(
            first.groups_changed,
            vec![GroupChange {
                group: "G".into(),
                notify: vec![conn(1)],
                group_removed: false
            }]
        );
        assert_eq!(first.retry_topics_needed, vec!["%RETRY%G".to_owned()]);
        assert!(
            first.sub_changed,
            "v1 heartbeats always report IS_SUB_CHANGE=true"
        );

        let second = beat(&mut registry, 2, &clustering("c2", &subs), 10);
        assert_eq!(second.groups_changed.len(), 1);
        assert_eq!(second.groups_changed[0].notify, vec![conn(1), conn(2)]);
        assert_eq!(
            registry.consumer_ids("G"),
            vec!["c1".to_owned(), "c2".to_owned()]
        );
    }

    #[test]
    fn unchanged_heartbeat_does_not_notify_but_refreshes() {
        let mut registry = ClientRegistry::new();
        let data = clustering("c1", &[("T", "*", 1)]);
        beat(&mut registry, 1, &data, 0);
        let version = registry.subscriptions_version();
        let again = beat(&mut registry, 1, &data, 30_000);
        assert!(again.groups_changed.is_empty());
        assert_eq!(registry.subscriptions_version(), version);
        let member = &registry.consumer_group("G").expect("group").members()[&conn(1)];
        assert_eq!(member.last_update_ms, 30_000);
        assert_eq!(member.peer_addr, "10.0.0.1:50001");
    }

    #[test]
    fn topic_set_change_notifies_and_tag_change_only_replaces() {
        let mut registry = ClientRegistry::new();
        beat(&mut registry, 1, &clustering("c1", &[("T", "TagA", 1)]), 0);
        beat(&mut registry, 2, &clustering("c2", &[("T", "TagA", 1)]), 0);

        let added = beat(
            &mut registry,
            1,
            &clustering("c1", &[("T", "TagA", 1), ("U", "*", 1)]),
            5,
        );
        assert_eq!(added.groups_changed[0].notify, vec![conn(1), conn(2)]);
        assert!(registry.subscription("G", "U").is_some());

        let removed = beat(&mut registry, 1, &clustering("c1", &[("T", "TagA", 1)]), 6);
        assert_eq!(removed.groups_changed.len(), 1, "removing a topic notifies");
        assert!(registry.subscription("G", "U").is_none());

        let version = registry.subscriptions_version();
        let retagged = beat(&mut registry, 1, &clustering("c1", &[("T", "TagB", 2)]), 7);
        assert!(
            retagged.groups_changed.is_empty(),
            "Java does not notify on a tag change"
        );
        assert!(
            registry.subscriptions_version() > version,
            "but the snapshot must move"
        );
        let sub = registry.subscription("G", "T").expect("sub");
        assert_eq!(sub.tags_set, vec!["TagB".to_owned()]);

        let stale = beat(&mut registry, 2, &clustering("c2", &[("T", "TagA", 1)]), 8);
        assert!(stale.groups_changed.is_empty());
        assert_eq!(
            registry.subscription("G", "T").map(|s| s.sub_version),
            Some(2),
            "older version ignored"
        );
    }

    #[test]
    fn tag_codes_are_recomputed_not_trusted() {
        let mut registry = ClientRegistry::new();
        let mut data = clustering("c1", &[("T", "TagA || TagB", 1)]);
        data.consumer_data_set[0].subscription_data_set[0].code_set = vec![1, 2];
        beat(&mut registry, 1, &data, 0);
        let sub = registry.subscription("G", "T").expect("sub");
        assert_eq!(sub.code_set, vec![2_598_919, 2_598_920]);
        assert!(sub.matches_tags_code(2_598_920));
        let snapshot = registry.subscriptions_snapshot();
        assert_eq!(snapshot.subscription("G", "T"), Some(sub));
    }

    #[test]
    fn broadcasting_and_notify_disabled_groups_never_notify() {
        let mut registry = ClientRegistry::new();
        let data = heartbeat(
            "c1",
            vec![consumer("B", MessageModel::Broadcasting, &[("T", "*", 1)])],
            &[],
        );
        let outcome = beat(&mut registry, 1, &data, 0);
        assert_eq!(outcome.groups_changed.len(), 1);
        assert!(outcome.groups_changed[0].notify.is_empty());
        let second = beat(
            &mut registry,
            2,
            &heartbeat("c2", data.consumer_data_set.clone(), &[]),
            0,
        );
        assert!(second.groups_changed[0].notify.is_empty());
        assert!(registry
            .connection_closed(conn(1))
            .iter()
            .all(|c| c.notify.is_empty()));

        let quiet = Some(GroupPolicy {
            notify_consumer_ids_changed: false,
        });
        let outcome = registry
            .heartbeat(&meta(3), &clustering("c3", &[("T", "*", 1)]), 0, |_| quiet)
            .expect("ok");
        assert!(outcome.groups_changed[0].notify.is_empty());
    }

    #[test]
    fn unknown_groups_are_skipped() {
        let mut registry = ClientRegistry::new();
        let data = heartbeat(
            "c1",
            vec![
                consumer("Known", MessageModel::Clustering, &[]),
                consumer("Unknown", MessageModel::Clustering, &[]),
            ],
            &[],
        );
        let outcome = registry
            .heartbeat(&meta(1), &data, 0, |group| {
                (group == "Known").then_some(GroupPolicy {
                    notify_consumer_ids_changed: true,
                })
            })
            .expect("ok");
        assert_eq!(outcome.groups_skipped, vec!["Unknown".to_owned()]);
        assert_eq!(outcome.retry_topics_needed, vec!["%RETRY%Known".to_owned()]);
        assert!(registry.consumer_group("Unknown").is_none());
    }

    #[test]
    fn heartbeat_v2_fingerprint_drives_sub_changed() {
        let mut registry = ClientRegistry::new();
        let mut data = clustering("c1", &[("T", "*", 1)]);
        data.heartbeat_fingerprint = 11;
        assert!(
            !beat(&mut registry, 1, &data, 0).sub_changed,
            "first full v2 heartbeat"
        );
        data.without_sub = true;
        data.consumer_data_set[0].subscription_data_set.clear();
        let light = beat(&mut registry, 1, &data, 1);
        assert!(!light.sub_changed);
        assert!(
            registry.subscription("G", "T").is_some(),
            "withoutSub keeps subscriptions"
        );
        data.heartbeat_fingerprint = 12;
        assert!(
            beat(&mut registry, 1, &data, 2).sub_changed,
            "fingerprint moved"
        );

        let mut fresh = ClientRegistry::new();
        assert!(
            beat(&mut fresh, 1, &data, 0).sub_changed,
            "withoutSub for an unknown group forces a full heartbeat"
        );
    }

    #[test]
    fn unregister_removes_and_notifies_the_rest() {
        let mut registry = ClientRegistry::new();
        beat(
            &mut registry,
            1,
            &heartbeat(
                "c1",
                vec![consumer("G", MessageModel::Clustering, &[])],
                &["P"],
            ),
            0,
        );
        beat(&mut registry, 2, &clustering("c2", &[]), 0);
        let changes = registry.unregister(conn(1), "c1", Some("P"), Some("G"));
        assert_eq!(
            changes,
            vec![GroupChange {
                group: "G".into(),
                notify: vec![conn(2)],
                group_removed: false
            }]
        );
        assert!(registry.producer_connection("P").is_none());
        assert!(
            registry
                .unregister(conn(1), "c1", None, Some("G"))
                .is_empty(),
            "already gone"
        );
        assert!(registry
            .unregister(conn(9), "nobody", Some("X"), Some("Missing"))
            .is_empty());

        let last = registry.unregister(conn(2), "c2", None, Some("G"));
        assert_eq!(
            last,
            vec![GroupChange {
                group: "G".into(),
                notify: vec![],
                group_removed: true
            }]
        );
        assert!(registry.consumer_group("G").is_none());
        assert!(registry.consumer_ids("G").is_empty());
        assert!(registry.subscriptions_snapshot().group("G").is_none());
    }

    #[test]
    fn unregister_by_client_id_covers_its_other_connections() {
        let mut registry = ClientRegistry::new();
        beat(&mut registry, 1, &clustering("c1", &[]), 0);
        beat(&mut registry, 3, &clustering("c1", &[]), 0);
        beat(&mut registry, 2, &clustering("c2", &[]), 0);
        assert_eq!(
            registry.consumer_ids("G"),
            vec!["c1".to_owned(), "c2".to_owned()],
            "deduplicated"
        );
        let changes = registry.unregister(conn(1), "c1", None, Some("G"));
        assert_eq!(changes[0].notify, vec![conn(2)]);
    }

    #[test]
    fn connection_close_leaves_every_group() {
        let mut registry = ClientRegistry::new();
        let data = heartbeat(
            "c1",
            vec![
                consumer("G", MessageModel::Clustering, &[]),
                consumer("H", MessageModel::Clustering, &[]),
            ],
            &["P"],
        );
        beat(&mut registry, 1, &data, 0);
        beat(&mut registry, 2, &clustering("c2", &[]), 0);
        let mut changes = registry.connection_closed(conn(1));
        changes.sort_by(|a, b| a.group.cmp(&b.group));
        assert_eq!(
            changes,
            vec![
                GroupChange {
                    group: "G".into(),
                    notify: vec![conn(2)],
                    group_removed: false
                },
                GroupChange {
                    group: "H".into(),
                    notify: vec![],
                    group_removed: true
                },
            ]
        );
        assert_eq!(registry.producer_group_count(), 0);
        assert_eq!(registry.consumer_group_count(), 1);
        assert!(registry.connection_closed(conn(1)).is_empty());
    }

    #[test]
    fn a_batch_of_closes_is_one_change_per_group() {
        let mut registry = ClientRegistry::new();
        for id in 1..=5 {
            beat(&mut registry, id, &clustering(&format!("c{id}"), &[]), 0);
        }
        let closed: std::collections::HashSet<ConnKey> = [conn(1), conn(2), conn(4)].into();
        let changes = registry.connections_closed(&closed);
        assert_eq!(
            changes,
            vec![GroupChange {
                group: "G".into(),
                notify: vec![conn(3), conn(5)],
                group_removed: false
            }]
        );
        assert_eq!(
            registry.consumer_ids("G"),
            vec!["c3".to_owned(), "c5".to_owned()]
        );
        assert!(registry.connections_closed(&closed).is_empty());
        assert!(registry.connections_closed(&Default::default()).is_empty());
    }

    #[test]
    fn expiry_after_120_seconds() {
        let mut registry = ClientRegistry::new();
        beat(
            &mut registry,
            1,
            &heartbeat(
                "c1",
                vec![consumer("G", MessageModel::Clustering, &[])],
                &["P"],
            ),
            0,
        );
        beat(&mut registry, 2, &clustering("c2", &[]), 60_000);
        assert_eq!(
            registry.expire(CLIENT_CHANNEL_EXPIRY_MS),
            ExpireOutcome::default(),
            "exactly 120 s is not expired"
        );
        let outcome = registry.expire(CLIENT_CHANNEL_EXPIRY_MS + 1);
        assert_eq!(outcome.expired, vec![conn(1)]);
        assert_eq!(
            outcome.groups_changed,
            vec![GroupChange {
                group: "G".into(),
                notify: vec![conn(2)],
                group_removed: false
            }]
        );
        assert!(
            registry.producer_connection("P").is_none(),
            "producers expire too"
        );
        let later = registry.expire(60_000 + CLIENT_CHANNEL_EXPIRY_MS + 1);
        assert_eq!(later.expired, vec![conn(2)]);
        assert!(later.groups_changed[0].group_removed);
        assert_eq!(registry.consumer_group_count(), 0);
    }

    #[test]
    fn connection_bodies_and_lookups() {
        let mut registry = ClientRegistry::new();
        let mut data = heartbeat(
            "c1",
            vec![consumer("G", MessageModel::Clustering, &[("T", "*", 4)])],
            &["P"],
        );
        data.consumer_data_set[0].consume_from_where = ConsumeFromWhere::ConsumeFromFirstOffset;
        beat(&mut registry, 1, &data, 0);
        let body = registry.consumer_connection("G").expect("online");
        assert_eq!(body.connection_set.len(), 1);
        assert_eq!(body.connection_set[0].client_id, "c1");
        assert_eq!(body.connection_set[0].client_addr, "10.0.0.1:50001");
        assert_eq!(body.connection_set[0].version, 479);
        assert_eq!(
            body.consume_from_where,
            ConsumeFromWhere::ConsumeFromFirstOffset
        );
        assert_eq!(body.subscription_table["T"].sub_version, 4);
        assert!(registry.consumer_connection("Missing").is_none());
        let producers = registry.producer_connection("P").expect("online");
        assert_eq!(producers.connection_set[0].client_id, "c1");
        assert_eq!(
            registry
                .find_consumer_channel("G", "c1")
                .map(|(key, _)| key),
            Some(conn(1))
        );
        assert!(registry.find_consumer_channel("G", "c9").is_none());
        assert_eq!(registry.producer_members("P").map(BTreeMap::len), Some(1));
        let group = registry.consumer_group("G").expect("group");
        assert_eq!(group.consume_type(), ConsumeType::ConsumePassively);
        assert_eq!(group.message_model(), MessageModel::Clustering);
        assert_eq!(
            group.consume_from_where(),
            ConsumeFromWhere::ConsumeFromFirstOffset
        );
        assert_eq!(group.last_update_ms(), 0);
        assert_eq!(group.subscriptions().len(), 1);
    }

    #[test]
    fn snapshot_versions_and_caching() {
        let mut registry = ClientRegistry::new();
        let empty = registry.subscriptions_snapshot();
        assert!(Arc::ptr_eq(&empty, &registry.subscriptions_snapshot()));
        beat(&mut registry, 1, &clustering("c1", &[("T", "*", 1)]), 0);
        let first = registry.subscriptions_snapshot();
        assert!(first.supersedes(&empty));
        assert_eq!(
            first.group("G").map(|g| g.message_model),
            Some(MessageModel::Clustering)
        );
        beat(&mut registry, 1, &clustering("c1", &[("T", "*", 1)]), 1);
        assert!(
            Arc::ptr_eq(&first, &registry.subscriptions_snapshot()),
            "no change, same snapshot"
        );
        let pull = heartbeat(
            "c1",
            vec![ConsumerData {
                consume_type: ConsumeType::ConsumeActively,
                ..consumer("G", MessageModel::Clustering, &[("T", "*", 1)])
            }],
            &[],
        );
        beat(&mut registry, 1, &pull, 2);
        let second = registry.subscriptions_snapshot();
        assert!(second.supersedes(&first));
        assert_eq!(
            second.group("G").map(|g| g.consume_type),
            Some(ConsumeType::ConsumeActively)
        );
        assert_eq!(second.version(), registry.subscriptions_version());
    }

    #[test]
    fn limits_reject_the_whole_heartbeat() {
        let mut registry = ClientRegistry::new();
        let long = "x".repeat(CLIENT_NAME_LENGTH_MAX + 1);
        let too_long = registry.heartbeat(&meta(1), &clustering(&long, &[]), 0, |_| NOTIFY);
        assert!(matches!(too_long, Err(ClientError::NameTooLong { .. })));
        let long_group = heartbeat(
            "c",
            vec![consumer(&long, MessageModel::Clustering, &[])],
            &[],
        );
        assert!(matches!(
            registry.heartbeat(&meta(1), &long_group, 0, |_| NOTIFY),
            Err(ClientError::NameTooLong { .. })
        ));

        let topics: Vec<String> = (0..=SUBSCRIPTIONS_PER_GROUP_MAX)
            .map(|i| format!("T{i}"))
            .collect();
        let subs: Vec<(&str, &str, i64)> = topics.iter().map(|t| (t.as_str(), "*", 1)).collect();
        let many = registry.heartbeat(&meta(1), &clustering("c1", &subs), 0, |_| NOTIFY);
        assert!(matches!(
            many,
            Err(ClientError::Limit {
                what: "subscriptions per consumer group",
                ..
            })
        ));
        assert_eq!(registry.consumer_group_count(), 0, "nothing applied");

        for id in 0..u64::try_from(CLIENTS_PER_GROUP_MAX).expect("fits") {
            registry
                .heartbeat(&meta(id), &clustering(&format!("c{id}"), &[]), 0, |_| {
                    NOTIFY
                })
                .expect("below limit");
        }
        let extra = registry.heartbeat(&meta(1_000_000), &clustering("extra", &[]), 0, |_| NOTIFY);
        assert!(matches!(
            extra,
            Err(ClientError::Limit {
                what: "clients per group",
                ..
            })
        ));
        let refresh = registry.heartbeat(&meta(0), &clustering("c0", &[]), 1, |_| NOTIFY);
        assert!(
            refresh.is_ok(),
            "existing members still refresh at the limit"
        );
    }

    #[test]
    fn group_count_limits() {
        let mut registry = ClientRegistry::new();
        let max = u64::try_from(CONSUMER_GROUPS_MAX).expect("fits");
        for index in 0..max {
            let data = heartbeat(
                "c",
                vec![consumer(
                    &format!("G{index}"),
                    MessageModel::Clustering,
                    &[],
                )],
                &[],
            );
            registry
                .heartbeat(&meta(1), &data, 0, |_| NOTIFY)
                .expect("below limit");
        }
        let data = heartbeat(
            "c",
            vec![consumer("one-more", MessageModel::Clustering, &[])],
            &[],
        );
        assert!(matches!(
            registry.heartbeat(&meta(1), &data, 0, |_| NOTIFY),
            Err(ClientError::Limit {
                what: "consumer groups",
                ..
            })
        ));

        let producers: Vec<String> = (0..PRODUCER_GROUPS_MAX).map(|i| format!("P{i}")).collect();
        let names: Vec<&str> = producers.iter().map(String::as_str).collect();
        registry
            .heartbeat(&meta(2), &heartbeat("p", vec![], &names), 0, |_| NOTIFY)
            .expect("at limit");
        let one_more =
            registry.heartbeat(&meta(2), &heartbeat("p", vec![], &["P-extra"]), 0, |_| {
                NOTIFY
            });
        assert!(matches!(
            one_more,
            Err(ClientError::Limit {
                what: "producer groups",
                ..
            })
        ));
    }
}
