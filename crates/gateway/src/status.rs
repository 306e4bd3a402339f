//! What a person or a monitoring system may ask of a running gateway:
//! routes, live counts, recent messages and refusals, certificates.
//!
//! Everything here is metadata: message events carry MSH fields and ACK
//! codes only, refusals carry certificate subjects and fingerprints.

mod http;

pub use http::{
    HttpRefusalRecord, HttpRouteStatus, HttpRuleStatus, HttpTally, Refused as HttpRefused,
    RequestCounts,
};

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use guichet_tls::Refusal;
use serde::Serialize;

pub use crate::certs::CertStatus;
use crate::certs::{rfc3339, unix_now, EXPIRY_WARNING_DAYS};
use crate::config::{
    AuthSpec, Config, Convert, FolderSpec, RouteKind, RouteSpec, BED_AVAILABILITY,
};
use crate::events::{EventBus, MessageEvent, MessageOutcome};
use crate::metrics::{
    CertLabels, FolderFileLabels, MessageLabels, Metrics, Outcome, OutcomeLabels, RefusalLabels,
    RouteLabel, Side, FOLDER_FILE_REASONS,
};

/// Refusals kept for the status page.
const RECENT_REFUSALS: usize = 100;

/// The live state the admin server reads.
pub struct StatusBoard {
    started: SystemTime,
    /// `[gateway] name`: the page's title.
    name: Mutex<Option<String>>,
    config_path: PathBuf,
    ready: AtomicBool,
    routes: ArcSwap<Vec<RouteSpec>>,
    /// Addresses actually bound (differ from the config with port 0).
    bound: Mutex<BTreeMap<String, SocketAddr>>,
    certificates: ArcSwap<Vec<CertStatus>>,
    refusals: Mutex<VecDeque<RefusalRecord>>,
    last_reload: Mutex<Option<ReloadRecord>>,
    events: EventBus,
    metrics: Metrics,
    /// The journal's last queue figures, per store-and-forward route.
    queues: Mutex<BTreeMap<String, QueueStatus>>,
    /// The folder routes, as started (they change at restart only).
    folders: Vec<FolderSpec>,
    /// The `http` routes' requests and refusals, by route.
    http: Mutex<BTreeMap<String, Arc<HttpTally>>>,
}

/// A store-and-forward route's queue, as last read from the journal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStatus {
    /// Stored and not yet delivered.
    pub depth: u64,
    pub in_flight: u64,
    /// Waiting for a retry after a failed attempt.
    pub failed: u64,
    /// Given up; an operator may replay them.
    pub dead: u64,
    pub oldest_pending_age_seconds: Option<i64>,
    /// Whether this node delivers the route now.
    pub delivering_here: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefusalRecord {
    pub at: String,
    pub route: String,
    pub side: &'static str,
    pub remote: String,
    pub reason: &'static str,
    pub description: String,
    pub subject: Option<String>,
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    pub at: String,
    pub cause: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The whole status, as `/api/status` returns it.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    /// `[gateway] name`, when the config gives one.
    pub name: Option<String>,
    pub now: String,
    pub started: String,
    pub uptime_seconds: u64,
    pub config: String,
    pub ready: bool,
    pub last_reload: Option<ReloadRecord>,
    pub routes: Vec<RouteStatus>,
    pub folders: Vec<FolderStatus>,
    pub certificates: Vec<CertView>,
    pub recent_messages: Vec<MessageRecord>,
    pub recent_refusals: Vec<RefusalRecord>,
}

#[derive(Debug, Serialize)]
pub struct RouteStatus {
    pub name: String,
    pub kind: &'static str,
    pub listen: String,
    pub listen_mode: &'static str,
    pub allow: Vec<String>,
    pub forward: String,
    pub forward_mode: &'static str,
    pub server_name: Option<String>,
    pub open_connections: i64,
    /// Ended connections by outcome (non-zero only).
    pub connections: BTreeMap<&'static str, u64>,
    pub refusals: u64,
    /// Messages by outcome (`mllp` routes; non-zero only).
    pub messages: BTreeMap<&'static str, u64>,
    /// `store-and-forward` or `passthrough` (`mllp` routes).
    pub delivery: Option<&'static str>,
    /// Store-and-forward routes: the journal's queue.
    pub queue: Option<QueueStatus>,
    /// `http` routes: each rule's requests, and the last refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRouteStatus>,
}

/// A folder route: its folders, its upstream, the files it finished and
/// its queue.
#[derive(Debug, Serialize)]
pub struct FolderStatus {
    pub name: String,
    pub inbox: String,
    pub done: String,
    pub rejected: String,
    pub upstream: String,
    /// `bed-availability` when it validates.
    pub validate: Option<&'static str>,
    /// `fhir`, `xml` or `patch` when it converts.
    pub convert: Option<&'static str>,
    /// Files finished, by outcome (`done`, `rejected`).
    pub files: BTreeMap<&'static str, u64>,
    pub queue: QueueStatus,
}

