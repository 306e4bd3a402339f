//! The frame-aware relay of an `mllp` route.
//!
//! Messages flow from the connecting sender to the receiver; ACKs flow
//! back. Each direction has its own future so a large message being
//! written never stops ACKs from being read (no proxy deadlock). Frames
//! are forwarded as received: the payload bytes are never altered.
//!
//! MLLP answers in order, so the first message waiting is the one an
//! incoming ACK answers; its MSA-2 is checked against that message's MSH-10.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::{
    build_reject_for_unparseable, stamp, AckCode, AckRequest, AckSummary, ErrorCode, ErrorDetail,
    Frame, Header, Message, MllpCodec, MllpError, ParseOptions, Severity,
};
use guichet_tls::AppName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::warn;

use crate::config::{MllpSettings, NonHl7Policy, RouteName};
use crate::events::{MessageEvent, MessageOutcome};
use crate::proxy::{Activity, PumpEnd};
use crate::route::RouteRuntime;

/// Who is on the other end, for events.
pub(crate) struct Peer {
    pub route: RouteName,
    pub remote: SocketAddr,
    pub app: Option<AppName>,
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
        route.events.publish(MessageEvent {
            at,
            route: self.route.clone(),
            remote: self.remote,
            peer_app: self.app.clone(),
            header,
            size,
            outcome,
        });
    }

    /// Counts and logs bytes found outside any MLLP frame.
    pub(crate) fn discarded(&self, route: &RouteRuntime, side: &'static str, bytes: usize) {
        if bytes > 0 {
            route
                .metrics
                .frame_error(self.route.as_str(), "discarded_bytes");
            warn!(side, bytes, "bytes outside any MLLP frame discarded");
        }
    }
}

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

struct Relay<'a> {
    peer: Peer,
    settings: MllpSettings,
    /// Metrics, counters and the event bus of the route.
    route: &'a RouteRuntime,
    owed: Mutex<VecDeque<Owed>>,
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
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
            Err(RelayError::Io(e)) => PumpEnd::Error(e),
            Err(e @ RelayError::Frame { .. }) => {
                PumpEnd::Error(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
            }
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
        while let Some(frame) = frames.next().await {
            let Some(frame) = self.frame_or_end("sender", frame)? else {
                break;
            };
            self.report_discarded("sender", frame.discarded);
            let size = frame.payload.len();
            match Message::parse_with(&frame.payload, ParseOptions::default()) {
                Ok(message) => {
                    let header = Header::read(&message);
                    self.owe(Owed::Ack(Box::new(Waiting {
                        header,
                        size,
                        at: SystemTime::now(),
                        since: Instant::now(),
                        overdue: false,
                    })));
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
        loop {
            let overdue_at = self.next_overdue();
            tokio::select! {
                biased;
                () = self.reply_queued.notified() => self.send_own_replies(&mut to_client).await?,
                frame = frames.next() => {
                    let Some(frame) = frame else { break };
                    let Some(frame) = self.frame_or_end("receiver", frame)? else {
                        break;
                    };
                    self.report_discarded("receiver", frame.discarded);
                    // Replies owed before this answer go first.
                    self.send_own_replies(&mut to_client).await?;
                    self.acknowledged(&frame.payload);
                    forward(&mut to_client, frame.payload).await?;
                    refill(frames.read_buffer_mut());
                    self.send_own_replies(&mut to_client).await?;
                }
                () = sleep_until(overdue_at) => self.report_overdue(),
            }
        }
        to_client.get_mut().shutdown().await?;
        Ok(())
    }

    fn owe(&self, owed: Owed) {
        if let Ok(mut queue) = self.owed.lock() {
            queue.push_back(owed);
        }
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
            forward(to_client, reply).await?;
        }
    }

    /// Handles one frame from the receiver.
    fn acknowledged(&self, payload: &[u8]) {
        let parsed = Message::parse_with(payload, ParseOptions::default()).ok();
        let summary = parsed.as_ref().and_then(AckSummary::read);
        let code = summary.as_ref().and_then(|s| s.code);
        let first = self
            .owed
            .lock()
            .ok()
            .and_then(|mut queue| queue.pop_front());
        let waiting = match first {
            Some(Owed::Ack(waiting)) => *waiting,
            Some(Owed::PassedReply) => return,
            Some(Owed::OwnReply(_)) | None => {
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
        let id_matches = summary
            .as_ref()
            .is_some_and(|s| s.acknowledged_id == waiting.header.control_id);
        let latency = waiting.since.elapsed();
        self.route.counters.roundtrip.observe(latency.as_secs_f64());
        if !id_matches {
            self.route.counters.ack_mismatches.inc();
        }
        let outcome = MessageOutcome::Acknowledged {
            code,
            id_matches,
            latency,
        };
        self.publish(Some(waiting.header), waiting.size, waiting.at, outcome);
    }

    /// When the oldest waiting message becomes overdue, if it is not yet.
    fn next_overdue(&self) -> Option<Instant> {
        let queue = self.owed.lock().ok()?;
        queue
            .iter()
            .filter_map(awaited)
            .find(|w| !w.overdue)
            .map(|w| w.since + self.settings.ack_timeout)
    }

    fn report_overdue(&self) {
        let Ok(mut queue) = self.owed.lock() else {
            return;
        };
        let timeout = self.settings.ack_timeout;
        for w in queue
            .iter_mut()
            .filter_map(|owed| match owed {
                Owed::Ack(w) => Some(w),
                _ => None,
            })
            .filter(|w| !w.overdue && w.since.elapsed() >= timeout)
        {
            w.overdue = true;
            self.route.counters.acks_overdue.inc();
            warn!(
                message_type = %w.header.message_type,
                control_id = %w.header.control_id,
                waited_s = timeout.as_secs_f64(),
                "no ACK yet for this message"
            );
        }
    }

    /// Every message still waiting when the connection ends.
    fn unacknowledged(&self) {
        let left: Vec<Owed> = match self.owed.lock() {
            Ok(mut queue) => queue.drain(..).collect(),
            Err(_) => return,
        };
        for owed in left {
            let Owed::Ack(w) = owed else { continue };
            self.publish(Some(w.header), w.size, w.at, MessageOutcome::Unacknowledged);
        }
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

    fn report_discarded(&self, side: &'static str, bytes: usize) {
        self.peer.discarded(self.route, side, bytes);
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
                self.report_discarded(side, bytes);
                Ok(None)
            }
            Err(error) => Err(self.frame_error(side, error)),
        }
    }

    fn frame_error(&self, side: &'static str, error: MllpError) -> RelayError {
        self.route
            .metrics
            .frame_error(self.peer.route.as_str(), frame_kind(&error));
        RelayError::Frame { side, error }
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

/// Sends a frame, then trims the write buffer.
async fn forward<W: AsyncWrite + Unpin>(
    to: &mut FramedWrite<W, MllpCodec>,
    payload: Bytes,
) -> Result<(), RelayError> {
    to.send(payload).await.map_err(io_error)?;
    trim(to.write_buffer_mut());
    Ok(())
}

fn awaited(owed: &Owed) -> Option<&Waiting> {
    match owed {
        Owed::Ack(w) => Some(w),
        _ => None,
    }
}

fn io_error(e: MllpError) -> RelayError {
    match e {
        MllpError::Io(io) => RelayError::Io(io),
        other => RelayError::Io(std::io::Error::other(other.to_string())),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
