//! Message traces (mqadmin queryMsgTraceById): decodes the trace records clients with tracing
//! on send to the trace topic (Java `TraceDataEncoder`'s text format: records ended by
//! FIELD_SPLITOR, char 2, fields separated by CONTENT_SPLITOR, char 1), finds the records of
//! one message by querying the trace topic by key (trace messages carry the traced msgIds in
//! KEYS), and prints them as mqadmin's table or JSON.
//! Must never: trust a record's field count or numbers (a malformed record is skipped and
//! counted, never a panic), or return records of another message than the one asked for.

use std::fmt::Write as _;
use std::io::Read as _;

use rmq_net::codec::message::sysflag::{self, CompressionType};
use rmq_net::codec::message::MessageRecord;
use serde::Serialize;

use super::OpsError;

/// Java's `TraceConstants.CONTENT_SPLITOR`: separates the fields of one record.
pub const CONTENT_SPLITOR: char = '\u{1}';
/// Java's `TraceConstants.FIELD_SPLITOR`: ends one record.
pub const FIELD_SPLITOR: char = '\u{2}';

/// Largest inflated trace body we decode (Java's default `maxMessageSize`, 4 MiB: a trace
/// producer never sends a larger body, so a bigger one is not a trace message).
pub const TRACE_BODY_INFLATED_MAX: usize = 4 * 1024 * 1024;

/// The kind of a trace record (Java `TraceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TraceType {
    /// A send (producer side).
    Pub,
    /// Before a consume callback.
    SubBefore,
    /// After a consume callback.
    SubAfter,
    /// A transaction commit/rollback.
    EndTransaction,
}

impl TraceType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "Pub" => Some(Self::Pub),
            "SubBefore" => Some(Self::SubBefore),
            "SubAfter" => Some(Self::SubAfter),
            "EndTransaction" => Some(Self::EndTransaction),
            _ => None,
        }
    }
}

/// One decoded trace record; fields a record kind does not carry stay empty or zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceRecord {
    /// Kind (`None` only in a default value; decoded records always have one).
    pub trace_type: Option<TraceType>,
    /// When the client took the trace (epoch ms; 0 when the record has none).
    pub time_stamp: i64,
    /// Region id (Pub, SubBefore, EndTransaction).
    pub region_id: String,
    /// Producer or consumer group (SubAfter: only in the 9-field form).
    pub group_name: String,
    /// Consume request id (SubBefore, SubAfter).
    pub request_id: String,
    /// Topic of the traced message (Pub, EndTransaction).
    pub topic: String,
    /// The traced message's client msgId (UNIQ_KEY).
    pub msg_id: String,
    /// Tags (Pub, EndTransaction).
    pub tags: String,
    /// Keys of the traced message.
    pub keys: String,
    /// Broker the message was stored on (Pub, EndTransaction).
    pub store_host: String,
    /// Body length (Pub).
    pub body_length: i64,
    /// Send or consume cost in ms (Pub, SubAfter).
    pub cost_time: i64,
    /// Message type ordinal (Pub: 0 normal, 1 half, 2 commit, 3 delay).
    pub msg_type: i32,
    /// The broker's offset msgId (Pub, 14+ fields).
    pub offset_msg_id: String,
    /// Whether the send or consume succeeded.
    pub success: bool,
    /// Consumer retry count (SubBefore).
    pub retry_times: i32,
    /// Consume context code (SubAfter, 7+ fields).
    pub context_code: i32,
    /// The client host the record names (Pub, 15+ fields, 5.x clients).
    pub client_host: String,
}

/// The records of one trace body plus how many malformed records were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Well-formed records, in body order.
    pub records: Vec<TraceRecord>,
    /// Records with an unknown kind, too few fields, or a field that is not a number.
    pub skipped: usize,
}

/// Decodes a trace body (Java `TraceDataEncoder.decoderFromTraceDataString`).
#[must_use]
pub fn decode(body: &str) -> Decoded {
    let mut out = Decoded::default();
    for text in body.split(FIELD_SPLITOR).filter(|text| !text.is_empty()) {
        let fields: Vec<&str> = text.split(CONTENT_SPLITOR).collect();
        match decode_record(&fields) {
            Some(record) => out.records.push(record),
            None => out.skipped += 1,
        }
    }
    out
}

