//! Shared pieces of the end-to-end tests: run the real `guichet` binary in
//! a temporary directory, real sockets on 127.0.0.1, real certificates made
//! by `guichet pki`, outside peers (openssl, stunnel) as child processes.
//!
//! Every child is killed when its guard drops and every wait is bounded, so
//! a failing test fails with the logs in its message instead of hanging.

// Each module of the test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub mod browser;

pub use guichet_testsupport::config::app;
use guichet_testsupport::config::TlsProfile;
pub use guichet_testsupport::http::{get as http_get, wait_for as wait_http};
pub use guichet_testsupport::peers::have;
use guichet_testsupport::samples::Hl7;
pub use guichet_testsupport::wait::WAIT;

pub fn guichet_bin() -> &'static str {
    env!("CARGO_BIN_EXE_guichet")
}

/// A temporary working directory with the test PKI under `pki/`.
pub struct Bench {
    pub dir: tempfile::TempDir,
}

impl Bench {
    /// A fresh directory with a CA in `pki/`.
    pub fn new() -> Bench {
        let bench = Bench {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        bench.ok(&["pki", "init", "--out", "pki"]);
        bench
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The absolute path as a string, for config files and peers' options.
    pub fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// `guichet ARGS` in the bench directory, bounded.
    pub fn guichet(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(guichet_bin());
        cmd.args(args).current_dir(self.dir.path());
        run_bounded(cmd, WAIT)
    }

    /// `guichet ARGS` that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.guichet(args);
        assert!(
            out.status.success(),
            "guichet {args:?} failed:\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `guichet pki issue --ca pki --name NAME EXTRA...`.
    pub fn issue(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["pki", "issue", "--ca", "pki", "--name", name];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Writes `text` as `rel` and starts `guichet run -c rel`.
    pub fn run(&self, rel: &str, text: &str) -> Proc {
        self.run_with(rel, text, &[])
    }

    /// Like [`Bench::run`], with global options before `run` (e.g.
    /// `--log-format json`).
    pub fn run_with(&self, rel: &str, text: &str, global: &[&str]) -> Proc {
        self.run_logging(rel, text, global, None)
    }

    /// Like [`Bench::run_with`], with `RUST_LOG` set to `rust_log` (unset
    /// when `None`: the default level).
    pub fn run_logging(
        &self,
        rel: &str,
        text: &str,
        global: &[&str],
        rust_log: Option<&str>,
    ) -> Proc {
        let config = self.write(rel, text);
        let mut cmd = Command::new(guichet_bin());
        cmd.args(global)
            .arg("run")
            .arg("-c")
            .arg(&config)
            .current_dir(self.dir.path());
        match rust_log {
            Some(level) => cmd.env("RUST_LOG", level),
            None => cmd.env_remove("RUST_LOG"),
        };
        Proc::spawn(rel, cmd)
    }
}

/// The data a map page embeds (its `atlas-data` script), parsed: what the
/// page holds, whatever shape it is packed in.
pub fn page_data(page: &str) -> serde_json::Value {
    let marker = "<script id=\"atlas-data\" type=\"application/json\">";
    let start = page.find(marker).expect("the page's data") + marker.len();
    let end = start + page[start..].find("</script>").expect("its end");
    serde_json::from_str(&page[start..end]).expect("the page's data is JSON")
}

/// Whether the page's data names `route` among the routes observed
/// traffic crossed.
pub fn page_names_route(page: &str, route: &str) -> bool {
    page_data(page)["incident"]["routes"]
        .as_array()
        .is_some_and(|routes| routes.iter().any(|r| r == route))
}

/// Stdout and stderr of a finished command, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to completion with stdin closed, killing it after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    run_with_input(&mut cmd, None, limit)
}

/// Runs `cmd` with `input` on its stdin (then closed), killing it after
/// `limit`.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(input);
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Lines a child wrote to stdout or stderr, shared with reader threads.
#[derive(Default)]
struct Lines {
    state: Mutex<Collected>,
    added: Condvar,
}

#[derive(Default)]
struct Collected {
    lines: Vec<String>,
    /// Pipes that reached end of file (2: the child is gone).
    closed: usize,
}

impl Lines {
    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        // A test that panics while waiting must still show the output.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A long-running child (gateway, stunnel) whose output lines are kept for
/// assertions. Killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    lines: Arc<Lines>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null());
        Self::start(name, cmd)
    }

    /// Like [`Proc::spawn`], with a pipe to the child's stdin.
    pub fn spawn_with_stdin(name: &str, mut cmd: Command) -> (Proc, ChildStdin) {
        cmd.stdin(Stdio::piped());
        let mut proc = Self::start(name, cmd);
        let stdin = proc.child.stdin.take().expect("piped stdin");
        (proc, stdin)
    }

    fn start(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new(Lines::default());
        if let Some(out) = child.stdout.take() {
            collect(out, lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, lines.clone());
        }
        Proc {
            name: name.to_string(),
            child,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().lines.clone()
    }

    pub fn log(&self) -> String {
        format!("--- {} output ---\n{}", self.name, self.lines().join("\n"))
    }

    /// Waits for a line matching `pred` (already written or to come) and
    /// returns it; panics with the whole output after [`WAIT`].
    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line_after(0, what, pred)
    }

    /// Like [`Proc::wait_line`], looking only at lines from index `from` on
    /// (take `from` from [`Proc::line_count`] before causing the event).
    pub fn wait_line_after(&self, from: usize, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut state = self.lines.lock();
        loop {
            if let Some(line) = state.lines.iter().skip(from).find(|l| pred(l)) {
                return line.clone();
            }
            // The output is printed when the guard drops.
            if state.closed == 2 {
                drop(state);
                panic!("{}: exited without a line {what}", self.name);
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                panic!("{}: no line {what} within {WAIT:?}", self.name);
            }
            state = self
                .lines
                .added
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().lines.len()
    }

    /// The port a route listens on, from the `route listening` log line.
    pub fn route_port(&self, route: &str) -> u16 {
        let needle = format!("route={route} ");
        let line = self.wait_line(&format!("`route listening` for {route}"), |l| {
            l.contains("route listening") && l.contains(&needle)
        });
        let addr = field(&line, "listen=").expect("listen= in the route listening line");
        addr.rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// Sends a signal by name (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let out = run_bounded(
            {
                let mut cmd = Command::new("kill");
                cmd.arg(format!("-{sig}")).arg(self.pid().to_string());
                cmd
            },
            WAIT,
        );
        assert!(out.status.success(), "kill -{sig} failed:\n{}", show(&out));
    }

    /// Waits for the process to exit within `limit`; panics otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                return status;
            }
            if started.elapsed() > limit {
                panic!("{} still running after {limit:?}", self.name);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// Kills the child; prints its output if the test failed (or when
/// `GUICHET_TEST_LOGS` is set), since the output is the evidence.
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() || std::env::var_os("GUICHET_TEST_LOGS").is_some() {
            eprintln!("{}", self.log());
        }
    }
}

fn collect(pipe: impl Read + Send + 'static, lines: Arc<Lines>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lines.lock().lines.push(line);
            lines.added.notify_all();
        }
        lines.lock().closed += 1;
        lines.added.notify_all();
    });
}

