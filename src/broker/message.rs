//! Message encoding at the broker edge: a send request becomes a stored-message record
//! (PROTOCOL.md §6.6) that is the storage payload, and a stored payload becomes the exact
//! bytes of a pull/view body (queue offset and client-visible physical offset patched in).
//!
//! The payload is the §6.6 record itself, so serving a pull is one copy plus two patched
//! fields, never a re-encode. Must never: change a record's length or CRC'd body when
//! patching, or serve a record whose topic/queue differ from what the store returned.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::keys::{KEYS, KEY_SEPARATOR};
use rmq_net::codec::message::{self, Properties, RecordParts};
use rmq_net::CodecError;
use rmq_storage::commitlog::StoredRecord;

use crate::runtime::placement::global_offset;
use crate::runtime::ShardId;

use super::Failure;

/// Fields of one message to store.
#[derive(Debug)]
pub struct Inbound<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Queue id.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Message sysFlag as sent (host bits are recomputed).
    pub sys_flag: i32,
    /// Producer timestamp.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Reconsume count.
    pub reconsume_times: i32,
    /// Properties (UNIQ_KEY already ensured).
    pub properties: Properties,
    /// Body (possibly compressed).
    pub body: Bytes,
}

/// Encodes the storage payload of `inbound`: a complete §6.6 record whose queue offset and
/// physical offset are 0 until served.
///
/// # Errors
/// [`CodecError`] when a field cannot be encoded (topic or properties too long).
pub fn encode_payload(
    inbound: Inbound<'_>,
    store_host: SocketAddr,
    store_timestamp: i64,
) -> Result<BytesMut, CodecError> {
    let parts = RecordParts {
        queue_id: inbound.queue_id,
        flag: inbound.flag,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: inbound.sys_flag,
        born_timestamp: inbound.born_timestamp,
        born_host: inbound.born_host,
        store_timestamp,
        store_host,
        reconsume_times: inbound.reconsume_times,
        prepared_transaction_offset: 0,
        body: &inbound.body,
        topic: inbound.topic,
    };
    let properties_len = inbound.properties.encoded_len();
    let mut out = BytesMut::with_capacity(parts.encoded_len(properties_len));
    parts.encode_with(properties_len, &mut out, |out| {
        inbound.properties.encode(out);
    })?;
    Ok(out)
}

/// Index keys of a message: its `KEYS` (space separated) and its `UNIQ_KEY`.
#[must_use]
pub fn index_keys(properties: &Properties) -> String {
    let mut keys = String::new();
    push_index_keys(properties.get(KEYS), properties.uniq_key(), &mut keys);
    keys
}

/// Appends the index keys of a message whose `KEYS` value is `message_keys` and whose
/// `UNIQ_KEY` is `uniq` to `out`: the non-empty space-separated keys, then the unique key,
/// joined by single spaces (what [`index_keys`] returns).
pub fn push_index_keys(message_keys: Option<&str>, uniq: Option<&str>, out: &mut String) {
    let start = out.len();
    let pieces = message_keys
        .unwrap_or("")
        .split(KEY_SEPARATOR)
        .filter(|key| !key.is_empty())
        .chain(uniq);
    for key in pieces {
        if out.len() > start {
            out.push(' ');
        }
        out.push_str(key);
    }
}

/// Appends a stored payload to a pull/view body with its queue offset and client-visible
/// physical offset patched in.
///
/// # Errors
/// [`CodecError`] if the payload is not a §6.6 record (a store bug or corruption).
pub fn append_served(
    out: &mut BytesMut,
    payload: &[u8],
    queue_offset: i64,
    shard: ShardId,
    local_phys_offset: u64,
) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(payload);
    let phys = global_offset(shard, i64::try_from(local_phys_offset).unwrap_or(i64::MAX));
    if let Err(err) = message::patch_offsets(&mut out[start..], queue_offset, phys) {
        out.truncate(start);
        return Err(err);
    }
    Ok(())
}

/// [`append_served`] for a record `shard`'s store returned, with the failure a client gets
/// when the stored payload is not a record (corruption or a store bug): SYSTEM_ERROR.
///
/// # Errors
/// SYSTEM_ERROR naming the codec's complaint.
pub fn serve_record(
    out: &mut BytesMut,
    record: &StoredRecord,
    shard: ShardId,
) -> Result<(), Failure> {
    append_served(
        out,
        &record.payload,
        record.queue_offset,
        shard,
        record.phys_offset,
    )
    .map_err(|e| {
        Failure::Code(
            ResponseCode::SystemError,
            format!("stored record unreadable: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_net::codec::message::{decode_all, CrcCheck};

    #[test]
    fn payload_round_trips_and_serving_patches_offsets() {
        let mut properties = Properties::new();
        properties.insert("TAGS", "TagA").expect("insert");
        properties.insert("KEYS", "k1 k2").expect("insert");
        properties.insert("UNIQ_KEY", "ABC").expect("insert");
        assert_eq!(index_keys(&properties), "k1 k2 ABC");
        let inbound = Inbound {
            topic: "T",
            queue_id: 3,
            flag: 7,
            sys_flag: 0,
            born_timestamp: 11,
            born_host: "10.0.0.2:5000".parse().expect("addr"),
            reconsume_times: 0,
            properties,
            body: Bytes::from_static(b"hello"),
        };
        let store_host: SocketAddr = "127.0.0.1:10911".parse().expect("addr");
        let payload = encode_payload(inbound, store_host, 22).expect("encode");
        let mut body = BytesMut::new();
        append_served(&mut body, &payload, 41, ShardId(1), 4096).expect("serve");
        let records = decode_all(&body.freeze(), CrcCheck::Verify).expect("decode");
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.queue_offset, 41);
        assert_eq!(record.physical_offset, (1 << 56) | 4096);
        assert_eq!(record.store_host, store_host);
        assert_eq!(record.store_timestamp, 22);
        assert_eq!(record.body, Bytes::from_static(b"hello"));
        assert_eq!(record.properties.tags(), Some("TagA"));
    }
}
