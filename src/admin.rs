//! `rmq admin`: the operations tests and users need first, over the remoting protocol with our
//! own client: create/update/delete topic, topic list, topic route, cluster list (every
//! broker, masters and slaves, with its role and replication lag per shard from its runtime
//! info), consumer progress (GET_CONSUME_STATS from every master) and broker status
//! (GET_BROKER_RUNTIME_INFO).
//! Runs in the CLI's own runtime; never touches broker state directly. Requests are ACL-signed
//! when `RMQ_ACCESS_KEY` and `RMQ_SECRET_KEY` are set ([`crate::acl::client`]).

use std::fmt::Write as _;
use std::time::Duration;

use rmq_net::codec::body::object_keys::ObjectKeyError;
use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::route::{ClusterInfo, TopicRouteData};
use rmq_net::codec::body::stats::{ConsumeStats, OffsetWrapper, TopicStatsTable};
use rmq_net::codec::body::table::{KvTable, TopicList};
use rmq_net::codec::body::topic::TopicFilterType;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, GetConsumeStatsRequestHeader,
    GetTopicStatsInfoRequestHeader,
};
use rmq_net::codec::header::namesrv::{
    DeleteTopicFromNamesrvRequestHeader, GetRouteInfoRequestHeader,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};

/// How long one admin call may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin failure, with the server's code and remark when there was a reply.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Transport failure.
    #[error("{addr}: {source}")]
    Client {
        /// Peer.
        addr: String,
        /// Cause.
        source: rmq_net::conn::ClientError,
    },
    /// The server answered with an error code.
    #[error("{addr}: code {code:?}: {remark}")]
    Refused {
        /// Peer.
        addr: String,
        /// Code.
        code: ResponseCode,
        /// Remark.
        remark: String,
    },
    /// A body did not parse.
    #[error("{0}")]
    Codec(#[from] rmq_net::CodecError),
    /// Nothing to act on.
    #[error("{0}")]
    Usage(String),
    /// A body in a form our decoders do not cover, with the reason.
    #[error("malformed {what} body: {source}")]
    Body {
        /// Which body.
        what: &'static str,
        /// What is wrong with it.
        source: ObjectKeyError,
    },
}

/// One request to `addr` on a fresh connection; any reply code.
///
/// # Errors
/// [`AdminError::Client`] when there is no reply.
pub async fn call_raw(addr: &str, request: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    let mut request = request;
    crate::acl::client::sign_if_configured(&mut request);
    let client = RemotingClient::new(addr.to_owned(), ClientConfig::default());
    let reply = client
        .invoke(request, ADMIN_TIMEOUT)
        .await
        .map_err(|source| AdminError::Client {
            addr: addr.to_owned(),
            source,
        })?;
    client.close();
    Ok(reply)
}

/// One request to `addr` on a fresh connection, expecting SUCCESS.
///
/// # Errors
/// [`AdminError::Client`] when there is no reply; [`AdminError::Refused`] with the server's
/// code and remark otherwise.
pub async fn call(addr: &str, request: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    let reply = call_raw(addr, request).await?;
    if reply.response_code() != ResponseCode::Success {
        return Err(AdminError::Refused {
            addr: addr.to_owned(),
            code: reply.response_code(),
            remark: reply.remark.clone().unwrap_or_default(),
        });
    }
    Ok(reply)
}

/// GET_BROKER_CLUSTER_INFO from a NameServer.
///
/// # Errors
/// [`AdminError`].
pub async fn cluster_info(namesrv: &str) -> Result<ClusterInfo, AdminError> {
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetBrokerClusterInfo, ExtFields::new()),
    )
    .await?;
    Ok(ClusterInfo::from_json(&reply.body)?)
}

