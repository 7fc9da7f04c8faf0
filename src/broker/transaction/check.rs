//! The half-queue owner's background work: the rebuild of the pending set at start
//! ([`recover`]: half queue minus op log) and the check-back loop (Java
//! `TransactionalMessageCheckService` + `AbstractTransactionalMessageCheckListener`): a
//! pending half message whose immunity (`transactionTimeOut` or its
//! `CHECK_IMMUNITY_TIME_IN_SECONDS`) passed is checked every `transactionCheckInterval` by a
//! oneway CHECK_TRANSACTION_STATE (39) to one live connection of its producer group (known
//! from heartbeats on the control shard); after `transactionCheckMax` check-backs it is
//! discarded to `TRANS_CHECK_MAX_TIME_TOPIC` (and logged).
//!
//! Must never: run on a shard other than the half-queue owner or on a slave, wait for a
//! producer's answer (the check is oneway; the answer is an END_TRANSACTION), or count a
//! check-back twice for one tick.

use std::rc::Rc;
use std::time::Duration;

use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::transaction::CheckTransactionStateRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::{keys, msg_id, tags_code_of, CrcCheck, MessageRecord};
use rmq_net::RemotingCommand;
use rmq_storage::store::{AppendMessage, GetRequest, GetStatus, TagFilter};

use crate::limits::{TRANSACTION_PENDING_MAX, TRANSACTION_RECOVERY_PAGE};
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::{notify, submit_to, ConnKey};
use crate::runtime::placement::{global_offset, shard_for};
use crate::tables::topics::{TRANS_CHECK_MAX_TIME_TOPIC, TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};

use super::super::message::index_keys;
use super::super::shard::{Shard, CONTROL_SHARD};
use super::super::{storage_failure, Failure};
use super::end::{encode_record, parse_op, write_check, write_op, Op};
use super::{half_owner, immunity_ms, Pending, HALF_QUEUE_ID, OP_QUEUE_ID};

/// The check loop's period at most (a shorter `transactionCheckInterval` ticks faster).
pub const CHECK_TICK_MAX: Duration = Duration::from_secs(1);
/// Most half messages one tick checks or discards; the rest wait for the next tick.
pub const CHECK_BATCH_MAX: usize = 1024;
/// Wait before retrying a rebuild that failed (a store or mesh error).
pub const RECOVERY_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the rebuild and then the check loop, on the half-queue owner of a master.
pub fn start(shard: &Rc<Shard>) {
    if half_owner(shard.shard_count()) != shard.id || !shard.config.broker_role.is_master() {
        return;
    }
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        loop {
            match recover(&shard).await {
                Ok(()) => break,
                Err(Failure::Code(code, remark)) => {
                    tracing::error!(?code, %remark, "rebuilding pending transactions failed; retrying");
                    compio::time::sleep(RECOVERY_RETRY_INTERVAL).await;
                }
            }
        }
        let tick = shard.config.transaction_check_interval.min(CHECK_TICK_MAX);
        loop {
            compio::time::sleep(tick).await;
            if shard.stopping.is_set() {
                return;
            }
            check_due(&shard).await;
        }
    })
    .detach();
}

