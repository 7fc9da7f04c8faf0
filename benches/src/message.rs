//! Builds the send requests producers put on the wire: SEND_MESSAGE_V2 (310, one-letter
//! header `a`..`n`) for single messages, SEND_BATCH_MESSAGE (320, body from `encode_batch`)
//! for batches, with the properties a Java producer sets (`WAIT`, `UNIQ_KEY`, optional
//! `TAGS`/`KEYS`). One [`MessageFactory`] per producer; the body bytes are shared by every
//! message, so a request costs its header, not a copy of the payload.
//! Must never keep a request after returning it, nor produce properties a Java decoder would
//! drop (tags and keys are checked in [`MessageFactory::new`]).

use std::net::{IpAddr, Ipv4Addr};

use bytes::{Bytes, BytesMut};
use rmq_net::codec::codes::RequestCode;
use rmq_net::codec::command::{ExtFields, RemotingCommand};
use rmq_net::codec::error::CodecError;
use rmq_net::codec::header::send::{SendHeaderForm, SendMessageRequestHeader};
use rmq_net::codec::message::properties::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
use rmq_net::codec::message::{encode_batch, keys, BatchEntry, Properties, UniqKeyGenerator};

use crate::route::{QueueTarget, DEFAULT_TOPIC};
use crate::timer::TimerSpec;

/// What every message of a run looks like.
#[derive(Debug, Clone)]
pub struct MessageSpec {
    /// Topic.
    pub topic: String,
    /// Producer group (header `a`).
    pub producer_group: String,
    /// Auto-create queue count (header `d`).
    pub default_queue_nums: i32,
    /// Body size, bytes.
    pub size: usize,
    /// Messages per request (1 = SEND_MESSAGE_V2).
    pub batch: u32,
    /// Tags, assigned round-robin; empty = no `TAGS`.
    pub tags: Vec<String>,
    /// Distinct `KEYS` values, assigned round-robin; 0 = no `KEYS`.
    pub key_space: u64,
    /// Half messages: `TRAN_MSG=true`, `PGROUP`, sysFlag PREPARED (batch 1 only).
    pub transactional: bool,
    /// Timer messages: each single send carries `TIMER_DELIVER_MS` (batch 1 only).
    pub timer: Option<TimerSpec>,
}

/// Makes one producer's requests.
#[derive(Debug)]
pub struct MessageFactory {
    spec: MessageSpec,
    body: Bytes,
    uniq: UniqKeyGenerator,
    /// Messages made so far; picks the tag and key.
    sequence: u64,
    /// The producer's index: with `sequence`, picks a timer's due time.
    producer_index: usize,
    /// The fixed header fields, per queue index of the caller's queue list.
    templates: Vec<ExtFields>,
}

/// Header key of the born timestamp.
pub(crate) const BORN_TIMESTAMP_KEY: &str = "g";
/// Header key of the properties string.
pub(crate) const PROPERTIES_KEY: &str = "i";

impl MessageFactory {
    /// A factory for producer `producer_index` sending to `queues`, started at wall-clock
    /// `now_ms`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if a tag is not a valid property value.
    ///
    /// # Panics
    /// If `queues` is empty or the batch size is 0.
    pub fn new(
        spec: MessageSpec,
        queues: &[QueueTarget],
        producer_index: usize,
        now_ms: i64,
    ) -> Result<Self, CodecError> {
        assert!(!queues.is_empty(), "a producer needs a queue");
        assert!(spec.batch > 0, "batch of zero messages");
        assert!(
            spec.timer.is_none() || (spec.batch == 1 && !spec.transactional),
            "timer messages are single, non-transactional sends"
        );
        for tag in &spec.tags {
            Properties::new().insert(keys::TAGS, tag.as_str())?;
        }
        let body = Bytes::from(payload(spec.size));
        let uniq = producer_uniq_keys(producer_index, now_ms);
        let templates = queues.iter().map(|queue| template(&spec, queue)).collect();
        Ok(Self {
            spec,
            body,
            uniq,
            sequence: 0,
            producer_index,
            templates,
        })
    }

    /// Body bytes per message.
    #[must_use]
    pub fn size(&self) -> usize {
        self.spec.size
    }

