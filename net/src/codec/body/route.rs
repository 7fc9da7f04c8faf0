//! Route bodies (PROTOCOL.md §4.10.3, §4.10.4, §5.1): `TopicRouteData` with `QueueData` and
//! `BrokerData`, and `ClusterInfo`.
//!
//! `brokerAddrs` (`{brokerId: "ip:port"}`) has two encodings, chosen per request by
//! [`RouteJsonStyle::for_request`]: standard JSON with quoted keys (`{"0":"a"}`) for clients
//! at V4_9_4 (401) or above or that set `acceptStandardJsonOnly`, and fastjson's legacy form
//! with unquoted keys (`{0:"a"}`) for everything older (Go 317, ali-ons 121, C++ 63). Java
//! always writes `ClusterInfo` in the legacy form. Both are compact (no spaces): Go splits the
//! raw `brokerAddrs` text on `,` and `:`.
//!
//! `QueueData.topicSysFlag`: we write only `topicSysFlag`, as Java since 4.9.0 does, so our
//! output is byte-for-byte Java's; we read Java's old `topicSynFlag` spelling as well.
//!
//! Must never: write spaces, or quote keys in the legacy form.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{lenient, to_compact_json, JsonBody};
use crate::codec::codes::VERSION_V4_9_4;
use crate::codec::error::CodecError;

/// Which `brokerAddrs` encoding to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteJsonStyle {
    /// Standard JSON: `{"0":"ip:port"}`.
    Standard,
    /// fastjson's unquoted integer keys: `{0:"ip:port"}`.
    Legacy,
}

impl RouteJsonStyle {
    /// Java namesrv's choice: standard when the request `version >= 401` (V4_9_4) or the
    /// request set `acceptStandardJsonOnly=true`, legacy otherwise.
    #[must_use]
    pub const fn for_request(version: i32, accept_standard_json_only: bool) -> Self {
        if version >= VERSION_V4_9_4 || accept_standard_json_only {
            Self::Standard
        } else {
            Self::Legacy
        }
    }
}

/// One broker's queues for a topic. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "QueueDataWire")]
pub struct QueueData {
    /// Broker name.
    pub broker_name: String,
    /// `perm` bits (§7.2).
    pub perm: i32,
    /// Read queue count.
    pub read_queue_nums: i32,
    /// Topic sysFlag.
    pub topic_sys_flag: i32,
    /// Write queue count.
    pub write_queue_nums: i32,
}

/// Input shape of [`QueueData`]: accepts both `topicSysFlag` and the pre-4.9 `topicSynFlag`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct QueueDataWire {
    broker_name: String,
    #[serde(deserialize_with = "lenient::i32")]
    perm: i32,
    #[serde(deserialize_with = "lenient::i32")]
    read_queue_nums: i32,
    #[serde(deserialize_with = "lenient_option_i32")]
    topic_sys_flag: Option<i32>,
    #[serde(deserialize_with = "lenient_option_i32")]
    topic_syn_flag: Option<i32>,
    #[serde(deserialize_with = "lenient::i32")]
    write_queue_nums: i32,
}

fn lenient_option_i32<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i32>, D::Error> {
    lenient::i32(deserializer).map(Some)
}

impl From<QueueDataWire> for QueueData {
    fn from(wire: QueueDataWire) -> Self {
        Self {
            broker_name: wire.broker_name,
            perm: wire.perm,
            read_queue_nums: wire.read_queue_nums,
            topic_sys_flag: wire.topic_sys_flag.or(wire.topic_syn_flag).unwrap_or(0),
            write_queue_nums: wire.write_queue_nums,
        }
    }
}

/// One broker (master and slaves). Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BrokerData {
    /// brokerId -> `ip:port`; 0 is the master.
    pub broker_addrs: BTreeMap<i64, String>,
    /// Broker name.
    pub broker_name: String,
    /// Cluster name.
    pub cluster: String,
    /// 5.x slave acting as master.
    #[serde(deserialize_with = "lenient::bool")]
    pub enable_acting_master: bool,
    /// Zone name (5.x), omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

/// GET_ROUTEINFO_BY_TOPIC (105) reply body. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicRouteData {
    /// Every broker serving the topic.
    pub broker_datas: Vec<BrokerData>,
    /// brokerAddr -> filter servers; Java writes `{}`.
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// `brokerA:4;brokerB:4` when the namesrv runs with `orderMessageEnable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// Queues per broker.
    pub queue_datas: Vec<QueueData>,
    /// Static topics only (opaque JSON), omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, Value>>,
}

