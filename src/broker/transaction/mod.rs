//! Transactional messages, RocketMQ 4.x semantics (PROTOCOL.md §4.3, Java
//! `TransactionalMessageBridge` / `EndTransactionProcessor` / `TransactionalMessageServiceImpl`;
//! design in docs/transactions.md).
//!
//! A send with `TRAN_MSG=true` is stored as a *half message* in `RMQ_SYS_TRANS_HALF_TOPIC`
//! queue 0 ([`send_half`]), with its real topic and queue in `REAL_TOPIC` / `REAL_QID` and its
//! transaction bits reset, so no consumer sees it. The shard that owns that queue
//! ([`half_owner`]) owns every transaction: it alone appends half messages, keeps the
//! [`Transactions`] pending set (half queue offset → producer group, check schedule), answers
//! END_TRANSACTION ([`end`]) and runs the check-back loop and the rebuild after a restart
//! ([`check`]). Committed messages are stored on their real queue's owner (through the mesh),
//! and every outcome is recorded as an op record in `RMQ_SYS_TRANS_OP_HALF_TOPIC`.
//!
//! Must never: track a half message on any shard but [`half_owner`] (asserted), hold more than
//! [`TRANSACTION_PENDING_MAX`] pending entries (a new half message is refused first), or
//! deliver a half message to consumers (it lives only in the half topic until committed).

pub mod check;
pub mod end;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::send::SendMessageRequestHeader;
use rmq_net::codec::message::{keys, sysflag, tags_code_of, Properties};
use rmq_net::RemotingCommand;
use rmq_storage::store::{AppendMessage, AppendOutcome, WaitForFlush};
use serde::{Deserialize, Serialize};

use crate::limits::{TRANSACTION_IMMUNITY_MAX, TRANSACTION_PENDING_MAX};
use crate::runtime::clock::now_ms;
use crate::runtime::latch::Latch;
use crate::runtime::mesh::submit_to;
use crate::runtime::placement::shard_for;
use crate::runtime::ShardId;
use crate::tables::topics::TRANS_HALF_TOPIC;

use super::ha::SlaveAck;
use super::message::{encode_payload, index_keys, Inbound};
use super::shard::Shard;
use super::{Failure, Outcome};

/// The half topic's only queue (Java stores every half message in queue 0).
pub const HALF_QUEUE_ID: i32 = 0;
/// The op topic's only queue (Java pairs op queue n with half queue n).
pub const OP_QUEUE_ID: i32 = 0;
/// Tag of an op record: the half message is done (Java `TransactionalMessageUtil.REMOVETAG`).
pub const OP_REMOVE_TAG: &str = "d";
/// Tag of an op record counting a check-back (ours; Java's op reader skips other tags).
pub const OP_CHECK_TAG: &str = "c";

/// The shard that owns every transaction: the owner of the half topic's queue.
#[must_use]
pub fn half_owner(shards: usize) -> ShardId {
    shard_for(TRANS_HALF_TOPIC, HALF_QUEUE_ID, shards)
}

/// One half message without an outcome, as the half-queue owner tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Local CommitLog offset of the half message on the owner.
    pub phys_offset: u64,
    /// `PGROUP`: whose live connections are asked on a check-back.
    pub producer_group: String,
    /// When the half message was stored, ms since the epoch.
    pub stored_ms: i64,
    /// When the next check-back (or the discard) is due, ms since the epoch.
    pub next_check_ms: i64,
    /// Check-backs so far (Java `TRANSACTION_CHECK_TIMES`).
    pub check_times: u32,
}

/// The pending set of the half-queue owner (empty and unused on every other shard).
#[derive(Debug, Default)]
pub struct Transactions {
    /// Half queue offset → pending half message; at most [`TRANSACTION_PENDING_MAX`].
    pending: RefCell<BTreeMap<u64, Pending>>,
    /// Half messages being appended (counted against the limit before they land).
    reserved: Cell<usize>,
    /// The pending set was rebuilt from the half and op logs ([`check::recover`]).
    recovered: Latch,
    /// Check-backs sent so far.
    checks_sent: Cell<u64>,
    /// Half messages discarded to `TRANS_CHECK_MAX_TIME_TOPIC` so far.
    discarded: Cell<u64>,
    /// Half messages the last rebuild found beyond [`TRANSACTION_PENDING_MAX`] (not tracked).
    untracked: Cell<u64>,
    /// The lowest half queue offset the rebuild could not track: an outcome for an offset at
    /// or above it that is not pending may be for an untracked half message, so it is refused
    /// (SYSTEM_BUSY) rather than answered as already resolved.
    first_untracked: Cell<Option<u64>>,
}

