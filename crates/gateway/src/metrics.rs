//! Counters and histograms of the data plane (Prometheus text format).
//!
//! Label values come from the configuration (route names) or from small
//! fixed sets; nothing from a peer or a message ever becomes a label.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides closed normally.
    Closed,
    /// The listener's TLS handshake refused the peer.
    RefusedTls,
    /// Over a budget (`max_connections`, `max_handshakes`,
    /// `max_connections_per_source`): closed at accept.
    RefusedLimit,
    /// The forward target could not be reached.
    UpstreamUnavailable,
    /// The forward target's TLS handshake failed (name, CA, ...).
    UpstreamTls,
    IdleTimeout,
    /// Cut at the end of the drain period on shutdown.
    Drained,
    /// An I/O error on either side.
    Error,
    /// The peer closed the connection without TLS close_notify: a normal
    /// end for many clients, neither a refusal nor an error.
    PeerClosed,
    /// An `mllp` route's framing error ended it (too large, truncated...).
    FrameError,
    /// An MLLP frame was started and not finished within `frame_timeout`.
    FrameTimeout,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub route: String,
    pub outcome: Outcome,
}

/// Which side of the route a TLS handshake or a refusal concerns.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Side {
    Listen,
    Forward,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub route: String,
    pub side: Side,
    /// One of `guichet_tls::RefusalReason::as_str`, or a budget at accept
    /// (`max_connections`, `handshake_budget`, `per_source_limit`).
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    pub route: String,
    pub side: Side,
}

/// `upstream`: from the connecting peer towards the forward target.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub route: String,
    pub direction: Direction,
}

/// Messages on an `mllp` route by outcome: an ACK code (`AA`...), or one
/// of the fixed words of `MessageOutcome::label`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub route: String,
    pub outcome: &'static str,
}

/// Framing problems on an `mllp` route: too_large, truncated,
/// discarded_bytes, io, start_block_in_frame, frame_timeout.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameErrorLabels {
    pub route: String,
    pub kind: &'static str,
}

/// One configured certificate file (labels from the configuration only).
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CertLabels {
    pub profile: String,
    /// `certificate` (ours) or `ca`.
    pub role: &'static str,
    pub file: String,
}

/// Delivery attempts of a store-and-forward route, by result: `delivered`,
/// `retry` (AR, AE within retries, timeout, connection), `dead`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub route: String,
    pub result: &'static str,
}

/// Requests on an `http` route; `rule` and `app` are `-` when none matched.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub rule: String,
    pub app: String,
    /// `2xx`, `4xx`...
    pub class: &'static str,
}

/// Requests guichet answered itself, by reason (`not_admitted`, `no_rule`,
/// `rate_limited`, `upstream_timeout`...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRefusalLabels {
    pub route: String,
    pub reason: &'static str,
}

/// Documents a validating rule judged, per route, rule and verdict
/// (`valid`, `invalid`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabels {
    pub route: String,
    pub rule: String,
    pub verdict: &'static str,
}

/// Violations found by a validating rule, per route, rule and rule code
/// (`finess.key`, `capacity.negative`...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub route: String,
    pub rule: String,
    pub code: &'static str,
}

/// Files a folder route finished: `outcome` `done` or `rejected`, and
/// why (`delivered`, `invalid`, `too_large`, `link`, `unreadable`,
/// `refused`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FolderFileLabels {
    pub route: String,
    pub outcome: &'static str,
    pub reason: &'static str,
}

/// Every (outcome, reason) pair of [`FolderFileLabels`].
pub const FOLDER_FILE_REASONS: [(&str, &str); 6] = [
    ("done", "delivered"),
    ("rejected", "invalid"),
    ("rejected", "too_large"),
    ("rejected", "link"),
    ("rejected", "unreadable"),
    ("rejected", "refused"),
];

/// Rules broken by the files a folder route judged, by code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FolderViolationLabels {
    pub route: String,
    pub code: &'static str,
}

