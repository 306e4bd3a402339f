//! What the writer thread runs: each function is one request, executed
//! inside the batch's transaction.
//!
//! Queries on pending messages repeat the `messages_pending` index's
//! condition word for word: SQLite uses a partial index only when the
//! query's WHERE clause contains the index's own terms.

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension};

use super::read::{meta_from, state_sql};
use crate::{Claimed, Ingested, JournalError, MessageId, NewMessage, Outcome, Replay, State};

/// Rows one prune request touches: small enough that an ingest queued
/// behind it waits milliseconds, not seconds.
pub(super) const PRUNE_CHUNK: u64 = 1000;

/// The statements run for every message (ingest, claim, outcome). None
/// may build a temporary b-tree (an `IN` list of three or more values,
/// a sort): a test below holds them to it.
///
/// MIN rather than ORDER BY id LIMIT 1: the index gives the window's
/// rows in time order, and sorting them took a temporary b-tree.
const DUPLICATE: &str = "SELECT MIN(id) FROM messages
    WHERE route = ?1 AND dedup_key = ?2 AND control_id = ?3 AND received_at_ms >= ?4";
const INSERT_MESSAGE: &str = "INSERT INTO messages (route, received_at_ms, peer_app, peer_addr,
        dedup_key, sending_application, sending_facility, receiving_application,
        receiving_facility, message_type, control_id, version, body_len, sealed, state, has_body)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'queued', 1)";
const INSERT_BODY: &str = "INSERT INTO bodies (id, body) VALUES (?1, ?2)";
const NEXT: &str = "SELECT id, route, received_at_ms, sending_application, sending_facility,
        receiving_application, receiving_facility, message_type, control_id,
        version, sealed, attempts, redelivered, next_attempt_at_ms,
        (SELECT body FROM bodies WHERE bodies.id = messages.id)
    FROM messages
    WHERE route = ?1 AND state <> 'delivered' AND state <> 'dead'
      AND state <> 'in_flight'
    ORDER BY id LIMIT ?2";
const MARK_IN_FLIGHT: &str = "UPDATE messages SET state = 'in_flight' WHERE id = ?1";
const RECORD: &str = "UPDATE messages
    SET state = ?2, attempts = attempts + 1, last_error = ?3, ack_code = ?4,
        next_attempt_at_ms = ?5, finished_at_ms = ?6
    WHERE id = ?1";

/// The next bodies a prune drops, read from `messages_finished`.
const PRUNE_BODIES: &str = "SELECT id FROM messages
    WHERE finished_at_ms < ?1 AND has_body = 1 AND state IN ('delivered', 'dead')
    LIMIT ?2";

fn failed(e: rusqlite::Error) -> JournalError {
    JournalError::Query(e.to_string())
}

/// Stores a batch in order; duplicates (including earlier ones of the same
/// batch, or of the same transaction) are named, not stored.
pub(super) fn ingest(
    conn: &Connection,
    batch: Vec<NewMessage>,
) -> Result<Vec<Ingested>, JournalError> {
    batch
        .iter()
        .map(|message| ingest_one(conn, message))
        .collect::<rusqlite::Result<_>>()
        .map_err(|e| {
            JournalError::Unavailable(format!("storing a message failed, nothing was stored: {e}"))
        })
}

fn ingest_one(conn: &Connection, m: &NewMessage) -> rusqlite::Result<Ingested> {
    if let Some(since) = m.dedup_since_ms {
        if let Some(id) = find_duplicate(conn, m, since)? {
            return Ok(Ingested::Duplicate(id));
        }
    }
    insert(conn, m).map(Ingested::Stored)
}

fn find_duplicate(
    conn: &Connection,
    m: &NewMessage,
    since_ms: i64,
) -> rusqlite::Result<Option<MessageId>> {
    conn.prepare_cached(DUPLICATE)?
        .query_row(
            params![m.route, m.dedup_key, m.meta.control_id, since_ms],
            |row| row.get::<_, Option<i64>>(0),
        )
        .map(|id| id.map(MessageId))
}

/// The message's record, then its body under the same id.
fn insert(conn: &Connection, m: &NewMessage) -> rusqlite::Result<MessageId> {
    let meta = &m.meta;
    conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
        m.route,
        m.received_at_ms,
        m.peer_app,
        m.peer_addr,
        m.dedup_key,
        meta.sending_application,
        meta.sending_facility,
        meta.receiving_application,
        meta.receiving_facility,
        meta.message_type,
        meta.control_id,
        meta.version,
        m.body.len() as i64,
        m.sealed,
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(INSERT_BODY)?
        .execute(params![id, m.body])?;
    Ok(MessageId(id))
}

