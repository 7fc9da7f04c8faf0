//! ROCKETMQ binary header encoding (serialize type 1, PROTOCOL.md §1.5). (in progress)

use bytes::BytesMut;

use super::command::RemotingCommand;
use super::error::CodecError;

/// Decodes a binary header (no body).
///
/// # Errors
/// [`CodecError::Json`] for malformed input.
pub fn decode(_header: &[u8]) -> Result<RemotingCommand, CodecError> {
    Err(CodecError::Json {
        what: "header",
        detail: "not implemented yet".into(),
    })
}

/// Appends the binary header of `command` to `out`.
///
/// # Errors
/// Never in practice.
pub fn encode(_command: &RemotingCommand, _out: &mut BytesMut) -> Result<(), CodecError> {
    Err(CodecError::Encode {
        what: "header",
        detail: "not implemented yet".into(),
    })
}
