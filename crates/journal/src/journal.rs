//! The journal as the gateway and the CLI use it: a backend behind the
//! [`Store`] trait, plus the sealing of bodies.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    BodyKey, Claimed, Filter, FlowCount, FlowTotal, Ingested, JournalError, MessageId,
    MessageRecord, NewMessage, Outcome, PruneReport, Replay, RouteStats, Store,
};

/// Where the journal lives, parsed from the `store` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// One SQLite file (created 0600 on first start).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user:pass@host/db`).
    Postgres(String),
}

impl StoreSpec {
    /// `postgres://` or `postgresql://` is PostgreSQL; anything else is a
    /// SQLite file. Relative paths, the SQLite file's and the URL's
    /// `sslrootcert`, `sslcert` and `sslkey`, are taken from `base` (the
    /// config's folder).
    pub fn parse(value: &str, base: &Path) -> StoreSpec {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            StoreSpec::Postgres(crate::postgres::resolve_files(value, base))
        } else {
            StoreSpec::Sqlite(base.join(value))
        }
    }
}

/// Shown in logs and errors: a PostgreSQL password never is.
impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreSpec::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[derive(Debug)]
pub struct OpenOptions {
    /// Seals bodies at ingest and opens them at delivery.
    pub key: Option<BodyKey>,
    /// PostgreSQL: connections that store ingests, each committing on its
    /// own (see `postgres::lanes`). One by default; SQLite has one writer
    /// and ignores it.
    pub ingest_connections: usize,
    /// When an existing SQLite journal's pages are checked.
    pub check: IntegrityCheck,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            key: None,
            ingest_connections: 1,
            check: IntegrityCheck::default(),
        }
    }
}

/// When SQLite's `quick_check` reads an existing journal file: it reads
/// every page, which on a large journal takes minutes. The header, the
/// schema and the migrations are always checked before the journal
/// opens. (PostgreSQL checks its own pages.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IntegrityCheck {
    /// Before the journal opens: a damaged file is refused.
    #[default]
    AtOpen,
    /// On a thread of its own once the journal is open: start-up does not
    /// wait, and damage found is logged as an error, after which every
    /// ingest is refused (senders are answered with an error) until
    /// guichet is restarted on a sound file.
    Background,
}

/// Opens (and migrates) the journal. A SQLite file that is missing is
/// created; one that exists but is not a sound guichet journal is refused,
/// never replaced by an empty one.
pub async fn open(spec: &StoreSpec, options: OpenOptions) -> Result<Journal, JournalError> {
    let store: Arc<dyn Store> = match spec {
        StoreSpec::Sqlite(path) => {
            Arc::new(crate::sqlite::SqliteStore::open(path, options.check).await?)
        }
        StoreSpec::Postgres(url) => {
            let lanes = options.ingest_connections.max(1);
            Arc::new(crate::postgres::PgStore::connect(url, lanes).await?)
        }
    };
    Ok(Journal::new(store, options))
}

/// A journal: cheap to clone, shared by every route and connection.
#[derive(Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    key: Option<Arc<BodyKey>>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal").field("key", &self.key).finish()
    }
}

impl Journal {
    pub fn new(store: Arc<dyn Store>, options: OpenOptions) -> Journal {
        Journal {
            store,
            key: options.key.map(Arc::new),
        }
    }

    /// Stores a batch durably (see [`Store::ingest`]), sealing bodies when
    /// a key is set.
    pub async fn ingest(&self, mut batch: Vec<NewMessage>) -> Result<Vec<Ingested>, JournalError> {
        if let Some(key) = &self.key {
            for message in &mut batch {
                message.body = key.seal(&message.route, &message.body)?;
                message.sealed = true;
            }
        }
        self.store.ingest(batch).await
    }

