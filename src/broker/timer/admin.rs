//! TIMER_STATUS (ours, 60001): every shard's timer wheel gathered by the accepting shard (a
//! map-reduce over the mesh) into a [`TimerReport`]: pending timers per real topic, the next
//! due slot, the wheel's cursor and counters since start.
//!
//! Owns no state. Must never: hold a `RefCell` borrow across an `.await`, or report more
//! topics than the shards count ([`crate::limits::TIMER_TOPICS_COUNTED_MAX`] each).

use std::collections::BTreeMap;
use std::rc::Rc;

use rmq_net::codec::codes::ResponseCode;
use rmq_net::RemotingCommand;
use serde::{Deserialize, Serialize};

use crate::runtime::mesh::broadcast;

use super::super::shard::Shard;
use super::super::{Failure, Outcome};

/// One shard's timers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardTimers {
    /// The shard.
    pub shard: usize,
    /// Timers in the wheel, not yet delivered.
    pub pending: u64,
    /// The earliest slot holding a timer entry (ms since the epoch), if any: a delivery or,
    /// for a timer due further than the roll window, its next roll.
    pub next_due_ms: Option<i64>,
    /// The next slot the wheel fires (everything before fired).
    pub cursor_ms: i64,
    /// Timer messages stored but not yet in the wheel (timer queue backlog).
    pub unenqueued: u64,
    /// Timers moved into the wheel since start.
    pub enqueued_since_start: u64,
    /// Timers delivered since start.
    pub delivered_since_start: u64,
    /// Timers dropped as undeliverable since start.
    pub dropped_since_start: u64,
    /// Timer copies rolled (re-stored in the timer queue, not due yet) since start.
    #[serde(default)]
    pub rolled_since_start: u64,
    /// Rolls not repeated after a restart (their rolled copy was found again) since start.
    #[serde(default)]
    pub rolls_deduplicated_since_start: u64,
    /// Pending timers per real topic.
    pub pending_by_topic: BTreeMap<String, u64>,
}

/// The broker's timers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerReport {
    /// `timerPrecisionMs`.
    pub precision_ms: u64,
    /// `timerMaxDelaySec`.
    pub max_delay_sec: u64,
    /// Pending timers over all shards.
    pub pending: u64,
    /// The earliest slot with a timer entry (a delivery or a roll) over all shards.
    pub next_due_ms: Option<i64>,
    /// Pending timers per real topic over all shards.
    pub pending_by_topic: BTreeMap<String, u64>,
    /// Per shard.
    pub shards: Vec<ShardTimers>,
}

/// This shard's part of the report.
#[must_use]
pub fn shard_timers(shard: &Shard) -> ShardTimers {
    let timer = &shard.timer;
    let wheel = timer.wheel.borrow();
    let queue = super::timer_queue(shard.id, shard.shard_count());
    let stored = shard.store.max_offset(super::TIMER_TOPIC, queue);
    ShardTimers {
        shard: shard.id.0,
        pending: wheel.pending(),
        next_due_ms: wheel.next_due_ms(),
        cursor_ms: wheel.cursor_ms(),
        unenqueued: stored.saturating_sub(timer.enqueued.get()),
        enqueued_since_start: timer.counters.enqueued.get(),
        delivered_since_start: timer.counters.delivered.get(),
        dropped_since_start: timer.counters.dropped.get(),
        rolled_since_start: timer.counters.rolled.get(),
        rolls_deduplicated_since_start: timer.counters.rolls_deduplicated.get(),
        pending_by_topic: timer
            .pending_by_topic
            .borrow()
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(topic, count)| (topic.clone(), *count))
            .collect(),
    }
}

/// Gathers every shard's timers.
///
/// # Errors
/// SYSTEM_ERROR when a shard does not answer.
pub async fn report(shard: &Rc<Shard>) -> Result<TimerReport, Failure> {
    let answers = broadcast(
        shard,
        |owner: Rc<Shard>| async move { shard_timers(&owner) },
    )
    .await;
    let mut report = TimerReport {
        precision_ms: shard.config.timer_precision_ms,
        max_delay_sec: shard.config.timer_max_delay_sec,
        ..TimerReport::default()
    };
    for answer in answers {
        let part = answer.map_err(|e| {
            Failure::Code(
                ResponseCode::SystemError,
                format!("a shard did not answer: {e}"),
            )
        })?;
        report.pending += part.pending;
        report.next_due_ms = match (report.next_due_ms, part.next_due_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (topic, count) in &part.pending_by_topic {
            *report.pending_by_topic.entry(topic.clone()).or_default() += count;
        }
        report.shards.push(part);
    }
    Ok(report)
}

/// Serves TIMER_STATUS; an ext field `topic` narrows `pendingByTopic` to one topic.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let mut report = report(shard).await?;
    if let Some(topic) = request.ext("topic").filter(|t| !t.is_empty()) {
        report.pending_by_topic.retain(|name, _| name == topic);
        for part in &mut report.shards {
            part.pending_by_topic.retain(|name, _| name == topic);
        }
    }
    let body = serde_json::to_vec(&report).map_err(|e| {
        Failure::Code(
            ResponseCode::SystemError,
            format!("encoding the report: {e}"),
        )
    })?;
    super::super::table_reply(request, "timer status", body)
}
