//! Offset message ids (PROTOCOL.md §6.8): `store_ip (4|16) ‖ store_port i32 ‖ physical_offset
//! i64`, big-endian, as uppercase hex (32 chars for IPv4, 56 for IPv6). The send reply's
//! `msgId` and a client's `offsetMsgId`. Pure; must never accept a length other than 32 or 56.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::super::error::CodecError;
use super::hex;

/// Hex length of an IPv4 msgId (16 bytes).
pub const MSG_ID_V4_LEN: usize = (4 + 4 + 8) * 2;
/// Hex length of an IPv6 msgId (28 bytes).
pub const MSG_ID_V6_LEN: usize = (16 + 4 + 8) * 2;
/// Longest text quoted back in an error, so a huge bogus id does not bloat the error.
const ERROR_ECHO_MAX: usize = 64;

/// Appends the msgId of the record at `physical_offset` stored by `store_host` to `out`
/// (use it to build a batch reply's comma-joined list without temporaries).
pub fn encode_into(store_host: SocketAddr, physical_offset: i64, out: &mut String) {
    let mut bytes = [0u8; 28];
    let ip_len = match store_host.ip() {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            bytes[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    let port = i32::from(store_host.port());
    bytes[ip_len..ip_len + 4].copy_from_slice(&port.to_be_bytes());
    bytes[ip_len + 4..ip_len + 12].copy_from_slice(&physical_offset.to_be_bytes());
    hex::encode_upper(&bytes[..ip_len + 12], out);
}

/// The msgId of the record at `physical_offset` stored by `store_host`.
///
/// # Panics
/// Only if the output length is not 32 or 56, a bug in this module.
#[must_use]
pub fn encode(store_host: SocketAddr, physical_offset: i64) -> String {
    let mut out = String::with_capacity(MSG_ID_V6_LEN);
    encode_into(store_host, physical_offset, &mut out);
    assert!(out.len() == MSG_ID_V4_LEN || out.len() == MSG_ID_V6_LEN);
    out
}

/// Decodes a msgId (hex of either case) into the store host and physical offset.
///
/// # Errors
/// [`CodecError::InvalidField`] (`msgId`) if the length is not 32 or 56, a character is not
/// hex, or the port is outside `0..=65535`.
pub fn decode(msg_id: &str) -> Result<(SocketAddr, i64), CodecError> {
    let invalid = || CodecError::InvalidField {
        field: "msgId",
        value: msg_id.chars().take(ERROR_ECHO_MAX).collect(),
    };
    let ip_len = match msg_id.len() {
        MSG_ID_V4_LEN => 4,
        MSG_ID_V6_LEN => 16,
        _ => return Err(invalid()),
    };
    let mut bytes = [0u8; 28];
    let bytes = &mut bytes[..ip_len + 12];
    hex::decode_into(msg_id.as_bytes(), bytes).ok_or_else(invalid)?;
    let ip = if ip_len == 4 {
        let mut octets = [0u8; 4];
        octets.copy_from_slice(&bytes[..4]);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&bytes[..16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let mut port = [0u8; 4];
    port.copy_from_slice(&bytes[ip_len..ip_len + 4]);
    let port = u16::try_from(i32::from_be_bytes(port)).map_err(|_| invalid())?;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&bytes[ip_len + 4..]);
    Ok((SocketAddr::new(ip, port), i64::from_be_bytes(offset)))
}
