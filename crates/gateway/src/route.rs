//! A running route: its swappable state and what its connections share
//! for the route's whole life, whatever their protocol.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::budget::Budgets;
use crate::config::RouteName;
use crate::events::EventBus;
use crate::metrics::{Metrics, RouteMetrics};
use crate::observe::Observer;
use crate::state::RouteState;
use crate::status::StatusBoard;

pub(crate) struct RouteRuntime {
    pub name: RouteName,
    state: ArcSwap<RouteState>,
    /// Slots (counted at start), handshakes in progress and connections
    /// per source.
    pub(crate) budgets: Budgets,
    pub metrics: Metrics,
    /// Handles of the per-message metrics, resolved once.
    pub counters: RouteMetrics,
    pub events: EventBus,
    /// Counts the route's flows (parties, message types, outcomes).
    pub observer: Arc<Observer>,
    pub status: Arc<StatusBoard>,
    /// Set for store-and-forward routes: fixed at start (changing the
    /// delivery mode needs a restart).
    pub store_forward: Option<StoreForward>,
    /// One per [`crate::budget::OverBudget`]: a flood of refusals logs a
    /// line a second.
    pub(crate) over_budget: [LogThrottle; 3],
    /// Handshakes that timed out: silent connections, a flood of which
    /// must not flood the log either.
    pub(crate) handshake_timeouts: LogThrottle,
}

/// What a store-and-forward route's connections and worker share.
pub(crate) struct StoreForward {
    pub journal: guichet_journal::Journal,
    /// Ingest wakes the delivery worker with it.
    pub stored: Arc<tokio::sync::Notify>,
}

impl RouteRuntime {
    pub fn new(
        state: RouteState,
        metrics: Metrics,
        events: EventBus,
        observer: Arc<Observer>,
        status: Arc<StatusBoard>,
        store_forward: Option<StoreForward>,
    ) -> Self {
        let in_progress = metrics
            .handshakes_in_progress
            .get_or_create(&crate::metrics::RouteLabel {
                route: state.spec.name.as_str().to_string(),
            })
            .clone();
        RouteRuntime {
            store_forward,
            name: state.spec.name.clone(),
            budgets: Budgets::new(&state.spec.limits, in_progress),
            counters: metrics.route(state.spec.name.as_str()),
            state: ArcSwap::from_pointee(state),
            metrics,
            events,
            observer,
            status,
            over_budget: Default::default(),
            handshake_timeouts: LogThrottle::default(),
        }
    }

    /// The state new connections use; a connection keeps the one it
    /// started with.
    pub fn current(&self) -> Arc<RouteState> {
        self.state.load_full()
    }

    pub fn replace(&self, state: RouteState) {
        self.state.store(Arc::new(state));
    }
}

/// At most one log line per second for a repeated event, with the count of
/// lines suppressed since the last one (a flood must not flood the logs).
#[derive(Default)]
pub(crate) struct LogThrottle {
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_second.swap(now, Ordering::Relaxed) == now {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        }
    }
}