    /// A request carrying `messages` messages (1 = a single send, else a batch) for the queue
    /// at `queue_index` of the list given to [`Self::new`], born at `now_ms`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the batch body cannot be encoded (cannot happen for messages
    /// within the CLI limits).
    ///
    /// # Panics
    /// If `messages` is 0 or above the batch size, or `queue_index` is out of range.
    pub fn request(
        &mut self,
        queue_index: usize,
        messages: u32,
        now_ms: i64,
    ) -> Result<RemotingCommand, CodecError> {
        assert!(messages > 0, "a request carries at least one message");
        assert!(
            messages <= self.spec.batch,
            "more messages than the batch size"
        );
        let mut ext = self.templates[queue_index].clone();
        ext.insert(BORN_TIMESTAMP_KEY, now_ms.to_string());
        if self.spec.batch == 1 {
            let mut properties = String::with_capacity(96);
            push_property(&mut properties, keys::WAIT, "true");
            if self.spec.transactional {
                push_property(&mut properties, keys::TRAN_MSG, "true");
                push_property(&mut properties, keys::PGROUP, &self.spec.producer_group);
            }
            if let Some(timer) = &self.spec.timer {
                let due = timer.deliver_ms(self.producer_index, self.sequence, now_ms);
                push_property(&mut properties, keys::TIMER_DELIVER_MS, &due.to_string());
            }
            self.push_message_properties(&mut properties, now_ms);
            ext.insert(PROPERTIES_KEY, properties);
            return Ok(RemotingCommand::request(RequestCode::SendMessageV2, ext)
                .with_body(self.body.clone()));
        }
        let mut header_properties = String::with_capacity(16);
        push_property(&mut header_properties, keys::WAIT, "true");
        ext.insert(PROPERTIES_KEY, header_properties);
        let mut entries = Vec::with_capacity(messages as usize);
        for _ in 0..messages {
            let mut text = String::with_capacity(80);
            self.push_message_properties(&mut text, now_ms);
            entries.push(BatchEntry {
                flag: 0,
                body: self.body.clone(),
                properties: Properties::decode(&text),
            });
        }
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body)?;
        Ok(RemotingCommand::request(RequestCode::SendBatchMessage, ext).with_body(body.freeze()))
    }

    /// Appends `UNIQ_KEY` and, when configured, `TAGS` and `KEYS` for the next message.
    fn push_message_properties(&mut self, out: &mut String, now_ms: i64) {
        let sequence = self.sequence;
        self.sequence += 1;
        push_property(out, keys::UNIQ_KEY, &self.uniq.next_key(now_ms));
        if !self.spec.tags.is_empty() {
            let index = (sequence % self.spec.tags.len() as u64) as usize;
            push_property(out, keys::TAGS, &self.spec.tags[index]);
        }
        if self.spec.key_space > 0 {
            let key = format!("k{}", sequence % self.spec.key_space);
            push_property(out, keys::KEYS, &key);
        }
    }
}

/// The header fields that do not change between requests to one queue.
pub(crate) fn template(spec: &MessageSpec, queue: &QueueTarget) -> ExtFields {
    let header = SendMessageRequestHeader {
        producer_group: spec.producer_group.clone(),
        topic: spec.topic.clone(),
        default_topic: DEFAULT_TOPIC.to_owned(),
        default_topic_queue_nums: spec.default_queue_nums,
        queue_id: queue.queue_id,
        sys_flag: if spec.transactional {
            rmq_net::codec::message::sysflag::TRANSACTION_PREPARED_TYPE
        } else {
            0
        },
        born_timestamp: 0,
        flag: 0,
        properties: None,
        reconsume_times: Some(0),
        unit_mode: Some(false),
        max_reconsume_times: None,
        batch: Some(spec.batch > 1),
        broker_name: Some(queue.broker_name.clone()),
    };
    header.to_ext_in(SendHeaderForm::V2)
}

/// Appends `name\x01value\x02`, the Java properties string form.
pub(crate) fn push_property(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(char::from(NAME_VALUE_SEPARATOR));
    out.push_str(value);
    out.push(char::from(PROPERTY_SEPARATOR));
}

/// A printable, compressible-but-not-trivial payload of `size` bytes.
#[must_use]
pub fn payload(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size)
        .map(|index| ALPHABET[(index * 7 + index / 61) % ALPHABET.len()])
        .collect()
}

