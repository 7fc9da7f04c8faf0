//! Send headers (PROTOCOL.md §4.1, §4.2): SEND_MESSAGE (10, long names) and
//! SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE / SEND_REPLY_MESSAGE_V2 (310/320/325, one-letter names
//! `a`..`n`) decode to one [`SendMessageRequestHeader`]; the send response header; and
//! CONSUMER_SEND_MSG_BACK (36). Must never pick the batch path from the request code: the
//! `batch` flag (`m`) decides (§4.1).

use crate::codec::codes::RequestCode;
use crate::codec::command::ExtFields;
use crate::codec::error::CodecError;

use super::HeaderField;

/// Which field names a send header uses on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendHeaderForm {
    /// Long Java names (`producerGroup`, `topic`, ..., broker name in `bname`): codes 10, 324.
    V1,
    /// One-letter names `a`..`n`: codes 310, 320, 325.
    V2,
}

impl SendHeaderForm {
    /// The form a send request code uses; `None` for codes that carry no send header.
    #[must_use]
    pub const fn for_request_code(code: RequestCode) -> Option<Self> {
        match code {
            RequestCode::SendMessage | RequestCode::SendReplyMessage => Some(Self::V1),
            RequestCode::SendMessageV2
            | RequestCode::SendBatchMessage
            | RequestCode::SendReplyMessageV2 => Some(Self::V2),
            _ => None,
        }
    }

    const fn names(self) -> &'static [&'static str; SEND_FIELD_COUNT] {
        match self {
            Self::V1 => &SEND_NAMES_V1,
            Self::V2 => &SEND_NAMES_V2,
        }
    }

    /// Position of `key` among [`Self::names`], `None` for a key of no field of this form.
    fn index_of(self, key: &str) -> Option<usize> {
        match (self, key.as_bytes()) {
            // `a`..`n` in field order (checked by `v2_names_are_the_letters_a_to_n`).
            (Self::V2, &[letter @ b'a'..=b'n']) => Some(usize::from(letter - b'a')),
            (Self::V2, _) => None,
            (Self::V1, _) => SEND_NAMES_V1.iter().position(|name| *name == key),
        }
    }
}

/// Number of fields in the send header.
const SEND_FIELD_COUNT: usize = 14;

/// Long names, in the order of the struct fields (`brokerName` travels as `bname` in V1).
const SEND_NAMES_V1: [&str; SEND_FIELD_COUNT] = [
    "producerGroup",
    "topic",
    "defaultTopic",
    "defaultTopicQueueNums",
    "queueId",
    "sysFlag",
    "bornTimestamp",
    "flag",
    "properties",
    "reconsumeTimes",
    "unitMode",
    "maxReconsumeTimes",
    "batch",
    "bname",
];

/// One-letter names, same order as [`SEND_NAMES_V1`].
const SEND_NAMES_V2: [&str; SEND_FIELD_COUNT] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
];

/// Index of the first optional field: `a`..`h` are required.
const SEND_REQUIRED_COUNT: usize = 8;

/// The send request header, whichever form it came in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeader {
    /// `a` / `producerGroup`.
    pub producer_group: String,
    /// `b` / `topic` (may be `%RETRY%group`).
    pub topic: String,
    /// `c` / `defaultTopic`: auto-create template, normally `TBW102`.
    pub default_topic: String,
    /// `d` / `defaultTopicQueueNums`.
    pub default_topic_queue_nums: i32,
    /// `e` / `queueId`: negative means "broker picks".
    pub queue_id: i32,
    /// `f` / `sysFlag`: message sysFlag.
    pub sys_flag: i32,
    /// `g` / `bornTimestamp`, ms.
    pub born_timestamp: i64,
    /// `h` / `flag`: user flag.
    pub flag: i32,
    /// `i` / `properties`: the properties string.
    pub properties: Option<String>,
    /// `j` / `reconsumeTimes`.
    pub reconsume_times: Option<i32>,
    /// `k` / `unitMode`.
    pub unit_mode: Option<bool>,
    /// `l` / `maxReconsumeTimes`.
    pub max_reconsume_times: Option<i32>,
    /// `m` / `batch`: the broker takes the batch path when true.
    pub batch: Option<bool>,
    /// `n` / `bname`: target broker name (5.x).
    pub broker_name: Option<String>,
}

