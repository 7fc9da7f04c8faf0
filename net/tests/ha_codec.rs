//! The HA codec through its public API: golden frames (bytes computed independently of this
//! crate, pinning the layout of `docs/replication-protocol.md`), every error the decoder and
//! encoder report, limits checked from the header alone, buffers left untouched on error, and
//! a Data frame's bytes shared with the read buffer.

use bytes::{BufMut, Bytes, BytesMut};
use rmq_net::ha::limits::{
    HA_CONTROL_PAYLOAD_SIZE_MAX, HA_DATA_BYTES_MAX, HA_HEADER_SIZE, HA_NAME_SIZE_MAX,
    HA_OFFSET_MAX, HA_PAYLOAD_SIZE_MAX, HA_REFUSE_TEXT_SIZE_MAX,
};
use rmq_net::ha::{
    decode, encode, encode_data_prefix, peek_header, Ack, Body, Data, EntrySummary, Frame,
    FrameType, HaCodecError, Hello, Probe, ProbeReply, RefuseReason, Sender, Welcome,
    HA_FRAMING_VERSION, HA_MAGIC, HA_PROTOCOL_VERSION,
};

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn encoded(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode(frame, &mut out).expect("valid frame");
    out
}

/// A frame with any header bytes and payload, with a correct CRC unless the test breaks it.
fn raw_frame(type_byte: u8, shard_id: u16, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u32(HA_MAGIC);
    out.put_u8(HA_FRAMING_VERSION);
    out.put_u8(type_byte);
    out.put_u16(shard_id);
    out.put_u32(u32::try_from(payload.len()).expect("test payloads are small"));
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..12]), payload);
    out.put_u32(crc);
    out.put_slice(payload);
    out
}

/// Decodes `bytes` expecting an error; checks the buffer was not consumed.
fn decode_err(bytes: &[u8]) -> HaCodecError {
    let mut buf = BytesMut::from(bytes);
    let err = decode(&mut buf).expect_err("must be refused");
    assert_eq!(&buf[..], bytes, "an error leaves the buffer as it was");
    err
}

fn hello() -> Hello {
    Hello {
        protocol_version: HA_PROTOCOL_VERSION,
        shard_count: 4,
        segment_size: 16 * 1024 * 1024,
        slave_broker_id: 1,
        appended_end: 0x200,
        durable_end: 0x100,
        last_entry: Some(EntrySummary {
            offset: 0x180,
            size: 0x80,
            generation: 7,
            crc: 0xDEAD_BEEF,
        }),
        cluster_name: "DefaultCluster".into(),
        broker_name: "broker-a".into(),
    }
}

fn u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[test]
fn golden_frames_match_the_documented_layout() {
    let ack = Frame {
        shard_id: 3,
        body: Body::Ack(Ack {
            appended_end: 0x1000,
            durable_end: 0x800,
        }),
    };
    let ack_bytes = unhex("524d4841010400030000001096fc4ddb00000000000010000000000000000800");
    assert_eq!(&encoded(&ack)[..], &ack_bytes[..]);
    let hello_frame = Frame {
        shard_id: 2,
        body: Body::Hello(hello()),
    };
    let hello_bytes = unhex(concat!(
        "524d4841010100020000005117c11609",
        "000100040000000001000000",
        "0000000000000001",
        "0000000000000200",
        "0000000000000100",
        "01000000000000018000000080",
        "00000007deadbeef",
        "0e44656661756c74436c7573746572",
        "0862726f6b65722d61"
    ));
    assert_eq!(&encoded(&hello_frame)[..], &hello_bytes[..]);
    let data = Frame {
        shard_id: 0,
        body: Body::Data(Data {
            start_offset: 0x200,
            master_appended_end: 0x400,
            bytes: Bytes::from_static(b"abc"),
        }),
    };
    let data_bytes =
        unhex("524d484101030000000000134cf27a1400000000000002000000000000000400616263");
    assert_eq!(&encoded(&data)[..], &data_bytes[..]);
    for (frame, bytes) in [
        (ack, ack_bytes),
        (hello_frame, hello_bytes),
        (data, data_bytes),
    ] {
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(decode(&mut buf), Ok(Some(frame)));
        assert!(buf.is_empty());
    }
}

