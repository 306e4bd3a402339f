//! The writer: lanes, each a task and a connection, that apply writes in
//! call order, grouping whatever is waiting into one transaction and one
//! commit (group commit). Ingests take one of the ingest lanes (one by
//! default: `[journal] ingest_connections`); everything else (claims,
//! outcomes, leases, replays) takes the other, so the delivery worker's
//! bookkeeping and the senders' ingests do not
//! wait for each other's transactions, and each lane's groups hold one
//! kind of work (an ingest group waits for its WAL flush, a bookkeeping
//! group of claims and outcomes does not). Several ingest lanes let one
//! group's insert overlap another's WAL flush: their commits share
//! flushes in the server instead of waiting for each other.
//!
//! Requests enter a lane's bounded queue when the [`crate::Store`] method
//! is called, not when its future is awaited, so a `record` then a
//! `claim` apply in that order, as do two ingests of one sender
//! connection (which keep to one lane while either is unanswered: see
//! [`super::lanes`]). Ingests of different senders called at the same
//! time may be stored in either order. Between the lanes, a request other
//! than an ingest is applied only after every ingest queued before it (a
//! `claim` sees the messages ingested before it was called); an ingest
//! does not wait for the bookkeeping queued before it, which never
//! changes what an ingest stores or answers. A group's
//! statements are pipelined, and a run of ingests is stored by one
//! statement (see [`super::group`]): a group of ingests costs one or two
//! round trips and one WAL flush.
//!
//! A transaction that fails answers every request in it with an error,
//! never with success. If the failure came from one request's data, the
//! group is replayed one request per transaction so that only that
//! request fails. If the connection is lost, the writer reconnects on the
//! next request, pacing attempts with [`Backoff`]; meanwhile requests
//! fail at once with [`JournalError::Unavailable`] (the gateway answers
//! the sender with an error ACK, and the sender retries).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::Client;

use super::cursor::Cursors;
use super::group::{self, Answers, Failure};
use super::lanes::{self, Lanes, Mark, Ticket};
use super::ops::Statements;
use super::request::{Done, Op, Request};
use super::session::{Backoff, ConnectError, Target};
use crate::{BoxFuture, JournalError};

/// Requests waiting for a lane beyond this are refused (Unavailable):
/// the database is not keeping up, better an error ACK than unbounded memory.
const QUEUE_CAPACITY: usize = 8192;

/// A group stops growing past any of these: requests, messages, body
/// bytes (one statement carries a run's bodies).
const MAX_GROUP_REQUESTS: usize = 512;
const MAX_GROUP_MESSAGES: usize = 2048;
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Opening a session (connect, settings, prepared statements) that takes
/// longer than this counts as a failed attempt.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A group that takes longer than this is abandoned with its connection
/// (its outcome unknown, its requests answered Unavailable).
const GROUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The store's side of the writer: queues requests on their lane.
pub(super) struct Handle {
    ingests: Vec<mpsc::Sender<Request>>,
    others: mpsc::Sender<Request>,
    /// Chooses the ingest lanes and numbers ingests (its lock is held
    /// while queueing, so that each queue is in that numbering's order).
    lanes: Arc<Lanes>,
}

impl Handle {
    /// Queues `op` now and returns the wait for its answer, which
    /// `extract` turns into the method's result.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        op: Op,
        extract: fn(Done) -> Option<T>,
    ) -> BoxFuture<Result<T, JournalError>> {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue(op, reply).map_err(|e| match e {
            mpsc::error::TrySendError::Full(request) => request.op.failure(format!(
                "{QUEUE_CAPACITY} requests already wait for the database"
            )),
            mpsc::error::TrySendError::Closed(request) => {
                request.op.failure("the journal writer stopped".into())
            }
        });
        Box::pin(async move {
            queued?;
            let done = answer
                .await
                .map_err(|_| JournalError::Unavailable("the journal writer stopped".into()))??;
            extract(done).ok_or_else(|| {
                JournalError::Query("the journal writer answered another request".into())
            })
        })
    }
}

impl Handle {
    /// Puts a request in its lane's queue, numbered after the ingests
    /// queued before it.
    fn queue(
        &self,
        op: Op,
        reply: oneshot::Sender<Result<Done, JournalError>>,
    ) -> Result<(), mpsc::error::TrySendError<Request>> {
        let sender = matches!(op, Op::Ingest(_)).then(|| lanes::sender_of(&op));
        let request = |after_ingests| Request {
            op,
            reply,
            after_ingests,
        };
        match sender {
            Some(sender) => self.lanes.queue_ingest(sender, |lane, number| {
                self.ingests[lane].try_send(request(number))
            }),
            _ => self
                .lanes
                .queue_other(|after| self.others.try_send(request(after))),
        }
    }
}

