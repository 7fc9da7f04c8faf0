//! END_TRANSACTION (37) on the half-queue owner (Java `EndTransactionProcessor`): checks the
//! request against the pending half message (producer group, half queue offset, CommitLog
//! offset), then on COMMIT stores the real message in its real topic and queue (on that
//! queue's owner, with the transaction properties removed, sysFlag COMMIT and the half
//! message's offset as `preparedTransactionOffset`) and writes the op record; on ROLLBACK only
//! the op record. A second outcome for a resolved half message is answered and ignored.
//!
//! Must never: store a real message for a half message that is not pending here (the entry is
//! taken before the commit, so two commits cannot both store), answer a commit before the
//! real message is stored (and, under SYNC_FLUSH, durable), or run off the half-queue owner.

use std::rc::Rc;

use bytes::BytesMut;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::transaction::{
    EndTransactionRequestHeader, TRANSACTION_COMMIT_TYPE, TRANSACTION_NOT_TYPE,
    TRANSACTION_ROLLBACK_TYPE,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::{keys, sysflag, tags_code_of, CrcCheck, MessageRecord, Properties};
use rmq_net::RemotingCommand;
use rmq_storage::store::{AppendMessage, Durability, WaitForFlush};

use crate::runtime::clock::now_ms;
use crate::runtime::placement::{global_offset, split_offset};
use crate::tables::topics::{TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};

use super::super::ha::SlaveAck;
use super::super::message::index_keys;
use super::super::shard::Shard;
use super::super::{storage_failure, success, Failure, Outcome};
use super::{half_owner, Pending, OP_CHECK_TAG, OP_QUEUE_ID, OP_REMOVE_TAG};

/// Remark when no half message matches (Java's words).
pub const NOT_FOUND_REMARK: &str = "Find prepared transaction message failed";
/// Remark prefix of an outcome for a half message that already has one.
pub const ALREADY_RESOLVED_REMARK: &str = "the transaction was already resolved";

/// Properties a committed message does not carry over from its half message.
const TRANSACTION_PROPERTIES: &[&str] = &[
    keys::REAL_TOPIC,
    keys::REAL_QID,
    keys::TRAN_MSG,
    keys::TRANSACTION_CHECK_TIMES,
    keys::TRAN_PREPARED_QUEUE_OFFSET,
];

/// END_TRANSACTION on the half-queue owner.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = EndTransactionRequestHeader::decode_command(request)?;
    if shard.config.broker_role == crate::config::BrokerRole::Slave {
        return Err(Failure::Code(
            ResponseCode::SlaveNotAvailable,
            "Message store is slave mode, so end transaction is forbidden. ".into(),
        ));
    }
    assert_eq!(
        half_owner(shard.shard_count()),
        shard.id,
        "END_TRANSACTION routed off the half-queue owner"
    );
    let commit = match header.commit_or_rollback {
        TRANSACTION_COMMIT_TYPE => true,
        TRANSACTION_ROLLBACK_TYPE => false,
        TRANSACTION_NOT_TYPE => {
            // Java answers nothing; a client that asked for a reply hears that it was noted.
            let mut response = success(request);
            response.remark =
                Some("transaction state unknown; the broker will check back later".into());
            return Ok(response);
        }
        other => {
            return Err(Failure::Code(
                ResponseCode::InvalidParameter,
                format!("commitOrRollback {other} is not 0 (unknown), 8 (commit) or 12 (rollback)"),
            ))
        }
    };
    let tx = &shard.transactions;
    tx.recovered.wait().await;
    let offset = u64::try_from(header.tran_state_table_offset)
        .map_err(|_| not_found(&header, "tranStateTableOffset is negative"))?;
    let Some(entry) = tx.pending.borrow().get(&offset).cloned() else {
        return already_resolved(shard, request, &header, offset).await;
    };
    let phys = global_offset(
        shard.id,
        i64::try_from(entry.phys_offset).unwrap_or(i64::MAX),
    );
    if phys != header.commit_log_offset {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!(
                "The commit log offset wrong: the half message at tranStateTableOffset {offset} is at {phys}, not {}",
                header.commit_log_offset
            ),
        ));
    }
    if entry.producer_group != header.producer_group {
        return Err(group_wrong(&entry.producer_group, &header.producer_group));
    }
    let taken = tx
        .take(offset)
        .expect("checked pending above, no await since");
    match resolve(shard, offset, &taken, commit).await {
        Ok((durability, slave)) => {
            tracing::debug!(
                offset,
                commit,
                from_check = header.from_transaction_check,
                "transaction resolved"
            );
            Ok(super::super::send::with_slave_ack(
                super::super::send::with_durability(success(request), durability),
                &slave,
            ))
        }
        Err(failure) => {
            tx.restore(offset, taken);
            Err(failure)
        }
    }
}

