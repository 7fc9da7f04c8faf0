//! What operators see of replication (issue 13 items 5 and 7): each shard's part of the
//! runtime info ([`shard_ha`], turned into keys by [`insert_runtime_keys`]), a master's lag
//! behind its slave in bytes and in time ([`slave_lag`]), and the lag alarm: a pure state
//! machine ([`LagAlarm`]) evaluated every [`HA_LAG_CHECK_INTERVAL`] by a task on each master
//! shard ([`watch`]), which logs each crossing.
//!
//! Lag in bytes is the shard's appended end minus the slave's acknowledged appended end. Lag
//! in time is the age of the oldest record the slave has not acknowledged: now minus that
//! record's store timestamp (the master's clock on both sides), 0 when the slave acknowledged
//! everything. It is exact up to the check's own duration, costs one header and one record
//! read per evaluation while the slave is behind and nothing while it is caught up, and does
//! not grow with load the way "time since the last complete ack" would under a steady stream.
//!
//! The alarm is raised while a connected slave is past `haMaxGapNotInSync` bytes or
//! `haMaxLagMillis`; it is not a back-pressure: sends are not slowed. A shard without a slave
//! has no alarm (its disconnect is logged, and `slaveFallBehindMuch` keeps counting).
//!
//! Runs on the shard it reports on. Must never: read another shard's state, hold a borrow
//! across an `.await`, or log more than one WARN per shard per [`HA_LAG_WARN_INTERVAL_MIN`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use rmq_storage::commitlog::EntryKind;
use rmq_storage::store::Store;

use crate::config::BrokerRole;
use crate::limits::{HA_LAG_CHECK_INTERVAL, HA_LAG_WARN_INTERVAL_MIN};
use crate::runtime::clock::now_ms;

use super::super::shard::Shard;
use super::{FollowState, SlaveView};

/// A master shard's lag behind its slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Appended bytes the slave has not acknowledged.
    pub bytes: u64,
    /// Age of the oldest of them, in ms (0 when `bytes` is 0; `None` when that record could
    /// not be read, e.g. retention deleted it: the alarm then judges by bytes alone).
    pub millis: Option<u64>,
}

/// The alarm's bounds: `haMaxGapNotInSync` and `haMaxLagMillis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagBounds {
    /// Past this many bytes.
    pub bytes: u64,
    /// Past this many milliseconds.
    pub millis: u64,
}

impl Lag {
    /// Past either bound.
    #[must_use]
    pub fn past(&self, bounds: LagBounds) -> bool {
        self.bytes > bounds.bytes || self.millis.is_some_and(|millis| millis > bounds.millis)
    }
}

/// What an evaluation of the alarm calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmEvent {
    /// Nothing to say.
    Quiet,
    /// The lag is past a bound: a new crossing, or one whose WARN the rate limit held back.
    /// `warn`: log it at WARN now (false: a WARN was logged less than
    /// [`HA_LAG_WARN_INTERVAL_MIN`] ago; it comes when that interval ends, if still past).
    Over {
        /// Log at WARN now.
        warn: bool,
    },
    /// The alarm ends: the lag is back within the bounds, or (`slave_left`) the slave
    /// disconnected. `warned`: this crossing was logged at WARN (then its end is logged too).
    Cleared {
        /// The crossing was warned.
        warned: bool,
        /// Ended because no slave is connected any more.
        slave_left: bool,
    },
}

/// One master shard's lag alarm: raised while the lag is past a bound, logged once per
/// crossing, at most one WARN per [`HA_LAG_WARN_INTERVAL_MIN`].
#[derive(Debug, Default)]
pub struct LagAlarm {
    on: bool,
    warned: bool,
    last_warn: Option<Instant>,
    crossings: u64,
}

impl LagAlarm {
    /// Raised now.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Crossings since the broker started.
    #[must_use]
    pub fn crossings(&self) -> u64 {
        self.crossings
    }

