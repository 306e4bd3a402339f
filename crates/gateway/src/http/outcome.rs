//! How a request ends: answered or refused, it is logged once and
//! counted once, even when the client goes away while it waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use guichet_ror::rules::Violation;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::warn;

use super::access::AccessRecord;
use super::body::{drain, OnEnd, Tracked};
use super::conn::{status_class, Conn};
use super::problem::{problem, Refused};
use crate::config::{HttpRule, RuleName};
use crate::metrics::HttpRefusalLabels;
use crate::observe::{FlowEnds, Party, Seen, RELAY};
use crate::status::HttpRefused;
use crate::upstream::Body;
use guichet_tls::AppName;

/// Why `admit` refused a request, the index of the rule that matched if
/// one did, and the `Retry-After` seconds for a rate limit.
pub(super) type Denied = (Refused, Option<usize>, Option<u64>);

/// What the access log and the metrics need once a response has ended.
pub(super) struct Finish {
    pub(super) conn: Arc<Conn>,
    /// The upstream slot this request holds, if it went upstream.
    pub(super) slot: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(super) record: AccessRecord,
    pub(super) started: Instant,
    /// Request body bytes read, counted once the body is not empty.
    pub(super) bytes_in: Option<Arc<AtomicU64>>,
}

impl OnEnd for Finish {
    fn ended(mut self, bytes: u64, complete: bool) {
        self.conn.heads.response();
        let elapsed = self.started.elapsed();
        self.record.bytes_out = bytes;
        self.record.bytes_in = self
            .bytes_in
            .as_ref()
            .map_or(0, |n| n.load(Ordering::Relaxed));
        self.record.complete = complete;
        self.record.duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        let class = status_class(self.record.status);
        let (requests, seconds) =
            self.conn
                .metric_handles(self.record.rule.as_ref(), self.record.app.as_ref(), class);
        requests.inc();
        seconds.observe(elapsed.as_secs_f64());
        self.conn.observe(&self.record, class);
        self.conn.tally(&self.record);
        self.conn.http.access.log(self.record);
    }
}

/// The access log's reason for a request whose client went away: no
/// refusal.
const CLIENT_CLOSED: &str = "client_closed";

/// A request waiting for its upstream; dropped with its request when the
/// client goes away, it logs and counts it as status 499.
pub(super) struct Abandoned(pub(super) Option<Finish>);

impl Abandoned {
    /// The request, answered: nothing to log on its behalf any more.
    pub(super) fn disarm(mut self) -> Finish {
        // Built with `Some` and only emptied here or on drop.
        #[allow(clippy::expect_used)] // `disarm` consumes self: the Some is still there.
        self.0.take().expect("an armed request")
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(mut finish) = self.0.take() {
            finish.record.status = 499;
            finish.record.reason = Some(CLIENT_CLOSED);
            finish.ended(0, false);
        }
    }
}

impl Conn {
    /// Counts a request among the route's flows: from the client's
    /// application to the rule that admitted it, by status class.
    fn observe(&self, record: &AccessRecord, class: &'static str) {
        let observer = &self.route.observer;
        if !observer.enabled() {
            return;
        }
        let application = record.app.as_ref().map_or("", AppName::as_str);
        let rule = record.rule.as_ref().map_or("", RuleName::as_str);
        let tls_out = record
            .upstream
            .as_deref()
            .is_some_and(|u| u.starts_with("https:"));
        let seen = Seen {
            route: self.route.name.as_str(),
            direction: RELAY,
            ends: FlowEnds {
                kind: "http",
                tls_in: true,
                tls_out,
            },
            application,
            source: Party(application, ""),
            target: Party(rule, ""),
            message_type: record.method.as_str(),
        };
        observer.record(&seen, class, record.time);
    }

    /// Counts a request for the status page, and keeps it among the
    /// route's last refusals when guichet refused it.
    fn tally(&self, record: &AccessRecord) {
        let tally = &self.http.tally;
        let refused = record.reason.filter(|&r| r != CLIENT_CLOSED);
        tally.answered(record.rule.as_ref(), record.status, refused.is_some());
        if let Some(reason) = refused {
            tally.remember(HttpRefused {
                at: record.time,
                rule: record.rule.clone(),
                app: record.app.clone(),
                subject: Some(record.subject.clone()),
                reason,
                status: Some(record.status),
                description: None,
            });
        }
    }

    pub(super) fn refused(&self, refused: Refused) {
        let route = &self.route;
        route
            .metrics
            .http_refusals
            .get_or_create(&HttpRefusalLabels {
                route: route.name.to_string(),
                reason: refused.as_str(),
            })
            .inc();
    }

    /// Refuses a request that did not go upstream: what is left of its
    /// body is drained so the client can read the answer.
    pub(super) fn deny(
        &self,
        request: Request<Incoming>,
        finish: Finish,
        (refused, rule, retry_after): Denied,
        rules: &[HttpRule],
    ) -> Response<Body> {
        drain(request.into_body(), Some(&self.heads));
        let rule = rule.and_then(|i| rules.get(i));
        self.refuse(finish, refused, rule, retry_after)
    }

    /// Answers with a problem body, logs the refusal and counts it.
    pub(super) fn refuse(
        &self,
        finish: Finish,
        refused: Refused,
        rule: Option<&HttpRule>,
        retry_after: Option<u64>,
    ) -> Response<Body> {
        self.refuse_with(finish, refused, rule, retry_after, None)
    }

    /// Answers 422 to a validating rule's invalid document, listing its
    /// violations (codes, paths and messages: never the document itself).
    pub(super) fn refuse_document(
        &self,
        finish: Finish,
        rule: &HttpRule,
        violations: &[Violation],
    ) -> Response<Body> {
        let refused = Refused::InvalidDocument;
        self.refuse_with(finish, refused, Some(rule), None, Some(violations))
    }

    fn refuse_with(
        &self,
        mut finish: Finish,
        refused: Refused,
        rule: Option<&HttpRule>,
        retry_after: Option<u64>,
        violations: Option<&[Violation]>,
    ) -> Response<Body> {
        let route = &self.route;
        self.refused(refused);
        let rule_name = rule.map(|r| r.name.as_str());
        let suppressed = self.http.refusals_log.allow();
        if let Some(suppressed) = suppressed {
            warn!(
                route = %route.name,
                remote = %self.remote,
                app = %self.peer.app,
                rule = rule_name.unwrap_or("-"),
                reason = refused.as_str(),
                status = refused.status().as_u16(),
                suppressed,
                "request refused"
            );
        }
        let response = problem(refused, rule_name, retry_after, violations);
        finish.record.status = response.status().as_u16();
        finish.record.reason = Some(refused.as_str());
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, Tracked::new(Full::new(body), finish).boxed_unsync())
    }
}
