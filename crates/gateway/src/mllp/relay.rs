//! The frame-aware relay of an `mllp` route.
//!
//! Messages flow from the connecting sender to the receiver; ACKs flow
//! back. Each direction has its own future so a large message being
//! written never stops ACKs from being read (no proxy deadlock). Frames
//! are forwarded as received: the payload bytes are never altered.
//!
//! MLLP answers in order, so the first message waiting is the one an
//! incoming ACK answers; its MSA-2 is checked against that message's MSH-10.
//!
//! What a relay expects back, per message (HL7 v2 chapter 2, table 0155):
//! - original mode (MSH-15 and MSH-16 empty): one ACK, in order;
//! - enhanced mode, MSH-15 `AL` or `SU` (or empty beside a set MSH-16):
//!   one accept ACK (CA/CE/CR), in order;
//! - enhanced mode, MSH-15 `NE`, or `ER` (the relay itself made no error):
//!   no accept ACK. Such a message takes no place in the order: an answer
//!   can still come (a CE/CR under `ER`, an application ACK under MSH-16),
//!   and is paired by its MSA-2 alone, until `ack_timeout`;
//! - after an accept ACK, MSH-16 other than `NE` may bring an application
//!   ACK (AA/AE/AR) on the same connection: it too is paired by MSA-2 until
//!   `ack_timeout`, and counted under its code.
//!
//! Nothing else waits behind such a message, guichet's own answers least
//! of all.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use guichet_hl7::mllp::{CARRIAGE_RETURN, END_BLOCK, START_BLOCK};
use guichet_hl7::{
    build_reject_for_unparseable, stamp, AckCode, AckMode, AckRequest, AckSummary, ErrorCode,
    ErrorDetail, Frame, Header, Leading, Message, MllpCodec, MllpError, ParseOptions, Severity,
};
use guichet_tls::AppName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, warn, Span};

use super::frame_deadline::{FrameDeadline, FrameTimedOut};
use crate::config::{MllpSettings, NonHl7Policy, RouteName};
use crate::events::{MessageEvent, MessageOutcome, Origin};
use crate::observe::{FlowEnds, Party, Seen};
use crate::route::RouteRuntime;
use crate::tcp::{Activity, PumpEnd};

/// Who is on the other end, for events.
pub(crate) struct Peer {
    pub route: RouteName,
    pub remote: SocketAddr,
    pub app: Option<AppName>,
    /// The route's kind and TLS sides, for the observed flows.
    pub ends: FlowEnds,
    /// [`crate::observe::RELAY`], or [`crate::observe::IN`] into a journal.
    pub direction: &'static str,
    /// The connection's span: the relay's task is not polled inside it,
    /// so what the relay logs enters it (see `dispatch::Conn`).
    pub span: Span,
}

impl Peer {
    /// Counts and publishes one message event of this connection.
    pub(crate) fn publish(
        &self,
        route: &RouteRuntime,
        header: Option<Header>,
        size: usize,
        at: SystemTime,
        outcome: MessageOutcome,
    ) {
        route.counters.message(&outcome);
        self.observe(route, header.as_ref(), at, &outcome);
        route
            .events
            .publish_in(self.event(header, size, at, outcome), &self.span);
    }

    /// Like [`Peer::publish`], without the event's own log line: the
    /// caller logs a summary.
    fn publish_unlogged(
        &self,
        route: &RouteRuntime,
        header: Option<Header>,
        size: usize,
        at: SystemTime,
        outcome: MessageOutcome,
    ) {
        route.counters.message(&outcome);
        self.observe(route, header.as_ref(), at, &outcome);
        route
            .events
            .publish_unlogged(self.event(header, size, at, outcome));
    }

