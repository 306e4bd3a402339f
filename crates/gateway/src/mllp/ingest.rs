//! The sender side of a store-and-forward route: every message is stored
//! in the journal, and only then acknowledged, by guichet itself.
//!
//! The promise: no sender ever receives an accept (AA, or CA in enhanced
//! mode) for a message that is not durably stored. When the journal
//! cannot store, the sender gets AE (original mode) or CE (enhanced mode
//! asking for it) and sends again; an enhanced-mode sender that asked for
//! no error ACK has its connection closed, which it must treat as a
//! failure to send.
//!
//! Frames a sender pipelines are taken together and stored in one
//! journal batch; answers go back in the order the messages came.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use guichet_hl7::{
    accept_ack_due, build_ack, stamp, AckCode, AckRequest, ErrorCode, ErrorDetail, Frame, Header,
    Message, MllpCodec, MllpError, ParseOptions, Severity,
};
use guichet_journal::{Ingested, Journal, NewMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::warn;

use super::frame_deadline::{FrameDeadline, FrameTimedOut};
use super::relay::{frame_kind, frame_reason, reject_not_hl7, Peer, FRAME_TIMEOUT};
use crate::certs::unix_ms;
use crate::config::{ForwardPolicy, MllpSettings};
use crate::events::MessageOutcome;
use crate::route::RouteRuntime;
use crate::tcp::{Activity, PumpEnd};

/// Frames a pipelining sender has already sent are stored together, up to
/// this many per journal batch.
const MAX_BATCH: usize = 64;

/// A frame's message, read once: its header span for the ACK, its
/// header fields for the journal and the events. `None`: not HL7.
type Parsed<'a> = Option<(Message<'a>, Header)>;

/// The answer owed for one frame.
enum Answer {
    Reply(Vec<u8>),
    /// Nothing to send (enhanced mode, not asked for).
    Nothing,
    /// The sender asked for no error ACK but must not believe the message
    /// was taken: end the connection.
    Close,
}

/// Why reading from the sender stopped early.
#[derive(Debug)]
enum Stop {
    Frame(MllpError),
    Timeout(FrameTimedOut),
}

impl From<MllpError> for Stop {
    fn from(e: MllpError) -> Self {
        Stop::Frame(e)
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Frame(MllpError::Io(e))
    }
}

impl Stop {
    fn into_end(self) -> PumpEnd {
        match self {
            Stop::Frame(MllpError::Io(e)) => PumpEnd::Error(e),
            Stop::Frame(e) => PumpEnd::Frame {
                reason: frame_reason(&e),
                detail: format!("sender: {e}"),
            },
            Stop::Timeout(t) => PumpEnd::Frame {
                reason: FRAME_TIMEOUT,
                detail: format!("sender: {t}"),
            },
        }
    }
}

/// Everything one store-and-forward connection needs.
pub(crate) struct Ingest<'a> {
    pub peer: Peer,
    pub settings: MllpSettings,
    pub policy: ForwardPolicy,
    pub route: &'a RouteRuntime,
    pub journal: &'a Journal,
    /// Wakes the route's delivery worker when something was stored.
    pub stored: &'a tokio::sync::Notify,
}

