//! Frame layer (PROTOCOL.md §1.2): `[total_length i32][ser_type u8 | header_len u24][header][body]`,
//! where `total_length = 4 + header_len + body_len` does not count itself.
//!
//! [`check`] is cheap and allocation-free: it says whether a whole frame is buffered, and
//! rejects a frame whose declared sizes break the limits before anything is allocated.
//! [`decode`] then parses exactly one frame. A partial frame is `Ok(None)`, never an error.

use bytes::{BufMut, Bytes, BytesMut};

use super::codes::SerializeType;
use super::command::RemotingCommand;
use super::error::CodecError;
use super::limits::FrameLimits;
use super::{header_binary, header_json};

/// Bytes of the length word.
pub const LENGTH_FIELD_SIZE: usize = 4;
/// Bytes of the header-length word.
pub const HEADER_LENGTH_FIELD_SIZE: usize = 4;
/// Smallest frame: two words and an empty header.
pub const FRAME_SIZE_MIN: usize = LENGTH_FIELD_SIZE + HEADER_LENGTH_FIELD_SIZE;

/// Size facts of one buffered frame, as read by [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Whole frame size, length word included.
    pub frame_size: usize,
    /// Header encoding.
    pub serialize_type: SerializeType,
    /// Header bytes.
    pub header_len: usize,
    /// Body bytes.
    pub body_len: usize,
}

/// Reads the two leading words of `buf`.
///
/// Returns `Ok(None)` while fewer than 8 bytes are buffered, or while the frame's declared size
/// is larger than `buf` (the caller reads more). The declared sizes are validated against
/// `limits` as soon as the first 8 bytes are present, so an oversized frame is refused before
/// the caller buffers it.
///
/// # Errors
/// [`CodecError::FrameSize`], [`CodecError::HeaderLength`] or [`CodecError::SerializeType`]
/// when the declared sizes or type are invalid; the connection should be closed.
pub fn check(buf: &[u8], limits: &FrameLimits) -> Result<Option<FrameInfo>, CodecError> {
    let Some(words) = buf.get(..FRAME_SIZE_MIN) else {
        return Ok(None);
    };
    let total = i32::from_be_bytes([words[0], words[1], words[2], words[3]]);
    let header_word = u32::from_be_bytes([words[4], words[5], words[6], words[7]]);
    let frame_size = usize::try_from(total)
        .ok()
        .and_then(|t| t.checked_add(LENGTH_FIELD_SIZE));
    let Some(frame_size) =
        frame_size.filter(|s| (FRAME_SIZE_MIN..=limits.frame_size_max).contains(s))
    else {
        return Err(CodecError::FrameSize {
            length_word: total,
            min: FRAME_SIZE_MIN,
            max: limits.frame_size_max,
        });
    };
    let type_byte = (header_word >> 24) as u8;
    let serialize_type =
        SerializeType::from_code(type_byte).ok_or(CodecError::SerializeType(type_byte))?;
    let header_len = (header_word & 0x00FF_FFFF) as usize;
    let room = frame_size - FRAME_SIZE_MIN;
    if header_len > room || header_len > limits.header_size_max {
        return Err(CodecError::HeaderLength {
            header_len,
            room,
            max: limits.header_size_max,
        });
    }
    if buf.len() < frame_size {
        return Ok(None);
    }
    Ok(Some(FrameInfo {
        frame_size,
        serialize_type,
        header_len,
        body_len: room - header_len,
    }))
}

/// Decodes one frame from the front of `buf`, returning the command and the bytes consumed,
/// or `Ok(None)` if the frame is not complete yet.
///
/// # Errors
/// Any [`CodecError`] from [`check`] or from the header decoder; the connection should be
/// closed, because the stream position can no longer be trusted.
pub fn decode(
    buf: &[u8],
    limits: &FrameLimits,
) -> Result<Option<(RemotingCommand, usize)>, CodecError> {
    let Some(info) = check(buf, limits)? else {
        return Ok(None);
    };
    let header_start = FRAME_SIZE_MIN;
    let body_start = header_start + info.header_len;
    let header = &buf[header_start..body_start];
    let mut command = match info.serialize_type {
        SerializeType::Json => header_json::decode(header)?,
        SerializeType::RocketMq => header_binary::decode(header)?,
    };
    command.serialize_type = info.serialize_type;
    command.body = Bytes::copy_from_slice(&buf[body_start..info.frame_size]);
    Ok(Some((command, info.frame_size)))
}

/// Like [`decode`], but splits the frame off `buf` so the body is shared, not copied.
///
/// # Errors
/// As [`decode`].
pub fn decode_from(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<RemotingCommand>, CodecError> {
    let Some(info) = check(buf, limits)? else {
        return Ok(None);
    };
    let mut frame = buf.split_to(info.frame_size).freeze();
    let header_start = FRAME_SIZE_MIN;
    let body_start = header_start + info.header_len;
    let mut command = match info.serialize_type {
        SerializeType::Json => header_json::decode(&frame[header_start..body_start])?,
        SerializeType::RocketMq => header_binary::decode(&frame[header_start..body_start])?,
    };
    command.serialize_type = info.serialize_type;
    command.body = frame.split_off(body_start);
    Ok(Some(command))
}

/// Appends `command` as one frame to `out`, in `command.serialize_type`.
///
/// # Errors
/// [`CodecError::Encode`] when the header or frame would not fit its length fields.
pub fn encode(command: &RemotingCommand, out: &mut BytesMut) -> Result<(), CodecError> {
    let start = out.len();
    out.put_u32(0); // total length, patched below
    out.put_u32(0); // header length word, patched below
    let header_start = out.len();
    let header_result = match command.serialize_type {
        SerializeType::Json => header_json::encode(command, out),
        SerializeType::RocketMq => header_binary::encode(command, out),
    };
    if let Err(err) = header_result {
        // Leave `out` as it was: no half-written frame may reach the socket.
        out.truncate(start);
        return Err(err);
    }
    let header_len = out.len() - header_start;
    if header_len > 0x00FF_FFFF {
        out.truncate(start);
        return Err(CodecError::Encode {
            what: "header",
            detail: format!("{header_len} bytes"),
        });
    }
    out.extend_from_slice(&command.body);
    let total = out.len() - start - LENGTH_FIELD_SIZE;
    let Ok(total) = i32::try_from(total) else {
        out.truncate(start);
        return Err(CodecError::Encode {
            what: "frame",
            detail: format!("{total} bytes"),
        });
    };
    let header_word = (u32::from(command.serialize_type.code()) << 24) | header_len as u32;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&header_word.to_be_bytes());
    Ok(())
}

/// Encodes `command` into a fresh buffer.
///
/// # Errors
/// As [`encode`].
pub fn encode_to_bytes(command: &RemotingCommand) -> Result<Bytes, CodecError> {
    let mut out = BytesMut::with_capacity(256 + command.body.len());
    encode(command, &mut out)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_length_word_is_reported_as_sent() {
        let limits = FrameLimits::default();
        for word in [-5_i32, i32::MIN, 3, i32::MAX] {
            let mut buf = word.to_be_bytes().to_vec();
            buf.extend_from_slice(&[0, 0, 0, 0]);
            let err = check(&buf, &limits).expect_err("out of range");
            assert_eq!(
                err,
                CodecError::FrameSize {
                    length_word: word,
                    min: FRAME_SIZE_MIN,
                    max: limits.frame_size_max,
                }
            );
            assert!(
                err.to_string().contains(&format!("length word {word} ")),
                "{err}"
            );
        }
    }
}
