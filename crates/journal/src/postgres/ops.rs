//! The writer's statements, prepared once per connection: one per
//! request, except ingests, which are stored a run at a time (see
//! [`super::group`]).
//!
//! Each function here returns a [`Step`] that sends exactly one statement
//! when first polled: steps polled in order are sent in order.

use std::future::Future;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::pipeline::Pinned;
use super::request::{Done, Op};
use super::rows::{self, CLAIMED_COLUMNS};
use crate::{JournalError, MessageId, NewMessage, Outcome, Replay};

/// What one statement answered. `Err` aborted the transaction.
pub(super) enum Output {
    /// Nothing to read (BEGIN, locks, COMMIT).
    Unit,
    /// A request's answer: `Err` here is for the caller (not found, no
    /// body) and leaves the transaction intact.
    Answer(Result<Done, JournalError>),
    /// For each message of an ingest run, the stored one it repeats.
    Earlier(Vec<Option<MessageId>>),
    /// The ids of a run's inserted rows, in insertion order.
    Inserted(Vec<MessageId>),
    /// The ids of a run of outcomes that were found and recorded.
    Recorded(Vec<MessageId>),
}

pub(super) type Step<'a> = Pinned<'a, Result<Output, tokio_postgres::Error>>;

/// Namespace of the advisory locks that serialise duplicate detection
/// between nodes (first key of `pg_advisory_xact_lock(int, int)`).
const DEDUP_LOCK: i32 = 0x6775_6963;

/// For each message, the first stored one of the same route, sender and
/// control id received at or after its window's start (`NULL`: no window).
const EARLIER: &str = "
SELECT CASE WHEN t.since IS NULL THEN NULL ELSE (
    SELECT m.id FROM messages m
    WHERE m.route = t.route AND m.dedup_key = t.dedup_key AND m.control_id = t.control_id
      AND m.received_at_ms >= t.since
    ORDER BY m.id
    LIMIT 1) END AS earlier
FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[])
    WITH ORDINALITY AS t(route, dedup_key, control_id, since, ord)
ORDER BY t.ord";

/// Stores a run of messages in array order: ids are drawn in that order
/// (the sort comes before the identity default is computed) and RETURNING
/// follows it; [`super::group`] checks that the ids increase.
const INSERT_RUN: &str = "
INSERT INTO messages (route, received_at_ms, peer_app, peer_addr, dedup_key,
    sending_application, sending_facility, receiving_application, receiving_facility,
    message_type, control_id, version, body, body_len, sealed, state)
SELECT route, received_at_ms, peer_app, peer_addr, dedup_key, sending_application,
    sending_facility, receiving_application, receiving_facility, message_type, control_id,
    version, body, octet_length(body), sealed, 'queued'
FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
        $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[],
        $13::BYTEA[], $14::BOOLEAN[])
    WITH ORDINALITY AS t(route, received_at_ms, peer_app, peer_addr, dedup_key,
        sending_application, sending_facility, receiving_application, receiving_facility,
        message_type, control_id, version, body, sealed, ord)
ORDER BY t.ord
RETURNING id";

/// Locks a group's duplicate keys in one global order (no deadlock
/// between nodes), so that two nodes cannot both store one message: the
/// second waits for the first's commit, then sees its row.
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

/// A run of outcomes (distinct messages) in one statement: on a backlog
/// the delivery worker records a batch at a time, and one statement per
/// outcome was most of the journal's work per message. Each row is found
/// by primary key from the arrays.
const RECORD_RUN: &str = "
UPDATE messages AS m SET state = u.state, attempts = m.attempts + 1, last_error = u.error,
    ack_code = u.ack_code, next_attempt_at_ms = u.next_at, finished_at_ms = u.finished_at
FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[])
    AS u(id, state, error, ack_code, next_at, finished_at)
WHERE m.id = u.id
RETURNING m.id";

/// What a replay resets: back in line, to be sent now, flagged.
const REPLAYED: &str = "state = 'queued', attempts = 0, redelivered = TRUE, \
     next_attempt_at_ms = NULL, finished_at_ms = NULL";

const AUDIT: &str = "
INSERT INTO audit (at_ms, actor, action, message_id) VALUES ($1::BIGINT, $2::TEXT, $3::TEXT, $4::BIGINT)";