impl Transactions {
    /// The number of pending half messages.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.pending.borrow().len()
    }

    fn insert(&self, offset: u64, entry: Pending) -> bool {
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= TRANSACTION_PENDING_MAX {
            return false;
        }
        let previous = pending.insert(offset, entry);
        assert!(previous.is_none(), "a half queue offset is pending once");
        true
    }

    fn take(&self, offset: u64) -> Option<Pending> {
        self.pending.borrow_mut().remove(&offset)
    }

    fn restore(&self, offset: u64, entry: Pending) {
        // Re-inserting what was taken never exceeds the limit it was admitted under by more
        // than the sends admitted meanwhile; the map stays bounded by the limit plus the
        // resolutions in flight.
        self.pending.borrow_mut().insert(offset, entry);
    }
}

/// Per producer group: pending half messages and the oldest one's age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPending {
    /// Producer group.
    pub producer_group: String,
    /// Pending half messages of the group.
    pub count: u64,
    /// Age of the oldest one, ms.
    pub oldest_age_ms: i64,
    /// Most check-backs any of them had.
    pub max_check_times: u32,
}

/// The admin view of the pending set (`rmq admin trans-pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReport {
    /// Whether the rebuild after the last start finished.
    pub recovered: bool,
    /// Pending half messages in all.
    pub total: u64,
    /// Check-backs sent since start.
    pub checks_sent: u64,
    /// Half messages discarded since start.
    pub discarded: u64,
    /// Half messages the rebuild found beyond the limit (not tracked).
    pub untracked: u64,
    /// Per group, sorted by name.
    pub groups: Vec<GroupPending>,
}

/// The pending set per producer group (optionally one group), on the half-queue owner.
#[must_use]
pub fn report(shard: &Shard, group: Option<&str>, now_ms: i64) -> PendingReport {
    let tx = &shard.transactions;
    let mut groups: BTreeMap<&str, GroupPending> = BTreeMap::new();
    let pending = tx.pending.borrow();
    for entry in pending.values() {
        if group.is_some_and(|g| g != entry.producer_group) {
            continue;
        }
        let row = groups
            .entry(entry.producer_group.as_str())
            .or_insert_with(|| GroupPending {
                producer_group: entry.producer_group.clone(),
                count: 0,
                oldest_age_ms: 0,
                max_check_times: 0,
            });
        row.count += 1;
        row.oldest_age_ms = row
            .oldest_age_ms
            .max(now_ms.saturating_sub(entry.stored_ms));
        row.max_check_times = row.max_check_times.max(entry.check_times);
    }
    let groups: Vec<GroupPending> = groups.into_values().collect();
    PendingReport {
        recovered: tx.recovered.is_set(),
        total: groups.iter().map(|g| g.count).sum(),
        checks_sent: tx.checks_sent.get(),
        discarded: tx.discarded.get(),
        untracked: tx.untracked.get(),
        groups,
    }
}

/// The half-queue owner's requests: END_TRANSACTION ([`end::process`]) and
/// TRANSACTION_PENDING_STATS (ours: the [`PendingReport`] as JSON, optional ext field
/// `producerGroup` narrows it to one group).
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    use rmq_net::codec::codes::RequestCode;
    match request.request_code() {
        RequestCode::EndTransaction => end::process(shard, request).await,
        RequestCode::TransactionPendingStats => {
            let group = request.ext("producerGroup").filter(|g| !g.is_empty());
            let report = report(shard, group, now_ms());
            let body = serde_json::to_vec(&report).map_err(|e| {
                Failure::Code(
                    ResponseCode::SystemError,
                    format!("encoding the report: {e}"),
                )
            })?;
            super::table_reply(request, "pending transactions", body)
        }
        other => unreachable!("{other:?} is not a transaction request"),
    }
}

