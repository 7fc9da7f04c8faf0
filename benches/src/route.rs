//! Where to send and pull: asks the NameServer for a topic's route (GET_ROUTEINFO_BY_TOPIC)
//! and turns it into the write queues producers round-robin over and the read queues
//! consumers pull, as Java clients do (PROTOCOL.md §4.10.3, §9.1): a topic the NameServer does
//! not know yet borrows the `TBW102` route with queue counts cut to `defaultTopicQueueNums`,
//! and the broker auto-creates the topic on the first send. Runs once before a run starts.
//! Must never guess an address the route does not give.

use std::time::Duration;

use rmq_net::codec::body::route::{BrokerData, TopicRouteData};
use rmq_net::codec::body::topic::perm;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::command::RemotingCommand;
use rmq_net::codec::error::CodecError;
use rmq_net::codec::header::namesrv::GetRouteInfoRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::conn::{ClientError, RemotingClient};

/// The auto-create template topic (Java `TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const DEFAULT_TOPIC: &str = "TBW102";

/// Broker id of a master.
pub const MASTER_ID: i64 = 0;

/// Why a route could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The request failed.
    #[error("route request for {topic} to {addr} failed: {source}")]
    Client {
        /// Topic asked about.
        topic: String,
        /// NameServer address.
        addr: String,
        /// Cause.
        source: ClientError,
    },
    /// The NameServer answered with an unexpected code.
    #[error("route request for {topic}: code {code}, remark {remark:?}")]
    Code {
        /// Topic asked about.
        topic: String,
        /// Response code.
        code: i32,
        /// Response remark.
        remark: Option<String>,
    },
    /// The route body did not parse.
    #[error("route body for {topic}: {source}")]
    Body {
        /// Topic asked about.
        topic: String,
        /// Cause.
        source: CodecError,
    },
    /// Neither the topic nor the template has a usable queue.
    #[error("no {what} queue for topic {topic} (nor {DEFAULT_TOPIC})")]
    NoQueues {
        /// Topic asked about.
        topic: String,
        /// `writable` or `readable`.
        what: &'static str,
    },
}

/// One queue of a topic on one broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct QueueTarget {
    /// Broker name.
    pub broker_name: String,
    /// Address of the broker's master (or lowest-id replica for reads without a master).
    pub broker_addr: String,
    /// Queue id.
    pub queue_id: i32,
}

/// Which route the queues came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteSource {
    /// The topic's own route.
    Topic,
    /// The `TBW102` template's route (topic not created yet).
    DefaultTopic,
}

/// The queues of a topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedRoute {
    /// Where the queues came from.
    pub source: RouteSource,
    /// Queues producers send to, in Java's order (brokers by name, then queue id).
    pub write_queues: Vec<QueueTarget>,
    /// Queues consumers pull from.
    pub read_queues: Vec<QueueTarget>,
}