/// GET_ROUTEINFO_BY_TOPIC from a NameServer.
///
/// # Errors
/// [`AdminError`].
pub async fn topic_route(namesrv: &str, topic: &str) -> Result<TopicRouteData, AdminError> {
    let header = GetRouteInfoRequestHeader {
        topic: topic.to_owned(),
        accept_standard_json_only: Some(true),
    };
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetRouteinfoByTopic, header.to_ext()),
    )
    .await?;
    Ok(TopicRouteData::from_json(&reply.body)?)
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
///
/// # Errors
/// [`AdminError`].
pub async fn topic_list(namesrv: &str) -> Result<TopicList, AdminError> {
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetAllTopicListFromNameserver, ExtFields::new()),
    )
    .await?;
    Ok(TopicList::from_json(&reply.body)?)
}

/// Master addresses of `cluster` (or of every cluster when `None`).
///
/// # Errors
/// [`AdminError`].
pub async fn master_addrs(namesrv: &str, cluster: Option<&str>) -> Result<Vec<String>, AdminError> {
    let info = cluster_info(namesrv).await?;
    let mut addrs = Vec::new();
    for (cluster_name, brokers) in &info.cluster_addr_table {
        if cluster.is_some_and(|c| c != cluster_name) {
            continue;
        }
        for name in brokers {
            if let Some(addr) = info
                .broker_addr_table
                .get(name)
                .and_then(|b| b.broker_addrs.get(&0))
            {
                addrs.push(addr.clone());
            }
        }
    }
    if addrs.is_empty() {
        return Err(AdminError::Usage(format!(
            "no master broker found (cluster {cluster:?})"
        )));
    }
    Ok(addrs)
}

/// What a topic should look like.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Name.
    pub topic: String,
    /// Read queues.
    pub read_queue_nums: i32,
    /// Write queues.
    pub write_queue_nums: i32,
    /// Permission bits.
    pub perm: i32,
    /// Order topic.
    pub order: bool,
}

/// UPDATE_AND_CREATE_TOPIC on each broker address.
///
/// # Errors
/// [`AdminError`] of the first broker that failed.
pub async fn update_topic(brokers: &[String], spec: &TopicSpec) -> Result<(), AdminError> {
    let header = CreateTopicRequestHeader {
        topic: spec.topic.clone(),
        default_topic: "TBW102".into(),
        read_queue_nums: spec.read_queue_nums,
        write_queue_nums: spec.write_queue_nums,
        perm: spec.perm,
        topic_filter_type: TopicFilterType::SingleTag,
        topic_sys_flag: Some(0),
        order: spec.order,
        attributes: None,
        force: None,
    };
    for broker in brokers {
        call(
            broker,
            RemotingCommand::request(RequestCode::UpdateAndCreateTopic, header.to_ext()),
        )
        .await?;
    }
    Ok(())
}

/// DELETE_TOPIC_IN_BROKER on each broker, then DELETE_TOPIC_IN_NAMESRV.
///
/// # Errors
/// [`AdminError`].
pub async fn delete_topic(
    namesrv: &str,
    brokers: &[String],
    topic: &str,
) -> Result<(), AdminError> {
    let header = DeleteTopicRequestHeader {
        topic: topic.to_owned(),
    };
    for broker in brokers {
        call(
            broker,
            RemotingCommand::request(RequestCode::DeleteTopicInBroker, header.to_ext()),
        )
        .await?;
    }
    let header = DeleteTopicFromNamesrvRequestHeader {
        topic: topic.to_owned(),
        cluster_name: None,
    };
    call(
        namesrv,
        RemotingCommand::request(RequestCode::DeleteTopicInNamesrv, header.to_ext()),
    )
    .await?;
    Ok(())
}

/// GET_BROKER_RUNTIME_INFO from one broker.
///
/// # Errors
/// [`AdminError`].
pub async fn broker_runtime_info(broker: &str) -> Result<KvTable, AdminError> {
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo, ExtFields::new()),
    )
    .await?;
    Ok(KvTable::from_json(&reply.body)?)
}

