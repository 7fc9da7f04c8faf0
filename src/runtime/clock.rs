//! The broker's and the NameServer's wall clock: milliseconds since the Unix epoch, the unit of
//! RocketMQ timestamps (born/store times, heartbeats, `DataVersion`). The one implementation in
//! `src/` (storage keeps its own: it runs without this crate).
//!
//! Must never: be called from `src/tables/` (tables take time as an argument, so they stay
//! pure and testable), or panic on a clock before 1970 (it answers 0).

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (0 before it, `i64::MAX` past the year 292M).
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_2020_and_moves_forward() {
        let first = now_ms();
        assert!(first > 1_577_836_800_000, "clock before 2020: {first}");
        assert!(now_ms() >= first);
    }
}
