//! Why a journal operation failed. Messages name the journal and what to
//! do; they never carry message content.

use crate::MessageId;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal cannot be opened as it is: refuse to start.
    #[error("journal {location}: {reason}")]
    Open { location: String, reason: String },

    /// A write could not be made durable (disk full, read-only file,
    /// database down): nothing of the request was stored.
    #[error("journal write failed: {0}")]
    Unavailable(String),

    /// A read or bookkeeping query failed.
    #[error("journal query failed: {0}")]
    Query(String),

    #[error("message {0} is not in the journal")]
    NotFound(MessageId),

    #[error("message {0} has no stored body any more (pruned after delivery)")]
    NoBody(MessageId),

    /// A sealed body without the key, or with another key.
    #[error("stored body of message {id} cannot be opened: {reason}")]
    Sealed { id: MessageId, reason: String },

    /// The key file cannot be used.
    #[error("body key {path}: {reason}")]
    Key { path: String, reason: String },
}
