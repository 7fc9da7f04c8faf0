//! `RegisterBrokerBody` (REGISTER_BROKER body, PROTOCOL.md §4.10.1, §5.7) in its three shapes:
//! the JSON body (request version >= V3_0_11), a bare `TopicConfigSerializeWrapper` (older
//! brokers), and the zlib-compressed binary form (`compressed=true`):
//!
//! ```text
//! zlib( i32 len + DataVersion JSON,
//!       i32 topicCount, topicCount x (i32 len + TopicConfig line),
//!       i32 len + filterServerList JSON,
//!       i32 mappingCount, mappingCount x (i32 len + TopicQueueMappingInfo JSON) )
//! ```
//! All integers big-endian. Must never inflate more than [`REGISTER_BODY_INFLATED_SIZE_MAX`]
//! bytes or trust a length before checking it against what is left.

use std::io::{Read as _, Write as _};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient::parse_lenient;
use super::topic::{
    DataVersion, TopicConfig, TopicConfigAndMappingSerializeWrapper, TopicConfigSerializeWrapper,
};
use crate::codec::codes::VERSION_V3_0_11;
use crate::codec::error::CodecError;
use crate::codec::limits::FRAME_SIZE_MAX_DEFAULT;

/// Largest inflated compressed registration. Topic lines are ~40 bytes, so this holds far
/// more topics than a 16 MiB JSON body could; a larger stream is rejected as a zip bomb.
pub const REGISTER_BODY_INFLATED_SIZE_MAX: usize = 4 * FRAME_SIZE_MAX_DEFAULT;

const _: () = assert!(REGISTER_BODY_INFLATED_SIZE_MAX >= FRAME_SIZE_MAX_DEFAULT);

/// REGISTER_BROKER body. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    /// Filter servers (obsolete; usually empty).
    pub filter_server_list: Vec<String>,
    /// The broker's topic table.
    pub topic_config_serialize_wrapper: TopicConfigAndMappingSerializeWrapper,
}

impl RegisterBrokerBody {
    /// Decodes a REGISTER_BROKER body as Java's namesrv does: the compressed form when the
    /// header says `compressed`, else `RegisterBrokerBody` JSON for request versions at or
    /// above V3_0_11 (37), else a bare `TopicConfigSerializeWrapper`.
    ///
    /// # Errors
    /// [`CodecError::Json`] for bad JSON; for the compressed form see
    /// [`Self::decode_compressed`].
    pub fn decode(body: &[u8], compressed: bool, request_version: i32) -> Result<Self, CodecError> {
        if compressed {
            Self::decode_compressed(body)
        } else if request_version >= VERSION_V3_0_11 {
            parse_lenient("RegisterBrokerBody", body)
        } else {
            let wrapper: TopicConfigSerializeWrapper =
                parse_lenient("TopicConfigSerializeWrapper", body)?;
            Ok(Self {
                filter_server_list: Vec::new(),
                topic_config_serialize_wrapper: wrapper.into(),
            })
        }
    }

    /// Decodes the zlib form. A stream that ends right after the filter-server list (older
    /// brokers wrote no mapping section) reads as having no mappings.
    ///
    /// # Errors
    /// [`CodecError::Json`] (what `RegisterBrokerBody`) for a broken zlib stream,
    /// [`CodecError::Length`] for an inflated size over [`REGISTER_BODY_INFLATED_SIZE_MAX`],
    /// [`CodecError::Truncated`] / [`CodecError::Length`] for lengths that do not fit,
    /// [`CodecError::Utf8`], [`CodecError::Json`] or [`CodecError::InvalidField`] for bad
    /// entries.
    pub fn decode_compressed(body: &[u8]) -> Result<Self, CodecError> {
        let inflated = inflate(body)?;
        let mut reader = Reader {
            bytes: &inflated,
            offset: 0,
        };
        let data_version: DataVersion = parse_lenient("DataVersion", reader.chunk("DataVersion")?)?;
        let topic_count = reader.count("topic count")?;
        let mut body = Self::default();
        body.topic_config_serialize_wrapper.data_version = data_version;
        for _ in 0..topic_count {
            let line = reader.text("TopicConfig")?;
            let topic = TopicConfig::from_line(line)?;
            body.topic_config_serialize_wrapper
                .topic_config_table
                .insert(topic.topic_name.clone(), topic);
        }
        body.filter_server_list =
            parse_lenient("filterServerList", reader.chunk("filterServerList")?)?;
        if reader.is_empty() {
            return Ok(body);
        }
        let mapping_count = reader.count("mapping count")?;
        for _ in 0..mapping_count {
            let info: Value = parse_lenient(
                "TopicQueueMappingInfo",
                reader.chunk("TopicQueueMappingInfo")?,
            )?;
            let topic = info
                .get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            body.topic_config_serialize_wrapper
                .topic_queue_mapping_info_map
                .insert(topic, info);
        }
        Ok(body)
    }