#[derive(Debug, Serialize)]
pub struct CertView {
    #[serde(flatten)]
    pub cert: CertStatus,
    pub days_left: i64,
    /// Expires within [`EXPIRY_WARNING_DAYS`], or already expired.
    pub warning: bool,
}

#[derive(Debug, Serialize)]
pub struct MessageRecord {
    pub at: String,
    pub route: String,
    pub peer_app: Option<String>,
    pub sender: String,
    pub receiver: String,
    pub message_type: String,
    pub control_id: String,
    pub version: String,
    pub size: usize,
    pub outcome: &'static str,
    pub id_matches: Option<bool>,
    pub latency_ms: Option<f64>,
}

impl StatusBoard {
    pub(crate) fn new(
        config: &Config,
        certificates: Vec<CertStatus>,
        events: EventBus,
        metrics: Metrics,
    ) -> Self {
        StatusBoard {
            started: SystemTime::now(),
            name: Mutex::new(config.name.clone()),
            config_path: config.source.clone(),
            ready: AtomicBool::new(false),
            routes: ArcSwap::from_pointee(config.routes.clone()),
            bound: Mutex::new(BTreeMap::new()),
            certificates: ArcSwap::from_pointee(certificates),
            refusals: Mutex::new(VecDeque::with_capacity(RECENT_REFUSALS)),
            last_reload: Mutex::new(None),
            queues: Mutex::new(BTreeMap::new()),
            folders: config.folders.clone(),
            http: Mutex::new(BTreeMap::new()),
            events,
            metrics,
        }
    }

    /// Listeners bound, material loaded and accept loops running.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub(crate) fn bound(&self, route: &str, addr: SocketAddr) {
        if let Ok(mut bound) = self.bound.lock() {
            bound.insert(route.to_string(), addr);
        }
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn reloaded(&self, config: &Config, certificates: Vec<CertStatus>) {
        if let Ok(mut name) = self.name.lock() {
            name.clone_from(&config.name);
        }
        self.routes.store(Arc::new(config.routes.clone()));
        self.certificates.store(Arc::new(certificates));
    }

