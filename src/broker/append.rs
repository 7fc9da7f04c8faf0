//! The "store on the queue's owner" step every write that may land on another shard's queue
//! shares: sends diverted to a DLQ or parked at a delay level, send-backs, delay-level
//! deliveries. Local when this shard owns the (topic, queue); otherwise one `submit_to` with the
//! append's fields owned (the payload is copied once to cross).
//!
//! Must never: append to a queue the running shard does not own (asserted on arrival).

use std::rc::Rc;

use bytes::Bytes;
use rmq_storage::store::{AppendMessage, AppendOutcome, WaitForFlush};

use crate::runtime::mesh::submit_to;
use crate::runtime::placement::shard_for;
use crate::runtime::ShardId;

use super::shard::Shard;
use super::{storage_failure, Failure};

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
/// The storage error's response code; SYSTEM_BUSY when the owner's mesh channel is full.
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
    let owner = shard_for(message.topic, message.queue_id, shard.shard_count());
    if owner == shard.id {
        let outcome = shard.store.append_waiting(message, wait).await;
        return outcome
            .map(|outcome| (owner, outcome))
            .map_err(|e| storage_failure(&e));
    }
    let owned = OwnedAppend::of(message);
    let result = submit_to(shard, owner, move |target: Rc<Shard>| async move {
        let message = owned.as_message();
        assert_eq!(
            shard_for(message.topic, message.queue_id, target.shard_count()),
            target.id,
            "routed append reached a shard that does not own the queue"
        );
        let outcome = target.store.append_waiting(&message, wait).await;
        outcome.map_err(|e| storage_failure(&e))
    })
    .await?;
    result.map(|outcome| (owner, outcome))
}
