//! The writer: one task and one connection per node that apply every
//! write in call order, grouping whatever is waiting into one transaction
//! and one commit (group commit).
//!
//! Requests enter a bounded queue when the [`crate::Store`] method is
//! called, not when its future is awaited, so a `record` then a `claim`
//! apply in that order. A group's statements are pipelined (see
//! [`super::pipeline`]); a group of ingests costs about two round trips
//! and one WAL flush.
//!
//! A transaction that fails answers every request in it with an error,
//! never with success. If the failure came from one request's data, the
//! group is replayed one request per transaction so that only that
//! request fails. If the connection is lost, the writer reconnects on the
//! next request, pacing attempts with [`Backoff`]; meanwhile requests
//! fail at once with [`JournalError::Unavailable`] (the gateway answers
//! the sender with an error ACK, and the sender retries).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use super::ops::{self, Statements, Step};
use super::pipeline::join_in_order;
use super::session::{describe, Backoff, Target};
use crate::{BoxFuture, Claimed, Ingested, JournalError, MessageId, NewMessage, Outcome, Replay};

/// Requests waiting for the writer beyond this are refused (Unavailable):
/// the database is not keeping up, better an error ACK than unbounded memory.
const QUEUE_CAPACITY: usize = 8192;

/// At most this many requests, or messages, in one transaction.
const MAX_GROUP_REQUESTS: usize = 512;
const MAX_GROUP_MESSAGES: usize = 2048;

/// A group that takes longer than this is abandoned with its connection
/// (its outcome unknown, its requests answered Unavailable).
const GROUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One write, as queued for the writer.
pub(super) enum Op {
    Ingest(Vec<NewMessage>),
    AcquireLease {
        route: String,
        node: String,
        now_ms: i64,
        ttl_ms: i64,
    },
    ReleaseLease {
        route: String,
        node: String,
    },
    Recover(String),
    Claim {
        route: String,
        limit: usize,
    },
    Record {
        id: MessageId,
        outcome: Outcome,
    },
    Replay(Replay),
    Audit {
        at_ms: i64,
        actor: String,
        action: String,
        id: Option<MessageId>,
    },
    /// Answered once every write queued before it has been applied
    /// (prune runs after it, off the writer).
    Barrier,
}

impl Op {
    /// Its failure, in the caller's terms: an ingest that could not be
    /// made durable, or another query that failed (as on SQLite).
    fn failure(&self, reason: String) -> JournalError {
        match self {
            Op::Ingest(_) => JournalError::Unavailable(reason),
            _ => JournalError::Query(reason),
        }
    }

    /// Losing it in a crash of the database only repeats a delivery (a
    /// lost `record` or `claim`) or a recovery: its commit need not wait
    /// for the WAL flush. Leases stay durable: a lost renewal could let a
    /// second node deliver beside the holder.
    fn can_commit_lazily(&self) -> bool {
        matches!(
            self,
            Op::Record { .. } | Op::Claim { .. } | Op::Recover(_) | Op::Barrier
        )
    }

    fn messages(&self) -> usize {
        match self {
            Op::Ingest(batch) => batch.len(),
            _ => 1,
        }
    }
}

/// What a request produced.
pub(super) enum Done {
    Ingested(Vec<Ingested>),
    Held(bool),
    Count(u64),
    Claimed(Vec<Claimed>),
    Unit,
}

impl Done {
    pub(super) fn ingested(self) -> Option<Vec<Ingested>> {
        match self {
            Done::Ingested(ingested) => Some(ingested),
            _ => None,
        }
    }

    pub(super) fn held(self) -> Option<bool> {
        match self {
            Done::Held(held) => Some(held),
            _ => None,
        }
    }

    pub(super) fn count(self) -> Option<u64> {
        match self {
            Done::Count(count) => Some(count),
            _ => None,
        }
    }

    pub(super) fn claimed(self) -> Option<Vec<Claimed>> {
        match self {
            Done::Claimed(claimed) => Some(claimed),
            _ => None,
        }
    }

    pub(super) fn unit(self) -> Option<()> {
        matches!(self, Done::Unit).then_some(())
    }
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Done, JournalError>>,
}

impl Request {
    fn answer(self, result: Result<Done, JournalError>) {
        // The caller may have stopped waiting: nothing to tell then.
        let _ = self.reply.send(result);
    }

    fn fail(self, reason: &str) {
        let error = self.op.failure(reason.to_string());
        self.answer(Err(error));
    }
}