/// Whether a send is a half message: `TRAN_MSG=true`, unless it is a consumer's retry re-send
/// (reconsumed and delayed), which Java stores as an ordinary message.
#[must_use]
pub fn is_half(properties: &Properties, reconsume_times: i32) -> bool {
    let flagged = properties
        .get(keys::TRAN_MSG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let retry_resend = reconsume_times > 0
        && properties
            .get(keys::DELAY)
            .and_then(|d| d.parse::<i32>().ok())
            .is_some_and(|d| d > 0);
    flagged && !retry_resend
}

/// How long a half message is immune from check-backs: its `CHECK_IMMUNITY_TIME_IN_SECONDS`
/// (capped at [`TRANSACTION_IMMUNITY_MAX`]) when it parses, else `transactionTimeOut`.
#[must_use]
pub fn immunity_ms(properties: &Properties, transaction_time_out_ms: i64) -> i64 {
    let cap = i64::try_from(TRANSACTION_IMMUNITY_MAX.as_millis()).unwrap_or(i64::MAX);
    properties
        .get(keys::CHECK_IMMUNITY_TIME_IN_SECONDS)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0)
        .map_or(transaction_time_out_ms, |s| s.saturating_mul(1000).min(cap))
}

fn illegal(err: rmq_net::CodecError) -> Failure {
    Failure::Code(ResponseCode::MessageIllegal, err.to_string())
}

/// A half message on its way to the half-queue owner (owned, to cross the mesh).
struct HalfAppend {
    payload: Bytes,
    keys: String,
    tags_code: i64,
    sys_flag: i32,
    stored_ms: i64,
    producer_group: String,
    immunity_ms: i64,
    wait: WaitForFlush,
}

/// Stores a planned send with `TRAN_MSG=true` as a half message (on the half-queue owner,
/// through the mesh when that is another shard) and builds the send reply: the requested
/// queue id, the half queue offset (`tranStateTableOffset` from then on) and the half
/// message's offset msgId.
///
/// # Errors
/// NO_PERMISSION when `rejectTransactionMessage` is set; MESSAGE_ILLEGAL without `PGROUP`;
/// SYSTEM_BUSY past [`TRANSACTION_PENDING_MAX`]; the store's failures.
pub async fn send_half(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    header: &SendMessageRequestHeader,
    queue_id: i32,
    mut properties: Properties,
    born_host: SocketAddr,
) -> Outcome {
    if shard.config.reject_transaction_message {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] sending transaction message is forbidden",
                shard.config.broker_ip1
            ),
        ));
    }
    let producer_group = properties
        .get(keys::PGROUP)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::Code(
                ResponseCode::MessageIllegal,
                "a transaction message needs the PGROUP property (its producer group)".into(),
            )
        })?;
    let uniq = properties.uniq_key().unwrap_or_default().to_owned();
    assert!(!uniq.is_empty(), "UNIQ_KEY is ensured before a half send");
    properties
        .insert(keys::REAL_TOPIC, header.topic.as_str())
        .map_err(illegal)?;
    properties
        .insert(keys::REAL_QID, queue_id.to_string())
        .map_err(illegal)?;
    properties
        .insert(keys::TRANSACTION_ID, uniq.as_str())
        .map_err(illegal)?;
    let timeout_ms = i64::try_from(shard.config.transaction_time_out.as_millis()).unwrap_or(0);
    let immunity = immunity_ms(&properties, timeout_ms);
    let wait = match properties.get(keys::WAIT) {
        Some(v) if v.eq_ignore_ascii_case("false") => WaitForFlush::No,
        _ => WaitForFlush::AsPolicy,
    };
    let now = now_ms();
    let tags_code = tags_code_of(&properties);
    let index = index_keys(&properties);
    let sys_flag = (header.sys_flag & !sysflag::TRANSACTION_MASK) | sysflag::TRANSACTION_NOT_TYPE;
    let inbound = Inbound {
        topic: TRANS_HALF_TOPIC,
        queue_id: HALF_QUEUE_ID,
        flag: header.flag,
        sys_flag,
        born_timestamp: header.born_timestamp,
        born_host,
        reconsume_times: header.reconsume_times_or_zero(),
        properties,
        body: request.body.clone(),
    };
    let payload = encode_payload(inbound, shard.store_host, now).map_err(illegal)?;
    let half = HalfAppend {
        payload: payload.freeze(),
        keys: index,
        tags_code,
        sys_flag,
        stored_ms: now,
        producer_group,
        immunity_ms: immunity,
        wait,
    };
    let owner = half_owner(shard.shard_count());
    let (outcome, slave) = submit_to(shard, owner, move |target: Rc<Shard>| async move {
        store_half_here(&target, half).await
    })
    .await??;
    Ok(super::send::stored_reply(
        shard, request, owner, &outcome, &slave, queue_id, uniq,
    ))
}

