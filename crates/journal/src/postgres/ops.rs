//! The writer's operations: one prepared statement each (an ingest runs
//! one per message), so that a whole group of requests is sent at once
//! and answered in one round trip (pipelining).
//!
//! Rule that keeps call order: an operation sends all of its statements
//! when first polled, never one after awaiting another. A later request's
//! statements would otherwise overtake its second statement.

use std::future::Future;
use std::pin::Pin;

use tokio_postgres::{Client, Statement};

use super::pipeline::{join_in_order, Pinned};
use super::rows::{self, CLAIMED_COLUMNS};
use super::writer::{Done, Op};
use crate::{Ingested, JournalError, MessageId, NewMessage, Outcome, Replay};

/// A statement's result: `Err` aborted the transaction; `Ok(Err)` is an
/// answer for the caller (not found, no body) that leaves it intact.
pub(super) type Step<'a> = Pin<
    Box<dyn Future<Output = Result<Result<Done, JournalError>, tokio_postgres::Error>> + Send + 'a>,
>;

/// Namespace of the advisory locks that serialise duplicate detection
/// between nodes (first key of `pg_advisory_xact_lock(int, int)`).
const DEDUP_LOCK: i32 = 0x6775_6963;

/// Stores one message unless an earlier one of the same route, sender
/// and control id was received at or after `$16` (`NULL`: no window).
const INGEST: &str = "
WITH earlier AS (
    SELECT id FROM messages
    WHERE $16::BIGINT IS NOT NULL AND route = $1::TEXT AND dedup_key = $5::TEXT
      AND control_id = $11::TEXT AND received_at_ms >= $16::BIGINT
    ORDER BY id
    LIMIT 1
), stored AS (
    INSERT INTO messages (route, received_at_ms, peer_app, peer_addr, dedup_key,
        sending_application, sending_facility, receiving_application, receiving_facility,
        message_type, control_id, version, body, body_len, sealed, state)
    SELECT $1::TEXT, $2::BIGINT, $3::TEXT, $4::TEXT, $5::TEXT, $6::TEXT, $7::TEXT, $8::TEXT,
        $9::TEXT, $10::TEXT, $11::TEXT, $12::TEXT, $13::BYTEA, $14::BIGINT, $15::BOOLEAN, 'queued'
    WHERE NOT EXISTS (SELECT 1 FROM earlier)
    RETURNING id
)
SELECT id, FALSE AS duplicate FROM stored
UNION ALL
SELECT id, TRUE AS duplicate FROM earlier";

/// Locks the batch's duplicate keys in one global order (no deadlock
/// between nodes), so that two nodes cannot both store one message.
const DEDUP_LOCKS: &str = "
SELECT pg_advisory_xact_lock($4::INTEGER, key) FROM (
    SELECT DISTINCT hashtext(r || chr(31) || d || chr(31) || c) AS key
    FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS t(r, d, c)
    ORDER BY key
) AS keys";

/// One atomic upsert: taken when free, expired or already ours.
const ACQUIRE_LEASE: &str = "
INSERT INTO leases AS l (route, holder, expires_at_ms) VALUES ($1::TEXT, $2::TEXT, $3::BIGINT + $4::BIGINT)
ON CONFLICT (route) DO UPDATE SET holder = EXCLUDED.holder, expires_at_ms = EXCLUDED.expires_at_ms
WHERE l.holder = EXCLUDED.holder OR l.expires_at_ms <= $3::BIGINT
RETURNING holder";

const RELEASE_LEASE: &str = "DELETE FROM leases WHERE route = $1::TEXT AND holder = $2::TEXT";

/// Back in line as `failed` (as the SQLite backend does): the worker
/// treats it as a retry, due now (`next_attempt_at_ms` is unchanged).
const RECOVER: &str = "
UPDATE messages SET state = 'failed', redelivered = TRUE
WHERE route = $1::TEXT AND state = 'in_flight'";

const RECORD: &str = "
UPDATE messages SET state = $2::TEXT, attempts = attempts + 1, last_error = $3::TEXT,
    ack_code = $4::TEXT, next_attempt_at_ms = $5::BIGINT, finished_at_ms = $6::BIGINT
WHERE id = $1::BIGINT";

/// What a replay resets: back in line, to be sent now, flagged.
const REPLAYED: &str = "state = 'queued', attempts = 0, redelivered = TRUE, \
     next_attempt_at_ms = NULL, finished_at_ms = NULL";

