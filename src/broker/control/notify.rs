//! NOTIFY_CONSUMER_IDS_CHANGED, coalesced per group on the control shard: the first change of
//! a group is notified at once; further changes within [`NOTIFY_GROUP_INTERVAL`] are folded
//! into one trailing notification at the end of the interval, sent to the group's members as
//! they are then. A storm of N consumers joining one group thus costs each member at most one
//! notification per interval instead of one per join (N²/2 in all), and the mesh carries one
//! notice per owning shard per flush, not one per member.
//!
//! Must never: hold more than one pending entry per group (so at most one notification per
//! member is queued per interval), queue without bound (pending groups are bounded by the
//! client registry's group limit), or send from a shard other than the control shard.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use rmq_net::codec::codes::RequestCode;
use rmq_net::codec::header::client::NotifyConsumerIdsChangedRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;

use crate::broker::shard::Shard;
use crate::limits::CONSUMER_GROUPS_MAX;
use crate::runtime::mesh::{notify, ConnKey};
use crate::runtime::ShardId;

pub use crate::limits::NOTIFY_GROUP_INTERVAL;

/// Per-group throttle state: when the group was last notified, and whether a change since
/// then still waits for the trailing notification.
#[derive(Debug, Default)]
pub struct Notifier {
    groups: RefCell<HashMap<String, Throttle>>,
    /// A flush task is sleeping (at most one).
    flush_scheduled: Cell<bool>,
    /// Notifications handed to owning shards (tests and gauges).
    sent: Cell<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Throttle {
    last_sent: Instant,
    pending: bool,
}

/// What [`Notifier::change`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Notify the group's members now.
    Now,
    /// A trailing notification is (now) pending.
    Deferred,
}

impl Notifier {
    /// Notifications handed to the shards owning the members' connections so far.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    fn change(&self, group: &str, now: Instant) -> Decision {
        let mut groups = self.groups.borrow_mut();
        if let Some(throttle) = groups.get_mut(group) {
            if now.saturating_duration_since(throttle.last_sent) < NOTIFY_GROUP_INTERVAL {
                throttle.pending = true;
                return Decision::Deferred;
            }
            throttle.last_sent = now;
            throttle.pending = false;
            return Decision::Now;
        }
        if groups.len() >= CONSUMER_GROUPS_MAX {
            // Bounded like the registry's groups: forget groups quiet for an interval.
            groups.retain(|_, t| {
                t.pending || now.saturating_duration_since(t.last_sent) < NOTIFY_GROUP_INTERVAL
            });
        }
        groups.insert(
            group.to_owned(),
            Throttle {
                last_sent: now,
                pending: false,
            },
        );
        Decision::Now
    }

    /// Groups whose trailing notification is due at `now` (marked sent), and when the next
    /// pending one is due. Quiet groups past their interval are forgotten.
    fn due(&self, now: Instant) -> (Vec<String>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        self.groups.borrow_mut().retain(|group, throttle| {
            let at = throttle.last_sent + NOTIFY_GROUP_INTERVAL;
            if !throttle.pending {
                return now < at;
            }
            if now >= at {
                throttle.pending = false;
                throttle.last_sent = now;
                due.push(group.clone());
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            true
        });
        (due, next)
    }
}

/// The members of `group` changed: notifies `members` now, or leaves one trailing
/// notification pending for the group.
pub fn group_changed(shard: &Rc<Shard>, group: &str, members: &[ConnKey]) {
    if members.is_empty() {
        return;
    }
    let notifier = &shard.control().notifier;
    match notifier.change(group, Instant::now()) {
        Decision::Now => send(shard, group, members),
        Decision::Deferred => schedule_flush(shard),
    }
}

fn schedule_flush(shard: &Rc<Shard>) {
    let notifier = &shard.control().notifier;
    if notifier.flush_scheduled.replace(true) {
        return;
    }
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        let mut wait = NOTIFY_GROUP_INTERVAL;
        loop {
            compio::time::sleep(wait).await;
            let (due, next) = shard.control().notifier.due(Instant::now());
            for group in due {
                let members = shard.control().clients.borrow().notify_list(&group);
                send(&shard, &group, &members);
            }
            match next {
                Some(at) => wait = at.saturating_duration_since(Instant::now()),
                None => break,
            }
        }
        shard.control().notifier.flush_scheduled.set(false);
    })
    .detach();
}

/// Sends NOTIFY_CONSUMER_IDS_CHANGED for `group` to `members`: one notice per owning shard.
fn send(shard: &Rc<Shard>, group: &str, members: &[ConnKey]) {
    let mut by_shard: BTreeMap<ShardId, Vec<u64>> = BTreeMap::new();
    for key in members {
        by_shard.entry(key.shard).or_default().push(key.conn);
    }
    let notifier = &shard.control().notifier;
    for (target, conns) in by_shard {
        let count = conns.len() as u64;
        let group = group.to_owned();
        let sent = notify(shard, target, move |owner: Rc<Shard>| async move {
            let header = NotifyConsumerIdsChangedRequestHeader {
                consumer_group: group,
            };
            let command =
                RemotingCommand::request(RequestCode::NotifyConsumerIdsChanged, header.to_ext())
                    .oneway();
            let live = owner.conns.borrow();
            for conn in conns {
                if let Some(conn) = live.get(&conn) {
                    if let Err(err) = conn.try_send_oneway(command.clone()) {
                        tracing::debug!(%err, "NOTIFY_CONSUMER_IDS_CHANGED dropped");
                    }
                }
            }
        });
        match sent {
            Ok(()) => notifier.sent.set(notifier.sent.get() + count),
            Err(err) => tracing::debug!(%err, "NOTIFY_CONSUMER_IDS_CHANGED not delivered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn changes_within_an_interval_fold_into_one_trailing_notification() {
        let notifier = Notifier::default();
        let t0 = Instant::now();
        assert_eq!(notifier.change("g", t0), Decision::Now);
        for i in 1..1000 {
            let at = t0 + Duration::from_micros(i);
            assert_eq!(notifier.change("g", at), Decision::Deferred);
        }
        assert_eq!(
            notifier.change("other", t0),
            Decision::Now,
            "groups are independent"
        );
        let (due, next) = notifier.due(t0 + Duration::from_millis(1));
        assert!(due.is_empty());
        assert_eq!(next, Some(t0 + NOTIFY_GROUP_INTERVAL));
        let (due, next) = notifier.due(t0 + NOTIFY_GROUP_INTERVAL);
        assert_eq!(due, vec!["g".to_owned()], "one trailing notification");
        assert_eq!(next, None);
        // The trailing notification restarted the interval.
        let later = t0 + NOTIFY_GROUP_INTERVAL + Duration::from_millis(1);
        assert_eq!(notifier.change("g", later), Decision::Deferred);
        // A quiet group is forgotten once its interval passed.
        let (due, _) = notifier.due(t0 + 3 * NOTIFY_GROUP_INTERVAL);
        assert_eq!(due, vec!["g".to_owned()]);
        let (due, next) = notifier.due(t0 + 5 * NOTIFY_GROUP_INTERVAL);
        assert!(due.is_empty() && next.is_none());
        assert!(notifier.groups.borrow().is_empty());
    }
}
