//! Property tests for the HA codec: `decode(encode(x)) == x` for every valid frame, decoded
//! frames re-encode to the exact bytes they came from, a stream split at every byte decodes
//! the same frames (`None` until each is whole, nothing consumed meanwhile), arbitrary and
//! mutated bytes never panic and never yield a frame that breaks the field rules.
//! Uses only the public API.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use rmq_net::ha::limits::{HA_HEADER_SIZE, HA_NAME_SIZE_MAX, HA_OFFSET_MAX};
use rmq_net::ha::{
    decode, encode, peek_header, Ack, Body, Data, EntrySummary, Frame, HaCodecError, Hello, Probe,
    ProbeReply, RefuseReason, Welcome,
};

/// Offsets biased toward the edges: 0, small, segment-sized, near `i64::MAX`.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0_u64),
        3 => 0_u64..1 << 20,
        3 => 0_u64..1 << 56,
        1 => (HA_OFFSET_MAX - (1 << 34))..=HA_OFFSET_MAX,
    ]
}

/// A text of at most `bytes_max` UTF-8 bytes (multi-byte characters included).
fn text(chars_min: usize, bytes_max: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        3 => proptest::char::range('a', 'z'),
        1 => select(vec!['-', '_', '%', 'é', '中', '🎉', '\u{0}']),
        1 => any::<char>(),
    ];
    vec(chars, chars_min..=bytes_max / 4).prop_map(String::from_iter)
}

fn entry_ending_at(end: u64) -> impl Strategy<Value = Option<EntrySummary>> {
    let size_max = u32::try_from(end.min(u64::from(u32::MAX))).expect("clamped");
    if size_max == 0 {
        return Just(None).boxed();
    }
    proptest::option::of((1..=size_max, any::<u32>(), any::<u32>()).prop_map(
        move |(size, generation, crc)| EntrySummary {
            offset: end - u64::from(size),
            size,
            generation,
            crc,
        },
    ))
    .boxed()
}

/// (offset, offset + size <= HA_OFFSET_MAX).
fn entry_at(offset: u64) -> impl Strategy<Value = EntrySummary> {
    let room = (HA_OFFSET_MAX - offset).min(u64::from(u32::MAX));
    let size_max = u32::try_from(room).expect("clamped").max(1);
    (1..=size_max, any::<u32>(), any::<u32>()).prop_map(move |(size, generation, crc)| {
        EntrySummary {
            offset: offset.min(HA_OFFSET_MAX - u64::from(size)),
            size,
            generation,
            crc,
        }
    })
}

fn hello() -> impl Strategy<Value = (u16, Hello)> {
    (
        (
            any::<u16>(),
            1_u16..=u16::MAX,
            1_u64..=HA_OFFSET_MAX,
            any::<u64>(),
        ),
        offset().prop_flat_map(|end| (Just(end), 0..=end, entry_ending_at(end))),
        text(1, HA_NAME_SIZE_MAX),
        prop_oneof![
            text(1, HA_NAME_SIZE_MAX),
            Just("b".repeat(HA_NAME_SIZE_MAX))
        ],
    )
        .prop_flat_map(
            |((protocol_version, shard_count, segment_size, id), (end, durable, entry), c, b)| {
                let hello = Hello {
                    protocol_version,
                    shard_count,
                    segment_size,
                    slave_broker_id: id,
                    appended_end: end,
                    durable_end: durable,
                    last_entry: entry,
                    cluster_name: c,
                    broker_name: b,
                };
                (0..shard_count, Just(hello))
            },
        )
}

fn refuse_reason() -> impl Strategy<Value = RefuseReason> {
    prop_oneof![
        select(RefuseReason::NAMED.to_vec()),
        prop_oneof![Just(0_u16), 11_u16..=u16::MAX].prop_map(RefuseReason::Other),
    ]
}