/// Rebuilds the pending set: every half message in the half queue whose offset no op record
/// names. Memory while rebuilding: one bit per retained half message, plus the pending
/// entries (at most [`TRANSACTION_PENDING_MAX`]; the rest are counted and logged).
///
/// # Errors
/// A store or mesh failure (the caller retries).
pub async fn recover(shard: &Rc<Shard>) -> Result<(), Failure> {
    let tx = &shard.transactions;
    assert!(!tx.recovered.is_set(), "the pending set is rebuilt once");
    let Some((min, max)) = shard.store.offsets(TRANS_HALF_TOPIC, HALF_QUEUE_ID) else {
        tx.recovered.set();
        return Ok(());
    };
    let span = usize::try_from(max.saturating_sub(min)).unwrap_or(usize::MAX);
    let mut done = vec![0_u64; span.div_ceil(64)];
    let mut checked: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    let op_owner = shard_for(TRANS_OP_HALF_TOPIC, OP_QUEUE_ID, shard.shard_count());
    let mut op_next = 0_u64;
    loop {
        let (offsets, next) = submit_to(shard, op_owner, move |owner: Rc<Shard>| async move {
            read_ops(&owner, op_next).await
        })
        .await??;
        for op in offsets {
            match op {
                Op::Done(half) if (min..max).contains(&half) => {
                    let bit = usize::try_from(half - min).expect("within the span");
                    done[bit / 64] |= 1 << (bit % 64);
                }
                Op::Checked(half, checks) if (min..max).contains(&half) => {
                    // Bounded like the pending set; past it a count restarts from the property.
                    if checked.len() < TRANSACTION_PENDING_MAX || checked.contains_key(&half) {
                        let count = checked.entry(half).or_insert(0);
                        *count = (*count).max(checks);
                    }
                }
                Op::Done(_) | Op::Checked(..) => {}
            }
        }
        if next <= op_next {
            break;
        }
        op_next = next;
    }
    let timeout_ms = i64::try_from(shard.config.transaction_time_out.as_millis()).unwrap_or(0);
    let (mut tracked, mut untracked) = (0_u64, 0_u64);
    for offset in min..max {
        let bit = usize::try_from(offset - min).expect("within the span");
        if done[bit / 64] & (1 << (bit % 64)) != 0 {
            continue;
        }
        let Some((phys, record, stored_ms)) = read_half(shard, offset).await? else {
            continue;
        };
        let entry = Pending {
            phys_offset: phys,
            producer_group: record
                .properties
                .get(keys::PGROUP)
                .unwrap_or_default()
                .to_owned(),
            stored_ms,
            next_check_ms: stored_ms.saturating_add(immunity_ms(&record.properties, timeout_ms)),
            check_times: checked.get(&offset).copied().unwrap_or_else(|| {
                record
                    .properties
                    .get(keys::TRANSACTION_CHECK_TIMES)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0)
            }),
        };
        if tx.insert(offset, entry) {
            tracked += 1;
        } else {
            if untracked == 0 {
                tx.first_untracked.set(Some(offset));
            }
            untracked += 1;
        }
        crate::runtime::cooperate::yield_now().await;
    }
    tx.untracked.set(untracked);
    if untracked > 0 {
        tracing::error!(
            untracked,
            limit = TRANSACTION_PENDING_MAX,
            "more pending half messages than the limit; the excess is not checked back until a restart finds room"
        );
    }
    tracing::info!(
        tracked,
        half_min = min,
        half_max = max,
        "pending transactions rebuilt"
    );
    tx.recovered.set();
    Ok(())
}

/// On the op queue's owner: one page of op records from `from`, and the next op offset to
/// read (equal to `from` at the end).
async fn read_ops(shard: &Rc<Shard>, from: u64) -> Result<(Vec<Op>, u64), Failure> {
    let get = GetRequest {
        topic: TRANS_OP_HALF_TOPIC,
        queue_id: OP_QUEUE_ID,
        queue_offset: from,
        max_count: TRANSACTION_RECOVERY_PAGE,
        max_bytes: 1024 * 1024,
        filter: TagFilter::All,
    };
    let result = shard
        .store
        .get_messages(&get)
        .await
        .map_err(|e| storage_failure(&e))?;
    let mut offsets = Vec::with_capacity(result.records.len());
    for stored in &result.records {
        let Ok((record, _)) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip) else {
            tracing::warn!(phys = stored.phys_offset, "unreadable op record skipped");
            continue;
        };
        if let Some(op) = parse_op(record.properties.tags(), &record.body) {
            offsets.push(op);
        }
    }
    let next = if result.status == GetStatus::Found || result.next_begin_offset > from {
        result.next_begin_offset.max(from)
    } else {
        from
    };
    Ok((offsets, next))
}

/// The half message at half queue `offset`: its local CommitLog offset, record and store time;
/// `None` when retention removed it.
async fn read_half(
    shard: &Rc<Shard>,
    offset: u64,
) -> Result<Option<(u64, MessageRecord, i64)>, Failure> {
    let get = GetRequest {
        topic: TRANS_HALF_TOPIC,
        queue_id: HALF_QUEUE_ID,
        queue_offset: offset,
        max_count: 1,
        max_bytes: 1,
        filter: TagFilter::All,
    };
    let result = shard
        .store
        .get_messages(&get)
        .await
        .map_err(|e| storage_failure(&e))?;
    let Some(stored) = result.records.into_iter().next() else {
        return Ok(None);
    };
    match MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip) {
        Ok((record, _)) => Ok(Some((
            stored.phys_offset,
            record,
            stored.store_timestamp_ms,
        ))),
        Err(err) => {
            tracing::error!(offset, %err, "unreadable half message skipped");
            Ok(None)
        }
    }
}

