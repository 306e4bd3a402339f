//! Reaching PostgreSQL: the parsed connection settings, bounded connects,
//! reconnection pacing, and error texts that never carry a value.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{self, PgSslMode};
use super::transport::{only_unix_sockets, transport_of, PgTransport};
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
    /// The connector for TLS modes; `None` for plain TCP.
    tls: Option<MakeRustlsConnect>,
    transport: PgTransport,
}

impl Target {
    /// Parses a `postgres://` URL, its TLS parameters included (see
    /// [`super::tls`]), and loads the TLS files it names.
    pub(super) fn parse(url: &str) -> Result<Target, JournalError> {
        let invalid = |reason: String| JournalError::Open {
            location: "postgres".into(),
            reason,
        };
        let (rest, parameters) = tls::split_parameters(url).map_err(|e| invalid(e.to_string()))?;
        let mut config: Config = rest.parse().map_err(|_| {
            invalid(
                "invalid connection string: expected postgres://user:password@host:port/database"
                    .into(),
            )
        })?;
        let location = location_of(&config);
        let refused = |reason: String| JournalError::Open {
            location: location.clone(),
            reason,
        };
        let files = parameters.files().map_err(|e| refused(e.to_string()))?;
        if files.mode != PgSslMode::Disable && only_unix_sockets(&config) {
            return Err(refused(format!(
                "sslmode={} over a Unix socket: PostgreSQL speaks TLS on TCP only, and a socket \
                 never leaves this machine; use sslmode=disable",
                files.mode.as_str()
            )));
        }
        let tls = files
            .client_config()
            .map_err(|e| refused(e.to_string()))?
            .map(MakeRustlsConnect::new);
        let transport = transport_of(&config, &files);
        let mode = if tls.is_some() {
            SslMode::Require
        } else {
            SslMode::Disable
        };
        config
            .ssl_mode(mode)
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        Ok(Target {
            config,
            location,
            tls,
            transport,
        })
    }

    /// `postgres://user@host:port/database`, without the password.
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    pub(super) fn transport(&self) -> &PgTransport {
        &self.transport
    }

    /// Opens one connection, named `guichet-journal-<role>` in
    /// `pg_stat_activity`; its I/O runs on a task of its own. The error
    /// does not repeat the location.
    pub(super) async fn connect(&self, role: &str) -> Result<Client, ConnectError> {
        let mut config = self.config.clone();
        config.application_name(format!("guichet-journal-{role}"));
        let client = match &self.tls {
            Some(tls) => start(config.connect(tls.clone()), role).await?,
            None => start(config.connect(NoTls), role).await?,
        };
        Ok(client)
    }
}

/// Why a connection to the journal's database could not be opened or
/// readied. The texts do not repeat the location: callers add it.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    /// The server did not complete the connection in time.
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    Silent,
    /// The server, or the TLS handshake, refused; with a hint for the
    /// operator when the failure is a known one.
    #[error("{}{}", describe(.0), tls::hint(&describe(.0)))]
    Refused(tokio_postgres::Error),
    /// The connection opened but could not be readied for writing.
    #[error("{}", describe(.0))]
    Setup(tokio_postgres::Error),
    /// Opening and readying a session took too long.
    #[error("no session within {0:?}")]
    NoSession(Duration),
}

/// Waits for a connection within [`CONNECT_TIMEOUT`], then runs its I/O on
/// a task of its own.
async fn start<S, T>(
    connecting: impl std::future::Future<
        Output = Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
    >,
    role: &str,
) -> Result<Client, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| ConnectError::Silent)?
        .map_err(ConnectError::Refused)?;
    let role = role.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(role, error = %describe(&e), "journal database connection ended");
        }
    });
    Ok(client)
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
