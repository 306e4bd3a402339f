//! Reads: on their own read-only connections, on the blocking pool. In WAL
//! mode a reader sees the last commit and never waits for the writer's
//! transaction, so a `journal list` during an ingest burst delays no ACK.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Type, Value};
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use crate::{Filter, JournalError, MessageId, MessageRecord, Meta, RouteStats, State};

/// Idle read connections kept for reuse; more are opened under load.
const MAX_IDLE: usize = 4;
/// Every read without a limit returns at most this many records.
const DEFAULT_LIMIT: usize = 100;
/// How long a statement waits on a lock (WAL recovery, checkpoint).
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A small pool of read-only connections to one journal file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn failed(e: rusqlite::Error) -> JournalError {
    JournalError::Query(e.to_string())
}

impl Readers {
    pub(super) fn new(path: &Path) -> Arc<Readers> {
        Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `read` on a read connection, off the async threads.
    pub(super) async fn run<T, F>(self: Arc<Self>, read: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || self.with_connection(read))
            .await
            .map_err(|e| JournalError::Query(format!("a journal read stopped: {e}")))?
    }

    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let conn = self.take()?;
        let result = read(&conn);
        self.put_back(conn);
        result
    }

    fn take(&self) -> Result<Connection, JournalError> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match reused {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path).map_err(failed),
        }
    }

    fn put_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// The columns [`record_from`] reads, in its order. The body's length is
/// shown only while the body is kept.
const RECORD_COLUMNS: &str = "id, route, received_at_ms, peer_app, peer_addr,
    sending_application, sending_facility, receiving_application, receiving_facility,
    message_type, control_id, version, state, attempts, redelivered, last_error, ack_code,
    next_attempt_at_ms, finished_at_ms,
    CASE WHEN has_body = 1 THEN body_len END, sealed";

fn record_from(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: MessageId(row.get(0)?),
        route: row.get(1)?,
        received_at_ms: row.get(2)?,
        peer_app: row.get(3)?,
        peer_addr: row.get(4)?,
        meta: meta_from(row, 5)?,
        state: state_from(row, 12)?,
        attempts: row.get(13)?,
        redelivered: row.get(14)?,
        last_error: row.get(15)?,
        ack_code: row.get(16)?,
        next_attempt_at_ms: row.get(17)?,
        finished_at_ms: row.get(18)?,
        body_len: row.get(19)?,
        sealed: row.get(20)?,
    })
}

/// The seven MSH columns, from `start` on, in schema order.
pub(super) fn meta_from(row: &Row<'_>, start: usize) -> rusqlite::Result<Meta> {
    Ok(Meta {
        sending_application: row.get(start)?,
        sending_facility: row.get(start + 1)?,
        receiving_application: row.get(start + 2)?,
        receiving_facility: row.get(start + 3)?,
        message_type: row.get(start + 4)?,
        control_id: row.get(start + 5)?,
        version: row.get(start + 6)?,
    })
}

fn state_from(row: &Row<'_>, index: usize) -> rusqlite::Result<State> {
    let text: String = row.get(index)?;
    text.parse().map_err(|reason: String| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, reason.into())
    })
}

/// `states` as an SQL list of literals (`'queued', 'dead'`): the names
/// come from [`State::as_str`], never from a caller.
pub(super) fn state_sql(states: &[State]) -> String {
    let quoted: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    quoted.join(", ")
}

pub(super) fn get(conn: &Connection, id: MessageId) -> Result<MessageRecord, JournalError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id.0], record_from).optional())
        .map_err(failed)?
        .ok_or(JournalError::NotFound(id))
}

pub(super) fn body(conn: &Connection, id: MessageId) -> Result<Vec<u8>, JournalError> {
    let body: Option<Option<Vec<u8>>> = conn
        .prepare_cached(
            "SELECT (SELECT body FROM bodies WHERE bodies.id = messages.id)
             FROM messages WHERE id = ?1",
        )
        .and_then(|mut s| s.query_row([id.0], |row| row.get(0)).optional())
        .map_err(failed)?;
    body.ok_or(JournalError::NotFound(id))?
        .ok_or(JournalError::NoBody(id))
}

/// Newest first. Each filter adds a condition (so SQLite can pick an
/// index for it); values are always bound, never spliced.
pub(super) fn list(conn: &Connection, filter: &Filter) -> Result<Vec<MessageRecord>, JournalError> {
    let (conditions, mut args) = conditions(filter);
    let limit = if filter.limit == 0 {
        DEFAULT_LIMIT
    } else {
        filter.limit
    };
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM messages");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(failed)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), record_from)
        .map_err(failed)?;
    rows.collect::<rusqlite::Result<_>>().map_err(failed)
}

fn conditions(filter: &Filter) -> (Vec<String>, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    let mut bind = |template: &str, value: Value| {
        args.push(value);
        conditions.push(template.replace("?N", &format!("?{}", args.len())));
    };
    if let Some(route) = &filter.route {
        bind("route = ?N", Value::Text(route.clone()));
    }
    if let Some(state) = filter.state {
        bind("state = ?N", Value::Text(state.as_str().to_string()));
    }
    if let Some(since) = filter.since_ms {
        bind("received_at_ms >= ?N", Value::Integer(since));
    }
    if let Some(message_type) = &filter.message_type {
        // MSH-9 itself, or its first components: "ADT^A01" is a prefix of
        // "ADT^A01^ADT_A01" but "ADT^A011" is another event. No LIKE: a
        // "_" or "%" in the filter means itself.
        let matches = "(message_type = ?N OR substr(message_type, 1, length(?N) + 1) = ?N || '^')";
        bind(matches, Value::Text(message_type.clone()));
    }
    if let Some(control_id) = &filter.control_id {
        bind("control_id = ?N", Value::Text(control_id.clone()));
    }
    (conditions, args)
}

/// One row per route that has messages, by route name.
pub(super) fn stats(conn: &Connection) -> Result<Vec<RouteStats>, JournalError> {
    // Pending and dead rows only, each read through its partial index: the
    // cost does not grow with the delivered history.
    let sql = "SELECT route, SUM(state <> 'dead'),
                      SUM(state = 'in_flight'), SUM(state = 'failed'),
                      SUM(state = 'dead'),
                      MIN(CASE WHEN state <> 'dead' THEN received_at_ms END)
               FROM (SELECT route, state, received_at_ms FROM messages
                         WHERE state <> 'delivered' AND state <> 'dead'
                     UNION ALL
                     SELECT route, state, received_at_ms FROM messages
                         WHERE state = 'dead')
               GROUP BY route ORDER BY route";
    let count =
        |row: &Row<'_>, i: usize| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    let rows = stmt
        .query_map([], |row| {
            Ok(RouteStats {
                route: row.get(0)?,
                depth: count(row, 1)?,
                in_flight: count(row, 2)?,
                failed: count(row, 3)?,
                dead: count(row, 4)?,
                oldest_pending_ms: row.get(5)?,
            })
        })
        .map_err(failed)?;
    rows.collect::<rusqlite::Result<_>>().map_err(failed)
}