const AUDIT: &str = "
INSERT INTO audit (at_ms, actor, action, message_id) VALUES ($1::BIGINT, $2::TEXT, $3::TEXT, $4::BIGINT)";

/// The writer's statements, prepared once per connection.
pub(super) struct Statements {
    ingest: Statement,
    dedup_locks: Statement,
    acquire_lease: Statement,
    release_lease: Statement,
    recover: Statement,
    claim: Statement,
    record: Statement,
    replay_one: Statement,
    replay_route: Statement,
    audit: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        let claim = format!(
            "UPDATE messages SET state = 'in_flight' WHERE id IN (
                 SELECT id FROM messages WHERE route = $1::TEXT AND state IN ('queued', 'failed')
                 ORDER BY id LIMIT $2::BIGINT FOR UPDATE)
             RETURNING {CLAIMED_COLUMNS}"
        );
        let replay_one = format!(
            "WITH replayed AS (
                 UPDATE messages SET {REPLAYED} WHERE id = $1::BIGINT AND body IS NOT NULL RETURNING id)
             SELECT EXISTS (SELECT 1 FROM replayed) AS replayed,
                    EXISTS (SELECT 1 FROM messages WHERE id = $1::BIGINT) AS found"
        );
        let replay_route = format!(
            "UPDATE messages SET {REPLAYED}
             WHERE route = $1::TEXT AND state = ANY($2::TEXT[]) AND body IS NOT NULL"
        );
        let (ingest, dedup_locks, acquire_lease, release_lease, recover) = tokio::try_join!(
            client.prepare(INGEST),
            client.prepare(DEDUP_LOCKS),
            client.prepare(ACQUIRE_LEASE),
            client.prepare(RELEASE_LEASE),
            client.prepare(RECOVER),
        )?;
        let (claim, record, replay_one, replay_route, audit) = tokio::try_join!(
            client.prepare(&claim),
            client.prepare(RECORD),
            client.prepare(&replay_one),
            client.prepare(&replay_route),
            client.prepare(AUDIT),
        )?;
        Ok(Statements {
            ingest,
            dedup_locks,
            acquire_lease,
            release_lease,
            recover,
            claim,
            record,
            replay_one,
            replay_route,
            audit,
        })
    }
}

/// The statement(s) of one request.
pub(super) fn run<'a>(client: &'a Client, statements: &'a Statements, op: &'a Op) -> Step<'a> {
    match op {
        Op::Ingest(batch) => Box::pin(ingest(client, statements, batch)),
        Op::AcquireLease {
            route,
            node,
            now_ms,
            ttl_ms,
        } => Box::pin(async move {
            let rows = client
                .query(&statements.acquire_lease, &[route, node, now_ms, ttl_ms])
                .await?;
            Ok(Ok(Done::Held(!rows.is_empty())))
        }),
        Op::ReleaseLease { route, node } => Box::pin(async move {
            client
                .execute(&statements.release_lease, &[route, node])
                .await?;
            Ok(Ok(Done::Unit))
        }),
        Op::Recover(route) => Box::pin(async move {
            let count = client.execute(&statements.recover, &[route]).await?;
            Ok(Ok(Done::Count(count)))
        }),
        Op::Claim { route, limit } => Box::pin(claim(client, statements, route, *limit)),
        Op::Record { id, outcome } => Box::pin(record(client, statements, *id, outcome)),
        Op::Replay(which) => Box::pin(replay(client, statements, which)),
        Op::Audit {
            at_ms,
            actor,
            action,
            id,
        } => Box::pin(async move {
            let id = id.map(|id| id.0);
            client
                .execute(&statements.audit, &[at_ms, actor, action, &id])
                .await?;
            Ok(Ok(Done::Unit))
        }),
        Op::Barrier => Box::pin(async { Ok(Ok(Done::Unit)) }),
    }
}

/// The advisory locks of every message of `ops` that asks for duplicate
/// detection, taken before any of them is looked up; `None` if none does.
pub(super) fn dedup_locks<'a>(
    client: &'a Client,
    statements: &'a Statements,
    ops: impl Iterator<Item = &'a Op>,
) -> Option<Step<'a>> {
    let deduped: Vec<&NewMessage> = ops
        .filter_map(|op| match op {
            Op::Ingest(batch) => Some(batch.iter().filter(|m| m.dedup_since_ms.is_some())),
            _ => None,
        })
        .flatten()
        .collect();
    if deduped.is_empty() {
        return None;
    }
    let routes: Vec<&str> = deduped.iter().map(|m| m.route.as_str()).collect();
    let keys: Vec<&str> = deduped.iter().map(|m| m.dedup_key.as_str()).collect();
    let controls: Vec<&str> = deduped.iter().map(|m| m.meta.control_id.as_str()).collect();
    Some(Box::pin(async move {
        client
            .execute(
                &statements.dedup_locks,
                &[&routes, &keys, &controls, &DEDUP_LOCK],
            )
            .await?;
        Ok(Ok(Done::Unit))
    }))
}

