//! Connection budgets, taken at accept before a connection costs anything.
//!
//! Three budgets guard a route's slots. `max_connections` caps them all.
//! `max_handshakes` caps the connections still in their TLS handshake, so
//! peers that open sockets and never send a ClientHello (or never finish)
//! cannot hold the slots of partners that authenticate. And
//! `max_connections_per_source` caps what one address holds on every kind
//! of route, plain ones included, where slots are taken without any
//! handshake at all. A connection over any of them is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// Why a connection was refused at accept. `reason` is its label in
/// `guichet_refusals_total` and in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverBudget {
    /// The source address already holds `max_connections_per_source`.
    PerSource,
    /// The route holds `max_connections`.
    MaxConnections,
    /// `max_handshakes` connections are still in their TLS handshake.
    Handshakes,
}

impl OverBudget {
    pub const ALL: [OverBudget; 3] = [
        OverBudget::MaxConnections,
        OverBudget::PerSource,
        OverBudget::Handshakes,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            OverBudget::PerSource => crate::metrics::PER_SOURCE_LIMIT,
            OverBudget::MaxConnections => crate::metrics::OVER_LIMIT,
            OverBudget::Handshakes => crate::metrics::HANDSHAKE_BUDGET,
        }
    }

    /// For people: the status page and the log line.
    pub fn describe(self) -> &'static str {
        match self {
            OverBudget::PerSource => {
                "this address already holds max_connections_per_source connections"
            }
            OverBudget::MaxConnections => "route at its max_connections",
            OverBudget::Handshakes => {
                "max_handshakes connections are already in their TLS handshake"
            }
        }
    }

    /// The setting that was reached, and its value.
    pub fn setting(self, limits: &Limits) -> (&'static str, usize) {
        match self {
            OverBudget::PerSource => (
                "max_connections_per_source",
                limits.max_connections_per_source,
            ),
            OverBudget::MaxConnections => ("max_connections", limits.max_connections),
            OverBudget::Handshakes => ("max_handshakes", limits.max_handshakes),
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One route's budgets. The two semaphores are sized at start (changing
/// them needs a restart); the per-source limit is read at each accept, so
/// a reload changes it.
pub(crate) struct Budgets {
    slots: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    sources: Arc<Sources>,
}

/// What an admitted connection holds until it ends. Dropping it gives
/// everything back.
pub(crate) struct Admission {
    _slot: OwnedSemaphorePermit,
    _source: SourceGuard,
    handshake: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// The handshake permit, to drop once the TLS handshake is over
    /// (admitted or refused); `None` on plain listeners.
    pub fn take_handshake(&mut self) -> Option<OwnedSemaphorePermit> {
        self.handshake.take()
    }
}

impl Budgets {
    pub fn new(limits: &Limits) -> Self {
        Budgets {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
            sources: Arc::default(),
        }
    }

    /// Takes a slot for a connection from `source`, and a handshake permit
    /// when the listener speaks TLS; never waits. Checked in this order:
    /// `max_connections`, `max_connections_per_source`, `max_handshakes`.
    pub fn admit(
        &self,
        source: IpAddr,
        per_source: usize,
        tls: bool,
    ) -> Result<Admission, OverBudget> {
        // A full route says so whoever knocks; below that, the source
        // that holds too much is named.
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| OverBudget::MaxConnections)?;
        let source = Sources::enter(&self.sources, source, per_source)?;
        let handshake = match tls {
            false => None,
            true => Some(
                self.handshakes
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| OverBudget::Handshakes)?,
            ),
        };
        Ok(Admission {
            _slot: slot,
            _source: source,
            handshake,
        })
    }
}

/// Open connections per source address. Entries live only while the
/// address has a connection open, so the map never outgrows
/// `max_connections`.
#[derive(Default)]
struct Sources {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Sources {
    fn enter(this: &Arc<Self>, ip: IpAddr, limit: usize) -> Result<SourceGuard, OverBudget> {
        // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut open = this.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                open.remove(&ip);
            }
            return Err(OverBudget::PerSource);
        }
        *count += 1;
        Ok(SourceGuard {
            sources: this.clone(),
            ip,
        })
    }

    fn leave(&self, ip: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// One connection counted against its source address.
struct SourceGuard {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        self.sources.leave(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, handshakes: usize, per_source: usize) -> Limits {
        Limits {
            connect_timeout: std::time::Duration::from_secs(1),
            handshake_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
            max_connections: max,
            max_handshakes: handshakes,
            max_connections_per_source: per_source,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn f4_one_source_cannot_take_every_slot() {
        let budgets = Budgets::new(&limits(4, 4, 2));
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..2)
            .filter_map(|_| budgets.admit(a, 2, false).ok())
            .collect();
        assert_eq!(held.len(), 2);
        assert_eq!(
            budgets.admit(a, 2, false).err(),
            Some(OverBudget::PerSource)
        );
        // The same address in its IPv4-mapped IPv6 form is the same source.
        assert_eq!(
            budgets.admit(ip("::ffff:192.0.2.1"), 2, false).err(),
            Some(OverBudget::PerSource)
        );
        let other = budgets.admit(ip("192.0.2.2"), 2, false);
        assert!(other.is_ok());
        drop(held);
        assert!(budgets.admit(a, 2, false).is_ok());
    }

    #[test]
    fn f4_handshakes_have_a_budget_of_their_own() {
        let budgets = Budgets::new(&limits(3, 1, 3));
        let mut first = budgets.admit(ip("192.0.2.1"), 4, true).ok();
        assert!(first.is_some());
        assert_eq!(
            budgets.admit(ip("192.0.2.2"), 4, true).err(),
            Some(OverBudget::Handshakes)
        );
        // Plain listeners take no handshake permit.
        let plain = budgets.admit(ip("192.0.2.3"), 4, false);
        assert!(plain.is_ok());
        // Once the first handshake is over, another may start.
        drop(first.as_mut().and_then(Admission::take_handshake));
        let second = budgets.admit(ip("192.0.2.2"), 4, true);
        assert!(second.is_ok());
        // Three slots held: the route is full whatever the source.
        assert_eq!(
            budgets.admit(ip("192.0.2.4"), 4, false).err(),
            Some(OverBudget::MaxConnections)
        );
    }

    #[test]
    fn f4_refused_sources_leave_no_entry_behind() {
        let budgets = Budgets::new(&limits(1, 1, 1));
        let held = budgets.admit(ip("192.0.2.1"), 1, true);
        assert!(held.is_ok());
        for n in 2..50u8 {
            let refused = budgets.admit(IpAddr::from([192, 0, 2, n]), 1, true);
            assert_eq!(refused.err(), Some(OverBudget::MaxConnections));
        }
        let open = budgets.sources.open.lock().map(|o| o.len()).unwrap_or(0);
        assert_eq!(open, 1);
        drop(held);
        let open = budgets.sources.open.lock().map(|o| o.len()).unwrap_or(9);
        assert_eq!(open, 0);
    }
}
