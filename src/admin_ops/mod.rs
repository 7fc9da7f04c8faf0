//! The operator commands of `rmq admin` beyond the first set in [`crate::admin`], named after
//! mqadmin's (in parentheses): subscription groups (updateSubGroup, deleteSubGroup), client
//! connections (consumerConnection, producerConnection), message lookup (queryMsgById,
//! queryMsgByKey, queryMsgByUniqueKey, queryMsgTraceById in [`trace`]), broker config (getBrokerConfig, updateBrokerConfig),
//! statsAll, topicClusterList, cleanExpiredCQ, a quick send and pull from a shell (sendMessage,
//! consumeMessage) and the NameServer-side drain of a broker (wipeWritePerm, addWritePerm).
//! Each operation returns data; [`render`] prints it as mqadmin's tables and [`json`] as JSON
//! for scripts; [`cli`] is the clap surface.
//! Runs in the CLI's own runtime over the remoting protocol; never touches broker state
//! directly, and never changes offsets (its pulls commit nothing).

pub mod cli;
pub mod json;
pub mod render;
pub mod trace;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rmq_net::codec::body::client::{ConsumerConnection, ProducerConnection};
use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::topic::perm;
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::GetConsumerConnectionListRequestHeader;
use rmq_net::codec::header::namesrv::{
    AddWritePermOfBrokerRequestHeader, AddWritePermOfBrokerResponseHeader,
    WipeWritePermOfBrokerRequestHeader, WipeWritePermOfBrokerResponseHeader,
};
use rmq_net::codec::header::pull::{
    PullMessageRequestHeader, PullMessageResponseHeader, PullSysFlag,
};
use rmq_net::codec::header::query::{QueryMessageRequestHeader, ViewMessageRequestHeader};
use rmq_net::codec::header::send::{
    SendHeaderForm, SendMessageRequestHeader, SendMessageResponseHeader,
};
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::{decode_all, msg_id, CrcCheck, MessageRecord, Properties};
use rmq_net::{ExtFields, RemotingCommand};

use crate::admin::{self, call, AdminError};
use crate::tables::groups::{SubscriptionGroupConfig, SubscriptionGroupWrapper};

/// Most messages `query-msg-by-key` asks each broker for (Java's default `maxNum` is 64).
pub const QUERY_MAX_NUM_DEFAULT: i32 = 64;

/// Most messages one `consume-message` prints (it stops earlier when the queues are drained).
pub const CONSUME_COUNT_MAX: usize = 10_000;

/// Messages asked for per pull by `consume-message`.
const CONSUME_PULL_BATCH: i32 = 32;

/// Java's `MixAll.TOOLS_CONSUMER_GROUP`: the group `consume-message` pulls as.
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";

/// Java's `MixAll.SELF_TEST_PRODUCER_GROUP`-like group `send-message` sends as.
pub const TOOLS_PRODUCER_GROUP: &str = "TOOLS_PRODUCER";

/// An operation failure.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A remote call failed or was refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// A local file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A reply did not decode.
    #[error("{0}")]
    Codec(#[from] rmq_net::CodecError),
    /// Bad arguments, or nothing found to act on.
    #[error("{0}")]
    Usage(String),
}

/// Where a broker-side command goes: one broker, or every master of a cluster (every cluster
/// when neither is given).
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// NameServer address.
    pub namesrv: String,
    /// One broker address.
    pub broker: Option<String>,
    /// A cluster name.
    pub cluster: Option<String>,
}

impl Target {
    /// The broker addresses this target names.
    ///
    /// # Errors
    /// [`OpsError`] when the NameServer cannot be asked or knows no master.
    pub async fn brokers(&self) -> Result<Vec<String>, OpsError> {
        match &self.broker {
            Some(broker) => Ok(vec![broker.clone()]),
            None => Ok(admin::master_addrs(&self.namesrv, self.cluster.as_deref()).await?),
        }
    }