    /// Evaluates `lag` (`None`: no slave connected) at `now`.
    pub fn observe(&mut self, lag: Option<Lag>, bounds: LagBounds, now: Instant) -> AlarmEvent {
        let past = lag.is_some_and(|lag| lag.past(bounds));
        match (self.on, past) {
            (false, false) => AlarmEvent::Quiet,
            (false, true) => {
                self.on = true;
                self.crossings += 1;
                self.warned = self.may_warn(now);
                AlarmEvent::Over { warn: self.warned }
            }
            (true, true) if !self.warned && self.may_warn(now) => {
                self.warned = true;
                AlarmEvent::Over { warn: true }
            }
            (true, true) => AlarmEvent::Quiet,
            (true, false) => {
                self.on = false;
                AlarmEvent::Cleared {
                    warned: std::mem::take(&mut self.warned),
                    slave_left: lag.is_none(),
                }
            }
        }
    }

    /// Whether a WARN may be logged at `now`; if so, counts it as logged.
    fn may_warn(&mut self, now: Instant) -> bool {
        let allowed = self
            .last_warn
            .is_none_or(|last| now.saturating_duration_since(last) >= HA_LAG_WARN_INTERVAL_MIN);
        if allowed {
            self.last_warn = Some(now);
        }
        allowed
    }
}

/// A master shard's connected slave and how far behind it is.
#[derive(Debug, Clone)]
pub struct SlaveLag {
    /// The slave and its acknowledged ends.
    pub view: SlaveView,
    /// Its lag.
    pub lag: Lag,
}

/// This master shard's slave and its lag (`None`: no slave connected).
pub async fn slave_lag(shard: &Shard) -> Option<SlaveLag> {
    let end = shard.store.commitlog().appended_offset();
    let view = shard.ha.slave(end)?;
    let millis = unacked_age_ms(&shard.store, view.acked, end, now_ms()).await;
    Some(SlaveLag {
        lag: Lag {
            bytes: view.lag_bytes,
            millis,
        },
        view,
    })
}

/// Age in ms of the oldest record at or after `acked` below `end` (0 if none); `None` when it
/// cannot be read. `acked` is an entry boundary (the slave's log agrees with this one).
async fn unacked_age_ms(store: &Store, acked: u64, end: u64, now_ms: i64) -> Option<u64> {
    if acked >= end {
        return Some(0);
    }
    let header = store.entry_header_at(acked).await.ok()?;
    // A filler's bytes are no record: the oldest record starts the next segment.
    let at = match header.kind {
        EntryKind::Record => acked,
        EntryKind::Filler => header.end(),
    };
    if at >= end {
        return Some(0);
    }
    let record = store.read_by_phys_offset(at).await.ok()?;
    Some(u64::try_from(now_ms.saturating_sub(record.store_timestamp_ms)).unwrap_or(0))
}

/// A master shard's task: evaluates the lag alarm every [`HA_LAG_CHECK_INTERVAL`] and logs
/// its crossings, until shutdown begins.
pub async fn watch(shard: Rc<Shard>) {
    let bounds = LagBounds {
        bytes: shard.config.ha_max_gap_not_in_sync,
        millis: u64::try_from(shard.config.ha_max_lag.as_millis()).unwrap_or(u64::MAX),
    };
    loop {
        {
            let tick = std::pin::pin!(compio::time::sleep(HA_LAG_CHECK_INTERVAL));
            let stop = std::pin::pin!(shard.stopping.wait());
            if let Either::Right(((), _)) = select(tick, stop).await {
                return;
            }
        }
        let slave = slave_lag(&shard).await;
        let event = shard.ha.alarm.borrow_mut().observe(
            slave.as_ref().map(|s| s.lag),
            bounds,
            Instant::now(),
        );
        log_event(&shard, event, slave.as_ref(), bounds);
    }
}

