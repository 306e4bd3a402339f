//! The SQLite backend: one file in WAL mode, one writer thread that
//! batches concurrent writes into shared commits, read-only connections
//! beside it.
//!
//! - `file`: creating the file, refusing a damaged or foreign one.
//! - `schema`: tables and migrations.
//! - `writer`: the writer thread and its group commit.
//! - `write`, `read`: the SQL of each operation.
//! - `flows`: the observed flows' table.

mod file;
mod flows;
mod read;
mod schema;
mod write;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use crate::{
    BoxFuture, Claimed, Filter, FlowCount, FlowTotal, Ingested, JournalError, MessageId,
    MessageRecord, NewMessage, Outcome, PruneReport, Replay, RouteStats, Store,
};
use read::Readers;
use write::PRUNE_CHUNK;
use writer::Writer;

/// A journal in one SQLite file. Dropping the last handle stops the
/// writer thread once it has answered what was queued.
pub(crate) struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    _open: file::OpenGuard,
}

impl SqliteStore {
    /// Opens the journal at `path`, creating it (mode 0600) if missing and
    /// refusing one that exists but is not a sound guichet journal.
    pub(crate) async fn open(path: &Path) -> Result<SqliteStore, JournalError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || open_blocking(&path))
            .await
            .map_err(|e| JournalError::Unavailable(format!("opening the journal stopped: {e}")))?
    }
}

fn open_blocking(path: &Path) -> Result<SqliteStore, JournalError> {
    let open = file::prepare(path)?;
    let conn = write_connection(path)?;
    let writer = Writer::start(conn)
        .map_err(|e| file::refuse(path, format!("cannot start its writer thread: {e}")))?;
    Ok(SqliteStore {
        writer,
        readers: Readers::new(path),
        _open: open,
    })
}

/// The writer's connection, on a journal brought to this code's schema.
fn write_connection(path: &Path) -> Result<Connection, JournalError> {
    let refuse = |e: &dyn std::fmt::Display| file::refuse(path, e.to_string());
    let conn = Connection::open(path).map_err(|e| refuse(&format!("cannot be opened: {e}")))?;
    conn.busy_timeout(read::BUSY_TIMEOUT)
        .map_err(|e| refuse(&e))?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::set_wal(&conn).map_err(|e| refuse(&format!("cannot switch to WAL mode: {e}")))?;
    schema::migrate(&conn).map_err(|e| refuse(&e))?;
    Ok(conn)
}

impl SqliteStore {
    /// Queues one non-durable write now; the future only waits.
    fn write<T, F>(&self, work: F) -> BoxFuture<Result<T, JournalError>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        Box::pin(self.writer.call(false, work))
    }

    fn read<T, F>(&self, read: F) -> BoxFuture<Result<T, JournalError>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        Box::pin(Arc::clone(&self.readers).run(read))
    }
}

impl Store for SqliteStore {
    fn ingest(&self, batch: Vec<NewMessage>) -> BoxFuture<Result<Vec<Ingested>, JournalError>> {
        if batch.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        Box::pin(
            self.writer
                .call(true, move |conn| write::ingest(conn, batch)),
        )
    }

    fn acquire_lease(
        &self,
        route: &str,
        node: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> BoxFuture<Result<bool, JournalError>> {
        let (route, node) = (route.to_string(), node.to_string());
        self.write(move |conn| write::acquire_lease(conn, &route, &node, now_ms, ttl_ms))
    }

    fn release_lease(&self, route: &str, node: &str) -> BoxFuture<Result<(), JournalError>> {
        let (route, node) = (route.to_string(), node.to_string());
        self.write(move |conn| write::release_lease(conn, &route, &node))
    }

    fn recover(&self, route: &str) -> BoxFuture<Result<u64, JournalError>> {
        let route = route.to_string();
        self.write(move |conn| write::recover(conn, &route))
    }

    fn claim(&self, route: &str, limit: usize) -> BoxFuture<Result<Vec<Claimed>, JournalError>> {
        let route = route.to_string();
        self.write(move |conn| write::claim(conn, &route, limit))
    }

    fn record(&self, id: MessageId, outcome: Outcome) -> BoxFuture<Result<(), JournalError>> {
        self.write(move |conn| write::record(conn, id, &outcome))
    }

    fn replay(&self, which: Replay) -> BoxFuture<Result<u64, JournalError>> {
        self.write(move |conn| write::replay(conn, &which))
    }

    fn list(&self, filter: Filter) -> BoxFuture<Result<Vec<MessageRecord>, JournalError>> {
        self.read(move |conn| read::list(conn, &filter))
    }

    fn get(&self, id: MessageId) -> BoxFuture<Result<MessageRecord, JournalError>> {
        self.read(move |conn| read::get(conn, id))
    }

    fn body(&self, id: MessageId) -> BoxFuture<Result<Vec<u8>, JournalError>> {
        self.read(move |conn| read::body(conn, id))
    }

    fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        action: &str,
        id: Option<MessageId>,
    ) -> BoxFuture<Result<(), JournalError>> {
        let (actor, action) = (actor.to_string(), action.to_string());
        self.write(move |conn| write::audit(conn, at_ms, &actor, &action, id))
    }

    /// One request per chunk, so ingests queued meanwhile commit between
    /// chunks instead of after the whole prune.
    fn prune(
        &self,
        bodies_before_ms: i64,
        records_before_ms: i64,
    ) -> BoxFuture<Result<PruneReport, JournalError>> {
        let writer = self.writer.clone();
        let first = writer.call(false, move |conn| {
            write::prune_bodies(conn, bodies_before_ms)
        });
        Box::pin(async move {
            let mut report = PruneReport::default();
            let mut done = first.await?;
            report.bodies_deleted += done;
            while done == PRUNE_CHUNK {
                done = writer
                    .call(false, move |c| write::prune_bodies(c, bodies_before_ms))
                    .await?;
                report.bodies_deleted += done;
            }
            loop {
                done = writer
                    .call(false, move |c| write::prune_records(c, records_before_ms))
                    .await?;
                report.records_deleted += done;
                if done < PRUNE_CHUNK {
                    return Ok(report);
                }
            }
        })
    }

    fn stats(&self) -> BoxFuture<Result<Vec<RouteStats>, JournalError>> {
        self.read(read::stats)
    }

    fn add_flows(&self, counts: Vec<FlowCount>) -> BoxFuture<Result<(), JournalError>> {
        self.write(move |conn| flows::add(conn, &counts))
    }

    fn flows(&self) -> BoxFuture<Result<Vec<FlowTotal>, JournalError>> {
        self.read(flows::all)
    }

    fn commits(&self) -> u64 {
        self.writer.commits()
    }
}