#[test]
fn frame_types_have_fixed_codes_and_senders() {
    let expected = [
        (FrameType::Hello, 1, Sender::Slave),
        (FrameType::Welcome, 2, Sender::Master),
        (FrameType::Data, 3, Sender::Master),
        (FrameType::Ack, 4, Sender::Slave),
        (FrameType::Probe, 5, Sender::Master),
        (FrameType::ProbeReply, 6, Sender::Slave),
    ];
    for (frame_type, code, sender) in expected {
        assert_eq!(frame_type.code(), code);
        assert_eq!(FrameType::from_code(code), Some(frame_type));
        assert_eq!(frame_type.sender(), sender);
    }
    assert_eq!(FrameType::from_code(0), None);
    assert_eq!(FrameType::from_code(7), None);
    let codes: Vec<u16> = RefuseReason::NAMED.iter().map(|r| r.code()).collect();
    assert_eq!(codes, (1..=10).collect::<Vec<u16>>());
    assert_eq!(RefuseReason::from_code(0), RefuseReason::Other(0));
    assert_eq!(RefuseReason::from_code(11), RefuseReason::Other(11));
}

#[test]
fn header_errors_are_reported_from_sixteen_bytes() {
    let valid = raw_frame(4, 0, &u64s(&[8, 8]));
    let mut bad_magic = valid.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        decode_err(&bad_magic[..HA_HEADER_SIZE]),
        HaCodecError::Magic {
            found: u32::from_be_bytes(*b"XMHA"),
            expected: HA_MAGIC
        }
    );
    // A remoting frame reaching the HA port is refused at once.
    assert!(matches!(
        decode_err(&[0, 0, 0, 20, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),
        HaCodecError::Magic { .. }
    ));
    for version in [0, 2, 255] {
        let mut bytes = valid.clone();
        bytes[4] = version;
        assert_eq!(
            decode_err(&bytes[..HA_HEADER_SIZE]),
            HaCodecError::Version {
                found: version,
                supported: 1
            }
        );
    }
    for type_byte in [0, 7, 255] {
        let bytes = raw_frame(type_byte, 0, &[]);
        assert_eq!(decode_err(&bytes), HaCodecError::FrameType(type_byte));
    }
}

#[test]
fn oversized_payloads_are_refused_before_they_are_buffered() {
    let declare = |type_byte: u8, length: u32| {
        let mut header = raw_frame(type_byte, 0, &[]);
        header[8..12].copy_from_slice(&length.to_be_bytes());
        header
    };
    let control = u32::try_from(HA_CONTROL_PAYLOAD_SIZE_MAX).expect("small");
    let data = u32::try_from(HA_PAYLOAD_SIZE_MAX).expect("fits");
    for frame_type in FrameType::ALL {
        let max = frame_type.payload_size_max();
        assert_eq!(
            max,
            if frame_type == FrameType::Data {
                HA_PAYLOAD_SIZE_MAX
            } else {
                HA_CONTROL_PAYLOAD_SIZE_MAX
            }
        );
        for length in [max + 1, u32::MAX as usize] {
            let header = declare(frame_type.code(), u32::try_from(length).expect("u32"));
            assert_eq!(
                decode_err(&header),
                HaCodecError::PayloadLength {
                    frame_type,
                    length,
                    max
                }
            );
        }
    }
    // At the limit: incomplete, not an error (the reader may buffer that much).
    for (type_byte, length) in [(1, control), (3, data)] {
        let header = declare(type_byte, length);
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(decode(&mut buf), Ok(None));
        let peeked = peek_header(&header)
            .expect("valid")
            .expect("complete header");
        assert_eq!(peeked.frame_size(), HA_HEADER_SIZE + length as usize);
    }
    for len in 0..HA_HEADER_SIZE {
        assert_eq!(peek_header(&header_prefix()[..len]), Ok(None));
    }
}

fn header_prefix() -> BytesMut {
    raw_frame(4, 0, &u64s(&[8, 8]))
}

#[test]
fn any_flipped_bit_fails_the_crc() {
    let frame = encoded(&Frame {
        shard_id: 1,
        body: Body::Hello(hello()),
    });
    // Shard id, CRC field and every payload byte: a flipped bit is a CRC mismatch.
    let positions = (6..8).chain(12..frame.len());
    for position in positions {
        let mut bytes = frame.clone();
        bytes[position] ^= 0x10;
        assert!(
            matches!(decode_err(&bytes), HaCodecError::Crc { .. }),
            "byte {position}"
        );
    }
}

