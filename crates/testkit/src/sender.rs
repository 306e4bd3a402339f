//! The MLLP sender simulator (`guichet send`).
//!
//! Unlike the shell-and-Python senders it replaces, it keeps each
//! connection open for many messages, waits for each ACK with a deadline
//! before sending the next (MLLP allows one outstanding message per
//! connection), checks that the ACK's MSA-2 names the message sent, and
//! reconnects, a bounded number of times, when a connection is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use guichet_hl7::{AckSummary, Message, MllpCodec, ParseOptions};
use guichet_tls::{ClientTls, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::input::{Input, Outgoing};
use crate::report::{Outcome, SendResult, SendSummary};
use crate::tls::{TlsClientOptions, TlsSetupError};
use crate::{chain, BoxedIo};

/// What `guichet send` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// `HOST:PORT` of the receiver (or of a gateway in front of it).
    pub to: String,
    /// TLS towards the receiver; plain TCP when absent.
    pub tls: Option<TlsClientOptions>,
    /// Messages to send in all, cycling through the input; `None` sends
    /// each input message once (a template once).
    pub count: Option<u64>,
    /// Pace: message `n` leaves no earlier than `n * every` after the
    /// start, whichever connection carries it. `None`: as fast as the ACKs
    /// come back.
    pub every: Option<Duration>,
    /// Connections opened side by side, each carrying one message at a time.
    pub conns: usize,
    /// Bounds writing one message and reading its ACK.
    pub ack_timeout: Duration,
    /// Bounds the TCP connect and the TLS handshake, each.
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("`{0}` is not HOST:PORT (for example 127.0.0.1:2575 or dpi.chu.example:2575)")]
    BadAddress(String),
    #[error("the number of connections must be at least 1")]
    NoConnections,
    #[error("TLS towards {to}: {error}")]
    Tls { to: String, error: TlsSetupError },
}

/// A connection stops trying after this many connection failures in a row;
/// the others carry on with the remaining messages.
const MAX_CONNECT_FAILURES: u32 = 3;
/// Wait before reconnecting after the `n`th failure in a row: `n` times this.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

type Link = Framed<BoxedIo, MllpCodec>;

