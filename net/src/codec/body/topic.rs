//! Topic bodies (PROTOCOL.md §5.2–§5.4, §7.2, §7.3): `DataVersion`, `TopicConfig` with its
//! `TopicFilterType` and the space-separated line form used by compressed registrations,
//! `TopicConfigSerializeWrapper` (4.x) and `TopicConfigAndMappingSerializeWrapper` (5.x),
//! and the `PermName` bits. Static-topic mapping values are kept as opaque JSON. Must never
//! decide topic policy (auto-create, permissions).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient;
use crate::codec::error::CodecError;

/// Permission bits of a topic or broker (Java `PermName`).
pub mod perm {
    /// Reserved; values >= 8 are not valid perms.
    pub const PRIORITY: i32 = 8;
    /// Consumers may pull.
    pub const READ: i32 = 4;
    /// Producers may send.
    pub const WRITE: i32 = 2;
    /// The topic can serve as an auto-create template.
    pub const INHERIT: i32 = 1;
    /// Read and write: normal topics.
    pub const READ_WRITE: i32 = READ | WRITE;

    /// Whether `perm` allows reading.
    #[must_use]
    pub const fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }

    /// Whether `perm` allows writing.
    #[must_use]
    pub const fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }

    /// Whether `perm` allows inheriting (auto-create template).
    #[must_use]
    pub const fn is_inherited(perm: i32) -> bool {
        perm & INHERIT != 0
    }

    /// Java `PermName.isValid`: below [`PRIORITY`] and not negative.
    #[must_use]
    pub const fn is_valid(perm: i32) -> bool {
        perm >= 0 && perm < PRIORITY
    }
}

/// Queue count of a bare `TopicConfig` (Java `defaultReadQueueNums`/`defaultWriteQueueNums`).
pub const TOPIC_QUEUE_NUMS_DEFAULT: i32 = 16;

name_enum! {
    /// Topic filter type.
    pub enum TopicFilterType {
        /// One tag per message (default).
        SingleTag = "SINGLE_TAG",
        /// Several tags per message; makes the broker set message sysFlag bit 1.
        MultiTag = "MULTI_TAG",
    }
    default = SingleTag;
}

/// A topic table's version; the namesrv compares (stateVersion, timestamp, counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataVersion {
    /// Change counter.
    #[serde(deserialize_with = "lenient::i64")]
    pub counter: i64,
    /// State version (5.x).
    #[serde(deserialize_with = "lenient::i64")]
    pub state_version: i64,
    /// Time of the last change, ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub timestamp: i64,
}

/// One topic's configuration. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfig {
    /// Attributes by bare name (`message.type`, `queue.type`, ...).
    pub attributes: BTreeMap<String, String>,
    /// Order topic.
    #[serde(deserialize_with = "lenient::bool")]
    pub order: bool,
    /// [`perm`] bits.
    #[serde(deserialize_with = "lenient::i32")]
    pub perm: i32,
    /// Read queue count.
    #[serde(deserialize_with = "lenient::i32")]
    pub read_queue_nums: i32,
    /// Filter type.
    pub topic_filter_type: TopicFilterType,
    /// Topic name.
    pub topic_name: String,
    /// Topic sysFlag (bit 0 UNIT, bit 1 UNIT_SUB).
    #[serde(deserialize_with = "lenient::i32")]
    pub topic_sys_flag: i32,
    /// Write queue count.
    #[serde(deserialize_with = "lenient::i32")]
    pub write_queue_nums: i32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            attributes: BTreeMap::new(),
            order: false,
            perm: perm::READ_WRITE,
            read_queue_nums: TOPIC_QUEUE_NUMS_DEFAULT,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: TOPIC_QUEUE_NUMS_DEFAULT,
        }
    }
}

impl TopicConfig {
    /// A topic with Java's defaults (16/16 queues, perm 6, SINGLE_TAG).
    #[must_use]
    pub fn new(topic_name: impl Into<String>) -> Self {
        Self {
            topic_name: topic_name.into(),
            ..Self::default()
        }
    }