impl SendMessageRequestHeader {
    /// Decodes the header in the form `code` uses.
    ///
    /// # Errors
    /// [`CodecError::InvalidField`] (field `code`) if `code` is not a send code; otherwise as
    /// [`Self::from_ext_fields_in`].
    pub fn decode_for_code(code: RequestCode, ext: &ExtFields) -> Result<Self, CodecError> {
        let form =
            SendHeaderForm::for_request_code(code).ok_or_else(|| CodecError::InvalidField {
                field: "code",
                value: code.value().to_string(),
            })?;
        Self::from_ext_fields_in(form, ext)
    }

    /// Decodes the header from extFields in `form`; keys of the other form are ignored.
    ///
    /// # Errors
    /// [`CodecError::MissingField`] for a missing `a`..`h` field (named in the form's
    /// spelling), [`CodecError::InvalidField`] for text that does not parse.
    pub fn from_ext_fields_in(form: SendHeaderForm, ext: &ExtFields) -> Result<Self, CodecError> {
        // One pass over the map (its keys are unique) instead of a lookup per field; the fields
        // are then parsed in order, so the first error is the one a lookup per field gives.
        let mut texts: [Option<&str>; SEND_FIELD_COUNT] = [None; SEND_FIELD_COUNT];
        for (key, value) in ext.iter() {
            if let Some(index) = form.index_of(key) {
                texts[index] = Some(value);
            }
        }
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n] = *form.names();
        let [ta, tb, tc, td, te, tf, tg, th, ti, tj, tk, tl, tm, tn] = texts;
        Ok(Self {
            producer_group: HeaderField::from_text(a, ta)?,
            topic: HeaderField::from_text(b, tb)?,
            default_topic: HeaderField::from_text(c, tc)?,
            default_topic_queue_nums: HeaderField::from_text(d, td)?,
            queue_id: HeaderField::from_text(e, te)?,
            sys_flag: HeaderField::from_text(f, tf)?,
            born_timestamp: HeaderField::from_text(g, tg)?,
            flag: HeaderField::from_text(h, th)?,
            properties: HeaderField::from_text(i, ti)?,
            reconsume_times: HeaderField::from_text(j, tj)?,
            unit_mode: HeaderField::from_text(k, tk)?,
            max_reconsume_times: HeaderField::from_text(l, tl)?,
            batch: HeaderField::from_text(m, tm)?,
            broker_name: HeaderField::from_text(n, tn)?,
        })
    }

    /// Writes the header into `out` in `form`; `None` fields are left out.
    pub fn to_ext_fields_in(&self, form: SendHeaderForm, out: &mut ExtFields) {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n] = *form.names();
        self.producer_group.write(a, out);
        self.topic.write(b, out);
        self.default_topic.write(c, out);
        self.default_topic_queue_nums.write(d, out);
        self.queue_id.write(e, out);
        self.sys_flag.write(f, out);
        self.born_timestamp.write(g, out);
        self.flag.write(h, out);
        self.properties.write(i, out);
        self.reconsume_times.write(j, out);
        self.unit_mode.write(k, out);
        self.max_reconsume_times.write(l, out);
        self.batch.write(m, out);
        self.broker_name.write(n, out);
    }

    /// The header as a fresh extFields map in `form`.
    #[must_use]
    pub fn to_ext_in(&self, form: SendHeaderForm) -> ExtFields {
        let mut out = ExtFields::new();
        self.to_ext_fields_in(form, &mut out);
        out
    }

    /// Whether the broker takes the batch path (`m` / `batch` is true).
    #[must_use]
    pub fn is_batch(&self) -> bool {
        self.batch == Some(true)
    }

    /// `reconsumeTimes`, 0 when absent (Java getter).
    #[must_use]
    pub fn reconsume_times_or_zero(&self) -> i32 {
        self.reconsume_times.unwrap_or(0)
    }

    /// The required field names of `form`, in order (`a`..`h` or their long names).
    #[must_use]
    pub fn required_names(form: SendHeaderForm) -> &'static [&'static str] {
        &form.names()[..SEND_REQUIRED_COUNT]
    }
}

/// Value of `MSG_REGION` when the broker has no region configured (Java `regionId` default).
pub const DEFAULT_REGION: &str = "DefaultRegion";

