//! `rmq admin timer-status`: a broker's pending timer messages (TIMER_STATUS, ours, 60001):
//! per real topic, the next due time, and per shard the wheel's cursor and counters.
//! Runs in the CLI's own runtime; never touches broker state directly.

use std::fmt::Write as _;

use rmq_net::codec::codes::RequestCode;
use rmq_net::{ExtFields, RemotingCommand};

use crate::admin::{call, AdminError};
use crate::broker::timer::admin::TimerReport;

/// TIMER_STATUS from one broker (`topic` narrows the per-topic counts to one topic).
///
/// # Errors
/// [`AdminError`]; a body that is not the report is [`AdminError::Usage`] naming why.
pub async fn timer_status(broker: &str, topic: Option<&str>) -> Result<TimerReport, AdminError> {
    let mut ext = ExtFields::new();
    if let Some(topic) = topic {
        ext.insert("topic", topic);
    }
    let reply = call(
        broker,
        RemotingCommand::request(RequestCode::TimerStatus, ext),
    )
    .await?;
    serde_json::from_slice(&reply.body)
        .map_err(|e| AdminError::Usage(format!("malformed timer-status body: {e}")))
}

fn when(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| ms.to_string())
}

/// The `timer-status` table: one line per topic, then one per shard, then the totals.
#[must_use]
pub fn render_timer_status(report: &TimerReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<48} {:>12}", "#Topic", "#Pending");
    for (topic, count) in &report.pending_by_topic {
        let _ = writeln!(out, "{topic:<48} {count:>12}");
    }
    let _ = writeln!(
        out,
        "{:<6} {:>12} {:>16} {:>16} {:>12} {:>12}",
        "#Shard", "#Pending", "#NextDueMs", "#CursorMs", "#Delivered", "#Backlog"
    );
    for shard in &report.shards {
        let _ = writeln!(
            out,
            "{:<6} {:>12} {:>16} {:>16} {:>12} {:>12}",
            shard.shard,
            shard.pending,
            when(shard.next_due_ms),
            shard.cursor_ms,
            shard.delivered_since_start,
            shard.unenqueued
        );
    }
    let _ = writeln!(
        out,
        "pending={} nextDueMs={} precisionMs={} maxDelaySec={}",
        report.pending,
        when(report.next_due_ms),
        report.precision_ms,
        report.max_delay_sec
    );
    out
}
