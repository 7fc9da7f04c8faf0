//! Codec micro-benchmarks: encode and decode of whole remoting frames (frame words, header,
//! body) for the three shapes that dominate broker traffic:
//! - `send_v2_json`: SEND_MESSAGE_V2 request, 13 short-key extFields, 1 KiB body, JSON header;
//! - `send_v2_binary`: the same command with the ROCKETMQ binary header;
//! - `send_result_json`: the small SEND_MESSAGE response (send result header, no body).
//!
//! - `decode_typed` (send requests): what the broker does first with a send frame, the
//!   zero-copy frame decode plus the typed send header read from its extFields.
//!
//! Throughput is reported per frame byte; frames/s is 1 / time per iteration.
//! Run: `cargo bench -p rmq-bench --bench codec`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rmq_net::codec::codes::{LanguageCode, SerializeType};
use rmq_net::codec::command::FLAG_RESPONSE;
use rmq_net::codec::frame;
use rmq_net::codec::header::send::SendMessageRequestHeader;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::{ExtFields, RemotingCommand};

/// Body size of the send request.
const SEND_BODY_SIZE: usize = 1024;

fn ext(pairs: &[(&str, &str)]) -> ExtFields {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// A SEND_MESSAGE_V2 as a Java 5.x producer sends it (PROTOCOL.md §1.4 example).
fn send_v2_request(serialize_type: SerializeType) -> RemotingCommand {
    let properties = "TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}\
                      7F0000010B5C18B4AAC2763A1C2D0000\u{2}KEYS\u{1}order-000042\u{2}";
    RemotingCommand {
        code: 310,
        language: LanguageCode::Java,
        version: 479,
        opaque: 1_234_567,
        flag: 0,
        remark: None,
        ext_fields: ext(&[
            ("a", "please_rename_unique_group_name"),
            ("b", "TopicTest"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "3"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "0"),
            ("i", properties),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", "broker-a"),
        ]),
        body: Bytes::from(vec![b'x'; SEND_BODY_SIZE]),
        serialize_type,
    }
}

/// The broker's SEND_MESSAGE response: SUCCESS with the send-result header fields.
fn send_result_response() -> RemotingCommand {
    RemotingCommand {
        code: 0,
        language: LanguageCode::Java,
        version: 479,
        opaque: 1_234_567,
        flag: FLAG_RESPONSE,
        remark: None,
        ext_fields: ext(&[
            ("msgId", "7F00000100002A9F0000000000001F40"),
            ("queueId", "3"),
            ("queueOffset", "1042"),
            ("MSG_REGION", "DefaultRegion"),
            ("TRACE_ON", "true"),
        ]),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    }
}

fn bench_command(c: &mut Criterion, name: &str, command: &RemotingCommand) {
    let limits = FrameLimits::default();
    let encoded = frame::encode_to_bytes(command).expect("benchmark command encodes");
    let (decoded, _) = frame::decode(&encoded, &limits)
        .expect("benchmark frame decodes")
        .expect("complete");
    assert_eq!(&decoded, command, "benchmark command must round-trip");

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    let mut out = BytesMut::with_capacity(encoded.len() * 2);
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            frame::encode(black_box(command), &mut out).expect("encodes");
            black_box(out.len())
        });
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            let decoded = frame::decode(black_box(&encoded), &limits)
                .expect("decodes")
                .expect("complete");
            black_box(decoded)
        });
    });
    group.finish();
}

/// What the broker does with a send frame before it plans the send: the frame decode
/// (header into extFields, body shared) and the typed send header read from the extFields.
fn bench_send_decode(c: &mut Criterion, name: &str, command: &RemotingCommand) {
    let limits = FrameLimits::default();
    let encoded = frame::encode_to_bytes(command).expect("benchmark command encodes");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("decode_typed", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&black_box(&encoded)[..]);
            let decoded = frame::decode_from(&mut buf, &limits)
                .expect("decodes")
                .expect("complete");
            let header = SendMessageRequestHeader::decode_for_code(
                decoded.request_code(),
                &decoded.ext_fields,
            )
            .expect("a send header");
            black_box((decoded, header))
        });
    });
    // The typed header alone, from extFields already decoded.
    let mut buf = BytesMut::from(&encoded[..]);
    let decoded = frame::decode_from(&mut buf, &limits)
        .expect("decodes")
        .expect("complete");
    group.bench_function("header_from_ext", |b| {
        b.iter(|| {
            SendMessageRequestHeader::decode_for_code(
                black_box(decoded.request_code()),
                black_box(&decoded.ext_fields),
            )
            .expect("a send header")
        });
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_send_decode(c, "send_v2_json", &send_v2_request(SerializeType::Json));
    bench_send_decode(
        c,
        "send_v2_binary",
        &send_v2_request(SerializeType::RocketMq),
    );
    bench_command(c, "send_v2_json", &send_v2_request(SerializeType::Json));
    bench_command(
        c,
        "send_v2_binary",
        &send_v2_request(SerializeType::RocketMq),
    );
    bench_command(c, "send_result_json", &send_result_response());
}

criterion_group!(benches, codec);
criterion_main!(benches);