async fn ingest(
    client: &Client,
    statements: &Statements,
    batch: &[NewMessage],
) -> Result<Result<Done, JournalError>, tokio_postgres::Error> {
    let inserts = batch
        .iter()
        .map(|message| Box::pin(ingest_one(client, statements, message)) as Pinned<'_, _>)
        .collect();
    let results = join_in_order(inserts).await;
    let ingested = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Ok(Done::Ingested(ingested)))
}

async fn ingest_one(
    client: &Client,
    statements: &Statements,
    m: &NewMessage,
) -> Result<Ingested, tokio_postgres::Error> {
    let body_len = m.body.len() as i64;
    let meta = &m.meta;
    let row = client
        .query_one(
            &statements.ingest,
            &[
                &m.route,
                &m.received_at_ms,
                &m.peer_app,
                &m.peer_addr,
                &m.dedup_key,
                &meta.sending_application,
                &meta.sending_facility,
                &meta.receiving_application,
                &meta.receiving_facility,
                &meta.message_type,
                &meta.control_id,
                &meta.version,
                &m.body,
                &body_len,
                &m.sealed,
                &m.dedup_since_ms,
            ],
        )
        .await?;
    let id = MessageId(row.try_get("id")?);
    Ok(match row.try_get("duplicate")? {
        true => Ingested::Duplicate(id),
        false => Ingested::Stored(id),
    })
}

async fn claim(
    client: &Client,
    statements: &Statements,
    route: &str,
    limit: usize,
) -> Result<Result<Done, JournalError>, tokio_postgres::Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(&statements.claim, &[&route, &limit]).await?;
    let claimed: Result<Vec<_>, _> = rows.iter().map(rows::claimed).collect();
    Ok(claimed.map(|mut claimed| {
        claimed.sort_by_key(|c| c.id);
        Done::Claimed(claimed)
    }))
}

async fn record(
    client: &Client,
    statements: &Statements,
    id: MessageId,
    outcome: &Outcome,
) -> Result<Result<Done, JournalError>, tokio_postgres::Error> {
    let (state, error, ack_code, next_attempt_at_ms, finished_at_ms) = match outcome {
        Outcome::Delivered { ack_code, at_ms } => {
            ("delivered", None, Some(ack_code), None, Some(*at_ms))
        }
        Outcome::Retry {
            error,
            ack_code,
            next_attempt_at_ms,
        } => (
            "failed",
            Some(error),
            ack_code.as_ref(),
            Some(*next_attempt_at_ms),
            None,
        ),
        Outcome::Dead {
            error,
            ack_code,
            at_ms,
        } => ("dead", Some(error), ack_code.as_ref(), None, Some(*at_ms)),
    };
    let updated = client
        .execute(
            &statements.record,
            &[
                &id.0,
                &state,
                &error,
                &ack_code,
                &next_attempt_at_ms,
                &finished_at_ms,
            ],
        )
        .await?;
    Ok(match updated {
        0 => Err(JournalError::NotFound(id)),
        _ => Ok(Done::Unit),
    })
}

async fn replay(
    client: &Client,
    statements: &Statements,
    which: &Replay,
) -> Result<Result<Done, JournalError>, tokio_postgres::Error> {
    match which {
        Replay::One(id) => {
            let row = client.query_one(&statements.replay_one, &[&id.0]).await?;
            let (replayed, found): (bool, bool) = (row.try_get("replayed")?, row.try_get("found")?);
            Ok(match (replayed, found) {
                (true, _) => Ok(Done::Count(1)),
                (false, true) => Err(JournalError::NoBody(*id)),
                (false, false) => Err(JournalError::NotFound(*id)),
            })
        }
        Replay::Route { route, states } => {
            let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            let count = client
                .execute(&statements.replay_route, &[route, &states])
                .await?;
            Ok(Ok(Done::Count(count)))
        }
    }
}
