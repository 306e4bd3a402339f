//! Observed flows: counts of what crossed each route, by parties and
//! message type, added up by every flush of every node. Metadata only:
//! no field of a message body ever reaches this table.

use std::collections::BTreeMap;

/// What one aggregate counts: a route, a direction, the parties and the
/// message type, and whether each side was encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub route: String,
    /// `tcp`, `mllp`, `http` or `folder`.
    pub kind: String,
    /// `relay` (through the gateway in one go), `in` (into the journal
    /// of a store-and-forward route), `out` (delivered from it, or given
    /// up: once per message) or `retry` (delivery attempts that failed
    /// and were tried again: attempts, not messages).
    pub direction: String,
    /// The peer application named by its certificate; `""` without one.
    pub application: String,
    /// The sending party: `MSH-3^MSH-4`, or the application.
    pub source: String,
    /// The receiving party: `MSH-5^MSH-6`, the HTTP rule, the upstream.
    pub target: String,
    /// `ADT^A01`, the HTTP method, or `""` for a byte tunnel.
    pub message_type: String,
    pub tls_in: bool,
    pub tls_out: bool,
}

/// A count to add: `count` observations of `key` that ended in `outcome`
/// between `first_ms` and `last_ms` (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowCount {
    pub key: FlowKey,
    /// An ACK code, an HTTP status class (`2xx`), how a connection or a
    /// file ended.
    pub outcome: String,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// One aggregate as stored: every outcome of one key added up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTotal {
    pub key: FlowKey,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub outcomes: BTreeMap<String, u64>,
}

/// Groups stored rows (one per key and outcome, sorted by key) into one
/// total per key.
pub(crate) fn totals(rows: Vec<FlowCount>) -> Vec<FlowTotal> {
    let mut totals: Vec<FlowTotal> = Vec::new();
    for row in rows {
        match totals.last_mut().filter(|t| t.key == row.key) {
            Some(total) => {
                total.count += row.count;
                total.first_ms = total.first_ms.min(row.first_ms);
                total.last_ms = total.last_ms.max(row.last_ms);
                *total.outcomes.entry(row.outcome).or_default() += row.count;
            }
            None => totals.push(FlowTotal {
                count: row.count,
                first_ms: row.first_ms,
                last_ms: row.last_ms,
                outcomes: BTreeMap::from([(row.outcome, row.count)]),
                key: row.key,
            }),
        }
    }
    totals
}