    /// Java `TopicConfig.encode`: `name read write perm filterType attributesJSON`,
    /// space-separated (the compressed REGISTER_BROKER form). `order` and `topicSysFlag` are
    /// not carried, as in Java.
    #[must_use]
    pub fn to_line(&self) -> String {
        let attributes = serde_json::to_string(&self.attributes)
            .expect("a string-to-string map always serializes");
        format!(
            "{} {} {} {} {} {}",
            self.topic_name,
            self.read_queue_nums,
            self.write_queue_nums,
            self.perm,
            self.topic_filter_type.name(),
            attributes
        )
    }

    /// Java `TopicConfig.decode`: five space-separated parts, or six with the attributes
    /// JSON (which may itself contain spaces).
    ///
    /// # Errors
    /// [`CodecError::InvalidField`] (field `TopicConfig`) for a wrong part count, a number
    /// that does not parse or an unknown filter type; [`CodecError::Json`] for bad attributes.
    pub fn from_line(line: &str) -> Result<Self, CodecError> {
        let invalid = || CodecError::InvalidField {
            field: "TopicConfig",
            value: line.to_owned(),
        };
        let parts: Vec<&str> = line.splitn(6, ' ').collect();
        if parts.len() < 5 {
            return Err(invalid());
        }
        let number = |text: &str| text.parse::<i32>().map_err(|_| invalid());
        let attributes = match parts.get(5) {
            Some(json) => lenient::parse_lenient("TopicConfig attributes", json.as_bytes())?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            attributes,
            perm: number(parts[3])?,
            read_queue_nums: number(parts[1])?,
            topic_filter_type: TopicFilterType::from_name(parts[4]).ok_or_else(invalid)?,
            topic_name: parts[0].to_owned(),
            write_queue_nums: number(parts[2])?,
            ..Self::default()
        })
    }
}

/// 4.x topic-config table with its version (also the pre-V3_0_11 REGISTER_BROKER body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    /// Version of the table.
    pub data_version: DataVersion,
    /// Topic name -> config.
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// 5.x wrapper: the 4.x table plus static-topic mapping (kept as opaque JSON values).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfigAndMappingSerializeWrapper {
    /// Version of the topic table.
    pub data_version: DataVersion,
    /// Version of the mapping tables.
    pub mapping_data_version: DataVersion,
    /// Topic name -> config.
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    /// Static topics: topic -> TopicQueueMappingDetail.
    pub topic_queue_mapping_detail_map: BTreeMap<String, Value>,
    /// Static topics: topic -> TopicQueueMappingInfo.
    pub topic_queue_mapping_info_map: BTreeMap<String, Value>,
}

impl From<TopicConfigSerializeWrapper> for TopicConfigAndMappingSerializeWrapper {
    fn from(wrapper: TopicConfigSerializeWrapper) -> Self {
        Self {
            data_version: wrapper.data_version,
            topic_config_table: wrapper.topic_config_table,
            ..Self::default()
        }
    }
}