    /// The broker addresses this target names, slaves included (mqadmin's getBrokerConfig
    /// and updateBrokerConfig with `-c` act on masters and slaves).
    ///
    /// # Errors
    /// [`OpsError`] when the NameServer cannot be asked or knows no broker.
    pub async fn brokers_and_slaves(&self) -> Result<Vec<String>, OpsError> {
        if let Some(broker) = &self.broker {
            return Ok(vec![broker.clone()]);
        }
        let info = admin::cluster_info(&self.namesrv).await?;
        let mut addrs = Vec::new();
        for (cluster, names) in &info.cluster_addr_table {
            if self.cluster.as_ref().is_some_and(|c| c != cluster) {
                continue;
            }
            for name in names {
                if let Some(data) = info.broker_addr_table.get(name) {
                    addrs.extend(data.broker_addrs.values().cloned());
                }
            }
        }
        if addrs.is_empty() {
            return Err(OpsError::Usage(format!(
                "no broker found (cluster {:?})",
                self.cluster
            )));
        }
        Ok(addrs)
    }
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP on every broker of `target`; returns the brokers.
///
/// # Errors
/// [`OpsError`] of the first broker that refused.
pub async fn update_sub_group(
    target: &Target,
    config: &SubscriptionGroupConfig,
) -> Result<Vec<String>, OpsError> {
    let brokers = target.brokers().await?;
    for broker in &brokers {
        let request = RemotingCommand::request(
            RequestCode::UpdateAndCreateSubscriptionGroup,
            ExtFields::new(),
        )
        .with_body(config.to_json());
        call(broker, request).await?;
    }
    Ok(brokers)
}

/// DELETE_SUBSCRIPTIONGROUP on every broker of `target`; returns the brokers.
///
/// # Errors
/// [`OpsError`] of the first broker that refused.
pub async fn delete_sub_group(target: &Target, group: &str) -> Result<Vec<String>, OpsError> {
    let brokers = target.brokers().await?;
    for broker in &brokers {
        let mut ext = ExtFields::new();
        ext.insert("groupName", group);
        call(
            broker,
            RemotingCommand::request(RequestCode::DeleteSubscriptionGroup, ext),
        )
        .await?;
    }
    Ok(brokers)
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG from one broker.
///
/// # Errors
/// [`OpsError`].
pub async fn sub_groups(broker: &str) -> Result<SubscriptionGroupWrapper, OpsError> {
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::GetAllSubscriptionGroupConfig, ExtFields::new()),
    )
    .await?;
    Ok(SubscriptionGroupWrapper::from_json(&reply.body)?)
}

/// GET_CONSUMER_CONNECTION_LIST for `group` from every master of `target` (Java asks one
/// broker; a group connects to all of them), merged: connections by client id, subscriptions
/// by topic.
///
/// # Errors
/// [`OpsError`]; CONSUMER_NOT_ONLINE (as [`AdminError::Refused`]) when no broker knows a
/// connection of the group.
pub async fn consumer_connection(
    target: &Target,
    group: &str,
) -> Result<ConsumerConnection, OpsError> {
    let header = GetConsumerConnectionListRequestHeader {
        consumer_group: group.to_owned(),
    };
    let mut merged: Option<ConsumerConnection> = None;
    let mut last_refusal = None;
    for broker in target.brokers().await? {
        let request =
            RemotingCommand::request(RequestCode::GetConsumerConnectionList, header.to_ext());
        match call(&broker, request).await {
            Ok(reply) => {
                let one = ConsumerConnection::from_json(&reply.body)?;
                match &mut merged {
                    None => merged = Some(one),
                    Some(all) => {
                        for connection in one.connection_set {
                            if !all
                                .connection_set
                                .iter()
                                .any(|c| c.client_id == connection.client_id)
                            {
                                all.connection_set.push(connection);
                            }
                        }
                        all.subscription_table.extend(one.subscription_table);
                    }
                }
            }
            Err(
                err @ AdminError::Refused {
                    code: ResponseCode::ConsumerNotOnline,
                    ..
                },
            ) => last_refusal = Some(err),
            Err(err) => return Err(err.into()),
        }
    }
    match (merged, last_refusal) {
        (Some(mut all), _) => {
            all.connection_set
                .sort_by(|a, b| a.client_id.cmp(&b.client_id));
            Ok(all)
        }
        (None, Some(err)) => Err(err.into()),
        (None, None) => Err(OpsError::Usage(format!("no broker to ask about {group}"))),
    }
}