fn not_found(header: &EndTransactionRequestHeader, why: &str) -> Failure {
    Failure::Code(
        ResponseCode::SystemError,
        format!(
            "{NOT_FOUND_REMARK}: {why} (tranStateTableOffset {}, commitLogOffset {})",
            header.tran_state_table_offset, header.commit_log_offset
        ),
    )
}

fn group_wrong(stored: &str, asked: &str) -> Failure {
    Failure::Code(
        ResponseCode::SystemError,
        format!("The producer group wrong: the half message belongs to {stored}, not {asked}"),
    )
}

/// An outcome for a half message that is not pending: SUCCESS (ignored) when the offsets name
/// a half message of this group that was resolved; SYSTEM_ERROR when they name nothing.
async fn already_resolved(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    header: &EndTransactionRequestHeader,
    offset: u64,
) -> Outcome {
    let (holder, local) = split_offset(header.commit_log_offset)
        .filter(|(holder, _)| *holder == shard.id)
        .ok_or_else(|| not_found(header, "commitLogOffset is not a half message offset"))?;
    let max = shard
        .store
        .max_offset(TRANS_HALF_TOPIC, super::HALF_QUEUE_ID);
    if offset >= max {
        return Err(not_found(header, "no half message at that offset"));
    }
    if let Some(first) = shard.transactions.first_untracked.get() {
        if offset >= first {
            return Err(Failure::Code(
                ResponseCode::SystemBusy,
                format!(
                    "[REJECTREQUEST]system busy, the half message at tranStateTableOffset {offset} may be one of the {} not tracked since start (over {} pending); it cannot be resolved before a restart",
                    shard.transactions.untracked.get(),
                    crate::limits::TRANSACTION_PENDING_MAX
                ),
            ));
        }
    }
    assert_eq!(holder, shard.id);
    let local = u64::try_from(local).map_err(|_| not_found(header, "bad commitLogOffset"))?;
    let stored = shard
        .store
        .read_by_phys_offset(local)
        .await
        .map_err(|_| not_found(header, "no record at commitLogOffset"))?;
    let is_half = stored.topic.as_ref() == TRANS_HALF_TOPIC.as_bytes();
    if !is_half || u64::try_from(stored.queue_offset).ok() != Some(offset) {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            format!(
                "The transaction state table offset wrong: commitLogOffset {} is not the half message at tranStateTableOffset {offset}",
                header.commit_log_offset
            ),
        ));
    }
    let (record, _) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip)
        .map_err(|_| not_found(header, "the half message is unreadable"))?;
    let group = record.properties.get(keys::PGROUP).unwrap_or_default();
    if group != header.producer_group {
        return Err(group_wrong(group, &header.producer_group));
    }
    let mut response = success(request);
    response.remark = Some(format!(
        "{ALREADY_RESOLVED_REMARK} (committed, rolled back or discarded); this END_TRANSACTION for tranStateTableOffset {offset} is ignored"
    ));
    Ok(response)
}

