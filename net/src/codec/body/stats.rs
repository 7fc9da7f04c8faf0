//! Admin statistics bodies whose maps are keyed by `MessageQueue` objects (PROTOCOL.md §4.9,
//! §5.9): `TopicStatsTable` (GET_TOPIC_STATS_INFO, 202) and `ConsumeStats` (GET_CONSUME_STATS,
//! 208). fastjson writes such a key as the object itself:
//! `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{...}}}`, which serde cannot, so
//! these types have their own emitter, and their own decoders (`from_json`) on top of the
//! object-key reader ([`super::object_keys`]). Must never be fed to a standard JSON parser by
//! our own code.

use std::collections::BTreeMap;

use serde::Serialize;

use super::object_keys::{parse_object_keys, ObjectKeyError, ObjectKeyValue};
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

    /// Decodes a GET_TOPIC_STATS_INFO body in fastjson's object-key form. Members may come in
    /// any order and unknown ones are ignored; a missing or non-integer offset field is 0.
    ///
    /// # Errors
    /// [`ObjectKeyError`]: text the object-key reader refuses, a body or `offsetTable` that is
    /// not an object, a member name that is not a string, or a key that is not a
    /// `MessageQueue`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ObjectKeyError> {
        let parsed = QueueKeyed::parse("TopicStatsTable", bytes)?;
        let mut stats = Self::default();
        for (queue, value) in parsed.table {
            let offset = TopicOffset {
                last_update_timestamp: field_i64(&value, "lastUpdateTimestamp"),
                max_offset: field_i64(&value, "maxOffset"),
                min_offset: field_i64(&value, "minOffset"),
            };
            stats.offset_table.insert(queue, offset);
        }
        Ok(stats)
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

    /// Decodes a GET_CONSUME_STATS body in fastjson's object-key form
    /// (`{"consumeTps":0.0,"offsetTable":{{"brokerName":..,"queueId":0,"topic":..}:{..}}}`).
    /// Members may come in any order and unknown ones are ignored; a missing or non-numeric
    /// field is 0.
    ///
    /// # Errors
    /// As [`TopicStatsTable::from_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ObjectKeyError> {
        let parsed = QueueKeyed::parse("ConsumeStats", bytes)?;
        let mut stats = Self::default();
        for (name, value) in &parsed.members {
            if name == "consumeTps" {
                stats.consume_tps = value.as_f64().unwrap_or(0.0);
            }
        }
        for (queue, value) in parsed.table {
            let wrapper = OffsetWrapper {
                broker_offset: field_i64(&value, "brokerOffset"),
                consumer_offset: field_i64(&value, "consumerOffset"),
                last_timestamp: field_i64(&value, "lastTimestamp"),
                pull_offset: field_i64(&value, "pullOffset"),
            };
            stats.offset_table.insert(queue, wrapper);
        }
        Ok(stats)
    }
}

/// `ResetOffsetBody`: the offsets a reset chose, per queue. The body of
/// RESET_CONSUMER_CLIENT_OFFSET (220, broker → client) and of the INVOKE_BROKER_TO_RESET_OFFSET
/// (222) reply: `{"offsetTable":{{"brokerName":..,"queueId":0,"topic":..}:12,...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResetOffsetBody {
    /// Queue -> offset to consume from, in Java `MessageQueue` order.
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

impl ResetOffsetBody {
    /// fastjson's form, with `MessageQueue` objects as keys.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"offsetTable\":");
        write_object_key_map(&self.offset_table, &mut out);
        out.push(b'}');
        out
    }

    /// Decodes the body in fastjson's object-key form; an offset that is not an integer is
    /// an error (a reset to a made-up offset would be worse than none).
    ///
    /// # Errors
    /// As [`TopicStatsTable::from_json`], and [`ObjectKeyError::NotAnObject`] naming
    /// `offset` for a non-integer offset.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ObjectKeyError> {
        let parsed = QueueKeyed::parse("ResetOffsetBody", bytes)?;
        let mut body = Self::default();
        for (queue, value) in parsed.table {
            let offset = value
                .as_i64()
                .ok_or(ObjectKeyError::NotAnObject { what: "offset" })?;
            body.offset_table.insert(queue, offset);
        }
        Ok(body)
    }
}

/// `GetConsumerStatusBody`: a client's offsets of one topic (`messageQueueTable`, the body of
/// its GET_CONSUMER_STATUS_FROM_CLIENT answer), or every client's (`consumerTable`, client id
/// -> table, the INVOKE_BROKER_TO_GET_CONSUMER_STATUS reply).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetConsumerStatusBody {
    /// Client id -> queue -> offset.
    pub consumer_table: BTreeMap<String, BTreeMap<MessageQueue, i64>>,
    /// Queue -> offset.
    pub message_queue_table: BTreeMap<MessageQueue, i64>,
}

