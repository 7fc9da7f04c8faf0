//! One producer's send requests rendered from templates: SEND_MESSAGE_V2 (310) for single
//! messages and SEND_BATCH_MESSAGE (320) for batches, one [`FrameTemplate`] per queue, encoded
//! once at start-up. Per request only the opaque, the born timestamp (`g`), the properties
//! (`i`: `WAIT`, a timer's `TIMER_DELIVER_MS`, a fresh `UNIQ_KEY`, the `TAGS`/`KEYS` in turn)
//! and the body are written.
//! The bytes are exactly those of [`MessageFactory`](crate::message::MessageFactory) encoded
//! by `rmq-net` (a unit test compares them), so the broker sees what a Java producer sends.
//! Must never allocate per request once its scratch buffers have grown, nor keep a request.

use rmq_net::codec::codes::{RequestCode, SerializeType};
use rmq_net::codec::command::RemotingCommand;
use rmq_net::codec::message::batch::BATCH_ENTRY_FIXED_SIZE;
use rmq_net::codec::message::properties::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
use rmq_net::codec::message::{keys, UniqKeyGenerator};

use super::template::{
    push_decimal, signed_decimal, unsigned_decimal, FrameTemplate, TemplateError, DECIMAL_TEXT_MAX,
};
use crate::message::{
    payload, producer_uniq_keys, push_property, template, MessageSpec, BORN_TIMESTAMP_KEY,
    PROPERTIES_KEY,
};
use crate::route::QueueTarget;

/// Renders one producer's requests.
#[derive(Debug)]
pub struct LeanRequests {
    spec: MessageSpec,
    body: Vec<u8>,
    uniq: UniqKeyGenerator,
    /// Messages made so far; picks the tag and key (as `MessageFactory` does).
    sequence: u64,
    /// The producer's index: with `sequence`, picks a timer's due time.
    producer_index: usize,
    /// Per queue index of the caller's queue list.
    templates: Vec<FrameTemplate>,
    /// Reused per request: the properties text, and the born timestamp's digits.
    properties: String,
    born: Vec<u8>,
}

impl LeanRequests {
    /// Templates for producer `producer_index` sending to `queues` with headers in
    /// `serialize_type`, started at wall-clock `now_ms` (the same arguments as
    /// `MessageFactory::new`, which gives the same keys).
    ///
    /// # Errors
    /// [`TemplateError`] when a template cannot be built (a tag that is not a valid property
    /// value is refused by `MessageFactory::new` first).
    ///
    /// # Panics
    /// If `queues` is empty or the batch size is 0.
    pub fn new(
        spec: MessageSpec,
        queues: &[QueueTarget],
        producer_index: usize,
        now_ms: i64,
        serialize_type: SerializeType,
    ) -> Result<Self, TemplateError> {
        assert!(!queues.is_empty(), "a producer needs a queue");
        assert!(spec.batch > 0, "batch of zero messages");
        assert!(
            spec.timer.is_none() || (spec.batch == 1 && !spec.transactional),
            "timer messages are single, non-transactional sends"
        );
        let uniq = producer_uniq_keys(producer_index, now_ms);
        let (code, slots): (RequestCode, &[&str]) = if spec.batch == 1 {
            (
                RequestCode::SendMessageV2,
                &[BORN_TIMESTAMP_KEY, PROPERTIES_KEY],
            )
        } else {
            (RequestCode::SendBatchMessage, &[BORN_TIMESTAMP_KEY])
        };
        let mut wait_only = String::new();
        push_property(&mut wait_only, keys::WAIT, "true");
        let templates = queues
            .iter()
            .map(|queue| {
                let mut ext = template(&spec, queue);
                ext.insert(BORN_TIMESTAMP_KEY, "0");
                ext.insert(PROPERTIES_KEY, wait_only.clone());
                let mut command = RemotingCommand::request(code, ext);
                command.serialize_type = serialize_type;
                FrameTemplate::new(&command, slots)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            body: payload(spec.size),
            spec,
            uniq,
            sequence: 0,
            producer_index,
            templates,
            properties: String::with_capacity(128),
            born: Vec::with_capacity(20),
        })
    }

    /// Body bytes per message.
    #[must_use]
    pub fn size(&self) -> usize {
        self.spec.size
    }

