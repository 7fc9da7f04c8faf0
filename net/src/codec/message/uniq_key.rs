//! `UNIQ_KEY` generation (PROTOCOL.md §6.9), in Java `MessageClientIDSetter`'s format:
//! `ip (4|16) ‖ pid (low 16 bits) ‖ seed i32 ‖ ms since month start i32 ‖ counter u16`,
//! uppercase hex (32 chars for IPv4, 56 for IPv6).
//!
//! Sans-io: the caller passes ip, pid, a per-process random seed (Java uses a classloader
//! hash) and the wall clock `now_ms` (epoch ms), so output is deterministic in tests. The month
//! starts are computed in **UTC**, where Java uses the JVM's local time zone; the key is opaque
//! to every reader except Java's `getNearlyTimeFromID` debugging helper, so the zone only shifts
//! that helper's answer. Must never read a clock or the environment itself.

use std::net::IpAddr;

use super::hex;

/// Bytes of the fixed prefix for an IPv6 host: ip 16 + pid 2 + seed 4.
const PREFIX_V6_SIZE: usize = 16 + 2 + 4;
/// Bytes of the per-key suffix: time 4 + counter 2.
const SUFFIX_SIZE: usize = 4 + 2;
/// Clock steps back by less than this (ms) count as NTP jitter and give time 0, as in Java.
const CLOCK_BACKSTEP_TOLERANCE_MS: i64 = 1_000_000;

/// Milliseconds per day.
const DAY_MS: i64 = 86_400_000;

/// Generates `UNIQ_KEY`s for one process. Not shared between shards: give each its own
/// generator with a distinct seed, or the counters collide.
#[derive(Debug, Clone)]
pub struct UniqKeyGenerator {
    /// Hex of `ip ‖ pid ‖ seed`.
    prefix_hex: String,
    /// Start of the current month, epoch ms (UTC).
    month_start_ms: i64,
    /// Start of the next month, epoch ms (UTC).
    next_month_start_ms: i64,
    /// Next counter value; wraps.
    counter: u16,
}

impl UniqKeyGenerator {
    /// A generator for host `ip`, process `pid` (only the low 16 bits are used), per-process
    /// random `seed`, started at wall-clock `now_ms`.
    ///
    /// # Panics
    /// Only if the fixed prefix outgrows its IPv6 size, a bug in this module.
    #[must_use]
    pub fn new(ip: IpAddr, pid: u32, seed: i32, now_ms: i64) -> Self {
        let mut prefix = Vec::with_capacity(PREFIX_V6_SIZE);
        match ip {
            IpAddr::V4(v4) => prefix.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => prefix.extend_from_slice(&v6.octets()),
        }
        let pid_low = (pid & 0xFFFF) as u16;
        prefix.extend_from_slice(&pid_low.to_be_bytes());
        prefix.extend_from_slice(&seed.to_be_bytes());
        assert!(prefix.len() <= PREFIX_V6_SIZE);
        let mut prefix_hex = String::with_capacity((PREFIX_V6_SIZE + SUFFIX_SIZE) * 2);
        hex::encode_upper(&prefix, &mut prefix_hex);
        let (month_start_ms, next_month_start_ms) = month_bounds_utc(now_ms);
        Self {
            prefix_hex,
            month_start_ms,
            next_month_start_ms,
            counter: 0,
        }
    }

    /// Length of every key this generator makes (32 or 56).
    #[must_use]
    pub fn key_len(&self) -> usize {
        self.prefix_hex.len() + SUFFIX_SIZE * 2
    }

    /// The next key at wall-clock `now_ms`.
    ///
    /// # Panics
    /// Only if the key length differs from [`Self::key_len`], a bug in this module.
    pub fn next_key(&mut self, now_ms: i64) -> String {
        let mut key = String::with_capacity(self.key_len());
        self.push_next_key(now_ms, &mut key);
        key
    }

    /// Appends the next key at wall-clock `now_ms` to `out`, without allocating when `out`
    /// has room (the load generator's per-message path).
    ///
    /// # Panics
    /// Only if the key length differs from [`Self::key_len`], a bug in this module.
    pub fn push_next_key(&mut self, now_ms: i64, out: &mut String) {
        if now_ms >= self.next_month_start_ms {
            (self.month_start_ms, self.next_month_start_ms) = month_bounds_utc(now_ms);
        }
        let elapsed = now_ms.saturating_sub(self.month_start_ms);
        // Java casts the difference to int, which wraps after ~24.8 days of a month; keep it.
        #[allow(clippy::cast_possible_truncation)]
        let mut time = elapsed as i32;
        if elapsed < 0 && elapsed > -CLOCK_BACKSTEP_TOLERANCE_MS {
            time = 0;
        }
        let counter = self.counter;
        self.counter = self.counter.wrapping_add(1);
        let mut suffix = [0u8; SUFFIX_SIZE];
        suffix[..4].copy_from_slice(&time.to_be_bytes());
        suffix[4..].copy_from_slice(&counter.to_be_bytes());
        let start = out.len();
        out.push_str(&self.prefix_hex);
        hex::encode_upper(&suffix, out);
        assert_eq!(out.len() - start, self.key_len());
    }
}

/// Start of the UTC month containing `now_ms`, and of the next one, in epoch ms.
fn month_bounds_utc(now_ms: i64) -> (i64, i64) {
    let days = now_ms.div_euclid(DAY_MS);
    let (year, month, _) = civil_from_days(days);
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let start = days_from_civil(year, month, 1).saturating_mul(DAY_MS);
    let next = days_from_civil(next_year, next_month, 1).saturating_mul(DAY_MS);
    (start, next)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-03-01 (after a 400-year leap day) = day 11017.
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // 2024-02-29 = day 19782 (`date -u -d 2024-02-29 +%s` / 86400).
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn month_bounds_cover_year_end_and_leap_february() {
        // 2023-12-31T23:59:59.999Z
        let (start, next) = month_bounds_utc(1_704_067_199_999);
        assert_eq!(start, 1_701_388_800_000); // 2023-12-01T00:00Z
        assert_eq!(next, 1_704_067_200_000); // 2024-01-01T00:00Z
                                             // 2024-02-15T00:00Z: February 2024 has 29 days.
        let (start, next) = month_bounds_utc(1_707_955_200_000);
        assert_eq!(start, 1_706_745_600_000); // 2024-02-01
        assert_eq!(next - start, 29 * DAY_MS);
    }
}
