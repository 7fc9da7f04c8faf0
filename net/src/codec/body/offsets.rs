//! Offset-table bodies a slave pulls from its master (PROTOCOL.md §5): GET_ALL_CONSUMER_OFFSET
//! (43) answers Java's `ConsumerOffsetSerializeWrapper`
//! (`{"dataVersion":..,"offsetTable":{"topic@group":{"0":12}}}`), GET_ALL_DELAY_OFFSET (45)
//! the `ScheduleMessageService` encoding (`DelayOffsetSerializeWrapper`,
//! `{"dataVersion":..,"offsetTable":{"1":123}}`, keyed by delay level). Java 4.x writes no
//! `dataVersion`, 5.x does; both read. fastjson writes the integer keys unquoted; the lenient
//! reader accepts both forms, and we write them quoted (standard JSON, which fastjson reads).
//!
//! Must never: decide what a slave keeps (that is the broker's), or do I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::topic::DataVersion;

/// Separator of the `topic@group` keys of [`ConsumerOffsetSerializeWrapper::offset_table`].
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// GET_ALL_CONSUMER_OFFSET (43) body: every committed consumer offset of a broker. Fields in
/// JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerOffsetSerializeWrapper {
    /// The table's version (5.x; absent from 4.x brokers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    /// `topic@group` -> queue id -> committed offset.
    pub offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl ConsumerOffsetSerializeWrapper {
    /// Splits a `topic@group` key at its first `@` (neither name may contain one).
    #[must_use]
    pub fn split_key(key: &str) -> Option<(&str, &str)> {
        key.split_once(TOPIC_GROUP_SEPARATOR)
    }

    /// Number of (topic, group, queue) entries.
    #[must_use]
    pub fn entries(&self) -> usize {
        self.offset_table.values().map(BTreeMap::len).sum()
    }
}

/// GET_ALL_DELAY_OFFSET (45) body: the next schedule-queue offset of each delay level. Fields
/// in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DelayOffsetSerializeWrapper {
    /// The table's version (5.x; absent from 4.x brokers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    /// Delay level (from 1) -> offset in `SCHEDULE_TOPIC_XXXX` queue `level - 1`.
    pub offset_table: BTreeMap<i32, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::JsonBody;

    #[test]
    fn consumer_offsets_as_java_writes_and_reads_them() {
        let mut wrapper = ConsumerOffsetSerializeWrapper::default();
        wrapper
            .offset_table
            .insert("T@G".into(), BTreeMap::from([(0, 12), (10, 5)]));
        assert_eq!(
            String::from_utf8(wrapper.to_json()).expect("utf-8"),
            r#"{"offsetTable":{"T@G":{"0":12,"10":5}}}"#
        );
        wrapper.data_version = Some(DataVersion {
            counter: 3,
            state_version: 0,
            timestamp: 9,
        });
        assert_eq!(
            String::from_utf8(wrapper.to_json()).expect("utf-8"),
            r#"{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":9},"offsetTable":{"T@G":{"0":12,"10":5}}}"#
        );
        assert_eq!(wrapper.entries(), 2);
        // fastjson's form: unquoted integer keys, other fields of ConsumerOffsetManager.
        let java = br#"{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":9},"offsetTable":{"T@G":{0:12,10:5}},"pullOffsetTable":{}}"#;
        assert_eq!(ConsumerOffsetSerializeWrapper::from_json(java), Ok(wrapper));
        let old =
            ConsumerOffsetSerializeWrapper::from_json(br#"{"offsetTable":{}}"#).expect("4.x body");
        assert_eq!(old, ConsumerOffsetSerializeWrapper::default());
        assert_eq!(
            ConsumerOffsetSerializeWrapper::split_key("%RETRY%G@G"),
            Some(("%RETRY%G", "G"))
        );
        assert_eq!(ConsumerOffsetSerializeWrapper::split_key("TG"), None);
        assert!(
            ConsumerOffsetSerializeWrapper::from_json(br#"{"offsetTable":{"T@G":{"x":1}}}"#)
                .is_err()
        );
    }

    #[test]
    fn delay_offsets_as_java_writes_and_reads_them() {
        let wrapper = DelayOffsetSerializeWrapper {
            data_version: None,
            offset_table: BTreeMap::from([(1, 123), (18, 4)]),
        };
        assert_eq!(
            String::from_utf8(wrapper.to_json()).expect("utf-8"),
            r#"{"offsetTable":{"1":123,"18":4}}"#
        );
        assert_eq!(
            DelayOffsetSerializeWrapper::from_json(br#"{"offsetTable":{1:123,18:4}}"#),
            Ok(wrapper)
        );
        assert!(DelayOffsetSerializeWrapper::from_json(br#"{"offsetTable":{"one":1}}"#).is_err());
        assert!(DelayOffsetSerializeWrapper::from_json(br#"{"offsetTable":{"1":"x"}}"#).is_err());
    }
}