/// Connections and requests the admin listener refused, by reason
/// (`no_token`, `bad_token`, or a TLS refusal reason: `not_allowed`...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdminRefusalLabels {
    pub reason: &'static str,
}

/// How a rendering of the live map (`/map`) ended: `ok`, `data_error`
/// (the data folder or the mapping file cannot be read or is invalid),
/// `journal_error` (the observed flows cannot be read).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapRenderLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRuleLabels {
    pub route: String,
    pub rule: String,
}

/// One CRL issuer of a TLS profile (labels from the configuration and
/// from CRLs verified against its CA bundle).
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CrlLabels {
    pub profile: String,
    pub issuer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabel {
    pub profile: String,
}

/// Failed CRL fetches, by reason: `connect`, `timeout`, `http_status`,
/// `too_large`, `invalid`, `signature`, `not_yet_valid`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrlFetchLabels {
    pub profile: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ReloadOutcome {
    Ok,
    Error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub outcome: ReloadOutcome,
}

/// All gateway metrics. Cheap to clone: every family is an `Arc` inside.
#[derive(Clone)]
pub struct Metrics {
    pub connections_open: Family<RouteLabel, Gauge>,
    /// TLS handshakes in progress on a listener (against `max_handshakes`).
    pub handshakes_in_progress: Family<RouteLabel, Gauge>,
    pub connections: Family<OutcomeLabels, Counter>,
    pub refusals: Family<RefusalLabels, Counter>,
    pub handshake_seconds: Family<HandshakeLabels, Histogram>,
    pub bytes: Family<BytesLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
    pub messages: Family<MessageLabels, Counter>,
    pub message_roundtrip_seconds: Family<RouteLabel, Histogram>,
    pub ack_mismatches: Family<RouteLabel, Counter>,
    pub acks_overdue: Family<RouteLabel, Counter>,
    pub frame_errors: Family<FrameErrorLabels, Counter>,
    /// Messages accepted with a UTF-8 BOM (`kind="bom"`) or whitespace
    /// (`kind="whitespace"`) before MSH.
    pub leading_bytes: Family<FrameErrorLabels, Counter>,
    /// Set from the status board at each scrape.
    pub certificate_expiry: Family<CertLabels, Gauge>,
    /// Store-and-forward: messages owed to the receiver (from the journal).
    pub queue_depth: Family<RouteLabel, Gauge>,
    /// Store-and-forward: age of the oldest message owed, 0 when none.
    pub queue_oldest_seconds: Family<RouteLabel, Gauge>,
    /// Store-and-forward: messages given up, waiting for an operator.
    pub dead_messages: Family<RouteLabel, Gauge>,
    pub delivery_attempts: Family<AttemptLabels, Counter>,
    /// 1 while this node holds the route's delivery lease.
    pub delivery_lease: Family<RouteLabel, Gauge>,
    /// Messages the journal could not store (the sender got an error).
    pub journal_failures: Family<RouteLabel, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_refusals: Family<HttpRefusalLabels, Counter>,
    pub http_validations: Family<ValidationLabels, Counter>,
    pub http_violations: Family<ViolationLabels, Counter>,
    pub http_request_seconds: Family<HttpRuleLabels, Histogram>,
    pub folder_files: Family<FolderFileLabels, Counter>,
    pub folder_violations: Family<FolderViolationLabels, Counter>,
    /// Delivery attempts of folder routes that failed and will be retried.
    pub folder_retries: Family<RouteLabel, Counter>,
    pub admin_refusals: Family<AdminRefusalLabels, Counter>,
    /// Renderings of the live map, by outcome (unchanged sources are not
    /// rendered again, so not counted).
    pub map_renders: Family<MapRenderLabels, Counter>,
    /// OCSP checks of peers and stapling (see [`crate::ocsp`]).
    pub ocsp: crate::ocsp::OcspMetrics,
    /// Seconds until each CRL in force passes its nextUpdate (negative
    /// once past it).
    pub crl_next_update: Family<CrlLabels, Gauge>,
    pub crl_fetch_failures: Family<CrlFetchLabels, Counter>,
    /// Peers admitted under a CRL past its nextUpdate (`crl_expired = "warn"`).
    pub crl_stale_admissions: Family<ProfileLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_open: Family::default(),
            handshakes_in_progress: Family::default(),
            connections: Family::default(),
            refusals: Family::default(),
            handshake_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
            }),
            bytes: Family::default(),
            reloads: Family::default(),
            messages: Family::default(),
            message_roundtrip_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
            }),
            ack_mismatches: Family::default(),
            acks_overdue: Family::default(),
            frame_errors: Family::default(),
            leading_bytes: Family::default(),
            certificate_expiry: Family::default(),
            queue_depth: Family::default(),
            queue_oldest_seconds: Family::default(),
            dead_messages: Family::default(),
            delivery_attempts: Family::default(),
            delivery_lease: Family::default(),
            journal_failures: Family::default(),
            http_requests: Family::default(),
            http_refusals: Family::default(),
            http_validations: Family::default(),
            http_violations: Family::default(),
            http_request_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
            }),
            folder_files: Family::default(),
            folder_violations: Family::default(),
            folder_retries: Family::default(),
            admin_refusals: Family::default(),
            map_renders: Family::default(),
            ocsp: crate::ocsp::OcspMetrics::default(),
            crl_next_update: Family::default(),
            crl_fetch_failures: Family::default(),
            crl_stale_admissions: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every family under the `guichet_` prefix, in a fixed
    /// order (the order of the text format).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("guichet");
        self.register_connections(r);
        self.register_messages(r);
        r.register(
            "certificate_expiry_seconds",
            "Seconds until a configured certificate expires (the earliest of a CA bundle)",
            self.certificate_expiry.clone(),
        );
        self.register_store_forward(r);
        self.register_requests(r);
        self.register_revocation(r);
        r.register(
            "log_lines_dropped",
            "Log lines dropped because the log output could not keep up",
            crate::log_writer::dropped_counter(),
        );
    }

    /// Connections, handshakes, refusals, bytes and reloads.
    fn register_connections(&self, r: &mut Registry) {
        r.register(
            "connections_open",
            "Connections open now, per route",
            self.connections_open.clone(),
        );
        r.register(
            "handshakes_in_progress",
            "TLS handshakes in progress on the listener, per route (against max_handshakes)",
            self.handshakes_in_progress.clone(),
        );
        r.register(
            "connections",
            "Connections ended, per route and outcome",
            self.connections.clone(),
        );
        r.register(
            "refusals",
            "Peers refused, per route, side and reason",
            self.refusals.clone(),
        );
        r.register(
            "tls_handshake_seconds",
            "Duration of successful TLS handshakes",
            self.handshake_seconds.clone(),
        );
        r.register(
            "bytes",
            "Bytes forwarded, per route and direction",
            self.bytes.clone(),
        );
        r.register(
            "reloads",
            "Configuration and certificate reloads, per outcome",
            self.reloads.clone(),
        );
    }

    /// HL7 messages on `mllp` routes: outcomes, round trips, ACKs, framing.
    fn register_messages(&self, r: &mut Registry) {
        r.register(
            "messages",
            "HL7 messages on mllp routes, per route and outcome (ACK code)",
            self.messages.clone(),
        );
        r.register(
            "message_roundtrip_seconds",
            "Time from a message's end to its ACK, per mllp route",
            self.message_roundtrip_seconds.clone(),
        );
        r.register(
            "ack_mismatches",
            "ACKs whose MSA-2 is not the MSH-10 of the message they answer",
            self.ack_mismatches.clone(),
        );
        r.register(
            "acks_overdue",
            "Messages still without ACK after ack_timeout",
            self.acks_overdue.clone(),
        );
        r.register(
            "frame_errors",
            "MLLP framing problems, per route and kind",
            self.frame_errors.clone(),
        );
        r.register(
            "messages_with_leading_bytes",
            "HL7 messages accepted on mllp routes with a UTF-8 BOM or whitespace before MSH, per route and kind (bom, whitespace)",
            self.leading_bytes.clone(),
        );
    }

    /// The journal of store-and-forward routes: queues, deliveries, failures.
    fn register_store_forward(&self, r: &mut Registry) {
        r.register(
            "queue_depth",
            "Store-and-forward: messages stored and not yet delivered, per route",
            self.queue_depth.clone(),
        );
        r.register(
            "queue_oldest_seconds",
            "Store-and-forward: age of the oldest message not yet delivered, per route",
            self.queue_oldest_seconds.clone(),
        );
        r.register(
            "dead_messages",
            "Store-and-forward: messages given up (replay with `guichet journal replay`), per route",
            self.dead_messages.clone(),
        );
        r.register(
            "delivery_attempts",
            "Store-and-forward: delivery attempts, per route and result",
            self.delivery_attempts.clone(),
        );
        r.register(
            "delivery_lease",
            "Store-and-forward: 1 while this node delivers the route (holds its lease)",
            self.delivery_lease.clone(),
        );
        r.register(
            "journal_failures",
            "Store-and-forward: messages the journal could not store (sender answered with an error)",
            self.journal_failures.clone(),
        );
    }

    /// Requests on `http` routes and the admin listener.
    fn register_requests(&self, r: &mut Registry) {
        r.register(
            "http_requests",
            "Requests on http routes, per route, rule, application and status class",
            self.http_requests.clone(),
        );
        r.register(
            "http_refusals",
            "Requests on http routes answered by guichet itself, per route and reason",
            self.http_refusals.clone(),
        );
        r.register(
            "http_validations",
            "Request bodies a validating rule judged, per route, rule and verdict",
            self.http_validations.clone(),
        );
        r.register(
            "http_violations",
            "Rules broken by the documents a validating rule judged, per route, rule and code",
            self.http_violations.clone(),
        );
        r.register(
            "http_request_seconds",
            "Time from a request's arrival to the end of its response, per http route and rule",
            self.http_request_seconds.clone(),
        );
        r.register(
            "folder_files",
            "Files a folder route finished, per route, outcome (done, rejected) and reason",
            self.folder_files.clone(),
        );
        r.register(
            "folder_violations",
            "Rules broken by the files a folder route judged, per route and code",
            self.folder_violations.clone(),
        );
        r.register(
            "folder_retries",
            "Delivery attempts of folder routes that failed and will be retried, per route",
            self.folder_retries.clone(),
        );
        r.register(
            "admin_refusals",
            "Connections and requests the admin listener refused, per reason",
            self.admin_refusals.clone(),
        );
        r.register(
            "map_renders",
            "Renderings of the live map at /map, per outcome (ok, data_error, journal_error)",
            self.map_renders.clone(),
        );
    }

    /// CRLs and OCSP.
    fn register_revocation(&self, r: &mut Registry) {
        r.register(
            "crl_next_update_seconds",
            "Seconds until a CRL in force passes its nextUpdate (negative: past it), per profile and issuer",
            self.crl_next_update.clone(),
        );
        r.register(
            "crl_fetch_failures",
            "CRL fetches that failed (the last good CRL stays in force), per profile and reason",
            self.crl_fetch_failures.clone(),
        );
        r.register(
            "crl_stale_admissions",
            "Peers admitted while the CRL of their issuer was past its nextUpdate (crl_expired = \"warn\"), per profile",
            self.crl_stale_admissions.clone(),
        );
        self.ocsp.register(r);
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    pub fn refused(&self, route: &str, side: Side, reason: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                route: route.to_string(),
                side,
                reason,
            })
            .inc();
    }

    pub fn frame_error(&self, route: &str, kind: &'static str) {
        self.frame_errors
            .get_or_create(&FrameErrorLabels {
                route: route.to_string(),
                kind,
            })
            .inc();
    }

    pub fn frame_errors_by(&self, route: &str, kind: &'static str, n: u64) {
        self.frame_errors
            .get_or_create(&FrameErrorLabels {
                route: route.to_string(),
                kind,
            })
            .inc_by(n);
    }

    pub fn leading_bytes(&self, route: &str, kind: &'static str) {
        self.leading_bytes
            .get_or_create(&FrameErrorLabels {
                route: route.to_string(),
                kind,
            })
            .inc();
    }

    pub fn ended(&self, route: &str, outcome: Outcome) {
        self.connections
            .get_or_create(&OutcomeLabels {
                route: route.to_string(),
                outcome,
            })
            .inc();
    }
}