#[test]
fn payload_shape_errors() {
    // Ack: 16 bytes exactly.
    assert!(matches!(
        decode_err(&raw_frame(4, 0, &[0; 15])),
        HaCodecError::Truncated {
            frame_type: FrameType::Ack,
            need: 8,
            have: 7,
            ..
        }
    ));
    assert_eq!(
        decode_err(&raw_frame(4, 0, &[0; 17])),
        HaCodecError::TrailingBytes {
            frame_type: FrameType::Ack,
            extra: 1
        }
    );
    // Probe with trailing bytes; an empty Data payload.
    assert!(matches!(
        decode_err(&raw_frame(5, 0, &[0; 9])),
        HaCodecError::TrailingBytes { extra: 1, .. }
    ));
    assert!(matches!(
        decode_err(&raw_frame(3, 0, &[])),
        HaCodecError::Truncated {
            frame_type: FrameType::Data,
            ..
        }
    ));
    // Unknown Welcome kind; an entry flag that is neither 0 nor 1.
    assert_eq!(
        decode_err(&raw_frame(2, 0, &[3])),
        HaCodecError::Tag {
            what: "Welcome kind",
            value: 3
        }
    );
    let mut reply = u64s(&[64]);
    reply.push(2);
    assert_eq!(
        decode_err(&raw_frame(6, 0, &reply)),
        HaCodecError::Tag {
            what: "ProbeReply entry",
            value: 2
        }
    );
}

/// A Hello payload with `mutate` applied to its bytes (offsets from the documented layout).
fn hello_payload(mutate: impl FnOnce(&mut Vec<u8>)) -> BytesMut {
    let frame = encoded(&Frame {
        shard_id: 2,
        body: Body::Hello(hello()),
    });
    let mut payload = frame[HA_HEADER_SIZE..].to_vec();
    mutate(&mut payload);
    raw_frame(1, 2, &payload)
}

#[test]
fn text_errors() {
    // Layout: ... has-entry at 36, entry 37..57, cluster length at 57, cluster 58..72,
    // broker length at 72, broker 73..81.
    let bad_utf8 = hello_payload(|p| p[58] = 0xFF);
    assert_eq!(
        decode_err(&bad_utf8),
        HaCodecError::Utf8 {
            what: "Hello cluster name"
        }
    );
    let empty_broker = hello_payload(|p| {
        p.truncate(73);
        p[72] = 0;
    });
    assert_eq!(
        decode_err(&empty_broker),
        HaCodecError::FieldLength {
            what: "Hello broker name",
            length: 0,
            min: 1,
            max: HA_NAME_SIZE_MAX
        }
    );
    let long_name = hello_payload(|p| p[72] = 9);
    assert!(matches!(
        decode_err(&long_name),
        HaCodecError::Truncated {
            what: "Hello broker name",
            need: 9,
            have: 8,
            ..
        }
    ));
    let mut refusal = vec![2, 0, 1];
    refusal.extend_from_slice(&1025_u16.to_be_bytes());
    refusal.extend(std::iter::repeat_n(b'x', 1025));
    assert_eq!(
        decode_err(&raw_frame(2, 0, &refusal)),
        HaCodecError::FieldLength {
            what: "Welcome refusal text",
            length: 1025,
            min: 0,
            max: HA_REFUSE_TEXT_SIZE_MAX
        }
    );
}