fn log_event(shard: &Shard, event: AlarmEvent, slave: Option<&SlaveLag>, bounds: LagBounds) {
    let shard_id = shard.id.0;
    match (event, slave) {
        (AlarmEvent::Over { warn: true }, Some(slave)) => tracing::warn!(
            shard = shard_id,
            slave = slave.view.broker_id,
            peer = %slave.view.peer,
            lag_bytes = slave.lag.bytes,
            lag_ms = ?slave.lag.millis,
            max_gap_bytes = bounds.bytes,
            max_lag_ms = bounds.millis,
            crossings = shard.ha.alarm.borrow().crossings(),
            "HA: the slave is past the lag bound (haMaxGapNotInSync or haMaxLagMillis); \
             what it has not acknowledged is lost if this master dies"
        ),
        (
            AlarmEvent::Cleared {
                warned: true,
                slave_left: false,
            },
            Some(slave),
        ) => tracing::info!(
            shard = shard_id,
            slave = slave.view.broker_id,
            peer = %slave.view.peer,
            lag_bytes = slave.lag.bytes,
            lag_ms = ?slave.lag.millis,
            "HA: the slave is back within the lag bound"
        ),
        (
            AlarmEvent::Cleared {
                warned: true,
                slave_left: true,
            },
            _,
        ) => tracing::info!(
            shard = shard_id,
            "HA: lag alarm ends: the slave disconnected"
        ),
        _ => {}
    }
}

/// One shard's replication part of the runtime info.
#[derive(Debug, Clone, Default)]
pub enum ShardHa {
    /// Not known (a part built for a test).
    #[default]
    None,
    /// A master shard.
    Master {
        /// Its connected slave and lag.
        slave: Option<SlaveLag>,
        /// Appended bytes no slave acknowledged (Java's `slaveFallBehindMuch`: the master's
        /// end minus the slave's last acknowledged end, kept across sessions; what this shard
        /// loses if it dies now).
        unacked_bytes: u64,
        /// The lag alarm is raised.
        alarm: bool,
        /// Lag alarm crossings since start.
        alarm_crossings: u64,
    },
    /// A slave shard.
    Slave {
        /// Its follow loop.
        follow: FollowState,
        /// Its log's appended end.
        appended_end: u64,
        /// Where it connects (the master's HA address).
        master_ha_addr: Option<String>,
        /// The master's remoting address.
        master_addr: Option<String>,
    },
}

/// This shard's [`ShardHa`] (on the shard).
pub async fn shard_ha(shard: &Shard) -> ShardHa {
    if shard.config.broker_role == BrokerRole::Slave {
        return ShardHa::Slave {
            follow: shard.ha.follow_state(),
            appended_end: shard.store.commitlog().appended_offset(),
            master_ha_addr: shard.ha.master_ha_addr(),
            master_addr: shard.ha.master_addr(),
        };
    }
    let slave = slave_lag(shard).await;
    let end = shard.store.commitlog().appended_offset();
    let alarm = shard.ha.alarm.borrow();
    ShardHa::Master {
        slave,
        unacked_bytes: end.saturating_sub(shard.ha.progress.appended()),
        alarm: alarm.is_on(),
        alarm_crossings: alarm.crossings(),
    }
}

fn millis_of(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-1".to_owned(), |d| d.as_millis().to_string())
}

