//! ACL micro-benchmark: what `aclEnable=true` adds to every request on the accepting shard,
//! dominated by the HMAC-SHA1 verification of the signature over the extFields values and the
//! body (`rmq_net::codec::acl_sign::verify`), for a SEND_MESSAGE_V2 as ali-ons signs it with
//! 128 B, 1 KiB and 16 KiB bodies. Throughput is per signed byte (values + body).
//! Run: `cargo bench -p rmq-bench --bench acl`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rmq_net::codec::acl_sign::{self, Credentials};
use rmq_net::codec::codes::RequestCode;
use rmq_net::{ExtFields, RemotingCommand};

/// Body sizes measured.
const BODY_SIZES: [usize; 3] = [128, 1024, 16 * 1024];

/// A SEND_MESSAGE_V2 header as ali-ons sends it (fields a..k), signed like ali-ons.
fn signed_send(body_size: usize) -> RemotingCommand {
    let fields: ExtFields = [
        ("a", "acl_pg"),
        ("b", "AclOpen"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "1"),
        ("f", "0"),
        ("g", "1733500000000"),
        ("h", "0"),
        ("i", "TAGS\u{1}TagA\u{2}KEYS\u{1}order-000042\u{2}"),
        ("j", "0"),
        ("k", "false"),
        ("OnsChannel", "ALIYUN"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let mut request = RemotingCommand::request(RequestCode::SendMessageV2, fields)
        .with_body(vec![7_u8; body_size]);
    acl_sign::sign(
        &mut request,
        &Credentials {
            access_key: "aliProducer".into(),
            secret_key: "ali-producer-secret".into(),
            security_token: None,
        },
    );
    request
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("acl_verify_send_v2");
    for body_size in BODY_SIZES {
        let request = signed_send(body_size);
        let claimed = request.ext("Signature").expect("signed").to_owned();
        let signed_bytes: usize = request
            .ext_fields
            .iter()
            .filter(|(k, _)| *k != "Signature")
            .map(|(_, v)| v.len())
            .sum::<usize>()
            + request.body.len();
        group.throughput(Throughput::Bytes(signed_bytes as u64));
        group.bench_function(format!("body_{body_size}"), |b| {
            b.iter(|| {
                let ok = acl_sign::verify(
                    black_box(&request.ext_fields),
                    black_box(&request.body),
                    black_box("ali-producer-secret"),
                    black_box(&claimed),
                );
                assert!(ok);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
