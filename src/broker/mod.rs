//! The broker: per-shard state ([`shard`]), start-up and shutdown ([`start`]), the request
//! dispatcher that routes each request to the shard owning its state ([`dispatch`]), the
//! request processors ([`send`], [`pull`], [`offset`], [`view`], [`query`], [`sendback`], the
//! control plane in [`control`], the map-reduce admin views in [`stats`], the settings UPDATE_BROKER_CONFIG changes in
//! [`live_config`], CLEAN_EXPIRED_CONSUMEQUEUE in [`clean_cq`]), the
//! append-on-the-owner step ([`append`]), delayed delivery ([`schedule`]), transactional messages ([`transaction`]), record encoding at
//! the edge ([`message`]), the publish path of replicated tables ([`replicate`]), the wiring of
//! master/slave replication sessions ([`ha`]), the node-wide offset tables both ways
//! ([`offset_tables`]), a slave's copy of its master's metadata ([`slave_sync`]) and the
//! Prometheus exporter's HTTP server ([`exporter`]).
//!
//! Storage and mesh errors become RocketMQ response codes here ([`storage_failure`], and
//! [`Failure`]'s `From<MeshError>`); `Failure` itself is shared with the NameServer.
//! Must never: touch another shard's state except through the mesh.

pub mod append;
pub mod clean_cq;
pub mod consumer_status;
pub mod control;
pub mod dispatch;
pub mod durable_replies;
pub mod exporter;
pub mod ha;
pub mod live_config;
pub mod message;
pub mod offset;
pub mod offset_tables;
pub mod pull;
pub mod query;
pub mod replicate;
pub mod reply;
pub mod reset;
pub mod schedule;
pub mod send;
pub mod send_batch;
pub mod sendback;
pub mod shard;
pub mod slave_sync;
pub mod sql92;
pub mod start;
pub mod stats;
pub mod timer;
pub mod to_client;
pub mod transaction;
pub mod view;

use rmq_net::codec::codes::ResponseCode;
use rmq_net::RemotingCommand;
use rmq_storage::error::StorageError;

use crate::runtime::mesh::MeshError;

pub use crate::failure::{error_response, success, Failure, Outcome};

impl From<MeshError> for Failure {
    /// A call to another shard that did not run: SYSTEM_BUSY, which clients retry.
    fn from(err: MeshError) -> Self {
        Self::Code(
            ResponseCode::SystemBusy,
            format!("[REJECTREQUEST]system busy, {err}"),
        )
    }
}

/// A SUCCESS reply carrying a whole table (`what` names it in the refusal), or SYSTEM_ERROR
/// when the body would not fit one frame ([`crate::limits::TABLE_REPLY_BODY_BYTES_MAX`]):
/// the peer hears why instead of losing the connection to an oversized frame.
///
/// # Errors
/// SYSTEM_ERROR naming the table and its size.
pub fn table_reply(request: &RemotingCommand, what: &str, body: Vec<u8>) -> Outcome {
    let limit = crate::limits::TABLE_REPLY_BODY_BYTES_MAX;
    if body.len() > limit {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!(
                "the {what} table is {} bytes of JSON, over the {limit}-byte reply limit",
                body.len()
            ),
        ));
    }
    Ok(success(request).with_body(body))
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
        // A resource of the broker, not the message: a code clients retry.
        StorageError::QueuesExhausted { .. } => ResponseCode::SystemError,
        _ => ResponseCode::SystemError,
    };
    Failure::Code(code, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ShardId;

    #[test]
    fn resource_exhaustion_is_never_message_illegal() {
        let exhausted = StorageError::QueuesExhausted {
            topic: "T".into(),
            queue_id: 3,
            limit: 65_536,
        };
        let Failure::Code(code, remark) = storage_failure(&exhausted);
        assert_eq!(code, ResponseCode::SystemError, "clients retry it");
        assert!(remark.contains("65536"), "{remark}");
        let full = StorageError::DiskFull {
            path: "x".into(),
            needed_bytes: 1,
        };
        let Failure::Code(code, _) = storage_failure(&full);
        assert_eq!(code, ResponseCode::ServiceNotAvailable);
    }

    #[test]
    fn a_call_that_did_not_cross_is_system_busy() {
        for err in [MeshError::Busy(ShardId(1)), MeshError::Stopped(ShardId(1))] {
            let Failure::Code(code, remark) = Failure::from(err);
            assert_eq!(code, ResponseCode::SystemBusy);
            assert!(remark.starts_with("[REJECTREQUEST]system busy"), "{remark}");
        }
    }
}
