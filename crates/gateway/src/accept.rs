//! A route's accept loop and its refusals over a budget: the only place a
//! connection is admitted or turned away before the dispatcher sees it.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::dispatch::handle;
use crate::http::HttpRuntime;
use crate::metrics::Outcome;
use crate::refuse::over_budget;
use crate::route::RouteRuntime;

/// Accepts until `shutdown`; every connection is spawned on `tracker`
/// so shutdown can wait for it. Over the limit, a connection is closed
/// at once: the loop never waits for a permit.
pub(crate) async fn accept_loop(
    route: Arc<RouteRuntime>,
    http: Option<Arc<HttpRuntime>>,
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
                warn!(route = %route.name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = route.current();
        match route
            .budgets
            .admit(remote.ip(), &state.spec.limits, state.server.is_some())
        {
            Ok(admission) => {
                tracker.spawn(handle(
                    route.clone(),
                    http.clone(),
                    tcp,
                    remote,
                    admission,
                    shutdown.clone(),
                    force.clone(),
                ));
            }
            Err(over) => {
                over_budget(&route, remote, over);
                route
                    .metrics
                    .ended(route.name.as_str(), Outcome::RefusedLimit);
            }
        }
    }
    info!(route = %route.name, "stopped accepting");
}
