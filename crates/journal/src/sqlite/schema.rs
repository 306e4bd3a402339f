//! The journal's tables and their versioned migrations.
//!
//! Column names match the PostgreSQL backend's. `schema_migrations` is
//! created with the file, never by a migration: its absence is how an
//! SQLite file that is not a guichet journal is told apart.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};

/// Schema steps in order: `(version, sql)`. A released step is never
/// edited; a change is a new step.
const MIGRATIONS: &[(i64, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4)];

/// `body` is the last column so that reading any other column never walks
/// the overflow pages of a large body. `id` is AUTOINCREMENT: ids are
/// delivery order and must never be reused after a prune.
/// `messages_finished` holds only messages that still have a body: each
/// prune chunk then finds the next bodies to drop without stepping over
/// every record whose body went earlier.
const V1: &str = "
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    peer_app TEXT,
    peer_addr TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    sending_application TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    receiving_application TEXT NOT NULL,
    receiving_facility TEXT NOT NULL,
    message_type TEXT NOT NULL,
    control_id TEXT NOT NULL,
    version TEXT NOT NULL,
    body_len INTEGER NOT NULL,
    sealed INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'in_flight', 'failed', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    redelivered INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    ack_code TEXT,
    next_attempt_at_ms INTEGER,
    finished_at_ms INTEGER,
    body BLOB
);
CREATE INDEX messages_pending ON messages (route, id)
    WHERE state IN ('queued', 'in_flight', 'failed');
CREATE INDEX messages_dead ON messages (route) WHERE state = 'dead';
CREATE INDEX messages_dedup ON messages (route, dedup_key, control_id, received_at_ms);
CREATE INDEX messages_received ON messages (received_at_ms);
CREATE INDEX messages_finished ON messages (finished_at_ms) WHERE body IS NOT NULL;
CREATE TABLE leases (
    route TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    message_id INTEGER
);
";

/// Observed flows: one row per aggregate and outcome, so that adding a
/// flush is one upsert per row (`hits` add up, first and last widen).
const V2: &str = "
CREATE TABLE flows (
    route TEXT NOT NULL,
    kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    application TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    message_type TEXT NOT NULL,
    tls_in INTEGER NOT NULL,
    tls_out INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    hits INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (route, kind, direction, application, source, target, message_type,
                 tls_in, tls_out, outcome)
);
";

/// Bodies in a table of their own, keyed by the message's id: a state
/// change (claim, delivery outcome, replay) then rewrites a small
/// metadata row into the WAL, never the page that holds the body.
/// `has_body` keeps what `body IS NOT NULL` told: whether the body is
/// still kept (it goes at a prune), without a look into `bodies`.
/// Existing bodies are moved over; `DROP COLUMN` rewrites the table once.
const V3: &str = "
CREATE TABLE bodies (
    id INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
INSERT INTO bodies (id, body) SELECT id, body FROM messages WHERE body IS NOT NULL;
ALTER TABLE messages ADD COLUMN has_body INTEGER NOT NULL DEFAULT 1;
UPDATE messages SET has_body = 0 WHERE body IS NULL;
DROP INDEX messages_finished;
ALTER TABLE messages DROP COLUMN body;
CREATE INDEX messages_finished ON messages (finished_at_ms) WHERE has_body = 1;
";

/// The states' CHECK and the pending index's condition as comparisons,
/// not `IN` lists: SQLite builds a list of three or more values into a
/// temporary b-tree each time a statement runs, and every insert, claim
/// and outcome ran three of them (a third of the writer's time). A CHECK
/// changes only with the table, so the table is rebuilt: every row is
/// copied once, at the first start of this version. Its AUTOINCREMENT
/// counter goes with it, so ids of pruned messages never come back.
/// `messages_finished` no longer holds pending messages (their
/// `finished_at_ms` is NULL): an insert updates one index less, and an
/// outcome adds its row instead of moving it; a prune's
/// `finished_at_ms < ?` implies the new condition, so it still reads it.
const V4: &str = "
CREATE TABLE messages_v4 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    peer_app TEXT,
    peer_addr TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    sending_application TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    receiving_application TEXT NOT NULL,
    receiving_facility TEXT NOT NULL,
    message_type TEXT NOT NULL,
    control_id TEXT NOT NULL,
    version TEXT NOT NULL,
    body_len INTEGER NOT NULL,
    sealed INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state = 'queued' OR state = 'in_flight' OR state = 'failed'
               OR state = 'delivered' OR state = 'dead'),
    attempts INTEGER NOT NULL DEFAULT 0,
    redelivered INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    ack_code TEXT,
    next_attempt_at_ms INTEGER,
    finished_at_ms INTEGER,
    has_body INTEGER NOT NULL DEFAULT 1
);
INSERT INTO messages_v4 (id, route, received_at_ms, peer_app, peer_addr, dedup_key,
    sending_application, sending_facility, receiving_application, receiving_facility,
    message_type, control_id, version, body_len, sealed, state, attempts, redelivered,
    last_error, ack_code, next_attempt_at_ms, finished_at_ms, has_body)
SELECT id, route, received_at_ms, peer_app, peer_addr, dedup_key,
    sending_application, sending_facility, receiving_application, receiving_facility,
    message_type, control_id, version, body_len, sealed, state, attempts, redelivered,
    last_error, ack_code, next_attempt_at_ms, finished_at_ms, has_body
FROM messages;
DELETE FROM sqlite_sequence WHERE name = 'messages_v4';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages_v4', seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;
CREATE INDEX messages_pending ON messages (route, id)
    WHERE state <> 'delivered' AND state <> 'dead';
CREATE INDEX messages_dead ON messages (route) WHERE state = 'dead';
CREATE INDEX messages_dedup ON messages (route, dedup_key, control_id, received_at_ms);
CREATE INDEX messages_received ON messages (received_at_ms);
CREATE INDEX messages_finished ON messages (finished_at_ms)
    WHERE has_body = 1 AND finished_at_ms IS NOT NULL;
";

const MARKER: &str = "
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at_ms INTEGER NOT NULL
);
";

/// Why migrating stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum MigrateError {
    #[error(
        "was written by a newer guichet (schema version {found}, this guichet knows up to \
         {known}): run that version of guichet, or restore a backup made by this one"
    )]
    Newer { found: i64, known: i64 },
    #[error("cannot be migrated: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Makes a new file a journal: WAL mode, the marker table, every step.
pub(super) fn create(conn: &Connection) -> Result<(), MigrateError> {
    set_wal(conn)?;
    conn.execute_batch(MARKER)?;
    migrate(conn)
}

/// WAL lets readers run beside the writer and commits append instead of
/// rewriting pages. The mode is kept in the file.
pub(super) fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(rusqlite::Error::InvalidQuery)
    }
}

/// True when the file has the journal's marker table.
pub(super) fn is_journal(conn: &Connection) -> rusqlite::Result<bool> {
    let sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";
    Ok(conn.query_row(sql, [], |_| Ok(())).optional()?.is_some())
}

/// Applies the missing steps in one transaction; refuses a journal from a
/// newer guichet rather than guess what its extra columns mean.
pub(super) fn migrate(conn: &Connection) -> Result<(), MigrateError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = apply_missing(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end)?;
    result
}

fn apply_missing(conn: &Connection) -> Result<(), MigrateError> {
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    let known = latest();
    if current > known {
        return Err(MigrateError::Newer {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        conn.execute_batch(sql)?;
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
            (version, now_ms()),
        )?;
    }
    Ok(())
}

/// The schema version this code writes.
pub(super) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
