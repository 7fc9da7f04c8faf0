//! Fuzz target: the HA decoder on arbitrary bytes (back-to-back frames), fed in two reads split
//! where the input's first byte says. It must never panic; nothing is consumed while a frame is
//! incomplete or refused; every frame that decodes passes the field rules and re-encodes to
//! exactly the bytes it was decoded from, and decodes alike through `decode_whole`. `smoke.sh`
//! runs it with a malloc limit, so an allocation past the HA limits crashes.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rmq_net::ha::{self, Frame};

/// Decodes every whole frame at the front of `buf`, checking each; `consumed` tracks the bytes.
fn drain(buf: &mut BytesMut, input: &[u8], consumed: &mut usize) {
    loop {
        let before = buf.len();
        match ha::decode(buf) {
            Ok(Some(frame)) => {
                let used = before - buf.len();
                assert!(used >= ha::limits::HA_HEADER_SIZE, "a frame is at least its header");
                assert!(used <= ha::limits::HA_FRAME_SIZE_MAX, "a frame is within the limit");
                check(&frame, &input[*consumed..*consumed + used]);
                *consumed += used;
            }
            Ok(None) | Err(_) => {
                assert_eq!(buf.len(), before, "nothing consumed without a frame");
                return;
            }
        }
    }
}

fn check(frame: &Frame, bytes: &[u8]) {
    frame.check().expect("a decoded frame passes the field rules");
    let whole = ha::decode_whole(&Bytes::copy_from_slice(bytes)).expect("a whole frame decodes");
    assert_eq!(&whole, frame, "decode_whole agrees with the streaming decoder");
    let mut again = BytesMut::new();
    ha::encode(frame, &mut again).expect("a decoded frame re-encodes");
    assert_eq!(&again[..], bytes, "encode(decode(bytes)) == bytes");
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(input.len());
    let mut buf = BytesMut::from(&input[..split]);
    let mut consumed = 0;
    drain(&mut buf, input, &mut consumed);
    buf.extend_from_slice(&input[split..]);
    drain(&mut buf, input, &mut consumed);
});
