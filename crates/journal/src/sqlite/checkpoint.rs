//! Checkpoints on a thread of their own.
//!
//! A checkpoint copies the WAL's pages back into the database file and
//! syncs both. Run by the writer at a commit (SQLite's automatic
//! checkpoint), it stopped every write, ingests included, for two syncs
//! and the copy. Here a connection of its own checkpoints a little at a
//! time (`PASSIVE`: it never waits for the writer nor makes it wait),
//! and the writer keeps its automatic checkpoint only as a backstop, at
//! a WAL size this thread does not let it reach.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the WAL is copied back.
const EVERY: Duration = Duration::from_millis(100);

/// WAL pages at which the writer checkpoints by itself: far above what
/// accumulates between two of this thread's runs.
pub(super) const BACKSTOP_PAGES: i64 = 16_384;

/// The checkpoint thread; dropping it ends the thread and closes its
/// connection.
pub(super) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to `db` and starts checkpointing.
    pub(super) fn start(db: &Path) -> Result<Checkpointer, String> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(db, flags).map_err(|e| e.to_string())?;
        conn.busy_timeout(super::read::BUSY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("journal-checkpoint".into())
                .spawn(move || serve(conn, &stop))
                .map_err(|e| e.to_string())?
        };
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(conn: Connection, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let mut done = stopped.lock().unwrap_or_else(|e| e.into_inner());
    while !*done {
        let (guard, _) = wake
            .wait_timeout(done, EVERY)
            .unwrap_or_else(|e| e.into_inner());
        done = guard;
        if *done {
            break;
        }
        drop(done);
        checkpoint(&conn);
        done = stopped.lock().unwrap_or_else(|e| e.into_inner());
    }
    drop(done);
    let _ = conn.close();
}

/// One passive checkpoint; a failure is left to the next one (and to the
/// writer's backstop).
fn checkpoint(conn: &Connection) {
    let ran = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(e) = ran {
        tracing::debug!(error = %e, "a journal checkpoint did not run");
    }
}