/// Up to `$2` of route `$1`'s claimable messages after id `$3`, in id
/// order, moved to `in_flight`. The inner query can only be answered in
/// order by `messages_claimable` (it is on `id + 0`, see
/// [`super::schema`]); the outer `UPDATE` finds the rows by primary key
/// from the array. Neither has another plan to flip to when the table's
/// statistics change.
fn claim_sql() -> String {
    format!(
        "UPDATE messages SET state = 'in_flight' WHERE id = ANY(ARRAY(
             SELECT id FROM messages
             WHERE route = $1::TEXT AND state IN ('queued', 'failed') AND id + 0 > $3::BIGINT
             ORDER BY id + 0 LIMIT $2::BIGINT FOR UPDATE))
         RETURNING {CLAIMED_COLUMNS}"
    )
}

/// The writer's statements, prepared once per connection.
pub(super) struct Statements {
    earlier: Statement,
    insert_run: Statement,
    dedup_locks: Statement,
    acquire_lease: Statement,
    release_lease: Statement,
    recover: Statement,
    claim: Statement,
    record: Statement,
    record_run: Statement,
    replay_one: Statement,
    replay_route: Statement,
    audit: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        let claim = claim_sql();
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
        let (earlier, insert_run, dedup_locks, acquire_lease, release_lease) = tokio::try_join!(
            client.prepare(EARLIER),
            client.prepare(INSERT_RUN),
            client.prepare(DEDUP_LOCKS),
            client.prepare(ACQUIRE_LEASE),
            client.prepare(RELEASE_LEASE),
        )?;
        let (recover, claim, record, record_run, replay_one, replay_route, audit) = tokio::try_join!(
            client.prepare(RECOVER),
            client.prepare(&claim),
            client.prepare(RECORD),
            client.prepare(RECORD_RUN),
            client.prepare(&replay_one),
            client.prepare(&replay_route),
            client.prepare(AUDIT),
        )?;
        Ok(Statements {
            earlier,
            insert_run,
            dedup_locks,
            acquire_lease,
            release_lease,
            recover,
            claim,
            record,
            record_run,
            replay_one,
            replay_route,
            audit,
        })
    }
}

/// The statement of one request other than an ingest (ingests are
/// stored by runs: [`earlier`], [`insert_run`]).
pub(super) fn request<'a>(client: &'a Client, statements: &'a Statements, op: &'a Op) -> Step<'a> {
    match op {
        Op::Ingest(_) => {
            answer(async { Ok(Err(JournalError::Query("an ingest outside its run".into()))) })
        }
        Op::AcquireLease {
            route,
            node,
            now_ms,
            ttl_ms,
        } => answer(async move {
            let rows = client
                .query(&statements.acquire_lease, &[route, node, now_ms, ttl_ms])
                .await?;
            Ok(Ok(Done::Held(!rows.is_empty())))
        }),
        Op::ReleaseLease { route, node } => answer(async move {
            client
                .execute(&statements.release_lease, &[route, node])
                .await?;
            Ok(Ok(Done::Unit))
        }),
        Op::Recover(route) => answer(async move {
            let count = client.execute(&statements.recover, &[route]).await?;
            Ok(Ok(Done::Count(count)))
        }),
        Op::Claim {
            route,
            limit,
            after,
        } => answer(claim(client, statements, route, *limit, *after)),
        Op::Record { id, outcome } => answer(record(client, statements, *id, outcome)),
        Op::Replay(which) => answer(replay(client, statements, which)),
        Op::Audit {
            at_ms,
            actor,
            action,
            id,
        } => answer(async move {
            let id = id.map(|id| id.0);
            client
                .execute(&statements.audit, &[at_ms, actor, action, &id])
                .await?;
            Ok(Ok(Done::Unit))
        }),
        Op::Barrier => answer(async { Ok(Ok(Done::Unit)) }),
    }
}

type Answer = Result<Result<Done, JournalError>, tokio_postgres::Error>;

fn answer<'a>(future: impl Future<Output = Answer> + Send + 'a) -> Step<'a> {
    Box::pin(async move { future.await.map(Output::Answer) })
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
        Ok(Output::Unit)
    }))
}

/// Looks up, for each message of a run, the stored message it repeats.
pub(super) fn earlier<'a>(
    client: &'a Client,
    statements: &'a Statements,
    run: &[&'a NewMessage],
) -> Step<'a> {
    let routes: Vec<&str> = run.iter().map(|m| m.route.as_str()).collect();
    let keys: Vec<&str> = run.iter().map(|m| m.dedup_key.as_str()).collect();
    let controls: Vec<&str> = run.iter().map(|m| m.meta.control_id.as_str()).collect();
    let since: Vec<Option<i64>> = run.iter().map(|m| m.dedup_since_ms).collect();
    Box::pin(async move {
        let rows = client
            .query(&statements.earlier, &[&routes, &keys, &controls, &since])
            .await?;
        let earlier = rows
            .iter()
            .map(|row| {
                row.try_get::<_, Option<i64>>("earlier")
                    .map(|id| id.map(MessageId))
            })
            .collect::<Result<_, _>>()?;
        Ok(Output::Earlier(earlier))
    })
}