fn decode_record(line: &[&str]) -> Option<TraceRecord> {
    assert!(!line.is_empty(), "split yields at least one field");
    let trace_type = TraceType::parse(line[0])?;
    let number = |index: usize| line.get(index)?.trim().parse::<i64>().ok();
    let text = |index: usize| {
        line.get(index)
            .map_or_else(String::new, |s| (*s).to_owned())
    };
    let boolean = |index: usize| line.get(index).is_some_and(|s| s.trim() == "true");
    let record = match trace_type {
        TraceType::Pub => {
            if line.len() < 12 {
                return None;
            }
            // 13 fields: isSuccess at 12; 14: offsetMsgId, isSuccess; 15: then clientHost.
            let (offset_msg_id, success) = match line.len() {
                12 => (String::new(), true),
                13 => (String::new(), boolean(12)),
                _ => (text(12), boolean(13)),
            };
            TraceRecord {
                time_stamp: number(1)?,
                region_id: text(2),
                group_name: text(3),
                topic: text(4),
                msg_id: text(5),
                tags: text(6),
                keys: text(7),
                store_host: text(8),
                body_length: number(9)?,
                cost_time: number(10)?,
                msg_type: i32::try_from(number(11)?).ok()?,
                offset_msg_id,
                success,
                client_host: text(14),
                ..TraceRecord::default()
            }
        }
        TraceType::SubBefore => {
            if line.len() < 8 {
                return None;
            }
            TraceRecord {
                time_stamp: number(1)?,
                region_id: text(2),
                group_name: text(3),
                request_id: text(4),
                msg_id: text(5),
                retry_times: i32::try_from(number(6)?).ok()?,
                keys: text(7),
                success: true,
                client_host: text(8),
                ..TraceRecord::default()
            }
        }
        TraceType::SubAfter => {
            if line.len() < 6 {
                return None;
            }
            let context_code = match line.len() {
                6 => 0,
                _ => i32::try_from(number(6)?).ok()?,
            };
            let (time_stamp, group_name) = if line.len() >= 9 {
                (number(7)?, text(8))
            } else {
                (0, String::new())
            };
            TraceRecord {
                request_id: text(1),
                msg_id: text(2),
                cost_time: number(3)?,
                success: boolean(4),
                keys: text(5),
                context_code,
                time_stamp,
                group_name,
                ..TraceRecord::default()
            }
        }
        TraceType::EndTransaction => {
            if line.len() < 13 {
                return None;
            }
            TraceRecord {
                time_stamp: number(1)?,
                region_id: text(2),
                group_name: text(3),
                topic: text(4),
                msg_id: text(5),
                tags: text(6),
                keys: text(7),
                store_host: text(8),
                msg_type: i32::try_from(number(9)?).ok()?,
                success: true,
                ..TraceRecord::default()
            }
        }
    };
    Some(TraceRecord {
        trace_type: Some(trace_type),
        ..record
    })
}

/// One line of the trace of a message (Java `TraceView`): a record plus the host of the client
/// that sent the trace message (its born host), which mqadmin prints as `#ClientHost`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    /// The decoded record.
    #[serde(flatten)]
    pub record: TraceRecord,
    /// `success` or `failed`, as mqadmin prints it.
    pub status: &'static str,
    /// Born host of the trace message.
    pub trace_client_host: String,
    /// Store timestamp of the trace message (epoch ms).
    pub trace_store_timestamp: i64,
}

