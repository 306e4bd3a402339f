//! How a route turns a connection away: counted, shown on the status page
//! and logged, with floods of the same refusal logged a line a second.

use std::net::SocketAddr;

use guichet_tls::{Refusal, RefusalReason};
use tracing::warn;

use crate::budget::OverBudget;
use crate::metrics::Side;
use crate::route::RouteRuntime;

/// Counts, records and (throttled) logs a connection closed over a
/// budget: at accept, or pushed out of its handshake.
pub(crate) fn over_budget(route: &RouteRuntime, remote: SocketAddr, over: OverBudget) {
    let (name, reason) = (route.name.as_str(), over.reason());
    route.metrics.refused(name, Side::Listen, reason);
    route
        .status
        .refused(name, Side::Listen, remote, reason, None);
    let Some(suppressed) = route.over_budget[over.index()].allow() else {
        return;
    };
    let (setting, value) = over.setting(&route.current().spec.limits);
    warn!(
        route = %route.name,
        remote = %remote,
        reason,
        suppressed,
        "refused: {} ({setting} = {value})",
        over.describe()
    );
}

/// Counts, records and logs a failed TLS handshake on either side.
pub(crate) fn refuse(route_rt: &RouteRuntime, remote: SocketAddr, side: Side, refusal: &Refusal) {
    let route = route_rt.name.as_str();
    let reason = refusal.reason.as_str();
    route_rt.metrics.refused(route, side, reason);
    route_rt
        .status
        .refused(route, side, remote, reason, Some(refusal));
    match side {
        // Nothing to act on per connection: a line a second, with the count
        // of lines suppressed.
        Side::Listen if refusal.reason == RefusalReason::HandshakeTimeout => {
            if let Some(suppressed) = route_rt.handshake_timeouts.allow() {
                warn!(reason, suppressed, "refused: {refusal}");
            }
        }
        Side::Listen => warn!(reason = refusal.reason.as_str(), "refused: {refusal}"),
        Side::Forward => warn!(
            reason = refusal.reason.as_str(),
            "forward TLS handshake failed: {refusal}; closing the client connection"
        ),
    }
}
