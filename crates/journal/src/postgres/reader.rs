//! Reads (list, get, body, stats) and pruning, on a connection of their
//! own: a long listing never delays an ingest's commit.
//!
//! Prune runs here too, in small single-statement transactions, after the
//! writer has applied every write queued before it (see
//! [`super::request::Op::Barrier`]). It only touches delivered and dead
//! messages, which ingest never does, so the two never wait on each other.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use super::rows::{self, get, RECORD_COLUMNS};
use super::session::{describe, Backoff, Target};
use crate::{Filter, JournalError, MessageId, MessageRecord, PruneReport, RouteStats};

/// A read (or prune chunk) that takes longer is abandoned with its
/// connection.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows changed per prune statement: each is a short transaction.
const PRUNE_CHUNK: i64 = 1000;

const LIST_DEFAULT_LIMIT: usize = 100;

/// Bodies of up to `$2` messages finished before `$1`, through the
/// partial index of those that still have one. The state is checked again
/// on the row updated, in case a replay moved it meanwhile.
const PRUNE_BODIES: &str = "
WITH chunk AS (
    SELECT id FROM messages
    WHERE finished_at_ms < $1 AND body IS NOT NULL AND state IN ('delivered', 'dead')
    LIMIT $2
), pruned AS (
    UPDATE messages m SET body = NULL
    FROM chunk WHERE m.id = chunk.id AND m.state IN ('delivered', 'dead')
    RETURNING m.id
)
SELECT count(*) AS changed FROM pruned";

/// Up to `$2` finished messages received before `$1`.
const PRUNE_RECORDS: &str = "
WITH chunk AS (
    SELECT id FROM messages
    WHERE received_at_ms < $1 AND state IN ('delivered', 'dead')
    LIMIT $2
), deleted AS (
    DELETE FROM messages m USING chunk
    WHERE m.id = chunk.id AND m.state IN ('delivered', 'dead')
    RETURNING m.id
)
SELECT count(*) AS changed FROM deleted";

/// Pending and dead rows only, each from its partial index: the cost does
/// not grow with the delivered history.
/// Only messages still owed, and dead ones, each read through its
/// partial index: the cost does not grow with the delivered history.
const STATS: &str = "
SELECT route,
    count(*) FILTER (WHERE state IN ('queued', 'in_flight', 'failed')) AS depth,
    count(*) FILTER (WHERE state = 'in_flight') AS in_flight,
    count(*) FILTER (WHERE state = 'failed') AS failed,
    count(*) FILTER (WHERE state = 'dead') AS dead,
    min(received_at_ms) FILTER (WHERE state IN ('queued', 'in_flight', 'failed')) AS oldest
FROM (
    SELECT route, state, received_at_ms FROM messages
    WHERE state IN ('queued', 'in_flight', 'failed')
    UNION ALL
    SELECT route, state, received_at_ms FROM messages WHERE state = 'dead'
) AS owed_or_dead
GROUP BY route ORDER BY route";

/// The read connection, opened again on demand after it is lost.
pub(super) struct Reader {
    target: Target,
    connection: Mutex<Connection>,
}

struct Connection {
    client: Option<Arc<Client>>,
    backoff: Backoff,
}

pub(super) type Params = Vec<(Box<dyn ToSql + Sync + Send>, Type)>;

impl Reader {
    pub(super) fn new(target: Target, client: Client) -> Reader {
        Reader {
            target,
            connection: Mutex::new(Connection {
                client: Some(Arc::new(client)),
                backoff: Backoff::new(),
            }),
        }
    }

    pub(super) async fn list(&self, filter: Filter) -> Result<Vec<MessageRecord>, JournalError> {
        let (sql, params) = list_query(&filter);
        self.query(&sql, params)
            .await?
            .iter()
            .map(rows::record)
            .collect()
    }