/// Commits (real message, then op record) or rolls back (op record) one taken half message.
pub(super) async fn resolve(
    shard: &Rc<Shard>,
    offset: u64,
    entry: &Pending,
    commit: bool,
) -> Result<(Durability, SlaveAck), Failure> {
    let mut result = (Durability::Durable, SlaveAck::NotAsked);
    if commit {
        let stored = shard
            .store
            .read_by_phys_offset(entry.phys_offset)
            .await
            .map_err(|e| storage_failure(&e))?;
        let (record, _) =
            MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip).map_err(|e| {
                Failure::Code(
                    ResponseCode::SystemError,
                    format!("{NOT_FOUND_REMARK}: the half message is unreadable: {e}"),
                )
            })?;
        let half_phys = global_offset(shard.id, i64::try_from(entry.phys_offset).unwrap_or(0));
        result = store_committed(shard, record, half_phys).await?;
    }
    write_op(shard, offset).await?;
    Ok(result)
}

/// Stores the real message of a committed half message on its real queue's owner.
async fn store_committed(
    shard: &Rc<Shard>,
    record: MessageRecord,
    half_phys: i64,
) -> Result<(Durability, SlaveAck), Failure> {
    let illegal =
        |e: rmq_net::CodecError| Failure::Code(ResponseCode::MessageIllegal, e.to_string());
    let mut properties = record.properties;
    let topic = properties
        .get(keys::REAL_TOPIC)
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::Code(
                ResponseCode::SystemError,
                "half message without REAL_TOPIC".into(),
            )
        })?;
    let queue_id = properties
        .get(keys::REAL_QID)
        .and_then(|q| q.parse::<i32>().ok())
        .filter(|q| *q >= 0)
        .ok_or_else(|| {
            Failure::Code(
                ResponseCode::SystemError,
                "half message without a valid REAL_QID".into(),
            )
        })?;
    for name in TRANSACTION_PROPERTIES {
        properties.remove(name);
    }
    let sys_flag =
        (record.sys_flag & !sysflag::TRANSACTION_MASK) | sysflag::TRANSACTION_COMMIT_TYPE;
    let now = now_ms();
    // A committed message honours DELAY as any commit record does (PROTOCOL.md §4.1 step 8).
    let parked = super::super::schedule::park(
        &shard.config.message_delay_level,
        sys_flag,
        (&topic, queue_id),
        &mut properties,
        now,
    )?;
    let (store_topic, store_queue, tags_code) = match parked {
        Some(parked) => (
            crate::tables::topics::SCHEDULE_TOPIC.to_owned(),
            parked.queue_id,
            parked.deliver_timestamp_ms,
        ),
        None => (topic.clone(), queue_id, tags_code_of(&properties)),
    };
    let index = index_keys(&properties);
    let real = MessageRecord {
        queue_id: store_queue,
        flag: record.flag,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag,
        born_timestamp: record.born_timestamp,
        born_host: record.born_host,
        store_timestamp: now,
        store_host: shard.store_host,
        reconsume_times: record.reconsume_times,
        prepared_transaction_offset: half_phys,
        body: record.body,
        topic: store_topic.clone(),
        properties,
    };
    let payload = encode_record(&real).map_err(illegal)?;
    let message = AppendMessage {
        topic: &store_topic,
        queue_id: store_queue,
        tags_code,
        keys: &index,
        store_timestamp_ms: Some(now),
        sys_flag,
        payload: &payload,
    };
    let (_, outcome, slave) =
        super::super::append::append_routed_replicated(shard, &message, WaitForFlush::AsPolicy)
            .await?;
    Ok((outcome.durability, slave))
}

pub(super) fn encode_record(record: &MessageRecord) -> Result<BytesMut, rmq_net::CodecError> {
    let mut out = BytesMut::with_capacity(record.encoded_len());
    record.encode(&mut out)?;
    Ok(out)
}