/// The UNIQ_KEY generator of producer `producer_index` of this process. Distinct seeds keep
/// the generators of one process from repeating each other's keys.
pub fn producer_uniq_keys(producer_index: usize, now_ms: i64) -> UniqKeyGenerator {
    let seed = i32::try_from(producer_index % (i32::MAX as usize)).unwrap_or(0);
    UniqKeyGenerator::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        std::process::id(),
        seed,
        now_ms,
    )
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::message::{decode_batch, BatchLimits};

    use super::*;

    fn spec(batch: u32) -> MessageSpec {
        MessageSpec {
            topic: "T".into(),
            producer_group: "PG".into(),
            default_queue_nums: 4,
            size: 100,
            batch,
            tags: vec!["a".into(), "b".into()],
            key_space: 3,
            transactional: false,
            timer: None,
        }
    }

    fn queues() -> Vec<QueueTarget> {
        (0..2)
            .map(|queue_id| QueueTarget {
                broker_name: "broker-a".into(),
                broker_addr: "127.0.0.1:1".into(),
                queue_id,
            })
            .collect()
    }

    #[test]
    fn single_send_is_a_java_shaped_v2_request() {
        let mut factory =
            MessageFactory::new(spec(1), &queues(), 0, 1_700_000_000_000).expect("ok");
        let request = factory.request(1, 1, 1_700_000_000_123).expect("request");
        assert_eq!(request.code, 310);
        assert_eq!(request.body.len(), 100);
        let header = SendMessageRequestHeader::decode_for_code(
            RequestCode::SendMessageV2,
            &request.ext_fields,
        )
        .expect("decodes");
        assert_eq!(header.topic, "T");
        assert_eq!(header.queue_id, 1);
        assert_eq!(header.default_topic, "TBW102");
        assert_eq!(header.born_timestamp, 1_700_000_000_123);
        assert!(!header.is_batch());
        assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
        let properties = Properties::decode(header.properties.as_deref().expect("properties"));
        assert_eq!(properties.get(keys::WAIT), Some("true"));
        assert_eq!(properties.tags(), Some("a"));
        assert_eq!(properties.get(keys::KEYS), Some("k0"));
        assert_eq!(properties.uniq_key().map(str::len), Some(32));
        let second = factory.request(0, 1, 1_700_000_000_124).expect("request");
        let second = Properties::decode(second.ext("i").expect("i"));
        assert_eq!(second.tags(), Some("b"));
        assert_eq!(second.get(keys::KEYS), Some("k1"));
        assert_ne!(second.uniq_key(), properties.uniq_key());
    }

    #[test]
    fn a_transactional_send_is_a_half_message_of_its_group() {
        let mut transactional = spec(1);
        transactional.transactional = true;
        let mut factory =
            MessageFactory::new(transactional, &queues(), 0, 1_700_000_000_000).expect("ok");
        let request = factory.request(0, 1, 1_700_000_000_001).expect("request");
        let header = SendMessageRequestHeader::decode_for_code(
            RequestCode::SendMessageV2,
            &request.ext_fields,
        )
        .expect("decodes");
        assert_eq!(
            header.sys_flag,
            rmq_net::codec::message::sysflag::TRANSACTION_PREPARED_TYPE
        );
        let properties = Properties::decode(header.properties.as_deref().expect("properties"));
        assert_eq!(properties.get(keys::TRAN_MSG), Some("true"));
        assert_eq!(properties.get(keys::PGROUP), Some("PG"));
        let mut plain = MessageFactory::new(spec(1), &queues(), 0, 1).expect("ok");
        let request = plain.request(0, 1, 2).expect("request");
        let properties = Properties::decode(request.ext("i").expect("i"));
        assert_eq!(properties.get(keys::TRAN_MSG), None);
    }

    #[test]
    fn a_timer_send_carries_its_due_time_in_range() {
        let mut timer = spec(1);
        timer.timer = Some(TimerSpec {
            delay: "60000..120000".parse().expect("range"),
            start_anchor_ms: None,
        });
        let mut factory = MessageFactory::new(timer, &queues(), 2, 1_700_000_000_000).expect("ok");
        let born = 1_700_000_000_500;
        let mut dues = Vec::new();
        for _ in 0..8 {
            let request = factory.request(0, 1, born).expect("request");
            let header = SendMessageRequestHeader::decode_for_code(
                RequestCode::SendMessageV2,
                &request.ext_fields,
            )
            .expect("decodes");
            let properties = Properties::decode(header.properties.as_deref().expect("props"));
            let due: i64 = properties
                .get(keys::TIMER_DELIVER_MS)
                .expect("a timer property")
                .parse()
                .expect("an integer");
            assert!((born + 60_000..=born + 120_000).contains(&due), "{due}");
            assert_eq!(properties.get(keys::WAIT), Some("true"));
            assert_eq!(properties.uniq_key().map(str::len), Some(32));
            dues.push(due);
        }
        dues.sort_unstable();
        dues.dedup();
        assert!(dues.len() > 1, "due times are spread: {dues:?}");
    }

    #[test]
    fn batch_send_carries_entries_with_their_own_keys() {
        let mut factory =
            MessageFactory::new(spec(8), &queues(), 3, 1_700_000_000_000).expect("ok");
        let request = factory.request(0, 5, 1_700_000_000_000).expect("request");
        assert_eq!(request.code, 320);
        assert_eq!(request.ext("m"), Some("true"));
        let entries = decode_batch(&request.body, &BatchLimits::default()).expect("batch");
        assert_eq!(entries.len(), 5);
        assert!(entries.iter().all(|entry| entry.body.len() == 100));
        let keys: Vec<_> = entries
            .iter()
            .map(|e| e.properties.get(keys::KEYS))
            .collect();
        assert_eq!(
            keys,
            [Some("k0"), Some("k1"), Some("k2"), Some("k0"), Some("k1")]
        );
        let mut uniq: Vec<_> = entries
            .iter()
            .filter_map(|e| e.properties.uniq_key())
            .collect();
        uniq.dedup();
        assert_eq!(uniq.len(), 5);
    }

    #[test]
    fn bad_tags_are_rejected() {
        let mut bad = spec(1);
        bad.tags = vec!["x\u{2}y".into()];
        assert!(MessageFactory::new(bad, &queues(), 0, 0).is_err());
    }
}