/// Takes, renews or refuses `route`'s lease (see [`crate::Store::acquire_lease`]).
pub(super) fn acquire_lease(
    conn: &Connection,
    route: &str,
    node: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, JournalError> {
    let sql = "INSERT INTO leases (route, holder, expires_at_ms) VALUES (?1, ?2, ?3)
               ON CONFLICT (route) DO UPDATE
               SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
               WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= ?4";
    let until = now_ms.saturating_add(ttl_ms);
    let changed = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(params![route, node, until, now_ms]))
        .map_err(failed)?;
    Ok(changed == 1)
}

pub(super) fn release_lease(
    conn: &Connection,
    route: &str,
    node: &str,
) -> Result<(), JournalError> {
    let sql = "DELETE FROM leases WHERE route = ?1 AND holder = ?2";
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![route, node]))
        .map(|_| ())
        .map_err(failed)
}

pub(super) fn recover(conn: &Connection, route: &str) -> Result<u64, JournalError> {
    let sql = "UPDATE messages SET state = 'failed', redelivered = 1
               WHERE route = ?1 AND state <> 'delivered' AND state <> 'dead'
                 AND state = 'in_flight'";
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([route]))
        .map(|n| n as u64)
        .map_err(failed)
}

/// The route's next messages, now in flight, in id order.
pub(super) fn claim(
    conn: &Connection,
    route: &str,
    limit: usize,
) -> Result<Vec<Claimed>, JournalError> {
    let claimed = next_messages(conn, route, limit).map_err(failed)?;
    let mut mark = conn.prepare_cached(MARK_IN_FLIGHT).map_err(failed)?;
    for message in &claimed {
        mark.execute([message.id.0]).map_err(failed)?;
    }
    Ok(claimed)
}

fn next_messages(conn: &Connection, route: &str, limit: usize) -> rusqlite::Result<Vec<Claimed>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(NEXT)?;
    let rows = stmt.query_map(params![route, limit], |row| {
        Ok(Claimed {
            id: MessageId(row.get(0)?),
            route: row.get(1)?,
            received_at_ms: row.get(2)?,
            meta: meta_from(row, 3)?,
            sealed: row.get(10)?,
            attempts: row.get(11)?,
            redelivered: row.get(12)?,
            next_attempt_at_ms: row.get(13)?,
            // Prune and replay keep pending messages' bodies; were one
            // missing, the claim fails rather than deliver nothing.
            body: row
                .get::<_, Option<Vec<u8>>>(14)?
                .ok_or_else(|| rusqlite::Error::InvalidColumnType(14, "body".into(), Type::Null))?,
        })
    })?;
    rows.collect()
}

/// Counts an attempt and sets what its outcome says.
pub(super) fn record(
    conn: &Connection,
    id: MessageId,
    outcome: &Outcome,
) -> Result<(), JournalError> {
    let changed = record_one(conn, id, outcome).map_err(failed)?;
    found(changed, id)
}

/// Records every outcome in one request; an unknown id changes nothing
/// and the first one is returned. An SQL failure undoes them all.
pub(super) fn record_many(
    conn: &Connection,
    outcomes: &[(MessageId, Outcome)],
) -> Result<Option<MessageId>, JournalError> {
    let mut missing = None;
    for (id, outcome) in outcomes {
        if record_one(conn, *id, outcome).map_err(failed)? == 0 {
            missing = missing.or(Some(*id));
        }
    }
    Ok(missing)
}

/// The rows changed: 0 when `id` is unknown.
fn record_one(conn: &Connection, id: MessageId, outcome: &Outcome) -> rusqlite::Result<usize> {
    let (state, error, ack, next, finished) = match outcome {
        Outcome::Delivered { ack_code, at_ms } => {
            (State::Delivered, None, Some(ack_code), None, Some(at_ms))
        }
        Outcome::Retry {
            error,
            ack_code,
            next_attempt_at_ms,
        } => (
            State::Failed,
            Some(error),
            ack_code.as_ref(),
            Some(next_attempt_at_ms),
            None,
        ),
        Outcome::Dead {
            error,
            ack_code,
            at_ms,
        } => (
            State::Dead,
            Some(error),
            ack_code.as_ref(),
            None,
            Some(at_ms),
        ),
    };
    conn.prepare_cached(RECORD)?
        .execute(params![id.0, state.as_str(), error, ack, next, finished])
}

fn found(changed: usize, id: MessageId) -> Result<(), JournalError> {
    if changed == 0 {
        Err(JournalError::NotFound(id))
    } else {
        Ok(())
    }
}

/// Puts messages back in line; those without a body cannot be.
pub(super) fn replay(conn: &Connection, which: &Replay) -> Result<u64, JournalError> {
    match which {
        Replay::One(id) => replay_one(conn, *id),
        Replay::Route { route, states } => replay_route(conn, route, states),
    }
}

