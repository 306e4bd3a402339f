//! The gateway: every route of one config file, its reloads and its
//! shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use guichet_journal::{BodyKey, Journal, JournalError, OpenOptions};
use tokio::sync::Notify;

use crate::config::{Config, ConfigError, JournalSpec, RouteName, TlsProfile};
use crate::deliver::Worker;
use crate::events::EventBus;
use crate::housekeeping;
use crate::http::{AccessLogger, HttpRuntime};
use crate::metrics::{Metrics, ReloadLabels, ReloadOutcome};
use crate::revocation::{self, CrlCache, CrlHost, CrlStatus, FetchRound};
use crate::route::{RouteRuntime, StoreForward};
use crate::state::{build_states, BuildError, Built, RouteState};
use crate::status::StatusBoard;
use crate::watch::watch_files;

/// A gateway whose listeners are bound, ready to [`Gateway::run`].
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Vec<(Arc<RouteRuntime>, TcpListener)>,
    events: EventBus,
    drain_timeout: Duration,
    watch_interval: Duration,
    /// Open when the config has a `[journal]`.
    journal: Option<(Journal, JournalSpec)>,
}

/// What the running gateway and its reloads share.
struct Shared {
    config_path: PathBuf,
    routes: BTreeMap<RouteName, Arc<RouteRuntime>>,
    /// The `[journal]` in force: it changes only at restart.
    journal: Option<JournalSpec>,
    /// The `[admin]` section in force, as text: it changes only at
    /// restart (its certificate and token files are re-read by the admin
    /// server itself).
    admin: String,
    metrics: Metrics,
    /// Files whose change triggers a reload (from the config in force).
    files: Mutex<Vec<PathBuf>>,
    status: Arc<StatusBoard>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// CRLs fetched over HTTP(S), kept across reloads.
    crl_cache: CrlCache,
    /// The profiles in force (where their CRLs come from).
    profiles: Mutex<Vec<TlsProfile>>,
    /// The CRLs in force, for the freshness gauge.
    crls: Mutex<Vec<CrlStatus>>,
    /// The first round of CRL fetches, made before binding.
    first_fetch: FetchRound,
}

