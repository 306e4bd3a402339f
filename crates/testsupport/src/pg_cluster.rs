//! A PostgreSQL server of the test's own, with `ssl = on` and certificates
//! from the project's test PKI: the shared server on 5432 (see
//! [`crate::postgres`]) has no TLS, and other tests use it.
//!
//! [`TlsCluster::start`] runs `initdb` in a temporary folder (as the
//! `postgres` user when the tests run as root: PostgreSQL refuses root),
//! listens on 127.0.0.1 and an ephemeral port, admits TCP sessions only
//! through `hostssl` lines, and stops the server when dropped. A watchdog
//! stops it too if the test process dies without dropping it. Without the
//! PostgreSQL binaries a developer's run prints SKIPPED; CI (`CI` set)
//! fails instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use guichet_pki::{CaOptions, IssueRequest, Usage};
use tempfile::TempDir;

/// The password of the cluster's `guichet` role: a test asserts that no
/// error ever carries it.
pub const PASSWORD: &str = "Pg-s3cret-9f4e";

/// The name in the server's certificate (its only SAN).
pub const SERVER_NAME: &str = "pg.test";

/// A database any TLS session with the password may use.
pub const OPEN_DB: &str = "journal";

/// A database whose `hostssl` line says `clientcert=verify-full`: the
/// client must present a certificate of the test CA whose CN is the role.
pub const CERT_DB: &str = "certdb";

pub struct TlsCluster {
    /// The cluster's folder (owned by `postgres` when running as root).
    root: TempDir,
    /// The test PKI: `ca.pem`, `pg.test.pem`/`.key`, `guichet.pem`/`.key`
    /// (a client certificate whose CN is the role), and `other/ca.pem`, a
    /// CA that signed nothing here.
    pub pki: TempDir,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
    watchdog: Option<Child>,
}

/// Skips (prints SKIPPED, returns `None`) or, under CI, fails.
fn skip(reason: &str) -> Option<TlsCluster> {
    crate::peers::skip(reason);
    None
}