/// Stores a run's messages with one statement.
pub(super) fn insert_run<'a>(
    client: &'a Client,
    statements: &'a Statements,
    run: &[&'a NewMessage],
) -> Step<'a> {
    let column = |f: fn(&'a NewMessage) -> &'a str| run.iter().map(|m| f(m)).collect::<Vec<&str>>();
    let routes = column(|m| &m.route);
    let peer_addrs = column(|m| &m.peer_addr);
    let dedup_keys = column(|m| &m.dedup_key);
    let sending_applications = column(|m| &m.meta.sending_application);
    let sending_facilities = column(|m| &m.meta.sending_facility);
    let receiving_applications = column(|m| &m.meta.receiving_application);
    let receiving_facilities = column(|m| &m.meta.receiving_facility);
    let message_types = column(|m| &m.meta.message_type);
    let control_ids = column(|m| &m.meta.control_id);
    let versions = column(|m| &m.meta.version);
    let received: Vec<i64> = run.iter().map(|m| m.received_at_ms).collect();
    let peer_apps: Vec<Option<&str>> = run.iter().map(|m| m.peer_app.as_deref()).collect();
    let bodies: Vec<&[u8]> = run.iter().map(|m| m.body.as_slice()).collect();
    let sealed: Vec<bool> = run.iter().map(|m| m.sealed).collect();
    Box::pin(async move {
        let params: [&(dyn ToSql + Sync); 14] = [
            &routes,
            &received,
            &peer_apps,
            &peer_addrs,
            &dedup_keys,
            &sending_applications,
            &sending_facilities,
            &receiving_applications,
            &receiving_facilities,
            &message_types,
            &control_ids,
            &versions,
            &bodies,
            &sealed,
        ];
        let rows = client.query(&statements.insert_run, &params).await?;
        let ids = rows
            .iter()
            .map(|row| row.try_get("id").map(MessageId))
            .collect::<Result<_, _>>()?;
        Ok(Output::Inserted(ids))
    })
}

pub(super) fn begin(client: &Client, lazy: bool) -> Step<'_> {
    let sql = match lazy {
        true => "BEGIN; SET LOCAL synchronous_commit = off",
        false => "BEGIN",
    };
    Box::pin(async move {
        client.batch_execute(sql).await?;
        Ok(Output::Unit)
    })
}

pub(super) fn commit(client: &Client) -> Step<'_> {
    Box::pin(async move {
        client.batch_execute("COMMIT").await?;
        Ok(Output::Unit)
    })
}

/// Claims (see [`claim_sql`]) after `after`, or from the start.
async fn claim(
    client: &Client,
    statements: &Statements,
    route: &str,
    limit: usize,
    after: Option<MessageId>,
) -> Answer {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let after = after.map_or(0, |id| id.0);
    let rows = client
        .query(&statements.claim, &[&route, &limit, &after])
        .await?;
    let claimed: Result<Vec<_>, _> = rows.iter().map(rows::claimed).collect();
    Ok(claimed.map(|mut claimed| {
        claimed.sort_by_key(|c| c.id);
        Done::Claimed(claimed)
    }))
}

/// Records a run of outcomes, of distinct messages, with one statement.
pub(super) fn record_run<'a>(
    client: &'a Client,
    statements: &'a Statements,
    run: &[(MessageId, &'a Outcome)],
) -> Step<'a> {
    let ids: Vec<i64> = run.iter().map(|(id, _)| id.0).collect();
    let columns: Vec<Columns<'a>> = run.iter().map(|(_, outcome)| columns(outcome)).collect();
    let states: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let errors: Vec<Option<&String>> = columns.iter().map(|c| c.1).collect();
    let ack_codes: Vec<Option<&String>> = columns.iter().map(|c| c.2).collect();
    let next_at: Vec<Option<i64>> = columns.iter().map(|c| c.3).collect();
    let finished_at: Vec<Option<i64>> = columns.iter().map(|c| c.4).collect();
    Box::pin(async move {
        let params: [&(dyn ToSql + Sync); 6] =
            [&ids, &states, &errors, &ack_codes, &next_at, &finished_at];
        let rows = client.query(&statements.record_run, &params).await?;
        let found = rows
            .iter()
            .map(|row| row.try_get("id").map(MessageId))
            .collect::<Result<_, _>>()?;
        Ok(Output::Recorded(found))
    })
}

