//! NameServer route tables (PROTOCOL.md §4.10): topics -> queue data per broker, brokers ->
//! addresses per broker id, clusters -> broker names, and broker liveness by heartbeat age.
//!
//! Owned by the NameServer thread; pure data and logic (time comes in as an argument, so
//! expiry is tested without sleeping). Must never: do I/O, or hold more brokers/topics than its
//! named limits (registrations beyond them are refused).

use std::collections::{BTreeMap, BTreeSet};

pub use crate::limits::NAMESRV_BROKERS_MAX as BROKERS_MAX;
pub use crate::limits::NAMESRV_TOPICS_MAX as TOPICS_MAX;
/// Default broker expiry without a heartbeat.
pub const BROKER_EXPIRY_MS_DEFAULT: i64 = 120_000;

use rmq_net::codec::body::route::{BrokerData, QueueData};
use rmq_net::codec::body::topic::{perm, DataVersion};

#[derive(Debug, Clone)]
struct Liveness {
    cluster: String,
    broker_name: String,
    broker_id: i64,
    last_update_ms: i64,
    timeout_ms: i64,
    version: DataVersion,
    ha_server_addr: String,
    connection: Option<u64>,
}

/// A REGISTER_BROKER request in domain terms.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Cluster.
    pub cluster: String,
    /// Broker name.
    pub broker_name: String,
    /// `ip:port` put in routes.
    pub broker_addr: String,
    /// Broker id.
    pub broker_id: i64,
    /// HA address.
    pub ha_server_addr: String,
    /// Expiry without heartbeat.
    pub timeout_ms: i64,
    /// Topic table version.
    pub version: DataVersion,
    /// Acting master flag.
    pub enable_acting_master: bool,
    /// The broker's topics: name and queue data (`broker_name` is filled in by the table).
    pub topics: Vec<(String, QueueData)>,
    /// The connection it came on, so a closed connection removes the broker at once.
    pub connection: Option<u64>,
}

/// What REGISTER_BROKER answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterOutcome {
    /// For a slave: the master's HA address.
    pub ha_server_addr: Option<String>,
    /// For a slave: the master's address.
    pub master_addr: Option<String>,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A named limit would be exceeded.
    #[error("{what} limit {max} reached")]
    Limit { what: &'static str, max: usize },
}

/// A topic's route: queue data per broker and the brokers serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Queue data, one per broker name, sorted by broker name.
    pub queues: Vec<QueueData>,
    /// The brokers named in `queues` that are known.
    pub brokers: Vec<BrokerData>,
}

/// All NameServer route state.
#[derive(Debug, Default)]
pub struct RouteTable {
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    live: BTreeMap<String, Liveness>,
}