impl GetConsumerStatusBody {
    /// fastjson's form (members in name order, `MessageQueue` objects as keys).
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"consumerTable\":{");
        for (index, (client, table)) in self.consumer_table.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&to_compact_json(client));
            out.push(b':');
            write_object_key_map(table, &mut out);
        }
        out.extend_from_slice(b"},\"messageQueueTable\":");
        write_object_key_map(&self.message_queue_table, &mut out);
        out.push(b'}');
        out
    }

    /// Decodes the body in fastjson's object-key form (members in any order, either absent).
    ///
    /// # Errors
    /// [`ObjectKeyError`]: text the reader refuses, a member of the wrong shape, a key that is
    /// not a `MessageQueue`, or an offset that is not an integer.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ObjectKeyError> {
        let what = "GetConsumerStatusBody";
        let ObjectKeyValue::Object(members) = parse_object_keys(bytes)? else {
            return Err(ObjectKeyError::NotAnObject { what });
        };
        let mut body = Self::default();
        for (name, value) in members {
            match name {
                ObjectKeyValue::String(name) if name == "messageQueueTable" => {
                    body.message_queue_table = offset_table(value)?;
                }
                ObjectKeyValue::String(name) if name == "consumerTable" => {
                    let ObjectKeyValue::Object(clients) = value else {
                        return Err(ObjectKeyError::NotAnObject {
                            what: "consumerTable",
                        });
                    };
                    for (client, table) in clients {
                        let ObjectKeyValue::String(client) = client else {
                            return Err(ObjectKeyError::MemberName {
                                what: "consumerTable",
                            });
                        };
                        body.consumer_table.insert(client, offset_table(table)?);
                    }
                }
                ObjectKeyValue::String(_) => {}
                _ => return Err(ObjectKeyError::MemberName { what }),
            }
        }
        Ok(body)
    }
}

/// `{MQ:offset,...}` with integer offsets.
fn offset_table(value: ObjectKeyValue) -> Result<BTreeMap<MessageQueue, i64>, ObjectKeyError> {
    let ObjectKeyValue::Object(entries) = value else {
        return Err(ObjectKeyError::NotAnObject {
            what: "offset table",
        });
    };
    let mut table = BTreeMap::new();
    for (key, offset) in entries {
        let offset = offset
            .as_i64()
            .ok_or(ObjectKeyError::NotAnObject { what: "offset" })?;
        table.insert(message_queue(key)?, offset);
    }
    Ok(table)
}

/// A body whose `offsetTable` is keyed by `MessageQueue` objects: the table's entries and the
/// other top-level members, in input order.
struct QueueKeyed {
    members: Vec<(String, ObjectKeyValue)>,
    table: Vec<(MessageQueue, ObjectKeyValue)>,
}

impl QueueKeyed {
    /// Splits `{"member":value,...,"offsetTable":{MQ:value,...}}` (any member order).
    fn parse(what: &'static str, bytes: &[u8]) -> Result<Self, ObjectKeyError> {
        let ObjectKeyValue::Object(members) = parse_object_keys(bytes)? else {
            return Err(ObjectKeyError::NotAnObject { what });
        };
        let mut parsed = Self {
            members: Vec::new(),
            table: Vec::new(),
        };
        for (name, value) in members {
            let ObjectKeyValue::String(name) = name else {
                return Err(ObjectKeyError::MemberName { what });
            };
            if name != "offsetTable" {
                parsed.members.push((name, value));
                continue;
            }
            let ObjectKeyValue::Object(entries) = value else {
                return Err(ObjectKeyError::NotAnObject {
                    what: "offsetTable",
                });
            };
            for (key, value) in entries {
                parsed.table.push((message_queue(key)?, value));
            }
        }
        Ok(parsed)
    }
}

/// A table key: a `MessageQueue` object, or a string holding one in JSON.
fn message_queue(key: ObjectKeyValue) -> Result<MessageQueue, ObjectKeyError> {
    let shape = |source| ObjectKeyError::Shape {
        what: "MessageQueue key",
        source,
    };
    let key = match key {
        ObjectKeyValue::String(text) => {
            serde_json::from_str::<serde_json::Value>(&text).map_err(shape)?
        }
        other => other.into_standard_json()?,
    };
    serde_json::from_value(key).map_err(shape)
}

