//! The gateway: every route of one config file, its reloads and its
//! shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use guichet_journal::{BodyKey, Journal, JournalError, OpenOptions};
use tokio::sync::Notify;

use crate::accept::accept_loop;
use crate::config::{Config, ConfigError, FolderSpec, JournalSpec, RouteName, RouteSpec};
use crate::events::EventBus;
use crate::folder::{make_folders, FolderRoute};
use crate::housekeeping;
use crate::http::{AccessLogger, HttpRuntime};
use crate::metrics::Metrics;
use crate::mllp::deliver::Worker;
use crate::observe::{self, Observer};
use crate::reload::{Reloader, Shared};
use crate::revocation::{self, CrlCache};
use crate::route::{RouteRuntime, StoreForward};
use crate::state::{build_states, BuildError, Built, RouteState};
use crate::status::StatusBoard;
use crate::upstream::UpstreamClient;
use crate::watch::watch_files;

/// A gateway whose listeners are bound, ready to [`Gateway::run`].
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Vec<Listening>,
    events: EventBus,
    drain_timeout: Duration,
    watch_interval: Duration,
    /// Open when the config has a `[journal]`.
    journal: Option<(Journal, JournalSpec)>,
    /// The folder routes, with their upstreams.
    folders: Vec<(FolderSpec, UpstreamClient)>,
    /// Every route's flow counts, and how often they go to the journal
    /// (`None`: observation off).
    observer: Arc<Observer>,
    observe_flush: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Material(#[from] BuildError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("route \"{route}\": {error}")]
    Folder {
        route: RouteName,
        error: std::io::Error,
    },
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
            folders,
        } = build_states(&config, &metrics.ocsp, &crl_cache)?;
        let folders = folder_routes(&config, folders)?;
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
        let observer = Arc::new(match config.observe {
            Some(_) => Observer::new(),
            None => Observer::off(),
        });
        let ends = RouteEnds {
            journal: journal.as_ref().map(|(journal, _)| journal),
            metrics: &metrics,
            events: &events,
            observer: &observer,
            status: &status,
        };
        let (listeners, routes, http_runtimes) = ends.bind_all(states).await?;
        Ok(Gateway {
            shared: Arc::new(Shared {
                config_path: config.source.clone(),
                routes,
                http: http_runtimes,
                journal: config.journal.clone(),
                admin: crate::reload::admin_sections(&config),
                folders: format!("{:?}", config.folders),
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
            folders,
            observer,
            observe_flush: config.observe,
        })
    }

    /// The address a route actually listens on (useful with port 0).
    pub fn local_addr(&self, route: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(r, _, _)| r.name.as_str() == route)
            .and_then(|(_, _, l)| l.local_addr().ok())
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

    /// The journal, when the config has a `[journal]`: the admin
    /// listener's live map reads its observed flows.
    pub fn journal(&self) -> Option<Journal> {
        self.journal.as_ref().map(|(journal, _)| journal.clone())
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
        let stop_observing = CancellationToken::new();
        let observing = self.start_observing(&stop_observing);
        let mut accept_loops = accept_all(self.listeners, &shutdown, &force, &tracker);
        spawn_reloads(&self.shared, self.watch_interval, &shutdown);
        self.shared.status.set_ready(true);
        shutdown.cancelled().await;
        self.shared.status.set_ready(false);
        while accept_loops.join_next().await.is_some() {}
        drain(&tracker, &force, self.drain_timeout).await;
        // Senders are gone: delivery stops last, giving its lease back.
        stop_delivery.cancel();
        background.close();
        if tokio::time::timeout(Duration::from_secs(10), background.wait())
            .await
            .is_err()
        {
            warn!("delivery workers did not stop within 10s");
        }
        // Last, once nothing counts any more: the final flush.
        stop_observing.cancel();
        if let Some(flusher) = observing {
            if tokio::time::timeout(Duration::from_secs(10), flusher)
                .await
                .is_err()
            {
                warn!("observed flows: the last flush did not end within 10s");
            }
        }
        info!("gateway stopped");
    }

    /// Starts adding observed flows to the journal, when observation is on.
    fn start_observing(&self, stop: &CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let ((journal, _), every) = self.journal.as_ref().zip(self.observe_flush)?;
        info!(flush = ?every, "observing flows into the journal");
        Some(tokio::spawn(observe::flush_every(
            self.observer.clone(),
            journal.clone(),
            every,
            stop.clone(),
        )))
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
                node: spec.node.as_str().into(),
                lease_ttl: spec.lease_timeout,
                policy,
                wake: sf.stored.clone(),
            };
            tracker.spawn(worker.run(stop.clone()));
        }
        let node = &spec.node;
        for (folder, upstream) in &self.folders {
            stored_routes.push(folder.name.to_string());
            let route = FolderRoute {
                spec: folder.clone(),
                upstream: upstream.clone(),
                journal: journal.clone(),
                node: node.clone(),
                lease_ttl: spec.lease_timeout,
                metrics: self.shared.metrics.clone(),
                observer: self.observer.clone(),
            };
            tracker.spawn(route.run(stop.clone()));
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

/// The folder routes, their folders made: a route whose folders cannot
/// be made does not start.
fn folder_routes(
    config: &Config,
    mut upstreams: BTreeMap<RouteName, UpstreamClient>,
) -> Result<Vec<(FolderSpec, UpstreamClient)>, GatewayError> {
    let mut folders = Vec::new();
    for spec in &config.folders {
        make_folders(spec).map_err(|error| GatewayError::Folder {
            route: spec.name.clone(),
            error,
        })?;
        if let Some(upstream) = upstreams.remove(&spec.name) {
            info!(
                route = %spec.name,
                inbox = %spec.inbox.display(),
                upstream = %spec.upstream.origin,
                "folder route watching its inbox"
            );
            folders.push((spec.clone(), upstream));
        }
    }
    Ok(folders)
}

/// Opens the journal, with its body key when one is configured.
async fn open_journal(spec: &JournalSpec) -> Result<Journal, JournalError> {
    let key = spec.body_key.as_deref().map(BodyKey::load).transpose()?;
    let options = OpenOptions {
        key,
        ingest_connections: spec.ingest_connections,
        check: spec.integrity_check,
    };
    let journal = guichet_journal::open(&spec.store, options).await?;
    info!(store = %spec.store, node = %spec.node, "journal open");
    Ok(journal)
}

/// A bound listener, its route's runtime, and the http runtime on an
/// `http` route.
type Listening = (Arc<RouteRuntime>, Option<Arc<HttpRuntime>>, TcpListener);

/// What every route's runtime is built with.
struct RouteEnds<'a> {
    journal: Option<&'a Journal>,
    metrics: &'a Metrics,
    events: &'a EventBus,
    observer: &'a Arc<Observer>,
    status: &'a Arc<StatusBoard>,
}

