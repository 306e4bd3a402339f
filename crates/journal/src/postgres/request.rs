//! The writer's requests: what a [`crate::Store`] method queues, and what
//! the writer answers.

use tokio::sync::oneshot;

use crate::{Claimed, Ingested, JournalError, MessageId, NewMessage, Outcome, Replay};

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
        /// Only messages after this one: set by the writer from the
        /// route's cursor (see [`super::cursor`]); `None` from the start.
        after: Option<MessageId>,
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
    pub(super) fn failure(&self, reason: String) -> JournalError {
        match self {
            Op::Ingest(_) => JournalError::Unavailable(reason),
            _ => JournalError::Query(reason),
        }
    }

    /// Losing it in a crash of the database only repeats a delivery (a
    /// lost `record` or `claim`) or a recovery: its commit need not wait
    /// for the WAL flush. Leases stay durable: a lost renewal could let a
    /// second node deliver beside the holder.
    pub(super) fn can_commit_lazily(&self) -> bool {
        matches!(
            self,
            Op::Record { .. } | Op::Claim { .. } | Op::Recover(_) | Op::Barrier
        )
    }

    /// Its share of a group's limits: messages, and body bytes.
    pub(super) fn weight(&self) -> (usize, usize) {
        match self {
            Op::Ingest(batch) => (batch.len(), batch.iter().map(|m| m.body.len()).sum()),
            _ => (1, 0),
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

/// A queued write and where its answer goes.
pub(super) struct Request {
    pub(super) op: Op,
    /// Ingests queued before this request (see [`super::writer`]): it is
    /// applied only once all of them have been.
    pub(super) after_ingests: u64,
    pub(super) reply: oneshot::Sender<Result<Done, JournalError>>,
}

impl Request {
    pub(super) fn answer(self, result: Result<Done, JournalError>) {
        // The caller may have stopped waiting: nothing to tell then.
        let _ = self.reply.send(result);
    }

    pub(super) fn fail(self, reason: &str) {
        let error = self.op.failure(reason.to_string());
        self.answer(Err(error));
    }
}
