//! mqadmin's table and text layouts for the operations of [`super`] (column names as
//! mqadmin prints them). Pure formatting: never does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rmq_net::codec::body::client::{Connection, ConsumerConnection, ProducerConnection};
use rmq_net::codec::message::MessageRecord;

use super::{SendOutcome, StatsRow};

/// A serde enum's wire name (`CONSUME_PASSIVELY`), or its debug form.
fn wire_name<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{value:?}"),
    }
}

/// Java's `MQVersion.getVersionDesc`: the name of a client's version ordinal. From
/// `V4_0_0_SNAPSHOT` (212) to `V5_9_9` (611) every version has a `_SNAPSHOT` entry followed by
/// its release (`V4_9_4` = 401, `V5_3_3` = 479); past that `HIGHER_VERSION`. Older ordinals (the
/// 3.x names are irregular) print as the number.
#[must_use]
pub fn version_desc(ordinal: i32) -> String {
    const V4_0_0_SNAPSHOT: i32 = 212;
    const V5_9_9: i32 = 611;
    if ordinal > V5_9_9 {
        return "HIGHER_VERSION".into();
    }
    if ordinal < V4_0_0_SNAPSHOT {
        return ordinal.to_string();
    }
    let step = ordinal - V4_0_0_SNAPSHOT;
    let version = step / 2;
    let (major, minor, patch) = (4 + version / 100, (version / 10) % 10, version % 10);
    let snapshot = if step % 2 == 0 { "_SNAPSHOT" } else { "" };
    format!("V{major}_{minor}_{patch}{snapshot}")
}

fn connection_rows(out: &mut String, connections: &[Connection], width: usize) {
    for (index, conn) in connections.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:0width$}  {:<32} {:<22} {:<8} {}",
            index + 1,
            conn.client_id,
            conn.client_addr,
            conn.language.name(),
            version_desc(conn.version)
        );
    }
}

/// consumerConnection: `NNN  clientId clientAddr language version` per connection, then the
/// subscriptions and the group's consume type, message model and start point.
#[must_use]
pub fn consumer_connection(cc: &ConsumerConnection) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#Index {:<32} {:<22} {:<8} #Version",
        "#ClientId", "#ClientAddr", "#Language"
    );
    connection_rows(&mut out, &cc.connection_set, 3);
    let _ = writeln!(out, "\nBelow is subscription:");
    for (index, (topic, sub)) in cc.subscription_table.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:03}  Topic: {topic:<40} SubExpression: {}",
            index + 1,
            sub.sub_string
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "ConsumeType: {}", wire_name(&cc.consume_type));
    let _ = writeln!(out, "MessageModel: {}", wire_name(&cc.message_model));
    let _ = writeln!(
        out,
        "ConsumeFromWhere: {}",
        wire_name(&cc.consume_from_where)
    );
    out
}

/// producerConnection: `NNNN  clientId clientAddr language version` per connection.
#[must_use]
pub fn producer_connection(pc: &ProducerConnection) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#Index {:<32} {:<22} {:<8} #Version",
        "#ClientId", "#ClientAddr", "#Language"
    );
    connection_rows(&mut out, &pc.connection_set, 4);
    out
}

/// queryMsgById / queryMsgByUniqueKey: one `Label: value` line per field (mqadmin's
/// `%-20s %s`), properties and body included; `body_path` when the body was saved.
#[must_use]
pub fn message(record: &MessageRecord, body_path: Option<&str>) -> String {
    let view = super::json::MessageView::of(record);
    let mut out = String::new();
    let mut line = |label: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{label:<20} {value}");
    };
    line("OffsetID:", &view.offset_msg_id);
    line("MsgId:", &view.msg_id);
    line("Topic:", &view.topic);
    line("Tags:", &format!("[{}]", view.tags));
    line("Keys:", &format!("[{}]", view.keys));
    line("Queue ID:", &view.queue_id);
    line("Queue Offset:", &view.queue_offset);
    line("CommitLog Offset:", &view.commit_log_offset);
    line("Reconsume Times:", &view.reconsume_times);
    line("Born Timestamp:", &view.born_timestamp);
    line("Store Timestamp:", &view.store_timestamp);
    line("Born Host:", &view.born_host);
    line("Store Host:", &view.store_host);
    line("System Flag:", &view.sys_flag);
    let props: Vec<String> = view
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line("Properties:", &format!("{{{}}}", props.join(", ")));
    if let Some(path) = body_path {
        line("Message Body Path:", &path);
    }
    line("Message Body:", &view.body);
    out
}

