//! From PostgreSQL rows to the journal's types. Every column is read with
//! `try_get`: a schema that does not match is an error, never a panic.

use tokio_postgres::Row;

use crate::{Claimed, JournalError, MessageId, MessageRecord, Meta, State};

/// What [`record`] reads. `body_len` is kept after a prune; a pruned
/// body reads as no body at all.
pub(super) const RECORD_COLUMNS: &str = "id, route, received_at_ms, peer_app, peer_addr, \
     sending_application, sending_facility, receiving_application, receiving_facility, \
     message_type, control_id, version, state, attempts, redelivered, last_error, ack_code, \
     next_attempt_at_ms, finished_at_ms, \
     CASE WHEN body IS NULL THEN NULL ELSE body_len END AS body_len, sealed";

/// What [`claimed`] reads, in its order.
pub(super) const CLAIMED_COLUMNS: &str = "id, route, received_at_ms, \
     sending_application, sending_facility, receiving_application, receiving_facility, \
     message_type, control_id, version, body, sealed, attempts, redelivered, next_attempt_at_ms";

pub(super) fn record(row: &Row) -> Result<MessageRecord, JournalError> {
    Ok(MessageRecord {
        id: MessageId(get(row, "id")?),
        route: get(row, "route")?,
        received_at_ms: get(row, "received_at_ms")?,
        peer_app: get(row, "peer_app")?,
        peer_addr: get(row, "peer_addr")?,
        meta: meta(row)?,
        state: state(row)?,
        attempts: attempts(row)?,
        redelivered: get(row, "redelivered")?,
        last_error: get(row, "last_error")?,
        ack_code: get(row, "ack_code")?,
        next_attempt_at_ms: get(row, "next_attempt_at_ms")?,
        finished_at_ms: get(row, "finished_at_ms")?,
        body_len: get::<Option<i64>>(row, "body_len")?.map(|len| len.max(0) as u64),
        sealed: get(row, "sealed")?,
    })
}

pub(super) fn claimed(row: &Row) -> Result<Claimed, JournalError> {
    let id = MessageId(get(row, "id")?);
    Ok(Claimed {
        id,
        route: get(row, "route")?,
        received_at_ms: get(row, "received_at_ms")?,
        meta: meta(row)?,
        body: get::<Option<Vec<u8>>>(row, "body")?.ok_or(JournalError::NoBody(id))?,
        sealed: get(row, "sealed")?,
        attempts: attempts(row)?,
        redelivered: get(row, "redelivered")?,
        next_attempt_at_ms: get(row, "next_attempt_at_ms")?,
    })
}

fn meta(row: &Row) -> Result<Meta, JournalError> {
    Ok(Meta {
        sending_application: get(row, "sending_application")?,
        sending_facility: get(row, "sending_facility")?,
        receiving_application: get(row, "receiving_application")?,
        receiving_facility: get(row, "receiving_facility")?,
        message_type: get(row, "message_type")?,
        control_id: get(row, "control_id")?,
        version: get(row, "version")?,
    })
}

fn state(row: &Row) -> Result<State, JournalError> {
    get::<String>(row, "state")?
        .parse()
        .map_err(JournalError::Query)
}

fn attempts(row: &Row) -> Result<u32, JournalError> {
    Ok(get::<i32>(row, "attempts")?.max(0) as u32)
}

/// One column by name.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: &str,
) -> Result<T, JournalError> {
    row.try_get(column)
        .map_err(|e| JournalError::Query(format!("reading column {column}: {e}")))
}