    pub(super) async fn get(&self, id: MessageId) -> Result<MessageRecord, JournalError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1");
        let rows = self.query(&sql, vec![(Box::new(id.0), Type::INT8)]).await?;
        rows.first()
            .map(rows::record)
            .ok_or(JournalError::NotFound(id))?
    }

    pub(super) async fn body(&self, id: MessageId) -> Result<Vec<u8>, JournalError> {
        let sql = "SELECT body FROM messages WHERE id = $1";
        let rows = self.query(sql, vec![(Box::new(id.0), Type::INT8)]).await?;
        let row = rows.first().ok_or(JournalError::NotFound(id))?;
        get::<Option<Vec<u8>>>(row, "body")?.ok_or(JournalError::NoBody(id))
    }

    pub(super) async fn stats(&self) -> Result<Vec<RouteStats>, JournalError> {
        self.query(STATS, Vec::new())
            .await?
            .iter()
            .map(route_stats)
            .collect()
    }

    /// Bodies first (finished before `bodies_before_ms`), then whole
    /// records (received before `records_before_ms`), chunk by chunk.
    pub(super) async fn prune(
        &self,
        bodies_before_ms: i64,
        records_before_ms: i64,
    ) -> Result<PruneReport, JournalError> {
        Ok(PruneReport {
            bodies_deleted: self.in_chunks(PRUNE_BODIES, bodies_before_ms).await?,
            records_deleted: self.in_chunks(PRUNE_RECORDS, records_before_ms).await?,
        })
    }

    /// Runs a prune statement until it changes nothing; how many it changed.
    async fn in_chunks(&self, sql: &str, before_ms: i64) -> Result<u64, JournalError> {
        let mut total = 0;
        loop {
            let params: Params = vec![
                (Box::new(before_ms), Type::INT8),
                (Box::new(PRUNE_CHUNK), Type::INT8),
            ];
            let rows = self.query(sql, params).await?;
            let changed = rows
                .first()
                .map(|row| get::<i64>(row, "changed"))
                .transpose()?;
            match changed.unwrap_or(0) {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    }

    /// One statement, typed (no separate prepare round trip).
    pub(super) async fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>, JournalError> {
        let client = self.client().await?;
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
            .iter()
            .map(|(value, ty)| (value.as_ref() as &(dyn ToSql + Sync), ty.clone()))
            .collect();
        match tokio::time::timeout(READ_TIMEOUT, client.query_typed(sql, &typed)).await {
            Ok(rows) => rows.map_err(|e| JournalError::Query(describe(&e))),
            Err(_) => {
                self.forget(&client).await;
                Err(JournalError::Query(format!(
                    "no answer from the journal database within {READ_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Drops a connection that stopped answering; the next read opens another.
    async fn forget(&self, client: &Arc<Client>) {
        let mut connection = self.connection.lock().await;
        if connection
            .client
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, client))
        {
            connection.client = None;
        }
    }

    /// The connection, reconnecting if it was lost and the backoff allows.
    async fn client(&self) -> Result<Arc<Client>, JournalError> {
        let mut connection = self.connection.lock().await;
        if let Some(client) = connection.client.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        connection.client = None;
        if !connection.backoff.ready() {
            return Err(JournalError::Query(format!(
                "journal database {} unreachable",
                self.target.location()
            )));
        }
        match self.target.connect("reader").await {
            Ok(client) => {
                connection.backoff.succeeded();
                let client = Arc::new(client);
                connection.client = Some(client.clone());
                Ok(client)
            }
            Err(reason) => {
                connection.backoff.failed();
                Err(JournalError::Query(format!(
                    "journal database {} unreachable: {reason}",
                    self.target.location()
                )))
            }
        }
    }
}

/// The listing's SQL: only the filters that are set, so each plans well.
fn list_query(filter: &Filter) -> (String, Params) {
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE TRUE");
    let mut params: Params = Vec::new();
    let mut add =
        |sql: &mut String, clause: &str, value: Box<dyn ToSql + Sync + Send>, ty: Type| {
            params.push((value, ty));
            *sql += &clause.replace('?', &format!("${}", params.len()));
        };
    if let Some(route) = &filter.route {
        add(
            &mut sql,
            " AND route = ?",
            Box::new(route.clone()),
            Type::TEXT,
        );
    }
    if let Some(state) = filter.state {
        add(
            &mut sql,
            " AND state = ?",
            Box::new(state.as_str()),
            Type::TEXT,
        );
    }
    if let Some(since) = filter.since_ms {
        add(
            &mut sql,
            " AND received_at_ms >= ?",
            Box::new(since),
            Type::INT8,
        );
    }
    if let Some(message_type) = &filter.message_type {
        let clause = " AND (message_type = ? OR starts_with(message_type, ? || '^'))";
        add(&mut sql, clause, Box::new(message_type.clone()), Type::TEXT);
    }
    if let Some(control_id) = &filter.control_id {
        add(
            &mut sql,
            " AND control_id = ?",
            Box::new(control_id.clone()),
            Type::TEXT,
        );
    }
    let limit = match filter.limit {
        0 => LIST_DEFAULT_LIMIT,
        n => n,
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    add(
        &mut sql,
        " ORDER BY id DESC LIMIT ?",
        Box::new(limit),
        Type::INT8,
    );
    (sql, params)
}

fn route_stats(row: &Row) -> Result<RouteStats, JournalError> {
    let count = |column: &str| get::<i64>(row, column).map(|n| n.max(0) as u64);
    Ok(RouteStats {
        route: get(row, "route")?,
        depth: count("depth")?,
        in_flight: count("in_flight")?,
        failed: count("failed")?,
        dead: count("dead")?,
        oldest_pending_ms: get(row, "oldest")?,
    })
}