impl TopicRouteData {
    /// The body in `style`.
    #[must_use]
    pub fn to_json_in(&self, style: RouteJsonStyle) -> Vec<u8> {
        match style {
            RouteJsonStyle::Standard => to_compact_json(self),
            RouteJsonStyle::Legacy => {
                let mut out = Vec::new();
                write_legacy_route(self, &mut out);
                out
            }
        }
    }
}

impl JsonBody for TopicRouteData {
    const NAME: &'static str = "TopicRouteData";

    /// The standard form; use [`TopicRouteData::to_json_in`] to answer a client.
    fn to_json(&self) -> Vec<u8> {
        to_compact_json(self)
    }

    fn from_json(bytes: &[u8]) -> Result<Self, CodecError> {
        lenient::parse_lenient(Self::NAME, bytes)
    }
}

/// GET_BROKER_CLUSTER_INFO (106) reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterInfo {
    /// brokerName -> BrokerData.
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// cluster -> brokerNames.
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

impl ClusterInfo {
    /// The body in `style`.
    #[must_use]
    pub fn to_json_in(&self, style: RouteJsonStyle) -> Vec<u8> {
        match style {
            RouteJsonStyle::Standard => to_compact_json(self),
            RouteJsonStyle::Legacy => {
                let mut out = Vec::new();
                out.extend_from_slice(b"{\"brokerAddrTable\":{");
                for (index, (name, broker)) in self.broker_addr_table.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&to_compact_json(name));
                    out.push(b':');
                    write_legacy_broker(broker, &mut out);
                }
                out.extend_from_slice(b"},\"clusterAddrTable\":");
                out.extend_from_slice(&to_compact_json(&self.cluster_addr_table));
                out.push(b'}');
                out
            }
        }
    }
}

impl JsonBody for ClusterInfo {
    const NAME: &'static str = "ClusterInfo";

    /// The legacy form, as Java always writes it.
    fn to_json(&self) -> Vec<u8> {
        self.to_json_in(RouteJsonStyle::Legacy)
    }

    fn from_json(bytes: &[u8]) -> Result<Self, CodecError> {
        lenient::parse_lenient(Self::NAME, bytes)
    }
}

/// Writes `route` with unquoted `brokerAddrs` keys, keys in the same order serde uses.
fn write_legacy_route(route: &TopicRouteData, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"brokerDatas\":[");
    for (index, broker) in route.broker_datas.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_legacy_broker(broker, out);
    }
    out.extend_from_slice(b"],\"filterServerTable\":");
    out.extend_from_slice(&to_compact_json(&route.filter_server_table));
    if let Some(conf) = &route.order_topic_conf {
        out.extend_from_slice(b",\"orderTopicConf\":");
        out.extend_from_slice(&to_compact_json(conf));
    }
    out.extend_from_slice(b",\"queueDatas\":");
    out.extend_from_slice(&to_compact_json(&route.queue_datas));
    if let Some(mapping) = &route.topic_queue_mapping_by_broker {
        out.extend_from_slice(b",\"topicQueueMappingByBroker\":");
        out.extend_from_slice(&to_compact_json(mapping));
    }
    out.push(b'}');
}