/// One route's per-message metric handles, resolved once when the route
/// starts: the message path then touches atomics only, never a family's
/// map or a label allocation.
#[derive(Clone)]
pub struct RouteMetrics {
    /// By [`crate::events::MessageOutcome::index`].
    messages: Vec<Counter>,
    pub roundtrip: Histogram,
    pub ack_mismatches: Counter,
    pub acks_overdue: Counter,
    pub journal_failures: Counter,
    /// By result: delivered, retry, dead.
    pub attempts: [Counter; 3],
}

/// The `result` labels of [`RouteMetrics::attempts`].
pub const ATTEMPT_RESULTS: [&str; 3] = ["delivered", "retry", "dead"];

impl RouteMetrics {
    pub fn message(&self, outcome: &crate::events::MessageOutcome) {
        if let Some(counter) = self.messages.get(outcome.index()) {
            counter.inc();
        }
    }
}

impl Metrics {
    /// The handles of one route's per-message metrics.
    pub fn route(&self, route: &str) -> RouteMetrics {
        let label = route_label(route);
        RouteMetrics {
            messages: crate::events::MessageOutcome::LABELS
                .iter()
                .map(|&outcome| {
                    self.messages
                        .get_or_create(&MessageLabels {
                            route: route.to_string(),
                            outcome,
                        })
                        .clone()
                })
                .collect(),
            roundtrip: self.message_roundtrip_seconds.get_or_create(&label).clone(),
            ack_mismatches: self.ack_mismatches.get_or_create(&label).clone(),
            acks_overdue: self.acks_overdue.get_or_create(&label).clone(),
            journal_failures: self.journal_failures.get_or_create(&label).clone(),
            attempts: ATTEMPT_RESULTS.map(|result| {
                self.delivery_attempts
                    .get_or_create(&AttemptLabels {
                        route: route.to_string(),
                        result,
                    })
                    .clone()
            }),
        }
    }
}

