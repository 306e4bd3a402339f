//! A running route: its listener's accept loop and its swappable state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::budget::{Budgets, OverBudget};
use crate::config::RouteName;
use crate::connection::handle;
use crate::events::EventBus;
use crate::metrics::{Metrics, Outcome, RouteMetrics, Side};
use crate::state::RouteState;
use crate::status::StatusBoard;

pub(crate) struct RouteRuntime {
    pub name: RouteName,
    state: ArcSwap<RouteState>,
    /// Slots (counted at start), handshakes in progress and connections
    /// per source.
    budgets: Budgets,
    pub metrics: Metrics,
    /// Handles of the per-message metrics, resolved once.
    pub counters: RouteMetrics,
    pub events: EventBus,
    pub status: Arc<StatusBoard>,
    /// Set for store-and-forward routes: fixed at start (changing the
    /// delivery mode needs a restart).
    pub store_forward: Option<StoreForward>,
    /// Set for `http` routes: rate buckets and the access log, fixed at
    /// start.
    pub http: Option<crate::http::HttpRuntime>,
    /// One per [`OverBudget`]: a flood of refusals logs a line a second.
    over_budget: [LogThrottle; 3],
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
        status: Arc<StatusBoard>,
        store_forward: Option<StoreForward>,
        http: Option<crate::http::HttpRuntime>,
    ) -> Self {
        let in_progress = metrics
            .handshakes_in_progress
            .get_or_create(&crate::metrics::RouteLabel {
                route: state.spec.name.as_str().to_string(),
            })
            .clone();
        RouteRuntime {
            store_forward,
            http,
            name: state.spec.name.clone(),
            budgets: Budgets::new(&state.spec.limits, in_progress),
            counters: metrics.route(state.spec.name.as_str()),
            state: ArcSwap::from_pointee(state),
            metrics,
            events,
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

    /// Accepts until `shutdown`; every connection is spawned on `tracker`
    /// so shutdown can wait for it. Over the limit, a connection is closed
    /// at once: the loop never waits for a permit.
    pub async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        force: CancellationToken,
        tracker: TaskTracker,
    ) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    warn!(route = %self.name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = self.current();
            match self
                .budgets
                .admit(remote.ip(), &state.spec.limits, state.server.is_some())
            {
                Ok(admission) => {
                    tracker.spawn(handle(
                        self.clone(),
                        tcp,
                        remote,
                        admission,
                        shutdown.clone(),
                        force.clone(),
                    ));
                }
                Err(over) => {
                    self.over_budget(remote, over);
                    self.metrics
                        .ended(self.name.as_str(), Outcome::RefusedLimit);
                }
            }
        }
        info!(route = %self.name, "stopped accepting");
    }

    /// Counts, records and (throttled) logs a connection closed over a
    /// budget: at accept, or pushed out of its handshake.
    pub(crate) fn over_budget(&self, remote: SocketAddr, over: OverBudget) {
        let (route, reason) = (self.name.as_str(), over.reason());
        self.metrics.refused(route, Side::Listen, reason);
        self.status
            .refused(route, Side::Listen, remote, reason, None);
        let Some(suppressed) = self.over_budget[over.index()].allow() else {
            return;
        };
        let (setting, value) = over.setting(&self.current().spec.limits);
        warn!(
            route = %self.name,
            remote = %remote,
            reason,
            suppressed,
            "refused: {} ({setting} = {value})",
            over.describe()
        );
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
