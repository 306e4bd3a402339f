//! Flows the gateway has seen, as aggregates: who talked to whom over
//! which route, how often, encrypted or not. Metadata only: no message
//! content ever reaches an aggregate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One aggregate of observed traffic: a route, a direction, two parties
/// and a message type, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedFlow {
    /// The gateway route that carried it.
    pub route: String,
    /// The route's kind: `tcp`, `mllp`, `http` or `folder`.
    pub kind: String,
    /// `relay` (through the gateway in one go), `in` (into a
    /// store-and-forward journal), `out` (delivered from it, or given up:
    /// once per message) or `retry` (delivery attempts that failed and
    /// were tried again: attempts, not messages).
    #[serde(default)]
    pub direction: String,
    /// The sender's application as named by its certificate; `""`
    /// without one.
    #[serde(default)]
    pub application: String,
    /// The sending party as observed: the application named by its
    /// certificate, or `MSH-3^MSH-4` for HL7.
    pub source: String,
    /// The receiving party: `MSH-5^MSH-6`, the HTTP rule, the route's
    /// target.
    pub target: String,
    /// `ADT^A01`, the HTTP method, or `""` for a byte tunnel.
    pub message_type: String,
    /// TLS between the sender and the gateway.
    pub tls_in: bool,
    /// TLS between the gateway and the receiver.
    pub tls_out: bool,
    pub count: u64,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub last_seen: String,
    /// ACK codes (`AA`, `AE`...) or HTTP status classes (`2xx`...) with
    /// their counts.
    pub outcomes: BTreeMap<String, u64>,
    /// The parties' trigrammes, once the mapping file has named them.
    #[serde(default)]
    pub source_trigramme: Option<String>,
    #[serde(default)]
    pub target_trigramme: Option<String>,
}

impl ObservedFlow {
    /// Encrypted end to end through the gateway: TLS on both sides.
    pub fn encrypted(&self) -> bool {
        self.tls_in && self.tls_out
    }

    /// The messages this aggregate adds to the map's counts: each
    /// message once, where it reaches its receiver (`relay`, `out`, or a
    /// flow given without a direction). An `in` aggregate counts the same
    /// messages entering a store-and-forward journal, a `retry` one failed
    /// attempts: neither adds messages.
    pub fn messages(&self) -> u64 {
        match self.direction.as_str() {
            "in" | "retry" => 0,
            _ => self.count,
        }
    }

    /// The message type's family: `ADT` of `ADT^A01`.
    pub fn family(&self) -> &str {
        self.message_type
            .split('^')
            .next()
            .unwrap_or(&self.message_type)
    }
}