/// The body of a trace message as text, inflated if the client compressed it.
///
/// # Errors
/// [`OpsError::Usage`] for a compression other than zlib, a corrupt or oversized body.
pub fn body_text(message: &MessageRecord) -> Result<String, OpsError> {
    let bytes = match sysflag::compression(message.sys_flag)? {
        None => message.body.to_vec(),
        Some(CompressionType::Zlib) => {
            let mut inflated = Vec::new();
            let limit = u64::try_from(TRACE_BODY_INFLATED_MAX + 1).unwrap_or(u64::MAX);
            flate2::read::ZlibDecoder::new(&message.body[..])
                .take(limit)
                .read_to_end(&mut inflated)
                .map_err(|e| OpsError::Usage(format!("trace body does not inflate: {e}")))?;
            if inflated.len() > TRACE_BODY_INFLATED_MAX {
                return Err(OpsError::Usage(format!(
                    "trace body inflates past {TRACE_BODY_INFLATED_MAX} bytes"
                )));
            }
            inflated
        }
        Some(other) => {
            return Err(OpsError::Usage(format!(
                "trace body compressed with {other:?}, which this tool does not inflate"
            )))
        }
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The trace lines of `msg_id` in the trace messages `messages` (Java
/// `TraceView.decodeFromTraceTransData` over each), in message order; returns them with the
/// number of malformed records skipped.
///
/// # Errors
/// [`OpsError`] of a body that cannot be read (see [`body_text`]).
pub fn views_of(
    msg_id: &str,
    messages: &[MessageRecord],
) -> Result<(Vec<TraceView>, usize), OpsError> {
    let mut views = Vec::new();
    let mut skipped = 0;
    for message in messages {
        let decoded = decode(&body_text(message)?);
        skipped += decoded.skipped;
        for record in decoded.records {
            if record.msg_id != msg_id {
                continue;
            }
            views.push(TraceView {
                status: if record.success { "success" } else { "failed" },
                record,
                trace_client_host: message.born_host.to_string(),
                trace_store_timestamp: message.store_timestamp,
            });
        }
    }
    Ok((views, skipped))
}

/// mqadmin queryMsgTraceById's table: a `#Type #ProducerGroup ...` block per Pub line, then a
/// `#Type #ConsumerGroup ...` block per consumer group listing its SubAfter lines (SubBefore
/// lines are not printed, as in mqadmin). Times are UTC.
#[must_use]
pub fn render(views: &[TraceView]) -> String {
    let mut out = String::new();
    let row = |out: &mut String, cells: [&str; 6]| {
        let _ = writeln!(
            out,
            "{:<10} {:<20} {:<20} {:<20} {:<10} {:<10}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        );
    };
    let mut groups: Vec<(&str, Vec<&TraceView>)> = Vec::new();
    for view in views {
        match view.record.trace_type {
            Some(TraceType::Pub) => {
                row(
                    &mut out,
                    [
                        "#Type",
                        "#ProducerGroup",
                        "#ClientHost",
                        "#SendTime",
                        "#CostTimes",
                        "#Status",
                    ],
                );
                row(
                    &mut out,
                    view_cells("Pub", view).each_ref().map(String::as_str),
                );
                out.push('\n');
            }
            Some(TraceType::SubAfter) => {
                let group = view.record.group_name.as_str();
                match groups.iter_mut().find(|(name, _)| *name == group) {
                    Some((_, list)) => list.push(view),
                    None => groups.push((group, vec![view])),
                }
            }
            _ => {}
        }
    }
    for (_, list) in groups {
        row(
            &mut out,
            [
                "#Type",
                "#ConsumerGroup",
                "#ClientHost",
                "#ConsumerTime",
                "#CostTimes",
                "#Status",
            ],
        );
        for view in list {
            row(
                &mut out,
                view_cells("Sub", view).each_ref().map(String::as_str),
            );
        }
        out.push('\n');
    }
    out
}

fn view_cells(kind: &str, view: &TraceView) -> [String; 6] {
    [
        kind.to_owned(),
        view.record.group_name.clone(),
        view.trace_client_host.clone(),
        format_utc(view.record.time_stamp),
        format!("{}ms", view.record.cost_time),
        view.status.to_owned(),
    ]
}

/// `yyyy-MM-dd HH:mm:ss` of epoch ms, in UTC.
#[must_use]
pub fn format_utc(epoch_ms: i64) -> String {
    let seconds = epoch_ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    assert!((1..=12).contains(&month) && (1..=31).contains(&day));
    (year, month, day)
}

/// The trace of `msg_id`: QUERY_MESSAGE by key `msg_id` on `trace_topic` (every master of
/// its route), then [`views_of`] over the trace messages found.
///
/// # Errors
/// [`OpsError`] of the route lookup, a broker's refusal (QUERY_NOT_FOUND is an empty answer),
/// or an unreadable trace body.
pub async fn query(
    namesrv: &str,
    trace_topic: &str,
    msg_id: &str,
    max_num: i32,
) -> Result<(Vec<TraceView>, usize), OpsError> {
    let mut messages = super::query_msg(namesrv, trace_topic, msg_id, max_num, false).await?;
    // query_msg sorts newest first; a trace reads in the order it happened.
    messages.sort_by_key(|m| (m.store_timestamp, m.physical_offset));
    views_of(msg_id, &messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Pub records exactly as rocketmq-client-rust 1.0.0's trace producer stored them in
    /// `RMQ_SYS_TRACE_TOPIC` (captured by interop/rust-client/tests/trace.rs).
    const CAPTURED_PUB: &str = "Pub\u{1}1796579293001\u{1}DefaultRegion\u{1}trace_pg_5273_79292\u{1}TraceRust_5273_79292\u{1}C00002021499AC4C820C1D91C7480000\u{1}Warmup\u{1}warmup\u{1}127.0.0.1:38159\u{1}6\u{1}25\u{1}0\u{1}7F0000010000950F0100000000000000\u{1}true\u{1}192.0.2.2\u{2}Pub\u{1}1796579294678\u{1}DefaultRegion\u{1}trace_pg_5273_79292\u{1}TraceRust_5273_79292\u{1}C00002021499AC4C820C1D91CDD60003\u{1}TagTrace\u{1}traced-body\u{1}127.0.0.1:38159\u{1}11\u{1}4\u{1}0\u{1}7F0000010000950F0000000000000000\u{1}true\u{1}192.0.2.2\u{2}";

    #[test]
    fn captured_client_pub_records_decode() {
        let decoded = decode(CAPTURED_PUB);
        assert_eq!(decoded.skipped, 0);
        assert_eq!(decoded.records.len(), 2);
        let second = &decoded.records[1];
        assert_eq!(second.trace_type, Some(TraceType::Pub));
        assert_eq!(second.time_stamp, 1_796_579_294_678);
        assert_eq!(second.group_name, "trace_pg_5273_79292");
        assert_eq!(second.topic, "TraceRust_5273_79292");
        assert_eq!(second.msg_id, "C00002021499AC4C820C1D91CDD60003");
        assert_eq!(second.tags, "TagTrace");
        assert_eq!(second.keys, "traced-body");
        assert_eq!(second.store_host, "127.0.0.1:38159");
        assert_eq!((second.body_length, second.cost_time), (11, 4));
        assert_eq!(second.offset_msg_id, "7F0000010000950F0000000000000000");
        assert!(second.success);
        assert_eq!(second.client_host, "192.0.2.2");
    }

    /// SubBefore/SubAfter records of two consumed messages exactly as rocketmq-client-rust
    /// 1.0.0's push consumer stored them (same capture).
    const CAPTURED_SUB: &str = "SubBefore\u{1}1796580160064\u{1}DefaultRegion\u{1}trace_cg_10857_80158\u{1}C00002022A69AC4C820C1D9F02400002\u{1}C00002022A69AC4C820C1D9EFBD70000\u{1}0\u{1}warmup\u{2}SubAfter\u{1}C00002022A69AC4C820C1D9F02400002\u{1}C00002022A69AC4C820C1D9EFBD70000\u{1}1\u{1}true\u{1}warmup\u{1}0\u{1}1796580160065\u{1}trace_cg_10857_80158\u{2}SubBefore\u{1}1796580160087\u{1}DefaultRegion\u{1}trace_cg_10857_80158\u{1}C00002022A69AC4C820C1D9F02570004\u{1}C00002022A69AC4C820C1D9F02550003\u{1}0\u{1}traced-body\u{2}SubAfter\u{1}C00002022A69AC4C820C1D9F02570004\u{1}C00002022A69AC4C820C1D9F02550003\u{1}1\u{1}true\u{1}traced-body\u{1}0\u{1}1796580160088\u{1}trace_cg_10857_80158\u{2}";

    #[test]
    fn captured_client_sub_records_decode() {
        let decoded = decode(CAPTURED_SUB);
        assert_eq!(decoded.skipped, 0);
        let kinds: Vec<_> = decoded.records.iter().map(|r| r.trace_type).collect();
        assert_eq!(
            kinds,
            [
                TraceType::SubBefore,
                TraceType::SubAfter,
                TraceType::SubBefore,
                TraceType::SubAfter
            ]
            .map(Some)
        );
        let before = &decoded.records[2];
        assert_eq!(before.time_stamp, 1_796_580_160_087);
        assert_eq!(before.region_id, "DefaultRegion");
        assert_eq!(before.group_name, "trace_cg_10857_80158");
        assert_eq!(before.request_id, "C00002022A69AC4C820C1D9F02570004");
        assert_eq!(before.msg_id, "C00002022A69AC4C820C1D9F02550003");
        assert_eq!(
            (before.retry_times, before.keys.as_str()),
            (0, "traced-body")
        );
        let after = &decoded.records[3];
        assert_eq!(after.request_id, before.request_id);
        assert_eq!(after.msg_id, before.msg_id);
        assert_eq!(
            (after.cost_time, after.success, after.context_code),
            (1, true, 0)
        );
        assert_eq!(after.time_stamp, 1_796_580_160_088);
        assert_eq!(after.group_name, "trace_cg_10857_80158");
    }

    #[test]
    fn java_field_counts_of_each_kind_decode() {
        // 4.9 Pub with 14 fields (no clientHost), a failed one.
        let pub14 = "Pub\u{1}1\u{1}R\u{1}PG\u{1}T\u{1}ID\u{1}tag\u{1}k\u{1}h:1\u{1}3\u{1}9\u{1}3\u{1}OFF\u{1}false\u{2}";
        // 7-field SubAfter (no time or group) and 9-field.
        let sub7 = "SubAfter\u{1}REQ\u{1}ID\u{1}2\u{1}true\u{1}k\u{1}0\u{2}";
        let sub9 = "SubAfter\u{1}REQ\u{1}ID\u{1}2\u{1}false\u{1}k\u{1}4\u{1}77\u{1}CG\u{2}";
        let decoded = decode(&format!("{pub14}{sub7}{sub9}"));
        assert_eq!(decoded.skipped, 0);
        let [p, s7, s9] = &decoded.records[..] else {
            panic!("three records: {decoded:?}");
        };
        assert_eq!(
            (p.msg_type, p.offset_msg_id.as_str(), p.success),
            (3, "OFF", false)
        );
        assert_eq!(p.client_host, "");
        assert_eq!((s7.time_stamp, s7.group_name.as_str()), (0, ""));
        assert_eq!(
            (
                s9.time_stamp,
                s9.group_name.as_str(),
                s9.context_code,
                s9.success
            ),
            (77, "CG", 4, false)
        );
    }

    #[test]
    fn malformed_records_are_skipped_and_counted() {
        let body = "Nope\u{1}1\u{2}Pub\u{1}x\u{2}Pub\u{1}notanumber\u{1}R\u{1}G\u{1}T\u{1}I\u{1}t\u{1}k\u{1}h\u{1}1\u{1}1\u{1}0\u{2}\u{2}SubAfter\u{1}R\u{1}I\u{1}2\u{1}true\u{1}k\u{2}";
        let decoded = decode(body);
        assert_eq!(decoded.skipped, 3);
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.records[0].trace_type, Some(TraceType::SubAfter));
        assert_eq!(decode("").records.len(), 0);
    }

    #[test]
    fn table_lists_pub_then_consumers_by_group() {
        let record = |kind, group: &str, cost| TraceRecord {
            trace_type: Some(kind),
            time_stamp: 1_796_579_294_678,
            group_name: group.to_owned(),
            msg_id: "ID".into(),
            cost_time: cost,
            success: true,
            ..TraceRecord::default()
        };
        let view = |record: TraceRecord| TraceView {
            status: if record.success { "success" } else { "failed" },
            record,
            trace_client_host: "127.0.0.1:5000".into(),
            trace_store_timestamp: 0,
        };
        let views = [
            view(record(TraceType::Pub, "PG", 4)),
            view(record(TraceType::SubBefore, "CG", 0)),
            view(record(TraceType::SubAfter, "CG", 7)),
        ];
        let table = render(&views);
        let want = "\
#Type      #ProducerGroup       #ClientHost          #SendTime            #CostTimes #Status   
Pub        PG                   127.0.0.1:5000       2026-12-06 17:48:14  4ms        success   

#Type      #ConsumerGroup       #ClientHost          #ConsumerTime        #CostTimes #Status   
Sub        CG                   127.0.0.1:5000       2026-12-06 17:48:14  7ms        success   

";
        assert_eq!(table, want);
    }

    #[test]
    fn utc_format_matches_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_796_579_294_678), "2026-12-06 17:48:14");
    }
}
