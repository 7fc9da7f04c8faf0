//! Admin statistics bodies whose maps are keyed by `MessageQueue` objects (PROTOCOL.md §4.9,
//! §5.9): `TopicStatsTable` (GET_TOPIC_STATS_INFO, 202) and `ConsumeStats` (GET_CONSUME_STATS,
//! 208). fastjson writes such a key as the object itself:
//! `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{...}}}`, which serde cannot, so
//! these types have their own emitter. Only Java admin tools read them; decoding that form is
//! not implemented. Must never be fed to a standard JSON parser by our own code.

use std::collections::BTreeMap;

use serde::Serialize;

use super::queue::MessageQueue;
use super::to_compact_json;

/// One queue's offsets in a topic. Fields in JSON-name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicOffset {
    /// Store time of the last message, ms.
    pub last_update_timestamp: i64,
    /// Next offset to be written.
    pub max_offset: i64,
    /// Smallest stored offset.
    pub min_offset: i64,
}

/// GET_TOPIC_STATS_INFO (202) reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicStatsTable {
    /// Queue -> offsets, in Java `MessageQueue` order.
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
}

impl TopicStatsTable {
    /// fastjson's form, with `MessageQueue` objects as keys.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"offsetTable\":");
        write_object_key_map(&self.offset_table, &mut out);
        out.push(b'}');
        out
    }
}

/// One queue's consumption progress. Fields in JSON-name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetWrapper {
    /// Queue max offset.
    pub broker_offset: i64,
    /// Committed consumer offset.
    pub consumer_offset: i64,
    /// Store time of the last consumed message, ms.
    pub last_timestamp: i64,
    /// Offset pulled so far (5.x).
    pub pull_offset: i64,
}

/// GET_CONSUME_STATS (208) reply body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumeStats {
    /// Messages consumed per second.
    pub consume_tps: f64,
    /// Queue -> progress, in Java `MessageQueue` order.
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
}

impl ConsumeStats {
    /// fastjson's form, with `MessageQueue` objects as keys.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"consumeTps\":");
        out.extend_from_slice(&to_compact_json(&self.consume_tps));
        out.extend_from_slice(b",\"offsetTable\":");
        write_object_key_map(&self.offset_table, &mut out);
        out.push(b'}');
        out
    }
}

/// Writes `{KEY_OBJECT:VALUE,...}` with each key serialized as a JSON object.
fn write_object_key_map<V: Serialize>(map: &BTreeMap<MessageQueue, V>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (index, (queue, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&to_compact_json(queue));
        out.push(b':');
        out.extend_from_slice(&to_compact_json(value));
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_stats_object_keys() {
        let mut stats = TopicStatsTable::default();
        stats.offset_table.insert(
            MessageQueue::new("t", "b", 1),
            TopicOffset {
                last_update_timestamp: 9,
                max_offset: 5,
                min_offset: 0,
            },
        );
        stats
            .offset_table
            .insert(MessageQueue::new("t", "b", 0), TopicOffset::default());
        assert_eq!(
            String::from_utf8(stats.to_json()).expect("utf-8"),
            concat!(
                r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{"lastUpdateTimestamp":0,"maxOffset":0,"minOffset":0},"#,
                r#"{"brokerName":"b","queueId":1,"topic":"t"}:{"lastUpdateTimestamp":9,"maxOffset":5,"minOffset":0}}}"#
            )
        );
        assert_eq!(
            String::from_utf8(TopicStatsTable::default().to_json()).expect("utf-8"),
            r#"{"offsetTable":{}}"#
        );
    }

    #[test]
    fn consume_stats_object_keys() {
        let mut stats = ConsumeStats {
            consume_tps: 1.5,
            ..ConsumeStats::default()
        };
        stats.offset_table.insert(
            MessageQueue::new("t", "b", 0),
            OffsetWrapper {
                broker_offset: 10,
                consumer_offset: 7,
                last_timestamp: 1_700_000_000_000,
                pull_offset: 8,
            },
        );
        assert_eq!(
            String::from_utf8(stats.to_json()).expect("utf-8"),
            concat!(
                r#"{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:"#,
                r#"{"brokerOffset":10,"consumerOffset":7,"lastTimestamp":1700000000000,"pullOffset":8}}}"#
            )
        );
        assert_eq!(
            String::from_utf8(ConsumeStats::default().to_json()).expect("utf-8"),
            r#"{"consumeTps":0.0,"offsetTable":{}}"#
        );
    }
}