/// GET_PRODUCER_CONNECTION_LIST for `group` from the master of every broker in `topic`'s
/// route (Java asks the first), merged by client id.
///
/// # Errors
/// [`OpsError`].
pub async fn producer_connection(
    namesrv: &str,
    group: &str,
    topic: &str,
) -> Result<ProducerConnection, OpsError> {
    let route = admin::topic_route(namesrv, topic).await?;
    let mut merged = ProducerConnection::default();
    for broker in &route.broker_datas {
        let Some(master) = broker.broker_addrs.get(&0) else {
            continue;
        };
        let mut ext = ExtFields::new();
        ext.insert("producerGroup", group);
        let reply = call(
            master,
            RemotingCommand::request(RequestCode::GetProducerConnectionList, ext),
        )
        .await?;
        let one = ProducerConnection::from_json(&reply.body)?;
        for connection in one.connection_set {
            if !merged
                .connection_set
                .iter()
                .any(|c| c.client_id == connection.client_id)
            {
                merged.connection_set.push(connection);
            }
        }
    }
    merged
        .connection_set
        .sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(merged)
}

/// VIEW_MESSAGE_BY_ID: decodes the offset msgId into the broker address and CommitLog
/// offset, asks that broker.
///
/// # Errors
/// [`OpsError::Usage`] for a msgId that is not an offset msgId; [`OpsError`] otherwise.
pub async fn query_msg_by_id(id: &str) -> Result<MessageRecord, OpsError> {
    let (addr, offset) = msg_id::decode(id)
        .map_err(|e| OpsError::Usage(format!("{id} is not an offset msgId: {e}")))?;
    let header = ViewMessageRequestHeader {
        offset,
        topic: None,
    };
    let reply = call(
        &addr.to_string(),
        RemotingCommand::request(RequestCode::ViewMessageById, header.to_ext()),
    )
    .await?;
    let mut records = decode_all(&reply.body, CrcCheck::Verify)?;
    if records.len() != 1 {
        return Err(OpsError::Usage(format!(
            "{addr} answered {} records for offset {offset}",
            records.len()
        )));
    }
    Ok(records.remove(0))
}

