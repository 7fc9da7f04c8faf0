//! `rmq admin reset-offset-by-time`: back-tracks a consumer group's offsets of a topic to a
//! store time on every master serving the topic (INVOKE_BROKER_TO_RESET_OFFSET, 222), printing
//! each queue's old and new offset. The old offsets are read just before the reset with
//! QUERY_CONSUMER_OFFSET (without the zero fallback), so a queue the group never committed
//! shows `-`. Timestamps are parsed as mqadmin's `-s` does (epoch ms, `now`,
//! `yyyy-MM-dd#HH:mm:ss:SSS`, read as UTC here) plus relative forms (`-1h`, `-30m`, `-10s`,
//! `-2d`, `-500ms`) and `-1` (the queues' max offsets).
//! `rmq admin consumer-status` asks the same masters for the live members' own offsets
//! (INVOKE_BROKER_TO_GET_CONSUMER_STATUS, 223), as mqadmin `getConsumerStatus` does.
//! Runs in the CLI's own runtime; never touches broker state directly.

use std::collections::BTreeMap;

use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::stats::{GetConsumerStatusBody, ResetOffsetBody};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::offset::{
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
};
use rmq_net::codec::header::reset::{GetConsumerStatusRequestHeader, ResetOffsetRequestHeader};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;
use serde::Serialize;

use crate::admin::{call, topic_route, topic_stats, AdminError};

/// One queue's reset, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetRow {
    /// Broker name.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
    /// Committed offset before the reset (`None`: none committed).
    pub old_offset: Option<i64>,
    /// Offset the group consumes from now.
    pub new_offset: i64,
}

/// Parses a `-s` value into epoch milliseconds (`-1`: the queues' max offsets).
///
/// # Errors
/// [`AdminError::Usage`] naming the accepted forms.
pub fn parse_timestamp(text: &str, now_ms: i64) -> Result<i64, AdminError> {
    let text = text.trim();
    let usage = || {
        AdminError::Usage(format!(
            "bad timestamp {text:?}: use epoch ms, now, -1, yyyy-MM-dd#HH:mm:ss:SSS (UTC) or a \
             relative -<n><ms|s|m|h|d>"
        ))
    };
    if text == "now" {
        return Ok(now_ms);
    }
    if text == "-1" {
        return Ok(-1);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return if ms >= 0 { Ok(ms) } else { Err(usage()) };
    }
    if let Some(relative) = text.strip_prefix('-') {
        let split = relative
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(usage)?;
        let (amount, unit) = relative.split_at(split);
        let amount: i64 = amount.parse().map_err(|_| usage())?;
        let unit_ms: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(usage()),
        };
        let back = amount.checked_mul(unit_ms).ok_or_else(usage)?;
        return Ok(now_ms.saturating_sub(back).max(0));
    }
    parse_date(text).ok_or_else(usage)
}

/// `yyyy-MM-dd#HH:mm:ss:SSS` as UTC epoch milliseconds.
fn parse_date(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('#')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(4, ':').map(str::parse::<i64>);
    let (hour, minute, second, milli) = (
        time.next()?.ok()?,
        time.next()?.ok()?,
        time.next()?.ok()?,
        time.next()?.ok()?,
    );
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second)
        && (0..1000).contains(&milli);
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + milli)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The committed offset of one queue, `None` when the group has none there.
async fn committed(broker: &str, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: group.to_owned(),
        topic: topic.to_owned(),
        queue_id,
        set_zero_if_not_found: Some(false),
    };
    let request = RemotingCommand::request(RequestCode::QueryConsumerOffset, header.to_ext());
    let reply = call(broker, request).await.ok()?;
    QueryConsumerOffsetResponseHeader::decode_command(&reply)
        .ok()
        .map(|h| h.offset)
}

/// INVOKE_BROKER_TO_RESET_OFFSET on one broker; the table it chose.
///
/// # Errors
/// [`AdminError`]: the broker's refusal (unknown topic or group...), or a malformed body.
pub async fn reset_on_broker(
    broker: &str,
    topic: &str,
    group: &str,
    timestamp: i64,
    force: bool,
) -> Result<BTreeMap<MessageQueue, i64>, AdminError> {
    let header = ResetOffsetRequestHeader {
        topic: topic.to_owned(),
        group: group.to_owned(),
        timestamp,
        is_force: force,
    };
    let request = RemotingCommand::request(RequestCode::InvokeBrokerToResetOffset, header.to_ext());
    let reply = call(broker, request).await?;
    debug_assert_eq!(reply.response_code(), ResponseCode::Success);
    ResetOffsetBody::from_json(&reply.body)
        .map(|body| body.offset_table)
        .map_err(|source| AdminError::Body {
            what: "ResetOffsetBody",
            source,
        })
}

