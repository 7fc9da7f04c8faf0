//! The broker's serving side: per-shard state ([`shard`]), the request dispatcher that routes
//! each request to the shard owning its state ([`dispatch`]), the processors ([`send`],
//! [`pull`], [`offset`], [`control`], [`query`], and the map-reduce admin views in [`stats`]),
//! failed-message handling ([`sendback`], delayed delivery in [`schedule`]), message encoding
//! at the edge ([`message`]) and start-up ([`start`]).
//!
//! Library errors become RocketMQ response codes here and only here ([`Failure`]).
//! Must never: touch another shard's state except through the mesh.

pub mod control;
pub mod dispatch;
pub mod message;
pub mod offset;
pub mod pull;
pub mod query;
pub mod schedule;
pub mod send;
pub mod sendback;
pub mod shard;
pub mod start;
pub mod stats;

use rmq_net::codec::codes::ResponseCode;
use rmq_net::{CodecError, RemotingCommand};
use rmq_storage::error::StorageError;

/// Why a request failed: the response code and remark the client gets.
#[derive(Debug)]
pub enum Failure {
    /// Reply with this code and remark.
    Code(ResponseCode, String),
}

impl From<CodecError> for Failure {
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

/// Maps a storage error to the code Java gives for the matching store status.
#[must_use]
pub fn storage_failure(err: &StorageError) -> Failure {
    let code = match err {
        StorageError::DiskFull { .. } | StorageError::Poisoned { .. } | StorageError::Closed => {
            ResponseCode::ServiceNotAvailable
        }
        StorageError::RecordTooLarge { .. } | StorageError::InvalidRecord { .. } => {
            ResponseCode::MessageIllegal
        }
        _ => ResponseCode::SystemError,
    };
    Failure::Code(code, err.to_string())
}
