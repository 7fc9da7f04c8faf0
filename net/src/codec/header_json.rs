//! JSON header encoding (serialize type 0, PROTOCOL.md §1.4). (in progress)

use bytes::BytesMut;

use super::command::RemotingCommand;
use super::error::CodecError;

/// Decodes a JSON header (no body).
///
/// # Errors
/// [`CodecError::Json`] for malformed input.
pub fn decode(_header: &[u8]) -> Result<RemotingCommand, CodecError> {
    Err(CodecError::Json {
        what: "header",
        detail: "not implemented yet".into(),
    })
}

/// Appends the JSON header of `command` to `out`.
///
/// # Errors
/// Never in practice.
pub fn encode(_command: &RemotingCommand, _out: &mut BytesMut) -> Result<(), CodecError> {
    Err(CodecError::Encode {
        what: "header",
        detail: "not implemented yet".into(),
    })
}
