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

impl AccessRecord {
    /// Appends the record as one JSON line, as `serde_json` writes the
    /// derived form (field for field, the same escapes), without its
    /// per-byte escaping of names and of values that need none: that was
    /// the writer's main cost, per request.
    fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        let time = time::OffsetDateTime::from(self.time)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        out.extend_from_slice(time.as_bytes());
        out.extend_from_slice(b"\",\"route\":");
        json_str(out, self.route.as_str());
        out.extend_from_slice(b",\"rule\":");
        json_opt(out, self.rule.as_ref().map(RuleName::as_str));
        out.extend_from_slice(b",\"app\":");
        json_opt(out, self.app.as_ref().map(AppName::as_str));
        out.extend_from_slice(b",\"subject\":");
        json_str(out, &self.subject);
        out.extend_from_slice(b",\"fingerprint\":");
        json_str(out, &self.fingerprint);
        out.extend_from_slice(b",\"client\":");
        json_str(out, &self.client);
        out.extend_from_slice(b",\"protocol\":");
        json_str(out, self.protocol);
        out.extend_from_slice(b",\"method\":");
        json_str(out, self.method.as_str());
        out.extend_from_slice(b",\"host\":");
        json_opt(out, self.host.as_deref());
        out.extend_from_slice(b",\"path\":");
        json_str(out, &self.path);
        out.extend_from_slice(b",\"status\":");
        json_value(out, &self.status);
        out.extend_from_slice(b",\"bytes_in\":");
        json_value(out, &self.bytes_in);
        out.extend_from_slice(b",\"bytes_out\":");
        json_value(out, &self.bytes_out);
        out.extend_from_slice(b",\"duration_ms\":");
        json_value(out, &self.duration_ms);
        out.extend_from_slice(b",\"upstream\":");
        json_opt(out, self.upstream.as_deref());
        out.extend_from_slice(b",\"reason\":");
        json_opt(out, self.reason);
        out.extend_from_slice(b",\"complete\":");
        out.extend_from_slice(if self.complete { b"true" } else { b"false" });
        if let Some(validation) = &self.validation {
            out.extend_from_slice(b",\"validation\":");
            json_value(out, validation);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// A JSON string: copied as it is when nothing in it needs escaping.
fn json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        json_value(out, text);
    }
}

fn json_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => json_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// A value as `serde_json` writes it (writing to a `Vec` cannot fail, nor
/// can serialising these types).
fn json_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(&mut *out, value);
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
        let mut line = Vec::with_capacity(512);
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
                        line.clear();
                        record.write_line(&mut line);
                        let written = self.out.write_all(&line);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_733_500_000_123_456_789),
            route: RouteName::new("ror-gw"),
            rule: Some(RuleName::new("ror")),
            app: Some(AppName::new("partner")),
            subject: Arc::from("CN=Hôpital \"Nord\",O=a\\b"),
            fingerprint: Arc::from("4b80"),
            client: Arc::from("127.0.0.1"),
            protocol: "HTTP/1.1",
            method: http::Method::GET,
            host: Some("localhost".into()),
            path: "/ror/\u{1}tab\there".into(),
            status: 200,
            bytes_in: 0,
            bytes_out: 106,
            duration_ms: 0.139,
            upstream: Some(Arc::from("http://127.0.0.1:8080")),
            reason: None,
            complete: true,
            validation: None,
        }
    }

    fn line(record: &AccessRecord) -> String {
        let mut out = Vec::new();
        record.write_line(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The line is the derived form's, escapes included.
    #[test]
    fn lines_are_serde_jsons() {
        let mut record = record();
        assert_eq!(
            line(&record),
            serde_json::to_string(&record).unwrap() + "\n"
        );
        record.rule = None;
        record.app = None;
        record.host = None;
        record.upstream = None;
        record.reason = Some("no_rule");
        record.complete = false;
        record.duration_ms = 12.0;
        record.validation = Some(ValidationRecord {
            verdict: "invalid",
            violations: vec!["beds-total", "finess"],
        });
        let text = line(&record);
        assert_eq!(text, serde_json::to_string(&record).unwrap() + "\n");
        assert!(
            text.contains(r#""subject":"CN=Hôpital \"Nord\",O=a\\b""#),
            "{text}"
        );
        assert!(text.contains(r#""path":"/ror/\u0001tab\there""#), "{text}");
        assert!(text.contains(r#""rule":null,"#), "{text}");
        let validation =
            r#""validation":{"verdict":"invalid","violations":["beds-total","finess"]}}"#;
        assert!(text.ends_with(&format!("{validation}\n")), "{text}");
    }
}