/// The lanes' connections (see the module's documentation).
pub(super) struct Sessions {
    /// One per ingest lane.
    pub(super) ingest: Vec<Session>,
    pub(super) other: Session,
}

/// Starts every lane. They stop when the [`Handle`] is dropped.
pub(super) fn spawn(target: Target, sessions: Sessions) -> Handle {
    let (lanes, applied_ingests) = Lanes::new(sessions.ingest.len());
    let lanes = Arc::new(lanes);
    let (others, other_requests) = mpsc::channel(QUEUE_CAPACITY);
    let lane = |role, requests, session, order| Writer {
        target: target.clone(),
        role,
        requests,
        session: Some(session),
        backoff: Backoff::new(),
        down_reason: String::new(),
        cursors: Cursors::default(),
        lanes: lanes.clone(),
        order,
    };
    let mut ingests = Vec::new();
    for (number, session) in sessions.ingest.into_iter().enumerate() {
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        ingests.push(queue);
        let role = ingest_role(number);
        tokio::spawn(lane(role, requests, session, Order::Ingests(number)).run());
    }
    let order = Order::Follows(applied_ingests);
    tokio::spawn(lane("writer".into(), other_requests, sessions.other, order).run());
    Handle {
        ingests,
        others,
        lanes,
    }
}

/// The connection name of ingest lane `number`.
pub(super) fn ingest_role(number: usize) -> String {
    format!("ingest-{}", number + 1)
}

/// How a lane keeps the order between the lanes.
enum Order {
    /// Ingest lane `n`: tells [`Lanes`] what it started and answered.
    Ingests(usize),
    /// The other lane: waits for the ingests queued before a group.
    Follows(watch::Receiver<u64>),
}

/// The writer's connection and its prepared statements.
pub(super) struct Session {
    client: Client,
    statements: Statements,
}

impl Session {
    /// Readies `client` for writing. Ingest's durability rests on
    /// `synchronous_commit`: a database or role that turned it off gets it
    /// back on for this session (stronger settings are kept). A node cut
    /// off in the middle of a transaction must not hold its locks (lease
    /// rows, duplicate keys) for long: the server ends such a transaction
    /// after a minute of silence.
    pub(super) async fn new(client: Client) -> Result<Session, ConnectError> {
        client
            .batch_execute(
                "SELECT set_config('synchronous_commit', 'on', false)
                 WHERE current_setting('synchronous_commit') = 'off';
                 SET idle_in_transaction_session_timeout = '60s'",
            )
            .await
            .map_err(ConnectError::Setup)?;
        let statements = Statements::prepare(&client)
            .await
            .map_err(ConnectError::Setup)?;
        Ok(Session { client, statements })
    }

    async fn open(target: &Target, role: &str) -> Result<Session, ConnectError> {
        Session::new(target.connect(role).await?).await
    }
}

