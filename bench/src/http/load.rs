//! The HTTPS load generator, run as its own process (`guichet-bench
//! http-load`) so that its runtime, its threads and its CPU time are its
//! own: keep-alive connections each sending one request after another, or
//! a new connection (a full TLS handshake, no resumption) per request;
//! each request a GET, or a POST of one document (`--body`).
//!
//! Its window is given as a wall-clock instant (`--start-at`), so the
//! benchmark samples the gateway's CPU over the same measured seconds. At
//! the end it writes its tally to a text file and the latency of every
//! request answered inside the window to a binary one beside it, from
//! which the benchmark builds its histogram.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use tokio::task::JoinSet;

use super::client::{Client, Request, Response};
use super::BODY;
use crate::load::{Stats, Window};
use crate::procfs::cpu_time;

/// How each connection is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each connection sends one request after another until the end.
    KeepAlive,
    /// Each client opens a connection per request, with a full handshake.
    Handshake,
}

/// One run of the load generator.
#[derive(Debug, Clone)]
pub struct Spec {
    pub target: SocketAddr,
    pub mode: Mode,
    /// Connections (keep-alive) or concurrent clients (handshake).
    pub conns: u32,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The file every request posts; a GET without one.
    pub body: Option<PathBuf>,
    /// When the warm-up starts, in nanoseconds since the Unix epoch.
    pub start_at: u64,
    pub warmup: Duration,
    pub measured: Duration,
    /// The tally's file; the latencies go to the same path + `.latencies`.
    pub report: PathBuf,
}

/// What a run saw, as the benchmark reads it back.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    /// Negotiated protocol, suite, group and handshake kind.
    pub tls: Option<String>,
    /// The generator's own CPU time inside the window.
    pub cpu: Option<Duration>,
}

/// What one connection (or the whole run, merged) counted.
#[derive(Debug, Default)]
struct Tally {
    /// Status 200 with the upstream's body, answered inside the window.
    ok: u64,
    /// Any other response, at any time.
    bad: u64,
    /// Connections that failed: refused, reset, closed early, timed out.
    errors: u64,
    /// The first error or unexpected response.
    problem: Option<String>,
    tls: Option<String>,
    /// Nanoseconds from sending (or connecting) to the whole response,
    /// for each `ok`.
    latencies: Vec<u64>,
    cpu: Option<Duration>,
}

/// Runs the load described by `spec` and writes its report.
pub fn run(spec: &Spec) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(spec.conns.max(1) as usize);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let tally = runtime.block_on(generate(spec))?;
    tally.write(&spec.report)
}

/// The window starting at `start_at` (Unix nanoseconds), on this
/// process's clock.
pub fn window_at(start_at: u64, warmup: Duration, measured: Duration) -> (Instant, Window) {
    let start = UNIX_EPOCH + Duration::from_nanos(start_at);
    let wait = start
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let start = Instant::now() + wait;
    let measure_from = start + warmup;
    (
        start,
        Window {
            measure_from,
            end: measure_from + measured,
        },
    )
}

/// Unix nanoseconds `after` from now: a `--start-at` value.
pub fn start_at(after: Duration) -> u64 {
    let at = SystemTime::now() + after;
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

async fn generate(spec: &Spec) -> anyhow::Result<Tally> {
    let mut client = Client::new(spec.target, &spec.ca, &spec.cert, &spec.key, false)?;
    if let Some(path) = &spec.body {
        let body =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        client = client.posting(&body);
    }
    let (start, window) = window_at(spec.start_at, spec.warmup, spec.measured);
    let pid = std::process::id();
    cpu_time(pid).context("cannot read this process's CPU time")?;
    tokio::time::sleep_until(start.into()).await;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(window.measure_from.into()).await;
        let before = cpu_time(pid);
        tokio::time::sleep_until(window.end.into()).await;
        Some(cpu_time(pid)?.saturating_sub(before?))
    });
    let mut tasks = JoinSet::new();
    for _ in 0..spec.conns.max(1) {
        let client = client.clone();
        match spec.mode {
            Mode::KeepAlive => tasks.spawn(keep_alive(client, window)),
            Mode::Handshake => tasks.spawn(per_request(client, window)),
        };
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(tally) => total.merge(tally),
            Err(e) => total.error(e),
        }
    }
    total.cpu = cpu.await.ok().flatten();
    Ok(total)
}

/// One connection, one request after another until the window ends.
async fn keep_alive(client: Client, window: Window) -> Tally {
    let mut tally = Tally::default();
    let mut conn = match client.connect().await {
        Ok(conn) => conn,
        Err(e) => {
            tally.error(format!("{e:#}"));
            return tally;
        }
    };
    tally.tls = Some(conn.describe_tls());
    let mut seq = 0u64;
    while Instant::now() < window.end {
        seq += 1;
        let sent = Instant::now();
        match conn.exchange(Request::KeepAlive).await {
            Ok(response) => tally.answered(&response, sent, &window),
            Err(e) => {
                tally.error(format!("request {seq} on a kept-alive connection: {e:#}"));
                break;
            }
        }
    }
    tally
}