/// Refusals not caused by TLS: the route holds `max_connections`.
pub const OVER_LIMIT: &str = "max_connections";

/// The route holds `max_handshakes` connections still in their TLS
/// handshake.
pub const HANDSHAKE_BUDGET: &str = "handshake_budget";

/// The source address holds `max_connections_per_source` connections.
pub const PER_SOURCE_LIMIT: &str = "per_source_limit";

/// Every refusal reason label: the TLS ones and the budgets at accept.
pub fn refusal_reasons() -> impl Iterator<Item = &'static str> {
    guichet_tls::RefusalReason::ALL
        .iter()
        .map(|r| r.as_str())
        .chain([OVER_LIMIT, HANDSHAKE_BUDGET, PER_SOURCE_LIMIT])
}

fn route_label(route: &str) -> RouteLabel {
    RouteLabel {
        route: route.to_string(),
    }
}

/// Label values in Prometheus' usual snake_case, from the variant names.
macro_rules! snake_case_label {
    ($t:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$(<$t>::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$t>::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

snake_case_label!(Outcome {
    Closed => "closed",
    RefusedTls => "refused_tls",
    RefusedLimit => "refused_limit",
    UpstreamUnavailable => "upstream_unavailable",
    UpstreamTls => "upstream_tls",
    IdleTimeout => "idle_timeout",
    Drained => "drained",
    Error => "error",
    PeerClosed => "peer_closed",
    FrameError => "frame_error",
    FrameTimeout => "frame_timeout",
});
snake_case_label!(Side { Listen => "listen", Forward => "forward" });
snake_case_label!(Direction { Upstream => "upstream", Downstream => "downstream" });
snake_case_label!(ReloadOutcome { Ok => "ok", Error => "error" });
