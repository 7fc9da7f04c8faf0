//! The bytes held for frames not yet complete, summed over every connection of one serve loop,
//! and what happens past its limit: the connections holding the most are shed (they stop being
//! read and are closed) until the sum is back under the limit.
//!
//! One budget per [`crate::conn::serve`] loop, so per shard: it lives on the shard's thread and
//! counts with `Cell`s. A process-wide atomic would put one cache line written on every read
//! of every core in the hot path; per shard, the process bound is shards × the limit, which
//! grows with the machine as memory does. A connection outside a serve loop (a client, or
//! [`crate::conn::serve_connection`]) has a budget of its own.
//! Must never be shared between threads, shed a connection while the sum is within the limit,
//! or count a connection's bytes twice.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use super::handle::ConnShared;

/// Why a connection was shed, as the budget saw it at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShedRecord {
    /// Bytes of incomplete frames the connection held.
    pub(crate) buffered: usize,
    /// Bytes of incomplete frames the serve loop held, the connection's included.
    pub(crate) total: usize,
    /// The budget's limit.
    pub(crate) limit: usize,
}

/// See the module doc.
pub(crate) struct PartialFrameBudget {
    limit: usize,
    total: Cell<usize>,
    members: RefCell<HashMap<u64, Weak<ConnShared>>>,
}

impl PartialFrameBudget {
    /// A budget of `limit` bytes.
    ///
    /// # Panics
    /// If `limit` is zero (a configuration bug: every partial frame would be shed).
    pub(crate) fn new(limit: usize) -> Self {
        assert!(limit > 0, "partial-frame budget is zero");
        Self {
            limit,
            total: Cell::new(0),
            members: RefCell::new(HashMap::new()),
        }
    }

    /// Bytes of incomplete frames held now.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.total.get()
    }

    /// Adds `shared` to the connections that can be shed; the guard takes it out (and its
    /// bytes off the total) when dropped.
    pub(crate) fn join<'a>(&'a self, shared: &'a Rc<ConnShared>) -> Membership<'a> {
        let previous = self
            .members
            .borrow_mut()
            .insert(shared.id(), Rc::downgrade(shared));
        assert!(previous.is_none(), "connection joined its budget twice");
        assert_eq!(shared.partial_bytes(), 0);
        Membership {
            budget: self,
            shared,
        }
    }

    /// Records that `shared` now holds `held` bytes of incomplete frames. Past the limit,
    /// sheds the connections holding the most (possibly `shared` itself) until the total is
    /// within it. A closed connection counts as holding nothing: it reads no more.
    pub(crate) fn charge(&self, shared: &ConnShared, held: usize) {
        let held = if shared.is_closed() { 0 } else { held };
        let before = shared.partial_bytes();
        let total = self.total.get() - before + held;
        shared.set_partial_bytes(held);
        self.total.set(total);
        if total > self.limit {
            self.shed_largest();
        }
        assert!(self.total.get() <= self.limit);
    }

    /// Sheds members, largest holder first, until the total is within the limit.
    fn shed_largest(&self) {
        let mut holders: Vec<Rc<ConnShared>> = self
            .members
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|member| member.partial_bytes() > 0)
            .collect();
        holders.sort_by_key(|member| std::cmp::Reverse(member.partial_bytes()));
        for victim in holders {
            let total = self.total.get();
            if total <= self.limit {
                break;
            }
            let buffered = victim.partial_bytes();
            victim.set_partial_bytes(0);
            self.total.set(total - buffered);
            // The connection logs the WARN (peer, bytes, total, limit) as it ends.
            tracing::debug!(
                peer = %victim.peer_addr(),
                buffered,
                total,
                limit = self.limit,
                "too many bytes of incomplete frames: shedding the connection holding the most"
            );
            victim.shed(ShedRecord {
                buffered,
                total,
                limit: self.limit,
            });
        }
    }
}