impl RouteEnds<'_> {
    /// Binds every route's listener and builds its runtimes; fails on the
    /// first route that cannot start.
    #[allow(clippy::type_complexity)]
    async fn bind_all(
        &self,
        states: BTreeMap<RouteName, RouteState>,
    ) -> Result<
        (
            Vec<Listening>,
            BTreeMap<RouteName, Arc<RouteRuntime>>,
            Vec<Arc<HttpRuntime>>,
        ),
        GatewayError,
    > {
        let mut listeners = Vec::new();
        let mut routes = BTreeMap::new();
        let mut http_runtimes = Vec::new();
        for (name, state) in states {
            let (route, http, listener) = self.bind(&name, state).await?;
            http_runtimes.extend(http.clone());
            listeners.push((route.clone(), http, listener));
            routes.insert(name, route);
        }
        Ok((listeners, routes, http_runtimes))
    }

    async fn bind(&self, name: &RouteName, state: RouteState) -> Result<Listening, GatewayError> {
        let store_forward = match (self.journal, state.spec.store_and_forward()) {
            (Some(journal), Some(_)) => Some(StoreForward {
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
            self.status.bound(name.as_str(), bound);
        }
        let http = http_runtime(name, &state.spec, self.status)?;
        let route = Arc::new(RouteRuntime::new(
            state,
            self.metrics.clone(),
            self.events.clone(),
            self.observer.clone(),
            self.status.clone(),
            store_forward,
        ));
        Ok((route, http, listener))
    }
}

/// An `http` route's runtime: its access log opened, its upstream slots
/// counted.
fn http_runtime(
    name: &RouteName,
    spec: &RouteSpec,
    status: &StatusBoard,
) -> Result<Option<Arc<HttpRuntime>>, GatewayError> {
    let Some(spec) = spec.http() else {
        return Ok(None);
    };
    let access = AccessLogger::open(&spec.access_log, name.as_str()).map_err(|error| {
        GatewayError::AccessLog {
            route: name.clone(),
            error,
        }
    })?;
    let tally = status.http_tally(name.as_str());
    let runtime = HttpRuntime::new(access, spec.max_upstream_requests, tally);
    Ok(Some(Arc::new(runtime)))
}

/// Spawns every route's accept loop.
fn accept_all(
    listeners: Vec<Listening>,
    shutdown: &CancellationToken,
    force: &CancellationToken,
    tracker: &TaskTracker,
) -> JoinSet<()> {
    let mut accept_loops = JoinSet::new();
    for (route, http, listener) in listeners {
        let spec = route.current().spec.clone();
        info!(
            route = %spec.name,
            listen = %listener.local_addr().map_or(spec.listen, |a| a),
            listen_mode = spec.listen_mode(),
            forward = %spec.forward_label(),
            forward_mode = spec.forward_mode(),
            "route listening"
        );
        accept_loops.spawn(accept_loop(
            route,
            http,
            listener,
            shutdown.clone(),
            force.clone(),
            tracker.clone(),
        ));
    }
    accept_loops
}

/// Lets open connections finish for up to `timeout`, then closes the
/// rest (waiting a little more for them to go).
async fn drain(tracker: &TaskTracker, force: &CancellationToken, timeout: Duration) {
    tracker.close();
    let open = tracker.len();
    if open > 0 {
        info!(open, drain = ?timeout, "shutting down: waiting for open connections to finish");
    }
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        warn!(
            open = tracker.len(),
            "drain timeout reached: closing the remaining connections"
        );
        force.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    }
}

/// Starts what reloads the gateway by itself: the file watch (unless
/// disabled) and the CRL refreshes.
fn spawn_reloads(shared: &Arc<Shared>, watch_interval: Duration, shutdown: &CancellationToken) {
    if !watch_interval.is_zero() {
        let reloader = Reloader {
            shared: shared.clone(),
        };
        tokio::spawn(watch_files(reloader, watch_interval, shutdown.clone()));
    }
    tokio::spawn(revocation::refresh(
        Reloader {
            shared: shared.clone(),
        },
        shared.crl_cache.clone(),
        shared.metrics.clone(),
        shared.first_fetch,
        shutdown.clone(),
    ));
}