/// The value of `key` (e.g. `listen=`) in a text log line, without quotes.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

/// A port that was free a moment ago, for peers that cannot listen on
/// port 0 and report it (stunnel). Racy in theory; fine on a test machine.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A backend that echoes every byte back on each connection and counts the
/// connections it accepted.
pub struct Echo {
    pub port: u16,
    accepted: Arc<Mutex<usize>>,
}

impl Echo {
    pub fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo backend");
        let port = listener.local_addr().expect("echo address").port();
        let accepted = Arc::new(Mutex::new(0));
        let count = accepted.clone();
        // The thread lives until the test binary exits; it only ever
        // blocks in accept.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                *count.lock().expect("echo count") += 1;
                thread::spawn(move || echo(stream));
            }
        });
        Echo { port, accepted }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn accepted(&self) -> usize {
        *self.accepted.lock().expect("echo count")
    }
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// A backend that reads each request to its end (the client's FIN), then
/// answers `ACK <n bytes>` and closes: what a receiver that replies only
/// after the sender's half-close does. Returns its port.
pub fn ack_after_eof_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("backend address").port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).is_ok() {
                    let _ = stream.write_all(format!("ACK {}", request.len()).as_bytes());
                }
            });
        }
    });
    port
}

/// A plain connection to 127.0.0.1:`port` with bounded reads and writes.
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("write timeout");
    stream
}

