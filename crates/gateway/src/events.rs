//! One event per HL7 message that crosses an `mllp` route.
//!
//! Events carry metadata only: MSH-3/4/5/6/9/10/12, sizes, the ACK code and
//! whether MSA-2 matched (a relayed message's facilities, MSH-4/6, only
//! when its route's flows are observed: see `Header::read_relayed`). They
//! go to the log and to an in-process stream that the status page and the
//! journal subscribe to. A slow subscriber loses the oldest events
//! (broadcast); it never slows the data plane.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use guichet_hl7::{AckCode, Header};
use guichet_tls::AppName;
use tokio::sync::broadcast;
use tracing::{field, Level, Span};

use crate::log_writer::{self, LineFormat, LineOut, Record};

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
    /// Where it happened: the span its log line is shown under.
    pub origin: Origin,
}

/// Where a message event happened, as the span of its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A sender's connection: `conn{route remote app}`.
    Connection,
    /// A store-and-forward route's delivery worker on this node:
    /// `delivery{route node}`.
    Delivery { node: Arc<str> },
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

    /// The level and message of the event's log line.
    pub fn line(&self) -> (Level, &'static str) {
        match self {
            MessageOutcome::Acknowledged {
                id_matches: true, ..
            } => (Level::INFO, "message acknowledged"),
            MessageOutcome::Acknowledged { .. } => (
                Level::WARN,
                "ACK does not acknowledge this message: its MSA-2 differs from the message's MSH-10",
            ),
            MessageOutcome::PassedNotHl7 => (
                Level::INFO,
                "frame without MSH forwarded (non_hl7 = \"pass\")",
            ),
            MessageOutcome::Stored | MessageOutcome::Duplicate => {
                (Level::INFO, "message stored and acknowledged to the sender")
            }
            MessageOutcome::NoAckDue => (
                Level::INFO,
                "message forwarded; no ACK due (enhanced mode, MSH-15 NE or ER) and none came",
            ),
            MessageOutcome::NotStored => (
                Level::WARN,
                "message not stored: the sender was answered with an error",
            ),
            MessageOutcome::Unacknowledged
            | MessageOutcome::RejectedNotHl7
            | MessageOutcome::UnsolicitedAck { .. } => (Level::WARN, "message not acknowledged"),
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
    /// subscribers, if any. The line goes to the log writer, which formats
    /// it on its own thread, or through `tracing` where none is installed.
    pub(crate) fn publish(&self, event: MessageEvent) {
        self.publish_logged(event, log);
    }

    /// Like [`EventBus::publish`], for a caller whose task is not polled
    /// inside its connection's span: a line written through `tracing`
    /// goes under `span`.
    pub(crate) fn publish_in(&self, event: MessageEvent, span: &Span) {
        self.publish_logged(event, |event| span.in_scope(|| log(event)));
    }

    fn publish_logged(&self, event: MessageEvent, log: impl FnOnce(&MessageEvent)) {
        let event = Arc::new(event);
        let (level, _) = event.outcome.line();
        let enabled = match level {
            Level::INFO => tracing::enabled!(Level::INFO),
            _ => tracing::enabled!(Level::WARN),
        };
        if enabled && !log_writer::record(event.clone()) {
            log(&event);
        }
        self.share(event);
    }

    /// Publishes without a log line, for events the caller sums up in one
    /// (a connection lost with thousands of messages in flight must not
    /// write thousands of lines).
    pub(crate) fn publish_unlogged(&self, event: MessageEvent) {
        self.share(Arc::new(event));
    }

    fn share(&self, event: Arc<MessageEvent>) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.tx.send(event);
    }
}

