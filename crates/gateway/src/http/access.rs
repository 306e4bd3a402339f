//! The JSON access log of `http` routes: one line per request, written by
//! its own thread so a slow disk never holds a request.
//!
//! A line carries who (application, certificate subject and fingerprint,
//! address), what (method, host, path without its query string unless the
//! route keeps it), and how it went (status, bytes, duration, upstream,
//! guichet's reason when it answered itself). Never a header value or a
//! body: those may hold patient data.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use guichet_tls::AppName;
use serde::{Serialize, Serializer};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

use crate::config::{AccessLog, RouteName, RuleName};

/// One request, as logged. Built on the request path from shared and
/// borrowed parts; turned into text by the writer thread.
#[derive(Debug, Serialize)]
pub struct AccessRecord {
    /// RFC 3339, when the request arrived.
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    #[serde(serialize_with = "shown")]
    pub route: RouteName,
    #[serde(serialize_with = "text")]
    pub rule: Option<RuleName>,
    #[serde(serialize_with = "text")]
    pub app: Option<AppName>,
    pub subject: Arc<str>,
    pub fingerprint: Arc<str>,
    pub client: Arc<str>,
    pub protocol: &'static str,
    #[serde(serialize_with = "method")]
    pub method: http::Method,
    pub host: Option<String>,
    pub path: String,
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    pub duration_ms: f64,
    pub upstream: Option<Arc<str>>,
    /// Set when guichet answered itself (see `Refused::as_str`).
    pub reason: Option<&'static str>,
    /// False when the response body was cut before its end.
    pub complete: bool,
    /// A validating rule's verdict on the request's body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationRecord>,
}

/// A validating rule's verdict, as logged: the codes of the rules broken,
/// never what the document holds.
#[derive(Debug, Serialize)]
pub struct ValidationRecord {
    /// `valid` or `invalid`.
    pub verdict: &'static str,
    pub violations: Vec<&'static str>,
}

fn rfc3339<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let text = time::OffsetDateTime::from(*time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    s.serialize_str(&text)
}

fn shown<S: Serializer, T: std::fmt::Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn text<S: Serializer, T: std::fmt::Display>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn method<S: Serializer>(method: &http::Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(method.as_str())
}

/// Where records go; cheap to clone.
#[derive(Clone)]
pub struct AccessLogger {
    tx: SyncSender<AccessRecord>,
    dropped: Arc<AtomicU64>,
    /// Set by a reload: the writer opens the file again (log rotation
    /// moves it away and expects a new one).
    reopen: Arc<AtomicBool>,
}

/// Lines waiting beyond this are dropped (and counted) rather than making
/// requests wait for the disk.
const QUEUE: usize = 65_536;

impl AccessLogger {
    /// Opens the log (a file is created 0640 and appended to) and starts
    /// its writer thread.
    pub fn open(target: &AccessLog, route: &str) -> io::Result<AccessLogger> {
        let out: Box<dyn Write + Send> = match target {
            AccessLog::Stdout => Box::new(io::stdout()),
            AccessLog::File(path) => Box::new(open_file(path)?),
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            rx,
            out: BufWriter::with_capacity(64 * 1024, out),
            target: target.clone(),
            reopen: reopen.clone(),
            failing: false,
        };
        std::thread::Builder::new()
            .name(format!("access-{route}"))
            .spawn(move || writer.run())?;
        Ok(AccessLogger {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            reopen,
        })
    }

    /// Has the writer open its file again before its next lines.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
    }

    pub fn log(&self, record: AccessRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    warn!(dropped = n + 1, "access log writer behind: lines dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Lines dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn open_file(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", path.display())))
}

/// How often the writer takes what has queued up. Waking per line would
/// cost every request a thread wake-up (a fifth of the gateway's CPU under
/// load); lines reach the file within this delay instead.
const BATCH: Duration = Duration::from_millis(100);

/// The writer thread's side.
struct Writer {
    rx: Receiver<AccessRecord>,
    out: BufWriter<Box<dyn Write + Send>>,
    target: AccessLog,
    reopen: Arc<AtomicBool>,
    failing: bool,
}

impl Writer {
    /// Writes what has queued every `BATCH`, then flushes; ends (after a
    /// last flush) once every logger is gone.
    fn run(mut self) {
        loop {
            std::thread::sleep(BATCH);
            let mut open = true;
            loop {
                // Checked per line: a line logged after a reload goes to
                // the new file.
                if self.reopen.swap(false, Ordering::SeqCst) {
                    self.reopen_file();
                }
                match self.rx.try_recv() {
                    Ok(record) => {
                        let written = serde_json::to_writer(&mut self.out, &record)
                            .map_err(io::Error::other)
                            .and_then(|()| self.out.write_all(b"\n"));
                        report(&mut self.failing, written);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let flushed = self.out.flush();
            report(&mut self.failing, flushed);
            if !open {
                return;
            }
        }
    }

    /// Flushes to the old file, then appends to the file at the path now.
    fn reopen_file(&mut self) {
        let AccessLog::File(path) = &self.target else {
            return;
        };
        let flushed = self.out.flush();
        report(&mut self.failing, flushed);
        match open_file(path) {
            Ok(file) => {
                self.out = BufWriter::with_capacity(64 * 1024, Box::new(file));
                info!(file = %path.display(), "access log reopened");
            }
            Err(e) => warn!("cannot reopen the access log, writing on to the old file: {e}"),
        }
    }
}

/// One warning when writing starts failing, one when it works again.
fn report(failing: &mut bool, result: io::Result<()>) {
    match result {
        Err(e) if !*failing => {
            *failing = true;
            warn!("cannot write the access log: {e}");
        }
        Ok(()) if *failing => {
            *failing = false;
            warn!("access log writable again");
        }
        _ => {}
    }
}
