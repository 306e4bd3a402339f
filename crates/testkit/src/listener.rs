//! The MLLP receiver simulator (`guichet listen`).
//!
//! Unlike the script it replaces (one connection, always AA), it serves
//! many connections at once, keeps each open for many messages, answers
//! with a correct ACK of the chosen code (or not at all), honours enhanced
//! acknowledgment mode, rejects frames that are not HL7, and bounds every
//! wait and the memory of each connection.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::{
    accept_ack_due, application_ack_due, build_ack, build_reject_for_unparseable, AckCode,
    AckRequest, ErrorCode, ErrorDetail, Frame, Header, Message, MllpCodec, ParseOptions, Severity,
};
use guichet_tls::ServerTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::stamp::{next_control_id, now_timestamp};
use crate::tls::{TlsServerOptions, TlsSetupError};
use crate::{chain, BoxedIo};

/// What the listener answers to each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckPolicy {
    /// Application accept (CA in enhanced mode).
    #[default]
    Aa,
    /// Application error (CE in enhanced mode).
    Ae,
    /// Application reject (CR in enhanced mode).
    Ar,
    /// Never answer: lets a sender's ACK timeout be tested.
    None,
}

/// What `guichet listen` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// Address to bind; port 0 picks a free port (see
    /// [`ListenHandle::local_addr`]).
    pub on: SocketAddr,
    pub ack: AckPolicy,
    /// Pause before each ACK, to simulate a slow receiver.
    pub delay: Duration,
    /// TLS termination; plain TCP when absent.
    pub tls: Option<TlsServerOptions>,
    /// Report whole messages ([`Received::body`]), not only their header.
    pub show: bool,
    /// A connection with no frame for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

/// What happened on the listener, for the CLI to print.
#[derive(Debug, Clone)]
pub enum ListenEvent {
    /// A connection is ready for messages (after the TLS handshake).
    Connected {
        conn: u64,
        peer: SocketAddr,
        /// The client certificate's subject, when client certificates are
        /// required.
        client: Option<String>,
    },
    Message(Box<Received>),
    /// A connection ended; `reason` is `None` when the peer closed it
    /// cleanly between messages.
    Closed {
        conn: u64,
        peer: SocketAddr,
        messages: u64,
        reason: Option<String>,
    },
    /// A TLS handshake failed or the client certificate was refused.
    Refused {
        peer: SocketAddr,
        reason: String,
    },
}

/// One message received. Metadata only, unless `show` asked for the body.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: u64,
    pub peer: SocketAddr,
    /// Bytes between the MLLP start and end blocks.
    pub size: usize,
    /// MSH fields; `None` when the frame is not HL7.
    pub header: Option<Header>,
    /// Why the frame is not HL7, or why it was not answered.
    pub note: Option<String>,
    /// What was answered; `None` when nothing was.
    pub ack: Option<AckCode>,
    /// The whole message, when [`ListenOptions::show`] is set.
    pub body: Option<Bytes>,
}

/// Counts since the listener started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenStats {
    /// Connections admitted (TLS handshake done when TLS is on).
    pub connections: u64,
    pub messages: u64,
    /// TLS handshakes failed or refused.
    pub refused: u64,
}

/// A running listener.
#[derive(Debug)]
pub struct ListenHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    stats: Arc<Counters>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("TLS for the listener: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("`{0}` is not an ACK policy; choose one of: aa, ae, ar, none")]
    UnknownPolicy(String),
}

/// Bounds a client's TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds writing one ACK to a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for connections to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (out of file descriptors, say), so the
/// loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    messages: AtomicU64,
    refused: AtomicU64,
}

/// What every connection task needs.
struct Shared {
    ack: AckPolicy,
    delay: Duration,
    show: bool,
    idle_timeout: Duration,
    tls: Option<ServerTls>,
    events: mpsc::Sender<ListenEvent>,
    stats: Arc<Counters>,
    shutdown: CancellationToken,
}

impl ListenOptions {
    /// AA to every message, no delay, plain TCP, headers only, 5 minutes
    /// idle timeout, 256 connections.
    pub fn new(on: SocketAddr) -> Self {
        ListenOptions {
            on,
            ack: AckPolicy::Aa,
            delay: Duration::ZERO,
            tls: None,
            show: false,
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
        }
    }
}

