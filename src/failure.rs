//! A request's failure as the client sees it: a RocketMQ response code and remark. Shared by
//! the broker's and the NameServer's processors, which return [`Outcome`] and turn a
//! [`Failure`] into the error response in one place each.
//!
//! Must never: carry anything but what goes on the wire (no internal error chains leak).

use rmq_net::codec::codes::ResponseCode;
use rmq_net::{CodecError, RemotingCommand};

/// Why a request failed: the response code and remark the client gets.
#[derive(Debug)]
pub enum Failure {
    /// Reply with this code and remark.
    Code(ResponseCode, String),
}

impl From<CodecError> for Failure {
    /// A header or body that does not decode: SYSTEM_ERROR with the codec's words, as Java
    /// answers a failed `decodeCommandCustomHeader`.
    fn from(err: CodecError) -> Self {
        Self::Code(ResponseCode::SystemError, err.to_string())
    }
}

/// A processor's result.
pub type Outcome = Result<RemotingCommand, Failure>;

/// A SUCCESS response to `request`.
#[must_use]
pub fn success(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, ResponseCode::Success)
}

/// An error response to `request`.
#[must_use]
pub fn error_response(
    request: &RemotingCommand,
    code: ResponseCode,
    remark: &str,
) -> RemotingCommand {
    RemotingCommand::response_to(request, code).with_remark(remark)
}
