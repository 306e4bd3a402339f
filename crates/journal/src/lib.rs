//! The journal: where store-and-forward routes keep each message from the
//! moment guichet acknowledges it until the receiver has.
//!
//! One [`Store`] trait, two backends with the same behaviour and the same
//! test suite: SQLite (one file, the embedded default) and PostgreSQL
//! (several guichet nodes sharing queues). [`Journal`] wraps either and
//! seals stored bodies when a body key is configured.
//!
//! The promise callers build on:
//! - [`Journal::ingest`] returns only once its messages are durably
//!   committed (fsync on SQLite, `synchronous_commit` on PostgreSQL), so an
//!   ACK sent after it never covers a message that a crash could lose.
//!   Concurrent calls share commits (group commit).
//! - Each route's queue is delivered in `MessageId` order by one holder of
//!   the route's lease at a time ([`Journal::acquire_lease`]).
//! - Operations issued by one process take effect in the order they were
//!   called: a [`Journal::record`] followed by a [`Journal::claim`] sees the
//!   recorded outcome, even if the record's future was not awaited yet.
//!   (On PostgreSQL an ingest may take effect before bookkeeping called
//!   earlier, which never changes what it stores.)
//!
//! Nothing here logs a body or any field beyond the MSH metadata.

#![forbid(unsafe_code)]

mod error;
mod flows;
mod journal;
mod model;
mod postgres;
mod seal;
mod sqlite;

pub use error::JournalError;
pub use flows::{FlowCount, FlowKey, FlowTotal};
pub use journal::{open, IntegrityCheck, Journal, OpenOptions, StoreSpec};
pub use model::{
    Claimed, Filter, Ingested, MessageId, MessageRecord, Meta, NewMessage, Outcome, PruneReport,
    Replay, RouteStats, State,
};
pub use postgres::{PgSslMode, PgTransport};
pub use seal::{BodyKey, SealError};

use std::future::Future;
use std::pin::Pin;

/// What [`Store`] methods return: a request already queued, to await.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What both backends implement. Bodies arrive already sealed (or not) by
/// [`Journal`]; a backend stores and returns them as opaque bytes.
///
/// Every method that writes must take effect in call order relative to the
/// other writing methods of the same `Store` value: implementations enqueue
/// the request before returning the future. (An ingest may overtake
/// bookkeeping queued before it: nothing it stores depends on it.)
pub trait Store: Send + Sync + 'static {
    /// Stores a batch atomically, in order, and returns once it is durable.
    /// A message whose `(route, dedup_key, control_id)` was already stored
    /// at or after its `dedup_since_ms` is not stored again:
    /// [`Ingested::Duplicate`] names the earlier one. Duplicates inside the
    /// batch count too.
    fn ingest(&self, batch: Vec<NewMessage>) -> BoxFuture<Result<Vec<Ingested>, JournalError>>;

    /// Takes or renews `route`'s delivery lease for `node` until
    /// `now_ms + ttl_ms`. True when `node` holds it afterwards (it was free,
    /// expired, or already `node`'s).
    fn acquire_lease(
        &self,
        route: &str,
        node: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> BoxFuture<Result<bool, JournalError>>;

    /// Gives the lease up (clean shutdown), if `node` holds it.
    fn release_lease(&self, route: &str, node: &str) -> BoxFuture<Result<(), JournalError>>;

    /// Puts `route`'s messages left `in_flight` by a previous holder (a
    /// crash, a lost lease) back in line, flagged as possible redeliveries.
    /// Returns how many. Called by a new lease holder before its first claim.
    fn recover(&self, route: &str) -> BoxFuture<Result<u64, JournalError>>;

    /// Moves up to `limit` of `route`'s next messages (lowest ids among
    /// `queued` and `failed`) to `in_flight` and returns them in order.
    fn claim(&self, route: &str, limit: usize) -> BoxFuture<Result<Vec<Claimed>, JournalError>>;

    /// Records one delivery attempt's outcome (and counts the attempt).
    /// Needs no fsync: a lost record means a redelivery, never a loss.
    fn record(&self, id: MessageId, outcome: Outcome) -> BoxFuture<Result<(), JournalError>>;

    /// Records several outcomes as [`Store::record`] does, in one request.
    /// An unknown id changes nothing and the others are recorded; the
    /// first unknown one is answered as [`JournalError::NotFound`].
    fn record_many(
        &self,
        outcomes: Vec<(MessageId, Outcome)>,
    ) -> BoxFuture<Result<(), JournalError>> {
        let queued: Vec<_> = outcomes
            .into_iter()
            .map(|(id, outcome)| self.record(id, outcome))
            .collect();
        Box::pin(async move {
            let mut first = Ok(());
            for recorded in queued {
                let result = recorded.await;
                if first.is_ok() {
                    first = result;
                }
            }
            first
        })
    }

    /// Puts messages back in line (`queued`, attempts reset, `redelivered`
    /// set). Returns how many. A message whose body was pruned cannot be
    /// replayed ([`JournalError::NoBody`] for [`Replay::One`]; skipped and
    /// not counted for [`Replay::Route`]).
    fn replay(&self, which: Replay) -> BoxFuture<Result<u64, JournalError>>;

    /// Metadata of the messages matching `filter`, newest first.
    fn list(&self, filter: Filter) -> BoxFuture<Result<Vec<MessageRecord>, JournalError>>;

    /// One message's metadata.
    fn get(&self, id: MessageId) -> BoxFuture<Result<MessageRecord, JournalError>>;

    /// One message's stored body, as stored (sealed or not).
    fn body(&self, id: MessageId) -> BoxFuture<Result<Vec<u8>, JournalError>>;

    /// Records who did what to which message (e.g. printed a body).
    fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        action: &str,
        id: Option<MessageId>,
    ) -> BoxFuture<Result<(), JournalError>>;

    /// Deletes bodies of messages delivered (or dead) before
    /// `bodies_before_ms`, and whole records received before
    /// `records_before_ms` that are delivered or dead. Works in small
    /// transactions so ingest is never blocked for long. Queued, in-flight
    /// and failed messages are never pruned.
    fn prune(
        &self,
        bodies_before_ms: i64,
        records_before_ms: i64,
    ) -> BoxFuture<Result<PruneReport, JournalError>>;

    /// Depth and age of every route's queue.
    fn stats(&self) -> BoxFuture<Result<Vec<RouteStats>, JournalError>>;

    /// Adds observed counts to the stored aggregates, atomically: counts
    /// add up, first and last seen widen. Needs no fsync: a lost flush
    /// loses a few seconds of figures, never a message.
    fn add_flows(&self, counts: Vec<FlowCount>) -> BoxFuture<Result<(), JournalError>>;

    /// Every stored aggregate, by key.
    fn flows(&self) -> BoxFuture<Result<Vec<FlowTotal>, JournalError>>;

    /// Write transactions committed by this store value so far: shows
    /// that concurrent writes share commits (group commit). 0 when the
    /// backend does not count them.
    #[doc(hidden)]
    fn commits(&self) -> u64 {
        0
    }
}
