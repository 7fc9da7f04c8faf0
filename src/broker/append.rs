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
use rmq_net::{ExtFields, RemotingCommand};
use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::store::{AppendMessage, AppendOutcome, Durability, WaitForFlush};

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
    let (owner, mut outcome, _, settle) = append_on_owner(shard, message, wait, false).await?;
    settle.wait(shard, &mut outcome).await?;
    Ok((owner, outcome))
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
    let (owner, mut outcome, ack, settle) = append_routed_deferred(shard, message, wait).await?;
    let ack = match settle.wait(shard, &mut outcome).await? {
        SlaveAck::NotAsked => ack,
        settled => settled,
    };
    Ok((owner, outcome, ack))
}

/// [`append_routed_replicated`] that, when the record lands on this shard, returns before its
/// SYNC_FLUSH and slave waits: the caller answers once [`Settle`] is done, after dropping what
/// the append needed (the request, its encoded record). On another shard the waits happen
/// there and the [`Settle`] is [`Settle::Done`].
///
/// # Errors
/// As [`append_routed`].
pub async fn append_routed_deferred(
    shard: &Rc<Shard>,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
) -> Result<(ShardId, AppendOutcome, SlaveAck, Settle), Failure> {
    append_on_owner(shard, message, wait, wait == WaitForFlush::AsPolicy).await
}

/// What a stored record still waits for before the send that stored it is answered: its
/// end becoming durable (SYNC_FLUSH) and the slave's acknowledgement (SYNC_MASTER), both on
/// the shard that stored it, at once (the reply waits for the slower, not the sum).
///
/// A send deferring these ([`append_routed_deferred`]) holds nothing of its request while it
/// waits: under load hundreds of sends wait at once, and each held a share of its frame's
/// 64 KiB read buffer, its encoded record and its decoded header
/// (`perf-reports/2026-12-07-settle/`).
#[derive(Debug)]
#[must_use = "a stored send is answered only once its Settle is done"]
pub enum Settle {
    /// Nothing left: the outcome and the slave's answer are final.
    Done,
    /// The record ending at `end`, stored on `shard`, still waits.
    Wait {
        /// The shard that stored the record (the waits run there).
        shard: ShardId,
        /// The record's end offset in that shard's CommitLog.
        end: u64,
        /// Wait for the CommitLog to make `end` durable (SYNC_FLUSH).
        durable: bool,
        /// Wait for the slave's acknowledgement of `end` (SYNC_MASTER).
        slave: bool,
    },
}

impl Settle {
    /// What a record appended on `shard`, ending at `end`, still waits for: its durability if
    /// `durable`, and the slave's acknowledgement if `replicate` and this is a SYNC_MASTER.
    pub fn after_append(shard: &Shard, end: u64, durable: bool, replicate: bool) -> Self {
        let slave = replicate && shard.config.broker_role == BrokerRole::SyncMaster;
        if !durable && !slave {
            return Self::Done;
        }
        Self::Wait {
            shard: shard.id,
            end,
            durable,
            slave,
        }
    }

    /// The record's end when all that is left is its fdatasync on this shard (SYNC_FLUSH, no
    /// slave wait): such a reply can be parked ([`super::durable_replies`]).
    #[must_use]
    pub fn durable_only_end(&self, shard: &Shard) -> Option<u64> {
        match *self {
            Self::Wait {
                shard: stored_on,
                end,
                durable: true,
                slave: false,
            } if stored_on == shard.id => Some(end),
            _ => None,
        }
    }

    /// Waits; returns the durability (`None`: unchanged) and the slave's answer.
    async fn settle(self, shard: &Shard) -> (Result<Option<Durability>, Failure>, SlaveAck) {
        let Self::Wait {
            shard: stored_on,
            end,
            durable,
            slave,
        } = self
        else {
            return (Ok(None), SlaveAck::NotAsked);
        };
        assert_eq!(
            stored_on, shard.id,
            "a record settles on the shard that stored it"
        );
        let flushed = async {
            if !durable {
                return Ok(None);
            }
            shard
                .store
                .wait_durability(end)
                .await
                .map(Some)
                .map_err(|e| storage_failure(&e))
        };
        let acked = async {
            if slave {
                super::ha::await_slave(shard, end).await
            } else {
                SlaveAck::NotAsked
            }
        };
        futures_util::future::join(flushed, acked).await
    }

    /// Waits, then folds the result into `outcome`.
    ///
    /// # Errors
    /// The failed durability wait's response code.
    pub async fn wait(
        self,
        shard: &Shard,
        outcome: &mut AppendOutcome,
    ) -> Result<SlaveAck, Failure> {
        let (durability, ack) = self.settle(shard).await;
        if let Some(durability) = durability? {
            outcome.durability = durability;
        }
        Ok(ack)
    }

    /// Waits, then folds the result into `response`, the stored send's reply: FLUSH_DISK_TIMEOUT,
    /// FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE as [`super::send::stored_reply`] would have
    /// answered; a failed durability wait replaces it with the error response.
    pub async fn finish(self, shard: &Shard, response: RemotingCommand) -> RemotingCommand {
        let (durability, ack) = self.settle(shard).await;
        settled_reply(response, durability, &ack)
    }
}

