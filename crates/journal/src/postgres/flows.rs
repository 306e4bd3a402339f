//! The `flows` table: observed aggregates added up, and read back.
//!
//! Both run on the reader's connection: a flush is one statement (hence
//! one transaction), so it needs neither the writer's order nor its
//! group commit, and never waits behind an ingest.

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::reader::{Params, Reader};
use super::rows::get;
use crate::flows::totals;
use crate::{FlowCount, FlowKey, FlowTotal, JournalError};

/// Every count of a flush in one statement, as parallel arrays. The
/// flush gives each key and outcome once: a row is never updated twice.
const ADD: &str = "
INSERT INTO flows (route, kind, direction, application, source, target, message_type,
                   tls_in, tls_out, outcome, hits, first_seen_ms, last_seen_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::bool[], $9::bool[], $10::text[], $11::int8[], $12::int8[],
                     $13::int8[])
ON CONFLICT (route, kind, direction, application, source, target, message_type,
             tls_in, tls_out, outcome)
DO UPDATE SET hits = flows.hits + excluded.hits,
              first_seen_ms = LEAST(flows.first_seen_ms, excluded.first_seen_ms),
              last_seen_ms = GREATEST(flows.last_seen_ms, excluded.last_seen_ms)";

const ALL: &str = "
SELECT route, kind, direction, application, source, target, message_type,
       tls_in, tls_out, outcome, hits, first_seen_ms, last_seen_ms
FROM flows
ORDER BY route, kind, direction, application, source, target, message_type,
         tls_in, tls_out, outcome";

/// One typed parameter, as [`Reader::query`] takes them.
type Param = (Box<dyn ToSql + Sync + Send>, Type);

pub(super) async fn add(reader: &Reader, counts: &[FlowCount]) -> Result<(), JournalError> {
    let text = |f: fn(&FlowCount) -> &str| -> Param {
        let values: Vec<String> = counts.iter().map(|c| f(c).to_string()).collect();
        (Box::new(values), Type::TEXT_ARRAY)
    };
    let flag = |f: fn(&FlowKey) -> bool| -> Param {
        let values: Vec<bool> = counts.iter().map(|c| f(&c.key)).collect();
        (Box::new(values), Type::BOOL_ARRAY)
    };
    let number = |f: fn(&FlowCount) -> i64| -> Param {
        let values: Vec<i64> = counts.iter().map(f).collect();
        (Box::new(values), Type::INT8_ARRAY)
    };
    let params: Params = vec![
        text(|c| &c.key.route),
        text(|c| &c.key.kind),
        text(|c| &c.key.direction),
        text(|c| &c.key.application),
        text(|c| &c.key.source),
        text(|c| &c.key.target),
        text(|c| &c.key.message_type),
        flag(|k| k.tls_in),
        flag(|k| k.tls_out),
        text(|c| &c.outcome),
        number(|c| i64::try_from(c.count).unwrap_or(i64::MAX)),
        number(|c| c.first_ms),
        number(|c| c.last_ms),
    ];
    reader.query(ADD, params).await.map(|_| ())
}

pub(super) async fn all(reader: &Reader) -> Result<Vec<FlowTotal>, JournalError> {
    let rows = reader.query(ALL, Vec::new()).await?;
    let counts = rows.iter().map(count_from).collect::<Result<_, _>>()?;
    Ok(totals(counts))
}

fn count_from(row: &Row) -> Result<FlowCount, JournalError> {
    Ok(FlowCount {
        key: FlowKey {
            route: get(row, "route")?,
            kind: get(row, "kind")?,
            direction: get(row, "direction")?,
            application: get(row, "application")?,
            source: get(row, "source")?,
            target: get(row, "target")?,
            message_type: get(row, "message_type")?,
            tls_in: get(row, "tls_in")?,
            tls_out: get(row, "tls_out")?,
        },
        outcome: get(row, "outcome")?,
        count: u64::try_from(get::<i64>(row, "hits")?).unwrap_or(0),
        first_ms: get(row, "first_seen_ms")?,
        last_ms: get(row, "last_seen_ms")?,
    })
}
