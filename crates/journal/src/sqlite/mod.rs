//! The SQLite backend: one file in WAL mode, one writer thread that
//! batches concurrent writes into shared commits, read-only connections
//! beside it.
//!
//! - `file`: creating the file, refusing a damaged or foreign one.
//! - `schema`: tables and migrations.
//! - `writer`: the writer thread and its group commit.
//! - `sync`: the thread that syncs one commit while the next is written.
//! - `checkpoint`: the thread that copies the WAL back into the file.
//! - `write`, `read`: the SQL of each operation.
//! - `flows`: the observed flows' table.

mod checkpoint;
mod file;
mod flows;
mod read;
mod schema;
mod sync;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use crate::{
    BoxFuture, Claimed, Filter, FlowCount, FlowTotal, Ingested, IntegrityCheck, JournalError,
    MessageId, MessageRecord, NewMessage, Outcome, PruneReport, Replay, RouteStats, Store,
};
use read::Readers;
use write::PRUNE_CHUNK;
use writer::Writer;

/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

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
    pub(crate) async fn open(
        path: &Path,
        check: IntegrityCheck,
    ) -> Result<SqliteStore, JournalError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || open_blocking(&path, check))
            .await
            .map_err(|e| JournalError::Unavailable(format!("opening the journal stopped: {e}")))?
    }
}

fn open_blocking(path: &Path, check: IntegrityCheck) -> Result<SqliteStore, JournalError> {
    let (open, unchecked) = file::prepare(path, check == IntegrityCheck::AtOpen)?;
    let conn = write_connection(path)?;
    let syncer = syncer(path, &conn)?;
    let checkpointer = checkpointer(path, &conn);
    let writer = Writer::start(conn, syncer, checkpointer)
        .map_err(|e| file::refuse(path, format!("cannot start its writer thread: {e}")))?;
    if unchecked {
        check_in_background(path, writer.clone())
            .map_err(|e| file::refuse(path, format!("cannot start its check thread: {e}")))?;
    }
    Ok(SqliteStore {
        writer,
        readers: Readers::new(path),
        _open: open,
    })
}

/// Runs `quick_check` on a read connection of its own while the journal
/// serves; damage found is logged and stops every later ingest. The read
/// snapshot it holds keeps checkpoints from passing it, so the WAL grows
/// until it ends.
fn check_in_background(path: &Path, writer: Writer) -> std::io::Result<()> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("journal-check".into())
        .spawn(move || {
            let checked = read::open_reader(&path)
                .map_err(|e| format!("cannot be opened for its check: {e}"))
                .and_then(|conn| file::check_pages(&conn));
            match checked {
                Ok(()) => {
                    tracing::info!(journal = %path.display(), "the journal's pages are sound")
                }
                Err(why) => {
                    tracing::error!(
                        journal = %path.display(),
                        reason = %why,
                        "the journal is damaged: every ingest is refused until guichet is \
                         restarted on a sound file"
                    );
                    writer.refuse_durable(format!("the journal {} {why}", path.display()));
                }
            }
        })
        .map(|_| ())
}

/// The writer's connection, on a journal brought to this code's schema.
fn write_connection(path: &Path) -> Result<Connection, JournalError> {
    let refuse = |e: &dyn std::fmt::Display| file::refuse(path, e.to_string());
    let conn = Connection::open(path).map_err(|e| refuse(&format!("cannot be opened: {e}")))?;
    conn.busy_timeout(read::BUSY_TIMEOUT)
        .map_err(|e| refuse(&e))?;
    conn.set_prepared_statement_cache_capacity(64);
    // The indexes' pages stay in memory as the journal grows, instead of
    // being read back from the file at each insert (the default is 2 MiB).
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|e| refuse(&e))?;
    schema::set_wal(&conn).map_err(|e| refuse(&format!("cannot switch to WAL mode: {e}")))?;
    schema::migrate(&conn).map_err(|e| refuse(&e))?;
    Ok(conn)
}

/// The thread that syncs commits, with the writer's connection set to
/// leave syncing to it. Without a WAL file to sync (it could not be
/// opened) each durable commit syncs in place, as SQLite does at FULL.
fn syncer(path: &Path, conn: &Connection) -> Result<Option<sync::Syncer>, JournalError> {
    // SQLite's own name for the file, the one its WAL is named after.
    let db = conn
        .path()
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    let wal = match sync::open_wal(&db) {
        Ok(wal) => wal,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "the journal's WAL cannot be opened for syncing: each commit syncs in place"
            );
            return Ok(None);
        }
    };
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| file::refuse(path, format!("cannot set its commit mode: {e}")))?;
    sync::Syncer::start(wal)
        .map(Some)
        .map_err(|e| file::refuse(path, format!("cannot start its sync thread: {e}")))
}

