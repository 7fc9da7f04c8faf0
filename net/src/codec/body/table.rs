//! `KVTable` (GET_KVLIST_BY_NAMESPACE, GET_BROKER_RUNTIME_INFO, the REGISTER_BROKER reply) and
//! `TopicList` (GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER), PROTOCOL.md §5.5.
//! Must never hold configuration.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// `{"table":{k:v}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KvTable {
    /// Key -> value.
    pub table: BTreeMap<String, String>,
}

/// `{"topicList":[..]}`, with `brokerAddr` when set. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicList {
    /// Broker address, omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    /// Topic names, sorted.
    pub topic_list: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::JsonBody;

    #[test]
    fn kv_table_and_topic_list() {
        let mut table = KvTable::default();
        table.table.insert("k".into(), "v".into());
        assert_eq!(
            String::from_utf8(table.to_json()).expect("utf-8"),
            r#"{"table":{"k":"v"}}"#
        );
        assert_eq!(KvTable::from_json(br#"{"table":{"k":"v"}}"#), Ok(table));

        let list = TopicList {
            broker_addr: None,
            topic_list: ["B".to_owned(), "A".to_owned()].into_iter().collect(),
        };
        assert_eq!(
            String::from_utf8(list.to_json()).expect("utf-8"),
            r#"{"topicList":["A","B"]}"#
        );
        let with_addr =
            TopicList::from_json(br#"{"brokerAddr":"x:1","topicList":["A"]}"#).expect("valid");
        assert_eq!(
            String::from_utf8(with_addr.to_json()).expect("utf-8"),
            r#"{"brokerAddr":"x:1","topicList":["A"]}"#
        );
        assert_eq!(TopicList::from_json(b"{}"), Ok(TopicList::default()));
    }
}