/// TRANSACTION_PENDING_STATS (ours, 60000) from one broker: its pending half messages per
/// producer group (`group` narrows to one).
///
/// # Errors
/// [`AdminError`]; a body that is not the report is [`AdminError::Usage`] naming why.
pub async fn transaction_pending(
    broker: &str,
    group: Option<&str>,
) -> Result<crate::broker::transaction::PendingReport, AdminError> {
    let mut ext = ExtFields::new();
    if let Some(group) = group {
        ext.insert("producerGroup", group);
    }
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::TransactionPendingStats, ext),
    )
    .await?;
    serde_json::from_slice(&reply.body)
        .map_err(|e| AdminError::Usage(format!("malformed pending-transactions body: {e}")))
}

/// The `trans-pending` table: one line per producer group, then the totals.
#[must_use]
pub fn render_transaction_pending(report: &crate::broker::transaction::PendingReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>10} {:>16} {:>12}",
        "#ProducerGroup", "#Pending", "#OldestAgeMs", "#MaxChecks"
    );
    for group in &report.groups {
        let _ = writeln!(
            out,
            "{:<40} {:>10} {:>16} {:>12}",
            group.producer_group, group.count, group.oldest_age_ms, group.max_check_times
        );
    }
    let _ = writeln!(
        out,
        "total {} pending, {} check-backs sent, {} discarded, {} untracked{}",
        report.total,
        report.checks_sent,
        report.discarded,
        report.untracked,
        if report.recovered {
            ""
        } else {
            " (still rebuilding after start)"
        }
    );
    out
}

/// One broker of `cluster-list`: where the NameServer places it, and its runtime info.
#[derive(Debug, Clone)]
pub struct ClusterBroker {
    /// Cluster name.
    pub cluster: String,
    /// Broker name.
    pub name: String,
    /// Broker id (0: the master).
    pub id: i64,
    /// Remoting address.
    pub addr: String,
    /// Its GET_BROKER_RUNTIME_INFO, or why it could not be read.
    pub info: Result<KvTable, String>,
}

/// Every broker of every cluster the NameServer knows (masters and slaves, in cluster, name
/// and id order), each with its runtime info (asked of all brokers at once).
///
/// # Errors
/// [`AdminError`] when the NameServer cannot be asked; a broker that cannot be asked is
/// listed with its error.
pub async fn cluster_list(namesrv: &str) -> Result<Vec<ClusterBroker>, AdminError> {
    let info = cluster_info(namesrv).await?;
    let mut brokers = Vec::new();
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            let Some(data) = info.broker_addr_table.get(name) else {
                continue;
            };
            for (id, addr) in &data.broker_addrs {
                brokers.push((cluster.clone(), name.clone(), *id, addr.clone()));
            }
        }
    }
    let infos = futures_util::future::join_all(
        brokers
            .iter()
            .map(|(_, _, _, addr)| broker_runtime_info(addr)),
    )
    .await;
    Ok(brokers
        .into_iter()
        .zip(infos)
        .map(|((cluster, name, id, addr), info)| ClusterBroker {
            cluster,
            name,
            id,
            addr,
            info: info.map_err(|err| err.to_string()),
        })
        .collect())
}