/// Binds `opts.on` and serves until `shutdown` is cancelled (or
/// [`ListenHandle::stop`] is called), sending what happens to `events`.
///
/// `events` is bounded: a consumer that stops reading slows the
/// connections down rather than growing memory; a dropped receiver is fine.
pub async fn listen(
    opts: ListenOptions,
    events: mpsc::Sender<ListenEvent>,
    shutdown: CancellationToken,
) -> Result<ListenHandle, ListenError> {
    let tls = opts.tls.as_ref().map(TlsServerOptions::build).transpose()?;
    // A child token: stopping this listener leaves the caller's token alone.
    let shutdown = shutdown.child_token();
    let bind = |error| ListenError::Bind {
        addr: opts.on,
        error,
    };
    let listener = TcpListener::bind(opts.on).await.map_err(bind)?;
    let local_addr = listener.local_addr().map_err(bind)?;
    let stats = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        ack: opts.ack,
        delay: opts.delay,
        show: opts.show,
        idle_timeout: opts.idle_timeout,
        tls,
        events,
        stats: stats.clone(),
        shutdown: shutdown.clone(),
    });
    let span = tracing::info_span!("listen", on = %local_addr);
    let task =
        tokio::spawn(accept_loop(listener, shared, opts.max_connections.max(1)).instrument(span));
    Ok(ListenHandle {
        local_addr,
        shutdown,
        stats,
        task: Some(task),
    })
}

impl ListenHandle {
    /// The bound address (the real port when `on` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub fn stats(&self) -> ListenStats {
        ListenStats {
            connections: self.stats.connections.load(Ordering::Relaxed),
            messages: self.stats.messages.load(Ordering::Relaxed),
            refused: self.stats.refused.load(Ordering::Relaxed),
        }
    }

    /// Waits until the listener has stopped (after [`ListenHandle::stop`]
    /// or the cancellation of the token given to [`listen`]) and its
    /// connections are closed, within a drain deadline; returns the final
    /// counts.
    pub async fn join(mut self) -> ListenStats {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stats()
    }
}

/// Dropping the handle stops the listener: it cannot be reached anymore.
impl Drop for ListenHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, max_connections: usize) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let tracker = TaskTracker::new();
    let mut next_conn = 0u64;
    loop {
        // Backpressure at accept: a permit before each connection.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shared.shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        };
        next_conn += 1;
        let span = tracing::info_span!(
            "conn",
            conn = next_conn,
            peer = %peer,
            client = tracing::field::Empty
        );
        tracker.spawn(serve(next_conn, tcp, peer, shared.clone(), permit).instrument(span));
    }
    drop(listener);
    tracker.close();
    if timeout(DRAIN_TIMEOUT, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; leaving them");
    }
}

/// One connection: handshake, then frames until the peer leaves, the
/// connection idles out or the listener stops.
async fn serve(
    conn: u64,
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let Some((io, client)) = handshake(tcp, peer, &shared).await else {
        return;
    };
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    if let Some(client) = &client {
        tracing::Span::current().record("client", client.as_str());
    }
    tracing::debug!("connected");
    shared
        .emit(ListenEvent::Connected { conn, peer, client })
        .await;
    let mut framed = Framed::new(io, MllpCodec::default());
    let mut messages = 0;
    let reason = loop {
        let next = tokio::select! {
            next = timeout(shared.idle_timeout, framed.next()) => next,
            _ = shared.shutdown.cancelled() => break Some("listener stopped".to_owned()),
        };
        let frame = match next {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break None,
            Ok(Some(Err(e))) => break Some(chain(&e)),
            Err(_) => break Some(format!("idle for {:?}", shared.idle_timeout)),
        };
        messages += 1;
        shared.stats.messages.fetch_add(1, Ordering::Relaxed);
        let (received, ack) = shared.answer(conn, peer, frame);
        let written = match ack {
            Some(ack) => shared.reply(&mut framed, ack).await,
            None => Ok(()),
        };
        shared.emit(ListenEvent::Message(Box::new(received))).await;
        if let Err(reason) = written {
            break Some(reason.to_string());
        }
    };
    tracing::debug!(
        messages,
        reason = reason.as_deref().unwrap_or("peer closed"),
        "closed"
    );
    shared
        .emit(ListenEvent::Closed {
            conn,
            peer,
            messages,
            reason,
        })
        .await;
}

/// The TLS handshake when TLS is on; `None` (reported) when it fails.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<(BoxedIo, Option<String>)> {
    let Some(server) = &shared.tls else {
        return Some((Box::new(tcp), None));
    };
    match server.accept(tcp, HANDSHAKE_TIMEOUT).await {
        Ok((stream, app)) => Some((
            Box::new(stream),
            app.map(|app| app.identity.subject.to_string()),
        )),
        Err(refusal) => {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%refusal, "TLS refused");
            let reason = refusal.to_string();
            shared.emit(ListenEvent::Refused { peer, reason }).await;
            None
        }
    }
}

impl Shared {
    async fn emit(&self, event: ListenEvent) {
        // A consumer that went away does not stop the listener.
        let _ = self.events.send(event).await;
    }

