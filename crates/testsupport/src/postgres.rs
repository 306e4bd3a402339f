//! A throwaway PostgreSQL database per test, on the server that
//! `./scripts/setup` starts.
//!
//! Tests that need PostgreSQL call [`TestDatabase::create`]: a database
//! with a unique name, dropped when the value is. The server is found at
//! `GUICHET_TEST_POSTGRES` (default [`DEFAULT_URL`]), whose role needs
//! `CREATEDB`. Without a server, a developer's run skips those tests
//! (saying `SKIPPED`); CI (`CI` set) fails them instead, since a skip there
//! would hide a missing setup step.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// The variable naming the server's admin URL.
pub const URL_VARIABLE: &str = "GUICHET_TEST_POSTGRES";

/// What `./scripts/setup` creates.
pub const DEFAULT_URL: &str = "postgres://guichet:guichet@127.0.0.1:5432/postgres";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test; dropped (connections and all)
/// when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    dropped: bool,
}

impl TestDatabase {
    /// A new empty database, or `None` (after printing `SKIPPED: ...`)
    /// when no server answers and `CI` is not set.
    ///
    /// # Panics
    /// When no server answers and `CI` is set, or when the server answers
    /// but refuses to create a database.
    pub async fn create() -> Option<TestDatabase> {
        match TestDatabase::try_create().await {
            Ok(database) => Some(database),
            Err(reason) => {
                println!("SKIPPED: {reason}");
                None
            }
        }
    }

    /// Like [`TestDatabase::create`], the reason to skip returned instead
    /// of printed.
    pub async fn try_create() -> Result<TestDatabase, String> {
        let admin_url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_URL.to_string());
        let admin = match connect(&admin_url).await {
            Ok(admin) => admin,
            Err(e) => return Err(unreachable(&admin_url, &e)),
        };
        if is_loopback(&admin_url) {
            drop_orphans(&admin).await;
        }
        let name = unique_name();
        if let Err(e) = admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
        {
            panic!(
                "PostgreSQL at {} refused CREATE DATABASE: {e:?}",
                redact(&admin_url)
            );
        }
        Ok(TestDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            dropped: false,
        })
    }

    /// The database's URL, with the role's password.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to the server's admin database (not this one), to
    /// disturb this one: terminate its sessions, alter it.
    ///
    /// # Panics
    /// When the server stopped answering since [`TestDatabase::create`].
    pub async fn admin(&self) -> Client {
        match connect(&self.admin_url).await {
            Ok(client) => client,
            Err(e) => panic!("PostgreSQL admin connection: {e}"),
        }
    }

    /// Ends every session on this database (as a database restart would);
    /// returns how many.
    pub async fn terminate_connections(&self) -> u64 {
        let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                   WHERE datname = $1 AND pid <> pg_backend_pid()";
        match self.admin().await.query_one(sql, &[&self.name]).await {
            Ok(row) => row.get::<_, i64>(0) as u64,
            Err(e) => panic!("terminating the sessions of {}: {e:?}", self.name),
        }
    }

    /// Drops the database now, waiting for it.
    pub async fn drop_db(mut self) {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await;
    }
}

/// Drops the database from a thread of its own: `Drop` cannot await, and
/// may run inside a runtime, where blocking on another is refused.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_database(&admin_url, &name));
            }
        });
        let _ = dropper.join();
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let result = match connect(admin_url).await {
        Ok(admin) => admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .map_err(|e| format!("{e:?}")),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// Drops the databases left by test processes that died before dropping
/// theirs (a timeout kills a test without running destructors): those
/// whose creator's pid is no longer running here. The pid is in the name;
/// only a server on loopback is known to serve this machine's processes.
async fn drop_orphans(admin: &Client) {
    let sql = "SELECT datname FROM pg_database WHERE datname LIKE 'guichet\\_t\\_%'";
    let Ok(rows) = admin.query(sql, &[]).await else {
        return;
    };
    for name in rows
        .iter()
        .filter_map(|row| row.try_get::<_, String>(0).ok())
    {
        let creator = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        let orphan =
            creator.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if orphan {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

async fn connect(url: &str) -> Result<Client, String> {
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls));
    let (client, connection) = match attempt.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return Err(e
                .as_db_error()
                .map_or_else(|| chain(&e), |db| db.message().to_string()))
        }
        Err(_) => return Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// An error and its sources on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let causes = std::iter::successors(Some(error), |e| e.source());
    causes
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The reason to skip, or a panic on CI.
fn unreachable(admin_url: &str, error: &str) -> String {
    let reason = format!(
        "PostgreSQL not reachable at {} ({error}) (run ./scripts/setup, or set {URL_VARIABLE})",
        redact(admin_url)
    );
    assert!(
        !crate::peers::in_ci(),
        "{reason}: CI must run the PostgreSQL tests"
    );
    reason
}

/// `guichet_t_<pid>_<counter>_<random>`: unique across concurrent test
/// processes, and recognisable if a crashed run leaves one behind (see
/// [`drop_orphans`]).
fn unique_name() -> String {
    let random = RandomState::new().hash_one(std::time::SystemTime::now()) as u32;
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("guichet_t_{}_{counter}_{random:08x}", std::process::id())
}

/// `url` with its database replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

fn is_loopback(url: &str) -> bool {
    let host = url.split_once('@').map_or(url, |(_, rest)| rest);
    let host = host.split_once("://").map_or(host, |(_, rest)| rest);
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|local| {
        host.strip_prefix(local)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/', '?']))
    })
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_the_password_hidden() {
        let url = "postgres://guichet:s3cret@127.0.0.1:5432/postgres?sslmode=disable";
        assert_eq!(
            with_database(url, "guichet_t_1"),
            "postgres://guichet:s3cret@127.0.0.1:5432/guichet_t_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "d"), "postgres://h/d");
        assert_eq!(
            redact(url),
            "postgres://guichet:***@127.0.0.1:5432/postgres?sslmode=disable"
        );
    }

    #[test]
    fn only_loopback_servers_are_local() {
        assert!(is_loopback(DEFAULT_URL));
        assert!(is_loopback("postgres://localhost/postgres"));
        assert!(is_loopback("postgres://u:p@[::1]:5433/x"));
        assert!(!is_loopback("postgres://u:p@127.0.0.1.example:5432/x"));
        assert!(!is_loopback("postgres://u:p@db.example/x"));
    }

    #[test]
    fn names_are_unique_and_valid_identifiers() {
        let (a, b) = (unique_name(), unique_name());
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert!(a.len() < 63);
    }
}