/// Triggers reloads of a running gateway (SIGHUP, file changes, tests).
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Material(#[from] BuildError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("route \"{route}\": cannot open its access log: {error}")]
    AccessLog {
        route: RouteName,
        error: std::io::Error,
    },
    #[error("route \"{route}\": cannot listen on {addr}: {error}")]
    Bind {
        route: RouteName,
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// A reload that was refused; the previous configuration stays in force.
#[derive(Debug, thiserror::Error)]
#[error("reload refused, previous configuration kept: {0}")]
pub struct ReloadError(String);

impl Gateway {
    /// Loads all certificate material and binds every listener; fails
    /// without listening at all if any route cannot start.
    pub async fn bind(config: Config, metrics: Metrics) -> Result<Gateway, GatewayError> {
        let events = EventBus::default();
        let crl_cache = CrlCache::new(metrics.clone());
        let first_fetch = crl_cache
            .fetch_all(config.profiles.values(), &metrics)
            .await;
        let Built {
            states,
            certificates,
            staplers,
            crls,
        } = build_states(&config, &metrics.ocsp, &crl_cache)?;
        staplers.iter().for_each(guichet_tls::Stapler::spawn);
        let status = Arc::new(StatusBoard::new(
            &config,
            certificates,
            events.clone(),
            metrics.clone(),
        ));
        let journal = match &config.journal {
            Some(spec) => Some((open_journal(spec).await?, spec.clone())),
            None => None,
        };
        let mut listeners = Vec::new();
        let mut routes = BTreeMap::new();
        for (name, state) in states {
            let store_forward = match (&journal, state.spec.store_and_forward()) {
                (Some((journal, _)), Some(_)) => Some(StoreForward {
                    journal: journal.clone(),
                    stored: Arc::new(Notify::new()),
                }),
                _ => None,
            };
            let addr = state.spec.listen;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|error| GatewayError::Bind {
                    route: name.clone(),
                    addr,
                    error,
                })?;
            if let Ok(bound) = listener.local_addr() {
                status.bound(name.as_str(), bound);
            }
            let http = match state.spec.http() {
                Some(spec) => {
                    let access =
                        AccessLogger::open(&spec.access_log, name.as_str()).map_err(|error| {
                            GatewayError::AccessLog {
                                route: name.clone(),
                                error,
                            }
                        })?;
                    Some(HttpRuntime::new(access, spec.max_upstream_requests))
                }
                None => None,
            };
            let route = Arc::new(RouteRuntime::new(
                state,
                metrics.clone(),
                events.clone(),
                status.clone(),
                store_forward,
                http,
            ));
            listeners.push((route.clone(), listener));
            routes.insert(name, route);
        }
        Ok(Gateway {
            shared: Arc::new(Shared {
                config_path: config.source.clone(),
                routes,
                journal: config.journal.clone(),
                admin: format!("{:?}", config.admin),
                metrics,
                files: Mutex::new(config.watched_files()),
                reloading: tokio::sync::Mutex::new(()),
                status,
                crl_cache,
                profiles: Mutex::new(config.profiles.values().cloned().collect()),
                crls: Mutex::new(crls),
                first_fetch,
            }),
            listeners,
            events,
            drain_timeout: config.drain_timeout,
            watch_interval: config.watch_interval,
            journal,
        })
    }

    /// The address a route actually listens on (useful with port 0).
    pub fn local_addr(&self, route: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(r, _)| r.name.as_str() == route)
            .and_then(|(_, l)| l.local_addr().ok())
    }

    /// The stream of message events of every `mllp` route.
    pub fn events(&self) -> EventBus {
        self.events.clone()
    }

    /// What the admin server shows: routes, counts, recent messages and
    /// refusals, certificates, readiness.
    pub fn status(&self) -> Arc<StatusBoard> {
        self.shared.status.clone()
    }

    pub fn reloader(&self) -> Reloader {
        Reloader {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets
    /// open connections finish for up to the drain timeout.
    pub async fn run(self, shutdown: CancellationToken) {
        let force = CancellationToken::new();
        let tracker = TaskTracker::new();
        let stop_delivery = CancellationToken::new();
        let background = self.start_journal_work(&stop_delivery);
        let mut accept_loops = JoinSet::new();
        for (route, listener) in self.listeners {
            let spec = route.current().spec.clone();
            info!(
                route = %spec.name,
                listen = %listener.local_addr().map_or(spec.listen, |a| a),
                listen_mode = spec.listen_mode(),
                forward = %spec.forward_label(),
                forward_mode = spec.forward_mode(),
                "route listening"
            );
            accept_loops.spawn(route.accept_loop(
                listener,
                shutdown.clone(),
                force.clone(),
                tracker.clone(),
            ));
        }
        if !self.watch_interval.is_zero() {
            let reloader = Reloader {
                shared: self.shared.clone(),
            };
            tokio::spawn(watch_files(reloader, self.watch_interval, shutdown.clone()));
        }
        tokio::spawn(revocation::refresh(
            Reloader {
                shared: self.shared.clone(),
            },
            self.shared.crl_cache.clone(),
            self.shared.metrics.clone(),
            self.shared.first_fetch,
            shutdown.clone(),
        ));
        self.shared.status.set_ready(true);
        shutdown.cancelled().await;
        self.shared.status.set_ready(false);
        while accept_loops.join_next().await.is_some() {}
        tracker.close();
        let open = tracker.len();
        if open > 0 {
            info!(open, drain = ?self.drain_timeout, "shutting down: waiting for open connections to finish");
        }
        if tokio::time::timeout(self.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                open = tracker.len(),
                "drain timeout reached: closing the remaining connections"
            );
            force.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        }
        // Senders are gone: delivery stops last, giving its lease back.
        stop_delivery.cancel();
        background.close();
        if tokio::time::timeout(Duration::from_secs(10), background.wait())
            .await
            .is_err()
        {
            warn!("delivery workers did not stop within 10s");
        }
        info!("gateway stopped");
    }

    /// Starts the delivery worker of every store-and-forward route, the
    /// queue figures and the pruning.
    fn start_journal_work(&self, stop: &CancellationToken) -> TaskTracker {
        let tracker = TaskTracker::new();
        let Some((journal, spec)) = &self.journal else {
            return tracker;
        };
        let mut stored_routes = Vec::new();
        for route in self.shared.routes.values() {
            let (Some(sf), Some(policy)) = (
                &route.store_forward,
                route.current().spec.store_and_forward(),
            ) else {
                continue;
            };
            stored_routes.push(route.name.to_string());
            let worker = Worker {
                route: route.clone(),
                journal: journal.clone(),
                node: spec.node.clone(),
                lease_ttl: spec.lease_timeout,
                policy,
                wake: sf.stored.clone(),
            };
            tracker.spawn(worker.run(stop.clone()));
        }
        tracker.spawn(housekeeping::publish_stats(
            journal.clone(),
            stored_routes,
            self.shared.metrics.clone(),
            self.shared.status.clone(),
            stop.clone(),
        ));
        tracker.spawn(housekeeping::prune(
            journal.clone(),
            spec.clone(),
            stop.clone(),
        ));
        tracker
    }
}

/// Opens the journal, with its body key when one is configured.
async fn open_journal(spec: &JournalSpec) -> Result<Journal, JournalError> {
    let key = spec.body_key.as_deref().map(BodyKey::load).transpose()?;
    let journal = guichet_journal::open(&spec.store, OpenOptions { key }).await?;
    info!(store = %spec.store, node = %spec.node, "journal open");
    Ok(journal)
}

impl Reloader {
    /// Re-reads the config file and every certificate, key, CA bundle and
    /// CRL, then swaps them in for new connections. On any error nothing
    /// changes. `cause` says what asked for it, for the log.
    pub async fn reload(&self, cause: &str) -> Result<(), ReloadError> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || shared.reload())
            .await
            .map_err(|e| ReloadError(format!("reload task failed: {e}")))
            .and_then(|r| r);
        let outcome = match &result {
            Ok(()) => {
                info!(cause, "reloaded configuration and certificates");
                self.shared.status.record_reload(cause, None);
                ReloadOutcome::Ok
            }
            Err(e) => {
                error!(cause, "{e}");
                self.shared.status.record_reload(cause, Some(e.to_string()));
                ReloadOutcome::Error
            }
        };
        self.shared
            .metrics
            .reloads
            .get_or_create(&ReloadLabels { outcome })
            .inc();
        result
    }

    /// The files a change of which should trigger a reload.
    pub fn files(&self) -> Vec<PathBuf> {
        self.shared
            .files
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }
}