    /// Encodes the zlib form (what a Java broker sends with `compressed=true`).
    ///
    /// # Errors
    /// [`CodecError::Encode`] if an entry is longer than an `i32` length can say.
    pub fn encode_compressed(&self) -> Result<Vec<u8>, CodecError> {
        let wrapper = &self.topic_config_serialize_wrapper;
        let mut plain = Vec::new();
        put_chunk(&mut plain, &super::to_compact_json(&wrapper.data_version))?;
        put_count(&mut plain, wrapper.topic_config_table.len())?;
        for topic in wrapper.topic_config_table.values() {
            put_chunk(&mut plain, topic.to_line().as_bytes())?;
        }
        put_chunk(
            &mut plain,
            &super::to_compact_json(&self.filter_server_list),
        )?;
        put_count(&mut plain, wrapper.topic_queue_mapping_info_map.len())?;
        for info in wrapper.topic_queue_mapping_info_map.values() {
            put_chunk(&mut plain, &super::to_compact_json(info))?;
        }
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder
            .write_all(&plain)
            .expect("deflating into a Vec cannot fail");
        Ok(encoder.finish().expect("deflating into a Vec cannot fail"))
    }
}

/// Inflates at most [`REGISTER_BODY_INFLATED_SIZE_MAX`] bytes.
fn inflate(body: &[u8]) -> Result<Vec<u8>, CodecError> {
    let limit = u64::try_from(REGISTER_BODY_INFLATED_SIZE_MAX).expect("limit fits in u64");
    let mut inflated = Vec::new();
    ZlibDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| CodecError::json("RegisterBrokerBody", &e))?;
    if inflated.len() > REGISTER_BODY_INFLATED_SIZE_MAX {
        return Err(CodecError::Length {
            what: "inflated RegisterBrokerBody",
            offset: 0,
            len: i64::try_from(inflated.len()).unwrap_or(i64::MAX),
            max: REGISTER_BODY_INFLATED_SIZE_MAX,
        });
    }
    Ok(inflated)
}

fn put_count(out: &mut Vec<u8>, count: usize) -> Result<(), CodecError> {
    let count = i32::try_from(count).map_err(|_| CodecError::Encode {
        what: "RegisterBrokerBody",
        detail: format!("{count} entries do not fit an i32 count"),
    })?;
    out.extend_from_slice(&count.to_be_bytes());
    Ok(())
}

fn put_chunk(out: &mut Vec<u8>, chunk: &[u8]) -> Result<(), CodecError> {
    put_count(out, chunk.len())?;
    out.extend_from_slice(chunk);
    Ok(())
}