    /// What was received, and the ACK to send back if any.
    fn answer(&self, conn: u64, peer: SocketAddr, frame: Frame) -> (Received, Option<Vec<u8>>) {
        let payload = frame.payload;
        let mut received = Received {
            conn,
            peer,
            size: payload.len(),
            header: None,
            note: None,
            ack: None,
            body: self.show.then(|| payload.clone()),
        };
        let lenient = ParseOptions::lenient();
        let (ack, bytes) = match Message::parse_with(&payload, lenient) {
            Ok(msg) => {
                let header = Header::read(&msg);
                let answer = self.ack_for(&header, &mut received.note);
                received.header = Some(header);
                let bytes = answer.map(|code| build_ack(&msg, &ack_request(code, &ack_ids())));
                (answer, bytes)
            }
            Err(e) => {
                received.note = Some(format!("not HL7: {e}"));
                let answer = (self.ack != AckPolicy::None).then_some(AckCode::AR);
                let bytes =
                    answer.map(|code| build_reject_for_unparseable(&ack_request(code, &ack_ids())));
                (answer, bytes)
            }
        };
        received.ack = ack;
        (received, bytes)
    }

    /// The code to answer `header` with, per the policy and, in enhanced
    /// mode, MSH-15/16. One answer per message at most: the accept ACK when
    /// due, else the application ACK when due. An ACK is never answered.
    fn ack_for(&self, header: &Header, note: &mut Option<String>) -> Option<AckCode> {
        let application = self.ack.application_code()?;
        if header.is_ack() {
            *note = Some("an ACK is not acknowledged".into());
            return None;
        }
        let commit = commit_code(application);
        if accept_ack_due(header, commit) {
            Some(commit)
        } else if application_ack_due(header, application) {
            Some(application)
        } else {
            *note = Some("no ACK due per MSH-15/MSH-16".into());
            None
        }
    }

    /// Sends one ACK after the configured delay.
    async fn reply(
        &self,
        framed: &mut Framed<BoxedIo, MllpCodec>,
        ack: Vec<u8>,
    ) -> Result<(), ReplyError> {
        if !self.delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.delay) => {}
                _ = self.shutdown.cancelled() => return Err(ReplyError::Stopped),
            }
        }
        match timeout(WRITE_TIMEOUT, framed.send(Bytes::from(ack))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ReplyError::Write(e)),
            Err(_) => Err(ReplyError::Unread),
        }
    }
}

/// Why an ACK was not sent; the message becomes the connection's close
/// reason.
#[derive(Debug, thiserror::Error)]
enum ReplyError {
    #[error("listener stopped")]
    Stopped,
    #[error("cannot write the ACK: {}", chain(.0))]
    Write(guichet_hl7::MllpError),
    #[error("the peer read no ACK for {WRITE_TIMEOUT:?}")]
    Unread,
}

/// A fresh control id and timestamp for one ACK.
fn ack_ids() -> (String, String) {
    (next_control_id(), now_timestamp())
}

fn ack_request(code: AckCode, (control_id, timestamp): &(String, String)) -> AckRequest<'_> {
    let error = (!code.is_accept()).then_some(ErrorDetail {
        code: ErrorCode::ApplicationInternalError,
        severity: Severity::Error,
        location: None,
    });
    AckRequest {
        code,
        control_id,
        timestamp,
        text: (!code.is_accept()).then_some(SIMULATED_ERROR),
        error,
    }
}

/// MSA-3 of the errors and rejects the simulator sends, so nobody mistakes
/// them for a real receiver's.
const SIMULATED_ERROR: &str = "simulated by guichet listen";

fn commit_code(application: AckCode) -> AckCode {
    match application {
        AckCode::AA | AckCode::CA => AckCode::CA,
        AckCode::AE | AckCode::CE => AckCode::CE,
        AckCode::AR | AckCode::CR => AckCode::CR,
    }
}

impl AckPolicy {
    pub const NAMES: [&'static str; 4] = ["aa", "ae", "ar", "none"];

    pub fn name(self) -> &'static str {
        match self {
            AckPolicy::Aa => "aa",
            AckPolicy::Ae => "ae",
            AckPolicy::Ar => "ar",
            AckPolicy::None => "none",
        }
    }

    /// The original-mode code answered, `None` for no answer.
    pub fn application_code(self) -> Option<AckCode> {
        match self {
            AckPolicy::Aa => Some(AckCode::AA),
            AckPolicy::Ae => Some(AckCode::AE),
            AckPolicy::Ar => Some(AckCode::AR),
            AckPolicy::None => None,
        }
    }
}

impl FromStr for AckPolicy {
    type Err = ListenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [AckPolicy::Aa, AckPolicy::Ae, AckPolicy::Ar, AckPolicy::None]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ListenError::UnknownPolicy(s.to_owned()))
    }
}

impl fmt::Display for AckPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
