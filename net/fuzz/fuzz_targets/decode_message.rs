//! Fuzz target: stored-message record decoding (`message::decode_all`, PROTOCOL.md §6.6) on
//! arbitrary bytes, with and without CRC verification. It must never panic; every record that
//! decodes must re-encode and decode again to an equal record.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rmq_net::codec::message::{decode_all, CrcCheck, MessageRecord};

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    // Verify only ever rejects more than Skip; both must fail cleanly.
    let verified = decode_all(&buf, CrcCheck::Verify);
    let Ok(records) = decode_all(&buf, CrcCheck::Skip) else {
        assert!(verified.is_err(), "Verify accepted what Skip rejected");
        return;
    };
    if let Ok(verified) = verified {
        assert_eq!(verified, records, "CRC mode changed the decoded records");
    }
    for record in records {
        let mut out = BytesMut::new();
        // Encode may refuse values that decode accepts (its limits are stricter); that is fine.
        if record.encode(&mut out).is_err() {
            continue;
        }
        let (again, used) =
            MessageRecord::decode(&out, CrcCheck::Verify).expect("a re-encoded record decodes");
        assert_eq!(used, out.len(), "re-encoded record fully consumed");
        assert_eq!(
            again, record,
            "decode(encode(decode(bytes))) == decode(bytes)"
        );
    }
});