impl TlsCluster {
    /// A running server, or `None` when PostgreSQL is not installed here
    /// (and `CI` is not set).
    ///
    /// # Panics
    /// When the server is installed but cannot be set up or started.
    pub fn start() -> Option<TlsCluster> {
        let Some(bin) = postgres_bin() else {
            return skip("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin");
        };
        let as_postgres = is_root();
        let pki = tempfile::tempdir().expect("PKI folder");
        make_pki(pki.path());
        let root = tempfile::tempdir().expect("cluster folder");
        let mut cluster = TlsCluster {
            root,
            pki,
            port: free_port(),
            bin,
            as_postgres,
            watchdog: None,
        };
        cluster.init();
        cluster.configure();
        cluster.run_ok(
            "pg_ctl",
            &[
                "-D",
                &cluster.data(),
                "-l",
                &cluster.log(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        cluster.watchdog = Some(cluster.spawn_watchdog());
        Some(cluster)
    }

    /// `postgres://guichet:PASSWORD@HOST:PORT/DB?PARAMS`.
    pub fn url(&self, host: &str, db: &str, params: &str) -> String {
        format!(
            "postgres://guichet:{PASSWORD}@{host}:{}/{db}?{params}",
            self.port
        )
    }

    /// A file of the test PKI, as a URL parameter value.
    pub fn pki_file(&self, name: &str) -> String {
        self.pki.path().join(name).display().to_string()
    }

    /// A session over the cluster's Unix socket (trusted, no TLS), to look
    /// at `pg_stat_ssl` and to set the cluster up.
    pub async fn admin(&self, db: &str) -> tokio_postgres::Client {
        let config = format!(
            "host={} port={} user=guichet dbname={db}",
            self.root.path().display(),
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .expect("admin session on the Unix socket");
        tokio::spawn(connection);
        client
    }

    /// The journal's sessions on `db`, as (ssl, client DN) from
    /// `pg_stat_ssl`.
    pub async fn journal_sessions(&self, db: &str) -> Vec<(bool, Option<String>)> {
        let sql = "SELECT s.ssl, s.client_dn FROM pg_stat_ssl s \
                   JOIN pg_stat_activity a USING (pid) \
                   WHERE a.datname = $1 AND a.application_name LIKE 'guichet-journal-%'";
        let rows = self
            .admin("postgres")
            .await
            .query(sql, &[&db])
            .await
            .expect("pg_stat_ssl");
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    }

    /// Creates the two test databases.
    pub async fn create_databases(&self) {
        let admin = self.admin("postgres").await;
        for db in [OPEN_DB, CERT_DB] {
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .expect("CREATE DATABASE");
        }
    }

    fn data(&self) -> String {
        self.root.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.root.path().join("server.log").display().to_string()
    }

    fn init(&self) {
        let root = self.root.path();
        std::fs::write(root.join("pw"), PASSWORD).expect("password file");
        copy_private(
            &self.pki.path().join("pg.test.pem"),
            &root.join("server.crt"),
        );
        copy_private(
            &self.pki.path().join("pg.test.key"),
            &root.join("server.key"),
        );
        copy_private(&self.pki.path().join("ca.pem"), &root.join("ca.pem"));
        if self.as_postgres {
            chown_postgres(root);
        }
        let pwfile = format!("--pwfile={}", root.join("pw").display());
        self.run_ok(
            "initdb",
            &[
                "-D",
                &self.data(),
                "-U",
                "guichet",
                &pwfile,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
    }

    /// TLS on, TCP on 127.0.0.1 only, and `hostssl` lines only.
    fn configure(&self) {
        let root = self.root.path().display();
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{root}'\n\
             ssl = on\nssl_cert_file = '{root}/server.crt'\nssl_key_file = '{root}/server.key'\n\
             ssl_ca_file = '{root}/ca.pem'\nfsync = off\nmax_connections = 20\n\
             shared_buffers = 16MB\n",
            self.port
        );
        let conf = self.root.path().join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("postgresql.conf");
        let hba = format!(
            "local all all trust\n\
             hostssl {CERT_DB} all 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n"
        );
        std::fs::write(self.root.path().join("data/pg_hba.conf"), hba).expect("pg_hba.conf");
    }

    /// Runs a PostgreSQL program (as `postgres` when we are root).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.current_dir("/");
        command
    }

    fn run_ok(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            panic!(
                "{program} failed: {}\n{}\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Stops the server if this process ends without dropping the value
    /// (a test killed on timeout), then removes the folders.
    fn spawn_watchdog(&self) -> Child {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data()
            )
        } else {
            format!("{} -D {} -m immediate stop", pg_ctl.display(), self.data())
        };
        let script = format!(
            "cd /; while [ -d /proc/{pid} ]; do sleep 1; done; {stop}; rm -rf {} {}",
            self.root.path().display(),
            self.pki.path().display(),
            pid = std::process::id()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog")
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A CA with a server certificate for [`SERVER_NAME`], a client
/// certificate for the role `guichet`, and a second, unrelated CA.
fn make_pki(dir: &Path) {
    guichet_pki::init(dir, &CaOptions::default()).expect("test CA");
    let mut server = IssueRequest::new(SERVER_NAME);
    server.usage = Usage::ServerOnly;
    guichet_pki::issue(dir, &server).expect("server certificate");
    let mut client = IssueRequest::new("guichet");
    client.usage = Usage::ClientOnly;
    guichet_pki::issue(dir, &client).expect("client certificate");
    let other = CaOptions {
        common_name: "another test CA".into(),
        ..CaOptions::default()
    };
    guichet_pki::init(&dir.join("other"), &other).expect("second CA");
}

fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `chown -R postgres:` (the server reads its folder, certificates and key).
fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown -R postgres: {}", path.display());
}

/// Copies a file with mode 0600: PostgreSQL refuses a key others can read.
fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
