//! Reaching PostgreSQL: the parsed connection settings, bounded connects,
//! reconnection pacing, and error texts that never carry a value.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::JournalError;

/// A connect that takes longer than this counts as the database being down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP keepalive probes start after 30 s of silence, then every 10 s, and
/// 3 unanswered ones end the connection: a database host that vanished
/// (no RST) is noticed in about a minute instead of hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// Where the journal's database is, parsed once from the `store` URL.
///
/// The URL may hold a password: only [`Target::location`], which leaves
/// it out, ever reaches a log or an error.
#[derive(Clone)]
pub(super) struct Target {
    config: Config,
    location: String,
}

impl Target {
    /// Parses a `postgres://` URL. TLS to the database is not supported
    /// yet, so a URL that demands it is refused rather than downgraded.
    pub(super) fn parse(url: &str) -> Result<Target, JournalError> {
        let mut config: Config = url.parse().map_err(|_| JournalError::Open {
            location: "postgres".into(),
            reason:
                "invalid connection string: expected postgres://user:password@host:port/database"
                    .into(),
        })?;
        let location = location_of(&config);
        if config.get_ssl_mode() == SslMode::Require {
            return Err(JournalError::Open {
                location,
                reason: "sslmode=require: TLS to PostgreSQL is not supported yet; \
                         reach the database on loopback or a private network with sslmode=disable"
                    .into(),
            });
        }
        config
            .ssl_mode(SslMode::Disable)
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        Ok(Target { config, location })
    }

    /// `postgres://user@host:port/database`, without the password.
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    /// Opens one connection, named `guichet-journal-<role>` in
    /// `pg_stat_activity`; its I/O runs on a task of its own. The error
    /// does not repeat the location.
    pub(super) async fn connect(&self, role: &str) -> Result<Client, String> {
        let mut config = self.config.clone();
        config.application_name(format!("guichet-journal-{role}"));
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
            .await
            .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| describe(&e))?;
        let role = role.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(role, error = %describe(&e), "journal database connection ended");
            }
        });
        Ok(client)
    }
}

fn location_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let database = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{host}:{port}/{database}")
}

/// Leases compare the nodes' clocks: warn when this node's is further
/// than this from the database's (which all nodes share).
const CLOCK_SKEW_WARNING_MS: i64 = 1000;

/// Warns when this node's clock is far from the database's: leases are
/// compared on the nodes' clocks (see the module's documentation).
pub(super) async fn check_clock(client: &Client, target: &Target) {
    let before = unix_ms();
    let sql = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";
    let Ok(database_ms) = client
        .query_one(sql, &[])
        .await
        .and_then(|row| row.try_get::<_, i64>(0))
    else {
        return;
    };
    let skew_ms = (before + unix_ms()) / 2 - database_ms;
    if skew_ms.abs() > CLOCK_SKEW_WARNING_MS {
        tracing::warn!(
            database = target.location(),
            skew_ms,
            "this node's clock differs from the journal database's: \
             route leases assume synchronised clocks (NTP)"
        );
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An error's text for logs and [`JournalError`]s.
///
/// A server error's DETAIL can quote the values of a row (a unique
/// violation does), and `tokio_postgres::Error`'s `Display` chain prints
/// it: only the SQLSTATE and the primary message are kept.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let io = std::error::Error::source(error).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io {
        Some(io) => format!("{error}: {io}"),
        None => error.to_string(),
    }
}

/// Paces reconnection attempts: right away after a connection is lost,
/// then doubling waits while the database stays unreachable. Requests
/// arriving during a wait fail at once instead of queueing behind it.
pub(super) struct Backoff {
    wait: Duration,
    retry_at: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    pub(super) fn new() -> Backoff {
        Backoff {
            wait: Backoff::FIRST,
            retry_at: None,
        }
    }

    /// An attempt may be made now.
    pub(super) fn ready(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    pub(super) fn failed(&mut self) {
        self.retry_at = Some(Instant::now() + self.wait);
        self.wait = (self.wait * 2).min(Backoff::MAX);
    }

    pub(super) fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}
