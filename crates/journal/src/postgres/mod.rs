//! PostgreSQL backend: several guichet nodes share one database, hence
//! one set of queues. Every node ingests; each route's queue is delivered
//! by the node holding its lease.
//!
//! Each node keeps three connections or more: the writer's lanes (ingests
//! on one, or on `ingest_connections`; every other write on one; each in
//! call order and grouped into shared commits: see [`writer`], [`lanes`]
//! and [`group`]) and the reader's (listings, bodies, stats, and pruning:
//! see [`reader`]).
//! Ingest commits with the database's `synchronous_commit` (forced `on`
//! if it is `off`); groups of bookkeeping only (claims, outcomes,
//! recovery) commit without waiting for the WAL flush, since losing them
//! means a redelivery, never a loss.
//!
//! Connections carry message bodies and the password: off loopback they
//! should use TLS, set with libpq's `sslmode` (`verify-full` recommended),
//! `sslrootcert`, `sslcert` and `sslkey` in the URL (see [`tls`]). A URL
//! without `sslmode` is plain TCP, and start-up warns when that, or an
//! unauthenticated `require`, reaches another machine.
//!
//! Delivery order: ids come from one identity sequence, and a route's
//! queue is claimed in id order. Two nodes ingesting on one route may
//! commit ids out of order (node A takes id 7, node B takes 8 and commits
//! first), so 8 may be delivered before 7; so may one node's ingest
//! lanes when there are several. Per sender connection, order holds: its
//! ingests keep to one lane while any is unanswered, and a sender that
//! waits for the ACK sends its next message after the commit, so its next
//! id is both larger and later; a claim's cursor never passes an id this
//! node may still commit (see [`cursor`]), so the earlier one is claimed
//! first.
//!
//! Leases compare times given by the callers (`now_ms`), as the SQLite
//! backend does, rather than the database's `now()`: both backends keep
//! one meaning of [`Store::acquire_lease`], and callers (tests) can drive
//! time. The cost is that nodes must keep their clocks in sync (NTP): a
//! node whose clock runs ahead by more than a lease's TTL could take a
//! live lease. Keep TTLs well above the expected skew; a node whose clock
//! is more than a second from the database's says so at start.

mod cursor;
mod flows;
mod group;
mod ingest;
mod lanes;
mod ops;
mod pipeline;
mod reader;
mod request;
mod rows;
mod schema;
mod session;
mod tls;
mod transport;
mod writer;

pub(crate) use tls::resolve_files;
pub use tls::PgSslMode;
pub use transport::PgTransport;

use std::sync::Arc;

use reader::Reader;
use request::{Done, Op};
use session::{ConnectError, Target};
use writer::{Handle, Session, Sessions};

use crate::{
    BoxFuture, Claimed, Filter, FlowCount, FlowTotal, Ingested, JournalError, MessageId,
    MessageRecord, NewMessage, Outcome, PruneReport, Replay, RouteStats, Store,
};

