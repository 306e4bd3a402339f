//! What a client connection knows of its client, for every request it
//! sends, and the metric handles its requests have used.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use guichet_tls::{AppName, PeerApp};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::clock::HeadClock;
use super::headers;
use super::runtime::HttpRuntime;
use crate::config::RuleName;
use crate::metrics::{HttpLabels, HttpRuleLabels, ValidationLabels};
use crate::route::RouteRuntime;

/// One client connection: who it is, for every request it sends.
pub(super) struct Conn {
    pub(super) route: Arc<RouteRuntime>,
    /// The route's rate buckets, access log and upstream slots.
    pub(super) http: Arc<HttpRuntime>,
    pub(super) remote: SocketAddr,
    pub(super) peer: PeerApp,
    /// Formatted once per connection for the access log.
    pub(super) subject: Arc<str>,
    pub(super) fingerprint: Arc<str>,
    pub(super) client: Arc<str>,
    /// Metric handles this connection has used, so a request touches
    /// atomics only, not the families' label maps.
    metric_handles: std::sync::Mutex<Vec<MetricHandles>>,
    /// The same for validating rules' verdicts: (rule, verdict, count).
    verdict_handles: std::sync::Mutex<Vec<(RuleName, &'static str, Counter)>>,
    pub(super) requests: AtomicU64,
    pub(super) heads: Arc<HeadClock>,
    /// The identity headers, built once.
    pub(super) headers: headers::ClientHeaders,
}

impl Conn {
    /// A TLS client admitted on `route`; its identity headers and log
    /// fields are formatted once here.
    pub(super) fn new(
        route: Arc<RouteRuntime>,
        http: Arc<HttpRuntime>,
        remote: SocketAddr,
        peer: PeerApp,
        h2: bool,
    ) -> Self {
        let fingerprint = headers::hex_lower(&peer.identity.fingerprint.0);
        let client = remote.ip().to_string();
        Conn {
            requests: AtomicU64::new(0),
            heads: Arc::new(HeadClock::new(h2)),
            headers: headers::ClientHeaders::new(&peer.app, &peer.identity, &fingerprint, &client),
            subject: Arc::from(peer.identity.subject.to_string()),
            fingerprint: Arc::from(fingerprint),
            client: Arc::from(client),
            metric_handles: std::sync::Mutex::new(Vec::new()),
            verdict_handles: std::sync::Mutex::new(Vec::new()),
            route,
            http,
            remote,
            peer,
        }
    }
}

/// One (rule, app, status class)'s metric handles.
struct MetricHandles {
    rule: Option<RuleName>,
    app: Option<AppName>,
    class: &'static str,
    requests: Counter,
    seconds: Histogram,
}

impl Conn {
    pub(super) fn metric_handles(
        &self,
        rule: Option<&RuleName>,
        app: Option<&AppName>,
        class: &'static str,
    ) -> (Counter, Histogram) {
        let mut cache = match self.metric_handles.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        let found = cache
            .iter()
            .find(|h| h.rule.as_ref() == rule && h.app.as_ref() == app && h.class == class);
        if let Some(h) = found {
            return (h.requests.clone(), h.seconds.clone());
        }
        let metrics = &self.route.metrics;
        let rule_label = rule.map_or("-", RuleName::as_str).to_string();
        let requests = metrics
            .http_requests
            .get_or_create(&HttpLabels {
                route: self.route.name.to_string(),
                rule: rule_label.clone(),
                app: app.map_or("-", AppName::as_str).to_string(),
                class,
            })
            .clone();
        let seconds = metrics
            .http_request_seconds
            .get_or_create(&HttpRuleLabels {
                route: self.route.name.to_string(),
                rule: rule_label,
            })
            .clone();
        // Bounded by rules x apps x classes; a cap keeps it so whatever
        // the config.
        if cache.len() < 64 {
            cache.push(MetricHandles {
                rule: rule.cloned(),
                app: app.cloned(),
                class,
                requests: requests.clone(),
                seconds: seconds.clone(),
            });
        }
        (requests, seconds)
    }
}

impl Conn {
    /// The count of `rule`'s documents judged `verdict`, looked up in
    /// the family once per connection.
    pub(super) fn verdict_counter(&self, rule: &RuleName, verdict: &'static str) -> Counter {
        let mut cache = match self.verdict_handles.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        let found = cache.iter().find(|(r, v, _)| r == rule && *v == verdict);
        if let Some((_, _, counter)) = found {
            return counter.clone();
        }
        let counter = self
            .route
            .metrics
            .http_validations
            .get_or_create(&ValidationLabels {
                route: self.route.name.to_string(),
                rule: rule.to_string(),
                verdict,
            })
            .clone();
        // Bounded by rules x two verdicts; a cap keeps it so whatever
        // the config.
        if cache.len() < 64 {
            cache.push((rule.clone(), verdict, counter.clone()));
        }
        counter
    }
}

pub(super) fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