/// Everything the connections share.
struct Plan {
    to: String,
    tls: Option<(ClientTls, ServerName<'static>)>,
    input: Input,
    total: u64,
    every: Option<Duration>,
    ack_timeout: Duration,
    connect_timeout: Duration,
    next: AtomicU64,
    start: Instant,
    shutdown: CancellationToken,
}

impl SendOptions {
    /// One connection to `to`, plain TCP, each input message once, 10 s
    /// for each ACK and 5 s to connect.
    pub fn new(to: impl Into<String>) -> Self {
        SendOptions {
            to: to.into(),
            tls: None,
            count: None,
            every: None,
            conns: 1,
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Sends `input` as `opts` says, calling `on_result` once per message in
/// the order results arrive, and returns the totals.
///
/// Cancelling `shutdown` stops taking new messages; messages in flight
/// finish (each bounded by `ack_timeout`). Network failures are results,
/// not errors: the `Err` cases are a bad address, no connections, or TLS
/// files that cannot be used.
pub async fn send<F>(
    opts: &SendOptions,
    input: Input,
    shutdown: CancellationToken,
    mut on_result: F,
) -> Result<SendSummary, SendError>
where
    F: FnMut(&SendResult),
{
    let plan = Arc::new(Plan::new(opts, input, shutdown)?);
    let (tx, mut rx) = mpsc::channel(opts.conns.saturating_mul(4));
    let mut workers = JoinSet::new();
    for conn in 0..opts.conns {
        let span = tracing::info_span!("send", conn, to = %plan.to);
        workers.spawn(worker(plan.clone(), conn, tx.clone()).instrument(span));
    }
    drop(tx);
    let mut summary = SendSummary::default();
    while let Some(result) = rx.recv().await {
        summary.add(&result);
        on_result(&result);
    }
    summary.gave_up = plan.gave_up();
    Ok(summary)
}

impl Plan {
    fn new(
        opts: &SendOptions,
        input: Input,
        shutdown: CancellationToken,
    ) -> Result<Self, SendError> {
        let host = host_of(&opts.to).ok_or_else(|| SendError::BadAddress(opts.to.clone()))?;
        if opts.conns == 0 {
            return Err(SendError::NoConnections);
        }
        let tls = match &opts.tls {
            Some(tls) => Some(tls.build(host).map_err(|error| SendError::Tls {
                to: opts.to.clone(),
                error,
            })?),
            None => None,
        };
        Ok(Plan {
            to: opts.to.clone(),
            tls,
            total: opts.count.unwrap_or(input.len() as u64),
            input,
            every: opts.every,
            ack_timeout: opts.ack_timeout,
            connect_timeout: opts.connect_timeout,
            next: AtomicU64::new(0),
            start: Instant::now(),
            shutdown,
        })
    }

    /// The next send number, once its time has come; `None` when all are
    /// taken or the run is cancelled.
    async fn take(&self) -> Option<u64> {
        if self.shutdown.is_cancelled() {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        if seq >= self.total {
            return None;
        }
        let Some(every) = self.every else {
            return Some(seq);
        };
        let offset = every.as_nanos().saturating_mul(u128::from(seq));
        let due = self
            .start
            .checked_add(Duration::from_nanos(u64::try_from(offset).ok()?))?;
        tokio::select! {
            _ = tokio::time::sleep_until(due) => Some(seq),
            _ = self.shutdown.cancelled() => None,
        }
    }

    /// Whether messages were left when every connection had stopped: only
    /// repeated connection failures stop a connection before the end.
    fn gave_up(&self) -> bool {
        !self.shutdown.is_cancelled() && self.next.load(Ordering::Relaxed) < self.total
    }

    async fn connect(&self) -> Result<Link, ConnectError> {
        let to = || self.to.clone();
        let tcp = match timeout(self.connect_timeout, TcpStream::connect(self.to.as_str())).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(ConnectError::Refused { to: to(), error }),
            Err(_) => {
                return Err(ConnectError::Silent {
                    to: to(),
                    after: self.connect_timeout,
                })
            }
        };
        // Nagle would hold small ACK-sized writes back; latency is measured.
        let _ = tcp.set_nodelay(true);
        let io: BoxedIo = match &self.tls {
            None => Box::new(tcp),
            Some((client, name)) => Box::new(
                client
                    .connect(name.clone(), tcp, self.connect_timeout)
                    .await
                    .map_err(|refusal| ConnectError::Handshake { to: to(), refusal })?,
            ),
        };
        Ok(Framed::new(io, MllpCodec::default()))
    }
}

/// Why a connection to the receiver could not be opened; the message
/// becomes the `error` of the messages it leaves unsent.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("cannot connect to {to}: {error}")]
    Refused { to: String, error: std::io::Error },
    #[error("cannot connect to {to}: no answer within {after:?}")]
    Silent { to: String, after: Duration },
    #[error("TLS handshake with {to} failed: {refusal}")]
    Handshake {
        to: String,
        refusal: guichet_tls::Refusal,
    },
}

/// The host part of `HOST:PORT` (brackets of an IPv6 literal kept), when
/// the port is a number.
fn host_of(to: &str) -> Option<&str> {
    let (host, port) = to.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    (!host.is_empty()).then_some(host)
}

/// One connection: takes messages one at a time until none are left.
async fn worker(plan: Arc<Plan>, conn: usize, results: mpsc::Sender<SendResult>) {
    let mut link: Option<Link> = None;
    let mut failures = 0;
    while let Some(seq) = plan.take().await {
        let out = plan.input.message(seq);
        if link.as_mut().is_some_and(closed_by_peer) {
            tracing::info!("connection closed by the peer between messages; reconnecting");
            link = None;
        }
        let new_connection = link.is_none();
        if new_connection {
            match plan.connect().await {
                Ok(fresh) => {
                    failures = 0;
                    link = Some(fresh);
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "connection failed");
                    let _ = results
                        .send(not_sent(conn, seq, out, error.to_string()))
                        .await;
                    if failures >= MAX_CONNECT_FAILURES || !backoff(&plan, failures).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(open) = link.as_mut() else { break };
        let mut result = exchange(open, &out, plan.ack_timeout).await;
        (result.conn, result.seq, result.new_connection) = (conn, seq, new_connection);
        if !matches!(result.outcome, Outcome::Accepted | Outcome::Rejected) {
            // After a timeout or a stray ACK the stream is out of step: a
            // late ACK would be taken for the next message's.
            link = None;
        }
        if results.send(result).await.is_err() {
            break;
        }
    }
    // A clean end (TLS close_notify, then FIN): the receiver sees a closed
    // connection, not a truncated one.
    if let Some(mut open) = link {
        let _ = timeout(
            plan.connect_timeout,
            SinkExt::<bytes::Bytes>::close(&mut open),
        )
        .await;
    }
}

/// Waits before the next connection attempt; false when cancelled.
async fn backoff(plan: &Plan, failures: u32) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RECONNECT_BACKOFF * failures) => true,
        _ = plan.shutdown.cancelled() => false,
    }
}

/// Whether the peer closed (or broke) an idle connection. Frames it sent
/// unasked (an application ACK in enhanced mode, say) are dropped.
fn closed_by_peer(link: &mut Link) -> bool {
    loop {
        match link.next().now_or_never() {
            None => return false,
            Some(None | Some(Err(_))) => return true,
            Some(Some(Ok(frame))) => {
                tracing::debug!(bytes = frame.payload.len(), "unsolicited frame dropped")
            }
        }
    }
}

/// Writes `out` and reads its ACK, within `ack_timeout` in all.
async fn exchange(link: &mut Link, out: &Outgoing, ack_timeout: Duration) -> SendResult {
    let started = Instant::now();
    let deadline = started + ack_timeout;
    let mut result = pending(out);
    match timeout_at(deadline, link.send(out.bytes.clone())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            result.error = Some(format!("cannot write the message: {}", chain(&e)));
            return result;
        }
        Err(_) => {
            result.error = Some(format!("cannot write the message within {ack_timeout:?}"));
            return result;
        }
    }
    let answer = timeout_at(deadline, link.next()).await;
    result.latency = started.elapsed();
    match answer {
        Ok(Some(Ok(frame))) => judge(&frame.payload, &mut result),
        Ok(Some(Err(e))) => result.error = Some(format!("cannot read the ACK: {}", chain(&e))),
        Ok(None) => result.error = Some("connection closed by the peer before the ACK".into()),
        Err(_) => result.error = Some(format!("no ACK within {ack_timeout:?}")),
    }
    result
}

/// A result for `out` that is `NoAck` until an ACK says otherwise.
fn pending(out: &Outgoing) -> SendResult {
    SendResult {
        conn: 0,
        seq: 0,
        control_id: out.control_id.clone(),
        message_type: out.message_type.clone(),
        ack: None,
        msa2_matches: false,
        latency: Duration::ZERO,
        new_connection: false,
        outcome: Outcome::NoAck,
        error: None,
    }
}

fn not_sent(conn: usize, seq: u64, out: Outgoing, error: String) -> SendResult {
    SendResult {
        conn,
        seq,
        outcome: Outcome::NotSent,
        error: Some(error),
        ..pending(&out)
    }
}

/// Reads the answer: an ACK for this message, for another, or no ACK.
fn judge(answer: &[u8], result: &mut SendResult) {
    let lenient = ParseOptions::lenient();
    let msg = match Message::parse_with(answer, lenient) {
        Ok(msg) => msg,
        Err(e) => {
            result.error = Some(format!("the answer is not HL7: {e}"));
            return;
        }
    };
    let Some(ack) = AckSummary::read(&msg) else {
        result.error = Some("the answer has no MSA segment".into());
        return;
    };
    result.ack = ack.code;
    result.msa2_matches = ack.acknowledged_id == result.control_id;
    let text = msg
        .segment("MSA")
        .map(|msa| msa.field(3).text(msg.charset()).into_owned())
        .filter(|text| !text.is_empty());
    (result.outcome, result.error) = match ack.code {
        _ if !result.msa2_matches => (
            Outcome::Mismatched,
            Some(format!(
                "the ACK names message `{}`, not `{}`",
                ack.acknowledged_id, result.control_id
            )),
        ),
        Some(code) if code.is_accept() => (Outcome::Accepted, text),
        Some(_) => (Outcome::Rejected, text),
        None => (
            Outcome::Rejected,
            Some("MSA-1 is not an acknowledgment code".into()),
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(host_of("127.0.0.1:2575"), Some("127.0.0.1"));
        assert_eq!(host_of("dpi.chu.example:2575"), Some("dpi.chu.example"));
        assert_eq!(host_of("[::1]:2575"), Some("[::1]"));
        assert_eq!(host_of("dpi:http"), None);
        assert_eq!(host_of(":2575"), None);
        assert_eq!(host_of("dpi"), None);
    }

    fn judged(answer: &[u8]) -> SendResult {
        let out = Outgoing {
            bytes: bytes::Bytes::new(),
            control_id: "MSG1".into(),
            message_type: "ADT^A01".into(),
        };
        let mut result = pending(&out);
        judge(answer, &mut result);
        result
    }

    #[test]
    fn judging_answers() {
        let r = judged(b"MSH|^~\\&|DPI|CHU|EAI|CHU|1||ACK^A01^ACK|A1|P|2.5\rMSA|AA|MSG1\r");
        assert_eq!(
            (r.outcome, r.msa2_matches, r.error),
            (Outcome::Accepted, true, None)
        );
        let r = judged(b"MSH|^~\\&|DPI|CHU|EAI|CHU|1||ACK|A1|P|2.5\nMSA|AE|MSG1|Patient inconnu\n");
        assert_eq!(r.outcome, Outcome::Rejected);
        assert_eq!(r.error.as_deref(), Some("Patient inconnu"));
        let r = judged(b"MSH|^~\\&|DPI|CHU|EAI|CHU|1||ACK|A1|P|2.5\rMSA|AA|WRONG\r");
        assert_eq!((r.outcome, r.msa2_matches), (Outcome::Mismatched, false));
        assert_eq!(
            r.error.as_deref(),
            Some("the ACK names message `WRONG`, not `MSG1`")
        );
        let r = judged(b"MSH|^~\\&|DPI|CHU|EAI|CHU|1||ACK|A1|P|2.5\rMSA|ZZ|MSG1\r");
        assert_eq!((r.outcome, r.ack), (Outcome::Rejected, None));
        let r = judged(b"MSH|^~\\&|DPI|CHU|EAI|CHU|1||ACK|A1|P|2.5\r");
        assert_eq!(r.outcome, Outcome::NoAck);
        let r = judged(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(r.outcome, Outcome::NoAck);
    }
}