/// The replication keys of the runtime info (`docs/replication.md`, "Visibility"):
/// `shard<N>.*` per shard, and the broker-wide `haConnectedShards`, `slaveFallBehindMuch`
/// and `haLagAlarm` (masters) or `haMasterAddr`, `masterAddr` and `haMasterBehindBytes`
/// (slaves).
pub fn insert_runtime_keys(parts: &[ShardHa], now_ms: i64, table: &mut BTreeMap<String, String>) {
    let mut put = |key: String, value: String| {
        table.insert(key, value);
    };
    let mut connected = 0usize;
    let (mut unacked_total, mut alarm_any, mut behind_total) = (0u64, false, 0u64);
    let (mut any_master, mut any_slave) = (false, false);
    let mut addrs: (Option<String>, Option<String>) = (None, None);
    for (index, part) in parts.iter().enumerate() {
        let key = |name: &str| format!("shard{index}.{name}");
        match part {
            ShardHa::None => {}
            ShardHa::Master {
                slave,
                unacked_bytes,
                alarm,
                alarm_crossings,
            } => {
                any_master = true;
                unacked_total += unacked_bytes;
                alarm_any |= alarm;
                put(key("slaveFallBehindMuch"), unacked_bytes.to_string());
                put(key("haLagAlarm"), alarm.to_string());
                put(key("haLagAlarmCrossings"), alarm_crossings.to_string());
                if let Some(slave) = slave {
                    connected += 1;
                    insert_slave_keys(&mut put, index, slave, now_ms);
                }
            }
            ShardHa::Slave {
                follow,
                appended_end,
                master_ha_addr,
                master_addr,
            } => {
                any_slave = true;
                connected += usize::from(follow.connected);
                let heard = follow.last_data_ago.is_some();
                let behind = follow.master_end.saturating_sub(*appended_end);
                if heard {
                    behind_total += behind;
                }
                put(key("haConnected"), follow.connected.to_string());
                put(key("haMasterEnd"), follow.master_end.to_string());
                put(
                    key("haMasterBehindBytes"),
                    if heard {
                        behind.to_string()
                    } else {
                        "-1".to_owned()
                    },
                );
                put(key("haCaughtUp"), follow.caught_up.to_string());
                put(key("haLastDataMillisAgo"), millis_of(follow.last_data_ago));
                put(key("haConnectedSince"), follow.since_ms.to_string());
                put(key("haSessions"), follow.sessions.to_string());
                put(key("haTruncations"), follow.truncations.to_string());
                if let Some(error) = &follow.last_error {
                    put(key("haLastError"), error.clone());
                }
                if addrs.0.is_none() {
                    addrs = (master_ha_addr.clone(), master_addr.clone());
                }
            }
        }
    }
    if any_master || any_slave {
        put("haConnectedShards".to_owned(), connected.to_string());
    }
    if any_master {
        put("slaveFallBehindMuch".to_owned(), unacked_total.to_string());
        put("haLagAlarm".to_owned(), alarm_any.to_string());
    }
    if any_slave {
        put("haMasterBehindBytes".to_owned(), behind_total.to_string());
        if let Some(addr) = addrs.0 {
            put("haMasterAddr".to_owned(), addr);
        }
        if let Some(addr) = addrs.1 {
            put("masterAddr".to_owned(), addr);
        }
    }
}

