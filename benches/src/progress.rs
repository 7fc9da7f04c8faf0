//! The live progress line: one line per completed second with the current rates, totals,
//! p99 and a bar of how much of the run is done. Pure formatting; the binary writes it to
//! stderr (in place on a terminal, one line per second otherwise). Must never do I/O.

use std::fmt::Write as _;

use crate::run::Progress;

/// Width of the completion bar, characters.
pub const BAR_WIDTH: usize = 20;

/// Formats `value` with thousands separators.
#[must_use]
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn bar(fraction: f64) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * BAR_WIDTH as f64).round()) as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

/// The progress line for `progress` (no newline).
#[must_use]
pub fn format_line(progress: &Progress) -> String {
    let sample = &progress.sample;
    let mut line = format!("{:>6.1}s ", sample.t_s);
    if let Some(fraction) = progress.fraction {
        let _ = write!(line, "{} {:>3.0}% ", bar(fraction), fraction * 100.0);
    }
    if progress.sent_total > 0 {
        let rate = if progress.acked_total > 0 {
            sample.acked_msgs_per_s
        } else {
            sample.sent_msgs_per_s
        };
        let _ = write!(
            line,
            "| send {:>10} msg/s {:>8.1} MB/s total {:>13}",
            thousands(rate.round() as u64),
            sample.send_mb_per_s,
            thousands(progress.sent_total)
        );
        if let Some(p99) = sample.send_p99_us {
            let _ = write!(line, " p99 {p99:>8.0}us");
        }
        line.push(' ');
    }
    if progress.consumed_total > 0 {
        let _ = write!(
            line,
            "| consume {:>10} msg/s total {:>13}",
            thousands(sample.consumed_msgs_per_s.round() as u64),
            thousands(progress.consumed_total)
        );
        if let Some(p99) = sample.end_to_end_p99_us {
            let _ = write!(line, " e2e p99 {p99:>7.0}us");
        }
        line.push(' ');
    }
    if progress.errors_total > 0 {
        let _ = write!(line, "| errors {}", thousands(progress.errors_total));
    }
    line.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Sample;

    #[test]
    fn line_shows_rate_total_p99_and_bar() {
        let progress = Progress {
            sample: Sample {
                t_s: 3.0,
                duration_s: 1.0,
                sent_msgs_per_s: 123_456.0,
                acked_msgs_per_s: 123_400.0,
                send_mb_per_s: 126.4,
                send_p50_us: Some(40.0),
                send_p99_us: Some(85.0),
                consumed_msgs_per_s: 0.0,
                consume_mb_per_s: 0.0,
                end_to_end_p99_us: None,
                errors: 0,
                acked_total: 0,
                broker_rss_bytes: None,
                broker_cpu_cores: None,
            },
            sent_total: 370_000,
            acked_total: 369_000,
            consumed_total: 0,
            errors_total: 2,
            fraction: Some(0.3),
        };
        let line = format_line(&progress);
        assert!(line.contains("123,400 msg/s"), "{line}");
        assert!(line.contains("370,000"), "{line}");
        assert!(line.contains("p99       85us"), "{line}");
        assert!(line.contains("[######--------------]  30%"), "{line}");
        assert!(line.contains("errors 2"), "{line}");
        assert!(!line.contains("consume"));
        assert_eq!(thousands(1_000_000_000), "1,000,000,000");
        assert_eq!(thousands(999), "999");
    }
}