/// The journal on a PostgreSQL database.
pub(crate) struct PgStore {
    writer: Handle,
    reader: Arc<Reader>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`),
    /// migrates the schema, and starts the writer. The database must exist;
    /// the tables are created in the user's default schema. Ingests go
    /// over `ingest_connections` connections (at least one).
    pub(crate) async fn connect(
        url: &str,
        ingest_connections: usize,
    ) -> Result<PgStore, JournalError> {
        let target = Target::parse(url)?;
        if let Some(weakness) = target.transport().weakness() {
            tracing::warn!(database = target.location(), "journal database: {weakness}");
        }
        let open_error = |reason: ConnectError| JournalError::Open {
            location: target.location().to_string(),
            reason: reason.to_string(),
        };
        let mut client = target.connect("writer").await.map_err(open_error)?;
        schema::migrate(&mut client, &target).await?;
        session::check_clock(&client, &target).await;
        let other = Session::new(client).await.map_err(open_error)?;
        let mut ingest = Vec::new();
        for lane in 0..ingest_connections.max(1) {
            let client = target.connect(&writer::ingest_role(lane)).await;
            ingest.push(
                Session::new(client.map_err(open_error)?)
                    .await
                    .map_err(open_error)?,
            );
        }
        let reader = target.connect("reader").await.map_err(open_error)?;
        let sessions = Sessions { ingest, other };
        Ok(PgStore {
            writer: writer::spawn(target.clone(), sessions),
            reader: Arc::new(Reader::new(target, reader)),
        })
    }

    /// Runs `read` on the reader, as a future that owns what it needs.
    fn read<T, F>(&self, read: impl FnOnce(Arc<Reader>) -> F) -> BoxFuture<Result<T, JournalError>>
    where
        F: std::future::Future<Output = Result<T, JournalError>> + Send + 'static,
    {
        Box::pin(read(self.reader.clone()))
    }
}

impl Store for PgStore {
    fn ingest(&self, batch: Vec<NewMessage>) -> BoxFuture<Result<Vec<Ingested>, JournalError>> {
        if batch.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        self.writer.submit(Op::Ingest(batch), Done::ingested)
    }

    fn acquire_lease(
        &self,
        route: &str,
        node: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> BoxFuture<Result<bool, JournalError>> {
        let op = Op::AcquireLease {
            route: route.to_string(),
            node: node.to_string(),
            now_ms,
            ttl_ms,
        };
        self.writer.submit(op, Done::held)
    }

    fn release_lease(&self, route: &str, node: &str) -> BoxFuture<Result<(), JournalError>> {
        let op = Op::ReleaseLease {
            route: route.to_string(),
            node: node.to_string(),
        };
        self.writer.submit(op, Done::unit)
    }

    fn recover(&self, route: &str) -> BoxFuture<Result<u64, JournalError>> {
        self.writer
            .submit(Op::Recover(route.to_string()), Done::count)
    }

    fn claim(&self, route: &str, limit: usize) -> BoxFuture<Result<Vec<Claimed>, JournalError>> {
        let op = Op::Claim {
            route: route.to_string(),
            limit,
            after: None,
        };
        self.writer.submit(op, Done::claimed)
    }

    fn record(&self, id: MessageId, outcome: Outcome) -> BoxFuture<Result<(), JournalError>> {
        self.writer.submit(Op::Record { id, outcome }, Done::unit)
    }

    fn replay(&self, which: Replay) -> BoxFuture<Result<u64, JournalError>> {
        self.writer.submit(Op::Replay(which), Done::count)
    }

    fn list(&self, filter: Filter) -> BoxFuture<Result<Vec<MessageRecord>, JournalError>> {
        self.read(|reader| async move { reader.list(filter).await })
    }

    fn get(&self, id: MessageId) -> BoxFuture<Result<MessageRecord, JournalError>> {
        self.read(|reader| async move { reader.get(id).await })
    }

    fn body(&self, id: MessageId) -> BoxFuture<Result<Vec<u8>, JournalError>> {
        self.read(|reader| async move { reader.body(id).await })
    }

    fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        action: &str,
        id: Option<MessageId>,
    ) -> BoxFuture<Result<(), JournalError>> {
        let op = Op::Audit {
            at_ms,
            actor: actor.to_string(),
            action: action.to_string(),
            id,
        };
        self.writer.submit(op, Done::unit)
    }

    /// Waits for the writes queued before it, then prunes on the reader's
    /// connection, so that ingest never waits behind it.
    fn prune(
        &self,
        bodies_before_ms: i64,
        records_before_ms: i64,
    ) -> BoxFuture<Result<PruneReport, JournalError>> {
        let applied = self.writer.submit(Op::Barrier, Done::unit);
        self.read(|reader| async move {
            applied.await?;
            reader.prune(bodies_before_ms, records_before_ms).await
        })
    }

    fn stats(&self) -> BoxFuture<Result<Vec<RouteStats>, JournalError>> {
        self.read(|reader| async move { reader.stats().await })
    }

    fn add_flows(&self, counts: Vec<FlowCount>) -> BoxFuture<Result<(), JournalError>> {
        self.read(|reader| async move { flows::add(&reader, &counts).await })
    }

    fn flows(&self) -> BoxFuture<Result<Vec<FlowTotal>, JournalError>> {
        self.read(|reader| async move { flows::all(&reader).await })
    }
}