impl Ingest<'_> {
    /// Reads, stores and answers until the sender closes, a framing error,
    /// or `idle` passes with no byte.
    pub async fn serve<C>(&self, client: C, activity: Arc<Activity>, idle: Duration) -> PumpEnd
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let (rd, wr) = tokio::io::split(client);
        let codec = MllpCodec::new(self.settings.max_frame);
        let mut frames = FramedRead::new(rd, codec.clone());
        let mut replies = FramedWrite::new(wr, codec);
        let mut deadline = FrameDeadline::new(self.settings.frame_timeout);
        let work = async {
            loop {
                let Some(batch) = self.next_batch(&mut deadline, &mut frames).await? else {
                    return Ok::<(), Stop>(());
                };
                let answers = self.store(batch).await;
                for answer in answers {
                    match answer {
                        Answer::Reply(bytes) => replies.feed(Bytes::from(bytes)).await?,
                        Answer::Nothing => {}
                        Answer::Close => {
                            SinkExt::<Bytes>::flush(&mut replies).await?;
                            return Ok(());
                        }
                    }
                }
                SinkExt::<Bytes>::flush(&mut replies).await?;
            }
        };
        tokio::select! {
            result = work => match result {
                Ok(()) => PumpEnd::Closed,
                Err(stop) => stop.into_end(),
            },
            () = activity.idle_for(idle) => PumpEnd::Idle,
        }
    }

    /// The next frame, and those already buffered behind it; `None` at the
    /// end of the stream.
    async fn next_batch<R: AsyncRead + Unpin>(
        &self,
        deadline: &mut FrameDeadline,
        frames: &mut FramedRead<R, MllpCodec>,
    ) -> Result<Option<Vec<Bytes>>, Stop> {
        let next = deadline.next(frames).await.map_err(|t| {
            self.route
                .metrics
                .frame_error(self.peer.route.as_str(), FRAME_TIMEOUT);
            Stop::Timeout(t)
        })?;
        let Some(first) = self.frame(next)? else {
            return Ok(None);
        };
        let mut batch = vec![first.payload];
        while batch.len() < MAX_BATCH {
            match frames.next().now_or_never() {
                Some(next) => match self.frame(next)? {
                    Some(frame) => batch.push(frame.payload),
                    None => break,
                },
                None => break,
            }
        }
        Ok(Some(batch))
    }

    /// A frame, `None` at the end of the stream (or after stray bytes
    /// following the last frame, which are counted).
    fn frame(&self, next: Option<Result<Frame, MllpError>>) -> Result<Option<Frame>, MllpError> {
        match next {
            None => Ok(None),
            Some(Ok(frame)) => {
                self.peer.noise(self.route, "sender", &frame);
                Ok(Some(frame))
            }
            Some(Err(MllpError::TrailingGarbage { bytes })) => {
                self.peer.discarded(self.route, "sender", bytes);
                Ok(None)
            }
            Some(Err(MllpError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(MllpError::Io(e))
            }
            Some(Err(e)) => {
                self.route
                    .metrics
                    .frame_error(self.peer.route.as_str(), frame_kind(&e));
                Err(e)
            }
        }
    }

    /// Parses a frame's message, the only time it is parsed.
    fn parse<'a>(&self, payload: &'a Bytes) -> Parsed<'a> {
        let message = Message::parse_with(payload, ParseOptions::wire()).ok()?;
        self.peer.leading(self.route, payload);
        let header = Header::read(&message);
        Some((message, header))
    }

    /// Stores the batch's messages in one journal call and says what to
    /// answer each frame, in order.
    async fn store(&self, batch: Vec<Bytes>) -> Vec<Answer> {
        let at = SystemTime::now();
        let parsed: Vec<Parsed<'_>> = batch.iter().map(|payload| self.parse(payload)).collect();
        let news: Vec<NewMessage> = parsed
            .iter()
            .zip(&batch)
            .filter_map(|(parsed, body)| {
                let (_, header) = parsed.as_ref()?;
                Some(self.new_message(header, body, at))
            })
            .collect();
        let mut results = if news.is_empty() {
            Ok(Vec::new())
        } else {
            self.journal.ingest(news).await
        };
        if let Err(e) = &results {
            self.route.counters.journal_failures.inc();
            warn!(reason = %e, "journal could not store; answering the sender with an error");
        } else {
            self.stored.notify_one();
        }
        let mut stored = results.as_mut().map(|r| r.drain(..));
        parsed
            .into_iter()
            .map(|parsed| match parsed {
                None => {
                    self.publish(None, 0, at, MessageOutcome::RejectedNotHl7);
                    Answer::Reply(reject_not_hl7())
                }
                Some((message, header)) => {
                    let outcome = match &mut stored {
                        Ok(iter) => iter.next(),
                        Err(_) => None,
                    };
                    self.answer(&message, header, at, outcome)
                }
            })
            .collect()
    }

    fn new_message(&self, header: &Header, body: &Bytes, at: SystemTime) -> NewMessage {
        let received_at_ms = unix_ms(at);
        let dedup_key = match &self.peer.app {
            Some(app) => format!("app:{app}"),
            None => format!(
                "msh:{}|{}",
                header.sending_application, header.sending_facility
            ),
        };
        NewMessage {
            route: self.peer.route.as_str().to_string(),
            received_at_ms,
            peer_app: self.peer.app.as_ref().map(|a| a.as_str().to_string()),
            peer_addr: self.peer.remote.to_string(),
            dedup_key,
            dedup_since_ms: self
                .policy
                .duplicate_window
                .map(|w| received_at_ms.saturating_sub(w.as_millis() as i64)),
            meta: header.meta(),
            body: body.to_vec(),
            sealed: false,
        }
    }

    /// The answer for one message, given what the journal did with it
    /// (`None`: not stored).
    fn answer(
        &self,
        message: &Message<'_>,
        header: Header,
        at: SystemTime,
        outcome: Option<Ingested>,
    ) -> Answer {
        let enhanced = header.is_enhanced_mode();
        let (code, event) = match (outcome, enhanced) {
            (Some(Ingested::Stored(_)), false) => (AckCode::AA, MessageOutcome::Stored),
            (Some(Ingested::Duplicate(_)), false) => (AckCode::AA, MessageOutcome::Duplicate),
            (Some(Ingested::Stored(_)), true) => (AckCode::CA, MessageOutcome::Stored),
            (Some(Ingested::Duplicate(_)), true) => (AckCode::CA, MessageOutcome::Duplicate),
            (None, false) => (AckCode::AE, MessageOutcome::NotStored),
            (None, true) => (AckCode::CE, MessageOutcome::NotStored),
        };
        let failed = event == MessageOutcome::NotStored;
        let wanted = !enhanced || accept_ack_due(&header, code);
        let size = message.raw().len();
        let reply = wanted.then(|| ack(message, code, failed));
        self.publish(Some(header), size, at, event);
        match reply {
            Some(bytes) => Answer::Reply(bytes),
            None if failed => Answer::Close,
            None => Answer::Nothing,
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
}

/// guichet's own ACK for a message it stored (or could not store).
fn ack(message: &Message<'_>, code: AckCode, failed: bool) -> Vec<u8> {
    let control_id = stamp::next_control_id();
    let timestamp = stamp::now_timestamp();
    let (text, error) = if failed {
        (
            Some("message not stored by the gateway (journal unavailable): send it again"),
            Some(ErrorDetail {
                code: ErrorCode::ApplicationInternalError,
                severity: Severity::Error,
                location: None,
            }),
        )
    } else {
        (None, None)
    };
    build_ack(
        message,
        &AckRequest {
            code,
            control_id: &control_id,
            timestamp: &timestamp,
            text,
            error,
        },
    )
}
