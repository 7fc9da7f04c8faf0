//! VIEW_BROKER_STATS_DATA (315) reply body, Java's `BrokerStatsData`: one stats item
//! (`TOPIC_PUT_NUMS` of a topic, `GROUP_GET_NUMS` of `topic@group`) over the last minute,
//! hour and day. Field names and order as fastjson writes them (alphabetical).
//! Must never: carry anything but numbers (it is built from counters, never client text).

use serde::{Deserialize, Serialize};

/// One window of a stats item (Java `BrokerStatsItem`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsItem {
    /// Average value per increment (messages per request).
    pub avgpt: f64,
    /// Total over the window.
    pub sum: i64,
    /// Per second over the window.
    pub tps: f64,
}

/// VIEW_BROKER_STATS_DATA (315) reply body.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsData {
    /// The last 24 hours.
    pub stats_day: BrokerStatsItem,
    /// The last hour.
    pub stats_hour: BrokerStatsItem,
    /// The last minute.
    pub stats_minute: BrokerStatsItem,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::JsonBody as _;

    #[test]
    fn fastjson_field_order_and_round_trip() {
        let data = BrokerStatsData {
            stats_day: BrokerStatsItem {
                avgpt: 1.0,
                sum: 7,
                tps: 0.5,
            },
            ..BrokerStatsData::default()
        };
        let json = String::from_utf8(data.to_json()).expect("utf8");
        assert!(
            json.starts_with("{\"statsDay\":{\"avgpt\":1.0,\"sum\":7,\"tps\":0.5},\"statsHour\""),
            "{json}"
        );
        assert_eq!(
            BrokerStatsData::from_json(json.as_bytes()).expect("parses"),
            data
        );
    }
}
