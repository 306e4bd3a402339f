//! The receiver side of a store-and-forward route: one worker per route
//! delivers the journal's queue, in order, one message outstanding at a
//! time, while this node holds the route's lease.
//!
//! A message leaves the head of the queue only when the receiver accepts
//! it (AA or CA with MSA-2 = its MSH-10), or when it is given up (AE past
//! the route's retries): until then it is retried with a capped
//! exponential backoff and nothing behind it is sent.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::{AckCode, AckSummary, Header, Message, MllpCodec, ParseOptions};
use guichet_journal::{Claimed, Journal, JournalError, MessageId, Outcome};
use guichet_tls::Refusal;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use super::relay::accept_ack_expected;
use crate::certs::unix_ms;
use crate::config::{ForwardPolicy, RouteKind};
use crate::dial::{observe_handshake, open_forward, DialError, ForwardError};
use crate::events::{MessageEvent, MessageOutcome, Origin};
use crate::lease::{Lease, Pause};
use crate::metrics::Side;
use crate::observe::{FlowEnds, Party, Seen, OUT, RETRY};
use crate::route::RouteRuntime;
use crate::stream::Stream;

/// Messages claimed from the journal at a time. A journal commit answers
/// one claim of the worker while it stores a message for each sender
/// waiting on its ACK: a claim no larger than a busy route's senders (32
/// in the benchmark) only kept pace with them, and once behind the drain
/// never caught up. Claimed messages left in flight by a crash are sent
/// again, flagged `redelivered`.
const CLAIM: usize = 128;

/// How often an idle worker looks at the journal without being woken
/// (messages ingested by another node, replays by an operator).
const POLL: Duration = Duration::from_millis(500);

/// Longest a settled outcome waits to be recorded with the ones after it.
const RECORD_DELAY: Duration = Duration::from_millis(50);

/// At shutdown, how long a message already sent may still wait for its
/// ACK (within its ack_timeout). Given up earlier, it stays in flight and
/// is sent again at the next start: the receiver would get it twice.
const SHUTDOWN_ACK_GRACE: Duration = Duration::from_secs(5);

/// The delivery worker of one route.
pub(crate) struct Worker {
    pub route: Arc<RouteRuntime>,
    pub journal: Journal,
    pub node: Arc<str>,
    pub lease_ttl: Duration,
    pub policy: ForwardPolicy,
    pub wake: Arc<Notify>,
}

/// A claim already queued in the journal, awaited for the next batch.
type ClaimAhead = Pin<Box<dyn Future<Output = Result<Vec<Claimed>, JournalError>> + Send>>;

/// Outcomes settled (delivered, dead) and not yet recorded. Recorded
/// together, they share one journal transaction (with the next claim,
/// queued behind them) instead of taking one each, which on one
/// connection was most of the journal's cost per message. They wait at
/// most [`RECORD_DELAY`], and are recorded before any retry wait, any
/// pause and the next claim; a crash meanwhile only repeats their
/// delivery (flagged `redelivered`), as a lost record always could.
#[derive(Default)]
struct Settled {
    outcomes: Vec<(MessageId, Outcome)>,
    since: Option<Instant>,
}

/// The open connection to the receiver.
struct Receiver {
    framed: Framed<Stream, MllpCodec>,
    addr: SocketAddr,
    /// The last control id accepted on this connection: a late second ACK
    /// for it (an application ACK after a commit ACK) is skipped.
    last_accepted: Option<String>,
}

/// Why no connection to the receiver could be opened; recorded as the
/// attempt's error.
#[derive(Debug, thiserror::Error)]
enum ReceiverError {
    #[error("receiver unavailable: {0}")]
    Unavailable(DialError),
    #[error("receiver TLS handshake failed: {0}")]
    Tls(Refusal),
    /// The connection closed before its address could be read.
    #[error("{0}")]
    Address(std::io::Error),
}

/// What one attempt came to.
enum Attempt {
    Accepted {
        code: AckCode,
        latency: Duration,
    },
    /// Answered, but not accepted (AE, AR, CE, CR, no code).
    Refused {
        code: Option<AckCode>,
        latency: Duration,
    },
    /// No usable answer: connection, timeout, wrong MSA-2.
    Failed(String),
    /// Sent to a receiver that owes no accept ACK (enhanced mode, MSH-15
    /// `NE` or `ER`): delivered once written, nothing awaited.
    Sent,
}