/// A connection per request (`Connection: close`), until the window ends;
/// the latency includes the connection and the handshake.
async fn per_request(client: Client, window: Window) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        let sent = Instant::now();
        let exchange = async {
            let mut conn = client.connect().await?;
            let response = conn.exchange(Request::Close).await?;
            anyhow::Ok((response, conn.describe_tls()))
        };
        match exchange.await {
            Ok((response, tls)) => {
                tally.answered(&response, sent, &window);
                tally.tls.get_or_insert(tls);
            }
            Err(e) => {
                tally.error(format!("{e:#}"));
                break;
            }
        }
    }
    tally
}

impl Tally {
    fn answered(&mut self, response: &Response, sent: Instant, window: &Window) {
        let now = Instant::now();
        if response.status != 200 || response.body != BODY {
            self.bad += 1;
            if self.problem.is_none() {
                self.problem = Some(format!(
                    "unexpected response: status {}, {} bytes of body",
                    response.status,
                    response.body.len()
                ));
            }
        } else if now >= window.measure_from && now <= window.end {
            self.ok += 1;
            let nanos = u64::try_from((now - sent).as_nanos()).unwrap_or(u64::MAX);
            self.latencies.push(nanos);
        }
    }

    fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.problem.is_none() {
            self.problem = Some(error.to_string());
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.bad += other.bad;
        self.errors += other.errors;
        if self.problem.is_none() {
            self.problem = other.problem;
        }
        if self.tls.is_none() {
            self.tls = other.tls;
        }
        self.latencies.extend(other.latencies);
    }

    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = format!(
            "ok {}\nbad {}\nerrors {}\ncpu_nanos {}\n",
            self.ok,
            self.bad,
            self.errors,
            self.cpu
                .map_or(-1, |d| i128::try_from(d.as_nanos()).unwrap_or(-1)),
        );
        if let Some(tls) = &self.tls {
            text.push_str(&format!("tls {tls}\n"));
        }
        if let Some(problem) = &self.problem {
            text.push_str(&format!("problem {}\n", problem.replace('\n', " ")));
        }
        let latencies: Vec<u8> = self
            .latencies
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect();
        std::fs::write(latencies_path(path), latencies)
            .with_context(|| format!("cannot write {}", latencies_path(path).display()))?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

fn latencies_path(report: &Path) -> PathBuf {
    let mut name = report.as_os_str().to_owned();
    name.push(".latencies");
    PathBuf::from(name)
}

/// Reads back what a run wrote to `path`.
pub fn read(path: &Path) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the load generator's report {}", path.display()))?;
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
    };
    let number = |key: &str| -> anyhow::Result<i128> {
        field(key)
            .with_context(|| format!("no {key} in {}", path.display()))?
            .parse()
            .with_context(|| format!("bad {key} in {}", path.display()))
    };
    let count = |key: &str| -> anyhow::Result<u64> { Ok(u64::try_from(number(key)?)?) };
    let mut stats = Stats {
        messages: count("ok")?,
        mismatches: count("bad")?,
        errors: count("errors")?,
        first_error: field("problem").map(str::to_owned),
        ..Stats::default()
    };
    let raw = std::fs::read(latencies_path(path))?;
    if raw.len() % 8 != 0 {
        bail!("{}: truncated", latencies_path(path).display());
    }
    for chunk in raw.chunks_exact(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        stats
            .latency
            .record(Duration::from_nanos(u64::from_le_bytes(bytes)));
    }
    let cpu = u64::try_from(number("cpu_nanos")?)
        .ok()
        .map(Duration::from_nanos);
    Ok(Outcome {
        stats,
        tls: field("tls").map(str::to_owned),
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("load");
        let tally = Tally {
            ok: 3,
            bad: 1,
            errors: 0,
            problem: Some("unexpected response:\nstatus 403".to_owned()),
            tls: Some("TLSv1_3, TLS13_AES_256_GCM_SHA384, X25519, Full handshake".to_owned()),
            latencies: vec![100_000, 200_000, 300_000],
            cpu: Some(Duration::from_millis(12)),
        };
        tally.write(&path).unwrap();
        let outcome = read(&path).unwrap();
        assert_eq!(outcome.stats.messages, 3);
        assert_eq!(outcome.stats.mismatches, 1);
        assert_eq!(outcome.stats.errors, 0);
        assert_eq!(outcome.stats.latency.count(), 3);
        assert_eq!(
            outcome.stats.first_error.as_deref(),
            Some("unexpected response: status 403")
        );
        assert_eq!(outcome.tls, tally.tls);
        assert_eq!(outcome.cpu, Some(Duration::from_millis(12)));
    }
}