/// `cluster-list` output: Java's `clusterList` columns that apply (`#Cluster Name`,
/// `#Broker Name`, `#BID`, `#Addr`, `#Version`, `#InTPS`, `#OutTPS`, `#Hour`, `#SPACE`), then
/// `#Role` and `#HA`: per shard `s<N>:...`, on a master `slave<id>,<lag bytes>B,<lag ms>ms`
/// (`,ALARM` while the lag alarm is raised) or `no-slave`; on a slave `up,<bytes behind the
/// master>B` or `down`.
#[must_use]
pub fn render_cluster_list(brokers: &[ClusterBroker], now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22}  {:<22}  {:<4}  {:<22} {:<16}  {:>10}  {:>10}  {:>8}  {:>7}  {:<12}  #HA",
        "#Cluster Name",
        "#Broker Name",
        "#BID",
        "#Addr",
        "#Version",
        "#InTPS",
        "#OutTPS",
        "#Hour",
        "#SPACE",
        "#Role"
    );
    for broker in brokers {
        let (version, tps_in, tps_out, hour, space, role, ha) = match &broker.info {
            Ok(info) => {
                let get = |key: &str| info.table.get(key).map_or("", String::as_str);
                let first_tps = |key: &str| {
                    get(key)
                        .split_whitespace()
                        .next()
                        .and_then(|tps| tps.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                let earliest = get("earliestMessageTimeStamp").parse::<i64>().unwrap_or(-1);
                let hour = if earliest > 0 {
                    (now_ms - earliest) as f64 / 3_600_000.0
                } else {
                    0.0
                };
                let space = get("commitLogDiskRatio").parse::<f64>().unwrap_or(0.0);
                (
                    get("brokerVersionDesc").to_owned(),
                    format!("{:.2}", first_tps("putTps")),
                    format!("{:.2}", first_tps("getTransferedTps")),
                    format!("{hour:.2}"),
                    format!("{space:.4}"),
                    get("brokerRole").to_owned(),
                    ha_column(info),
                )
            }
            Err(err) => (
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "?".to_owned(),
                format!("unreachable: {err}"),
            ),
        };
        let _ = writeln!(
            out,
            "{:<22}  {:<22}  {:<4}  {:<22} {:<16}  {:>10}  {:>10}  {:>8}  {:>7}  {:<12}  {}",
            broker.cluster,
            broker.name,
            broker.id,
            broker.addr,
            version,
            tps_in,
            tps_out,
            hour,
            space,
            role,
            ha
        );
    }
    out
}

/// The `#HA` column of one broker from its runtime info's `shard<N>.*` keys.
fn ha_column(info: &KvTable) -> String {
    let get = |key: String| info.table.get(&key).map(String::as_str);
    let shards = get("shardCount".to_owned())
        .and_then(|count| count.parse::<usize>().ok())
        .unwrap_or(0);
    let slave = get("brokerRole".to_owned()) == Some("SLAVE");
    let mut cells = Vec::with_capacity(shards);
    for index in 0..shards {
        let key = |name: &str| get(format!("shard{index}.{name}"));
        let cell = if slave {
            match (key("haConnected"), key("haMasterBehindBytes")) {
                (Some("true"), Some("-1") | None) => "up,?".to_owned(),
                (Some("true"), Some(behind)) => format!("up,{behind}B"),
                _ => "down".to_owned(),
            }
        } else {
            match key("haSlaveBrokerId") {
                Some(id) => format!(
                    "slave{id},{}B,{}ms{}",
                    key("haLagBytes").unwrap_or("?"),
                    key("haLagMillis").unwrap_or("?"),
                    if key("haLagAlarm") == Some("true") {
                        ",ALARM"
                    } else {
                        ""
                    }
                ),
                None => "no-slave".to_owned(),
            }
        };
        cells.push(format!("s{index}:{cell}"));
    }
    cells.join(" ")
}

/// `broker-status` output: one `key : value` line per runtime key, sorted (Java's layout).
#[must_use]
pub fn render_broker_status(table: &KvTable) -> String {
    let mut out = String::new();
    for (key, value) in &table.table {
        let _ = writeln!(out, "{key:<32}: {value}");
    }
    out
}

/// GET_CONSUME_STATS from one broker (`topic` restricts it to one topic).
///
/// # Errors
/// [`AdminError`]; [`AdminError::Body`] for a body that is not a ConsumeStats.
pub async fn consume_stats(
    broker: &str,
    group: &str,
    topic: Option<&str>,
) -> Result<ConsumeStats, AdminError> {
    let header = GetConsumeStatsRequestHeader {
        consumer_group: group.to_owned(),
        topic: topic.map(str::to_owned),
        topic_list: None,
    };
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::GetConsumeStats, header.to_ext()),
    )
    .await?;
    parse_consume_stats(&reply.body)
}

/// Decodes a GET_CONSUME_STATS body in fastjson's object-key form
/// (`{"consumeTps":0.0,"offsetTable":{{"brokerName":..,"queueId":0,"topic":..}:{..}}}`), with
/// [`ConsumeStats::from_json`].
///
/// # Errors
/// [`AdminError::Body`] naming what did not parse.
pub fn parse_consume_stats(body: &[u8]) -> Result<ConsumeStats, AdminError> {
    ConsumeStats::from_json(body).map_err(|source| AdminError::Body {
        what: "ConsumeStats",
        source,
    })
}

