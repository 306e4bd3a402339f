//! Connection budgets, taken at accept before a connection costs anything.
//!
//! Three budgets guard a route's slots. `max_connections` caps them all,
//! and `max_connections_per_source` caps what one address holds on every
//! kind of route, plain ones included, where slots are taken without any
//! handshake at all: a connection over either is closed at once.
//!
//! `max_handshakes` caps the connections still in their TLS handshake, so
//! peers that open sockets and never send a ClientHello (or never finish)
//! cannot hold the slots of partners that authenticate. When it is full,
//! the *oldest* handshake in progress is closed to make room, rather than
//! the newcomer: a real partner's handshake takes milliseconds, so under
//! a flood from many addresses it still completes long before the flood
//! pushes it out, while refusing newcomers would lock every partner out
//! for as long as the flood lasts.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::Limits;

/// Why a connection was refused at accept. `reason` is its label in
/// `guichet_refusals_total` and in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverBudget {
    /// The source address already holds `max_connections_per_source`.
    PerSource,
    /// The route holds `max_connections`.
    MaxConnections,
    /// `max_handshakes` connections were in their TLS handshake and this
    /// was the oldest: closed to make room for a new one.
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
                "oldest of max_handshakes connections still in their TLS handshake, closed to make room for a new one"
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

/// One route's budgets. The slots are counted at start (changing
/// `max_connections` needs a restart); the two other limits are read at
/// each accept, so a reload changes them.
pub(crate) struct Budgets {
    slots: Arc<Semaphore>,
    handshakes: Arc<Handshakes>,
    sources: Arc<Sources>,
}

/// What an admitted connection holds until it ends. Dropping it gives
/// everything back.
pub(crate) struct Admission {
    _slot: OwnedSemaphorePermit,
    _source: SourceGuard,
    handshake: Option<HandshakeTicket>,
}

impl Admission {
    /// The handshake's place in `max_handshakes`, to drop once the TLS
    /// handshake is over (admitted or refused); `None` on plain listeners.
    pub fn take_handshake(&mut self) -> Option<HandshakeTicket> {
        self.handshake.take()
    }
}

impl Budgets {
    /// `in_progress` shows the handshakes in progress (a metric).
    pub fn new(limits: &Limits, in_progress: Gauge) -> Self {
        Budgets {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            handshakes: Arc::new(Handshakes {
                in_progress,
                ..Handshakes::default()
            }),
            sources: Arc::default(),
        }
    }

    /// Takes a slot for a connection from `source`, and a place among the
    /// handshakes in progress when the listener speaks TLS; never waits.
    /// Refused over `max_connections`, then over
    /// `max_connections_per_source`; a full `max_handshakes` closes the
    /// oldest handshake instead (see the module's doc).
    pub fn admit(
        &self,
        source: IpAddr,
        limits: &Limits,
        tls: bool,
    ) -> Result<Admission, OverBudget> {
        // A full route says so whoever knocks; below that, the source
        // that holds too much is named.
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| OverBudget::MaxConnections)?;
        let source = Sources::enter(&self.sources, source, limits.max_connections_per_source)?;
        let handshake = tls.then(|| Handshakes::start(&self.handshakes, limits.max_handshakes));
        Ok(Admission {
            _slot: slot,
            _source: source,
            handshake,
        })
    }
}

/// The TLS handshakes in progress, oldest first (ids grow with time).
#[derive(Default)]
struct Handshakes {
    pending: Mutex<BTreeMap<u64, CancellationToken>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Kept equal to the number pending.
    in_progress: Gauge,
}

impl Handshakes {
    /// Registers a new handshake, closing the oldest ones while
    /// `max` are already in progress.
    fn start(this: &Arc<Self>, max: usize) -> HandshakeTicket {
        let id = this
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut pending = this.pending.lock().unwrap_or_else(|e| e.into_inner());
        while pending.len() >= max.max(1) {
            match pending.pop_first() {
                Some((_, oldest)) => oldest.cancel(),
                None => break,
            }
        }
        pending.insert(id, evicted.clone());
        this.in_progress.set(pending.len() as i64);
        HandshakeTicket {
            id,
            evicted,
            handshakes: this.clone(),
        }
    }
}