/// Sends `payload` and reads back exactly as many bytes; they must be the
/// same (the far end is an [`Echo`]).
#[track_caller]
pub fn round_trip(stream: &mut TcpStream, payload: &[u8]) {
    stream.write_all(payload).expect("send payload");
    let mut back = vec![0u8; payload.len()];
    stream
        .read_exact(&mut back)
        .expect("read the echoed payload");
    assert_eq!(
        String::from_utf8_lossy(&back),
        String::from_utf8_lossy(payload)
    );
}

/// Reads until end of stream or error; true if the peer closed (EOF or
/// reset) within [`WAIT`].
pub fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// An HL7 v2 message framed for MLLP, with `marker` in PID-3.
pub fn hl7_message(control_id: &str, marker: &str) -> Vec<u8> {
    let pid = format!("PID|1||{marker}||DOE^JOHN");
    let msg = Hl7::adt(control_id).facility("HOSP").at("20250101120000");
    msg.kind("ADT^A01").segments(&[&pid]).framed()
}

/// Config text for a TLS profile of the bench's PKI: `cert` names an
/// issued pair, `ca` adds the CA and its CRL.
pub fn profile(name: &str, bench: &Bench, cert: Option<&str>, ca: bool) -> String {
    let mut profile = TlsProfile::new(name);
    if let Some(cert) = cert {
        let (pem, key) = (format!("pki/{cert}.pem"), format!("pki/{cert}.key"));
        profile = profile.cert(&bench.path(&pem), &bench.path(&key));
    }
    if ca {
        profile = profile.ca(&bench.path("pki/ca.pem"));
        profile = profile.crl(&bench.path("pki/ca.crl"));
    }
    profile.to_string()
}

impl Bench {
    /// Starts `guichet listen --on 127.0.0.1:0 EXTRA...` in the bench
    /// directory and returns it with the port it reports it bound.
    pub fn listen(&self, extra: &[&str]) -> (Proc, u16) {
        let mut args = vec!["listen", "--on", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        self.serve(&args)
    }

    /// Starts `guichet ARGS` (a server told to listen on 127.0.0.1:0) in
    /// the bench directory and returns it with the port it reports in its
    /// `listening on` line.
    pub fn serve(&self, args: &[&str]) -> (Proc, u16) {
        let mut cmd = Command::new(guichet_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG");
        let proc = Proc::spawn(&format!("guichet {}", args[0]), cmd);
        let line = proc.wait_line("`listening on`", |l| l.starts_with("listening on "));
        let port = line
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        (proc, port)
    }
}

/// The first of `n` (at most 16) ports in a row, all free now (for
/// scripts that take a base port). Blocks start on a multiple of 16 drawn
/// from the process id and an ephemeral port, so two tests starting
/// together do not get overlapping blocks.
pub fn free_block(n: u16) -> u16 {
    assert!(n <= 16, "blocks are 16 ports");
    for _ in 0..200 {
        let draw = u32::from(free_port()).wrapping_mul(7919) ^ std::process::id();
        let base = 20_000 + u16::try_from(draw % 2_500).unwrap_or(0) * 16;
        let free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {n} free ports in a row");
}

/// A database of this test's own on the test server (dropped after
/// it); `None` after a SKIPPED line when no server answers (CI fails).
pub fn postgres_database() -> Option<guichet_testsupport::postgres::TestDatabase> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(guichet_testsupport::postgres::TestDatabase::create())
}