impl Worker {
    /// Delivers until `shutdown`; gives the lease back on the way out.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = info_span!("delivery", route = %self.route.name, node = %self.node);
        async move {
            let name = self.route.name.as_str();
            let metrics = &self.route.metrics;
            let mut lease = Lease::new(
                self.journal.clone(),
                name,
                &self.node,
                self.lease_ttl,
                metrics,
            );
            let mut receiver = None;
            let mut holding = false;
            let mut ahead = None;
            while !shutdown.is_cancelled() {
                if !holding {
                    holding = lease.take(&shutdown).await;
                    continue;
                }
                let delivered = self
                    .deliver_batch(&mut receiver, &mut lease, &mut ahead, &shutdown)
                    .await;
                match delivered {
                    Ok(()) => {}
                    Err(Pause::Shutdown) => break,
                    Err(Pause::LeaseLost) => {
                        lease.lost();
                        ahead = None;
                        receiver = None;
                        holding = false;
                    }
                }
            }
            if holding {
                lease.give_back().await;
            }
            info!("delivery stopped");
        }
        .instrument(span)
        .await;
    }

    /// Claims the next messages (or takes those claimed ahead) and
    /// delivers them one by one; waits for new ones when the queue is
    /// empty. While a full batch is delivered the next one is claimed: on
    /// a backlog the journal's work overlaps the receiver's instead of
    /// adding to it.
    async fn deliver_batch(
        &self,
        receiver: &mut Option<Receiver>,
        lease: &mut Lease,
        ahead: &mut Option<ClaimAhead>,
        shutdown: &CancellationToken,
    ) -> Result<(), Pause> {
        let claimed = match ahead.take() {
            Some(claim) => claim.await,
            None => self.journal.claim(self.route.name.as_str(), CLAIM).await,
        };
        let batch = match claimed {
            Ok(batch) => batch,
            Err(e) => {
                warn!("journal unavailable, delivery waits: {e}");
                return lease.idle(&self.wake, shutdown, POLL).await;
            }
        };
        if batch.is_empty() {
            return lease.idle(&self.wake, shutdown, POLL).await;
        }
        // A full batch means a backlog: claim the next one ahead. A short
        // one emptied the queue; claiming again at once would only take
        // the few messages arriving meanwhile, a journal write for each.
        if batch.len() == CLAIM {
            *ahead = Some(self.claim_ahead().await);
        }
        let mut settled = Settled::default();
        for message in batch {
            let delivered = self
                .deliver(message, receiver, lease, shutdown, &mut settled)
                .await;
            if delivered.is_err() || settled.is_due() {
                self.record(&mut settled);
            }
            delivered?;
        }
        self.record(&mut settled);
        Ok(())
    }

    /// Starts claiming the batch after this one: polled once here, so its
    /// request is queued before any outcome of this batch is recorded. (A
    /// message retried in this batch becomes `failed`, which is
    /// claimable: a claim queued after that record would take it twice.)
    /// `Journal::claim` queues its request on its first poll.
    async fn claim_ahead(&self) -> ClaimAhead {
        let journal = self.journal.clone();
        let route = self.route.name.to_string();
        let mut claim: ClaimAhead = Box::pin(async move { journal.claim(&route, CLAIM).await });
        let mut answered = None;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = claim.as_mut().poll(cx) {
                answered = Some(result);
            }
            Poll::Ready(())
        })
        .await;
        match answered {
            Some(result) => Box::pin(std::future::ready(result)),
            None => claim,
        }
    }

    /// Queues the settled outcomes now (so the next claim sees them) and
    /// lets a task await them.
    fn record(&self, settled: &mut Settled) {
        if settled.outcomes.is_empty() {
            return;
        }
        settled.since = None;
        let recorded = self
            .journal
            .record_many(std::mem::take(&mut settled.outcomes));
        tokio::spawn(async move {
            if let Err(e) = recorded.await {
                warn!("could not record a delivery outcome (the message will be sent again): {e}");
            }
        });
    }

    /// Attempts one message until it is delivered or given up.
    async fn deliver(
        &self,
        mut message: Claimed,
        receiver: &mut Option<Receiver>,
        lease: &mut Lease,
        shutdown: &CancellationToken,
        settled: &mut Settled,
    ) -> Result<(), Pause> {
        let header = Message::parse_with(&message.body, ParseOptions::wire())
            .ok()
            .map(|m| Header::read(&m));
        // An enhanced-mode message asking for no accept ACK gets none: do
        // not wait ack_timeout for it and retry it forever.
        let expect_ack = header.as_ref().is_none_or(accept_ack_expected);
        let body = Bytes::from(std::mem::take(&mut message.body));
        if message.redelivered {
            warn_redelivered(&message);
        }
        let mut attempts = message.attempts;
        let mut not_before = message.next_attempt_at_ms;
        loop {
            if let Some(at) = not_before {
                lease.wait_until_ms(at, shutdown).await?;
            }
            lease.keep().await?;
            let result = self
                .attempt(
                    &body,
                    &message.meta.control_id,
                    expect_ack,
                    receiver,
                    lease,
                    shutdown,
                )
                .await?;
            attempts += 1;
            let outcome = self.judge(&result, attempts);
            self.report(
                &message,
                header.clone(),
                body.len(),
                &result,
                &outcome,
                receiver,
            );
            match self.settle(message.id, outcome, settled) {
                Some(at_ms) => not_before = Some(at_ms),
                None => return Ok(()),
            }
        }
    }

    /// Sets an outcome aside for recording; a retry is recorded at once,
    /// with what was settled before it, and gives when to try again.
    fn settle(&self, id: MessageId, outcome: Outcome, settled: &mut Settled) -> Option<i64> {
        match outcome {
            Outcome::Retry {
                next_attempt_at_ms, ..
            } => {
                // Recorded before the wait, with what was settled before.
                settled.outcomes.push((id, outcome));
                self.record(settled);
                Some(next_attempt_at_ms)
            }
            Outcome::Delivered { .. } | Outcome::Dead { .. } => {
                settled.push(id, outcome);
                None
            }
        }
    }

    /// Sends the message and reads its ACK, opening the connection first
    /// when needed. A failed attempt drops the connection: after a
    /// timeout or a stray ACK the stream can no longer be trusted.
    async fn attempt(
        &self,
        body: &Bytes,
        control_id: &str,
        expect_ack: bool,
        receiver: &mut Option<Receiver>,
        lease: &mut Lease,
        shutdown: &CancellationToken,
    ) -> Result<Attempt, Pause> {
        // No new message goes out once the gateway stops.
        if shutdown.is_cancelled() {
            return Err(Pause::Shutdown);
        }
        if receiver.is_none() {
            match self.connect().await {
                Ok(r) => *receiver = Some(r),
                Err(reason) => return Ok(Attempt::Failed(reason.to_string())),
            }
        }
        let Some(open) = receiver.as_mut() else {
            return Ok(Attempt::Failed("no connection".into()));
        };
        let timeout = self.ack_timeout();
        let deadline = Instant::now() + timeout;
        let attempt = {
            let exchange = exchange(open, body.clone(), control_id, expect_ack);
            tokio::pin!(exchange);
            // The lease is renewed while a slow receiver thinks: an
            // ack_timeout longer than the lease must not let another node
            // take the route mid-attempt.
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        // The message may already be with the receiver:
                        // its ACK, if it comes soon, settles it now
                        // rather than by a second delivery after restart.
                        let grace = deadline.min(Instant::now() + SHUTDOWN_ACK_GRACE);
                        match tokio::time::timeout_at(grace, &mut exchange).await {
                            Ok(attempt) => break attempt,
                            Err(_) => return Err(Pause::Shutdown),
                        }
                    }
                    attempt = &mut exchange => break attempt,
                    () = tokio::time::sleep_until(deadline) => {
                        break Attempt::Failed(format!("no ACK within {}s", timeout.as_secs_f64()));
                    }
                    () = tokio::time::sleep_until(lease.renew_at()) => lease.keep().await?,
                }
            }
        };
        match &attempt {
            // A late answer to this one (an application ACK) is skipped.
            Attempt::Accepted { .. } | Attempt::Sent => {
                open.last_accepted = Some(control_id.to_string())
            }
            Attempt::Failed(_) => *receiver = None,
            Attempt::Refused { .. } => {}
        }
        Ok(attempt)
    }

    async fn connect(&self) -> Result<Receiver, ReceiverError> {
        let state = self.route.current();
        match open_forward(&state.spec, state.client.as_ref()).await {
            Ok((stream, handshake)) => {
                if let Some(started) = handshake {
                    observe_handshake(
                        &self.route.metrics,
                        self.route.name.as_str(),
                        Side::Forward,
                        started,
                    );
                }
                let addr = stream.peer_addr().map_err(ReceiverError::Address)?;
                let codec = MllpCodec::new(self.max_frame());
                Ok(Receiver {
                    framed: Framed::new(stream, codec),
                    addr,
                    last_accepted: None,
                })
            }
            Err(ForwardError::Unavailable(reason)) => Err(ReceiverError::Unavailable(reason)),
            Err(ForwardError::Tls(refusal)) => {
                let route = self.route.name.as_str();
                self.route
                    .metrics
                    .refused(route, Side::Forward, refusal.reason.as_str());
                Err(ReceiverError::Tls(refusal))
            }
        }
    }

    /// The journal outcome of an attempt.
    fn judge(&self, attempt: &Attempt, attempts: u32) -> Outcome {
        let now = unix_ms(SystemTime::now());
        let retry = |error: String, ack_code: Option<AckCode>| Outcome::Retry {
            error,
            ack_code: ack_code.map(|c| c.as_str().to_string()),
            next_attempt_at_ms: now + self.policy.backoff(attempts).as_millis() as i64,
        };
        match attempt {
            Attempt::Accepted { code, .. } => Outcome::Delivered {
                ack_code: code.as_str().to_string(),
                at_ms: now,
            },
            Attempt::Refused {
                code: Some(AckCode::AE),
                ..
            } if attempts > self.policy.ae_retries => Outcome::Dead {
                error: format!("AE from the receiver after {attempts} attempts"),
                ack_code: Some("AE".into()),
                at_ms: now,
            },
            Attempt::Refused { code, .. } => retry(
                format!(
                    "receiver answered {}",
                    code.map_or("an ACK without a valid MSA-1", |c| c.as_str())
                ),
                *code,
            ),
            Attempt::Failed(reason) => retry(reason.clone(), None),
            Attempt::Sent => Outcome::Delivered {
                ack_code: NO_ACK_DUE.to_string(),
                at_ms: now,
            },
        }
    }

    /// Logs, counts and publishes one attempt (metadata only).
    fn report(
        &self,
        message: &Claimed,
        header: Option<Header>,
        size: usize,
        attempt: &Attempt,
        outcome: &Outcome,
        receiver: &Option<Receiver>,
    ) {
        let counters = &self.route.counters;
        counters.attempts[log_outcome(message, outcome)].inc();
        if let Some(latency) = attempt.roundtrip() {
            counters.roundtrip.observe(latency.as_secs_f64());
        }
        let settled = !matches!(outcome, Outcome::Retry { .. });
        let outcome = attempt.message_outcome();
        counters.message(&outcome);
        self.observe(header.as_ref(), &outcome, settled);
        let remote = receiver
            .as_ref()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |r| r.addr);
        self.route.events.publish(MessageEvent {
            at: SystemTime::now(),
            route: self.route.name.clone(),
            remote,
            peer_app: None,
            header,
            size,
            outcome,
            origin: Origin::Delivery {
                node: self.node.clone(),
            },
        });
    }

    /// Counts one delivery attempt among the route's flows, leaving the
    /// journal for the receiver: the attempt that `settled` the message
    /// (delivered, or given up) counts the message once, under `out`;
    /// an attempt to be retried counts under `retry`, an attempt and not
    /// a message, so a receiver down for a while adds no messages.
    fn observe(&self, header: Option<&Header>, outcome: &MessageOutcome, settled: bool) {
        if !self.route.observer.enabled() {
            return;
        }
        let state = self.route.current();
        let seen = Seen {
            route: self.route.name.as_str(),
            direction: if settled { OUT } else { RETRY },
            ends: FlowEnds::of(&state.spec),
            application: "",
            source: Party::default(),
            target: Party::default(),
            message_type: "",
        };
        let observer = &self.route.observer;
        observer.message(&seen, header, outcome.label(), SystemTime::now());
    }

    fn ack_timeout(&self) -> Duration {
        match &self.route.current().spec.kind {
            RouteKind::Mllp(settings) => settings.ack_timeout,
            RouteKind::Tcp | RouteKind::Http(_) => Duration::from_secs(30),
        }
    }

    fn max_frame(&self) -> usize {
        match &self.route.current().spec.kind {
            RouteKind::Mllp(settings) => settings.max_frame,
            RouteKind::Tcp | RouteKind::Http(_) => 16 * 1024 * 1024,
        }
    }
}

