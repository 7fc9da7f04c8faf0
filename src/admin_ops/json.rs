//! `--json` output of every `rmq admin` command: plain JSON objects with camelCase keys
//! (never fastjson's object-keyed maps, which generic JSON tools cannot read). Pure
//! conversion: never does I/O.

use std::collections::BTreeMap;

use rmq_net::codec::body::stats::TopicStatsTable;
use rmq_net::codec::message::MessageRecord;
use serde::Serialize;
use serde_json::{json, Value};

use crate::admin::{ClusterBroker, ConsumerProgress};

/// One message as `query-msg-*` and `consume-message` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// UNIQ_KEY (the client msgId), or the offset msgId when the message has none.
    pub msg_id: String,
    /// Broker address + CommitLog offset.
    pub offset_msg_id: String,
    /// Topic.
    pub topic: String,
    /// TAGS (empty when none).
    pub tags: String,
    /// KEYS (empty when none).
    pub keys: String,
    /// Queue.
    pub queue_id: i32,
    /// Queue offset.
    pub queue_offset: i64,
    /// CommitLog offset.
    pub commit_log_offset: i64,
    /// Delivery attempts.
    pub reconsume_times: i32,
    /// Producer clock, ms.
    pub born_timestamp: i64,
    /// Broker clock at store, ms.
    pub store_timestamp: i64,
    /// Producer address.
    pub born_host: String,
    /// Broker address.
    pub store_host: String,
    /// sysFlag.
    pub sys_flag: i32,
    /// Every property.
    pub properties: BTreeMap<String, String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// Body length in bytes.
    pub body_length: usize,
}

impl MessageView {
    /// The view of a decoded record.
    #[must_use]
    pub fn of(record: &MessageRecord) -> Self {
        let offset_msg_id =
            rmq_net::codec::message::msg_id::encode(record.store_host, record.physical_offset);
        let props = &record.properties;
        Self {
            msg_id: props
                .uniq_key()
                .map_or_else(|| offset_msg_id.clone(), str::to_owned),
            offset_msg_id,
            topic: record.topic.clone(),
            tags: props.tags().unwrap_or_default().to_owned(),
            keys: props.get("KEYS").unwrap_or_default().to_owned(),
            queue_id: record.queue_id,
            queue_offset: record.queue_offset,
            commit_log_offset: record.physical_offset,
            reconsume_times: record.reconsume_times,
            born_timestamp: record.born_timestamp,
            store_timestamp: record.store_timestamp,
            born_host: record.born_host.to_string(),
            store_host: record.store_host.to_string(),
            sys_flag: record.sys_flag,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            body: String::from_utf8_lossy(&record.body).into_owned(),
            body_length: record.body.len(),
        }
    }
}

/// Messages as a JSON array of [`MessageView`]s.
#[must_use]
pub fn messages(records: &[MessageRecord]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| to_value(&MessageView::of(r)))
            .collect(),
    )
}

/// Any serializable value (our types always serialize).
#[must_use]
pub fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("admin output types serialize to JSON")
}

/// `cluster-list --json`: one object per broker with its runtime info (or `error`).
#[must_use]
pub fn cluster_list(brokers: &[ClusterBroker]) -> Value {
    Value::Array(
        brokers
            .iter()
            .map(|b| {
                let mut row = json!({
                    "cluster": b.cluster,
                    "brokerName": b.name,
                    "brokerId": b.id,
                    "addr": b.addr,
                });
                match &b.info {
                    Ok(info) => row["runtimeInfo"] = to_value(&info.table),
                    Err(err) => row["error"] = Value::String(err.clone()),
                }
                row
            })
            .collect(),
    )
}

/// `topic-status --json`: one object per queue.
#[must_use]
pub fn topic_status(stats: &TopicStatsTable) -> Value {
    Value::Array(
        stats
            .offset_table
            .iter()
            .map(|(queue, offsets)| {
                json!({
                    "topic": queue.topic,
                    "brokerName": queue.broker_name,
                    "queueId": queue.queue_id,
                    "minOffset": offsets.min_offset,
                    "maxOffset": offsets.max_offset,
                    "lastUpdateTimestamp": offsets.last_update_timestamp,
                })
            })
            .collect(),
    )
}

/// `consumer-progress --json`: the queues, the TPS and the total diff.
#[must_use]
pub fn consumer_progress(progress: &ConsumerProgress) -> Value {
    let queues: Vec<Value> = progress
        .queues
        .iter()
        .map(|(queue, offsets)| {
            json!({
                "topic": queue.topic,
                "brokerName": queue.broker_name,
                "queueId": queue.queue_id,
                "brokerOffset": offsets.broker_offset,
                "consumerOffset": offsets.consumer_offset,
                "diff": offsets.broker_offset - offsets.consumer_offset,
                "lastTimestamp": offsets.last_timestamp,
            })
        })
        .collect();
    json!({
        "queues": queues,
        "consumeTps": progress.consume_tps,
        "diffTotal": progress.diff_total(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use rmq_net::codec::body::queue::MessageQueue;
    use rmq_net::codec::body::stats::OffsetWrapper;
    use rmq_net::codec::message::Properties;

    use super::*;

    #[test]
    fn message_view_names_both_ids_and_the_body() {
        let mut properties = Properties::new();
        properties.insert("UNIQ_KEY", "AC1100").expect("valid");
        properties.insert("KEYS", "k1 k2").expect("valid");
        properties.insert("TAGS", "TagA").expect("valid");
        let host: SocketAddr = "127.0.0.1:10911".parse().expect("addr");
        let record = MessageRecord {
            queue_id: 2,
            flag: 0,
            queue_offset: 7,
            physical_offset: 4096,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_timestamp: 2,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::from_static(b"hello"),
            topic: "T".into(),
            properties,
        };
        let view = MessageView::of(&record);
        assert_eq!(view.msg_id, "AC1100");
        assert_eq!(
            rmq_net::codec::message::msg_id::decode(&view.offset_msg_id).expect("decodes"),
            (host, 4096)
        );
        assert_eq!((view.tags.as_str(), view.keys.as_str()), ("TagA", "k1 k2"));
        let value = messages(std::slice::from_ref(&record));
        assert_eq!(value[0]["body"], "hello");
        assert_eq!(value[0]["queueOffset"], 7);
        assert_eq!(value[0]["properties"]["KEYS"], "k1 k2");
        let text = super::super::render::message(&record, Some("/tmp/b"));
        assert!(text.contains("Message Body Path:   /tmp/b\n"), "{text}");
        assert!(text.ends_with("Message Body:        hello\n"), "{text}");
        let list = super::super::render::message_list(&[record]);
        let row: Vec<&str> = list
            .lines()
            .nth(1)
            .expect("row")
            .split_whitespace()
            .collect();
        assert_eq!(row, ["AC1100", "2", "7"]);
    }

    #[test]
    fn progress_json_is_plain_objects() {
        let mut progress = ConsumerProgress::default();
        progress.queues.insert(
            MessageQueue::new("T", "broker-a", 1),
            OffsetWrapper {
                broker_offset: 9,
                consumer_offset: 4,
                last_timestamp: 0,
                pull_offset: 4,
            },
        );
        let value = consumer_progress(&progress);
        assert_eq!(value["diffTotal"], 5);
        assert_eq!(value["queues"][0]["brokerName"], "broker-a");
        assert_eq!(value["queues"][0]["diff"], 5);
    }
}
