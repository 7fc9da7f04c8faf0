//! Broker → client requests on any connection of any shard: the generic "send this to client
//! connection X" step that RESET_CONSUMER_CLIENT_OFFSET (oneway, to every member of a group)
//! and PUSH_REPLY_MESSAGE_TO_CLIENT (a request awaiting the client's answer) share, and that
//! any other broker-initiated call (CHECK_TRANSACTION_STATE) can use. A connection is named by
//! its [`ConnKey`]; the work runs on the shard that accepted it, through the mesh.
//!
//! Must never: touch a connection from a shard other than its owner, wait for room in a full
//! write queue of a oneway broadcast (a slow client must not stall the caller), or hold a
//! pending request past its timeout.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use rmq_net::RemotingCommand;

use crate::runtime::mesh::{notify, submit_to, ConnKey, MeshError};
use crate::runtime::ShardId;

use super::shard::Shard;

/// Why a broker → client request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToClientError {
    /// The connection is closed (or was never known to its shard).
    #[error("connection {shard}/{conn} is gone")]
    Gone {
        /// Shard that accepted it.
        shard: usize,
        /// Its id there.
        conn: u64,
    },
    /// The owning shard could not take the call.
    #[error("{0}")]
    Mesh(#[from] MeshError),
    /// The client did not answer in time, or the connection failed meanwhile.
    #[error("{0}")]
    Client(String),
}

/// Sends `command` oneway to each of `conns`: one mesh notice per owning shard, each command
/// queued without waiting (a full write queue drops it for that client, logged). Returns how
/// many connections' shards took the notice.
pub fn send_oneway(shard: &Rc<Shard>, conns: &[ConnKey], command: &RemotingCommand) -> usize {
    let mut by_shard: BTreeMap<ShardId, Vec<u64>> = BTreeMap::new();
    for key in conns {
        by_shard.entry(key.shard).or_default().push(key.conn);
    }
    let mut handed = 0;
    for (target, ids) in by_shard {
        let count = ids.len();
        let code = command.code;
        let command = command.clone().oneway();
        let sent = notify(shard, target, move |owner: Rc<Shard>| async move {
            let live = owner.conns.borrow();
            for id in ids {
                match live.get(&id) {
                    Some(conn) => {
                        if let Err(err) = conn.try_send_oneway(command.clone()) {
                            tracing::debug!(%err, code = command.code, "broker->client oneway dropped");
                        }
                    }
                    None => tracing::debug!(conn = id, "broker->client oneway: connection gone"),
                }
            }
        });
        match sent {
            Ok(()) => handed += count,
            Err(err) => tracing::warn!(%err, code, "broker->client oneway not delivered"),
        }
    }
    assert!(handed <= conns.len());
    handed
}

/// Sends `request` to the client on `conn` and awaits its response for at most `timeout`.
///
/// # Errors
/// [`ToClientError::Gone`] when the connection is closed, [`ToClientError::Mesh`] when its
/// shard is busy or stopped, [`ToClientError::Client`] on timeout or a failed write.
pub async fn invoke(
    shard: &Rc<Shard>,
    conn: ConnKey,
    request: RemotingCommand,
    timeout: Duration,
) -> Result<RemotingCommand, ToClientError> {
    assert!(!request.is_oneway(), "invoke of a oneway request");
    let answered = submit_to(shard, conn.shard, move |owner: Rc<Shard>| async move {
        let handle = owner.conns.borrow().get(&conn.conn).cloned();
        let Some(handle) = handle.filter(|h| !h.is_closed()) else {
            return Err(ToClientError::Gone {
                shard: conn.shard.0,
                conn: conn.conn,
            });
        };
        handle
            .invoke(request, timeout)
            .await
            .map_err(|err| ToClientError::Client(err.to_string()))
    })
    .await?;
    answered
}