impl RouteTable {
    /// Registers or refreshes a broker (REGISTER_BROKER).
    ///
    /// # Errors
    /// [`RouteError::Limit`] when a new broker or topic would pass its limit.
    pub fn register(
        &mut self,
        reg: Registration,
        now_ms: i64,
    ) -> Result<RegisterOutcome, RouteError> {
        if !self.live.contains_key(&reg.broker_addr) && self.live.len() >= BROKERS_MAX {
            return Err(RouteError::Limit {
                what: "brokers",
                max: BROKERS_MAX,
            });
        }
        let new_topics = reg
            .topics
            .iter()
            .filter(|(name, _)| !self.topics.contains_key(name))
            .count();
        if self.topics.len() + new_topics > TOPICS_MAX {
            return Err(RouteError::Limit {
                what: "topics",
                max: TOPICS_MAX,
            });
        }
        self.clusters
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.broker_name.clone());
        let broker = self
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| BrokerData {
                broker_name: reg.broker_name.clone(),
                ..BrokerData::default()
            });
        broker.cluster.clone_from(&reg.cluster);
        broker.enable_acting_master = reg.enable_acting_master;
        // The same address registered under another id replaces the old entry.
        broker
            .broker_addrs
            .retain(|id, addr| *addr != reg.broker_addr || *id == reg.broker_id);
        let first = broker
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.clone())
            .is_none();
        let previous = self.live.insert(
            reg.broker_addr.clone(),
            Liveness {
                cluster: reg.cluster.clone(),
                broker_name: reg.broker_name.clone(),
                broker_id: reg.broker_id,
                last_update_ms: now_ms,
                timeout_ms: if reg.timeout_ms > 0 {
                    reg.timeout_ms
                } else {
                    BROKER_EXPIRY_MS_DEFAULT
                },
                version: reg.version,
                ha_server_addr: reg.ha_server_addr.clone(),
                connection: reg.connection,
            },
        );
        let changed = first || previous.is_none_or(|p| p.version != reg.version);
        if reg.broker_id == 0 && changed {
            for (name, queues) in &reg.topics {
                let queues = QueueData {
                    broker_name: reg.broker_name.clone(),
                    ..queues.clone()
                };
                self.topics
                    .entry(name.clone())
                    .or_default()
                    .insert(reg.broker_name.clone(), queues);
            }
        }
        let mut outcome = RegisterOutcome::default();
        if reg.broker_id != 0 {
            let master = self
                .brokers
                .get(&reg.broker_name)
                .and_then(|b| b.broker_addrs.get(&0))
                .cloned();
            if let Some(master_addr) = master {
                outcome.ha_server_addr = self
                    .live
                    .get(&master_addr)
                    .map(|l| l.ha_server_addr.clone());
                outcome.master_addr = Some(master_addr);
            }
        }
        Ok(outcome)
    }

    /// Refreshes a broker's heartbeat (BROKER_HEARTBEAT, QUERY_DATA_VERSION). Returns whether
    /// the broker is known, and its stored version.
    pub fn touch(&mut self, broker_addr: &str, now_ms: i64) -> Option<DataVersion> {
        let live = self.live.get_mut(broker_addr)?;
        live.last_update_ms = now_ms;
        Some(live.version)
    }

    /// Removes one broker address (UNREGISTER_BROKER, expiry, closed connection). When a broker
    /// name has no address left, its queue data is removed from every topic, and topics left
    /// without queues are deleted.
    pub fn unregister(&mut self, broker_addr: &str) {
        let Some(live) = self.live.remove(broker_addr) else {
            return;
        };
        let now_empty = match self.brokers.get_mut(&live.broker_name) {
            Some(broker) => {
                broker
                    .broker_addrs
                    .retain(|id, addr| !(addr == broker_addr && *id == live.broker_id));
                broker.broker_addrs.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.brokers.remove(&live.broker_name);
            if let Some(names) = self.clusters.get_mut(&live.cluster) {
                names.remove(&live.broker_name);
                if names.is_empty() {
                    self.clusters.remove(&live.cluster);
                }
            }
            self.topics.retain(|_, queues| {
                queues.remove(&live.broker_name);
                !queues.is_empty()
            });
        }
    }

    /// Removes brokers whose last heartbeat is older than their timeout; returns their addresses.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| now_ms - l.last_update_ms > l.timeout_ms)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &expired {
            self.unregister(addr);
        }
        expired
    }

    /// Removes every broker that registered over `connection` (it closed).
    pub fn connection_closed(&mut self, connection: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.connection == Some(connection))
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &gone {
            self.unregister(addr);
        }
        gone
    }

    /// The route of `topic`, or `None` when it has no queues (TOPIC_NOT_EXIST).
    #[must_use]
    pub fn route(&self, topic: &str) -> Option<Route> {
        let queues = self.topics.get(topic).filter(|q| !q.is_empty())?;
        let brokers = queues
            .keys()
            .filter_map(|name| self.brokers.get(name))
            .cloned()
            .collect();
        Some(Route {
            queues: queues.values().cloned().collect(),
            brokers,
        })
    }

    /// Every broker by name, and cluster -> broker names (GET_BROKER_CLUSTER_INFO).
    #[must_use]
    pub fn cluster_info(
        &self,
    ) -> (
        &BTreeMap<String, BrokerData>,
        &BTreeMap<String, BTreeSet<String>>,
    ) {
        (&self.brokers, &self.clusters)
    }

    /// All topic names.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// Topics served by any broker of `cluster`.
    #[must_use]
    pub fn topics_of_cluster(&self, cluster: &str) -> Vec<String> {
        let Some(names) = self.clusters.get(cluster) else {
            return Vec::new();
        };
        self.topics
            .iter()
            .filter(|(_, queues)| queues.keys().any(|b| names.contains(b)))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Deletes a topic, from every broker or only from those of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster.and_then(|c| self.clusters.get(c)) {
            Some(names) => {
                if let Some(queues) = self.topics.get_mut(topic) {
                    queues.retain(|broker, _| !names.contains(broker));
                    if queues.is_empty() {
                        self.topics.remove(topic);
                    }
                }
            }
            None if cluster.is_some() => {}
            None => {
                self.topics.remove(topic);
            }
        }
    }

    /// Adds queue data for a topic (REGISTER_TOPIC_IN_NAMESRV).
    pub fn put_topic(&mut self, topic: &str, queues: Vec<QueueData>) {
        let entry = self.topics.entry(topic.to_owned()).or_default();
        for q in queues {
            entry.insert(q.broker_name.clone(), q);
        }
    }

    /// Broker names per cluster, and every broker name (GET_SYSTEM_TOPIC_LIST_FROM_NS).
    #[must_use]
    pub fn cluster_and_broker_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.clusters.keys().cloned().collect();
        names.extend(self.brokers.keys().cloned());
        names
    }

    /// Clears (`wipe`) or sets the write permission of every topic on `broker_name`; returns how
    /// many topics changed (WIPE_/ADD_WRITE_PERM_OF_BROKER).
    pub fn set_write_perm(&mut self, broker_name: &str, writable: bool) -> i32 {
        let mut count = 0;
        for queues in self.topics.values_mut() {
            if let Some(q) = queues.get_mut(broker_name) {
                q.perm = if writable {
                    q.perm | perm::WRITE
                } else {
                    q.perm & !perm::WRITE
                };
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, addr: &str, id: i64, topics: &[&str], counter: i64) -> Registration {
        Registration {
            cluster: "DefaultCluster".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            timeout_ms: 0,
            version: DataVersion {
                state_version: 0,
                timestamp: 1,
                counter,
            },
            enable_acting_master: false,
            topics: topics
                .iter()
                .map(|t| {
                    let q = QueueData {
                        read_queue_nums: 4,
                        write_queue_nums: 4,
                        perm: 6,
                        ..QueueData::default()
                    };
                    ((*t).to_owned(), q)
                })
                .collect(),
            connection: Some(7),
        }
    }

    #[test]
    fn register_route_and_slave_learns_master() {
        let mut table = RouteTable::default();
        table
            .register(reg("broker-a", "10.0.0.1:10911", 0, &["T", "TBW102"], 1), 0)
            .expect("ok");
        let slave = table
            .register(reg("broker-a", "10.0.0.2:10911", 1, &["T"], 1), 0)
            .expect("ok");
        assert_eq!(slave.master_addr.as_deref(), Some("10.0.0.1:10911"));
        assert_eq!(slave.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));
        let route = table.route("T").expect("route");
        assert_eq!(route.brokers.len(), 1);
        assert_eq!(route.brokers[0].broker_addrs.len(), 2);
        assert_eq!(route.queues[0].broker_name, "broker-a");
        assert_eq!(route.queues[0].write_queue_nums, 4);
        assert!(table.route("nope").is_none());
    }

    #[test]
    fn expiry_removes_broker_and_its_topics() {
        let mut table = RouteTable::default();
        table
            .register(reg("broker-a", "a:1", 0, &["T"], 1), 1_000)
            .expect("ok");
        table
            .register(reg("broker-b", "b:1", 0, &["T", "U"], 1), 100_000)
            .expect("ok");
        assert!(table.expire(120_000).is_empty());
        assert_eq!(table.expire(121_001), vec!["a:1".to_owned()]);
        let route = table.route("T").expect("still served by b");
        let names: Vec<_> = route
            .queues
            .iter()
            .map(|q| q.broker_name.as_str())
            .collect();
        assert_eq!(names, vec!["broker-b"]);
        assert_eq!(table.connection_closed(7), vec!["b:1".to_owned()]);
        assert!(table.route("T").is_none());
        assert!(table.cluster_info().1.is_empty());
    }

    #[test]
    fn unchanged_version_does_not_rewrite_topics_and_perm_wipe_counts() {
        let mut table = RouteTable::default();
        table
            .register(reg("broker-a", "a:1", 0, &["T"], 1), 0)
            .expect("ok");
        assert_eq!(table.set_write_perm("broker-a", false), 1);
        assert_eq!(table.route("T").expect("r").queues[0].perm, 4);
        // Same data version: topic table not re-applied, so the wipe stays.
        table
            .register(reg("broker-a", "a:1", 0, &["T"], 1), 10)
            .expect("ok");
        assert_eq!(table.route("T").expect("r").queues[0].perm, 4);
        // New version: re-applied.
        table
            .register(reg("broker-a", "a:1", 0, &["T"], 2), 20)
            .expect("ok");
        assert_eq!(table.route("T").expect("r").queues[0].perm, 6);
        assert_eq!(
            table.topics_of_cluster("DefaultCluster"),
            vec!["T".to_owned()]
        );
        table.delete_topic("T", None);
        assert!(table.route("T").is_none());
    }
}