/// One handshake in progress; dropping it ends its count.
pub(crate) struct HandshakeTicket {
    id: u64,
    evicted: CancellationToken,
    handshakes: Arc<Handshakes>,
}

impl HandshakeTicket {
    /// Cancelled when newer handshakes push this one out: the connection
    /// must then close, counted as `handshake_budget`.
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        let mut pending = self
            .handshakes
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pending.remove(&self.id);
        self.handshakes.in_progress.set(pending.len() as i64);
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
        let l = limits(4, 4, 2);
        let budgets = Budgets::new(&l, Gauge::default());
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..2)
            .filter_map(|_| budgets.admit(a, &l, false).ok())
            .collect();
        assert_eq!(held.len(), 2);
        assert_eq!(
            budgets.admit(a, &l, false).err(),
            Some(OverBudget::PerSource)
        );
        // The same address in its IPv4-mapped IPv6 form is the same source.
        assert_eq!(
            budgets.admit(ip("::ffff:192.0.2.1"), &l, false).err(),
            Some(OverBudget::PerSource)
        );
        let other = budgets.admit(ip("192.0.2.2"), &l, false);
        assert!(other.is_ok());
        drop(held);
        assert!(budgets.admit(a, &l, false).is_ok());
    }

    #[test]
    fn f4_a_full_handshake_budget_closes_the_oldest_handshake() {
        let l = limits(4, 2, 4);
        let budgets = Budgets::new(&l, Gauge::default());
        let admit = |last: u8| {
            let mut admission = budgets
                .admit(IpAddr::from([192, 0, 2, last]), &l, true)
                .ok();
            admission.as_mut().and_then(Admission::take_handshake)
        };
        let (first, second) = (admit(1), admit(2));
        let evicted = |t: &Option<HandshakeTicket>| t.as_ref().map(|t| t.evicted().is_cancelled());
        assert_eq!(
            (evicted(&first), evicted(&second)),
            (Some(false), Some(false))
        );
        let third = admit(3);
        assert_eq!(evicted(&first), Some(true), "the oldest makes room");
        assert_eq!(
            (evicted(&second), evicted(&third)),
            (Some(false), Some(false))
        );
        // A handshake that ended leaves room without closing anyone.
        drop((first, second));
        let fourth = admit(4);
        assert_eq!(
            (evicted(&third), evicted(&fourth)),
            (Some(false), Some(false))
        );
    }

    #[test]
    fn f4_plain_listeners_take_no_handshake_place() {
        let l = limits(3, 1, 3);
        let budgets = Budgets::new(&l, Gauge::default());
        let mut plain = budgets.admit(ip("192.0.2.1"), &l, false).ok();
        assert!(plain.as_mut().and_then(Admission::take_handshake).is_none());
        let held: Vec<_> = (2..4u8)
            .filter_map(|n| budgets.admit(IpAddr::from([192, 0, 2, n]), &l, false).ok())
            .collect();
        assert_eq!(held.len(), 2);
        // Three slots held: the route is full whatever the source.
        assert_eq!(
            budgets.admit(ip("192.0.2.9"), &l, true).err(),
            Some(OverBudget::MaxConnections)
        );
    }

    #[test]
    fn f4_refused_sources_leave_no_entry_behind() {
        let l = limits(1, 1, 1);
        let budgets = Budgets::new(&l, Gauge::default());
        let held = budgets.admit(ip("192.0.2.1"), &l, true);
        assert!(held.is_ok());
        for n in 2..50u8 {
            let refused = budgets.admit(IpAddr::from([192, 0, 2, n]), &l, true);
            assert_eq!(refused.err(), Some(OverBudget::MaxConnections));
        }
        let open = budgets.sources.open.lock().map(|o| o.len()).unwrap_or(0);
        assert_eq!(open, 1);
        drop(held);
        let open = budgets.sources.open.lock().map(|o| o.len()).unwrap_or(9);
        assert_eq!(open, 0);
        let pending = budgets
            .handshakes
            .pending
            .lock()
            .map(|p| p.len())
            .unwrap_or(9);
        assert_eq!(pending, 0);
        assert_eq!(budgets.handshakes.in_progress.get(), 0);
    }
}