/// Decodes a GET_TOPIC_STATS_INFO body in fastjson's object-key form, with
/// [`TopicStatsTable::from_json`].
///
/// # Errors
/// [`AdminError::Body`] naming what did not parse.
pub fn parse_topic_stats(body: &[u8]) -> Result<TopicStatsTable, AdminError> {
    TopicStatsTable::from_json(body).map_err(|source| AdminError::Body {
        what: "TopicStatsTable",
        source,
    })
}

/// GET_TOPIC_STATS_INFO from one broker.
///
/// # Errors
/// [`AdminError`]; TOPIC_NOT_EXIST as [`AdminError::Refused`].
pub async fn topic_stats(broker: &str, topic: &str) -> Result<TopicStatsTable, AdminError> {
    let header = GetTopicStatsInfoRequestHeader {
        topic: topic.to_owned(),
    };
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::GetTopicStatsInfo, header.to_ext()),
    )
    .await?;
    parse_topic_stats(&reply.body)
}

/// `mqadmin topicStatus`: GET_TOPIC_STATS_INFO from the master of every broker in the topic's
/// route, merged (queues of different brokers have different `MessageQueue` keys).
///
/// # Errors
/// [`AdminError`] of the NameServer or of the first broker that failed.
pub async fn topic_status(namesrv: &str, topic: &str) -> Result<TopicStatsTable, AdminError> {
    let route = topic_route(namesrv, topic).await?;
    let mut merged = TopicStatsTable::default();
    for broker in &route.broker_datas {
        if let Some(master) = broker.broker_addrs.get(&0) {
            let stats = topic_stats(master, topic).await?;
            merged.offset_table.extend(stats.offset_table);
        }
    }
    Ok(merged)
}

/// Java's topicStatus table, plus a `#Total` line: the sum over queues of max - min offset
/// (messages stored) and of max offsets.
#[must_use]
pub fn render_topic_status(stats: &TopicStatsTable) -> String {
    let mut out = format!(
        "{:<32} {:<4} {:>20} {:>20} {:>24}\n",
        "#Broker Name", "#QID", "#Min Offset", "#Max Offset", "#Last Updated"
    );
    let (mut stored, mut max_sum) = (0_i64, 0_i64);
    for (queue, offsets) in &stats.offset_table {
        stored += offsets.max_offset - offsets.min_offset;
        max_sum += offsets.max_offset;
        out.push_str(&format!(
            "{:<32} {:<4} {:>20} {:>20} {:>24}\n",
            queue.broker_name,
            queue.queue_id,
            offsets.min_offset,
            offsets.max_offset,
            offsets.last_update_timestamp
        ));
    }
    out.push_str(&format!(
        "#Total queues={} stored={stored} maxOffsetSum={max_sum}\n",
        stats.offset_table.len()
    ));
    out
}

/// A group's consumption progress over one or more brokers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerProgress {
    /// Summed consume TPS of the brokers.
    pub consume_tps: f64,
    /// Queue -> offsets, merged over brokers, in `MessageQueue` order.
    pub queues: std::collections::BTreeMap<MessageQueue, OffsetWrapper>,
}

impl ConsumerProgress {
    /// Adds one broker's stats.
    pub fn merge(&mut self, stats: ConsumeStats) {
        self.consume_tps += stats.consume_tps;
        self.queues.extend(stats.offset_table);
    }

    /// Messages not yet consumed, over every queue (Java `computeTotalDiff`).
    #[must_use]
    pub fn diff_total(&self) -> i64 {
        self.queues
            .values()
            .map(|offsets| offsets.broker_offset - offsets.consumer_offset)
            .sum()
    }