/// A field of an event's log line.
enum Value<'a> {
    /// Text from the message's header, shown as written.
    Text(&'a str),
    /// A fixed label (ACK code, outcome), quoted as `tracing` quotes
    /// string fields.
    Label(&'static str),
    Count(u64),
    Millis(Duration),
}

impl MessageEvent {
    /// The fields of its log line, in order: metadata only.
    fn fields(&self) -> impl Iterator<Item = (&'static str, Value<'_>)> {
        let header = self.header.as_ref().map(|h| {
            [
                ("message_type", Value::Text(&h.message_type)),
                ("control_id", Value::Text(&h.control_id)),
                ("sender", Value::Text(&h.sending_application)),
                ("receiver", Value::Text(&h.receiving_application)),
                ("version", Value::Text(&h.version)),
            ]
        });
        let (verdict, latency) = match &self.outcome {
            MessageOutcome::Acknowledged { latency, .. } => (
                ("ack", Value::Label(self.outcome.label())),
                Some(("latency_ms", Value::Millis(*latency))),
            ),
            other => (("outcome", Value::Label(other.label())), None),
        };
        header
            .into_iter()
            .flatten()
            .chain([("size", Value::Count(self.size as u64)), verdict])
            .chain(latency)
    }

    /// When its line is dated: the ACK's arrival for an acknowledged
    /// message, the message's otherwise (no clock read of its own).
    fn logged_at(&self) -> SystemTime {
        match &self.outcome {
            MessageOutcome::Acknowledged { latency, .. } => self.at + *latency,
            _ => self.at,
        }
    }

    /// `tracing`'s full text layout:
    /// `<time> <LEVEL> <span>{<fields>}: <target>: <message> <key>=<value>...`
    fn write_text(&self, out: &mut LineOut<'_>) {
        let (level, message) = self.outcome.line();
        out.timestamp(self.logged_at());
        out.str(" ");
        out.level(level, true);
        match &self.origin {
            Origin::Connection => {
                out.str(" conn{route=");
                out.str(self.route.as_str());
                out.str(" remote=");
                out.addr(self.remote);
                if let Some(app) = &self.peer_app {
                    out.str(" app=");
                    out.quoted(app.as_str());
                }
            }
            Origin::Delivery { node } => {
                out.str(" delivery{route=");
                out.str(self.route.as_str());
                out.str(" node=");
                out.text(node);
            }
        }
        out.str("}: ");
        out.str(TARGET);
        out.str(": ");
        out.str(message);
        for (key, value) in self.fields() {
            out.str(" ");
            out.str(key);
            out.str("=");
            match value {
                Value::Text(text) => out.text(text),
                Value::Label(label) => out.quoted(label),
                Value::Count(n) => out.number(n),
                Value::Millis(d) => out.millis(d),
            }
        }
        out.str("\n");
    }

    /// The JSON layout of `--log-format json`: the event's fields
    /// flattened, then the target and the span.
    fn write_json(&self, out: &mut LineOut<'_>) {
        let (level, message) = self.outcome.line();
        out.str("{\"timestamp\":\"");
        out.timestamp(self.logged_at());
        out.str("\",\"level\":\"");
        out.level(level, false);
        out.str("\",\"message\":");
        out.json(message);
        for (key, value) in self.fields() {
            out.str(",\"");
            out.str(key);
            out.str("\":");
            match value {
                Value::Text(text) | Value::Label(text) => out.json(text),
                Value::Count(n) => out.number(n),
                Value::Millis(d) => out.millis(d),
            }
        }
        out.str(",\"target\":\"");
        out.str(TARGET);
        out.str("\",\"span\":");
        self.write_json_span(out);
        out.str(",\"spans\":[");
        self.write_json_span(out);
        out.str("]}\n");
    }

    fn write_json_span(&self, out: &mut LineOut<'_>) {
        out.str("{");
        match &self.origin {
            Origin::Connection => {
                if let Some(app) = &self.peer_app {
                    out.str("\"app\":");
                    out.json(app.as_str());
                    out.str(",");
                }
                out.str("\"remote\":\"");
                out.addr(self.remote);
                out.str("\",\"route\":");
                out.json(self.route.as_str());
                out.str(",\"name\":\"conn\"}");
            }
            Origin::Delivery { node } => {
                out.str("\"node\":");
                out.json(node);
                out.str(",\"route\":");
                out.json(self.route.as_str());
                out.str(",\"name\":\"delivery\"}");
            }
        }
    }
}

/// The target message lines are logged under, as `tracing` names it.
const TARGET: &str = "guichet_gateway::events";

impl Record for MessageEvent {
    fn write(&self, format: LineFormat, out: &mut LineOut<'_>) {
        match format {
            LineFormat::Text => self.write_text(out),
            LineFormat::Json => self.write_json(out),
        }
    }
}

/// The event's line through `tracing`, where no log writer is installed
/// (the gateway as a library, its tests): the message and fields of the
/// writer's line, under the span the event happened in.
fn log(e: &MessageEvent) {
    let (level, message) = e.outcome.line();
    let header = e.header.as_ref();
    let text = |f: fn(&Header) -> &str| header.map(|h| field::display(f(h)));
    let (ack, outcome, latency_ms) = match &e.outcome {
        MessageOutcome::Acknowledged { latency, .. } => (
            Some(e.outcome.label()),
            None,
            Some(latency.as_secs_f64() * 1e3),
        ),
        other => (None, Some(other.label()), None),
    };
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level,
                message_type = text(|h| &h.message_type),
                control_id = text(|h| &h.control_id),
                sender = text(|h| &h.sending_application),
                receiver = text(|h| &h.receiving_application),
                version = text(|h| &h.version),
                size = e.size,
                ack,
                outcome,
                latency_ms,
                "{message}"
            )
        };
    }
    if level == Level::INFO {
        line!(Level::INFO);
    } else {
        line!(Level::WARN);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use guichet_hl7::Message;

    use super::*;

    fn event(outcome: MessageOutcome, origin: Origin) -> MessageEvent {
        let raw = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20261206||ADT^A01^ADT_A01|ID\n42|P|2.5^FRA^2.11\r";
        let message = Message::parse(raw).expect("a message");
        MessageEvent {
            at: SystemTime::UNIX_EPOCH + Duration::new(1_765_000_000, 123_456_000),
            route: RouteName::new("adt"),
            remote: "127.0.0.1:4000".parse().unwrap(),
            peer_app: Some(AppName::new("eai")),
            header: Some(Header::read(&message)),
            size: 1024,
            outcome,
            origin,
        }
    }

    fn line(e: &MessageEvent, format: LineFormat) -> String {
        String::from_utf8(log_writer::render(e, format)).unwrap()
    }

    /// The writer's line is the one `tracing` wrote for the event (same
    /// layout, span, message and fields), dated when the ACK came, with a
    /// line break in the control id escaped.
    #[test]
    fn an_acknowledged_message_line_in_text() {
        let e = event(
            MessageOutcome::Acknowledged {
                code: Some(AckCode::AA),
                id_matches: true,
                latency: Duration::from_micros(1_500),
            },
            Origin::Connection,
        );
        assert_eq!(
            line(&e, LineFormat::Text),
            "2025-12-06T05:46:40.124956Z  INFO conn{route=adt remote=127.0.0.1:4000 app=\"eai\"}: \
             guichet_gateway::events: message acknowledged message_type=ADT^A01^ADT_A01 \
             control_id=ID\\n42 sender=EAI receiver=DPI version=2.5^FRA^2.11 size=1024 \
             ack=\"AA\" latency_ms=1.500\n"
        );
    }

    #[test]
    fn a_delivery_line_in_text_names_its_node() {
        let e = event(
            MessageOutcome::Unacknowledged,
            Origin::Delivery { node: "n1".into() },
        );
        let text = line(&e, LineFormat::Text);
        assert!(
            text.starts_with(
                "2025-12-06T05:46:40.123456Z  WARN delivery{route=adt node=n1}: \
                 guichet_gateway::events: message not acknowledged message_type="
            ),
            "{text}"
        );
        assert!(
            text.ends_with(" size=1024 outcome=\"unacknowledged\"\n"),
            "{text}"
        );
    }

    #[test]
    fn a_message_line_in_json() {
        let e = event(MessageOutcome::Stored, Origin::Connection);
        let text = line(&e, LineFormat::Json);
        assert_eq!(text.lines().count(), 1);
        let json: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert_eq!(json["timestamp"], "2025-12-06T05:46:40.123456Z");
        assert_eq!(json["level"], "INFO");
        assert_eq!(
            json["message"],
            "message stored and acknowledged to the sender"
        );
        assert_eq!(json["control_id"], "ID\n42");
        assert_eq!(json["size"], 1024);
        assert_eq!(json["outcome"], "stored");
        assert_eq!(json["target"], "guichet_gateway::events");
        let span = serde_json::json!({
            "app": "eai", "remote": "127.0.0.1:4000", "route": "adt", "name": "conn"
        });
        assert_eq!(json["span"], span);
        assert_eq!(json["spans"], serde_json::json!([span]));
    }

    /// A frame without MSH has no header fields to show.
    #[test]
    fn a_line_without_header_has_size_and_outcome_only() {
        let mut e = event(MessageOutcome::PassedNotHl7, Origin::Connection);
        e.header = None;
        e.peer_app = None;
        assert_eq!(
            line(&e, LineFormat::Text),
            "2025-12-06T05:46:40.123456Z  INFO conn{route=adt remote=127.0.0.1:4000}: \
             guichet_gateway::events: frame without MSH forwarded (non_hl7 = \"pass\") \
             size=1024 outcome=\"passed_not_hl7\"\n"
        );
    }

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
