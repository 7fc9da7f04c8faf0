//! The per-message work of a SEND_BATCH_MESSAGE (320) on the owner shard: every entry of the
//! batch body becomes a stored record (PROTOCOL.md §6.6), all of them written into one shared
//! buffer, with their tag codes, index keys and `UNIQ_KEY`s.
//!
//! Owns the two ways an entry's stored properties are made, which give the same bytes:
//! - the general path: `Properties::decode` of the entry, the batch-level pairs it lacks,
//!   `UNIQ_KEY` if missing, `CLUSTER` (set in place), re-encoded;
//! - the fast path, for an entry whose properties string is canonical
//!   ([`RawProperties::scan`]) and names neither `CLUSTER` nor a timer: the client's bytes as
//!   they are, then the same appended pairs in the same order, with no map and no `String` per
//!   pair.
//!
//! Must never: store properties in another order or form than the general path would (the
//! tests compare both on the same entries), accept an entry the general path refuses, or
//! allocate per entry on the fast path beyond the batch's shared buffers.

use std::net::SocketAddr;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::keys;
use rmq_net::codec::message::properties::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
use rmq_net::codec::message::{
    self, decode_batch_raw, BatchLimits, Properties, RawBatchEntry, RawProperties, RecordParts,
    UniqKeyGenerator,
};
use rmq_storage::store::BatchMessage;

use super::message::{encode_payload, index_keys, push_index_keys, Inbound};
use super::timer::TIMER_PROPERTIES;
use super::Failure;

/// What every entry of one batch shares: the send header's fields and the broker's.
#[derive(Debug, Clone, Copy)]
pub struct BatchContext<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Queue id.
    pub queue_id: i32,
    /// sysFlag from the send header.
    pub sys_flag: i32,
    /// Producer time from the send header.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// This broker's address.
    pub store_host: SocketAddr,
    /// Store time, ms.
    pub now_ms: i64,
    /// `brokerClusterName`, stored as `CLUSTER`.
    pub cluster: &'a str,
    /// The batch-level properties (the header's, with `MSG_REGION` and `TRACE_ON`).
    pub properties: &'a Properties,
}

/// One encoded entry: where its record and index keys sit in the [`EncodedBatch`] buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EncodedEntry {
    tags_code: i64,
    keys: Range<usize>,
    payload: Range<usize>,
}

/// Every entry of a batch, encoded.
#[derive(Debug)]
pub struct EncodedBatch {
    records: Bytes,
    keys: String,
    entries: Vec<EncodedEntry>,
    /// The entries' `UNIQ_KEY`s joined by commas (the reply's `transactionId`).
    pub uniq_keys: String,
}

impl EncodedBatch {
    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as the store takes them.
    #[must_use]
    pub fn messages(&self, sys_flag: i32) -> Vec<BatchMessage<'_>> {
        self.entries
            .iter()
            .map(|entry| BatchMessage {
                tags_code: entry.tags_code,
                keys: &self.keys[entry.keys.clone()],
                sys_flag,
                payload: &self.records[entry.payload.clone()],
            })
            .collect()
    }
}

fn illegal(error: &impl std::fmt::Display) -> Failure {
    Failure::Code(ResponseCode::MessageIllegal, error.to_string())
}

/// Decodes the batch `body` and encodes every entry.
///
/// # Errors
/// MESSAGE_ILLEGAL for a malformed body or an entry the general path refuses (a timer
/// property, properties too long), with the general path's remark.
pub fn encode(
    context: &BatchContext<'_>,
    body: &Bytes,
    limits: &BatchLimits,
    uniq: &mut UniqKeyGenerator,
) -> Result<EncodedBatch, Failure> {
    let entries = decode_batch_raw(body, limits).map_err(|e| illegal(&e))?;
    let shared = Shared::new(context);
    let body_bytes: usize = entries.iter().map(|entry| entry.body.len()).sum();
    let mut out = Encoder {
        records: BytesMut::with_capacity(body_bytes + entries.len() * 256),
        keys: String::new(),
        uniq_keys: String::with_capacity(entries.len() * (uniq.key_len() + 1)),
        entries: Vec::with_capacity(entries.len()),
    };
    for entry in &entries {
        let fast = RawProperties::scan(entry.properties).filter(|own| shared.fast_path_for(own));
        match fast {
            Some(own) => out.push_fast(context, &shared, entry, &own, uniq)?,
            None => out.push_general(context, body, entry, uniq)?,
        }
    }
    Ok(EncodedBatch {
        records: out.records.freeze(),
        keys: out.keys,
        entries: out.entries,
        uniq_keys: out.uniq_keys,
    })
}