impl From<TopicConfigAndMappingSerializeWrapper> for TopicConfigSerializeWrapper {
    fn from(wrapper: TopicConfigAndMappingSerializeWrapper) -> Self {
        Self {
            data_version: wrapper.data_version,
            topic_config_table: wrapper.topic_config_table,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::body::JsonBody;

    fn sample_topic() -> TopicConfig {
        TopicConfig {
            read_queue_nums: 8,
            write_queue_nums: 8,
            ..TopicConfig::new("T")
        }
    }

    #[test]
    fn topic_config_json_matches_protocol() {
        let expected = r#"{"attributes":{},"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":8}"#;
        assert_eq!(
            String::from_utf8(sample_topic().to_json()).expect("utf-8"),
            expected
        );
        assert_eq!(
            TopicConfig::from_json(expected.as_bytes()),
            Ok(sample_topic())
        );
        let bare =
            TopicConfig::from_json(br#"{"topicName":"X","topicFilterType":1}"#).expect("valid");
        assert_eq!(bare.read_queue_nums, 16);
        assert_eq!(bare.write_queue_nums, 16);
        assert_eq!(bare.perm, 6);
        assert_eq!(bare.topic_filter_type, TopicFilterType::MultiTag);
    }

    #[test]
    fn data_version_and_wrappers() {
        let version = DataVersion {
            counter: 7,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        assert_eq!(
            String::from_utf8(version.to_json()).expect("utf-8"),
            r#"{"counter":7,"stateVersion":0,"timestamp":1700000000000}"#
        );
        let mut wrapper = TopicConfigAndMappingSerializeWrapper {
            data_version: version,
            ..TopicConfigAndMappingSerializeWrapper::default()
        };
        wrapper
            .topic_config_table
            .insert("T".into(), sample_topic());
        let json = String::from_utf8(wrapper.to_json()).expect("utf-8");
        assert_eq!(
            json,
            concat!(
                r#"{"dataVersion":{"counter":7,"stateVersion":0,"timestamp":1700000000000},"#,
                r#""mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":0},"#,
                r#""topicConfigTable":{"T":{"attributes":{},"order":false,"perm":6,"readQueueNums":8,"#,
                r#""topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":8}},"#,
                r#""topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}"#
            )
        );
        let old: TopicConfigSerializeWrapper = wrapper.clone().into();
        assert_eq!(
            TopicConfigSerializeWrapper::from_json(&wrapper.to_json()),
            Ok(old.clone())
        );
        let back: TopicConfigAndMappingSerializeWrapper = old.into();
        assert_eq!(back, wrapper);
        // Static-topic maps carry unquoted integer keys in Java output.
        let with_mapping =
            br#"{"topicQueueMappingDetailMap":{"S":{"hostedQueues":{0:[{"bname":"b"}]}}}}"#;
        let parsed =
            TopicConfigAndMappingSerializeWrapper::from_json(with_mapping).expect("lenient");
        assert!(parsed.topic_queue_mapping_detail_map["S"]["hostedQueues"]["0"].is_array());
    }

    #[test]
    fn topic_line_forms() {
        let mut topic = sample_topic();
        topic
            .attributes
            .insert("message.type".into(), "FIFO mode".into());
        let line = topic.to_line();
        assert_eq!(line, r#"T 8 8 6 SINGLE_TAG {"message.type":"FIFO mode"}"#);
        assert_eq!(TopicConfig::from_line(&line), Ok(topic));
        let old = TopicConfig::from_line("Old 4 4 7 MULTI_TAG").expect("4.x line");
        assert_eq!(old.perm, 7);
        assert_eq!(old.topic_filter_type, TopicFilterType::MultiTag);
        assert!(old.attributes.is_empty());
        for bad in ["T 8 8 6", "T x 8 6 SINGLE_TAG", "T 8 8 6 OTHER", ""] {
            assert!(TopicConfig::from_line(bad).is_err(), "{bad}");
        }
        assert!(TopicConfig::from_line("T 8 8 6 SINGLE_TAG {").is_err());
    }

    #[test]
    fn permission_bits() {
        assert!(perm::is_readable(6));
        assert!(perm::is_writeable(6));
        assert!(!perm::is_inherited(6));
        assert!(perm::is_inherited(7));
        assert!(!perm::is_writeable(4));
        assert!(perm::is_valid(7));
        assert!(!perm::is_valid(8));
        assert!(!perm::is_valid(-1));
    }

    fn arb_topic() -> impl Strategy<Value = TopicConfig> {
        (
            "[%|a-zA-Z0-9_-]{1,20}",
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<bool>(),
            any::<BTreeMap<String, String>>(),
        )
            .prop_map(|(name, read, write, perm, multi, attributes)| TopicConfig {
                attributes,
                perm,
                read_queue_nums: read,
                topic_filter_type: if multi {
                    TopicFilterType::MultiTag
                } else {
                    TopicFilterType::SingleTag
                },
                topic_name: name,
                write_queue_nums: write,
                ..TopicConfig::default()
            })
    }

    proptest! {
        #[test]
        fn topic_config_round_trips(topic in arb_topic(), order in any::<bool>(), flag in any::<i32>()) {
            prop_assert_eq!(TopicConfig::from_line(&topic.to_line()), Ok(topic.clone()));
            let full = TopicConfig { order, topic_sys_flag: flag, ..topic };
            prop_assert_eq!(TopicConfig::from_json(&full.to_json()), Ok(full));
        }
    }
}
