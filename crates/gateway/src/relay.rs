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

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::{
    build_reject_for_unparseable, stamp, AckCode, AckRequest, AckSummary, ErrorCode, ErrorDetail,
    Header, Message, MllpCodec, MllpError, ParseOptions, Severity,
};
use guichet_tls::AppName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::warn;

use crate::config::{MllpSettings, NonHl7Policy, RouteName};
use crate::events::{EventBus, MessageEvent, MessageOutcome};
use crate::metrics::Metrics;
use crate::proxy::{Activity, PumpEnd};

/// Who is on the other end, for events.
pub(crate) struct Peer {
    pub route: RouteName,
    pub remote: SocketAddr,
    pub app: Option<AppName>,
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
    events: &'a EventBus,
    metrics: &'a Metrics,
    waiting: Mutex<VecDeque<Waiting>>,
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
pub(crate) async fn relay<C, S>(
    client: C,
    server: S,
    activity: Arc<Activity>,
    idle: Duration,
    peer: Peer,
    settings: MllpSettings,
    events: &EventBus,
    metrics: &Metrics,
) -> PumpEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let relay = Relay {
        peer,
        settings,
        events,
        metrics,
        waiting: Mutex::new(VecDeque::new()),
    };
    let (client_rd, client_wr) = tokio::io::split(client);
    let (server_rd, server_wr) = tokio::io::split(server);
    let codec = MllpCodec::new(settings.max_frame);
    let (replies_tx, replies_rx) = mpsc::channel(16);
    let upstream = relay.upstream(
        FramedRead::new(client_rd, codec.clone()),
        FramedWrite::new(server_wr, codec.clone()),
        replies_tx,
    );
    let downstream = relay.downstream(
        FramedRead::new(server_rd, codec.clone()),
        FramedWrite::new(client_wr, codec),
        replies_rx,
    );
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
        replies: mpsc::Sender<Bytes>,
    ) -> Result<(), RelayError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(|error| self.frame_error("sender", error))?;
            self.report_discarded("sender", frame.discarded);
            let size = frame.payload.len();
            match Message::parse_with(&frame.payload, ParseOptions::default()) {
                Ok(message) => {
                    let header = Header::read(&message);
                    self.push_waiting(header, size);
                    to_server.send(frame.payload).await.map_err(io_error)?;
                }
                Err(_) => match self.settings.non_hl7 {
                    NonHl7Policy::Pass => {
                        self.publish(None, size, SystemTime::now(), MessageOutcome::PassedNotHl7);
                        to_server.send(frame.payload).await.map_err(io_error)?;
                    }
                    NonHl7Policy::Reject => {
                        self.publish(
                            None,
                            size,
                            SystemTime::now(),
                            MessageOutcome::RejectedNotHl7,
                        );
                        if replies.send(Bytes::from(reject_not_hl7())).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        // The sender finished: pass the end on, keep reading ACKs.
        to_server.get_mut().shutdown().await?;
        Ok(())
    }

    /// Receiver → sender: match each ACK with the oldest waiting message,
    /// then forward it; also sends guichet's own rejects.
    async fn downstream<R, W>(
        &self,
        mut frames: FramedRead<R, MllpCodec>,
        mut to_client: FramedWrite<W, MllpCodec>,
        mut replies: mpsc::Receiver<Bytes>,
    ) -> Result<(), RelayError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut replies_open = true;
        loop {
            let overdue_at = self.next_overdue();
            tokio::select! {
                frame = frames.next() => {
                    let Some(frame) = frame else { break };
                    let frame = frame.map_err(|error| self.frame_error("receiver", error))?;
                    self.report_discarded("receiver", frame.discarded);
                    self.acknowledged(&frame.payload);
                    to_client.send(frame.payload).await.map_err(io_error)?;
                }
                reply = replies.recv(), if replies_open => match reply {
                    Some(reply) => to_client.send(reply).await.map_err(io_error)?,
                    None => replies_open = false,
                },
                () = sleep_until(overdue_at) => self.report_overdue(),
            }
        }
        to_client.get_mut().shutdown().await?;
        Ok(())
    }

    fn push_waiting(&self, header: Header, size: usize) {
        let entry = Waiting {
            header,
            size,
            at: SystemTime::now(),
            since: Instant::now(),
            overdue: false,
        };
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push_back(entry);
        }
    }

    /// Handles one frame from the receiver.
    fn acknowledged(&self, payload: &[u8]) {
        let parsed = Message::parse_with(payload, ParseOptions::default()).ok();
        let summary = parsed.as_ref().and_then(AckSummary::read);
        let code = summary.as_ref().and_then(|s| s.code);
        let first = self.waiting.lock().ok().and_then(|mut w| w.pop_front());
        let Some(waiting) = first else {
            let header = parsed.as_ref().map(Header::read);
            self.metrics
                .message(self.peer.route.as_str(), "unsolicited_ack");
            self.publish(
                header,
                payload.len(),
                SystemTime::now(),
                MessageOutcome::UnsolicitedAck { code },
            );
            return;
        };
        let id_matches = summary
            .as_ref()
            .is_some_and(|s| s.acknowledged_id == waiting.header.control_id);
        let latency = waiting.since.elapsed();
        self.metrics.roundtrip(self.peer.route.as_str(), latency);
        if !id_matches {
            self.metrics.ack_mismatch(self.peer.route.as_str());
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
        let waiting = self.waiting.lock().ok()?;
        waiting
            .iter()
            .find(|w| !w.overdue)
            .map(|w| w.since + self.settings.ack_timeout)
    }

    fn report_overdue(&self) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        let timeout = self.settings.ack_timeout;
        for w in waiting
            .iter_mut()
            .filter(|w| !w.overdue && w.since.elapsed() >= timeout)
        {
            w.overdue = true;
            self.metrics.ack_overdue(self.peer.route.as_str());
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
        let left: Vec<Waiting> = match self.waiting.lock() {
            Ok(mut waiting) => waiting.drain(..).collect(),
            Err(_) => return,
        };
        for w in left {
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
        self.metrics
            .message(self.peer.route.as_str(), outcome.label());
        self.events.publish(MessageEvent {
            at,
            route: self.peer.route.clone(),
            remote: self.peer.remote,
            peer_app: self.peer.app.clone(),
            header,
            size,
            outcome,
        });
    }

    fn report_discarded(&self, side: &'static str, bytes: usize) {
        if bytes > 0 {
            self.metrics
                .frame_error(self.peer.route.as_str(), "discarded_bytes");
            warn!(side, bytes, "bytes outside any MLLP frame discarded");
        }
    }

    fn frame_error(&self, side: &'static str, error: MllpError) -> RelayError {
        let kind = match &error {
            MllpError::TooLarge { .. } => "too_large",
            MllpError::Truncated { .. } => "truncated",
            MllpError::TrailingGarbage { .. } => "discarded_bytes",
            MllpError::Io(_) => "io",
        };
        self.metrics.frame_error(self.peer.route.as_str(), kind);
        RelayError::Frame { side, error }
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

/// The AR guichet answers a frame without MSH with.
fn reject_not_hl7() -> Vec<u8> {
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
