//! Fuzz target: `frame::decode` on arbitrary bytes (back-to-back frames). It must never panic;
//! every frame that decodes must re-encode and decode again to an equal command.
//! `smoke.sh` also runs it with a malloc limit, so an allocation past the codec limits crashes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rmq_net::codec::frame;
use rmq_net::codec::limits::FrameLimits;

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    let mut offset = 0;
    while let Ok(Some((command, used))) = frame::decode(&data[offset..], &limits) {
        assert!(
            used >= frame::FRAME_SIZE_MIN,
            "a frame is at least its two words"
        );
        assert!(
            used <= data.len() - offset,
            "consumed more than was buffered"
        );
        let encoded = frame::encode_to_bytes(&command).expect("a decoded command re-encodes");
        let (again, again_used) = frame::decode(&encoded, &limits)
            .expect("a re-encoded frame decodes")
            .expect("a re-encoded frame is complete");
        assert_eq!(again_used, encoded.len(), "re-encoded frame fully consumed");
        assert_eq!(
            again, command,
            "decode(encode(decode(bytes))) == decode(bytes)"
        );
        offset += used;
    }
});