/// Logs an attempt that failed or gave the message up; gives the index of
/// its `attempts` counter (delivered, retried, given up).
fn log_outcome(message: &Claimed, outcome: &Outcome) -> usize {
    let (id, control_id) = (message.id, &message.meta.control_id);
    match outcome {
        Outcome::Delivered { .. } => 0,
        Outcome::Retry {
            error,
            next_attempt_at_ms,
            ..
        } => {
            let retry_in_s = (next_attempt_at_ms - unix_ms(SystemTime::now())) as f64 / 1e3;
            warn!(%id, %control_id, retry_in_s, "delivery attempt failed: {error}");
            1
        }
        Outcome::Dead { error, .. } => {
            warn!(%id, %control_id, "message given up: {error}; once fixed, replay it with `guichet journal replay {id}`");
            2
        }
    }
}

fn warn_redelivered(message: &Claimed) {
    warn!(
        id = %message.id,
        control_id = %message.meta.control_id,
        "redelivering a message that may already have reached the receiver (in flight at a crash, a lease takeover or replayed)"
    );
}

impl Attempt {
    /// How long the receiver took to answer with a valid code: the
    /// round trip the histogram times.
    fn roundtrip(&self) -> Option<Duration> {
        match self {
            Attempt::Accepted { latency, .. }
            | Attempt::Refused {
                code: Some(_),
                latency,
            } => Some(*latency),
            Attempt::Refused { code: None, .. } | Attempt::Failed(_) | Attempt::Sent => None,
        }
    }