/// The batch-level parts of every entry's properties, encoded once.
struct Shared<'a> {
    batch: &'a Properties,
    /// `CLUSTER 0x01 name 0x02`, or `None` when the general path must refuse or merge it.
    cluster_pair: Option<Vec<u8>>,
    /// The batch-level pairs, each encoded.
    batch_pairs: Vec<(&'a str, Vec<u8>)>,
}

impl<'a> Shared<'a> {
    fn new(context: &BatchContext<'a>) -> Self {
        let valid_cluster = !context.cluster.is_empty()
            && !context.cluster.as_bytes().contains(&PROPERTY_SEPARATOR)
            && !context.properties.contains(keys::CLUSTER);
        let cluster_pair = valid_cluster.then(|| pair(keys::CLUSTER, context.cluster));
        let batch_pairs = context
            .properties
            .iter()
            .map(|(name, value)| (name, pair(name, value)))
            .collect();
        Self {
            batch: context.properties,
            cluster_pair,
            batch_pairs,
        }
    }

    /// Whether an entry with these (canonical) properties may take the fast path.
    fn fast_path_for(&self, own: &RawProperties<'_>) -> bool {
        self.cluster_pair.is_some()
            && !own.contains(keys::CLUSTER)
            && !TIMER_PROPERTIES.iter().any(|name| own.contains(name))
    }

    /// A property of the merged map: the entry's own, else the batch's.
    fn get<'b>(&'b self, own: &RawProperties<'b>, name: &str) -> Option<&'b str> {
        own.get(name).or_else(|| self.batch.get(name))
    }
}

/// `name 0x01 value 0x02`.
fn pair(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 2);
    out.extend_from_slice(name.as_bytes());
    out.push(NAME_VALUE_SEPARATOR);
    out.extend_from_slice(value.as_bytes());
    out.push(PROPERTY_SEPARATOR);
    out
}

struct Encoder {
    records: BytesMut,
    keys: String,
    uniq_keys: String,
    entries: Vec<EncodedEntry>,
}

impl Encoder {
    fn parts<'a>(context: &BatchContext<'a>, entry: &RawBatchEntry<'a>) -> RecordParts<'a> {
        RecordParts {
            queue_id: context.queue_id,
            flag: entry.flag,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: context.sys_flag,
            born_timestamp: context.born_timestamp,
            born_host: context.born_host,
            store_timestamp: context.now_ms,
            store_host: context.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: entry.body,
            topic: context.topic,
        }
    }

    /// Starts the entry's `UNIQ_KEY` in the comma-joined list.
    fn uniq_start(&mut self) -> usize {
        if !self.uniq_keys.is_empty() {
            self.uniq_keys.push(',');
        }
        self.uniq_keys.len()
    }

    fn push_fast(
        &mut self,
        context: &BatchContext<'_>,
        shared: &Shared<'_>,
        entry: &RawBatchEntry<'_>,
        own: &RawProperties<'_>,
        uniq: &mut UniqKeyGenerator,
    ) -> Result<(), Failure> {
        let uniq_start = self.uniq_start();
        let generated = match shared.get(own, keys::UNIQ_KEY) {
            Some(existing) => {
                self.uniq_keys.push_str(existing);
                false
            }
            None => {
                uniq.push_next_key(context.now_ms, &mut self.uniq_keys);
                true
            }
        };
        let uniq_key = &self.uniq_keys[uniq_start..];
        let cluster_pair = shared
            .cluster_pair
            .as_deref()
            .expect("the fast path has a cluster pair");
        let extras = || {
            shared
                .batch_pairs
                .iter()
                .filter(|(name, _)| !own.contains(name))
                .map(|(_, encoded)| encoded.as_slice())
        };
        let uniq_pair_len = if generated {
            keys::UNIQ_KEY.len() + uniq_key.len() + 2
        } else {
            0
        };
        let properties_len = own.as_str().len()
            + extras().map(<[u8]>::len).sum::<usize>()
            + uniq_pair_len
            + cluster_pair.len();
        let start = self.records.len();
        Self::parts(context, entry)
            .encode_with(properties_len, &mut self.records, |out| {
                out.extend_from_slice(own.as_str().as_bytes());
                for encoded in extras() {
                    out.extend_from_slice(encoded);
                }
                if generated {
                    out.extend_from_slice(keys::UNIQ_KEY.as_bytes());
                    out.extend_from_slice(&[NAME_VALUE_SEPARATOR]);
                    out.extend_from_slice(uniq_key.as_bytes());
                    out.extend_from_slice(&[PROPERTY_SEPARATOR]);
                }
                out.extend_from_slice(cluster_pair);
            })
            .map_err(|e| illegal(&e))?;
        let keys_start = self.keys.len();
        push_index_keys(shared.get(own, keys::KEYS), Some(uniq_key), &mut self.keys);
        let tags_code = shared
            .get(own, keys::TAGS)
            .map_or(0, |tags| i64::from(message::tag_hash(tags)));
        self.entries.push(EncodedEntry {
            tags_code,
            keys: keys_start..self.keys.len(),
            payload: start..self.records.len(),
        });
        Ok(())
    }