    pub(crate) fn record_reload(&self, cause: &str, error: Option<String>) {
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(ReloadRecord {
                at: rfc3339(SystemTime::now()),
                cause: cause.to_string(),
                ok: error.is_none(),
                error,
            });
        }
    }

    /// The counters of the `http` route `route`, made at its first call.
    pub(crate) fn http_tally(&self, route: &str) -> Arc<HttpTally> {
        let Ok(mut tallies) = self.http.lock() else {
            return Arc::default();
        };
        tallies.entry(route.to_string()).or_default().clone()
    }

    /// Records a refusal for the page: a TLS one with its certificate, or
    /// (`refusal` is `None`) a budget at accept named by `reason`.
    pub(crate) fn refused(
        &self,
        route: &str,
        side: Side,
        remote: SocketAddr,
        reason: &'static str,
        refusal: Option<&Refusal>,
    ) {
        let record = RefusalRecord {
            at: rfc3339(SystemTime::now()),
            route: route.to_string(),
            side: side.as_str(),
            remote: remote.to_string(),
            reason,
            description: refusal.map_or_else(|| describe_budget(reason), Refusal::summary),
            subject: refusal
                .and_then(|r| r.presented.as_ref())
                .map(|p| p.subject.clone()),
            fingerprint: refusal
                .and_then(|r| r.presented.as_ref())
                .map(|p| p.fingerprint.to_string()),
        };
        if let (Some(refusal), Side::Listen) = (refusal, side) {
            self.http_handshake_refused(route, refusal);
        }
        if let Ok(mut recent) = self.refusals.lock() {
            if recent.len() == RECENT_REFUSALS {
                recent.pop_front();
            }
            recent.push_back(record);
        }
    }

    /// A TLS handshake refused on an `http` route, for its own table.
    fn http_handshake_refused(&self, route: &str, refusal: &Refusal) {
        let tally = self.http.lock().ok().and_then(|t| t.get(route).cloned());
        let Some(tally) = tally else {
            return;
        };
        tally.handshake_refused(HttpRefused {
            at: SystemTime::now(),
            rule: None,
            app: None,
            subject: refusal
                .presented
                .as_ref()
                .map(|p| Arc::from(p.subject.as_str())),
            reason: refusal.reason.as_str(),
            status: None,
            description: Some(refusal.reason.describe().to_string()),
        });
    }

    /// Seconds until each configured certificate expires, for `/metrics`;
    /// the earliest one for a CA bundle of several.
    pub fn certificate_expiry(&self) -> BTreeMap<CertLabels, i64> {
        let now = unix_now();
        let mut out = BTreeMap::new();
        for c in self.certificates.load().iter() {
            let labels = CertLabels {
                profile: c.profile.clone(),
                role: c.role,
                file: c.file.clone(),
            };
            let left = c.not_after_unix - now;
            out.entry(labels)
                .and_modify(|s: &mut i64| *s = (*s).min(left))
                .or_insert(left);
        }
        out
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = SystemTime::now();
        let unix = unix_now();
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            name: self.name.lock().ok().and_then(|n| n.clone()),
            now: rfc3339(now),
            started: rfc3339(self.started),
            uptime_seconds: now.duration_since(self.started).map_or(0, |d| d.as_secs()),
            config: self.config_path.display().to_string(),
            ready: self.is_ready(),
            last_reload: self.last_reload.lock().ok().and_then(|r| r.clone()),
            routes: self
                .routes
                .load()
                .iter()
                .map(|r| self.route_status(r))
                .collect(),
            folders: self.folders.iter().map(|f| self.folder_status(f)).collect(),
            certificates: self
                .certificates
                .load()
                .iter()
                .map(|c| {
                    let days_left = (c.not_after_unix - unix).div_euclid(86_400);
                    CertView {
                        cert: c.clone(),
                        days_left,
                        warning: days_left < EXPIRY_WARNING_DAYS,
                    }
                })
                .collect(),
            recent_messages: self
                .events
                .recent()
                .iter()
                .rev()
                .map(|e| message_record(e))
                .collect(),
            recent_refusals: self
                .refusals
                .lock()
                .map(|r| r.iter().rev().cloned().collect())
                .unwrap_or_default(),
        }
    }

    fn route_status(&self, spec: &RouteSpec) -> RouteStatus {
        let route = spec.name.as_str().to_string();
        let m = &self.metrics;
        RouteStatus {
            kind: spec.kind.as_str(),
            listen: self
                .bound
                .lock()
                .ok()
                .and_then(|b| b.get(spec.name.as_str()).copied())
                .unwrap_or(spec.listen)
                .to_string(),
            listen_mode: spec.listen_mode(),
            allow: allowed_apps(spec),
            forward: spec.forward_label(),
            forward_mode: spec.forward_mode(),
            server_name: spec
                .forward_tls
                .as_ref()
                .map(|t| t.server_name.to_str().into_owned()),
            open_connections: open_connections(m, &route),
            connections: connection_counts(m, &route),
            refusals: refusal_count(m, &route),
            messages: message_counts(m, &route),
            delivery: delivery(spec),
            queue: self.queue(spec),
            http: self.http_status(spec),
            name: route,
        }
    }

    /// An `http` route's rules and their requests, and its last refusals.
    fn http_status(&self, spec: &RouteSpec) -> Option<HttpRouteStatus> {
        let http = spec.http()?;
        let tally = self.http.lock().ok()?.get(spec.name.as_str()).cloned();
        Some(tally.unwrap_or_default().status(http))
    }

    /// A store-and-forward route's queue, and whether this node delivers
    /// it now.
    fn queue(&self, spec: &RouteSpec) -> Option<QueueStatus> {
        spec.store_and_forward()
            .map(|_| self.queue_of(spec.name.as_str()))
    }

    /// The queue of the route `name` in the journal, and whether this node
    /// delivers it now.
    fn queue_of(&self, name: &str) -> QueueStatus {
        // A route the journal did not list has nothing owed.
        let mut queue = self
            .queues
            .lock()
            .ok()
            .and_then(|q| q.get(name).cloned())
            .unwrap_or_default();
        queue.delivering_here = self
            .metrics
            .delivery_lease
            .get(&RouteLabel {
                route: name.to_string(),
            })
            .is_some_and(|g| g.get() == 1);
        queue
    }

    fn folder_status(&self, spec: &FolderSpec) -> FolderStatus {
        let route = spec.name.to_string();
        let validation = spec.validation.as_deref();
        FolderStatus {
            inbox: spec.inbox.display().to_string(),
            done: spec.done.display().to_string(),
            rejected: spec.rejected.display().to_string(),
            upstream: spec.upstream.origin.to_string(),
            validate: validation.map(|_| BED_AVAILABILITY),
            convert: validation.and_then(|v| v.convert).map(Convert::as_str),
            files: folder_counts(&self.metrics, &route),
            queue: self.queue_of(&route),
            name: route,
        }
    }

    /// Keeps the journal's latest queue figures for the page.
    pub(crate) fn journal_stats(&self, stats: Vec<guichet_journal::RouteStats>, now_ms: i64) {
        let queues = stats
            .into_iter()
            .map(|s| {
                let status = QueueStatus {
                    depth: s.depth,
                    in_flight: s.in_flight,
                    failed: s.failed,
                    dead: s.dead,
                    oldest_pending_age_seconds: s
                        .oldest_pending_ms
                        .map(|at| (now_ms - at).max(0) / 1000),
                    delivering_here: false,
                };
                (s.route, status)
            })
            .collect();
        if let Ok(mut q) = self.queues.lock() {
            *q = queues;
        }
    }
}

