//! One event per HL7 message that crosses an `mllp` route.
//!
//! Events carry metadata only: MSH-3/4/5/6/9/10/12, sizes, the ACK code and
//! whether MSA-2 matched. They go to the log and to an in-process stream
//! that the status page and the journal subscribe to. A slow subscriber
//! loses the oldest events (broadcast); it never slows the data plane.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use guichet_hl7::{AckCode, Header};
use guichet_tls::AppName;
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::config::RouteName;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// The receiver answered. `code` is MSA-1 (None when absent or unknown).
    Acknowledged {
        code: Option<AckCode>,
        /// MSA-2 equals the message's MSH-10: a mismatch is a known cause
        /// of silent loss in integration engines.
        id_matches: bool,
        latency: Duration,
    },
    /// The connection closed before any ACK came back.
    Unacknowledged,
    /// Not HL7 (no MSH): guichet answered AR itself and forwarded nothing.
    RejectedNotHl7,
    /// Not HL7 (no MSH): forwarded untouched by route policy.
    PassedNotHl7,
    /// An ACK arrived with no message waiting for one.
    UnsolicitedAck { code: Option<AckCode> },
    /// Store-and-forward: stored in the journal, then acknowledged by
    /// guichet; delivery follows.
    Stored,
    /// Store-and-forward: already stored within the duplicate window;
    /// acknowledged again, not queued twice.
    Duplicate,
    /// Store-and-forward: the journal could not store it; the sender got
    /// an error ACK (or the connection was closed), never an accept.
    NotStored,
    /// Enhanced mode: the message asked for no accept ACK (MSH-15 `NE`, or
    /// `ER` and no error), and no answer came within `ack_timeout` or
    /// before the connection ended. Expected, not a loss.
    NoAckDue,
}

/// One message, as the gateway saw it.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    /// When the message (or the unsolicited ACK) arrived.
    pub at: SystemTime,
    pub route: RouteName,
    pub remote: SocketAddr,
    /// The sender's application, from its certificate (mTLS listeners).
    pub peer_app: Option<AppName>,
    /// MSH metadata; `None` for frames that are not HL7.
    pub header: Option<Header>,
    /// Payload bytes, without MLLP framing.
    pub size: usize,
    pub outcome: MessageOutcome,
}

impl MessageOutcome {
    /// Every value [`MessageOutcome::label`] can take.
    pub const LABELS: [&'static str; 15] = [
        "AA",
        "AE",
        "AR",
        "CA",
        "CE",
        "CR",
        "no_code",
        "unacknowledged",
        "rejected_not_hl7",
        "passed_not_hl7",
        "unsolicited_ack",
        "stored",
        "duplicate",
        "not_stored",
        "no_ack_due",
    ];

    /// The position of [`MessageOutcome::label`] in [`MessageOutcome::LABELS`].
    pub fn index(&self) -> usize {
        match self {
            MessageOutcome::Acknowledged {
                code: Some(code), ..
            } => match code {
                AckCode::AA => 0,
                AckCode::AE => 1,
                AckCode::AR => 2,
                AckCode::CA => 3,
                AckCode::CE => 4,
                AckCode::CR => 5,
            },
            MessageOutcome::Acknowledged { code: None, .. } => 6,
            MessageOutcome::Unacknowledged => 7,
            MessageOutcome::RejectedNotHl7 => 8,
            MessageOutcome::PassedNotHl7 => 9,
            MessageOutcome::UnsolicitedAck { .. } => 10,
            MessageOutcome::Stored => 11,
            MessageOutcome::Duplicate => 12,
            MessageOutcome::NotStored => 13,
            MessageOutcome::NoAckDue => 14,
        }
    }

    /// A fixed label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            MessageOutcome::Acknowledged {
                code: Some(code), ..
            } => code.as_str(),
            MessageOutcome::Acknowledged { code: None, .. } => "no_code",
            MessageOutcome::Unacknowledged => "unacknowledged",
            MessageOutcome::RejectedNotHl7 => "rejected_not_hl7",
            MessageOutcome::PassedNotHl7 => "passed_not_hl7",
            MessageOutcome::UnsolicitedAck { .. } => "unsolicited_ack",
            MessageOutcome::Stored => "stored",
            MessageOutcome::Duplicate => "duplicate",
            MessageOutcome::NotStored => "not_stored",
            MessageOutcome::NoAckDue => "no_ack_due",
        }
    }
}