/// Writes one `BrokerData` with unquoted `brokerAddrs` keys.
fn write_legacy_broker(broker: &BrokerData, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"brokerAddrs\":{");
    for (index, (id, addr)) in broker.broker_addrs.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write!(out, "{id}:").expect("writing to a Vec cannot fail");
        out.extend_from_slice(&to_compact_json(addr));
    }
    out.extend_from_slice(b"},\"brokerName\":");
    out.extend_from_slice(&to_compact_json(&broker.broker_name));
    out.extend_from_slice(b",\"cluster\":");
    out.extend_from_slice(&to_compact_json(&broker.cluster));
    out.extend_from_slice(b",\"enableActingMaster\":");
    out.extend_from_slice(if broker.enable_acting_master {
        b"true"
    } else {
        b"false"
    });
    if let Some(zone) = &broker.zone_name {
        out.extend_from_slice(b",\"zoneName\":");
        out.extend_from_slice(&to_compact_json(zone));
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample_route() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [
                    (0, "10.0.0.1:10911".to_owned()),
                    (1, "10.0.0.2:10911".to_owned()),
                ]
                .into_iter()
                .collect(),
                broker_name: "broker-a".into(),
                cluster: "DefaultCluster".into(),
                enable_acting_master: false,
                zone_name: None,
            }],
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm: 6,
                read_queue_nums: 4,
                topic_sys_flag: 0,
                write_queue_nums: 4,
            }],
            ..TopicRouteData::default()
        }
    }

    #[test]
    fn style_choice_follows_java() {
        assert_eq!(
            RouteJsonStyle::for_request(401, false),
            RouteJsonStyle::Standard
        );
        assert_eq!(
            RouteJsonStyle::for_request(479, false),
            RouteJsonStyle::Standard
        );
        assert_eq!(
            RouteJsonStyle::for_request(400, false),
            RouteJsonStyle::Legacy
        );
        assert_eq!(
            RouteJsonStyle::for_request(317, false),
            RouteJsonStyle::Legacy
        );
        assert_eq!(
            RouteJsonStyle::for_request(63, true),
            RouteJsonStyle::Standard
        );
    }

    #[test]
    fn route_optional_fields_in_order() {
        let mut route = sample_route();
        route.order_topic_conf = Some("broker-a:4".into());
        route.broker_datas[0].zone_name = Some("z1".into());
        route.topic_queue_mapping_by_broker = Some(BTreeMap::new());
        let standard =
            String::from_utf8(route.to_json_in(RouteJsonStyle::Standard)).expect("utf-8");
        let legacy = String::from_utf8(route.to_json_in(RouteJsonStyle::Legacy)).expect("utf-8");
        assert_eq!(
            standard,
            concat!(
                r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","#,
                r#""cluster":"DefaultCluster","enableActingMaster":false,"zoneName":"z1"}],"filterServerTable":{},"#,
                r#""orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"#,
                r#""topicSysFlag":0,"writeQueueNums":4}],"topicQueueMappingByBroker":{}}"#
            )
        );
        assert_eq!(
            legacy,
            standard
                .replace(r#"{"0":"#, "{0:")
                .replace(r#","1":"#, ",1:")
        );
    }

    #[test]
    fn old_topic_syn_flag_is_read() {
        let queue = QueueData::from_json(
            br#"{"brokerName":"b","perm":"6","readQueueNums":4,"topicSynFlag":3,"writeQueueNums":4}"#,
        )
        .expect("valid");
        assert_eq!(queue.topic_sys_flag, 3);
        assert_eq!(queue.perm, 6);
        let both = QueueData::from_json(br#"{"topicSysFlag":1,"topicSynFlag":3}"#).expect("valid");
        assert_eq!(both.topic_sys_flag, 1);
    }

    fn arb_broker() -> impl Strategy<Value = BrokerData> {
        (
            proptest::collection::btree_map(any::<i64>(), any::<String>(), 0..4),
            any::<String>(),
            any::<String>(),
            any::<bool>(),
            any::<Option<String>>(),
        )
            .prop_map(|(addrs, name, cluster, acting, zone)| BrokerData {
                broker_addrs: addrs,
                broker_name: name,
                cluster,
                enable_acting_master: acting,
                zone_name: zone,
            })
    }

    fn arb_queue() -> impl Strategy<Value = QueueData> {
        (
            any::<String>(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
        )
            .prop_map(|(name, perm, read, flag, write)| QueueData {
                broker_name: name,
                perm,
                read_queue_nums: read,
                topic_sys_flag: flag,
                write_queue_nums: write,
            })
    }

    proptest! {
        #[test]
        fn route_round_trips_in_both_styles(
            brokers in proptest::collection::vec(arb_broker(), 0..4),
            queues in proptest::collection::vec(arb_queue(), 0..4),
            conf in any::<Option<String>>(),
        ) {
            let route = TopicRouteData {
                broker_datas: brokers,
                queue_datas: queues,
                order_topic_conf: conf,
                ..TopicRouteData::default()
            };
            for style in [RouteJsonStyle::Standard, RouteJsonStyle::Legacy] {
                let bytes = route.to_json_in(style);
                prop_assert!(!bytes.contains(&b'\n'));
                prop_assert_eq!(TopicRouteData::from_json(&bytes), Ok(route.clone()));
            }
        }

        #[test]
        fn cluster_round_trips_in_both_styles(
            brokers in proptest::collection::btree_map(any::<String>(), arb_broker(), 0..4),
            clusters in proptest::collection::btree_map(
                any::<String>(),
                proptest::collection::btree_set(any::<String>(), 0..4),
                0..4,
            ),
        ) {
            let info = ClusterInfo { broker_addr_table: brokers, cluster_addr_table: clusters };
            for style in [RouteJsonStyle::Standard, RouteJsonStyle::Legacy] {
                prop_assert_eq!(ClusterInfo::from_json(&info.to_json_in(style)), Ok(info.clone()));
            }
        }
    }
}
