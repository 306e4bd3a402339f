//! A route's delivery lease in the journal: the one node holding it
//! delivers the route's queue; it renews the lease a third into its
//! life and stops delivering the moment it cannot.

use std::time::{Duration, SystemTime};

use guichet_journal::{Journal, JournalError};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::certs::unix_ms;
use crate::metrics::{Metrics, RouteLabel};

/// Why a worker stopped delivering for now.
pub(crate) enum Pause {
    Shutdown,
    LeaseLost,
}

/// One route's lease, as one node holds it (or tries to).
pub(crate) struct Lease {
    journal: Journal,
    route: String,
    node: String,
    ttl: Duration,
    /// When the lease is next due for renewal. Kept across batches: under
    /// steady traffic no batch waits, and a due date reset per batch
    /// would never come, letting the lease expire while this node still
    /// delivers.
    renew_at: Instant,
    /// `guichet_delivery_lease`: 1 while held.
    gauge: Gauge,
}

impl Lease {
    pub fn new(
        journal: Journal,
        route: &str,
        node: &str,
        ttl: Duration,
        metrics: &Metrics,
    ) -> Lease {
        let gauge = metrics
            .delivery_lease
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .clone();
        Lease {
            journal,
            route: route.to_string(),
            node: node.to_string(),
            ttl,
            renew_at: Instant::now(),
            gauge,
        }
    }

    /// Tries to take the lease; on success puts back in line what a
    /// previous holder left in flight. Waits a little when refused.
    pub async fn take(&mut self, shutdown: &CancellationToken) -> bool {
        match self.renew().await {
            Ok(true) => match self.journal.recover(&self.route).await {
                Ok(recovered) => {
                    info!(recovered, "delivery lease taken: delivering this route");
                    self.renew_at = Instant::now() + self.ttl / 3;
                    self.gauge.set(1);
                    return true;
                }
                Err(e) => warn!("journal unavailable, delivery waits: {e}"),
            },
            Ok(false) => {}
            Err(e) => warn!("journal unavailable, delivery waits: {e}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(self.ttl / 3) => {}
        }
        false
    }

    /// Notes the lease lost: what this node claimed goes back in line when
    /// it takes the lease again, or by the new holder.
    pub fn lost(&self) {
        warn!("delivery lease lost: another node delivers this route now");
        self.gauge.set(0);
    }

    /// Puts what this node claimed back in line and gives the lease back.
    pub async fn give_back(&self) {
        if let Err(e) = self.journal.recover(&self.route).await {
            warn!("could not put claimed messages back in line: {e}");
        }
        let _ = self.journal.release_lease(&self.route, &self.node).await;
        self.gauge.set(0);
    }

    async fn renew(&self) -> Result<bool, JournalError> {
        let ttl = self.ttl.as_millis() as i64;
        let now = unix_ms(SystemTime::now());
        self.journal
            .acquire_lease(&self.route, &self.node, now, ttl)
            .await
    }

    /// When the lease is next due for renewal.
    pub fn renew_at(&self) -> Instant {
        self.renew_at
    }

    /// Renews the lease when due; a refusal means another node has it.
    pub async fn keep(&mut self) -> Result<(), Pause> {
        let now = Instant::now();
        if now < self.renew_at {
            return Ok(());
        }
        // `renew_at` is a third into the lease: past its end, another node
        // may hold it already, whatever the database says next.
        if now >= self.renew_at + self.ttl * 2 / 3 {
            warn!("the delivery lease ran out before it could be renewed (node overloaded?)");
            return Err(Pause::LeaseLost);
        }
        match self.renew().await {
            Ok(true) => {
                self.renew_at = now + self.ttl / 3;
                Ok(())
            }
            Ok(false) => Err(Pause::LeaseLost),
            Err(e) => {
                // Cannot tell: stop before the lease may expire under us.
                warn!("cannot renew the delivery lease: {e}");
                Err(Pause::LeaseLost)
            }
        }
    }

    /// Waits for a wake-up, `wait`, or shutdown, renewing the lease.
    pub async fn idle(
        &mut self,
        wake: &Notify,
        shutdown: &CancellationToken,
        wait: Duration,
    ) -> Result<(), Pause> {
        let until = Instant::now() + wait;
        loop {
            self.keep().await?;
            let step = until.min(self.renew_at);
            tokio::select! {
                () = shutdown.cancelled() => return Err(Pause::Shutdown),
                () = wake.notified() => return Ok(()),
                () = tokio::time::sleep_until(step) => {
                    if Instant::now() >= until {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Sleeps until `at_ms` (wall clock), renewing the lease.
    pub async fn wait_until_ms(
        &mut self,
        at_ms: i64,
        shutdown: &CancellationToken,
    ) -> Result<(), Pause> {
        loop {
            let now = unix_ms(SystemTime::now());
            if now >= at_ms {
                return Ok(());
            }
            self.keep().await?;
            let left = Duration::from_millis((at_ms - now) as u64);
            let step = (Instant::now() + left).min(self.renew_at);
            tokio::select! {
                () = shutdown.cancelled() => return Err(Pause::Shutdown),
                () = tokio::time::sleep_until(step) => {}
            }
        }
    }
}
