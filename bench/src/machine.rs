//! The machine and the versions a run measured, for the report.

use std::path::Path;
use std::process::Command;

use crate::peers::Setup;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory: String,
    pub guichet: String,
    pub stunnel: String,
    pub haproxy: String,
    pub nginx: String,
    pub caddy: String,
    /// The file system of the run's directory, where SQLite journals are.
    pub disk: String,
    /// The PostgreSQL server journals are measured on, and its durability
    /// settings.
    pub postgres: String,
}

/// Reads /proc and asks each program for its version.
pub fn describe(setup: &Setup, workspace: &Path) -> Machine {
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        memory: memory(),
        guichet: guichet_version(&setup.guichet, workspace),
        stunnel: setup
            .stunnel
            .as_deref()
            .map_or_else(not_installed, stunnel_version),
        haproxy: setup
            .haproxy
            .as_deref()
            .map_or_else(not_installed, haproxy_version),
        nginx: setup
            .nginx
            .as_deref()
            .map_or_else(not_installed, nginx_version),
        caddy: setup
            .caddy
            .as_deref()
            .map_or_else(not_installed, caddy_version),
        disk: disk(&setup.dir),
        postgres: postgres_version(),
    }
}

/// `ext4 on /dev/vda`.
fn disk(dir: &Path) -> String {
    let dir = dir.display().to_string();
    let text = output(Path::new("df"), &["--output=fstype,source", &dir]);
    let mut fields = text.lines().nth(1).unwrap_or_default().split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(fstype), Some(source)) => format!("{fstype} on {source}"),
        _ => "unknown".to_owned(),
    }
}

/// `PostgreSQL 15.18, fsync on, synchronous_commit on`, asked of the
/// server the journal scenarios use.
fn postgres_version() -> String {
    let url = std::env::var(guichet_testsupport::postgres::URL_VARIABLE)
        .unwrap_or_else(|_| guichet_testsupport::postgres::DEFAULT_URL.to_owned());
    let sql = "SELECT current_setting('server_version') || ', fsync ' || current_setting('fsync') \
               || ', synchronous_commit ' || current_setting('synchronous_commit') \
               || ', wal_sync_method ' || current_setting('wal_sync_method')";
    let answer = Command::new("psql")
        .args([url.as_str(), "-XAtc", sql])
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    answer.map_or_else(
        || "not reachable (or psql not installed)".to_owned(),
        |v| format!("PostgreSQL {v}"),
    )
}

fn not_installed() -> String {
    "not installed".to_owned()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn memory() -> String {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{} GiB", kib / (1024 * 1024)),
        )
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// Every line a program prints for `args`, stdout then stderr.
fn output(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text
        })
        .unwrap_or_default()
}

/// `guichet 0.1.0, rustls 0.23.x, commit abc1234 (+ uncommitted changes)`.
fn guichet_version(binary: &Path, workspace: &Path) -> String {
    let version = output(binary, &["--version"]);
    let mut parts = vec![version
        .lines()
        .next()
        .unwrap_or("guichet")
        .trim()
        .to_owned()];
    if let Some(rustls) = locked_version(workspace, "rustls") {
        parts.push(format!("rustls {rustls}"));
    }
    if let Some(commit) = commit(workspace) {
        parts.push(commit);
    }
    parts.join(", ")
}

fn locked_version(workspace: &Path, package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).ok()?;
    let entry = lock.split("[[package]]").find(|p| {
        p.lines()
            .any(|l| l.trim() == format!("name = \"{package}\""))
    })?;
    entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_owned())
}

fn commit(workspace: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("commit {head} with uncommitted changes")
    } else {
        format!("commit {head}")
    })
}

/// `stunnel 5.68, OpenSSL 3.0.19` (the library it runs with).
fn stunnel_version(binary: &Path) -> String {
    let text = output(binary, &["-version"]);
    let name = text
        .lines()
        .find_map(|l| l.split_once("stunnel ").map(|(_, v)| v))
        .and_then(|v| v.split_whitespace().next())
        .map_or_else(|| "stunnel".to_owned(), |v| format!("stunnel {v}"));
    let openssl = text.lines().find_map(|l| {
        l.split_once("Running  with ")
            .map(|(_, v)| v.trim().to_owned())
    });
    with_library(name, openssl)
}

/// `HAProxy 2.6.12-1+deb12u4, OpenSSL 3.0.19`.
fn haproxy_version(binary: &Path) -> String {
    let text = output(binary, &["-vv"]);
    let name = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .map_or_else(|| "HAProxy".to_owned(), |v| format!("HAProxy {v}"));
    let openssl = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Running on OpenSSL version : "))
        .map(|v| v.trim().to_owned());
    with_library(name, openssl)
}

/// `nginx 1.22.1, OpenSSL 3.0.19` (the library it runs with).
fn nginx_version(binary: &Path) -> String {
    let text = output(binary, &["-V"]);
    let name = text
        .lines()
        .find_map(|l| l.split_once("nginx/").map(|(_, v)| v.trim().to_owned()))
        .map_or_else(|| "nginx".to_owned(), |v| format!("nginx {v}"));
    let openssl = text.lines().find_map(|l| {
        let (_, rest) = l.split_once("running with ")?;
        let mut words = rest.split_whitespace();
        Some(format!("{} {}", words.next()?, words.next()?))
    });
    with_library(name, openssl)
}

/// `Caddy 2.6.2, go1.19.8` (its TLS is Go's crypto/tls).
fn caddy_version(binary: &Path) -> String {
    let version = output(binary, &["version"]);
    let name = version
        .split_whitespace()
        .next()
        .map_or_else(|| "Caddy".to_owned(), |v| format!("Caddy {v}"));
    let go = output(binary, &["build-info"])
        .lines()
        .find_map(|l| l.strip_prefix("go\t").map(|v| v.trim().to_owned()));
    with_library(name, go)
}

/// `name, library` (the TLS library a program runs with), or `name` alone
/// when the program did not say.
fn with_library(name: String, library: Option<String>) -> String {
    match library {
        Some(library) => format!("{name}, {library}"),
        None => name,
    }
}
