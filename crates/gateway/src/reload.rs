//! Reloads of a running gateway: re-read the config file and every
//! certificate, check that nothing which changes only at restart changed,
//! and swap the new route states in for new connections.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{error, info, warn};

use crate::config::{Config, JournalSpec, RouteName, TlsProfile};
use crate::http::HttpRuntime;
use crate::metrics::{Metrics, ReloadLabels, ReloadOutcome};
use crate::revocation::{CrlCache, CrlHost, CrlStatus, FetchRound};
use crate::route::RouteRuntime;
use crate::state::{build_states, Built, RouteState};
use crate::status::StatusBoard;

/// What the running gateway and its reloads share.
pub(crate) struct Shared {
    pub(crate) config_path: PathBuf,
    pub(crate) routes: BTreeMap<RouteName, Arc<RouteRuntime>>,
    /// The `http` routes' runtimes: their access logs reopen on reload.
    pub(crate) http: Vec<Arc<HttpRuntime>>,
    /// The `[journal]` in force: it changes only at restart.
    pub(crate) journal: Option<JournalSpec>,
    /// The `[admin]` and `[map]` sections in force, as text: they change
    /// only at restart (the admin server itself re-reads its certificate
    /// and token files, and the map its data).
    pub(crate) admin: String,
    /// The folder routes as started, to warn that changes wait for a
    /// restart.
    pub(crate) folders: String,
    pub(crate) metrics: Metrics,
    /// Files whose change triggers a reload (from the config in force).
    pub(crate) files: Mutex<Vec<PathBuf>>,
    pub(crate) status: Arc<StatusBoard>,
    /// One reload at a time.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// CRLs fetched over HTTP(S), kept across reloads.
    pub(crate) crl_cache: CrlCache,
    /// The profiles in force (where their CRLs come from).
    pub(crate) profiles: Mutex<Vec<TlsProfile>>,
    /// The CRLs in force, for the freshness gauge.
    pub(crate) crls: Mutex<Vec<CrlStatus>>,
    /// The first round of CRL fetches, made before binding.
    pub(crate) first_fetch: FetchRound,
}

/// Triggers reloads of a running gateway (SIGHUP, file changes, tests).
#[derive(Clone)]
pub struct Reloader {
    pub(crate) shared: Arc<Shared>,
}

/// A reload that was refused; the previous configuration stays in force.
#[derive(Debug, thiserror::Error)]
#[error("reload refused, previous configuration kept: {0}")]
pub struct ReloadError(String);

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

/// The sections the admin listener starts with, as text to compare.
pub(crate) fn admin_sections(config: &Config) -> String {
    format!("{:?} {:?}", config.admin, config.map)
}

impl Shared {
    fn reload(&self) -> Result<(), ReloadError> {
        let config = Config::load(&self.config_path).map_err(|e| ReloadError(e.to_string()))?;
        self.check_restart_only(&config)?;
        let Built {
            states,
            certificates,
            staplers,
            crls,
            folders: _,
        } = build_states(&config, &self.metrics.ocsp, &self.crl_cache)
            .map_err(|e| ReloadError(e.to_string()))?;
        staplers.iter().for_each(guichet_tls::Stapler::spawn);
        self.swap_states(states);
        if admin_sections(&config) != self.admin {
            warn!("[admin] or [map] changed: it applies at the next restart; the admin listener keeps its settings");
        }
        if format!("{:?}", config.folders) != self.folders {
            warn!("a folder route changed: folder routes apply their settings at the next restart");
        }
        // Log rotation moves the access logs away and reloads: new files.
        for http in &self.http {
            http.access.reopen();
        }
        self.keep_in_force(&config, crls);
        // New `crl_urls` are fetched now, not at the next refresh.
        self.crl_cache.poke();
        self.status.reloaded(&config, certificates);
        Ok(())
    }

    /// Refuses a config that changes what only a restart may change: the
    /// journal, a route's kind or its delivery mode.
    fn check_restart_only(&self, config: &Config) -> Result<(), ReloadError> {
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
        Ok(())
    }

    /// Swaps the new states in for new connections; routes added or
    /// removed wait for a restart.
    fn swap_states(&self, mut states: BTreeMap<RouteName, RouteState>) {
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
    }

    /// What the watch and the CRL refreshes read of the config in force.
    fn keep_in_force(&self, config: &Config, crls: Vec<CrlStatus>) {
        if let Ok(mut files) = self.files.lock() {
            *files = config.watched_files();
        }
        if let Ok(mut profiles) = self.profiles.lock() {
            *profiles = config.profiles.values().cloned().collect();
        }
        if let Ok(mut in_force) = self.crls.lock() {
            *in_force = crls;
        }
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