struct Writer {
    target: Target,
    /// The connection's name, `guichet-journal-<role>`.
    role: String,
    requests: mpsc::Receiver<Request>,
    session: Option<Session>,
    backoff: Backoff,
    /// Why the last connection attempt failed, for fast failures.
    down_reason: String,
    /// Where each route's next claim starts.
    cursors: Cursors,
    lanes: Arc<Lanes>,
    order: Order,
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.requests.recv().await {
            let group = self.gather(first);
            let answered = group.len();
            self.follow_ingests(&group).await;
            let tickets = self.start(&group);
            self.serve(group).await;
            if let Order::Ingests(lane) = self.order {
                self.lanes.finished(lane, &tickets);
            }
            if answered > 1 {
                let_answered_senders_queue().await;
            }
        }
    }

    /// On the other lane: waits until the ingests queued before `group`
    /// have been answered (stored or refused).
    async fn follow_ingests(&mut self, group: &[Request]) {
        let Order::Follows(applied) = &mut self.order else {
            return;
        };
        let after = group.iter().map(|r| r.after_ingests).max().unwrap_or(0);
        // A closed lane answered (refused) everything: nothing to wait for.
        let _ = applied.wait_for(|count| *count >= after).await;
    }

    /// On an ingest lane: tells [`Lanes`] that `group` starts, and
    /// returns what to tell it once the group is answered.
    fn start(&self, group: &[Request]) -> Vec<Ticket> {
        let Order::Ingests(lane) = self.order else {
            return Vec::new();
        };
        self.lanes.started(lane);
        group
            .iter()
            .map(|r| Ticket::of(r.after_ingests, &r.op))
            .collect()
    }

    /// Sets where `group`'s claims start; on the other lane, also marks
    /// where the ingest lanes stand as they are sent.
    fn aim(&self, group: &mut [Request]) -> Option<Mark> {
        self.cursors.aim(group);
        match self.order {
            Order::Follows(_) => Some(self.lanes.mark()),
            Order::Ingests(_) => None,
        }
    }

    /// `first` and whatever else is already waiting, within the limits.
    fn gather(&mut self, first: Request) -> Vec<Request> {
        let (mut messages, mut bytes) = first.op.weight();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_REQUESTS
            && messages < MAX_GROUP_MESSAGES
            && bytes < MAX_GROUP_BYTES
        {
            let Ok(request) = self.requests.try_recv() else {
                break;
            };
            let (more_messages, more_bytes) = request.op.weight();
            messages += more_messages;
            bytes += more_bytes;
            group.push(request);
        }
        group
    }

    async fn serve(&mut self, mut group: Vec<Request>) {
        if !self.connected().await {
            let reason = format!(
                "journal database {} unreachable: {}",
                self.target.location(),
                self.down_reason
            );
            group.into_iter().for_each(|request| request.fail(&reason));
            return;
        }
        let mark = self.aim(&mut group);
        match self.attempt(&group).await {
            Ok(results) => self.answer_all(group, results, mark),
            Err(Failure::Aborted(reason)) if group.len() > 1 => {
                tracing::debug!(error = %reason, requests = group.len(), "journal group failed; retrying one by one");
                self.serve_one_by_one(group).await;
            }
            Err(Failure::Aborted(reason)) => {
                group.into_iter().for_each(|request| request.fail(&reason))
            }
            Err(Failure::Lost(reason)) => self.lose(group, &reason),
        }
    }

    /// After a failed group: each request in its own transaction, so the
    /// one that failed it fails alone.
    async fn serve_one_by_one(&mut self, group: Vec<Request>) {
        let mut rest = group.into_iter();
        while let Some(request) = rest.next() {
            let mut single = vec![request];
            let mark = self.aim(&mut single);
            match self.attempt(&single).await {
                Ok(results) => self.answer_all(single, results, mark),
                Err(Failure::Aborted(reason)) => single.into_iter().for_each(|r| r.fail(&reason)),
                Err(Failure::Lost(reason)) => {
                    return self.lose(single.into_iter().chain(rest).collect(), &reason)
                }
            }
        }
    }

    /// Drops the connection and fails `group`; the next request reconnects.
    fn lose(&mut self, group: Vec<Request>, reason: &str) {
        tracing::warn!(database = self.target.location(), error = %reason, "journal database connection lost");
        self.session = None;
        let reason = format!("journal database connection lost: {reason}");
        group.into_iter().for_each(|request| request.fail(&reason));
    }

    /// Whether a session is up, after one connection attempt if none is
    /// and the backoff allows one.
    async fn connected(&mut self) -> bool {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.session = None;
        }
        if self.session.is_some() {
            return true;
        }
        if !self.backoff.ready() {
            return false;
        }
        let opened =
            tokio::time::timeout(SESSION_TIMEOUT, Session::open(&self.target, &self.role)).await;
        match opened.unwrap_or(Err(ConnectError::NoSession(SESSION_TIMEOUT))) {
            Ok(session) => {
                tracing::info!(
                    database = self.target.location(),
                    "journal database connection restored"
                );
                self.backoff.succeeded();
                self.session = Some(session);
                true
            }
            Err(reason) => {
                self.backoff.failed();
                self.down_reason = reason.to_string();
                false
            }
        }
    }

    /// One transaction for `group`, bounded in time. A failed one may
    /// have left claims undone (or, lost, done): cursors start over.
    async fn attempt(&mut self, group: &[Request]) -> Result<Answers, Failure> {
        let Some(session) = &self.session else {
            return Err(Failure::Lost("not connected".into()));
        };
        let transaction = group::transaction(&session.client, &session.statements, group);
        let result = match tokio::time::timeout(GROUP_TIMEOUT, transaction).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Lost(format!("no answer within {GROUP_TIMEOUT:?}"))),
        };
        if result.is_err() {
            self.cursors.clear();
        }
        result
    }

    /// Answers a committed group, after noting the ids it answered and
    /// moving the cursors past its claims (no further than a message of
    /// this node may still commit: see [`Lanes::floor_since`]).
    fn answer_all(&mut self, group: Vec<Request>, results: Answers, mark: Option<Mark>) {
        self.lanes.saw_answers(&results);
        if let Some(mark) = mark {
            let floor = self.lanes.floor_since(mark);
            self.cursors.advance(&group, &results, floor);
        }
        for (request, result) in group.into_iter().zip(results) {
            request.answer(result);
        }
    }
}

/// Gives the tasks just answered a moment to queue their next request
/// before the next group is gathered. Without it, senders split into
/// cohorts that miss each other's commit by microseconds, and each WAL
/// flush covers half of them (measured: 16 instead of 32 ingests per
/// flush with 32 senders, and nearly half the rate).
async fn let_answered_senders_queue() {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
}