/// Bounds-checked reader over the inflated bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.offset == self.bytes.len()
    }

    fn take(&mut self, what: &'static str, need: usize) -> Result<&'a [u8], CodecError> {
        let have = self.bytes.len() - self.offset;
        if need > have {
            return Err(CodecError::Truncated {
                what,
                offset: self.offset,
                need,
                have,
            });
        }
        let slice = &self.bytes[self.offset..self.offset + need];
        self.offset += need;
        Ok(slice)
    }

    /// A non-negative big-endian i32 no larger than the bytes left.
    fn count(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let offset = self.offset;
        let word: [u8; 4] = self
            .take(what, 4)?
            .try_into()
            .expect("take(4) returns exactly 4 bytes");
        let value = i32::from_be_bytes(word);
        let left = self.bytes.len() - self.offset;
        usize::try_from(value)
            .ok()
            .filter(|count| *count <= left)
            .ok_or(CodecError::Length {
                what,
                offset,
                len: i64::from(value),
                max: left,
            })
    }

    fn chunk(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.count(what)?;
        self.take(what, len)
    }

    fn text(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        let offset = self.offset;
        std::str::from_utf8(self.chunk(what)?).map_err(|_| CodecError::Utf8 { what, offset })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::codec::body::topic::TopicFilterType;
    use crate::codec::body::JsonBody;

    fn sample() -> RegisterBrokerBody {
        let mut body = RegisterBrokerBody::default();
        let wrapper = &mut body.topic_config_serialize_wrapper;
        wrapper.data_version = DataVersion {
            counter: 3,
            state_version: 1,
            timestamp: 1_700_000_000_000,
        };
        for (name, perm) in [("TBW102", 7), ("TopicTest", 6)] {
            let mut topic = TopicConfig::new(name);
            topic.perm = perm;
            topic.read_queue_nums = 8;
            topic.write_queue_nums = 8;
            wrapper.topic_config_table.insert(name.to_owned(), topic);
        }
        body
    }

    fn zlib(plain: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(plain).expect("in memory");
        encoder.finish().expect("in memory")
    }

    #[test]
    fn json_form_by_version() {
        let body = sample();
        let json = body.to_json();
        assert!(json.starts_with(
            br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":"#
        ));
        assert_eq!(
            RegisterBrokerBody::decode(&json, false, 479),
            Ok(body.clone())
        );
        let bare = TopicConfigSerializeWrapper::from(body.topic_config_serialize_wrapper.clone())
            .to_json();
        assert_eq!(RegisterBrokerBody::decode(&bare, false, 36), Ok(body));
    }

    #[test]
    fn compressed_form_round_trips() {
        let mut body = sample();
        body.filter_server_list.push("10.0.0.9:30000".into());
        body.topic_config_serialize_wrapper
            .topic_queue_mapping_info_map
            .insert(
                "S".into(),
                serde_json::json!({"bname":"b","topic":"S","totalQueues":2}),
            );
        let compressed = body.encode_compressed().expect("encodable");
        assert_eq!(RegisterBrokerBody::decode(&compressed, true, 479), Ok(body));
    }

    #[test]
    fn hand_built_stream_without_mapping_section() {
        let mut plain = Vec::new();
        let version = br#"{"counter":2,"timestamp":5}"#;
        let topic = b"T 4 4 6 MULTI_TAG";
        let filters = b"[]";
        plain.extend_from_slice(&i32::try_from(version.len()).expect("small").to_be_bytes());
        plain.extend_from_slice(version);
        plain.extend_from_slice(&1i32.to_be_bytes());
        plain.extend_from_slice(&i32::try_from(topic.len()).expect("small").to_be_bytes());
        plain.extend_from_slice(topic);
        plain.extend_from_slice(&2i32.to_be_bytes());
        plain.extend_from_slice(filters);
        let body = RegisterBrokerBody::decode_compressed(&zlib(&plain)).expect("valid stream");
        let wrapper = &body.topic_config_serialize_wrapper;
        assert_eq!(wrapper.data_version.counter, 2);
        assert_eq!(wrapper.data_version.timestamp, 5);
        assert_eq!(
            wrapper.topic_config_table["T"].topic_filter_type,
            TopicFilterType::MultiTag
        );
        assert_eq!(wrapper.topic_config_table["T"].attributes, BTreeMap::new());
        assert!(wrapper.topic_queue_mapping_info_map.is_empty());

        let mut truncated = plain.clone();
        truncated.truncate(plain.len() - 1);
        assert!(matches!(
            RegisterBrokerBody::decode_compressed(&zlib(&truncated)),
            Err(CodecError::Length { .. })
        ));
        let mut negative = plain;
        negative[..4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            RegisterBrokerBody::decode_compressed(&zlib(&negative)),
            Err(CodecError::Length { len: -1, .. })
        ));
        assert!(RegisterBrokerBody::decode_compressed(b"not zlib").is_err());
    }

    #[test]
    fn zip_bomb_is_rejected() {
        let zeros = vec![0u8; 1024 * 1024];
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
        for _ in 0..=REGISTER_BODY_INFLATED_SIZE_MAX / zeros.len() {
            encoder.write_all(&zeros).expect("in memory");
        }
        let bomb = encoder.finish().expect("in memory");
        assert!(bomb.len() < 1024 * 1024);
        assert!(matches!(
            RegisterBrokerBody::decode_compressed(&bomb),
            Err(CodecError::Length {
                what: "inflated RegisterBrokerBody",
                ..
            })
        ));
    }
}
