//! The one thread that writes, and its group commit.
//!
//! Every write is a request on a channel. The thread takes one, then
//! whatever else is already waiting (up to [`MAX_BATCH`]), runs them all
//! in one transaction in arrival order and commits once: concurrent
//! ingests share one fsync instead of queueing for one each. A request is
//! answered only after the commit, and a durable one (ingest) only after
//! the sync that follows it: no caller hears "stored" for something a
//! crash could take back. With a [`Syncer`] the sync runs on its own
//! thread while the next batch is written (see `sync`).
//!
//! The channel is unbounded because a request must be queued when its
//! method is called, before any `.await` (the call-order promise of
//! [`crate::Store`]); the bound is upstream: every caller waits for its
//! answer, and MLLP senders wait for their ACK.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::sync::Syncer;
use crate::JournalError;

/// Most requests in one transaction: bounds how long one commit holds the
/// write lock and how much work one I/O error fails.
const MAX_BATCH: usize = 512;

/// A queued write: run inside the batch's transaction, answered after it.
pub(super) trait Job: Send {
    /// Runs the write; keeps its result until the commit says whether it
    /// stands. `Err`: it failed with changes it cannot undo alone, and
    /// the whole batch must be rolled back.
    fn run(&mut self, conn: &Connection) -> Result<(), String>;
    /// Answers the caller: the kept result if the batch committed, else
    /// the batch's failure.
    fn answer(self: Box<Self>, committed: Result<(), &str>);
}

/// A write and where its answer goes.
struct Call<T, F> {
    work: Option<F>,
    /// Runs in a savepoint of its own, so that its failure undoes it
    /// alone; without one its failure fails the batch.
    isolated: bool,
    result: Option<Result<T, JournalError>>,
    reply: oneshot::Sender<Result<T, JournalError>>,
}

struct Request {
    /// Needs an fsync before its answer (ingest).
    durable: bool,
    job: Box<dyn Job>,
}

/// The handle callers write through; cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    commits: Arc<AtomicU64>,
    /// Why the file is known to be damaged: durable writes are refused.
    damaged: Arc<OnceLock<String>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, JournalError> + Send,
{
    fn run(&mut self, conn: &Connection) -> Result<(), String> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        if self.isolated {
            self.result = Some(in_savepoint(conn, work));
            return Ok(());
        }
        let result = work(conn);
        let failed = result.as_ref().err().map(ToString::to_string);
        self.result = Some(result);
        failed.map_or(Ok(()), Err)
    }

    fn answer(self: Box<Self>, committed: Result<(), &str>) {
        let result = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(why), _) => Err(JournalError::Unavailable(why.to_string())),
            (Ok(()), None) => Err(JournalError::Unavailable("the write was not run".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// Runs one request so that a failure undoes it alone, not the batch.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    let step = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    step("SAVEPOINT request").map_err(|e| JournalError::Unavailable(e.to_string()))?;
    let result = work(conn);
    let end = match result {
        Ok(_) => step("RELEASE request"),
        Err(_) => step("ROLLBACK TO request").and_then(|_| step("RELEASE request")),
    };
    // A failed end means SQLite already rolled the whole transaction back;
    // the batch sees it through `is_autocommit` and fails every request.
    let _ = end;
    result
}

impl Writer {
    /// Starts the writer thread on `conn`, syncing through `syncer` when
    /// there is one (else each durable commit syncs in place). It ends
    /// when the last handle is dropped, after answering what was queued;
    /// `checkpointer` is stopped then, before `conn` closes (the last
    /// connection to close checkpoints the WAL and removes it).
    pub(super) fn start(
        conn: Connection,
        syncer: Option<Syncer>,
        checkpointer: Option<Checkpointer>,
    ) -> std::io::Result<Writer> {
        let (requests, queue) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        let damaged = Arc::new(OnceLock::new());
        let refused = Arc::clone(&damaged);
        let mode = match syncer {
            Some(syncer) => Durability::Pipelined(syncer),
            None => Durability::InPlace(Sync::Unknown),
        };
        thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                serve(&conn, queue, &counter, &refused, mode);
                drop(checkpointer);
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "closing the journal's write connection failed");
                }
            })?;
        Ok(Writer {
            requests,
            commits,
            damaged,
        })
    }

    /// From now on every durable write (ingest) is answered with `why`:
    /// the file was found damaged after it opened.
    pub(super) fn refuse_durable(&self, why: String) {
        let _ = self.damaged.set(why);
    }

    /// Queues `work` now and returns its answer, to await. `durable`
    /// makes its commit wait for the disk. Its failure undoes it alone.
    pub(super) fn call<T, F>(
        &self,
        durable: bool,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, JournalError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        self.queue(durable, true, work)
    }

    /// As [`Writer::call`], without a savepoint of its own: its failure
    /// rolls back its whole batch, every request of which is answered
    /// with it. For ingests, whose failures are the disk's (full,
    /// failing) and would fail their batch-mates too: a savepoint per
    /// request copied every page it touched into SQLite's sub-journal.
    pub(super) fn call_sharing_fate<T, F>(
        &self,
        durable: bool,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, JournalError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        self.queue(durable, false, work)
    }

    fn queue<T, F>(
        &self,
        durable: bool,
        isolated: bool,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, JournalError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            work: Some(work),
            isolated,
            result: None,
            reply,
        };
        let queued = self.requests.send(Request {
            durable,
            job: Box::new(call),
        });
        async move {
            queued.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        }
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn stopped() -> JournalError {
    JournalError::Unavailable("the journal writer has stopped".into())
}