    pub async fn acquire_lease(
        &self,
        route: &str,
        node: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, JournalError> {
        self.store.acquire_lease(route, node, now_ms, ttl_ms).await
    }

    pub async fn release_lease(&self, route: &str, node: &str) -> Result<(), JournalError> {
        self.store.release_lease(route, node).await
    }

    pub async fn recover(&self, route: &str) -> Result<u64, JournalError> {
        self.store.recover(route).await
    }

    /// The route's next messages, bodies opened. A body that cannot be
    /// opened fails the claim: delivering it sealed would corrupt it.
    pub async fn claim(&self, route: &str, limit: usize) -> Result<Vec<Claimed>, JournalError> {
        let mut claimed = self.store.claim(route, limit).await?;
        for message in &mut claimed {
            if message.sealed {
                message.body = self.open_body(message.id, &message.route, &message.body)?;
                message.sealed = false;
            }
        }
        Ok(claimed)
    }

    /// Records an attempt's outcome. The request is queued before this
    /// returns, so the future may be awaited later (see [`Store::record`]).
    pub fn record(
        &self,
        id: MessageId,
        outcome: Outcome,
    ) -> impl std::future::Future<Output = Result<(), JournalError>> + Send + 'static {
        self.store.record(id, outcome)
    }

    /// Records several outcomes in one request (see [`Store::record_many`]);
    /// queued before this returns, like [`Journal::record`].
    pub fn record_many(
        &self,
        outcomes: Vec<(MessageId, Outcome)>,
    ) -> impl std::future::Future<Output = Result<(), JournalError>> + Send + 'static {
        self.store.record_many(outcomes)
    }

    pub async fn replay(&self, which: Replay) -> Result<u64, JournalError> {
        self.store.replay(which).await
    }

    pub async fn list(&self, filter: Filter) -> Result<Vec<MessageRecord>, JournalError> {
        self.store.list(filter).await
    }

    pub async fn get(&self, id: MessageId) -> Result<MessageRecord, JournalError> {
        self.store.get(id).await
    }

    /// A message's body in clear. Printing it is the caller's decision;
    /// it should [`Journal::audit`] that first.
    pub async fn body(&self, id: MessageId) -> Result<Vec<u8>, JournalError> {
        let record = self.store.get(id).await?;
        let body = self.store.body(id).await?;
        if record.sealed {
            self.open_body(id, &record.route, &body)
        } else {
            Ok(body)
        }
    }

    pub async fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        action: &str,
        id: Option<MessageId>,
    ) -> Result<(), JournalError> {
        self.store.audit(at_ms, actor, action, id).await
    }

    pub async fn prune(
        &self,
        bodies_before_ms: i64,
        records_before_ms: i64,
    ) -> Result<PruneReport, JournalError> {
        self.store.prune(bodies_before_ms, records_before_ms).await
    }

    pub async fn stats(&self) -> Result<Vec<RouteStats>, JournalError> {
        self.store.stats().await
    }

    /// Adds observed flow counts (see [`Store::add_flows`]).
    pub async fn add_flows(&self, counts: Vec<FlowCount>) -> Result<(), JournalError> {
        if counts.is_empty() {
            return Ok(());
        }
        self.store.add_flows(counts).await
    }

    /// Every observed flow aggregate, by key.
    pub async fn flows(&self) -> Result<Vec<FlowTotal>, JournalError> {
        self.store.flows().await
    }

    /// Write transactions committed so far by this journal's store (see
    /// [`Store::commits`]); for tests and diagnostics of group commit.
    #[doc(hidden)]
    pub fn commits(&self) -> u64 {
        self.store.commits()
    }

    fn open_body(
        &self,
        id: MessageId,
        route: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, JournalError> {
        let key = self.key.as_ref().ok_or_else(|| JournalError::Sealed {
            id,
            reason: "the body is sealed and no body key is configured ([journal] body_key)".into(),
        })?;
        key.open(route, sealed).map_err(|e| JournalError::Sealed {
            id,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_passwords_are_not_displayed() {
        let spec = StoreSpec::parse(
            "postgres://guichet:s3cret@db:5432/guichet",
            Path::new("/etc"),
        );
        assert_eq!(spec.to_string(), "postgres://guichet:***@db:5432/guichet");
        let spec = StoreSpec::parse("journal.db", Path::new("/etc/guichet"));
        assert_eq!(
            spec,
            StoreSpec::Sqlite(PathBuf::from("/etc/guichet/journal.db"))
        );
    }
}