    /// The `consumer-progress` table: one line per queue (topic, broker, queue, broker offset,
    /// consumer offset, diff, last consumed store time in ms), then the TPS and total diff.
    #[must_use]
    pub fn render(&self) -> String {
        fn row(out: &mut String, cells: [&dyn std::fmt::Display; 7]) {
            let [topic, broker, queue, broker_offset, consumer_offset, diff, last] = cells;
            let _ = writeln!(
                out,
                "{topic:<64}  {broker:<32}  {queue:<4}  {broker_offset:<20}  \
                 {consumer_offset:<20}  {diff:<20}  {last}"
            );
        }
        let mut out = String::new();
        row(
            &mut out,
            [
                &"#Topic",
                &"#Broker Name",
                &"#QID",
                &"#Broker Offset",
                &"#Consumer Offset",
                &"#Diff",
                &"#LastTime",
            ],
        );
        for (queue, offsets) in &self.queues {
            let diff = offsets.broker_offset - offsets.consumer_offset;
            row(
                &mut out,
                [
                    &queue.topic,
                    &queue.broker_name,
                    &queue.queue_id,
                    &offsets.broker_offset,
                    &offsets.consumer_offset,
                    &diff,
                    &offsets.last_timestamp,
                ],
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Consume TPS: {:.2}", self.consume_tps);
        let _ = writeln!(out, "Consume Diff Total: {}", self.diff_total());
        out
    }
}

/// GET_CONSUME_STATS for `group` from every master of `cluster` (every cluster when `None`),
/// merged.
///
/// # Errors
/// [`AdminError`] of the NameServer or of the first broker that failed.
pub async fn consumer_progress(
    namesrv: &str,
    cluster: Option<&str>,
    group: &str,
    topic: Option<&str>,
) -> Result<ConsumerProgress, AdminError> {
    let mut progress = ConsumerProgress::default();
    for broker in master_addrs(namesrv, cluster).await? {
        progress.merge(consume_stats(&broker, group, topic).await?);
    }
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::body::stats::TopicOffset;

    use super::*;

    #[test]
    fn stats_bodies_decode_through_the_codec() {
        let mut stats = ConsumeStats {
            consume_tps: 2.5,
            ..ConsumeStats::default()
        };
        stats.offset_table.insert(
            MessageQueue::new("T{,}:x", "broker-a", 3),
            OffsetWrapper {
                broker_offset: 10,
                consumer_offset: 7,
                last_timestamp: 1_700_000_000_000,
                pull_offset: 7,
            },
        );
        assert_eq!(
            parse_consume_stats(&stats.to_json()).expect("parses"),
            stats
        );
        let mut table = TopicStatsTable::default();
        table.offset_table.insert(
            MessageQueue::new("T", "broker-a", 1),
            TopicOffset {
                last_update_timestamp: 1_700_000_000_000,
                max_offset: 10,
                min_offset: 1,
            },
        );
        assert_eq!(parse_topic_stats(&table.to_json()).expect("parses"), table);
    }

    fn kv(pairs: &[(&str, &str)]) -> KvTable {
        KvTable {
            table: pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn cluster_list_shows_role_and_lag_per_shard() {
        let master = kv(&[
            ("brokerVersionDesc", "V5_3_3"),
            ("brokerRole", "ASYNC_MASTER"),
            ("putTps", "12.5 3.0 1.0"),
            ("getTransferedTps", "2.0 1.0 1.0"),
            ("earliestMessageTimeStamp", "0"),
            ("commitLogDiskRatio", "0.25"),
            ("shardCount", "2"),
            ("shard0.haSlaveBrokerId", "1"),
            ("shard0.haLagBytes", "0"),
            ("shard0.haLagMillis", "0"),
            ("shard0.haLagAlarm", "false"),
            ("shard1.haLagAlarm", "true"),
        ]);
        let slave = kv(&[
            ("brokerRole", "SLAVE"),
            ("earliestMessageTimeStamp", "3600000"),
            ("shardCount", "2"),
            ("shard0.haConnected", "true"),
            ("shard0.haMasterBehindBytes", "512"),
            ("shard1.haConnected", "false"),
        ]);
        let broker = |id: i64, info: Result<KvTable, String>| ClusterBroker {
            cluster: "DefaultCluster".into(),
            name: "broker-a".into(),
            id,
            addr: format!("127.0.0.1:{}", 10911 + id),
            info,
        };
        let out = render_cluster_list(
            &[
                broker(0, Ok(master)),
                broker(1, Ok(slave)),
                broker(2, Err("connection refused".into())),
            ],
            2 * 3_600_000,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("#Cluster Name"), "{out}");
        assert!(
            lines[0].contains("#Role") && lines[0].ends_with("#HA"),
            "{out}"
        );
        let words = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(lines[1]),
            [
                "DefaultCluster",
                "broker-a",
                "0",
                "127.0.0.1:10911",
                "V5_3_3",
                "12.50",
                "2.00",
                "0.00",
                "0.2500",
                "ASYNC_MASTER",
                "s0:slave1,0B,0ms",
                "s1:no-slave"
            ]
        );
        let slave_words = words(lines[2]);
        assert_eq!(slave_words[2], "1");
        assert!(
            slave_words.contains(&"1.00".to_owned()),
            "an hour of messages: {out}"
        );
        assert_eq!(
            slave_words[slave_words.len() - 3..],
            ["SLAVE", "s0:up,512B", "s1:down"]
        );
        assert!(lines[3].contains("?") && lines[3].contains("unreachable: connection refused"));
    }

    #[test]
    fn malformed_stats_bodies_are_body_errors() {
        for bad in [
            &b""[..],
            b"[]",
            b"{\"offsetTable\":{{\"queueId\":0}",
            b"{\"offsetTable\":{{\"queueId\":\"x\"}:{}}}",
            b"{\"consumeTps\":1 \"offsetTable\":{}}",
            b"{1:2}",
        ] {
            assert!(
                matches!(
                    parse_consume_stats(bad),
                    Err(AdminError::Body {
                        what: "ConsumeStats",
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let err = parse_topic_stats(b"{\"offsetTable\":{1:2}}").expect_err("number key");
        assert!(matches!(
            err,
            AdminError::Body {
                what: "TopicStatsTable",
                ..
            }
        ));
        assert!(
            err.to_string()
                .starts_with("malformed TopicStatsTable body: "),
            "{err}"
        );
    }

    #[test]
    fn topic_status_renders_java_columns_and_a_total() {
        let mut stats = TopicStatsTable::default();
        for (queue_id, min, max) in [(0, 0, 10), (1, 5, 25)] {
            stats.offset_table.insert(
                MessageQueue {
                    broker_name: "broker-a".into(),
                    queue_id,
                    topic: "T".into(),
                },
                TopicOffset {
                    last_update_timestamp: 1_700_000_000_000,
                    max_offset: max,
                    min_offset: min,
                },
            );
        }
        let text = render_topic_status(&stats);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("#Broker Name") && lines[0].contains("#Max Offset"));
        assert!(
            lines[2].starts_with("broker-a") && lines[2].contains(" 25 "),
            "{text}"
        );
        assert_eq!(lines[3], "#Total queues=2 stored=30 maxOffsetSum=35");
    }

    #[test]
    fn progress_merges_brokers_and_renders_the_total() {
        let mut progress = ConsumerProgress::default();
        for (broker, behind) in [("broker-b", 3), ("broker-a", 4)] {
            let mut stats = ConsumeStats {
                consume_tps: 1.25,
                ..ConsumeStats::default()
            };
            stats.offset_table.insert(
                MessageQueue::new("T", broker, 0),
                OffsetWrapper {
                    broker_offset: 10,
                    consumer_offset: 10 - behind,
                    last_timestamp: 0,
                    pull_offset: 0,
                },
            );
            progress.merge(stats);
        }
        assert_eq!(progress.diff_total(), 7);
        let text = progress.render();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .take(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["T", "broker-a", "0", "10", "6", "4", "0"]);
        assert_eq!(rows[1], ["T", "broker-b", "0", "10", "7", "3", "0"]);
        assert!(text.contains("Consume TPS: 2.50\n"));
        assert!(text.ends_with("Consume Diff Total: 7\n"));
    }
}