    /// The general path: exactly what the broker did per entry before the fast path.
    fn push_general(
        &mut self,
        context: &BatchContext<'_>,
        body: &Bytes,
        entry: &RawBatchEntry<'_>,
        uniq: &mut UniqKeyGenerator,
    ) -> Result<(), Failure> {
        let mut properties = Properties::decode(entry.properties);
        // Java 5.x appends the batch-level properties to each entry's own.
        for (name, value) in context.properties.iter() {
            if !properties.contains(name) {
                properties.insert(name, value).map_err(|e| illegal(&e))?;
            }
        }
        super::timer::reject_batch_timer(&properties)?;
        let uniq_start = self.uniq_start();
        if let Some(existing) = properties.uniq_key().filter(|u| !u.is_empty()) {
            self.uniq_keys.push_str(existing);
        } else {
            let key = uniq.next_key(context.now_ms);
            properties
                .insert(keys::UNIQ_KEY, &key)
                .map_err(|e| illegal(&e))?;
            self.uniq_keys.push_str(&key);
        }
        assert_eq!(
            properties.uniq_key(),
            Some(&self.uniq_keys[uniq_start..]),
            "the reply names the stored UNIQ_KEY"
        );
        properties
            .insert(keys::CLUSTER, context.cluster)
            .map_err(|e| illegal(&e))?;
        let tags_code = message::tags_code_of(&properties);
        let keys_start = self.keys.len();
        self.keys.push_str(&index_keys(&properties));
        let inbound = Inbound {
            topic: context.topic,
            queue_id: context.queue_id,
            flag: entry.flag,
            sys_flag: context.sys_flag,
            born_timestamp: context.born_timestamp,
            born_host: context.born_host,
            reconsume_times: 0,
            properties,
            body: body.slice_ref(entry.body),
        };
        let payload =
            encode_payload(inbound, context.store_host, context.now_ms).map_err(|e| illegal(&e))?;
        let start = self.records.len();
        self.records.extend_from_slice(&payload);
        self.entries.push(EncodedEntry {
            tags_code,
            keys: keys_start..self.keys.len(),
            payload: start..self.records.len(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use proptest::prelude::*;
    use rmq_net::codec::message::{decode_all, CrcCheck};

    use super::*;

    const NOW_MS: i64 = 1_796_000_000_000;

    fn generator() -> UniqKeyGenerator {
        UniqKeyGenerator::new("10.0.0.9".parse().expect("ip"), 4242, 7, NOW_MS)
    }

    /// A batch body whose entries carry these exact properties strings.
    fn body(entries: &[(&[u8], &str)]) -> Bytes {
        let mut out = BytesMut::new();
        for (index, (payload, properties)) in entries.iter().enumerate() {
            let total = 22 + payload.len() + properties.len();
            out.put_i32(i32::try_from(total).expect("small"));
            out.put_i32(0);
            out.put_i32(0);
            out.put_i32(i32::try_from(index).expect("small"));
            out.put_i32(i32::try_from(payload.len()).expect("small"));
            out.put_slice(payload);
            out.put_i16(i16::try_from(properties.len()).expect("small"));
            out.put_slice(properties.as_bytes());
        }
        out.freeze()
    }

    fn context<'a>(properties: &'a Properties, cluster: &'a str) -> BatchContext<'a> {
        BatchContext {
            topic: "BatchTopic",
            queue_id: 3,
            sys_flag: 0,
            born_timestamp: NOW_MS - 5,
            born_host: "10.0.0.2:5000".parse().expect("addr"),
            store_host: "127.0.0.1:10911".parse().expect("addr"),
            now_ms: NOW_MS,
            cluster,
            properties,
        }
    }

    /// The reference: every entry through the general path.
    fn general_only(
        context: &BatchContext<'_>,
        body: &Bytes,
    ) -> Result<(Vec<u8>, String, String, Vec<EncodedEntry>), Failure> {
        let entries = decode_batch_raw(body, &BatchLimits::default()).map_err(|e| illegal(&e))?;
        let mut uniq = generator();
        let mut out = Encoder {
            records: BytesMut::new(),
            keys: String::new(),
            uniq_keys: String::new(),
            entries: Vec::new(),
        };
        for entry in &entries {
            out.push_general(context, body, entry, &mut uniq)?;
        }
        Ok((out.records.to_vec(), out.keys, out.uniq_keys, out.entries))
    }

    fn assert_same(batch_properties: &Properties, cluster: &str, entries: &[(&[u8], &str)]) {
        let context = context(batch_properties, cluster);
        let body = body(entries);
        let fast = encode(&context, &body, &BatchLimits::default(), &mut generator());
        let general = general_only(&context, &body);
        match (fast, general) {
            (Ok(fast), Ok((records, keys, uniq_keys, encoded))) => {
                assert_eq!(fast.records.to_vec(), records, "{entries:?}");
                assert_eq!(fast.keys, keys);
                assert_eq!(fast.uniq_keys, uniq_keys);
                assert_eq!(fast.entries, encoded);
                let decoded = decode_all(&fast.records, CrcCheck::Verify).expect("records decode");
                assert_eq!(decoded.len(), entries.len());
                for (record, uniq) in decoded.iter().zip(fast.uniq_keys.split(',')) {
                    assert_eq!(record.properties.uniq_key(), Some(uniq));
                    assert_eq!(record.properties.get(keys::CLUSTER), Some(cluster));
                }
            }
            (Err(Failure::Code(fast_code, fast_remark)), Err(Failure::Code(code, remark))) => {
                assert_eq!((fast_code, fast_remark), (code, remark));
            }
            (fast, general) => panic!("paths disagree: {fast:?} / {general:?}"),
        }
    }

    fn batch_properties(pairs: &[(&str, &str)]) -> Properties {
        let mut properties = Properties::new();
        for (name, value) in pairs {
            properties.insert(*name, *value).expect("valid pair");
        }
        properties
    }

    #[test]
    fn fast_and_general_paths_store_the_same_bytes() {
        let region = batch_properties(&[("MSG_REGION", "DefaultRegion"), ("TRACE_ON", "true")]);
        let with_keys = batch_properties(&[("KEYS", "bk"), ("TAGS", "BT"), ("WAIT", "true")]);
        let with_uniq = batch_properties(&[("UNIQ_KEY", "BATCHUNIQ"), ("TRACE_ON", "true")]);
        let with_cluster = batch_properties(&[("CLUSTER", "Other")]);
        let entries: [(&[u8], &str); 9] = [
            (b"a", "UNIQ_KEY\x01U1\x02TAGS\x01TagA\x02KEYS\x01k1  k2\x02"),
            (b"b", "TAGS\x01TagB\x02"),
            (b"", ""),
            (b"d", "TRACE_ON\x01false\x02WAIT\x01false\x02"),
            (b"e", "TAGS\x01x\x02TAGS\x01y\x02"),
            (b"f", "TAGS\x01x"),
            (b"g", "CLUSTER\x01mine\x02"),
            (b"h", "\x01v\x02n\x01\x02KEYS\x01a\x01b\x02"),
            (b"i", "UNIQ_KEY\x01\x02KEYS\x01 \x02"),
        ];
        for properties in [
            &region,
            &with_keys,
            &with_uniq,
            &with_cluster,
            &Properties::new(),
        ] {
            for cluster in ["DefaultCluster", "", "bad\x02cluster"] {
                assert_same(properties, cluster, &entries);
                for entry in &entries {
                    assert_same(properties, cluster, std::slice::from_ref(entry));
                }
            }
        }
    }

    #[test]
    fn refusals_match_the_general_path() {
        let region = batch_properties(&[("MSG_REGION", "DefaultRegion")]);
        let long = "v".repeat(rmq_net::codec::limits::PROPERTIES_SIZE_MAX - 10);
        let too_long = format!("TAGS\x01{long}\x02");
        for entries in [
            vec![(&b"a"[..], "TIMER_DELAY_SEC\x0110\x02")],
            vec![
                (&b"a"[..], "TAGS\x01a\x02"),
                (&b"b"[..], "__STARTDELIVERTIME\x011\x02"),
            ],
            vec![(&b"a"[..], too_long.as_str())],
        ] {
            let context = context(&region, "DefaultCluster");
            let body = body(&entries);
            assert!(
                encode(&context, &body, &BatchLimits::default(), &mut generator()).is_err(),
                "{entries:?}"
            );
            assert_same(&region, "DefaultCluster", &entries);
        }
    }

    proptest! {
        #[test]
        fn any_properties_string_stores_as_the_general_path_does(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just("TAGS"), Just("KEYS"), Just("UNIQ_KEY"), Just("CLUSTER"),
                    Just("TRACE_ON"), Just("a b"), Just("x"), Just("\x01"), Just("\x02"),
                ],
                0..20,
            ),
            batch in proptest::sample::subsequence(
                vec![("TRACE_ON", "true"), ("KEYS", "bk"), ("UNIQ_KEY", "BU"), ("TAGS", "BT")],
                0..4,
            ),
        ) {
            let text: String = pieces.concat();
            let properties = batch_properties(&batch);
            assert_same(&properties, "DefaultCluster", &[(b"body", text.as_str())]);
        }
    }
}
