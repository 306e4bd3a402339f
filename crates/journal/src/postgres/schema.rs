//! The journal's tables and their versioned migrations.
//!
//! The columns are those of the SQLite backend, so both answer alike;
//! the types are PostgreSQL's (BYTEA bodies, BOOLEAN flags, identity ids).

use tokio_postgres::Client;

use super::session::{describe, Target};
use crate::JournalError;

/// Namespace of the advisory lock that serialises migrations between
/// nodes starting at once (first key of `pg_advisory_xact_lock(int, int)`).
const MIGRATION_LOCK: i32 = 0x6775_6964;

/// Migration `i` brings the schema to version `i + 1`. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

const V1: &str = "
CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    route TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
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
    body BYTEA,
    body_len BIGINT NOT NULL,
    sealed BOOLEAN NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'in_flight', 'failed', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    redelivered BOOLEAN NOT NULL DEFAULT FALSE,
    last_error TEXT,
    ack_code TEXT,
    next_attempt_at_ms BIGINT,
    finished_at_ms BIGINT
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
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    message_id BIGINT
);
";

/// Observed flows: one row per aggregate and outcome, as in SQLite.
const V2: &str = "
CREATE TABLE flows (
    route TEXT NOT NULL,
    kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    application TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    message_type TEXT NOT NULL,
    tls_in BOOLEAN NOT NULL,
    tls_out BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    hits BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (route, kind, direction, application, source, target, message_type,
                 tls_in, tls_out, outcome)
);
";

/// The claim's own index: exactly the claimable states, so it holds only
/// what a claim may take, and keyed on `id + 0` rather than `id`, so that
/// only this index gives the claim its order. Without it, once ANALYZE
/// has seen a backlog the planner prefers walking the primary key (or a
/// sequential scan and a hash join) and filtering, which reads the whole
/// delivered history on every claim (issue 17). The claim writes `id + 0`
/// too; no other query can use this index.
const V3: &str = "
CREATE INDEX messages_claimable ON messages (route, (id + 0))
    WHERE state IN ('queued', 'failed');
";

/// Brings the database to the latest schema in one transaction, under an
/// advisory lock so that nodes starting together migrate once. A schema
/// newer than this build is refused: an older guichet must not write to
/// tables it does not understand.
pub(super) async fn migrate(client: &mut Client, target: &Target) -> Result<(), JournalError> {
    let fail = |e: tokio_postgres::Error| JournalError::Open {
        location: target.location().to_string(),
        reason: format!("migrating the schema: {}", describe(&e)),
    };
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied_at_ms BIGINT NOT NULL
         )",
    )
    .await
    .map_err(fail)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    check_version(current, target)?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        apply(&tx, version as i32 + 1, sql).await.map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

fn check_version(current: i32, target: &Target) -> Result<(), JournalError> {
    let latest = MIGRATIONS.len();
    if current as usize > latest {
        return Err(JournalError::Open {
            location: target.location().to_string(),
            reason: format!(
                "the schema is at version {current}, written by a newer guichet; \
                 this one knows versions up to {latest}: upgrade guichet"
            ),
        });
    }
    Ok(())
}

async fn apply(
    tx: &tokio_postgres::Transaction<'_>,
    version: i32,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(sql).await?;
    tx.execute(
        "INSERT INTO schema_migrations (version, applied_at_ms)
         VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)",
        &[&version],
    )
    .await?;
    Ok(())
}