/// An integer member of an object value; 0 when missing or not an integer.
fn field_i64(value: &ObjectKeyValue, name: &str) -> i64 {
    value
        .get(name)
        .and_then(ObjectKeyValue::as_i64)
        .unwrap_or(0)
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
    fn consumer_status_body_round_trips_and_reads_the_client_form() {
        let mut body = GetConsumerStatusBody::default();
        let mut table = BTreeMap::new();
        table.insert(MessageQueue::new("t", "b", 0), 4);
        body.consumer_table
            .insert("10.0.0.1@x".into(), table.clone());
        let text = String::from_utf8(body.to_json()).expect("utf-8");
        assert_eq!(
            text,
            r#"{"consumerTable":{"10.0.0.1@x":{{"brokerName":"b","queueId":0,"topic":"t"}:4}},"messageQueueTable":{}}"#
        );
        assert_eq!(
            GetConsumerStatusBody::from_json(text.as_bytes()).expect("decodes"),
            body
        );
        // rocketmq-client-rust's answer: messageQueueTable first, object keys.
        let client = br#"{"messageQueueTable":{{"topic":"t","brokerName":"b","queueId":0}:4},"consumerTable":{}}"#;
        let decoded = GetConsumerStatusBody::from_json(client).expect("client form");
        assert_eq!(decoded.message_queue_table, table);
        assert!(decoded.consumer_table.is_empty());
    }

    #[test]
    fn reset_offset_body_round_trips_in_fastjson_form() {
        let mut body = ResetOffsetBody::default();
        body.offset_table.insert(MessageQueue::new("t", "b", 1), 7);
        body.offset_table.insert(MessageQueue::new("t", "b", 0), 3);
        let text = String::from_utf8(body.to_json()).expect("utf-8");
        assert_eq!(
            text,
            concat!(
                r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:3,"#,
                r#"{"brokerName":"b","queueId":1,"topic":"t"}:7}}"#
            )
        );
        assert_eq!(
            ResetOffsetBody::from_json(text.as_bytes()).expect("decodes"),
            body
        );
        assert!(ResetOffsetBody::from_json(
            br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:"x"}}"#
        )
        .is_err());
    }

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

    #[test]
    fn consume_stats_round_trip_through_the_object_key_form() {
        let mut stats = ConsumeStats {
            consume_tps: 2.5,
            ..ConsumeStats::default()
        };
        for (queue_id, broker_offset, consumer_offset) in [(0, 10, 7), (1, 5, 5), (3, 0, 0)] {
            stats.offset_table.insert(
                MessageQueue::new("T{,}:x", "broker-a", queue_id),
                OffsetWrapper {
                    broker_offset,
                    consumer_offset,
                    last_timestamp: 1_700_000_000_000 + i64::from(queue_id),
                    pull_offset: consumer_offset,
                },
            );
        }
        let parsed = ConsumeStats::from_json(&stats.to_json()).expect("parses");
        assert_eq!(parsed, stats);
        let empty = ConsumeStats::from_json(&ConsumeStats::default().to_json()).expect("parses");
        assert_eq!(empty, ConsumeStats::default());
        // Whitespace, unknown members, member order and string-held keys are tolerated.
        let loose = concat!(
            r#" { "offsetTable" : { "{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"t\"}" "#,
            r#": {"brokerOffset":4} } , "x":[1,{"y":2}], "consumeTps" : 1 } "#
        );
        let parsed = ConsumeStats::from_json(loose.as_bytes()).expect("parses");
        assert_eq!(parsed.consume_tps, 1.0);
        let offsets = parsed.offset_table[&MessageQueue::new("t", "b", 2)];
        assert_eq!((offsets.broker_offset, offsets.consumer_offset), (4, 0));
    }

    #[test]
    fn topic_stats_round_trip_through_the_object_key_form() {
        let mut stats = TopicStatsTable::default();
        for queue_id in 0..3 {
            stats.offset_table.insert(
                MessageQueue::new("T", "broker-a", queue_id),
                TopicOffset {
                    last_update_timestamp: 1_700_000_000_000,
                    max_offset: i64::from(queue_id) * 10,
                    min_offset: i64::from(queue_id),
                },
            );
        }
        assert_eq!(
            TopicStatsTable::from_json(&stats.to_json()).expect("parses"),
            stats
        );
        assert!(matches!(
            TopicStatsTable::from_json(b"{\"offsetTable\":{1:2}}"),
            Err(ObjectKeyError::Shape { .. })
        ));
    }

    #[test]
    fn malformed_stats_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"[]",
            b"{\"offsetTable\":{{\"queueId\":0}",
            b"{\"offsetTable\":{{\"queueId\":\"x\"}:{}}}",
            b"{\"offsetTable\":{{{\"a\":1}:2}:{}}}",
            b"{\"offsetTable\":{\"not json\":{}}}",
            b"{\"offsetTable\":[]}",
            b"{\"consumeTps\":1 \"offsetTable\":{}}",
            b"{1:2}",
        ] {
            assert!(
                ConsumeStats::from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                TopicStatsTable::from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            ConsumeStats::from_json(b"[]"),
            Err(ObjectKeyError::NotAnObject {
                what: "ConsumeStats"
            })
        ));
        assert!(matches!(
            TopicStatsTable::from_json(b"{1:2}"),
            Err(ObjectKeyError::MemberName {
                what: "TopicStatsTable"
            })
        ));
    }

    #[test]
    fn missing_or_odd_fields_read_as_zero() {
        let text = concat!(
            r#"{"consumeTps":"fast","offsetTable":{{"brokerName":"b","queueId":"1","topic":"t"}:"#,
            r#"{"brokerOffset":1.5,"consumerOffset":"3","lastTimestamp":null,"pullOffset":9,"pullOffset":2}}}"#
        );
        let stats = ConsumeStats::from_json(text.as_bytes()).expect("parses");
        assert_eq!(stats.consume_tps, 0.0);
        assert_eq!(
            stats.offset_table[&MessageQueue::new("t", "b", 1)],
            OffsetWrapper {
                pull_offset: 2,
                ..OffsetWrapper::default()
            }
        );
    }
}