    /// What the attempt means for the message counters and events.
    fn message_outcome(&self) -> MessageOutcome {
        match self {
            Attempt::Accepted { code, latency }
            | Attempt::Refused {
                code: Some(code),
                latency,
            } => MessageOutcome::Acknowledged {
                code: Some(*code),
                id_matches: true,
                latency: *latency,
            },
            Attempt::Refused {
                code: None,
                latency,
            } => MessageOutcome::Acknowledged {
                code: None,
                id_matches: true,
                latency: *latency,
            },
            Attempt::Failed(_) => MessageOutcome::Unacknowledged,
            Attempt::Sent => MessageOutcome::NoAckDue,
        }
    }
}

impl Settled {
    fn push(&mut self, id: MessageId, outcome: Outcome) {
        self.since.get_or_insert_with(Instant::now);
        self.outcomes.push((id, outcome));
    }

    fn is_due(&self) -> bool {
        self.since
            .is_some_and(|since| since.elapsed() >= RECORD_DELAY)
    }
}

/// The journal's ack code of a message delivered without an ACK due.
const NO_ACK_DUE: &str = "none";

/// Sends one message and reads until its ACK. A second ACK for the
/// message accepted just before (enhanced mode: an application ACK after
/// the commit ACK) is skipped; any other MSA-2 fails the attempt.
async fn exchange(
    receiver: &mut Receiver,
    body: Bytes,
    control_id: &str,
    expect_ack: bool,
) -> Attempt {
    let sent = Instant::now();
    if let Err(e) = receiver.framed.send(body).await {
        return Attempt::Failed(format!("send failed: {e}"));
    }
    if !expect_ack {
        return Attempt::Sent;
    }
    loop {
        let frame = match receiver.framed.next().await {
            None => {
                return Attempt::Failed("the receiver closed the connection before its ACK".into())
            }
            Some(Err(e)) => return Attempt::Failed(format!("reading the ACK failed: {e}")),
            Some(Ok(frame)) => frame,
        };
        let latency = sent.elapsed();
        let summary = Message::parse_with(&frame.payload, ParseOptions::wire())
            .ok()
            .and_then(|m| AckSummary::read(&m));
        let Some(summary) = summary else {
            return Attempt::Failed("the receiver's answer is not an ACK (no MSA)".into());
        };
        if summary.acknowledged_id != control_id {
            if receiver.last_accepted.as_deref() == Some(summary.acknowledged_id.as_str()) {
                continue;
            }
            return Attempt::Failed(
                "the receiver's ACK does not acknowledge this message (MSA-2 differs from MSH-10)"
                    .into(),
            );
        }
        return match summary.code {
            Some(code @ (AckCode::AA | AckCode::CA)) => Attempt::Accepted { code, latency },
            code => Attempt::Refused { code, latency },
        };
    }
}