fn message_record(e: &MessageEvent) -> MessageRecord {
    let h = e.header.as_ref();
    let text = |f: fn(&guichet_hl7::Header) -> &str| h.map(f).unwrap_or_default().to_owned();
    let (id_matches, latency_ms) = match &e.outcome {
        MessageOutcome::Acknowledged {
            id_matches,
            latency,
            ..
        } => (Some(*id_matches), Some(latency.as_secs_f64() * 1e3)),
        _ => (None, None),
    };
    MessageRecord {
        at: rfc3339(e.at),
        route: e.route.to_string(),
        peer_app: e.peer_app.as_ref().map(ToString::to_string),
        sender: text(|h| &h.sending_application),
        receiver: text(|h| &h.receiving_application),
        message_type: text(|h| &h.message_type),
        control_id: text(|h| &h.control_id),
        version: text(|h| &h.version),
        size: e.size,
        outcome: e.outcome.label(),
        id_matches,
        latency_ms,
    }
}

fn open_connections(m: &Metrics, route: &str) -> i64 {
    m.connections_open
        .get(&RouteLabel {
            route: route.to_string(),
        })
        .map_or(0, |g| g.get())
}

/// Connections ended, per outcome that happened at least once.
fn connection_counts(m: &Metrics, route: &str) -> BTreeMap<&'static str, u64> {
    Outcome::ALL
        .iter()
        .filter_map(|&outcome| {
            let n = m
                .connections
                .get(&OutcomeLabels {
                    route: route.to_string(),
                    outcome,
                })?
                .get();
            (n > 0).then_some((outcome.as_str(), n))
        })
        .collect()
}

/// Peers refused, on both sides, for every reason.
fn refusal_count(m: &Metrics, route: &str) -> u64 {
    crate::metrics::refusal_reasons()
        .flat_map(|reason| [Side::Listen, Side::Forward].map(|side| (reason, side)))
        .filter_map(|(reason, side)| {
            m.refusals
                .get(&RefusalLabels {
                    route: route.to_string(),
                    side,
                    reason,
                })
                .map(|c| c.get())
        })
        .sum()
}

/// HL7 messages, per outcome that happened at least once.
fn message_counts(m: &Metrics, route: &str) -> BTreeMap<&'static str, u64> {
    MessageOutcome::LABELS
        .iter()
        .filter_map(|&outcome| {
            let n = m
                .messages
                .get(&MessageLabels {
                    route: route.to_string(),
                    outcome,
                })?
                .get();
            (n > 0).then_some((outcome, n))
        })
        .collect()
}

/// A folder route's finished files, by outcome (non-zero only).
fn folder_counts(m: &Metrics, route: &str) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for (outcome, reason) in FOLDER_FILE_REASONS {
        let labels = FolderFileLabels {
            route: route.to_string(),
            outcome,
            reason,
        };
        if let Some(n) = m.folder_files.get(&labels).map(|c| c.get()) {
            *counts.entry(outcome).or_insert(0) += n;
        }
    }
    counts
}

/// The applications a route's listener admits, by name.
fn allowed_apps(spec: &RouteSpec) -> Vec<String> {
    match &spec.listen_tls {
        Some(tls) => match &tls.auth {
            AuthSpec::Required(rules) => rules.iter().map(|r| r.name.to_string()).collect(),
            AuthSpec::NoClientCert => Vec::new(),
        },
        None => Vec::new(),
    }
}

/// How an `mllp` route delivers; nothing for other kinds.
fn delivery(spec: &RouteSpec) -> Option<&'static str> {
    match &spec.kind {
        RouteKind::Mllp(_) if spec.store_and_forward().is_some() => Some("store-and-forward"),
        RouteKind::Mllp(_) => Some("passthrough"),
        RouteKind::Tcp | RouteKind::Http(_) => None,
    }
}

/// The words for a refusal at accept, from its reason label.
fn describe_budget(reason: &str) -> String {
    crate::budget::OverBudget::ALL
        .iter()
        .find(|b| b.reason() == reason)
        .map_or("refused at accept", |b| b.describe())
        .to_string()
}