    /// Appends the frame of a request with `opaque` carrying `messages` messages (1 = a
    /// single send, else a batch) for the queue at `queue_index`, born at `now_ms`.
    ///
    /// # Panics
    /// If `messages` is 0 or above the batch size, or `queue_index` is out of range.
    pub fn render(
        &mut self,
        out: &mut Vec<u8>,
        opaque: i32,
        queue_index: usize,
        messages: u32,
        now_ms: i64,
    ) {
        assert!(messages > 0, "a request carries at least one message");
        assert!(
            messages <= self.spec.batch,
            "more messages than the batch size"
        );
        self.born.clear();
        push_decimal(&mut self.born, now_ms);
        if self.spec.batch == 1 {
            self.properties.clear();
            push_property(&mut self.properties, keys::WAIT, "true");
            if let Some(timer) = &self.spec.timer {
                let due = timer.deliver_ms(self.producer_index, self.sequence, now_ms);
                let mut digits = [0_u8; DECIMAL_TEXT_MAX];
                let due = signed_decimal(&mut digits, due);
                let due = std::str::from_utf8(due).expect("ASCII digits");
                push_property(&mut self.properties, keys::TIMER_DELIVER_MS, due);
            }
            self.push_message_properties(now_ms);
            self.templates[queue_index].render(
                out,
                opaque,
                &[&self.born, self.properties.as_bytes()],
                &self.body,
            );
            return;
        }
        let template = &self.templates[queue_index];
        let frame = template.begin(out, opaque, &[&self.born]);
        for _ in 0..messages {
            self.properties.clear();
            self.push_message_properties(now_ms);
            push_batch_entry(out, &self.body, self.properties.as_bytes());
        }
        self.templates[queue_index].finish(out, frame);
    }

    /// Appends `UNIQ_KEY` and, when configured, `TAGS` and `KEYS` for the next message, in
    /// the order `MessageFactory` writes them.
    fn push_message_properties(&mut self, now_ms: i64) {
        let sequence = self.sequence;
        self.sequence += 1;
        let out = &mut self.properties;
        out.push_str(keys::UNIQ_KEY);
        out.push(char::from(NAME_VALUE_SEPARATOR));
        self.uniq.push_next_key(now_ms, out);
        out.push(char::from(PROPERTY_SEPARATOR));
        if !self.spec.tags.is_empty() {
            let index = (sequence % self.spec.tags.len() as u64) as usize;
            push_property(out, keys::TAGS, &self.spec.tags[index]);
        }
        if self.spec.key_space > 0 {
            out.push_str(keys::KEYS);
            out.push(char::from(NAME_VALUE_SEPARATOR));
            out.push('k');
            let mut digits = [0_u8; DECIMAL_TEXT_MAX];
            let key = sequence % self.spec.key_space;
            let key = unsigned_decimal(&mut digits, key);
            out.push_str(std::str::from_utf8(key).expect("ASCII digits"));
            out.push(char::from(PROPERTY_SEPARATOR));
        }
    }
}