impl Shared {
    fn reload(&self) -> Result<(), ReloadError> {
        let config = Config::load(&self.config_path).map_err(|e| ReloadError(e.to_string()))?;
        if config.journal != self.journal {
            return Err(ReloadError(
                "the [journal] section changed: it changes only at restart".into(),
            ));
        }
        for (name, route) in &self.routes {
            let kind = route.current().spec.kind.as_str();
            if let Some(new) = config.route(name.as_str()) {
                if new.kind.as_str() != kind {
                    // A route must never run half as one kind, half as
                    // another (an http route's rate limits and access log
                    // are set up at start).
                    return Err(ReloadError(format!(
                        "route \"{name}\": its kind changed from {kind} to {}; it changes only at restart",
                        new.kind.as_str()
                    )));
                }
            }
            let running = route.store_forward.is_some();
            if config
                .route(name.as_str())
                .is_some_and(|r| r.store_and_forward().is_some() != running)
            {
                return Err(ReloadError(format!(
                    "route \"{name}\": its delivery mode changed; it changes only at restart"
                )));
            }
        }
        let Built {
            mut states,
            certificates,
            staplers,
            crls,
        } = build_states(&config, &self.metrics.ocsp, &self.crl_cache)
            .map_err(|e| ReloadError(e.to_string()))?;
        staplers.iter().for_each(guichet_tls::Stapler::spawn);
        for (name, route) in &self.routes {
            match states.remove(name) {
                Some(new) => {
                    warn_restart_needed(&route.current(), &new);
                    route.replace(new);
                }
                None => {
                    warn!(route = %name, "route removed from the config: it keeps running until restart")
                }
            }
        }
        for name in states.keys() {
            warn!(route = %name, "new route in the config: it starts at the next restart");
        }
        if format!("{:?}", config.admin) != self.admin {
            warn!("[admin] changed: it applies at the next restart; the admin listener keeps its settings");
        }
        // Log rotation moves the access logs away and reloads: new files.
        for route in self.routes.values() {
            if let Some(http) = &route.http {
                http.access.reopen();
            }
        }
        if let Ok(mut files) = self.files.lock() {
            *files = config.watched_files();
        }
        if let Ok(mut profiles) = self.profiles.lock() {
            *profiles = config.profiles.values().cloned().collect();
        }
        if let Ok(mut in_force) = self.crls.lock() {
            *in_force = crls;
        }
        // New `crl_urls` are fetched now, not at the next refresh.
        self.crl_cache.poke();
        self.status.reloaded(&config, certificates);
        Ok(())
    }
}

impl CrlHost for Reloader {
    fn profiles(&self) -> Vec<TlsProfile> {
        self.shared
            .profiles
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    fn crls_in_force(&self) -> Vec<CrlStatus> {
        self.shared
            .crls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// A fetched CRL reaches the TLS ends as a reload does; a refused
    /// reload (a broken config file meanwhile) is logged and counted by
    /// `reload`, and the fresh CRL is applied at the next good one.
    async fn rebuild(&self) {
        let _ = self.reload("crl refresh").await;
    }
}

fn warn_restart_needed(old: &RouteState, new: &RouteState) {
    let (old, new) = (&old.spec, &new.spec);
    if let (Some(was), Some(now)) = (old.http(), new.http()) {
        if was.access_log != now.access_log {
            warn!(route = %old.name, "access_log changes only at restart; the log stays where it was");
        }
        if was.max_upstream_requests != now.max_upstream_requests {
            warn!(route = %old.name, "max_upstream_requests changes only at restart");
        }
    }
    if old.listen != new.listen || old.limits.max_connections != new.limits.max_connections {
        warn!(
            route = %old.name,
            "listen address and max_connections change only at restart; the rest is reloaded"
        );
    }
}