    /// Counts the message among the route's flows.
    fn observe(
        &self,
        route: &RouteRuntime,
        header: Option<&Header>,
        at: SystemTime,
        outcome: &MessageOutcome,
    ) {
        let seen = Seen {
            route: self.route.as_str(),
            direction: self.direction,
            ends: self.ends,
            application: self.app.as_ref().map_or("", AppName::as_str),
            source: Party::default(),
            target: Party::default(),
            message_type: "",
        };
        route.observer.message(&seen, header, outcome.label(), at);
    }

    fn event(
        &self,
        header: Option<Header>,
        size: usize,
        at: SystemTime,
        outcome: MessageOutcome,
    ) -> MessageEvent {
        MessageEvent {
            at,
            route: self.route.clone(),
            remote: self.remote,
            peer_app: self.app.clone(),
            header,
            size,
            outcome,
            origin: Origin::Connection,
        }
    }

    /// Counts what preceded MSH in a message: accepted, but a sign of a
    /// sender that reads its messages from files.
    pub(crate) fn leading(&self, route: &RouteRuntime, payload: &[u8]) {
        let leading = Leading::of(payload);
        if leading.is_empty() {
            return;
        }
        let name = self.route.as_str();
        if leading.bom {
            route.metrics.leading_bytes(name, LEADING_BOM);
        }
        if leading.whitespace > 0 {
            route.metrics.leading_bytes(name, LEADING_WHITESPACE);
        }
        self.span.in_scope(|| {
            debug!(
                bom = leading.bom,
                whitespace = leading.whitespace,
                "message with a BOM or whitespace before MSH accepted, forwarded as received"
            );
        });
    }

    /// Counts and logs what the decoder dropped before `frame`: bytes
    /// outside any frame, and frames a start block cut short.
    pub(crate) fn noise(&self, route: &RouteRuntime, side: &'static str, frame: &Frame) {
        self.discarded(route, side, frame.discarded);
        if frame.interrupted == 0 {
            return;
        }
        route.metrics.frame_errors_by(
            self.route.as_str(),
            START_BLOCK_IN_FRAME,
            frame.interrupted as u64,
        );
        self.span.in_scope(|| {
            warn!(
                side,
                frames = frame.interrupted,
                bytes = frame.interrupted_bytes,
                reason = START_BLOCK_IN_FRAME,
                "MLLP frame interrupted by a start block (0x0B) before its end block: the partial frame was dropped, not forwarded"
            );
        });
    }

    /// Counts and logs bytes found outside any MLLP frame.
    pub(crate) fn discarded(&self, route: &RouteRuntime, side: &'static str, bytes: usize) {
        if bytes > 0 {
            route
                .metrics
                .frame_error(self.route.as_str(), "discarded_bytes");
            self.span.in_scope(|| {
                warn!(side, bytes, "bytes outside any MLLP frame discarded");
            });
        }
    }
}

/// `kind` of `guichet_messages_with_leading_bytes_total`.
pub(crate) const LEADING_BOM: &str = "bom";
pub(crate) const LEADING_WHITESPACE: &str = "whitespace";
/// `kind` of `guichet_frame_errors_total` and log `reason` for a start block inside a frame.
pub(crate) const START_BLOCK_IN_FRAME: &str = "start_block_in_frame";
/// `kind` of `guichet_frame_errors_total` and log `reason` for a frame
/// not finished within `frame_timeout`.
pub(crate) const FRAME_TIMEOUT: &str = "frame_timeout";

/// Messages that become overdue within this of each other are reported
/// together, in one line.
const OVERDUE_BATCH: Duration = Duration::from_millis(500);

/// Answers paired by MSA-2 alone are awaited for at most this many
/// messages per connection; the oldest beyond it are given up.
const MAX_OPTIONAL: usize = 4096;

/// What the sender is owed, in the order it sent: MLLP answers in order,
/// so a pipelining sender pairs answers with messages by position.
enum Owed {
    /// A message forwarded to the receiver, waiting for its ACK.
    Ack(Box<Waiting>),
    /// A frame without MSH passed to the receiver (`non_hl7 = "pass"`):
    /// its answer is forwarded, but was already reported.
    PassedReply,
    /// guichet's own answer (an AR for a frame without MSH), held until
    /// every answer owed before it has gone back.
    OwnReply(Bytes),
}

