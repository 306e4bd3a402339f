//! The journal file itself: created private and complete, or, when it
//! exists, checked before anything is written to it.
//!
//! A journal that cannot be read as it is must stop guichet: starting on a
//! new empty journal would silently drop every message owed to a receiver.

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::schema;
use crate::JournalError;

/// What every SQLite 3 file starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The database header's length: the fields read below all sit in it.
const HEADER_LEN: usize = 100;
/// What to tell the operator when an existing journal is refused.
const ADVICE: &str = "restore it from a backup, or move it aside to start with an empty \
                      journal (messages it holds would not be delivered)";

/// A refusal to open the journal at `path`.
pub(super) fn refuse(path: &Path, reason: impl Into<String>) -> JournalError {
    JournalError::Open {
        location: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Makes sure `path` holds a sound guichet journal, creating it when it is
/// missing. Blocking. With `pages`, an existing file's pages are read
/// too (`quick_check`); without, the header and schema only, and the
/// answer says whether the pages are still to be checked.
pub(super) fn prepare(path: &Path, pages: bool) -> Result<(OpenGuard, bool), JournalError> {
    let unchecked = match fs::symlink_metadata(path) {
        Ok(_) => {
            check_existing(path, pages)?;
            !pages
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create(path)?;
            false
        }
        Err(e) => return Err(refuse(path, format!("cannot be read: {e}"))),
    };
    Ok((OpenGuard::new(path), unchecked))
}

/// Builds the new journal under a temporary name and links it into place
/// once initialised, so a crash during the first start never leaves an
/// empty or half-made journal that the next start would have to refuse.
fn create(path: &Path) -> Result<(), JournalError> {
    let staging = staging_path(path);
    let result = initialise(path, &staging).and_then(|()| publish(path, &staging));
    remove_staging(&staging);
    result
}

fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".init-{}", std::process::id()));
    path.with_file_name(name)
}

fn initialise(path: &Path, staging: &Path) -> Result<(), JournalError> {
    remove_staging(staging);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(staging)
        .map_err(|e| refuse(path, creation_failure(path, &e)))?;
    let conn =
        Connection::open(staging).map_err(|e| refuse(path, format!("cannot be created: {e}")))?;
    schema::create(&conn).map_err(|e| refuse(path, format!("cannot be initialised: {e}")))?;
    conn.close()
        .map_err(|(_, e)| refuse(path, format!("cannot be initialised: {e}")))
}

fn creation_failure(path: &Path, e: &std::io::Error) -> String {
    let folder = path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match e.kind() {
        ErrorKind::NotFound => format!("cannot be created: folder {folder:?} does not exist"),
        _ => format!("cannot be created in {folder:?}: {e}"),
    }
}

/// Gives the staged file its final name, unless another process created
/// one meanwhile (a hard link never replaces a file), and makes the name
/// durable.
fn publish(path: &Path, staging: &Path) -> Result<(), JournalError> {
    fs::hard_link(staging, path).map_err(|e| refuse(path, format!("cannot be created: {e}")))?;
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| refuse(path, format!("cannot be made durable: {e}")))?;
    }
    Ok(())
}

/// Removes a staged file and the side files SQLite may have left with it.
fn remove_staging(staging: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = staging.as_os_str().to_os_string();
        name.push(suffix);
        let _ = fs::remove_file(PathBuf::from(name));
    }
}

/// Refuses a file that is not, or no longer, a whole guichet journal.
fn check_existing(path: &Path, pages: bool) -> Result<(), JournalError> {
    let meta = fs::metadata(path).map_err(|e| refuse(path, format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(path, "is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(refuse(
            path,
            format!("is empty (0 bytes), not a journal: {ADVICE}"),
        ));
    }
    if unopened_in_process(path) {
        let header = read_header(path)?;
        check_header(path, &header, meta.len())?;
    }
    check_database(path, pages)
}

/// Counts this process's open stores per journal file, so that the raw
/// header check runs only while none is open.
///
/// Reading the header with a plain file descriptor is only safe then: on
/// Linux, closing any descriptor of a file drops every POSIX lock the
/// process holds on it, including the locks of SQLite connections open on
/// it, after which another process may delete the live WAL. (SQLite shares
/// one descriptor per file for this reason.) A journal opened again while
/// open was checked the first time; `quick_check` runs through SQLite at
/// every open (before it, or beside the open journal).
pub(super) struct OpenGuard(PathBuf);