/// The thread that checkpoints, with the writer's own automatic
/// checkpoint pushed back to a backstop. Without it (its connection could
/// not be opened) the writer checkpoints as SQLite does by default.
fn checkpointer(path: &Path, conn: &Connection) -> Option<checkpoint::Checkpointer> {
    let db = conn
        .path()
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    let started = checkpoint::Checkpointer::start(&db).and_then(|checkpointer| {
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)
            .map(|()| checkpointer)
            .map_err(|e| e.to_string())
    });
    match started {
        Ok(checkpointer) => Some(checkpointer),
        Err(e) => {
            tracing::warn!(error = %e, "the journal's checkpoint thread cannot start: the writer checkpoints");
            None
        }
    }
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
                .call_sharing_fate(true, move |conn| write::ingest(conn, batch)),
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

    fn record_many(
        &self,
        outcomes: Vec<(MessageId, Outcome)>,
    ) -> BoxFuture<Result<(), JournalError>> {
        if outcomes.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let recorded = self.write(move |conn| write::record_many(conn, &outcomes));
        Box::pin(async move {
            match recorded.await? {
                Some(missing) => Err(JournalError::NotFound(missing)),
                None => Ok(()),
            }
        })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn message(control_id: &str) -> NewMessage {
        NewMessage {
            route: "adt".into(),
            received_at_ms: 1000,
            peer_app: None,
            peer_addr: "127.0.0.1:40000".into(),
            dedup_key: "eai".into(),
            dedup_since_ms: None,
            meta: crate::Meta {
                control_id: control_id.into(),
                ..Default::default()
            },
            body: b"MSH|^~\\&|".to_vec(),
            sealed: false,
        }
    }

    /// Messages a second connection sees committed.
    fn committed(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    }

    /// An ingest is answered after the sync that follows its commit, not
    /// at the commit; a write that needs no sync is answered at once,
    /// while the sync still runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ingest_is_answered_only_after_its_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let _open = file::prepare(&path, true).unwrap();
        let (syncer, sync_started, release) = sync::tests::gated();
        let writer = Writer::start(write_connection(&path).unwrap(), Some(syncer), None).unwrap();
        let ingest = writer.call(true, |conn| write::ingest(conn, vec![message("C1")]));
        let mut ingest = tokio::spawn(ingest);
        tokio::task::spawn_blocking(move || {
            sync_started.recv_timeout(Duration::from_secs(5)).unwrap();
            sync_started
        })
        .await
        .unwrap();
        // committed, visible, but not answered while the disk syncs
        assert_eq!(committed(&path), 1);
        let claim = writer.call(false, |conn| write::claim(conn, "adt", 10));
        let claimed = tokio::time::timeout(Duration::from_secs(5), claim).await;
        assert_eq!(claimed.unwrap().unwrap().len(), 1);
        let early = tokio::time::timeout(Duration::from_millis(200), &mut ingest).await;
        assert!(early.is_err(), "answered before its sync ended");
        release.send(Ok(())).unwrap();
        let stored = tokio::time::timeout(Duration::from_secs(5), ingest).await;
        let stored = stored.unwrap().unwrap().unwrap();
        assert!(matches!(stored[..], [crate::Ingested::Stored(_)]));
    }

    /// An ingest has no savepoint of its own: when it fails, its whole
    /// batch is rolled back and every request of it answered with the
    /// failure, so nothing of the failed ingest is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_ingest_fails_its_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let _open = file::prepare(&path, true).unwrap();
        let (syncer, sync_started, release) = sync::tests::gated();
        let writer = Writer::start(write_connection(&path).unwrap(), Some(syncer), None).unwrap();
        let first = writer.call_sharing_fate(true, |conn| write::ingest(conn, vec![message("C0")]));
        let first = tokio::spawn(first);
        let started = tokio::task::spawn_blocking(move || {
            sync_started.recv_timeout(Duration::from_secs(5)).unwrap();
            sync_started
        });
        let _sync_started = started.await.unwrap();
        // committed while the first sync runs: the writer then waits for
        // the disk, and the next three requests form one batch
        let second =
            writer.call_sharing_fate(true, |conn| write::ingest(conn, vec![message("C0b")]));
        let second = tokio::spawn(second);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while committed(&path) < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the second ingest was not committed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stored =
            writer.call_sharing_fate(true, |conn| write::ingest(conn, vec![message("C1")]));
        let failing = writer.call_sharing_fate(true, |conn| {
            write::ingest(conn, vec![message("C2")])?;
            Err::<(), _>(JournalError::Unavailable("the disk is full".into()))
        });
        let claim = writer.call(false, |conn| write::claim(conn, "adt", 10));
        release.send(Ok(())).unwrap();
        release.send(Ok(())).unwrap();
        assert!(first.await.unwrap().is_ok());
        assert!(second.await.unwrap().is_ok());
        let within = Duration::from_secs(5);
        let stored = tokio::time::timeout(within, stored)
            .await
            .expect("answered");
        let failing = tokio::time::timeout(within, failing)
            .await
            .expect("answered");
        let claim = tokio::time::timeout(within, claim).await.expect("answered");
        for answer in [stored.map(|_| ()), failing, claim.map(|_| ())] {
            assert!(
                matches!(&answer, Err(JournalError::Unavailable(why)) if why.contains("the disk is full")),
                "{answer:?}"
            );
        }
        assert_eq!(committed(&path), 2, "stored from the failed batch");
    }

    /// After a failed sync the journal stores nothing more: the kernel may
    /// have dropped what it could not write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_sync_ingests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let _open = file::prepare(&path, true).unwrap();
        let (syncer, _sync_started, release) = sync::tests::gated();
        let writer = Writer::start(write_connection(&path).unwrap(), Some(syncer), None).unwrap();
        release.send(Err(std::io::Error::other("EIO"))).unwrap();
        let first = writer
            .call(true, |conn| write::ingest(conn, vec![message("C1")]))
            .await;
        assert!(matches!(first, Err(JournalError::Unavailable(ref why)) if why.contains("EIO")));
        let second = writer
            .call(true, |conn| write::ingest(conn, vec![message("C2")]))
            .await;
        assert!(matches!(second, Err(JournalError::Unavailable(ref why)) if why.contains("EIO")));
        assert_eq!(committed(&path), 1, "stored after the failed sync");
    }
}