/// Appends one batch entry as `BatchEntry::encode` writes it: `TOTALSIZE ‖ MAGICCODE 0 ‖
/// BODYCRC 0 ‖ FLAG 0 ‖ BODY_LEN ‖ BODY ‖ PROPERTIES_LEN i16 ‖ PROPERTIES`.
///
/// # Panics
/// If the properties exceed `i16::MAX` bytes or the entry 2 GiB (the CLI limits keep both
/// far below).
fn push_batch_entry(out: &mut Vec<u8>, body: &[u8], properties: &[u8]) {
    let total = BATCH_ENTRY_FIXED_SIZE + body.len() + properties.len();
    let total = i32::try_from(total).expect("a batch entry below 2 GiB");
    let body_len = i32::try_from(body.len()).expect("below the entry size");
    let properties_len = i16::try_from(properties.len()).expect("properties below 32 KiB");
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&0_i32.to_be_bytes());
    out.extend_from_slice(&0_i32.to_be_bytes());
    out.extend_from_slice(&0_i32.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&properties_len.to_be_bytes());
    out.extend_from_slice(properties);
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::frame::{decode, encode_to_bytes};
    use rmq_net::codec::header::send::SendMessageRequestHeader;
    use rmq_net::codec::message::Properties;

    use super::*;
    use crate::message::MessageFactory;
    use crate::timer::TimerSpec;

    fn spec(batch: u32, tags: &[&str], key_space: u64) -> MessageSpec {
        MessageSpec {
            topic: "BenchTopic".into(),
            producer_group: "PG".into(),
            default_queue_nums: 8,
            size: 128,
            batch,
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            key_space,
            transactional: false,
            timer: None,
        }
    }

    fn queues() -> Vec<QueueTarget> {
        (0..12)
            .map(|queue_id| QueueTarget {
                broker_name: format!("broker-{}", queue_id % 2),
                broker_addr: "127.0.0.1:1".into(),
                queue_id,
            })
            .collect()
    }

    /// Template-rendered frames == `MessageFactory` requests encoded by `rmq-net`.
    #[test]
    fn rendered_requests_equal_the_old_encoder_for_both_header_types() {
        let start_ms = 1_764_000_000_000;
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            for (batch, tags, key_space) in [
                (1, &[][..], 0),
                (1, &["TagA", "b"][..], 3),
                (16, &[][..], 0),
                (4, &["x"][..], 1000),
            ] {
                let queues = queues();
                let timers = [
                    None,
                    Some(timer_spec(None)),
                    Some(timer_spec(Some(start_ms))),
                ];
                for timer in timers {
                    if timer.is_some() && batch > 1 {
                        continue;
                    }
                    let mut spec = spec(batch, tags, key_space);
                    spec.timer = timer;
                    let mut factory =
                        MessageFactory::new(spec.clone(), &queues, 5, start_ms).expect("factory");
                    let mut lean = LeanRequests::new(spec, &queues, 5, start_ms, serialize_type)
                        .expect("lean");
                    let mut out = Vec::new();
                    for step in 0..40_u32 {
                        let queue_index = (step as usize * 7) % queues.len();
                        let messages = 1 + step % batch;
                        let now_ms = start_ms + i64::from(step) * 997;
                        let opaque = i32::try_from(step).expect("small") * 1_000_003 - 7;
                        let mut request = factory
                            .request(queue_index, messages, now_ms)
                            .expect("request");
                        request.opaque = opaque;
                        request.serialize_type = serialize_type;
                        let expected = encode_to_bytes(&request).expect("encodes");
                        out.clear();
                        lean.render(&mut out, opaque, queue_index, messages, now_ms);
                        assert_eq!(
                            out, expected,
                            "{serialize_type:?} batch {batch} tags {tags:?} step {step}"
                        );
                    }
                }
            }
        }
    }

    fn timer_spec(start_anchor_ms: Option<i64>) -> TimerSpec {
        TimerSpec {
            delay: "3600000..7200000".parse().expect("range"),
            start_anchor_ms,
        }
    }

    /// A timer frame rendered by the lean path decodes, and its `TIMER_DELIVER_MS` parses to
    /// a due time inside the range, spread over it.
    #[test]
    fn timer_frames_decode_with_a_due_time_in_range() {
        let start_ms = 1_764_000_000_000;
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            for anchor in [None, Some(start_ms - 60_000)] {
                let mut spec = spec(1, &["TagA"], 0);
                spec.timer = Some(timer_spec(anchor));
                let queues = queues();
                let mut lean =
                    LeanRequests::new(spec, &queues, 1, start_ms, serialize_type).expect("lean");
                let mut out = Vec::new();
                let mut dues = Vec::new();
                for step in 0..64_i32 {
                    let born_ms = start_ms + i64::from(step);
                    let frame_start = out.len();
                    lean.render(&mut out, step, 0, 1, born_ms);
                    let (command, consumed) = decode(&out[frame_start..], &Default::default())
                        .expect("decodes")
                        .expect("a whole frame");
                    assert_eq!(consumed, out.len() - frame_start);
                    assert_eq!(command.opaque, step);
                    let header = SendMessageRequestHeader::decode_for_code(
                        RequestCode::SendMessageV2,
                        &command.ext_fields,
                    )
                    .expect("a send header");
                    assert_eq!(header.born_timestamp, born_ms);
                    let properties = Properties::decode(header.properties.as_deref().expect("i"));
                    let due: i64 = properties
                        .get(keys::TIMER_DELIVER_MS)
                        .expect("TIMER_DELIVER_MS")
                        .parse()
                        .expect("an integer");
                    let base = anchor.unwrap_or(born_ms);
                    assert!(
                        (base + 3_600_000..=base + 7_200_000).contains(&due),
                        "{due}"
                    );
                    assert_eq!(properties.tags(), Some("TagA"));
                    assert_eq!(properties.get(keys::WAIT), Some("true"));
                    dues.push(due - base);
                }
                dues.sort_unstable();
                dues.dedup();
                assert!(dues.len() > 32, "due times are spread: {dues:?}");
            }
        }
    }
}