fn welcome() -> impl Strategy<Value = Welcome> {
    prop_oneof![
        offset().prop_flat_map(|end| (0..=end).prop_map(move |start| Welcome::Accept {
            start_offset: start,
            master_appended_end: end,
        })),
        offset().prop_map(|to| Welcome::Truncate { to }),
        (refuse_reason(), text(0, 1024))
            .prop_map(|(reason, text)| Welcome::Refused { reason, text }),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    (vec(any::<u8>(), 0..2048), offset()).prop_flat_map(|(bytes, start)| {
        let start = start.min(HA_OFFSET_MAX - bytes.len() as u64);
        let end = start + bytes.len() as u64;
        (end..=HA_OFFSET_MAX).prop_map(move |master_end| Data {
            start_offset: start,
            master_appended_end: master_end,
            bytes: Bytes::from(bytes.clone()),
        })
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        welcome().prop_map(Body::Welcome),
        data().prop_map(Body::Data),
        offset().prop_flat_map(|end| (Just(end), 0..=end)).prop_map(
            |(appended_end, durable_end)| Body::Ack(Ack {
                appended_end,
                durable_end
            })
        ),
        offset().prop_map(|offset| Body::Probe(Probe { offset })),
        offset()
            .prop_flat_map(|offset| (Just(offset), proptest::option::of(entry_at(offset))))
            .prop_map(|(offset, entry)| {
                let offset = entry.map_or(offset, |e| e.offset);
                Body::ProbeReply(ProbeReply { offset, entry })
            }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => hello().prop_map(|(shard_id, hello)| Frame { shard_id, body: Body::Hello(hello) }),
        5 => (any::<u16>(), body()).prop_map(|(shard_id, body)| Frame { shard_id, body }),
    ]
}

fn encoded(frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        encode(frame, &mut out).expect("generated frames are valid");
    }
    out
}

/// Decodes every whole frame from the front of `buf`.
fn drain(buf: &mut BytesMut) -> Result<Vec<Frame>, HaCodecError> {
    let mut frames = Vec::new();
    while let Some(frame) = decode(buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frames_round_trip_to_the_same_bytes(frames in vec(frame(), 1..6)) {
        let bytes = encoded(&frames);
        let mut buf = bytes.clone();
        let decoded = drain(&mut buf).expect("valid stream");
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&decoded, &frames);
        prop_assert_eq!(encoded(&decoded), bytes, "canonical: re-encoding gives the same bytes");
    }

    /// The stream arrives in two reads split at every byte: nothing is consumed until a frame
    /// is whole, and the frames come out the same.
    #[test]
    fn a_stream_split_at_every_byte_decodes_the_same(frames in vec(frame(), 1..4)) {
        let bytes = encoded(&frames);
        for split in 0..=bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut decoded = drain(&mut buf).expect("a prefix of a valid stream");
            let consumed: usize = decoded.iter().map(|f| encoded(std::slice::from_ref(f)).len()).sum();
            prop_assert_eq!(buf.len(), split - consumed, "a partial frame stays buffered");
            buf.extend_from_slice(&bytes[split..]);
            decoded.extend(drain(&mut buf).expect("the rest"));
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&decoded, &frames);
        }
    }

    /// Byte by byte, as the slowest socket would deliver.
    #[test]
    fn a_stream_fed_one_byte_at_a_time_decodes_the_same(frames in vec(frame(), 1..3)) {
        let bytes = encoded(&frames);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in bytes.iter() {
            buf.extend_from_slice(&[*byte]);
            decoded.extend(drain(&mut buf).expect("valid stream"));
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let before = buf.len();
        match decode(&mut buf) {
            Ok(Some(frame)) => {
                prop_assert!(frame.check().is_ok());
                let used = before - buf.len();
                prop_assert_eq!(&encoded(&[frame])[..], &bytes[..used]);
            }
            Ok(None) | Err(_) => prop_assert_eq!(buf.len(), before),
        }
    }

    /// Arbitrary payloads behind a valid header and CRC, so every payload decoder sees them.
    #[test]
    fn arbitrary_payloads_never_panic(type_byte in 1_u8..=6, shard in any::<u16>(), payload in vec(any::<u8>(), 0..700)) {
        let mut header = BytesMut::new();
        header.extend_from_slice(b"RMHA");
        header.extend_from_slice(&[1, type_byte]);
        header.extend_from_slice(&shard.to_be_bytes());
        header.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header), &payload);
        header.extend_from_slice(&crc.to_be_bytes());
        header.extend_from_slice(&payload);
        let frame_bytes = header.clone();
        match decode(&mut header) {
            Ok(Some(frame)) => {
                prop_assert!(frame.check().is_ok());
                prop_assert_eq!(encoded(&[frame]), frame_bytes);
            }
            Ok(None) => prop_assert!(false, "a whole frame is never incomplete"),
            Err(_) => prop_assert_eq!(header, frame_bytes),
        }
    }

    /// One changed byte anywhere in a frame is an error or an incomplete frame (a larger
    /// length), never a different frame.
    #[test]
    fn a_changed_byte_never_passes(frame in frame(), position in any::<prop::sample::Index>(), delta in 1_u8..=255) {
        let mut bytes = encoded(std::slice::from_ref(&frame));
        let at = position.index(bytes.len());
        bytes[at] = bytes[at].wrapping_add(delta);
        match decode(&mut bytes) {
            Ok(Some(other)) => prop_assert!(false, "byte {} changed, decoded {:?}", at, other),
            Ok(None) => prop_assert!((8..12).contains(&at), "only a length change is incomplete"),
            Err(_) => {}
        }
    }

    #[test]
    fn the_header_alone_tells_the_frame_size(frame in frame()) {
        let bytes = encoded(std::slice::from_ref(&frame));
        let header = peek_header(&bytes[..HA_HEADER_SIZE]).expect("valid").expect("complete");
        prop_assert_eq!(header.frame_size(), bytes.len());
        prop_assert_eq!(header.frame_type, frame.body.frame_type());
        prop_assert_eq!(header.shard_id, frame.shard_id);
    }
}
