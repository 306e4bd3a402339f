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
    /// Over `max_connections`: closed at accept.
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
    /// One of `guichet_tls::RefusalReason::as_str`, or `max_connections`.
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
    pub connections: Family<OutcomeLabels, Counter>,
    pub refusals: Family<RefusalLabels, Counter>,
    pub handshake_seconds: Family<HandshakeLabels, Histogram>,
    pub bytes: Family<BytesLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_open: Family::default(),
            connections: Family::default(),
            refusals: Family::default(),
            handshake_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
            }),
            bytes: Family::default(),
            reloads: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every family under the `guichet_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("guichet");
        r.register(
            "connections_open",
            "Connections open now, per route",
            self.connections_open.clone(),
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

    pub fn ended(&self, route: &str, outcome: Outcome) {
        self.connections
            .get_or_create(&OutcomeLabels {
                route: route.to_string(),
                outcome,
            })
            .inc();
    }
}

/// Label values in Prometheus' usual snake_case, from the variant names.
macro_rules! snake_case_label {
    ($t:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $t {
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
});
snake_case_label!(Side { Listen => "listen", Forward => "forward" });
snake_case_label!(Direction { Upstream => "upstream", Downstream => "downstream" });
snake_case_label!(ReloadOutcome { Ok => "ok", Error => "error" });