/// The store's side of the writer: queues requests.
pub(super) struct Handle {
    queue: mpsc::Sender<Request>,
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
        let queued = self
            .queue
            .try_send(Request { op, reply })
            .map_err(|e| match e {
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

/// Starts the writer on `session`'s connection. It stops when the
/// [`Handle`] is dropped.
pub(super) fn spawn(target: Target, session: Session) -> Handle {
    let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
    let writer = Writer {
        target,
        requests,
        session: Some(session),
        backoff: Backoff::new(),
        down_reason: String::new(),
    };
    tokio::spawn(writer.run());
    Handle { queue }
}

/// The writer's connection and its prepared statements.
pub(super) struct Session {
    client: Client,
    statements: Statements,
}

impl Session {
    /// Readies `client` for writing. Ingest's durability rests on
    /// `synchronous_commit`: a database or role that turned it off gets it
    /// back on for this session (stronger settings are kept).
    pub(super) async fn new(client: Client) -> Result<Session, String> {
        client
            .batch_execute(
                "SELECT set_config('synchronous_commit', 'on', false)
                 WHERE current_setting('synchronous_commit') = 'off'",
            )
            .await
            .map_err(|e| describe(&e))?;
        let statements = Statements::prepare(&client)
            .await
            .map_err(|e| describe(&e))?;
        Ok(Session { client, statements })
    }

    async fn open(target: &Target) -> Result<Session, String> {
        Session::new(target.connect("writer").await?).await
    }
}

/// Why a group was not committed.
enum Failure {
    /// The transaction failed and was rolled back; the connection is fine.
    Aborted(String),
    /// The connection is gone (or in an unknown state): the outcome of an
    /// interrupted commit is unknown, so nothing is reported as stored.
    Lost(String),
}

struct Writer {
    target: Target,
    requests: mpsc::Receiver<Request>,
    session: Option<Session>,
    backoff: Backoff,
    /// Why the last connection attempt failed, for fast failures.
    down_reason: String,
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.requests.recv().await {
            let group = self.gather(first);
            self.serve(group).await;
        }
    }

    /// `first` and whatever else is already waiting, within the limits.
    fn gather(&mut self, first: Request) -> Vec<Request> {
        let mut messages = first.op.messages();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_REQUESTS && messages < MAX_GROUP_MESSAGES {
            let Ok(request) = self.requests.try_recv() else {
                break;
            };
            messages += request.op.messages();
            group.push(request);
        }
        group
    }

    async fn serve(&mut self, group: Vec<Request>) {
        if !self.connected().await {
            let reason = format!("journal database unreachable: {}", self.down_reason);
            group.into_iter().for_each(|request| request.fail(&reason));
            return;
        }
        match self.attempt(&group).await {
            Ok(results) => answer_all(group, results),
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
            let single = vec![request];
            match self.attempt(&single).await {
                Ok(results) => answer_all(single, results),
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
        match Session::open(&self.target).await {
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
                self.down_reason = reason;
                false
            }
        }
    }

    /// One transaction for `group`, bounded in time.
    async fn attempt(
        &mut self,
        group: &[Request],
    ) -> Result<Vec<Result<Done, JournalError>>, Failure> {
        let Some(session) = &self.session else {
            return Err(Failure::Lost("not connected".into()));
        };
        match tokio::time::timeout(GROUP_TIMEOUT, transaction(session, group)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Lost(format!("no answer within {GROUP_TIMEOUT:?}"))),
        }
    }
}

fn answer_all(group: Vec<Request>, results: Vec<Result<Done, JournalError>>) {
    for (request, result) in group.into_iter().zip(results) {
        request.answer(result);
    }
}

/// BEGIN, the group's statements and COMMIT: all but the COMMIT sent at
/// once, the COMMIT once every statement has succeeded.
async fn transaction(
    session: &Session,
    group: &[Request],
) -> Result<Vec<Result<Done, JournalError>>, Failure> {
    let client = &session.client;
    let lazy = group.iter().all(|request| request.op.can_commit_lazily());
    let mut steps: Vec<Step<'_>> = vec![Box::pin(begin(client, lazy))];
    steps.extend(ops::dedup_locks(
        client,
        &session.statements,
        group.iter().map(|r| &r.op),
    ));
    let preamble = steps.len();
    steps.extend(
        group
            .iter()
            .map(|request| ops::run(client, &session.statements, &request.op)),
    );
    let mut results = Vec::with_capacity(steps.len());
    for result in join_in_order(steps).await {
        match result {
            Ok(answer) => results.push(answer),
            Err(e) => return Err(abort(client, &e).await),
        }
    }
    if let Err(e) = client.batch_execute("COMMIT").await {
        return Err(abort(client, &e).await);
    }
    Ok(results.split_off(preamble))
}

async fn begin(
    client: &Client,
    lazy: bool,
) -> Result<Result<Done, JournalError>, tokio_postgres::Error> {
    let sql = match lazy {
        true => "BEGIN; SET LOCAL synchronous_commit = off",
        false => "BEGIN",
    };
    client.batch_execute(sql).await?;
    Ok(Ok(Done::Unit))
}

/// Rolls back after `error`; a connection that cannot is treated as lost.
async fn abort(client: &Client, error: &tokio_postgres::Error) -> Failure {
    let reason = describe(error);
    if client.is_closed() {
        return Failure::Lost(reason);
    }
    match client.batch_execute("ROLLBACK").await {
        Ok(()) => Failure::Aborted(reason),
        Err(e) => Failure::Lost(format!("{reason}; then {}", describe(&e))),
    }
}
