//! Pipelined group commit: the disk syncs one batch while the writer
//! commits the next.
//!
//! The writer commits with `synchronous = NORMAL` (SQLite writes the WAL
//! without waiting for the disk) and hands the durable requests of the
//! batch to this thread, which syncs the WAL file once for everything
//! handed over meanwhile and only then answers them. A sync covers every
//! byte written to the file before it started, so each answer still
//! follows its own commit's sync; and WAL recovery keeps a prefix of the
//! commits, so nothing later survives a crash without what came before.
//!
//! A failed sync poisons the journal for durable writes: after an fsync
//! error the kernel may have dropped the unsynced pages while the file
//! still reads back fine, so a later sync that succeeds proves nothing
//! about earlier commits. guichet then answers every sender with an error
//! until it is restarted on a sound disk.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use super::writer::Job;

/// What makes a commit durable: the WAL file's `fdatasync`; tests put a
/// gate in its place.
pub(super) trait Disk: Send + 'static {
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Disk for File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// The writer's handle on the sync thread.
pub(super) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// The sync thread waits here for committed requests.
    work: Condvar,
    /// The writer waits here until its batch is being synced.
    taken: Condvar,
}

#[derive(Default)]
struct State {
    /// Committed, waiting for the next sync.
    waiting: Vec<Box<dyn Job>>,
    /// Why durability is lost for good (a sync failed).
    failed: Option<String>,
    /// The writer has stopped: sync what is left, then end.
    closing: bool,
}

impl Shared {
    /// The state, even if a thread panicked while holding it: it is a
    /// queue and a flag, consistent after every statement.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens the WAL file beside the database `db` (as SQLite names it) for
/// syncing, and makes its directory entry durable: SQLite would sync the
/// folder on the WAL's first sync, which this thread now does instead.
pub(super) fn open_wal(db: &Path) -> std::io::Result<File> {
    let mut name = db.as_os_str().to_os_string();
    name.push("-wal");
    // Opened for writing because some systems refuse to sync a read-only
    // descriptor; nothing is written through it. SQLite takes no lock on
    // the WAL file (its locks are on the database and `-shm` files), so
    // this descriptor cannot release one of SQLite's locks when closed.
    let wal = File::options().write(true).open(&name)?;
    if let Some(folder) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(folder)?.sync_all()?;
    }
    Ok(wal)
}

