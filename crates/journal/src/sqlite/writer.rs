//! The one thread that writes, and its group commit.
//!
//! Every write is a request on a channel. The thread takes one, then
//! whatever else is already waiting (up to [`MAX_BATCH`]), runs them all
//! in one transaction in arrival order and commits once: concurrent
//! ingests share one fsync instead of queueing for one each. A request is
//! answered only after the commit: no caller hears "stored" for something
//! a crash could take back.
//!
//! The channel is unbounded because a request must be queued when its
//! method is called, before any `.await` (the call-order promise of
//! [`crate::Store`]); the bound is upstream: every caller waits for its
//! answer, and MLLP senders wait for their ACK.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::JournalError;

/// Most requests in one transaction: bounds how long one commit holds the
/// write lock and how much work one I/O error fails.
const MAX_BATCH: usize = 512;

/// A queued write: run inside the batch's transaction, answered after it.
trait Job: Send {
    /// Runs the write; keeps its result until the commit says whether it
    /// stands.
    fn run(&mut self, conn: &Connection);
    /// Answers the caller: the kept result if the batch committed, else
    /// the batch's failure.
    fn answer(self: Box<Self>, committed: Result<(), &str>);
}

/// A write and where its answer goes.
struct Call<T, F> {
    work: Option<F>,
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
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, JournalError> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(in_savepoint(conn, work));
        }
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
    /// Starts the writer thread on `conn`. It ends when the last handle is
    /// dropped, after answering what was queued.
    pub(super) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (requests, queue) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || serve(conn, queue, &counter))?;
        Ok(Writer { requests, commits })
    }

    /// Queues `work` now and returns its answer, to await. `durable`
    /// makes its commit wait for the disk.
    pub(super) fn call<T, F>(
        &self,
        durable: bool,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, JournalError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            work: Some(work),
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

/// The writer thread's loop.
fn serve(conn: Connection, mut queue: mpsc::UnboundedReceiver<Request>, commits: &AtomicU64) {
    let mut sync = Sync::Unknown;
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, &mut sync, commits);
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the journal's write connection failed");
    }
}

/// The connection's current `synchronous` level, to set it only on change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Unknown,
    Full,
    Normal,
}

/// One transaction for the whole batch; every request answered after it
/// (and after the commit is counted).
fn run_batch(conn: &Connection, batch: Vec<Request>, sync: &mut Sync, commits: &AtomicU64) {
    let durable = batch.iter().any(|r| r.durable);
    let mut jobs: Vec<Box<dyn Job>> = batch.into_iter().map(|r| r.job).collect();
    let outcome = transact(conn, &mut jobs, durable, sync);
    if outcome.is_ok() {
        commits.fetch_add(1, Ordering::Relaxed);
    }
    let outcome = outcome.map_err(|e| e.to_string());
    let committed = outcome.as_ref().map(|_| ()).map_err(String::as_str);
    for job in jobs {
        job.answer(committed);
    }
}

fn transact(
    conn: &Connection,
    jobs: &mut [Box<dyn Job>],
    durable: bool,
    sync: &mut Sync,
) -> Result<(), TransactError> {
    set_sync(conn, durable, sync).map_err(TransactError::Mode)?;
    exec(conn, "BEGIN IMMEDIATE").map_err(TransactError::Begin)?;
    for job in jobs.iter_mut() {
        job.run(conn);
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