/// The stream of message events, shared by every route of a gateway.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<MessageEvent>>,
    /// The last events, newest last, for the status page.
    recent: Arc<Mutex<VecDeque<Arc<MessageEvent>>>>,
}

/// Events kept for the status page.
const RECENT: usize = 100;

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(4096)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        EventBus {
            tx: broadcast::channel(capacity).0,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT))),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<MessageEvent>> {
        self.tx.subscribe()
    }

    /// The last events, oldest first.
    pub fn recent(&self) -> Vec<Arc<MessageEvent>> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Logs the event, keeps it among the recent ones and hands it to
    /// subscribers, if any.
    pub(crate) fn publish(&self, event: MessageEvent) {
        log(&event);
        self.publish_unlogged(event);
    }

    /// Publishes without a log line, for events the caller sums up in one
    /// (a connection lost with thousands of messages in flight must not
    /// write thousands of lines).
    pub(crate) fn publish_unlogged(&self, event: MessageEvent) {
        let event = Arc::new(event);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.tx.send(event);
    }
}

fn log(e: &MessageEvent) {
    let empty = String::new();
    let (kind, id, sender, receiver, version) = match &e.header {
        Some(h) => (
            &h.message_type,
            &h.control_id,
            &h.sending_application,
            &h.receiving_application,
            &h.version,
        ),
        None => (&empty, &empty, &empty, &empty, &empty),
    };
    let outcome = e.outcome.label();
    match &e.outcome {
        MessageOutcome::Acknowledged {
            id_matches: true,
            latency,
            ..
        } => info!(
            message_type = %kind, control_id = %id, sender = %sender, receiver = %receiver,
            version = %version, size = e.size, ack = outcome, latency_ms = latency.as_secs_f64() * 1e3,
            "message acknowledged"
        ),
        MessageOutcome::Acknowledged { latency, .. } => warn!(
            message_type = %kind, control_id = %id, sender = %sender, receiver = %receiver,
            version = %version, size = e.size, ack = outcome, latency_ms = latency.as_secs_f64() * 1e3,
            "ACK does not acknowledge this message: its MSA-2 differs from the message's MSH-10"
        ),
        MessageOutcome::PassedNotHl7 => info!(
            size = e.size,
            outcome, "frame without MSH forwarded (non_hl7 = \"pass\")"
        ),
        MessageOutcome::Stored | MessageOutcome::Duplicate => info!(
            message_type = %kind, control_id = %id, sender = %sender, receiver = %receiver,
            version = %version, size = e.size, outcome, "message stored and acknowledged to the sender"
        ),
        MessageOutcome::NoAckDue => info!(
            message_type = %kind, control_id = %id, sender = %sender, receiver = %receiver,
            version = %version, size = e.size, outcome,
            "message forwarded; no ACK due (enhanced mode, MSH-15 NE or ER) and none came"
        ),
        MessageOutcome::NotStored => warn!(
            message_type = %kind, control_id = %id, sender = %sender, receiver = %receiver,
            size = e.size, outcome, "message not stored: the sender was answered with an error"
        ),
        _ => warn!(
            message_type = %kind, control_id = %id, sender = %sender, receiver = %receiver,
            size = e.size, outcome, "message not acknowledged"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `index` and `LABELS` are kept by hand beside `label`: they must agree.
    #[test]
    fn labels_index_and_label_agree() {
        let acknowledged = |code| MessageOutcome::Acknowledged {
            code,
            id_matches: true,
            latency: Duration::ZERO,
        };
        let all = [
            acknowledged(Some(AckCode::AA)),
            acknowledged(Some(AckCode::AE)),
            acknowledged(Some(AckCode::AR)),
            acknowledged(Some(AckCode::CA)),
            acknowledged(Some(AckCode::CE)),
            acknowledged(Some(AckCode::CR)),
            acknowledged(None),
            MessageOutcome::Unacknowledged,
            MessageOutcome::RejectedNotHl7,
            MessageOutcome::PassedNotHl7,
            MessageOutcome::UnsolicitedAck { code: None },
            MessageOutcome::Stored,
            MessageOutcome::Duplicate,
            MessageOutcome::NotStored,
            MessageOutcome::NoAckDue,
        ];
        assert_eq!(all.len(), MessageOutcome::LABELS.len());
        for (i, outcome) in all.iter().enumerate() {
            assert_eq!(outcome.index(), i);
            assert_eq!(MessageOutcome::LABELS[i], outcome.label());
        }
    }
}