/// A message forwarded and not yet acknowledged.
struct Waiting {
    header: Header,
    size: usize,
    at: SystemTime,
    since: Instant,
    /// Already reported as overdue (once).
    overdue: bool,
}

/// A message whose answer may come, or not, and is paired by MSA-2.
struct Optional {
    waiting: Waiting,
    /// Its event is out already (an accept ACK came): a later application
    /// ACK is counted again, under its own code; none is no news.
    published: bool,
}

struct Relay<'a> {
    peer: Peer,
    settings: MllpSettings,
    /// Metrics, counters and the event bus of the route.
    route: &'a RouteRuntime,
    owed: Mutex<VecDeque<Owed>>,
    /// Answers that may come, paired by MSA-2, oldest first.
    optional: Mutex<VecDeque<Optional>>,
    /// Wakes the downstream side when an own reply is queued.
    reply_queued: Notify,
}

/// Why a relayed connection ended early.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("{side}: {error}")]
    Frame {
        side: &'static str,
        error: MllpError,
    },
    #[error("{side}: {error}")]
    FrameTimeout {
        side: &'static str,
        error: FrameTimedOut,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl RelayError {
    fn into_end(self) -> PumpEnd {
        match self {
            RelayError::Io(e) => PumpEnd::Error(e),
            RelayError::Frame { ref error, .. } => PumpEnd::Frame {
                reason: frame_reason(error),
                detail: self.to_string(),
            },
            RelayError::FrameTimeout { .. } => PumpEnd::Frame {
                reason: FRAME_TIMEOUT,
                detail: self.to_string(),
            },
        }
    }
}

/// Relays frames both ways until both directions end, a framing error,
/// or `idle` passes with no byte either way.
// The connection's parts, each from a different owner; a struct to carry
// them would be used once.
pub(crate) async fn relay<C, S>(
    client: C,
    server: S,
    activity: Arc<Activity>,
    idle: Duration,
    peer: Peer,
    settings: MllpSettings,
    route: &RouteRuntime,
) -> PumpEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let relay = Relay {
        peer,
        settings,
        route,
        owed: Mutex::new(VecDeque::new()),
        optional: Mutex::new(VecDeque::new()),
        reply_queued: Notify::new(),
    };
    let (client_rd, client_wr) = tokio::io::split(client);
    let (server_rd, server_wr) = tokio::io::split(server);
    let codec = MllpCodec::new(settings.max_frame);
    let upstream = relay.upstream(reader(client_rd, &codec), writer(server_wr, &codec));
    let downstream = relay.downstream(reader(server_rd, &codec), writer(client_wr, &codec));
    let end = tokio::select! {
        result = async { tokio::try_join!(upstream, downstream) } => match result {
            Ok(_) => PumpEnd::Closed,
            Err(e) => e.into_end(),
        },
        () = activity.idle_for(idle) => PumpEnd::Idle,
    };
    relay.unacknowledged();
    end
}