impl ResolvedRoute {
    /// Distinct broker addresses of both lists, sorted.
    #[must_use]
    pub fn broker_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .write_queues
            .iter()
            .chain(&self.read_queues)
            .map(|queue| queue.broker_addr.clone())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

/// Fetches the route of `topic`; `Ok(None)` when the NameServer answers TOPIC_NOT_EXIST.
///
/// # Errors
/// [`RouteError::Client`], [`RouteError::Code`] for any other code, [`RouteError::Body`].
pub async fn fetch_route(
    namesrv: &RemotingClient,
    topic: &str,
    timeout: Duration,
) -> Result<Option<TopicRouteData>, RouteError> {
    let header = GetRouteInfoRequestHeader {
        topic: topic.to_owned(),
        accept_standard_json_only: Some(true),
    };
    let request = RemotingCommand::request(RequestCode::GetRouteinfoByTopic, header.to_ext());
    let response = namesrv
        .invoke(request, timeout)
        .await
        .map_err(|source| RouteError::Client {
            topic: topic.to_owned(),
            addr: namesrv.addr().to_owned(),
            source,
        })?;
    match response.response_code() {
        ResponseCode::Success => {
            TopicRouteData::from_json(&response.body)
                .map(Some)
                .map_err(|source| RouteError::Body {
                    topic: topic.to_owned(),
                    source,
                })
        }
        ResponseCode::TopicNotExist => Ok(None),
        _ => Err(RouteError::Code {
            topic: topic.to_owned(),
            code: response.code,
            remark: response.remark,
        }),
    }
}

/// Resolves `topic`: its own route, or the `TBW102` route cut to `default_queue_nums`
/// queues per broker. Both queue lists must be non-empty.
///
/// # Errors
/// As [`fetch_route`], or [`RouteError::NoQueues`].
pub async fn resolve(
    namesrv: &RemotingClient,
    topic: &str,
    default_queue_nums: i32,
    timeout: Duration,
) -> Result<ResolvedRoute, RouteError> {
    let (source, route) = match fetch_route(namesrv, topic, timeout).await? {
        Some(route) => (RouteSource::Topic, route),
        None => {
            let template = fetch_route(namesrv, DEFAULT_TOPIC, timeout)
                .await?
                .ok_or_else(|| RouteError::NoQueues {
                    topic: topic.to_owned(),
                    what: "writable",
                })?;
            (
                RouteSource::DefaultTopic,
                cut_default_route(template, default_queue_nums),
            )
        }
    };
    let resolved = ResolvedRoute {
        source,
        write_queues: publish_queues(&route),
        read_queues: subscribe_queues(&route),
    };
    for (list, what) in [
        (&resolved.write_queues, "writable"),
        (&resolved.read_queues, "readable"),
    ] {
        if list.is_empty() {
            return Err(RouteError::NoQueues {
                topic: topic.to_owned(),
                what,
            });
        }
    }
    Ok(resolved)
}

/// Java's default-route cut: each broker's read and write queue counts become
/// `min(default_queue_nums, readQueueNums)`.
#[must_use]
pub fn cut_default_route(mut route: TopicRouteData, default_queue_nums: i32) -> TopicRouteData {
    for queue_data in &mut route.queue_datas {
        let nums = default_queue_nums.min(queue_data.read_queue_nums);
        queue_data.read_queue_nums = nums;
        queue_data.write_queue_nums = nums;
    }
    route
}

fn master_addr(broker: &BrokerData) -> Option<&String> {
    broker.broker_addrs.get(&MASTER_ID)
}

fn broker_named<'a>(route: &'a TopicRouteData, name: &str) -> Option<&'a BrokerData> {
    route
        .broker_datas
        .iter()
        .find(|broker| broker.broker_name == name)
}

fn queues_of(broker_name: &str, addr: &str, count: i32) -> impl Iterator<Item = QueueTarget> {
    let broker_name = broker_name.to_owned();
    let addr = addr.to_owned();
    (0..count.max(0)).map(move |queue_id| QueueTarget {
        broker_name: broker_name.clone(),
        broker_addr: addr.clone(),
        queue_id,
    })
}

/// Write queues as Java's `topicRouteData2TopicPublishInfo`: from `orderTopicConf`
/// (`brokerA:4;brokerB:4`) when present, else every writable QueueData whose broker has a
/// master, sorted by broker name.
#[must_use]
pub fn publish_queues(route: &TopicRouteData) -> Vec<QueueTarget> {
    let mut queues = Vec::new();
    if let Some(conf) = route
        .order_topic_conf
        .as_deref()
        .filter(|conf| !conf.is_empty())
    {
        for item in conf.split(';') {
            let Some((name, count)) = item.split_once(':') else {
                continue;
            };
            let (Ok(count), Some(broker)) =
                (count.trim().parse::<i32>(), broker_named(route, name))
            else {
                continue;
            };
            if let Some(addr) = master_addr(broker) {
                queues.extend(queues_of(name, addr, count));
            }
        }
        return queues;
    }
    let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
    queue_datas.sort_by(|left, right| left.broker_name.cmp(&right.broker_name));
    for queue_data in queue_datas {
        if !perm::is_writeable(queue_data.perm) {
            continue;
        }
        let addr = broker_named(route, &queue_data.broker_name).and_then(master_addr);
        if let Some(addr) = addr {
            queues.extend(queues_of(
                &queue_data.broker_name,
                addr,
                queue_data.write_queue_nums,
            ));
        }
    }
    queues
}

