//! Offset msgIds (PROTOCOL.md §6.8): the protocol example, IPv6, case-insensitive decode,
//! rejection of bad input, and round-trip / never-panic proptests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use proptest::prelude::*;
use rmq_net::codec::message::msg_id::{self, MSG_ID_V4_LEN, MSG_ID_V6_LEN};
use rmq_net::CodecError;

#[test]
fn protocol_example_encodes_and_decodes() {
    let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), 10911);
    // C0A8010A = 192.168.1.10, 00002A9F = port 10911, 0000000000001234 = offset.
    let id = msg_id::encode(host, 0x1234);
    assert_eq!(id, "C0A8010A00002A9F0000000000001234");
    assert_eq!(id.len(), MSG_ID_V4_LEN);
    assert_eq!(msg_id::decode(&id), Ok((host, 0x1234)));
    assert_eq!(
        msg_id::decode("c0a8010a00002a9f0000000000001234"),
        Ok((host, 0x1234))
    );
}

#[test]
fn ipv6_ids_are_56_chars() {
    let host = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        80,
    );
    let id = msg_id::encode(host, -1);
    assert_eq!(
        id,
        concat!(
            "20010DB8000000000000000000000001", // address
            "00000050",                         // port 80
            "FFFFFFFFFFFFFFFF",                 // offset -1
        )
    );
    assert_eq!(id.len(), MSG_ID_V6_LEN);
    assert_eq!(msg_id::decode(&id), Ok((host, -1)));
}

#[test]
fn encode_into_appends_for_comma_joined_batch_replies() {
    let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1);
    let mut joined = String::new();
    for (i, offset) in [0i64, 100].into_iter().enumerate() {
        if i > 0 {
            joined.push(',');
        }
        msg_id::encode_into(host, offset, &mut joined);
    }
    assert_eq!(
        joined,
        "0A000001000000010000000000000000,0A000001000000010000000000000064"
    );
}

#[test]
fn decode_rejects_bad_lengths_digits_and_ports() {
    for bad in [
        "",
        "C0A8010A00002A9F000000000000123",   // 31 chars
        "C0A8010A00002A9F00000000000012345", // 33 chars
        "G0A8010A00002A9F0000000000001234",  // not hex
        "C0A8010A00012A9F0000000000001234",  // port 0x00012A9F > 65535
        "C0A8010AFFFFFFFF0000000000001234",  // port -1
        "C0A8010A00002A9F000000000000123é",  // 33 bytes, non-ASCII
    ] {
        assert!(
            matches!(
                msg_id::decode(bad),
                Err(CodecError::InvalidField { field: "msgId", .. })
            ),
            "{bad:?} must be refused"
        );
    }
    let huge = "A".repeat(10_000);
    match msg_id::decode(&huge) {
        Err(CodecError::InvalidField { value, .. }) => assert!(value.len() <= 64),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn arb_host() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip.into(), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            ip.into(),
            port,
            0,
            0
        ))),
    ]
}

proptest! {
    #[test]
    fn msg_id_round_trips(host in arb_host(), offset in any::<i64>(), lower in any::<bool>()) {
        let id = msg_id::encode(host, offset);
        prop_assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        let id = if lower { id.to_ascii_lowercase() } else { id };
        prop_assert_eq!(msg_id::decode(&id), Ok((host, offset)));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,60}", hex in "[0-9a-fA-F]{32}|[0-9a-fA-F]{56}") {
        let _ = msg_id::decode(&text);
        if let Ok((host, offset)) = msg_id::decode(&hex) {
            prop_assert_eq!(msg_id::encode(host, offset), hex.to_ascii_uppercase());
        }
    }
}
