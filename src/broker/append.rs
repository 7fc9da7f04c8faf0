//! The "store on the queue's owner" step every write that may land on another shard's queue
//! shares: sends diverted to a DLQ or parked at a delay level, send-backs, delay-level
//! deliveries. Local when this shard owns the (topic, queue); otherwise one `submit_to` with the
//! append's fields owned (the payload is copied once to cross).
//!
//! Also owns the refusal of every client-driven write on a SLAVE ([`refuse_on_slave`]): a
//! slave's CommitLog is a copy of its master's, appended to only by replication.
//!
//! Must never: append to a queue the running shard does not own (asserted on arrival), or
//! append on a SLAVE.

use std::rc::Rc;

use bytes::Bytes;
use rmq_net::codec::codes::ResponseCode;
use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::store::{AppendMessage, AppendOutcome, WaitForFlush};

use crate::config::{BrokerConfig, BrokerRole};

use crate::runtime::mesh::submit_to;
use crate::runtime::placement::shard_for;
use crate::runtime::ShardId;

use super::ha::SlaveAck;
use super::shard::Shard;
use super::{storage_failure, Failure};

/// Remark of a write refused on a slave: the words Java's store logs for it
/// (`DefaultMessageStore.putMessage`); Java's reply carries a generic "service not available
/// now" remark with the same code.
pub const SLAVE_WRITE_REMARK: &str = "message store is slave mode, so putMessage is forbidden";

/// Refuses a write on a SLAVE as Java's store does: SERVICE_NOT_AVAILABLE, which producers
/// retry on another broker. Checked before anything else a write would change (topic or group
/// auto-creation) and again before every append.
///
/// # Errors
/// SERVICE_NOT_AVAILABLE with [`SLAVE_WRITE_REMARK`] on a slave.
pub fn refuse_on_slave(config: &BrokerConfig) -> Result<(), Failure> {
    if config.broker_role == BrokerRole::Slave {
        return Err(Failure::Code(
            ResponseCode::ServiceNotAvailable,
            SLAVE_WRITE_REMARK.into(),
        ));
    }
    Ok(())
}

/// An append that crosses the mesh: [`AppendMessage`] with owned fields.
struct OwnedAppend {
    topic: String,
    queue_id: i32,
    tags_code: i64,
    keys: String,
    store_timestamp_ms: Option<i64>,
    sys_flag: i32,
    payload: Bytes,
}

impl OwnedAppend {
    fn of(message: &AppendMessage<'_>) -> Self {
        Self {
            topic: message.topic.to_owned(),
            queue_id: message.queue_id,
            tags_code: message.tags_code,
            keys: message.keys.to_owned(),
            store_timestamp_ms: message.store_timestamp_ms,
            sys_flag: message.sys_flag,
            payload: Bytes::copy_from_slice(message.payload),
        }
    }

    fn as_message(&self) -> AppendMessage<'_> {
        AppendMessage {
            topic: &self.topic,
            queue_id: self.queue_id,
            tags_code: self.tags_code,
            keys: &self.keys,
            store_timestamp_ms: self.store_timestamp_ms,
            sys_flag: self.sys_flag,
            payload: &self.payload,
        }
    }
}

/// Appends `message` on the shard that owns its (topic, queue): here, or through one mesh
/// call (the payload is copied once to cross). Returns the owner and where the message landed.
///
/// # Errors
/// The storage error's response code; SYSTEM_BUSY when the owner's mesh channel is full;
/// SERVICE_NOT_AVAILABLE on a slave ([`refuse_on_slave`]).
pub async fn append_routed(
    shard: &Rc<Shard>,
    message: &AppendMessage<'_>,
) -> Result<(ShardId, AppendOutcome), Failure> {
    append_routed_waiting(shard, message, WaitForFlush::AsPolicy).await
}

/// [`append_routed`] with an explicit flush wait (`WAIT=false` sends skip the SYNC_FLUSH wait).
pub async fn append_routed_waiting(
    shard: &Rc<Shard>,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
) -> Result<(ShardId, AppendOutcome), Failure> {
    append_on_owner(shard, message, wait, false)
        .await
        .map(|(owner, outcome, _)| (owner, outcome))
}

/// [`append_routed_waiting`] for a producer's send: on a SYNC_MASTER it also waits, on the
/// owner, for the slave's acknowledgement ([`super::ha::await_slave`]) unless the send asked
/// not to wait (`WAIT=false`).
///
/// # Errors
/// As [`append_routed`].
pub async fn append_routed_replicated(
    shard: &Rc<Shard>,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
) -> Result<(ShardId, AppendOutcome, SlaveAck), Failure> {
    append_on_owner(shard, message, wait, wait == WaitForFlush::AsPolicy).await
}

async fn append_on_owner(
    shard: &Rc<Shard>,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
    replicated: bool,
) -> Result<(ShardId, AppendOutcome, SlaveAck), Failure> {
    refuse_on_slave(&shard.config)?;
    let owner = shard_for(message.topic, message.queue_id, shard.shard_count());
    if owner == shard.id {
        let (outcome, ack) = append_here(shard, message, wait, replicated).await?;
        return Ok((owner, outcome, ack));
    }
    let owned = OwnedAppend::of(message);
    let result = submit_to(shard, owner, move |target: Rc<Shard>| async move {
        let message = owned.as_message();
        assert_eq!(
            shard_for(message.topic, message.queue_id, target.shard_count()),
            target.id,
            "routed append reached a shard that does not own the queue"
        );
        append_here(&target, &message, wait, replicated).await
    })
    .await?;
    result.map(|(outcome, ack)| (owner, outcome, ack))
}

/// Appends on the owner. On a SYNC_MASTER asked to replicate, the slave's acknowledgement is
/// awaited too; under SYNC_FLUSH at once with the master's own fdatasync (the reply waits for
/// the slower, not the sum).
async fn append_here(
    shard: &Shard,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
    replicated: bool,
) -> Result<(AppendOutcome, SlaveAck), Failure> {
    let await_slave = replicated
        && wait == WaitForFlush::AsPolicy
        && shard.config.broker_role == BrokerRole::SyncMaster;
    let joined = await_slave && shard.store.commitlog().config().flush_policy == FlushPolicy::Sync;
    // Joined: the append does not wait for the fdatasync itself; it is awaited below.
    let append_wait = if joined { WaitForFlush::No } else { wait };
    let mut outcome = shard
        .store
        .append_waiting(message, append_wait)
        .await
        .map_err(|e| storage_failure(&e))?;
    if !await_slave {
        return Ok((outcome, SlaveAck::NotAsked));
    }
    let end = outcome.phys_offset + u64::from(outcome.size);
    if !joined {
        return Ok((outcome, super::ha::await_slave(shard, end).await));
    }
    let (durability, ack) = futures_util::future::join(
        shard.store.wait_durability(end),
        super::ha::await_slave(shard, end),
    )
    .await;
    outcome.durability = durability.map_err(|e| storage_failure(&e))?;
    Ok((outcome, ack))
}