/// A stored send's reply once its waits ended (see [`Settle::finish`]).
pub(super) fn settled_reply(
    response: RemotingCommand,
    durability: Result<Option<Durability>, Failure>,
    ack: &SlaveAck,
) -> RemotingCommand {
    match durability {
        Ok(durability) => {
            let response = match durability {
                Some(durability) => super::send::with_durability(response, durability),
                None => response,
            };
            super::send::with_slave_ack(response, ack)
        }
        Err(Failure::Code(code, remark)) => RemotingCommand {
            code: code.value(),
            remark: Some(remark),
            ext_fields: ExtFields::new(),
            ..response
        },
    }
}

async fn append_on_owner(
    shard: &Rc<Shard>,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
    replicated: bool,
) -> Result<(ShardId, AppendOutcome, SlaveAck, Settle), Failure> {
    refuse_on_slave(&shard.config)?;
    let owner = shard_for(message.topic, message.queue_id, shard.shard_count());
    if owner == shard.id {
        let (outcome, settle) = append_here(shard, message, wait, replicated).await?;
        return Ok((owner, outcome, SlaveAck::NotAsked, settle));
    }
    let owned = OwnedAppend::of(message);
    let result = submit_to(shard, owner, move |target: Rc<Shard>| async move {
        let message = owned.as_message();
        assert_eq!(
            shard_for(message.topic, message.queue_id, target.shard_count()),
            target.id,
            "routed append reached a shard that does not own the queue"
        );
        let (mut outcome, settle) = append_here(&target, &message, wait, replicated).await?;
        drop(owned);
        let ack = settle.wait(&target, &mut outcome).await?;
        Ok((outcome, ack))
    })
    .await?;
    result.map(|(outcome, ack)| (owner, outcome, ack, Settle::Done))
}

/// How an append on this shard with `wait` waits for its fdatasync: under SYNC_FLUSH (unless
/// `WAIT=false`) not in the store but in the caller's [`Settle`] (`true`), the store only
/// asking the flusher to run. Returns the store's wait and whether the settle is durable.
pub fn deferred_flush(shard: &Shard, wait: WaitForFlush) -> (WaitForFlush, bool) {
    let durable = wait == WaitForFlush::AsPolicy
        && shard.store.commitlog().config().flush_policy == FlushPolicy::Sync;
    (if durable { WaitForFlush::No } else { wait }, durable)
}

/// Appends on the owner and says what the reply still waits for ([`Settle`]): the fdatasync
/// under SYNC_FLUSH (unless `WAIT=false`), and on a SYNC_MASTER asked to replicate the slave's
/// acknowledgement.
async fn append_here(
    shard: &Shard,
    message: &AppendMessage<'_>,
    wait: WaitForFlush,
    replicated: bool,
) -> Result<(AppendOutcome, Settle), Failure> {
    let (append_wait, durable) = deferred_flush(shard, wait);
    let outcome = shard
        .store
        .append_waiting(message, append_wait)
        .await
        .map_err(|e| storage_failure(&e))?;
    let end = outcome.phys_offset + u64::from(outcome.size);
    let settle = Settle::after_append(
        shard,
        end,
        durable,
        replicated && wait == WaitForFlush::AsPolicy,
    );
    Ok((outcome, settle))
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::codes::RequestCode;

    use super::*;

    fn stored() -> RemotingCommand {
        let mut request = RemotingCommand::request(RequestCode::SendMessageV2, ExtFields::new());
        request.opaque = 7;
        let mut fields = ExtFields::new();
        fields.insert("msgId", "0A00000100002A9F0000000000000000");
        super::super::success(&request).with_ext_fields(fields)
    }

    #[test]
    fn a_settled_reply_carries_the_flush_and_slave_outcomes_as_stored_reply_does() {
        let done = settled_reply(stored(), Ok(Some(Durability::Durable)), &SlaveAck::Acked);
        assert_eq!(done.response_code(), ResponseCode::Success);
        assert!(done.ext("msgId").is_some());
        assert_eq!(done.opaque, 7);
        let unchanged = settled_reply(stored(), Ok(None), &SlaveAck::NotAsked);
        assert_eq!(unchanged.response_code(), ResponseCode::Success);
        let disk = settled_reply(
            stored(),
            Ok(Some(Durability::FlushTimeout)),
            &SlaveAck::Acked,
        );
        assert_eq!(disk.response_code(), ResponseCode::FlushDiskTimeout);
        assert!(
            disk.ext("msgId").is_some(),
            "the message is stored: its msgId stays"
        );
        let slave = settled_reply(stored(), Ok(None), &SlaveAck::Timeout);
        assert_eq!(slave.response_code(), ResponseCode::FlushSlaveTimeout);
        assert!(slave.ext("msgId").is_some());
        let gone = settled_reply(
            stored(),
            Ok(None),
            &SlaveAck::NotAvailable("no slave connected"),
        );
        assert_eq!(gone.response_code(), ResponseCode::SlaveNotAvailable);
        assert_eq!(
            gone.remark.as_deref(),
            Some("slave not available: no slave connected")
        );
    }

    #[test]
    fn a_failed_flush_wait_answers_the_error_without_the_stored_fields() {
        let failure = Failure::Code(ResponseCode::SystemError, "fdatasync failed".into());
        let reply = settled_reply(stored(), Err(failure), &SlaveAck::Acked);
        assert_eq!(reply.response_code(), ResponseCode::SystemError);
        assert_eq!(reply.remark.as_deref(), Some("fdatasync failed"));
        assert!(reply.ext("msgId").is_none());
        assert_eq!(reply.opaque, 7);
    }
}