/// queryMsgByKey: `#Message ID  #QID  #Offset` per message.
#[must_use]
pub fn message_list(records: &[MessageRecord]) -> String {
    let mut out = format!("{:<50} {:>4} {:>40}\n", "#Message ID", "#QID", "#Offset");
    for record in records {
        let view = super::json::MessageView::of(record);
        let _ = writeln!(
            out,
            "{:<50} {:>4} {:>40}",
            view.msg_id, view.queue_id, view.queue_offset
        );
    }
    out
}

/// getBrokerConfig: a `====addr====` banner per broker, then `key =  value` lines.
#[must_use]
pub fn broker_config(configs: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    for (broker, props) in configs {
        let _ = writeln!(out, "============{broker}============");
        for (key, value) in props {
            let _ = writeln!(out, "{key:<50}=  {value}");
        }
    }
    out
}

/// topicClusterList: one cluster name per line.
#[must_use]
pub fn cluster_names(clusters: &BTreeSet<String>) -> String {
    clusters.iter().map(|c| format!("{c}\n")).collect()
}

/// statsAll's columns (`#Topic  #Consumer Group  #Accumulation  #InTPS  #OutTPS
/// #InMsg24Hour  #OutMsg24Hour`, mqadmin's widths) plus `#Stored` (messages in the topic).
#[must_use]
pub fn stats_all(rows: &[StatsRow]) -> String {
    let mut out = format!(
        "{:<64}  {:<64} {:>12} {:>11} {:>11} {:>14} {:>14} {:>14}\n",
        "#Topic",
        "#Consumer Group",
        "#Accumulation",
        "#InTPS",
        "#OutTPS",
        "#InMsg24Hour",
        "#OutMsg24Hour",
        "#Stored"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<64}  {:<64} {:>12} {:>11.2} {:>11.2} {:>14} {:>14} {:>14}",
            row.topic,
            row.consumer_group,
            row.accumulation,
            row.in_tps,
            row.out_tps,
            row.in_msg_24_hour,
            row.out_msg_24_hour,
            row.stored
        );
    }
    out
}

/// sendMessage: `#Broker Name  #QID  #Send Result  #MsgId`.
#[must_use]
pub fn send_outcome(sent: &SendOutcome) -> String {
    format!(
        "{:<32}  {:<4}  {:<20}    {}\n{:<32}  {:<4}  {:<20}    {}\n",
        "#Broker Name",
        "#QID",
        "#Send Result",
        "#MsgId",
        sent.broker_name,
        sent.queue_id,
        sent.send_result,
        sent.msg_id
    )
}

/// consumeMessage: `MSGID: <id> <where> BODY: <body>` per message.
#[must_use]
pub fn consumed(records: &[MessageRecord]) -> String {
    let mut out = String::new();
    for record in records {
        let view = super::json::MessageView::of(record);
        let _ = writeln!(
            out,
            "MSGID: {} topic={} queueId={} queueOffset={} tags={} keys={} BODY: {}",
            view.msg_id,
            view.topic,
            view.queue_id,
            view.queue_offset,
            view.tags,
            view.keys,
            view.body
        );
    }
    let _ = writeln!(out, "Consume ok: {} message(s)", records.len());
    out
}

#[cfg(test)]
mod tests {
    use super::version_desc;

    #[test]
    fn version_names_follow_mqversion() {
        for (ordinal, name) in [
            (212, "V4_0_0_SNAPSHOT"),
            (213, "V4_0_0"),
            (400, "V4_9_4_SNAPSHOT"),
            (401, "V4_9_4"),
            (479, "V5_3_3"),
            (611, "V5_9_9"),
            (612, "HIGHER_VERSION"),
            (100, "100"),
        ] {
            assert_eq!(version_desc(ordinal), name, "{ordinal}");
        }
    }
}