/// One tick: checks back or discards every due pending half message (at most
/// [`CHECK_BATCH_MAX`]).
async fn check_due(shard: &Rc<Shard>) {
    let tx = &shard.transactions;
    let now = now_ms();
    let due: Vec<u64> = tx
        .pending
        .borrow()
        .iter()
        .filter(|(_, entry)| entry.next_check_ms <= now)
        .map(|(offset, _)| *offset)
        .take(CHECK_BATCH_MAX)
        .collect();
    let interval_ms =
        i64::try_from(shard.config.transaction_check_interval.as_millis()).unwrap_or(i64::MAX);
    let check_max = shard.config.transaction_check_max;
    for offset in due {
        // Resolved meanwhile (an END_TRANSACTION ran while this tick awaited).
        let Some(entry) = tx.pending.borrow().get(&offset).cloned() else {
            continue;
        };
        if entry.check_times >= check_max {
            discard(shard, offset).await;
            continue;
        }
        let checks = entry.check_times + 1;
        if let Some(live) = tx.pending.borrow_mut().get_mut(&offset) {
            live.check_times = checks;
            live.next_check_ms = now.saturating_add(interval_ms);
        }
        if let Err(Failure::Code(code, remark)) = write_check(shard, offset, checks).await {
            tracing::warn!(offset, ?code, %remark, "transaction check count not recorded");
        }
        if let Err(Failure::Code(code, remark)) = send_check(shard, offset, &entry, checks).await {
            tracing::warn!(offset, ?code, %remark, "transaction check-back not sent");
        }
    }
}

/// Sends CHECK_TRANSACTION_STATE for one half message to a live connection of its producer
/// group. No live connection is not an error: the check counts, and the next one may find one.
async fn send_check(
    shard: &Rc<Shard>,
    offset: u64,
    entry: &Pending,
    checks: u32,
) -> Result<(), Failure> {
    let group = entry.producer_group.clone();
    let connection = submit_to(shard, CONTROL_SHARD, move |control: Rc<Shard>| async move {
        let clients = control.control().clients.borrow();
        clients
            .producer_members(&group)
            .and_then(|members| members.keys().next().copied())
    })
    .await?;
    let Some(connection) = connection else {
        tracing::info!(
            offset,
            group = entry.producer_group,
            checks,
            "no live producer connection for a transaction check-back"
        );
        return Ok(());
    };
    let stored = shard
        .store
        .read_by_phys_offset(entry.phys_offset)
        .await
        .map_err(|e| storage_failure(&e))?;
    let (mut record, _) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip)
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let half_phys = global_offset(shard.id, i64::try_from(entry.phys_offset).unwrap_or(0));
    let uniq = record.properties.uniq_key().unwrap_or_default().to_owned();
    let real_topic = record
        .properties
        .get(keys::REAL_TOPIC)
        .unwrap_or_default()
        .to_owned();
    // The body is the half message as the producer sent it: real topic and queue.
    record.topic.clone_from(&real_topic);
    record.queue_id = record
        .properties
        .get(keys::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    record.queue_offset = i64::try_from(offset).unwrap_or(i64::MAX);
    record.physical_offset = half_phys;
    record
        .properties
        .insert(keys::TRANSACTION_CHECK_TIMES, checks.to_string())
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let body = encode_record(&record)
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let header = CheckTransactionStateRequestHeader {
        tran_state_table_offset: i64::try_from(offset).unwrap_or(i64::MAX),
        commit_log_offset: half_phys,
        msg_id: Some(uniq.clone()),
        transaction_id: Some(
            record
                .properties
                .get(keys::TRANSACTION_ID)
                .map_or_else(|| uniq.clone(), str::to_owned),
        ),
        offset_msg_id: Some(msg_id::encode(shard.store_host, half_phys)),
        topic: Some(real_topic),
        broker_name: Some(shard.config.broker_name.clone()),
    };
    let command = RemotingCommand::request(RequestCode::CheckTransactionState, header.to_ext())
        .oneway()
        .with_body(body.freeze());
    send_oneway(shard, connection, command)?;
    let tx = &shard.transactions;
    tx.checks_sent.set(tx.checks_sent.get() + 1);
    tracing::debug!(offset, checks, "transaction check-back sent");
    Ok(())
}