/// An outcome's state, error, ACK code, next attempt and finish time.
type Columns<'a> = (
    &'static str,
    Option<&'a String>,
    Option<&'a String>,
    Option<i64>,
    Option<i64>,
);

fn columns(outcome: &Outcome) -> Columns<'_> {
    match outcome {
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
    }
}

async fn record(
    client: &Client,
    statements: &Statements,
    id: MessageId,
    outcome: &Outcome,
) -> Answer {
    let (state, error, ack_code, next_attempt_at_ms, finished_at_ms) = columns(outcome);
    let params: [&(dyn ToSql + Sync); 6] = [
        &id.0,
        &state,
        &error,
        &ack_code,
        &next_attempt_at_ms,
        &finished_at_ms,
    ];
    Ok(match client.execute(&statements.record, &params).await? {
        0 => Err(JournalError::NotFound(id)),
        _ => Ok(Done::Unit),
    })
}

async fn replay(client: &Client, statements: &Statements, which: &Replay) -> Answer {
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

#[cfg(test)]
mod tests {
    use guichet_testsupport::postgres::TestDatabase;
    use tokio_postgres::NoTls;

    use super::{claim_sql, RECORD_RUN};
    use crate::{open, OpenOptions, StoreSpec};

    /// 100,000 messages queued on one route behind 20,000 delivered ones,
    /// as after an outage on a journal with some history.
    const BACKLOG: &str = "
INSERT INTO messages (route, received_at_ms, peer_addr, dedup_key, sending_application,
    sending_facility, receiving_application, receiving_facility, message_type, control_id,
    version, body, body_len, sealed, state)
SELECT 'adt', g, '127.0.0.1:1', 'eai', 'EAI', 'CHU', 'LAB', 'CHU', 'ADT^A01', 'C' || g, '2.5',
    convert_to(repeat('x', 500), 'UTF8'), 500, FALSE,
    CASE WHEN g <= 20000 THEN 'delivered' ELSE 'queued' END
FROM generate_series(1, 120000) AS g";

    /// Issue 17: once ANALYZE had seen a backlog, the claim walked the
    /// primary key (or scanned the table and hashed), and the drain fell
    /// to a fraction of its rate. Its plan must be the same with and
    /// without statistics, generic (prepared) or custom.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_claim_reads_its_own_index_with_or_without_statistics() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let spec = StoreSpec::Postgres(db.url().to_string());
        drop(open(&spec, OpenOptions::default()).await.unwrap());
        let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(BACKLOG).await.unwrap();
        client
            .batch_execute(&format!(
                "PREPARE claim(TEXT, BIGINT, BIGINT) AS {};
                 PREPARE record_run(BIGINT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[]) AS {RECORD_RUN}",
                claim_sql()
            ))
            .await
            .unwrap();
        for analyzed in [false, true] {
            if analyzed {
                client.batch_execute("ANALYZE messages").await.unwrap();
            }
            for mode in ["force_generic_plan", "force_custom_plan"] {
                for after in [0, 20_000, 70_000] {
                    let sql = format!(
                        "SET plan_cache_mode = {mode}; EXPLAIN EXECUTE claim('adt', 32, {after})"
                    );
                    let plan = plan_text(&client, &sql).await;
                    println!("analyzed: {analyzed}, {mode}, after {after}:\n{plan}");
                    assert!(
                        plan.contains("Index Scan using messages_claimable")
                            && plan.contains("Index Scan using messages_pkey"),
                        "{plan}"
                    );
                    for other in ["Seq Scan", "Sort", "Hash", "Bitmap", "Nested Loop"] {
                        assert!(!plan.contains(other), "{other} in\n{plan}");
                    }
                }
                let sql = format!(
                    "SET plan_cache_mode = {mode}; EXPLAIN EXECUTE record_run(
                         '{{30000,30001}}', '{{delivered,delivered}}', '{{NULL,NULL}}',
                         '{{AA,AA}}', '{{NULL,NULL}}', '{{1,1}}')"
                );
                let plan = plan_text(&client, &sql).await;
                println!("analyzed: {analyzed}, {mode}, outcomes:\n{plan}");
                assert!(plan.contains("Index Scan using messages_pkey"), "{plan}");
                for other in ["Seq Scan", "Hash", "Bitmap"] {
                    assert!(!plan.contains(other), "{other} in\n{plan}");
                }
            }
        }
    }

    async fn plan_text(client: &tokio_postgres::Client, sql: &str) -> String {
        let mut lines = Vec::new();
        for message in client.simple_query(sql).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                lines.push(row.get(0).unwrap_or_default().to_string());
            }
        }
        lines.join("\n")
    }
}