command_header! {
    /// Send response header (codes 10/310/320/325 replies). `MSG_REGION` and `TRACE_ON` are
    /// always written: the Java client reads response extFields unconditionally.
    pub struct SendMessageResponseHeader {
        /// Offset message id of the stored message (batch: all ids joined by `,`).
        pub msg_id: String = "msgId",
        /// Queue actually used.
        pub queue_id: i32 = "queueId",
        /// ConsumeQueue offset (the first one, for a batch).
        pub queue_offset: i64 = "queueOffset",
        /// The message's `UNIQ_KEY`.
        pub transaction_id: Option<String> = "transactionId",
        /// 5.x inner-batch id.
        pub batch_uniq_id: Option<String> = "batchUniqId",
        /// 5.3 recall handle.
        pub recall_handle: Option<String> = "recallHandle",
        /// Broker region.
        pub msg_region: String = "MSG_REGION" or String::from(DEFAULT_REGION),
        /// Broker trace switch (Java `traceOn`, default true).
        pub trace_on: bool = "TRACE_ON" or true,
    }
}

command_header! {
    /// CONSUMER_SEND_MSG_BACK (36) request; no response header.
    pub struct ConsumerSendMsgBackRequestHeader {
        /// CommitLog physical offset of the original message.
        pub offset: i64 = "offset",
        /// Consumer group.
        pub group: String = "group",
        /// 0 = broker chooses, > 0 explicit level, < 0 straight to DLQ.
        pub delay_level: i32 = "delayLevel",
        /// The message's msgId.
        pub origin_msg_id: Option<String> = "originMsgId",
        /// Original topic.
        pub origin_topic: Option<String> = "originTopic",
        /// Unit mode (Java primitive, default false).
        pub unit_mode: bool = "unitMode" or false,
        /// Client's reconsume limit.
        pub max_reconsume_times: Option<i32> = "maxReconsumeTimes",
        /// Broker name.
        pub broker_name: Option<String> = "bname",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::header::testing::ArbField;
    use crate::codec::header::CommandHeader;

    header_round_trip! {
        send_message_response: SendMessageResponseHeader,
        consumer_send_msg_back_request: ConsumerSendMsgBackRequestHeader,
    }

    fn arb_send() -> impl Strategy<Value = SendMessageRequestHeader> {
        let required = (
            String::arb(),
            String::arb(),
            String::arb(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<i64>(),
            any::<i32>(),
        );
        let optional = (
            Option::<String>::arb(),
            Option::<i32>::arb(),
            Option::<bool>::arb(),
            Option::<i32>::arb(),
            Option::<bool>::arb(),
            Option::<String>::arb(),
        );
        (required, optional).prop_map(|((a, b, c, d, e, f, g, h), (i, j, k, l, m, n))| {
            SendMessageRequestHeader {
                producer_group: a,
                topic: b,
                default_topic: c,
                default_topic_queue_nums: d,
                queue_id: e,
                sys_flag: f,
                born_timestamp: g,
                flag: h,
                properties: i,
                reconsume_times: j,
                unit_mode: k,
                max_reconsume_times: l,
                batch: m,
                broker_name: n,
            }
        })
    }

    proptest! {
        #[test]
        fn send_request_round_trips_in_both_forms(header in arb_send()) {
            for form in [SendHeaderForm::V1, SendHeaderForm::V2] {
                let ext = header.to_ext_in(form);
                prop_assert_eq!(
                    SendMessageRequestHeader::from_ext_fields_in(form, &ext),
                    Ok(header.clone())
                );
                for name in SendMessageRequestHeader::required_names(form) {
                    let mut without = ext.clone();
                    without.remove(name);
                    prop_assert_eq!(
                        SendMessageRequestHeader::from_ext_fields_in(form, &without),
                        Err(CodecError::MissingField(name))
                    );
                }
            }
            let v2 = header.to_ext_in(SendHeaderForm::V2);
            prop_assert_eq!(
                SendMessageRequestHeader::decode_for_code(RequestCode::SendBatchMessage, &v2),
                Ok(header.clone())
            );
        }
    }

    /// The decode before the single pass: one map lookup per field, in field order.
    fn decode_by_lookup(
        form: SendHeaderForm,
        ext: &ExtFields,
    ) -> Result<SendMessageRequestHeader, CodecError> {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n] = *form.names();
        Ok(SendMessageRequestHeader {
            producer_group: HeaderField::read(ext, a)?,
            topic: HeaderField::read(ext, b)?,
            default_topic: HeaderField::read(ext, c)?,
            default_topic_queue_nums: HeaderField::read(ext, d)?,
            queue_id: HeaderField::read(ext, e)?,
            sys_flag: HeaderField::read(ext, f)?,
            born_timestamp: HeaderField::read(ext, g)?,
            flag: HeaderField::read(ext, h)?,
            properties: HeaderField::read(ext, i)?,
            reconsume_times: HeaderField::read(ext, j)?,
            unit_mode: HeaderField::read(ext, k)?,
            max_reconsume_times: HeaderField::read(ext, l)?,
            batch: HeaderField::read(ext, m)?,
            broker_name: HeaderField::read(ext, n)?,
        })
    }

    /// Maps that start empty or from a valid header in either form, then get keys of either
    /// form, near misses and others, with values that parse, fail to parse, are blank or are
    /// padded.
    fn arb_ext() -> impl Strategy<Value = ExtFields> {
        let key = prop_oneof![
            prop::sample::select(SEND_NAMES_V1.to_vec()).prop_map(str::to_owned),
            prop::sample::select(SEND_NAMES_V2.to_vec()).prop_map(str::to_owned),
            "[a-p]{0,2}",
            "[A-Za-z]{1,14}",
        ];
        let value = prop_oneof![
            "-?[0-9]{1,20}",
            Just(String::new()),
            Just(" 7 ".to_owned()),
            Just("true".to_owned()),
            Just("TRUE".to_owned()),
            any::<String>(),
        ];
        let start = prop_oneof![Just(None), (arb_send(), any::<bool>()).prop_map(Some),];
        let pairs = prop::collection::vec((key, value), 0..24);
        (start, pairs).prop_map(|(start, pairs)| {
            let mut ext = match start {
                None => ExtFields::new(),
                Some((header, long_names)) => header.to_ext_in(if long_names {
                    SendHeaderForm::V1
                } else {
                    SendHeaderForm::V2
                }),
            };
            for (key, value) in pairs {
                ext.insert(key, value);
            }
            ext
        })
    }

    proptest! {
        #[test]
        fn single_pass_decode_equals_a_lookup_per_field(ext in arb_ext()) {
            for form in [SendHeaderForm::V1, SendHeaderForm::V2] {
                prop_assert_eq!(
                    SendMessageRequestHeader::from_ext_fields_in(form, &ext),
                    decode_by_lookup(form, &ext)
                );
            }
        }
    }

    #[test]
    fn v2_names_are_the_letters_a_to_n() {
        for (index, name) in SEND_NAMES_V2.iter().enumerate() {
            let letter = char::from(b'a' + u8::try_from(index).expect("14 fields"));
            assert_eq!(*name, letter.to_string());
            assert_eq!(SendHeaderForm::V2.index_of(name), Some(index));
        }
        for (index, name) in SEND_NAMES_V1.iter().enumerate() {
            assert_eq!(SendHeaderForm::V1.index_of(name), Some(index));
            assert_eq!(SendHeaderForm::V2.index_of(name), None);
        }
        for key in ["", "o", "A", "ab", "brokerName"] {
            assert_eq!(SendHeaderForm::V1.index_of(key), None);
            assert_eq!(SendHeaderForm::V2.index_of(key), None);
        }
    }

    #[test]
    fn form_follows_request_code() {
        assert_eq!(
            SendHeaderForm::for_request_code(RequestCode::SendMessage),
            Some(SendHeaderForm::V1)
        );
        for code in [310, 320, 325] {
            assert_eq!(
                SendHeaderForm::for_request_code(RequestCode::from_value(code)),
                Some(SendHeaderForm::V2)
            );
        }
        assert_eq!(
            SendHeaderForm::for_request_code(RequestCode::PullMessage),
            None
        );
        assert!(matches!(
            SendMessageRequestHeader::decode_for_code(RequestCode::PullMessage, &ExtFields::new()),
            Err(CodecError::InvalidField { field: "code", .. })
        ));
    }

    #[test]
    fn response_always_carries_region_and_trace() {
        let header = SendMessageResponseHeader {
            msg_id: "0A00000100002A9F0000000000000000".into(),
            queue_id: 1,
            queue_offset: 7,
            ..SendMessageResponseHeader::default()
        };
        let ext = header.to_ext();
        assert_eq!(ext.get("MSG_REGION"), Some("DefaultRegion"));
        assert_eq!(ext.get("TRACE_ON"), Some("true"));
        assert!(!ext.contains_key("transactionId"));
        assert_eq!(ext.len(), 5);
    }
}