fn invalid_what(bytes: &[u8]) -> &'static str {
    match decode_err(bytes) {
        HaCodecError::Invalid { what, .. } => what,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn field_relation_errors() {
    // Durable past appended (Ack and Hello).
    assert_eq!(invalid_what(&raw_frame(4, 0, &u64s(&[8, 9]))), "Ack");
    assert_eq!(
        invalid_what(&hello_payload(
            |p| p[28..36].copy_from_slice(&0x201_u64.to_be_bytes())
        )),
        "Hello"
    );
    // The last entry does not end at the appended end; an entry of size 0.
    assert_eq!(
        invalid_what(&hello_payload(
            |p| p[45..49].copy_from_slice(&0x40_u32.to_be_bytes())
        )),
        "Hello last entry"
    );
    assert_eq!(
        invalid_what(&hello_payload(|p| p[45..49].copy_from_slice(&[0; 4]))),
        "Hello last entry"
    );
    // Shard count 0; segment size 0; the header's shard id not below the shard count.
    assert_eq!(
        invalid_what(&hello_payload(|p| p[2..4].copy_from_slice(&[0, 0]))),
        "Hello shard count"
    );
    assert_eq!(
        invalid_what(&hello_payload(|p| p[4..12].copy_from_slice(&[0; 8]))),
        "Hello segment size"
    );
    let payload = hello_payload(|_| {})[HA_HEADER_SIZE..].to_vec();
    assert_eq!(invalid_what(&raw_frame(1, 4, &payload)), "Hello shard id");
    // Offsets past i64::MAX.
    assert_eq!(
        invalid_what(&raw_frame(5, 0, &u64s(&[HA_OFFSET_MAX + 1]))),
        "Probe offset"
    );
    assert_eq!(invalid_what(&raw_frame(4, 0, &u64s(&[u64::MAX, 0]))), "Ack");
    // Data past the master's end.
    let mut data = u64s(&[10, 12]);
    data.extend_from_slice(b"abc");
    assert_eq!(invalid_what(&raw_frame(3, 0, &data)), "Data");
    // Accept starting past the master's end.
    let mut accept = vec![0];
    accept.extend(u64s(&[11, 10]));
    assert_eq!(invalid_what(&raw_frame(2, 0, &accept)), "Welcome start");
    // A probe reply describing another offset.
    let mut reply = u64s(&[64]);
    reply.push(1);
    reply.extend(u64s(&[80]));
    reply.extend([0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(invalid_what(&raw_frame(6, 0, &reply)), "ProbeReply entry");
}

#[test]
fn encode_refuses_invalid_frames_and_writes_nothing() {
    let mut long_name = hello();
    long_name.broker_name = "b".repeat(HA_NAME_SIZE_MAX + 1);
    let mut behind = hello();
    behind.durable_end = behind.appended_end + 1;
    let refusals = [
        Frame {
            shard_id: 0,
            body: Body::Hello(long_name),
        },
        Frame {
            shard_id: 0,
            body: Body::Hello(behind),
        },
        Frame {
            shard_id: 9,
            body: Body::Hello(hello()),
        },
        Frame {
            shard_id: 0,
            body: Body::Welcome(Welcome::Refused {
                reason: RefuseReason::Other(3),
                text: String::new(),
            }),
        },
        Frame {
            shard_id: 0,
            body: Body::Welcome(Welcome::Refused {
                reason: RefuseReason::Busy,
                text: "x".repeat(HA_REFUSE_TEXT_SIZE_MAX + 1),
            }),
        },
        Frame {
            shard_id: 0,
            body: Body::Data(Data {
                start_offset: 0,
                master_appended_end: HA_OFFSET_MAX,
                bytes: Bytes::from(vec![0; HA_DATA_BYTES_MAX + 1]),
            }),
        },
        Frame {
            shard_id: 0,
            body: Body::ProbeReply(ProbeReply {
                offset: 5,
                entry: Some(EntrySummary {
                    offset: 5,
                    size: 0,
                    generation: 1,
                    crc: 1,
                }),
            }),
        },
    ];
    for frame in refusals {
        let mut out = BytesMut::from(&b"kept"[..]);
        assert!(encode(&frame, &mut out).is_err(), "{frame:?}");
        assert_eq!(&out[..], b"kept");
    }
    let mut out = BytesMut::new();
    assert!(encode_data_prefix(0, 10, 12, b"abc", &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn a_full_data_frame_round_trips_without_copying_its_bytes() {
    let bytes: Bytes = (0..HA_DATA_BYTES_MAX).map(|i| (i % 251) as u8).collect();
    let frame = Frame {
        shard_id: 7,
        body: Body::Data(Data {
            start_offset: 1 << 40,
            master_appended_end: (1 << 40) + HA_DATA_BYTES_MAX as u64,
            bytes: bytes.clone(),
        }),
    };
    let mut buf = encoded(&frame);
    assert_eq!(buf.len(), HA_HEADER_SIZE + HA_PAYLOAD_SIZE_MAX);
    buf.extend_from_slice(&encoded(&Frame {
        shard_id: 7,
        body: Body::Probe(Probe { offset: 3 }),
    }));
    let base = buf.as_ptr() as usize;
    let decoded = decode(&mut buf).expect("valid").expect("complete");
    let Body::Data(data) = &decoded.body else {
        panic!("a Data frame")
    };
    assert_eq!(
        data.bytes.as_ptr() as usize,
        base + HA_HEADER_SIZE + 16,
        "no copy"
    );
    assert_eq!(data.end_offset(), data.master_appended_end);
    assert_eq!(decoded, frame);
    assert_eq!(
        decode(&mut buf),
        Ok(Some(Frame {
            shard_id: 7,
            body: Body::Probe(Probe { offset: 3 })
        }))
    );
    assert!(buf.is_empty());
}

#[test]
fn the_data_prefix_plus_the_bytes_is_the_whole_frame() {
    let data = Data {
        start_offset: 100,
        master_appended_end: 200,
        bytes: Bytes::from_static(b"log bytes"),
    };
    let mut prefix = BytesMut::new();
    encode_data_prefix(5, 100, 200, &data.bytes, &mut prefix).expect("valid");
    prefix.extend_from_slice(&data.bytes);
    let whole = encoded(&Frame {
        shard_id: 5,
        body: Body::Data(data),
    });
    assert_eq!(prefix, whole);
}