/// Releases a slot of [`Transactions::reserved`] when the append it was taken for ends.
struct Reservation<'a>(&'a Transactions);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let reserved = self.0.reserved.get();
        assert!(reserved > 0, "reservation underflow");
        self.0.reserved.set(reserved - 1);
    }
}

/// On the half-queue owner: admits the half message against the limit, appends it and
/// tracks it.
async fn store_half_here(
    shard: &Rc<Shard>,
    half: HalfAppend,
) -> Result<(AppendOutcome, SlaveAck), Failure> {
    assert_eq!(
        half_owner(shard.shard_count()),
        shard.id,
        "half messages are stored by the half-queue owner"
    );
    super::append::refuse_on_slave(&shard.config)?;
    let tx = &shard.transactions;
    tx.recovered.wait().await;
    if tx.pending_count() + tx.reserved.get() >= TRANSACTION_PENDING_MAX {
        return Err(Failure::Code(
            ResponseCode::SystemBusy,
            format!(
                "[REJECTREQUEST]system busy, {TRANSACTION_PENDING_MAX} transactions are pending; commit or roll back some first"
            ),
        ));
    }
    tx.reserved.set(tx.reserved.get() + 1);
    let _reservation = Reservation(tx);
    let message = AppendMessage {
        topic: TRANS_HALF_TOPIC,
        queue_id: HALF_QUEUE_ID,
        tags_code: half.tags_code,
        keys: &half.keys,
        store_timestamp_ms: Some(half.stored_ms),
        sys_flag: half.sys_flag,
        payload: &half.payload,
    };
    let (landed, outcome, slave) =
        super::append::append_routed_replicated(shard, &message, half.wait).await?;
    assert_eq!(landed, shard.id, "the half queue is local to its owner");
    let tracked = tx.insert(
        outcome.queue_offset,
        Pending {
            phys_offset: outcome.phys_offset,
            producer_group: half.producer_group,
            stored_ms: half.stored_ms,
            next_check_ms: half.stored_ms.saturating_add(half.immunity_ms),
            check_times: 0,
        },
    );
    assert!(tracked, "a reserved slot always finds room");
    Ok((outcome, slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flagged_sends_that_are_not_retry_resends_are_half_messages() {
        let mut properties = Properties::new();
        assert!(!is_half(&properties, 0));
        properties.insert(keys::TRAN_MSG, "true").expect("insert");
        assert!(is_half(&properties, 0));
        properties.insert(keys::TRAN_MSG, "TRUE").expect("insert");
        assert!(is_half(&properties, 3), "reconsumed but not delayed");
        properties.insert(keys::DELAY, "3").expect("insert");
        assert!(!is_half(&properties, 3), "a retry re-send is ordinary");
        assert!(is_half(&properties, 0));
        properties.insert(keys::TRAN_MSG, "false").expect("insert");
        assert!(!is_half(&properties, 0));
    }

    #[test]
    fn immunity_is_the_property_when_it_parses_else_the_timeout() {
        let mut properties = Properties::new();
        assert_eq!(immunity_ms(&properties, 6_000), 6_000);
        properties
            .insert(keys::CHECK_IMMUNITY_TIME_IN_SECONDS, "20")
            .expect("insert");
        assert_eq!(immunity_ms(&properties, 6_000), 20_000);
        properties
            .insert(keys::CHECK_IMMUNITY_TIME_IN_SECONDS, "soon")
            .expect("insert");
        assert_eq!(immunity_ms(&properties, 6_000), 6_000);
        properties
            .insert(keys::CHECK_IMMUNITY_TIME_IN_SECONDS, "-4")
            .expect("insert");
        assert_eq!(immunity_ms(&properties, 6_000), 6_000);
        properties
            .insert(keys::CHECK_IMMUNITY_TIME_IN_SECONDS, "99999999999")
            .expect("insert");
        assert_eq!(immunity_ms(&properties, 6_000), 86_400_000, "capped");
    }

    #[test]
    fn the_pending_set_refuses_past_its_limit_and_never_holds_an_offset_twice() {
        let tx = Transactions::default();
        let entry = |n: u64| Pending {
            phys_offset: n * 100,
            producer_group: "G".into(),
            stored_ms: 1,
            next_check_ms: 2,
            check_times: 0,
        };
        assert!(tx.insert(7, entry(7)));
        assert_eq!(tx.take(7), Some(entry(7)));
        assert_eq!(tx.take(7), None, "taken once");
        tx.restore(7, entry(7));
        assert_eq!(tx.pending_count(), 1);
    }
}
