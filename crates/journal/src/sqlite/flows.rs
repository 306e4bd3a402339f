//! The `flows` table: observed aggregates added up, and read back.

use rusqlite::{params, Connection, Row};

use crate::flows::totals;
use crate::{FlowCount, FlowKey, FlowTotal, JournalError};

const ADD: &str = "
INSERT INTO flows (route, kind, direction, application, source, target, message_type,
                   tls_in, tls_out, outcome, hits, first_seen_ms, last_seen_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (route, kind, direction, application, source, target, message_type,
             tls_in, tls_out, outcome)
DO UPDATE SET hits = hits + excluded.hits,
              first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms),
              last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms)";

const ALL: &str = "
SELECT route, kind, direction, application, source, target, message_type,
       tls_in, tls_out, outcome, hits, first_seen_ms, last_seen_ms
FROM flows
ORDER BY route, kind, direction, application, source, target, message_type,
         tls_in, tls_out, outcome";

fn failed(e: rusqlite::Error) -> JournalError {
    JournalError::Query(e.to_string())
}

/// Adds every count, inside the writer's transaction.
pub(super) fn add(conn: &Connection, counts: &[FlowCount]) -> Result<(), JournalError> {
    let mut stmt = conn.prepare_cached(ADD).map_err(failed)?;
    for c in counts {
        let k = &c.key;
        let hits = i64::try_from(c.count).unwrap_or(i64::MAX);
        stmt.execute(params![
            k.route,
            k.kind,
            k.direction,
            k.application,
            k.source,
            k.target,
            k.message_type,
            k.tls_in,
            k.tls_out,
            c.outcome,
            hits,
            c.first_ms,
            c.last_ms
        ])
        .map_err(failed)?;
    }
    Ok(())
}

pub(super) fn all(conn: &Connection) -> Result<Vec<FlowTotal>, JournalError> {
    let mut stmt = conn.prepare_cached(ALL).map_err(failed)?;
    let rows = stmt.query_map([], count_from).map_err(failed)?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(failed)?;
    Ok(totals(rows))
}

fn count_from(row: &Row<'_>) -> rusqlite::Result<FlowCount> {
    Ok(FlowCount {
        key: FlowKey {
            route: row.get(0)?,
            kind: row.get(1)?,
            direction: row.get(2)?,
            application: row.get(3)?,
            source: row.get(4)?,
            target: row.get(5)?,
            message_type: row.get(6)?,
            tls_in: row.get(7)?,
            tls_out: row.get(8)?,
        },
        outcome: row.get(9)?,
        count: u64::try_from(row.get::<_, i64>(10)?).unwrap_or(0),
        first_ms: row.get(11)?,
        last_ms: row.get(12)?,
    })
}