/// QUERY_MESSAGE by KEYS (or by UNIQ_KEY when `unique`) on the master of every broker in
/// `topic`'s route, merged newest first.
///
/// # Errors
/// [`OpsError`]; a broker's QUERY_NOT_FOUND is no match there.
pub async fn query_msg(
    namesrv: &str,
    topic: &str,
    key: &str,
    max_num: i32,
    unique: bool,
) -> Result<Vec<MessageRecord>, OpsError> {
    let route = admin::topic_route(namesrv, topic).await?;
    let header = QueryMessageRequestHeader {
        topic: topic.to_owned(),
        key: key.to_owned(),
        max_num,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        unique_key_query: unique.then_some(true),
    };
    let mut records = Vec::new();
    for broker in &route.broker_datas {
        let Some(master) = broker.broker_addrs.get(&0) else {
            continue;
        };
        let request = RemotingCommand::request(RequestCode::QueryMessage, header.to_ext());
        match call(master, request).await {
            Ok(reply) => records.extend(decode_all(&reply.body, CrcCheck::Verify)?),
            Err(AdminError::Refused {
                code: ResponseCode::QueryNotFound,
                ..
            }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    records.sort_by(|a, b| {
        b.store_timestamp
            .cmp(&a.store_timestamp)
            .then(a.physical_offset.cmp(&b.physical_offset))
    });
    Ok(records)
}

/// GET_BROKER_CONFIG of every broker of `target`, slaves included: address -> key -> value.
///
/// # Errors
/// [`OpsError`] of the first broker that failed.
pub async fn get_broker_config(
    target: &Target,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, OpsError> {
    let mut out = BTreeMap::new();
    for broker in target.brokers_and_slaves().await? {
        let reply = call(
            &broker,
            RemotingCommand::request(RequestCode::GetBrokerConfig, ExtFields::new()),
        )
        .await?;
        let text = String::from_utf8_lossy(&reply.body);
        let props = crate::config::parse_properties(&text)
            .map_err(|e| OpsError::Usage(format!("{broker}: config body: {e}")))?;
        out.insert(broker, props);
    }
    Ok(out)
}

/// UPDATE_BROKER_CONFIG (`key=value`) on every broker of `target`, slaves included; returns
/// the brokers.
///
/// # Errors
/// [`OpsError`] of the first broker that refused (a key that cannot change at run time comes
/// back as NO_PERMISSION naming it).
pub async fn update_broker_config(
    target: &Target,
    key: &str,
    value: &str,
) -> Result<Vec<String>, OpsError> {
    let body = crate::broker::live_config::update_body(&BTreeMap::from([(
        key.to_owned(),
        value.to_owned(),
    )]));
    let brokers = target.brokers_and_slaves().await?;
    for broker in &brokers {
        let request = RemotingCommand::request(RequestCode::UpdateBrokerConfig, ExtFields::new())
            .with_body(body.clone());
        call(broker, request).await?;
    }
    Ok(brokers)
}

/// CLEAN_EXPIRED_CONSUMEQUEUE on every broker of `target`: broker -> what it cleaned (per
/// shard, from the reply's remark).
///
/// # Errors
/// [`OpsError`] of the first broker that failed.
pub async fn clean_expired_cq(target: &Target) -> Result<BTreeMap<String, String>, OpsError> {
    let mut out = BTreeMap::new();
    for broker in target.brokers().await? {
        let reply = call(
            &broker,
            RemotingCommand::request(RequestCode::CleanExpiredConsumequeue, ExtFields::new()),
        )
        .await?;
        out.insert(broker, reply.remark.clone().unwrap_or_default());
    }
    Ok(out)
}

/// The clusters `topic`'s brokers belong to.
///
/// # Errors
/// [`OpsError`].
pub async fn topic_cluster_list(namesrv: &str, topic: &str) -> Result<BTreeSet<String>, OpsError> {
    let route = admin::topic_route(namesrv, topic).await?;
    let info = admin::cluster_info(namesrv).await?;
    let names: BTreeSet<&str> = route
        .broker_datas
        .iter()
        .map(|b| b.broker_name.as_str())
        .collect();
    Ok(info
        .cluster_addr_table
        .iter()
        .filter(|(_, brokers)| brokers.iter().any(|b| names.contains(b.as_str())))
        .map(|(cluster, _)| cluster.clone())
        .collect())
}

/// WIPE_WRITE_PERM_OF_BROKER (`wipe`) or ADD_WRITE_PERM_OF_BROKER on one NameServer: the
/// topics whose queue data of `broker_name` changed.
///
/// # Errors
/// [`OpsError`].
pub async fn write_perm(namesrv: &str, broker_name: &str, wipe: bool) -> Result<i32, OpsError> {
    if wipe {
        let header = WipeWritePermOfBrokerRequestHeader {
            broker_name: broker_name.to_owned(),
        };
        let reply = call(
            namesrv,
            RemotingCommand::request(RequestCode::WipeWritePermOfBroker, header.to_ext()),
        )
        .await?;
        Ok(WipeWritePermOfBrokerResponseHeader::decode_command(&reply)?.wipe_topic_count)
    } else {
        let header = AddWritePermOfBrokerRequestHeader {
            broker_name: broker_name.to_owned(),
        };
        let reply = call(
            namesrv,
            RemotingCommand::request(RequestCode::AddWritePermOfBroker, header.to_ext()),
        )
        .await?;
        Ok(AddWritePermOfBrokerResponseHeader::decode_command(&reply)?.add_topic_count)
    }
}

/// One `stats-all` row: a topic and one group consuming it (or none).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsRow {
    /// Topic.
    pub topic: String,
    /// Consumer group (empty: no group has offsets on the topic).
    pub consumer_group: String,
    /// Messages stored and not yet consumed by the group, over every master.
    pub accumulation: i64,
    /// Messages put into the topic per second over the last complete minute, summed over
    /// masters (VIEW_BROKER_STATS_DATA `TOPIC_PUT_NUMS` statsMinute.tps).
    pub in_tps: f64,
    /// The group's consume TPS on the topic, summed over masters.
    pub out_tps: f64,
    /// Messages put into the topic in the last 24 hours (Java's `compute24HourSum` of
    /// `TOPIC_PUT_NUMS`), summed over masters.
    pub in_msg_24_hour: i64,
    /// Messages of the topic the group got in the last 24 hours (`GROUP_GET_NUMS` of
    /// `topic@group`), summed over masters.
    pub out_msg_24_hour: i64,
    /// Messages stored in the topic (max - min offset over its queues).
    pub stored: i64,
}

/// VIEW_BROKER_STATS_DATA (315) of one broker; `None` when it has no such item or key
/// (SYSTEM_ERROR "not exist", as Java) or does not serve the code.
///
/// # Errors
/// [`OpsError`] of a failed call or an undecodable body.
pub async fn broker_stats(
    broker: &str,
    stats_name: &str,
    stats_key: &str,
) -> Result<Option<rmq_net::codec::body::broker_stats::BrokerStatsData>, OpsError> {
    use rmq_net::codec::body::broker_stats::BrokerStatsData;
    use rmq_net::codec::header::admin::ViewBrokerStatsDataRequestHeader;
    let header = ViewBrokerStatsDataRequestHeader {
        stats_name: stats_name.to_owned(),
        stats_key: stats_key.to_owned(),
    };
    let request = RemotingCommand::request(RequestCode::ViewBrokerStatsData, header.to_ext());
    match call(broker, request).await {
        Ok(reply) => Ok(Some(BrokerStatsData::from_json(&reply.body)?)),
        Err(AdminError::Refused {
            code: ResponseCode::SystemError | ResponseCode::RequestCodeNotSupported,
            ..
        }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Java `StatsAllSubCommand.compute24HourSum`: the day's sum, else the hour's, else the
/// minute's.
fn sum_24_hour(data: &rmq_net::codec::body::broker_stats::BrokerStatsData) -> i64 {
    [
        data.stats_day.sum,
        data.stats_hour.sum,
        data.stats_minute.sum,
    ]
    .into_iter()
    .find(|sum| *sum != 0)
    .unwrap_or(0)
}

/// `statsAll`: for every topic the NameServer lists (not `%RETRY%`/`%DLQ%`, and only
/// `topic` when given), the messages stored, and for every subscription group with offsets on
/// it (Java's `queryTopicConsumeByWho`: GET_CONSUME_STATS of the group without a topic lists
/// the topics it has offsets on) the accumulation and consume TPS on that topic, summed over
/// the masters of `target`.
///
/// # Errors
/// [`OpsError`] of the first call that failed.
pub async fn stats_all(target: &Target, topic: Option<&str>) -> Result<Vec<StatsRow>, OpsError> {
    let masters = target.brokers().await?;
    let topics: Vec<String> = match topic {
        Some(topic) => vec![topic.to_owned()],
        None => admin::topic_list(&target.namesrv)
            .await?
            .topic_list
            .into_iter()
            .filter(|t| !t.starts_with("%RETRY%") && !t.starts_with("%DLQ%"))
            .collect(),
    };
    let mut groups = BTreeSet::new();
    for master in &masters {
        groups.extend(
            sub_groups(master)
                .await?
                .subscription_group_table
                .into_keys(),
        );
    }
    // topic -> groups with offsets on it.
    let mut consumers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in &groups {
        for master in &masters {
            match admin::consume_stats(master, group, None).await {
                Ok(stats) => {
                    for queue in stats.offset_table.keys() {
                        consumers
                            .entry(queue.topic.clone())
                            .or_default()
                            .insert(group.clone());
                    }
                }
                Err(AdminError::Refused { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    let mut rows = Vec::new();
    for topic in &topics {
        let (mut in_tps, mut in_msg_24_hour) = (0.0, 0);
        for master in &masters {
            if let Some(data) = broker_stats(master, "TOPIC_PUT_NUMS", topic).await? {
                in_tps += data.stats_minute.tps;
                in_msg_24_hour += sum_24_hour(&data);
            }
        }
        let mut stored = 0;
        for master in &masters {
            match admin::topic_stats(master, topic).await {
                Ok(stats) => {
                    stored += stats
                        .offset_table
                        .values()
                        .map(|o| o.max_offset - o.min_offset)
                        .sum::<i64>();
                }
                Err(AdminError::Refused {
                    code: ResponseCode::TopicNotExist,
                    ..
                }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let groups = consumers.remove(topic).unwrap_or_default();
        if groups.is_empty() {
            rows.push(StatsRow {
                topic: topic.clone(),
                consumer_group: String::new(),
                accumulation: 0,
                in_tps,
                out_tps: 0.0,
                in_msg_24_hour,
                out_msg_24_hour: 0,
                stored,
            });
        }
        for group in groups {
            let mut progress = admin::ConsumerProgress::default();
            for master in &masters {
                match admin::consume_stats(master, &group, Some(topic)).await {
                    Ok(stats) => progress.merge(stats),
                    Err(AdminError::Refused { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            let mut out_msg_24_hour = 0;
            let key = format!("{topic}@{group}");
            for master in &masters {
                if let Some(data) = broker_stats(master, "GROUP_GET_NUMS", &key).await? {
                    out_msg_24_hour += sum_24_hour(&data);
                }
            }
            rows.push(StatsRow {
                topic: topic.clone(),
                consumer_group: group,
                accumulation: progress.diff_total(),
                in_tps,
                out_tps: progress.consume_tps,
                in_msg_24_hour,
                out_msg_24_hour,
                stored,
            });
        }
    }
    Ok(rows)
}

/// What `send-message` sends.
#[derive(Debug, Clone)]
pub struct SendSpec {
    /// Topic.
    pub topic: String,
    /// Body.
    pub body: Vec<u8>,
    /// KEYS (space-separated).
    pub keys: Option<String>,
    /// TAGS.
    pub tags: Option<String>,
    /// Only this broker name.
    pub broker_name: Option<String>,
    /// Only this queue.
    pub queue_id: Option<i32>,
}

/// One `send-message` result (Java's `#Broker Name  #QID  #Send Result  #MsgId`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOutcome {
    /// Broker name.
    pub broker_name: String,
    /// Queue.
    pub queue_id: i32,
    /// `SEND_OK`, or the refusal.
    pub send_result: String,
    /// UNIQ_KEY (the client msgId).
    pub msg_id: String,
    /// The offset msgId (broker address + CommitLog offset; what `query-msg-by-id` takes).
    pub offset_msg_id: String,
    /// Queue offset.
    pub queue_offset: i64,
}

/// Sends one message with SEND_MESSAGE_V2 to a writable queue of `topic` (the given broker
/// and queue, else the first writable master and queue 0 of its write queues).
///
/// # Errors
/// [`OpsError::Usage`] when the route has no writable queue matching; [`OpsError`] when the
/// broker refuses.
pub async fn send_message(namesrv: &str, spec: &SendSpec) -> Result<SendOutcome, OpsError> {
    let route = admin::topic_route(namesrv, &spec.topic).await?;
    let chosen = route.queue_datas.iter().find_map(|queues| {
        if spec
            .broker_name
            .as_ref()
            .is_some_and(|b| *b != queues.broker_name)
            || !perm::is_writeable(queues.perm)
        {
            return None;
        }
        let queue_id = spec.queue_id.unwrap_or(0);
        if queue_id < 0 || queue_id >= queues.write_queue_nums {
            return None;
        }
        let master = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == queues.broker_name)
            .and_then(|b| b.broker_addrs.get(&0))?;
        Some((queues.broker_name.clone(), master.clone(), queue_id))
    });
    let Some((broker_name, master, queue_id)) = chosen else {
        return Err(OpsError::Usage(format!(
            "no writable queue of {} in its route (broker {:?}, queue {:?})",
            spec.topic, spec.broker_name, spec.queue_id
        )));
    };
    let mut props = Properties::new();
    let bad = |e: rmq_net::CodecError| OpsError::Usage(e.to_string());
    if let Some(tags) = &spec.tags {
        props.insert("TAGS", tags).map_err(bad)?;
    }
    if let Some(keys) = &spec.keys {
        props.insert("KEYS", keys).map_err(bad)?;
    }
    props.insert("WAIT", "true").map_err(bad)?;
    let header = SendMessageRequestHeader {
        producer_group: TOOLS_PRODUCER_GROUP.into(),
        topic: spec.topic.clone(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: crate::runtime::clock::now_ms(),
        flag: 0,
        properties: Some(props.to_wire_string()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        max_reconsume_times: None,
        batch: Some(false),
        broker_name: Some(broker_name.clone()),
    };
    let request = RemotingCommand::request(
        RequestCode::SendMessageV2,
        header.to_ext_in(SendHeaderForm::V2),
    )
    .with_body(Bytes::copy_from_slice(&spec.body));
    let reply = call(&master, request).await?;
    let header = SendMessageResponseHeader::decode_command(&reply)?;
    Ok(SendOutcome {
        broker_name,
        queue_id,
        send_result: "SEND_OK".into(),
        msg_id: header.transaction_id.unwrap_or_default(),
        offset_msg_id: header.msg_id,
        queue_offset: header.queue_offset,
    })
}

/// What `consume-message` pulls.
#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    /// Topic.
    pub topic: String,
    /// Only this broker name.
    pub broker_name: Option<String>,
    /// Only this queue.
    pub queue_id: Option<i32>,
    /// Start offset in each queue (default: its min offset).
    pub offset: Option<i64>,
    /// Most messages to print (at most [`CONSUME_COUNT_MAX`]).
    pub count: usize,
    /// Group to pull as.
    pub group: String,
}

/// Pulls messages of `topic` from the masters in its route (queue by queue, from `offset` or
/// each queue's min offset) until `count` messages or every queue is drained. Commits nothing.
///
/// # Errors
/// [`OpsError::Usage`] for a count over [`CONSUME_COUNT_MAX`] or no matching queue;
/// [`OpsError`] when a broker refuses a pull.
pub async fn consume_message(
    namesrv: &str,
    spec: &ConsumeSpec,
) -> Result<Vec<MessageRecord>, OpsError> {
    if spec.count > CONSUME_COUNT_MAX {
        return Err(OpsError::Usage(format!(
            "--count {} is over {CONSUME_COUNT_MAX}",
            spec.count
        )));
    }
    let route = admin::topic_route(namesrv, &spec.topic).await?;
    let mut queues = Vec::new();
    for data in &route.queue_datas {
        if spec
            .broker_name
            .as_ref()
            .is_some_and(|b| *b != data.broker_name)
            || !perm::is_readable(data.perm)
        {
            continue;
        }
        let Some(master) = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == data.broker_name)
            .and_then(|b| b.broker_addrs.get(&0))
        else {
            continue;
        };
        for queue_id in 0..data.read_queue_nums {
            if spec.queue_id.is_none_or(|q| q == queue_id) {
                queues.push((
                    MessageQueue::new(&spec.topic, &data.broker_name, queue_id),
                    master.clone(),
                ));
            }
        }
    }
    if queues.is_empty() {
        return Err(OpsError::Usage(format!(
            "no readable queue of {} in its route (broker {:?}, queue {:?})",
            spec.topic, spec.broker_name, spec.queue_id
        )));
    }
    let mut out = Vec::new();
    for (queue, master) in queues {
        let mut offset = match spec.offset {
            Some(offset) => offset,
            None => queue_min_offset(&master, &queue).await?,
        };
        while out.len() < spec.count {
            let want = i32::try_from(spec.count - out.len())
                .unwrap_or(i32::MAX)
                .min(CONSUME_PULL_BATCH);
            let header = PullMessageRequestHeader {
                consumer_group: spec.group.clone(),
                topic: spec.topic.clone(),
                queue_id: queue.queue_id,
                queue_offset: offset,
                max_msg_nums: want,
                sys_flag: PullSysFlag::SUBSCRIPTION,
                commit_offset: 0,
                suspend_timeout_millis: 0,
                subscription: Some("*".into()),
                sub_version: 0,
                expression_type: Some("TAG".into()),
                max_msg_bytes: None,
                request_source: None,
                proxy_froward_client_id: None,
            };
            let reply = admin::call_raw(
                &master,
                RemotingCommand::request(RequestCode::PullMessage, header.to_ext()),
            )
            .await?;
            let pulled = PullMessageResponseHeader::decode_command(&reply)?;
            match reply.response_code() {
                ResponseCode::Success => {
                    let records = decode_all(&reply.body, CrcCheck::Verify)?;
                    assert!(
                        pulled.next_begin_offset > offset,
                        "a SUCCESS pull moves the offset"
                    );
                    offset = pulled.next_begin_offset;
                    out.extend(records.into_iter().take(spec.count - out.len()));
                }
                ResponseCode::PullOffsetMoved | ResponseCode::PullRetryImmediately
                    if pulled.next_begin_offset != offset =>
                {
                    offset = pulled.next_begin_offset;
                }
                ResponseCode::PullNotFound
                | ResponseCode::PullOffsetMoved
                | ResponseCode::PullRetryImmediately => break,
                code => {
                    return Err(AdminError::Refused {
                        addr: master.clone(),
                        code,
                        remark: reply.remark.clone().unwrap_or_default(),
                    }
                    .into())
                }
            }
        }
    }
    Ok(out)
}

async fn queue_min_offset(broker: &str, queue: &MessageQueue) -> Result<i64, OpsError> {
    let mut ext = ExtFields::new();
    ext.insert("topic", queue.topic.as_str());
    ext.insert("queueId", queue.queue_id.to_string());
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::GetMinOffset, ext),
    )
    .await?;
    reply
        .ext("offset")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| OpsError::Usage(format!("{broker}: GET_MIN_OFFSET reply has no offset")))
}
