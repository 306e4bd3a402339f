//! What the journal stores and answers: PHI-free metadata, opaque bodies,
//! delivery states.

use std::fmt;
use std::str::FromStr;

/// The MSH fields kept with a message: the only content of a message that
/// listings, events and logs may show. The codec's type, so what the
/// gateway reads is what the journal stores, field for field.
pub use guichet_hl7::Meta;

/// A message's id in the journal. Ids grow with ingest order: a route's
/// queue is delivered in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Stored and acknowledged to the sender; not tried yet.
    Queued,
    /// Claimed by the lease holder; being sent or waiting for its ACK.
    InFlight,
    /// An attempt failed; it is retried after `next_attempt_at_ms`, and
    /// the route's later messages wait behind it (order is kept).
    Failed,
    /// The receiver acknowledged it (AA or CA).
    Delivered,
    /// Given up (e.g. AE beyond the route's retries): the queue moved on;
    /// an operator may replay it.
    Dead,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Queued,
        State::InFlight,
        State::Failed,
        State::Delivered,
        State::Dead,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::InFlight => "in_flight",
            State::Failed => "failed",
            State::Delivered => "delivered",
            State::Dead => "dead",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}: expected queued, in_flight, failed, delivered or dead"
                )
            })
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub route: String,
    pub received_at_ms: i64,
    /// The sender's application from its certificate (allowlist name),
    /// when it presented one.
    pub peer_app: Option<String>,
    /// The sender's address, for the record.
    pub peer_addr: String,
    /// Who the sender is for duplicate detection: its application name
    /// when known, else what MSH-3/MSH-4 say.
    pub dedup_key: String,
    /// Messages stored before this are not duplicates; `None` turns
    /// duplicate detection off.
    pub dedup_since_ms: Option<i64>,
    pub meta: Meta,
    /// The HL7 message as received (no MLLP framing), possibly sealed.
    pub body: Vec<u8>,
    /// `body` is sealed with the journal's body key.
    pub sealed: bool,
}

/// What happened to one message of an ingest batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Stored(MessageId),
    /// Already stored within the duplicate window: not queued again.
    Duplicate(MessageId),
}

impl Ingested {
    pub fn id(self) -> MessageId {
        match self {
            Ingested::Stored(id) | Ingested::Duplicate(id) => id,
        }
    }
}

/// A message handed to the delivery worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: MessageId,
    pub route: String,
    pub received_at_ms: i64,
    pub meta: Meta,
    pub body: Vec<u8>,
    pub sealed: bool,
    /// Attempts recorded so far.
    pub attempts: u32,
    /// It may already have reached the receiver (it was in flight at a
    /// crash or a lease takeover, or an operator replayed it).
    pub redelivered: bool,
    /// Not to be sent before this (the backoff of a failed attempt).
    pub next_attempt_at_ms: Option<i64>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted it (AA or CA; the code is kept).
    Delivered { ack_code: String, at_ms: i64 },
    /// Try again at `next_attempt_at_ms` (AR, timeout, connection lost,
    /// AE within the route's retries).
    Retry {
        error: String,
        ack_code: Option<String>,
        next_attempt_at_ms: i64,
    },
    /// Give up: the queue moves on.
    Dead {
        error: String,
        ack_code: Option<String>,
        at_ms: i64,
    },
}

/// Everything the journal knows of a message but its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: MessageId,
    pub route: String,
    pub received_at_ms: i64,
    pub peer_app: Option<String>,
    pub peer_addr: String,
    pub meta: Meta,
    pub state: State,
    pub attempts: u32,
    pub redelivered: bool,
    pub last_error: Option<String>,
    /// The receiver's last MSA-1.
    pub ack_code: Option<String>,
    pub next_attempt_at_ms: Option<i64>,
    /// When it reached `delivered` or `dead`.
    pub finished_at_ms: Option<i64>,
    /// Bytes of the stored body; `None` once pruned.
    pub body_len: Option<u64>,
    pub sealed: bool,
}

/// Which messages [`crate::Journal::list`] returns. Empty fields match all.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub route: Option<String>,
    pub state: Option<State>,
    pub since_ms: Option<i64>,
    /// Matches MSH-9 exactly or its first components ("ADT^A01" matches
    /// "ADT^A01^ADT_A01").
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    /// At most this many (newest first); 0 means the default of 100.
    pub limit: usize,
}

/// What [`crate::Journal::replay`] puts back in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    One(MessageId),
    /// Every message of the route in one of these states.
    Route {
        route: String,
        states: Vec<State>,
    },
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub bodies_deleted: u64,
    pub records_deleted: u64,
}

/// One route's queue, for the status page, /metrics and `journal stats`.
/// Only messages still owed and dead ones are counted: both are read from
/// partial indexes, so the cost does not grow with the delivered history
/// (delivery counts are in /metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub route: String,
    /// Owed to the receiver: queued + in flight + failed.
    pub depth: u64,
    pub in_flight: u64,
    pub failed: u64,
    pub dead: u64,
    /// Receive time of the oldest message still owed.
    pub oldest_pending_ms: Option<i64>,
}