type Registry = std::sync::Mutex<std::collections::HashMap<PathBuf, usize>>;

fn registry() -> &'static Registry {
    static OPEN: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    OPEN.get_or_init(Default::default)
}

fn registry_key(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// No store of this process has `path` open.
fn unopened_in_process(path: &Path) -> bool {
    let key = registry_key(path);
    registry()
        .lock()
        .map(|open| open.get(&key).copied().unwrap_or(0) == 0)
        .unwrap_or(false)
}

impl OpenGuard {
    fn new(path: &Path) -> OpenGuard {
        let key = registry_key(path);
        if let Ok(mut open) = registry().lock() {
            *open.entry(key.clone()).or_insert(0) += 1;
        }
        OpenGuard(key)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Ok(mut open) = registry().lock() {
            if let Some(count) = open.get_mut(&self.0) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&self.0);
                }
            }
        }
    }
}

fn read_header(path: &Path) -> Result<Vec<u8>, JournalError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    fs::File::open(path)
        .and_then(|file| file.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(|e| refuse(path, format!("cannot be read: {e}")))?;
    Ok(header)
}

/// The checks the header allows without trusting SQLite to read the file.
fn check_header(path: &Path, header: &[u8], file_len: u64) -> Result<(), JournalError> {
    if !header.starts_with(MAGIC) && !MAGIC.starts_with(header) {
        return Err(refuse(
            path,
            format!("is not an SQLite database (not a guichet journal): {ADVICE}"),
        ));
    }
    if header.len() < HEADER_LEN {
        return Err(refuse(
            path,
            format!("is truncated: {file_len} bytes, not even a header: {ADVICE}"),
        ));
    }
    let Some(expected) = expected_len(header) else {
        return Ok(());
    };
    if file_len < expected && !wal_may_hold_pages(path, header) {
        return Err(refuse(
            path,
            format!(
                "is truncated: {file_len} bytes where its header announces {expected}: {ADVICE}"
            ),
        ));
    }
    Ok(())
}

/// The file length the header announces, when the header says it is
/// valid: SQLite's file format keeps the in-header page count valid only
/// while the version-valid-for number (offset 92) equals the change
/// counter (offset 24).
fn expected_len(header: &[u8]) -> Option<u64> {
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    let page_count = u64::from(be32(28));
    (be32(92) == be32(24) && page_count > 0).then_some(page_size * page_count)
}

/// In WAL mode (read and write versions 2) a crash during a checkpoint can
/// leave page 1 copied ahead of the pages it counts: the WAL beside the
/// file still holds them, and SQLite finishes the copy. `quick_check`
/// judges such a file once it is open.
fn wal_may_hold_pages(path: &Path, header: &[u8]) -> bool {
    let mut wal = path.as_os_str().to_os_string();
    wal.push("-wal");
    let in_wal_mode = header[18] == 2 && header[19] == 2;
    in_wal_mode && fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// Opens the file as SQLite reads it and asks SQLite whether it is sound
/// and ours.
fn check_database(path: &Path, pages: bool) -> Result<(), JournalError> {
    let conn =
        Connection::open(path).map_err(|e| refuse(path, format!("cannot be opened: {e}")))?;
    let damaged = |e: rusqlite::Error| refuse(path, format!("is damaged ({e}): {ADVICE}"));
    if pages {
        check_pages(&conn).map_err(|why| refuse(path, why))?;
    }
    if !schema::is_journal(&conn).map_err(damaged)? {
        return Err(refuse(
            path,
            "is an SQLite database but not a guichet journal (no schema_migrations table): \
             point [journal] store at another file",
        ));
    }
    Ok(())
}

/// `quick_check` on `conn`; the error says what is wrong and what to do.
pub(super) fn check_pages(conn: &Connection) -> Result<(), String> {
    let problems = quick_check(conn).map_err(|e| format!("is damaged ({e}): {ADVICE}"))?;
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.join("; ");
    Err(format!("is damaged (quick_check: {shown}): {ADVICE}"))
}

/// What `PRAGMA quick_check` finds wrong (the first few lines; they name
/// pages and indexes, never row content).
fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
    let lines = stmt.query_map([], |row| row.get::<_, String>(0))?;
    let lines: Vec<String> = lines.collect::<rusqlite::Result<_>>()?;
    let problems = lines.into_iter().filter(|line| line != "ok");
    Ok(problems.map(|line| line.replace('\n', " ")).collect())
}