fn insert_slave_keys(
    put: &mut impl FnMut(String, String),
    index: usize,
    slave: &SlaveLag,
    now_ms: i64,
) {
    let key = |name: &str| format!("shard{index}.{name}");
    let view = &slave.view;
    let peer: SocketAddr = view.peer;
    put(key("haSlaveBrokerId"), view.broker_id.to_string());
    put(key("haSlaveAddr"), peer.to_string());
    put(key("haSlaveConnectedSince"), view.since_ms.to_string());
    put(
        key("haSlaveConnectedMillis"),
        now_ms.saturating_sub(view.since_ms).max(0).to_string(),
    );
    put(key("haSlaveAckOffset"), view.acked.to_string());
    put(key("haSlaveDurableOffset"), view.durable.to_string());
    put(key("haLagBytes"), slave.lag.bytes.to_string());
    put(
        key("haLagMillis"),
        slave
            .lag
            .millis
            .map_or_else(|| "-1".to_owned(), |millis| millis.to_string()),
    );
    put(key("haLastAckMillisAgo"), millis_of(view.last_ack_ago));
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: LagBounds = LagBounds {
        bytes: 1000,
        millis: 10_000,
    };

    fn lag(bytes: u64, millis: u64) -> Option<Lag> {
        Some(Lag {
            bytes,
            millis: Some(millis),
        })
    }

    #[test]
    fn either_bound_raises_the_alarm_once_per_crossing() {
        let mut alarm = LagAlarm::default();
        let t0 = Instant::now();
        assert_eq!(alarm.observe(lag(0, 0), BOUNDS, t0), AlarmEvent::Quiet);
        assert_eq!(alarm.observe(None, BOUNDS, t0), AlarmEvent::Quiet);
        // At the bound is within it.
        assert_eq!(
            alarm.observe(lag(1000, 10_000), BOUNDS, t0),
            AlarmEvent::Quiet
        );
        assert!(!alarm.is_on());
        // Past the byte bound: one WARN, then silence while it stays past.
        assert_eq!(
            alarm.observe(lag(1001, 5), BOUNDS, t0),
            AlarmEvent::Over { warn: true }
        );
        assert!(alarm.is_on());
        for later in 1..5 {
            let now = t0 + Duration::from_secs(later * 100);
            assert_eq!(alarm.observe(lag(5000, 5), BOUNDS, now), AlarmEvent::Quiet);
        }
        // Back in bound: the end of a warned crossing is logged.
        let t1 = t0 + Duration::from_secs(600);
        assert_eq!(
            alarm.observe(lag(10, 5), BOUNDS, t1),
            AlarmEvent::Cleared {
                warned: true,
                slave_left: false
            }
        );
        assert!(!alarm.is_on());
        // Past the time bound alone, long after the last WARN: warned again.
        let t2 = t1 + HA_LAG_WARN_INTERVAL_MIN;
        assert_eq!(
            alarm.observe(lag(10, 10_001), BOUNDS, t2),
            AlarmEvent::Over { warn: true }
        );
        // The slave leaves while past: the alarm ends, saying why.
        assert_eq!(
            alarm.observe(None, BOUNDS, t2),
            AlarmEvent::Cleared {
                warned: true,
                slave_left: true
            }
        );
        assert_eq!(alarm.crossings(), 2);
    }

    #[test]
    fn a_flapping_lag_is_warned_at_most_once_per_interval() {
        let mut alarm = LagAlarm::default();
        let t0 = Instant::now();
        assert_eq!(
            alarm.observe(lag(2000, 0), BOUNDS, t0),
            AlarmEvent::Over { warn: true }
        );
        let t1 = t0 + Duration::from_secs(1);
        assert!(matches!(
            alarm.observe(lag(0, 0), BOUNDS, t1),
            AlarmEvent::Cleared { warned: true, .. }
        ));
        // A new crossing within the interval: raised, not warned; its end is not logged.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(
            alarm.observe(lag(2000, 0), BOUNDS, t2),
            AlarmEvent::Over { warn: false }
        );
        assert!(alarm.is_on());
        assert_eq!(
            alarm.observe(lag(0, 0), BOUNDS, t2 + Duration::from_secs(1)),
            AlarmEvent::Cleared {
                warned: false,
                slave_left: false
            }
        );
        // Crossing again and staying past: warned once the interval since the last WARN ends.
        let t3 = t0 + Duration::from_secs(30);
        assert_eq!(
            alarm.observe(lag(2000, 0), BOUNDS, t3),
            AlarmEvent::Over { warn: false }
        );
        let just_before = t0 + HA_LAG_WARN_INTERVAL_MIN - Duration::from_millis(1);
        assert_eq!(
            alarm.observe(lag(2000, 0), BOUNDS, just_before),
            AlarmEvent::Quiet
        );
        let t4 = t0 + HA_LAG_WARN_INTERVAL_MIN;
        assert_eq!(
            alarm.observe(lag(2000, 0), BOUNDS, t4),
            AlarmEvent::Over { warn: true }
        );
        assert_eq!(alarm.observe(lag(2000, 0), BOUNDS, t4), AlarmEvent::Quiet);
        assert_eq!(alarm.crossings(), 3);
    }

    #[test]
    fn an_unreadable_age_judges_by_bytes_alone() {
        let unknown = |bytes| Lag {
            bytes,
            millis: None,
        };
        assert!(!unknown(1000).past(BOUNDS));
        assert!(unknown(1001).past(BOUNDS));
    }

    fn slave_view() -> SlaveView {
        SlaveView {
            broker_id: 1,
            peer: "127.0.0.1:40000".parse().expect("addr"),
            since_ms: 1_000,
            acked: 4096,
            durable: 2048,
            lag_bytes: 100,
            last_ack_ago: Some(Duration::from_millis(250)),
        }
    }

    #[test]
    fn master_keys_per_shard_and_summed() {
        let parts = [
            ShardHa::Master {
                slave: Some(SlaveLag {
                    view: slave_view(),
                    lag: Lag {
                        bytes: 100,
                        millis: Some(42),
                    },
                }),
                unacked_bytes: 100,
                alarm: false,
                alarm_crossings: 0,
            },
            ShardHa::Master {
                slave: None,
                unacked_bytes: 7000,
                alarm: true,
                alarm_crossings: 2,
            },
        ];
        let mut table = BTreeMap::new();
        insert_runtime_keys(&parts, 6_000, &mut table);
        assert_eq!(table["shard0.haSlaveBrokerId"], "1");
        assert_eq!(table["shard0.haSlaveAddr"], "127.0.0.1:40000");
        assert_eq!(table["shard0.haSlaveAckOffset"], "4096");
        assert_eq!(table["shard0.haSlaveDurableOffset"], "2048");
        assert_eq!(table["shard0.haSlaveConnectedMillis"], "5000");
        assert_eq!(table["shard0.haLagBytes"], "100");
        assert_eq!(table["shard0.haLagMillis"], "42");
        assert_eq!(table["shard0.haLastAckMillisAgo"], "250");
        assert_eq!(table["shard0.haLagAlarm"], "false");
        assert!(!table.contains_key("shard1.haSlaveBrokerId"), "no slave");
        assert_eq!(table["shard1.haLagAlarm"], "true");
        assert_eq!(table["shard1.haLagAlarmCrossings"], "2");
        assert_eq!(table["shard1.slaveFallBehindMuch"], "7000");
        assert_eq!(table["slaveFallBehindMuch"], "7100");
        assert_eq!(table["haConnectedShards"], "1");
        assert_eq!(table["haLagAlarm"], "true");
        assert!(!table.contains_key("haMasterAddr"));
    }

    #[test]
    fn slave_keys_per_shard_and_summed() {
        let follow = FollowState {
            connected: true,
            master_end: 9000,
            caught_up: false,
            last_data_ago: Some(Duration::from_millis(3)),
            since_ms: 77,
            sessions: 2,
            truncations: 1,
            last_error: Some("HA peer closed the connection".into()),
        };
        let parts = [
            ShardHa::Slave {
                follow: follow.clone(),
                appended_end: 8000,
                master_ha_addr: Some("127.0.0.1:10912".into()),
                master_addr: Some("127.0.0.1:10911".into()),
            },
            ShardHa::Slave {
                follow: FollowState::default(),
                appended_end: 0,
                master_ha_addr: Some("127.0.0.1:10912".into()),
                master_addr: None,
            },
        ];
        let mut table = BTreeMap::new();
        insert_runtime_keys(&parts, 0, &mut table);
        assert_eq!(table["shard0.haConnected"], "true");
        assert_eq!(table["shard0.haMasterBehindBytes"], "1000");
        assert_eq!(table["shard0.haMasterEnd"], "9000");
        assert_eq!(table["shard0.haCaughtUp"], "false");
        assert_eq!(table["shard0.haLastDataMillisAgo"], "3");
        assert_eq!(table["shard0.haSessions"], "2");
        assert_eq!(table["shard0.haTruncations"], "1");
        assert_eq!(table["shard0.haLastError"], "HA peer closed the connection");
        assert_eq!(table["shard1.haConnected"], "false");
        assert_eq!(table["shard1.haMasterBehindBytes"], "-1", "never heard");
        assert!(!table.contains_key("shard1.haLastError"));
        assert_eq!(table["haConnectedShards"], "1");
        assert_eq!(table["haMasterBehindBytes"], "1000");
        assert_eq!(table["haMasterAddr"], "127.0.0.1:10912");
        assert_eq!(table["masterAddr"], "127.0.0.1:10911");
        assert!(!table.contains_key("slaveFallBehindMuch"));
    }
}