/// Records half queue `offset` as done in the op topic (Java: tag `d`, body = the offset),
/// durable as the flush policy asks before it returns.
pub(super) async fn write_op(shard: &Rc<Shard>, offset: u64) -> Result<(), Failure> {
    let body = offset.to_string();
    write_op_record(shard, OP_REMOVE_TAG, body, WaitForFlush::AsPolicy).await
}

/// Records that half queue `offset` was checked back `checks` times (ours: tag `c`, body
/// `<offset>,<checks>`; Java's op reader logs and skips tags other than `d`), so a restart
/// resumes the count instead of granting a fresh `transactionCheckMax`. Not waited for: a
/// lost record only costs a check more after a crash.
pub(super) async fn write_check(
    shard: &Rc<Shard>,
    offset: u64,
    checks: u32,
) -> Result<(), Failure> {
    let body = format!("{offset},{checks}");
    write_op_record(shard, OP_CHECK_TAG, body, WaitForFlush::No).await
}

async fn write_op_record(
    shard: &Rc<Shard>,
    tag: &str,
    body: String,
    wait: WaitForFlush,
) -> Result<(), Failure> {
    let mut properties = Properties::new();
    properties
        .insert(keys::TAGS, tag)
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let tags_code = tags_code_of(&properties);
    let now = now_ms();
    let op = MessageRecord {
        queue_id: OP_QUEUE_ID,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: now,
        born_host: shard.store_host,
        store_timestamp: now,
        store_host: shard.store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: bytes::Bytes::from(body),
        topic: TRANS_OP_HALF_TOPIC.to_owned(),
        properties,
    };
    let payload =
        encode_record(&op).map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let message = AppendMessage {
        topic: TRANS_OP_HALF_TOPIC,
        queue_id: OP_QUEUE_ID,
        tags_code,
        keys: "",
        store_timestamp_ms: Some(now),
        sys_flag: 0,
        payload: &payload,
    };
    super::super::append::append_routed_waiting(shard, &message, wait).await?;
    Ok(())
}

/// What one op record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The half message at this half queue offset is done (tag `d`).
    Done(u64),
    /// The half message at this offset was checked back this many times (tag `c`).
    Checked(u64, u32),
}

/// Parses an op record from its tag and body; `None` for anything else.
#[must_use]
pub fn parse_op(tag: Option<&str>, body: &[u8]) -> Option<Op> {
    let text = std::str::from_utf8(body).ok()?.trim();
    match tag {
        Some(OP_REMOVE_TAG) => text.parse().ok().map(Op::Done),
        Some(OP_CHECK_TAG) => {
            let (offset, checks) = text.split_once(',')?;
            Some(Op::Checked(offset.parse().ok()?, checks.parse().ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_records_are_done_offsets_or_check_counts() {
        let done = Some(OP_REMOVE_TAG);
        assert_eq!(parse_op(done, b"42"), Some(Op::Done(42)));
        assert_eq!(parse_op(done, b" 7\n"), Some(Op::Done(7)));
        assert_eq!(parse_op(done, b"-1"), None);
        assert_eq!(parse_op(done, b"x"), None);
        assert_eq!(parse_op(done, &[0xff]), None);
        let checked = Some(OP_CHECK_TAG);
        assert_eq!(parse_op(checked, b"42,3"), Some(Op::Checked(42, 3)));
        assert_eq!(parse_op(checked, b"42"), None);
        assert_eq!(parse_op(checked, b"42,-3"), None);
        assert_eq!(parse_op(Some("other"), b"42"), None);
        assert_eq!(parse_op(None, b"42"), None);
    }

    #[test]
    fn a_committed_message_drops_exactly_the_transaction_properties() {
        assert!(TRANSACTION_PROPERTIES.contains(&keys::TRAN_MSG));
        assert!(TRANSACTION_PROPERTIES.contains(&keys::REAL_TOPIC));
        assert!(
            !TRANSACTION_PROPERTIES.contains(&keys::UNIQ_KEY),
            "msgId is kept"
        );
        assert!(!TRANSACTION_PROPERTIES.contains(&keys::PGROUP));
    }
}