/// How durable requests are made durable.
enum Durability {
    /// Committed with `synchronous = NORMAL` and synced by the syncer's
    /// thread, overlapping the next batch.
    Pipelined(Syncer),
    /// Each durable batch commits with `synchronous = FULL` (when the WAL
    /// file could not be opened for syncing); the connection's current
    /// level, to set it only on change.
    InPlace(Sync),
}

/// The writer thread's loop.
fn serve(
    conn: &Connection,
    mut queue: mpsc::UnboundedReceiver<Request>,
    commits: &AtomicU64,
    damaged: &OnceLock<String>,
    mut mode: Durability,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        run_batch(conn, batch, &mut mode, commits, damaged);
    }
    // Syncs and answers what was handed over before the connection closes.
    drop(mode);
}

/// The connection's current `synchronous` level, to set it only on change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Unknown,
    Full,
    Normal,
}

/// One transaction for the whole batch. Every request is answered after
/// it (and after the commit is counted); durable ones after its sync.
fn run_batch(
    conn: &Connection,
    batch: Vec<Request>,
    mode: &mut Durability,
    commits: &AtomicU64,
    damaged: &OnceLock<String>,
) {
    let durable = batch.iter().any(|r| r.durable);
    if durable {
        let failed = match mode {
            Durability::Pipelined(syncer) => syncer.failed(),
            Durability::InPlace(_) => None,
        };
        if let Some(why) = failed.or_else(|| damaged.get().cloned()) {
            for request in batch {
                request.job.answer(Err(&why));
            }
            return;
        }
    }
    let mut jobs: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
    let mut kinds = Vec::with_capacity(batch.len());
    for request in batch {
        kinds.push(request.durable);
        jobs.push(request.job);
    }
    let in_place = match mode {
        Durability::Pipelined(_) => None,
        Durability::InPlace(sync) => Some(sync),
    };
    let outcome = transact(conn, &mut jobs, durable, in_place);
    if let Err(e) = outcome {
        let why = e.to_string();
        for job in jobs {
            job.answer(Err(&why));
        }
        return;
    }
    commits.fetch_add(1, Ordering::Relaxed);
    let Durability::Pipelined(syncer) = mode else {
        for job in jobs {
            job.answer(Ok(()));
        }
        return;
    };
    let mut to_sync = Vec::new();
    for (job, durable) in jobs.into_iter().zip(kinds) {
        if durable {
            to_sync.push(job);
        } else {
            // Nothing waits on the disk for it: a lost bookkeeping write
            // means a redelivery, never a loss.
            job.answer(Ok(()));
        }
    }
    if !to_sync.is_empty() {
        syncer.hand_over(to_sync);
        syncer.wait_taken();
    }
}

/// Runs the jobs in one transaction. `in_place`: the connection's level,
/// set to FULL for a durable batch; `None` when the syncer syncs (the
/// level stays NORMAL, set at start).
fn transact(
    conn: &Connection,
    jobs: &mut [Box<dyn Job>],
    durable: bool,
    in_place: Option<&mut Sync>,
) -> Result<(), TransactError> {
    if let Some(sync) = in_place {
        set_sync(conn, durable, sync).map_err(TransactError::Mode)?;
    }
    exec(conn, "BEGIN IMMEDIATE").map_err(TransactError::Begin)?;
    for job in jobs.iter_mut() {
        if let Err(why) = job.run(conn) {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            return Err(TransactError::Failed(why));
        }
        if conn.is_autocommit() {
            return Err(TransactError::RolledBack);
        }
    }
    exec(conn, "COMMIT").map_err(|e| {
        let _ = exec(conn, "ROLLBACK");
        tracing::warn!(error = %e, "a journal commit failed");
        TransactError::Commit(e)
    })
}

/// Why a batch was not committed; every request of the batch is answered
/// with its text.
#[derive(Debug, thiserror::Error)]
enum TransactError {
    #[error("setting the commit mode failed: {0}")]
    Mode(rusqlite::Error),
    #[error("starting a transaction failed: {0}")]
    Begin(rusqlite::Error),
    #[error("the transaction was rolled back by an error; nothing of it was stored")]
    RolledBack,
    #[error("a write failed and its transaction was rolled back, nothing of it was stored: {0}")]
    Failed(String),
    #[error("the commit failed, nothing of it was stored: {0}")]
    Commit(rusqlite::Error),
}

/// FULL syncs the WAL at commit (the ACK may follow); NORMAL leaves it to
/// the next checkpoint or durable commit: a lost record only means a
/// redelivery. Set before BEGIN: SQLite ignores it inside a transaction.
fn set_sync(conn: &Connection, durable: bool, current: &mut Sync) -> rusqlite::Result<()> {
    let wanted = if durable { Sync::Full } else { Sync::Normal };
    if *current != wanted {
        let level = if durable { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", level)?;
        *current = wanted;
    }
    Ok(())
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