/// A connection's place in its budget; see [`PartialFrameBudget::join`].
pub(crate) struct Membership<'a> {
    budget: &'a PartialFrameBudget,
    shared: &'a Rc<ConnShared>,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let held = self.shared.partial_bytes();
        self.budget.total.set(self.budget.total.get() - held);
        self.shared.set_partial_bytes(0);
        let removed = self.budget.members.borrow_mut().remove(&self.shared.id());
        assert!(removed.is_some(), "member left its budget twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::config::ConnConfig;
    use crate::conn::handle::RequestEncoding;

    fn connection(port: u16) -> Rc<ConnShared> {
        Rc::new(ConnShared::new(
            ([127, 0, 0, 1], port).into(),
            &ConnConfig::default(),
            RequestEncoding::FollowPeer,
        ))
    }

    #[test]
    fn within_the_limit_nothing_is_shed() {
        let budget = PartialFrameBudget::new(1000);
        let (a, b) = (connection(1), connection(2));
        let (_ma, _mb) = (budget.join(&a), budget.join(&b));
        budget.charge(&a, 600);
        budget.charge(&b, 400);
        assert_eq!(budget.total(), 1000);
        // A connection's bytes are replaced, not added up.
        budget.charge(&a, 100);
        assert_eq!(budget.total(), 500);
        assert!(!a.is_closed() && !b.is_closed());
    }

    #[test]
    fn past_the_limit_the_largest_holders_are_shed_until_within() {
        let budget = PartialFrameBudget::new(1000);
        let conns: Vec<_> = (1..=5).map(connection).collect();
        let _members: Vec<_> = conns.iter().map(|c| budget.join(c)).collect();
        // Four small holders (whole small frames with a partial tail), then two big ones.
        for conn in &conns[..3] {
            budget.charge(conn, 50);
        }
        budget.charge(&conns[3], 400);
        budget.charge(&conns[4], 300);
        assert_eq!(budget.total(), 850);
        // Connection 4 grows to 600: the total of 1050 sheds it (the largest), and only it.
        budget.charge(&conns[3], 600);
        assert!(conns[3].is_closed());
        assert_eq!(
            conns[3].shed_record(),
            Some(ShedRecord {
                buffered: 600,
                total: 1050,
                limit: 1000
            })
        );
        assert_eq!(budget.total(), 450);
        assert!(conns
            .iter()
            .enumerate()
            .all(|(i, c)| i == 3 || !c.is_closed()));
        // A small holder pushing the total over sheds the largest other holder instead.
        budget.charge(&conns[0], 800);
        assert!(conns[0].is_closed(), "800 is now the largest");
        assert!(!conns[4].is_closed());
        // Shed connections count as holding nothing, even if their loop charges once more.
        budget.charge(&conns[3], 600);
        assert_eq!(budget.total(), 400);
    }

    #[test]
    fn shedding_stops_as_soon_as_the_total_is_within_the_limit() {
        let budget = PartialFrameBudget::new(1000);
        let conns: Vec<_> = (1..=4).map(connection).collect();
        let _members: Vec<_> = conns.iter().map(|c| budget.join(c)).collect();
        budget.charge(&conns[0], 300);
        budget.charge(&conns[1], 300);
        budget.charge(&conns[2], 300);
        // 1100: shedding one 300-byte holder is enough, so no other goes.
        budget.charge(&conns[3], 200);
        let shed = conns.iter().filter(|c| c.is_closed()).count();
        assert_eq!(shed, 1);
        assert!(budget.total() <= 1000);
        // A jump far over the limit by one connection sheds it alone.
        budget.charge(&conns[3], 5000);
        assert!(conns[3].is_closed());
        assert_eq!(conns.iter().filter(|c| c.is_closed()).count(), 2);
        assert!(budget.total() <= 1000);
    }

    #[test]
    fn leaving_takes_the_bytes_off() {
        let budget = PartialFrameBudget::new(1000);
        let a = connection(1);
        {
            let _member = budget.join(&a);
            budget.charge(&a, 700);
            assert_eq!(budget.total(), 700);
        }
        assert_eq!(budget.total(), 0);
        assert_eq!(a.partial_bytes(), 0);
        let b = connection(2);
        let _member = budget.join(&b);
        budget.charge(&b, 900);
        assert!(
            !b.is_closed(),
            "a departed connection's bytes no longer count"
        );
    }
}
