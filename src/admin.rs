//! `rmq admin`: the operations tests and users need first, over the remoting protocol with our
//! own client: create/update/delete topic, topic list, topic route, cluster list, consumer
//! progress (GET_CONSUME_STATS from every master) and broker status (GET_BROKER_RUNTIME_INFO).
//! Runs in the CLI's own runtime; never touches broker state directly.

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

async fn call(addr: &str, request: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    let client = RemotingClient::new(addr.to_owned(), ClientConfig::default());
    let reply = client
        .invoke(request, ADMIN_TIMEOUT)
        .await
        .map_err(|source| AdminError::Client {
            addr: addr.to_owned(),
            source,
        })?;
    client.close();
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