impl Relay<'_> {
    /// Sender → receiver: parse each frame's header, then forward it.
    async fn upstream<R, W>(
        &self,
        mut frames: FramedRead<R, MllpCodec>,
        mut to_server: FramedWrite<W, MllpCodec>,
    ) -> Result<(), RelayError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut deadline = FrameDeadline::new(self.settings.frame_timeout);
        while let Some(frame) = self
            .next_frame("sender", &mut deadline, &mut frames)
            .await?
        {
            let Some(frame) = self.frame_or_end("sender", frame)? else {
                break;
            };
            self.peer.noise(self.route, "sender", &frame);
            let size = frame.payload.len();
            match Message::parse_with(&frame.payload, ParseOptions::wire()) {
                Ok(message) => {
                    self.peer.leading(self.route, &frame.payload);
                    self.await_answer(self.header(&message), size);
                    forward(&mut to_server, frame.payload).await?;
                    refill(frames.read_buffer_mut());
                }
                Err(_) => match self.settings.non_hl7 {
                    NonHl7Policy::Pass => {
                        self.publish(None, size, SystemTime::now(), MessageOutcome::PassedNotHl7);
                        self.owe(Owed::PassedReply);
                        forward(&mut to_server, frame.payload).await?;
                        refill(frames.read_buffer_mut());
                    }
                    NonHl7Policy::Reject => {
                        self.publish(
                            None,
                            size,
                            SystemTime::now(),
                            MessageOutcome::RejectedNotHl7,
                        );
                        self.owe(Owed::OwnReply(Bytes::from(reject_not_hl7())));
                        self.reply_queued.notify_one();
                    }
                },
            }
        }
        // The sender finished: pass the end on, keep reading ACKs.
        to_server.get_mut().shutdown().await?;
        Ok(())
    }

    /// Receiver → sender: match each ACK with the oldest message owed
    /// one, then forward it; guichet's own replies go back in their turn.
    async fn downstream<R, W>(
        &self,
        mut frames: FramedRead<R, MllpCodec>,
        mut to_client: FramedWrite<W, MllpCodec>,
    ) -> Result<(), RelayError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut deadline = FrameDeadline::new(self.settings.frame_timeout);
        // One timer for the connection, moved only to wake earlier: waking
        // early costs a look at the queue, while a new timer per ACK cost
        // the timer wheel's lock twice a message.
        let overdue = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(overdue);
        let mut armed: Option<Instant> = None;
        loop {
            if let Some(at) = self.next_overdue() {
                if armed.is_none_or(|armed| at < armed) {
                    overdue.as_mut().reset(at);
                    armed = Some(at);
                }
            }
            tokio::select! {
                biased;
                () = self.reply_queued.notified() => self.send_own_replies(&mut to_client).await?,
                frame = self.next_frame("receiver", &mut deadline, &mut frames) => {
                    let Some(frame) = frame? else { break };
                    let Some(frame) = self.frame_or_end("receiver", frame)? else {
                        break;
                    };
                    self.peer.noise(self.route, "receiver", &frame);
                    // Replies owed before this answer go first.
                    self.send_own_replies(&mut to_client).await?;
                    self.acknowledged(&frame.payload);
                    forward(&mut to_client, frame.payload).await?;
                    refill(frames.read_buffer_mut());
                    self.send_own_replies(&mut to_client).await?;
                }
                () = &mut overdue, if armed.is_some() => {
                    armed = None;
                    self.report_overdue();
                }
            }
        }
        to_client.get_mut().shutdown().await?;
        Ok(())
    }

    /// What the relay reads of a message's header: the facilities only
    /// when flows are observed (nothing else of a relay shows them).
    fn header(&self, message: &Message<'_>) -> Header {
        if self.route.observer.enabled() {
            Header::read(message)
        } else {
            Header::read_relayed(message)
        }
    }

    /// Books the answer a message about to be forwarded is owed (an
    /// accept ACK, in order) or may get (paired by MSA-2 alone).
    fn await_answer(&self, header: Header, size: usize) {
        let waiting = Waiting {
            header,
            size,
            at: SystemTime::now(),
            since: Instant::now(),
            overdue: false,
        };
        if accept_ack_expected(&waiting.header) {
            self.owe(Owed::Ack(Box::new(waiting)));
        } else {
            self.may_answer(waiting, false);
        }
    }

    fn owe(&self, owed: Owed) {
        if let Ok(mut queue) = self.owed.lock() {
            queue.push_back(owed);
        }
    }

    /// Awaits an answer that may come, paired by MSA-2, until `ack_timeout`.
    fn may_answer(&self, waiting: Waiting, published: bool) {
        let dropped = match self.optional.lock() {
            Ok(mut optional) => {
                optional.push_back(Optional { waiting, published });
                (optional.len() > MAX_OPTIONAL)
                    .then(|| optional.pop_front())
                    .flatten()
            }
            Err(_) => None,
        };
        if let Some(oldest) = dropped {
            self.no_answer(oldest);
        }
    }

    /// An optional answer that did not come: expected, reported once.
    fn no_answer(&self, optional: Optional) {
        if !optional.published {
            let w = optional.waiting;
            self.publish(Some(w.header), w.size, w.at, MessageOutcome::NoAckDue);
        }
    }

    /// The next frame read from `side`, within the frame deadline.
    async fn next_frame<R: AsyncRead + Unpin>(
        &self,
        side: &'static str,
        deadline: &mut FrameDeadline,
        frames: &mut FramedRead<R, MllpCodec>,
    ) -> Result<Option<Result<Frame, MllpError>>, RelayError> {
        deadline.next(frames).await.map_err(|error| {
            self.route
                .metrics
                .frame_error(self.peer.route.as_str(), FRAME_TIMEOUT);
            RelayError::FrameTimeout { side, error }
        })
    }

    /// Writes guichet's own replies that have reached the front.
    async fn send_own_replies<W>(
        &self,
        to_client: &mut FramedWrite<W, MllpCodec>,
    ) -> Result<(), RelayError>
    where
        W: AsyncWrite + Unpin,
    {
        loop {
            let reply = match self.owed.lock() {
                Ok(mut queue) => match queue.front() {
                    Some(Owed::OwnReply(_)) => match queue.pop_front() {
                        Some(Owed::OwnReply(reply)) => reply,
                        _ => return Ok(()),
                    },
                    _ => return Ok(()),
                },
                Err(_) => return Ok(()),
            };
            // Built here, not read: through the codec, which checks it.
            to_client.send(reply).await.map_err(io_error)?;
            trim(to_client.write_buffer_mut());
        }
    }

    /// Handles one frame from the receiver: pairs it with the message it
    /// answers, by order, or by MSA-2 for answers that may come.
    fn acknowledged(&self, payload: &[u8]) {
        let parsed = Message::parse_with(payload, ParseOptions::wire()).ok();
        let summary = parsed.as_ref().and_then(AckSummary::read);
        let code = summary.as_ref().and_then(|s| s.code);
        let id = summary.as_ref().map(|s| s.acknowledged_id.as_str());
        let (waiting, published) = match self.answered(id) {
            Answered::InOrder(waiting) => (waiting, false),
            Answered::ById(optional) => (optional.waiting, optional.published),
            Answered::Passed => return,
            Answered::Nothing => {
                // Own replies at the front were sent just before this frame.
                let header = parsed.as_ref().map(Header::read);
                self.publish(
                    header,
                    payload.len(),
                    SystemTime::now(),
                    MessageOutcome::UnsolicitedAck { code },
                );
                return;
            }
        };
        let id_matches = id == Some(waiting.header.control_id.as_str());
        let latency = waiting.since.elapsed();
        if !published {
            self.route.counters.roundtrip.observe(latency.as_secs_f64());
        }
        if !id_matches {
            self.route.counters.ack_mismatches.inc();
        }
        if code.is_some_and(|c| c.is_commit()) && application_ack_may_follow(&waiting.header) {
            self.may_answer(clone_waiting(&waiting), true);
        }
        let outcome = MessageOutcome::Acknowledged {
            code,
            id_matches,
            latency,
        };
        self.publish(Some(waiting.header), waiting.size, waiting.at, outcome);
    }

    /// The message an answer with MSA-2 `id` goes with: the first one
    /// owed an answer when its control id matches, else one whose answer
    /// was optional, else the first owed (a mismatch).
    fn answered(&self, id: Option<&str>) -> Answered {
        let Ok(mut owed) = self.owed.lock() else {
            return Answered::Nothing;
        };
        let front_matches = matches!(
            owed.front(),
            Some(Owed::Ack(w)) if Some(w.header.control_id.as_str()) == id
        );
        if !front_matches {
            if let Some(optional) = id.and_then(|id| self.take_optional(id)) {
                return Answered::ById(optional);
            }
        }
        match owed.pop_front() {
            Some(Owed::Ack(waiting)) => Answered::InOrder(*waiting),
            Some(Owed::PassedReply) => Answered::Passed,
            Some(other @ Owed::OwnReply(_)) => {
                owed.push_front(other);
                Answered::Nothing
            }
            None => Answered::Nothing,
        }
    }

    fn take_optional(&self, id: &str) -> Option<Optional> {
        let mut optional = self.optional.lock().ok()?;
        let at = optional
            .iter()
            .position(|o| o.waiting.header.control_id == id)?;
        optional.remove(at)
    }

    /// When the oldest waiting message becomes overdue, or the oldest
    /// optional answer is given up, whichever comes first.
    fn next_overdue(&self) -> Option<Instant> {
        let timeout = self.settings.ack_timeout;
        let owed = self.owed.lock().ok().and_then(|queue| {
            queue
                .iter()
                .filter_map(awaited)
                .find(|w| !w.overdue)
                .map(|w| w.since + timeout + OVERDUE_BATCH)
        });
        let optional = self
            .optional
            .lock()
            .ok()
            .and_then(|o| o.front().map(|o| o.waiting.since + timeout));
        match (owed, optional) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reports the messages past `ack_timeout` without ACK: one line for
    /// all those found at once (a burst of messages to a silent receiver
    /// must not write a line each).
    fn report_overdue(&self) {
        self.give_up_optional();
        let timeout = self.settings.ack_timeout;
        let overdue: Vec<(String, String)> = match self.owed.lock() {
            Ok(mut queue) => queue
                .iter_mut()
                .filter_map(|owed| match owed {
                    Owed::Ack(w) => Some(w),
                    _ => None,
                })
                .filter(|w| !w.overdue && w.since.elapsed() >= timeout)
                .map(|w| {
                    w.overdue = true;
                    let h = &w.header;
                    (h.message_type.to_string(), h.control_id.to_string())
                })
                .collect(),
            Err(_) => return,
        };
        self.route
            .counters
            .acks_overdue
            .inc_by(overdue.len() as u64);
        let waited_s = timeout.as_secs_f64();
        let _log = self.peer.span.enter();
        match overdue.as_slice() {
            [] => {}
            [(message_type, control_id)] => warn!(
                %message_type, %control_id, waited_s, "no ACK yet for this message"
            ),
            [(_, first), .., (_, last)] => warn!(
                count = overdue.len(),
                first_control_id = %first,
                last_control_id = %last,
                waited_s,
                "no ACK yet for {} messages",
                overdue.len()
            ),
        }
    }

    /// Optional answers awaited for `ack_timeout` are given up.
    fn give_up_optional(&self) {
        let timeout = self.settings.ack_timeout;
        let expired: Vec<Optional> = match self.optional.lock() {
            Ok(mut optional) => {
                let n = optional
                    .iter()
                    .take_while(|o| o.waiting.since.elapsed() >= timeout)
                    .count();
                optional.drain(..n).collect()
            }
            Err(_) => return,
        };
        for optional in expired {
            self.no_answer(optional);
        }
    }

    /// Every message still waiting when the connection ends: one event
    /// each, one log line for them all (a sender gone with thousands in
    /// flight must not flood the log).
    fn unacknowledged(&self) {
        let left: Vec<Owed> = match self.owed.lock() {
            Ok(mut queue) => queue.drain(..).collect(),
            Err(_) => return,
        };
        let optional: Vec<Optional> = match self.optional.lock() {
            Ok(mut optional) => optional.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for optional in optional {
            self.no_answer(optional);
        }
        let mut lost = left.into_iter().filter_map(|owed| match owed {
            Owed::Ack(w) => Some(*w),
            _ => None,
        });
        let Some(first) = lost.next() else { return };
        let first_id = first.header.control_id.clone();
        let mut count = 0usize;
        let mut last_id = first_id.clone();
        for w in std::iter::once(first).chain(lost) {
            count += 1;
            last_id.clone_from(&w.header.control_id);
            self.peer.publish_unlogged(
                self.route,
                Some(w.header),
                w.size,
                w.at,
                MessageOutcome::Unacknowledged,
            );
        }
        let _log = self.peer.span.enter();
        warn!(
            count,
            outcome = "unacknowledged",
            first_control_id = %first_id,
            last_control_id = %last_id,
            "connection ended with {count} forwarded messages not acknowledged; the sender must send them again"
        );
    }

    fn publish(
        &self,
        header: Option<Header>,
        size: usize,
        at: SystemTime,
        outcome: MessageOutcome,
    ) {
        self.peer.publish(self.route, header, size, at, outcome);
    }

    /// A frame, or `None` when the stream ended after bytes outside any
    /// frame (a stray CR LF after the last one): those are counted like
    /// noise before a frame, and that direction ends normally so the ACKs
    /// still in flight the other way are delivered.
    fn frame_or_end(
        &self,
        side: &'static str,
        frame: Result<Frame, MllpError>,
    ) -> Result<Option<Frame>, RelayError> {
        match frame {
            Ok(frame) => Ok(Some(frame)),
            Err(MllpError::TrailingGarbage { bytes }) => {
                self.peer.discarded(self.route, side, bytes);
                Ok(None)
            }
            // A peer gone without close_notify is no framing error: the
            // connection's end says what it was.
            Err(MllpError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(RelayError::Io(e))
            }
            Err(error) => Err(self.frame_error(side, error)),
        }
    }

    fn frame_error(&self, side: &'static str, error: MllpError) -> RelayError {
        self.route
            .metrics
            .frame_error(self.peer.route.as_str(), frame_kind(&error));
        match error {
            MllpError::Io(e) => RelayError::Io(e),
            error => RelayError::Frame { side, error },
        }
    }
}

/// How [`Relay::answered`] paired an answer.
enum Answered {
    /// The first message owed an answer.
    InOrder(Waiting),
    /// A message whose answer was optional, by MSA-2.
    ById(Optional),
    /// The answer to a frame without MSH passed on.
    Passed,
    /// No message: an unsolicited ACK.
    Nothing,
}

/// Whether the receiver owes an answer to `header` in order: original
/// mode, or enhanced mode asking for an accept ACK always (`AL`, or empty
/// beside a set MSH-16) or on success (`SU`, what a relayed message that
/// guichet did not refuse is). `NE`, and `ER` with no error on our side,
/// ask for none.
pub(crate) fn accept_ack_expected(header: &Header) -> bool {
    if !header.is_enhanced_mode() {
        return true;
    }
    !matches!(header.accept_ack, Some(AckMode::Never | AckMode::Error))
}

/// Whether an application ACK may follow the accept ACK on this
/// connection (enhanced mode, MSH-16 other than `NE`).
fn application_ack_may_follow(header: &Header) -> bool {
    header.is_enhanced_mode() && header.application_ack != Some(AckMode::Never)
}

fn clone_waiting(w: &Waiting) -> Waiting {
    Waiting {
        header: w.header.clone(),
        size: w.size,
        at: w.at,
        since: w.since,
        overdue: true,
    }
}

/// Read buffers start small and grow with the frames; write buffers start
/// empty. An idle connection then holds a few KiB, not the 32 KiB of four
/// default-sized codec buffers (what a gateway holding 10,000 mostly idle
/// MLLP links pays for).
const READ_BUFFER: usize = 2 * 1024;

/// A buffer grown past this by one large message is given back once empty.
const KEEP_BUFFER: usize = 64 * 1024;

fn reader<R: AsyncRead>(io: R, codec: &MllpCodec) -> FramedRead<R, MllpCodec> {
    FramedRead::with_capacity(io, codec.clone(), READ_BUFFER)
}

fn writer<W: AsyncWrite>(io: W, codec: &MllpCodec) -> FramedWrite<W, MllpCodec> {
    let mut writer = FramedWrite::with_capacity(io, codec.clone(), 0);
    writer.set_backpressure_boundary(READ_BUFFER);
    writer
}

/// Gives back what one large message made a write buffer grow to.
fn trim(buffer: &mut BytesMut) {
    if buffer.is_empty() && buffer.capacity() > KEEP_BUFFER {
        *buffer = BytesMut::new();
    }
}

/// Keeps room for a whole next message once the read buffer is drained:
/// cut from a small buffer, a frame leaves only the tail of it, and the
/// next message would take two reads (and two decode passes). Once the
/// forwarded frame is dropped, this reclaims the same allocation; a large
/// one is given back.
fn refill(buffer: &mut BytesMut) {
    if !buffer.is_empty() {
        return;
    }
    if buffer.capacity() > KEEP_BUFFER {
        *buffer = BytesMut::with_capacity(READ_BUFFER);
    } else {
        buffer.reserve(READ_BUFFER);
    }
}

/// Sends a frame the decoder read as it came, framing and payload in one
/// vectored write: no copy into the codec's buffer, and no second scan
/// for boundaries the decoder already ruled out (a TLS stream writes the
/// three parts as one record).
async fn forward<W: AsyncWrite + Unpin>(
    to: &mut FramedWrite<W, MllpCodec>,
    payload: Bytes,
) -> Result<(), RelayError> {
    // Own replies go through the codec, flushed at once; anything it still
    // holds goes first.
    if !to.write_buffer().is_empty() {
        SinkExt::<&[u8]>::flush(to).await.map_err(io_error)?;
    }
    let io = to.get_mut();
    let mut parts = [
        IoSlice::new(&[START_BLOCK]),
        IoSlice::new(&payload),
        IoSlice::new(&[END_BLOCK, CARRIAGE_RETURN]),
    ];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        let written = io.write_vectored(parts).await.map_err(RelayError::Io)?;
        if written == 0 {
            return Err(RelayError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        IoSlice::advance_slices(&mut parts, written);
    }
    io.flush().await.map_err(RelayError::Io)?;
    Ok(())
}

fn awaited(owed: &Owed) -> Option<&Waiting> {
    match owed {
        Owed::Ack(w) => Some(w),
        _ => None,
    }
}

fn io_error(e: MllpError) -> RelayError {
    RelayError::Io(e.into())
}

/// The log `reason` of a framing error that ends a connection.
pub(crate) fn frame_reason(error: &MllpError) -> &'static str {
    match error {
        MllpError::TooLarge { .. } => "frame_too_large",
        MllpError::Truncated { .. } => "truncated",
        MllpError::TrailingGarbage { .. } => "discarded_bytes",
        MllpError::Io(_) => "io_error",
    }
}

/// The metric label of a framing error.
pub(crate) fn frame_kind(error: &MllpError) -> &'static str {
    match error {
        MllpError::TooLarge { .. } => "too_large",
        MllpError::Truncated { .. } => "truncated",
        MllpError::TrailingGarbage { .. } => "discarded_bytes",
        MllpError::Io(_) => "io",
    }
}

/// The AR guichet answers a frame without MSH with.
pub(crate) fn reject_not_hl7() -> Vec<u8> {
    let control_id = stamp::next_control_id();
    let timestamp = stamp::now_timestamp();
    build_reject_for_unparseable(&AckRequest {
        code: AckCode::AR,
        control_id: &control_id,
        timestamp: &timestamp,
        text: Some("not an HL7 v2 message: no MSH segment"),
        error: Some(ErrorDetail {
            code: ErrorCode::SegmentSequenceError,
            severity: Severity::Error,
            location: None,
        }),
    })
}