/// Resets `group`'s offsets of `topic` on `brokers` (default: every master in the topic's
/// route) and returns every queue's old and new offset.
///
/// # Errors
/// [`AdminError`] of the first broker that refused.
pub async fn reset_offset_by_time(
    namesrv: &str,
    brokers: Option<Vec<String>>,
    topic: &str,
    group: &str,
    timestamp: i64,
    force: bool,
) -> Result<Vec<ResetRow>, AdminError> {
    let brokers = masters_of(namesrv, brokers, topic).await?;
    let mut rows = Vec::new();
    for broker in &brokers {
        // Old offsets, read just before the reset, for the queues the broker reports (an
        // unknown topic reports none; the reset then says why).
        let mut old = BTreeMap::new();
        if let Ok(stats) = topic_stats(broker, topic).await {
            for queue in stats.offset_table.keys() {
                let offset = committed(broker, group, topic, queue.queue_id).await;
                old.insert(queue.queue_id, offset);
            }
        }
        let table = reset_on_broker(broker, topic, group, timestamp, force).await?;
        for (queue, new_offset) in table {
            rows.push(ResetRow {
                old_offset: old.get(&queue.queue_id).copied().flatten(),
                broker_name: queue.broker_name,
                queue_id: queue.queue_id,
                new_offset,
            });
        }
    }
    Ok(rows)
}

/// One member's offset of one queue, as a client reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    /// Client id.
    pub client_id: String,
    /// Broker name.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
    /// The client's offset.
    pub offset: i64,
}

async fn masters_of(
    namesrv: &str,
    brokers: Option<Vec<String>>,
    topic: &str,
) -> Result<Vec<String>, AdminError> {
    let brokers = match brokers {
        Some(brokers) => brokers,
        None => topic_route(namesrv, topic)
            .await?
            .broker_datas
            .iter()
            .filter_map(|b| b.broker_addrs.get(&0).cloned())
            .collect(),
    };
    if brokers.is_empty() {
        return Err(AdminError::Usage(format!("no master serves topic {topic}")));
    }
    Ok(brokers)
}

/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS on `brokers` (default: the topic's masters): each live
/// member's own offsets of `topic` (only `client_id`'s when given).
///
/// # Errors
/// [`AdminError`] of the first broker that refused (SYSTEM_ERROR when nobody is online).
pub async fn consumer_status(
    namesrv: &str,
    brokers: Option<Vec<String>>,
    topic: &str,
    group: &str,
    client_id: Option<&str>,
) -> Result<Vec<StatusRow>, AdminError> {
    let mut rows = Vec::new();
    for broker in masters_of(namesrv, brokers, topic).await? {
        let header = GetConsumerStatusRequestHeader {
            topic: topic.to_owned(),
            group: group.to_owned(),
            client_addr: client_id.map(str::to_owned),
        };
        let request = RemotingCommand::request(
            RequestCode::InvokeBrokerToGetConsumerStatus,
            header.to_ext(),
        );
        let reply = call(&broker, request).await?;
        let body =
            GetConsumerStatusBody::from_json(&reply.body).map_err(|source| AdminError::Body {
                what: "GetConsumerStatusBody",
                source,
            })?;
        for (client, table) in body.consumer_table {
            for (queue, offset) in table {
                rows.push(StatusRow {
                    client_id: client.clone(),
                    broker_name: queue.broker_name,
                    queue_id: queue.queue_id,
                    offset,
                });
            }
        }
    }
    Ok(rows)
}

/// Consumer-status rows as a table: `#clientId #brokerName #queueId #offset`.
#[must_use]
pub fn render_status(rows: &[StatusRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:<32} {:<8} #offset",
        "#clientId", "#brokerName", "#queueId"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<40} {:<32} {:<8} {}",
            row.client_id, row.broker_name, row.queue_id, row.offset
        );
    }
    out
}

/// The rows as a table: `#brokerName #queueId #oldOffset #newOffset` (`-`: none committed).
#[must_use]
pub fn render(rows: &[ResetRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<8} {:<20} #newOffset",
        "#brokerName", "#queueId", "#oldOffset"
    );
    for row in rows {
        let old = row
            .old_offset
            .map_or_else(|| "-".to_owned(), |o| o.to_string());
        let _ = writeln!(
            out,
            "{:<32} {:<8} {:<20} {}",
            row.broker_name, row.queue_id, old, row.new_offset
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn timestamps_in_every_accepted_form() {
        assert_eq!(parse_timestamp("now", NOW).ok(), Some(NOW));
        assert_eq!(parse_timestamp("-1", NOW).ok(), Some(-1));
        assert_eq!(parse_timestamp("1234", NOW).ok(), Some(1234));
        assert_eq!(parse_timestamp("-1h", NOW).ok(), Some(NOW - 3_600_000));
        assert_eq!(parse_timestamp("-30m", NOW).ok(), Some(NOW - 1_800_000));
        assert_eq!(parse_timestamp("-10s", NOW).ok(), Some(NOW - 10_000));
        assert_eq!(parse_timestamp("-2d", NOW).ok(), Some(NOW - 172_800_000));
        assert_eq!(parse_timestamp("-500ms", NOW).ok(), Some(NOW - 500));
        assert_eq!(
            parse_timestamp("2023-11-14#22:13:20:000", NOW).ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1970-01-01#00:00:00:001", NOW).ok(),
            Some(1)
        );
        for bad in [
            "-5",
            "-1x",
            "yesterday",
            "2023-13-01#00:00:00:000",
            "2023-01-01 00:00:00",
        ] {
            assert!(parse_timestamp(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_render_old_and_new() {
        let rows = [ResetRow {
            broker_name: "b".into(),
            queue_id: 0,
            old_offset: None,
            new_offset: 3,
        }];
        let text = render(&rows);
        assert!(text.starts_with("#brokerName"));
        assert!(text
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().eq(["b", "0", "-", "3"])));
    }
}
