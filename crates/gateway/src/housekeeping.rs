//! Background work of the journal: queue figures for /metrics and the
//! status page, and pruning per the retention settings. Neither ever
//! blocks ingest: figures are read on the journal's read side, pruning
//! deletes in small transactions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use guichet_journal::{Journal, RouteStats};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::certs::unix_ms;
use crate::config::JournalSpec;
use crate::metrics::{Metrics, RouteLabel};
use crate::status::StatusBoard;

/// How often queue figures are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(2);

/// Refreshes queue figures until `shutdown`.
pub(crate) async fn publish_stats(
    journal: Journal,
    routes: Vec<String>,
    metrics: Metrics,
    status: Arc<StatusBoard>,
    shutdown: CancellationToken,
) {
    loop {
        match journal.stats().await {
            Ok(stats) => {
                let now = unix_ms(SystemTime::now());
                for route in &routes {
                    let stat = stats.iter().find(|s| &s.route == route);
                    set_gauges(&metrics, route, stat, now);
                }
                status.journal_stats(stats, now);
            }
            Err(e) => warn!("cannot read queue figures from the journal: {e}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(STATS_EVERY) => {}
        }
    }
}

fn set_gauges(metrics: &Metrics, route: &str, stat: Option<&RouteStats>, now_ms: i64) {
    let label = RouteLabel {
        route: route.to_string(),
    };
    let oldest = stat
        .and_then(|s| s.oldest_pending_ms)
        .map_or(0, |at| (now_ms - at).max(0) / 1000);
    metrics
        .queue_depth
        .get_or_create(&label)
        .set(stat.map_or(0, |s| s.depth as i64));
    metrics
        .queue_oldest_seconds
        .get_or_create(&label)
        .set(oldest);
    metrics
        .dead_messages
        .get_or_create(&label)
        .set(stat.map_or(0, |s| s.dead as i64));
}

/// Prunes every `prune_interval` until `shutdown`, first soon after start.
pub(crate) async fn prune(journal: Journal, spec: JournalSpec, shutdown: CancellationToken) {
    let mut wait = Duration::from_secs(60).min(spec.prune_interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = spec.prune_interval;
        let now = unix_ms(SystemTime::now());
        let bodies_before = now - spec.retain_bodies.as_millis() as i64;
        let records_before = now - spec.retain_events.as_millis() as i64;
        match journal.prune(bodies_before, records_before).await {
            Ok(report) if report.bodies_deleted + report.records_deleted > 0 => info!(
                bodies_deleted = report.bodies_deleted,
                records_deleted = report.records_deleted,
                "journal pruned per retention settings"
            ),
            Ok(_) => {}
            Err(e) => warn!("journal pruning failed (retried next time): {e}"),
        }
    }
}