const REQUEUE: &str = "UPDATE messages
    SET state = 'queued', attempts = 0, redelivered = 1,
        next_attempt_at_ms = NULL, finished_at_ms = NULL";

fn replay_one(conn: &Connection, id: MessageId) -> Result<u64, JournalError> {
    let has_body: Option<bool> = conn
        .prepare_cached("SELECT has_body = 1 FROM messages WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.0], |row| row.get(0)).optional())
        .map_err(failed)?;
    match has_body {
        None => Err(JournalError::NotFound(id)),
        Some(false) => Err(JournalError::NoBody(id)),
        Some(true) => {
            let sql = format!("{REQUEUE} WHERE id = ?1");
            let changed = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.execute([id.0]));
            changed.map(|n| n as u64).map_err(failed)
        }
    }
}

/// One statement for all the states, so a message moved by the first
/// state is not counted again by another.
fn replay_route(conn: &Connection, route: &str, states: &[State]) -> Result<u64, JournalError> {
    if states.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "{REQUEUE} WHERE route = ?1 AND state IN ({}) AND has_body = 1",
        state_sql(states)
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.execute([route]))
        .map(|n| n as u64)
        .map_err(failed)
}

pub(super) fn audit(
    conn: &Connection,
    at_ms: i64,
    actor: &str,
    action: &str,
    id: Option<MessageId>,
) -> Result<(), JournalError> {
    let sql = "INSERT INTO audit (at_ms, actor, action, message_id) VALUES (?1, ?2, ?3, ?4)";
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![at_ms, actor, action, id.map(|id| id.0)]))
        .map(|_| ())
        .map_err(failed)
}

/// Drops up to [`PRUNE_CHUNK`] bodies of messages finished before
/// `before_ms`; returns how many.
pub(super) fn prune_bodies(conn: &Connection, before_ms: i64) -> Result<u64, JournalError> {
    let ids = chunk_ids(conn, PRUNE_BODIES, before_ms).map_err(failed)?;
    let mut kept = conn
        .prepare_cached("UPDATE messages SET has_body = 0 WHERE id = ?1")
        .map_err(failed)?;
    for id in &ids {
        kept.execute([id]).map_err(failed)?;
    }
    drop_bodies(conn, &ids).map_err(failed)?;
    Ok(ids.len() as u64)
}

/// Deletes up to [`PRUNE_CHUNK`] finished messages received before
/// `before_ms`, with any body they still have; returns how many.
pub(super) fn prune_records(conn: &Connection, before_ms: i64) -> Result<u64, JournalError> {
    let sql = "SELECT id FROM messages
               WHERE received_at_ms < ?1 AND state IN ('delivered', 'dead')
               LIMIT ?2";
    let ids = chunk_ids(conn, sql, before_ms).map_err(failed)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM messages WHERE id = ?1")
        .map_err(failed)?;
    for id in &ids {
        delete.execute([id]).map_err(failed)?;
    }
    drop_bodies(conn, &ids).map_err(failed)?;
    Ok(ids.len() as u64)
}

/// The ids of one prune chunk.
fn chunk_ids(conn: &Connection, sql: &str, before_ms: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let ids = stmt.query_map(params![before_ms, PRUNE_CHUNK as i64], |row| row.get(0))?;
    ids.collect()
}

fn drop_bodies(conn: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached("DELETE FROM bodies WHERE id = ?1")?;
    for id in ids {
        delete.execute([id])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prune finds the bodies to drop through `messages_finished`, not
    /// by stepping over every record.
    #[test]
    fn a_prune_reads_the_finished_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("journal.db")).unwrap();
        super::super::schema::create(&conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PRUNE_BODIES}"))
            .unwrap()
            .query_map([0_i64, 0], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH messages USING INDEX messages_finished (finished_at_ms<?)"]
        );
    }

    /// Each per-message statement's program, on a journal of this
    /// schema, opens no temporary b-tree: one per run cost more than the
    /// insert itself.
    #[test]
    fn per_message_statements_open_no_temporary_table() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("journal.db")).unwrap();
        super::super::schema::create(&conn).unwrap();
        for sql in [
            DUPLICATE,
            INSERT_MESSAGE,
            INSERT_BODY,
            NEXT,
            MARK_IN_FLIGHT,
            RECORD,
        ] {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
            let opcodes: Vec<String> = explain
                .query_map(rusqlite::params_from_iter(unbound), |row| row.get(1))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(opcodes.iter().any(|op| op == "Halt"), "{opcodes:?}");
            let temporary = ["OpenEphemeral", "OpenAutoindex", "SorterOpen"];
            let opened: Vec<_> = opcodes
                .iter()
                .filter(|op| temporary.contains(&op.as_str()))
                .collect();
            assert!(opened.is_empty(), "{sql}\nopens {opened:?}");
        }
    }
}