/// Hands `command` to the shard that owns `connection`, which writes it if still open.
fn send_oneway(
    shard: &Rc<Shard>,
    connection: ConnKey,
    command: RemotingCommand,
) -> Result<(), Failure> {
    notify(
        shard,
        connection.shard,
        move |owner: Rc<Shard>| async move {
            let conns = owner.conns.borrow();
            match conns.get(&connection.conn) {
                Some(conn) => {
                    if let Err(err) = conn.try_send_oneway(command) {
                        tracing::debug!(%err, "CHECK_TRANSACTION_STATE dropped");
                    }
                }
                None => tracing::debug!("CHECK_TRANSACTION_STATE: the producer connection closed"),
            }
        },
    )
    .map_err(Failure::from)
}

/// Moves a half message that used up its check-backs to `TRANS_CHECK_MAX_TIME_TOPIC` queue 0
/// (Java `resolveDiscardMsg`), records it as done and forgets it. A failure leaves it pending
/// for the next tick.
async fn discard(shard: &Rc<Shard>, offset: u64) {
    let tx = &shard.transactions;
    let Some(entry) = tx.take(offset) else {
        return;
    };
    match discard_taken(shard, offset, &entry).await {
        Ok(()) => {
            tx.discarded.set(tx.discarded.get() + 1);
            tracing::warn!(
                offset,
                group = entry.producer_group,
                checks = entry.check_times,
                "half message discarded to {TRANS_CHECK_MAX_TIME_TOPIC} after its check-backs"
            );
        }
        Err(Failure::Code(code, remark)) => {
            tracing::warn!(offset, ?code, %remark, "discarding a half message failed; retrying");
            tx.restore(offset, entry);
        }
    }
}

async fn discard_taken(shard: &Rc<Shard>, offset: u64, entry: &Pending) -> Result<(), Failure> {
    ensure_check_max_topic(shard).await?;
    let stored = shard
        .store
        .read_by_phys_offset(entry.phys_offset)
        .await
        .map_err(|e| storage_failure(&e))?;
    let (mut record, _) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip)
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let now = now_ms();
    record.topic = TRANS_CHECK_MAX_TIME_TOPIC.to_owned();
    record.queue_id = 0;
    record.queue_offset = 0;
    record.physical_offset = 0;
    record.store_timestamp = now;
    record
        .properties
        .insert(keys::TRANSACTION_CHECK_TIMES, entry.check_times.to_string())
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let tags_code = tags_code_of(&record.properties);
    let index = index_keys(&record.properties);
    let sys_flag = record.sys_flag;
    let payload = encode_record(&record)
        .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
    let message = AppendMessage {
        topic: TRANS_CHECK_MAX_TIME_TOPIC,
        queue_id: 0,
        tags_code,
        keys: &index,
        store_timestamp_ms: Some(now),
        sys_flag,
        payload: &payload,
    };
    super::super::append::append_routed(shard, &message).await?;
    write_op(shard, offset).await
}

/// Creates `TRANS_CHECK_MAX_TIME_TOPIC` on the control shard when this shard does not see it.
async fn ensure_check_max_topic(shard: &Rc<Shard>) -> Result<(), Failure> {
    if shard.topics.get().get(TRANS_CHECK_MAX_TIME_TOPIC).is_some() {
        return Ok(());
    }
    let snapshot = submit_to(shard, CONTROL_SHARD, |control: Rc<Shard>| async move {
        let ensured = control
            .control()
            .topics
            .borrow_mut()
            .create_trans_check_max_time_topic(now_ms())
            .map_err(|e| e.to_string())?;
        if ensured.created {
            super::super::replicate::publish_topics(&control).await;
            super::super::control::register::request(
                &control,
                vec![TRANS_CHECK_MAX_TIME_TOPIC.to_owned()],
            );
        }
        Ok::<_, String>(control.topics.get())
    })
    .await?
    .map_err(|remark| Failure::Code(ResponseCode::SystemError, remark))?;
    shard.topics.install(snapshot);
    Ok(())
}