impl Syncer {
    pub(super) fn start(disk: impl Disk) -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            taken: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("journal-sync".into())
                .spawn(move || serve(&shared, disk))?
        };
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Why durable writes are refused, once a sync has failed.
    pub(super) fn failed(&self) -> Option<String> {
        self.shared.lock().failed.clone()
    }

    /// Queues committed requests for the next sync; they are answered
    /// after it.
    pub(super) fn hand_over(&self, jobs: Vec<Box<dyn Job>>) {
        if jobs.is_empty() {
            return;
        }
        self.shared.lock().waiting.extend(jobs);
        self.shared.work.notify_one();
    }

    /// Waits until everything handed over is being synced (or answered).
    /// The writer calls it before its next batch, so that batch gathers
    /// what arrives during the sync instead of committing a few requests
    /// at a time: at most one batch is committed ahead of the disk.
    pub(super) fn wait_taken(&self) {
        let mut state = self.shared.lock();
        while !state.waiting.is_empty() {
            state = self
                .shared
                .taken
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Syncer {
    /// Syncs and answers what is left before the connection closes.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sync thread's loop: take everything committed, sync once, answer.
fn serve(shared: &Shared, mut disk: impl Disk) {
    loop {
        let (jobs, failed) = {
            let mut state = shared.lock();
            while state.waiting.is_empty() && !state.closing {
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.waiting.is_empty() {
                return;
            }
            let jobs = std::mem::take(&mut state.waiting);
            shared.taken.notify_all();
            (jobs, state.failed.clone())
        };
        let outcome = match failed {
            Some(why) => Err(why),
            None => disk.sync().map_err(|e| poison(shared, &e)),
        };
        let answer = outcome.as_ref().map(|_| ()).map_err(String::as_str);
        for job in jobs {
            job.answer(answer);
        }
    }
}

/// Records that durability is lost and says why.
fn poison(shared: &Shared, e: &std::io::Error) -> String {
    tracing::error!(
        error = %e,
        "syncing the journal's WAL failed: the journal refuses to store messages until \
         guichet is restarted on a sound disk"
    );
    let why = format!(
        "syncing the journal to disk failed ({e}); nothing is acknowledged until guichet \
         is restarted on a sound disk"
    );
    shared.lock().failed = Some(why.clone());
    why
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A disk whose syncs wait for the test to let each one through.
    pub(in crate::sqlite) struct Gate {
        started: mpsc::Sender<()>,
        proceed: mpsc::Receiver<std::io::Result<()>>,
    }

    impl Disk for Gate {
        fn sync(&mut self) -> std::io::Result<()> {
            let _ = self.started.send(());
            self.proceed.recv().unwrap_or(Ok(()))
        }
    }

    /// A job that reports its answer on a channel.
    struct Probe(mpsc::Sender<Result<(), String>>);

    impl Job for Probe {
        fn run(&mut self, _: &rusqlite::Connection) -> Result<(), String> {
            Ok(())
        }
        fn answer(self: Box<Self>, committed: Result<(), &str>) {
            let _ = self.0.send(committed.map_err(str::to_string));
        }
    }

    fn probe() -> (Box<dyn Job>, mpsc::Receiver<Result<(), String>>) {
        let (tx, rx) = mpsc::channel();
        (Box::new(Probe(tx)), rx)
    }

    /// A syncer on a [`Gate`]: says when each sync starts, and lets it
    /// end with what the test sends.
    pub(in crate::sqlite) fn gated() -> (
        Syncer,
        mpsc::Receiver<()>,
        mpsc::Sender<std::io::Result<()>>,
    ) {
        let (started, sync_started) = mpsc::channel();
        let (release, proceed) = mpsc::channel();
        let syncer = Syncer::start(Gate { started, proceed }).unwrap();
        (syncer, sync_started, release)
    }

    const SHORT: Duration = Duration::from_millis(100);

    #[test]
    fn answers_wait_for_the_sync_that_follows_their_commit() {
        let (syncer, sync_started, release) = gated();
        let (first, first_answer) = probe();
        syncer.hand_over(vec![first]);
        sync_started.recv_timeout(Duration::from_secs(5)).unwrap();
        // handed over while the first sync runs: waits for a second one
        let (second, second_answer) = probe();
        syncer.hand_over(vec![second]);
        assert!(
            first_answer.recv_timeout(SHORT).is_err(),
            "answered before its sync"
        );
        release.send(Ok(())).unwrap();
        assert_eq!(
            first_answer.recv_timeout(Duration::from_secs(5)),
            Ok(Ok(()))
        );
        sync_started.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            second_answer.recv_timeout(SHORT).is_err(),
            "answered by the earlier sync"
        );
        release.send(Ok(())).unwrap();
        assert_eq!(
            second_answer.recv_timeout(Duration::from_secs(5)),
            Ok(Ok(()))
        );
    }

    #[test]
    fn a_failed_sync_fails_its_requests_and_every_later_one() {
        let (syncer, sync_started, release) = gated();
        let (first, first_answer) = probe();
        syncer.hand_over(vec![first]);
        sync_started.recv_timeout(Duration::from_secs(5)).unwrap();
        release.send(Err(std::io::Error::other("EIO"))).unwrap();
        let why = first_answer
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        assert!(why.contains("EIO") && why.contains("restarted"), "{why}");
        assert_eq!(syncer.failed(), Some(why.clone()));
        // later requests are refused without trusting another sync
        let (second, second_answer) = probe();
        syncer.hand_over(vec![second]);
        assert_eq!(
            second_answer.recv_timeout(Duration::from_secs(5)),
            Ok(Err(why))
        );
        assert!(
            sync_started.try_recv().is_err(),
            "synced again after a failure"
        );
    }

    #[test]
    fn the_writer_waits_until_its_batch_is_being_synced() {
        let (syncer, sync_started, release) = gated();
        let (first, _first_answer) = probe();
        syncer.hand_over(vec![first]);
        sync_started.recv_timeout(Duration::from_secs(5)).unwrap();
        syncer.wait_taken(); // taken at once: the first sync runs
        let (second, second_answer) = probe();
        syncer.hand_over(vec![second]);
        let syncer = Arc::new(syncer);
        let waiter = {
            let syncer = Arc::clone(&syncer);
            thread::spawn(move || syncer.wait_taken())
        };
        thread::sleep(SHORT);
        assert!(
            !waiter.is_finished(),
            "went on while a batch waited for the disk"
        );
        release.send(Ok(())).unwrap();
        waiter.join().unwrap();
        release.send(Ok(())).unwrap();
        assert_eq!(
            second_answer.recv_timeout(Duration::from_secs(5)),
            Ok(Ok(()))
        );
    }

    #[test]
    fn dropping_syncs_and_answers_what_is_left() {
        let (syncer, _sync_started, release) = gated();
        release.send(Ok(())).unwrap();
        let (job, answer) = probe();
        syncer.hand_over(vec![job]);
        drop(syncer);
        assert_eq!(answer.try_recv(), Ok(Ok(())));
    }
}