/// Read queues as Java's `topicRouteData2TopicSubscribeInfo`: every readable QueueData,
/// pulled from the master, or the lowest-id replica when no master is alive.
#[must_use]
pub fn subscribe_queues(route: &TopicRouteData) -> Vec<QueueTarget> {
    let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
    queue_datas.sort_by(|left, right| left.broker_name.cmp(&right.broker_name));
    let mut queues = Vec::new();
    for queue_data in queue_datas {
        if !perm::is_readable(queue_data.perm) {
            continue;
        }
        let addr = broker_named(route, &queue_data.broker_name)
            .and_then(|broker| broker.broker_addrs.values().next());
        if let Some(addr) = addr {
            queues.extend(queues_of(
                &queue_data.broker_name,
                addr,
                queue_data.read_queue_nums,
            ));
        }
    }
    queues
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rmq_net::codec::body::route::QueueData;

    use super::*;

    fn broker(name: &str, addrs: &[(i64, &str)]) -> BrokerData {
        BrokerData {
            broker_addrs: addrs
                .iter()
                .map(|(id, addr)| (*id, (*addr).to_owned()))
                .collect(),
            broker_name: name.to_owned(),
            cluster: "DefaultCluster".to_owned(),
            ..BrokerData::default()
        }
    }

    fn queue_data(name: &str, perm: i32, read: i32, write: i32) -> QueueData {
        QueueData {
            broker_name: name.to_owned(),
            perm,
            read_queue_nums: read,
            write_queue_nums: write,
            topic_sys_flag: 0,
        }
    }

    fn route() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![
                broker("broker-b", &[(0, "10.0.0.2:10911"), (1, "10.0.0.3:10911")]),
                broker("broker-a", &[(0, "10.0.0.1:10911")]),
                broker("broker-c", &[(1, "10.0.0.5:10911")]),
            ],
            filter_server_table: BTreeMap::new(),
            order_topic_conf: None,
            queue_datas: vec![
                queue_data("broker-b", perm::READ_WRITE, 2, 2),
                queue_data("broker-a", perm::READ_WRITE | perm::INHERIT, 8, 3),
                queue_data("broker-c", perm::READ_WRITE, 1, 1),
            ],
            topic_queue_mapping_by_broker: None,
        }
    }

    #[test]
    fn publish_queues_skip_brokers_without_master_and_sort_by_name() {
        let queues = publish_queues(&route());
        let ids: Vec<(&str, i32)> = queues
            .iter()
            .map(|queue| (queue.broker_name.as_str(), queue.queue_id))
            .collect();
        assert_eq!(
            ids,
            [
                ("broker-a", 0),
                ("broker-a", 1),
                ("broker-a", 2),
                ("broker-b", 0),
                ("broker-b", 1)
            ]
        );
        assert_eq!(queues[3].broker_addr, "10.0.0.2:10911");
    }

    #[test]
    fn subscribe_queues_use_read_counts_and_fall_back_to_a_replica() {
        let queues = subscribe_queues(&route());
        assert_eq!(queues.len(), 8 + 2 + 1);
        let replica = queues
            .iter()
            .find(|queue| queue.broker_name == "broker-c")
            .expect("c");
        assert_eq!(replica.broker_addr, "10.0.0.5:10911");
    }

    #[test]
    fn read_only_and_order_conf_are_honoured() {
        let mut read_only = route();
        read_only.queue_datas[1].perm = perm::READ;
        assert!(publish_queues(&read_only)
            .iter()
            .all(|q| q.broker_name != "broker-a"));
        let mut ordered = route();
        ordered.order_topic_conf = Some("broker-b:4;broker-x:2;bad".to_owned());
        let queues = publish_queues(&ordered);
        assert_eq!(queues.len(), 4);
        assert!(queues.iter().all(|q| q.broker_name == "broker-b"));
    }

    #[test]
    fn default_route_is_cut_to_the_wanted_queue_count() {
        let cut = cut_default_route(route(), 4);
        let a = cut
            .queue_datas
            .iter()
            .find(|q| q.broker_name == "broker-a")
            .expect("a");
        assert_eq!((a.read_queue_nums, a.write_queue_nums), (4, 4));
        let b = cut
            .queue_datas
            .iter()
            .find(|q| q.broker_name == "broker-b")
            .expect("b");
        assert_eq!((b.read_queue_nums, b.write_queue_nums), (2, 2));
    }
}
